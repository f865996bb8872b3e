//! The experiments around SAE-NER, kept out of the pipeline crate (`saener-ner`) so that
//! annotating and calibrating do not carry them: the baselines SAE-NER is compared with,
//! and the studies that measure it.
//!
//! - [`features`]: what the trained models read, each word's dense residual or SAE code
//!   ([`WordFeatures`], [`Featured`]).
//! - [`probe`]: the trained baselines, logistic regression on each word's features
//!   ([`Probe`]).
//! - [`tagger`]: the downstream tagger of the silver-data study, a linear-chain CRF over
//!   frozen dense features ([`Tagger`]).
//! - [`mod@perturb`]: controlled noisy copies of a gold corpus (dropped entities, moved
//!   boundaries, spurious entities, swapped types).
//! - [`noise`]: the silver-data and annotation-noise study (`saener study`): the tagger
//!   trained on gold, silver and perturbed gold, resumable, summarised as a table and chart.
//! - [`efficiency`]: data efficiency (`saener efficiency`): SAE-NER and both probes against
//!   the number of calibration sentences.
//!
//! The models and perturbations report `saener_ner`'s errors; the studies, which also read
//! and write their own files, report this crate's [`Error`].

#![warn(missing_docs)]

use std::path::PathBuf;

mod chart;
pub mod efficiency;
pub mod features;
pub mod noise;
pub mod perturb;
pub mod probe;
pub mod tagger;
#[cfg(test)]
mod test_support;
mod weights;

pub use features::{dense_words, Featured, WordFeatures};
pub use perturb::{perturb, PerturbKind};
pub use probe::{word_classes, Probe, ProbeInput, ProbeMeta, ProbeOptions};
pub use tagger::{fit_and_score, Tagger, TaggerMeta, TaggerOptions};

/// Errors of the studies: the pipeline's, and their own files'.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The NER stage failed (a model, a decoder, a count, an evaluation).
    #[error(transparent)]
    Ner(#[from] saener_ner::Error),
    /// Loading or running the model and SAE failed.
    #[error(transparent)]
    Pipeline(#[from] saener_ner::PipelineError),
    /// A study file could not be read or written (`action` says which).
    #[error("{action} {}", path.display())]
    File {
        /// What was being done: "reading", "writing", "opening".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// Writing to a file already open failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A record did not serialize.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A study folder's `study.json` is not a study setup.
    #[error("{}: not a study setup", path.display())]
    NotSetup {
        /// The file.
        path: PathBuf,
        /// Why it did not parse.
        #[source]
        source: serde_json::Error,
    },
    /// A study folder holds runs made with another setup; mixing them would be wrong.
    #[error(
        "{}: this folder holds a study with another setup (data, profile, model or tagger settings); \
use another --out or delete it.\nfound:    {found}\nthis run: {this}",
        path.display()
    )]
    OtherSetup {
        /// The setup file.
        path: PathBuf,
        /// The setup found there, as debug text.
        found: String,
        /// This run's setup, as debug text.
        this: String,
    },
    /// A line of a study's run log is not a run.
    #[error("{}:{line}: not a study run: {message}", path.display())]
    NotRun {
        /// The log.
        path: PathBuf,
        /// Its line, from 1.
        line: usize,
        /// The parser's message.
        message: String,
    },
    /// A chart could not be drawn.
    #[error("drawing {}: {message}", path.display())]
    Chart {
        /// The chart's file.
        path: PathBuf,
        /// The drawing library's message.
        message: String,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
