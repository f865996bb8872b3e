//! Label-free calibration: precise features from a lexicon matched in unlabelled text (or
//! from the names in a few annotated examples), with no annotated corpus.
//!
//! The lexicon's matches ([`crate::lexicon`]) are the only positives; every other token is
//! *unlabelled*, not negative, because a lexicon names only some of a type's entities. For
//! feature f and type t, counting gives `P(matched t | f fires)`, which under the usual
//! positive–unlabelled assumption (the matched entities are a random sample of the type's
//! entities, "selected completely at random") equals `c_t · P(t | f fires)`, where `c_t` is
//! the share of t's tokens the lexicon matches. saener corrects for it the way Elkan &
//! Noto (2008) estimate `c` from a classifier's maximum: `c_t` is the highest matched-rate
//! of any t-feature (with enough support), and each feature's precision is its matched-rate
//! divided by `c_t` (at most 1). Equivalently, features are ranked by lift over the type's
//! base rate and scaled so that the best one has precision 1.
//!
//! **Memorisation.** A feature that fires on a few exact strings of the lexicon ("Paris"
//! and nothing else) would look perfectly precise. Each name has a fold
//! ([`crate::lexicon::FOLDS`]); a feature's matched-rate is estimated from each fold's
//! matches alone (scaled by that fold's share of matched tokens), and the *lowest* estimate
//! counts. A feature that fires on the names of one fold only gets about 0; a type
//! detector fires on all of them. Rates are smoothed ([`crate::Smoothing`], Wilson lower bound by
//! default) before scaling, so rare features rank low.
//!
//! **Parameters without labels.** [`LabelFreeCounts::choose`] scores a grid with the
//! positive–unlabelled criterion of Lee & Liu (2003), `r² / P(predicted)`: `r` is the
//! recall of the names of one fold by a profile calibrated on the other folds' names, and
//! `P(predicted)` the share of all words predicted as entities. Under the random-sample
//! assumption it is proportional to precision × recall, so it needs no annotation.

use std::collections::HashMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::bayes::{sweep_points, NaiveBayes, NbCounts, NbGrid, NbPoint};
use crate::calibrate::FeatureCounts;
use crate::codes::EncodedCorpus;
use crate::corpus::Corpus;
use crate::decode::Decoder;
use crate::lexicon::{Matcher, FOLDS};
use crate::params::{CalibrationParams, CountedTokens, DecodeParams, NbParams, Row};
use crate::profile::{Origin, Profile};
use crate::tune::Grid;
use crate::{Error, Result};

/// How label-free counts become a profile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LabelFreeParams {
    /// τ, p_min (on the corrected precision), s_min and smoothing; `boundaries` must be
    /// false (a lexicon says nothing reliable about where unlabelled entities start).
    pub calibration: CalibrationParams,
    pub counted: CountedTokens,
    pub decoding: DecodeParams,
}

impl Default for LabelFreeParams {
    /// A-priori defaults, the same for every type and corpus (no labelled data chooses
    /// them): τ = 100, p_min = 0.3, s_min = 10, Wilson z = 1.96, noisy-or, last-token
    /// pooling, decision threshold 0.8, hysteresis 0.5.
    fn default() -> Self {
        LabelFreeParams {
            calibration: CalibrationParams {
                tau: 100.0,
                p_min: 0.3,
                s_min: 10,
                ..CalibrationParams::default()
            },
            counted: CountedTokens::All,
            decoding: DecodeParams {
                threshold: 0.8,
                extend: Some(0.5),
                ..DecodeParams::default()
            },
        }
    }
}

/// What label-free calibration found, per type (in profile label order).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelFreeReport {
    pub labels: Vec<String>,
    /// Matched tokens per type and fold.
    pub matched_tokens: Vec<[u64; FOLDS]>,
    /// Whether every fold had matches (else the memorisation check was skipped for the type).
    pub held_out: Vec<bool>,
    /// The estimated label frequency `c_t` (0 if no feature qualified).
    pub label_frequency: Vec<f64>,
    /// Rows kept.
    pub rows: Vec<usize>,
    /// Tokens counted.
    pub tokens: u64,
}

/// The internal label of a type's fold during counting.
fn fold_label(label: &str, fold: usize) -> String {
    format!("{label}#{fold}")
}

/// Calibrates a profile from the lexicon of `matcher` matched in `parts` (encoded corpora,
/// SAE `d_sae` wide). Every part's entities are *replaced* by the matches before counting,
/// so gold labels of a file read for its text are never used. `origin.data_checksum` is
/// replaced by a checksum of the text with its lexicon labels.
pub fn calibrate_from_lexicon(
    origin: Origin,
    parts: Vec<EncodedCorpus>,
    d_sae: usize,
    matcher: &Matcher,
    params: &LabelFreeParams,
) -> Result<(Profile, LabelFreeReport)> {
    LabelFreeCounts::new(
        parts,
        d_sae,
        matcher,
        vec![params.calibration.tau],
        params.counted,
    )?
    .profile(origin, params)
}

/// Text labelled by a lexicon, each match as its type's fold (`type#fold`): what both
/// label-free calibrations count, and what held-out names are scored on.
#[derive(Debug, Clone)]
struct FoldLabelled {
    labels: Vec<String>,
    /// Internal labels, type-major: type `t`'s fold `k` at `t * FOLDS + k`.
    fold_labels: Vec<String>,
    /// Internal label → (type index, fold).
    fold_of: HashMap<String, (usize, usize)>,
    /// The parts with lexicon matches (fold labels) as their only entities.
    parts: Vec<EncodedCorpus>,
    checksum: String,
}

impl FoldLabelled {
    /// Replaces the entities of `parts` by the matches of `matcher`.
    fn new(parts: Vec<EncodedCorpus>, matcher: &Matcher) -> FoldLabelled {
        let labels = matcher.labels().to_vec();
        let mut fold_of = HashMap::new();
        let mut fold_labels = Vec::new();
        for (t, label) in labels.iter().enumerate() {
            for k in 0..FOLDS {
                fold_of.insert(fold_label(label, k), (t, k));
                fold_labels.push(fold_label(label, k));
            }
        }
        let mut checksum = Sha256::new();
        let parts = parts
            .into_iter()
            .map(|mut part| {
                part.corpus = matcher.label_with(&part.corpus, fold_label);
                checksum.update(part.corpus.checksum());
                part
            })
            .collect();
        FoldLabelled {
            labels,
            fold_labels,
            fold_of,
            parts,
            checksum: format!("{:x}", checksum.finalize()),
        }
    }

    /// What held-out fold `fold`'s names and the predictions have in common (see [`Tally`]).
    fn tally(&self, labelled: &Corpus, predicted: &Corpus, fold: usize) -> Tally {
        let mut tally = Tally::default();
        for (gold, pred) in labelled.documents.iter().zip(&predicted.documents) {
            for (gs, ps) in gold.sentences.iter().zip(&pred.sentences) {
                let mut predicted_type: Vec<Option<&str>> = vec![None; ps.words.len()];
                for e in &ps.entities {
                    predicted_type[e.start..e.end].fill(Some(e.label.as_str()));
                }
                tally.words[2] += predicted_type.iter().filter(|t| t.is_some()).count() as u64;
                tally.words[3] += ps.words.len() as u64;
                for e in &gs.entities {
                    let (t, k) = self.fold_of[&e.label];
                    if k != fold {
                        continue;
                    }
                    let words = (e.end - e.start) as u64;
                    let found = predicted_type[e.start..e.end]
                        .iter()
                        .filter(|p| **p == Some(self.labels[t].as_str()))
                        .count() as u64;
                    tally.words[0] += found;
                    tally.words[1] += words;
                    let name: Vec<&str> = gs.words[e.start..e.end]
                        .iter()
                        .map(|w| w.text.as_str())
                        .collect();
                    let n = tally.names.entry((t, name.join(" "))).or_default();
                    n[0] += found;
                    n[1] += words;
                }
            }
        }
        tally
    }
}

/// What the label-free criterion counts: words of held-out names predicted with their
/// type, words of held-out names, words predicted in an entity, words; and per held-out
/// name (type, words joined by spaces), its words predicted with its type and its words.
#[derive(Debug, Clone, Default)]
struct Tally {
    words: [u64; 4],
    names: HashMap<(usize, String), [u64; 2]>,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        for (a, b) in self.words.iter_mut().zip(other.words) {
            *a += b;
        }
        for (name, [found, words]) in other.names {
            let n = self.names.entry(name).or_default();
            n[0] += found;
            n[1] += words;
        }
    }
}

/// How the label-free criterion measures the recall of held-out names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PuRecall {
    /// The share of all held-out names' words found: every occurrence counts, so the most
    /// frequent names (a lexicon's famous ones, the easiest) weigh the most.
    #[default]
    Words,
    /// The mean over distinct held-out names of the share of its words found: each name
    /// once, so rare names, more like the entities no lexicon lists, weigh as much as
    /// frequent ones. Proposed a priori as the fix for the word recall's optimism
    /// (RESULTS.md: the criterion "buys precision it does not need"), not chosen on any
    /// labelled data.
    Names,
}

/// The positive–unlabelled criterion of a [`Tally`]: (held-out word recall, held-out name
/// recall, predicted rate, `recall² / rate` with the recall that `recall` picks).
fn pu_score(tally: &Tally, recall: PuRecall) -> (f64, f64, f64, f64) {
    let words = &tally.words;
    let word_recall = words[0] as f64 / words[1].max(1) as f64;
    let name_recall = tally
        .names
        .values()
        .map(|[found, words]| *found as f64 / (*words).max(1) as f64)
        .sum::<f64>()
        / tally.names.len().max(1) as f64;
    let rate = words[2] as f64 / words[3].max(1) as f64;
    let r = match recall {
        PuRecall::Words => word_recall,
        PuRecall::Names => name_recall,
    };
    let score = if rate > 0.0 { r * r / rate } else { 0.0 };
    (word_recall, name_recall, rate, score)
}

/// The index of the highest score (the earliest on ties; 0 if there are none).
fn highest(scores: impl Iterator<Item = f64>) -> usize {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, score) in scores.enumerate() {
        if score > best.1 {
            best = (i, score);
        }
    }
    best.0
}

/// Text labelled by a lexicon (per fold) and counted: what label-free calibration and its
/// parameter choice ([`LabelFreeCounts::choose`]) both work from.
#[derive(Debug, Clone)]
pub struct LabelFreeCounts {
    text: FoldLabelled,
    counts: FeatureCounts,
}

/// One label-free grid point, scored without labels on the held-out folds' names.
#[derive(Debug, Clone, Serialize)]
pub struct PuTrial {
    pub calibration: CalibrationParams,
    pub decoding: DecodeParams,
    /// Rows kept, summed over the held-out-fold profiles.
    pub rows: usize,
    /// Share of the held-out names' words predicted with their type.
    pub held_out_recall: f64,
    /// Mean over distinct held-out names of the share of its words predicted with its type.
    pub held_out_name_recall: f64,
    /// Share of all words predicted as part of an entity.
    pub predicted_rate: f64,
    /// `recall² / predicted_rate` (Lee & Liu 2003), the recall as [`PuRecall`] chose,
    /// proportional to precision × recall when the matched names are a random sample of
    /// the type's entities.
    pub score: f64,
}

impl LabelFreeCounts {
    /// Labels `parts` with the matches of `matcher` (replacing their entities) and counts
    /// them at every threshold of `taus`.
    pub fn new(
        parts: Vec<EncodedCorpus>,
        d_sae: usize,
        matcher: &Matcher,
        taus: Vec<f32>,
        counted: CountedTokens,
    ) -> Result<LabelFreeCounts> {
        let text = FoldLabelled::new(parts, matcher);
        let mut counts =
            FeatureCounts::new(d_sae, text.fold_labels.clone(), taus.clone())?.counting(counted);
        for part in &text.parts {
            counts.merge(&FeatureCounts::from_corpus(
                part,
                d_sae,
                text.fold_labels.clone(),
                taus.clone(),
                counted,
                None,
            )?)?;
        }
        Ok(LabelFreeCounts { text, counts })
    }

    /// The profile under `params` (τ must be one of the counted thresholds), with all
    /// folds' names as positives and the memorisation check across them.
    pub fn profile(
        &self,
        origin: Origin,
        params: &LabelFreeParams,
    ) -> Result<(Profile, LabelFreeReport)> {
        let all: Vec<usize> = (0..FOLDS).collect();
        self.profile_from(origin, params, &all)
    }

    fn profile_from(
        &self,
        origin: Origin,
        params: &LabelFreeParams,
        folds: &[usize],
    ) -> Result<(Profile, LabelFreeReport)> {
        if params.counted != self.counts.counted() {
            return Err(Error::Argument {
                name: "counted tokens".into(),
                expected: format!("{:?}, as counted", self.counts.counted()),
                found: format!("{:?}", params.counted),
            });
        }
        let (rows, report) = self.rows(&params.calibration, folds)?;
        let group: Vec<usize> = (0..self.text.labels.len() * FOLDS)
            .map(|i| i / FOLDS)
            .collect();
        let by_type = self.counts.group_labels(self.text.labels.clone(), &group)?;
        let origin = Origin {
            data_checksum: self.text.checksum.clone(),
            ..origin
        };
        let profile = Profile::from_rows(
            origin,
            &by_type,
            params.calibration,
            params.decoding,
            rows,
            Vec::new(),
        )?;
        Ok((profile, report))
    }

    /// The rows under `calibration` with the names of `folds` as positives: each feature's
    /// matched-rate is the lowest over those folds, then divided by the type's highest.
    fn rows(
        &self,
        calibration: &CalibrationParams,
        folds: &[usize],
    ) -> Result<(Vec<Row>, LabelFreeReport)> {
        calibration.validate()?;
        if calibration.boundaries {
            return Err(Error::Argument {
                name: "boundaries".into(),
                expected: "false for label-free calibration".into(),
                found: "true".into(),
            });
        }
        let counts = &self.counts;
        let mut report = LabelFreeReport {
            labels: self.text.labels.clone(),
            matched_tokens: Vec::new(),
            held_out: Vec::new(),
            label_frequency: Vec::new(),
            rows: Vec::new(),
            tokens: counts.tokens(),
        };
        let mut rows = Vec::new();
        for (t, label) in self.text.labels.iter().enumerate() {
            let matched: [u64; FOLDS] =
                std::array::from_fn(|k| counts.label_tokens()[t * FOLDS + k]);
            let total: u64 = folds.iter().map(|&k| matched[k]).sum();
            let held_out = folds.len() > 1 && folds.iter().all(|&k| matched[k] > 0);
            // Per feature: (feature, support, hits, matched-rate before the c_t correction).
            let mut rated = Vec::new();
            for f in 0..counts.d_sae() {
                let (support, hits) = counts.cell(f, calibration.tau)?;
                let hits = &hits[t * FOLDS..(t + 1) * FOLDS];
                let hit_sum: u32 = folds.iter().map(|&k| hits[k]).sum();
                if support < calibration.s_min || hit_sum == 0 {
                    continue;
                }
                let rate = if held_out {
                    folds
                        .iter()
                        .map(|&k| {
                            let share = matched[k] as f64 / total as f64;
                            calibration.smoothing.precision(hits[k], support) / share
                        })
                        .fold(f64::INFINITY, f64::min)
                } else {
                    calibration.smoothing.precision(hit_sum, support)
                };
                rated.push((f as u32, support, hit_sum, rate));
            }
            let c = rated.iter().map(|r| r.3).fold(0.0, f64::max);
            let first = rows.len();
            if c > 0.0 {
                for (feature, support, hits, rate) in rated {
                    let precision = (rate / c).min(1.0);
                    if precision >= calibration.p_min {
                        rows.push(Row {
                            feature,
                            label: label.clone(),
                            precision,
                            support,
                            hits,
                        });
                    }
                }
            }
            rows[first..].sort_by(|a, b| {
                (b.precision.total_cmp(&a.precision)).then(a.feature.cmp(&b.feature))
            });
            report.matched_tokens.push(matched);
            report.held_out.push(held_out);
            report.label_frequency.push(c);
            report.rows.push(rows.len() - first);
        }
        Ok((rows, report))
    }

    /// Chooses parameters without labels: for every point of `grid` (its τs must have been
    /// counted; `counted` is fixed) and each fold, a profile calibrated on the *other*
    /// folds' names decodes the text, and the point is scored by the positive–unlabelled
    /// criterion of [`PuTrial::score`] summed over folds. Returns the trials in grid order
    /// and the index of the best (the earliest on ties).
    pub fn choose(
        &self,
        origin: &Origin,
        grid: &Grid,
        recall: PuRecall,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<(Vec<PuTrial>, usize)> {
        let points = grid.points();
        if points.is_empty() {
            return Err(Error::Argument {
                name: "parameter grid".into(),
                expected: "at least one value per parameter".into(),
                found: "an empty list".into(),
            });
        }
        let mut trials = Vec::with_capacity(points.len());
        for (i, &(calibration, decoding)) in points.iter().enumerate() {
            let params = LabelFreeParams {
                calibration,
                counted: self.counts.counted(),
                decoding,
            };
            let mut tally = Tally::default();
            let mut rows = 0;
            for k in 0..FOLDS {
                let others: Vec<usize> = (0..FOLDS).filter(|&j| j != k).collect();
                let (profile, _) = self.profile_from(origin.clone(), &params, &others)?;
                rows += profile.rows.len();
                let decoder = Decoder::new(&profile, decoding)?;
                for part in &self.text.parts {
                    let predicted = decoder.predict_corpus(part)?;
                    tally.add(self.text.tally(&part.corpus, &predicted, k));
                }
            }
            let (held_out_recall, held_out_name_recall, predicted_rate, score) =
                pu_score(&tally, recall);
            trials.push(PuTrial {
                calibration,
                decoding,
                rows,
                held_out_recall,
                held_out_name_recall,
                predicted_rate,
                score,
            });
            progress(i + 1, points.len());
        }
        let best = highest(trials.iter().map(|t| t.score));
        Ok((trials, best))
    }
}

/// Label-free calibration for the naive-Bayes decoder ([`crate::bayes`]). The lexicon's
/// matches are tagged `B-t`/`I-t` and every other word counts as O: naive Bayes needs counts
/// per tag, and the unmatched entities among the O words only dilute their type's features'
/// log-odds (the type bias, chosen below, makes up for it). Parameters are chosen with the
/// criterion of [`LabelFreeCounts::choose`]: for each fold, the counts with that fold's
/// names as O (regrouped, not recounted) decode the text, and the recall of the fold's names
/// and the rate of predicted words are summed over folds before scoring.
#[derive(Debug, Clone)]
pub struct LabelFreeNb {
    text: FoldLabelled,
    /// Counted with the fold labels.
    counts: NbCounts,
}

/// One label-free naive-Bayes grid point, scored without labels on the held-out folds'
/// names (see [`PuTrial`]).
#[derive(Debug, Clone, Serialize)]
pub struct PuNbTrial {
    pub tau: f32,
    /// Per offset, its weight.
    pub weights: Vec<(i32, f64)>,
    pub params: NbParams,
    pub held_out_recall: f64,
    pub held_out_name_recall: f64,
    pub predicted_rate: f64,
    pub score: f64,
}

impl LabelFreeNb {
    /// Labels `parts` with the matches of `matcher` (replacing their entities) and counts
    /// them at thresholds `taus` and word offsets `offsets` (which must include 0).
    pub fn new(
        parts: Vec<EncodedCorpus>,
        d_sae: usize,
        matcher: &Matcher,
        taus: Vec<f32>,
        offsets: Vec<i32>,
    ) -> Result<LabelFreeNb> {
        let text = FoldLabelled::new(parts, matcher);
        let mut counts: Option<NbCounts> = None;
        for part in &text.parts {
            let part_counts = NbCounts::from_corpus(
                part,
                d_sae,
                text.fold_labels.clone(),
                taus.clone(),
                offsets.clone(),
                None,
            )?;
            counts = Some(match counts {
                None => part_counts,
                Some(total) => total.merged(&part_counts)?,
            });
        }
        let counts = counts.ok_or_else(|| Error::Argument {
            name: "text".into(),
            expected: "at least one corpus".into(),
            found: "none".into(),
        })?;
        Ok(LabelFreeNb { text, counts })
    }

    /// The counts with the names of `folds` tagged as their type and the others' as O.
    fn counts_from(&self, folds: &[usize]) -> Result<NbCounts> {
        let mut class_of = vec![0];
        for t in 0..self.text.labels.len() {
            for k in 0..FOLDS {
                let (b, i) = if folds.contains(&k) {
                    (1 + 2 * t, 2 + 2 * t)
                } else {
                    (0, 0)
                };
                class_of.extend([b, i]);
            }
        }
        self.counts.regrouped(self.text.labels.clone(), &class_of)
    }

    /// Chooses parameters without labels (see the type's docs). Each bias of the grid is
    /// tried for all types at once: the labelled sweep's per-type refinement follows the
    /// best point of each fold, and the folds' scores are only comparable point by point.
    /// Returns the trials in grid order and the index of the best (the earliest on ties).
    pub fn choose(
        &self,
        grid: &NbGrid,
        recall: PuRecall,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<(Vec<PuNbTrial>, usize)> {
        let steps = FOLDS * self.text.parts.len();
        let mut summed: Vec<NbPoint<Tally>> = Vec::new();
        for k in 0..FOLDS {
            let others: Vec<usize> = (0..FOLDS).filter(|&j| j != k).collect();
            let counts = self.counts_from(&others)?;
            for (i, part) in self.text.parts.iter().enumerate() {
                let tally = |predicted: &Corpus| Ok(self.text.tally(&part.corpus, predicted, k));
                let points = sweep_points(&counts, part, grid, tally, None, |_| {})?;
                if summed.is_empty() {
                    summed = points;
                } else {
                    // Without refinement every sweep yields the grid's points in order.
                    for (total, point) in summed.iter_mut().zip(points) {
                        total.measured.add(point.measured);
                    }
                }
                progress(k * self.text.parts.len() + i + 1, steps);
            }
        }
        let trials: Vec<PuNbTrial> = summed
            .into_iter()
            .map(|point| {
                let (held_out_recall, held_out_name_recall, predicted_rate, score) =
                    pu_score(&point.measured, recall);
                PuNbTrial {
                    tau: point.tau,
                    weights: point.weights,
                    params: point.params,
                    held_out_recall,
                    held_out_name_recall,
                    predicted_rate,
                    score,
                }
            })
            .collect();
        let best = highest(trials.iter().map(|t| t.score));
        Ok((trials, best))
    }

    /// The model with every fold's names as positives (τ and the offsets must have been
    /// counted).
    pub fn model(&self, tau: f32, weights: &[(i32, f64)], params: &NbParams) -> Result<NaiveBayes> {
        let all: Vec<usize> = (0..FOLDS).collect();
        self.counts_from(&all)?.model(tau, weights, params)
    }

    /// The types, in the lexicon's order.
    pub fn labels(&self) -> &[String] {
        &self.text.labels
    }

    /// A checksum of the text with its lexicon labels, for the profile's `data_checksum`.
    pub fn checksum(&self) -> &str {
        &self.text.checksum
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::DocumentCodes;
    use crate::corpus::{parse_text, TextMode};
    use crate::decode::{Activations, Decoder};
    use crate::lexicon::{Lexicon, MatchOptions};
    use crate::test_support::{code, one_token_per_word};
    use crate::Smoothing;

    const CITIES: [&str; 8] = [
        "Paris", "Oslo", "Lima", "Rome", "Cairo", "Delhi", "Quito", "Dakar",
    ];

    /// One line per city: "we flew to <city> today", one token per word. Feature 1 fires on
    /// every city (a type detector), feature 2 only on "Paris" (memorisation), feature 3 on
    /// every word; feature 4 on "today" (never a city).
    fn encoded(cities: &[&str]) -> EncodedCorpus {
        let text: String = cities
            .iter()
            .map(|c| format!("we flew to {c} today\n"))
            .collect();
        let corpus = parse_text(text.as_bytes(), "t.txt", TextMode::Lines)
            .unwrap()
            .corpus;
        let codes = corpus
            .documents
            .iter()
            .map(|d| {
                let offsets = one_token_per_word(d);
                let mut codes = vec![code(&[])];
                for w in &d.sentences[0].words {
                    let mut c = vec![];
                    if CITIES.contains(&w.text.as_str()) {
                        c.push((1, 5.0));
                    }
                    if w.text == "Paris" {
                        c.push((2, 5.0));
                    }
                    c.push((3, 5.0));
                    if w.text == "today" {
                        c.push((4, 5.0));
                    }
                    codes.push(code(&c));
                }
                DocumentCodes { offsets, codes }
            })
            .collect();
        EncodedCorpus::new(corpus, codes).unwrap()
    }

    fn origin() -> Origin {
        Origin {
            model: "m".into(),
            layer: 9,
            sae_id: "s".into(),
            data_checksum: String::new(),
            echo: false,
            precision: saener_lm::Precision::F32,
        }
    }

    fn params() -> LabelFreeParams {
        LabelFreeParams {
            calibration: CalibrationParams {
                tau: 1.0,
                p_min: 0.3,
                s_min: 1,
                smoothing: Smoothing::Beta {
                    alpha: 0.0,
                    beta: 0.0,
                },
                boundaries: false,
            },
            counted: CountedTokens::All,
            decoding: DecodeParams::default(),
        }
    }

    /// The lexicon names half the cities; every fold must have names.
    fn lexicon() -> Lexicon {
        let names = &CITIES[..4];
        let folds: Vec<usize> = names.iter().map(|n| crate::lexicon::fold_of(n)).collect();
        assert!((0..FOLDS).all(|k| folds.contains(&k)), "{folds:?}");
        Lexicon::parse(&format!("city = {names:?}"), "l.toml").unwrap()
    }

    #[test]
    fn generalising_features_are_kept_and_memorised_ones_dropped() {
        let mut cities = CITIES.to_vec();
        cities.extend(["Paris"; 6]);
        let matcher = lexicon().matcher(MatchOptions::default());
        let (profile, report) =
            calibrate_from_lexicon(origin(), vec![encoded(&cities)], 8, &matcher, &params())
                .unwrap();
        let kept: Vec<(u32, f64)> = profile
            .rows
            .iter()
            .map(|r| (r.feature, r.precision))
            .collect();
        // Feature 1: matched-rate 10/14 overall; the correction scales it to 1. Feature 2
        // (only "Paris") fires on one fold's names only, so its held-out rate is 0.
        assert_eq!(kept[0], (1, 1.0));
        assert!(kept.iter().all(|&(f, _)| f != 2 && f != 4), "{kept:?}");
        assert_eq!(report.held_out, [true]);
        assert!(report.label_frequency[0] > 0.0 && report.label_frequency[0] < 1.0);
        assert_eq!(profile.labels, ["city"]);
        assert_eq!(
            profile.label_tokens["city"],
            report.matched_tokens[0].iter().sum::<u64>()
        );
        assert_finds_an_unnamed_city(&profile);
    }

    /// Decoding with `profile` finds a city the lexicon never named.
    fn assert_finds_an_unnamed_city(profile: &Profile) {
        let test = encoded(&["Quito"]);
        let decoder = Decoder::new(profile, profile.decoding).unwrap();
        let spans = decoder
            .decode(
                &test.corpus.documents[0],
                &test.alignments[0],
                Activations::Sparse(&test.codes[0]),
            )
            .unwrap();
        assert_eq!((spans.len(), spans[0].start, spans[0].end), (1, 11, 16));
    }

    #[test]
    fn gold_labels_of_the_text_are_ignored() {
        // The same text read as "gold" that calls every word a city changes nothing.
        let matcher = lexicon().matcher(MatchOptions::default());
        let plain = encoded(&CITIES);
        let mut gold = plain.clone();
        for document in &mut gold.corpus.documents {
            for sentence in &mut document.sentences {
                let n = sentence.words.len();
                sentence.entities = vec![crate::Entity {
                    start: 0,
                    end: n,
                    label: "city".into(),
                }];
            }
        }
        let run = |e| calibrate_from_lexicon(origin(), vec![e], 8, &matcher, &params()).unwrap();
        assert_eq!(run(plain), run(gold));
    }

    #[test]
    fn the_pu_criterion_prefers_the_type_detector_to_a_feature_that_fires_everywhere() {
        let matcher = lexicon().matcher(MatchOptions::default());
        let counts = LabelFreeCounts::new(
            vec![encoded(&CITIES)],
            8,
            &matcher,
            vec![1.0],
            CountedTokens::All,
        )
        .unwrap();
        let p = params();
        let grid = Grid {
            taus: vec![1.0],
            p_mins: vec![0.1, 0.3],
            s_mins: vec![1],
            smoothings: vec![p.calibration.smoothing],
            boundaries: vec![false],
            combines: vec![Default::default()],
            poolings: vec![Default::default()],
            thresholds: vec![0.15],
            extends: vec![None],
        };
        let (trials, best) = counts
            .choose(&origin(), &grid, PuRecall::Words, |_, _| {})
            .unwrap();
        assert_eq!(trials.len(), 2);
        // p_min 0.1 keeps feature 3 (every word): everything is predicted.
        assert_eq!(trials[0].predicted_rate, 1.0);
        assert_eq!(trials[1].held_out_recall, 1.0);
        assert!((trials[1].predicted_rate - 0.2).abs() < 1e-12);
        assert_eq!(best, 1);
    }

    #[test]
    fn naive_bayes_without_labels_finds_unlisted_cities() {
        let matcher = lexicon().matcher(MatchOptions::default());
        let nb = LabelFreeNb::new(vec![encoded(&CITIES)], 8, &matcher, vec![1.0], vec![0]).unwrap();
        let grid = NbGrid {
            taus: vec![1.0],
            alphas: vec![0.1],
            s_mins: vec![1],
            weights: Vec::new(),
            scales: vec![1.0],
            absences: vec![1.0],
            biases: vec![-50.0, 0.0, 2.0, 50.0],
            viterbi: vec![true],
        };
        let (trials, best) = nb.choose(&grid, PuRecall::Words, |_, _| {}).unwrap();
        let found: Vec<(f64, f64)> = trials
            .iter()
            .map(|t| (t.held_out_recall, t.predicted_rate))
            .collect();
        // Bias −50: nothing is predicted; 0: a few cities; 2: every city (one word in five),
        // including the held-out fold's, which were counted as O; +50: every word.
        assert_eq!(found, [(0.0, 0.0), (0.25, 0.025), (1.0, 0.2), (1.0, 1.0)]);
        assert_eq!(best, 2);
        let t = &trials[best];
        let model = nb.model(t.tau, &t.weights, &t.params).unwrap();
        let labels = nb.labels().to_vec();
        let profile = Profile::from_naive_bayes(origin(), labels, 8, model, t.tau, 1).unwrap();
        assert_eq!(profile.label_tokens["city"], 4);
        assert_finds_an_unnamed_city(&profile);
    }

    #[test]
    fn boundaries_are_refused() {
        let mut p = params();
        p.calibration.boundaries = true;
        let matcher = lexicon().matcher(MatchOptions::default());
        assert!(calibrate_from_lexicon(origin(), vec![encoded(&CITIES)], 8, &matcher, &p).is_err());
    }
}
