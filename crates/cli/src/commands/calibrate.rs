use anyhow::{Context as _, Result};
use saener_ner::{
    nb_sweep, sweep, CalibrationParams, Combine, ConllOptions, Corpus, CountedTokens, DecodeParams,
    EncodedCorpus, FeatureCounts, Grid, LabelFreeCounts, LabelFreeNb, LabelFreeParams, Lexicon,
    MatchOptions, Matcher, NbCounts, NbGrid, NbParams, Profile, PuRecall, Smoothing, TextMode,
    WordPooling,
};
use std::path::{Path, PathBuf};

use crate::commands::stack::{encode, read_corpus, CacheArgs, Context, Stack, StackArgs};

#[derive(clap::Args)]
#[command(after_help = "Example (the shipped CoNLL-2003 profile):\n  \
saener calibrate --data ../shared/data/conll2003/train.conll --dev ../shared/data/conll2003/dev.conll \\\n    \
--out conll2003.json --sweep-out conll2003-sweep.json\n\n\
List-valued options (comma-separated) form a grid; with --dev every combination is calibrated \
on --data, decoded on --dev and scored by strict micro F1, and the best is kept. Without --dev \
each option takes one value. The test split never belongs in either file.\n\n\
Label-free (no annotated corpus):\n  \
saener calibrate --lexicon lexicons/programming_languages.toml --text examples/programming.txt --out pl.json\n  \
saener calibrate --examples examples.jsonl [--text unlabelled.txt] --out few.json\n\
Lexicon names (or the examples' entity strings) matched in the text mark positive tokens; all \
other tokens are unlabelled. Label-free defaults: --tau 100 --p-min 0.3 --s-min 10 \
--threshold 0.8 --extend 0.5 (labelled: --tau 0 --p-min 0.5 --s-min 5 --threshold 0.5). \
Label-free, list-valued options form a grid chosen without labels: each fold of names is held \
out in turn, and a point scores held-out recall squared over the share of words predicted. \
With --decoder naive-bayes the matches are tagged words and every other word is O, the \
--nb-* grid is chosen by the same criterion, and each --nb-bias applies to all types at once.")]
pub struct Args {
    /// Labelled calibration data: CoNLL columns, or JSONL with character spans (.jsonl).
    #[arg(long, required_unless_present_any = ["lexicon", "examples"], conflicts_with_all = ["lexicon", "examples"])]
    data: Option<PathBuf>,
    /// Label-free: a lexicon matched in --text: TOML, `type = ["name", ...]` per entity type,
    /// or JSONL `{"type", "name"}` lines (`saener lexicon build` writes them).
    #[arg(long, conflicts_with = "examples", requires = "text")]
    lexicon: Option<PathBuf>,
    /// Few-shot: a few annotated examples (JSONL with spans, or CoNLL); their entity strings
    /// are matched in their own text and in --text, like a lexicon.
    #[arg(long)]
    examples: Option<PathBuf>,
    /// Label-free: unlabelled text to match the lexicon in (repeatable). Never test text.
    #[arg(long)]
    text: Vec<PathBuf>,
    /// How --text is read: plain text (one document per line), or a CoNLL or JSONL file read
    /// for its text only (its labels are never used).
    #[arg(long, value_enum, default_value_t = TextFormat::Text)]
    text_format: TextFormat,
    /// Label-free: match names ignoring case.
    #[arg(long)]
    ignore_case: bool,
    /// Label-free: how the parameter criterion measures the recall of held-out names:
    /// `words` (every occurrence counts) or `names` (each distinct name once, so the
    /// frequent, easy names do not dominate).
    #[arg(long, default_value = "words", value_parser = serde_name::<PuRecall>)]
    pu_recall: PuRecall,
    /// Label-free: merge matches of one type separated only by spaces into one entity (a
    /// first name then a last name from a gazetteer's separate lists).
    #[arg(long)]
    join_adjacent: bool,
    /// Labelled development data to choose the parameters on.
    #[arg(long, conflicts_with_all = ["lexicon", "examples"])]
    dev: Option<PathBuf>,
    /// Instead of --dev, choose the parameters on this fraction of --data's documents (the
    /// last ones), calibrated on the rest; the profile is then counted on all of --data.
    /// For benchmarks whose dev split is the one reported.
    #[arg(long, conflicts_with_all = ["dev", "lexicon", "examples"])]
    holdout: Option<f64>,
    /// Where to write the profile (JSON).
    #[arg(long)]
    out: PathBuf,
    /// Where to write every grid point's parameters and dev scores (JSONL, one per line),
    /// with --dev or --holdout; label-free, every point's held-out-name scores.
    #[arg(long)]
    sweep_out: Option<PathBuf>,
    /// Entity types to calibrate (default: every type in --data, or in the lexicon).
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    /// Context each sentence is read in.
    #[arg(long, value_enum, default_value_t = Context::Document)]
    context: Context,
    /// Which tokens of a word are counted: all, word_first or word_last (the one `last`
    /// pooling reads).
    #[arg(long, value_delimiter = ',', default_value = "all", value_parser = serde_name::<CountedTokens>)]
    counted_tokens: Vec<CountedTokens>,
    /// Firing thresholds τ: a feature votes where its activation exceeds τ.
    #[arg(long, value_delimiter = ',')]
    tau: Vec<f32>,
    /// Minimum smoothed precision of a kept (feature, type) row.
    #[arg(long, value_delimiter = ',')]
    p_min: Vec<f64>,
    /// Minimum support (firing tokens) of a kept row.
    #[arg(long, value_delimiter = ',')]
    s_min: Vec<u32>,
    /// Precision smoothing: wilson (lower bound of the Wilson interval at --wilson-z) or
    /// raw (hits / support).
    #[arg(long, value_delimiter = ',', default_value = "wilson")]
    smoothing: Vec<SmoothingName>,
    /// Standard deviations of the Wilson lower bound.
    #[arg(long, default_value_t = 1.96)]
    wilson_z: f64,
    /// Also calibrate boundary features (true/false), which split adjacent same-type entities.
    #[arg(long, value_delimiter = ',', default_value = "false")]
    boundaries: Vec<bool>,
    /// How a token's votes combine: noisy_or or max.
    #[arg(long, value_delimiter = ',', default_value = "noisy_or", value_parser = serde_name::<Combine>)]
    combine: Vec<Combine>,
    /// Which of a word's tokens decides it: last, first, max or mean.
    #[arg(long, value_delimiter = ',', default_value = "last", value_parser = serde_name::<WordPooling>)]
    pooling: Vec<WordPooling>,
    /// Minimum word score for a label.
    #[arg(long, value_delimiter = ',')]
    threshold: Vec<f64>,
    /// Hysteresis: words next to an entity join it when their score for its type reaches
    /// this (`none`: off).
    #[arg(long, value_delimiter = ',', value_parser = parse_extend)]
    extend: Vec<Option<f64>>,
    /// Which decoder the profile is made for: noisy-or (votes of single precise features) or
    /// naive-bayes (log-odds of every firing feature of a word and its neighbours; uses
    /// --tau, --s-min and the --nb-* options).
    #[arg(long, value_enum, default_value_t = DecoderKind::NoisyOr)]
    decoder: DecoderKind,
    /// Naive Bayes: word offsets whose features vote for a word besides itself (-1: the
    /// word before, 1: the word after).
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    nb_offsets: Vec<i32>,
    /// Naive Bayes: weights tried for each offset of --nb-offsets (the word itself has 1).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    nb_weight: Vec<f64>,
    /// Naive Bayes: additive smoothing of P(feature | tag).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    nb_alpha: Vec<f64>,
    /// Naive Bayes: scale of the summed log-likelihoods against the tag prior and
    /// transitions.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    nb_scale: Vec<f64>,
    /// Naive Bayes: weight of the evidence of features that do not fire (1: Bernoulli naive
    /// Bayes, 0: firing features only).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    nb_absence: Vec<f64>,
    /// Naive Bayes: bias added to every entity tag's score; with --dev, then refined per type.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0",
        allow_negative_numbers = true
    )]
    nb_bias: Vec<f64>,
    /// Naive Bayes: decode each sentence jointly with counted tag transitions (true) or each
    /// word alone (false).
    #[arg(long, value_delimiter = ',', default_value = "false")]
    nb_viterbi: Vec<bool>,
    #[command(flatten)]
    stack: StackArgs,
    #[command(flatten)]
    cache: CacheArgs,
}

/// Which decoder `calibrate` makes a profile for.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum DecoderKind {
    NoisyOr,
    NaiveBayes,
}

/// How `--text` files are read.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum TextFormat {
    Text,
    Conll,
    Jsonl,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum SmoothingName {
    Wilson,
    Raw,
}

/// Parses a library enum by its serde name (`noisy_or`, `last`), so the CLI and the profile
/// JSON spell values the same way.
pub fn serde_name<T: serde::de::DeserializeOwned>(s: &str) -> std::result::Result<T, String> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|e| e.to_string())
}

/// `none` or a number.
pub fn parse_extend(s: &str) -> std::result::Result<Option<f64>, String> {
    match s {
        "none" => Ok(None),
        _ => s.parse().map(Some).map_err(|e| format!("{s}: {e}")),
    }
}

pub fn run(mut args: Args) -> Result<()> {
    let label_free = args.lexicon.is_some() || args.examples.is_some();
    // Mode-specific defaults (see the help's last paragraph).
    let lf = LabelFreeParams::default();
    let defaults = if label_free {
        (
            lf.calibration.tau,
            lf.calibration.p_min,
            lf.calibration.s_min,
            lf.decoding.threshold,
            lf.decoding.extend,
        )
    } else {
        (0.0, 0.5, 5, 0.5, None)
    };
    fill(&mut args.tau, defaults.0);
    fill(&mut args.p_min, defaults.1);
    fill(&mut args.s_min, defaults.2);
    fill(&mut args.threshold, defaults.3);
    fill(&mut args.extend, defaults.4);
    let smoothings: Vec<Smoothing> = args
        .smoothing
        .iter()
        .map(|s| match s {
            SmoothingName::Wilson => Smoothing::Wilson { z: args.wilson_z },
            SmoothingName::Raw => Smoothing::Beta {
                alpha: 0.0,
                beta: 0.0,
            },
        })
        .collect();
    let grid = Grid {
        taus: args.tau.clone(),
        p_mins: args.p_min.clone(),
        s_mins: args.s_min.clone(),
        smoothings,
        boundaries: args.boundaries.clone(),
        combines: args.combine.clone(),
        poolings: args.pooling.clone(),
        thresholds: args.threshold.clone(),
        extends: args.extend.clone(),
    };
    let lists = [
        ("--counted-tokens", args.counted_tokens.len()),
        ("--tau", grid.taus.len()),
        ("--p-min", grid.p_mins.len()),
        ("--s-min", grid.s_mins.len()),
        ("--smoothing", grid.smoothings.len()),
        ("--boundaries", grid.boundaries.len()),
        ("--combine", grid.combines.len()),
        ("--pooling", grid.poolings.len()),
        ("--threshold", grid.thresholds.len()),
        ("--extend", grid.extends.len()),
        ("--nb-weight", args.nb_weight.len()),
        ("--nb-alpha", args.nb_alpha.len()),
        ("--nb-scale", args.nb_scale.len()),
        ("--nb-bias", args.nb_bias.len()),
        ("--nb-absence", args.nb_absence.len()),
        ("--nb-viterbi", args.nb_viterbi.len()),
    ];
    let tuned = args.dev.is_some() || args.holdout.is_some();
    if label_free {
        if args.decoder == DecoderKind::NaiveBayes {
            return run_label_free_naive_bayes(&args);
        }
        if args.counted_tokens.len() != 1 {
            anyhow::bail!("--counted-tokens: label-free calibration takes one value");
        }
        return run_label_free(&args, &grid);
    }
    if args.holdout.is_some_and(|f| !(f > 0.0 && f < 1.0)) {
        anyhow::bail!("--holdout: expected a fraction between 0 and 1");
    }
    if args.sweep_out.is_some() && !tuned {
        anyhow::bail!("--sweep-out needs --dev or --holdout");
    }
    if !tuned {
        if let Some((name, _)) = lists.iter().find(|(_, n)| *n != 1) {
            anyhow::bail!(
                "{name} lists several values: a grid needs --dev or --holdout to choose among them"
            );
        }
    }

    let Labelled {
        stack,
        origin,
        labels,
        train,
        dev,
        dev_name,
        encoded_secs,
    } = load_labelled(&args)?;
    if args.decoder == DecoderKind::NaiveBayes {
        return run_naive_bayes(&args, &stack, origin, labels, train, dev, &dev_name);
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
        None => (
            0,
            CalibrationParams {
                tau: grid.taus[0],
                p_min: grid.p_mins[0],
                s_min: grid.s_mins[0],
                smoothing: grid.smoothings[0],
                boundaries: grid.boundaries[0],
            },
            DecodeParams {
                combine: grid.combines[0],
                pooling: grid.poolings[0],
                threshold: grid.thresholds[0],
                extend: grid.extends[0],
            },
        ),
        Some(dev) => {
            let bar = indicatif::ProgressBar::new(0).with_style(
                indicatif::ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:30}] {pos}/{len} parameter sets (ETA {eta})",
                )
                .expect("valid template"),
            );
            let (trials, best) = sweep(&origin, &counts, dev, &grid, |done, total| {
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

fn fill<T>(values: &mut Vec<T>, default: T) {
    if values.is_empty() {
        values.push(default);
    }
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

/// The word offsets naive Bayes counts: 0 (the word itself), then `--nb-offsets`.
fn nb_offsets(args: &Args) -> Vec<i32> {
    std::iter::once(0)
        .chain(args.nb_offsets.iter().copied().filter(|&o| o != 0))
        .collect()
}

/// The naive-Bayes grid of the `--tau`, `--s-min` and `--nb-*` options.
fn nb_grid(args: &Args, offsets: &[i32]) -> NbGrid {
    NbGrid {
        taus: args.tau.clone(),
        alphas: args.nb_alpha.clone(),
        s_mins: args.s_min.clone(),
        weights: offsets[1..]
            .iter()
            .map(|&o| (o, args.nb_weight.clone()))
            .collect(),
        scales: args.nb_scale.clone(),
        absences: args.nb_absence.clone(),
        biases: args.nb_bias.clone(),
        viterbi: args.nb_viterbi.clone(),
    }
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
    let offsets = nb_offsets(args);
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
    let grid = nb_grid(args, &offsets);
    let (tau, weights, params) = match &dev {
        None => (
            grid.taus[0],
            // The word itself weighs 1; each neighbour the one --nb-weight value.
            offsets
                .iter()
                .map(|&o| (o, if o == 0 { 1.0 } else { args.nb_weight[0] }))
                .collect(),
            NbParams {
                alpha: grid.alphas[0],
                s_min: grid.s_mins[0],
                scale: grid.scales[0],
                absence: grid.absences[0],
                bias: vec![grid.biases[0]; labels.len()],
                viterbi: grid.viterbi[0],
            },
        ),
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

/// What label-free calibration reads: the lexicon (or the examples' names) and where it came
/// from, its matcher, the model stack, and the encoded text (the examples first, if given).
struct LabelFreeInput {
    lexicon: Lexicon,
    source: PathBuf,
    matcher: Matcher,
    stack: Stack,
    parts: Vec<EncodedCorpus>,
}

/// Reads `--lexicon` or `--examples` and the `--text` files (all before the model loads, so
/// that a bad file fails fast), then encodes the text.
fn load_label_free(args: &Args) -> Result<LabelFreeInput> {
    let (lexicon, source, examples) = match (&args.lexicon, &args.examples) {
        (Some(path), _) => (Lexicon::load(path)?, path, None),
        (None, Some(path)) => {
            let examples = read_corpus(path, Context::Document)?;
            (Lexicon::from_examples(&examples)?, path, Some(examples))
        }
        (None, None) => unreachable!("label-free needs --lexicon or --examples"),
    };
    let lexicon = if args.labels.is_empty() {
        lexicon
    } else {
        if let Some(missing) = args.labels.iter().find(|l| !lexicon.types.contains_key(*l)) {
            anyhow::bail!(
                "--labels: {missing} is not a type of {} (types: {})",
                source.display(),
                lexicon.labels().join(", ")
            );
        }
        Lexicon {
            types: lexicon
                .types
                .into_iter()
                .filter(|(label, _)| args.labels.contains(label))
                .collect(),
        }
    };
    let matcher = lexicon.matcher(MatchOptions {
        ignore_case: args.ignore_case,
        join_adjacent: args.join_adjacent,
    });
    let ambiguous = matcher.ambiguous();
    if !ambiguous.is_empty() {
        eprintln!(
            "saener: warning: {} names of {} are listed under several types and never matched: {}",
            ambiguous.len(),
            source.display(),
            ambiguous.join(", ")
        );
    }
    let texts = args
        .text
        .iter()
        .map(|path| {
            Ok((
                path,
                read_text_corpus(path, args.text_format, args.context)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let stack = Stack::load(&args.stack)?;
    let mut parts = Vec::new();
    for (path, corpus) in examples.map(|e| (source, e)).into_iter().chain(texts) {
        eprintln!("saener: encoding {}", path.display());
        parts.push(encode(&stack, corpus, &args.cache)?);
    }
    Ok(LabelFreeInput {
        lexicon,
        source: source.clone(),
        matcher,
        stack,
        parts,
    })
}

/// `--lexicon` or `--examples`: matches in unlabelled text instead of gold labels.
fn run_label_free(args: &Args, grid: &Grid) -> Result<()> {
    let LabelFreeInput {
        lexicon,
        matcher,
        stack,
        parts,
        ..
    } = load_label_free(args)?;
    // The library replaces the data checksum with one of the lexicon-labelled text.
    let origin = stack.origin(&parts[0].corpus);
    let counted = args.counted_tokens[0];
    let counts = LabelFreeCounts::new(
        parts,
        stack.sae.config().d_sae,
        &matcher,
        grid.taus.clone(),
        counted,
    )?;
    let mut params = LabelFreeParams {
        calibration: CalibrationParams {
            tau: grid.taus[0],
            p_min: grid.p_mins[0],
            s_min: grid.s_mins[0],
            smoothing: grid.smoothings[0],
            boundaries: grid.boundaries[0],
        },
        counted,
        decoding: DecodeParams {
            combine: grid.combines[0],
            pooling: grid.poolings[0],
            threshold: grid.thresholds[0],
            extend: grid.extends[0],
        },
    };
    if grid.points_len() > 1 {
        let (trials, best) = choose_label_free(
            args,
            "parameter sets",
            |progress| counts.choose(&origin, grid, args.pu_recall, progress),
            |t| {
                (
                    t.score,
                    t.held_out_recall,
                    t.held_out_name_recall,
                    t.predicted_rate,
                )
            },
        )?;
        let t = &trials[best];
        params.calibration = t.calibration;
        params.decoding = t.decoding;
    } else if args.sweep_out.is_some() {
        anyhow::bail!("--sweep-out needs a grid (an option with several values)");
    }
    let (profile, report) = counts.profile(origin, &params)?;
    profile.save(&args.out)?;
    for (t, label) in report.labels.iter().enumerate() {
        let names = lexicon.types[label].len();
        let matched = report.matched_tokens[t];
        eprintln!(
            "saener: {label}: {names} names, {} matched tokens (folds {:?}{}), label frequency c = {:.3}, {} rows",
            matched.iter().sum::<u64>(),
            matched,
            if report.held_out[t] { "" } else { "; one fold empty: no memorisation check" },
            report.label_frequency[t],
            report.rows[t]
        );
    }
    eprintln!(
        "saener: wrote {} ({} rows from {} tokens; tau {}, p_min {}, s_min {}, threshold {}, extend {:?})",
        args.out.display(),
        profile.rows.len(),
        report.tokens,
        params.calibration.tau,
        params.calibration.p_min,
        params.calibration.s_min,
        params.decoding.threshold,
        params.decoding.extend
    );
    Ok(())
}

/// `--lexicon` or `--examples` with `--decoder naive-bayes`: the lexicon's matches are the
/// tagged words, every other word O; a grid is chosen by the same criterion as the voting
/// decoder's, each bias for all types at once.
fn run_label_free_naive_bayes(args: &Args) -> Result<()> {
    let LabelFreeInput {
        lexicon,
        source,
        matcher,
        stack,
        parts,
    } = load_label_free(args)?;
    let d_sae = stack.sae.config().d_sae;
    let origin = stack.origin(&parts[0].corpus);
    let offsets = nb_offsets(args);
    let grid = nb_grid(args, &offsets);
    let started = std::time::Instant::now();
    let counts = LabelFreeNb::new(parts, d_sae, &matcher, args.tau.clone(), offsets.clone())?;
    eprintln!(
        "saener: counted {} offsets at {} thresholds in {:.1} s",
        offsets.len(),
        args.tau.len(),
        started.elapsed().as_secs_f64()
    );
    let (trials, best) = choose_label_free(
        args,
        "folds × texts",
        |progress| counts.choose(&grid, args.pu_recall, progress),
        |t| {
            (
                t.score,
                t.held_out_recall,
                t.held_out_name_recall,
                t.predicted_rate,
            )
        },
    )?;
    let t = &trials[best];
    let model = counts.model(t.tau, &t.weights, &t.params)?;
    let origin = saener_ner::Origin {
        data_checksum: counts.checksum().to_string(),
        ..origin
    };
    let labels = counts.labels().to_vec();
    let profile = Profile::from_naive_bayes(origin, labels, d_sae, model, t.tau, t.params.s_min)?;
    profile.save(&args.out)?;
    for label in &profile.labels {
        eprintln!(
            "saener: {label}: {} names in {}, {} matched words",
            lexicon.types[label].len(),
            source.display(),
            profile.label_tokens[label]
        );
    }
    eprintln!(
        "saener: wrote {} (naive Bayes, {} features; tau {}, offsets {:?}, {:?})",
        args.out.display(),
        profile.features().len(),
        t.tau,
        t.weights,
        t.params
    );
    Ok(())
}

/// Runs a label-free parameter choice behind a progress bar counting `unit`, writes its
/// trials to `--sweep-out` and reports the best, whose (score, held-out word recall,
/// held-out name recall, predicted rate) `pu` reads; returns the trials and the best's index.
fn choose_label_free<T: serde::Serialize>(
    args: &Args,
    unit: &str,
    choose: impl FnOnce(&mut dyn FnMut(usize, usize)) -> saener_ner::Result<(Vec<T>, usize)>,
    pu: impl Fn(&T) -> (f64, f64, f64, f64),
) -> Result<(Vec<T>, usize)> {
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{elapsed_precise}} [{{bar:30}}] {{pos}}/{{len}} {unit} (ETA {{eta}})"
        ))
        .expect("valid template"),
    );
    let (trials, best) = choose(&mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    write_trials(args.sweep_out.as_deref(), &trials)?;
    let (score, word_recall, name_recall, rate) = pu(&trials[best]);
    eprintln!(
        "saener: best of {} parameter sets by the label-free criterion (held-out names, --pu-recall {}): score {score:.3}, held-out recall {word_recall:.3} of words, {name_recall:.3} per name, predicted rate {rate:.4}",
        trials.len(),
        serde_json::to_value(args.pu_recall)?.as_str().unwrap_or_default()
    );
    Ok((trials, best))
}

/// Reads unlabelled text for label-free calibration; a CoNLL or JSONL file's labels are
/// kept only so that its cached codes are found (the cache key is the corpus checksum):
/// `calibrate_from_lexicon` replaces them with lexicon matches before anything is counted.
fn read_text_corpus(path: &Path, format: TextFormat, context: Context) -> Result<Corpus> {
    let corpus = match format {
        TextFormat::Text => saener_ner::read_text(path, TextMode::Lines)?.corpus,
        TextFormat::Conll => saener_ner::read_conll(path, &ConllOptions::default())?.corpus,
        TextFormat::Jsonl => saener_ner::read_jsonl(path)?.corpus,
    };
    if corpus.documents.is_empty() {
        anyhow::bail!("{}: no text", path.display());
    }
    Ok(match context {
        Context::Document => corpus,
        Context::Sentence => corpus.into_sentence_documents(),
    })
}

/// Writes every trial of a sweep to `path` (`--sweep-out`), one JSON object per line.
fn write_trials(path: Option<&Path>, trials: &[impl serde::Serialize]) -> Result<()> {
    let Some(path) = path else { return Ok(()) };
    let mut lines = String::new();
    for trial in trials {
        lines += &serde_json::to_string(trial)?;
        lines.push('\n');
    }
    std::fs::write(path, lines).with_context(|| format!("writing {}", path.display()))
}
