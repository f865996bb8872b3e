//! Gemma 3 forward pass on CPU, in candle, stopping after a chosen block.
//!
//! Read top to bottom like a candle-transformers model: [`Config`] (from GGUF metadata plus
//! the Gemma 3 constants that the file does not carry), then the blocks bottom-up —
//! `RmsNorm`, `Linear`, `RotaryEmbedding`, `Attention`, `Mlp`, `DecoderLayer`, `Model` —
//! each with `new(..)` and `forward(..)`, and last the public [`Gemma3`] front end
//! (batching and windowing of long inputs).
//!
//! Blocks work on plain row-major `f32` slices (`[tokens, d]`), not tensors: every step is
//! one of the CPU kernels of [`saener_kernels`] (packed GEMM, attention, norms, GELU), which
//! take and return slices, so wrapping them in tensors between steps would only add
//! copies. Candle is used for reading and dequantizing the GGUF, and the public API
//! returns candle [`Tensor`]s. On this model nearly all the time is in four matrix
//! products per block. Every kernel computes a row from that row's inputs alone in a fixed
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
use saener_kernels::{self as kernels, Cpu, KernelChoice, Precision};
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
    weight: kernels::Matrix,
    in_features: usize,
}

impl Linear {
    /// Loads the matrices `names` (each `[out_i, in_features]`) stacked in that order, for
    /// the kernels `choice` names.
    fn new(
        gguf: &GgufFile,
        names: &[(&str, usize)],
        in_features: usize,
        choice: KernelChoice,
    ) -> Result<Self> {
        let parts = names
            .iter()
            .map(|&(name, out)| {
                let t = gguf.tensor_f32(name, &[out, in_features])?;
                Ok(t.flatten_all()?.to_vec1::<f32>()?)
            })
            .collect::<Result<Vec<_>>>()?;
        let parts: Vec<&[f32]> = parts.iter().map(Vec::as_slice).collect();
        Ok(Self {
            weight: kernels::Matrix::new(&parts, in_features, choice),
            in_features,
        })
    }

    /// `[rows, out_features]` for input row `i` at `x[i * stride..][..in_features]` (a
    /// stride lets the input be part of a wider buffer without copying it out).
    fn forward(&self, x: &[f32], rows: usize, stride: usize) -> Vec<f32> {
        self.weight.matmul(x, rows, stride)
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
    fn new(gguf: &GgufFile, cfg: &Config, layer: usize, choice: KernelChoice) -> Result<Self> {
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
            choice,
        )?;
        let o = Linear::new(gguf, &[(&name("attn_output"), d)], q_dim, choice)?;
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
    fn forward(&self, x: &[f32], batch: &Batch, rope: &RopeTable) -> Vec<f32> {
        let n = batch.ids.len();
        let mut qkv = self.qkv.forward(x, n, self.qkv.in_features);
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
    fn new(gguf: &GgufFile, cfg: &Config, layer: usize, choice: KernelChoice) -> Result<Self> {
        let name = |t: &str| format!("blk.{layer}.{t}.weight");
        let (d, ffn) = (cfg.hidden_size, cfg.intermediate_size);
        let (gate, up) = (name("ffn_gate"), name("ffn_up"));
        Ok(Self {
            gate_up: Linear::new(gguf, &[(gate.as_str(), ffn), (up.as_str(), ffn)], d, choice)?,
            down: Linear::new(gguf, &[(&name("ffn_down"), d)], ffn, choice)?,
            ffn,
        })
    }

    fn forward(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let mut gate_up = self.gate_up.forward(x, rows, self.gate_up.in_features);
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
    fn new(gguf: &GgufFile, cfg: &Config, layer: usize, choice: KernelChoice) -> Result<Self> {
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
            attn: Attention::new(gguf, cfg, layer, choice)?,
            post_attn_norm: norm("post_attention_norm")?,
            ffn_norm: norm("ffn_norm")?,
            mlp: Mlp::new(gguf, cfg, layer, choice)?,
            post_ffn_norm: norm("post_ffw_norm")?,
            global: cfg.is_global(layer),
        })
    }

    /// Takes the residual stream before the block and returns it after (`resid_post`).
    fn forward(&self, x: &[f32], batch: &Batch, rope: &RopeTable) -> Vec<f32> {
        // Each branch's output buffer becomes the residual stream after that branch.
        let mut mid = self.attn.forward(&self.attn_norm.forward(x), batch, rope);
        self.post_attn_norm.forward_add(x, &mut mid);
        let mut out = self
            .mlp
            .forward(&self.ffn_norm.forward(&mid), batch.ids.len());
        self.post_ffn_norm.forward_add(&mid, &mut out);
        out
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
    fn forward(&self, ids: &[u32], scale: f32) -> Result<Vec<f32>> {
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
        Ok(out)
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
    fn new(gguf: &GgufFile, cfg: &Config, n_layers: usize, choice: KernelChoice) -> Result<Self> {
        // Blocks load in parallel: dequantizing dominates the load time.
        let layers = (0..n_layers)
            .into_par_iter()
            .map(|l| DecoderLayer::new(gguf, cfg, l, choice))
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
            x = block.forward(&x, batch, rope);
            if l == splice_layer {
                edit(&mut x);
            }
        }
        Ok(self.final_norm.forward(&x))
    }

    /// The residual stream after each block in `layers` (its `resid_post`),
    /// `[total_tokens, d]` each, in the order asked. Runs blocks `0..=max(layers)` only:
    /// the loop stops after the last block asked for.
    fn forward(&self, batch: &Batch, layers: &[usize]) -> Result<Vec<Vec<f32>>> {
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
            x = block.forward(&x, batch, rope);
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
    /// Arithmetic of the blocks' matrix products; the default is f32, the reference.
    /// Loading fails, naming the missing instruction set, if this CPU cannot run it.
    pub precision: Precision,
    /// Keep f32 products on the AVX2 reference kernel even where AVX-512 is present (for
    /// benchmarks: both give the same bits).
    pub avx2_only: bool,
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
    precision: Precision,
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
        let precision = options.precision.resolve(&Cpu::detect())?;
        let choice = KernelChoice {
            precision,
            avx512: !options.avx2_only,
        };
        let model = Model::new(&gguf, &config, n_layers, choice)?;
        Ok(Self {
            config,
            model,
            precision,
        })
    }

    /// The precision the blocks' matrix products run at (never `Auto`).
    pub fn precision(&self) -> Precision {
        self.precision
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
        let d = self.config.hidden_size;
        let out = self.model.forward(&Batch::new(&[ids]), layers)?;
        out.into_iter().map(|rows| matrix(rows, d)).collect()
    }

    /// [`Self::resid_post`] for several sequences at once (faster than one by one: the
    /// matrix products see all tokens together). Returns one tensor per sequence, equal to
    /// its unbatched result. Sorting sequences by length beforehand is not needed.
    pub fn resid_post_batch(&self, seqs: &[&[u32]], layer: usize) -> Result<Vec<Tensor>> {
        self.check_layer(layer)?;
        let batch = Batch::new(seqs);
        let data = self.model.forward(&batch, &[layer])?.remove(0);
        let d = self.config.hidden_size;
        batch
            .offsets
            .windows(2)
            .map(|w| {
                let rows = &data[w[0] * d..w[1] * d];
                Ok(Tensor::from_slice(rows, (w[1] - w[0], d), &Device::Cpu)?)
            })
            .collect()
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
