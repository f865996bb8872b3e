//! The dense kernels (the encoder matmul) and top-k selection, on flat row-major `f32`
//! buffers.

use rayon::prelude::*;

/// `dst[m, n] = a[m, k] · b` where `b` is `[k, n]` row-major, or, with `b_rows_are_cols`,
/// `[n, k]` row-major used as its transpose. Multithreaded on rayon when `parallel`.
///
/// Runs on `gemm` (candle's CPU kernel). Each output element is one dot product accumulated
/// in a fixed order, so the result does not depend on how gemm splits the work.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    b: &[f32],
    b_rows_are_cols: bool,
    dst: &mut [f32],
    parallel: bool,
) {
    assert_eq!(a.len(), m * k, "lhs is not [m, k]");
    assert_eq!(b.len(), k * n, "rhs does not hold k * n values");
    assert_eq!(dst.len(), m * n, "dst is not [m, n]");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        dst.fill(0.0);
        return;
    }
    // gemm addresses rhs element (kk, j) at rs * kk + cs * j.
    let (rhs_cs, rhs_rs) = if b_rows_are_cols {
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
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            rhs_cs,
            rhs_rs,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Rows and latents of one micro-kernel tile.
const MR: usize = 6;
const NR: usize = 16;

/// The encoder matmul `pre[rows, n] = x[rows, d] · Wᵀ` for `W [n, d]` (one row per latent).
///
/// On x86-64 with AVX2 and FMA, `W` is repacked into panels of 16 latents (`[d][16]` each) and
/// a 6×16 register-tile kernel computes the product at ~85-90 % of the FMA peak, about twice
/// what gemm reaches on this shape. Elsewhere it falls back to gemm. Either way each output
/// is one dot product in a fixed order: results do not depend on threading.
#[derive(Default)]
pub(crate) struct Encoder {
    n: usize,
    d: usize,
    /// `[ceil(n / 16)][d][16]`; latents past `n` in the last panel are zero.
    panels: Vec<f32>,
    /// The bias padded to whole panels.
    bias: Vec<f32>,
}

impl Encoder {
    /// Takes the current `w [n, d]` and bias `[n]`; must be called whenever they change.
    pub(crate) fn pack(&mut self, w: &[f32], bias: &[f32], n: usize, d: usize) {
        assert_eq!(w.len(), n * d);
        assert_eq!(bias.len(), n);
        self.n = n;
        self.d = d;
        self.bias.clear();
        self.bias.extend_from_slice(bias);
        self.bias.resize(self.panel_count() * NR, 0.0);
        if !simd() {
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
    pub(crate) fn panel_count(&self) -> usize {
        self.n.div_ceil(NR)
    }

    /// `out[rows, n] = x[rows, d] · wᵀ + bias` on the calling thread (callers parallelise
    /// over row blocks), and `maxima[rows, panel_count]`, each row's largest value in each
    /// panel of 16 latents: top-k selection then skips whole panels below its floor without
    /// reading them. `w` and `bias` are those last given to [`pack`](Self::pack).
    pub(crate) fn matmul(&self, x: &[f32], w: &[f32], out: &mut [f32], maxima: &mut [f32]) {
        let (n, d, np) = (self.n, self.d, self.panel_count());
        let rows = x.len() / d.max(1);
        assert_eq!(x.len(), rows * d, "x is not [rows, d]");
        assert_eq!(out.len(), rows * n, "out is not [rows, n]");
        assert_eq!(maxima.len(), rows * np, "maxima is not [rows, panels]");
        #[cfg(target_arch = "x86_64")]
        if simd() && d > 0 {
            assert_eq!(self.panels.len(), np * d * NR, "pack() first");
            // The last partial tile reads a zero-padded copy so the kernel always sees 6 rows.
            let full = rows / MR * MR;
            let mut pad = vec![0.0f32; MR * d];
            pad[..(rows - full) * d].copy_from_slice(&x[full * d..]);
            let mut tile = [0.0f32; MR * NR];
            let mut tile_max = [0.0f32; MR];
            for (p, panel) in self.panels.chunks_exact(d * NR).enumerate() {
                let cols = NR.min(n - p * NR);
                let bias = &self.bias[p * NR..(p + 1) * NR];
                for r0 in (0..rows).step_by(MR) {
                    let src = if r0 < full { &x[r0 * d..] } else { &pad[..] };
                    // SAFETY: AVX2 and FMA were detected; `src` holds at least MR rows of d
                    // values (a full tile of x, or the padded copy), `panel` d*NR values and
                    // `bias` NR values.
                    unsafe {
                        avx2::tile(
                            src.as_ptr(),
                            d,
                            panel.as_ptr(),
                            d,
                            bias.as_ptr(),
                            &mut tile,
                            &mut tile_max,
                        )
                    };
                    for r in 0..MR.min(rows - r0) {
                        let o = (r0 + r) * n + p * NR;
                        out[o..o + cols].copy_from_slice(&tile[r * NR..r * NR + cols]);
                        maxima[(r0 + r) * np + p] = tile_max[r];
                    }
                }
            }
            return;
        }
        matmul(rows, d, n, x, w, true, out, false);
        for (row, mx) in out.chunks_mut(n).zip(maxima.chunks_mut(np)) {
            row.iter_mut().zip(&self.bias).for_each(|(v, b)| *v += b);
            for (m, panel) in mx.iter_mut().zip(row.chunks(NR)) {
                *m = panel.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{MR, NR};
    use std::arch::x86_64::*;

    /// `tile[r][l] = Σ_{c < kc} x[r * ldx + c] · w[c * NR + l] + bias[l]` for 6 rows and 16
    /// latents, and `tile_max[r] = max_l tile[r][l]`. Twelve named accumulators stay in
    /// registers even at opt-level 1; each sums over `c` in order, so results are
    /// reproducible.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; `x` must be readable for `MR` rows of `kc` values
    /// at stride `ldx`, `w` for `kc * NR` values and `bias` for `NR` values.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile(
        x: *const f32,
        ldx: usize,
        w: *const f32,
        kc: usize,
        bias: *const f32,
        tile: &mut [f32; MR * NR],
        tile_max: &mut [f32; MR],
    ) {
        let z = _mm256_setzero_ps();
        let (mut c00, mut c01, mut c10, mut c11, mut c20, mut c21) = (z, z, z, z, z, z);
        let (mut c30, mut c31, mut c40, mut c41, mut c50, mut c51) = (z, z, z, z, z, z);
        let x0 = x;
        let x1 = x.add(ldx);
        let x2 = x.add(2 * ldx);
        let x3 = x.add(3 * ldx);
        let x4 = x.add(4 * ldx);
        let x5 = x.add(5 * ldx);
        for c in 0..kc {
            let w0 = _mm256_loadu_ps(w.add(c * NR));
            let w1 = _mm256_loadu_ps(w.add(c * NR + 8));
            let b = _mm256_broadcast_ss(&*x0.add(c));
            c00 = _mm256_fmadd_ps(b, w0, c00);
            c01 = _mm256_fmadd_ps(b, w1, c01);
            let b = _mm256_broadcast_ss(&*x1.add(c));
            c10 = _mm256_fmadd_ps(b, w0, c10);
            c11 = _mm256_fmadd_ps(b, w1, c11);
            let b = _mm256_broadcast_ss(&*x2.add(c));
            c20 = _mm256_fmadd_ps(b, w0, c20);
            c21 = _mm256_fmadd_ps(b, w1, c21);
            let b = _mm256_broadcast_ss(&*x3.add(c));
            c30 = _mm256_fmadd_ps(b, w0, c30);
            c31 = _mm256_fmadd_ps(b, w1, c31);
            let b = _mm256_broadcast_ss(&*x4.add(c));
            c40 = _mm256_fmadd_ps(b, w0, c40);
            c41 = _mm256_fmadd_ps(b, w1, c41);
            let b = _mm256_broadcast_ss(&*x5.add(c));
            c50 = _mm256_fmadd_ps(b, w0, c50);
            c51 = _mm256_fmadd_ps(b, w1, c51);
        }
        let t = tile.as_mut_ptr();
        let (b0, b1) = (_mm256_loadu_ps(bias), _mm256_loadu_ps(bias.add(8)));
        let rows = [
            (c00, c01),
            (c10, c11),
            (c20, c21),
            (c30, c31),
            (c40, c41),
            (c50, c51),
        ];
        for (r, (lo, hi)) in rows.into_iter().enumerate() {
            let (lo, hi) = (_mm256_add_ps(lo, b0), _mm256_add_ps(hi, b1));
            _mm256_storeu_ps(t.add(r * NR), lo);
            _mm256_storeu_ps(t.add(r * NR + 8), hi);
            // Horizontal max: 16 -> 8 -> 4 -> 2 -> 1 lanes.
            let m = _mm256_max_ps(lo, hi);
            let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
            let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
            let m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
            tile_max[r] = _mm_cvtss_f32(m);
        }
    }

    /// `y += a * x` over the shorter length.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
        let n = x.len().min(y.len());
        let (xp, yp) = (x.as_ptr(), y.as_mut_ptr());
        let av = _mm256_set1_ps(a);
        let mut i = 0;
        while i + 8 <= n {
            let v = _mm256_fmadd_ps(av, _mm256_loadu_ps(xp.add(i)), _mm256_loadu_ps(yp.add(i)));
            _mm256_storeu_ps(yp.add(i), v);
            i += 8;
        }
        for i in i..n {
            y[i] = a.mul_add(x[i], y[i]);
        }
    }

    /// Dot product over the shorter length: four 8-lane partial sums, then the tail.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (ap, bp) = (a.as_ptr(), b.as_ptr());
        let z = _mm256_setzero_ps();
        let (mut s0, mut s1, mut s2, mut s3) = (z, z, z, z);
        let mut i = 0;
        while i + 32 <= n {
            s0 = _mm256_fmadd_ps(_mm256_loadu_ps(ap.add(i)), _mm256_loadu_ps(bp.add(i)), s0);
            s1 = _mm256_fmadd_ps(
                _mm256_loadu_ps(ap.add(i + 8)),
                _mm256_loadu_ps(bp.add(i + 8)),
                s1,
            );
            s2 = _mm256_fmadd_ps(
                _mm256_loadu_ps(ap.add(i + 16)),
                _mm256_loadu_ps(bp.add(i + 16)),
                s2,
            );
            s3 = _mm256_fmadd_ps(
                _mm256_loadu_ps(ap.add(i + 24)),
                _mm256_loadu_ps(bp.add(i + 24)),
                s3,
            );
            i += 32;
        }
        while i + 8 <= n {
            s0 = _mm256_fmadd_ps(_mm256_loadu_ps(ap.add(i)), _mm256_loadu_ps(bp.add(i)), s0);
            i += 8;
        }
        let s = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
        let s = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        let mut total = _mm_cvtss_f32(s);
        for i in i..n {
            total = a[i].mul_add(b[i], total);
        }
        total
    }
}

/// Whether the AVX2 + FMA kernels can run (std caches the CPUID probe).
#[inline]
fn simd() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `y += a * x` (over the shorter length).
///
/// The sparse passes are chains of these on random rows; the default x86-64 target has
/// only SSE2, so the AVX2/FMA version is picked at run time.
#[inline]
pub(crate) fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if simd() {
        // SAFETY: AVX2 and FMA were detected.
        unsafe { avx2::axpy(a, x, y) };
        return;
    }
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// Dot product (over the shorter length) with independent partial sums in a fixed order:
/// vectorised, and deterministic on a given CPU.
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if simd() {
        // SAFETY: AVX2 and FMA were detected.
        return unsafe { avx2::dot(a, b) };
    }
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Keeps the `k` largest positive `(value, index)` pairs offered to it. Ties keep the pair
/// offered first, so with indices offered in increasing order the lower index wins and the
/// selection is deterministic.
#[derive(Default)]
pub(crate) struct TopK {
    k: usize,
    /// Values at or below this never enter (0 by default: only positives are kept).
    min_floor: f32,
    // Binary min-heap whose root is the worst kept pair.
    heap: Vec<(f32, u32)>,
    scratch: Vec<f32>,
}

/// `a` is worse than `b`: smaller value, or equal value offered later (higher index).
#[inline]
fn worse(a: (f32, u32), b: (f32, u32)) -> bool {
    a.0 < b.0 || (a.0 == b.0 && a.1 > b.1)
}

impl TopK {
    pub(crate) fn reset(&mut self, k: usize) {
        self.k = k;
        self.min_floor = 0.0;
        self.heap.clear();
    }

    /// Values at or below this cannot enter.
    #[inline]
    pub(crate) fn floor(&self) -> f32 {
        if self.heap.len() < self.k {
            self.min_floor
        } else {
            self.heap[0].0.max(self.min_floor)
        }
    }

    /// Offers a pair; the caller has checked `value > self.floor()`.
    #[inline]
    pub(crate) fn push(&mut self, value: f32, index: u32) {
        let h = &mut self.heap;
        if h.len() < self.k {
            h.push((value, index));
            let mut i = h.len() - 1;
            while i > 0 {
                let p = (i - 1) / 2;
                if worse(h[i], h[p]) {
                    h.swap(i, p);
                    i = p;
                } else {
                    break;
                }
            }
        } else {
            h[0] = (value, index);
            let mut i = 0;
            loop {
                let (l, r) = (2 * i + 1, 2 * i + 2);
                let mut m = i;
                if l < h.len() && worse(h[l], h[m]) {
                    m = l;
                }
                if r < h.len() && worse(h[r], h[m]) {
                    m = r;
                }
                if m == i {
                    break;
                }
                h.swap(i, m);
                i = m;
            }
        }
    }

    /// Offers `row[j]` for every `j`.
    pub(crate) fn scan(&mut self, row: &[f32]) {
        const W: usize = 16;
        let mut floor = self.floor();
        for (c, chunk) in row.chunks(W).enumerate() {
            // Cheap vectorised chunk maximum first: once the heap is full almost every chunk
            // is rejected here.
            let mx = chunk
                .iter()
                .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
            if mx > floor {
                self.scan_from(chunk, c * W, &mut floor);
            }
        }
    }

    /// Offers `row[j]` for every `j`, skipping each 16-latent panel whose maximum (from
    /// [`Encoder::matmul`]) cannot enter, without reading it.
    ///
    /// The k-th largest panel maximum `m` is a lower bound on the k-th largest value (k
    /// panels each hold a value `>= m`), so values below it are skipped from the start: far
    /// fewer heap pushes than a scan whose floor has to climb from 0, same result.
    pub(crate) fn scan_panels(&mut self, row: &[f32], maxima: &[f32]) {
        if self.k > 0 && self.k <= maxima.len() {
            self.scratch.clear();
            self.scratch.extend_from_slice(maxima);
            let m = *self
                .scratch
                .select_nth_unstable_by(self.k - 1, |a, b| b.total_cmp(a))
                .1;
            if m > 0.0 && m.is_finite() {
                // The largest float below m, so that m itself still enters.
                self.min_floor = f32::from_bits(m.to_bits() - 1);
            }
        }
        let mut floor = self.floor();
        for (p, &m) in maxima.iter().enumerate() {
            if m > floor {
                let start = p * NR;
                self.scan_from(&row[start..(start + NR).min(row.len())], start, &mut floor);
            }
        }
    }

    #[inline]
    fn scan_from(&mut self, values: &[f32], first: usize, floor: &mut f32) {
        for (i, &v) in values.iter().enumerate() {
            if v > *floor {
                self.push(v, (first + i) as u32);
                *floor = self.floor();
            }
        }
    }

    /// Offers `row[j]` for the listed `j` only (ascending).
    pub(crate) fn scan_subset(&mut self, row: &[f32], subset: &[u32]) {
        let mut floor = self.floor();
        for &j in subset {
            let v = row[j as usize];
            if v > floor {
                self.push(v, j);
                floor = self.floor();
            }
        }
    }

    /// The kept pairs as `(index, value)`, sorted by index, replacing `out`'s contents.
    pub(crate) fn drain_into(&mut self, out: &mut Vec<(u32, f32)>) {
        out.clear();
        out.extend(self.heap.drain(..).map(|(v, j)| (j, v)));
        out.sort_unstable_by_key(|&(j, _)| j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_both_rhs_layouts() {
        // [2,3]·[3,2]
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        let mut c = [9.0; 4];
        matmul(2, 3, 2, &a, &b, false, &mut c, true);
        assert_eq!(c, [4.0, 5.0, 10.0, 11.0]);
        let bt = [1.0, 0.0, 1.0, 0.0, 1.0, 1.0]; // b transposed: [2, 3]
        matmul(2, 3, 2, &a, &bt, true, &mut c, false);
        assert_eq!(c, [4.0, 5.0, 10.0, 11.0]);
    }

    #[test]
    fn encoder_matches_naive_for_ragged_shapes() {
        // 13 rows (two full tiles and a partial one) and 37 latents (a partial panel).
        let (rows, d, n) = (13, 11, 37);
        let x: Vec<f32> = (0..rows * d).map(|i| ((i * 7) % 19) as f32 - 9.0).collect();
        let w: Vec<f32> = (0..n * d)
            .map(|i| ((i * 5) % 17) as f32 * 0.25 - 2.0)
            .collect();
        let bias: Vec<f32> = (0..n).map(|j| j as f32 - 20.0).collect();
        let mut enc = Encoder::default();
        enc.pack(&w, &bias, n, d);
        let np = enc.panel_count();
        let mut out = vec![f32::NAN; rows * n];
        let mut maxima = vec![f32::NAN; rows * np];
        enc.matmul(&x, &w, &mut out, &mut maxima);
        for i in 0..rows {
            for j in 0..n {
                let want: f32 = (0..d).map(|c| x[i * d + c] * w[j * d + c]).sum::<f32>() + bias[j];
                assert_eq!(out[i * n + j], want, "({i}, {j})"); // small integers: exact
            }
            for p in 0..np {
                let panel = &out[i * n + p * NR..i * n + ((p + 1) * NR).min(n)];
                let mx = panel.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
                // The padded lanes of the last panel hold 0, so its maximum is at least 0.
                let mx = if (p + 1) * NR > n { mx.max(0.0) } else { mx };
                assert_eq!(maxima[i * np + p], mx, "row {i} panel {p}");
            }
        }
        // Panel-skipping selection agrees with a full scan.
        let (mut a, mut b) = (TopK::default(), TopK::default());
        let (mut got, mut want) = (Vec::new(), Vec::new());
        for i in 0..rows {
            a.reset(3);
            a.scan_panels(&out[i * n..(i + 1) * n], &maxima[i * np..(i + 1) * np]);
            a.drain_into(&mut got);
            b.reset(3);
            b.scan(&out[i * n..(i + 1) * n]);
            b.drain_into(&mut want);
            assert_eq!(got, want);
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

    #[test]
    fn topk_keeps_largest_positive_with_index_tiebreak() {
        let row: Vec<f32> = (0..50)
            .map(|i| ((i * 37) % 50) as f32 - 20.0)
            .chain([29.0, 29.0, -1.0])
            .collect();
        let mut t = TopK::default();
        t.reset(4);
        t.scan(&row);
        let mut out = Vec::new();
        t.drain_into(&mut out);
        let mut want: Vec<(u32, f32)> = row
            .iter()
            .enumerate()
            .map(|(j, &v)| (j as u32, v))
            .collect();
        want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        want.truncate(4);
        want.sort_by_key(|x| x.0);
        assert_eq!(out, want);
        // Only positives enter, and a subset scan respects the subset.
        t.reset(10);
        t.scan_subset(&[-1.0, 2.0, 3.0, 0.0], &[0, 1, 3]);
        t.drain_into(&mut out);
        assert_eq!(out, [(1, 2.0)]);
    }
}
