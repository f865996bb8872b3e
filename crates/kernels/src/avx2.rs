//! AVX2+FMA versions of the kernels; callers check for the features first
//! ([`crate::has_avx2`]).

use crate::q8_0::{q8_0_scale, Q8_0_BLOCK, Q8_0_BYTES};
use crate::vector::{GELU_COEF, SQRT_2_OVER_PI};
use std::arch::x86_64::*;

#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s)
}

#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let (mut s0, mut s1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut i = 0;
    while i + 16 <= n {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), s0);
        s1 = _mm256_fmadd_ps(
            _mm256_loadu_ps(pa.add(i + 8)),
            _mm256_loadu_ps(pb.add(i + 8)),
            s1,
        );
        i += 16;
    }
    let mut sum = hsum(_mm256_add_ps(s0, s1));
    while i < n {
        sum += a[i] * b[i];
        i += 1;
    }
    sum
}

/// See `super::group_scores`; needs `hd % 8 == 0`.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn group_scores(
    q: &[f32],
    keys: &[f32],
    stride: usize,
    hd: usize,
    scale: f32,
    scores: &mut [f32],
) {
    let heads = q.len() / hd;
    let n_keys = scores.len() / heads;
    assert!(hd % 8 == 0 && n_keys * heads == scores.len() && heads * hd == q.len());
    assert!(n_keys == 0 || keys.len() >= (n_keys - 1) * stride + hd);
    for j in 0..n_keys {
        let kj = keys.as_ptr().add(j * stride);
        for g in 0..heads {
            let qg = q.as_ptr().add(g * hd);
            let (mut s0, mut s1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            let mut d = 0;
            while d + 16 <= hd {
                s0 = _mm256_fmadd_ps(_mm256_loadu_ps(qg.add(d)), _mm256_loadu_ps(kj.add(d)), s0);
                s1 = _mm256_fmadd_ps(
                    _mm256_loadu_ps(qg.add(d + 8)),
                    _mm256_loadu_ps(kj.add(d + 8)),
                    s1,
                );
                d += 16;
            }
            if d < hd {
                s0 = _mm256_fmadd_ps(_mm256_loadu_ps(qg.add(d)), _mm256_loadu_ps(kj.add(d)), s0);
            }
            scores[g * n_keys + j] = hsum(_mm256_add_ps(s0, s1)) * scale;
        }
    }
}

/// See `super::weighted_sum`; needs `hd % 32 == 0`. Four accumulators cover 32
/// output values and stay in registers across all keys.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn weighted_sum(
    p: &[f32],
    values: &[f32],
    stride: usize,
    hd: usize,
    out: &mut [f32],
) {
    let heads = out.len() / hd;
    let n_keys = p.len() / heads;
    assert!(hd % 32 == 0 && n_keys * heads == p.len() && heads * hd == out.len());
    assert!(n_keys == 0 || values.len() >= (n_keys - 1) * stride + hd);
    for g in 0..heads {
        let pg = &p[g * n_keys..(g + 1) * n_keys];
        for d in (0..hd).step_by(32) {
            let z = _mm256_setzero_ps();
            let (mut a0, mut a1, mut a2, mut a3) = (z, z, z, z);
            for (j, &w) in pg.iter().enumerate() {
                let w = _mm256_set1_ps(w);
                let vj = values.as_ptr().add(j * stride + d);
                a0 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vj), a0);
                a1 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vj.add(8)), a1);
                a2 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vj.add(16)), a2);
                a3 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vj.add(24)), a3);
            }
            let o = out.as_mut_ptr().add(g * hd + d);
            _mm256_storeu_ps(o, a0);
            _mm256_storeu_ps(o.add(8), a1);
            _mm256_storeu_ps(o.add(16), a2);
            _mm256_storeu_ps(o.add(24), a3);
        }
    }
}

/// `exp` for `x` in [-87, 88] (clamped), Cephes' polynomial, ~1 ulp.
#[target_feature(enable = "avx2,fma")]
unsafe fn exp(x: __m256) -> __m256 {
    let x = _mm256_min_ps(
        _mm256_max_ps(x, _mm256_set1_ps(-87.0)),
        _mm256_set1_ps(88.0),
    );
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        _mm256_set1_ps(std::f32::consts::LOG2_E),
    ));
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), x);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
    let mut p = _mm256_set1_ps(1.987_569_2e-4);
    for c in [
        1.398_2e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5,
    ] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
    }
    let p = _mm256_fmadd_ps(
        p,
        _mm256_mul_ps(r, r),
        _mm256_add_ps(r, _mm256_set1_ps(1.0)),
    );
    let pow2n = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
        _mm256_cvtps_epi32(n),
        _mm256_set1_epi32(127),
    )));
    _mm256_mul_ps(p, pow2n)
}

#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn exp_sub(x: &mut [f32], max: f32) -> f32 {
    let n = x.len();
    let p = x.as_mut_ptr();
    let m = _mm256_set1_ps(max);
    let mut acc = _mm256_setzero_ps();
    let mut i = 0;
    while i + 8 <= n {
        let e = exp(_mm256_sub_ps(_mm256_loadu_ps(p.add(i)), m));
        _mm256_storeu_ps(p.add(i), e);
        acc = _mm256_add_ps(acc, e);
        i += 8;
    }
    let mut sum = hsum(acc);
    while i < n {
        x[i] = (x[i] - max).exp();
        sum += x[i];
        i += 1;
    }
    sum
}

#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn gelu_mul(gate: &mut [f32], up: &[f32]) {
    let n = gate.len().min(up.len());
    let (pg, pu) = (gate.as_mut_ptr(), up.as_ptr());
    let mut i = 0;
    while i + 8 <= n {
        let x = _mm256_loadu_ps(pg.add(i));
        let x2 = _mm256_mul_ps(x, x);
        let inner = _mm256_fmadd_ps(_mm256_set1_ps(GELU_COEF), x2, _mm256_set1_ps(1.0));
        let minus_2u = _mm256_mul_ps(
            _mm256_set1_ps(-2.0 * SQRT_2_OVER_PI),
            _mm256_mul_ps(x, inner),
        );
        let denom = _mm256_add_ps(_mm256_set1_ps(1.0), exp(minus_2u));
        let g = _mm256_div_ps(x, denom);
        _mm256_storeu_ps(pg.add(i), _mm256_mul_ps(g, _mm256_loadu_ps(pu.add(i))));
        i += 8;
    }
    while i < n {
        gate[i] = crate::vector::gelu_tanh(gate[i]) * up[i];
        i += 1;
    }
}

#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn dot_q8_0(row: &[u8], x: &[f32]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for (block, x) in row.chunks_exact(Q8_0_BYTES).zip(x.chunks_exact(Q8_0_BLOCK)) {
        let q = block.as_ptr().add(2);
        let mut s = _mm256_setzero_ps();
        for part in 0..4 {
            let bytes = _mm_loadl_epi64(q.add(part * 8) as *const __m128i);
            let qf = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes));
            s = _mm256_fmadd_ps(qf, _mm256_loadu_ps(x.as_ptr().add(part * 8)), s);
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(q8_0_scale(block)), s, acc);
    }
    hsum(acc)
}

/// `y += a * x` over the shorter length.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
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

/// The f32 GEMM micro-kernel: `tile[r][l] = Σ_{kk < kc} A(r, kk) · b[kk * 16 + l]` for 6
/// rows and 16 columns, where `A(r, kk)` is `a[r * a_row + kk * a_k]` (packed panels:
/// `a_row = 1, a_k = 6`; plain rows: `a_row = lda, a_k = 1`). Twelve named accumulators
/// stay in registers even at opt-level 1; each sums over `kk` in order, so results do not
/// depend on threading or batch composition.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `a` must be readable at every `A(r, kk)` and `b` for
/// `kc * 16` values.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn kernel_6x16(
    kc: usize,
    a: *const f32,
    a_row: usize,
    a_k: usize,
    b: *const f32,
    tile: &mut [f32; 96],
) {
    let z = _mm256_setzero_ps();
    let (mut c00, mut c01, mut c10, mut c11, mut c20, mut c21) = (z, z, z, z, z, z);
    let (mut c30, mut c31, mut c40, mut c41, mut c50, mut c51) = (z, z, z, z, z, z);
    let (a0, a1, a2) = (a, a.add(a_row), a.add(2 * a_row));
    let (a3, a4, a5) = (a.add(3 * a_row), a.add(4 * a_row), a.add(5 * a_row));
    let mut b = b;
    for kk in 0..kc {
        let o = kk * a_k;
        let b0 = _mm256_loadu_ps(b);
        let b1 = _mm256_loadu_ps(b.add(8));
        let x = _mm256_broadcast_ss(&*a0.add(o));
        c00 = _mm256_fmadd_ps(x, b0, c00);
        c01 = _mm256_fmadd_ps(x, b1, c01);
        let x = _mm256_broadcast_ss(&*a1.add(o));
        c10 = _mm256_fmadd_ps(x, b0, c10);
        c11 = _mm256_fmadd_ps(x, b1, c11);
        let x = _mm256_broadcast_ss(&*a2.add(o));
        c20 = _mm256_fmadd_ps(x, b0, c20);
        c21 = _mm256_fmadd_ps(x, b1, c21);
        let x = _mm256_broadcast_ss(&*a3.add(o));
        c30 = _mm256_fmadd_ps(x, b0, c30);
        c31 = _mm256_fmadd_ps(x, b1, c31);
        let x = _mm256_broadcast_ss(&*a4.add(o));
        c40 = _mm256_fmadd_ps(x, b0, c40);
        c41 = _mm256_fmadd_ps(x, b1, c41);
        let x = _mm256_broadcast_ss(&*a5.add(o));
        c50 = _mm256_fmadd_ps(x, b0, c50);
        c51 = _mm256_fmadd_ps(x, b1, c51);
        b = b.add(16);
    }
    let t = tile.as_mut_ptr();
    let rows = [
        (c00, c01),
        (c10, c11),
        (c20, c21),
        (c30, c31),
        (c40, c41),
        (c50, c51),
    ];
    for (r, (lo, hi)) in rows.into_iter().enumerate() {
        _mm256_storeu_ps(t.add(r * 16), lo);
        _mm256_storeu_ps(t.add(r * 16 + 8), hi);
    }
}
