//! `saener efficiency`: SAE-NER and both probes against the number of calibration
//! sentences (the experiment is [`saener_study::efficiency`]).

use anyhow::{Context as _, Result};
use saener_study::dense_words;
use saener_study::efficiency::{chart, summarise, Efficiency};
use std::path::PathBuf;

use crate::commands::stack::{
    encode, load_profile, read_corpus, CacheArgs, Context, Stack, StackArgs,
};

#[derive(clap::Args)]
#[command(after_help = "Example:\n  saener efficiency --profile conll2003 \
--data ../shared/data/conll2003/train.conll --test ../shared/data/conll2003/test.conll \
--json results/efficiency-conll2003.json --svg results/efficiency-conll2003.svg\n\n\
For each size, sentences are drawn from --data (each kept in its document's context); \
SAE-NER recounts the profile (its voting rows, or its naive-Bayes counts) on them with the \
profile's parameters, and the two probes (SAE codes, dense residual) are trained on their \
words; all are scored on --test (strict micro F1).")]
pub struct Args {
    /// The profile whose parameters and labels are used (path or shipped name).
    #[arg(long)]
    profile: String,
    /// Labelled calibration data to draw sentences from (the profile's train split).
    #[arg(long)]
    data: PathBuf,
    /// Labelled data to score on.
    #[arg(long)]
    test: PathBuf,
    /// Calibration sizes in sentences; `all` for the whole file.
    #[arg(long, value_delimiter = ',', default_value = "10,50,100,500,1000,all")]
    sizes: Vec<String>,
    /// Random draws per size (one for `all`).
    #[arg(long, default_value_t = 3)]
    draws: u64,
    /// L2 penalty of both probes.
    #[arg(long, default_value_t = 1e-4)]
    probe_l2: f64,
    /// Write every run's scores (JSON).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw the curves (SVG).
    #[arg(long)]
    svg: Option<PathBuf>,
    #[command(flatten)]
    stack: StackArgs,
    #[command(flatten)]
    cache: CacheArgs,
}

pub fn run(args: Args) -> Result<()> {
    let sizes = args
        .sizes
        .iter()
        .map(|size| match size.as_str() {
            "all" => Ok(None),
            s => s
                .parse::<usize>()
                .map(Some)
                .with_context(|| format!("--sizes: {s:?} is not a number or 'all'")),
        })
        .collect::<Result<Vec<_>>>()?;
    let profile = load_profile(&args.profile)?;
    let mut stack = Stack::load(&args.stack)?;
    stack.check(&profile)?;
    let train = read_corpus(&args.data, Context::Document)?;
    let test = read_corpus(&args.test, Context::Document)?;
    let dense_train = dense_words(&stack, &train, &args.cache.config())?;
    let dense_test = dense_words(&stack, &test, &args.cache.config())?;
    let train = encode(&stack, train, &args.cache)?;
    let test = encode(&stack, test, &args.cache)?;
    let efficiency = Efficiency {
        profile: &profile,
        train: &train,
        test: &test,
        dense_train: &dense_train,
        dense_test: &dense_test,
        d_sae: stack.sae.config().d_sae,
        probe_l2: args.probe_l2,
    };
    let scores = efficiency.run(&sizes, args.draws, |score| {
        eprintln!(
            "saener: {} sentences, draw {}: {} F1 {:.4}",
            score.sentences, score.draw, score.method, score.f1
        );
    })?;

    let summary = summarise(&scores);
    println!("| sentences | method | mean F1 | min | max | draws |");
    println!("|---|---|---|---|---|---|");
    for s in &summary {
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {} |",
            s.sentences,
            s.method,
            100.0 * s.mean,
            100.0 * s.min,
            100.0 * s.max,
            s.draws
        );
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&scores)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.svg {
        let title = format!(
            "{} → {}",
            args.data.display(),
            args.test
                .file_name()
                .map_or(String::new(), |f| f.to_string_lossy().into_owned())
        );
        chart(&summary, path, &title)?;
    }
    Ok(())
}
