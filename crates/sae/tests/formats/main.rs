//! End-to-end tests of the SAE formats: the libraries' own fixtures (`golden`), small files
//! written here in each documented layout (`layouts`), and the error messages (`errors`).

mod errors;
mod golden;
mod layouts;

use std::path::{Path, PathBuf};

use saener_sae::SparseCode;
use safetensors::tensor::TensorView;

/// A fixture written by the SAE libraries themselves (`fixtures/golden/sae-formats/`).
pub fn fixture(name: &str) -> PathBuf {
    saener_test_support::fixture("golden/sae-formats").join(name)
}

/// Deterministic values in [-1, 1).
pub fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

pub fn assert_close(what: &str, a: &[f32], b: &[f32], tol: f32) {
    let err = max_abs_diff(a, b);
    assert!(err <= tol, "{what}: max abs error {err} > {tol}");
}

pub fn to_dense(codes: &[SparseCode], d_sae: usize) -> Vec<f32> {
    let mut out = vec![0.0; codes.len() * d_sae];
    for (row, code) in out.chunks_exact_mut(d_sae).zip(codes) {
        assert!(
            code.ids.windows(2).all(|w| w[0] < w[1]),
            "ids not ascending"
        );
        assert!(
            code.values.iter().all(|&v| v > 0.0),
            "a stored value is not positive"
        );
        for (&j, &v) in code.ids.iter().zip(&code.values) {
            row[j as usize] = v;
        }
    }
    out
}

/// `(x − sub)·W_enc + b_enc`, naively in f64: the formula every format starts from.
pub fn reference_pre(x: &[f32], w_enc: &[f32], b_enc: &[f32], sub: Option<&[f32]>) -> Vec<f32> {
    let d_sae = b_enc.len();
    let d_in = w_enc.len() / d_sae;
    let mut out = Vec::new();
    for row in x.chunks_exact(d_in) {
        for j in 0..d_sae {
            let mut acc = b_enc[j] as f64;
            for i in 0..d_in {
                let xi = row[i] - sub.map_or(0.0, |s| s[i]);
                acc += xi as f64 * w_enc[i * d_sae + j] as f64;
            }
            out.push(acc as f32);
        }
    }
    out
}

/// Per row: keep the `k` largest of `pre` (by a full sort), relu'd; zeros elsewhere.
pub fn reference_topk(pre: &[f32], d_sae: usize, k: usize) -> Vec<f32> {
    let mut out = vec![0.0; pre.len()];
    for (src, dst) in pre.chunks_exact(d_sae).zip(out.chunks_exact_mut(d_sae)) {
        let mut order: Vec<usize> = (0..d_sae).collect();
        order.sort_by(|&a, &b| src[b].total_cmp(&src[a]));
        for &j in &order[..k] {
            dst[j] = src[j].max(0.0);
        }
    }
    out
}

/// `relu(pre)·(pre > threshold)`.
pub fn reference_jumprelu(pre: &[f32], threshold: &[f32]) -> Vec<f32> {
    let d_sae = threshold.len();
    pre.iter()
        .enumerate()
        .map(|(i, &p)| {
            if p > threshold[i % d_sae] {
                p.max(0.0)
            } else {
                0.0
            }
        })
        .collect()
}

/// `codes·W_dec + b_dec`, naively in f64.
pub fn reference_decode(codes: &[f32], w_dec: &[f32], b_dec: &[f32]) -> Vec<f32> {
    let d_in = b_dec.len();
    let d_sae = w_dec.len() / d_in;
    let mut out = Vec::new();
    for row in codes.chunks_exact(d_sae) {
        for i in 0..d_in {
            let mut acc = b_dec[i] as f64;
            for j in 0..d_sae {
                acc += row[j] as f64 * w_dec[j * d_in + i] as f64;
            }
            out.push(acc as f32);
        }
    }
    out
}

/// Writes tensors to a safetensors file as f32, or bf16 when `bf16`.
pub fn write_safetensors(path: &Path, tensors: &[(&str, &[usize], &[f32])], bf16: bool) {
    let buffers: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, data)| {
            data.iter()
                .flat_map(|&v| {
                    if bf16 {
                        half::bf16::from_f32(v).to_le_bytes().to_vec()
                    } else {
                        v.to_le_bytes().to_vec()
                    }
                })
                .collect()
        })
        .collect();
    let dtype = if bf16 {
        safetensors::Dtype::BF16
    } else {
        safetensors::Dtype::F32
    };
    let views: Vec<(&str, TensorView<'_>)> = tensors
        .iter()
        .zip(&buffers)
        .map(|((name, shape, _), bytes)| {
            (
                *name,
                TensorView::new(dtype, shape.to_vec(), bytes).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

pub fn write_json(path: &Path, value: serde_json::Value) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, value.to_string()).unwrap();
}

/// The value rounded to bf16 and back, as a bf16 file stores it.
pub fn bf16_round(v: &[f32]) -> Vec<f32> {
    v.iter()
        .map(|&x| half::bf16::from_f32(x).to_f32())
        .collect()
}
