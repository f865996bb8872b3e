//! `saener calibrate` on labelled data: the voting decoder's counts and grid, or the
//! naive-Bayes decoder's, chosen on `--dev` or a held-out part of `--data`.

use anyhow::{Context as _, Result};
use saener_ner::{nb_sweep, sweep, EncodedCorpus, FeatureCounts, Grid, NbCounts, Profile};
use std::path::Path;

use super::args::{Args, DecoderKind};
use crate::commands::stack::{encode, read_corpus, Stack};

/// The voting decoder's profile (or, with `--decoder naive-bayes`, the naive-Bayes one)
/// from `--data`, `grid` chosen on the dev documents.
pub(super) fn run(args: &Args, grid: &Grid) -> Result<()> {
    let Labelled {
        stack,
        origin,
        labels,
        train,
        dev,
        dev_name,
        encoded_secs,
    } = load_labelled(args)?;
    if args.decoder == DecoderKind::NaiveBayes {
        return run_naive_bayes(args, &stack, origin, labels, train, dev, &dev_name);
    }
    let count = |corpus: &EncodedCorpus| {
        args.counted_tokens
            .iter()
            .map(|&counted| {
                FeatureCounts::from_corpus(
                    corpus,
                    stack.sae.config().d_sae,
                    labels.clone(),
                    grid.taus.clone(),
                    counted,
                    None,
                )
            })
            .collect::<saener_ner::Result<Vec<_>>>()
    };
    let started = std::time::Instant::now();
    let mut counts = count(&train)?;
    let counted_secs = started.elapsed().as_secs_f64();
    let (chosen, calibration, decoding) = match &dev {
        None => {
            let (calibration, decoding) = grid.first();
            (0, calibration, decoding)
        }
        Some(dev) => {
            let bar = indicatif::ProgressBar::new(0).with_style(
                indicatif::ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:30}] {pos}/{len} parameter sets (ETA {eta})",
                )
                .expect("valid template"),
            );
            let (trials, best) = sweep(&origin, &counts, dev, grid, |done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            })?;
            bar.finish_and_clear();
            write_trials(args.sweep_out.as_deref(), &trials)?;
            let t = &trials[best];
            eprintln!(
                "saener: best of {} parameter sets on {dev_name}: strict micro F1 {:.4} (P {:.4}, R {:.4})",
                trials.len(),
                t.f1,
                t.precision,
                t.recall
            );
            (
                best / (trials.len() / counts.len()),
                t.calibration,
                t.decoding,
            )
        }
    };
    if args.holdout.is_some() {
        // The held-out documents chose the parameters; the profile counts them too.
        let held_out = count(dev.as_ref().expect("split above"))?;
        for (all, part) in counts.iter_mut().zip(&held_out) {
            all.merge(part)?;
        }
    }
    eprintln!(
        "saener: counted {} tokens ({}); codes ready in {encoded_secs:.1} s, counted in {counted_secs:.1} s",
        counts[chosen].tokens(),
        counts[chosen]
            .labels()
            .iter()
            .zip(counts[chosen].label_tokens())
            .map(|(l, n)| format!("{l} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let profile = Profile::calibrate(origin, &counts[chosen], calibration, decoding)?;
    profile.save(&args.out)?;
    let mut per_label: Vec<String> = Vec::new();
    for label in &profile.labels {
        let n = profile.rows.iter().filter(|r| &r.label == label).count();
        per_label.push(format!("{label} {n}"));
    }
    eprintln!(
        "saener: wrote {} ({} rows: {}; counted {:?}, tau {}, p_min {}, s_min {}, boundaries {}, {:?}, {:?} pooling, threshold {})",
        args.out.display(),
        profile.rows.len(),
        per_label.join(", "),
        profile.counted_tokens,
        calibration.tau,
        calibration.p_min,
        calibration.s_min,
        calibration.boundaries,
        decoding.combine,
        decoding.pooling,
        decoding.threshold
    );
    Ok(())
}

/// Labelled calibration data, encoded, and the documents the parameters are chosen on.
struct Labelled {
    stack: Stack,
    origin: saener_ner::Origin,
    labels: Vec<String>,
    train: EncodedCorpus,
    /// `--dev`, or the held-out end of `--data`.
    dev: Option<EncodedCorpus>,
    dev_name: String,
    encoded_secs: f64,
}

fn load_labelled(args: &Args) -> Result<Labelled> {
    let stack = Stack::load(&args.stack)?;
    let data = args
        .data
        .as_ref()
        .expect("clap requires --data without --lexicon/--examples");
    let train = read_corpus(data, args.context)?;
    let labels = if args.labels.is_empty() {
        train.labels().into_iter().collect()
    } else {
        args.labels.clone()
    };
    let origin = stack.origin(&train);
    eprintln!("saener: encoding {}", data.display());
    let started = std::time::Instant::now();
    let mut train = encode(&stack, train, &args.cache)?;
    let encoded_secs = started.elapsed().as_secs_f64();
    let (dev, dev_name) = match (&args.dev, args.holdout) {
        (Some(path), _) => {
            let dev = read_corpus(path, args.context)?;
            eprintln!("saener: encoding {}", path.display());
            (
                Some(encode(&stack, dev, &args.cache)?),
                path.display().to_string(),
            )
        }
        (None, Some(fraction)) => {
            let n = train.corpus.documents.len();
            let at = n - ((n as f64 * fraction).round() as usize).clamp(1, n - 1);
            let name = format!("the last {} documents of {}", n - at, data.display());
            (Some(train.split_off(at)), name)
        }
        (None, None) => (None, String::new()),
    };
    Ok(Labelled {
        stack,
        origin,
        labels,
        train,
        dev,
        dev_name,
        encoded_secs,
    })
}

/// `--decoder naive_bayes`: counts at every offset and τ, a grid chosen on dev, the
/// profile counted on all the calibration data.
fn run_naive_bayes(
    args: &Args,
    stack: &Stack,
    origin: saener_ner::Origin,
    labels: Vec<String>,
    train: EncodedCorpus,
    dev: Option<EncodedCorpus>,
    dev_name: &str,
) -> Result<()> {
    let d_sae = stack.sae.config().d_sae;
    let offsets = args.counted_offsets();
    let count = |corpus: &EncodedCorpus| {
        NbCounts::from_corpus(
            corpus,
            d_sae,
            labels.clone(),
            args.tau.clone(),
            offsets.clone(),
            None,
        )
    };
    let started = std::time::Instant::now();
    let mut counts = count(&train)?;
    eprintln!(
        "saener: counted {} offsets at {} thresholds in {:.1} s",
        offsets.len(),
        args.tau.len(),
        started.elapsed().as_secs_f64()
    );
    let grid = args.nb_grid(&offsets);
    let (tau, weights, params) = match &dev {
        None => grid.first(labels.len()),
        Some(dev) => {
            let started = std::time::Instant::now();
            let (trials, best) = nb_sweep(&counts, dev, &grid, |n| {
                eprint!("\rsaener: {n} parameter sets tried");
            })?;
            eprintln!();
            write_trials(args.sweep_out.as_deref(), &trials)?;
            let t = &trials[best];
            eprintln!(
                "saener: best of {} parameter sets on {dev_name} ({:.0} s): strict micro F1 {:.4} (P {:.4}, R {:.4})",
                trials.len(),
                started.elapsed().as_secs_f64(),
                t.f1,
                t.precision,
                t.recall
            );
            if args.holdout.is_some() {
                // The held-out documents chose the parameters; the profile counts them too.
                counts = counts.merged(&count(dev)?)?;
            }
            (t.tau, t.weights.clone(), t.params.clone())
        }
    };
    let model = counts.model(tau, &weights, &params)?;
    let profile = Profile::from_naive_bayes(origin, labels, d_sae, model, tau, params.s_min)?;
    profile.save(&args.out)?;
    eprintln!(
        "saener: wrote {} (naive Bayes, {} features; tau {tau}, offsets {weights:?}, {params:?})",
        args.out.display(),
        profile.features().len(),
    );
    Ok(())
}

/// Writes every trial of a sweep to `path` (`--sweep-out`), one JSON object per line.
pub(super) fn write_trials(path: Option<&Path>, trials: &[impl serde::Serialize]) -> Result<()> {
    let Some(path) = path else { return Ok(()) };
    let mut lines = String::new();
    for trial in trials {
        lines += &serde_json::to_string(trial)?;
        lines.push('\n');
    }
    std::fs::write(path, lines).with_context(|| format!("writing {}", path.display()))
}
