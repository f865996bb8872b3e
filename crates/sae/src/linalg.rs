//! The two dense kernels the SAE needs, on flat row-major `f32` buffers.

/// `c += a · b` for row-major `a [m, k]`, `b [k, n]`, `c [m, n]`.
///
/// Runs on `gemm`, the kernel behind candle's CPU matmul (SIMD, multithreaded on rayon), so
/// encoding a batch is one BLAS-class call rather than a loop over tokens.
pub(crate) fn matmul_acc(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    assert_eq!(a.len(), m * k, "lhs is not [m, k]");
    assert_eq!(b.len(), k * n, "rhs is not [k, n]");
    assert_eq!(c.len(), m * n, "dst is not [m, n]");
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    // SAFETY: the asserts above make every element gemm addresses in bounds: row strides k, n
    // and n with unit column strides over buffers of exactly m*k, k*n and m*n elements; `c`
    // is borrowed mutably and does not alias `a` or `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            true,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(0),
        );
    }
}

/// The transpose of a row-major `[rows, cols]` matrix.
pub(crate) fn transpose(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    assert_eq!(a.len(), rows * cols);
    let mut t = vec![0.0; a.len()];
    for (r, row) in a.chunks_exact(cols.max(1)).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            t[c * rows + r] = v;
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_accumulates_into_dst() {
        // [2,3]·[3,2] + ones
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        let mut c = [1.0; 4];
        matmul_acc(2, 3, 2, &a, &b, &mut c);
        assert_eq!(c, [5.0, 6.0, 11.0, 12.0]);
    }

    #[test]
    fn transpose_swaps_axes() {
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(transpose(&a, 2, 3), [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    }
}
