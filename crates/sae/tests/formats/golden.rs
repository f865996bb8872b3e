//! The fixtures in `fixtures/golden/sae-formats`, written by SAELens, sparsify and numpy, and
//! every writer's round trip of them.

use saener_sae::format::{gemmascope, gemmascope2, saelens, sparsify};
use saener_sae::{load_any, npy, Activation, Dtype, Format, Sae};

use crate::{assert_close, bf16_round, fixture, max_abs_diff, to_dense};

const TOL: f32 = 1e-5;

/// `(folder, format, activation, b_dec subtracted from the input)`.
const FIXTURES: [(&str, Format, Activation, bool); 5] = [
    ("saelens_standard", Format::SaeLens, Activation::Relu, true),
    (
        "saelens_jumprelu",
        Format::SaeLens,
        Activation::JumpRelu,
        true,
    ),
    (
        "saelens_topk",
        Format::SaeLens,
        Activation::TopK { k: 4 },
        true,
    ),
    (
        "sparsify_topk",
        Format::Sparsify,
        Activation::TopK { k: 4 },
        true,
    ),
    (
        "gemmascope_npz",
        Format::GemmaScope,
        Activation::JumpRelu,
        false,
    ),
];

fn input() -> Vec<f32> {
    let (shape, x) = npy::read(fixture("input.npy")).unwrap();
    assert_eq!(shape, [8, 16]);
    x
}

fn expected(folder: &str, file: &str) -> Vec<f32> {
    npy::read(fixture(folder).join(file)).unwrap().1
}

#[test]
fn fixtures_reproduce_the_libraries_codes_and_reconstructions() {
    let x = input();
    for (folder, format, activation, apply) in FIXTURES {
        let sae = load_any(fixture(folder)).unwrap();
        let c = sae.config();
        assert_eq!((c.d_in, c.d_sae), (16, 32), "{folder}");
        assert_eq!(c.activation, activation, "{folder}");
        assert_eq!(c.apply_b_dec_to_input, apply, "{folder}");
        let source = sae.source().unwrap();
        assert_eq!(
            (source.format, source.dtype),
            (format, Dtype::F32),
            "{folder}"
        );

        let codes = expected(folder, "expected_codes.npy");
        let recon = expected(folder, "expected_recon.npy");
        let dense = sae.encode_dense(&x).unwrap();
        let sparse = sae.encode_sparse(&x).unwrap();
        let decoded = sae.decode_dense(&codes).unwrap();
        let decoded_sparse = sae.decode_sparse(&sparse).unwrap();
        let errors = [
            max_abs_diff(&dense, &codes),
            max_abs_diff(&to_dense(&sparse, 32), &codes),
            max_abs_diff(&decoded, &recon),
            max_abs_diff(&decoded_sparse, &recon),
        ];
        eprintln!(
            "{folder:18} max abs error: codes {:.1e}, sparse codes {:.1e}, recon {:.1e}, \
             recon from sparse {:.1e}",
            errors[0], errors[1], errors[2], errors[3]
        );
        assert!(
            errors.iter().all(|&e| e <= TOL),
            "{folder}: {errors:?} > {TOL}"
        );
        assert!(
            codes.iter().any(|&v| v > 0.0),
            "{folder}: fixture has no active feature"
        );

        let summary = sae.to_string();
        assert!(
            summary.contains(&format.to_string()) && summary.contains(sae.id()),
            "{summary}"
        );
    }
}

#[test]
fn fixtures_load_from_their_weights_file_and_config_file() {
    for (folder, format, _, _) in FIXTURES {
        let dir = fixture(folder);
        let by_dir = load_any(&dir).unwrap();
        let weights = by_dir.source().unwrap().path.clone();
        assert_eq!(weights.parent().unwrap(), dir);
        assert_eq!(Format::detect(&weights).unwrap(), format);
        assert_eq!(load_any(&weights).unwrap().id(), by_dir.id(), "{folder}");
        if dir.join("cfg.json").is_file() {
            assert_eq!(Format::detect(dir.join("cfg.json")).unwrap(), format);
        }
    }
}

fn reload(save: impl FnOnce(&std::path::Path), format: Format) -> (tempfile::TempDir, Sae) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sae");
    save(&dir);
    let sae = load_any(&dir).unwrap();
    assert_eq!(sae.source().unwrap().format, format);
    (tmp, sae)
}

#[test]
fn every_fixture_round_trips_through_gemma_scope_2_f32() {
    let x = input();
    for (folder, ..) in FIXTURES {
        let sae = load_any(fixture(folder)).unwrap();
        let (_tmp, back) = reload(
            |d| gemmascope2::save(&sae, d, Dtype::F32).unwrap(),
            Format::GemmaScope2,
        );
        let (a, b) = (sae.config(), back.config());
        assert_eq!(
            (a.d_in, a.d_sae, a.activation),
            (b.d_in, b.d_sae, b.activation)
        );
        assert_eq!(
            (a.hook_layer, &a.model),
            (b.hook_layer, &b.model),
            "{folder}"
        );
        // The format never subtracts b_dec, so an SAE that does is folded: equal up to rounding.
        assert!(!b.apply_b_dec_to_input);
        let (ca, cb) = (
            sae.encode_dense(&x).unwrap(),
            back.encode_dense(&x).unwrap(),
        );
        assert_close(folder, &ca, &cb, TOL);
        if !a.apply_b_dec_to_input {
            assert_eq!(ca, cb, "{folder}: a lossless re-save encodes bit for bit");
            assert_eq!(sae.id(), back.id(), "{folder}: same content, same id");
        }
        let codes = expected(folder, "expected_codes.npy");
        assert_close(
            folder,
            &sae.decode_dense(&codes).unwrap(),
            &back.decode_dense(&codes).unwrap(),
            0.0,
        );
    }
}

#[test]
fn bf16_gemma_scope_2_stores_the_rounded_weights() {
    let x = input();
    for (folder, ..) in FIXTURES {
        let tmp = tempfile::tempdir().unwrap();
        let sae = load_any(fixture(folder)).unwrap();
        gemmascope2::save(&sae, tmp.path().join("f32"), Dtype::F32).unwrap();
        gemmascope2::save(&sae, tmp.path().join("bf16"), Dtype::BF16).unwrap();
        let f32_sae = load_any(tmp.path().join("f32")).unwrap();
        let bf16_sae = load_any(tmp.path().join("bf16")).unwrap();
        assert_eq!(bf16_sae.source().unwrap().dtype, Dtype::BF16);
        assert_eq!(bf16_sae.w_enc(), bf16_round(f32_sae.w_enc()), "{folder}");
        assert_eq!(bf16_sae.w_dec(), bf16_round(f32_sae.w_dec()), "{folder}");
        assert_eq!(bf16_sae.b_enc(), bf16_round(f32_sae.b_enc()), "{folder}");
        assert_eq!(bf16_sae.b_dec(), bf16_round(f32_sae.b_dec()), "{folder}");

        // bf16 keeps 8 significant bits: reconstructions of the same codes agree to ~1%.
        let codes = expected(folder, "expected_codes.npy");
        let recon = expected(folder, "expected_recon.npy");
        let scale = recon.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        assert_close(
            folder,
            &bf16_sae.decode_dense(&codes).unwrap(),
            &recon,
            1e-2 * scale,
        );
        if sae.config().activation == Activation::Relu {
            // ReLU is continuous, so its codes move by the same small amount.
            let dense = sae.encode_dense(&x).unwrap();
            let scale = dense.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            assert_close(
                folder,
                &bf16_sae.encode_dense(&x).unwrap(),
                &dense,
                1e-2 * scale,
            );
        }
    }
}

#[test]
fn fixtures_round_trip_through_the_other_writers() {
    let x = input();
    for (folder, ..) in FIXTURES {
        let sae = load_any(fixture(folder)).unwrap();
        let codes = sae.encode_dense(&x).unwrap();
        let is_topk = matches!(sae.config().activation, Activation::TopK { .. });

        let (_tmp, back) = reload(|d| saelens::save(&sae, d).unwrap(), Format::SaeLens);
        assert_eq!(back.config().activation, sae.config().activation);
        assert_eq!(
            back.encode_dense(&x).unwrap(),
            codes,
            "{folder} via SAELens"
        );
        assert_eq!(
            back.id(),
            sae.id(),
            "{folder}: SAELens keeps the convention and weights"
        );

        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("layers.3");
        match sparsify::save(&sae, &dir) {
            Ok(()) => {
                assert!(is_topk);
                let back = sparsify::load(&dir).unwrap();
                assert_eq!(back.config().activation, sae.config().activation);
                assert_eq!(back.config().hook_layer, Some(3));
                assert_close(folder, &back.encode_dense(&x).unwrap(), &codes, TOL);
            }
            Err(e) => {
                assert!(!is_topk, "{folder}: {e}");
                assert!(e.to_string().contains("only TopK"), "{e}");
            }
        }

        let dir = tmp.path().join("npz");
        match gemmascope::save(&sae, &dir) {
            Ok(()) => {
                assert!(!is_topk);
                let back = gemmascope::load(&dir).unwrap();
                assert_eq!(back.config().activation, Activation::JumpRelu);
                assert_close(folder, &back.encode_dense(&x).unwrap(), &codes, TOL);
            }
            Err(e) => {
                assert!(is_topk, "{folder}: {e}");
                let msg = e.to_string();
                assert!(msg.contains("params.npz") && msg.contains("TopK"), "{msg}");
            }
        }
    }
}
