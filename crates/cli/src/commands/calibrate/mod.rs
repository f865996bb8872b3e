//! `saener calibrate`: a profile from labelled data (`labelled`) or from a lexicon or a few
//! examples matched in unlabelled text (`label_free`), for either decoder. This module
//! fills the mode's defaults, checks the grid against the mode and dispatches; the
//! arguments are `args`.

mod args;
mod label_free;
mod labelled;

use anyhow::Result;
use saener_ner::{Grid, LabelFreeParams, Smoothing};

pub use args::Args;
use args::{DecoderKind, SmoothingName};

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
            return label_free::run_naive_bayes(&args);
        }
        if args.counted_tokens.len() != 1 {
            anyhow::bail!("--counted-tokens: label-free calibration takes one value");
        }
        return label_free::run(&args, &grid);
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

    labelled::run(&args, &grid)
}

fn fill<T>(values: &mut Vec<T>, default: T) {
    if values.is_empty() {
        values.push(default);
    }
}
