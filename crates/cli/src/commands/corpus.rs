use anyhow::{Context, Result};
use saener_corpora::{BuildOptions, Source, TextDocument};
use saener_ner::{read_conll, ConllOptions};
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Assemble SAE training text: registry corpora + the text of NER *training* splits.
    ///
    /// Writes OUT/train.jsonl, OUT/heldout.jsonl (`{"id","source","text"}` per line) and
    /// OUT/manifest.json. Packages are fetched once into $SAENER_HOME/packages.
    #[command(after_help = "Example (the mix the shipped SAE was trained on):\n  \
saener corpus build --out corpus/ --add-conll ../shared/data/conll2003/train.conll \\\n    \
--add-conll ../shared/data/ncbi_disease/train.conll --add-conll ../shared/data/bc5cdr/train.conll")]
    Build {
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Registry sources to include.
        #[arg(long, value_delimiter = ',', default_value = "brown,bible,nlp-corpus")]
        sources: Vec<String>,
        /// CoNLL files whose *text* (no labels) is added, one document per -DOCSTART- block.
        /// Use training splits only: never dev or test text.
        #[arg(long = "add-conll")]
        add_conll: Vec<PathBuf>,
        /// Seed of the deterministic shuffle.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Fraction of documents held out for SAE evaluation.
        #[arg(long, default_value_t = 0.02)]
        heldout: f64,
    },
}

pub fn run(command: Command) -> Result<()> {
    let Command::Build {
        out,
        sources,
        add_conll,
        seed,
        heldout,
    } = command;
    let cache = saener_lm::saener_home().join("packages");
    let mut documents = Vec::new();
    for name in &sources {
        let source = Source::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .with_context(|| {
                format!("--sources: unknown source '{name}' (expected brown, bible or nlp-corpus)")
            })?;
        eprintln!("saener: reading {name}");
        documents.extend(source.documents(&cache)?);
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
    let manifest = saener_corpora::build(
        documents,
        &BuildOptions {
            seed,
            heldout_fraction: heldout,
        },
        &out,
    )?;
    println!("{}", serde_json::to_string_pretty(&manifest)?);
    Ok(())
}
