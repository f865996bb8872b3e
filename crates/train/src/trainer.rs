//! The training loop: initialisation, Adam with decoder-norm constraints, dead-latent
//! tracking, metrics CSV, atomic checkpoints and resume, export.
//!
//! # Output directory
//!
//! - `checkpoint.safetensors`: the latest checkpoint (parameters, Adam moments, dead-latent
//!   counters, scalars; the config and the data's fingerprint in the metadata; a streaming
//!   run's shuffle buffer and corpus position, see [`crate::stream`]), replaced atomically
//!   every `checkpoint_every` steps, on a stop request and at the end.
//! - `metrics.csv`: one row per step: `step,tokens,mse,aux_loss,fvu,l0,dead_fraction,lr,
//!   tokens_per_sec`. On resume, rows after the checkpoint are dropped (they are recomputed).
//! - `sae.safetensors`, `sae.json`: the exported [`TrainedSae`], written when training ends.
//!
//! # Determinism
//!
//! Initialisation and data order are pure functions of the seed; every reduction runs in a
//! fixed order over fixed-size blocks, and gemm computes each output element as one ordered
//! dot product. A run stopped and resumed therefore produces bitwise the same weights as an
//! uninterrupted one, on any number of threads (on the same CPU: gemm picks its SIMD kernel
//! by CPU features).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::export::{SaeWeights, TrainedActivation, TrainedSae, TrainedSaeConfig, TrainingStats};
use crate::model::{add_input_bias_grad, normalize, Params, Pass, PassConfig, Select};
use crate::store::{atomic_write, StoreReader};
use crate::tensors::{self, Out};
use crate::{io_err, Error, Result};
use saener_kernels::{axpy, dot};

/// Latent selection during training.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ActivationKind {
    /// `k` latents per row (Gao et al. 2024).
    TopK,
    /// `k · batch` latents per batch (Bussmann et al. 2024); inference uses a threshold.
    BatchTopK,
}

/// Training hyperparameters. Missing JSON fields take the defaults.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Input width; must equal the store's `d`. Default 640 (Gemma 3 270M).
    pub d_in: usize,
    /// Latents. Default 16384.
    pub d_sae: usize,
    /// Active latents per row (on average, for BatchTopK). Default 64.
    pub k: usize,
    /// Default TopK.
    pub activation: ActivationKind,
    /// Rows per step. Default 4096.
    pub batch_size: usize,
    /// Peak learning rate; `None` is Gao et al.'s `2e-4 / sqrt(d_sae / 2^14)`.
    pub lr: Option<f32>,
    /// Adam betas. Default (0.9, 0.999).
    pub adam_betas: (f32, f32),
    /// Adam epsilon. Default 6.25e-10 (Gao et al.).
    pub adam_eps: f32,
    /// Linear warm-up steps. Default 50.
    pub warmup_steps: u64,
    /// Fraction of steps, at the end, over which the learning rate decays linearly to 0.
    /// Default 0.2.
    pub decay_fraction: f32,
    /// Training rows; steps = ceil(total_tokens / batch_size). Default 5M.
    pub total_tokens: u64,
    /// AuxK latents per row; `None` is `min(512, d_in / 2)`.
    pub aux_k: Option<usize>,
    /// AuxK loss coefficient. Default 1/32, on an AuxK term normalised as in EleutherAI's
    /// sparsify (see `model.rs` for why not as in Gao et al.'s code).
    pub aux_coef: f32,
    /// A latent is dead (and eligible for AuxK) once it has not fired for this many rows.
    /// Default 1M (Gao et al. use 10M with far larger budgets).
    pub dead_tokens: u64,
    /// Seed for initialisation and data order.
    pub seed: u64,
    /// Steps between checkpoints. Default 100. Not part of the resume check.
    pub checkpoint_every: u64,
    /// Shards shuffled together in memory (see [`crate::RowStream`]). Default 4.
    pub shuffle_window_shards: usize,
    /// Rows sampled to estimate the input scale and `b_dec`. Default 16384.
    pub init_sample_rows: usize,
    /// Weiszfeld iterations for the geometric-median `b_dec`; 0 uses the mean. Default 10.
    pub geometric_median_iters: usize,
    /// The last `eval_shards` shards of the store are held out for the final evaluation.
    /// Default 1.
    pub eval_shards: usize,
    /// Held-out rows evaluated at the end. Default 16384. Not part of the resume check.
    pub eval_rows: usize,
    /// Streaming only: rows the shuffle buffer is refilled to before every step (see
    /// [`crate::stream`]). Default 131072 (32 batches; 168 MB of bf16 rows at d = 640).
    pub buffer_rows: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            d_in: 640,
            d_sae: 16384,
            k: 64,
            activation: ActivationKind::TopK,
            batch_size: 4096,
            lr: None,
            adam_betas: (0.9, 0.999),
            adam_eps: 6.25e-10,
            warmup_steps: 50,
            decay_fraction: 0.2,
            total_tokens: 5_000_000,
            aux_k: None,
            aux_coef: 1.0 / 32.0,
            dead_tokens: 1_000_000,
            seed: 0,
            checkpoint_every: 100,
            shuffle_window_shards: 4,
            init_sample_rows: 16384,
            geometric_median_iters: 10,
            eval_shards: 1,
            eval_rows: 16384,
            buffer_rows: 131_072,
        }
    }
}

impl TrainConfig {
    /// The peak learning rate.
    pub fn learning_rate(&self) -> f32 {
        self.lr
            .unwrap_or_else(|| 2e-4 / (self.d_sae as f32 / 16384.0).sqrt())
    }

    /// The AuxK latents per row.
    pub fn aux_k(&self) -> usize {
        self.aux_k.unwrap_or(512.min(self.d_in / 2)).min(self.d_sae)
    }

    /// Optimiser steps of the whole run.
    pub fn total_steps(&self) -> u64 {
        self.total_tokens.div_ceil(self.batch_size.max(1) as u64)
    }

    /// Learning rate of (0-based) step `step`: linear warm-up, constant, then linear decay to
    /// zero over the last `decay_fraction` of steps.
    pub fn lr_at(&self, step: u64) -> f32 {
        let total = self.total_steps();
        let warm = if self.warmup_steps > 0 {
            ((step + 1) as f32 / self.warmup_steps as f32).min(1.0)
        } else {
            1.0
        };
        let decay_steps = (self.decay_fraction as f64 * total as f64).round() as u64;
        let decay = if decay_steps > 0 && step + decay_steps >= total {
            total.saturating_sub(step) as f32 / decay_steps as f32
        } else {
            1.0
        };
        self.learning_rate() * warm * decay
    }

    /// Checks the settings every run needs; `d` is the width of the rows it will read.
    pub(crate) fn validate(&self, d: usize) -> Result<()> {
        let bad = |m: String| Err(Error::Invalid(format!("train config: {m}")));
        let (b1, b2) = self.adam_betas;
        if self.d_in != d {
            return bad(format!("d_in {} but the rows have d {d}", self.d_in));
        }
        if self.d_sae == 0 || self.k == 0 || self.k > self.d_sae {
            return bad(format!("need 0 < k ({}) <= d_sae ({})", self.k, self.d_sae));
        }
        if self.d_sae > u32::MAX as usize || self.batch_size > u32::MAX as usize {
            return bad("d_sae and batch_size must fit in u32".into());
        }
        if self.batch_size == 0 || self.total_tokens == 0 {
            return bad("batch_size and total_tokens must be positive".into());
        }
        if !(self.learning_rate() > 0.0 && self.learning_rate().is_finite()) {
            return bad(format!("lr {} is not positive", self.learning_rate()));
        }
        if !((0.0..1.0).contains(&b1) && (0.0..1.0).contains(&b2) && self.adam_eps > 0.0) {
            return bad("need 0 <= betas < 1 and adam_eps > 0".into());
        }
        if !(0.0..=1.0).contains(&self.decay_fraction) || self.aux_coef < 0.0 {
            return bad("need 0 <= decay_fraction <= 1 and aux_coef >= 0".into());
        }
        if self.shuffle_window_shards == 0 || self.init_sample_rows == 0 {
            return bad("shuffle_window_shards and init_sample_rows must be positive".into());
        }
        if self.checkpoint_every == 0 {
            return bad("checkpoint_every must be positive".into());
        }
        Ok(())
    }

    fn validate_store(&self, store: &StoreReader) -> Result<()> {
        self.validate(store.meta().d)?;
        if self.eval_shards >= store.shards().len() {
            return Err(Error::Invalid(format!(
                "train config: the store has {} shards; eval_shards = {} leaves none to train on",
                store.shards().len(),
                self.eval_shards
            )));
        }
        Ok(())
    }

    /// The config as JSON minus the fields that do not affect the trained weights.
    fn resume_key(&self) -> serde_json::Map<String, serde_json::Value> {
        let serde_json::Value::Object(mut m) =
            serde_json::to_value(self).expect("config serialises")
        else {
            unreachable!("a struct serialises to an object")
        };
        m.remove("checkpoint_every");
        m.remove("eval_rows");
        m
    }

    fn pass_config(&self) -> PassConfig {
        PassConfig {
            select: match self.activation {
                ActivationKind::TopK => Select::TopK(self.k),
                ActivationKind::BatchTopK => Select::BatchTopK(self.k),
            },
            aux_k: self.aux_k(),
            aux_coef: self.aux_coef,
        }
    }
}

/// Wall-clock seconds of one step's phases.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq)]
pub struct PhaseTimes {
    /// Reading and scaling the batch.
    pub load: f64,
    /// The dense encoder matmul.
    pub matmul: f64,
    /// Top-k / BatchTopK / AuxK selection.
    pub select: f64,
    /// Sparse decode, losses, per-row backward, inverted index.
    pub sparse: f64,
    /// Per-latent gradient sums fused with the Adam update and decoder renormalisation.
    pub update: f64,
}

/// Metrics of one training step, passed to the progress callback and logged to the CSV.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct StepMetrics {
    /// Steps completed (1 after the first step).
    pub step: u64,
    /// Steps of the whole run.
    pub total_steps: u64,
    /// Rows consumed so far.
    pub tokens: u64,
    /// Mean squared reconstruction error per element, in normalised input units.
    pub mse: f32,
    /// AuxK loss (scaled and normalised by the input variance, before its coefficient).
    pub aux_loss: f32,
    /// Fraction of variance unexplained on the batch.
    pub fvu: f32,
    /// Mean active latents per row.
    pub l0: f32,
    /// Fraction of latents dead (not fired for `dead_tokens` rows) at this step.
    pub dead_fraction: f32,
    /// Learning rate used.
    pub lr: f32,
    /// Rows per second of this step.
    pub tokens_per_sec: f32,
    /// Where the step's time went.
    pub phases: PhaseTimes,
}

/// Metrics on held-out rows, with the exported SAE.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct EvalStats {
    /// Rows evaluated.
    pub rows: usize,
    /// Fraction of variance unexplained.
    pub fvu: f32,
    /// Mean squared error per element, in normalised input units (comparable with training).
    pub mse: f32,
    /// Mean active latents per row.
    pub l0: f32,
    /// Fraction of latents that fired on no held-out row.
    pub unused_fraction: f32,
}

/// How [`train`] ended.
#[derive(Debug)]
pub enum TrainOutcome {
    /// All steps done; the SAE is also saved in the output directory.
    Finished(Box<TrainedSae>),
    /// The callback asked to stop; a checkpoint at `step` was written, and calling [`train`]
    /// again continues from it.
    Stopped {
        /// Steps completed.
        step: u64,
    },
}

/// Adam's first and second moments for one parameter tensor.
struct Moments {
    m: Vec<f32>,
    v: Vec<f32>,
}

impl Moments {
    fn zeros(len: usize) -> Self {
        Moments {
            m: vec![0.0; len],
            v: vec![0.0; len],
        }
    }

    fn rows(
        &mut self,
        width: usize,
    ) -> impl IndexedParallelIterator<Item = (&mut [f32], &mut [f32])> {
        self.m
            .par_chunks_mut(width)
            .zip(self.v.par_chunks_mut(width))
    }
}

/// One Adam step's constants (PyTorch's bias-corrected form).
struct Adam {
    lr: f32,
    b1: f32,
    b2: f32,
    eps: f32,
    /// `1 / (1 - b1^t)`.
    c1: f32,
    /// `1 / (1 - b2^t)`.
    c2: f32,
}

impl Adam {
    #[inline]
    fn apply(&self, p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32]) {
        for (((p, m), v), &g) in p.iter_mut().zip(m).zip(v).zip(g) {
            *m = self.b1 * *m + (1.0 - self.b1) * g;
            *v = self.b2 * *v + (1.0 - self.b2) * g * g;
            *p -= self.lr * (*m * self.c1) / ((*v * self.c2).sqrt() + self.eps);
        }
    }
}

/// Everything a checkpoint holds, bar the row source's position ([`SourceState`]).
pub(crate) struct State {
    params: Params,
    adam_w_enc: Moments,
    adam_b_enc: Moments,
    adam_w_dec: Moments,
    adam_b_dec: Moments,
    /// Rows since each latent last fired.
    since_fired: Vec<u64>,
    step: u64,
    input_scale: f32,
    /// BatchTopK: sum and count of each step's smallest kept activation (normalised units).
    threshold_sum: f64,
    threshold_count: u64,
    elapsed_secs: f64,
    last: Option<StepMetrics>,
}

/// The JSON stored in the checkpoint's metadata.
#[derive(Serialize, Deserialize)]
struct CheckpointMeta {
    version: u32,
    step: u64,
    threshold_count: u64,
    /// The training data's fingerprint: a store's, or a streamed corpus's and its LM's.
    store_fingerprint: String,
    config: TrainConfig,
    last: Option<StepMetrics>,
    /// The row source's position, for sources whose position is more than the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<serde_json::Value>,
}

/// A row source's part of a checkpoint: tensors and JSON written beside the model, in the
/// same file, so the two are replaced together.
#[derive(Default)]
pub(crate) struct SourceState<'a> {
    pub(crate) tensors: Vec<(&'static str, Out<'a>)>,
    pub(crate) meta: Option<serde_json::Value>,
}

/// Where training rows come from.
pub(crate) trait RowSource {
    /// Replaces `out` with the raw (unscaled) rows of 0-based step `step`.
    fn batch(&mut self, step: u64, rows: usize, out: &mut Vec<f32>) -> Result<()>;
    /// What a checkpoint taken now must hold besides the model to resume this source.
    fn checkpoint(&self) -> SourceState<'_>;
}

impl RowSource for crate::RowStream<'_> {
    fn batch(&mut self, step: u64, rows: usize, out: &mut Vec<f32>) -> Result<()> {
        // The order is a function of the position alone, so the step is all a resume needs.
        self.seek(step * rows as u64);
        self.next_batch(rows, out)
    }

    fn checkpoint(&self) -> SourceState<'_> {
        SourceState::default()
    }
}

/// What the rows are, recorded in the exported SAE.
pub(crate) struct Provenance {
    pub(crate) model: String,
    pub(crate) layer: usize,
    pub(crate) fingerprint: String,
}

const CHECKPOINT_VERSION: u32 = 1;
/// Latents per update task; fixed so the `b_dec` gradient sums in the same order on any
/// number of threads.
const LATENT_BLOCK: usize = 64;
const META_KEY: &str = "saener_train";

impl State {
    /// A fresh model: input scale and `b_dec` from `sample`, raw rows of the training data.
    pub(crate) fn init(cfg: &TrainConfig, mut sample: Vec<f32>) -> Result<Self> {
        let d = cfg.d_in;
        let rows = sample.len() / d;
        let mean_norm = sample
            .chunks(d)
            .map(|r| (dot(r, r) as f64).sqrt())
            .sum::<f64>()
            / rows as f64;
        if !(mean_norm > 0.0 && mean_norm.is_finite()) {
            return Err(Error::Invalid(format!(
                "the sampled rows have mean norm {mean_norm}; cannot normalise"
            )));
        }
        let input_scale = ((d as f64).sqrt() / mean_norm) as f32;
        sample.iter_mut().for_each(|v| *v *= input_scale);
        let b_dec = geometric_median(&sample, d, cfg.geometric_median_iters);
        let n = cfg.d_sae;
        Ok(State {
            params: Params::init(d, n, cfg.seed, b_dec),
            adam_w_enc: Moments::zeros(n * d),
            adam_b_enc: Moments::zeros(n),
            adam_w_dec: Moments::zeros(n * d),
            adam_b_dec: Moments::zeros(d),
            since_fired: vec![0; n],
            step: 0,
            input_scale,
            threshold_sum: 0.0,
            threshold_count: 0,
            elapsed_secs: 0.0,
            last: None,
        })
    }

    fn save(
        &self,
        path: &Path,
        cfg: &TrainConfig,
        fingerprint: &str,
        source: SourceState<'_>,
    ) -> Result<()> {
        let (d, n) = (self.params.d, self.params.n);
        let meta = CheckpointMeta {
            version: CHECKPOINT_VERSION,
            step: self.step,
            threshold_count: self.threshold_count,
            store_fingerprint: fingerprint.to_owned(),
            config: cfg.clone(),
            last: self.last.clone(),
            source: source.meta,
        };
        let p = &self.params;
        // Exact binary scalars: JSON float round trips are not guaranteed bit-exact.
        let scalars = [
            self.input_scale as f64,
            self.threshold_sum,
            self.elapsed_secs,
        ];
        let mut list = vec![
            ("w_enc", Out::F32(&p.w_enc, vec![n, d])),
            ("b_enc", Out::F32(&p.b_enc, vec![n])),
            ("w_dec", Out::F32(&p.w_dec, vec![n, d])),
            ("b_dec", Out::F32(&p.b_dec, vec![d])),
            ("since_fired", Out::U64(&self.since_fired, vec![n])),
            ("scalars", Out::F64(&scalars, vec![3])),
        ];
        for (name, mo, shape) in [
            ("w_enc", &self.adam_w_enc, vec![n, d]),
            ("b_enc", &self.adam_b_enc, vec![n]),
            ("w_dec", &self.adam_w_dec, vec![n, d]),
            ("b_dec", &self.adam_b_dec, vec![d]),
        ] {
            list.push((adam_name(name, 'm'), Out::F32(&mo.m, shape.clone())));
            list.push((adam_name(name, 'v'), Out::F32(&mo.v, shape)));
        }
        list.extend(source.tensors);
        let json = serde_json::to_string(&meta).expect("checkpoint meta serialises");
        tensors::write(path, list, HashMap::from([(META_KEY.to_owned(), json)]))
    }

    /// The state in checkpoint `file` (read from `path`), and its row source's JSON.
    pub(crate) fn load(
        file: &tensors::In,
        path: &Path,
        cfg: &TrainConfig,
        fingerprint: &str,
    ) -> Result<(Self, Option<serde_json::Value>)> {
        let json = file.metadata(META_KEY)?;
        let meta: CheckpointMeta = serde_json::from_str(&json).map_err(|source| Error::Json {
            path: path.to_owned(),
            source,
        })?;
        let mismatch = |reason: String| Error::CheckpointMismatch {
            path: path.to_owned(),
            reason,
        };
        if meta.version != CHECKPOINT_VERSION {
            return Err(mismatch(format!("checkpoint version {}", meta.version)));
        }
        let (stored, given) = (meta.config.resume_key(), cfg.resume_key());
        let differing: Vec<String> = given
            .iter()
            .filter(|(k, v)| stored.get(*k) != Some(v))
            .map(|(k, v)| {
                format!(
                    "{k} ({} -> {v})",
                    stored.get(k).unwrap_or(&serde_json::Value::Null)
                )
            })
            .collect();
        if !differing.is_empty() {
            return Err(mismatch(format!(
                "config differs from the checkpoint's in {}; use another output directory",
                differing.join(", ")
            )));
        }
        if meta.store_fingerprint != fingerprint {
            return Err(mismatch(
                "the training data (store, or streamed text and LM) differ from those the \
                 checkpoint was trained on"
                    .into(),
            ));
        }
        let (d, n) = (cfg.d_in, cfg.d_sae);
        let moments = |name: &str, shape: &[usize]| -> Result<Moments> {
            Ok(Moments {
                m: file.f32(adam_name(name, 'm'), shape)?,
                v: file.f32(adam_name(name, 'v'), shape)?,
            })
        };
        let scalars = file.f64("scalars", &[3])?;
        let state = State {
            params: Params {
                d,
                n,
                w_enc: file.f32("w_enc", &[n, d])?,
                b_enc: file.f32("b_enc", &[n])?,
                w_dec: file.f32("w_dec", &[n, d])?,
                b_dec: file.f32("b_dec", &[d])?,
            },
            adam_w_enc: moments("w_enc", &[n, d])?,
            adam_b_enc: moments("b_enc", &[n])?,
            adam_w_dec: moments("w_dec", &[n, d])?,
            adam_b_dec: moments("b_dec", &[d])?,
            since_fired: file.u64("since_fired", &[n])?,
            step: meta.step,
            input_scale: scalars[0] as f32,
            threshold_sum: scalars[1],
            threshold_count: meta.threshold_count,
            elapsed_secs: scalars[2],
            last: meta.last,
        };
        Ok((state, meta.source))
    }

    /// One Adam step from the pass's gradients. Decoder-row gradients lose their component
    /// along the (unit) row first and rows are renormalised after, so the update moves
    /// directions only (Gao et al.). Each latent's gradient is summed and applied in the same
    /// task, so no dense gradient buffer is ever materialised; the same visit adds the
    /// latent's input-side `b_dec` gradient term, from `W_enc[j]` before it moves.
    fn update(&mut self, pass: &Pass, cfg: &TrainConfig, lr: f32) {
        let d = self.params.d;
        let t = (self.step + 1) as i32;
        let (b1, b2) = cfg.adam_betas;
        let adam = Adam {
            lr,
            b1,
            b2,
            eps: cfg.adam_eps,
            c1: 1.0 / (1.0 - b1.powi(t)),
            c2: 1.0 / (1.0 - b2.powi(t)),
        };
        let p = &mut self.params;
        let w = LATENT_BLOCK * d;
        let partials: Vec<Vec<f32>> = p
            .w_enc
            .par_chunks_mut(w)
            .zip(self.adam_w_enc.rows(w))
            .zip(p.w_dec.par_chunks_mut(w))
            .zip(self.adam_w_dec.rows(w))
            .zip(p.b_enc.par_chunks_mut(LATENT_BLOCK))
            .zip(self.adam_b_enc.rows(LATENT_BLOCK))
            .enumerate()
            .map(
                |(
                    blk,
                    (((((w_enc, (m_enc, v_enc)), w_dec), (m_dec, v_dec)), b_enc), (m_b, v_b)),
                )| {
                    let (mut g_dec, mut g_enc) = (vec![0.0f32; d], vec![0.0f32; d]);
                    let mut g_b_dec = vec![0.0f32; d];
                    for l in 0..b_enc.len() {
                        let j = blk * LATENT_BLOCK + l;
                        let r = l * d..(l + 1) * d;
                        let g_b = if pass.touched(j) {
                            pass.latent_grad(j, &mut g_dec, &mut g_enc)
                        } else {
                            // No row used latent j: zero gradient, but Adam's momentum still moves it.
                            g_dec.fill(0.0);
                            g_enc.fill(0.0);
                            0.0
                        };
                        add_input_bias_grad(&mut g_b_dec, g_b, &w_enc[r.clone()]);
                        let w_dec = &mut w_dec[r.clone()];
                        let along = dot(&g_dec, w_dec);
                        axpy(-along, w_dec, &mut g_dec);
                        adam.apply(
                            &mut w_enc[r.clone()],
                            &mut m_enc[r.clone()],
                            &mut v_enc[r.clone()],
                            &g_enc,
                        );
                        adam.apply(w_dec, &mut m_dec[r.clone()], &mut v_dec[r.clone()], &g_dec);
                        adam.apply(&mut b_enc[l..=l], &mut m_b[l..=l], &mut v_b[l..=l], &[g_b]);
                        normalize(w_dec);
                    }
                    g_b_dec
                },
            )
            .collect();
        let mut g_b_dec: Vec<f64> = pass.grad_b_dec_output().iter().map(|&g| g as f64).collect();
        for part in partials {
            g_b_dec
                .iter_mut()
                .zip(part)
                .for_each(|(a, b)| *a += b as f64);
        }
        let g_b_dec: Vec<f32> = g_b_dec.into_iter().map(|g| g as f32).collect();
        adam.apply(
            &mut p.b_dec,
            &mut self.adam_b_dec.m,
            &mut self.adam_b_dec.v,
            &g_b_dec,
        );
    }

    /// The weights folded back to raw-residual space (see [`crate::export`]).
    fn export(
        &self,
        cfg: &TrainConfig,
        provenance: &Provenance,
        stats: TrainingStats,
    ) -> Result<TrainedSae> {
        let (d, n) = (self.params.d, self.params.n);
        let s = self.input_scale;
        let p = &self.params;
        let mut w_enc = vec![0.0; d * n];
        for (j, row) in p.w_enc.chunks(d).enumerate() {
            for (c, &v) in row.iter().enumerate() {
                w_enc[c * n + j] = v;
            }
        }
        let activation = match cfg.activation {
            ActivationKind::TopK => TrainedActivation::TopK { k: cfg.k },
            ActivationKind::BatchTopK => TrainedActivation::BatchTopK {
                k: cfg.k,
                threshold: if self.threshold_count > 0 {
                    (self.threshold_sum / self.threshold_count as f64) as f32 / s
                } else {
                    0.0
                },
            },
        };
        let config = TrainedSaeConfig {
            d_in: d,
            d_sae: n,
            activation,
            input_scale: s,
            model: provenance.model.clone(),
            layer: provenance.layer,
            store_fingerprint: provenance.fingerprint.clone(),
            train: cfg.clone(),
            stats,
        };
        TrainedSae::new(
            config,
            SaeWeights {
                w_enc,
                b_enc: p.b_enc.iter().map(|b| b / s).collect(),
                w_dec: p.w_dec.clone(),
                b_dec: p.b_dec.iter().map(|b| b / s).collect(),
            },
        )
    }
}

fn adam_name(param: &str, which: char) -> &'static str {
    // Static names keep the tensor list borrow-free; the set is closed.
    match (param, which) {
        ("w_enc", 'm') => "adam.w_enc.m",
        ("w_enc", _) => "adam.w_enc.v",
        ("b_enc", 'm') => "adam.b_enc.m",
        ("b_enc", _) => "adam.b_enc.v",
        ("w_dec", 'm') => "adam.w_dec.m",
        ("w_dec", _) => "adam.w_dec.v",
        ("b_dec", 'm') => "adam.b_dec.m",
        _ => "adam.b_dec.v",
    }
}

/// Weiszfeld's iteration for the geometric median of `rows`, from their mean; robust to the
/// outlier rows that pull a mean away from the bulk.
fn geometric_median(rows: &[f32], d: usize, iters: usize) -> Vec<f32> {
    let n = rows.len() / d;
    let mut y = vec![0.0f64; d];
    for r in rows.chunks(d) {
        y.iter_mut()
            .zip(r)
            .for_each(|(y, &v)| *y += v as f64 / n as f64);
    }
    for _ in 0..iters {
        let mut num = vec![0.0f64; d];
        let mut den = 0.0;
        for r in rows.chunks(d) {
            let dist = r
                .iter()
                .zip(&y)
                .map(|(&v, y)| (v as f64 - y).powi(2))
                .sum::<f64>()
                .sqrt()
                .max(1e-8);
            num.iter_mut()
                .zip(r)
                .for_each(|(a, &v)| *a += v as f64 / dist);
            den += 1.0 / dist;
        }
        y = num.into_iter().map(|a| a / den).collect();
    }
    y.into_iter().map(|v| v as f32).collect()
}

const CSV_HEADER: &str = "step,tokens,mse,aux_loss,fvu,l0,dead_fraction,lr,tokens_per_sec";

/// The metrics CSV, opened for appending after dropping rows beyond the resumed step.
struct Csv {
    path: PathBuf,
    out: BufWriter<File>,
}

impl Csv {
    fn open(path: PathBuf, through_step: u64) -> Result<Self> {
        let mut text = format!("{CSV_HEADER}\n");
        if let Ok(old) = std::fs::read_to_string(&path) {
            for line in old.lines().skip(1) {
                let step = line.split(',').next().and_then(|s| s.parse::<u64>().ok());
                if step.is_some_and(|s| s <= through_step) {
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
        atomic_write(&path, text.as_bytes())?;
        let file = File::options()
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        Ok(Csv {
            path,
            out: BufWriter::new(file),
        })
    }

    fn row(&mut self, m: &StepMetrics) -> Result<()> {
        writeln!(
            self.out,
            "{},{},{},{},{},{},{},{},{:.1}",
            m.step,
            m.tokens,
            m.mse,
            m.aux_loss,
            m.fvu,
            m.l0,
            m.dead_fraction,
            m.lr,
            m.tokens_per_sec
        )
        .map_err(io_err(&self.path))
    }

    fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(io_err(&self.path))
    }
}

/// Evaluates the exported SAE on held-out raw rows.
fn evaluate(sae: &TrainedSae, rows: &[f32], input_scale: f32) -> EvalStats {
    let d = sae.config().d_in;
    let n_rows = rows.len() / d;
    let codes = sae.encode(rows);
    let recon = sae.decode(&codes);
    let sq: f64 = rows
        .iter()
        .zip(&recon)
        .map(|(&x, &r)| (x as f64 - r as f64).powi(2))
        .sum();
    let mut mean = vec![0.0f64; d];
    for r in rows.chunks(d) {
        mean.iter_mut()
            .zip(r)
            .for_each(|(m, &v)| *m += v as f64 / n_rows as f64);
    }
    let var: f64 = rows
        .chunks(d)
        .flat_map(|r| r.iter().zip(&mean).map(|(&v, m)| (v as f64 - m).powi(2)))
        .sum();
    let mut used = vec![false; sae.config().d_sae];
    codes
        .iter()
        .flatten()
        .for_each(|&(j, _)| used[j as usize] = true);
    let active: usize = codes.iter().map(Vec::len).sum();
    EvalStats {
        rows: n_rows,
        fvu: (sq / var.max(1e-30)) as f32,
        mse: (sq / (n_rows * d) as f64 * (input_scale as f64).powi(2)) as f32,
        l0: active as f32 / n_rows as f32,
        unused_fraction: used.iter().filter(|&&u| !u).count() as f32 / used.len() as f32,
    }
}

/// The checkpoint's file name in a run's output directory.
pub(crate) const CHECKPOINT_FILE: &str = "checkpoint.safetensors";

/// Trains an SAE on `store`, writing checkpoints, `metrics.csv` and the final SAE into
/// `out_dir`, and resuming from `out_dir/checkpoint.safetensors` if present (its config, bar
/// `checkpoint_every` and `eval_rows`, and its store must match, else
/// [`Error::CheckpointMismatch`]).
///
/// Training uses all shards but the last `eval_shards`; those are evaluated at the end.
/// `on_step` sees every step's metrics; returning `ControlFlow::Break(())` checkpoints and
/// returns [`TrainOutcome::Stopped`].
pub fn train(
    cfg: &TrainConfig,
    store: &StoreReader,
    out_dir: &Path,
    on_step: impl FnMut(&StepMetrics) -> ControlFlow<()>,
) -> Result<TrainOutcome> {
    cfg.validate_store(store)?;
    let n_shards = store.shards().len();
    let train_shards: Vec<usize> = (0..n_shards - cfg.eval_shards).collect();
    let eval_shards: Vec<usize> = (n_shards - cfg.eval_shards..n_shards).collect();
    std::fs::create_dir_all(out_dir).map_err(io_err(out_dir))?;
    let ckpt = out_dir.join(CHECKPOINT_FILE);
    let fingerprint = store.fingerprint();
    let state = if ckpt.exists() {
        State::load(&tensors::In::read(&ckpt)?, &ckpt, cfg, &fingerprint)?.0
    } else {
        State::init(
            cfg,
            store.sample(&train_shards, cfg.init_sample_rows, cfg.seed)?,
        )?
    };
    let stream = store.stream(&train_shards, cfg.seed, cfg.shuffle_window_shards)?;
    let provenance = Provenance {
        model: store.meta().model.clone(),
        layer: store.meta().layer,
        fingerprint,
    };
    run_to_end(
        cfg,
        state,
        stream,
        out_dir,
        &provenance,
        || store.read_rows(&eval_shards, cfg.eval_rows),
        on_step,
    )
}

/// Trains `state` to the end of the run on `source`'s rows (see [`run_steps`]), then exports
/// the SAE into `out_dir`, evaluated on the raw rows that `held_out` returns (if any).
pub(crate) fn run_to_end(
    cfg: &TrainConfig,
    mut state: State,
    mut source: impl RowSource,
    out_dir: &Path,
    provenance: &Provenance,
    held_out: impl FnOnce() -> Result<Vec<f32>>,
    mut on_step: impl FnMut(&StepMetrics) -> ControlFlow<()>,
) -> Result<TrainOutcome> {
    let fingerprint = &provenance.fingerprint;
    let steps = run_steps(
        cfg,
        &mut state,
        &mut source,
        out_dir,
        fingerprint,
        &mut on_step,
    )?;
    if let ControlFlow::Break(step) = steps {
        return Ok(TrainOutcome::Stopped { step });
    }
    // The source's memory (a streaming buffer) goes before the evaluation's rows come.
    drop(source);
    let sae = finish(cfg, &state, provenance, &held_out()?, out_dir)?;
    Ok(TrainOutcome::Finished(Box::new(sae)))
}

/// Runs the steps from `state.step` to the end of the run on `source`'s rows, appending to
/// `out_dir/metrics.csv` (dropping rows past the checkpoint first) and checkpointing into
/// `out_dir/checkpoint.safetensors` every `checkpoint_every` steps and at the end. Returns
/// `Break(step)`, after a checkpoint, when `on_step` asked to stop before the end.
fn run_steps(
    cfg: &TrainConfig,
    state: &mut State,
    source: &mut impl RowSource,
    out_dir: &Path,
    fingerprint: &str,
    on_step: &mut impl FnMut(&StepMetrics) -> ControlFlow<()>,
) -> Result<ControlFlow<u64>> {
    let ckpt = out_dir.join(CHECKPOINT_FILE);
    let mut csv = Csv::open(out_dir.join("metrics.csv"), state.step)?;
    let b = cfg.batch_size;
    let total_steps = cfg.total_steps();
    let pass_cfg = cfg.pass_config();
    let mut pass = Pass::default();
    let mut batch = Vec::new();
    while state.step < total_steps {
        let t0 = Instant::now();
        source.batch(state.step, b, &mut batch)?;
        let s = state.input_scale;
        batch.iter_mut().for_each(|v| *v *= s);
        let dead: Vec<u32> = (0..cfg.d_sae as u32)
            .filter(|&j| state.since_fired[j as usize] >= cfg.dead_tokens)
            .collect();
        let t_load = t0.elapsed().as_secs_f64();
        let stats = pass.run(&state.params, &batch, &pass_cfg, &dead);
        let lr = cfg.lr_at(state.step);
        let t_update = Instant::now();
        state.update(&pass, cfg, lr);
        for (j, since) in state.since_fired.iter_mut().enumerate() {
            *since = if pass.fired(j) {
                0
            } else {
                since.saturating_add(b as u64)
            };
        }
        if let Some(t) = stats.min_kept {
            // The inference threshold averages the batch thresholds once warm-up is over
            // (and at least over the last step).
            if state.step >= cfg.warmup_steps.min(total_steps - 1) {
                state.threshold_sum += t as f64;
                state.threshold_count += 1;
            }
        }
        let update = t_update.elapsed().as_secs_f64();
        let secs = t0.elapsed().as_secs_f64();
        state.step += 1;
        state.elapsed_secs += secs;
        let metrics = StepMetrics {
            step: state.step,
            total_steps,
            tokens: state.step * b as u64,
            mse: stats.mse,
            aux_loss: stats.aux,
            fvu: stats.fvu,
            l0: stats.l0,
            dead_fraction: dead.len() as f32 / cfg.d_sae as f32,
            lr,
            tokens_per_sec: (b as f64 / secs) as f32,
            phases: PhaseTimes {
                load: t_load,
                matmul: stats.matmul_secs,
                select: stats.select_secs,
                sparse: stats.sparse_secs,
                update,
            },
        };
        csv.row(&metrics)?;
        let stop = on_step(&metrics).is_break();
        state.last = Some(metrics);
        if stop || state.step.is_multiple_of(cfg.checkpoint_every) || state.step == total_steps {
            csv.flush()?;
            state.save(&ckpt, cfg, fingerprint, source.checkpoint())?;
        }
        if stop && state.step < total_steps {
            return Ok(ControlFlow::Break(state.step));
        }
    }
    csv.flush()?;
    Ok(ControlFlow::Continue(()))
}

/// The finished run's SAE, evaluated on the raw rows `held_out` (if any), saved in `out_dir`.
fn finish(
    cfg: &TrainConfig,
    state: &State,
    provenance: &Provenance,
    held_out: &[f32],
    out_dir: &Path,
) -> Result<TrainedSae> {
    let stats = TrainingStats {
        steps: state.step,
        tokens: state.step * cfg.batch_size as u64,
        elapsed_secs: state.elapsed_secs,
        last_step: state.last.clone(),
        held_out: None,
    };
    let mut sae = state.export(cfg, provenance, stats)?;
    if !held_out.is_empty() {
        let eval = evaluate(&sae, held_out, state.input_scale);
        let (mut config, weights) = sae.into_parts();
        config.stats.held_out = Some(eval);
        sae = TrainedSae::new(config, weights)?;
    }
    sae.save(out_dir)?;
    Ok(sae)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use crate::store::{Dtype, StoreMeta, StoreWriter};

    /// A store whose rows are `offset + Σ_{3 of 48} a_i f_i + noise` for unit ground-truth
    /// directions `f_i`, scaled like Gemma residuals (norms in the hundreds).
    fn synthetic_store(dir: &Path, d: usize, shards: usize, rows_per_shard: usize) -> StoreReader {
        let meta = StoreMeta {
            model: "synthetic".into(),
            layer: 0,
            corpus_checksum: "none".into(),
            d,
            dtype: Dtype::F32,
            rows_per_shard,
        };
        let (w, _) = StoreWriter::create_or_resume(dir, meta).unwrap();
        let mut rng = Rng::derive(99, &[]);
        let n_true = 48;
        let mut dirs: Vec<f32> = (0..n_true * d).map(|_| rng.normal() as f32).collect();
        dirs.chunks_mut(d).for_each(normalize);
        let offset: Vec<f32> = (0..d).map(|_| 40.0 * rng.normal() as f32).collect();
        for s in 0..shards {
            let mut rows = Vec::with_capacity(rows_per_shard * d);
            for _ in 0..rows_per_shard {
                let mut x: Vec<f32> = offset
                    .iter()
                    .map(|o| o + 2.0 * rng.normal() as f32)
                    .collect();
                for _ in 0..3 {
                    let f = rng.below(n_true as u64) as usize;
                    let a = 100.0 + 200.0 * rng.uniform() as f32;
                    axpy(a, &dirs[f * d..(f + 1) * d], &mut x);
                }
                rows.extend(x);
            }
            let docs = s as u64 * 10..(s as u64 + 1) * 10;
            w.write_shard(s, &rows, rows_per_shard, docs).unwrap();
        }
        StoreReader::open(dir).unwrap()
    }

    fn small_config() -> TrainConfig {
        TrainConfig {
            d_in: 32,
            d_sae: 64,
            k: 4,
            batch_size: 128,
            lr: Some(1e-2),
            warmup_steps: 10,
            total_tokens: 128 * 300,
            aux_k: Some(8),
            dead_tokens: 128 * 20,
            checkpoint_every: 50,
            shuffle_window_shards: 2,
            init_sample_rows: 512,
            eval_rows: 512,
            ..TrainConfig::default()
        }
    }

    fn finished(outcome: TrainOutcome) -> TrainedSae {
        match outcome {
            TrainOutcome::Finished(sae) => *sae,
            TrainOutcome::Stopped { step } => panic!("stopped at {step}"),
        }
    }

    #[test]
    fn learns_sparse_synthetic_data() {
        let dir = tempfile::tempdir().unwrap();
        let store = synthetic_store(&dir.path().join("store"), 32, 5, 1024);
        for activation in [ActivationKind::TopK, ActivationKind::BatchTopK] {
            let cfg = TrainConfig {
                activation,
                ..small_config()
            };
            let out = dir.path().join(format!("{activation:?}"));
            let mut first_fvu = None;
            let sae = finished(
                train(&cfg, &store, &out, |m| {
                    first_fvu.get_or_insert(m.fvu);
                    ControlFlow::Continue(())
                })
                .unwrap(),
            );
            let stats = &sae.config().stats;
            let last = stats.last_step.as_ref().unwrap();
            let held = stats.held_out.unwrap();
            eprintln!(
                "{activation:?}: fvu {:?} -> {} (held-out {held:?}), dead {}",
                first_fvu, last.fvu, last.dead_fraction
            );
            assert_eq!(stats.steps, 300);
            assert!(last.fvu < 0.1, "training fvu {}", last.fvu);
            assert!(held.fvu < 0.15, "held-out fvu {}", held.fvu);
            assert!(
                last.dead_fraction < 0.5,
                "dead fraction {}",
                last.dead_fraction
            );
            match sae.config().activation {
                TrainedActivation::TopK { k } => assert_eq!(k, 4),
                TrainedActivation::BatchTopK { threshold, .. } => {
                    assert!(threshold > 0.0);
                    // The threshold reproduces roughly k active latents per row.
                    assert!((2.0..8.0).contains(&held.l0), "held-out l0 {}", held.l0);
                }
            }
            // Weights round-trip exactly (safetensors); f64 stats in JSON may move by an ulp.
            let loaded = TrainedSae::load(&out).unwrap();
            assert_eq!(loaded.weights(), sae.weights());
            assert_eq!(loaded.config().activation, sae.config().activation);
            assert_eq!(loaded.config().train, sae.config().train);
            let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
            assert_eq!(csv.lines().count(), 301);
        }
    }

    #[test]
    fn stopped_and_resumed_run_matches_uninterrupted_bitwise() {
        let dir = tempfile::tempdir().unwrap();
        let store = synthetic_store(&dir.path().join("store"), 32, 4, 300);
        let cfg = TrainConfig {
            total_tokens: 128 * 60,
            checkpoint_every: 7,
            dead_tokens: 128 * 3, // AuxK active during the run
            activation: ActivationKind::BatchTopK,
            ..small_config()
        };
        let whole = finished(
            train(&cfg, &store, &dir.path().join("a"), |_| {
                ControlFlow::Continue(())
            })
            .unwrap(),
        );
        let out = dir.path().join("b");
        let stopped = train(&cfg, &store, &out, |m| {
            if m.step == 23 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
        assert!(matches!(stopped, TrainOutcome::Stopped { step: 23 }));
        // Simulate a crash after step 30: the checkpoint at 28 survives, the CSV has rows
        // beyond it, which the resumed run must drop.
        let crashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            train(&cfg, &store, &out, |m| {
                assert_ne!(m.step, 30, "simulated crash");
                ControlFlow::Continue(())
            })
        }));
        assert!(crashed.is_err());
        let resumed = finished(train(&cfg, &store, &out, |_| ControlFlow::Continue(())).unwrap());
        assert_eq!(
            resumed.weights(),
            whole.weights(),
            "weights differ after resume"
        );
        assert_eq!(resumed.config().activation, whole.config().activation);
        assert_eq!(resumed.config().stats.steps, 60);
        let steps = |p: PathBuf| -> Vec<String> {
            std::fs::read_to_string(p.join("metrics.csv"))
                .unwrap()
                .lines()
                .map(|l| l.rsplit_once(',').unwrap().0.to_owned()) // drop tokens/s
                .collect()
        };
        assert_eq!(steps(out.clone()), steps(dir.path().join("a")));
        // Running again after the end re-exports the same SAE.
        let again = finished(train(&cfg, &store, &out, |_| panic!("no steps left")).unwrap());
        assert_eq!(again.weights(), whole.weights());
    }

    #[test]
    fn weights_do_not_depend_on_the_thread_count() {
        let dir = tempfile::tempdir().unwrap();
        let store = synthetic_store(&dir.path().join("store"), 32, 3, 400);
        let cfg = TrainConfig {
            total_tokens: 128 * 20,
            dead_tokens: 128 * 3,
            ..small_config()
        };
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let out = dir.path().join(format!("t{threads}"));
            pool.install(|| {
                finished(train(&cfg, &store, &out, |_| ControlFlow::Continue(())).unwrap())
            })
        };
        assert_eq!(run(1).weights(), run(3).weights());
    }

    #[test]
    fn resume_refuses_a_different_config() {
        let dir = tempfile::tempdir().unwrap();
        let store = synthetic_store(&dir.path().join("store"), 32, 2, 300);
        let cfg = TrainConfig {
            total_tokens: 128 * 4,
            ..small_config()
        };
        let out = dir.path().join("run");
        train(&cfg, &store, &out, |_| ControlFlow::Break(())).unwrap();
        let other = TrainConfig {
            k: 5,
            ..cfg.clone()
        };
        let err = train(&other, &store, &out, |_| ControlFlow::Continue(())).unwrap_err();
        assert!(matches!(err, Error::CheckpointMismatch { .. }), "{err}");
        assert!(err.to_string().contains("k (4 -> 5)"), "{err}");
        // Run-only settings may change.
        let fine = TrainConfig {
            checkpoint_every: 3,
            eval_rows: 10,
            ..cfg
        };
        finished(train(&fine, &store, &out, |_| ControlFlow::Continue(())).unwrap());
    }

    #[test]
    fn export_on_raw_inputs_equals_the_trained_model_on_scaled_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let store = synthetic_store(&dir.path().join("store"), 32, 2, 300);
        let cfg = small_config();
        let sample = store.sample(&[0], cfg.init_sample_rows, cfg.seed).unwrap();
        let mut state = State::init(&cfg, sample).unwrap();
        let provenance = Provenance {
            model: store.meta().model.clone(),
            layer: store.meta().layer,
            fingerprint: store.fingerprint(),
        };
        assert!(
            (state.input_scale - 0.02).abs() < 0.015,
            "scale {}",
            state.input_scale
        );
        // Perturb away from the tied init so every parameter matters.
        let mut rng = Rng::derive(3, &[]);
        state
            .params
            .w_enc
            .iter_mut()
            .for_each(|w| *w += 0.3 * rng.normal() as f32);
        state
            .params
            .b_enc
            .iter_mut()
            .for_each(|b| *b = 0.5 * rng.normal() as f32);
        let raw = store.read_rows(&[1], 64).unwrap();
        let s = state.input_scale;
        let scaled: Vec<f32> = raw.iter().map(|v| v * s).collect();
        let mut pass = Pass::default();
        pass.run(&state.params, &scaled, &cfg.pass_config(), &[]);
        let stats = TrainingStats {
            steps: 0,
            tokens: 0,
            elapsed_secs: 0.0,
            last_step: None,
            held_out: None,
        };
        let sae = state.export(&cfg, &provenance, stats.clone()).unwrap();
        let codes = sae.encode(&raw);
        let recon = sae.decode(&codes);
        let d = cfg.d_in;
        for (i, code) in codes.iter().enumerate() {
            let trained = pass.code(i);
            assert_eq!(
                code.iter().map(|c| c.0).collect::<Vec<_>>(),
                trained.iter().map(|c| c.0).collect::<Vec<_>>()
            );
            for (&(_, v), &(_, t)) in code.iter().zip(&trained) {
                assert!(
                    (v * s - t).abs() <= 1e-4 * t.abs().max(1.0),
                    "{v} * {s} vs {t}"
                );
            }
            let trained_recon = pass.recon(i, &scaled[i * d..(i + 1) * d]);
            for (&r, &t) in recon[i * d..(i + 1) * d].iter().zip(&trained_recon) {
                assert!(
                    (r * s - t).abs() <= 1e-4 * t.abs().max(1.0),
                    "{r} * {s} vs {t}"
                );
            }
        }
        // BatchTopK: the exported threshold selects, on raw rows, exactly the latents whose
        // normalised pre-activation clears the trained threshold.
        state.threshold_sum = 0.9;
        state.threshold_count = 3;
        let bt = TrainConfig {
            activation: ActivationKind::BatchTopK,
            ..cfg
        };
        let sae = state.export(&bt, &provenance, stats).unwrap();
        let p = &state.params;
        for (i, code) in sae.encode(&raw).iter().enumerate() {
            let x = &scaled[i * d..(i + 1) * d];
            let want: Vec<u32> = (0..p.n)
                .filter(|&j| {
                    let pre: f32 = (0..d)
                        .map(|c| (x[c] - p.b_dec[c]) * p.w_enc[j * d + c])
                        .sum::<f32>()
                        + p.b_enc[j];
                    pre > 0.3
                })
                .map(|j| j as u32)
                .collect();
            assert_eq!(code.iter().map(|c| c.0).collect::<Vec<_>>(), want);
        }
    }

    #[test]
    fn lr_schedule_warms_up_and_decays_to_zero() {
        let cfg = TrainConfig {
            lr: Some(1.0),
            warmup_steps: 4,
            batch_size: 1,
            total_tokens: 100,
            decay_fraction: 0.2,
            ..TrainConfig::default()
        };
        assert_eq!(cfg.lr_at(0), 0.25);
        assert_eq!(cfg.lr_at(3), 1.0);
        assert_eq!(cfg.lr_at(79), 1.0);
        assert_eq!(cfg.lr_at(80), 1.0);
        assert_eq!(cfg.lr_at(90), 0.5);
        assert_eq!(cfg.lr_at(99), 0.05);
        assert_eq!(TrainConfig::default().learning_rate(), 2e-4);
        assert_eq!(TrainConfig::default().aux_k(), 320);
        let json = serde_json::to_string(&TrainConfig::default()).unwrap();
        assert_eq!(
            serde_json::from_str::<TrainConfig>(&json).unwrap(),
            TrainConfig::default()
        );
        assert_eq!(
            serde_json::from_str::<TrainConfig>("{}").unwrap(),
            TrainConfig::default()
        );
    }

    #[test]
    fn geometric_median_resists_outliers() {
        let mut rows = vec![1.0f32, 1.0, 1.1, 0.9, 0.9, 1.1, 1.0, 1.0];
        rows.extend([1000.0, -1000.0]);
        let m = geometric_median(&rows, 2, 50);
        assert!(
            (m[0] - 1.0).abs() < 0.2 && (m[1] - 1.0).abs() < 0.2,
            "{m:?}"
        );
    }
}
