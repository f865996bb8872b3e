use anyhow::{Context as _, Result};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;

#[derive(clap::Args)]
#[command(
    after_help = "Example (after bench/results.sh and bench/probes.sh):\n  \
saener compare results/conll2003-test.json results/probes/conll2003-test-sae.json \
results/probes/conll2003-test-dense.json"
)]
pub struct Args {
    /// Reports written by `saener eval --json` or `saener probe eval --json`.
    #[arg(required = true)]
    reports: Vec<PathBuf>,
}

/// Prints one Markdown table row per report: strict micro P/R/F1 and per-type F1.
pub fn run(args: Args) -> Result<()> {
    let mut reports = Vec::new();
    for path in &args.reports {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let value: Value = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a JSON report", path.display()))?;
        let strict = value
            .get("strict")
            .with_context(|| format!("{}: no \"strict\" object", path.display()))?
            .clone();
        reports.push((path, value, strict));
    }
    let types: BTreeSet<String> = reports
        .iter()
        .filter_map(|(_, _, s)| s["per_type"].as_object())
        .flat_map(|m| m.keys().cloned())
        .collect();
    let pct = |v: &Value| {
        v.as_f64()
            .map_or("–".to_string(), |x| format!("{:.1}", 100.0 * x))
    };
    print!("| report | data | P | R | F1 |");
    types.iter().for_each(|t| print!(" {t} F1 |"));
    println!();
    println!("|---|---|---|---|---|{}", "---|".repeat(types.len()));
    for (path, value, strict) in &reports {
        let data = value["data"].as_str().unwrap_or("?");
        let micro = &strict["micro"];
        print!(
            "| {} | {data} | {} | {} | {} |",
            path.display(),
            pct(&micro["precision"]),
            pct(&micro["recall"]),
            pct(&micro["f1"])
        );
        for t in &types {
            print!(" {} |", pct(&strict["per_type"][t]["f1"]));
        }
        println!();
    }
    Ok(())
}
