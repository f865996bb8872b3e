//! Sparse autoencoders (SAEs) for saener: one value type, and the public on-disk formats.
//!
//! - [`Sae`] is what an SAE *is*: a [`SaeConfig`] plus `W_enc [d_in, d_sae]`, `b_enc`,
//!   `W_dec [d_sae, d_in]`, `b_dec` and, for JumpReLU, a per-feature threshold. It encodes
//!   residual-stream rows into [`SparseCode`]s (the main API), dense codes, or a chosen
//!   [`FeatureSubset`], and decodes codes back.
//! - [`format`](mod@format) is how an SAE is *stored*: one module per format (Gemma Scope `params.npz`,
//!   Gemma Scope 2 `params.safetensors` — saener's own format —, SAELens, sparsify), each with
//!   `load` and `save`, and [`load_any`] which detects the format from the files present.
//! - [`npy`] reads the `.npy` arrays that Gemma Scope and the golden files use.
//!
//! Every matrix is row-major `f32` in a flat slice: a batch of `n` inputs is `n * d_in` values.
//!
//! ```no_run
//! let sae = saener_sae::load_any("sae/layer_9_width_16k")?;
//! sae.check_compatible(640, 9)?;
//! let residuals = vec![0.0f32; 3 * 640]; // three tokens
//! for code in sae.encode_sparse(&residuals)? {
//!     println!("{:?}", code.ids);
//! }
//! # Ok::<(), saener_sae::Error>(())
//! ```

pub mod format;
pub mod fuzzing;
pub mod npy;
mod sae;

pub use format::{load_any, Dtype, Format};
pub use sae::{Activation, FeatureSubset, Sae, SaeConfig, Source, SparseCode, MASSIVE_NORM_RATIO};

use std::path::PathBuf;

/// Errors of the SAE crate. File errors name the file and the tensor or config key at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// No known SAE layout at the path given.
    #[error("{path}: no SAE found; looked for {looked_for}")]
    NotFound { path: PathBuf, looked_for: String },
    /// A config file is not valid JSON.
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A config key is missing, of the wrong type, or has an unsupported value.
    #[error("{path}: config key '{key}': {reason}")]
    Config {
        path: PathBuf,
        key: String,
        reason: String,
    },
    /// A required tensor is absent.
    #[error("{path}: tensor '{name}' is missing (the file has: {found})")]
    MissingTensor {
        path: PathBuf,
        name: String,
        found: String,
    },
    /// A tensor has the wrong shape.
    #[error("{path}: tensor '{name}' has shape {found:?}, expected {expected}")]
    Shape {
        path: PathBuf,
        name: String,
        found: Vec<usize>,
        expected: String,
    },
    /// A tensor is not stored as floats.
    #[error("{path}: tensor '{name}' has dtype {found}, expected F32, BF16, F16 or F64")]
    TensorDtype {
        path: PathBuf,
        name: String,
        found: String,
    },
    /// A weight is NaN or infinite.
    #[error("{path}: tensor '{name}' holds {value} at flat index {index}; weights must be finite")]
    NonFinite {
        path: PathBuf,
        name: String,
        index: usize,
        value: f32,
    },
    /// A file is truncated or not in the format its name says.
    #[error("{path}: corrupt or truncated file: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    /// The SAE cannot be stored in the requested format.
    #[error("{path}: cannot be {action}: {reason}")]
    Unsupported {
        path: PathBuf,
        action: &'static str,
        reason: String,
    },
    /// [`Sae::check_compatible`]: the SAE's `d_in` is not the model's `d_model`.
    #[error(
        "{path}: the SAE reads vectors of d_in = {d_in}, but the model's residual stream has \
         d_model = {d_model}"
    )]
    DimMismatch {
        path: PathBuf,
        d_in: usize,
        d_model: usize,
    },
    /// [`Sae::check_compatible`]: the SAE was trained on another layer.
    #[error("{path}: the SAE was trained on layer {sae_layer} ({hook}), but layer {layer} was requested")]
    LayerMismatch {
        path: PathBuf,
        sae_layer: usize,
        hook: String,
        layer: usize,
    },
    /// A call with malformed arguments (ragged or non-finite input, out-of-range feature).
    #[error("invalid argument: {0}")]
    Input(String),
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn config(
        path: impl Into<PathBuf>,
        key: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Error::Config {
            path: path.into(),
            key: key.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
