//! `saener calibrate --lexicon` / `--examples`: a profile without annotations, from lexicon
//! (or example) names matched in unlabelled text, parameters chosen on held-out names.

use anyhow::Result;
use saener_ner::{
    ConllOptions, Corpus, EncodedCorpus, Grid, LabelFreeCounts, LabelFreeNb, LabelFreeParams,
    Lexicon, MatchOptions, Matcher, Profile, TextMode,
};
use std::path::{Path, PathBuf};

use super::args::{Args, TextFormat};
use super::labelled::write_trials;
use crate::commands::stack::{encode, read_corpus, Context, Stack};

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
pub(super) fn run(args: &Args, grid: &Grid) -> Result<()> {
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
    let (calibration, decoding) = grid.first();
    let mut params = LabelFreeParams {
        calibration,
        counted,
        decoding,
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
pub(super) fn run_naive_bayes(args: &Args) -> Result<()> {
    let LabelFreeInput {
        lexicon,
        source,
        matcher,
        stack,
        parts,
    } = load_label_free(args)?;
    let d_sae = stack.sae.config().d_sae;
    let origin = stack.origin(&parts[0].corpus);
    let offsets = args.counted_offsets();
    let grid = args.nb_grid(&offsets);
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
