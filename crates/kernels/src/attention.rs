//! Attention of one block: per-head RMS norms and RoPE on fused `[q | k | v]` rows, then
//! causal (optionally sliding-window) multi-query attention within each packed sequence.

use crate::vector::{dot, rms_norm_row, softmax, ROWS_PER_TASK};
use rayon::prelude::*;

/// Attention geometry of one block.
pub struct AttentionParams {
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    /// Sliding window (keys `i - w + 1 ..= i`), or `None` for global attention.
    pub window: Option<usize>,
    pub scale: f32,
}

/// Applies the per-head RMS norms and RoPE (at each row's position) to the q and k
/// parts of fused `[q | k | v]` rows, in place.
pub fn norm_rope(
    qkv: &mut [f32],
    p: &AttentionParams,
    [q_norm, k_norm]: [&[f32]; 2],
    eps: f32,
    (cos, sin): (&[f32], &[f32]),
    positions: &[usize],
) {
    let hd = p.head_dim;
    let half = hd / 2;
    let q_dim = p.n_heads * hd;
    let row = q_dim + 2 * p.n_kv_heads * hd;
    qkv.par_chunks_mut(row)
        .zip(positions.par_iter())
        .with_min_len(ROWS_PER_TASK)
        .for_each_init(
            || vec![0f32; hd],
            |normed, (row, &pos)| {
                let (c, s) = (&cos[pos * half..][..half], &sin[pos * half..][..half]);
                let (q, kv) = row.split_at_mut(q_dim);
                let k = &mut kv[..p.n_kv_heads * hd];
                let heads = q.chunks_exact_mut(hd).map(|h| (h, q_norm));
                for (head, w) in heads.chain(k.chunks_exact_mut(hd).map(|h| (h, k_norm))) {
                    rms_norm_row(head, w, eps, normed);
                    let (lo, hi) = normed.split_at(half);
                    let (out_lo, out_hi) = head.split_at_mut(half);
                    for i in 0..half {
                        out_lo[i] = lo[i] * c[i] - hi[i] * s[i];
                        out_hi[i] = hi[i] * c[i] + lo[i] * s[i];
                    }
                }
            },
        );
}

/// Queries per attention task.
const QUERY_BLOCK: usize = 8;

/// Causal (optionally sliding-window) multi-query attention within each sequence of a
/// packed batch, reading q, k and v from fused `[q | k | v]` rows; returns
/// `[T, heads · hd]`.
pub fn attention(qkv: &[f32], offsets: &[usize], p: &AttentionParams) -> Vec<f32> {
    let q_dim = p.n_heads * p.head_dim;
    let row = q_dim + 2 * p.n_kv_heads * p.head_dim;
    let mut out = vec![0f32; qkv.len() / row * q_dim];
    // Split the output into disjoint per-task row ranges that never cross sequences.
    let mut tasks = Vec::new();
    let mut rest = out.as_mut_slice();
    for w in offsets.windows(2) {
        let (start, end) = (w[0], w[1]);
        for first in (start..end).step_by(QUERY_BLOCK) {
            let n = QUERY_BLOCK.min(end - first);
            let (mine, tail) = std::mem::take(&mut rest).split_at_mut(n * q_dim);
            rest = tail;
            tasks.push((start, first, mine));
        }
    }
    tasks
        .into_par_iter()
        .for_each_init(Vec::new, |scores, (seq_start, first, out)| {
            attend_rows(qkv, seq_start, first, out, scores, p);
        });
    out
}

/// Attention for queries `first..` (one per row of `out`) of the sequence starting at
/// row `seq_start`.
fn attend_rows(
    qkv: &[f32],
    seq_start: usize,
    first: usize,
    out: &mut [f32],
    scores: &mut Vec<f32>,
    p: &AttentionParams,
) {
    let hd = p.head_dim;
    let (q_dim, kv_dim) = (p.n_heads * hd, p.n_kv_heads * hd);
    let row = q_dim + 2 * kv_dim;
    let group = p.n_heads / p.n_kv_heads;
    for (qi, out_row) in out.chunks_exact_mut(q_dim).enumerate() {
        let i = first + qi;
        let lo = match p.window {
            Some(w) => seq_start.max((i + 1).saturating_sub(w)),
            None => seq_start,
        };
        let n_keys = i + 1 - lo;
        for kvh in 0..p.n_kv_heads {
            // The query heads that share this key/value head are contiguous.
            let heads = kvh * group * hd..(kvh + 1) * group * hd;
            let keys = &qkv[lo * row + q_dim + kvh * hd..];
            let values = &qkv[lo * row + q_dim + kv_dim + kvh * hd..];
            scores.clear();
            scores.resize(group * n_keys, 0.0);
            let q_group = &qkv[i * row..][heads.clone()];
            group_scores(q_group, keys, row, hd, p.scale, scores);
            for s in scores.chunks_exact_mut(n_keys) {
                softmax(s);
            }
            weighted_sum(scores, values, row, hd, &mut out_row[heads]);
        }
    }
}

/// `scores[g][j] = scale · q_g · k_j` for the `g` heads in `q` (`hd` values each) and
/// the keys `k_j = keys[j · stride..][..hd]`, `j < scores.len() / heads`.
fn group_scores(q: &[f32], keys: &[f32], stride: usize, hd: usize, scale: f32, scores: &mut [f32]) {
    let n_keys = scores.len() / (q.len() / hd);
    #[cfg(target_arch = "x86_64")]
    if crate::has_avx2() && hd % 8 == 0 {
        // SAFETY: AVX2 and FMA are available (checked above).
        return unsafe { crate::avx2::group_scores(q, keys, stride, hd, scale, scores) };
    }
    for (qg, scores) in q.chunks_exact(hd).zip(scores.chunks_exact_mut(n_keys)) {
        for (j, s) in scores.iter_mut().enumerate() {
            *s = dot(qg, &keys[j * stride..][..hd]) * scale;
        }
    }
}

/// `out_g = Σ_j p[g][j] · v_j` for the `g` heads in `out` (`hd` values each) and the
/// values `v_j = values[j · stride..][..hd]`, `j < p.len() / heads`.
fn weighted_sum(p: &[f32], values: &[f32], stride: usize, hd: usize, out: &mut [f32]) {
    let n_keys = p.len() / (out.len() / hd);
    #[cfg(target_arch = "x86_64")]
    if crate::has_avx2() && hd % 32 == 0 {
        // SAFETY: AVX2 and FMA are available (checked above).
        return unsafe { crate::avx2::weighted_sum(p, values, stride, hd, out) };
    }
    for (pg, og) in p.chunks_exact(n_keys).zip(out.chunks_exact_mut(hd)) {
        og.fill(0.0);
        for (j, &w) in pg.iter().enumerate() {
            let vj = &values[j * stride..][..hd];
            og.iter_mut().zip(vj).for_each(|(o, v)| *o += w * v);
        }
    }
}
