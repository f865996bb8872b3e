//! The silver-data and annotation-noise study of the paper (`saener study`): the
//! downstream [`Tagger`](crate::Tagger) trained on gold train, on SAE-NER's silver labels of
//! the same text, and on gold perturbed by each noise kind at each rate, every run scored
//! on the gold evaluation split. Runs are appended to a log as they finish, so an
//! interrupted study resumes; the summary fits each noise kind's F1 curve and reads off
//! the drop it predicts at the silver data's measured noise.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

use plotters::prelude::*;
use saener_ner::{Corpus, NoiseRates, Stack};
use serde::{Deserialize, Serialize};

use crate::chart;
use crate::features::Featured;
use crate::perturb::{perturb, PerturbKind};
use crate::tagger::{fit_and_score, TaggerMeta, TaggerOptions};
use crate::{Error, Result};

/// What a study's runs depend on; a resumed study must match it (`study.json`).
#[derive(Serialize, Deserialize, PartialEq, Debug)]
pub struct Setup {
    /// The dataset's name (its folder).
    pub dataset: String,
    /// The training split's path.
    pub train: String,
    /// Its [`Corpus::checksum`].
    pub train_checksum: String,
    /// The evaluation split's path (test, or dev where there is no test split).
    pub eval: String,
    /// Its [`Corpus::checksum`].
    pub eval_checksum: String,
    /// The profile that made the silver labels, as named on the command line.
    pub profile: String,
    /// The language model.
    pub model: String,
    /// The residual layer the tagger reads.
    pub layer: usize,
    /// The tagger's settings (the seed varies per run, not here).
    pub tagger: TaggerOptions,
}

impl Setup {
    /// Writes the setup to `path`, or checks that the one there is the same: a folder holds
    /// the runs of one setup only.
    pub fn check(&self, path: &Path) -> Result<()> {
        if path.exists() {
            let text = std::fs::read_to_string(path).map_err(|source| Error::File {
                action: "reading",
                path: path.to_path_buf(),
                source,
            })?;
            let found: Setup = serde_json::from_str(&text).map_err(|source| Error::NotSetup {
                path: path.to_path_buf(),
                source,
            })?;
            if found != *self {
                return Err(Error::OtherSetup {
                    path: path.to_path_buf(),
                    found: format!("{found:?}"),
                    this: format!("{self:?}"),
                });
            }
            return Ok(());
        }
        std::fs::write(path, serde_json::to_string_pretty(self)?).map_err(|source| Error::File {
            action: "writing",
            path: path.to_path_buf(),
            source,
        })
    }
}

/// The training labels of a run: gold, silver, or gold with one kind of noise.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Labels {
    /// Gold train as annotated.
    Gold,
    /// SAE-NER's labels of the train text.
    Silver,
    /// Gold with entities dropped.
    Fn,
    /// Gold with entity boundaries moved.
    Boundary,
    /// Gold with spurious entities added.
    Fp,
    /// Gold with entity types swapped.
    Type,
}

/// The noise kinds and the perturbation that makes each.
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

/// One trained and scored tagger: a line of the run log.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Run {
    /// What it was trained on.
    pub labels: Labels,
    /// The noise rate asked for (0 for gold and silver).
    pub rate: f64,
    /// The seed of the perturbation and of the tagger's sentence order.
    pub seed: u64,
    /// The training labels' noise against gold train.
    pub noise: NoiseRates,
    /// Strict micro precision on the evaluation split.
    pub precision: f64,
    /// Strict micro recall.
    pub recall: f64,
    /// Strict micro F1.
    pub f1: f64,
    /// Strict F1 per entity type.
    pub per_type_f1: BTreeMap<String, f64>,
    /// Wall-clock seconds to train and score it.
    pub train_seconds: f64,
}

impl Run {
    fn key(&self) -> (Labels, u64, u64) {
        (self.labels, self.rate.to_bits(), self.seed)
    }
}

/// The finished runs of the log at `path` (none if it does not exist). A torn last line (an
/// interrupted write) is cut off the file, after `on_cut(its line number)`.
pub fn read_runs(path: &Path, on_cut: impl FnOnce(usize)) -> Result<Vec<Run>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path).map_err(|source| Error::File {
        action: "reading",
        path: path.to_path_buf(),
        source,
    })?;
    let mut runs = Vec::new();
    let mut kept = 0;
    let mut on_cut = Some(on_cut);
    for (i, line) in text.split_inclusive('\n').enumerate() {
        match serde_json::from_str::<Run>(line) {
            Ok(run) if line.ends_with('\n') => {
                runs.push(run);
                kept += line.len();
            }
            _ if kept + line.len() == text.len() => {
                if let Some(on_cut) = on_cut.take() {
                    on_cut(i + 1);
                }
                let file = std::fs::OpenOptions::new().write(true).open(path)?;
                file.set_len(kept as u64)?;
            }
            Err(e) => {
                return Err(Error::NotRun {
                    path: path.to_path_buf(),
                    line: i + 1,
                    message: e.to_string(),
                })
            }
            Ok(_) => unreachable!("only the last line can lack its newline"),
        }
    }
    Ok(runs)
}

/// The run log, open for appending: each run is written and synced as it finishes.
pub struct RunLog {
    file: std::fs::File,
}

impl RunLog {
    /// Opens (or creates) the log at `path` for appending.
    pub fn append(path: &Path) -> Result<RunLog> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| Error::File {
                action: "opening",
                path: path.to_path_buf(),
                source,
            })?;
        Ok(RunLog { file })
    }

    /// Appends `run` as one JSON line and syncs it to disk.
    pub fn write(&mut self, run: &Run) -> Result<()> {
        writeln!(self.file, "{}", serde_json::to_string(run)?)?;
        self.file.sync_data()?;
        Ok(())
    }
}

/// A study's data and fixed settings; each run trains one tagger.
pub struct NoiseStudy<'a> {
    /// The stack the features were read with (the taggers' origin).
    pub stack: &'a Stack,
    /// Gold train and its features.
    pub train: &'a Featured,
    /// The gold evaluation split and its features.
    pub eval: &'a Featured,
    /// SAE-NER's labels of the train text.
    pub silver: &'a Corpus,
    /// Entity types, in the profile's order.
    pub labels: &'a [String],
    /// Noise rates; rate 0 is the gold run.
    pub rates: &'a [f64],
    /// The tagger's settings (its seed is each run's).
    pub tagger: TaggerOptions,
}

impl NoiseStudy<'_> {
    /// The runs still to do for seeds `0..seeds`, in order, skipping those in `done`: per
    /// seed gold, silver, then each noise kind at each rate above 0 (type errors only with
    /// two types or more, as they need a second type to swap in).
    pub fn plan(&self, seeds: u64, done: &[Run]) -> Vec<(Labels, f64, u64)> {
        let mut todo: Vec<(Labels, f64, u64)> = Vec::new();
        for seed in 0..seeds {
            let mut plan = vec![(Labels::Gold, 0.0), (Labels::Silver, 0.0)];
            // Type errors need a second type to swap in.
            let kinds = NOISE_KINDS
                .iter()
                .filter(|(k, _)| *k != Labels::Type || self.labels.len() > 1);
            for &(kind, _) in kinds {
                plan.extend(self.rates.iter().filter(|&&r| r > 0.0).map(|&r| (kind, r)));
            }
            for (kind, rate) in plan {
                let key = (kind, rate.to_bits(), seed);
                let planned = todo.iter().any(|&(k, r, s)| (k, r.to_bits(), s) == key);
                if !planned && !done.iter().any(|r| r.key() == key) {
                    todo.push((kind, rate, seed));
                }
            }
        }
        todo
    }

    /// Trains the tagger on `kind` labels at `rate` with `seed` and scores it.
    pub fn run(&self, kind: Labels, rate: f64, seed: u64) -> Result<Run> {
        let train = &self.train.corpus;
        let corpus = match kind {
            Labels::Gold => train.clone(),
            Labels::Silver => self.silver.clone(),
            _ => {
                let (_, perturb_kind) = NOISE_KINDS
                    .iter()
                    .find(|(k, _)| *k == kind)
                    .expect("a noise kind");
                perturb(train, *perturb_kind, rate, seed)?
            }
        };
        let noise = NoiseRates::measure(train, &corpus)?;
        let meta = TaggerMeta {
            format: 1,
            labels: self.labels.to_vec(),
            origin: self.stack.origin(&corpus),
            options: TaggerOptions {
                seed,
                ..self.tagger
            },
        };
        let started = std::time::Instant::now();
        let (_, report) = fit_and_score(&self.train.relabelled(corpus), self.eval, meta)?;
        let micro = report.strict.micro;
        Ok(Run {
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
        })
    }
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

/// The silver run's F1 and noise, and what the curves predict for it.
#[derive(Serialize)]
struct SilverSummary {
    f1: Cell,
    noise: NoiseRates,
    /// For each noise kind, the F1 drop from gold its curve predicts at the silver data's
    /// measured rate of that kind (linear interpolation; extrapolated past the last rate).
    predicted_drop: BTreeMap<String, f64>,
}

/// The study's result (`summary.json`): gold F1, each noise kind's curve, and the silver
/// run set against them.
#[derive(Serialize)]
pub struct Summary {
    gold: Option<Cell>,
    silver: Option<SilverSummary>,
    curves: Vec<Curve>,
}

impl Summary {
    /// The summary of `runs` at `rates` (mean and spread over seeds).
    pub fn new(runs: &[Run], rates: &[f64]) -> Summary {
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
    pub fn table(&self, dataset: &str) -> String {
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

impl Summary {
    /// Draws test F1 against noise rate as an SVG at `path`, one line per kind (mean with
    /// ± std bars), the silver run marked at its measured rate of each kind.
    pub fn chart(&self, path: &Path, dataset: &str) -> Result<()> {
        let draw = chart::failed(path);
        let cells = self.curves.iter().flat_map(|c| &c.cells);
        let silver_rates = self
            .silver
            .iter()
            .flat_map(|s| self.curves.iter().map(|c| rate_of(c.labels, &s.noise)));
        let max_rate = cells
            .clone()
            .map(|c| c.rate)
            .chain(silver_rates)
            .fold(0.5, f64::max);
        let lows = cells
            .clone()
            .map(|c| c.mean - c.std)
            .chain(self.silver.as_ref().map(|s| s.f1.mean));
        let low = lows.fold(100.0, f64::min);
        let high = cells.map(|c| c.mean + c.std).fold(0.0, f64::max);

        let root = chart::canvas(path)?;
        let caption = format!("{dataset}: tagger F1 against annotation noise in its training data");
        let mut chart = chart::builder(&root, &caption)
            .build_cartesian_2d(
                0f64..max_rate * 1.05,
                (low - 3.0).floor()..(high + 2.0).ceil(),
            )
            .map_err(&draw)?;
        chart
            .configure_mesh()
            .x_desc("noise rate (share of gold entities)")
            .y_desc("strict micro F1 (%, gold evaluation split)")
            .draw()
            .map_err(&draw)?;
        for (k, curve) in self.curves.iter().enumerate() {
            let points: Vec<(f64, f64, f64, f64)> = curve
                .cells
                .iter()
                .map(|c| (c.rate, c.mean - c.std, c.mean, c.mean + c.std))
                .collect();
            let color = chart::curve(&mut chart, k, name(curve.labels), &points, path)?;
            if let Some(s) = &self.silver {
                chart
                    .draw_series(std::iter::once(TriangleMarker::new(
                        (rate_of(curve.labels, &s.noise), s.f1.mean),
                        7,
                        color.filled(),
                    )))
                    .map_err(&draw)?;
            }
        }
        if self.silver.is_some() {
            chart
                .draw_series(std::iter::empty::<TriangleMarker<(f64, f64), i32>>())
                .map_err(&draw)?
                .label("silver, at its measured rate of each kind")
                .legend(|(x, y)| TriangleMarker::new((x + 10, y), 6, BLACK.filled()));
        }
        chart::finish(&mut chart, &root, SeriesLabelPosition::LowerLeft, path)
    }
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
