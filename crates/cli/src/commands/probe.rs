use anyhow::{Context as _, Result};
use saener_ner::{evaluate_corpus, Corpus};
use saener_study::{
    dense_words, word_classes, Probe, ProbeInput, ProbeMeta, ProbeOptions, WordFeatures,
};
use std::path::PathBuf;

use crate::commands::eval::Outputs;
use crate::commands::stack::{
    encode, read_corpus, serde_name, CacheArgs, Context, Stack, StackArgs,
};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Train a logistic-regression probe from each word's activations (at its last token)
    /// to its entity type: the trained baseline SAE-NER is compared with.
    #[command(
        after_help = "Example:\n  saener probe train --data ../shared/data/conll2003/train.conll \
--dev ../shared/data/conll2003/dev.conll --l2 1e-5,1e-4,1e-3 --out conll-dense.safetensors\n\n\
With --dev, every --l2 value is trained and the one with the best strict micro F1 on dev is kept."
    )]
    Train(Box<TrainArgs>),
    /// Score a probe on labelled data, exactly as `saener eval` scores a profile.
    Eval(Box<EvalArgs>),
}

#[derive(clap::Args)]
pub struct TrainArgs {
    /// Labelled training data (CoNLL, or JSONL with spans).
    #[arg(long)]
    data: PathBuf,
    /// Labelled development data to choose the L2 penalty on.
    #[arg(long)]
    dev: Option<PathBuf>,
    /// Where to write the probe (safetensors).
    #[arg(long)]
    out: PathBuf,
    /// What the probe reads: dense (the residual at the SAE's layer) or sae (its SAE code).
    #[arg(long, default_value = "dense", value_parser = serde_name::<ProbeInput>)]
    input: ProbeInput,
    /// Layer of the dense residual (default: the SAE's layer); for layer sweeps.
    #[arg(long)]
    layer: Option<usize>,
    /// Train on the first N documents of --data only (quick sweeps).
    #[arg(long)]
    max_documents: Option<usize>,
    /// L2 penalties to try (one without --dev).
    #[arg(long, value_delimiter = ',', default_value = "1e-4")]
    l2: Vec<f64>,
    /// Passes over the training words.
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    learning_rate: f64,
    /// Words per Adam step.
    #[arg(long, default_value_t = 256)]
    probe_batch: usize,
    /// Weight classes by inverse frequency.
    #[arg(long)]
    class_weighting: bool,
    /// Entity types (default: every type in --data).
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    /// Context each sentence is read in.
    #[arg(long, value_enum, default_value_t = Context::Document)]
    context: Context,
    #[command(flatten)]
    stack: StackArgs,
    #[command(flatten)]
    cache: CacheArgs,
}

#[derive(clap::Args)]
pub struct EvalArgs {
    /// Layer of the dense residual (default: the SAE's layer); must be the probe's.
    #[arg(long)]
    layer: Option<usize>,
    /// A probe written by `saener probe train`.
    #[arg(long)]
    probe: PathBuf,
    /// Labelled data.
    #[arg(long)]
    data: PathBuf,
    /// Write the full report as JSON here (the layout of `saener eval --json`).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the predictions as a CoNLL file here.
    #[arg(long)]
    predictions: Option<PathBuf>,
    /// Context each sentence is read in.
    #[arg(long, value_enum, default_value_t = Context::Document)]
    context: Context,
    #[command(flatten)]
    stack: StackArgs,
    #[command(flatten)]
    cache: CacheArgs,
}

pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Train(args) => train(*args),
        Command::Eval(args) => eval(*args),
    }
}

/// Each word's features for `input`, through the cache.
fn features(
    stack: &Stack,
    corpus: &Corpus,
    input: ProbeInput,
    cache: &CacheArgs,
) -> Result<WordFeatures> {
    Ok(match input {
        ProbeInput::Sae => {
            let encoded = encode(stack, corpus.clone(), cache)?;
            WordFeatures::sparse(&encoded, stack.sae.config().d_sae)
        }
        ProbeInput::Dense => dense_words(stack, corpus, &cache.config())?,
    })
}

fn train(args: TrainArgs) -> Result<()> {
    if args.dev.is_none() && args.l2.len() != 1 {
        anyhow::bail!("--l2 lists several values: choosing among them needs --dev");
    }
    if args.layer.is_some() && args.input == ProbeInput::Sae {
        anyhow::bail!("--layer is for dense probes; an SAE code comes from the SAE's own layer");
    }
    let stack = Stack::load(args.stack.at_layer(args.layer))?;
    let mut train = read_corpus(&args.data, args.context)?;
    if let Some(n) = args.max_documents {
        train.documents.truncate(n);
    }
    let labels: Vec<String> = if args.labels.is_empty() {
        train.labels().into_iter().collect()
    } else {
        args.labels.clone()
    };
    eprintln!("saener: encoding {}", args.data.display());
    let train_features = features(&stack, &train, args.input, &args.cache)?;
    let classes = word_classes(&train, &labels);
    let dev = match &args.dev {
        Some(path) => {
            let corpus = read_corpus(path, args.context)?;
            eprintln!("saener: encoding {}", path.display());
            let f = features(&stack, &corpus, args.input, &args.cache)?;
            Some((corpus, f))
        }
        None => None,
    };

    let mut best: Option<(f64, Probe)> = None;
    for &l2 in &args.l2 {
        let meta = ProbeMeta {
            format: 1,
            input: args.input,
            labels: labels.clone(),
            origin: stack.origin(&train),
            options: ProbeOptions {
                l2,
                epochs: args.epochs,
                learning_rate: args.learning_rate,
                batch_size: args.probe_batch,
                class_weighting: args.class_weighting,
                seed: 0,
            },
        };
        let started = std::time::Instant::now();
        let probe = Probe::train(&train_features, &classes, meta)?;
        let secs = started.elapsed().as_secs_f64();
        let f1 = match &dev {
            Some((corpus, f)) => {
                let report = evaluate_corpus(corpus, &probe.predict(corpus, f)?)?;
                let f1 = report.strict.micro.f1;
                eprintln!(
                    "saener: l2 {l2:e}: dev strict micro F1 {f1:.4} (trained in {secs:.1} s)"
                );
                f1
            }
            None => 0.0,
        };
        if best.as_ref().is_none_or(|(b, _)| f1 > *b) {
            best = Some((f1, probe));
        }
    }
    let (_, probe) = best.expect("at least one --l2 value");
    probe.save(&args.out)?;
    eprintln!(
        "saener: wrote {} ({:?} input, l2 {:e})",
        args.out.display(),
        probe.meta.input,
        probe.meta.options.l2
    );
    Ok(())
}

fn eval(args: EvalArgs) -> Result<()> {
    let probe = Probe::load(&args.probe)?;
    let mut stack = Stack::load(args.stack.at_layer(args.layer))?;
    let origin = &probe.meta.origin;
    stack.follow(origin)?;
    let sae_matters = probe.meta.input == ProbeInput::Sae;
    if origin.model != stack.model_id
        || origin.layer != stack.layer
        || (sae_matters && origin.sae_id != stack.sae.id())
    {
        anyhow::bail!(
            "{}: the probe was trained on model {} layer {}{}, but this run uses model {} layer {}{} (pass the --sae and --model it was trained with)",
            args.probe.display(),
            origin.model,
            origin.layer,
            if sae_matters { format!(" SAE {}", origin.sae_id) } else { String::new() },
            stack.model_id,
            stack.layer,
            if sae_matters { format!(" SAE {}", stack.sae.id()) } else { String::new() },
        );
    }
    let gold = read_corpus(&args.data, args.context)?;
    let data_checksum = gold.checksum();
    if data_checksum == origin.data_checksum {
        eprintln!(
            "saener: warning: {} is the data this probe was trained on: these scores are not held-out",
            args.data.display()
        );
    }
    let f = features(&stack, &gold, probe.meta.input, &args.cache)
        .with_context(|| format!("encoding {}", args.data.display()))?;
    let predicted = probe.predict(&gold, &f)?;
    let report = evaluate_corpus(&gold, &predicted)?;
    let outputs = Outputs {
        json: args.json,
        predictions: args.predictions,
    };
    outputs.write(
        &report,
        &predicted,
        &args.data,
        data_checksum,
        &args.probe.display().to_string(),
        args.context,
    )
}
