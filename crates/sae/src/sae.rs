//! What an SAE is: [`SaeConfig`], the weights, and the encode/decode math.
//!
//! Encoding is `pre = (x − b_dec?)·W_enc + b_enc` for a whole batch in one matmul, then a
//! per-token [`Activation`] that keeps some of `pre` (always only positive values, so a code
//! never holds a zero or a negative). Decoding is `codes·W_dec + b_dec`.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::format::{Dtype, Format};
use crate::{Error, Result};
use saener_kernels::matmul;

/// Tokens per matmul in [`Sae::encode_sparse`]: bounds the dense pre-activation buffer
/// (256 × 16k features × 4 B = 16 MiB) while leaving gemm enough rows to run at full speed.
const CHUNK_ROWS: usize = 256;

/// [`Sae::with_batch_topk_threshold`] encodes rows above this multiple of the median row norm
/// by TopK. Gemma 3 270M's layer-9 residuals leave a wide gap here: the 99.5th percentile is
/// 1.45× the median, and the massive-activation rows start near 8×.
pub const MASSIVE_NORM_RATIO: f32 = 4.0;

/// How errors name an SAE that was built in memory rather than loaded from a file.
const IN_MEMORY: &str = "(in-memory SAE)";

/// How pre-activations `pre` become codes. Every rule also drops values `<= 0`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Activation {
    /// `relu(pre)` (SAELens `standard`).
    Relu,
    /// `pre` where `pre > threshold[j]`, with one threshold per feature ([`Sae::threshold`]);
    /// Gemma Scope, SAELens `jumprelu`.
    JumpRelu,
    /// The `k` largest pre-activations of each token, relu'd (SAELens `topk`, sparsify).
    #[serde(rename = "topk")]
    TopK { k: usize },
    /// Trained with batch top-k (`k` per token on average over a batch); at inference one
    /// global `threshold`: `pre` where `pre > threshold`.
    ///
    /// Rows whose input norm exceeds `topk_above_norm` are encoded by TopK `k` instead. A few
    /// tokens carry a model's "massive activations" (Sun et al. 2024; in Gemma 3, about 0.3 %
    /// of tokens at ~10× the median norm); a fixed threshold lets thousands of features fire
    /// on them and reconstructs them badly, while TopK, the rule the SAE was trained with,
    /// handles them. The switch depends on the row alone, so every rule stays per-token.
    #[serde(rename = "batch_topk")]
    BatchTopK {
        k: usize,
        threshold: f32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        topk_above_norm: Option<f32>,
    },
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Activation::Relu => write!(f, "ReLU"),
            Activation::JumpRelu => write!(f, "JumpReLU"),
            Activation::TopK { k } => write!(f, "TopK (k = {k})"),
            Activation::BatchTopK {
                k,
                threshold,
                topk_above_norm,
            } => {
                write!(f, "BatchTopK (k = {k}, inference threshold {threshold}")?;
                match topk_above_norm {
                    Some(norm) => write!(f, "; TopK where the input norm exceeds {norm})"),
                    None => write!(f, ")"),
                }
            }
        }
    }
}

/// The shape, encode rule and provenance of an SAE.
#[derive(Debug, Clone, PartialEq)]
pub struct SaeConfig {
    /// Width of the vectors it reads (the model's `d_model` at the hook).
    pub d_in: usize,
    /// Number of features.
    pub d_sae: usize,
    /// How pre-activations become codes.
    pub activation: Activation,
    /// Subtract `b_dec` from the input before encoding (SAELens, sparsify); Gemma Scope does not.
    pub apply_b_dec_to_input: bool,
    /// The block whose output (`resid_post`) the SAE was trained on, when known.
    pub hook_layer: Option<usize>,
    /// The hook as its format names it, e.g. `blocks.9.hook_resid_post`, `model.layers.9.output`.
    pub hook_name: Option<String>,
    /// The model it was trained on, e.g. `google/gemma-3-270m`.
    pub model: Option<String>,
    /// A human name for the SAE.
    pub name: Option<String>,
    /// Free-form training record (tokens, data, loss, ...), kept by saener's own format.
    pub training: Option<serde_json::Value>,
}

impl SaeConfig {
    /// A config with no b_dec subtraction (the Gemma Scope convention) and no metadata.
    pub fn new(d_in: usize, d_sae: usize, activation: Activation) -> Self {
        SaeConfig {
            d_in,
            d_sae,
            activation,
            apply_b_dec_to_input: false,
            hook_layer: None,
            hook_name: None,
            model: None,
            name: None,
            training: None,
        }
    }
}

/// Where a loaded SAE came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// The on-disk format.
    pub format: Format,
    /// The weights file.
    pub path: PathBuf,
    /// How the weights were stored (they are always `f32` in memory).
    pub dtype: Dtype,
}

/// The active features of one token: `ids` ascending, `values` all `> 0`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SparseCode {
    /// Active feature ids, ascending.
    pub ids: Vec<u32>,
    /// Their activations, one per id.
    pub values: Vec<f32>,
}

/// The weights of an SAE, row-major `f32`, as the loaders hand them over.
pub(crate) struct Weights {
    pub w_enc: Vec<f32>,
    pub b_enc: Vec<f32>,
    pub w_dec: Vec<f32>,
    pub b_dec: Vec<f32>,
    pub threshold: Option<Vec<f32>>,
}

/// A sparse autoencoder: `W_enc [d_in, d_sae]`, `b_enc [d_sae]`, `W_dec [d_sae, d_in]`,
/// `b_dec [d_in]`, and a per-feature `threshold [d_sae]` for JumpReLU.
///
/// Inputs and outputs are flat row-major `f32`: `n` tokens are `n * d_in` values.
#[derive(Clone)]
pub struct Sae {
    config: SaeConfig,
    w_enc: Vec<f32>,
    b_enc: Vec<f32>,
    w_dec: Vec<f32>,
    b_dec: Vec<f32>,
    threshold: Option<Vec<f32>>,
    source: Option<Source>,
    id: OnceLock<String>,
}

impl fmt::Debug for Sae {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The weights are millions of numbers; the config and the source say which SAE it is.
        f.debug_struct("Sae")
            .field("config", &self.config)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Sae {
    /// Builds an SAE from weights in memory (e.g. a trainer's), checking every shape, that the
    /// weights are finite, and that `threshold` is given exactly for [`Activation::JumpRelu`].
    pub fn new(
        config: SaeConfig,
        w_enc: Vec<f32>,
        b_enc: Vec<f32>,
        w_dec: Vec<f32>,
        b_dec: Vec<f32>,
        threshold: Option<Vec<f32>>,
    ) -> Result<Sae> {
        let weights = Weights {
            w_enc,
            b_enc,
            w_dec,
            b_dec,
            threshold,
        };
        Sae::from_parts(config, weights, None)
    }

    pub(crate) fn from_parts(
        config: SaeConfig,
        weights: Weights,
        source: Option<Source>,
    ) -> Result<Sae> {
        let path = source
            .as_ref()
            .map_or_else(|| PathBuf::from(IN_MEMORY), |s| s.path.clone());
        let (d_in, d_sae) = (config.d_in, config.d_sae);
        for (key, value) in [("d_in", d_in), ("d_sae", d_sae)] {
            if value == 0 {
                return Err(Error::config(&path, key, "must be positive"));
            }
        }
        let check = |name: &str, data: &[f32], dims: &[usize], labels: &str| -> Result<()> {
            if data.len() != dims.iter().product::<usize>() {
                return Err(Error::Shape {
                    path: path.clone(),
                    name: name.into(),
                    found: vec![data.len()],
                    expected: format!("{dims:?} = [{labels}]"),
                });
            }
            check_finite(&path, name, data)
        };
        check("w_enc", &weights.w_enc, &[d_in, d_sae], "d_in, d_sae")?;
        check("b_enc", &weights.b_enc, &[d_sae], "d_sae")?;
        check("w_dec", &weights.w_dec, &[d_sae, d_in], "d_sae, d_in")?;
        check("b_dec", &weights.b_dec, &[d_in], "d_in")?;
        match (&config.activation, &weights.threshold) {
            (Activation::JumpRelu, Some(t)) => check("threshold", t, &[d_sae], "d_sae")?,
            (Activation::JumpRelu, None) => {
                return Err(Error::MissingTensor {
                    path,
                    name: "threshold".into(),
                    found: "w_enc, b_enc, w_dec, b_dec".into(),
                })
            }
            (other, Some(_)) => {
                return Err(Error::config(
                    &path,
                    "activation",
                    format!("{other} has no per-feature threshold; only JumpReLU uses one"),
                ))
            }
            (Activation::TopK { k } | Activation::BatchTopK { k, .. }, None)
                if *k == 0 || *k > d_sae =>
            {
                return Err(Error::config(
                    &path,
                    "k",
                    format!("is {k}, must be in 1..={d_sae} (d_sae)"),
                ))
            }
            (Activation::BatchTopK { threshold, .. }, None) if !threshold.is_finite() => {
                return Err(Error::config(&path, "threshold", "must be finite"))
            }
            (
                Activation::BatchTopK {
                    topk_above_norm: Some(norm),
                    ..
                },
                None,
            ) if !(norm.is_finite() && *norm > 0.0) => {
                return Err(Error::config(
                    &path,
                    "topk_above_norm",
                    format!("is {norm}, must be finite and positive"),
                ))
            }
            _ => {}
        }
        let Weights {
            w_enc,
            b_enc,
            w_dec,
            b_dec,
            threshold,
        } = weights;
        Ok(Sae {
            config,
            w_enc,
            b_enc,
            w_dec,
            b_dec,
            threshold,
            source,
            id: OnceLock::new(),
        })
    }

    /// Shape, encode rule and metadata.
    pub fn config(&self) -> &SaeConfig {
        &self.config
    }

    /// `W_enc`, row-major `[d_in, d_sae]`.
    pub fn w_enc(&self) -> &[f32] {
        &self.w_enc
    }

    /// `b_enc [d_sae]`.
    pub fn b_enc(&self) -> &[f32] {
        &self.b_enc
    }

    /// `W_dec`, row-major `[d_sae, d_in]`: row `j` is feature `j`'s direction.
    pub fn w_dec(&self) -> &[f32] {
        &self.w_dec
    }

    /// `b_dec [d_in]`.
    pub fn b_dec(&self) -> &[f32] {
        &self.b_dec
    }

    /// The per-feature JumpReLU threshold `[d_sae]`; `None` for other activations.
    pub fn threshold(&self) -> Option<&[f32]> {
        self.threshold.as_deref()
    }

    /// The file it was loaded from; `None` for an SAE built with [`Sae::new`].
    pub fn source(&self) -> Option<&Source> {
        self.source.as_ref()
    }

    fn origin(&self) -> PathBuf {
        self.source
            .as_ref()
            .map_or_else(|| PathBuf::from(IN_MEMORY), |s| s.path.clone())
    }

    /// A content id: the SHA-256 (hex) of `d_in`, `d_sae`, the encode rule and every weight,
    /// as little-endian `f32`.
    ///
    /// It depends on what the SAE computes, not on the container, so a lossless re-save (same
    /// convention, f32) keeps it, while any change of weights — bf16 rounding, folding `b_dec`
    /// into `b_enc` for a format without input centring — gives a new id. Profiles record it
    /// to name the SAE they were calibrated with. Computed on first use.
    pub fn id(&self) -> &str {
        self.id.get_or_init(|| {
            let mut h = Sha256::new();
            h.update(b"saener-sae content v1\0");
            for v in [self.config.d_in, self.config.d_sae] {
                h.update((v as u64).to_le_bytes());
            }
            match self.config.activation {
                Activation::Relu => h.update([0]),
                Activation::JumpRelu => h.update([1]),
                Activation::TopK { k } => {
                    h.update([2]);
                    h.update((k as u64).to_le_bytes());
                }
                Activation::BatchTopK {
                    k,
                    threshold,
                    topk_above_norm,
                } => {
                    h.update([3]);
                    h.update((k as u64).to_le_bytes());
                    h.update(threshold.to_le_bytes());
                    // Absent, it hashes as before the field existed: old profiles keep their SAE id.
                    if let Some(norm) = topk_above_norm {
                        h.update(norm.to_le_bytes());
                    }
                }
            }
            h.update([u8::from(self.config.apply_b_dec_to_input)]);
            let empty = Vec::new();
            for t in [
                &self.w_enc,
                &self.b_enc,
                &self.w_dec,
                &self.b_dec,
                self.threshold.as_ref().unwrap_or(&empty),
            ] {
                h.update((t.len() as u64).to_le_bytes());
                let mut buf = Vec::with_capacity(4 * 4096);
                for chunk in t.chunks(4096) {
                    buf.clear();
                    buf.extend(chunk.iter().flat_map(|v| v.to_le_bytes()));
                    h.update(&buf);
                }
            }
            format!("{:x}", h.finalize())
        })
    }

    /// Checks that this SAE reads the residual stream the caller will feed it: `d_in` must be
    /// `d_model`, and the hook layer, when the files record one, must be `layer`.
    pub fn check_compatible(&self, d_model: usize, layer: usize) -> Result<()> {
        if self.config.d_in != d_model {
            return Err(Error::DimMismatch {
                path: self.origin(),
                d_in: self.config.d_in,
                d_model,
            });
        }
        match self.config.hook_layer {
            Some(sae_layer) if sae_layer != layer => Err(Error::LayerMismatch {
                path: self.origin(),
                sae_layer,
                hook: self
                    .config
                    .hook_name
                    .clone()
                    .unwrap_or_else(|| "hook name unknown".into()),
                layer,
            }),
            _ => Ok(()),
        }
    }

    /// Encodes `x [n, d_in]` to one [`SparseCode`] per token. The main API.
    pub fn encode_sparse(&self, x: &[f32]) -> Result<Vec<SparseCode>> {
        let (d_in, d_sae) = (self.config.d_in, self.config.d_sae);
        let n = input_rows(x, d_in, "encode_sparse")?;
        let mut codes = Vec::with_capacity(n);
        let mut pre = Vec::new();
        for chunk in x.chunks(CHUNK_ROWS * d_in) {
            pre.resize(chunk.len() / d_in * d_sae, 0.0);
            self.pre_activations(chunk, &mut pre);
            codes.par_extend(
                pre.par_chunks(d_sae)
                    .zip(chunk.par_chunks(d_in))
                    .map_init(Vec::new, |scratch, (row, x)| self.activate(row, x, scratch)),
            );
        }
        Ok(codes)
    }

    /// Encodes `x [n, d_in]` to dense codes `[n, d_sae]` (zeros where a feature is off).
    pub fn encode_dense(&self, x: &[f32]) -> Result<Vec<f32>> {
        let d_sae = self.config.d_sae;
        let n = input_rows(x, self.config.d_in, "encode_dense")?;
        let mut out = vec![0.0; n * d_sae];
        self.pre_activations(x, &mut out);
        out.par_chunks_mut(d_sae)
            .zip(x.par_chunks(self.config.d_in))
            .for_each_init(Vec::new, |scratch, (row, x)| {
                let code = self.activate(row, x, scratch);
                row.fill(0.0);
                for (&j, &v) in code.ids.iter().zip(&code.values) {
                    row[j as usize] = v;
                }
            });
        Ok(out)
    }

    /// Encodes `x [n, d_in]` on `features` only, giving `[n, features.len()]`, column `c` for
    /// `features[c]`. Same as [`FeatureSubset::encode`] on [`Sae::feature_subset`]; build the
    /// subset once when encoding many batches.
    pub fn encode_features(&self, x: &[f32], features: &[u32]) -> Result<Vec<f32>> {
        self.feature_subset(features)?.encode(x)
    }

    /// Gathers the encoder columns of `features` into a small standalone encoder.
    ///
    /// ReLU, JumpReLU and BatchTopK (whose inference rule is its threshold) are per-feature
    /// rules, so the subset gives exactly the full encode's columns; BatchTopK's rare rows
    /// above `topk_above_norm` are encoded in full through the borrowed SAE. TopK is not
    /// per-feature: whether a feature is in a token's top k depends on all the others. For
    /// TopK the subset returns `relu(pre)` of its features — equal to the full code wherever
    /// the full code is nonzero, and possibly nonzero where the feature would have lost the
    /// top-k competition.
    pub fn feature_subset(&self, features: &[u32]) -> Result<FeatureSubset<'_>> {
        let (d_in, d_sae) = (self.config.d_in, self.config.d_sae);
        if let Some(&bad) = features.iter().find(|&&f| f as usize >= d_sae) {
            return Err(Error::Input(format!(
                "feature {bad} is out of range: the SAE has d_sae = {d_sae}"
            )));
        }
        let m = features.len();
        let mut w_enc = vec![0.0; d_in * m];
        for (row, src) in w_enc
            .chunks_exact_mut(m.max(1))
            .zip(self.w_enc.chunks_exact(d_sae))
        {
            for (dst, &f) in row.iter_mut().zip(features) {
                *dst = src[f as usize];
            }
        }
        let gate = features
            .iter()
            .map(|&f| match self.config.activation {
                Activation::Relu | Activation::TopK { .. } => 0.0,
                Activation::JumpRelu => self.jump_threshold()[f as usize],
                Activation::BatchTopK { threshold, .. } => threshold,
            })
            .collect();
        let massive = match self.config.activation {
            Activation::BatchTopK {
                topk_above_norm: Some(norm),
                ..
            } => Some((norm, self)),
            _ => None,
        };
        Ok(FeatureSubset {
            massive,
            features: features.to_vec(),
            d_in,
            w_enc,
            b_enc: features.iter().map(|&f| self.b_enc[f as usize]).collect(),
            b_dec: self.config.apply_b_dec_to_input.then(|| self.b_dec.clone()),
            gate,
        })
    }

    /// Decodes dense codes `[n, d_sae]` to `codes·W_dec + b_dec`, `[n, d_in]`.
    pub fn decode_dense(&self, codes: &[f32]) -> Result<Vec<f32>> {
        let (d_in, d_sae) = (self.config.d_in, self.config.d_sae);
        let n = whole_rows(codes.len(), d_sae, "decode_dense", "d_sae")?;
        let mut out: Vec<f32> = self.b_dec.repeat(n);
        matmul(
            n,
            d_sae,
            d_in,
            codes,
            &self.w_dec,
            false,
            &mut out,
            true,
            true,
        );
        Ok(out)
    }

    /// Decodes sparse codes to `[n, d_in]`: `b_dec` plus each active feature's `W_dec` row,
    /// scaled by its value.
    pub fn decode_sparse(&self, codes: &[SparseCode]) -> Result<Vec<f32>> {
        let (d_in, d_sae) = (self.config.d_in, self.config.d_sae);
        for (t, code) in codes.iter().enumerate() {
            if code.ids.len() != code.values.len() {
                return Err(Error::Input(format!(
                    "decode_sparse: token {t} has {} ids but {} values",
                    code.ids.len(),
                    code.values.len()
                )));
            }
            if let Some(&bad) = code.ids.iter().find(|&&j| j as usize >= d_sae) {
                return Err(Error::Input(format!(
                    "decode_sparse: token {t} has feature {bad}, but d_sae = {d_sae}"
                )));
            }
        }
        let mut out = vec![0.0; codes.len() * d_in];
        out.par_chunks_mut(d_in).zip(codes).for_each(|(row, code)| {
            row.copy_from_slice(&self.b_dec);
            for (&j, &v) in code.ids.iter().zip(&code.values) {
                let dir = &self.w_dec[j as usize * d_in..][..d_in];
                for (o, &w) in row.iter_mut().zip(dir) {
                    *o += v * w;
                }
            }
        });
        Ok(out)
    }

    /// The same TopK SAE with BatchTopK's inference rule: a feature fires where its
    /// pre-activation exceeds one global threshold, chosen so that the mean L0 over the rows
    /// `x [n, d_in]` equals `k` (Bussmann et al., 2024). A per-feature rule makes encoding a
    /// subset of features exact ([`Sae::feature_subset`]), which TopK's per-token competition
    /// does not allow; the rows should be held-out residuals of the SAE's layer.
    ///
    /// Rows above [`MASSIVE_NORM_RATIO`] × the median row norm keep TopK
    /// (`topk_above_norm`, see [`Activation::BatchTopK`]) and are left out of the estimate,
    /// so they still contribute exactly `k` each.
    pub fn with_batch_topk_threshold(&self, x: &[f32]) -> Result<Sae> {
        let Activation::TopK { k } = self.config.activation else {
            return Err(Error::Input(format!(
                "a BatchTopK threshold is derived from a TopK SAE, not {}",
                self.config.activation
            )));
        };
        let (d_in, d_sae) = (self.config.d_in, self.config.d_sae);
        let n = input_rows(x, d_in, "with_batch_topk_threshold")?;
        if n == 0 {
            return Err(Error::Input("no rows to estimate a threshold on".into()));
        }
        let norms: Vec<f32> = x.chunks_exact(d_in).map(row_norm).collect();
        let mut sorted = norms.clone();
        let (_, &mut median, _) = sorted.select_nth_unstable_by(n / 2, f32::total_cmp);
        let topk_above_norm = MASSIVE_NORM_RATIO * median;
        let ordinary: Vec<f32> = x
            .chunks_exact(d_in)
            .zip(&norms)
            .filter(|&(_, &norm)| norm <= topk_above_norm)
            .flat_map(|(row, _)| row)
            .copied()
            .collect();
        let (x, n) = (&ordinary[..], ordinary.len() / d_in);
        // Two passes keep memory at O(n·k): the (n·k)-th largest of each row's 4k largest
        // values is a lower bound on the true threshold (a subset's order statistic never
        // exceeds the whole set's), and every value above the true threshold is at least
        // that bound, so the second pass selects exactly among them.
        let keep = (4 * k).min(d_sae);
        let rank = n * k - 1;
        let mut candidates: Vec<f32> = Vec::with_capacity(n * keep);
        self.for_each_pre_activation_row(x, |row| {
            row.select_nth_unstable_by(keep - 1, |a, b| b.total_cmp(a));
            candidates.extend_from_slice(&row[..keep]);
        });
        candidates.select_nth_unstable_by(rank, |a, b| b.total_cmp(a));
        let bound = candidates[rank];
        candidates.clear();
        self.for_each_pre_activation_row(x, |row| {
            candidates.extend(row.iter().filter(|&&v| v >= bound));
        });
        candidates.select_nth_unstable_by(rank, |a, b| b.total_cmp(a));
        let threshold = candidates[rank].max(0.0);
        let mut sae = self.clone();
        sae.config.activation = Activation::BatchTopK {
            k,
            threshold,
            topk_above_norm: (median > 0.0).then_some(topk_above_norm),
        };
        sae.id = OnceLock::new();
        Ok(sae)
    }

    /// The same SAE with `apply_b_dec_to_input` set to `apply`, re-expressed exactly (up to
    /// rounding) by moving `b_dec·W_enc` into `b_enc`: `(x − b_dec)·W + b = x·W + (b − b_dec·W)`.
    /// Writers use it for formats that fix the convention.
    pub(crate) fn with_b_dec_applied(&self, apply: bool) -> Cow<'_, Sae> {
        if self.config.apply_b_dec_to_input == apply {
            return Cow::Borrowed(self);
        }
        let (d_in, d_sae) = (self.config.d_in, self.config.d_sae);
        let mut shift = vec![0.0; d_sae];
        matmul(
            1,
            d_in,
            d_sae,
            &self.b_dec,
            &self.w_enc,
            false,
            &mut shift,
            true,
            true,
        );
        let sign = if apply { 1.0 } else { -1.0 };
        let mut sae = self.clone();
        for (b, s) in sae.b_enc.iter_mut().zip(shift) {
            *b += sign * s;
        }
        sae.config.apply_b_dec_to_input = apply;
        sae.id = OnceLock::new();
        Cow::Owned(sae)
    }

    /// Calls `f` with each row's pre-activations, computed a chunk of rows at a time.
    fn for_each_pre_activation_row(&self, x: &[f32], mut f: impl FnMut(&mut [f32])) {
        let (d_in, d_sae) = (self.config.d_in, self.config.d_sae);
        let mut pre = Vec::new();
        for chunk in x.chunks(CHUNK_ROWS * d_in) {
            pre.resize(chunk.len() / d_in * d_sae, 0.0);
            self.pre_activations(chunk, &mut pre);
            pre.chunks_exact_mut(d_sae).for_each(&mut f);
        }
    }

    /// `pre = (x − b_dec?)·W_enc + b_enc` for whole rows `x`, into `pre [n, d_sae]`.
    fn pre_activations(&self, x: &[f32], pre: &mut [f32]) {
        let (d_in, d_sae) = (self.config.d_in, self.config.d_sae);
        let n = x.len() / d_in;
        for row in pre.chunks_exact_mut(d_sae) {
            row.copy_from_slice(&self.b_enc);
        }
        if self.config.apply_b_dec_to_input {
            let centered: Vec<f32> = x
                .chunks_exact(d_in)
                .flat_map(|row| row.iter().zip(&self.b_dec).map(|(v, b)| v - b))
                .collect();
            matmul(
                n,
                d_in,
                d_sae,
                &centered,
                &self.w_enc,
                false,
                pre,
                true,
                true,
            );
        } else {
            matmul(n, d_in, d_sae, x, &self.w_enc, false, pre, true, true);
        }
    }

    fn jump_threshold(&self) -> &[f32] {
        self.threshold
            .as_deref()
            .expect("Sae::from_parts guarantees JumpReLU has a threshold")
    }

    /// One token's code from its pre-activations `pre` and input row `x`; `scratch` is
    /// reused across tokens.
    fn activate(&self, pre: &[f32], x: &[f32], scratch: &mut Vec<u32>) -> SparseCode {
        match self.config.activation {
            Activation::Relu => keep_where(pre, |_, p| p > 0.0),
            Activation::JumpRelu => {
                let t = self.jump_threshold();
                keep_where(pre, |j, p| p > t[j] && p > 0.0)
            }
            Activation::BatchTopK {
                k,
                topk_above_norm: Some(norm),
                ..
            } if row_norm(x) > norm => top_k(pre, k, scratch),
            Activation::BatchTopK { threshold, .. } => {
                keep_where(pre, |_, p| p > threshold && p > 0.0)
            }
            Activation::TopK { k } => top_k(pre, k, scratch),
        }
    }
}

/// A human summary, for `saener sae info`.
impl fmt::Display for Sae {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        match &self.source {
            Some(s) => writeln!(
                f,
                "sae        {} ({}, {})",
                s.path.display(),
                s.format,
                s.dtype
            )?,
            None => writeln!(f, "sae        {IN_MEMORY}")?,
        }
        if let Some(name) = &c.name {
            writeln!(f, "name       {name}")?;
        }
        writeln!(f, "shape      d_in {} -> d_sae {}", c.d_in, c.d_sae)?;
        writeln!(f, "activation {}", c.activation)?;
        if let Some(t) = &self.threshold {
            let mut sorted = t.clone();
            sorted.sort_unstable_by(f32::total_cmp);
            writeln!(
                f,
                "threshold  min {:.4}, median {:.4}, max {:.4}",
                sorted[0],
                sorted[sorted.len() / 2],
                sorted[sorted.len() - 1]
            )?;
        }
        let centring = if c.apply_b_dec_to_input { "yes" } else { "no" };
        writeln!(f, "input      b_dec subtracted before encoding: {centring}")?;
        match (c.hook_layer, &c.hook_name) {
            (Some(l), Some(h)) => writeln!(f, "hook       layer {l} ({h})")?,
            (Some(l), None) => writeln!(f, "hook       layer {l}")?,
            (None, Some(h)) => writeln!(f, "hook       {h} (layer unknown)")?,
            (None, None) => writeln!(f, "hook       unknown")?,
        }
        if let Some(model) = &c.model {
            writeln!(f, "model      {model}")?;
        }
        if let Some(training) = &c.training {
            writeln!(f, "training   {training}")?;
        }
        write!(f, "id         sha256:{}", self.id())
    }
}

/// The encoder columns of a few features, gathered once ([`Sae::feature_subset`]), so encoding
/// costs `d_in × features` per token instead of `d_in × d_sae`.
#[derive(Debug, Clone)]
pub struct FeatureSubset<'a> {
    /// BatchTopK's `topk_above_norm` and the full SAE, which encodes those rows.
    massive: Option<(f32, &'a Sae)>,
    features: Vec<u32>,
    d_in: usize,
    /// `[d_in, m]`.
    w_enc: Vec<f32>,
    b_enc: Vec<f32>,
    b_dec: Option<Vec<f32>>,
    /// Per-feature cut: a value is kept where `pre > gate && pre > 0`.
    gate: Vec<f32>,
}

impl FeatureSubset<'_> {
    /// The features, in column order.
    pub fn features(&self) -> &[u32] {
        &self.features
    }

    /// Encodes `x [n, d_in]` to `[n, features.len()]`; see [`Sae::feature_subset`] for the
    /// TopK semantics.
    pub fn encode(&self, x: &[f32]) -> Result<Vec<f32>> {
        let (d_in, m) = (self.d_in, self.features.len());
        let n = input_rows(x, d_in, "encode_features")?;
        let mut out: Vec<f32> = self.b_enc.repeat(n);
        match &self.b_dec {
            Some(b_dec) => {
                let centered: Vec<f32> = x
                    .chunks_exact(d_in)
                    .flat_map(|row| row.iter().zip(b_dec).map(|(v, b)| v - b))
                    .collect();
                matmul(
                    n,
                    d_in,
                    m,
                    &centered,
                    &self.w_enc,
                    false,
                    &mut out,
                    true,
                    true,
                );
            }
            None => matmul(n, d_in, m, x, &self.w_enc, false, &mut out, true, true),
        }
        for (row, x) in out.chunks_exact_mut(m.max(1)).zip(x.chunks_exact(d_in)) {
            match self.massive {
                Some((norm, sae)) if row_norm(x) > norm => {
                    let code = &sae.encode_sparse(x)?[0];
                    for (p, f) in row.iter_mut().zip(&self.features) {
                        *p = code.ids.binary_search(f).map_or(0.0, |i| code.values[i]);
                    }
                }
                _ => {
                    for (p, &g) in row.iter_mut().zip(&self.gate) {
                        if !(*p > g && *p > 0.0) {
                            *p = 0.0;
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Rejects NaN/Inf in weights, naming the tensor and where.
pub(crate) fn check_finite(path: &Path, name: &str, data: &[f32]) -> Result<()> {
    match data.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(Error::NonFinite {
            path: path.to_path_buf(),
            name: name.into(),
            index,
            value: data[index],
        }),
        None => Ok(()),
    }
}

/// Number of rows in `x`; rejects a ragged length and non-finite input, which would otherwise
/// turn into silent NaN codes.
fn input_rows(x: &[f32], d_in: usize, what: &str) -> Result<usize> {
    let n = whole_rows(x.len(), d_in, what, "d_in")?;
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(Error::Input(format!(
            "{what}: input row {}, column {} is {}",
            i / d_in,
            i % d_in,
            x[i]
        )));
    }
    Ok(n)
}

/// `len / width`, or an error when `len` values are not whole rows.
fn whole_rows(len: usize, width: usize, what: &str, width_name: &str) -> Result<usize> {
    let n = len / width;
    if n * width != len {
        return Err(Error::Input(format!(
            "{what}: {len} values are not whole rows of {width_name} = {width}"
        )));
    }
    Ok(n)
}

/// Euclidean norm of one input row.
fn row_norm(x: &[f32]) -> f32 {
    x.iter().map(|v| v * v).sum::<f32>().sqrt()
}

fn keep_where(pre: &[f32], keep: impl Fn(usize, f32) -> bool) -> SparseCode {
    let mut code = SparseCode::default();
    for (j, &p) in pre.iter().enumerate() {
        if keep(j, p) {
            code.ids.push(j as u32);
            code.values.push(p);
        }
    }
    code
}

/// The positive values among the `k` largest of `pre`, in feature order.
///
/// "Top k, then relu" keeps exactly the positive entries of the top k, so only positive
/// candidates are ranked: when `k` or fewer are positive there is nothing to select, and
/// otherwise `select_nth_unstable` keeps the work O(d_sae).
fn top_k(pre: &[f32], k: usize, scratch: &mut Vec<u32>) -> SparseCode {
    scratch.clear();
    scratch.extend((0..pre.len() as u32).filter(|&j| pre[j as usize] > 0.0));
    if scratch.len() > k {
        scratch.select_nth_unstable_by(k - 1, |&a, &b| pre[b as usize].total_cmp(&pre[a as usize]));
        scratch.truncate(k);
        scratch.sort_unstable();
    }
    SparseCode {
        ids: scratch.clone(),
        values: scratch.iter().map(|&j| pre[j as usize]).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-1, 1) without a rand dependency.
    fn noise(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    #[test]
    fn top_k_matches_a_full_sort() {
        let pre = noise(1000, 3);
        for k in [1, 5, 64, 499, 1000] {
            let code = top_k(&pre, k, &mut Vec::new());
            let mut order: Vec<usize> = (0..pre.len()).collect();
            order.sort_by(|&a, &b| pre[b].total_cmp(&pre[a]));
            let mut expected: Vec<u32> = order[..k]
                .iter()
                .filter(|&&j| pre[j] > 0.0)
                .map(|&j| j as u32)
                .collect();
            expected.sort_unstable();
            assert_eq!(code.ids, expected, "k = {k}");
            assert!(code.values.iter().all(|&v| v > 0.0));
        }
    }

    #[test]
    fn batch_topk_threshold_gives_mean_l0_k_and_exact_subsets() {
        let (d_in, d_sae, k, n) = (8, 64, 4, 50);
        let config = SaeConfig::new(d_in, d_sae, Activation::TopK { k });
        let sae = Sae::new(
            config,
            noise(d_in * d_sae, 1),
            noise(d_sae, 2),
            noise(d_sae * d_in, 3),
            noise(d_in, 4),
            None,
        )
        .unwrap();
        let mut x = noise(n * d_in, 5);
        // One "massive activation" row, far above the others' norms.
        let massive = 7;
        x[massive * d_in..][..d_in]
            .iter_mut()
            .for_each(|v| *v *= 20.0);
        let thresholded = sae.with_batch_topk_threshold(&x).unwrap();
        let Activation::BatchTopK {
            k: 4,
            topk_above_norm: Some(norm),
            ..
        } = thresholded.config().activation
        else {
            panic!("{}", thresholded.config().activation)
        };
        assert!(row_norm(&x[massive * d_in..][..d_in]) > norm);
        assert_ne!(thresholded.id(), sae.id());
        let codes = thresholded.encode_sparse(&x).unwrap();
        // The massive row gets TopK's code, and the threshold is estimated without it.
        assert_eq!(codes[massive], sae.encode_sparse(&x).unwrap()[massive]);
        assert_eq!(codes[massive].ids.len(), k);
        let active: usize = codes.iter().map(|c| c.ids.len()).sum();
        // The threshold is the ((n − 1)·k)-th largest value and firing is strict `>`.
        assert_eq!(active - k, (n - 1) * k - 1);
        let features = [0, 7, 33, 63];
        let subset = thresholded.encode_features(&x, &features).unwrap();
        let dense = thresholded.encode_dense(&x).unwrap();
        for t in 0..n {
            for (c, &f) in features.iter().enumerate() {
                assert_eq!(subset[t * 4 + c], dense[t * d_sae + f as usize]);
            }
        }
        let relu = Sae::new(
            SaeConfig::new(d_in, d_sae, Activation::Relu),
            noise(d_in * d_sae, 1),
            noise(d_sae, 2),
            noise(d_sae * d_in, 3),
            noise(d_in, 4),
            None,
        )
        .unwrap();
        assert!(relu.with_batch_topk_threshold(&x).is_err());
    }

    #[test]
    fn folding_b_dec_keeps_the_encode() {
        let (d_in, d_sae) = (8, 12);
        let mut config = SaeConfig::new(d_in, d_sae, Activation::Relu);
        config.apply_b_dec_to_input = true;
        let sae = Sae::new(
            config,
            noise(d_in * d_sae, 1),
            noise(d_sae, 2),
            noise(d_sae * d_in, 3),
            noise(d_in, 4),
            None,
        )
        .unwrap();
        let folded = sae.with_b_dec_applied(false);
        assert!(!folded.config().apply_b_dec_to_input);
        let x = noise(5 * d_in, 5);
        let (a, b) = (
            sae.encode_dense(&x).unwrap(),
            folded.encode_dense(&x).unwrap(),
        );
        for (u, v) in a.iter().zip(&b) {
            assert!((u - v).abs() < 1e-5, "{u} vs {v}");
        }
        let back = folded.with_b_dec_applied(true);
        assert_eq!(back.config(), sae.config());
    }
}
