use anyhow::{Context as _, Result};
use saener_ner::gazetteer::{
    build, read_sources, BuildOptions, CommonWords, TypeMap, COMMON_WORDS,
};
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Assemble a type lexicon from the name lists of registry packages.
    ///
    /// Reads the source files of --from (one JSONL per package, written by
    /// lexicons/gazetteers.py from the installed packages) and a type map (TOML: per entity
    /// type its `package:kind` sources, hand-written seed lexicons, and which sources the
    /// common-word rule spares), applies the rules of lexicons/README.md (shape, case
    /// variants, common words, ambiguity) and writes a JSONL lexicon for
    /// `saener calibrate --lexicon` with every source's package, version and licence, and
    /// each name's source. --manifest writes what was read and kept, per type and source.
    #[command(
        after_help = "Example (the CoNLL-2003 types from package name lists):\n  \
python3 -m venv .venv-gaz && .venv-gaz/bin/pip install -r lexicons/gazetteers-requirements.txt\n  \
.venv-gaz/bin/python lexicons/gazetteers.py gazetteers/\n  \
saener lexicon build --from gazetteers/ --types lexicons/conll2003.gazetteer.toml \\\n    \
--out conll2003-gazetteer.jsonl --manifest conll2003-gazetteer.manifest.json"
    )]
    Build {
        /// Folder of source files (`*.jsonl`, and common_words.jsonl for the common-word rule).
        #[arg(long = "from")]
        from: PathBuf,
        /// Type map (TOML): `[TYPE]` tables with sources, seeds, keep_common, case_variants.
        #[arg(long)]
        types: PathBuf,
        /// Where to write the lexicon (JSONL).
        #[arg(long)]
        out: PathBuf,
        /// Where to write the manifest (JSON): sources with version and licence, counts per
        /// type and source, names each rule dropped.
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// Common-word rule: single-word names whose lower-case form has at least this Zipf
        /// frequency in common_words.jsonl are dropped.
        #[arg(long, default_value_t = BuildOptions::default().max_zipf)]
        max_zipf: f64,
        /// Names longer than this many words are dropped.
        #[arg(long, default_value_t = BuildOptions::default().max_words)]
        max_words: usize,
    },
}

pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Build {
            from,
            types,
            out,
            manifest,
            max_zipf,
            max_words,
        } => {
            let map = TypeMap::load(&types)?;
            let sources = read_sources(&from)?;
            if sources.is_empty() {
                anyhow::bail!(
                    "{}: no source files (*.jsonl); write them with `python lexicons/gazetteers.py {}` \
                     in a virtual environment with lexicons/gazetteers-requirements.txt installed",
                    from.display(),
                    from.display()
                );
            }
            let common_path = from.join(COMMON_WORDS);
            let common = if common_path.exists() {
                Some(CommonWords::load(&common_path)?)
            } else {
                eprintln!(
                    "saener: warning: {} is missing: the common-word rule is off",
                    common_path.display()
                );
                None
            };
            let options = BuildOptions {
                max_zipf,
                max_words,
            };
            let gazetteer = build(&sources, &map, common.as_ref(), options)
                .with_context(|| format!("building the types of {}", types.display()))?;
            gazetteer.write_jsonl(&out)?;
            for (label, counts) in &gazetteer.manifest.types {
                eprintln!(
                    "saener: {label}: {} names ({}); dropped {} by shape, {} as common words, {} as ambiguous",
                    counts.names,
                    counts
                        .sources
                        .iter()
                        .map(|(s, n)| format!("{s} {n}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    counts.dropped_shape,
                    counts.dropped_common,
                    counts.dropped_ambiguous
                );
            }
            if let Some(path) = manifest {
                let json = serde_json::to_string_pretty(&gazetteer.manifest)? + "\n";
                std::fs::write(&path, json)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            eprintln!("saener: wrote {}", out.display());
            Ok(())
        }
    }
}
