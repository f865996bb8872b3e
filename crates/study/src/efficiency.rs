//! Data efficiency (`saener efficiency`): how SAE-NER and the two probes (on SAE codes, on
//! the dense residual) score against the number of calibration sentences. For each size,
//! sentences are drawn from the calibration data (each kept in its document's context);
//! SAE-NER recounts the profile (its voting rows, or its naive-Bayes counts) on them with
//! the profile's own parameters, the probes are trained on their words, and all are scored
//! on the test data (strict micro F1).

use std::path::Path;

use plotters::prelude::*;
use saener_ner::{evaluate_corpus, Decoder, EncodedCorpus, FeatureCounts, NbCounts, Profile};
use serde::Serialize;

use crate::chart;
use crate::features::WordFeatures;
use crate::probe::{word_classes, Probe, ProbeInput, ProbeMeta, ProbeOptions};
use crate::Result;

/// The methods compared, in the order each draw runs them.
pub const METHODS: [&str; 3] = ["SAE-NER", "probe on SAE codes", "probe on dense residual"];

/// One run: a method calibrated or trained on `sentences` sentences (draw `draw`).
#[derive(Serialize)]
pub struct RunScore {
    /// One of [`METHODS`].
    pub method: &'static str,
    /// Calibration sentences drawn.
    pub sentences: usize,
    /// Which draw of that size (its seed).
    pub draw: u64,
    /// Strict micro precision on the test data.
    pub precision: f64,
    /// Strict micro recall.
    pub recall: f64,
    /// Strict micro F1.
    pub f1: f64,
}

/// The data of a data-efficiency run, encoded once and shared by every draw.
pub struct Efficiency<'a> {
    /// The profile whose parameters and labels are used.
    pub profile: &'a Profile,
    /// The calibration data to draw sentences from, with its codes.
    pub train: &'a EncodedCorpus,
    /// The data scored on, with its codes.
    pub test: &'a EncodedCorpus,
    /// Each calibration word's dense residual.
    pub dense_train: &'a WordFeatures,
    /// Each test word's dense residual.
    pub dense_test: &'a WordFeatures,
    /// The SAE's width.
    pub d_sae: usize,
    /// L2 penalty of both probes.
    pub probe_l2: f64,
}

impl Efficiency<'_> {
    /// Runs every method on `draws` random draws of each size in `sizes` (sentences; `None`
    /// or a size at least the whole data: all of it, drawn once), in order; `report` sees
    /// each score as it is made.
    pub fn run(
        &self,
        sizes: &[Option<usize>],
        draws: u64,
        mut report: impl FnMut(&RunScore),
    ) -> Result<Vec<RunScore>> {
        let (train, test, profile) = (self.train, self.test, self.profile);
        let sparse_train = WordFeatures::sparse(train, self.d_sae);
        let sparse_test = WordFeatures::sparse(test, self.d_sae);
        let classes = word_classes(&train.corpus, &profile.labels);
        let total_sentences = train.corpus.sentences().count();

        let mut scores = Vec::new();
        for size in sizes {
            let n = size.map_or(total_sentences, |n| n.min(total_sentences));
            let draws = if n == total_sentences { 1 } else { draws };
            for draw in 0..draws {
                let masks = train.corpus.sample_sentences(n, draw);
                let sampled = recount(profile, train, self.d_sae, &masks)?;
                let predicted = Decoder::new(&sampled, sampled.decoding)?.predict_corpus(test)?;
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
                    (ProbeInput::Dense, self.dense_train, self.dense_test),
                ] {
                    let meta = ProbeMeta {
                        format: 1,
                        input,
                        labels: profile.labels.clone(),
                        origin: profile.origin.clone(),
                        options: ProbeOptions {
                            l2: self.probe_l2,
                            epochs,
                            seed: draw,
                            ..ProbeOptions::default()
                        },
                    };
                    let probe = Probe::train(&train_f.select(&words), &sampled_classes, meta)?;
                    let predicted = probe.predict(&test.corpus, test_f)?;
                    results.push(evaluate_corpus(&test.corpus, &predicted)?);
                }
                for (method, result) in METHODS.iter().zip(results) {
                    let m = result.strict.micro;
                    let score = RunScore {
                        method,
                        sentences: n,
                        draw,
                        precision: m.precision,
                        recall: m.recall,
                        f1: m.f1,
                    };
                    report(&score);
                    scores.push(score);
                }
            }
        }
        Ok(scores)
    }
}

/// Mean, min and max F1 of one method at one size, over its draws.
pub struct Summary {
    /// One of [`METHODS`].
    pub method: &'static str,
    /// Calibration sentences.
    pub sentences: usize,
    /// Mean F1 (0–1).
    pub mean: f64,
    /// Lowest F1.
    pub min: f64,
    /// Highest F1.
    pub max: f64,
    /// Draws summarised.
    pub draws: usize,
}

/// Mean, min and max F1 per (method, size), sizes ascending.
pub fn summarise(scores: &[RunScore]) -> Vec<Summary> {
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

/// Draws F1 (mean, with min–max bars) against calibration sentences on a log axis, as an
/// SVG at `path`.
pub fn chart(summary: &[Summary], path: &Path, title: &str) -> Result<()> {
    let max_n = summary.iter().map(|s| s.sentences).max().unwrap_or(10) as f64;
    let root = chart::canvas(path)?;
    let draw = chart::failed(path);
    let mut chart = chart::builder(&root, title)
        .build_cartesian_2d((5f64..max_n * 1.5).log_scale(), 0f64..100f64)
        .map_err(&draw)?;
    chart
        .configure_mesh()
        .x_desc("calibration sentences")
        .y_desc("strict micro F1 (test)")
        .draw()
        .map_err(&draw)?;
    for (k, method) in METHODS.iter().enumerate() {
        let points: Vec<(f64, f64, f64, f64)> = summary
            .iter()
            .filter(|s| s.method == *method)
            .map(|s| {
                let x = s.sentences as f64;
                (x, 100.0 * s.min, 100.0 * s.mean, 100.0 * s.max)
            })
            .collect();
        chart::curve(&mut chart, k, method, &points, path)?;
    }
    chart::finish(&mut chart, &root, SeriesLabelPosition::LowerRight, path)
}
