//! Count-based naive-Bayes decoding (issue 11): every feature that fires on a word or on
//! its neighbours adds its log-likelihood ratio to each tag, so evidence spread over many
//! weak features adds up, and the tags of a sentence are decoded jointly.
//!
//! - **Tags.** Words are tagged IOB2: class 0 is O, then `B-t`, `I-t` for each type `t` in
//!   the profile's label order, so boundaries are learnt like types.
//! - **Features of a word.** The features firing (activation `> τ`) on any of its tokens,
//!   with their highest activation; the last token has read the whole word, the first
//!   where it begins.
//! - **Counts.** For each offset `o` (−1: the word before, +1: the word after, in the same
//!   sentence) and tag `c`: `N_oc`, the calibration words of tag `c` that have a neighbour
//!   at `o`, and `n_ofc`, those on whose neighbour feature `f` fired. Features fired on by
//!   fewer than `s_min` neighbour words are dropped. Right neighbours matter because the
//!   model is causal: only a later token has read what follows a word.
//! - **Scores.** Bernoulli naive Bayes with additive smoothing, `P(f|c,o) = (n_ofc + α) /
//!   (N_oc + 2α)`: a word's log-likelihood under `c` is `Σ_o w_o (Σ_f log(1 − P(f|c,o)) +
//!   Σ_{f fires} log-odds(f|c,o))`. The first sum is precomputed per tag, so a word costs
//!   O(features that fire), not O(features). The evidence of the features that do *not*
//!   fire (the `log(1 − P)` terms) is scaled by `absence` (1: Bernoulli naive Bayes, 0: only
//!   firing features count), since thousands of correlated silent features can swamp the
//!   few that fire. The tag score is that sum times `scale`, plus a bias per type.
//! - **Decoding.** Greedy (each word's best tag given the tag prior; an `I-t` that does not
//!   continue a `t` entity begins one) or Viterbi with tag-bigram log-probabilities counted
//!   on the calibration data (add-one smoothed). Transitions into `I-t` from anything but
//!   `B-t`/`I-t` are impossible, so every path is valid IOB2.
//! - **Evidence.** Per span, the features whose summed contribution to the span's tags,
//!   against O, is largest (their log-odds, scaled and weighted as decoding used them).
//!
//! Every number comes from counts on the calibration data; `α`, `s_min`, `τ`, the offset
//! weights, `scale`, the biases and the decoding mode are scalars chosen on dev.

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::align::Alignment;
use crate::calibrate::count_documents;
use crate::codes::EncodedCorpus;
use crate::corpus::{Corpus, Document, Entity};
use crate::eval::{evaluate_corpus, Prf};
use crate::params::{NbParams, Row};
use crate::{argument, Error, Result};

const NONE: u32 = u32::MAX;

/// The tag classes for `labels`: O, then `B-t`, `I-t` per type.
fn tag_classes(labels: &[String]) -> Vec<String> {
    let mut classes = vec!["O".to_string()];
    for l in labels {
        classes.push(format!("B-{l}"));
        classes.push(format!("I-{l}"));
    }
    classes
}

/// Which type a tag class belongs to, and whether it begins an entity.
fn type_of(class: usize) -> Option<(usize, bool)> {
    (class > 0).then(|| ((class - 1) / 2, class % 2 == 1))
}

/// Whether tag `to` may follow `from` (`None`: sentence start) in IOB2.
fn allowed(from: Option<usize>, to: usize) -> bool {
    match type_of(to) {
        Some((t, false)) => from.and_then(type_of).is_some_and(|(u, _)| u == t),
        _ => true,
    }
}

/// A feature's counts in an [`OffsetTable`]: per tag class, the words whose neighbour it
/// fired on. Written as one string, `"feature: n_O n_B-t n_I-t …"`, so that a profile of
/// thousands of features stays small and readable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureRow {
    pub feature: u32,
    pub counts: Vec<u32>,
}

impl Serialize for FeatureRow {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let counts: Vec<String> = self.counts.iter().map(u32::to_string).collect();
        s.serialize_str(&format!("{}: {}", self.feature, counts.join(" ")))
    }
}

impl<'de> Deserialize<'de> for FeatureRow {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let bad =
            || serde::de::Error::custom(format!("expected \"feature: counts…\", found {text:?}"));
        let (feature, counts) = text.split_once(':').ok_or_else(bad)?;
        Ok(FeatureRow {
            feature: feature.trim().parse().map_err(|_| bad())?,
            counts: counts
                .split_whitespace()
                .map(str::parse)
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| bad())?,
        })
    }
}

/// The counts of one offset (0: the word itself, −1: the word before, +1: the word after).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OffsetTable {
    pub offset: i32,
    /// Scale of this offset's log-likelihood (chosen on dev).
    pub weight: f64,
    /// Calibration words per tag class that have a neighbour at this offset.
    pub words: Vec<u64>,
    /// The kept features, ascending.
    pub features: Vec<FeatureRow>,
}

/// The naive-Bayes section of a profile; its presence selects this decoder. See the
/// [module docs](self).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NaiveBayes {
    /// Tag classes: O, then `B-t`, `I-t` for each of the profile's labels.
    pub classes: Vec<String>,
    /// Additive smoothing of `P(f|c)`.
    pub alpha: f64,
    /// Scale of the summed log-likelihoods against the tag prior and transitions.
    pub scale: f64,
    /// Weight of the evidence of features that do not fire (1: Bernoulli naive Bayes).
    #[serde(default = "one")]
    pub absence: f64,
    /// Per type: added to its `B-` and `I-` scores (absent: 0).
    #[serde(default)]
    pub bias: BTreeMap<String, f64>,
    /// Joint decoding with counted transitions, else each word alone.
    pub viterbi: bool,
    /// Tag bigrams counted on the calibration data: row 0 from the sentence start, row
    /// `1 + i` from class `i`; one column per class.
    pub transitions: Vec<Vec<u64>>,
    pub offsets: Vec<OffsetTable>,
}

fn one() -> f64 {
    1.0
}

impl NaiveBayes {
    /// The offset weights and scalars this model was built with, for recounting it on other
    /// data with [`NbCounts::model`] (`s_min` is the profile's; `labels` its label order).
    pub fn recipe(&self, labels: &[String], s_min: u32) -> (Vec<(i32, f64)>, NbParams) {
        let weights = self.offsets.iter().map(|o| (o.offset, o.weight)).collect();
        let params = NbParams {
            alpha: self.alpha,
            s_min,
            scale: self.scale,
            absence: self.absence,
            bias: labels
                .iter()
                .map(|l| self.bias.get(l).copied().unwrap_or(0.0))
                .collect(),
            viterbi: self.viterbi,
        };
        (weights, params)
    }

    /// The distinct features of every offset, ascending.
    pub fn features(&self) -> Vec<u32> {
        let mut features: Vec<u32> = self
            .offsets
            .iter()
            .flat_map(|o| o.features.iter().map(|r| r.feature))
            .collect();
        features.sort_unstable();
        features.dedup();
        features
    }

    /// What `feature` says about each type on the word it fires on (offset 0), as a
    /// profile row: `hits` of its `support` words were in an entity of that type, and
    /// `precision` is their share (unsmoothed). Empty if offset 0 does not keep it.
    pub fn type_rows(&self, feature: u32, labels: &[String]) -> Vec<Row> {
        let own = self.offsets.iter().find(|o| o.offset == 0);
        let Some(row) = own.and_then(|o| o.features.iter().find(|r| r.feature == feature)) else {
            return Vec::new();
        };
        labels
            .iter()
            .enumerate()
            .map(|(t, label)| {
                let (hits, support) = type_share(&row.counts, t);
                Row {
                    feature,
                    label: label.clone(),
                    precision: f64::from(hits) / f64::from(support.max(1)),
                    support,
                    hits,
                }
            })
            .collect()
    }

    /// Checks what the JSON types cannot; `field` prefixes the field names in errors, as
    /// `(field, expected, found)`.
    pub(crate) fn check(
        &self,
        labels: &[String],
        d_sae: usize,
    ) -> std::result::Result<(), (String, String, String)> {
        let k = 1 + 2 * labels.len();
        let fail = |field: String, expected: String, found: String| Err((field, expected, found));
        if self.classes != tag_classes(labels) {
            return fail(
                "naive_bayes.classes".into(),
                tag_classes(labels).join(","),
                self.classes.join(","),
            );
        }
        for (name, value) in [("alpha", self.alpha), ("scale", self.scale)] {
            if !(value.is_finite() && value > 0.0) {
                return fail(
                    format!("naive_bayes.{name}"),
                    "a number > 0".into(),
                    value.to_string(),
                );
            }
        }
        if !(self.absence.is_finite() && self.absence >= 0.0) {
            return fail(
                "naive_bayes.absence".into(),
                "a number >= 0".into(),
                self.absence.to_string(),
            );
        }
        for (label, bias) in &self.bias {
            if !labels.contains(label) || !bias.is_finite() {
                return fail(
                    format!("naive_bayes.bias.{label}"),
                    "a finite number for one of labels".into(),
                    bias.to_string(),
                );
            }
        }
        if self.transitions.len() != k + 1 || self.transitions.iter().any(|r| r.len() != k) {
            return fail(
                "naive_bayes.transitions".into(),
                format!("{} rows of {k} counts", k + 1),
                format!("{} rows", self.transitions.len()),
            );
        }
        if self.offsets.is_empty() {
            return fail(
                "naive_bayes.offsets".into(),
                "at least one".into(),
                "none".into(),
            );
        }
        for (i, table) in self.offsets.iter().enumerate() {
            let at = |field: &str| format!("naive_bayes.offsets[{i}].{field}");
            if self.offsets[..i].iter().any(|o| o.offset == table.offset) {
                return fail(
                    at("offset"),
                    "distinct offsets".into(),
                    table.offset.to_string(),
                );
            }
            if !(table.weight.is_finite() && table.weight >= 0.0) {
                return fail(
                    at("weight"),
                    "a number >= 0".into(),
                    table.weight.to_string(),
                );
            }
            if table.words.len() != k {
                return fail(
                    at("words"),
                    format!("{k} counts"),
                    table.words.len().to_string(),
                );
            }
            let mut previous = None;
            for (j, row) in table.features.iter().enumerate() {
                let at = |field: &str| format!("naive_bayes.offsets[{i}].features[{j}]{field}");
                if row.feature as usize >= d_sae || previous.is_some_and(|p| p >= row.feature) {
                    return fail(
                        at(""),
                        format!("ascending features below d_sae = {d_sae}"),
                        row.feature.to_string(),
                    );
                }
                previous = Some(row.feature);
                let within = row.counts.len() == k
                    && row
                        .counts
                        .iter()
                        .zip(&table.words)
                        .all(|(&n, &w)| u64::from(n) <= w);
                if !within {
                    return fail(
                        at(".counts"),
                        format!("{k} counts, each at most the class's words"),
                        format!("{:?}", row.counts),
                    );
                }
            }
        }
        Ok(())
    }
}

/// Of the words a feature fired on (`counts`, per tag class): those inside an entity of
/// type `t`, and all.
fn type_share(counts: &[u32], t: usize) -> (u32, u32) {
    (counts[1 + 2 * t] + counts[2 + 2 * t], counts.iter().sum())
}

/// Per word of a document (numbered across it): the features firing on any of its tokens
/// and their highest activation, ascending by feature. `fired(t, f)` calls `f(feature,
/// activation)` for each feature firing on token `t`.
pub(crate) fn word_features(
    alignment: &Alignment,
    mut fired: impl FnMut(usize, &mut dyn FnMut(u32, f32)),
) -> Vec<Vec<(u32, f32)>> {
    (0..alignment.n_words())
        .map(|w| {
            let mut features = Vec::new();
            for t in alignment.tokens_of(w) {
                fired(t, &mut |f, v| features.push((f, v)));
            }
            features.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
            features.dedup_by_key(|p| p.0);
            features
        })
        .collect()
}

/// Each word's tag class from a document's gold entities (labels outside `labels` are O).
fn gold_classes(document: &Document, labels: &[String]) -> Vec<Vec<usize>> {
    document
        .sentences
        .iter()
        .map(|sentence| {
            let mut classes = vec![0; sentence.words.len()];
            for e in &sentence.entities {
                if let Some(t) = labels.iter().position(|l| *l == e.label) {
                    classes[e.start] = 1 + 2 * t;
                    classes[e.start + 1..e.end].fill(2 + 2 * t);
                }
            }
            classes
        })
        .collect()
}

/// Naive-Bayes counts over a labelled corpus, at several firing thresholds and offsets.
#[derive(Debug, Clone, PartialEq)]
pub struct NbCounts {
    d_sae: usize,
    labels: Vec<String>,
    /// Ascending, distinct.
    taus: Vec<f32>,
    offsets: Vec<i32>,
    /// `[offset][class]`.
    words: Vec<u64>,
    /// `[tau][offset][feature][class]`.
    counts: Vec<u32>,
    /// `[1 + from][to]`, row 0 the sentence start.
    transitions: Vec<u64>,
}

impl NbCounts {
    /// Counts every document of `encoded` (codes of an SAE `d_sae` wide) for `labels`, at
    /// thresholds `taus` and word offsets `offsets`. With `words` (per document, per word)
    /// only the words marked true are counted; their neighbours' features still count.
    pub fn from_corpus(
        encoded: &EncodedCorpus,
        d_sae: usize,
        labels: Vec<String>,
        mut taus: Vec<f32>,
        mut offsets: Vec<i32>,
        words: Option<&[Vec<bool>]>,
    ) -> Result<NbCounts> {
        if taus.is_empty() || taus.iter().any(|t| !t.is_finite() || *t < 0.0) {
            return Err(argument(
                "tau",
                "finite thresholds >= 0",
                format!("{taus:?}"),
            ));
        }
        taus.sort_by(f32::total_cmp);
        taus.dedup();
        offsets.sort_unstable();
        offsets.dedup();
        if !offsets.contains(&0) {
            return Err(argument(
                "offsets",
                "a list including 0",
                format!("{offsets:?}"),
            ));
        }
        let k = 1 + 2 * labels.len();
        let empty = NbCounts {
            counts: vec![0; taus.len() * offsets.len() * d_sae * k],
            words: vec![0; offsets.len() * k],
            transitions: vec![0; (k + 1) * k],
            d_sae,
            labels,
            taus,
            offsets,
        };
        count_documents(
            encoded,
            empty,
            |counts, i| {
                counts.add_document(
                    &encoded.corpus.documents[i],
                    &encoded.alignments[i],
                    &encoded.codes[i],
                    |w| words.is_none_or(|m| m[i][w]),
                )
            },
            |total, part| {
                total.merge(part);
                Ok(())
            },
        )
    }

    /// Counts the words of `document` for which `keep(word index in the document)` holds.
    fn add_document(
        &mut self,
        document: &Document,
        alignment: &Alignment,
        codes: &[saener_sae::SparseCode],
        keep: impl Fn(usize) -> bool,
    ) -> Result<()> {
        alignment.check(document, codes.len())?;
        let d_sae = self.d_sae;
        if let Some(f) = codes
            .iter()
            .flat_map(|c| &c.ids)
            .find(|&&f| f as usize >= d_sae)
        {
            return Err(argument(
                &format!("codes of document {}", document.id),
                &format!("features below d_sae = {d_sae}"),
                f,
            ));
        }
        let lowest = self.taus[0];
        let features = word_features(alignment, |t, f| {
            for (&id, &v) in codes[t].ids.iter().zip(&codes[t].values) {
                if v > lowest {
                    f(id, v);
                }
            }
        });
        let k = 1 + 2 * self.labels.len();
        let n_offsets = self.offsets.len();
        let mut first = 0;
        for (sentence, classes) in document
            .sentences
            .iter()
            .zip(gold_classes(document, &self.labels))
        {
            let n = sentence.words.len();
            let mut from = 0;
            for (w, &c) in classes.iter().enumerate() {
                let counted = keep(first + w);
                if counted {
                    self.transitions[from * k + c] += 1;
                }
                from = 1 + c;
                if !counted {
                    continue;
                }
                for (o, &offset) in self.offsets.iter().enumerate() {
                    let Some(neighbour) = w.checked_add_signed(offset as isize).filter(|&x| x < n)
                    else {
                        continue;
                    };
                    self.words[o * k + c] += 1;
                    for &(f, v) in &features[first + neighbour] {
                        let fired = self.taus.partition_point(|&tau| v > tau);
                        for tau in 0..fired {
                            let cell = ((tau * n_offsets + o) * d_sae + f as usize) * k + c;
                            self.counts[cell] += 1;
                        }
                    }
                }
            }
            first += n;
        }

        Ok(())
    }

    fn merge(&mut self, other: &NbCounts) {
        for (a, b) in [
            (&mut self.words, &other.words),
            (&mut self.transitions, &other.transitions),
        ] {
            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        }
        self.counts
            .iter_mut()
            .zip(&other.counts)
            .for_each(|(x, y)| *x += y);
    }

    /// Adds `other`'s counts (same labels, thresholds and offsets): counting two corpora
    /// apart and merging equals counting them together.
    pub fn merged(mut self, other: &NbCounts) -> Result<NbCounts> {
        let same = (self.d_sae, &self.labels, &self.taus, &self.offsets)
            == (other.d_sae, &other.labels, &other.taus, &other.offsets);
        if !same {
            return Err(argument("naive-Bayes counts", "the same layout", "another"));
        }
        self.merge(other);
        Ok(self)
    }

    /// The same counts for `labels`: tag class `c` of these counts becomes class
    /// `class_of[c]` of the new ones (O is 0, then `B-t`, `I-t` per label), classes mapped
    /// to the same one adding up. Equal to counting the corpus with its entities relabelled
    /// that way; label-free calibration uses it to turn a fold's names into O.
    pub(crate) fn regrouped(&self, labels: Vec<String>, class_of: &[usize]) -> Result<NbCounts> {
        let k = 1 + 2 * self.labels.len();
        let new_k = 1 + 2 * labels.len();
        if class_of.len() != k || class_of.iter().any(|&c| c >= new_k) || class_of[0] != 0 {
            return Err(argument(
                "class map",
                &format!("{k} classes below {new_k}, O to O"),
                format!("{class_of:?}"),
            ));
        }
        let counts = regroup_classes(&self.counts, k, class_of, new_k);
        let words = regroup_classes(&self.words, k, class_of, new_k);
        // Row 0 is the sentence start; row 1 + c follows class c.
        let mut transitions = vec![0; (new_k + 1) * new_k];
        for (row, from) in self.transitions.chunks(k).enumerate() {
            let new_row = if row == 0 { 0 } else { 1 + class_of[row - 1] };
            for (c, &n) in from.iter().enumerate() {
                transitions[new_row * new_k + class_of[c]] += n;
            }
        }
        Ok(NbCounts {
            d_sae: self.d_sae,
            labels,
            taus: self.taus.clone(),
            offsets: self.offsets.clone(),
            words,
            counts,
            transitions,
        })
    }

    /// The model at threshold `tau` (one of the counted), offsets `weights` (offset →
    /// weight; each must have been counted, weight 0 leaves the offset out), keeping the
    /// features that fired on at least `s_min` neighbour words.
    pub fn model(&self, tau: f32, weights: &[(i32, f64)], params: &NbParams) -> Result<NaiveBayes> {
        let ti =
            self.taus.iter().position(|&t| t == tau).ok_or_else(|| {
                argument("tau", &format!("one of the counted {:?}", self.taus), tau)
            })?;
        let k = 1 + 2 * self.labels.len();
        let mut offsets = Vec::new();
        for &(offset, weight) in weights.iter().filter(|(_, w)| *w > 0.0) {
            let o = self
                .offsets
                .iter()
                .position(|&x| x == offset)
                .ok_or_else(|| {
                    argument(
                        "offset",
                        &format!("one of the counted {:?}", self.offsets),
                        offset,
                    )
                })?;
            let base = (ti * self.offsets.len() + o) * self.d_sae * k;
            let features = (0..self.d_sae)
                .filter_map(|f| {
                    let counts = &self.counts[base + f * k..base + (f + 1) * k];
                    (counts.iter().sum::<u32>() >= params.s_min).then(|| FeatureRow {
                        feature: f as u32,
                        counts: counts.to_vec(),
                    })
                })
                .collect();
            offsets.push(OffsetTable {
                offset,
                weight,
                words: self.words[o * k..(o + 1) * k].to_vec(),
                features,
            });
        }
        let model = NaiveBayes {
            classes: tag_classes(&self.labels),
            alpha: params.alpha,
            scale: params.scale,
            absence: params.absence,
            bias: self
                .labels
                .iter()
                .cloned()
                .zip(params.bias.iter().copied())
                .collect(),
            viterbi: params.viterbi,
            transitions: self.transitions.chunks(k).map(<[u64]>::to_vec).collect(),
            offsets,
        };
        model
            .check(&self.labels, self.d_sae)
            .map_err(|(name, expected, found)| Error::Argument {
                name,
                expected,
                found,
            })?;
        Ok(model)
    }
}

/// `values` as rows of `k` classes, each row's class `c` added into class `class_of[c]` of a
/// row of `new_k`.
fn regroup_classes<T: Copy + Default + std::ops::AddAssign>(
    values: &[T],
    k: usize,
    class_of: &[usize],
    new_k: usize,
) -> Vec<T> {
    let mut regrouped = vec![T::default(); values.len() / k * new_k];
    for (from, to) in values.chunks(k).zip(regrouped.chunks_mut(new_k)) {
        for (c, &n) in from.iter().enumerate() {
            to[class_of[c]] += n;
        }
    }
    regrouped
}

/// A [`NaiveBayes`] model prepared for scoring: dense log-odds per kept feature.
#[derive(Debug, Clone)]
pub(crate) struct Scorer {
    k: usize,
    /// Per SAE feature: its row in `log_p` and `precision`, or `NONE`.
    row_of: Vec<u32>,
    /// Per offset: its word offset and weight.
    offsets: Vec<(i32, f64)>,
    /// `[offset][row][side][class]`: `log P(f|c,o)` (side 0) and `log(1 − P(f|c,o))` (side
    /// 1), 0 for a feature the offset did not keep.
    log_p: Vec<f64>,
    /// `[offset][class]`: `Σ_f log(1 − P(f|c,o))` over the offset's kept features.
    base: Vec<f64>,
    /// Per row and type: the share of its offset-0 words inside an entity of that type.
    precision: Vec<f64>,
    /// `[class]`: the log prior of each class (offset-0 word counts).
    prior: Vec<f64>,
    /// `[1 + from][to]`: add-one smoothed log-probabilities, −∞ where IOB2 forbids.
    transitions: Vec<f64>,
    scale: f64,
    absence: f64,
    /// `[class]`: the bias of its type, 0 for O.
    bias: Vec<f64>,
    viterbi: bool,
}

impl Scorer {
    pub(crate) fn new(model: &NaiveBayes, labels: &[String], d_sae: usize) -> Scorer {
        let k = model.classes.len();
        let features = model.features();
        let mut row_of = vec![NONE; d_sae];
        for (r, &f) in features.iter().enumerate() {
            row_of[f as usize] = r as u32;
        }
        let n_rows = features.len();
        let mut log_p = vec![0.0; model.offsets.len() * n_rows * 2 * k];
        let mut base = vec![0.0; model.offsets.len() * k];
        let mut precision = vec![0.0; n_rows * labels.len()];
        let alpha = model.alpha;
        for (o, table) in model.offsets.iter().enumerate() {
            for row in &table.features {
                let r = row_of[row.feature as usize] as usize;
                for c in 0..k {
                    let p =
                        (f64::from(row.counts[c]) + alpha) / (table.words[c] as f64 + 2.0 * alpha);
                    let cell = (o * n_rows + r) * 2 * k + c;
                    log_p[cell] = p.ln();
                    log_p[cell + k] = (1.0 - p).ln();
                    base[o * k + c] += (1.0 - p).ln();
                }
                if table.offset == 0 {
                    for t in 0..labels.len() {
                        let (hits, support) = type_share(&row.counts, t);
                        precision[r * labels.len() + t] =
                            f64::from(hits) / f64::from(support.max(1));
                    }
                }
            }
        }
        let words = model
            .offsets
            .iter()
            .find(|o| o.offset == 0)
            .map_or_else(|| vec![1; k], |o| o.words.clone());
        let total: u64 = words.iter().sum();
        let prior = words
            .iter()
            .map(|&n| ((n as f64 + 1.0) / (total as f64 + k as f64)).ln())
            .collect();
        let mut transitions = vec![f64::NEG_INFINITY; (k + 1) * k];
        for (from, counts) in model.transitions.iter().enumerate() {
            let from_class = from.checked_sub(1);
            let valid: Vec<usize> = (0..k).filter(|&to| allowed(from_class, to)).collect();
            let total: u64 = valid.iter().map(|&to| counts[to]).sum();
            for &to in &valid {
                transitions[from * k + to] =
                    ((counts[to] as f64 + 1.0) / (total as f64 + valid.len() as f64)).ln();
            }
        }
        let bias = (0..k)
            .map(|c| {
                type_of(c).map_or(0.0, |(t, _)| {
                    model.bias.get(&labels[t]).copied().unwrap_or(0.0)
                })
            })
            .collect();
        Scorer {
            k,
            row_of,
            offsets: model.offsets.iter().map(|o| (o.offset, o.weight)).collect(),
            log_p,
            base,
            precision,
            prior,
            transitions,
            scale: model.scale,
            absence: model.absence,
            bias,
            viterbi: model.viterbi,
        }
    }

    /// The unweighted log-likelihoods per offset and class of the words of one sentence,
    /// `[word][offset][side][class]`, from each word's firing features: side 0 sums `log P`
    /// of the features that fire, side 1 `log(1 − P)` of those that do not. A neighbour
    /// outside the sentence contributes nothing.
    fn offset_sums(&self, words: &[Vec<(u32, f32)>]) -> Vec<f64> {
        let (k, n_offsets) = (self.k, self.offsets.len());
        let n_rows = self.n_rows();
        let mut sums = vec![0.0; words.len() * n_offsets * 2 * k];
        for w in 0..words.len() {
            for (o, &(offset, _)) in self.offsets.iter().enumerate() {
                let Some(neighbour) = w
                    .checked_add_signed(offset as isize)
                    .filter(|&x| x < words.len())
                else {
                    continue;
                };
                let out = &mut sums[(w * n_offsets + o) * 2 * k..][..2 * k];
                out[k..].copy_from_slice(&self.base[o * k..(o + 1) * k]);
                for &(f, _) in &words[neighbour] {
                    let r = self.row_of[f as usize];
                    if r != NONE {
                        let cell = &self.log_p[(o * n_rows + r as usize) * 2 * k..][..2 * k];
                        for c in 0..k {
                            out[c] += cell[c];
                            out[k + c] -= cell[k + c];
                        }
                    }
                }
            }
        }
        sums
    }

    fn n_rows(&self) -> usize {
        self.log_p.len() / (self.offsets.len() * 2 * self.k).max(1)
    }

    /// Tag scores `[word][class]` from [`Scorer::offset_sums`] under `weights` (per offset),
    /// `absence`, `scale` and the biases.
    fn scores(
        &self,
        sums: &[f64],
        weights: &[f64],
        absence: f64,
        scale: f64,
        bias: &[f64],
    ) -> Vec<f64> {
        let (k, n_offsets) = (self.k, weights.len());
        sums.chunks(n_offsets * 2 * k)
            .flat_map(|word| {
                (0..k).map(move |c| {
                    let ll: f64 = (0..n_offsets)
                        .map(|o| {
                            weights[o] * (word[o * 2 * k + c] + absence * word[(o * 2 + 1) * k + c])
                        })
                        .sum();
                    scale * ll + bias[c]
                })
            })
            .collect()
    }

    /// The best valid IOB2 tag sequence for tag `scores` `[word][class]`.
    fn tags(&self, scores: &[f64], viterbi: bool) -> Vec<usize> {
        let k = self.k;
        let n = scores.len() / k;
        if !viterbi {
            let mut tags = Vec::with_capacity(n);
            for w in 0..n {
                let best = (0..k)
                    .map(|c| (c, scores[w * k + c] + self.prior[c]))
                    .fold((0, f64::NEG_INFINITY), |b, x| if x.1 > b.1 { x } else { b })
                    .0;
                // An I-t that does not continue a t entity begins one.
                let from = tags.last().copied();
                tags.push(if allowed(from, best) { best } else { best - 1 });
            }
            return tags;
        }
        let mut best = vec![f64::NEG_INFINITY; n * k];
        let mut back = vec![0usize; n * k];
        for w in 0..n {
            for to in 0..k {
                let emission = scores[w * k + to];
                if w == 0 {
                    best[to] = self.transitions[to] + emission;
                    continue;
                }
                for from in 0..k {
                    let s =
                        best[(w - 1) * k + from] + self.transitions[(1 + from) * k + to] + emission;
                    if s > best[w * k + to] {
                        best[w * k + to] = s;
                        back[w * k + to] = from;
                    }
                }
            }
        }
        let mut tags = vec![0; n];
        if n > 0 {
            tags[n - 1] = (0..k).fold(0, |b, c| {
                if best[(n - 1) * k + c] > best[(n - 1) * k + b] {
                    c
                } else {
                    b
                }
            });
            for w in (1..n).rev() {
                tags[w - 1] = back[w * k + tags[w]];
            }
        }
        tags
    }

    fn weights(&self) -> Vec<f64> {
        self.offsets.iter().map(|o| o.1).collect()
    }

    /// One sentence's tags and, per word, the posterior of its tag among all classes (its
    /// score's softmax with the prior), from its words' firing features.
    pub(crate) fn tag_sentence(&self, words: &[Vec<(u32, f32)>]) -> (Vec<usize>, Vec<f64>) {
        let sums = self.offset_sums(words);
        let scores = self.scores(&sums, &self.weights(), self.absence, self.scale, &self.bias);
        let tags = self.tags(&scores, self.viterbi);
        let k = self.k;
        let posteriors = tags
            .iter()
            .enumerate()
            .map(|(w, &tag)| {
                let s: Vec<f64> = (0..k).map(|c| scores[w * k + c] + self.prior[c]).collect();
                let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = s.iter().map(|x| (x - max).exp()).sum();
                (s[tag] - max).exp() / z
            })
            .collect();
        (tags, posteriors)
    }

    /// Evidence for the entity on words `span` of a sentence with `tags`: per feature, its
    /// summed weighted contribution to each word's tag against O, and its highest activation
    /// where it contributed; the positive ones, largest first, at most `max`. Returns
    /// `(feature, activation, precision for type, contribution)`.
    pub(crate) fn evidence(
        &self,
        words: &[Vec<(u32, f32)>],
        tags: &[usize],
        span: std::ops::Range<usize>,
        max: usize,
    ) -> Vec<(u32, f32, f64, f64)> {
        let k = self.k;
        let n_rows = self.n_rows();
        let n_labels = (k - 1) / 2;
        let label = type_of(tags[span.start]).expect("an entity tag").0;
        let mut total: BTreeMap<u32, (f32, f64)> = BTreeMap::new();
        for w in span {
            for (o, &(offset, weight)) in self.offsets.iter().enumerate() {
                let Some(neighbour) = w
                    .checked_add_signed(offset as isize)
                    .filter(|&x| x < words.len())
                else {
                    continue;
                };
                for &(f, v) in &words[neighbour] {
                    let r = self.row_of[f as usize];
                    if r == NONE {
                        continue;
                    }
                    let cell = &self.log_p[(o * n_rows + r as usize) * 2 * k..][..2 * k];
                    let odds = |c: usize| cell[c] - self.absence * cell[k + c];
                    let gain = self.scale * weight * (odds(tags[w]) - odds(0));
                    let entry = total.entry(f).or_insert((v, 0.0));
                    entry.0 = entry.0.max(v);
                    entry.1 += gain;
                }
            }
        }
        let mut evidence: Vec<(u32, f32, f64, f64)> = total
            .into_iter()
            .filter(|(_, (_, gain))| *gain > 0.0)
            .map(|(f, (v, gain))| {
                let r = self.row_of[f as usize] as usize;
                (f, v, self.precision[r * n_labels + label], gain)
            })
            .collect();
        evidence.sort_by(|a, b| b.3.total_cmp(&a.3).then(a.0.cmp(&b.0)));
        evidence.truncate(max);
        evidence
    }
}

/// Maximal entities in a valid IOB2 tag sequence: `(start, end, type)`, words `start..end`.
pub(crate) fn tag_spans(tags: &[usize]) -> Vec<(usize, usize, usize)> {
    let mut spans: Vec<(usize, usize, usize)> = Vec::new();
    for (w, &tag) in tags.iter().enumerate() {
        match type_of(tag) {
            Some((t, true)) => spans.push((w, w + 1, t)),
            Some((_, false)) => spans.last_mut().expect("valid IOB2").1 = w + 1,
            None => {}
        }
    }
    spans
}

/// The values to try when choosing a naive-Bayes model on dev; every combination is one
/// trial, and afterwards each type's bias is refined over `biases` in turn, the others
/// fixed (one pass, label order).
#[derive(Debug, Clone)]
pub struct NbGrid {
    /// Firing thresholds; each must have been counted.
    pub taus: Vec<f32>,
    pub alphas: Vec<f64>,
    pub s_mins: Vec<u32>,
    /// Per counted offset other than 0 (whose weight is 1), the weights to try.
    pub weights: Vec<(i32, Vec<f64>)>,
    pub scales: Vec<f64>,
    pub absences: Vec<f64>,
    /// Biases tried for all types at once, then for each type alone.
    pub biases: Vec<f64>,
    pub viterbi: Vec<bool>,
}

impl NbGrid {
    /// The grid's first point for `n_labels` types, as `(τ, offset weights, scalars)`: what
    /// calibration uses without a dev set to choose on. The word itself weighs 1, each
    /// neighbour its first weight.
    pub fn first(&self, n_labels: usize) -> (f32, Vec<(i32, f64)>, NbParams) {
        let weights = std::iter::once((0, 1.0))
            .chain(self.weights.iter().map(|(o, w)| (*o, w[0])))
            .collect();
        let params = NbParams {
            alpha: self.alphas[0],
            s_min: self.s_mins[0],
            scale: self.scales[0],
            absence: self.absences[0],
            bias: vec![self.biases[0]; n_labels],
            viterbi: self.viterbi[0],
        };
        (self.taus[0], weights, params)
    }
}

/// One naive-Bayes grid point's dev result (strict, micro).
#[derive(Debug, Clone, Serialize)]
pub struct NbTrial {
    pub tau: f32,
    pub params: NbParams,
    /// Per offset, its weight.
    pub weights: Vec<(i32, f64)>,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

/// Runs every point of `grid` with `counts` on `dev`; returns the trials in order and the
/// index of the best (highest F1; the earliest on ties).
pub fn nb_sweep(
    counts: &NbCounts,
    dev: &EncodedCorpus,
    grid: &NbGrid,
    progress: impl FnMut(usize),
) -> Result<(Vec<NbTrial>, usize)> {
    let f1 = |m: &Prf| m.f1;
    let points = sweep_points(
        counts,
        dev,
        grid,
        |predicted| Ok(evaluate_corpus(&dev.corpus, predicted)?.strict.micro),
        Some(&f1),
        progress,
    )?;
    let trials: Vec<NbTrial> = points
        .into_iter()
        .map(|p| NbTrial {
            tau: p.tau,
            params: p.params,
            weights: p.weights,
            precision: p.measured.precision,
            recall: p.measured.recall,
            f1: p.measured.f1,
        })
        .collect();
    let best = (0..trials.len())
        .reduce(|a, b| if trials[b].f1 > trials[a].f1 { b } else { a })
        .expect("sweep_points returns at least one point");
    Ok((trials, best))
}

/// A naive-Bayes grid point and what a sweep's `measure` made of its predictions.
#[derive(Debug, Clone)]
pub(crate) struct NbPoint<M> {
    pub tau: f32,
    /// Per offset, its weight.
    pub weights: Vec<(i32, f64)>,
    pub params: NbParams,
    pub measured: M,
}

/// Decodes `corpus` with every point of `grid` (models from `counts`) and lets `measure`
/// judge each prediction; the points come back in grid order. With `refine`, each
/// (τ, α, s_min) block is followed by a refinement of each type's bias in turn, the others
/// fixed at the block's best point by `refine`'s score (so the points depend on the scores);
/// without it the points are exactly the grid's, in the same order for any `measure`.
pub(crate) fn sweep_points<M: Clone + Send>(
    counts: &NbCounts,
    corpus: &EncodedCorpus,
    grid: &NbGrid,
    measure: impl Fn(&Corpus) -> Result<M> + Sync,
    refine: Option<&(dyn Fn(&M) -> f64 + Sync)>,
    mut progress: impl FnMut(usize),
) -> Result<Vec<NbPoint<M>>> {
    let labels = counts.labels.clone();
    let all_weights: Vec<(i32, f64)> = std::iter::once((0, 1.0))
        .chain(grid.weights.iter().map(|(o, _)| (*o, 1.0)))
        .collect();
    let mut weight_points: Vec<Vec<f64>> = vec![vec![1.0]];
    for (_, values) in &grid.weights {
        weight_points = weight_points
            .iter()
            .flat_map(|p| values.iter().map(move |&v| [p.as_slice(), &[v]].concat()))
            .collect();
    }
    let mut points = Vec::new();
    for &tau in &grid.taus {
        // Word features at this τ, once per document.
        let words: Vec<Vec<Vec<(u32, f32)>>> = (0..corpus.corpus.documents.len())
            .into_par_iter()
            .map(|i| {
                let codes = &corpus.codes[i];
                word_features(&corpus.alignments[i], |t, f| {
                    for (&id, &v) in codes[t].ids.iter().zip(&codes[t].values) {
                        if v > tau {
                            f(id, v);
                        }
                    }
                })
            })
            .collect();
        for &alpha in &grid.alphas {
            for &s_min in &grid.s_mins {
                let base = NbParams {
                    alpha,
                    s_min,
                    scale: 1.0,
                    absence: 1.0,
                    bias: vec![0.0; labels.len()],
                    viterbi: false,
                };
                let model = counts.model(tau, &all_weights, &base)?;
                let scorer = Scorer::new(&model, &labels, counts.d_sae);
                let sums = sentence_sums(&scorer, corpus, &words);
                let labels = &labels;
                let try_point = |weights: &[f64], params: NbParams| -> Result<NbPoint<M>> {
                    let bias: Vec<f64> = (0..scorer.k)
                        .map(|c| type_of(c).map_or(0.0, |(t, _)| params.bias[t]))
                        .collect();
                    let predicted = predict(corpus, labels, &sums, |sums| {
                        let scores =
                            scorer.scores(sums, weights, params.absence, params.scale, &bias);
                        scorer.tags(&scores, params.viterbi)
                    });
                    Ok(NbPoint {
                        tau,
                        weights: all_weights
                            .iter()
                            .zip(weights)
                            .map(|(a, &w)| (a.0, w))
                            .collect(),
                        params,
                        measured: measure(&predicted)?,
                    })
                };
                let mut block = Vec::new();
                for weights in &weight_points {
                    for &scale in &grid.scales {
                        for &absence in &grid.absences {
                            for &bias in &grid.biases {
                                for &viterbi in &grid.viterbi {
                                    let params = NbParams {
                                        scale,
                                        absence,
                                        bias: vec![bias; labels.len()],
                                        viterbi,
                                        ..base.clone()
                                    };
                                    block.push((weights.clone(), params));
                                }
                            }
                        }
                    }
                }
                let found: Vec<NbPoint<M>> = block
                    .into_par_iter()
                    .map(|(w, p)| try_point(&w, p))
                    .collect::<Result<_>>()?;
                let Some(score) = refine else {
                    points.extend(found);
                    progress(points.len());
                    continue;
                };
                let mut best = best_by(&found, score).clone();
                points.extend(found);
                progress(points.len());
                // Each type's bias alone, the others fixed at the best so far.
                for t in 0..labels.len() {
                    let weights: Vec<f64> = best.weights.iter().map(|w| w.1).collect();
                    let found: Vec<NbPoint<M>> = grid
                        .biases
                        .par_iter()
                        .map(|&b| {
                            let mut params = best.params.clone();
                            params.bias[t] = b;
                            try_point(&weights, params)
                        })
                        .collect::<Result<_>>()?;
                    let challenger = best_by(&found, score);
                    if score(&challenger.measured) > score(&best.measured) {
                        best = challenger.clone();
                    }
                    points.extend(found);
                    progress(points.len());
                }
            }
        }
    }
    if points.is_empty() {
        return Err(argument(
            "naive-Bayes grid",
            "at least one value per parameter",
            "an empty list",
        ));
    }
    Ok(points)
}

/// The point with the highest `score` (the earliest on ties).
fn best_by<'a, M>(points: &'a [NbPoint<M>], score: &dyn Fn(&M) -> f64) -> &'a NbPoint<M> {
    points
        .iter()
        .reduce(|a, b| {
            if score(&b.measured) > score(&a.measured) {
                b
            } else {
                a
            }
        })
        .expect("a non-empty grid")
}

/// Per dev document, per sentence: [`Scorer::offset_sums`] of its words.
fn sentence_sums(
    scorer: &Scorer,
    dev: &EncodedCorpus,
    words: &[Vec<Vec<(u32, f32)>>],
) -> Vec<Vec<Vec<f64>>> {
    dev.corpus
        .documents
        .par_iter()
        .zip(words)
        .map(|(document, words)| {
            let mut first = 0;
            document
                .sentences
                .iter()
                .map(|s| {
                    let n = s.words.len();
                    first += n;
                    scorer.offset_sums(&words[first - n..first])
                })
                .collect()
        })
        .collect()
}

/// The dev corpus with the entities that `tag(sums)` gives each sentence.
fn predict(
    dev: &EncodedCorpus,
    labels: &[String],
    sums: &[Vec<Vec<f64>>],
    tag: impl Fn(&[f64]) -> Vec<usize> + Sync,
) -> Corpus {
    let documents = dev
        .corpus
        .documents
        .iter()
        .zip(sums)
        .map(|(document, sums)| {
            let mut predicted = document.clone();
            for (sentence, sums) in predicted.sentences.iter_mut().zip(sums) {
                sentence.entities = tag_spans(&tag(sums))
                    .into_iter()
                    .map(|(start, end, t)| Entity {
                        start,
                        end,
                        label: labels[t].clone(),
                    })
                    .collect();
            }
            predicted
        })
        .collect();
    Corpus {
        documents,
        annotated: true,
        separator: dev.corpus.separator,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::NbParams;
    use crate::test_support::{nb_counts, nb_labels, nb_params, nb_toy};

    fn row(table: &OffsetTable, feature: u32) -> Vec<u32> {
        let row = table.features.iter().find(|r| r.feature == feature);
        row.unwrap().counts.clone()
    }

    #[test]
    fn counts_words_neighbours_and_transitions() {
        let model = nb_counts()
            .model(0.0, &[(0, 1.0), (1, 0.5)], &nb_params())
            .unwrap();
        assert_eq!(model.classes, ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]);
        let (own, next) = (&model.offsets[0], &model.offsets[1]);
        assert_eq!((own.offset, next.offset, next.weight), (0, 1, 0.5));
        assert_eq!(own.words, [1, 1, 1, 1, 0]);
        // BOS's feature 9 never counts.
        let features: Vec<u32> = own.features.iter().map(|r| r.feature).collect();
        assert_eq!(features, [1, 2, 3]);
        assert_eq!(row(own, 1), [0, 1, 1, 0, 0]);
        assert_eq!(row(own, 2), [1, 0, 1, 0, 0]);
        // Paris has no word after it in its sentence.
        assert_eq!(next.words, [1, 1, 1, 0, 0]);
        assert_eq!(row(next, 2), [0, 1, 1, 0, 0]);
        assert_eq!(row(next, 3), [1, 0, 0, 0, 0]);
        assert_eq!(model.transitions[0], [0, 1, 0, 0, 0]);
        assert_eq!(model.transitions[1 + 2], [1, 0, 0, 0, 0]);
        // At τ = 1.5 only Angela's f1, Merkel's f2 and Paris's f3 fire; s_min 2 then
        // drops every feature.
        let high = nb_counts().model(1.5, &[(0, 1.0)], &nb_params()).unwrap();
        assert_eq!(row(&high.offsets[0], 1), [0, 1, 0, 0, 0]);
        let sparse = NbParams {
            s_min: 2,
            ..nb_params()
        };
        assert!(nb_counts()
            .model(1.5, &[(0, 1.0)], &sparse)
            .unwrap()
            .offsets[0]
            .features
            .is_empty());
        assert!(nb_counts().model(0.5, &[(0, 1.0)], &nb_params()).is_err());
        assert!(nb_counts().model(0.0, &[(2, 1.0)], &nb_params()).is_err());
    }

    #[test]
    fn masked_words_are_left_out_and_a_model_rebuilds_from_its_recipe() {
        let weights = [(0, 1.0), (1, 0.5)];
        let all = nb_counts().model(0.0, &weights, &nb_params()).unwrap();
        let everything = vec![vec![true; 4]];
        let same = NbCounts::from_corpus(
            &nb_toy(),
            16,
            nb_labels(),
            vec![0.0],
            vec![0, 1],
            Some(&everything),
        )
        .unwrap()
        .model(0.0, &weights, &nb_params())
        .unwrap();
        assert_eq!(same, all);
        // Only "visited Paris" kept: Angela and Merkel count nowhere, but "visited" still
        // sees Paris's f3 at +1.
        let tail = vec![vec![false, false, true, true]];
        let part = NbCounts::from_corpus(
            &nb_toy(),
            16,
            nb_labels(),
            vec![0.0],
            vec![0, 1],
            Some(&tail),
        )
        .unwrap()
        .model(0.0, &weights, &nb_params())
        .unwrap();
        assert_eq!(part.offsets[0].words, [1, 0, 0, 1, 0]);
        assert_eq!(row(&part.offsets[0], 2), [1, 0, 0, 0, 0]);
        assert_eq!(row(&part.offsets[1], 3), [1, 0, 0, 0, 0]);
        // The transition into "visited" (from I-PER) still counts; none from the start.
        assert_eq!(part.transitions[0], [0, 0, 0, 0, 0]);
        assert_eq!(part.transitions[1 + 2], [1, 0, 0, 0, 0]);
        assert_eq!(part.transitions[1], [0, 0, 0, 1, 0]);

        let biased = NbParams {
            bias: vec![-2.0, 1.5],
            s_min: 1,
            viterbi: false,
            ..nb_params()
        };
        let model = nb_counts().model(0.0, &weights, &biased).unwrap();
        let (w, p) = model.recipe(&nb_labels(), 1);
        assert_eq!((w.as_slice(), &p), (&weights[..], &biased));
        assert_eq!(nb_counts().model(0.0, &w, &p).unwrap(), model);
    }

    #[test]
    fn scores_match_a_hand_computation() {
        let model = nb_counts().model(0.0, &[(0, 1.0)], &nb_params()).unwrap();
        let scorer = Scorer::new(&model, &nb_labels(), 16);
        // One word on which only feature 1 fires. With α = 1, P(f|c) = (n + 1)/(N_c + 2):
        // under B-PER (N = 1) P(f1) = 2/3, P(f2) = P(f3) = 1/3; under O, P(f2) = 2/3 and
        // P(f1) = P(f3) = 1/3; under I-LOC (N = 0) every P is 1/2.
        let sums = scorer.offset_sums(&[vec![(1, 2.0)]]);
        let (k, ln) = (5, f64::ln);
        let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        close(sums[1], ln(2.0 / 3.0));
        close(sums[k + 1], 2.0 * ln(2.0 / 3.0));
        close(sums[0], ln(1.0 / 3.0));
        close(sums[k], ln(1.0 / 3.0) + ln(2.0 / 3.0));
        close(sums[4] + sums[k + 4], 3.0 * ln(0.5));
        // Bernoulli naive Bayes: both sides count; with absence 0 only firing features do.
        let scores = scorer.scores(&sums, &[1.0], 1.0, 2.0, &[0.0, 0.5, 0.5, 0.0, 0.0]);
        close(scores[1], 2.0 * 3.0 * ln(2.0 / 3.0) + 0.5);
        let scores = scorer.scores(&sums, &[1.0], 0.0, 1.0, &[0.0; 5]);
        close(scores[0], ln(1.0 / 3.0));
    }

    /// A deterministic stream of numbers in −4..4.
    fn noise(seed: &mut u64) -> f64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*seed >> 11) as f64 / (1u64 << 53) as f64 * 8.0 - 4.0
    }

    #[test]
    fn decoding_never_emits_invalid_iob2() {
        let model = nb_counts().model(0.0, &[(0, 1.0)], &nb_params()).unwrap();
        let scorer = Scorer::new(&model, &nb_labels(), 16);
        let mut seed = 7;
        for n in 0..60 {
            // I- tags get high scores, to tempt both modes into invalid sequences.
            let scores: Vec<f64> = (0..n * 5)
                .map(|i| noise(&mut seed) + if i % 5 == 2 || i % 5 == 4 { 3.0 } else { 0.0 })
                .collect();
            for viterbi in [false, true] {
                let tags = scorer.tags(&scores, viterbi);
                assert_eq!(tags.len(), n);
                let mut from = None;
                for &tag in &tags {
                    assert!(allowed(from, tag), "{tags:?}");
                    from = Some(tag);
                }
                let covered: usize = tag_spans(&tags).iter().map(|s| s.1 - s.0).sum();
                assert_eq!(covered, tags.iter().filter(|&&t| t != 0).count());
            }
        }
    }

    #[test]
    fn viterbi_prefers_counted_transitions() {
        let model = nb_counts().model(0.0, &[(0, 1.0)], &nb_params()).unwrap();
        let scorer = Scorer::new(&model, &nb_labels(), 16);
        // Word 1 slightly prefers B-PER to I-PER; after a B-PER, the counted B-PER → I-PER
        // transition wins jointly while greedy decoding starts a second entity.
        let mut scores = vec![0.0; 10];
        scores[1] = 5.0;
        scores[5 + 1] = 5.1;
        scores[5 + 2] = 5.0;
        assert_eq!(scorer.tags(&scores, false), [1, 1]);
        assert_eq!(scorer.tags(&scores, true), [1, 2]);
        assert_eq!(tag_spans(&[1, 2]), [(0, 2, 0)]);
    }

    #[test]
    fn regrouped_counts_equal_counting_the_relabelled_corpus() {
        let count = |encoded: &EncodedCorpus, labels: Vec<String>| {
            NbCounts::from_corpus(encoded, 16, labels, vec![0.0, 1.5], vec![1, 0], None).unwrap()
        };
        // LOC dropped to O: the same as counting PER alone (other labels count as O).
        let per_only = nb_counts().regrouped(vec!["PER".into()], &[0, 1, 2, 0, 0]);
        assert_eq!(per_only.unwrap(), count(&nb_toy(), vec!["PER".into()]));
        // Both types merged into one.
        let mut merged_corpus = nb_toy();
        for e in &mut merged_corpus.corpus.documents[0].sentences[0].entities {
            e.label = "NAME".into();
        }
        let merged = nb_counts().regrouped(vec!["NAME".into()], &[0, 1, 2, 1, 2]);
        assert_eq!(merged.unwrap(), count(&merged_corpus, vec!["NAME".into()]));
        assert!(nb_counts()
            .regrouped(vec!["PER".into()], &[0, 1, 2, 3, 0])
            .is_err());
        assert!(nb_counts()
            .regrouped(vec!["PER".into()], &[1, 1, 2, 0, 0])
            .is_err());
    }
}
