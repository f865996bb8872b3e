//! The int8 matrix product: weights quantized once at load, activations on the fly, both
//! symmetric per block of 32 along k (a scale per block, values in -127..=127), integer
//! dot products per block and f32 accumulation of `scale_a · scale_w · Σ qa · qw` — the
//! scheme llama.cpp runs its Q8_0 products with.
//!
//! Layouts, for `n` outputs in panels of 32 and `k` in blocks of 32:
//! - weights: per panel, per block, 8 quads of 4 k × 32 columns × 4 bytes (`vpdpbusd`
//!   multiplies 4 consecutive bytes of a lane), with `[panel][block][32]` scales and offset
//!   corrections;
//! - activations: row-major offset bytes `qa + 128` (`vpdpbusd` takes one operand unsigned),
//!   `[row][block]` scales. The correction `-128 · Σ qw` starts each block's integer sum, so
//!   the sum is `Σ qa · qw` exactly (at most 32 · 127² in magnitude: no overflow, and exact
//!   in f32).
//!
//! The AVX512-VNNI kernel and the portable reference compute the same integers and the same
//! f32 operations in the same order, so they give bit-identical results.

use crate::gemm::tiled_product;
use rayon::prelude::*;

/// Values per quantization block along k.
pub const BLOCK: usize = 32;
/// Output columns per panel.
const NP: usize = 32;
/// Rows per micro-kernel call.
const MR: usize = 4;

/// Whether an `[n, k]` matrix fits the int8 layout.
pub fn int8_shape_ok(n: usize, k: usize) -> bool {
    n % NP == 0 && k % BLOCK == 0 && k > 0
}

/// Symmetric int8 quantization of one block: the scale, and `round(x / scale)` in
/// -127..=127 (all zero, scale 0, for an all-zero block).
fn quantize_block(x: &[f32], out: &mut [i8]) -> f32 {
    let max = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    if max == 0.0 {
        out.fill(0);
        return 0.0;
    }
    let scale = max / 127.0;
    let inv = 127.0 / max;
    for (o, &v) in out.iter_mut().zip(x) {
        *o = (v * inv).round().clamp(-127.0, 127.0) as i8;
    }
    scale
}

/// Weights `[n, k]` quantized to int8 per block of 32 and packed for the kernels.
pub struct Int8Matrix {
    n: usize,
    k: usize,
    /// `[n / 32][k / 32][8][32][4]`.
    packed: Vec<i8>,
    /// `[n / 32][k / 32][32]`.
    scales: Vec<f32>,
    /// `[n / 32][k / 32][32]`: `-128 · Σ_{k in block} qw`.
    corr: Vec<i32>,
    vnni: bool,
}

impl Int8Matrix {
    /// Quantizes the row-major matrices `parts` (each `[n_i, k]`) stacked along n. `vnni`
    /// selects the AVX512-VNNI kernel (the caller checks the CPU), else the portable one.
    /// Panics unless [`int8_shape_ok`].
    pub fn new(parts: &[&[f32]], k: usize, vnni: bool) -> Self {
        let rows: Vec<&[f32]> = parts.iter().flat_map(|p| p.chunks_exact(k)).collect();
        let n = rows.len();
        assert!(
            int8_shape_ok(n, k),
            "int8 GEMM needs n % 32 == 0 and k % 32 == 0"
        );
        let blocks = k / BLOCK;
        let mut packed = vec![0i8; n * k];
        let mut scales = vec![0f32; n * blocks];
        let mut corr = vec![0i32; n * blocks];
        packed
            .par_chunks_mut(NP * k)
            .zip(scales.par_chunks_mut(NP * blocks))
            .zip(corr.par_chunks_mut(NP * blocks))
            .enumerate()
            .for_each(|(panel, ((dst, scales), corr))| {
                let mut q = [0i8; BLOCK];
                for (c, row) in rows[panel * NP..(panel + 1) * NP].iter().enumerate() {
                    for (blk, x) in row.chunks_exact(BLOCK).enumerate() {
                        scales[blk * NP + c] = quantize_block(x, &mut q);
                        corr[blk * NP + c] = -128 * q.iter().map(|&v| i32::from(v)).sum::<i32>();
                        for (i, &v) in q.iter().enumerate() {
                            dst[blk * BLOCK * NP + (i / 4) * NP * 4 + c * 4 + i % 4] = v;
                        }
                    }
                }
            });
        Self {
            n,
            k,
            packed,
            scales,
            corr,
            vnni,
        }
    }

    /// Rows `a[i * stride..][..k]`, `i < m`, times this matrix transposed: `[m, n]`.
    pub fn matmul(&self, a: &[f32], m: usize, stride: usize) -> Vec<f32> {
        let (n, k) = (self.n, self.k);
        let blocks = k / BLOCK;
        let m_tiles = m.div_ceil(MR);
        // Activations quantized per row; padding rows are zero (offset byte 128, scale 0).
        let mut qa = vec![128u8; m_tiles * MR * k];
        let mut sa = vec![0f32; m_tiles * MR * blocks];
        qa.par_chunks_mut(k)
            .zip(sa.par_chunks_mut(blocks))
            .take(m)
            .enumerate()
            .for_each(|(i, (q, s))| {
                let mut block = [0i8; BLOCK];
                for ((x, q), s) in a[i * stride..][..k]
                    .chunks_exact(BLOCK)
                    .zip(q.chunks_exact_mut(BLOCK))
                    .zip(s.iter_mut())
                {
                    *s = quantize_block(x, &mut block);
                    for (q, &v) in q.iter_mut().zip(&block) {
                        *q = (i16::from(v) + 128) as u8;
                    }
                }
            });
        tiled_product(m, n, MR, NP, |p, t, tile| {
            self.tile(
                &qa[t * MR * k..][..MR * k],
                &sa[t * MR * blocks..][..MR * blocks],
                &self.packed[p * NP * k..][..NP * k],
                &self.scales[p * NP * blocks..][..NP * blocks],
                &self.corr[p * NP * blocks..][..NP * blocks],
                tile.try_into().expect("a 4 × 32 tile"),
            )
        })
    }

    /// One 4 × 32 tile over all of k.
    fn tile(
        &self,
        a: &[u8],
        sa: &[f32],
        b: &[i8],
        sb: &[f32],
        corr: &[i32],
        tile: &mut [f32; 128],
    ) {
        let (k, blocks) = (self.k, self.k / BLOCK);
        #[cfg(target_arch = "x86_64")]
        if self.vnni {
            // SAFETY: the caller of `new` checked AVX512-VNNI; `a` holds MR rows of k bytes,
            // `sa` MR rows of `blocks` scales, `b` one panel (32 · k bytes), `sb` and `corr`
            // its 32 · blocks values.
            unsafe {
                crate::avx512::int8_4x32(
                    blocks,
                    a.as_ptr(),
                    k,
                    sa.as_ptr(),
                    blocks,
                    b.as_ptr() as *const u8,
                    sb.as_ptr(),
                    corr.as_ptr(),
                    tile,
                )
            };
            return;
        }
        tile.fill(0.0);
        for blk in 0..blocks {
            for r in 0..MR {
                let x = &a[r * k + blk * BLOCK..][..BLOCK];
                for c in 0..NP {
                    let mut sum = corr[blk * NP + c];
                    for (i, &xa) in x.iter().enumerate() {
                        let w = b[blk * BLOCK * NP + (i / 4) * NP * 4 + c * 4 + i % 4];
                        sum += i32::from(xa) * i32::from(w);
                    }
                    let scale = sb[blk * NP + c] * sa[r * blocks + blk];
                    tile[r * NP + c] = (sum as f32).mul_add(scale, tile[r * NP + c]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_data::{assert_close_to_exact, data};

    #[test]
    fn int8_product_is_close_to_f32_and_kernels_agree() {
        let (m, n, k) = (9, 64, 96);
        let w = data(n * k, 1);
        let a = data(m * (k + 5), 2);
        let portable = Int8Matrix::new(&[&w], k, false).matmul(&a, m, k + 5);
        assert_close_to_exact(&portable, &a, k + 5, &w, k, 0.05);
        if crate::Cpu::detect().has_int8_vnni() {
            let vnni = Int8Matrix::new(&[&w], k, true).matmul(&a, m, k + 5);
            assert_eq!(vnni, portable);
        }
    }
}
