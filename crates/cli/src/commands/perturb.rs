use anyhow::Result;
use saener_study::{perturb, PerturbKind};
use std::path::PathBuf;

use crate::commands::stack::{read_corpus, write_corpus, Context};

#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  saener perturb --data ../shared/data/ncbi_disease/train.conll \
--kind fn --rate 0.2 --seed 1 > train-fn20.conll\n\n\
Only entities change: every word, column and document line is written back as read. \
`saener diff --gold G --pred OUT` measures the realised rate."
)]
pub struct Args {
    /// Gold data: CoNLL columns, or JSONL with spans (.jsonl); the output has its format.
    #[arg(long)]
    data: PathBuf,
    /// fn: drop entities; boundary: move one edge of an entity by one word (extend or
    /// shrink, never empty or touching another entity); fp: add entities of a random type
    /// on non-entity words, with gold lengths; type: give entities another type.
    #[arg(long, value_enum)]
    kind: Kind,
    /// Share of the gold entities affected (for fp: spurious entities added per gold entity).
    #[arg(long)]
    rate: f64,
    /// Random seed; the same seed gives the same output.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write here instead of to stdout.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy)]
enum Kind {
    Fn,
    Boundary,
    Fp,
    Type,
}

impl From<Kind> for PerturbKind {
    fn from(kind: Kind) -> PerturbKind {
        match kind {
            Kind::Fn => PerturbKind::Fn,
            Kind::Boundary => PerturbKind::Boundary,
            Kind::Fp => PerturbKind::Fp,
            Kind::Type => PerturbKind::Type,
        }
    }
}

pub fn run(args: Args) -> Result<()> {
    let gold = read_corpus(&args.data, Context::Document)?;
    let noisy = perturb(&gold, args.kind.into(), args.rate, args.seed)?;
    write_corpus(&noisy, &args.data, args.out.as_deref())
}
