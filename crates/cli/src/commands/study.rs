//! `saener study`: the silver-data and annotation-noise study of the paper, end to end.

use anyhow::{Context as _, Result};
use plotters::prelude::*;
use saener_ner::{perturb, Decoder, NoiseRates, PerturbKind, TaggerMeta, TaggerOptions};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::commands::stack::{encode, load_profile, CacheArgs, Stack, StackArgs};
use crate::commands::tagger::{fit_and_score, Featured, OptionArgs};

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

/// What a study's runs depend on; a resumed study must match it.
#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Setup {
    dataset: String,
    train: String,
    train_checksum: String,
    eval: String,
    eval_checksum: String,
    profile: String,
    model: String,
    layer: usize,
    tagger: TaggerOptions,
}

/// The training labels of a run.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
enum Labels {
    Gold,
    Silver,
    Fn,
    Boundary,
    Fp,
    Type,
}

const NOISE_KINDS: [(Labels, PerturbKind); 4] = [
    (Labels::Fn, PerturbKind::Fn),
    (Labels::Boundary, PerturbKind::Boundary),
    (Labels::Fp, PerturbKind::Fp),
    (Labels::Type, PerturbKind::Type),
];

/// The rate of noise of kind `labels` in `noise`.
fn rate_of(labels: Labels, noise: &NoiseRates) -> f64 {
    match labels {
        Labels::Fn => noise.false_negative,
        Labels::Boundary => noise.boundary,
        Labels::Fp => noise.false_positive,
        Labels::Type => noise.type_,
        Labels::Gold | Labels::Silver => 0.0,
    }
}

/// One trained and scored tagger.
#[derive(Serialize, Deserialize, Clone, Debug)]
struct Run {
    labels: Labels,
    rate: f64,
    seed: u64,
    /// The training labels' noise against gold train.
    noise: NoiseRates,
    precision: f64,
    recall: f64,
    f1: f64,
    per_type_f1: BTreeMap<String, f64>,
    train_seconds: f64,
}

impl Run {
    fn key(&self) -> (Labels, u64, u64) {
        (self.labels, self.rate.to_bits(), self.seed)
    }
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

    let train = Featured::load(&stack, &train_path, &args.cache)?;
    let eval = Featured::load(&stack, &eval_path, &args.cache)?;
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
    check_setup(&out.join("study.json"), &setup)?;
    let runs_path = out.join("runs.jsonl");
    let mut runs = read_runs(&runs_path)?;
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

    let labels = profile.labels.clone();
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&runs_path)
        .with_context(|| format!("opening {}", runs_path.display()))?;
    for seed in 0..args.seeds {
        let mut plan = vec![(Labels::Gold, 0.0), (Labels::Silver, 0.0)];
        // Type errors need a second type to swap in.
        let kinds = NOISE_KINDS
            .iter()
            .filter(|(k, _)| *k != Labels::Type || labels.len() > 1);
        for &(kind, _) in kinds {
            plan.extend(args.rates.iter().filter(|&&r| r > 0.0).map(|&r| (kind, r)));
        }
        for (kind, rate) in plan {
            let key = (kind, rate.to_bits(), seed);
            if runs.iter().any(|r| r.key() == key) {
                continue;
            }
            let corpus = match kind {
                Labels::Gold => train.corpus.clone(),
                Labels::Silver => silver.clone(),
                _ => {
                    let (_, perturb_kind) = NOISE_KINDS
                        .iter()
                        .find(|(k, _)| *k == kind)
                        .expect("a noise kind");
                    perturb(&train.corpus, *perturb_kind, rate, seed)?
                }
            };
            let noise = NoiseRates::measure(&train.corpus, &corpus)?;
            let meta = TaggerMeta {
                format: 1,
                labels: labels.clone(),
                origin: stack.origin(&corpus),
                options: TaggerOptions {
                    seed,
                    ..tagger_options
                },
            };
            let started = std::time::Instant::now();
            let (_, report) = fit_and_score(&train.relabelled(corpus), &eval, meta)?;
            let micro = report.strict.micro;
            let run = Run {
                labels: kind,
                rate,
                seed,
                noise,
                precision: micro.precision,
                recall: micro.recall,
                f1: micro.f1,
                per_type_f1: report
                    .strict
                    .per_type
                    .iter()
                    .map(|(t, p)| (t.clone(), p.f1))
                    .collect(),
                train_seconds: started.elapsed().as_secs_f64(),
            };
            eprintln!(
                "saener: {kind:?} rate {rate} seed {seed}: F1 {:.2} ({:.0} s)",
                100.0 * run.f1,
                run.train_seconds
            );
            writeln!(log, "{}", serde_json::to_string(&run)?)?;
            log.sync_data()?;
            runs.push(run);
        }
    }

    let summary = Summary::new(&runs, &args.rates);
    let table = summary.table(&args.dataset);
    print!("{table}");
    std::fs::write(out.join("table.md"), &table)?;
    std::fs::write(
        out.join("summary.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;
    chart(&summary, &out.join("chart.svg"), &args.dataset)?;
    eprintln!("saener: wrote {}", out.display());
    Ok(())
}

/// Writes `setup` to `path`, or checks that the one there is the same.
fn check_setup(path: &Path, setup: &Setup) -> Result<()> {
    if path.exists() {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let found: Setup = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a study setup", path.display()))?;
        if found != *setup {
            anyhow::bail!(
                "{}: this folder holds a study with another setup (data, profile, model or tagger settings); \
use another --out or delete it.\nfound:    {found:?}\nthis run: {setup:?}",
                path.display()
            );
        }
        return Ok(());
    }
    std::fs::write(path, serde_json::to_string_pretty(setup)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// The finished runs; a torn last line (an interrupted write) is cut off.
fn read_runs(path: &Path) -> Result<Vec<Run>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut runs = Vec::new();
    let mut kept = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        match serde_json::from_str::<Run>(line) {
            Ok(run) if line.ends_with('\n') => {
                runs.push(run);
                kept += line.len();
            }
            _ if kept + line.len() == text.len() => {
                eprintln!(
                    "saener: {}:{}: cutting an unfinished record",
                    path.display(),
                    i + 1
                );
                let file = std::fs::OpenOptions::new().write(true).open(path)?;
                file.set_len(kept as u64)?;
            }
            Err(e) => anyhow::bail!("{}:{}: not a study run: {e}", path.display(), i + 1),
            Ok(_) => unreachable!("only the last line can lack its newline"),
        }
    }
    Ok(runs)
}

/// Mean and sample standard deviation of F1 (percent) over seeds.
#[derive(Serialize, Clone, Copy)]
struct Cell {
    rate: f64,
    mean: f64,
    std: f64,
    runs: usize,
}

impl Cell {
    fn of(rate: f64, f1: &[f64]) -> Option<Cell> {
        if f1.is_empty() {
            return None;
        }
        let n = f1.len() as f64;
        let mean = f1.iter().sum::<f64>() / n;
        let var = if f1.len() > 1 {
            f1.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        Some(Cell {
            rate,
            mean: 100.0 * mean,
            std: 100.0 * var.sqrt(),
            runs: f1.len(),
        })
    }
}

/// One noise kind's curve: gold at rate 0, then each rate.
#[derive(Serialize)]
struct Curve {
    labels: Labels,
    cells: Vec<Cell>,
    /// Least-squares slope of mean F1 against rate, in F1 points per 10 % of noise.
    per_10_percent: f64,
}

#[derive(Serialize)]
struct SilverSummary {
    f1: Cell,
    noise: NoiseRates,
    /// For each noise kind, the F1 drop from gold its curve predicts at the silver data's
    /// measured rate of that kind (linear interpolation; extrapolated past the last rate).
    predicted_drop: BTreeMap<String, f64>,
}

#[derive(Serialize)]
struct Summary {
    gold: Option<Cell>,
    silver: Option<SilverSummary>,
    curves: Vec<Curve>,
}

impl Summary {
    fn new(runs: &[Run], rates: &[f64]) -> Summary {
        let f1_of = |labels: Labels, rate: f64| -> Vec<f64> {
            runs.iter()
                .filter(|r| r.labels == labels && (labels == Labels::Gold || r.rate == rate))
                .map(|r| r.f1)
                .collect()
        };
        let gold = Cell::of(0.0, &f1_of(Labels::Gold, 0.0));
        let curves: Vec<Curve> = NOISE_KINDS
            .iter()
            .map(|&(labels, _)| {
                let cells: Vec<Cell> = gold
                    .into_iter()
                    .chain(
                        rates
                            .iter()
                            .filter(|&&r| r > 0.0)
                            .filter_map(|&r| Cell::of(r, &f1_of(labels, r))),
                    )
                    .collect();
                Curve {
                    labels,
                    per_10_percent: 0.1 * slope(&cells),
                    cells,
                }
            })
            .filter(|curve| curve.cells.len() > 1)
            .collect();
        let silver = runs
            .iter()
            .find(|r| r.labels == Labels::Silver)
            .and_then(|first| {
                let f1 = Cell::of(0.0, &f1_of(Labels::Silver, 0.0))?;
                let noise = first.noise;
                let predicted_drop = curves
                    .iter()
                    .filter_map(|c| {
                        let rate = rate_of(c.labels, &noise);
                        let gold = gold?.mean;
                        Some((
                            name(c.labels).to_string(),
                            gold - interpolate(&c.cells, rate)?,
                        ))
                    })
                    .collect();
                Some(SilverSummary {
                    f1,
                    noise,
                    predicted_drop,
                })
            });
        Summary {
            gold,
            silver,
            curves,
        }
    }

    /// A Markdown table of mean ± std F1 per noise kind and rate, and the silver run.
    fn table(&self, dataset: &str) -> String {
        let rates: Vec<f64> = self
            .curves
            .iter()
            .flat_map(|c| c.cells.iter().map(|cell| cell.rate))
            .fold(Vec::new(), |mut v, r| {
                if !v.contains(&r) {
                    v.push(r);
                }
                v
            });
        let mut out = format!(
            "Tagger trained on noisy {dataset} train, strict micro F1 on the gold evaluation split (mean ± std over seeds)\n\n| noise |"
        );
        for r in &rates {
            out += &format!(" {:.0} % |", 100.0 * r);
        }
        out += " F1 lost per 10 % |\n|---|";
        out += &"---|".repeat(rates.len() + 1);
        out += "\n";
        for curve in &self.curves {
            out += &format!("| {} |", name(curve.labels));
            for r in &rates {
                match curve.cells.iter().find(|c| c.rate == *r) {
                    Some(c) => out += &format!(" {:.1} ± {:.1} |", c.mean, c.std),
                    None => out += " – |",
                }
            }
            out += &format!(" {:.2} |\n", -curve.per_10_percent);
        }
        if let Some(s) = &self.silver {
            let n = s.noise;
            out += &format!(
                "\nSilver (SAE-NER labels of the train text): F1 {:.1} ± {:.1} ({} runs)",
                s.f1.mean, s.f1.std, s.f1.runs
            );
            if let Some(g) = self.gold {
                out += &format!(
                    ", {:.1} % of gold's {:.1}",
                    100.0 * s.f1.mean / g.mean,
                    g.mean
                );
            }
            out += &format!(
                ".\nIts noise against gold train: FN {:.1} %, FP {:.1} %, boundary {:.1} %, type {:.1} % (shares of the {} gold entities).\n",
                100.0 * n.false_negative,
                100.0 * n.false_positive,
                100.0 * n.boundary,
                100.0 * n.type_,
                n.gold_entities
            );
            out +=
                "F1 drop from gold that each curve predicts at the silver data's rate of its kind:";
            for (kind, drop) in &s.predicted_drop {
                out += &format!(" {kind} {drop:.1};");
            }
            out += "\n";
        }
        out
    }
}

fn name(labels: Labels) -> &'static str {
    match labels {
        Labels::Gold => "gold",
        Labels::Silver => "silver",
        Labels::Fn => "false negatives",
        Labels::Boundary => "boundary",
        Labels::Fp => "false positives",
        Labels::Type => "type errors",
    }
}

/// Least-squares slope of mean F1 against rate.
fn slope(cells: &[Cell]) -> f64 {
    let n = cells.len() as f64;
    if cells.len() < 2 {
        return 0.0;
    }
    let (mx, my) = (
        cells.iter().map(|c| c.rate).sum::<f64>() / n,
        cells.iter().map(|c| c.mean).sum::<f64>() / n,
    );
    let sxy: f64 = cells.iter().map(|c| (c.rate - mx) * (c.mean - my)).sum();
    let sxx: f64 = cells.iter().map(|c| (c.rate - mx).powi(2)).sum();
    sxy / sxx
}

/// Mean F1 at `rate` on the piecewise-linear curve through `cells` (sorted by rate),
/// extended past its ends by its first and last segments.
fn interpolate(cells: &[Cell], rate: f64) -> Option<f64> {
    if cells.len() < 2 {
        return None;
    }
    let k = cells
        .windows(2)
        .position(|w| rate <= w[1].rate)
        .unwrap_or(cells.len() - 2);
    let (a, b) = (cells[k], cells[k + 1]);
    Some(a.mean + (b.mean - a.mean) * (rate - a.rate) / (b.rate - a.rate))
}

/// Test F1 against noise rate, one line per kind (mean with ± std bars), the silver run
/// marked at its measured rate of each kind.
fn chart(summary: &Summary, path: &Path, dataset: &str) -> Result<()> {
    let draw = |e: DrawingAreaErrorKind<_>| anyhow::anyhow!("drawing {}: {e}", path.display());
    let cells = summary.curves.iter().flat_map(|c| &c.cells);
    let silver_rates = summary
        .silver
        .iter()
        .flat_map(|s| summary.curves.iter().map(|c| rate_of(c.labels, &s.noise)));
    let max_rate = cells
        .clone()
        .map(|c| c.rate)
        .chain(silver_rates)
        .fold(0.5, f64::max);
    let lows = cells
        .clone()
        .map(|c| c.mean - c.std)
        .chain(summary.silver.as_ref().map(|s| s.f1.mean));
    let low = lows.fold(100.0, f64::min);
    let high = cells.map(|c| c.mean + c.std).fold(0.0, f64::max);

    let root = SVGBackend::new(path, (720, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(draw)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{dataset}: tagger F1 against annotation noise in its training data"),
            ("sans-serif", 16),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(
            0f64..max_rate * 1.05,
            (low - 3.0).floor()..(high + 2.0).ceil(),
        )
        .map_err(draw)?;
    chart
        .configure_mesh()
        .x_desc("noise rate (share of gold entities)")
        .y_desc("strict micro F1 (%, gold evaluation split)")
        .draw()
        .map_err(draw)?;
    for (k, curve) in summary.curves.iter().enumerate() {
        let color = Palette99::pick(k).to_rgba();
        chart
            .draw_series(LineSeries::new(
                curve.cells.iter().map(|c| (c.rate, c.mean)),
                color.stroke_width(2),
            ))
            .map_err(draw)?
            .label(name(curve.labels))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart
            .draw_series(curve.cells.iter().map(|c| {
                ErrorBar::new_vertical(
                    c.rate,
                    c.mean - c.std,
                    c.mean,
                    c.mean + c.std,
                    color.filled(),
                    6,
                )
            }))
            .map_err(draw)?;
        if let Some(s) = &summary.silver {
            chart
                .draw_series(std::iter::once(TriangleMarker::new(
                    (rate_of(curve.labels, &s.noise), s.f1.mean),
                    7,
                    color.filled(),
                )))
                .map_err(draw)?;
        }
    }
    if summary.silver.is_some() {
        chart
            .draw_series(std::iter::empty::<TriangleMarker<(f64, f64), i32>>())
            .map_err(draw)?
            .label("silver, at its measured rate of each kind")
            .legend(|(x, y)| TriangleMarker::new((x + 10, y), 6, BLACK.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(draw)?;
    root.present().map_err(draw)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(rate: f64, mean: f64) -> Cell {
        Cell {
            rate,
            mean,
            std: 0.0,
            runs: 1,
        }
    }

    #[test]
    fn slope_and_interpolation_follow_the_curve() {
        let cells = [cell(0.0, 90.0), cell(0.1, 88.0), cell(0.5, 80.0)];
        assert!((slope(&cells) + 20.0).abs() < 1e-9);
        assert_eq!(interpolate(&cells, 0.05), Some(89.0));
        assert_eq!(interpolate(&cells, 0.3), Some(84.0));
        assert_eq!(interpolate(&cells, 0.7), Some(76.0));
    }

    #[test]
    fn cells_report_mean_and_sample_spread_in_percent() {
        let c = Cell::of(0.2, &[0.80, 0.82, 0.84]).unwrap();
        assert!((c.mean - 82.0).abs() < 1e-9 && (c.std - 2.0).abs() < 1e-9);
        assert!(Cell::of(0.2, &[]).is_none());
    }
}
