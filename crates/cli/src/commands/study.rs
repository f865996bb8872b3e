//! `saener study`: the silver-data and annotation-noise study of the paper, end to end
//! (the study itself is [`saener_study::noise`]).

use anyhow::{Context as _, Result};
use saener_ner::Decoder;
use saener_study::noise::{read_runs, NoiseStudy, RunLog, Setup, Summary};
use saener_study::TaggerOptions;
use std::path::{Path, PathBuf};

use crate::commands::stack::{encode, load_profile, CacheArgs, Stack, StackArgs};
use crate::commands::tagger::{load_featured, OptionArgs};

#[derive(clap::Args)]
#[command(after_help = "Example:\n  saener study --dataset ncbi_disease\n\n\
Trains the tagger (`saener tagger`, fixed settings) on: gold train; SAE-NER silver labels \
of the train text (the shipped profile of the dataset); and gold train perturbed by each \
noise kind (fn, boundary, fp, and type where there are two types or more) at each rate; each with --seeds seeds (the seed draws the \
perturbation and the tagger's sentence order). Every run is scored on the gold test split \
(dev where the dataset has no test split, as for bc5cdr). Finished runs in OUT/runs.jsonl \
are skipped, so an interrupted study resumes. Writes OUT/runs.jsonl, OUT/summary.json, \
OUT/table.md and OUT/chart.svg.")]
pub struct Args {
    /// Dataset: a folder of --data-dir with train.conll and test.conll (or dev.conll).
    #[arg(long)]
    dataset: String,
    /// Where the datasets are.
    #[arg(long, default_value = "../shared/data")]
    data_dir: PathBuf,
    /// Profile for the silver labels (default: the shipped profile named like the dataset).
    #[arg(long)]
    profile: Option<String>,
    /// Output folder (default: results/study/<dataset>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Noise rates (rate 0 is the gold run).
    #[arg(long, value_delimiter = ',', default_value = "0.1,0.2,0.3,0.5")]
    rates: Vec<f64>,
    /// Seeds per setting.
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// The tagger's L2 penalty (chosen once on gold CoNLL-2003 train → dev).
    #[arg(long, default_value_t = TaggerOptions::default().l2)]
    l2: f64,
    #[command(flatten)]
    options: OptionArgs,
    #[command(flatten)]
    stack: StackArgs,
    #[command(flatten)]
    cache: CacheArgs,
}

pub fn run(args: Args) -> Result<()> {
    let dir = args.data_dir.join(&args.dataset);
    let train_path = dir.join("train.conll");
    let eval_path = ["test.conll", "dev.conll"]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.exists())
        .with_context(|| format!("{}: no test.conll or dev.conll", dir.display()))?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| Path::new("results/study").join(&args.dataset));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let profile_name = args.profile.clone().unwrap_or(args.dataset.clone());
    let profile = load_profile(&profile_name)?;
    let mut stack = Stack::load(&args.stack)?;
    stack.check(&profile)?;

    let train = load_featured(&stack, &train_path, &args.cache)?;
    let eval = load_featured(&stack, &eval_path, &args.cache)?;
    let tagger_options = args.options.options(args.l2, 0);
    let setup = Setup {
        dataset: args.dataset.clone(),
        train: train_path.display().to_string(),
        train_checksum: train.corpus.checksum(),
        eval: eval_path.display().to_string(),
        eval_checksum: eval.corpus.checksum(),
        profile: profile_name,
        model: stack.model_id.clone(),
        layer: stack.layer,
        tagger: tagger_options,
    };
    setup.check(&out.join("study.json"))?;
    let runs_path = out.join("runs.jsonl");
    let mut runs = read_runs(&runs_path, |line| {
        eprintln!(
            "saener: {}:{line}: cutting an unfinished record",
            runs_path.display()
        )
    })?;
    eprintln!(
        "saener: study of {}: {} finished runs in {}",
        args.dataset,
        runs.len(),
        runs_path.display()
    );

    eprintln!("saener: silver labels of {}", train_path.display());
    let encoded = encode(&stack, train.corpus.clone(), &args.cache)?;
    let silver = Decoder::new(&profile, profile.decoding)?.predict_corpus(&encoded)?;
    drop(encoded);

    let study = NoiseStudy {
        stack: &stack,
        train: &train,
        eval: &eval,
        silver: &silver,
        labels: &profile.labels,
        rates: &args.rates,
        tagger: tagger_options,
    };
    let mut log = RunLog::append(&runs_path)?;
    for (kind, rate, seed) in study.plan(args.seeds, &runs) {
        let run = study.run(kind, rate, seed)?;
        eprintln!(
            "saener: {kind:?} rate {rate} seed {seed}: F1 {:.2} ({:.0} s)",
            100.0 * run.f1,
            run.train_seconds
        );
        log.write(&run)?;
        runs.push(run);
    }

    let summary = Summary::new(&runs, &args.rates);
    let table = summary.table(&args.dataset);
    print!("{table}");
    std::fs::write(out.join("table.md"), &table)?;
    std::fs::write(
        out.join("summary.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;
    summary.chart(&out.join("chart.svg"), &args.dataset)?;
    eprintln!("saener: wrote {}", out.display());
    Ok(())
}
