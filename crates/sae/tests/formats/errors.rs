//! Every failure names the file and the tensor or key at fault, and says what was expected.

use std::path::Path;

use saener_sae::format::{gemmascope, saelens, sparsify};
use saener_sae::{load_any, Activation, Sae, SaeConfig};
use serde_json::json;

use crate::{fixture, noise, write_json, write_safetensors};

/// Loads `dir` and returns the error message, asserting it names `file` and each of `needles`.
fn load_error(dir: &Path, file: &str, needles: &[&str]) -> String {
    let err = load_any(dir).expect_err("the load should fail").to_string();
    assert!(err.contains(file), "message does not name {file}: {err}");
    for needle in needles {
        assert!(err.contains(needle), "message lacks {needle:?}: {err}");
    }
    err
}

fn saelens_cfg() -> serde_json::Value {
    json!({"d_in": 4, "d_sae": 8, "apply_b_dec_to_input": true, "architecture": "standard",
           "normalize_activations": "none", "metadata": {"sae_lens_version": "6.54.12"}})
}

/// A SAELens folder with the given tensors; `W_enc` defaults to the right shape.
fn saelens_dir(
    dir: &Path,
    cfg: serde_json::Value,
    skip: &str,
    w_enc_shape: &[usize],
    nan_at: Option<usize>,
) {
    write_json(&dir.join("cfg.json"), cfg);
    let mut w_dec = noise(32, 2);
    if let Some(i) = nan_at {
        w_dec[i] = f32::NAN;
    }
    let (w_enc, b_enc, b_dec) = (noise(32, 1), noise(8, 3), noise(4, 4));
    let tensors: Vec<(&str, &[usize], &[f32])> = [
        ("W_enc", w_enc_shape, &w_enc[..]),
        ("W_dec", &[8, 4][..], &w_dec[..]),
        ("b_enc", &[8][..], &b_enc[..]),
        ("b_dec", &[4][..], &b_dec[..]),
    ]
    .into_iter()
    .filter(|(name, ..)| *name != skip)
    .collect();
    write_safetensors(&dir.join("sae_weights.safetensors"), &tensors, false);
}

#[test]
fn missing_tensor_names_the_file_and_the_tensor() {
    let tmp = tempfile::tempdir().unwrap();
    saelens_dir(tmp.path(), saelens_cfg(), "b_dec", &[4, 8], None);
    load_error(
        tmp.path(),
        "sae_weights.safetensors",
        &["'b_dec'", "missing", "W_enc"],
    );
}

#[test]
fn wrong_shape_names_the_tensor_and_the_expected_shape() {
    let tmp = tempfile::tempdir().unwrap();
    saelens_dir(tmp.path(), saelens_cfg(), "", &[8, 4], None);
    load_error(
        tmp.path(),
        "sae_weights.safetensors",
        &["'W_enc'", "[8, 4]", "expected [4, 8]", "d_in"],
    );
}

#[test]
fn nan_in_weights_names_the_tensor_and_the_index() {
    let tmp = tempfile::tempdir().unwrap();
    saelens_dir(tmp.path(), saelens_cfg(), "", &[4, 8], Some(7));
    load_error(
        tmp.path(),
        "sae_weights.safetensors",
        &["'W_dec'", "NaN", "index 7"],
    );
}

#[test]
fn sparsify_errors_use_the_files_own_tensor_names() {
    let tmp = tempfile::tempdir().unwrap();
    write_json(
        &tmp.path().join("cfg.json"),
        json!({"activation": "topk", "num_latents": 8, "k": 2, "d_in": 4}),
    );
    let (w, b) = (noise(32, 1), noise(8, 2));
    write_safetensors(
        &tmp.path().join("sae.safetensors"),
        &[
            ("encoder.weight", &[4, 8], &w),
            ("encoder.bias", &[8], &b),
            ("W_dec", &[8, 4], &w),
            ("b_dec", &[4], &b[..4]),
        ],
        false,
    );
    load_error(
        tmp.path(),
        "sae.safetensors",
        &["'encoder.weight'", "[4, 8]", "expected [8, 4]"],
    );
}

#[test]
fn truncated_safetensors_names_the_first_tensor_cut_off() {
    let tmp = tempfile::tempdir().unwrap();
    let src = fixture("saelens_standard");
    std::fs::copy(src.join("cfg.json"), tmp.path().join("cfg.json")).unwrap();
    let bytes = std::fs::read(src.join("sae_weights.safetensors")).unwrap();
    // The fixture's last tensor by offset is b_enc (bytes 4160..4288 of the data section).
    std::fs::write(
        tmp.path().join("sae_weights.safetensors"),
        &bytes[..bytes.len() - 100],
    )
    .unwrap();
    load_error(
        tmp.path(),
        "sae_weights.safetensors",
        &["truncated", "'b_enc'", "4160..4288"],
    );
}

#[test]
fn truncated_npz_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("gemmascope_npz").join("params.npz")).unwrap();
    std::fs::write(tmp.path().join("params.npz"), &bytes[..bytes.len() / 2]).unwrap();
    load_error(tmp.path(), "params.npz", &["corrupt or truncated"]);
}

#[test]
fn bad_json_names_the_config_file() {
    let tmp = tempfile::tempdir().unwrap();
    saelens_dir(tmp.path(), saelens_cfg(), "", &[4, 8], None);
    std::fs::write(tmp.path().join("cfg.json"), "{\"d_in\": 4,").unwrap();
    load_error(tmp.path(), "cfg.json", &["invalid JSON"]);
}

#[test]
fn config_key_errors_name_the_key() {
    let cases = [
        ("d_sae", json!(null), &["'d_sae'", "missing"][..]),
        (
            "d_in",
            json!("four"),
            &["'d_in'", "non-negative integer", "\"four\""],
        ),
        (
            "architecture",
            json!("gated"),
            &["'architecture'", "'gated'", "standard, jumprelu or topk"],
        ),
        (
            "normalize_activations",
            json!("layer_norm"),
            &["'normalize_activations'", "layer_norm"],
        ),
        (
            "normalize_activations",
            json!("expected_average_only_in"),
            &["scaling factor"],
        ),
    ];
    for (key, value, needles) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let mut cfg = saelens_cfg();
        cfg[key] = value;
        saelens_dir(tmp.path(), cfg, "", &[4, 8], None);
        load_error(tmp.path(), "cfg.json", needles);
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = saelens_cfg();
    cfg["metadata"]["hook_name"] = json!(9);
    saelens_dir(tmp.path(), cfg, "", &[4, 8], None);
    load_error(
        tmp.path(),
        "cfg.json",
        &["'metadata.hook_name'", "expected a string"],
    );
}

#[test]
fn an_empty_folder_lists_what_was_looked_for() {
    let tmp = tempfile::tempdir().unwrap();
    let err = load_error(
        tmp.path(),
        "",
        &[
            "no SAE found",
            "params.safetensors (Gemma Scope 2)",
            "params.npz",
            "sae_weights.safetensors (SAELens)",
            "sae.safetensors (sparsify)",
        ],
    );
    assert!(err.contains(&tmp.path().display().to_string()), "{err}");
    // A run folder points at the SAEs inside it.
    saelens_dir(
        &tmp.path().join("layers.9"),
        saelens_cfg(),
        "",
        &[4, 8],
        None,
    );
    load_error(tmp.path(), "", &["layers.9", "pass one"]);
}

#[test]
fn check_compatible_names_the_sae_and_both_sides() {
    let sae = load_any(fixture("saelens_standard")).unwrap();
    let err = sae.check_compatible(640, 0).unwrap_err().to_string();
    for needle in ["sae_weights.safetensors", "d_in = 16", "d_model = 640"] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
    sae.check_compatible(16, 3)
        .expect("no recorded layer, nothing to contradict");

    let config = SaeConfig {
        hook_layer: Some(5),
        hook_name: Some("blocks.5.hook_resid_post".into()),
        ..SaeConfig::new(16, 32, Activation::Relu)
    };
    let sae = Sae::new(
        config,
        vec![0.0; 512],
        vec![0.0; 32],
        vec![0.0; 512],
        vec![0.0; 16],
        None,
    )
    .unwrap();
    let err = sae.check_compatible(16, 9).unwrap_err().to_string();
    for needle in [
        "layer 5",
        "blocks.5.hook_resid_post",
        "layer 9 was requested",
    ] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
    sae.check_compatible(16, 5).unwrap();
}

#[test]
fn bad_calls_are_errors_not_panics() {
    let sae = load_any(fixture("saelens_topk")).unwrap();
    let err = sae.encode_sparse(&[0.0; 17]).unwrap_err().to_string();
    assert!(err.contains("17") && err.contains("d_in = 16"), "{err}");
    let mut x = vec![0.0; 32];
    x[20] = f32::NAN;
    let err = sae.encode_dense(&x).unwrap_err().to_string();
    assert!(
        err.contains("row 1, column 4") && err.contains("NaN"),
        "{err}"
    );
    let err = sae
        .encode_features(&[0.0; 16], &[3, 32])
        .unwrap_err()
        .to_string();
    assert!(err.contains("feature 32"), "{err}");
    let err = sae.decode_dense(&[0.0; 31]).unwrap_err().to_string();
    assert!(err.contains("d_sae = 32"), "{err}");
}

#[test]
fn sae_new_checks_its_invariants() {
    let w = || (vec![0.0; 32], vec![0.0; 8], vec![0.0; 32], vec![0.0; 4]);
    let (we, be, wd, bd) = w();
    let err = Sae::new(
        SaeConfig::new(4, 8, Activation::JumpRelu),
        we,
        be,
        wd,
        bd,
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("'threshold' is missing"), "{err}");
    let (we, be, wd, bd) = w();
    let err = Sae::new(
        SaeConfig::new(4, 8, Activation::TopK { k: 9 }),
        we,
        be,
        wd,
        bd,
        None,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("'k'") && err.to_string().contains("1..=8"),
        "{err}"
    );
    let (we, be, _, bd) = w();
    let err = Sae::new(
        SaeConfig::new(4, 8, Activation::Relu),
        we,
        be,
        vec![0.0; 31],
        bd,
        None,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("'w_dec'") && err.to_string().contains("[8, 4]"),
        "{err}"
    );
}

#[test]
fn writers_refuse_what_their_format_cannot_hold() {
    let sae = load_any(fixture("saelens_jumprelu")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let err = sparsify::save(&sae, tmp.path()).unwrap_err().to_string();
    assert!(
        err.contains("sparsify") && err.contains("JumpReLU"),
        "{err}"
    );
    let topk = load_any(fixture("saelens_topk")).unwrap();
    let err = gemmascope::save(&topk, tmp.path()).unwrap_err().to_string();
    assert!(err.contains("params.npz") && err.contains("TopK"), "{err}");
    assert!(saelens::save(&topk, tmp.path()).is_ok());
}
