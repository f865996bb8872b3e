//! Small files written here in each documented layout, checked against a direct computation
//! of that format's formula; plus the encode API's own invariants.

use std::io::Write;
use std::path::Path;

use saener_sae::format::{gemmascope, gemmascope2, saelens};
use saener_sae::{load_any, Activation, Dtype, Format, Sae, SaeConfig};
use serde_json::json;

use crate::{
    assert_close, bf16_round, noise, reference_decode, reference_jumprelu, reference_pre,
    reference_topk, to_dense, write_json, write_safetensors,
};

const D_IN: usize = 6;
const D_SAE: usize = 20;
const N: usize = 9;
const TOL: f32 = 1e-5;

/// Random weights with biases shifted so that roughly half the features fire.
struct Parts {
    w_enc: Vec<f32>,
    b_enc: Vec<f32>,
    w_dec: Vec<f32>,
    b_dec: Vec<f32>,
    threshold: Vec<f32>,
    x: Vec<f32>,
}

fn parts(seed: u64) -> Parts {
    Parts {
        w_enc: noise(D_IN * D_SAE, seed),
        b_enc: noise(D_SAE, seed + 1).iter().map(|v| v * 0.3).collect(),
        w_dec: noise(D_SAE * D_IN, seed + 2),
        b_dec: noise(D_IN, seed + 3),
        threshold: noise(D_SAE, seed + 4)
            .iter()
            .map(|v| v.abs() * 0.5)
            .collect(),
        x: noise(N * D_IN, seed + 5).iter().map(|v| v * 2.0).collect(),
    }
}

fn check_decode(sae: &Sae, p: &Parts) {
    let codes = sae.encode_dense(&p.x).unwrap();
    assert_close(
        "decode",
        &sae.decode_dense(&codes).unwrap(),
        &reference_decode(&codes, &p.w_dec, &p.b_dec),
        TOL,
    );
    let sparse = sae.encode_sparse(&p.x).unwrap();
    assert_eq!(to_dense(&sparse, D_SAE), codes);
    assert_close(
        "sparse decode",
        &sae.decode_sparse(&sparse).unwrap(),
        &reference_decode(&codes, &p.w_dec, &p.b_dec),
        TOL,
    );
}

fn write_saelens(dir: &Path, p: &Parts, cfg: serde_json::Value, with_threshold: bool) {
    write_json(&dir.join("cfg.json"), cfg);
    let mut tensors: Vec<(&str, &[usize], &[f32])> = vec![
        ("W_enc", &[D_IN, D_SAE], &p.w_enc),
        ("W_dec", &[D_SAE, D_IN], &p.w_dec),
        ("b_enc", &[D_SAE], &p.b_enc),
        ("b_dec", &[D_IN], &p.b_dec),
    ];
    if with_threshold {
        tensors.push(("threshold", &[D_SAE], &p.threshold));
    }
    write_safetensors(&dir.join("sae_weights.safetensors"), &tensors, false);
}

#[test]
fn saelens_v6_layouts_match_their_formulas() {
    let tmp = tempfile::tempdir().unwrap();
    for (i, architecture) in ["standard", "jumprelu", "topk"].into_iter().enumerate() {
        let p = parts(10 + i as u64);
        let dir = tmp.path().join(architecture);
        let cfg = json!({
            "d_in": D_IN, "d_sae": D_SAE, "dtype": "float32", "device": "cpu",
            "apply_b_dec_to_input": true, "normalize_activations": "none",
            "reshape_activations": "none", "architecture": architecture, "k": 5,
            "rescale_acts_by_decoder_norm": false,
            "metadata": {"sae_lens_version": "6.54.12", "hook_name": "blocks.4.hook_resid_post",
                         "model_name": "gemma-3-270m"},
        });
        write_saelens(&dir, &p, cfg, architecture == "jumprelu");
        let sae = load_any(&dir).unwrap();
        assert_eq!(sae.config().hook_layer, Some(4));
        assert_eq!(sae.config().model.as_deref(), Some("gemma-3-270m"));
        let pre = reference_pre(&p.x, &p.w_enc, &p.b_enc, Some(&p.b_dec));
        let want = match architecture {
            "standard" => pre.iter().map(|v| v.max(0.0)).collect(),
            "jumprelu" => reference_jumprelu(&pre, &p.threshold),
            _ => reference_topk(&pre, D_SAE, 5),
        };
        assert_close(architecture, &sae.encode_dense(&p.x).unwrap(), &want, TOL);
        check_decode(&sae, &p);
    }
}

#[test]
fn saelens_pre_6_topk_config_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let p = parts(20);
    let cfg = json!({
        "model_name": "gpt2-small", "hook_point": "blocks.8.hook_resid_pre", "hook_point_layer": 8,
        "d_in": D_IN, "d_sae": D_SAE, "activation_fn_str": "topk",
        "activation_fn_kwargs": {"k": 3}, "apply_b_dec_to_input": false,
        "normalize_activations": false, "finetuning_scaling_factor": false,
    });
    write_saelens(tmp.path(), &p, cfg, false);
    let sae = saelens::load(tmp.path()).unwrap();
    let c = sae.config();
    assert_eq!(c.activation, Activation::TopK { k: 3 });
    assert_eq!(
        (c.hook_layer, c.hook_name.as_deref()),
        (Some(8), Some("blocks.8.hook_resid_pre"))
    );
    assert_eq!(c.model.as_deref(), Some("gpt2-small"));
    let want = reference_topk(&reference_pre(&p.x, &p.w_enc, &p.b_enc, None), D_SAE, 3);
    assert_close("pre-6 topk", &sae.encode_dense(&p.x).unwrap(), &want, TOL);
}

#[test]
fn saelens_topk_rescaled_by_decoder_norm_matches_its_formula() {
    let tmp = tempfile::tempdir().unwrap();
    let p = parts(30);
    let cfg = json!({
        "d_in": D_IN, "d_sae": D_SAE, "apply_b_dec_to_input": true, "architecture": "topk",
        "k": 4, "rescale_acts_by_decoder_norm": true, "normalize_activations": "none",
        "metadata": {"sae_lens_version": "6.54.12"},
    });
    write_saelens(tmp.path(), &p, cfg, false);
    let sae = saelens::load(tmp.path()).unwrap();
    let norms: Vec<f32> = p
        .w_dec
        .chunks_exact(D_IN)
        .map(|r| r.iter().map(|v| v * v).sum::<f32>().sqrt())
        .collect();
    // SAELens: rank pre·‖W_dec_j‖, decode code / ‖W_dec_j‖.
    let pre = reference_pre(&p.x, &p.w_enc, &p.b_enc, Some(&p.b_dec));
    let scaled: Vec<f32> = pre
        .iter()
        .enumerate()
        .map(|(i, v)| v * norms[i % D_SAE])
        .collect();
    let codes = reference_topk(&scaled, D_SAE, 4);
    assert_close(
        "rescaled codes",
        &sae.encode_dense(&p.x).unwrap(),
        &codes,
        TOL,
    );
    let unscaled: Vec<f32> = codes
        .iter()
        .enumerate()
        .map(|(i, v)| v / norms[i % D_SAE])
        .collect();
    let recon = reference_decode(&unscaled, &p.w_dec, &p.b_dec);
    assert_close(
        "rescaled recon",
        &sae.decode_dense(&codes).unwrap(),
        &recon,
        TOL,
    );
}

#[test]
fn sparsify_layout_matches_its_formula() {
    let tmp = tempfile::tempdir().unwrap();
    let p = parts(40);
    let dir = tmp.path().join("run").join("layers.7");
    write_json(
        &tmp.path().join("run/config.json"),
        json!({"model": "google/gemma-3-270m"}),
    );
    // num_latents 0 means expansion_factor × d_in = 18 latents.
    let d_sae = 18;
    write_json(
        &dir.join("cfg.json"),
        json!({"activation": "topk", "expansion_factor": 3, "normalize_decoder": true,
               "num_latents": 0, "k": 5, "multi_topk": false, "skip_connection": false,
               "transcode": false, "d_in": D_IN}),
    );
    let w_enc = &p.w_enc[..D_IN * d_sae]; // as [d_in, d_sae]
    let encoder: Vec<f32> = (0..d_sae * D_IN)
        .map(|i| w_enc[(i % D_IN) * d_sae + i / D_IN])
        .collect();
    let (b_enc, w_dec) = (&p.b_enc[..d_sae], &p.w_dec[..d_sae * D_IN]);
    write_safetensors(
        &dir.join("sae.safetensors"),
        &[
            ("encoder.weight", &[d_sae, D_IN], &encoder),
            ("encoder.bias", &[d_sae], b_enc),
            ("W_dec", &[d_sae, D_IN], w_dec),
            ("b_dec", &[D_IN], &p.b_dec),
        ],
        false,
    );
    let sae = load_any(&dir).unwrap();
    let c = sae.config();
    assert_eq!(
        (c.d_sae, c.activation, c.hook_layer),
        (d_sae, Activation::TopK { k: 5 }, Some(7))
    );
    assert_eq!(c.model.as_deref(), Some("google/gemma-3-270m"));
    // top-k of relu(encoder(x − b_dec)).
    let pre = reference_pre(&p.x, w_enc, b_enc, Some(&p.b_dec));
    let relu: Vec<f32> = pre.iter().map(|v| v.max(0.0)).collect();
    assert_close(
        "sparsify",
        &sae.encode_dense(&p.x).unwrap(),
        &reference_topk(&relu, d_sae, 5),
        TOL,
    );
    let codes = sae.encode_dense(&p.x).unwrap();
    assert_close(
        "sparsify recon",
        &sae.decode_dense(&codes).unwrap(),
        &reference_decode(&codes, w_dec, &p.b_dec),
        TOL,
    );
}

/// `.npy` 1.0 bytes written by hand, independently of the crate's writer.
fn npy_bytes(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let dims = if shape.len() == 1 {
        format!("{},", dims[0])
    } else {
        dims.join(", ")
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({dims}), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(data.iter().flat_map(|v| v.to_le_bytes()));
    out
}

#[test]
fn gemma_scope_npz_layout_matches_its_formula() {
    let tmp = tempfile::tempdir().unwrap();
    let p = parts(50);
    let dir = tmp.path().join("layer_4/width_1k/average_l0_5");
    std::fs::create_dir_all(&dir).unwrap();
    // numpy.savez_compressed deflates its members; the loader must read both that and savez.
    let mut zip = zip::ZipWriter::new(std::fs::File::create(dir.join("params.npz")).unwrap());
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, shape, data) in [
        ("W_enc", vec![D_IN, D_SAE], &p.w_enc),
        ("W_dec", vec![D_SAE, D_IN], &p.w_dec),
        ("b_enc", vec![D_SAE], &p.b_enc),
        ("b_dec", vec![D_IN], &p.b_dec),
        ("threshold", vec![D_SAE], &p.threshold),
    ] {
        zip.start_file(format!("{name}.npy"), options).unwrap();
        zip.write_all(&npy_bytes(&shape, data)).unwrap();
    }
    zip.finish().unwrap();

    let sae = load_any(&dir).unwrap();
    assert_eq!(sae.source().unwrap().format, Format::GemmaScope);
    assert_eq!(sae.config().hook_layer, Some(4));
    // JumpReLU on x·W_enc + b_enc: no b_dec subtraction.
    let want = reference_jumprelu(&reference_pre(&p.x, &p.w_enc, &p.b_enc, None), &p.threshold);
    assert_close("gemma scope", &sae.encode_dense(&p.x).unwrap(), &want, TOL);
    check_decode(&sae, &p);
}

fn write_gemma_scope_2_params(dir: &Path, p: &Parts, bf16: bool) {
    std::fs::create_dir_all(dir).unwrap();
    write_safetensors(
        &dir.join("params.safetensors"),
        &[
            ("w_enc", &[D_IN, D_SAE], &p.w_enc),
            ("w_dec", &[D_SAE, D_IN], &p.w_dec),
            ("b_enc", &[D_SAE], &p.b_enc),
            ("b_dec", &[D_IN], &p.b_dec),
            ("threshold", &[D_SAE], &p.threshold),
        ],
        bf16,
    );
}

#[test]
fn official_gemma_scope_2_layout_in_bf16_matches_its_formula() {
    let tmp = tempfile::tempdir().unwrap();
    let p = parts(60);
    let dir = tmp.path().join("resid_post/layer_5_width_16k_l0_small");
    write_gemma_scope_2_params(&dir, &p, true);
    write_json(
        &dir.join("config.json"),
        json!({"hf_hook_point_in": "model.layers.5.output",
               "hf_hook_point_out": "model.layers.5.output", "width": D_SAE,
               "model_name": "google/gemma-3-270m-pt", "architecture": "jump_relu", "l0": 7,
               "affine_connection": false, "type": "sae"}),
    );
    let sae = load_any(&dir).unwrap();
    let c = sae.config();
    assert_eq!(sae.source().unwrap().dtype, Dtype::BF16);
    assert_eq!(
        (c.activation, c.apply_b_dec_to_input),
        (Activation::JumpRelu, false)
    );
    assert_eq!(
        (c.hook_layer, c.hook_name.as_deref()),
        (Some(5), Some("model.layers.5.output"))
    );
    assert_eq!(c.model.as_deref(), Some("google/gemma-3-270m-pt"));
    let (w_enc, b_enc, t) = (
        bf16_round(&p.w_enc),
        bf16_round(&p.b_enc),
        bf16_round(&p.threshold),
    );
    let want = reference_jumprelu(&reference_pre(&p.x, &w_enc, &b_enc, None), &t);
    assert_close(
        "gemma scope 2",
        &sae.encode_dense(&p.x).unwrap(),
        &want,
        TOL,
    );
    let codes = sae.encode_dense(&p.x).unwrap();
    let recon = reference_decode(&codes, &bf16_round(&p.w_dec), &bf16_round(&p.b_dec));
    assert_close(
        "gemma scope 2 recon",
        &sae.decode_dense(&codes).unwrap(),
        &recon,
        TOL,
    );
}

#[test]
fn gemma_scope_2_without_config_takes_the_layer_from_the_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layer_11_width_16k_l0_small");
    write_gemma_scope_2_params(&dir, &parts(70), false);
    let sae = load_any(dir.join("params.safetensors")).unwrap();
    assert_eq!(sae.config().hook_layer, Some(11));
    assert_eq!(sae.config().activation, Activation::JumpRelu);
}

fn median_row_norm(x: &[f32]) -> f32 {
    let mut norms: Vec<f32> = x
        .chunks_exact(D_IN)
        .map(|r| r.iter().map(|v| v * v).sum::<f32>().sqrt())
        .collect();
    norms.sort_by(f32::total_cmp);
    norms[norms.len() / 2]
}

fn in_memory(activation: Activation, apply_b_dec_to_input: bool, seed: u64) -> (Sae, Parts) {
    let p = parts(seed);
    let config = SaeConfig {
        apply_b_dec_to_input,
        ..SaeConfig::new(D_IN, D_SAE, activation)
    };
    let threshold = (activation == Activation::JumpRelu).then(|| p.threshold.clone());
    let sae = Sae::new(
        config,
        p.w_enc.clone(),
        p.b_enc.clone(),
        p.w_dec.clone(),
        p.b_dec.clone(),
        threshold,
    )
    .unwrap();
    (sae, p)
}

#[test]
fn saener_metadata_survives_gemma_scope_2() {
    for activation in [
        Activation::BatchTopK {
            k: 5,
            threshold: 0.2,
            topk_above_norm: None,
        },
        Activation::BatchTopK {
            k: 5,
            threshold: 0.2,
            topk_above_norm: Some(1.5),
        },
        Activation::TopK { k: 5 },
    ] {
        let (sae, p) = in_memory(activation, false, 80);
        let config = SaeConfig {
            hook_layer: Some(9),
            model: Some("google/gemma-3-270m".into()),
            name: Some("conll-l9-16k".into()),
            training: Some(json!({"tokens": 580000, "fvu": 0.108})),
            ..sae.config().clone()
        };
        let sae = Sae::new(
            config,
            p.w_enc.clone(),
            p.b_enc.clone(),
            p.w_dec.clone(),
            p.b_dec.clone(),
            None,
        )
        .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        gemmascope2::save(&sae, tmp.path(), Dtype::F32).unwrap();
        let back = gemmascope2::load(tmp.path()).unwrap();
        assert_eq!(back.config(), sae.config());
        assert_eq!(back.id(), sae.id());
        assert_eq!(
            back.encode_dense(&p.x).unwrap(),
            sae.encode_dense(&p.x).unwrap()
        );

        // Official readers see the keys they know.
        let cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(tmp.path().join("config.json")).unwrap())
                .unwrap();
        assert_eq!(cfg["width"], D_SAE);
        assert_eq!(cfg["hf_hook_point_in"], "model.layers.9.output");
        assert_eq!(cfg["model_name"], "google/gemma-3-270m");
        match activation {
            Activation::TopK { .. } => assert_eq!(
                (&cfg["architecture"], &cfg["k"]),
                (&json!("topk"), &json!(5))
            ),
            _ => assert_eq!(cfg["architecture"], "jump_relu"),
        }
    }
}

#[test]
fn encode_features_equals_the_full_encode_columns() {
    let features = [5u32, 0, 17, 5, 19];
    for activation in [
        Activation::Relu,
        Activation::JumpRelu,
        Activation::BatchTopK {
            k: 3,
            threshold: 0.3,
            topk_above_norm: None,
        },
        // A norm inside the rows' range, so both rules are exercised.
        Activation::BatchTopK {
            k: 3,
            threshold: 0.3,
            topk_above_norm: Some(median_row_norm(&in_memory(Activation::Relu, true, 90).1.x)),
        },
    ] {
        let (sae, p) = in_memory(activation, true, 90);
        let full = sae.encode_dense(&p.x).unwrap();
        let subset = sae.feature_subset(&features).unwrap();
        assert_eq!(subset.features(), features);
        let part = subset.encode(&p.x).unwrap();
        assert_eq!(part, sae.encode_features(&p.x, &features).unwrap());
        let columns: Vec<f32> = full
            .chunks_exact(D_SAE)
            .flat_map(|row| features.iter().map(|&f| row[f as usize]))
            .collect();
        assert_close(&format!("{activation}"), &part, &columns, TOL);
        assert!(columns.iter().any(|&v| v > 0.0) && columns.contains(&0.0));
    }
}

#[test]
fn encode_features_under_topk_is_relu_of_the_subset() {
    let features: Vec<u32> = (0..D_SAE as u32).step_by(3).collect();
    let (topk, p) = in_memory(Activation::TopK { k: 3 }, true, 100);
    let (relu, _) = in_memory(Activation::Relu, true, 100);
    let part = topk.encode_features(&p.x, &features).unwrap();
    let relu_cols: Vec<f32> = relu
        .encode_dense(&p.x)
        .unwrap()
        .chunks_exact(D_SAE)
        .flat_map(|row| {
            features
                .iter()
                .map(|&f| row[f as usize])
                .collect::<Vec<_>>()
        })
        .collect();
    assert_close("topk subset = relu", &part, &relu_cols, TOL);
    // Wherever the real top-k code is on, the subset agrees with it.
    let full = topk.encode_dense(&p.x).unwrap();
    for (t, row) in full.chunks_exact(D_SAE).enumerate() {
        for (c, &f) in features.iter().enumerate() {
            if row[f as usize] > 0.0 {
                assert!((part[t * features.len() + c] - row[f as usize]).abs() < TOL);
            }
        }
    }
}

#[test]
fn sparse_and_dense_agree_across_encode_chunks() {
    // 600 tokens span several internal chunks of the sparse path.
    let (sae, _) = in_memory(Activation::TopK { k: 4 }, true, 110);
    let x: Vec<f32> = noise(600 * D_IN, 111);
    let dense = sae.encode_dense(&x).unwrap();
    let sparse = sae.encode_sparse(&x).unwrap();
    assert_eq!(sparse.len(), 600);
    assert!(sparse.iter().all(|c| c.ids.len() <= 4));
    assert_eq!(to_dense(&sparse, D_SAE), dense);
    assert_close(
        "decode",
        &sae.decode_sparse(&sparse).unwrap(),
        &sae.decode_dense(&dense).unwrap(),
        TOL,
    );
    assert!(sae.encode_sparse(&[]).unwrap().is_empty());
}

#[test]
fn topk_with_k_equal_to_width_is_relu() {
    let (topk, p) = in_memory(Activation::TopK { k: D_SAE }, false, 120);
    let (relu, _) = in_memory(Activation::Relu, false, 120);
    assert_eq!(
        topk.encode_dense(&p.x).unwrap(),
        relu.encode_dense(&p.x).unwrap()
    );
}

#[test]
fn relu_and_batch_topk_save_as_exact_jumprelu_npz() {
    for activation in [
        Activation::Relu,
        Activation::BatchTopK {
            k: 2,
            threshold: 0.25,
            topk_above_norm: None,
        },
    ] {
        let (sae, p) = in_memory(activation, true, 130);
        let tmp = tempfile::tempdir().unwrap();
        gemmascope::save(&sae, tmp.path()).unwrap();
        let back = gemmascope::load(tmp.path().join("params.npz")).unwrap();
        assert_eq!(back.config().activation, Activation::JumpRelu);
        assert_close(
            &format!("{activation}"),
            &back.encode_dense(&p.x).unwrap(),
            &sae.encode_dense(&p.x).unwrap(),
            TOL,
        );
    }
    // A TopK rule for massive-norm rows has no JumpReLU form: refused, not written inexactly.
    let (massive, _) = in_memory(
        Activation::BatchTopK {
            k: 2,
            threshold: 0.25,
            topk_above_norm: Some(1.0),
        },
        true,
        130,
    );
    let tmp = tempfile::tempdir().unwrap();
    for error in [
        gemmascope::save(&massive, tmp.path()).unwrap_err(),
        saelens::save(&massive, tmp.path()).unwrap_err(),
    ] {
        assert!(error.to_string().contains("massive-norm rows"), "{error}");
    }
}
