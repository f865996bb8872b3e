//! GGML's Q8_0 format (blocks of 32 signed bytes with an f16 scale), in which the GGUF
//! stores the token embedding table.

/// Values per Q8_0 block: an f16 scale, then 32 signed bytes.
pub const Q8_0_BLOCK: usize = 32;
pub(crate) const Q8_0_BYTES: usize = 34;

/// Bytes of one Q8_0 row of `dim` values.
pub fn q8_0_row_bytes(dim: usize) -> usize {
    dim / Q8_0_BLOCK * Q8_0_BYTES
}

pub(crate) fn q8_0_scale(block: &[u8]) -> f32 {
    half::f16::from_le_bytes([block[0], block[1]]).to_f32()
}

/// Decodes one Q8_0 row into `out`.
pub fn dequantize_q8_0(row: &[u8], out: &mut [f32]) {
    for (block, out) in row
        .chunks_exact(Q8_0_BYTES)
        .zip(out.chunks_exact_mut(Q8_0_BLOCK))
    {
        let d = q8_0_scale(block);
        for (o, &q) in out.iter_mut().zip(&block[2..]) {
            *o = d * f32::from(q as i8);
        }
    }
}

/// Dot product of a Q8_0 row with `x`.
pub fn dot_q8_0(row: &[u8], x: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if crate::has_avx2() {
        // SAFETY: AVX2 and FMA are available (checked above).
        return unsafe { crate::avx2::dot_q8_0(row, x) };
    }
    row.chunks_exact(Q8_0_BYTES)
        .zip(x.chunks_exact(Q8_0_BLOCK))
        .map(|(block, x)| {
            let s: f32 = block[2..]
                .iter()
                .zip(x)
                .map(|(&q, x)| f32::from(q as i8) * x)
                .sum();
            q8_0_scale(block) * s
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_0_dot_matches_dequantized() {
        let mut row = Vec::new();
        for b in 0..4u8 {
            row.extend_from_slice(&half::f16::from_f32(0.01 * f32::from(b + 1)).to_le_bytes());
            row.extend((0..32u8).map(|i| (i.wrapping_mul(37).wrapping_add(b)) as i8 as u8));
        }
        let x: Vec<f32> = (0..128).map(|i| (i as f32 * 0.1).cos()).collect();
        let mut deq = vec![0f32; 128];
        dequantize_q8_0(&row, &mut deq);
        let expected: f32 = deq.iter().zip(&x).map(|(a, b)| a * b).sum();
        assert!((dot_q8_0(&row, &x) - expected).abs() < 1e-4);
    }
}
