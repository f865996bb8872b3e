//! The loaded pipeline: model, tokenizer and SAE ([`Stack`]), plus the profiles to annotate
//! with ([`Pipeline`]), loaded once and checked against each other once. The CLI, the server
//! and the Python package build these instead of the language-model types.
//!
//! Where things are found ([`StackConfig`]): the model is `--model` or the default GGUF in
//! `$SAENER_HOME` (fetched on first use); the SAE is `--sae` or the one shipped in this
//! repository, whose `profiles/` folder holds the shipped profiles (`conll2003`, …).

use std::path::PathBuf;

use saener_lm::gemma3::{Gemma3, LoadOptions};
use saener_lm::residuals::{ExtractOptions, Extractor};
use saener_lm::Precision;
use saener_lm::Tokenizer;
use saener_sae::Sae;

use crate::annotate::Annotator;
use crate::codes::{CodeEncoder, EncodedCorpus, WordRows};
use crate::corpus::Corpus;
use crate::params::DecodeParams;
use crate::profile::{Origin, Profile};

/// Errors of loading a pipeline and of checking a profile against it. The messages are the
/// CLI's (they name its flags: `--model`, `--profile`, `--sae`, `--echo`).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("--model {}: no such file", path.display())]
    NoSuchModel { path: PathBuf },
    #[error("--profile {name}: no such file, and not a shipped profile (shipped: {})", shipped.join(", "))]
    NoSuchProfile { name: String, shipped: Vec<String> },
    #[error("the SAE records no hook layer, so saener cannot tell which layer it reads")]
    NoHookLayer,
    #[error("the profile belongs to another model or SAE (pass the --sae it was calibrated with)")]
    Incompatible {
        #[source]
        source: crate::Error,
    },
    #[error("--echo was given, but the profile or probe was calibrated without it")]
    EchoMismatch,
    #[error("the SAE reads layer {sae:?}, not layer {layer}: SAE codes need the SAE's layer")]
    NotSaeLayer { sae: Option<usize>, layer: usize },
    #[error("no profile to annotate with")]
    NoProfile,
    #[error(
        "two profiles are named {0:?}; a request could reach only the first (rename one file)"
    )]
    DuplicateProfile(String),
    #[error("profile {name}: {source}")]
    Profile {
        name: String,
        #[source]
        source: Box<PipelineError>,
    },
    #[error("no profile named {name:?} in this pipeline (it has: {})", have.join(", "))]
    UnknownProfile { name: String, have: Vec<String> },
    #[error(transparent)]
    Model(#[from] saener_lm::Error),
    #[error(transparent)]
    Sae(#[from] saener_sae::Error),
    #[error(transparent)]
    Ner(#[from] crate::Error),
}

/// Result with [`PipelineError`].
pub type Result<T> = std::result::Result<T, PipelineError>;

/// Which model and SAE to load, and how to run them.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// SAE folder or file in any supported format; `None`: [`StackConfig::default_sae`].
    pub sae: Option<PathBuf>,
    /// GGUF model; `None`: the default model in `$SAENER_HOME`, fetched if missing.
    pub model: Option<PathBuf>,
    /// The SAE used when none is given; its `profiles/` folder holds the shipped profiles.
    pub default_sae: PathBuf,
    /// Sequences per forward pass.
    pub batch_size: usize,
    /// Read each document twice and take the second copy's residuals (echo).
    pub echo: bool,
    /// Run the model to this layer instead of the SAE's (dense probes); SAE codes are then
    /// unavailable.
    pub layer: Option<usize>,
    /// Load every block of the model, not only those up to the layer read (to read
    /// residuals at any layer later, as the Python package's `residuals` does).
    pub all_layers: bool,
    /// Arithmetic of the model's matrix products (part of the code cache key).
    pub precision: Precision,
}

impl Default for StackConfig {
    fn default() -> Self {
        StackConfig {
            sae: None,
            model: None,
            default_sae: repository_sae(),
            batch_size: 16,
            echo: false,
            layer: None,
            all_layers: false,
            precision: Precision::Auto,
        }
    }
}

/// The SAE shipped in this repository (`models/gemma3-270m-l9-topk64-16k`, Gemma Scope 2
/// layout), by the path of the source tree this crate was built from.
pub fn repository_sae() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../models/gemma3-270m-l9-topk64-16k"
    ))
}

impl StackConfig {
    /// The SAE to load: [`StackConfig::sae`] or the default.
    pub fn sae_path(&self) -> PathBuf {
        self.sae.clone().unwrap_or_else(|| self.default_sae.clone())
    }

    /// The model to load: [`StackConfig::model`] if it exists, else the default model
    /// (fetched on first use, with a note on stderr since it takes a while).
    pub fn model_path(&self) -> Result<PathBuf> {
        match &self.model {
            Some(path) if path.exists() => Ok(path.clone()),
            Some(path) => Err(PipelineError::NoSuchModel { path: path.clone() }),
            None => {
                if !saener_lm::default_model_path()?.exists() {
                    eprintln!("saener: fetching the default model (Gemma 3 270M, ~250 MB) …");
                }
                Ok(saener_lm::ensure_default_model()?)
            }
        }
    }

    /// A profile by path, or by the name of one shipped beside the default SAE.
    pub fn profile_path(&self, name_or_path: &str) -> PathBuf {
        let path = PathBuf::from(name_or_path);
        if path.exists() || name_or_path.contains(['/', '.']) {
            return path;
        }
        self.default_sae
            .join("profiles")
            .join(format!("{name_or_path}.json"))
    }

    /// Loads a profile by path or shipped name, naming the shipped ones when it is not
    /// found.
    pub fn load_profile(&self, name_or_path: &str) -> Result<Profile> {
        let path = self.profile_path(name_or_path);
        if !path.exists() {
            return Err(PipelineError::NoSuchProfile {
                name: name_or_path.to_string(),
                shipped: self.shipped_profiles(),
            });
        }
        Ok(Profile::load(&path)?)
    }

    /// Names of the profiles shipped beside the default SAE, sorted.
    pub fn shipped_profiles(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.default_sae.join("profiles"))
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
}

/// Where codes of labelled corpora are cached.
#[derive(Debug, Clone, Default)]
pub struct CodeCache {
    /// Cache folder; `None`: neither read nor write cached codes.
    pub root: Option<PathBuf>,
    /// Also cache every token's residual stream, so codes for another SAE of the same layer
    /// skip the language model.
    pub keep_residuals: bool,
}

/// A loaded model and SAE.
pub struct Stack {
    pub tokenizer: Tokenizer,
    pub model: Gemma3,
    pub sae: Sae,
    /// The layer the model runs to: the SAE's, unless [`StackConfig::layer`] said otherwise.
    pub layer: usize,
    /// SHA-256 of the model file.
    pub model_id: String,
    pub batch_size: usize,
    /// Echo reading ([`StackConfig::echo`]).
    pub echo: bool,
}

impl Stack {
    /// Loads the SAE, then the model up to the layer read (every block with
    /// [`StackConfig::all_layers`]), and checks that the SAE reads this model's width.
    pub fn load(config: impl Into<StackConfig>) -> Result<Stack> {
        let config = config.into();
        let sae = saener_sae::load_any(config.sae_path())?;
        let sae_layer = sae.config().hook_layer.ok_or(PipelineError::NoHookLayer)?;
        let layer = config.layer.unwrap_or(sae_layer);
        let model_file = config.model_path()?;
        let model_id = saener_lm::fetch::sha256_file(&model_file)?;
        let tokenizer = Tokenizer::from_gguf(&model_file)?;
        let max_layer = (!config.all_layers).then_some(layer);
        let model = Gemma3::load(
            &model_file,
            LoadOptions {
                max_layer,
                precision: config.precision,
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
            batch_size: config.batch_size,
            echo: config.echo,
        })
    }

    /// Runs the tokenizer and model to `layer` with this stack's batching and echo.
    pub fn extractor(&self, layer: usize) -> Extractor<'_> {
        Extractor {
            tokenizer: &self.tokenizer,
            model: &self.model,
            options: ExtractOptions {
                batch_size: self.batch_size,
                echo: self.echo,
                ..ExtractOptions::new(layer)
            },
        }
    }

    pub fn encoder(&self) -> CodeEncoder<'_> {
        CodeEncoder {
            extractor: self.extractor(self.layer),
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
            precision: self.model.precision(),
        }
    }

    /// Errors unless `profile` was calibrated for this model, layer and SAE; then reads
    /// residuals the way the profile's were read (echo or not).
    pub fn check(&mut self, profile: &Profile) -> Result<()> {
        self.check_compatible(profile)?;
        self.follow(&profile.origin)
    }

    /// Errors unless `profile` was calibrated for this model, layer and SAE, and with echo
    /// if this stack was asked to read with it. A profile calibrated at another precision
    /// is fine (F1 moves by a few tenths; RESULTS.md, "Precision") but gets a one-line
    /// notice on stderr.
    pub fn check_compatible(&self, profile: &Profile) -> Result<()> {
        profile
            .check_compatible(&self.model_id, self.layer, self.sae.id())
            .map_err(|source| PipelineError::Incompatible { source })?;
        let (calibrated, running) = (profile.origin.precision, self.model.precision());
        if calibrated != running {
            eprintln!(
                "saener: note: the profile was calibrated at {calibrated} precision and runs at \
                 {running} here (--precision {calibrated} or SAENER_PRECISION={calibrated} to match)"
            );
        }
        self.check_echo(&profile.origin)
    }

    fn check_echo(&self, origin: &Origin) -> Result<()> {
        if self.echo && !origin.echo {
            return Err(PipelineError::EchoMismatch);
        }
        Ok(())
    }

    /// Reads residuals as `origin` was read (echo or not); echo asked for against an origin
    /// without it is an error rather than a silent mismatch.
    pub fn follow(&mut self, origin: &Origin) -> Result<()> {
        self.check_echo(origin)?;
        self.echo = origin.echo;
        Ok(())
    }

    /// Each word's dense residual (at its last token) at this stack's layer, per document,
    /// through the cache.
    pub fn word_residuals(&self, corpus: &Corpus, cache: &CodeCache) -> Result<Vec<WordRows>> {
        Ok(self.encoder().word_residuals(
            corpus,
            cache.root.as_deref(),
            cache.keep_residuals,
            |_, _| {},
        )?)
    }

    /// `corpus` with its codes, from the cache when it holds them; `progress` gets the
    /// documents done and the total.
    pub fn encode(
        &self,
        corpus: Corpus,
        cache: &CodeCache,
        progress: impl FnMut(usize, usize),
    ) -> Result<EncodedCorpus> {
        if self.sae.config().hook_layer != Some(self.layer) {
            return Err(PipelineError::NotSaeLayer {
                sae: self.sae.config().hook_layer,
                layer: self.layer,
            });
        }
        let codes = self.encoder().corpus_codes(
            &corpus,
            cache.root.as_deref(),
            cache.keep_residuals,
            progress,
        )?;
        Ok(EncodedCorpus::new(corpus, codes)?)
    }
}

/// A profile of a [`Pipeline`], with the decoding parameters it annotates with.
pub struct NamedProfile {
    /// What requests call it by (the name or path it was loaded by).
    pub name: String,
    pub profile: Profile,
    pub params: DecodeParams,
}

impl NamedProfile {
    /// `profile` decoding with its own calibrated parameters.
    pub fn new(name: impl Into<String>, profile: Profile) -> NamedProfile {
        let params = profile.decoding;
        NamedProfile {
            name: name.into(),
            profile,
            params,
        }
    }
}

/// A stack and the profiles it annotates with, each checked against it at load. Shareable
/// between threads (`Send + Sync`): annotating borrows it immutably.
pub struct Pipeline {
    stack: Stack,
    profiles: Vec<NamedProfile>,
}

impl Pipeline {
    /// Loads the stack and checks every profile against it (model, layer, SAE, echo).
    pub fn load(config: &StackConfig, profiles: Vec<NamedProfile>) -> Result<Pipeline> {
        Pipeline::new(Stack::load(config.clone())?, profiles)
    }

    /// A pipeline over an already loaded stack: errors unless there is a profile, no two
    /// share a name, and each fits the stack.
    pub fn new(stack: Stack, profiles: Vec<NamedProfile>) -> Result<Pipeline> {
        if profiles.is_empty() {
            return Err(PipelineError::NoProfile);
        }
        if let Some(name) = first_duplicate(profiles.iter().map(|p| p.name.as_str())) {
            return Err(PipelineError::DuplicateProfile(name.to_string()));
        }
        for named in &profiles {
            // Named, since a server loads several.
            stack
                .check_compatible(&named.profile)
                .map_err(|source| PipelineError::Profile {
                    name: named.name.clone(),
                    source: Box::new(source),
                })?;
        }
        Ok(Pipeline { stack, profiles })
    }

    /// The model, tokenizer and SAE.
    pub fn stack(&self) -> &Stack {
        &self.stack
    }

    /// The profiles, in load order (the first is the default).
    pub fn profiles(&self) -> &[NamedProfile] {
        &self.profiles
    }

    /// The index of the profile called `name`.
    pub fn position(&self, name: &str) -> Result<usize> {
        self.profiles
            .iter()
            .position(|p| p.name == name)
            .ok_or_else(|| PipelineError::UnknownProfile {
                name: name.to_string(),
                have: self.profiles.iter().map(|p| p.name.clone()).collect(),
            })
    }

    /// An annotator for profile number `index` (it gathers the profile's SAE columns, so
    /// build one per batch of documents, not per document).
    ///
    /// # Panics
    /// If `index` is out of range.
    pub fn annotator(&self, index: usize) -> Result<Annotator<'_>> {
        let named = &self.profiles[index];
        Ok(Annotator::new(
            self.stack.extractor(self.stack.layer),
            &self.stack.sae,
            &named.profile,
            named.params,
        )?)
    }
}

/// The first name that comes again.
fn first_duplicate<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut seen = std::collections::HashSet::new();
    names.into_iter().find(|name| !seen.insert(*name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_name_given_twice_is_found() {
        assert_eq!(first_duplicate(["a", "b", "c"]), None);
        assert_eq!(
            first_duplicate(["conll2003", "x", "conll2003"]),
            Some("conll2003")
        );
        let message = PipelineError::DuplicateProfile("x".into()).to_string();
        assert!(message.contains("\"x\""), "{message}");
    }

    #[test]
    fn shipped_profiles_are_found_by_name_and_a_missing_one_names_them() {
        let config = StackConfig::default();
        let names = config.shipped_profiles();
        assert!(names.iter().any(|n| n == "conll2003"), "{names:?}");
        assert_eq!(
            config.profile_path("conll2003"),
            config.default_sae.join("profiles").join("conll2003.json")
        );
        // A path is taken as one, shipped or not.
        assert_eq!(config.profile_path("x/y.json"), PathBuf::from("x/y.json"));
        let missing = config.load_profile("no_such_profile").unwrap_err();
        assert_eq!(
            missing.to_string(),
            format!(
                "--profile no_such_profile: no such file, and not a shipped profile (shipped: {})",
                names.join(", ")
            )
        );
        let model = StackConfig {
            model: Some("/nonexistent/model.gguf".into()),
            ..StackConfig::default()
        };
        assert_eq!(
            model.model_path().unwrap_err().to_string(),
            "--model /nonexistent/model.gguf: no such file"
        );
    }
}
