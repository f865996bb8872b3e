//! The SAE under training (in normalised input space) and one forward/backward pass with
//! hand-written gradients that touch only the active latents.
//!
//! Objective for a batch `x [B, d]` (Gao et al. 2024, `normalized_mse` in their code):
//!
//! ```text
//! pre  = (x - b_dec) · W_encᵀ + b_enc            dense [B, n]: the only dense matmul
//! v    = relu(TopK_k(pre))  per row              (BatchTopK: the top k·B of the batch)
//! r    = v · W_dec + b_dec,  e = x - r
//! L    = Σ|e|² / Σ|x - mean(x)|²                 (batch FVU)
//!      + c · s · Σ|ê - e|² / Σ|x - mean(x)|²   AuxK; e is detached
//! ê    = u · W_dec,  u = relu(TopK_aux_k(pre restricted to dead latents))
//! s    = min(#dead / aux_k, 1)
//! ```
//!
//! The AuxK term is normalised by the input's variance and scaled down while few latents are
//! dead, as in EleutherAI's sparsify. Gao et al.'s code divides by the variance of `e`
//! instead, which at FVU ≈ 0.02 makes the term ~40× stronger; here its pull on the shared
//! `b_dec` silenced half the latents within 2 M tokens (RESULTS.md, "Beyond 5 M tokens").
//!
//! Backward: `dL/dr_i = -2 e_i / var_x` and `dL/dê_i = 2cs (ê_i - e_i) / var_x`; a selected
//! latent `j` of row `i` gets `g_ij = dL/dpre_ij = dL/dr_i · W_dec[j]` (its relu and top-k
//! masks pass the gradient), then `dW_dec[j] = Σ_i v_ij dL/dr_i`, `dW_enc[j] = Σ_i g_ij (x_i -
//! b_dec)`, `db_enc[j] = Σ_i g_ij` and `db_dec = Σ_i dL/dr_i - Σ_j db_enc[j] W_enc[j]`: O(k·d)
//! per row instead of O(n·d). Per-latent sums run over an inverted index in row order and
//! per-row sums over fixed blocks, so the result is bitwise independent of the thread count.

use std::time::Instant;

use rayon::prelude::*;

use crate::linalg::TopK;
use crate::rng::Rng;
use saener_kernels::{axpy, dot, Encoder};

/// Rows per encoder task: a multiple of the kernel's 6-row tile, large enough that each
/// streamed encoder panel is reused ~30 times, small enough that the task's `[rows, n]`
/// pre-activation scratch stays modest (12 MiB per thread at n = 16384).
const ENCODE_ROWS: usize = 192;

/// Rows per block for per-row reductions; fixed so sums are the same on any thread count.
const BLOCK_ROWS: usize = 32;
/// BatchTopK keeps this many candidates per row (times k) before the batch-wide selection;
/// rows that could need more are recomputed in full, so the selection stays exact.
const BATCH_TOPK_CANDIDATES: usize = 4;

thread_local! {
    /// Per-thread pre-activation and panel-maximum scratch, reused across steps.
    static PRE_SCRATCH: std::cell::RefCell<(Vec<f32>, Vec<f32>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// SAE parameters. Both weight matrices hold one contiguous `d`-row per latent, so the sparse
/// backward updates are contiguous axpys.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Params {
    pub d: usize,
    pub n: usize,
    /// `[n, d]`: row `j` is latent `j`'s encoder direction (`W_enc` transposed).
    pub w_enc: Vec<f32>,
    pub b_enc: Vec<f32>,
    /// `[n, d]`: row `j` is latent `j`'s unit-norm decoder direction.
    pub w_dec: Vec<f32>,
    pub b_dec: Vec<f32>,
}

impl Params {
    /// Random unit decoder rows, encoder tied to the decoder (Gao et al.), `b_enc = 0`.
    pub(crate) fn init(d: usize, n: usize, seed: u64, b_dec: Vec<f32>) -> Self {
        let mut rng = Rng::derive(seed, &[0x1417]);
        let mut w_dec: Vec<f32> = (0..n * d).map(|_| rng.normal() as f32).collect();
        for row in w_dec.chunks_mut(d) {
            normalize(row);
        }
        Params {
            d,
            n,
            w_enc: w_dec.clone(),
            b_enc: vec![0.0; n],
            w_dec,
            b_dec,
        }
    }
}

/// Scales `row` to unit L2 norm (left alone if zero).
pub(crate) fn normalize(row: &mut [f32]) {
    let norm = dot(row, row).sqrt();
    if norm > 0.0 {
        row.iter_mut().for_each(|v| *v /= norm);
    }
}

/// How latents are selected.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Select {
    /// The `k` largest pre-activations of each row.
    TopK(usize),
    /// The `k · B` largest pre-activations of the batch.
    BatchTopK(usize),
}

/// What a pass computes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PassConfig {
    pub select: Select,
    pub aux_k: usize,
    pub aux_coef: f32,
}

/// One selected latent of one row.
#[derive(Clone, Copy, Debug)]
struct Entry {
    j: u32,
    /// Activation (`> 0`).
    v: f32,
    /// `dL/dpre` for this (row, latent).
    g: f32,
}

#[derive(Default)]
struct RowCode {
    main: Vec<Entry>,
    aux: Vec<Entry>,
}

/// One (row, latent) pair in the per-latent inverted index.
#[derive(Clone, Copy)]
struct LatentEntry {
    row: u32,
    v: f32,
    g: f32,
    aux: bool,
}

/// Batch statistics of a pass.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PassStats {
    /// Mean squared error per element (normalised space).
    pub mse: f32,
    /// Fraction of variance unexplained on the batch.
    pub fvu: f32,
    /// AuxK loss `s · Σ|ê - e|² / var_x` (before its coefficient); 0 when no latent is dead.
    pub aux: f32,
    /// Mean active latents per row.
    pub l0: f32,
    /// BatchTopK: the smallest activation kept in the batch.
    pub min_kept: Option<f32>,
    /// Seconds in the dense encoder matmul.
    pub matmul_secs: f64,
    /// Seconds selecting latents (top-k, BatchTopK threshold).
    pub select_secs: f64,
    /// Seconds in the sparse decoder, losses, per-row backward and the inverted index.
    pub sparse_secs: f64,
}

/// Scratch and results of one forward/backward pass; reused across steps so the steady state
/// allocates nothing.
#[derive(Default)]
pub(crate) struct Pass {
    rows: usize,
    d: usize,
    /// `[B, d]`: `x - b_dec`.
    xc: Vec<f32>,
    /// `W_enc` packed for the encoder kernel.
    encoder: Encoder,
    codes: Vec<RowCode>,
    /// `[B, d]`: `e = x - r`.
    err: Vec<f32>,
    /// `[B, d]`: `ê - e` (only when AuxK is active).
    aux_diff: Vec<f32>,
    /// `dL/dr_i = main_scale · e_i`.
    main_scale: f32,
    /// `dL/dê_i = aux_scale · (ê_i - e_i)`.
    aux_scale: f32,
    /// Inverted index: latent `j`'s entries are `entries[offsets[j]..offsets[j + 1]]`.
    offsets: Vec<usize>,
    entries: Vec<LatentEntry>,
    /// Rows in which each latent was selected by the main (not AuxK) path this pass.
    fired: Vec<u32>,
    /// `Σ_i dL/dr_i`: the `b_dec` gradient but for its input-side term.
    grad_b_dec_out: Vec<f32>,
}

/// `Σ_i |x_i - mean(x)|²` in f64 over fixed row blocks.
fn total_variance(x: &[f32], d: usize) -> f64 {
    let rows = x.len() / d;
    let parts: Vec<(Vec<f64>, f64)> = x
        .par_chunks(BLOCK_ROWS * d)
        .map(|blk| {
            let mut s = vec![0.0f64; d];
            let mut sq = 0.0f64;
            for row in blk.chunks(d) {
                for (s, &v) in s.iter_mut().zip(row) {
                    *s += v as f64;
                    sq += v as f64 * v as f64;
                }
            }
            (s, sq)
        })
        .collect();
    let mut sum = vec![0.0f64; d];
    let mut sq = 0.0;
    for (s, q) in parts {
        sum.iter_mut().zip(s).for_each(|(a, b)| *a += b);
        sq += q;
    }
    let mean_sq: f64 = sum.iter().map(|s| s * s).sum::<f64>() / rows as f64;
    (sq - mean_sq).max(0.0)
}

impl Pass {
    /// Forward and backward on `x [B, d]` (normalised space). `dead` lists (ascending) the
    /// latents eligible for AuxK. Afterwards [`latent_grad`](Self::latent_grad) and
    /// [`grad_b_dec_output`](Self::grad_b_dec_output) give the gradients of the objective.
    pub(crate) fn run(
        &mut self,
        p: &Params,
        x: &[f32],
        cfg: &PassConfig,
        dead: &[u32],
    ) -> PassStats {
        let (d, n) = (p.d, p.n);
        let b = x.len() / d;
        assert_eq!(x.len(), b * d, "batch is not [B, d]");
        self.rows = b;
        self.d = d;
        self.xc.clear();
        self.xc.extend(
            x.chunks(d)
                .flat_map(|row| row.iter().zip(&p.b_dec).map(|(x, c)| x - c)),
        );
        self.codes.resize_with(b, RowCode::default);

        let (min_kept, matmul_secs, select_secs) = self.select(p, cfg, dead);
        let t_sparse = Instant::now();

        // A constant batch has no variance to explain; the floor keeps the loss finite.
        let var_x = total_variance(x, d).max(1e-12);
        self.main_scale = (-2.0 / var_x) as f32;
        let sq_err = self.decode_main(p, x);
        let aux_active = !dead.is_empty() && cfg.aux_k > 0;
        let aux_sq = if aux_active {
            let few_dead = (dead.len() as f64 / cfg.aux_k as f64).min(1.0);
            self.aux_scale = (2.0 * cfg.aux_coef as f64 * few_dead / var_x) as f32;
            few_dead * self.decode_aux(p) / var_x
        } else {
            self.aux_diff.clear();
            self.codes.iter_mut().for_each(|c| c.aux.clear());
            0.0
        };
        self.invert(n);
        let active: usize = self.codes.iter().map(|c| c.main.len()).sum();
        PassStats {
            mse: (sq_err / (b * d) as f64) as f32,
            fvu: (sq_err / var_x) as f32,
            aux: aux_sq as f32,
            l0: active as f32 / b as f32,
            min_kept,
            matmul_secs,
            select_secs,
            sparse_secs: t_sparse.elapsed().as_secs_f64(),
        }
    }

    /// Encodes the batch (dense matmul) and selects the main and AuxK latents of every row.
    /// Returns BatchTopK's smallest kept activation and the wall seconds spent in the matmul
    /// and in selection.
    fn select(&mut self, p: &Params, cfg: &PassConfig, dead: &[u32]) -> (Option<f32>, f64, f64) {
        let (d, n) = (p.d, p.n);
        let per_row = match cfg.select {
            Select::TopK(k) => k.min(n),
            Select::BatchTopK(k) => (BATCH_TOPK_CANDIDATES * k).min(n),
        };
        let aux_k = if dead.is_empty() { 0 } else { cfg.aux_k };
        let t0 = Instant::now();
        self.encoder.pack(&p.w_enc, &p.b_enc, n, d);
        let np = self.encoder.panel_count();
        let t_pack = t0.elapsed().as_secs_f64();
        let encoder = &self.encoder;
        // Each task multiplies a block of rows and selects from it at once, so the [rows, n]
        // pre-activations live only in a per-thread scratch, never for the whole batch.
        let busy: Vec<(f64, f64)> = self
            .codes
            .par_chunks_mut(ENCODE_ROWS)
            .zip(self.xc.par_chunks(ENCODE_ROWS * d))
            .map(|(codes, xc)| {
                PRE_SCRATCH.with_borrow_mut(|(pre, maxima)| {
                    let t = Instant::now();
                    pre.resize(codes.len() * n, 0.0);
                    maxima.resize(codes.len() * np, 0.0);
                    encoder.matmul(xc, &p.w_enc, pre, maxima);
                    let t_mid = Instant::now();
                    let (mut top, mut buf) = (TopK::default(), Vec::new());
                    let rows = pre.chunks(n).zip(maxima.chunks(np));
                    for (code, (pre, maxima)) in codes.iter_mut().zip(rows) {
                        top.reset(per_row);
                        top.scan_panels(pre, maxima);
                        fill(&mut top, &mut buf, &mut code.main);
                        top.reset(aux_k);
                        if aux_k > 0 {
                            top.scan_subset(pre, dead);
                        }
                        fill(&mut top, &mut buf, &mut code.aux);
                    }
                    ((t_mid - t).as_secs_f64(), t_mid.elapsed().as_secs_f64())
                })
            })
            .collect();
        // Split the fused section's wall time in proportion to the threads' busy times.
        let wall = t0.elapsed().as_secs_f64() - t_pack;
        let (mm, sel) = busy
            .iter()
            .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
        let frac = if mm + sel > 0.0 { mm / (mm + sel) } else { 1.0 };
        let t = Instant::now();
        let min_kept = match cfg.select {
            Select::TopK(_) => None,
            Select::BatchTopK(k) => self.batch_threshold(p, k, per_row),
        };
        (
            min_kept,
            t_pack + wall * frac,
            wall * (1.0 - frac) + t.elapsed().as_secs_f64(),
        )
    }

    /// BatchTopK: keeps the `k · B` largest candidates of the batch; returns the smallest kept.
    fn batch_threshold(&mut self, p: &Params, k: usize, per_row: usize) -> Option<f32> {
        let keep = k * self.rows;
        let mut threshold = self.kth_largest(keep);
        // A row whose every candidate clears the threshold may have more above it that the
        // per-row cap dropped: recompute those rows in full, then select again. Rows that
        // were not full stay exact because more candidates can only raise the threshold.
        let full: Vec<usize> = (0..self.rows)
            .filter(|&i| {
                let m = &self.codes[i].main;
                per_row < p.n && m.len() == per_row && m.iter().all(|e| e.v >= threshold)
            })
            .collect();
        if !full.is_empty() {
            let (d, n) = (p.d, p.n);
            let np = self.encoder.panel_count();
            let encoder = &self.encoder;
            let xs: Vec<f32> = full
                .iter()
                .flat_map(|&i| self.xc[i * d..(i + 1) * d].iter().copied())
                .collect();
            // Same kernel and packing as the first pass, so the values are identical. Only
            // values >= the current threshold can survive: more candidates never lower it.
            let recomputed: Vec<Vec<Vec<Entry>>> = xs
                .par_chunks(ENCODE_ROWS * d)
                .map(|x| {
                    PRE_SCRATCH.with_borrow_mut(|(pre, maxima)| {
                        pre.resize(x.len() / d * n, 0.0);
                        maxima.resize(x.len() / d * np, 0.0);
                        encoder.matmul(x, &p.w_enc, pre, maxima);
                        pre.chunks(n)
                            .map(|row| {
                                row.iter()
                                    .enumerate()
                                    .filter(|&(_, &v)| v >= threshold && v > 0.0)
                                    .map(|(j, &v)| Entry {
                                        j: j as u32,
                                        v,
                                        g: 0.0,
                                    })
                                    .collect()
                            })
                            .collect()
                    })
                })
                .collect();
            for (i, row) in full.into_iter().zip(recomputed.into_iter().flatten()) {
                self.codes[i].main = row;
            }
            threshold = self.kth_largest(keep);
        }
        let mut min_kept = f32::INFINITY;
        for c in &mut self.codes {
            c.main.retain(|e| e.v >= threshold);
            min_kept = c.main.iter().fold(min_kept, |m, e| m.min(e.v));
        }
        min_kept.is_finite().then_some(min_kept)
    }

    /// The `keep`-th largest main candidate of the batch (0 if there are fewer: keep all).
    fn kth_largest(&self, keep: usize) -> f32 {
        let mut vals: Vec<f32> = self
            .codes
            .iter()
            .flat_map(|c| c.main.iter().map(|e| e.v))
            .collect();
        if keep == 0 || vals.len() <= keep {
            return 0.0;
        }
        *vals
            .select_nth_unstable_by(keep - 1, |a, b| b.total_cmp(a))
            .1
    }

    /// `r = v · W_dec + b_dec`, `e = x - r`, the main path's `dL/dpre` and `Σ_i dL/dr_i`.
    /// Returns `Σ|e|²`.
    fn decode_main(&mut self, p: &Params, x: &[f32]) -> f64 {
        let d = p.d;
        let scale = self.main_scale;
        self.err.resize(self.rows * d, 0.0);
        let parts: Vec<(f64, Vec<f64>)> = self
            .codes
            .par_chunks_mut(BLOCK_ROWS)
            .zip(self.err.par_chunks_mut(BLOCK_ROWS * d))
            .zip(x.par_chunks(BLOCK_ROWS * d))
            .map(|((codes, err), x)| {
                let mut sq = 0.0f64;
                let mut sum = vec![0.0f64; d];
                for ((code, e), x) in codes.iter_mut().zip(err.chunks_mut(d)).zip(x.chunks(d)) {
                    // e = x - b_dec - Σ v W_dec[j]
                    for ((e, &x), &c) in e.iter_mut().zip(x).zip(&p.b_dec) {
                        *e = x - c;
                    }
                    for en in &code.main {
                        let j = en.j as usize;
                        axpy(-en.v, &p.w_dec[j * d..(j + 1) * d], e);
                    }
                    for en in &mut code.main {
                        let j = en.j as usize;
                        en.g = scale * dot(e, &p.w_dec[j * d..(j + 1) * d]);
                    }
                    sq += dot(e, e) as f64;
                    sum.iter_mut()
                        .zip(e.iter())
                        .for_each(|(s, &e)| *s += e as f64);
                }
                (sq, sum)
            })
            .collect();
        let mut sum = vec![0.0f64; d];
        let mut sq = 0.0;
        for (q, part) in parts {
            sq += q;
            sum.iter_mut().zip(part).for_each(|(s, v)| *s += v);
        }
        self.grad_b_dec_out = sum.into_iter().map(|s| (s * scale as f64) as f32).collect();
        sq
    }

    /// `ê = u · W_dec`, `ê - e`, and the AuxK path's `dL/dpre`. Returns `Σ|ê - e|²`.
    fn decode_aux(&mut self, p: &Params) -> f64 {
        let d = p.d;
        let scale = self.aux_scale;
        self.aux_diff.resize(self.rows * d, 0.0);
        self.codes
            .par_chunks_mut(BLOCK_ROWS)
            .zip(self.aux_diff.par_chunks_mut(BLOCK_ROWS * d))
            .zip(self.err.par_chunks(BLOCK_ROWS * d))
            .map(|((codes, diff), err)| {
                let mut sq = 0.0f64;
                for ((code, df), e) in codes.iter_mut().zip(diff.chunks_mut(d)).zip(err.chunks(d)) {
                    for (df, &e) in df.iter_mut().zip(e) {
                        *df = -e;
                    }
                    for en in &code.aux {
                        let j = en.j as usize;
                        axpy(en.v, &p.w_dec[j * d..(j + 1) * d], df);
                    }
                    for en in &mut code.aux {
                        let j = en.j as usize;
                        en.g = scale * dot(df, &p.w_dec[j * d..(j + 1) * d]);
                    }
                    sq += dot(df, df) as f64;
                }
                sq
            })
            .collect::<Vec<f64>>()
            .into_iter()
            .sum()
    }

    /// Builds the per-latent index (counting sort; rows ascending within a latent).
    fn invert(&mut self, n: usize) {
        self.offsets.clear();
        self.offsets.resize(n + 1, 0);
        self.fired.clear();
        self.fired.resize(n, 0);
        for c in &self.codes {
            for en in &c.main {
                self.offsets[en.j as usize + 1] += 1;
                self.fired[en.j as usize] += 1;
            }
            for en in &c.aux {
                self.offsets[en.j as usize + 1] += 1;
            }
        }
        for j in 0..n {
            self.offsets[j + 1] += self.offsets[j];
        }
        let mut next = self.offsets[..n].to_vec();
        let placeholder = LatentEntry {
            row: 0,
            v: 0.0,
            g: 0.0,
            aux: false,
        };
        self.entries.clear();
        self.entries.resize(self.offsets[n], placeholder);
        for (i, c) in self.codes.iter().enumerate() {
            let tagged = c
                .main
                .iter()
                .map(|e| (e, false))
                .chain(c.aux.iter().map(|e| (e, true)));
            for (en, aux) in tagged {
                let slot = &mut next[en.j as usize];
                self.entries[*slot] = LatentEntry {
                    row: i as u32,
                    v: en.v,
                    g: en.g,
                    aux,
                };
                *slot += 1;
            }
        }
    }

    /// Writes latent `j`'s decoder and encoder row gradients into `g_dec` and `g_enc`
    /// (length `d`) and returns its `b_enc` gradient.
    pub(crate) fn latent_grad(&self, j: usize, g_dec: &mut [f32], g_enc: &mut [f32]) -> f32 {
        let d = self.d;
        g_dec.fill(0.0);
        g_enc.fill(0.0);
        let mut g_b = 0.0;
        for en in &self.entries[self.offsets[j]..self.offsets[j + 1]] {
            let r = en.row as usize;
            let (src, scale) = if en.aux {
                (&self.aux_diff[r * d..(r + 1) * d], self.aux_scale)
            } else {
                (&self.err[r * d..(r + 1) * d], self.main_scale)
            };
            axpy(scale * en.v, src, g_dec);
            axpy(en.g, &self.xc[r * d..(r + 1) * d], g_enc);
            g_b += en.g;
        }
        g_b
    }

    /// Whether latent `j` has any (row, latent) entry this pass; latents without one have
    /// zero gradient.
    pub(crate) fn touched(&self, j: usize) -> bool {
        self.offsets[j] != self.offsets[j + 1]
    }

    /// Whether latent `j` was active (main path) in some row of this pass.
    pub(crate) fn fired(&self, j: usize) -> bool {
        self.fired[j] > 0
    }

    /// `Σ_i dL/dr_i`, the `b_dec` gradient through the decoder output. The full gradient
    /// also has the input side, `-Σ_j db_enc[j] W_enc[j]`, which callers add with
    /// [`add_input_bias_grad`] as they visit each latent (one streaming pass over `W_enc`
    /// instead of `B·k` random row reads).
    pub(crate) fn grad_b_dec_output(&self) -> &[f32] {
        &self.grad_b_dec_out
    }

    /// Row `i`'s active latents `(j, v)`, ascending `j`.
    #[cfg(test)]
    pub(crate) fn code(&self, i: usize) -> Vec<(u32, f32)> {
        self.codes[i].main.iter().map(|e| (e.j, e.v)).collect()
    }

    /// Row `i`'s reconstruction, given its input.
    #[cfg(test)]
    pub(crate) fn recon(&self, i: usize, x: &[f32]) -> Vec<f32> {
        let d = x.len();
        x.iter()
            .zip(&self.err[i * d..(i + 1) * d])
            .map(|(x, e)| x - e)
            .collect()
    }
}

/// Adds latent `j`'s input-side term to a `b_dec` gradient: `acc -= db_enc[j] · W_enc[j]`
/// (the input `x - b_dec` feeds every pre-activation).
pub(crate) fn add_input_bias_grad(acc: &mut [f32], g_b_enc: f32, w_enc_row: &[f32]) {
    axpy(-g_b_enc, w_enc_row, acc);
}

/// Moves a selector's pairs into entries (gradients filled in later).
fn fill(top: &mut TopK, buf: &mut Vec<(u32, f32)>, out: &mut Vec<Entry>) {
    top.drain_into(buf);
    out.clear();
    out.extend(buf.iter().map(|&(j, v)| Entry { j, v, g: 0.0 }));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dense f64 reimplementation of the objective, independent of the sparse code. The
    /// AuxK target is passed in frozen, as the analytic gradient treats it.
    struct Reference<'a> {
        x: &'a [f32],
        d: usize,
        n: usize,
        cfg: PassConfig,
        dead: &'a [u32],
    }

    struct RefOut {
        loss: f64,
        err: Vec<f64>,
        fvu: f64,
    }

    impl Reference<'_> {
        /// `params = [w_enc, b_enc, w_dec, b_dec]` flattened in f64.
        fn eval(&self, params: &[f64], frozen: Option<&[f64]>) -> RefOut {
            let (d, n) = (self.d, self.n);
            let b = self.x.len() / d;
            let w_enc = &params[..n * d];
            let b_enc = &params[n * d..n * d + n];
            let w_dec = &params[n * d + n..2 * n * d + n];
            let b_dec = &params[2 * n * d + n..];
            let pre: Vec<Vec<f64>> = (0..b)
                .map(|i| {
                    (0..n)
                        .map(|j| {
                            (0..d)
                                .map(|c| (self.x[i * d + c] as f64 - b_dec[c]) * w_enc[j * d + c])
                                .sum::<f64>()
                                + b_enc[j]
                        })
                        .collect()
                })
                .collect();
            // Selected (row, latent) pairs for the main path.
            let mut main = vec![vec![false; n]; b];
            match self.cfg.select {
                Select::TopK(k) => {
                    for i in 0..b {
                        let mut idx: Vec<usize> = (0..n).collect();
                        idx.sort_by(|&a, &c| pre[i][c].total_cmp(&pre[i][a]).then(a.cmp(&c)));
                        for &j in idx.iter().take(k) {
                            main[i][j] = pre[i][j] > 0.0;
                        }
                    }
                }
                Select::BatchTopK(k) => {
                    let mut all: Vec<(usize, usize)> =
                        (0..b).flat_map(|i| (0..n).map(move |j| (i, j))).collect();
                    all.sort_by(|&(a, c), &(e, f)| pre[e][f].total_cmp(&pre[a][c]));
                    for &(i, j) in all.iter().take(k * b) {
                        main[i][j] = pre[i][j] > 0.0;
                    }
                }
            }
            let mut err = vec![0.0; b * d];
            let mean: Vec<f64> = (0..d)
                .map(|c| (0..b).map(|i| self.x[i * d + c] as f64).sum::<f64>() / b as f64)
                .collect();
            let mut sq = 0.0;
            let mut var_x = 0.0;
            for i in 0..b {
                for c in 0..d {
                    let r: f64 = b_dec[c]
                        + (0..n)
                            .filter(|&j| main[i][j])
                            .map(|j| pre[i][j] * w_dec[j * d + c])
                            .sum::<f64>();
                    let x = self.x[i * d + c] as f64;
                    err[i * d + c] = x - r;
                    sq += (x - r).powi(2);
                    var_x += (x - mean[c]).powi(2);
                }
            }
            let target = frozen.unwrap_or(&err);
            let mut aux = 0.0;
            if !self.dead.is_empty() {
                for i in 0..b {
                    let mut cand: Vec<usize> = self.dead.iter().map(|&j| j as usize).collect();
                    cand.sort_by(|&a, &c| pre[i][c].total_cmp(&pre[i][a]).then(a.cmp(&c)));
                    cand.truncate(self.cfg.aux_k);
                    cand.retain(|&j| pre[i][j] > 0.0);
                    for c in 0..d {
                        let e_hat: f64 = cand.iter().map(|&j| pre[i][j] * w_dec[j * d + c]).sum();
                        aux += (e_hat - target[i * d + c]).powi(2);
                    }
                }
            }
            let few_dead = (self.dead.len() as f64 / self.cfg.aux_k as f64).min(1.0);
            RefOut {
                loss: (sq + self.cfg.aux_coef as f64 * few_dead * aux) / var_x,
                err,
                fvu: sq / var_x,
            }
        }
    }

    fn random(len: usize, rng: &mut Rng, scale: f64) -> Vec<f32> {
        (0..len).map(|_| (rng.normal() * scale) as f32).collect()
    }

    fn check_gradients(select: Select) {
        // aux_k 3 < 8 dead latents uses the full AuxK term; aux_k 16 scales it by 8/16.
        for aux_k in [3, 16] {
            check_gradients_with(select, aux_k);
        }
    }

    fn check_gradients_with(select: Select, aux_k: usize) {
        let (d, n, b) = (7, 13, 6);
        let mut rng = Rng::derive(42, &[]);
        let x = random(b * d, &mut rng, 1.0);
        let mut p = Params::init(d, n, 3, random(d, &mut rng, 0.3));
        // Untie and perturb so no gradient term is accidentally symmetric or zero.
        p.w_enc = random(n * d, &mut rng, 0.5);
        p.b_enc = random(n, &mut rng, 0.2);
        let cfg = PassConfig {
            select,
            aux_k,
            aux_coef: 0.25,
        };
        // Dead latents, some of which also win the main selection in some rows.
        let dead: Vec<u32> = vec![0, 2, 3, 5, 8, 9, 11, 12];
        let mut pass = Pass::default();
        let stats = pass.run(&p, &x, &cfg, &dead);

        let mut analytic = vec![0.0f64; 2 * n * d + n + d];
        let (mut gd, mut ge) = (vec![0.0; d], vec![0.0; d]);
        let mut g_b_dec = pass.grad_b_dec_output().to_vec();
        for j in 0..n {
            let gb = pass.latent_grad(j, &mut gd, &mut ge);
            add_input_bias_grad(&mut g_b_dec, gb, &p.w_enc[j * d..(j + 1) * d]);
            for c in 0..d {
                analytic[j * d + c] = ge[c] as f64;
                analytic[n * d + n + j * d + c] = gd[c] as f64;
            }
            analytic[n * d + j] = gb as f64;
        }
        for c in 0..d {
            analytic[2 * n * d + n + c] = g_b_dec[c] as f64;
        }

        let reference = Reference {
            x: &x,
            d,
            n,
            cfg,
            dead: &dead,
        };
        let theta: Vec<f64> = [&p.w_enc[..], &p.b_enc, &p.w_dec, &p.b_dec]
            .concat()
            .into_iter()
            .map(f64::from)
            .collect();
        let base = reference.eval(&theta, None);
        assert!(
            (base.fvu - stats.fvu as f64).abs() < 1e-4,
            "{} vs {}",
            base.fvu,
            stats.fvu
        );
        let frozen = &base.err[..];
        let h = 1e-5;
        let mut worst = 0.0f64;
        let scale = analytic.iter().fold(0.0f64, |m, g| m.max(g.abs()));
        for t in 0..theta.len() {
            let mut up = theta.clone();
            up[t] += h;
            let mut down = theta.clone();
            down[t] -= h;
            let fd = (reference.eval(&up, Some(frozen)).loss
                - reference.eval(&down, Some(frozen)).loss)
                / (2.0 * h);
            worst = worst.max((fd - analytic[t]).abs());
        }
        eprintln!(
            "{select:?}, aux_k {aux_k}: max |analytic - finite difference| = {worst:.2e} (max |grad| {scale:.2e})"
        );
        assert!(
            worst < 1e-4 * scale.max(1.0),
            "gradient mismatch {worst} (scale {scale})"
        );
        assert!(stats.aux > 0.0 && scale > 0.0);
    }

    #[test]
    fn topk_gradients_match_finite_differences() {
        check_gradients(Select::TopK(3));
    }

    #[test]
    fn batch_topk_gradients_match_finite_differences() {
        check_gradients(Select::BatchTopK(3));
    }

    #[test]
    fn batch_topk_is_exact_when_rows_need_more_than_the_candidate_cap() {
        // One row aligned with every latent: it alone holds the batch's k·B largest values,
        // far more than its per-row candidate cap of 4k.
        let (d, n, b, k) = (4, 64, 8, 2);
        let mut rng = Rng::derive(5, &[]);
        let mut p = Params::init(d, n, 1, vec![0.0; d]);
        for row in p.w_enc.chunks_mut(d) {
            row.copy_from_slice(&[1.0, 0.0, 0.0, 0.0]);
        }
        p.b_enc = random(n, &mut rng, 0.01);
        let mut x = random(b * d, &mut rng, 0.1);
        x[0] = 100.0;
        let cfg = PassConfig {
            select: Select::BatchTopK(k),
            aux_k: 0,
            aux_coef: 0.0,
        };
        let mut pass = Pass::default();
        let stats = pass.run(&p, &x, &cfg, &[]);
        assert_eq!(
            pass.code(0).len(),
            k * b,
            "row 0 takes the whole batch budget"
        );
        assert!((1..b).all(|i| pass.code(i).is_empty()));
        assert_eq!(stats.l0, k as f32);
    }
}
