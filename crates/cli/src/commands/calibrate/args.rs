//! `saener calibrate`'s arguments: one struct, read by the labelled and the label-free
//! paths.

use saener_ner::{Combine, CountedTokens, NbGrid, PuRecall, WordPooling};
use std::path::PathBuf;

use crate::commands::stack::{parse_extend, serde_name, CacheArgs, Context, StackArgs};

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
    pub(super) data: Option<PathBuf>,
    /// Label-free: a lexicon matched in --text: TOML, `type = ["name", ...]` per entity type,
    /// or JSONL `{"type", "name"}` lines (`saener lexicon build` writes them).
    #[arg(long, conflicts_with = "examples", requires = "text")]
    pub(super) lexicon: Option<PathBuf>,
    /// Few-shot: a few annotated examples (JSONL with spans, or CoNLL); their entity strings
    /// are matched in their own text and in --text, like a lexicon.
    #[arg(long)]
    pub(super) examples: Option<PathBuf>,
    /// Label-free: unlabelled text to match the lexicon in (repeatable). Never test text.
    #[arg(long)]
    pub(super) text: Vec<PathBuf>,
    /// How --text is read: plain text (one document per line), or a CoNLL or JSONL file read
    /// for its text only (its labels are never used).
    #[arg(long, value_enum, default_value_t = TextFormat::Text)]
    pub(super) text_format: TextFormat,
    /// Label-free: match names ignoring case.
    #[arg(long)]
    pub(super) ignore_case: bool,
    /// Label-free: how the parameter criterion measures the recall of held-out names:
    /// `words` (every occurrence counts) or `names` (each distinct name once, so the
    /// frequent, easy names do not dominate).
    #[arg(long, default_value = "words", value_parser = serde_name::<PuRecall>)]
    pub(super) pu_recall: PuRecall,
    /// Label-free: merge matches of one type separated only by spaces into one entity (a
    /// first name then a last name from a gazetteer's separate lists).
    #[arg(long)]
    pub(super) join_adjacent: bool,
    /// Labelled development data to choose the parameters on.
    #[arg(long, conflicts_with_all = ["lexicon", "examples"])]
    pub(super) dev: Option<PathBuf>,
    /// Instead of --dev, choose the parameters on this fraction of --data's documents (the
    /// last ones), calibrated on the rest; the profile is then counted on all of --data.
    /// For benchmarks whose dev split is the one reported.
    #[arg(long, conflicts_with_all = ["dev", "lexicon", "examples"])]
    pub(super) holdout: Option<f64>,
    /// Where to write the profile (JSON).
    #[arg(long)]
    pub(super) out: PathBuf,
    /// Where to write every grid point's parameters and dev scores (JSONL, one per line),
    /// with --dev or --holdout; label-free, every point's held-out-name scores.
    #[arg(long)]
    pub(super) sweep_out: Option<PathBuf>,
    /// Entity types to calibrate (default: every type in --data, or in the lexicon).
    #[arg(long, value_delimiter = ',')]
    pub(super) labels: Vec<String>,
    /// Context each sentence is read in.
    #[arg(long, value_enum, default_value_t = Context::Document)]
    pub(super) context: Context,
    /// Which tokens of a word are counted: all, word_first or word_last (the one `last`
    /// pooling reads).
    #[arg(long, value_delimiter = ',', default_value = "all", value_parser = serde_name::<CountedTokens>)]
    pub(super) counted_tokens: Vec<CountedTokens>,
    /// Firing thresholds τ: a feature votes where its activation exceeds τ.
    #[arg(long, value_delimiter = ',')]
    pub(super) tau: Vec<f32>,
    /// Minimum smoothed precision of a kept (feature, type) row.
    #[arg(long, value_delimiter = ',')]
    pub(super) p_min: Vec<f64>,
    /// Minimum support (firing tokens) of a kept row.
    #[arg(long, value_delimiter = ',')]
    pub(super) s_min: Vec<u32>,
    /// Precision smoothing: wilson (lower bound of the Wilson interval at --wilson-z) or
    /// raw (hits / support).
    #[arg(long, value_delimiter = ',', default_value = "wilson")]
    pub(super) smoothing: Vec<SmoothingName>,
    /// Standard deviations of the Wilson lower bound.
    #[arg(long, default_value_t = 1.96)]
    pub(super) wilson_z: f64,
    /// Also calibrate boundary features (true/false), which split adjacent same-type entities.
    #[arg(long, value_delimiter = ',', default_value = "false")]
    pub(super) boundaries: Vec<bool>,
    /// How a token's votes combine: noisy_or or max.
    #[arg(long, value_delimiter = ',', default_value = "noisy_or", value_parser = serde_name::<Combine>)]
    pub(super) combine: Vec<Combine>,
    /// Which of a word's tokens decides it: last, first, max or mean.
    #[arg(long, value_delimiter = ',', default_value = "last", value_parser = serde_name::<WordPooling>)]
    pub(super) pooling: Vec<WordPooling>,
    /// Minimum word score for a label.
    #[arg(long, value_delimiter = ',')]
    pub(super) threshold: Vec<f64>,
    /// Hysteresis: words next to an entity join it when their score for its type reaches
    /// this (`none`: off).
    #[arg(long, value_delimiter = ',', value_parser = parse_extend)]
    pub(super) extend: Vec<Option<f64>>,
    /// Which decoder the profile is made for: noisy-or (votes of single precise features) or
    /// naive-bayes (log-odds of every firing feature of a word and its neighbours; uses
    /// --tau, --s-min and the --nb-* options).
    #[arg(long, value_enum, default_value_t = DecoderKind::NoisyOr)]
    pub(super) decoder: DecoderKind,
    /// Naive Bayes: word offsets whose features vote for a word besides itself (-1: the
    /// word before, 1: the word after).
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    pub(super) nb_offsets: Vec<i32>,
    /// Naive Bayes: weights tried for each offset of --nb-offsets (the word itself has 1).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub(super) nb_weight: Vec<f64>,
    /// Naive Bayes: additive smoothing of P(feature | tag).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub(super) nb_alpha: Vec<f64>,
    /// Naive Bayes: scale of the summed log-likelihoods against the tag prior and
    /// transitions.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub(super) nb_scale: Vec<f64>,
    /// Naive Bayes: weight of the evidence of features that do not fire (1: Bernoulli naive
    /// Bayes, 0: firing features only).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub(super) nb_absence: Vec<f64>,
    /// Naive Bayes: bias added to every entity tag's score; with --dev, then refined per type.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0",
        allow_negative_numbers = true
    )]
    pub(super) nb_bias: Vec<f64>,
    /// Naive Bayes: decode each sentence jointly with counted tag transitions (true) or each
    /// word alone (false).
    #[arg(long, value_delimiter = ',', default_value = "false")]
    pub(super) nb_viterbi: Vec<bool>,
    #[command(flatten)]
    pub(super) stack: StackArgs,
    #[command(flatten)]
    pub(super) cache: CacheArgs,
}

/// Which decoder `calibrate` makes a profile for.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum DecoderKind {
    NoisyOr,
    NaiveBayes,
}

/// How `--text` files are read.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TextFormat {
    Text,
    Conll,
    Jsonl,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub(super) enum SmoothingName {
    Wilson,
    Raw,
}

impl Args {
    /// The word offsets naive Bayes counts: 0 (the word itself), then `--nb-offsets`.
    pub(super) fn counted_offsets(&self) -> Vec<i32> {
        std::iter::once(0)
            .chain(self.nb_offsets.iter().copied().filter(|&o| o != 0))
            .collect()
    }

    /// The naive-Bayes grid of the `--tau`, `--s-min` and `--nb-*` options.
    pub(super) fn nb_grid(&self, offsets: &[i32]) -> NbGrid {
        NbGrid {
            taus: self.tau.clone(),
            alphas: self.nb_alpha.clone(),
            s_mins: self.s_min.clone(),
            weights: offsets[1..]
                .iter()
                .map(|&o| (o, self.nb_weight.clone()))
                .collect(),
            scales: self.nb_scale.clone(),
            absences: self.nb_absence.clone(),
            biases: self.nb_bias.clone(),
            viterbi: self.nb_viterbi.clone(),
        }
    }
}
