//! The trained SAE as plain data, in raw-residual space.
//!
//! Training runs on inputs multiplied by `input_scale` (so that `E|x| = sqrt(d_in)`). The
//! export folds that factor back so the weights apply to raw residuals: with `s` the scale
//! and primes for the trained (normalised-space) parameters,
//! `W_enc = W_enc'ᵀ`, `b_enc = b_enc' / s`, `W_dec = W_dec'` (unit-norm rows),
//! `b_dec = b_dec' / s`, BatchTopK `threshold = threshold' / s`. Then every pre-activation,
//! activation and reconstruction is the trained model's on `s·x`, divided by `s`; the top-k
//! choice is unchanged because dividing by `s > 0` preserves order.
//!
//! Files written by [`TrainedSae::save`]: `sae.safetensors` (f32 tensors `W_enc [d_in, d_sae]`,
//! `b_enc [d_sae]`, `W_dec [d_sae, d_in]`, `b_dec [d_in]`, Gemma Scope names and layouts) and
//! `sae.json` ([`TrainedSaeConfig`]).

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::linalg::TopK;
use crate::store::{atomic_write, read_json, to_json_bytes};
use crate::tensors::{self, Out};
use crate::trainer::{EvalStats, StepMetrics, TrainConfig};
use crate::{Error, Result};
use saener_kernels::{axpy, matmul};

/// How the exported SAE selects latents at inference.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TrainedActivation {
    /// The `k` largest positive pre-activations of each row.
    TopK { k: usize },
    /// Trained with BatchTopK (`k` per row on average over a batch); at inference every
    /// pre-activation above `threshold` (raw-residual units) is kept, per row, as in
    /// Bussmann et al. 2024.
    BatchTopK { k: usize, threshold: f32 },
}

/// Totals and final metrics of a training run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TrainingStats {
    /// Optimiser steps taken.
    pub steps: u64,
    /// Training rows consumed.
    pub tokens: u64,
    /// Wall-clock seconds spent in training steps, over all resumed runs.
    pub elapsed_secs: f64,
    /// Metrics of the last step.
    pub last_step: Option<StepMetrics>,
    /// Metrics on the held-out shards, with the exported (inference) activation.
    pub held_out: Option<EvalStats>,
}

/// Everything about a trained SAE except its weights; serialised as `sae.json`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TrainedSaeConfig {
    /// Input (residual) width.
    pub d_in: usize,
    /// Number of latents.
    pub d_sae: usize,
    /// Inference activation.
    pub activation: TrainedActivation,
    /// The factor inputs were multiplied by during training. Informational: it is already
    /// folded into the exported weights, which apply to raw residuals.
    pub input_scale: f32,
    /// The store's model and layer, copied so the SAE says what it reads.
    pub model: String,
    /// Residual-stream layer.
    pub layer: usize,
    /// [`StoreReader::fingerprint`](crate::StoreReader::fingerprint) of the training data.
    pub store_fingerprint: String,
    /// The training configuration.
    pub train: TrainConfig,
    /// Training totals and metrics.
    pub stats: TrainingStats,
}

/// The weights, row-major f32, in Gemma Scope layout.
#[derive(Clone, Debug, PartialEq)]
pub struct SaeWeights {
    /// `[d_in, d_sae]`.
    pub w_enc: Vec<f32>,
    /// `[d_sae]`.
    pub b_enc: Vec<f32>,
    /// `[d_sae, d_in]`, unit-norm rows.
    pub w_dec: Vec<f32>,
    /// `[d_in]`.
    pub b_dec: Vec<f32>,
}

/// A trained SAE: weights in raw-residual space plus its config.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainedSae {
    config: TrainedSaeConfig,
    weights: SaeWeights,
}

/// Rows encoded per dense matmul in [`TrainedSae::encode`], bounding its scratch.
const ENCODE_ROWS: usize = 256;

impl TrainedSae {
    /// Assembles an SAE, checking the weight shapes against the config.
    pub fn new(config: TrainedSaeConfig, weights: SaeWeights) -> Result<Self> {
        let (d, n) = (config.d_in, config.d_sae);
        let shapes = [
            ("W_enc", weights.w_enc.len(), d * n),
            ("b_enc", weights.b_enc.len(), n),
            ("W_dec", weights.w_dec.len(), n * d),
            ("b_dec", weights.b_dec.len(), d),
        ];
        for (name, have, want) in shapes {
            if have != want {
                return Err(Error::Invalid(format!(
                    "{name} has {have} values, expected {want} for d_in {d}, d_sae {n}"
                )));
            }
        }
        Ok(TrainedSae { config, weights })
    }

    /// The config.
    pub fn config(&self) -> &TrainedSaeConfig {
        &self.config
    }

    /// The weights.
    pub fn weights(&self) -> &SaeWeights {
        &self.weights
    }

    /// The trained SAE as a [`saener_sae::Sae`], ready to encode raw residuals or be saved in
    /// any format; `name` goes into its config. The training record (config and stats)
    /// travels with it.
    pub fn to_sae(&self, name: &str) -> std::result::Result<saener_sae::Sae, saener_sae::Error> {
        use saener_sae::{Activation, SaeConfig};
        let c = &self.config;
        let activation = match c.activation {
            TrainedActivation::TopK { k } => Activation::TopK { k },
            TrainedActivation::BatchTopK { k, threshold } => Activation::BatchTopK {
                k,
                threshold,
                topk_above_norm: None,
            },
        };
        let mut config = SaeConfig::new(c.d_in, c.d_sae, activation);
        // The trainer encodes `(x − b_dec)·W_enc + b_enc`.
        config.apply_b_dec_to_input = true;
        config.hook_layer = Some(c.layer);
        config.hook_name = Some(format!("blocks.{}.hook_resid_post", c.layer));
        config.model = Some(c.model.clone());
        config.name = Some(name.to_string());
        config.training = Some(serde_json::to_value(c).expect("config serializes"));
        let w = &self.weights;
        saener_sae::Sae::new(
            config,
            w.w_enc.clone(),
            w.b_enc.clone(),
            w.w_dec.clone(),
            w.b_dec.clone(),
            None,
        )
    }

    /// Splits into config and weights.
    pub fn into_parts(self) -> (TrainedSaeConfig, SaeWeights) {
        (self.config, self.weights)
    }

    /// Sparse codes of raw residual rows `x [rows, d_in]`: per row, `(latent, activation)`
    /// sorted by latent.
    pub fn encode(&self, x: &[f32]) -> Vec<Vec<(u32, f32)>> {
        let (d, n) = (self.config.d_in, self.config.d_sae);
        let w = &self.weights;
        let mut out = Vec::with_capacity(x.len() / d);
        let mut pre = Vec::new();
        let mut top = TopK::default();
        for chunk in x.chunks(ENCODE_ROWS * d) {
            let rows = chunk.len() / d;
            let xc: Vec<f32> = chunk
                .chunks(d)
                .flat_map(|r| r.iter().zip(&w.b_dec).map(|(x, c)| x - c))
                .collect();
            pre.resize(rows * n, 0.0);
            matmul(rows, d, n, &xc, &w.w_enc, false, &mut pre, false, true);
            for row in pre.chunks_mut(n) {
                row.iter_mut().zip(&w.b_enc).for_each(|(p, b)| *p += b);
                let mut code = Vec::new();
                match self.config.activation {
                    TrainedActivation::TopK { k } => {
                        top.reset(k);
                        top.scan(row);
                        top.drain_into(&mut code);
                    }
                    TrainedActivation::BatchTopK { threshold, .. } => {
                        let floor = threshold.max(0.0);
                        code.extend(
                            row.iter()
                                .enumerate()
                                .filter(|&(_, &v)| v > floor)
                                .map(|(j, &v)| (j as u32, v)),
                        );
                    }
                }
                out.push(code);
            }
        }
        out
    }

    /// Reconstructions `[rows, d_in]` of sparse codes.
    pub fn decode(&self, codes: &[Vec<(u32, f32)>]) -> Vec<f32> {
        let d = self.config.d_in;
        let w = &self.weights;
        let mut out = Vec::with_capacity(codes.len() * d);
        for code in codes {
            let start = out.len();
            out.extend_from_slice(&w.b_dec);
            for &(j, v) in code {
                let j = j as usize;
                axpy(v, &w.w_dec[j * d..(j + 1) * d], &mut out[start..]);
            }
        }
        out
    }

    /// Writes `dir/sae.safetensors` and `dir/sae.json` (atomically, weights first).
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(crate::io_err(dir))?;
        let (d, n) = (self.config.d_in, self.config.d_sae);
        let w = &self.weights;
        tensors::write(
            &dir.join("sae.safetensors"),
            vec![
                ("W_enc", Out::F32(&w.w_enc, vec![d, n])),
                ("b_enc", Out::F32(&w.b_enc, vec![n])),
                ("W_dec", Out::F32(&w.w_dec, vec![n, d])),
                ("b_dec", Out::F32(&w.b_dec, vec![d])),
            ],
            HashMap::new(),
        )?;
        atomic_write(&dir.join("sae.json"), &to_json_bytes(&self.config))
    }

    /// Reads what [`save`](Self::save) wrote.
    pub fn load(dir: &Path) -> Result<Self> {
        let config: TrainedSaeConfig = read_json(&dir.join("sae.json"))?;
        let (d, n) = (config.d_in, config.d_sae);
        let file = tensors::In::read(&dir.join("sae.safetensors"))?;
        let weights = SaeWeights {
            w_enc: file.f32("W_enc", &[d, n])?,
            b_enc: file.f32("b_enc", &[n])?,
            w_dec: file.f32("W_dec", &[n, d])?,
            b_dec: file.f32("b_dec", &[d])?,
        };
        TrainedSae::new(config, weights)
    }
}
