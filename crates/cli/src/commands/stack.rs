//! What `calibrate`, `eval` and `annotate` share: loading the model and SAE, reading a
//! labelled corpus in the chosen context, encoding it through the code cache, and finding a
//! profile by name.

use anyhow::{Context as _, Result};
use saener_lm::gemma3::{Gemma3, LoadOptions};
use saener_lm::residuals::{ExtractOptions, Extractor};
use saener_lm::{Precision, Tokenizer};
use saener_ner::{
    CodeEncoder, Combine, ConllOptions, Corpus, DecodeParams, EncodedCorpus, Origin, Profile,
    WordFeatures, WordPooling,
};
use saener_sae::Sae;
use std::path::{Path, PathBuf};

use crate::commands::calibrate::serde_name;
use crate::commands::io::{model_path, sae_path};

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
    /// Arithmetic of the model's matrix products: f32, int8 (needs AVX512-VNNI), bf16 or
    /// auto (f32 until a faster precision is shown to leave F1 unchanged). Part of the code
    /// cache key.
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
        Some(
            self.cache
                .clone()
                .unwrap_or_else(|| saener_lm::saener_home().join("codes")),
        )
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
    crate::commands::calibrate::parse_extend(s).map(ExtendOverride)
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

/// A loaded model and SAE.
pub struct Stack {
    pub tokenizer: Tokenizer,
    pub model: Gemma3,
    pub sae: Sae,
    pub layer: usize,
    /// SHA-256 of the model file.
    pub model_id: String,
    pub batch_size: usize,
    /// Echo reading ([`StackArgs::echo`]).
    pub echo: bool,
}

impl Stack {
    /// Loads the SAE, then the model up to the SAE's layer only.
    pub fn load(args: &StackArgs) -> Result<Stack> {
        Stack::load_at(args, None)
    }

    /// Like [`Stack::load`], but running the model to `layer` when given (dense probes at
    /// other layers); SAE codes are then unavailable.
    pub fn load_at(args: &StackArgs, layer: Option<usize>) -> Result<Stack> {
        let sae = saener_sae::load_any(sae_path(args.sae.clone()))?;
        let sae_layer = sae
            .config()
            .hook_layer
            .context("the SAE records no hook layer, so saener cannot tell which layer it reads")?;
        let layer = layer.unwrap_or(sae_layer);
        let model_file = model_path(args.model.clone())?;
        let model_id = saener_lm::fetch::sha256_file(&model_file)?;
        let tokenizer = Tokenizer::from_gguf(&model_file)?;
        let model = Gemma3::load(
            &model_file,
            LoadOptions {
                max_layer: Some(layer),
                precision: args.precision,
                ..LoadOptions::default()
            },
        )?;
        if layer == sae_layer {
            sae.check_compatible(model.config().hidden_size, layer)?;
        }
        Ok(Stack {
            tokenizer,
            model,
            sae,
            layer,
            model_id,
            batch_size: args.batch_size,
            echo: args.echo,
        })
    }

    pub fn encoder(&self) -> CodeEncoder<'_> {
        CodeEncoder {
            extractor: Extractor {
                tokenizer: &self.tokenizer,
                model: &self.model,
                options: ExtractOptions {
                    batch_size: self.batch_size,
                    echo: self.echo,
                    ..ExtractOptions::new(self.layer)
                },
            },
            sae: &self.sae,
            model_id: self.model_id.clone(),
        }
    }

    /// The origin a profile calibrated on `corpus` with this stack records.
    pub fn origin(&self, corpus: &Corpus) -> Origin {
        Origin {
            model: self.model_id.clone(),
            layer: self.layer,
            sae_id: self.sae.id().to_string(),
            data_checksum: corpus.checksum(),
            echo: self.echo,
        }
    }

    /// Errors unless `profile` was calibrated for this model, layer and SAE; then reads
    /// residuals the way the profile's were read (echo or not).
    pub fn check(&mut self, profile: &Profile) -> Result<()> {
        profile
            .check_compatible(&self.model_id, self.layer, self.sae.id())
            .context("the profile belongs to another model or SAE (pass the --sae it was calibrated with)")?;
        self.follow(&profile.origin)
    }

    /// Reads residuals as `origin` was read (echo or not); `--echo` against an origin
    /// without it is an error rather than a silent mismatch.
    pub fn follow(&mut self, origin: &Origin) -> Result<()> {
        if self.echo && !origin.echo {
            anyhow::bail!("--echo was given, but the profile or probe was calibrated without it");
        }
        self.echo = origin.echo;
        Ok(())
    }

    /// Each word's dense residual (at its last token) at this stack's layer, through the
    /// cache.
    pub fn dense_words(&self, corpus: &Corpus, cache: &CacheArgs) -> Result<WordFeatures> {
        let root = cache.root();
        let rows = self.encoder().word_residuals(
            corpus,
            root.as_deref(),
            cache.keep_residuals,
            |_, _| {},
        )?;
        Ok(WordFeatures::dense(&rows))
    }

    /// `corpus` with its codes, from the cache when it holds them.
    pub fn encode(&self, corpus: Corpus, cache: &CacheArgs) -> Result<EncodedCorpus> {
        if self.sae.config().hook_layer != Some(self.layer) {
            anyhow::bail!(
                "the SAE reads layer {:?}, not layer {}: SAE codes need the SAE's layer",
                self.sae.config().hook_layer,
                self.layer
            );
        }
        let bar = indicatif::ProgressBar::new(corpus.documents.len() as u64).with_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} documents encoded (ETA {eta})",
            )
            .expect("valid template"),
        );
        let root = cache.root();
        let codes = self.encoder().corpus_codes(
            &corpus,
            root.as_deref(),
            cache.keep_residuals,
            |done, _| bar.set_position(done as u64),
        )?;
        bar.finish_and_clear();
        Ok(EncodedCorpus::new(corpus, codes)?)
    }
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
    let path = PathBuf::from(name_or_path);
    if path.exists() || name_or_path.contains(['/', '.']) {
        return path;
    }
    sae_path(None)
        .join("profiles")
        .join(format!("{name_or_path}.json"))
}

/// Loads a profile by path or shipped name, naming the shipped ones when it is not found.
pub fn load_profile(name_or_path: &str) -> Result<Profile> {
    let path = profile_path(name_or_path);
    if !path.exists() {
        let shipped = shipped_profiles().join(", ");
        anyhow::bail!(
            "--profile {name_or_path}: no such file, and not a shipped profile (shipped: {shipped})"
        );
    }
    Ok(Profile::load(&path)?)
}

pub fn shipped_profiles() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(sae_path(None).join("profiles"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".json").map(String::from)
        })
        .collect();
    names.sort();
    names
}
