use anyhow::{Context as _, Result};
use saener_ner::{
    evaluate_corpus, html_report, judge_corpus, predicted_corpus, Decoder, EvalReport, Prf,
    ReportInput,
};
use serde::Serialize;
use std::path::PathBuf;

use crate::commands::stack::{
    encode, load_profile, read_corpus, CacheArgs, Context, DecodeOverrides, Stack, StackArgs,
};

#[derive(clap::Args)]
#[command(
    after_help = "Scores are entity-level exact match: seqeval strict (IOB2) and \
conlleval counting, micro and macro, per type, plus an error breakdown. --json writes \
{\"strict\",\"conlleval\"} (each with micro, macro and per_type: precision, recall, f1 as \
fractions) and \"errors\". --report writes the same as one HTML page, with errors in context.\n\nExample:\n  \
saener eval --profile conll2003 --data ../shared/data/conll2003/test.conll --json conll-test.json \
--report conll-test.html"
)]
pub struct Args {
    /// Profile: a path, or the name of a shipped one (conll2003, ncbi_disease, bc5cdr).
    #[arg(long)]
    profile: String,
    /// Labelled data: CoNLL columns, or JSONL with character spans (.jsonl).
    #[arg(long)]
    data: PathBuf,
    /// Write the full report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the predictions as a CoNLL file here (the data's words, predicted tags).
    #[arg(long)]
    predictions: Option<PathBuf>,
    /// Write a self-contained HTML report here: metrics, error breakdown, a chart, and a
    /// sample of errors in context with the evidence behind each prediction.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Errors of each kind the HTML report shows.
    #[arg(long, default_value_t = 12, requires = "report")]
    report_errors: usize,
    /// Context each sentence is read in.
    #[arg(long, value_enum, default_value_t = Context::Document)]
    context: Context,
    #[command(flatten)]
    decoding: DecodeOverrides,
    #[command(flatten)]
    stack: StackArgs,
    #[command(flatten)]
    cache: CacheArgs,
}

/// The JSON report: the metrics plus what they were measured on.
#[derive(Serialize)]
struct Report<'a> {
    #[serde(flatten)]
    report: &'a EvalReport,
    data: String,
    data_checksum: String,
    profile: String,
    context: String,
}

pub fn run(args: Args) -> Result<()> {
    let profile = load_profile(&args.profile)?;
    let params = args.decoding.apply(&profile)?;

    let mut stack = Stack::load(&args.stack)?;
    stack.check(&profile)?;
    let gold = read_corpus(&args.data, args.context)?;
    let data_checksum = gold.checksum();
    if data_checksum == profile.origin.data_checksum {
        eprintln!(
            "saener: warning: {} is the data this profile was calibrated on: these scores are not held-out",
            args.data.display()
        );
    }
    let encoded = encode(&stack, gold, &args.cache)?;
    let started = std::time::Instant::now();
    let spans = Decoder::new(&profile, params)?.decode_corpus(&encoded)?;
    let secs = started.elapsed().as_secs_f64();
    let tokens: usize = encoded.codes.iter().map(Vec::len).sum();
    eprintln!(
        "saener: decoded {tokens} tokens in {secs:.2} s ({:.0} tokens/s)",
        tokens as f64 / secs
    );
    let predicted = predicted_corpus(&encoded.corpus, &spans);
    let report = evaluate_corpus(&encoded.corpus, &predicted)?;
    if let Some(path) = &args.report {
        let about = [
            ("profile", args.profile.clone()),
            ("data", args.data.display().to_string()),
            ("data checksum", data_checksum.clone()),
            ("context", format!("{:?}", args.context).to_lowercase()),
            ("decoding", serde_json::to_string(&params)?),
        ];
        let html = html_report(&ReportInput {
            title: &format!("saener eval: {} on {}", args.profile, args.data.display()),
            about: &about,
            report: &report,
            gold: &encoded.corpus,
            spans: &spans,
            judged: &judge_corpus(&encoded.corpus, &predicted)?,
            per_kind: args.report_errors,
        });
        std::fs::write(path, html).with_context(|| format!("writing {}", path.display()))?;
    }
    let outputs = Outputs {
        json: args.json,
        predictions: args.predictions,
    };
    outputs.write(
        &report,
        &predicted,
        &args.data,
        data_checksum,
        &args.profile,
        args.context,
    )
}

/// Where an evaluation's report and predictions go; shared with `probe eval`.
pub struct Outputs {
    pub json: Option<PathBuf>,
    pub predictions: Option<PathBuf>,
}

impl Outputs {
    /// Writes the JSON report and the predicted CoNLL file where asked, and prints the
    /// table. `model` names what was evaluated (a profile or a probe).
    pub fn write(
        &self,
        report: &EvalReport,
        predicted: &saener_ner::Corpus,
        data: &std::path::Path,
        data_checksum: String,
        model: &str,
        context: Context,
    ) -> Result<()> {
        if let Some(path) = &self.predictions {
            std::fs::write(path, predicted.to_conll())
                .with_context(|| format!("writing {}", path.display()))?;
        }
        if let Some(path) = &self.json {
            let full = Report {
                report,
                data: data.display().to_string(),
                data_checksum,
                profile: model.to_string(),
                context: format!("{context:?}").to_lowercase(),
            };
            std::fs::write(path, serde_json::to_string_pretty(&full)?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        print!("{}", table(report));
        Ok(())
    }
}

/// The report as a plain-text table (percentages).
fn table(report: &EvalReport) -> String {
    let line = |name: &str, p: &Prf| {
        format!(
            "{name:<14} {:>7.2} {:>7.2} {:>7.2} {:>7} {:>7} {:>7}\n",
            100.0 * p.precision,
            100.0 * p.recall,
            100.0 * p.f1,
            p.correct,
            p.predicted,
            p.support
        )
    };
    let mut out = String::new();
    for (name, scores) in [("strict", &report.strict), ("conlleval", &report.conlleval)] {
        out += &format!(
            "{name:<14} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7}\n",
            "P", "R", "F1", "correct", "pred", "gold"
        );
        for (label, prf) in &scores.per_type {
            out += &line(&format!("  {label}"), prf);
        }
        out += &line("  micro", &scores.micro);
        out += &line("  macro", &scores.macro_);
        out += "\n";
    }
    let e = &report.errors;
    out += &format!(
        "errors: {} missed, {} spurious, {} boundary, {} type, {} boundary+type\n",
        e.missed, e.spurious, e.boundary, e.type_, e.boundary_type
    );
    out
}
