//! AVX-512 versions of the matrix-product micro-kernels; callers check for the features
//! first ([`crate::Cpu`]).

use std::arch::x86_64::*;

/// The f32 micro-kernel at twice the width of [`crate::avx2::kernel_6x16`]:
/// `tile[r][l] = Σ_{kk < kc} A(r, kk) · b[kk * 32 + l]` for 6 rows and 32 columns, `A(r, kk)`
/// at `a[r * a_row + kk * a_k]`. Each output is the same chain of FMAs in the same order as
/// in the AVX2 kernel, so both give bit-identical results.
///
/// # Safety
/// The CPU must support AVX-512F; `a` must be readable at every `A(r, kk)` and `b` for
/// `kc * 32` values.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn kernel_6x32(
    kc: usize,
    a: *const f32,
    a_row: usize,
    a_k: usize,
    b: *const f32,
    tile: &mut [f32; 192],
) {
    let z = _mm512_setzero_ps();
    let (mut c00, mut c01, mut c10, mut c11, mut c20, mut c21) = (z, z, z, z, z, z);
    let (mut c30, mut c31, mut c40, mut c41, mut c50, mut c51) = (z, z, z, z, z, z);
    let (a0, a1, a2) = (a, a.add(a_row), a.add(2 * a_row));
    let (a3, a4, a5) = (a.add(3 * a_row), a.add(4 * a_row), a.add(5 * a_row));
    let mut b = b;
    for kk in 0..kc {
        let o = kk * a_k;
        let b0 = _mm512_loadu_ps(b);
        let b1 = _mm512_loadu_ps(b.add(16));
        let x = _mm512_set1_ps(*a0.add(o));
        c00 = _mm512_fmadd_ps(x, b0, c00);
        c01 = _mm512_fmadd_ps(x, b1, c01);
        let x = _mm512_set1_ps(*a1.add(o));
        c10 = _mm512_fmadd_ps(x, b0, c10);
        c11 = _mm512_fmadd_ps(x, b1, c11);
        let x = _mm512_set1_ps(*a2.add(o));
        c20 = _mm512_fmadd_ps(x, b0, c20);
        c21 = _mm512_fmadd_ps(x, b1, c21);
        let x = _mm512_set1_ps(*a3.add(o));
        c30 = _mm512_fmadd_ps(x, b0, c30);
        c31 = _mm512_fmadd_ps(x, b1, c31);
        let x = _mm512_set1_ps(*a4.add(o));
        c40 = _mm512_fmadd_ps(x, b0, c40);
        c41 = _mm512_fmadd_ps(x, b1, c41);
        let x = _mm512_set1_ps(*a5.add(o));
        c50 = _mm512_fmadd_ps(x, b0, c50);
        c51 = _mm512_fmadd_ps(x, b1, c51);
        b = b.add(32);
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
        _mm512_storeu_ps(t.add(r * 32), lo);
        _mm512_storeu_ps(t.add(r * 32 + 16), hi);
    }
}

/// The int8 micro-kernel (`vpdpbusd`): 4 rows × 32 columns of `Σ_blocks sa · sb · Σ_{k in
/// block} qa · qb` over `blocks` blocks of 32 k. See [`crate::int8`] for the layouts: `a`
/// holds row `r` at `a + r * lda` as offset bytes (`qa + 128`), `sa` its block scales at
/// `sa + r * lds`; `b` one panel's `[block][quad][32 cols][4]` signed bytes, `sb` and
/// `corr` its `[block][32]` scales and offset corrections (`-128 · Σ qb`), which start the
/// integer sums so that they come out as `Σ qa · qb` exactly.
///
/// # Safety
/// The CPU must support AVX-512F, AVX-512BW and AVX512-VNNI; every pointer must be readable
/// for the extents above.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(crate) unsafe fn int8_4x32(
    blocks: usize,
    a: *const u8,
    lda: usize,
    sa: *const f32,
    lds: usize,
    b: *const u8,
    sb: *const f32,
    corr: *const i32,
    tile: &mut [f32; 128],
) {
    let z = _mm512_setzero_ps();
    let (mut f00, mut f01, mut f10, mut f11) = (z, z, z, z);
    let (mut f20, mut f21, mut f30, mut f31) = (z, z, z, z);
    let (a0, a1, a2, a3) = (a, a.add(lda), a.add(2 * lda), a.add(3 * lda));
    for blk in 0..blocks {
        let i0 = _mm512_loadu_si512(corr.add(blk * 32) as *const __m512i);
        let i1 = _mm512_loadu_si512(corr.add(blk * 32 + 16) as *const __m512i);
        let (mut s00, mut s01, mut s10, mut s11) = (i0, i1, i0, i1);
        let (mut s20, mut s21, mut s30, mut s31) = (i0, i1, i0, i1);
        let bb = b.add(blk * 1024);
        let k0 = blk * 32;
        for q in 0..8 {
            let b0 = _mm512_loadu_si512(bb.add(q * 128) as *const __m512i);
            let b1 = _mm512_loadu_si512(bb.add(q * 128 + 64) as *const __m512i);
            let o = k0 + q * 4;
            let x = _mm512_set1_epi32((a0.add(o) as *const i32).read_unaligned());
            s00 = _mm512_dpbusd_epi32(s00, x, b0);
            s01 = _mm512_dpbusd_epi32(s01, x, b1);
            let x = _mm512_set1_epi32((a1.add(o) as *const i32).read_unaligned());
            s10 = _mm512_dpbusd_epi32(s10, x, b0);
            s11 = _mm512_dpbusd_epi32(s11, x, b1);
            let x = _mm512_set1_epi32((a2.add(o) as *const i32).read_unaligned());
            s20 = _mm512_dpbusd_epi32(s20, x, b0);
            s21 = _mm512_dpbusd_epi32(s21, x, b1);
            let x = _mm512_set1_epi32((a3.add(o) as *const i32).read_unaligned());
            s30 = _mm512_dpbusd_epi32(s30, x, b0);
            s31 = _mm512_dpbusd_epi32(s31, x, b1);
        }
        let w0 = _mm512_loadu_ps(sb.add(blk * 32));
        let w1 = _mm512_loadu_ps(sb.add(blk * 32 + 16));
        let x = _mm512_set1_ps(*sa.add(blk));
        f00 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s00), _mm512_mul_ps(w0, x), f00);
        f01 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s01), _mm512_mul_ps(w1, x), f01);
        let x = _mm512_set1_ps(*sa.add(lds + blk));
        f10 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s10), _mm512_mul_ps(w0, x), f10);
        f11 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s11), _mm512_mul_ps(w1, x), f11);
        let x = _mm512_set1_ps(*sa.add(2 * lds + blk));
        f20 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s20), _mm512_mul_ps(w0, x), f20);
        f21 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s21), _mm512_mul_ps(w1, x), f21);
        let x = _mm512_set1_ps(*sa.add(3 * lds + blk));
        f30 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s30), _mm512_mul_ps(w0, x), f30);
        f31 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s31), _mm512_mul_ps(w1, x), f31);
    }
    let t = tile.as_mut_ptr();
    let rows = [(f00, f01), (f10, f11), (f20, f21), (f30, f31)];
    for (r, (lo, hi)) in rows.into_iter().enumerate() {
        _mm512_storeu_ps(t.add(r * 32), lo);
        _mm512_storeu_ps(t.add(r * 32 + 16), hi);
    }
}
