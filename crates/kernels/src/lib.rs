//! The CPU kernels of saener, in one place: matrix products (packed f32 GEMMs on AVX2 or
//! AVX-512, an int8 GEMM on AVX512-VNNI, a bf16 GEMM on AMX tiles, the SAE encoder product, `gemm` for general
//! shapes), dot/axpy, RMS norm, GELU, softmax, attention with RoPE, and GGML's Q8_0 format.
//! [`Cpu`] detects the instruction sets at run time and [`Precision`] picks the arithmetic
//! of the model's matrix products, so one binary runs everywhere.
//!
//! Kernels work on plain row-major `f32` slices, not tensors: the model's blocks hand
//! slices from one kernel to the next, and only the language model's public API wraps the
//! result in a candle tensor. Each kernel has a portable version and, on x86-64 with AVX2
//! and FMA (checked at run time), an explicitly vectorised one: explicit, because the dev
//! profile builds workspace crates at opt-level 1, where LLVM does not auto-vectorise.
//! Every kernel computes a row from that row's inputs alone in a fixed order, so a token's
//! result does not depend on what else is in the batch or on the thread count.

// `is_multiple_of` needs Rust 1.87; the workspace's rust-version is 1.85.
#![allow(clippy::manual_is_multiple_of)]

pub mod attention;
#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
pub mod bf16;
pub mod gemm;
pub mod int8;
pub mod precision;
pub mod q8_0;
pub mod vector;

pub use attention::{attention, norm_rope, AttentionParams};
pub use bf16::Bf16Matrix;
pub use gemm::{matmul, transpose, Encoder, F32Matrix};
pub use int8::Int8Matrix;
pub use precision::{Cpu, KernelChoice, Matrix, Precision, PrecisionError};
pub use q8_0::{dequantize_q8_0, dot_q8_0, q8_0_row_bytes, Q8_0_BLOCK};
pub use vector::{add_rms_norm, axpy, dot, gelu_mul, rms_norm, rms_norm_row, softmax};

/// Whether the AVX2+FMA code paths may run (std caches the CPUID probe).
#[inline]
pub(crate) fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// What the quantized kernels' tests share.
#[cfg(test)]
pub(crate) mod test_data {
    /// Deterministic values in [-1, 1], cubed so that small magnitudes dominate, as in
    /// trained weights.
    pub fn data(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| (((i * 7919 + seed * 104_729) % 1000) as f32 / 500.0 - 1.0).powi(3))
            .collect()
    }

    /// Asserts that `got[m, n]` is within `tolerance · Σ |a·w|` of the exact product of rows
    /// `a[i * stride..][..k]` and `w [n, k]` transposed.
    pub fn assert_close_to_exact(
        got: &[f32],
        a: &[f32],
        stride: usize,
        w: &[f32],
        k: usize,
        tolerance: f32,
    ) {
        let n = w.len() / k;
        for (i, row) in got.chunks_exact(n).enumerate() {
            for (j, &value) in row.iter().enumerate() {
                let products = (0..k).map(|kk| a[i * stride + kk] * w[j * k + kk]);
                let exact: f32 = products.clone().sum();
                let norm: f32 = products.map(f32::abs).sum();
                assert!(
                    (value - exact).abs() <= tolerance * norm,
                    "({i}, {j}): {value} vs {exact}, norm {norm}"
                );
            }
        }
    }
}
