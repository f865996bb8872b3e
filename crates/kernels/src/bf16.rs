//! The bf16 matrix product: weights rounded to bf16 once at load, activations on the fly,
//! products summed in f32. It runs on AMX tiles (`tdpbf16ps`, Intel Sapphire Rapids and
//! later), which multiply a 16 × 32 by a 32 × 16 bf16 block per instruction: many times the
//! multiply-adds of an AVX-512 f32 FMA.
//!
//! Layouts, for `n` outputs in panels of 32 (two 16-column tiles) and `k` in blocks of 32:
//! - weights: per panel, per block, two tiles of 16 rows × 64 bytes, row `r` of a tile
//!   holding the pairs `(k = 2r, 2r + 1)` of its 16 columns (AMX's "VNNI" layout for B);
//! - activations: row-major bf16, rows padded with zeros to a multiple of 32.
//!
//! Each output is the dot product of one row and one column summed in a fixed order, so a
//! row's result does not depend on the other rows (padding rows are zero) or on threading.
//! The portable reference ([`Bf16Matrix::reference`]) rounds the same inputs and sums in
//! f32 in the same pair order; AMX's internal rounding of each pair sum is not specified
//! bit for bit, so the two agree to f32 rounding, not to the bit.

use crate::gemm::tiled_product;
use half::bf16;
use rayon::prelude::*;

/// Values per block along k (one tile row: 32 bf16 = 64 bytes).
const KB: usize = 32;
/// Output columns per panel (two tiles).
const NP: usize = 32;
/// Rows per micro-kernel call (two tiles).
const MT: usize = 32;

/// Whether an `[n, k]` matrix fits the bf16 layout.
pub fn bf16_shape_ok(n: usize, k: usize) -> bool {
    n % NP == 0 && k % KB == 0 && k > 0
}

/// Weights `[n, k]` rounded to bf16 and packed for AMX tiles.
pub struct Bf16Matrix {
    n: usize,
    k: usize,
    /// `[n / 32][k / 32][2 tiles][16 pairs][16 columns][2]`.
    packed: Vec<u16>,
}

impl Bf16Matrix {
    /// Rounds the row-major matrices `parts` (each `[n_i, k]`) stacked along n to bf16 and
    /// packs them. Panics unless [`bf16_shape_ok`].
    pub fn new(parts: &[&[f32]], k: usize) -> Self {
        let rows: Vec<&[f32]> = parts.iter().flat_map(|p| p.chunks_exact(k)).collect();
        let n = rows.len();
        assert!(
            bf16_shape_ok(n, k),
            "bf16 GEMM needs n % 32 == 0 and k % 32 == 0"
        );
        let mut packed = vec![0u16; n * k];
        packed
            .par_chunks_mut(NP * k)
            .enumerate()
            .for_each(|(panel, dst)| {
                for (c, row) in rows[panel * NP..(panel + 1) * NP].iter().enumerate() {
                    let (tile, col) = (c / 16, c % 16);
                    for (kk, &v) in row.iter().enumerate() {
                        let (blk, within) = (kk / KB, kk % KB);
                        let at = blk * KB * NP + tile * 512 + (within / 2) * 32 + col * 2;
                        dst[at + within % 2] = bf16::from_f32(v).to_bits();
                    }
                }
            });
        Self { n, k, packed }
    }

    /// Rows `a[i * stride..][..k]`, `i < m`, times this matrix transposed: `[m, n]`. Needs
    /// AMX ([`crate::Cpu::amx_bf16`]); the caller checks.
    pub fn matmul(&self, a: &[f32], m: usize, stride: usize) -> Vec<f32> {
        let (n, k) = (self.n, self.k);
        let tiles = m.div_ceil(MT);
        let mut x = vec![0u16; tiles * MT * k];
        x.par_chunks_mut(k)
            .take(m)
            .enumerate()
            .for_each(|(i, row)| {
                for (dst, &v) in row.iter_mut().zip(&a[i * stride..][..k]) {
                    *dst = bf16::from_f32(v).to_bits();
                }
            });
        tiled_product(m, n, MT, NP, |p, t, tile| {
            // SAFETY: AMX was checked by the caller; `x` holds `tiles * 32` rows of k values
            // and each panel 32 · k.
            unsafe {
                amx::tile_32x32(
                    &x[t * MT * k..][..MT * k],
                    &self.packed[p * NP * k..][..NP * k],
                    k,
                    tile.try_into().expect("a 32 × 32 tile"),
                )
            }
        })
    }

    /// The same product without AMX: the inputs rounded to bf16 as [`Bf16Matrix::matmul`]
    /// rounds them, each pair's products summed, pairs accumulated in f32 in k order. For
    /// tests and for checking the tiles, not for speed.
    pub fn reference(&self, a: &[f32], m: usize, stride: usize) -> Vec<f32> {
        let (n, k) = (self.n, self.k);
        let weight = |j: usize, kk: usize| {
            let (panel, c) = (j / NP, j % NP);
            let (tile, col, blk, within) = (c / 16, c % 16, kk / KB, kk % KB);
            let at = panel * NP * k + blk * KB * NP + tile * 512 + (within / 2) * 32 + col * 2;
            bf16::from_bits(self.packed[at + within % 2]).to_f32()
        };
        let mut c = vec![0f32; m * n];
        for i in 0..m {
            let x: Vec<f32> = a[i * stride..][..k]
                .iter()
                .map(|&v| bf16::from_f32(v).to_f32())
                .collect();
            for j in 0..n {
                let mut sum = 0f32;
                for kk in (0..k).step_by(2) {
                    sum += x[kk] * weight(j, kk) + x[kk + 1] * weight(j, kk + 1);
                }
                c[i * n + j] = sum;
            }
        }
        c
    }
}

/// Whether this CPU has AMX-BF16 and the operating system lets this process use the tiles
/// (Linux asks each process to request the tile data state once).
pub(crate) fn amx_usable() -> bool {
    static USABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *USABLE.get_or_init(|| {
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        {
            // CPUID leaf 7: EDX bit 22 AMX-BF16, bit 24 AMX-TILE.
            let leaf7 = std::arch::x86_64::__cpuid_count(7, 0);
            let cpu = leaf7.edx & (1 << 22) != 0 && leaf7.edx & (1 << 24) != 0;
            cpu && amx::request_permission()
        }
        #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
        {
            false
        }
    })
}

/// The AMX instructions, written as inline assembly: Rust's AMX intrinsics are not stable,
/// and the tile registers are state no compiler-managed code touches, so each call
/// configures them itself.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod amx {
    use std::arch::asm;

    /// `ldtilecfg`'s 64-byte operand: palette 1, eight tiles of 16 rows × 64 bytes
    /// (tmm0–3 the 2 × 2 accumulators, tmm4–5 the activation tiles, tmm6–7 the weights).
    #[repr(C, align(64))]
    struct TileConfig {
        palette: u8,
        start_row: u8,
        reserved: [u8; 14],
        bytes_per_row: [u16; 16],
        rows: [u8; 16],
    }

    const CONFIG: TileConfig = TileConfig {
        palette: 1,
        start_row: 0,
        reserved: [0; 14],
        bytes_per_row: [64, 64, 64, 64, 64, 64, 64, 64, 0, 0, 0, 0, 0, 0, 0, 0],
        rows: [16, 16, 16, 16, 16, 16, 16, 16, 0, 0, 0, 0, 0, 0, 0, 0],
    };

    /// Asks Linux for the tile data state (`arch_prctl(ARCH_REQ_XCOMP_PERM,
    /// XFEATURE_XTILEDATA)`), which every process must do before its first tile
    /// instruction; false where the kernel refuses (too old, or AMX disabled).
    pub(super) fn request_permission() -> bool {
        const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
        const XFEATURE_XTILEDATA: libc::c_long = 18;
        // SAFETY: a plain system call with integer arguments.
        unsafe {
            libc::syscall(
                libc::SYS_arch_prctl,
                ARCH_REQ_XCOMP_PERM,
                XFEATURE_XTILEDATA,
            ) == 0
        }
    }

    /// `out[32 × 32] = x[32 rows × k] · panel`, where `panel` is one weight panel in the
    /// module's layout.
    ///
    /// # Safety
    /// AMX-BF16 must be usable ([`super::amx_usable`]); `x` must hold 32 rows of `k` bf16
    /// values, `panel` 32 · k values, and `k % 32 == 0`.
    pub(super) unsafe fn tile_32x32(x: &[u16], panel: &[u16], k: usize, out: &mut [f32; 1024]) {
        debug_assert!(x.len() >= 32 * k && panel.len() >= 32 * k && k % 32 == 0);
        let row_bytes = 2 * k;
        asm!(
            "ldtilecfg [{cfg}]",
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            cfg = in(reg) &CONFIG,
            options(nostack, readonly),
        );
        let (x, w) = (x.as_ptr() as *const u8, panel.as_ptr() as *const u8);
        for blk in 0..k / 32 {
            asm!(
                "tileloadd tmm4, [{x0} + {xs}]",
                "tileloadd tmm5, [{x1} + {xs}]",
                "tileloadd tmm6, [{w0} + {ws}]",
                "tileloadd tmm7, [{w1} + {ws}]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                x0 = in(reg) x.add(blk * 64),
                x1 = in(reg) x.add(16 * row_bytes + blk * 64),
                xs = in(reg) row_bytes,
                w0 = in(reg) w.add(blk * 2048),
                w1 = in(reg) w.add(blk * 2048 + 1024),
                ws = in(reg) 64usize,
                options(nostack, readonly),
            );
        }
        let o = out.as_mut_ptr() as *mut u8;
        asm!(
            "tilestored [{o0} + {os}], tmm0",
            "tilestored [{o1} + {os}], tmm1",
            "tilestored [{o2} + {os}], tmm2",
            "tilestored [{o3} + {os}], tmm3",
            "tilerelease",
            o0 = in(reg) o,
            o1 = in(reg) o.add(64),
            o2 = in(reg) o.add(16 * 128),
            o3 = in(reg) o.add(16 * 128 + 64),
            os = in(reg) 128usize,
            options(nostack),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_data::{assert_close_to_exact, data};

    #[test]
    fn bf16_product_is_close_to_f32_and_amx_matches_the_reference() {
        let (m, n, k) = (37, 64, 96);
        let w = data(n * k, 1);
        let a = data(m * (k + 5), 2);
        let matrix = Bf16Matrix::new(&[&w], k);
        let reference = matrix.reference(&a, m, k + 5);
        // Each input rounds by at most 2^-9 relative.
        assert_close_to_exact(&reference, &a, k + 5, &w, k, 0.01);
        if !amx_usable() {
            eprintln!("bf16: no AMX here; checked the reference only");
            return;
        }
        let tiles = matrix.matmul(&a, m, k + 5);
        for (i, (t, r)) in tiles.iter().zip(&reference).enumerate() {
            let norm: f32 = (0..k)
                .map(|kk| (a[(i / n) * (k + 5) + kk] * w[(i % n) * k + kk]).abs())
                .sum();
            assert!(
                (t - r).abs() <= 1e-5 * norm,
                "{i}: amx {t} vs reference {r}"
            );
        }
        // A row's result does not depend on the other rows.
        let alone = matrix.matmul(&a[5 * (k + 5)..], 1, k + 5);
        assert_eq!(alone, tiles[5 * n..6 * n]);
    }
}
