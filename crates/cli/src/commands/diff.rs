use anyhow::{Context as _, Result};
use saener_ner::{evaluate_corpus, NoiseRates, Prf};
use serde::Serialize;
use std::path::PathBuf;

use crate::commands::stack::{read_corpus, Context};

#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  saener diff --gold ../shared/data/conll2003/train.conll \
--pred silver.conll\n\n\
Rates are shares of the gold entities: false negatives (gold entities no annotated entity \
overlaps), false positives (annotated entities overlapping no gold entity), boundary errors \
(overlapping a gold entity of their type with other boundaries) and type errors \
(overlapping gold entities of other types only). A file perturbed by `saener perturb` at \
rate R measures R on its kind."
)]
pub struct Args {
    /// Gold annotation (CoNLL, or JSONL with spans).
    #[arg(long)]
    gold: PathBuf,
    /// The annotation to measure, over the same words.
    #[arg(long)]
    pred: PathBuf,
    /// Write the rates and strict micro P/R/F1 as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Serialize)]
struct Report {
    #[serde(flatten)]
    noise: NoiseRates,
    strict_micro: Prf,
}

pub fn run(args: Args) -> Result<()> {
    let gold = read_corpus(&args.gold, Context::Document)?;
    let pred = read_corpus(&args.pred, Context::Document)?;
    let noise = NoiseRates::measure(&gold, &pred).with_context(|| {
        format!(
            "comparing {} with {}",
            args.pred.display(),
            args.gold.display()
        )
    })?;
    let strict_micro = evaluate_corpus(&gold, &pred)?.strict.micro;
    print!("{noise}");
    println!(
        "strict micro against gold: P {:.2} R {:.2} F1 {:.2}",
        100.0 * strict_micro.precision,
        100.0 * strict_micro.recall,
        100.0 * strict_micro.f1
    );
    if let Some(path) = &args.json {
        let report = Report {
            noise,
            strict_micro,
        };
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
