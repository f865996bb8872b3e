//! f32 matrix products. Weights are packed once into 16-column panels for an AVX2 6×16
//! micro-kernel (12 accumulators, BLIS-style blocking for L1/L2) at ~85 % of the FMA peak,
//! about four times `gemm`'s general kernel on the model's shapes (measured on 2 Zen 3
//! cores), or into 32-column panels for its AVX-512 twin (6×32), which sums every output in
//! the same order and so gives the same bits. Where AVX2+FMA are missing, the `gemm` crate
//! (candle's CPU matmul) runs instead.
//! Every output is one dot product summed in a fixed order, so a row's result does not
//! depend on the other rows or on threading.

use rayon::prelude::*;

/// Rows of A per micro-kernel call.
pub(crate) const MR: usize = 6;
/// Columns of C per micro-kernel call (two AVX registers).
pub const NR: usize = 16;
/// Largest k-block: a `KC × NR` panel of B (20 KiB) stays in the 32 KiB L1.
const KC: usize = 320;
/// Row panels of A per block: `MC × MR × KC` floats (123 KiB) stay in L2.
const MC: usize = 16;

/// `dst[m, n] = a[m, k] · b` (or `dst += ..` with `accumulate`), where `b` is `[k, n]`
/// row-major or, with `b_transposed`, `[n, k]` row-major used as its transpose.
/// Multithreaded on rayon when `parallel`.
///
/// Runs on `gemm` (candle's CPU kernel): the general product for shapes the packed kernels
/// are not built for. Each output element is one dot product accumulated in a fixed order,
/// so the result does not depend on how gemm splits the work.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    b: &[f32],
    b_transposed: bool,
    dst: &mut [f32],
    accumulate: bool,
    parallel: bool,
) {
    assert_eq!(a.len(), m * k, "lhs is not [m, k]");
    assert_eq!(b.len(), k * n, "rhs does not hold k * n values");
    assert_eq!(dst.len(), m * n, "dst is not [m, n]");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst.fill(0.0);
        }
        return;
    }
    // gemm addresses rhs element (kk, j) at rs * kk + cs * j.
    let (rhs_cs, rhs_rs) = if b_transposed {
        (k as isize, 1)
    } else {
        (1, n as isize)
    };
    let parallelism = if parallel {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above bound every address gemm forms: lhs (i, kk) at i*k + kk over
    // m*k values, rhs as computed above over k*n values, dst (i, j) at i*n + j over m*n values.
    // `dst` is a unique borrow and cannot alias the shared `a` and `b`. With read_dst = false
    // gemm never reads dst, so its previous contents are irrelevant.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            rhs_cs,
            rhs_rs,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// The transpose of a row-major `[rows, cols]` matrix.
pub fn transpose(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    assert_eq!(a.len(), rows * cols);
    let mut t = vec![0.0; a.len()];
    for (r, row) in a.chunks_exact(cols.max(1)).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            t[c * rows + r] = v;
        }
    }
    t
}

/// A weight matrix `[n, k]` for products `x Wᵀ`, stored for an f32 kernel: packed panels
/// for the AVX2 or AVX-512 micro-kernel, or plain rows for `gemm`.
pub enum F32Matrix {
    /// Packed for a micro-kernel (x86-64 with AVX2 and FMA, `n % 16 == 0`).
    Packed(PackedMatrix),
    /// Row-major `[n, k]`, multiplied by `gemm`.
    Rows { data: Vec<f32>, n: usize, k: usize },
}

impl F32Matrix {
    /// The row-major matrices `parts` (each `[n_i, k]`) stacked along n, for the AVX-512
    /// kernel if `avx512` and the CPU and shape allow, else for the AVX2 one if they allow,
    /// else for `gemm`.
    pub fn new(parts: &[&[f32]], k: usize, avx512: bool) -> Self {
        let n: usize = parts.iter().map(|p| p.len() / k).sum();
        if packed_available(n) {
            let wide = avx512 && n % (2 * NR) == 0 && crate::Cpu::detect().avx512f;
            Self::Packed(PackedMatrix::pack(parts, k, if wide { 2 * NR } else { NR }))
        } else {
            Self::Rows {
                data: parts.concat(),
                n,
                k,
            }
        }
    }

    /// Rows `a[i * stride..][..k]`, `i < m`, times this matrix transposed: `[m, n]`.
    pub fn matmul(&self, a: &[f32], m: usize, stride: usize) -> Vec<f32> {
        match self {
            Self::Packed(w) => w.matmul(a, m, stride),
            Self::Rows { data, n, k } => {
                let x: Vec<f32> = (0..m)
                    .flat_map(|i| &a[i * stride..][..*k])
                    .copied()
                    .collect();
                let mut out = vec![0f32; m * n];
                matmul(m, *k, *n, &x, data, true, &mut out, false, true);
                out
            }
        }
    }
}

/// Whether the packed AVX2 GEMM can compute a product with `n` output columns.
pub fn packed_available(n: usize) -> bool {
    crate::has_avx2() && n % NR == 0
}

/// Weights `[n, k]` repacked as `n / nr` panels of `[k][nr]`, 64-byte aligned; `nr` is
/// 16 (AVX2 kernel) or 32 (AVX-512 kernel).
pub struct PackedMatrix {
    n: usize,
    k: usize,
    nr: usize,
    buf: Vec<f32>,
    start: usize,
}

/// A raw pointer that rayon tasks may share; they write disjoint parts.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr<T>(pub(crate) *mut T);
// SAFETY: only used for writes to disjoint tiles of one output buffer.
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}
impl<T> SendPtr<T> {
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}

/// Panels `0..n_panels` in contiguous ranges, one per rayon task (four tasks per thread, so
/// that uneven panels balance), as a parallel iterator.
pub(crate) fn panel_ranges(
    n_panels: usize,
) -> impl ParallelIterator<Item = std::ops::Range<usize>> {
    let tasks = (rayon::current_num_threads() * 4).clamp(1, n_panels.max(1));
    let per_task = n_panels.div_ceil(tasks).max(1);
    (0..n_panels.div_ceil(per_task))
        .into_par_iter()
        .map(move |task| task * per_task..((task + 1) * per_task).min(n_panels))
}

/// The product `[m, n]` of a kernel that computes whole tiles over all of k: for every
/// panel `p` of `np` columns and every tile `t` of `mt` rows, `tile(p, t, out)` fills
/// `out` (`mt × np`, row-major) with rows `t * mt..` and columns `p * np..`, and the tile's
/// rows below `m` are written out. Panels are split among rayon tasks ([`panel_ranges`]),
/// each writing its own columns only. Needs `n % np == 0`.
pub(crate) fn tiled_product(
    m: usize,
    n: usize,
    mt: usize,
    np: usize,
    tile: impl Fn(usize, usize, &mut [f32]) + Sync,
) -> Vec<f32> {
    debug_assert_eq!(n % np, 0);
    let mut c = vec![0f32; m * n];
    let c_ptr = SendPtr(c.as_mut_ptr());
    panel_ranges(n / np).for_each(|panels| {
        let mut out = vec![0f32; mt * np];
        for p in panels {
            for t in 0..m.div_ceil(mt) {
                tile(p, t, &mut out);
                for (r, row) in out.chunks_exact(np).take(m - t * mt).enumerate() {
                    // SAFETY: row t*mt + r < m and columns p*np..(p+1)*np <= n lie inside
                    // `c`, and panel p belongs to this task alone.
                    unsafe {
                        let dst = c_ptr.get().add((t * mt + r) * n + p * np);
                        std::ptr::copy_nonoverlapping(row.as_ptr(), dst, np);
                    }
                }
            }
        }
    });
    c
}

impl PackedMatrix {
    /// Packs the row-major matrices `parts` (each `[n_i, k]`), stacked along n, into
    /// panels of `nr` columns. Panics unless [`packed_available`] holds for the total n,
    /// `nr` divides it, and the CPU has AVX-512F where `nr` is 32.
    pub fn pack(parts: &[&[f32]], k: usize, nr: usize) -> Self {
        let rows: Vec<&[f32]> = parts.iter().flat_map(|p| p.chunks_exact(k)).collect();
        let n = rows.len();
        assert!(
            packed_available(n),
            "packed GEMM needs AVX2+FMA and a multiple of {NR} outputs"
        );
        assert!(nr == NR || (nr == 2 * NR && crate::Cpu::detect().avx512f));
        assert_eq!(n % nr, 0, "{n} outputs are not whole panels of {nr}");
        let mut buf = vec![0f32; n * k + NR];
        let start = (NR - (buf.as_ptr() as usize / 4) % NR) % NR;
        buf[start..start + n * k]
            .par_chunks_mut(nr * k)
            .enumerate()
            .for_each(|(panel, dst)| {
                for (c, row) in rows[panel * nr..(panel + 1) * nr].iter().enumerate() {
                    for (kk, &w) in row.iter().enumerate() {
                        dst[kk * nr + c] = w;
                    }
                }
            });
        Self {
            n,
            k,
            nr,
            buf,
            start,
        }
    }

    /// Whether this matrix runs on the AVX-512 kernel.
    pub fn is_avx512(&self) -> bool {
        self.nr == 2 * NR
    }

    fn data(&self) -> &[f32] {
        &self.buf[self.start..self.start + self.n * self.k]
    }

    /// Rows `a[i * stride..][..k]`, `i < m`, times the transpose of this `[n, k]`
    /// matrix: `[m, n]`. Each output is summed in the same order whatever `m` is.
    pub fn matmul(&self, a: &[f32], m: usize, stride: usize) -> Vec<f32> {
        // The packed copy of `a` reuses a per-thread buffer; taken out while in use
        // so that a nested call (rayon work-stealing) gets its own.
        let mut a_packed = A_PACKED.take();
        pack_a(a, m, stride, self.k, &mut a_packed);
        let c = self.matmul_packed(&a_packed, m);
        A_PACKED.set(a_packed);
        c
    }

    fn matmul_packed(&self, a_packed: &[f32], m: usize) -> Vec<f32> {
        let (n, k, nr) = (self.n, self.k, self.nr);
        let m_panels = m.div_ceil(MR);
        let mut c: Vec<f32> = Vec::with_capacity(m_panels * MR * n);
        let c_ptr = SendPtr(c.as_mut_ptr());
        let n_panels = n / nr;
        let kc = k.div_ceil(k.div_ceil(KC));
        let b_all = self.data();
        panel_ranges(n_panels).for_each(|panels| {
            let mut tile = [0f32; MR * 2 * NR];
            for k0 in (0..k).step_by(kc) {
                let kcur = kc.min(k - k0);
                for m0 in (0..m_panels).step_by(MC) {
                    for np in panels.clone() {
                        let b = &b_all[np * k * nr + k0 * nr..][..kcur * nr];
                        for mp in m0..(m0 + MC).min(m_panels) {
                            let a = &a_packed[mp * k * MR + k0 * MR..][..kcur * MR];
                            // SAFETY: AVX2/FMA (and AVX-512F for nr = 32) were checked
                            // when packing; `a` holds kcur × MR values, `b` kcur × nr.
                            #[cfg(target_arch = "x86_64")]
                            unsafe {
                                let (a, b) = (a.as_ptr(), b.as_ptr());
                                if nr == NR {
                                    let tile = (&mut tile[..MR * NR]).try_into().unwrap();
                                    crate::avx2::kernel_6x16(kcur, a, 1, MR, b, tile);
                                } else {
                                    crate::avx512::kernel_6x32(kcur, a, 1, MR, b, &mut tile);
                                }
                            };
                            #[cfg(not(target_arch = "x86_64"))]
                            unreachable!("packed only where AVX2 runs");
                            // SAFETY: the tile (rows mp*MR.., cols np*NR..) lies inside
                            // `c`'s capacity and belongs to this task alone; it is
                            // written (k0 == 0) before it is read.
                            unsafe {
                                let dst = c_ptr.get().add(mp * MR * n + np * nr);
                                for (r, t) in tile[..MR * nr].chunks_exact(nr).enumerate() {
                                    let dst = dst.add(r * n);
                                    for (l, &v) in t.iter().enumerate() {
                                        let d = dst.add(l);
                                        *d = if k0 > 0 { v + *d } else { v };
                                    }
                                }
                            }
                        }
                    }
                }
            }
        });
        // SAFETY: every element of the m_panels × MR × n tiles was written above.
        unsafe { c.set_len(m_panels * MR * n) };
        c.truncate(m * n);
        c
    }
}

thread_local! {
    static A_PACKED: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Rows `a[i * stride..][..k]`, `i < m`, into `ceil(m / MR)` panels of `[k][MR]`,
/// zero-padded.
fn pack_a(a: &[f32], m: usize, stride: usize, k: usize, out: &mut Vec<f32>) {
    out.clear();
    out.resize(m.div_ceil(MR) * MR * k, 0.0);
    out.par_chunks_mut(MR * k)
        .enumerate()
        .for_each(|(panel, dst)| {
            for r in 0..MR.min(m - panel * MR) {
                let row = &a[(panel * MR + r) * stride..][..k];
                for (kk, &x) in row.iter().enumerate() {
                    dst[kk * MR + r] = x;
                }
            }
        });
}

/// The SAE encoder product `pre[rows, n] = x[rows, d] · Wᵀ + bias` for `W [n, d]` (one row
/// per latent), with each row's maximum per panel of 16 latents for top-k selection.
///
/// On x86-64 with AVX2 and FMA, `W` is repacked into panels of 16 latents (`[d][16]` each)
/// for the 6×16 micro-kernel, reading `x` in place; elsewhere `gemm` runs. Either way each
/// output is one dot product in a fixed order: results do not depend on threading.
#[derive(Default)]
pub struct Encoder {
    n: usize,
    d: usize,
    /// `[ceil(n / 16)][d][16]`; latents past `n` in the last panel are zero.
    panels: Vec<f32>,
    /// The bias padded to whole panels.
    bias: Vec<f32>,
}

impl Encoder {
    /// Takes the current `w [n, d]` and bias `[n]`; must be called whenever they change.
    pub fn pack(&mut self, w: &[f32], bias: &[f32], n: usize, d: usize) {
        assert_eq!(w.len(), n * d);
        assert_eq!(bias.len(), n);
        self.n = n;
        self.d = d;
        self.bias.clear();
        self.bias.extend_from_slice(bias);
        self.bias.resize(self.panel_count() * NR, 0.0);
        if !crate::has_avx2() {
            return;
        }
        self.panels.resize(n.div_ceil(NR) * d * NR, 0.0);
        self.panels
            .par_chunks_mut(d * NR)
            .enumerate()
            .for_each(|(p, panel)| {
                for l in 0..NR {
                    let j = p * NR + l;
                    for c in 0..d {
                        panel[c * NR + l] = if j < n { w[j * d + c] } else { 0.0 };
                    }
                }
            });
    }

    /// Panels of 16 latents (the last may be partial).
    pub fn panel_count(&self) -> usize {
        self.n.div_ceil(NR)
    }

    /// `out[rows, n] = x[rows, d] · wᵀ + bias` on the calling thread (callers parallelise
    /// over row blocks), and `maxima[rows, panel_count]`, each row's largest value in each
    /// panel of 16 latents (padded lanes count as 0): top-k selection then skips whole panels
    /// below its floor without reading them. `w` and `bias` are those last given to
    /// [`pack`](Self::pack).
    pub fn matmul(&self, x: &[f32], w: &[f32], out: &mut [f32], maxima: &mut [f32]) {
        let (n, d, np) = (self.n, self.d, self.panel_count());
        let rows = x.len() / d.max(1);
        assert_eq!(x.len(), rows * d, "x is not [rows, d]");
        assert_eq!(out.len(), rows * n, "out is not [rows, n]");
        assert_eq!(maxima.len(), rows * np, "maxima is not [rows, panels]");
        #[cfg(target_arch = "x86_64")]
        if crate::has_avx2() && d > 0 {
            assert_eq!(self.panels.len(), np * d * NR, "pack() first");
            // The last partial tile reads a zero-padded copy so the kernel always sees 6 rows.
            let full = rows / MR * MR;
            let mut pad = vec![0.0f32; MR * d];
            pad[..(rows - full) * d].copy_from_slice(&x[full * d..]);
            let mut tile = [0.0f32; MR * NR];
            for (p, panel) in self.panels.chunks_exact(d * NR).enumerate() {
                let cols = NR.min(n - p * NR);
                let bias = &self.bias[p * NR..(p + 1) * NR];
                for r0 in (0..rows).step_by(MR) {
                    let src = if r0 < full { &x[r0 * d..] } else { &pad[..] };
                    // SAFETY: AVX2 and FMA were detected; `src` holds at least MR rows of d
                    // values (a full tile of x, or the padded copy), `panel` d*NR values.
                    unsafe {
                        crate::avx2::kernel_6x16(d, src.as_ptr(), d, 1, panel.as_ptr(), &mut tile)
                    };
                    for r in 0..MR.min(rows - r0) {
                        let t = &mut tile[r * NR..(r + 1) * NR];
                        t.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
                        let o = (r0 + r) * n + p * NR;
                        out[o..o + cols].copy_from_slice(&t[..cols]);
                        maxima[(r0 + r) * np + p] =
                            t.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
                    }
                }
            }
            return;
        }
        matmul(rows, d, n, x, w, true, out, false, false);
        for (row, mx) in out.chunks_mut(n).zip(maxima.chunks_mut(np)) {
            row.iter_mut().zip(&self.bias).for_each(|(v, b)| *v += b);
            for (m, panel) in mx.iter_mut().zip(row.chunks(NR)) {
                *m = panel.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_matmul_matches_naive() {
        if !packed_available(32) {
            return;
        }
        let (m, n, k) = (13, 48, 700);
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7919) % 113) as f32 - 56.0)
            .collect();
        let w: Vec<f32> = (0..n * k)
            .map(|i| ((i * 104_729) % 97) as f32 - 48.0)
            .collect();
        let (w1, w2) = w.split_at(16 * k);
        let c = PackedMatrix::pack(&[w1, w2], k, NR).matmul(&a, m, k);
        for i in 0..m {
            for j in 0..n {
                let expected: f64 = (0..k)
                    .map(|kk| f64::from(a[i * k + kk]) * f64::from(w[j * k + kk]))
                    .sum();
                assert!(
                    (f64::from(c[i * n + j]) - expected).abs() < 1e-3 * expected.abs().max(1.0)
                );
            }
        }
    }

    #[test]
    fn gemm_matmul_both_rhs_layouts_and_accumulation() {
        // [2,3]·[3,2]
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        let mut c = [9.0; 4];
        matmul(2, 3, 2, &a, &b, false, &mut c, false, true);
        assert_eq!(c, [4.0, 5.0, 10.0, 11.0]);
        let bt = [1.0, 0.0, 1.0, 0.0, 1.0, 1.0]; // b transposed: [2, 3]
        matmul(2, 3, 2, &a, &bt, true, &mut c, false, false);
        assert_eq!(c, [4.0, 5.0, 10.0, 11.0]);
        matmul(2, 3, 2, &a, &b, false, &mut c, true, true);
        assert_eq!(c, [8.0, 10.0, 20.0, 22.0]);
    }

    #[test]
    fn transpose_swaps_axes() {
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(transpose(&a, 2, 3), [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    }

    #[test]
    fn f32_matrix_paths_agree() {
        let (m, k) = (7, 40);
        let w: Vec<f32> = (0..32 * k).map(|i| ((i * 31) % 23) as f32 - 11.0).collect();
        let a: Vec<f32> = (0..m * (k + 3))
            .map(|i| ((i * 13) % 17) as f32 - 8.0)
            .collect();
        let rows = F32Matrix::Rows {
            data: w.clone(),
            n: 32,
            k,
        };
        // Small integers: every path is exact.
        let want = rows.matmul(&a, m, k + 3);
        assert_eq!(F32Matrix::new(&[&w], k, false).matmul(&a, m, k + 3), want);
        assert_eq!(F32Matrix::new(&[&w], k, true).matmul(&a, m, k + 3), want);
    }

    #[test]
    fn avx512_kernel_gives_the_avx2_bits() {
        if !packed_available(64) || !crate::Cpu::detect().avx512f {
            return;
        }
        // Non-integer data and k > KC (two k-blocks): sums round, and must round alike.
        let (m, n, k) = (11, 64, 700);
        let w: Vec<f32> = (0..n * k)
            .map(|i| ((i * 31) % 23) as f32 * 0.137 - 1.5)
            .collect();
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 13) % 17) as f32 * 0.291 - 2.3)
            .collect();
        let narrow = PackedMatrix::pack(&[&w], k, NR).matmul(&a, m, k);
        let wide = PackedMatrix::pack(&[&w], k, 2 * NR);
        assert!(wide.is_avx512());
        assert_eq!(wide.matmul(&a, m, k), narrow);
    }
}
