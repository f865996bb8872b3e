//! What `calibrate`, `eval` and `annotate` share: the argument groups that become the
//! library's [`StackConfig`] and [`CodeCache`] (the loading itself is
//! [`saener_ner::pipeline`]), the value parsers that read library enums by their serde
//! names, reading a labelled corpus in the chosen context, encoding it with a progress bar,
//! and finding a profile by name.

use anyhow::{Context as _, Result};
use saener_lm::Precision;
use saener_ner::{
    CodeCache, Combine, ConllOptions, Corpus, DecodeParams, EncodedCorpus, Profile, StackConfig,
    WordPooling,
};
use std::path::{Path, PathBuf};

/// Parses a library enum by its serde name (`noisy_or`, `last`), so the CLI and the profile
/// JSON spell values the same way.
pub fn serde_name<T: serde::de::DeserializeOwned>(s: &str) -> std::result::Result<T, String> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|e| e.to_string())
}

/// `none` or a number.
pub fn parse_extend(s: &str) -> std::result::Result<Option<f64>, String> {
    match s {
        "none" => Ok(None),
        _ => s.parse().map(Some).map_err(|e| format!("{s}: {e}")),
    }
}

/// Model, SAE and what to run them with; flattened into each NER subcommand.
#[derive(clap::Args, Clone)]
pub struct StackArgs {
    /// SAE folder or file in any supported format (default: the SAE shipped in models/).
    #[arg(long)]
    pub sae: Option<PathBuf>,
    /// GGUF model (default: Gemma 3 270M in $SAENER_HOME, fetched if missing).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Sequences per forward pass.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Read each document twice and take the second copy's residuals ("echo": every token
    /// then has seen the whole document; doubles the model's work). Profiles and probes
    /// record it, and reading one with its stack follows it.
    #[arg(long)]
    pub echo: bool,
    /// Arithmetic of the model's matrix products: f32 (the reference), bf16 (needs AMX),
    /// int8 (needs AVX512-VNNI) or auto: $SAENER_PRECISION if set, else the fastest this CPU
    /// runs (bf16, int8, f32; each measured within 0.3 F1 of f32). Part of the code cache
    /// key.
    #[arg(long, default_value = "auto")]
    pub precision: Precision,
}

/// What context each sentence of a labelled corpus is read in.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Context {
    /// The whole document (CoNLL `-DOCSTART-` documents; a JSONL record): each sentence
    /// sees the sentences before it.
    Document,
    /// Each sentence alone.
    Sentence,
}

/// Where codes are cached: `--cache DIR`, else `$SAENER_HOME/codes`; `--no-cache` for none.
#[derive(clap::Args, Clone)]
pub struct CacheArgs {
    /// Folder for cached SAE codes of labelled corpora (default: $SAENER_HOME/codes).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Neither read nor write cached codes.
    #[arg(long, conflicts_with = "cache")]
    pub no_cache: bool,
    /// Also cache every token's residual stream (f32, about 2.5 KB a token), keyed without
    /// the SAE, and compute codes from it: codes of the same corpus for another SAE of the
    /// same layer then skip the language model (comparing SAEs on NER).
    #[arg(long, conflicts_with = "no_cache")]
    pub keep_residuals: bool,
}

impl CacheArgs {
    pub fn root(&self) -> Option<PathBuf> {
        if self.no_cache {
            return None;
        }
        // Without a cache directory (no SAENER_HOME or HOME) there is no cache.
        self.cache
            .clone()
            .or_else(|| Some(saener_lm::saener_home().ok()?.join("codes")))
    }
}

/// Per-run overrides of a profile's decoding parameters; flattened into `eval` and
/// `annotate`.
#[derive(clap::Args, Clone)]
pub struct DecodeOverrides {
    /// Override the profile's decision threshold.
    #[arg(long)]
    threshold: Option<f64>,
    /// Override the profile's hysteresis threshold (`none`: off).
    #[arg(long, value_parser = parse_extend_override)]
    extend: Option<ExtendOverride>,
    /// Override the profile's vote combination (noisy_or or max).
    #[arg(long, value_parser = serde_name::<Combine>)]
    combine: Option<Combine>,
    /// Override the profile's word pooling (last, first, max or mean).
    #[arg(long, value_parser = serde_name::<WordPooling>)]
    pooling: Option<WordPooling>,
}

/// A hysteresis threshold or none. A newtype, because clap reads a field of type
/// `Option<Option<T>>` as a flag with an optional value of type `T`.
#[derive(Clone, Copy)]
pub struct ExtendOverride(Option<f64>);

fn parse_extend_override(s: &str) -> std::result::Result<ExtendOverride, String> {
    parse_extend(s).map(ExtendOverride)
}

impl DecodeOverrides {
    /// The profile's decoding parameters with every given override applied. A naive-Bayes
    /// profile decodes by its own scores, which these parameters do not touch: overriding
    /// them there is an error rather than a silent no-op.
    pub fn apply(&self, profile: &Profile) -> Result<DecodeParams> {
        let given = self.threshold.is_some()
            || self.extend.is_some()
            || self.combine.is_some()
            || self.pooling.is_some();
        if given && profile.naive_bayes.is_some() {
            anyhow::bail!(
                "--threshold, --extend, --combine and --pooling tune the noisy-or decoder; \
                 this profile decodes with naive Bayes (its parameters are set by `calibrate`)"
            );
        }
        let params = profile.decoding;
        Ok(DecodeParams {
            threshold: self.threshold.unwrap_or(params.threshold),
            extend: self.extend.map_or(params.extend, |e| e.0),
            combine: self.combine.unwrap_or(params.combine),
            pooling: self.pooling.unwrap_or(params.pooling),
        })
    }
}

pub use saener_ner::Stack;

impl From<&StackArgs> for StackConfig {
    fn from(args: &StackArgs) -> StackConfig {
        StackConfig {
            sae: args.sae.clone(),
            model: args.model.clone(),
            batch_size: args.batch_size,
            echo: args.echo,
            precision: args.precision,
            ..StackConfig::default()
        }
    }
}

impl StackArgs {
    /// The stack these arguments load, running the model to `layer` when given (dense
    /// probes at other layers); SAE codes are then unavailable.
    pub fn at_layer(&self, layer: Option<usize>) -> StackConfig {
        StackConfig {
            layer,
            ..self.into()
        }
    }
}

impl CacheArgs {
    /// The library's configuration of these arguments.
    pub fn config(&self) -> CodeCache {
        CodeCache {
            root: self.root(),
            keep_residuals: self.keep_residuals,
        }
    }
}

/// `corpus` with its codes, from the cache when it holds them, with a progress bar.
pub fn encode(stack: &Stack, corpus: Corpus, cache: &CacheArgs) -> Result<EncodedCorpus> {
    let bar = indicatif::ProgressBar::new(corpus.documents.len() as u64).with_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} documents encoded (ETA {eta})",
        )
        .expect("valid template"),
    );
    let encoded = stack.encode(corpus, &cache.config(), |done, _| {
        bar.set_position(done as u64)
    })?;
    bar.finish_and_clear();
    Ok(encoded)
}

/// Reads a labelled corpus: CoNLL columns, or JSONL with character spans (by extension:
/// `.jsonl`/`.json` is JSONL, anything else CoNLL), in the given context. Reader warnings
/// (repaired tags, snapped spans) go to stderr, each with its file and line.
pub fn read_corpus(path: &Path, context: Context) -> Result<Corpus> {
    let corpus = read_words(path, context)?;
    if !corpus.annotated {
        anyhow::bail!(
            "{}: no gold entities (JSONL records need an \"entities\" field)",
            path.display()
        );
    }
    Ok(corpus)
}

fn is_jsonl(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e == "jsonl" || e == "json")
}

/// Like [`read_corpus`], but the entities may be absent (JSONL without `entities`).
pub fn read_words(path: &Path, context: Context) -> Result<Corpus> {
    let loaded = if is_jsonl(path) {
        saener_ner::read_jsonl(path)?
    } else {
        saener_ner::read_conll(path, &ConllOptions::default())?
    };
    const SHOWN: usize = 5;
    for warning in loaded.warnings.iter().take(SHOWN) {
        eprintln!("saener: warning: {warning}");
    }
    if loaded.warnings.len() > SHOWN {
        eprintln!(
            "saener: … and {} more warnings in {}",
            loaded.warnings.len() - SHOWN,
            path.display()
        );
    }
    Ok(match context {
        Context::Document => loaded.corpus,
        Context::Sentence => loaded.corpus.into_sentence_documents(),
    })
}

/// Writes `corpus` in the format of the file it was read from (JSONL for `.jsonl`/`.json`,
/// else CoNLL with the input's columns), to `out` or to stdout.
pub fn write_corpus(corpus: &Corpus, read_from: &Path, out: Option<&Path>) -> Result<()> {
    let text = if is_jsonl(read_from) {
        corpus.to_jsonl()
    } else {
        corpus.to_conll()
    };
    match out {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
        }
        None => {
            use std::io::Write as _;
            std::io::stdout()
                .lock()
                .write_all(text.as_bytes())
                .context("writing to stdout")
        }
    }
}

/// A profile by path, or by the name of one shipped beside the default SAE
/// (`conll2003`, `ncbi_disease`, `bc5cdr`).
pub fn profile_path(name_or_path: &str) -> PathBuf {
    StackConfig::default().profile_path(name_or_path)
}

/// Loads a profile by path or shipped name, naming the shipped ones when it is not found.
pub fn load_profile(name_or_path: &str) -> Result<Profile> {
    Ok(StackConfig::default().load_profile(name_or_path)?)
}

/// Names of the shipped profiles.
pub fn shipped_profiles() -> Vec<String> {
    StackConfig::default().shipped_profiles()
}
