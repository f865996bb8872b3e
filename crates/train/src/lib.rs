//! Training TopK / BatchTopK sparse autoencoders on CPU, from an on-disk activation store or
//! straight from text.
//!
//! - [`store`]: residual-stream rows written in checksummed shards by the LM
//!   ([`StoreWriter`], resumable) and streamed back in a seeded, resumable shuffled order
//!   ([`StoreReader`], [`RowStream`]).
//! - [`trainer`]: [`train`] runs a TopK SAE (Gao et al. 2024, with AuxK) or a BatchTopK SAE
//!   (Bussmann et al. 2024) with hand-written sparse gradients, Adam, checkpoints and a metrics
//!   CSV, resuming from the latest checkpoint in its output directory.
//! - [`extract`]: [`extract_to_store`] fills a store from text with the LM, resumably.
//! - [`stream`]: [`train_streaming`] trains from text in one resumable process, the LM's rows
//!   going through a shuffle buffer in memory that checkpoints hold, so no store is written.
//! - [`evaluate`]: FVU, L0, dead features and CE loss recovered on held-out text.
//! - [`export`]: the result, [`TrainedSae`], is plain `Vec<f32>` weights in raw-residual space
//!   plus a serialisable config, so other crates convert it without depending on trainer types.
//!
//! All matrices are row-major `f32` in flat slices.

pub mod evaluate;
pub mod export;
pub mod extract;
mod linalg;
mod model;
mod rng;
pub mod store;
pub mod stream;
mod tensors;
pub mod trainer;

pub use export::{SaeWeights, TrainedActivation, TrainedSae, TrainedSaeConfig, TrainingStats};
pub use extract::extract_to_store;
pub use store::{Dtype, RowStream, ShardInfo, StoreMeta, StoreReader, StoreWriter};
pub use stream::{train_streaming, Featurizer, LmRows};
pub use trainer::{
    train, ActivationKind, EvalStats, PhaseTimes, StepMetrics, TrainConfig, TrainOutcome,
};

use std::path::PathBuf;

/// Errors of the training crate. File errors name the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A JSON file (store metadata, shard sidecar, config) did not parse.
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A safetensors file (checkpoint or exported SAE) did not parse or lacks a tensor.
    #[error("{path}: {reason}")]
    Safetensors { path: PathBuf, reason: String },
    /// The store on disk was made with different metadata than the caller's; the two are never
    /// mixed.
    #[error(
        "{dir}: store was created with {field} = {stored}, but this run has {field} = {given}"
    )]
    StoreMismatch {
        dir: PathBuf,
        field: String,
        stored: String,
        given: String,
    },
    /// A shard's files are inconsistent (size, checksum, numbering).
    #[error("{path}: {reason}")]
    CorruptShard { path: PathBuf, reason: String },
    /// A checkpoint was written by a run with a different config or store.
    #[error("{path}: cannot resume: {reason}")]
    CheckpointMismatch { path: PathBuf, reason: String },
    /// Caller-supplied data or configuration is invalid.
    #[error("{0}")]
    Invalid(String),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Wraps an I/O error with the path it concerns.
pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}
