//! The NER stage of saener: corpora in, scores out.
//!
//! - [`corpus`] reads and writes CoNLL column files, JSONL span files and plain text into one
//!   data model ([`Corpus`] → [`Document`] → [`Sentence`] → [`Word`], with [`Entity`] spans),
//!   computing the words and their character offsets once.
//! - [`eval`] scores predicted tags against gold tags, entity-level exact match, under both
//!   seqeval-strict-IOB2 and conlleval counting, with an error breakdown.
//! - [`align`] maps the model's tokens to words by character overlap ([`Alignment`]).
//! - [`params`] holds the parameters of calibration and of both decoders, and the profile's
//!   kept [`Row`]s, which the modules below share.
//! - [`calibrate`] counts, per SAE feature, how often it fires inside each entity type
//!   ([`FeatureCounts`]); [`profile`] keeps the precise features as a JSON [`Profile`].
//! - [`codes`] runs the model and the SAE over a corpus once and caches every token's code
//!   on disk ([`CodeEncoder`]), so calibration and evaluation sweeps take seconds.
//! - [`bayes`] is the count-based naive-Bayes decoder: log-odds of every firing feature of a
//!   word and its neighbours, tags decoded jointly ([`NaiveBayes`], [`nb_sweep`]).
//! - [`decode`] turns a profile's votes on a document's codes into entity spans with their
//!   evidence ([`Decoder`], one variant per decoder).
//! - [`contexts`] finds each kept feature's top-activating calibration contexts, stored in
//!   the profile to explain what the feature reads.
//! - [`annotate`] runs the whole pipeline on new text, encoding only a profile's features
//!   ([`Annotator`]).
//! - [`pipeline`] loads the model, tokenizer, SAE and profiles once and checks them against
//!   each other ([`Stack`], [`Pipeline`]); the CLI, server and Python package start there.
//! - [`lexicon`] and [`label_free`] calibrate without an annotated corpus: a lexicon of
//!   names per type (or a few examples' names) matched in unlabelled text ([`Lexicon`],
//!   [`calibrate_from_lexicon`]).
//! - [`report`] writes an evaluation as a self-contained HTML page with errors in context.
//! - [`tune`] chooses calibration and decoding parameters on a dev set ([`sweep`]).
//!
//! The experiments around the pipeline (trained probes, the downstream tagger, annotation
//! noise, the silver-data study) are the `saener-study` crate.
//!
//! All character offsets are Unicode code points (as Python's `str` counts them), half-open.

pub mod align;
pub mod annotate;
pub mod bayes;
pub mod calibrate;
pub mod codes;
pub mod contexts;
pub mod corpus;
pub mod decode;
pub mod eval;
pub mod fuzzing;
pub mod gazetteer;
pub mod label_free;
pub mod lexicon;
pub mod params;
pub mod pipeline;
pub mod profile;
pub mod report;
mod tags;
#[cfg(test)]
mod test_support;
pub mod tune;

pub use align::{Alignment, WordPooling};
pub use annotate::{pieces, Annotation, Annotator, CharSlicer, EntityRecord, Piece, PIECE_BYTES};
pub use bayes::{nb_sweep, NaiveBayes, NbCounts, NbGrid, NbTrial};
pub use calibrate::FeatureCounts;
pub use codes::{CacheKey, CodeEncoder, DocumentCodes, EncodedCorpus, WordRows};
pub use contexts::{set_contexts_json, top_contexts, FeatureContext};
pub use corpus::{
    parse_conll, parse_jsonl, parse_text, read_conll, read_jsonl, read_text, tokenize,
    ConllOptions, Corpus, CorpusStats, Document, DocumentMode, Entity, Loaded, Sentence, Separator,
    TagScheme, TextMode, Warning, Word,
};
pub use decode::{
    predicted_corpus, predicted_document, Activations, Decoder, Evidence, NbDecoder, Span,
    VoteDecoder, MAX_EVIDENCE,
};
pub use eval::{
    evaluate, evaluate_corpus, judge_corpus, ErrorBreakdown, EvalReport, Judged, NoiseRates,
    Outcome, Prf, Scores,
};
pub use label_free::{
    calibrate_from_lexicon, LabelFreeCounts, LabelFreeNb, LabelFreeParams, LabelFreeReport,
    PuNbTrial, PuRecall, PuTrial,
};
pub use lexicon::{sample_examples, Lexicon, MatchOptions, Matcher};
pub use params::{
    CalibrationParams, Combine, CountedTokens, DecodeParams, NbParams, Row, Smoothing,
};
pub use pipeline::{CodeCache, NamedProfile, Pipeline, PipelineError, Stack, StackConfig};
pub use profile::{Origin, Profile};
pub use report::{html_report, ReportInput};
pub use tune::{sweep, Grid, Trial};

/// Errors of the NER stage. Each names the file, line and field at fault (or, for metrics,
/// the sentence and token) and says what was expected.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}: invalid UTF-8 at byte offset {offset}")]
    Utf8 {
        file: String,
        line: usize,
        offset: usize,
    },
    #[error("{file}:{line}: invalid JSON: {message}")]
    Json {
        file: String,
        line: usize,
        message: String,
    },
    /// A value in an input file is malformed: a column, a tag, a JSON field, an offset.
    #[error("{file}:{line}: {field}: expected {expected}, found {found}")]
    Field {
        file: String,
        line: usize,
        field: String,
        expected: String,
        found: String,
    },
    /// Gold and predicted data do not line up (sentence counts, lengths, words).
    #[error("gold and predictions differ at {at}: gold has {gold}, predictions have {pred}")]
    Mismatch {
        at: String,
        gold: String,
        pred: String,
    },
    /// A tag given to the metrics is not `O`, `B-<type>` or `I-<type>`.
    #[error("{at}: invalid tag {tag:?}: expected O, B-<type> or I-<type>")]
    Tag { at: String, tag: String },
    /// A value read from a file is impossible, found after parsing (so without a line): a
    /// profile row's type or feature, a precision.
    #[error("{file}: {field}: expected {expected}, found {found}")]
    Invalid {
        file: String,
        field: String,
        expected: String,
        found: String,
    },
    /// The language model failed (a forward pass, a tokenizer).
    #[error(transparent)]
    Model(#[from] saener_lm::Error),
    /// The SAE failed (an encode on mismatched shapes).
    #[error(transparent)]
    Sae(#[from] saener_sae::Error),
    /// A parameter is out of its range.
    #[error("{name}: expected {expected}, found {found}")]
    Argument {
        name: String,
        expected: String,
        found: String,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// An [`Error::Argument`]: `name` should be `expected` but is `found`.
pub(crate) fn argument(name: &str, expected: &str, found: impl ToString) -> Error {
    Error::Argument {
        name: name.to_string(),
        expected: expected.to_string(),
        found: found.to_string(),
    }
}
