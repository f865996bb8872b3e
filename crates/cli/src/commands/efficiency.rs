use anyhow::{Context as _, Result};
use plotters::prelude::*;
use saener_ner::{
    evaluate_corpus, word_classes, Decoder, EncodedCorpus, FeatureCounts, NbCounts, Probe,
    ProbeInput, ProbeMeta, ProbeOptions, Profile, WordFeatures,
};
use serde::Serialize;
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

/// One run: a method calibrated or trained on `sentences` sentences (draw `draw`).
#[derive(Serialize)]
struct RunScore {
    method: &'static str,
    sentences: usize,
    draw: u64,
    precision: f64,
    recall: f64,
    f1: f64,
}

const METHODS: [&str; 3] = ["SAE-NER", "probe on SAE codes", "probe on dense residual"];

pub fn run(args: Args) -> Result<()> {
    let profile = load_profile(&args.profile)?;
    let mut stack = Stack::load(&args.stack)?;
    stack.check(&profile)?;
    let train = read_corpus(&args.data, Context::Document)?;
    let test = read_corpus(&args.test, Context::Document)?;
    let dense_train = stack.dense_words(&train, &args.cache.config())?;
    let dense_test = stack.dense_words(&test, &args.cache.config())?;
    let train = encode(&stack, train, &args.cache)?;
    let test = encode(&stack, test, &args.cache)?;
    let d_sae = stack.sae.config().d_sae;
    let sparse_train = WordFeatures::sparse(&train, d_sae);
    let sparse_test = WordFeatures::sparse(&test, d_sae);
    let classes = word_classes(&train.corpus, &profile.labels);
    let total_sentences = train.corpus.sentences().count();

    let mut scores = Vec::new();
    for size in &args.sizes {
        let n = match size.as_str() {
            "all" => total_sentences,
            s => s
                .parse::<usize>()
                .with_context(|| format!("--sizes: {s:?} is not a number or 'all'"))?
                .min(total_sentences),
        };
        let draws = if n == total_sentences { 1 } else { args.draws };
        for draw in 0..draws {
            let masks = train.corpus.sample_sentences(n, draw);
            let sampled = recount(&profile, &train, d_sae, &masks)?;
            let predicted = Decoder::new(&sampled, sampled.decoding)?.predict_corpus(&test)?;
            let mut results = vec![evaluate_corpus(&test.corpus, &predicted)?];

            let words: Vec<usize> = masks
                .iter()
                .flatten()
                .enumerate()
                .filter_map(|(i, &keep)| keep.then_some(i))
                .collect();
            let sampled_classes: Vec<u32> = words.iter().map(|&w| classes[w]).collect();
            // At least ~300 Adam steps, however few the words.
            let epochs = 10.max((300usize * 256).div_ceil(words.len().max(1)));
            for (input, train_f, test_f) in [
                (ProbeInput::Sae, &sparse_train, &sparse_test),
                (ProbeInput::Dense, &dense_train, &dense_test),
            ] {
                let meta = ProbeMeta {
                    format: 1,
                    input,
                    labels: profile.labels.clone(),
                    origin: profile.origin.clone(),
                    options: ProbeOptions {
                        l2: args.probe_l2,
                        epochs,
                        seed: draw,
                        ..ProbeOptions::default()
                    },
                };
                let probe = Probe::train(&train_f.select(&words), &sampled_classes, meta)?;
                let predicted = probe.predict(&test.corpus, test_f)?;
                results.push(evaluate_corpus(&test.corpus, &predicted)?);
            }
            for (method, report) in METHODS.iter().zip(results) {
                let m = report.strict.micro;
                eprintln!(
                    "saener: {n} sentences, draw {draw}: {method} F1 {:.4}",
                    m.f1
                );
                scores.push(RunScore {
                    method,
                    sentences: n,
                    draw,
                    precision: m.precision,
                    recall: m.recall,
                    f1: m.f1,
                });
            }
        }
    }

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

struct Summary {
    method: &'static str,
    sentences: usize,
    mean: f64,
    min: f64,
    max: f64,
    draws: usize,
}

/// Mean, min and max F1 per (method, size), sizes ascending.
fn summarise(scores: &[RunScore]) -> Vec<Summary> {
    let mut sizes: Vec<usize> = scores.iter().map(|s| s.sentences).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let mut out = Vec::new();
    for &n in &sizes {
        for method in METHODS {
            let f1: Vec<f64> = scores
                .iter()
                .filter(|s| s.sentences == n && s.method == method)
                .map(|s| s.f1)
                .collect();
            if f1.is_empty() {
                continue;
            }
            out.push(Summary {
                method,
                sentences: n,
                mean: f1.iter().sum::<f64>() / f1.len() as f64,
                min: f1.iter().copied().fold(f64::INFINITY, f64::min),
                max: f1.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                draws: f1.len(),
            });
        }
    }
    out
}

/// `profile` recounted on the words `masks` keeps, with the profile's own parameters.
fn recount(
    profile: &Profile,
    train: &EncodedCorpus,
    d_sae: usize,
    masks: &[Vec<bool>],
) -> Result<Profile> {
    let tau = profile.calibration.tau;
    let labels = profile.labels.clone();
    if let Some(nb) = &profile.naive_bayes {
        let (weights, params) = nb.recipe(&profile.labels, profile.calibration.s_min);
        let offsets = weights.iter().map(|&(o, _)| o).collect();
        let counts = NbCounts::from_corpus(train, d_sae, labels, vec![tau], offsets, Some(masks))?;
        let mut sampled = profile.clone();
        sampled.naive_bayes = Some(counts.model(tau, &weights, &params)?);
        return Ok(sampled);
    }
    let counts = FeatureCounts::from_corpus(
        train,
        d_sae,
        labels,
        vec![tau],
        profile.counted_tokens,
        Some(masks),
    )?;
    Ok(Profile::calibrate(
        profile.origin.clone(),
        &counts,
        profile.calibration,
        profile.decoding,
    )?)
}

/// F1 (mean, with min–max bars) against calibration sentences on a log axis.
fn chart(summary: &[Summary], path: &std::path::Path, title: &str) -> Result<()> {
    let max_n = summary.iter().map(|s| s.sentences).max().unwrap_or(10) as f64;
    let root = SVGBackend::new(path, (720, 480)).into_drawing_area();
    let draw = |e: DrawingAreaErrorKind<_>| anyhow::anyhow!("drawing {}: {e}", path.display());
    root.fill(&WHITE).map_err(draw)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((5f64..max_n * 1.5).log_scale(), 0f64..100f64)
        .map_err(draw)?;
    chart
        .configure_mesh()
        .x_desc("calibration sentences")
        .y_desc("strict micro F1 (test)")
        .draw()
        .map_err(draw)?;
    for (k, method) in METHODS.iter().enumerate() {
        let color = Palette99::pick(k).to_rgba();
        let points: Vec<&Summary> = summary.iter().filter(|s| s.method == *method).collect();
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|s| (s.sentences as f64, 100.0 * s.mean)),
                color.stroke_width(2),
            ))
            .map_err(draw)?
            .label(*method)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart
            .draw_series(points.iter().map(|s| {
                ErrorBar::new_vertical(
                    s.sentences as f64,
                    100.0 * s.min,
                    100.0 * s.mean,
                    100.0 * s.max,
                    color.filled(),
                    6,
                )
            }))
            .map_err(draw)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(draw)?;
    root.present().map_err(draw)?;
    Ok(())
}
