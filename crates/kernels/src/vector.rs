//! Vector kernels: dot product, axpy, RMS norm, GELU, softmax.

use rayon::prelude::*;

/// Rows per rayon task in row-wise kernels, to amortise task overhead.
pub(crate) const ROWS_PER_TASK: usize = 8;

/// Dot product over the shorter length. With AVX2 two 8-lane partial sums over blocks of
/// 16, then the tail in order: the order the golden residuals were made with.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    if crate::has_avx2() {
        // SAFETY: AVX2 and FMA are available (checked above).
        return unsafe { crate::avx2::dot(a, b) };
    }
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `y += a * x` over the shorter length.
pub fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::has_avx2() {
        // SAFETY: AVX2 and FMA are available (checked above).
        return unsafe { crate::avx2::axpy(a, x, y) };
    }
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// `out = x * (1 / rms(x)) * w`, in the reference's order of operations.
pub fn rms_norm_row(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let mean_sq = dot(x, x) / x.len() as f32;
    let inv = 1.0 / (mean_sq + eps).sqrt();
    out.iter_mut()
        .zip(x.iter().zip(w))
        .for_each(|(o, (x, w))| *o = x * inv * w);
}

/// [`rms_norm_row`] on every `w.len()`-wide row of `x`, in parallel.
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let d = w.len();
    let mut out = vec![0f32; x.len()];
    out.par_chunks_mut(d * ROWS_PER_TASK)
        .zip(x.par_chunks(d * ROWS_PER_TASK))
        .for_each(|(out, x)| {
            for (o, x) in out.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
                rms_norm_row(x, w, eps, o);
            }
        });
    out
}

/// `x ← residual + rms_norm(x) * w`, row by row.
pub fn add_rms_norm(residual: &[f32], x: &mut [f32], w: &[f32], eps: f32) {
    let d = w.len();
    x.par_chunks_mut(d * ROWS_PER_TASK)
        .zip(residual.par_chunks(d * ROWS_PER_TASK))
        .for_each(|(x, residual)| {
            for (x, r) in x.chunks_exact_mut(d).zip(residual.chunks_exact(d)) {
                let inv = 1.0 / (dot(x, x) / d as f32 + eps).sqrt();
                x.iter_mut()
                    .zip(r.iter().zip(w))
                    .for_each(|(x, (r, w))| *x = r + *x * inv * w);
            }
        });
}

/// `gelu_tanh(gate) * up` for rows laid out `[gate (ffn) | up (ffn)]`, written over
/// the gate half.
pub fn gelu_mul(gate_up: &mut [f32], ffn: usize) {
    gate_up
        .par_chunks_mut(2 * ffn * ROWS_PER_TASK)
        .for_each(|rows| {
            for row in rows.chunks_exact_mut(2 * ffn) {
                let (gate, up) = row.split_at_mut(ffn);
                #[cfg(target_arch = "x86_64")]
                if crate::has_avx2() {
                    // SAFETY: AVX2 and FMA are available (checked above).
                    unsafe { crate::avx2::gelu_mul(gate, up) };
                    continue;
                }
                gate.iter_mut()
                    .zip(up.iter())
                    .for_each(|(g, &u)| *g = gelu_tanh(*g) * u);
            }
        });
}

/// GELU, tanh approximation, written as `x · sigmoid(2u)` (equal to
/// `0.5 x (1 + tanh u)`), `u = √(2/π) (x + 0.044715 x³)`.
pub(crate) fn gelu_tanh(x: f32) -> f32 {
    let u = SQRT_2_OVER_PI * x * (1.0 + GELU_COEF * x * x);
    x / (1.0 + (-2.0 * u).exp())
}
pub(crate) const SQRT_2_OVER_PI: f32 = 0.797_884_6;
pub(crate) const GELU_COEF: f32 = 0.044_715;

/// `x ← softmax(x)`, in place.
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    #[cfg(target_arch = "x86_64")]
    let sum = if crate::has_avx2() {
        // SAFETY: AVX2 and FMA are available (checked above).
        unsafe { crate::avx2::exp_sub(x, max) }
    } else {
        exp_sub(x, max)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let sum = exp_sub(x, max);
    let inv = 1.0 / sum;
    x.iter_mut().for_each(|v| *v *= inv);
}

/// `x = exp(x - max)`, returning the sum.
fn exp_sub(x: &mut [f32], max: f32) -> f32 {
    x.iter_mut().fold(0.0, |sum, v| {
        *v = (*v - max).exp();
        sum + *v
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gelu_and_softmax_match_scalar_formulas() {
        let xs: Vec<f32> = (-400..400).map(|i| i as f32 * 0.05).collect();
        let mut gate_up = xs.clone();
        gate_up.extend(std::iter::repeat_n(1.0f32, xs.len()));
        gelu_mul(&mut gate_up, xs.len());
        for (&x, &g) in xs.iter().zip(&gate_up) {
            let x64 = f64::from(x);
            let reference = 0.5
                * x64
                * (1.0
                    + ((2.0 / std::f64::consts::PI).sqrt() * (x64 + 0.044715 * x64.powi(3)))
                        .tanh());
            assert!(
                (f64::from(g) - reference).abs() < 1e-6 * reference.abs().max(1.0),
                "{x}"
            );
        }
        let mut s: Vec<f32> = (0..37).map(|i| (i as f32 * 0.37).sin() * 20.0).collect();
        let reference: Vec<f64> = {
            let e: Vec<f64> = s.iter().map(|&v| f64::from(v).exp()).collect();
            let sum: f64 = e.iter().sum();
            e.iter().map(|v| v / sum).collect()
        };
        softmax(&mut s);
        for (got, want) in s.iter().zip(reference) {
            assert!((f64::from(*got) - want).abs() < 1e-6 * want.max(1e-3));
        }
    }

    #[test]
    fn dot_and_axpy_match_naive() {
        for len in [0, 5, 8, 37, 70] {
            let a: Vec<f32> = (0..len).map(|i| i as f32 * 0.1).collect();
            let b: Vec<f32> = (0..len).map(|i| 1.0 - i as f32 * 0.05).collect();
            let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - naive).abs() < 1e-4, "len {len}");
            let mut y = b.clone();
            axpy(2.0, &a, &mut y);
            for i in 0..len {
                assert!((y[i] - (b[i] + 2.0 * a[i])).abs() < 1e-5);
            }
        }
    }
}
