//! The language-model stage of saener: text → tokens → residual stream.
//!
//! - [`fetch`] downloads and verifies the default GGUF (Gemma 3 270M) into the cache.
//! - [`gguf`] opens a GGUF file, validates it, and dequantizes tensors to f32.
//! - [`tokenizer`] is Gemma's SentencePiece-BPE tokenizer; every token carries its
//!   character span in the input (Unicode code points, as Python counts them).
//! - [`gemma3`] is the Gemma 3 forward pass on CPU (its kernels are `saener-kernels`),
//!   stopping after block `L` and returning `resid_post`, with windowing for long inputs.

pub mod fetch;
pub mod fuzzing;
pub mod gemma3;
pub mod gguf;
pub mod residuals;
pub mod tokenizer;

pub use fetch::{default_model_path, ensure_default_model, saener_home};
pub use saener_kernels::{Cpu, Precision};
pub use tokenizer::{Encoding, Tokenizer};

use std::path::PathBuf;

/// Errors of the language-model stage. Each names the file, tensor or field at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a valid GGUF file: {reason}")]
    Gguf { path: PathBuf, reason: String },
    #[error("{path}: architecture is '{found}', but saener supports only '{expected}'")]
    Architecture {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("{path}: tensor '{name}' is missing")]
    MissingTensor { path: PathBuf, name: String },
    #[error("{path}: tensor '{name}' has shape {found:?}, expected {expected:?}")]
    Shape {
        path: PathBuf,
        name: String,
        found: Vec<usize>,
        expected: Vec<usize>,
    },
    #[error("{path}: metadata key '{key}': {reason}")]
    Metadata {
        path: PathBuf,
        key: String,
        reason: String,
    },
    #[error("layer {layer} is out of range: the model has {n_layers} blocks (0..{n_layers})")]
    LayerOutOfRange { layer: usize, n_layers: usize },
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("model fetch failed: {0}")]
    Fetch(String),
    #[error(
        "no cache directory: neither SAENER_HOME nor HOME is set; set SAENER_HOME to where \
         saener may keep the model (~250 MB), or pass --model"
    )]
    NoCacheDir,
    #[error("{path}: checksum mismatch: expected sha256 {expected}, got {found}")]
    Checksum {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Precision(#[from] saener_kernels::PrecisionError),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
