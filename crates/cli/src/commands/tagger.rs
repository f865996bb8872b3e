use anyhow::{Context as _, Result};
use saener_ner::evaluate_corpus;
use saener_study::{fit_and_score, Featured, Tagger, TaggerMeta, TaggerOptions};
use std::path::PathBuf;

use crate::commands::eval::Outputs;
use crate::commands::stack::{read_corpus, CacheArgs, Context, Stack, StackArgs};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Train the downstream tagger (a linear-chain CRF over each word's frozen dense
    /// residual and its neighbours') on labelled data.
    #[command(
        after_help = "Example:\n  saener tagger train --data ../shared/data/conll2003/train.conll \
--dev ../shared/data/conll2003/dev.conll --l2 1e-5,1e-4,1e-3 --out conll-tagger.safetensors\n\n\
With --dev, every --l2 value is trained and the one with the best strict micro F1 on dev is kept."
    )]
    Train(Box<TrainArgs>),
    /// Score a tagger on labelled data, exactly as `saener eval` scores a profile.
    Eval(EvalArgs),
}

/// The tagger's training settings; shared with `saener study`, which keeps them fixed.
#[derive(clap::Args, Clone)]
pub struct OptionArgs {
    /// Neighbouring words on each side whose residuals join a word's features.
    #[arg(long, default_value_t = TaggerOptions::default().window)]
    pub window: usize,
    /// Passes over the training sentences.
    #[arg(long, default_value_t = TaggerOptions::default().epochs)]
    pub epochs: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = TaggerOptions::default().learning_rate)]
    pub learning_rate: f64,
    /// Sentences per Adam step.
    #[arg(long, default_value_t = TaggerOptions::default().batch_sentences)]
    pub batch_sentences: usize,
}

impl OptionArgs {
    pub fn options(&self, l2: f64, seed: u64) -> TaggerOptions {
        TaggerOptions {
            window: self.window,
            l2,
            epochs: self.epochs,
            learning_rate: self.learning_rate,
            batch_sentences: self.batch_sentences,
            seed,
        }
    }
}

#[derive(clap::Args)]
pub struct TrainArgs {
    /// Labelled training data (CoNLL, or JSONL with spans).
    #[arg(long)]
    data: PathBuf,
    /// Labelled development data to choose the L2 penalty on.
    #[arg(long)]
    dev: Option<PathBuf>,
    /// Where to write the tagger (safetensors).
    #[arg(long)]
    out: PathBuf,
    /// L2 penalties to try (one without --dev).
    #[arg(long, value_delimiter = ',', default_values_t = [TaggerOptions::default().l2])]
    l2: Vec<f64>,
    /// Seed of the sentence order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Entity types (default: every type in --data).
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    /// Layer of the residual (default: the SAE's layer).
    #[arg(long)]
    layer: Option<usize>,
    #[command(flatten)]
    options: OptionArgs,
    #[command(flatten)]
    stack: StackArgs,
    #[command(flatten)]
    cache: CacheArgs,
}

#[derive(clap::Args)]
pub struct EvalArgs {
    /// A tagger written by `saener tagger train`.
    #[arg(long)]
    tagger: PathBuf,
    /// Labelled data.
    #[arg(long)]
    data: PathBuf,
    /// Layer of the residual; must be the tagger's (default: the SAE's layer).
    #[arg(long)]
    layer: Option<usize>,
    /// Write the full report as JSON here (the layout of `saener eval --json`).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the predictions as a CoNLL file here.
    #[arg(long)]
    predictions: Option<PathBuf>,
    #[command(flatten)]
    stack: StackArgs,
    #[command(flatten)]
    cache: CacheArgs,
}

pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Train(args) => train(*args),
        Command::Eval(args) => eval(args),
    }
}

/// Reads `path` (document context) and fetches its words' dense features through the
/// cache.
pub fn load_featured(stack: &Stack, path: &std::path::Path, cache: &CacheArgs) -> Result<Featured> {
    let corpus = read_corpus(path, Context::Document)?;
    eprintln!("saener: dense residuals of {}", path.display());
    Featured::new(stack, corpus, &cache.config())
        .with_context(|| format!("encoding {}", path.display()))
}

fn train(args: TrainArgs) -> Result<()> {
    if args.dev.is_none() && args.l2.len() != 1 {
        anyhow::bail!("--l2 lists several values: choosing among them needs --dev");
    }
    let stack = Stack::load(args.stack.at_layer(args.layer))?;
    let train = load_featured(&stack, &args.data, &args.cache)?;
    let labels: Vec<String> = if args.labels.is_empty() {
        train.corpus.labels().into_iter().collect()
    } else {
        args.labels.clone()
    };
    let dev = match &args.dev {
        Some(path) => Some(load_featured(&stack, path, &args.cache)?),
        None => None,
    };
    let mut best: Option<(f64, Tagger)> = None;
    for &l2 in &args.l2 {
        let meta = TaggerMeta {
            format: 1,
            labels: labels.clone(),
            origin: stack.origin(&train.corpus),
            options: args.options.options(l2, args.seed),
        };
        let started = std::time::Instant::now();
        let (tagger, f1) = match &dev {
            Some(dev) => {
                let (tagger, report) = fit_and_score(&train, dev, meta)?;
                (tagger, report.strict.micro.f1)
            }
            None => (Tagger::train(&train.corpus, &train.features, meta)?, 0.0),
        };
        let secs = started.elapsed().as_secs_f64();
        if dev.is_some() {
            eprintln!("saener: l2 {l2:e}: dev strict micro F1 {f1:.4} (trained in {secs:.1} s)");
        }
        if best.as_ref().is_none_or(|(b, _)| f1 > *b) {
            best = Some((f1, tagger));
        }
    }
    let (_, tagger) = best.expect("at least one --l2 value");
    tagger.save(&args.out)?;
    eprintln!(
        "saener: wrote {} (l2 {:e})",
        args.out.display(),
        tagger.meta.options.l2
    );
    Ok(())
}

fn eval(args: EvalArgs) -> Result<()> {
    let tagger = Tagger::load(&args.tagger)?;
    let mut stack = Stack::load(args.stack.at_layer(args.layer))?;
    let origin = &tagger.meta.origin;
    stack.follow(origin)?;
    if origin.model != stack.model_id || origin.layer != stack.layer {
        anyhow::bail!(
            "{}: the tagger was trained on model {} layer {}, but this run uses model {} layer {} (pass the --model and --layer it was trained with)",
            args.tagger.display(),
            origin.model,
            origin.layer,
            stack.model_id,
            stack.layer
        );
    }
    let test = load_featured(&stack, &args.data, &args.cache)?;
    let data_checksum = test.corpus.checksum();
    if data_checksum == origin.data_checksum {
        eprintln!(
            "saener: warning: {} is the data this tagger was trained on: these scores are not held-out",
            args.data.display()
        );
    }
    let predicted = tagger.predict(&test.corpus, &test.features)?;
    let report = evaluate_corpus(&test.corpus, &predicted)?;
    let outputs = Outputs {
        json: args.json,
        predictions: args.predictions,
    };
    outputs.write(
        &report,
        &predicted,
        &args.data,
        data_checksum,
        &args.tagger.display().to_string(),
        Context::Document,
    )
}
