//! Gemma 3 forward pass on CPU, in candle, stopping after a chosen block.
//!
//! Read top to bottom like a candle-transformers model: [`Config`] (from GGUF metadata plus
//! the Gemma 3 constants that the file does not carry), then the blocks bottom-up —
//! `RmsNorm`, `Linear`, `RotaryEmbedding`, `Attention`, `Mlp`, `DecoderLayer`, `Model` —
//! each with `new(..)` and `forward(..)`, and last the public [`Gemma3`] front end
//! (batching and windowing of long inputs).
//!
//! Activations travel between blocks as candle [`Tensor`]s. Inside the blocks the hot
//! loops are our own CPU kernels (module `kernels`, at the end of the file): on this
//! model nearly all the time is in four matrix products per block, and a GEMM with the
//! weights packed once at load time reaches ~85% of the f32 FMA peak, about four times
//! candle's general matmul on these shapes (measured on 2 Zen 3 cores). Every kernel computes a row from that row's inputs alone in a fixed
//! order, so a token's result does not depend on what else is in the batch.
//!
//! Sequences in a batch are packed end to end (no padding): the matrix products see one
//! `[total_tokens, d]` matrix, and attention runs within each sequence, with its causal
//! and sliding-window limits. This gives exactly what right-padding plus masks would,
//! without computing the padding.

// `is_multiple_of` needs Rust 1.87; the workspace's rust-version is 1.85.
#![allow(clippy::manual_is_multiple_of)]

use crate::gguf::GgufFile;
use crate::{Error, Result};
use candle_core::{CpuStorage, Device, Storage, Tensor};
use rayon::prelude::*;
use std::path::Path;

/// Gemma 3 puts one global-attention block after every five local ones.
const SLIDING_WINDOW_PATTERN: usize = 6;
/// RoPE base of the local (sliding-window) blocks; the file stores only the global one.
const ROPE_LOCAL_BASE: f64 = 10_000.0;
/// Most tokens one forward pass puts through the model at once when it can choose (batches
/// of documents, groups of windows); bounds the activations' memory (the MLP's
/// `[tokens, 2 × ffn]` buffer is the largest). A single sequence longer than this still runs
/// whole. 16 sequences of 1,024 tokens fit, so batches of ordinary documents are never split.
pub(crate) const MAX_TOKENS_PER_PASS: usize = 16_384;

/// Model hyper-parameters, read from the GGUF metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    /// RoPE base of the global blocks.
    pub rope_theta: f64,
    /// RoPE base of the local blocks.
    pub rope_local_base_freq: f64,
    /// A local block's query at position `i` sees keys `i - sliding_window + 1 ..= i`.
    pub sliding_window: usize,
    /// Block `l` is global when `(l + 1) % sliding_window_pattern == 0`.
    pub sliding_window_pattern: usize,
    /// Attention logits are scaled by `query_pre_attn_scalar^-1/2`.
    pub query_pre_attn_scalar: f64,
    pub max_position_embeddings: usize,
    pub bos_token_id: u32,
}

impl Config {
    /// Reads the `gemma3.*` metadata. Fields the file lacks are Gemma 3's fixed values
    /// (local RoPE base 10,000, one global block in six, `query_pre_attn_scalar = head_dim`,
    /// as for the 270M model).
    pub fn from_gguf(gguf: &GgufFile) -> Result<Self> {
        let key = |k: &str| format!("gemma3.{k}");
        let head_dim = gguf.metadata_usize(&key("attention.key_length"))?;
        let value_length = gguf.metadata_usize(&key("attention.value_length"))?;
        if value_length != head_dim {
            return Err(Error::Metadata {
                path: gguf.path().to_path_buf(),
                key: key("attention.value_length"),
                reason: format!("{value_length} differs from key_length {head_dim}"),
            });
        }
        let num_attention_heads = gguf.metadata_usize(&key("attention.head_count"))?;
        let num_key_value_heads = gguf.metadata_usize(&key("attention.head_count_kv"))?;
        if num_key_value_heads == 0 || num_attention_heads % num_key_value_heads != 0 {
            return Err(Error::Metadata {
                path: gguf.path().to_path_buf(),
                key: key("attention.head_count_kv"),
                reason: format!(
                    "{num_key_value_heads} does not divide head_count {num_attention_heads}"
                ),
            });
        }
        let (_, embd_shape) = gguf.tensor_type("token_embd.weight")?;
        let bos_token_id = match gguf.metadata_usize("tokenizer.ggml.bos_token_id") {
            Ok(id) => id as u32,
            Err(_) => 2,
        };
        Ok(Self {
            vocab_size: embd_shape[0],
            hidden_size: gguf.metadata_usize(&key("embedding_length"))?,
            intermediate_size: gguf.metadata_usize(&key("feed_forward_length"))?,
            num_hidden_layers: gguf.metadata_usize(&key("block_count"))?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rms_norm_eps: gguf.metadata_f64(&key("attention.layer_norm_rms_epsilon"))?,
            rope_theta: gguf.metadata_f64(&key("rope.freq_base"))?,
            rope_local_base_freq: ROPE_LOCAL_BASE,
            sliding_window: gguf.metadata_usize(&key("attention.sliding_window"))?,
            sliding_window_pattern: SLIDING_WINDOW_PATTERN,
            query_pre_attn_scalar: head_dim as f64,
            max_position_embeddings: gguf.metadata_usize(&key("context_length"))?,
            bos_token_id,
        })
    }

    /// Whether block `layer` uses global attention (and the global RoPE base).
    pub fn is_global(&self, layer: usize) -> bool {
        (layer + 1) % self.sliding_window_pattern == 0
    }
}

/// Runs `f` on the f32 data of a contiguous CPU tensor.
fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    match (&*storage, layout.contiguous_offsets()) {
        (Storage::Cpu(CpuStorage::F32(data)), Some((start, end))) => Ok(f(&data[start..end])),
        _ => Err(candle_core::Error::Msg(format!(
            "expected a contiguous f32 CPU tensor, got {:?} {:?}",
            t.dtype(),
            t.device().location()
        ))
        .into()),
    }
}

/// Wraps a row-major `[rows, cols]` buffer as a tensor (no copy).
fn matrix(data: Vec<f32>, cols: usize) -> Result<Tensor> {
    let rows = data.len() / cols;
    Ok(Tensor::from_vec(data, (rows, cols), &Device::Cpu)?)
}

fn invalid_input(msg: String) -> Error {
    Error::InvalidInput(msg)
}

/// Sequences packed end to end: the rows of sequence `s` are `offsets[s]..offsets[s + 1]`.
struct Batch {
    ids: Vec<u32>,
    offsets: Vec<usize>,
    /// Position of each row within its own sequence (RoPE restarts at 0 per sequence).
    positions: Vec<usize>,
    max_len: usize,
}

impl Batch {
    fn new(seqs: &[&[u32]]) -> Self {
        let mut offsets = Vec::with_capacity(seqs.len() + 1);
        offsets.push(0);
        let mut ids = Vec::new();
        let mut positions = Vec::new();
        for seq in seqs {
            ids.extend_from_slice(seq);
            positions.extend(0..seq.len());
            offsets.push(ids.len());
        }
        let max_len = seqs.iter().map(|s| s.len()).max().unwrap_or(0);
        Self {
            ids,
            offsets,
            positions,
            max_len,
        }
    }
}

/// Gemma's RMSNorm. The GGUF weights already include Gemma's `1 +`, so it is
/// `x / rms(x) * w`.
struct RmsNorm {
    weight: Vec<f32>,
    eps: f32,
}

impl RmsNorm {
    fn new(gguf: &GgufFile, name: &str, dim: usize, eps: f64) -> Result<Self> {
        let weight = gguf.tensor_f32(name, &[dim])?.to_vec1::<f32>()?;
        Ok(Self {
            weight,
            eps: eps as f32,
        })
    }

    fn forward(&self, x: &[f32]) -> Vec<f32> {
        kernels::rms_norm(x, &self.weight, self.eps)
    }

    /// `x ← residual + norm(x)`: the sandwich norm's output added back to the residual
    /// stream, in place.
    fn forward_add(&self, residual: &[f32], x: &mut [f32]) {
        kernels::add_rms_norm(residual, x, &self.weight, self.eps);
    }
}

/// A bias-free linear layer `y = x Wᵀ`, possibly several GGUF matrices stacked along the
/// output dimension (q/k/v, gate/up) so that one product replaces several.
struct Linear {
    weight: LinearWeight,
    in_features: usize,
    out_features: usize,
}

enum LinearWeight {
    /// Packed for our AVX2 GEMM (x86-64 with AVX2 and FMA).
    #[cfg(target_arch = "x86_64")]
    Packed(kernels::PackedMatrix),
    /// `[out, in]` for candle's matmul, on other CPUs.
    Dense(Tensor),
}

impl Linear {
    /// Loads the matrices `names` (each `[out_i, in_features]`) stacked in that order.
    fn new(gguf: &GgufFile, names: &[(&str, usize)], in_features: usize) -> Result<Self> {
        let parts = names
            .iter()
            .map(|&(name, out)| gguf.tensor_f32(name, &[out, in_features]))
            .collect::<Result<Vec<_>>>()?;
        let out_features = names.iter().map(|&(_, out)| out).sum();
        #[cfg(target_arch = "x86_64")]
        if kernels::gemm_available(out_features) {
            let guards: Vec<_> = parts.iter().map(Tensor::storage_and_layout).collect();
            let slices = guards
                .iter()
                .map(
                    |(storage, layout)| match (&**storage, layout.contiguous_offsets()) {
                        (Storage::Cpu(CpuStorage::F32(data)), Some((start, end))) => {
                            Ok(&data[start..end])
                        }
                        _ => Err(invalid_input(
                            "dequantized weights are not contiguous f32".into(),
                        )),
                    },
                )
                .collect::<Result<Vec<&[f32]>>>()?;
            return Ok(Self {
                weight: LinearWeight::Packed(kernels::PackedMatrix::pack(&slices, in_features)),
                in_features,
                out_features,
            });
        }
        Ok(Self {
            weight: LinearWeight::Dense(Tensor::cat(&parts, 0)?),
            in_features,
            out_features,
        })
    }

    /// `[rows, out_features]` for input row `i` at `x[i * stride..][..in_features]` (a
    /// stride lets the input be part of a wider buffer without copying it out).
    fn forward(&self, x: &[f32], rows: usize, stride: usize) -> Result<Vec<f32>> {
        match &self.weight {
            #[cfg(target_arch = "x86_64")]
            LinearWeight::Packed(w) => Ok(w.matmul(x, rows, stride)),
            LinearWeight::Dense(w) => {
                let k = self.in_features;
                let x: Vec<f32> = (0..rows)
                    .flat_map(|i| &x[i * stride..][..k])
                    .copied()
                    .collect();
                let x = Tensor::from_vec(x, (rows, k), &Device::Cpu)?;
                let y = x.matmul(&w.t()?)?;
                debug_assert_eq!(y.dims(), [rows, self.out_features]);
                Ok(y.flatten_all()?.to_vec1()?)
            }
        }
    }
}

/// NEOX-style rotary embedding: dimension `i` of a head rotates with `i + head_dim / 2`.
struct RotaryEmbedding {
    inv_freq: Vec<f32>,
}

/// `cos` and `sin` for positions `0..n`, `head_dim / 2` values per position.
struct RopeTable {
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl RotaryEmbedding {
    fn new(base: f64, head_dim: usize) -> Self {
        // In f32 like the reference implementation, so that angles round the same way.
        let inv_freq = (0..head_dim / 2)
            .map(|i| 1.0 / (base as f32).powf((2 * i) as f32 / head_dim as f32))
            .collect();
        Self { inv_freq }
    }

    fn forward(&self, n_positions: usize) -> RopeTable {
        let half = self.inv_freq.len();
        let mut cos = Vec::with_capacity(n_positions * half);
        let mut sin = Vec::with_capacity(n_positions * half);
        for pos in 0..n_positions {
            for &f in &self.inv_freq {
                let angle = f64::from(pos as f32 * f);
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        RopeTable { cos, sin }
    }
}

/// Multi-query attention with per-head RMS norms on q and k, RoPE, and (in local blocks) a
/// sliding window.
struct Attention {
    qkv: Linear,
    o: Linear,
    q_norm: Vec<f32>,
    k_norm: Vec<f32>,
    eps: f32,
    params: kernels::AttentionParams,
}

impl Attention {
    fn new(gguf: &GgufFile, cfg: &Config, layer: usize) -> Result<Self> {
        let name = |t: &str| format!("blk.{layer}.{t}.weight");
        let (d, hd) = (cfg.hidden_size, cfg.head_dim);
        let q_dim = cfg.num_attention_heads * hd;
        let kv_dim = cfg.num_key_value_heads * hd;
        let qkv = Linear::new(
            gguf,
            &[
                (&name("attn_q"), q_dim),
                (&name("attn_k"), kv_dim),
                (&name("attn_v"), kv_dim),
            ],
            d,
        )?;
        let o = Linear::new(gguf, &[(&name("attn_output"), d)], q_dim)?;
        let norm = |t: &str| -> Result<Vec<f32>> {
            Ok(gguf.tensor_f32(&name(t), &[hd])?.to_vec1::<f32>()?)
        };
        Ok(Self {
            qkv,
            o,
            q_norm: norm("attn_q_norm")?,
            k_norm: norm("attn_k_norm")?,
            eps: cfg.rms_norm_eps as f32,
            params: kernels::AttentionParams {
                n_heads: cfg.num_attention_heads,
                n_kv_heads: cfg.num_key_value_heads,
                head_dim: hd,
                window: (!cfg.is_global(layer)).then_some(cfg.sliding_window),
                scale: (1.0 / cfg.query_pre_attn_scalar.sqrt()) as f32,
            },
        })
    }

    /// `x` is the normed residual stream, `[T, d]`; returns the output projection.
    fn forward(&self, x: &[f32], batch: &Batch, rope: &RopeTable) -> Result<Vec<f32>> {
        let n = batch.ids.len();
        let mut qkv = self.qkv.forward(x, n, self.qkv.in_features)?;
        kernels::norm_rope(
            &mut qkv,
            &self.params,
            [&self.q_norm, &self.k_norm],
            self.eps,
            (&rope.cos, &rope.sin),
            &batch.positions,
        );
        let attn = kernels::attention(&qkv, &batch.offsets, &self.params);
        self.o.forward(&attn, n, self.o.in_features)
    }
}

/// Gated MLP: `down(gelu_tanh(gate(x)) * up(x))`, gate and up in one product.
struct Mlp {
    gate_up: Linear,
    down: Linear,
    ffn: usize,
}

impl Mlp {
    fn new(gguf: &GgufFile, cfg: &Config, layer: usize) -> Result<Self> {
        let name = |t: &str| format!("blk.{layer}.{t}.weight");
        let (d, ffn) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Self {
            gate_up: Linear::new(gguf, &[(&name("ffn_gate"), ffn), (&name("ffn_up"), ffn)], d)?,
            down: Linear::new(gguf, &[(&name("ffn_down"), d)], ffn)?,
            ffn,
        })
    }

    fn forward(&self, x: &[f32], rows: usize) -> Result<Vec<f32>> {
        let mut gate_up = self.gate_up.forward(x, rows, self.gate_up.in_features)?;
        // The activation overwrites the gate half of each row, read in place by `down`.
        kernels::gelu_mul(&mut gate_up, self.ffn);
        self.down.forward(&gate_up, rows, 2 * self.ffn)
    }
}

/// One transformer block with Gemma's sandwich norms.
struct DecoderLayer {
    attn_norm: RmsNorm,
    attn: Attention,
    post_attn_norm: RmsNorm,
    ffn_norm: RmsNorm,
    mlp: Mlp,
    post_ffn_norm: RmsNorm,
    global: bool,
}

impl DecoderLayer {
    fn new(gguf: &GgufFile, cfg: &Config, layer: usize) -> Result<Self> {
        let norm = |t: &str| {
            RmsNorm::new(
                gguf,
                &format!("blk.{layer}.{t}.weight"),
                cfg.hidden_size,
                cfg.rms_norm_eps,
            )
        };
        Ok(Self {
            attn_norm: norm("attn_norm")?,
            attn: Attention::new(gguf, cfg, layer)?,
            post_attn_norm: norm("post_attention_norm")?,
            ffn_norm: norm("ffn_norm")?,
            mlp: Mlp::new(gguf, cfg, layer)?,
            post_ffn_norm: norm("post_ffw_norm")?,
            global: cfg.is_global(layer),
        })
    }

    /// Takes the residual stream before the block and returns it after (`resid_post`).
    fn forward(&self, x: &Tensor, batch: &Batch, rope: &RopeTable) -> Result<Tensor> {
        let rows = batch.ids.len();
        let out = with_f32(x, |x| -> Result<Vec<f32>> {
            // Each branch's output buffer becomes the residual stream after that branch.
            let mut mid = self.attn.forward(&self.attn_norm.forward(x), batch, rope)?;
            self.post_attn_norm.forward_add(x, &mut mid);
            let mut out = self.mlp.forward(&self.ffn_norm.forward(&mid), rows)?;
            self.post_ffn_norm.forward_add(&mid, &mut out);
            Ok(out)
        })??;
        matrix(out, self.attn_norm.weight.len())
    }
}

/// The token embedding table, kept in its stored type: as f32 it would take 671 MB for
/// 262,144 × 640, as Q8_0 it takes 178 MB, and only the rows of the input are decoded.
/// Doubles as the tied output head.
enum Embedding {
    Q8_0 { raw: Vec<u8>, dim: usize },
    F32 { data: Vec<f32>, dim: usize },
}

impl Embedding {
    fn new(gguf: &GgufFile, cfg: &Config) -> Result<Self> {
        let (vocab, dim) = (cfg.vocab_size, cfg.hidden_size);
        let name = "token_embd.weight";
        let (dtype, _) = gguf.tensor_type(name)?;
        if dtype == candle_core::quantized::GgmlDType::Q8_0 && dim % kernels::Q8_0_BLOCK == 0 {
            let (_, raw) = gguf.tensor_raw(name, &[vocab, dim])?;
            Ok(Self::Q8_0 { raw, dim })
        } else {
            let data = gguf
                .tensor_f32(name, &[vocab, dim])?
                .flatten_all()?
                .to_vec1()?;
            Ok(Self::F32 { data, dim })
        }
    }

    fn vocab_size(&self) -> usize {
        match self {
            Self::Q8_0 { raw, dim } => raw.len() / kernels::q8_0_row_bytes(*dim),
            Self::F32 { data, dim } => data.len() / dim,
        }
    }

    /// Rows of `ids`, times `scale` (Gemma multiplies embeddings by √d).
    fn forward(&self, ids: &[u32], scale: f32) -> Result<Tensor> {
        let vocab = self.vocab_size();
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(invalid_input(format!(
                "token id {bad} is out of range (vocabulary size {vocab})"
            )));
        }
        let dim = match self {
            Self::Q8_0 { dim, .. } | Self::F32 { dim, .. } => *dim,
        };
        let mut out = vec![0f32; ids.len() * dim];
        for (row, &id) in out.chunks_exact_mut(dim).zip(ids) {
            let id = id as usize;
            match self {
                Self::Q8_0 { raw, .. } => {
                    let bytes = kernels::q8_0_row_bytes(dim);
                    kernels::dequantize_q8_0(&raw[id * bytes..(id + 1) * bytes], row);
                }
                Self::F32 { data, .. } => row.copy_from_slice(&data[id * dim..(id + 1) * dim]),
            }
            row.iter_mut().for_each(|v| *v *= scale);
        }
        matrix(out, dim)
    }

    /// Logits of the tied output head for one hidden vector.
    fn logits(&self, hidden: &[f32]) -> Vec<f32> {
        let dim = hidden.len();
        let mut out = vec![0f32; self.vocab_size()];
        match self {
            Self::Q8_0 { raw, .. } => {
                let bytes = kernels::q8_0_row_bytes(dim);
                out.par_iter_mut()
                    .zip(raw.par_chunks_exact(bytes))
                    .for_each(|(o, row)| *o = kernels::dot_q8_0(row, hidden));
            }
            Self::F32 { data, .. } => out
                .par_iter_mut()
                .zip(data.par_chunks_exact(dim))
                .for_each(|(o, row)| *o = kernels::dot(row, hidden)),
        }
        out
    }
}

/// The decoder: embeddings, the loaded blocks, and (for logits) the final norm.
struct Model {
    embed: Embedding,
    embed_scale: f32,
    layers: Vec<DecoderLayer>,
    final_norm: RmsNorm,
    rope_local: RotaryEmbedding,
    rope_global: RotaryEmbedding,
}

impl Model {
    fn new(gguf: &GgufFile, cfg: &Config, n_layers: usize) -> Result<Self> {
        // Blocks load in parallel: dequantizing dominates the load time.
        let layers = (0..n_layers)
            .into_par_iter()
            .map(|l| DecoderLayer::new(gguf, cfg, l))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            embed: Embedding::new(gguf, cfg)?,
            // √d rounded to f32 first, as the reference does.
            embed_scale: (cfg.hidden_size as f32).sqrt(),
            layers,
            final_norm: RmsNorm::new(
                gguf,
                "output_norm.weight",
                cfg.hidden_size,
                cfg.rms_norm_eps,
            )?,
            rope_local: RotaryEmbedding::new(cfg.rope_local_base_freq, cfg.head_dim),
            rope_global: RotaryEmbedding::new(cfg.rope_theta, cfg.head_dim),
        })
    }

    /// The final hidden states (after the output norm) of a full forward, with the residual
    /// stream after block `splice_layer` passed through `edit` (`[tokens, d]` row-major)
    /// before the later blocks see it.
    fn forward_spliced(
        &self,
        batch: &Batch,
        splice_layer: usize,
        edit: &dyn Fn(&mut [f32]),
    ) -> Result<Vec<f32>> {
        let rope_local = self.rope_local.forward(batch.max_len);
        let rope_global = self.rope_global.forward(batch.max_len);
        let mut x = self.embed.forward(&batch.ids, self.embed_scale)?;
        for (l, block) in self.layers.iter().enumerate() {
            let rope = if block.global {
                &rope_global
            } else {
                &rope_local
            };
            x = block.forward(&x, batch, rope)?;
            if l == splice_layer {
                let mut rows = x.flatten_all()?.to_vec1::<f32>()?;
                edit(&mut rows);
                x = matrix(rows, self.final_norm.weight.len())?;
            }
        }
        with_f32(&x, |x| self.final_norm.forward(x))
    }

    /// The residual stream after each block in `layers` (its `resid_post`),
    /// `[total_tokens, d]` each, in the order asked. Runs blocks `0..=max(layers)` only:
    /// the loop stops after the last block asked for.
    fn forward(&self, batch: &Batch, layers: &[usize]) -> Result<Vec<Tensor>> {
        let Some(&last) = layers.iter().max() else {
            return Ok(Vec::new());
        };
        let rope_local = self.rope_local.forward(batch.max_len);
        let rope_global = self.rope_global.forward(batch.max_len);
        let mut x = self.embed.forward(&batch.ids, self.embed_scale)?;
        let mut resid_post = vec![None; layers.len()];
        for (l, block) in self.layers[..=last].iter().enumerate() {
            let rope = if block.global {
                &rope_global
            } else {
                &rope_local
            };
            x = block.forward(&x, batch, rope)?;
            for (slot, _) in resid_post
                .iter_mut()
                .zip(layers)
                .filter(|(_, &want)| want == l)
            {
                *slot = Some(x.clone());
            }
        }
        Ok(resid_post.into_iter().flatten().collect())
    }
}

/// What to load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Load only blocks `0..=max_layer` (less memory and load time); `None` loads all.
    /// With fewer blocks, [`Gemma3::last_token_logits`] is unavailable.
    pub max_layer: Option<usize>,
}

/// How [`Gemma3::resid_post_windowed`] splits long inputs.
///
/// The default window is Gemma 3's whole context (32,768 tokens), so every document the model
/// can read at once is read at once, and its rows are the model's own. Only longer inputs are
/// windowed, and each window repeats 2,048 tokens, four times the local blocks' 512-token
/// attention span: with 128 tokens of overlap, a row just past a seam of the golden 1,328-token
/// case turned into a spurious "massive activation" (norm 96,928 where the model has 11,520);
/// with 512 or more, none did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowOptions {
    /// Most tokens per forward pass, BOS included; capped at the model's context length.
    pub window: usize,
    /// Tokens each window repeats from the previous one, as left context only.
    pub overlap: usize,
}

impl Default for WindowOptions {
    fn default() -> Self {
        Self {
            window: 32_768,
            overlap: 2_048,
        }
    }
}

/// Gemma 3 loaded from a GGUF file, computing residual streams on CPU.
///
/// Parallel kernels run on rayon's global pool, which by default has one thread per
/// core and honours `RAYON_NUM_THREADS` (as does candle).
pub struct Gemma3 {
    config: Config,
    model: Model,
}

impl Gemma3 {
    /// Opens `path`, checks it is a Gemma 3 GGUF, and loads the embedding table, the final
    /// norm and blocks `0..=max_layer` (all blocks by default), dequantized to f32.
    pub fn load(path: impl AsRef<Path>, options: LoadOptions) -> Result<Self> {
        let gguf = GgufFile::open(path)?;
        let config = Config::from_gguf(&gguf)?;
        let n_layers = match options.max_layer {
            Some(l) if l >= config.num_hidden_layers => {
                return Err(Error::LayerOutOfRange {
                    layer: l,
                    n_layers: config.num_hidden_layers,
                })
            }
            Some(l) => l + 1,
            None => config.num_hidden_layers,
        };
        let model = Model::new(&gguf, &config, n_layers)?;
        Ok(Self { config, model })
    }

    /// The model's hyper-parameters.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// How many blocks were loaded (`0..n_loaded_layers()` can be asked for).
    pub fn n_loaded_layers(&self) -> usize {
        self.model.layers.len()
    }

    fn check_layer(&self, layer: usize) -> Result<()> {
        if layer >= self.n_loaded_layers() {
            return Err(Error::LayerOutOfRange {
                layer,
                n_layers: self.n_loaded_layers(),
            });
        }
        Ok(())
    }

    /// The residual stream after block `layer` (0-indexed; Gemma Scope's `resid_post` of
    /// `layer_{layer}`), `[ids.len(), hidden_size]` f32, one row per id. `ids` are used as
    /// given: include the BOS (2) first, as Gemma expects, and its row is row 0. Only
    /// blocks `0..=layer` are computed.
    pub fn resid_post(&self, ids: &[u32], layer: usize) -> Result<Tensor> {
        Ok(self.resid_post_layers(ids, &[layer])?.remove(0))
    }

    /// [`Self::resid_post`] at several blocks from one forward pass (up to the deepest
    /// block asked for), in the order of `layers`.
    pub fn resid_post_layers(&self, ids: &[u32], layers: &[usize]) -> Result<Vec<Tensor>> {
        for &layer in layers {
            self.check_layer(layer)?;
        }
        self.model.forward(&Batch::new(&[ids]), layers)
    }

    /// [`Self::resid_post`] for several sequences at once (faster than one by one: the
    /// matrix products see all tokens together). Returns one tensor per sequence, equal to
    /// its unbatched result. Sorting sequences by length beforehand is not needed.
    pub fn resid_post_batch(&self, seqs: &[&[u32]], layer: usize) -> Result<Vec<Tensor>> {
        self.check_layer(layer)?;
        let batch = Batch::new(seqs);
        let out = self.model.forward(&batch, &[layer])?.remove(0);
        let d = self.config.hidden_size;
        with_f32(&out, |data| {
            batch
                .offsets
                .windows(2)
                .map(|w| {
                    let rows = &data[w[0] * d..w[1] * d];
                    Ok(Tensor::from_slice(rows, (w[1] - w[0], d), &Device::Cpu)?)
                })
                .collect()
        })?
    }

    /// [`Self::resid_post`] for inputs of any length, never truncating. Inputs of at most
    /// `window` ids are run whole. Longer ones are cut into windows of at most `window`
    /// ids that overlap by `overlap`; every token gets exactly one row, from the first
    /// window that contains it, which is the one where it has the most left context (at
    /// least `overlap` tokens except in the first window).
    ///
    /// BOS: if `ids` starts with the BOS id, every window starts with BOS (at position 0),
    /// followed by its slice of the remaining ids. Gemma puts a large, attention-sink state
    /// on the first token; without a BOS the first token of a later window would take that
    /// role and its neighbours would see an unusual context. The BOS rows of later windows
    /// are dropped; row 0 is the first window's BOS. An input without BOS is windowed as is.
    pub fn resid_post_windowed(
        &self,
        ids: &[u32],
        layer: usize,
        options: WindowOptions,
    ) -> Result<Tensor> {
        self.check_layer(layer)?;
        // Positions past the context length were never trained: window there instead.
        let options = WindowOptions {
            window: options.window.min(self.config.max_position_embeddings),
            ..options
        };
        if ids.len() <= options.window {
            return self.resid_post(ids, layer);
        }
        let has_bos = ids[0] == self.config.bos_token_id;
        let (prefix, body) = ids.split_at(usize::from(has_bos));
        let span = options.window.saturating_sub(prefix.len());
        if span <= options.overlap {
            return Err(invalid_input(format!(
                "window {} must exceed overlap {} plus the BOS",
                options.window, options.overlap
            )));
        }
        let stride = span - options.overlap;
        // (start of the window in `body`, first body index whose row it supplies).
        let mut windows = vec![(0, 0)];
        while windows.last().unwrap().0 + span < body.len() {
            let start = windows.len() * stride;
            windows.push((start, start + options.overlap));
        }
        let d = self.config.hidden_size;
        let mut out = Vec::with_capacity(ids.len() * d);
        let per_pass = (MAX_TOKENS_PER_PASS / options.window).max(1);
        for group in windows.chunks(per_pass) {
            let seqs: Vec<Vec<u32>> = group
                .iter()
                .map(|&(start, _)| {
                    let end = (start + span).min(body.len());
                    [prefix, &body[start..end]].concat()
                })
                .collect();
            let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
            for (&(start, keep_from), rows) in
                group.iter().zip(self.resid_post_batch(&refs, layer)?)
            {
                // The first window also supplies the BOS row.
                let skip = if start == 0 {
                    0
                } else {
                    prefix.len() + keep_from - start
                };
                let rows = rows.narrow(0, skip, rows.dim(0)? - skip)?;
                with_f32(&rows, |r| out.extend_from_slice(r))?;
            }
        }
        matrix(out, d)
    }

    /// Next-token cross-entropy in nats at each position `0..ids.len() - 1` (position `i`
    /// predicts `ids[i + 1]`), with the residual stream after block `layer` replaced by
    /// `edit(rows)` first — the identity gives the clean loss; an SAE's reconstruction gives
    /// the spliced loss used to judge SAEs. Needs all blocks loaded.
    pub fn next_token_losses(
        &self,
        ids: &[u32],
        layer: usize,
        edit: &dyn Fn(&mut [f32]),
    ) -> Result<Vec<f32>> {
        self.check_layer(layer)?;
        if self.n_loaded_layers() < self.config.num_hidden_layers {
            return Err(Error::LayerOutOfRange {
                layer: self.config.num_hidden_layers - 1,
                n_layers: self.n_loaded_layers(),
            });
        }
        if ids.len() < 2 {
            return Ok(Vec::new());
        }
        let hidden = self
            .model
            .forward_spliced(&Batch::new(&[ids]), layer, edit)?;
        let d = self.config.hidden_size;
        Ok(hidden
            .chunks_exact(d)
            .zip(&ids[1..])
            .map(|(row, &target)| {
                let logits = self.model.embed.logits(row);
                let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let sum: f64 = logits.iter().map(|&z| f64::from((z - max).exp())).sum();
                (sum.ln() as f32 + max) - logits[target as usize]
            })
            .collect())
    }

    /// Logits for the token after `ids`: full forward, final norm, tied output head.
    /// `[vocab_size]` f32. Needs all blocks loaded.
    pub fn last_token_logits(&self, ids: &[u32]) -> Result<Tensor> {
        let last = self.config.num_hidden_layers - 1;
        if self.n_loaded_layers() < self.config.num_hidden_layers {
            return Err(Error::LayerOutOfRange {
                layer: last,
                n_layers: self.n_loaded_layers(),
            });
        }
        if ids.is_empty() {
            return Err(invalid_input("no input ids".to_string()));
        }
        let resid = self.resid_post(ids, last)?;
        let final_row = resid.narrow(0, ids.len() - 1, 1)?;
        let logits = with_f32(&final_row, |row| {
            self.model.embed.logits(&self.model.final_norm.forward(row))
        })?;
        Ok(Tensor::from_vec(
            logits,
            self.config.vocab_size,
            &Device::Cpu,
        )?)
    }
}

/// CPU kernels behind the blocks above. Each has a portable version and, on x86-64 with
/// AVX2 and FMA (checked at run time), an explicitly vectorised one: explicit, because the
/// dev profile builds this crate at opt-level 1, where LLVM does not auto-vectorise.
mod kernels {
    use rayon::prelude::*;

    #[cfg(target_arch = "x86_64")]
    pub use gemm::{gemm_available, PackedMatrix};

    /// Whether the AVX2+FMA code paths may run (the check is cached by std).
    #[cfg(target_arch = "x86_64")]
    fn has_avx2() -> bool {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }

    /// Rows per rayon task in row-wise kernels, to amortise task overhead.
    const ROWS_PER_TASK: usize = 8;

    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        debug_assert_eq!(a.len(), b.len());
        #[cfg(target_arch = "x86_64")]
        if has_avx2() {
            // SAFETY: AVX2 and FMA are available (checked above).
            return unsafe { avx2::dot(a, b) };
        }
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    /// `out = x * (1 / rms(x)) * w`, in the reference's order of operations.
    fn rms_norm_row(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
        let mean_sq = dot(x, x) / x.len() as f32;
        let inv = 1.0 / (mean_sq + eps).sqrt();
        out.iter_mut()
            .zip(x.iter().zip(w))
            .for_each(|(o, (x, w))| *o = x * inv * w);
    }

    pub fn rms_norm(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
        let d = w.len();
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(d * ROWS_PER_TASK)
            .zip(x.par_chunks(d * ROWS_PER_TASK))
            .for_each(|(out, x)| {
                for (o, x) in out.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
                    rms_norm_row(x, w, eps, o);
                }
            });
        out
    }

    /// `x ← residual + rms_norm(x) * w`, row by row.
    pub fn add_rms_norm(residual: &[f32], x: &mut [f32], w: &[f32], eps: f32) {
        let d = w.len();
        x.par_chunks_mut(d * ROWS_PER_TASK)
            .zip(residual.par_chunks(d * ROWS_PER_TASK))
            .for_each(|(x, residual)| {
                for (x, r) in x.chunks_exact_mut(d).zip(residual.chunks_exact(d)) {
                    let inv = 1.0 / (dot(x, x) / d as f32 + eps).sqrt();
                    x.iter_mut()
                        .zip(r.iter().zip(w))
                        .for_each(|(x, (r, w))| *x = r + *x * inv * w);
                }
            });
    }

    /// `gelu_tanh(gate) * up` for rows laid out `[gate (ffn) | up (ffn)]`, written over
    /// the gate half.
    pub fn gelu_mul(gate_up: &mut [f32], ffn: usize) {
        gate_up
            .par_chunks_mut(2 * ffn * ROWS_PER_TASK)
            .for_each(|rows| {
                for row in rows.chunks_exact_mut(2 * ffn) {
                    let (gate, up) = row.split_at_mut(ffn);
                    #[cfg(target_arch = "x86_64")]
                    if has_avx2() {
                        // SAFETY: AVX2 and FMA are available (checked above).
                        unsafe { avx2::gelu_mul(gate, up) };
                        continue;
                    }
                    gate.iter_mut()
                        .zip(up.iter())
                        .for_each(|(g, &u)| *g = gelu_tanh(*g) * u);
                }
            });
    }

    /// GELU, tanh approximation, written as `x · sigmoid(2u)` (equal to
    /// `0.5 x (1 + tanh u)`), `u = √(2/π) (x + 0.044715 x³)`.
    fn gelu_tanh(x: f32) -> f32 {
        let u = SQRT_2_OVER_PI * x * (1.0 + GELU_COEF * x * x);
        x / (1.0 + (-2.0 * u).exp())
    }
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    const GELU_COEF: f32 = 0.044_715;

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
    fn group_scores(
        q: &[f32],
        keys: &[f32],
        stride: usize,
        hd: usize,
        scale: f32,
        scores: &mut [f32],
    ) {
        let n_keys = scores.len() / (q.len() / hd);
        #[cfg(target_arch = "x86_64")]
        if has_avx2() && hd % 8 == 0 {
            // SAFETY: AVX2 and FMA are available (checked above).
            return unsafe { avx2::group_scores(q, keys, stride, hd, scale, scores) };
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
        if has_avx2() && hd % 32 == 0 {
            // SAFETY: AVX2 and FMA are available (checked above).
            return unsafe { avx2::weighted_sum(p, values, stride, hd, out) };
        }
        for (pg, og) in p.chunks_exact(n_keys).zip(out.chunks_exact_mut(hd)) {
            og.fill(0.0);
            for (j, &w) in pg.iter().enumerate() {
                let vj = &values[j * stride..][..hd];
                og.iter_mut().zip(vj).for_each(|(o, v)| *o += w * v);
            }
        }
    }

    fn softmax(x: &mut [f32]) {
        let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        #[cfg(target_arch = "x86_64")]
        let sum = if has_avx2() {
            // SAFETY: AVX2 and FMA are available (checked above).
            unsafe { avx2::exp_sub(x, max) }
        } else {
            exp_sub(x, max)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let sum = exp_sub(x, max);
        let inv = 1.0 / sum;
        x.iter_mut().for_each(|v| *v *= inv);
    }

    /// `x = exp(x - max)`, returning the sum.
    fn exp_sub(x: &mut [f32], max: f32) -> f32 {
        x.iter_mut().fold(0.0, |sum, v| {
            *v = (*v - max).exp();
            sum + *v
        })
    }

    /// Values per Q8_0 block: an f16 scale, then 32 signed bytes.
    pub const Q8_0_BLOCK: usize = 32;
    const Q8_0_BYTES: usize = 34;

    pub fn q8_0_row_bytes(dim: usize) -> usize {
        dim / Q8_0_BLOCK * Q8_0_BYTES
    }

    fn q8_0_scale(block: &[u8]) -> f32 {
        half::f16::from_le_bytes([block[0], block[1]]).to_f32()
    }

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
        if has_avx2() {
            // SAFETY: AVX2 and FMA are available (checked above).
            return unsafe { avx2::dot_q8_0(row, x) };
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

    #[cfg(target_arch = "x86_64")]
    mod avx2 {
        //! AVX2+FMA versions; callers check for the features first.
        use super::{q8_0_scale, GELU_COEF, Q8_0_BLOCK, Q8_0_BYTES, SQRT_2_OVER_PI};
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
        pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
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
        pub unsafe fn group_scores(
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
                        s0 = _mm256_fmadd_ps(
                            _mm256_loadu_ps(qg.add(d)),
                            _mm256_loadu_ps(kj.add(d)),
                            s0,
                        );
                        s1 = _mm256_fmadd_ps(
                            _mm256_loadu_ps(qg.add(d + 8)),
                            _mm256_loadu_ps(kj.add(d + 8)),
                            s1,
                        );
                        d += 16;
                    }
                    if d < hd {
                        s0 = _mm256_fmadd_ps(
                            _mm256_loadu_ps(qg.add(d)),
                            _mm256_loadu_ps(kj.add(d)),
                            s0,
                        );
                    }
                    scores[g * n_keys + j] = hsum(_mm256_add_ps(s0, s1)) * scale;
                }
            }
        }

        /// See `super::weighted_sum`; needs `hd % 32 == 0`. Four accumulators cover 32
        /// output values and stay in registers across all keys.
        #[target_feature(enable = "avx2,fma")]
        pub unsafe fn weighted_sum(
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
            let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                _mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E)),
            );
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
        pub unsafe fn exp_sub(x: &mut [f32], max: f32) -> f32 {
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
        pub unsafe fn gelu_mul(gate: &mut [f32], up: &[f32]) {
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
                gate[i] = super::gelu_tanh(gate[i]) * up[i];
                i += 1;
            }
        }

        #[target_feature(enable = "avx2,fma")]
        pub unsafe fn dot_q8_0(row: &[u8], x: &[f32]) -> f32 {
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
    }

    #[cfg(target_arch = "x86_64")]
    mod gemm {
        //! `C = A Bᵀ` with `B` (the weights) packed once into 16-column panels, and an
        //! AVX2 6×16 micro-kernel (12 accumulators, BLIS-style blocking for L1/L2).
        use rayon::prelude::*;
        use std::arch::x86_64::*;

        /// Rows of A per micro-kernel call.
        const MR: usize = 6;
        /// Columns of C per micro-kernel call (two AVX registers).
        const NR: usize = 16;
        /// Largest k-block: a `KC × NR` panel of B (20 KiB) stays in the 32 KiB L1.
        const KC: usize = 320;
        /// Row panels of A per block: `MC × MR × KC` floats (123 KiB) stay in L2.
        const MC: usize = 16;

        /// Whether the packed GEMM can compute a product with `n` output columns.
        pub fn gemm_available(n: usize) -> bool {
            super::has_avx2() && n % NR == 0
        }

        /// Weights `[n, k]` repacked as `n / 16` panels of `[k][16]`, 64-byte aligned.
        pub struct PackedMatrix {
            n: usize,
            k: usize,
            buf: Vec<f32>,
            start: usize,
        }

        /// A raw pointer that rayon tasks may share; they write disjoint parts.
        #[derive(Clone, Copy)]
        struct SendPtr(*mut f32);
        // SAFETY: only used for writes to disjoint tiles of one output buffer.
        unsafe impl Send for SendPtr {}
        unsafe impl Sync for SendPtr {}
        impl SendPtr {
            fn get(self) -> *mut f32 {
                self.0
            }
        }

        impl PackedMatrix {
            /// Packs the row-major matrices `parts` (each `[n_i, k]`), stacked along n.
            pub fn pack(parts: &[&[f32]], k: usize) -> Self {
                let rows: Vec<&[f32]> = parts.iter().flat_map(|p| p.chunks_exact(k)).collect();
                let n = rows.len();
                assert_eq!(n % NR, 0, "packed GEMM needs a multiple of {NR} outputs");
                let mut buf = vec![0f32; n * k + NR];
                let start = (NR - (buf.as_ptr() as usize / 4) % NR) % NR;
                buf[start..start + n * k]
                    .par_chunks_mut(NR * k)
                    .enumerate()
                    .for_each(|(panel, dst)| {
                        for (c, row) in rows[panel * NR..(panel + 1) * NR].iter().enumerate() {
                            for (kk, &w) in row.iter().enumerate() {
                                dst[kk * NR + c] = w;
                            }
                        }
                    });
                Self { n, k, buf, start }
            }

            fn data(&self) -> &[f32] {
                &self.buf[self.start..self.start + self.n * self.k]
            }

            /// Rows `a[i * stride..][..k]`, `i < m`, times the transpose of this `[n, k]`
            /// matrix: `[m, n]`. Each output is summed in the same order whatever `m` is.
            pub fn matmul(&self, a: &[f32], m: usize, stride: usize) -> Vec<f32> {
                // The packed copy of `a` reuses a per-thread buffer; taken out while in use
                // so that a nested call (rayon work-stealing) gets its own.
                let mut a_packed = A_PACKED.take();
                pack_a(a, m, stride, self.k, &mut a_packed);
                let c = self.matmul_packed(&a_packed, m);
                A_PACKED.set(a_packed);
                c
            }

            fn matmul_packed(&self, a_packed: &[f32], m: usize) -> Vec<f32> {
                let (n, k) = (self.n, self.k);
                let m_panels = m.div_ceil(MR);
                let mut c: Vec<f32> = Vec::with_capacity(m_panels * MR * n);
                let c_ptr = SendPtr(c.as_mut_ptr());
                let n_panels = n / NR;
                let kc = k.div_ceil(k.div_ceil(KC));
                let tasks = (rayon::current_num_threads() * 4).clamp(1, n_panels);
                let per_task = n_panels.div_ceil(tasks);
                let b_all = self.data();
                (0..n_panels.div_ceil(per_task))
                    .into_par_iter()
                    .for_each(|task| {
                        let panels = task * per_task..((task + 1) * per_task).min(n_panels);
                        for k0 in (0..k).step_by(kc) {
                            let kcur = kc.min(k - k0);
                            for m0 in (0..m_panels).step_by(MC) {
                                for np in panels.clone() {
                                    let b = &b_all[np * k * NR + k0 * NR..][..kcur * NR];
                                    for mp in m0..(m0 + MC).min(m_panels) {
                                        let a = &a_packed[mp * k * MR + k0 * MR..][..kcur * MR];
                                        // SAFETY: AVX2/FMA were checked when packing; the
                                        // tile (rows mp*MR.., cols np*NR..) lies inside
                                        // `c`'s capacity and belongs to this task alone;
                                        // it is written (k0 == 0) before it is read.
                                        unsafe {
                                            let tile = c_ptr.get().add(mp * MR * n + np * NR);
                                            kernel(kcur, a.as_ptr(), b.as_ptr(), tile, n, k0 > 0);
                                        }
                                    }
                                }
                            }
                        }
                    });
                // SAFETY: every element of the m_panels × MR × n tiles was written above.
                unsafe { c.set_len(m_panels * MR * n) };
                c.truncate(m * n);
                c
            }
        }

        thread_local! {
            static A_PACKED: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
        }

        /// Rows `a[i * stride..][..k]`, `i < m`, into `ceil(m / MR)` panels of `[k][MR]`,
        /// zero-padded.
        fn pack_a(a: &[f32], m: usize, stride: usize, k: usize, out: &mut Vec<f32>) {
            out.clear();
            out.resize(m.div_ceil(MR) * MR * k, 0.0);
            out.par_chunks_mut(MR * k)
                .enumerate()
                .for_each(|(panel, dst)| {
                    for r in 0..MR.min(m - panel * MR) {
                        let row = &a[(panel * MR + r) * stride..][..k];
                        for (kk, &x) in row.iter().enumerate() {
                            dst[kk * MR + r] = x;
                        }
                    }
                });
        }

        /// C tile (6 × 16, row stride `ldc`) = (or +=, if `accumulate`) the product of an
        /// A panel `[kc][6]` and a B panel `[kc][16]`.
        #[target_feature(enable = "avx2,fma")]
        unsafe fn kernel(
            kc: usize,
            a: *const f32,
            b: *const f32,
            c: *mut f32,
            ldc: usize,
            accumulate: bool,
        ) {
            let z = _mm256_setzero_ps();
            let (mut c00, mut c01, mut c10, mut c11, mut c20, mut c21) = (z, z, z, z, z, z);
            let (mut c30, mut c31, mut c40, mut c41, mut c50, mut c51) = (z, z, z, z, z, z);
            let (mut a, mut b) = (a, b);
            for _ in 0..kc {
                let b0 = _mm256_load_ps(b);
                let b1 = _mm256_load_ps(b.add(8));
                let x = _mm256_broadcast_ss(&*a);
                c00 = _mm256_fmadd_ps(x, b0, c00);
                c01 = _mm256_fmadd_ps(x, b1, c01);
                let x = _mm256_broadcast_ss(&*a.add(1));
                c10 = _mm256_fmadd_ps(x, b0, c10);
                c11 = _mm256_fmadd_ps(x, b1, c11);
                let x = _mm256_broadcast_ss(&*a.add(2));
                c20 = _mm256_fmadd_ps(x, b0, c20);
                c21 = _mm256_fmadd_ps(x, b1, c21);
                let x = _mm256_broadcast_ss(&*a.add(3));
                c30 = _mm256_fmadd_ps(x, b0, c30);
                c31 = _mm256_fmadd_ps(x, b1, c31);
                let x = _mm256_broadcast_ss(&*a.add(4));
                c40 = _mm256_fmadd_ps(x, b0, c40);
                c41 = _mm256_fmadd_ps(x, b1, c41);
                let x = _mm256_broadcast_ss(&*a.add(5));
                c50 = _mm256_fmadd_ps(x, b0, c50);
                c51 = _mm256_fmadd_ps(x, b1, c51);
                a = a.add(MR);
                b = b.add(NR);
            }
            let rows = [
                (c00, c01),
                (c10, c11),
                (c20, c21),
                (c30, c31),
                (c40, c41),
                (c50, c51),
            ];
            for (r, (lo, hi)) in rows.into_iter().enumerate() {
                let dst = c.add(r * ldc);
                let (lo, hi) = if accumulate {
                    (
                        _mm256_add_ps(lo, _mm256_loadu_ps(dst)),
                        _mm256_add_ps(hi, _mm256_loadu_ps(dst.add(8))),
                    )
                } else {
                    (lo, hi)
                };
                _mm256_storeu_ps(dst, lo);
                _mm256_storeu_ps(dst.add(8), hi);
            }
        }

        #[cfg(test)]
        mod tests {
            use super::*;

            #[test]
            fn packed_matmul_matches_naive() {
                if !gemm_available(32) {
                    return;
                }
                let (m, n, k) = (13, 48, 700);
                let a: Vec<f32> = (0..m * k)
                    .map(|i| ((i * 7919) % 113) as f32 - 56.0)
                    .collect();
                let w: Vec<f32> = (0..n * k)
                    .map(|i| ((i * 104_729) % 97) as f32 - 48.0)
                    .collect();
                let (w1, w2) = w.split_at(16 * k);
                let c = PackedMatrix::pack(&[w1, w2], k).matmul(&a, m, k);
                for i in 0..m {
                    for j in 0..n {
                        let expected: f64 = (0..k)
                            .map(|kk| f64::from(a[i * k + kk]) * f64::from(w[j * k + kk]))
                            .sum();
                        assert!(
                            (f64::from(c[i * n + j]) - expected).abs()
                                < 1e-3 * expected.abs().max(1.0)
                        );
                    }
                }
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn gelu_and_softmax_match_scalar_formulas() {
            let xs: Vec<f32> = (-400..400).map(|i| i as f32 * 0.05).collect();
            let mut gate_up = xs.clone();
            gate_up.extend(std::iter::repeat_n(1.0f32, xs.len()));
            gelu_mul(&mut gate_up, xs.len());
            for (&x, &g) in xs.iter().zip(&gate_up) {
                let x64 = f64::from(x);
                let reference = 0.5
                    * x64
                    * (1.0
                        + ((2.0 / std::f64::consts::PI).sqrt() * (x64 + 0.044715 * x64.powi(3)))
                            .tanh());
                assert!(
                    (f64::from(g) - reference).abs() < 1e-6 * reference.abs().max(1.0),
                    "{x}"
                );
            }
            let mut s: Vec<f32> = (0..37).map(|i| (i as f32 * 0.37).sin() * 20.0).collect();
            let reference: Vec<f64> = {
                let e: Vec<f64> = s.iter().map(|&v| f64::from(v).exp()).collect();
                let sum: f64 = e.iter().sum();
                e.iter().map(|v| v / sum).collect()
            };
            softmax(&mut s);
            for (got, want) in s.iter().zip(reference) {
                assert!((f64::from(*got) - want).abs() < 1e-6 * want.max(1e-3));
            }
        }

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
}
