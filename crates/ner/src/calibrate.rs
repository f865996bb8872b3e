//! Direct precision estimation: count, per SAE feature, how often it fires and how often it
//! fires inside an entity of each type; keep the features whose (smoothed) precision is high.
//!
//! Counting and selection are split so that a parameter sweep is cheap:
//! [`FeatureCounts`] is one pass over the codes (seconds), at several firing thresholds τ at
//! once; [`crate::Profile::calibrate`] then applies `p_min`, `s_min` and the smoothing to
//! the counts in milliseconds. Only a τ that was not counted needs a recount.
//!
//! Labels come from the document's entities, so the same counts serve both calibration
//! signals of PAPER.md: gold entities (a labelled calibration set), or entities marked by a
//! label-free matcher (a seed lexicon) — then `hits` counts matched tokens and every other
//! token is unlabelled, and precision estimates P(matched | fires).

use rayon::prelude::*;
use saener_sae::SparseCode;

use crate::align::Alignment;
use crate::codes::EncodedCorpus;
use crate::corpus::Document;
use crate::params::{CalibrationParams, CountedTokens, Row};
use crate::{argument, Error, Result};

/// Per-feature counts over calibration tokens at several firing thresholds.
///
/// A token counts when it overlaps a word ([`Alignment::word_of`]); BOS and whitespace-only
/// tokens do not. Its class is the label of the entity its word is in, if that label is one
/// of the counted labels; entities of other labels count as "not an entity" for every
/// counted label, which is what each label's precision needs. A feature *fires* on a token
/// at threshold τ when its activation is `> τ`.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureCounts {
    d_sae: usize,
    labels: Vec<String>,
    /// Ascending, distinct.
    taus: Vec<f32>,
    /// Which of a word's tokens are counted.
    counted: CountedTokens,
    /// Tokens counted, in total and per label.
    tokens: u64,
    label_tokens: Vec<u64>,
    /// Flat counters, `[feature][tau][slot]` with `slot` = support, then hits per label,
    /// then entity-initial hits per label: one feature's counters are adjacent, so a token
    /// touches one cache line per active feature.
    counts: Vec<u32>,
}

impl FeatureCounts {
    /// Empty counts for an SAE of `d_sae` features, entity `labels` (in the order profiles
    /// will list them) and firing thresholds `taus` (sorted and deduplicated here).
    pub fn new(d_sae: usize, labels: Vec<String>, mut taus: Vec<f32>) -> Result<FeatureCounts> {
        if let Some(bad) = taus.iter().find(|t| !t.is_finite() || **t < 0.0) {
            return Err(argument("tau", "finite thresholds >= 0", bad));
        }
        if taus.is_empty() {
            return Err(argument("taus", "at least one threshold", "none"));
        }
        let mut sorted = labels.clone();
        sorted.sort();
        sorted.dedup();
        if labels.is_empty() || sorted.len() != labels.len() {
            return Err(argument(
                "labels",
                "one or more distinct labels",
                labels.join(","),
            ));
        }
        taus.sort_by(f32::total_cmp);
        taus.dedup();
        Ok(FeatureCounts {
            counts: vec![0; d_sae * taus.len() * stride(labels.len())],
            label_tokens: vec![0; labels.len()],
            tokens: 0,
            counted: CountedTokens::default(),
            d_sae,
            labels,
            taus,
        })
    }

    /// The same (empty) counts, counting `counted` tokens of each word.
    pub fn counting(mut self, counted: CountedTokens) -> FeatureCounts {
        self.counted = counted;
        self
    }

    /// Which of a word's tokens are counted.
    pub fn counted(&self) -> CountedTokens {
        self.counted
    }

    /// Counts the tokens of one document: `codes` has one row per token of `alignment`,
    /// BOS included (its row may be empty; it is never counted).
    pub fn add_document(
        &mut self,
        document: &Document,
        alignment: &Alignment,
        codes: &[SparseCode],
    ) -> Result<()> {
        self.add_words(document, alignment, codes, |_| true)
    }

    /// Like [`FeatureCounts::add_document`], counting only the tokens of the words (numbered
    /// across the document) for which `counted_word` holds: a sample of the sentences.
    pub fn add_words(
        &mut self,
        document: &Document,
        alignment: &Alignment,
        codes: &[SparseCode],
        counted_word: impl Fn(usize) -> bool,
    ) -> Result<()> {
        alignment.check(document, codes.len())?;
        for (t, code) in codes.iter().enumerate() {
            let bad_id = code.ids.iter().find(|&&f| f as usize >= self.d_sae);
            if code.ids.len() != code.values.len() || bad_id.is_some() {
                return Err(argument(
                    &format!("code of token {t} in document {}", document.id),
                    &format!("as many values as ids, ids < d_sae = {}", self.d_sae),
                    format!(
                        "{} ids, {} values, id {bad_id:?}",
                        code.ids.len(),
                        code.values.len()
                    ),
                ));
            }
        }
        let (class, initial) = self.token_classes(document, alignment);
        let (n_labels, n_taus) = (self.labels.len(), self.taus.len());
        let stride = stride(n_labels);
        for (t, code) in codes.iter().enumerate() {
            let counted = alignment
                .word_of(t)
                .is_some_and(|w| counted_word(w) && self.counted.counts(t, alignment.tokens_of(w)));
            if !counted {
                continue;
            }
            self.tokens += 1;
            if let Some(c) = class[t] {
                self.label_tokens[c] += 1;
            }
            for (&f, &v) in code.ids.iter().zip(&code.values) {
                let base = f as usize * n_taus * stride;
                // Thresholds ascend: the feature fires at every τ below its activation.
                let fired = self.taus.partition_point(|&tau| v > tau);
                for cell in self.counts[base..base + fired * stride].chunks_exact_mut(stride) {
                    cell[0] += 1;
                    if let Some(c) = class[t] {
                        cell[1 + c] += 1;
                    }
                    if let Some(c) = initial[t] {
                        cell[1 + n_labels + c] += 1;
                    }
                }
            }
        }
        Ok(())
    }

    /// Counts every document of `encoded`, codes of an SAE `d_sae` wide (in parallel, over
    /// chunks of documents whose counts are then merged); with `words`, only the words
    /// marked there (per document, per word).
    pub fn from_corpus(
        encoded: &EncodedCorpus,
        d_sae: usize,
        labels: Vec<String>,
        taus: Vec<f32>,
        counted: CountedTokens,
        words: Option<&[Vec<bool>]>,
    ) -> Result<FeatureCounts> {
        let empty = FeatureCounts::new(d_sae, labels, taus)?.counting(counted);
        count_documents(
            encoded,
            empty,
            |counts, i| {
                counts.add_words(
                    &encoded.corpus.documents[i],
                    &encoded.alignments[i],
                    &encoded.codes[i],
                    |w| words.is_none_or(|m| m[i][w]),
                )
            },
            FeatureCounts::merge,
        )
    }

    /// Per token: the class (label index) of its word's entity, and the class of the entity
    /// whose first token it is (the first token overlapping the entity's first word).
    fn token_classes(
        &self,
        document: &Document,
        alignment: &Alignment,
    ) -> (Vec<Option<usize>>, Vec<Option<usize>>) {
        let mut word_class = vec![None; alignment.n_words()];
        let mut initial = vec![None; alignment.n_tokens()];
        let mut offset = 0;
        for sentence in &document.sentences {
            for entity in &sentence.entities {
                let Some(c) = self.labels.iter().position(|l| *l == entity.label) else {
                    continue;
                };
                word_class[offset + entity.start..offset + entity.end].fill(Some(c));
                if let Some(t) = self
                    .counted
                    .token_of(alignment.tokens_of(offset + entity.start))
                {
                    initial[t] = Some(c);
                }
            }
            offset += sentence.words.len();
        }
        let class = (0..alignment.n_tokens())
            .map(|t| alignment.word_of(t).and_then(|w| word_class[w]))
            .collect();
        (class, initial)
    }

    /// Adds the counts of `other`, made with the same SAE size, labels and thresholds (for
    /// counting chunks of a corpus in parallel).
    pub fn merge(&mut self, other: &FeatureCounts) -> Result<()> {
        let key = |c: &FeatureCounts| (c.d_sae, c.labels.clone(), c.taus.clone(), c.counted);
        if key(self) != key(other) {
            return Err(Error::Argument {
                name: "counts to merge".into(),
                expected: format!("{:?}", key(self)),
                found: format!("{:?}", key(other)),
            });
        }
        self.tokens += other.tokens;
        for (a, b) in self.label_tokens.iter_mut().zip(&other.label_tokens) {
            *a += b;
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        Ok(())
    }

    /// Counts whose labels are groups of these labels: new label `g` sums the hits of every
    /// old label `c` with `group[c] == g` (folds of a type back into the type).
    pub(crate) fn group_labels(
        &self,
        labels: Vec<String>,
        group: &[usize],
    ) -> Result<FeatureCounts> {
        if group.len() != self.labels.len() || group.iter().any(|&g| g >= labels.len()) {
            return Err(argument(
                "label groups",
                &format!("one group below {} per label", labels.len()),
                format!("{group:?}"),
            ));
        }
        let mut out =
            FeatureCounts::new(self.d_sae, labels, self.taus.clone())?.counting(self.counted);
        out.tokens = self.tokens;
        for (c, &g) in group.iter().enumerate() {
            out.label_tokens[g] += self.label_tokens[c];
        }
        let (old, new) = (stride(self.labels.len()), stride(out.labels.len()));
        let (n_old, n_new) = (self.labels.len(), out.labels.len());
        for (src, dst) in self
            .counts
            .chunks_exact(old)
            .zip(out.counts.chunks_exact_mut(new))
        {
            dst[0] = src[0];
            for (c, &g) in group.iter().enumerate() {
                dst[1 + g] += src[1 + c];
                dst[1 + n_new + g] += src[1 + n_old + c];
            }
        }
        Ok(out)
    }

    /// The counters of `feature` at threshold `tau` (one of the counted ones): support, then
    /// hits per label.
    pub(crate) fn cell(&self, feature: usize, tau: f32) -> Result<(u32, &[u32])> {
        let k = self.tau_index(tau)?;
        let n = self.labels.len();
        let cell = &self.counts[(feature * self.taus.len() + k) * stride(n)..][..stride(n)];
        Ok((cell[0], &cell[1..1 + n]))
    }

    fn tau_index(&self, tau: f32) -> Result<usize> {
        self.taus.iter().position(|&t| t == tau).ok_or_else(|| {
            argument(
                "tau",
                &format!("one of the counted thresholds {:?}", self.taus),
                tau,
            )
        })
    }

    /// The SAE width the counts were made for.
    pub fn d_sae(&self) -> usize {
        self.d_sae
    }

    /// The counted labels, in profile order.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Tokens counted (tokens that overlap a word).
    pub fn tokens(&self) -> u64 {
        self.tokens
    }

    /// Tokens counted inside an entity of `labels()[c]`.
    pub fn label_tokens(&self) -> &[u64] {
        &self.label_tokens
    }

    /// The kept rows under `params`: `(type rows, boundary rows)`, boundary rows empty
    /// unless `params.boundaries`. Rows are ordered by label, then precision (highest
    /// first), then feature.
    pub(crate) fn rows(&self, params: &CalibrationParams) -> Result<(Vec<Row>, Vec<Row>)> {
        params.validate()?;
        let k = self.tau_index(params.tau)?;
        let n_labels = self.labels.len();
        let stride = stride(n_labels);
        let (mut rows, mut boundary_rows) = (Vec::new(), Vec::new());
        for (c, label) in self.labels.iter().enumerate() {
            let mut lists = vec![(1 + c, &mut rows)];
            if params.boundaries {
                lists.push((1 + n_labels + c, &mut boundary_rows));
            }
            for (slot, out) in lists {
                let first = out.len();
                for f in 0..self.d_sae {
                    let cell = &self.counts[(f * self.taus.len() + k) * stride..][..stride];
                    let (support, hits) = (cell[0], cell[slot]);
                    if support < params.s_min {
                        continue;
                    }
                    let precision = params.smoothing.precision(hits, support);
                    if precision >= params.p_min {
                        out.push(Row {
                            feature: f as u32,
                            label: label.clone(),
                            precision,
                            support,
                            hits,
                        });
                    }
                }
                out[first..].sort_by(|a, b| {
                    (b.precision.total_cmp(&a.precision)).then(a.feature.cmp(&b.feature))
                });
            }
        }
        Ok((rows, boundary_rows))
    }
}

/// Counts every document of `encoded` into a copy of `empty`, in parallel over chunks of
/// documents (one per thread), then merges the chunks' counts in order.
pub(crate) fn count_documents<C: Clone + Send + Sync>(
    encoded: &EncodedCorpus,
    empty: C,
    add: impl Fn(&mut C, usize) -> Result<()> + Sync,
    merge: impl Fn(&mut C, &C) -> Result<()>,
) -> Result<C> {
    let n = encoded.corpus.documents.len();
    let per_thread = n.div_ceil(rayon::current_num_threads().max(1)).max(1);
    let parts = (0..n)
        .step_by(per_thread)
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|first| {
            let mut counts = empty.clone();
            for i in first..(first + per_thread).min(n) {
                add(&mut counts, i)?;
            }
            Ok(counts)
        })
        .collect::<Result<Vec<_>>>()?;
    let mut total = empty;
    for part in &parts {
        merge(&mut total, part)?;
    }
    Ok(total)
}

/// Counters per feature and threshold: support, hits per label, initial hits per label.
fn stride(n_labels: usize) -> usize {
    1 + 2 * n_labels
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::Smoothing;
    use crate::test_support::{code, conll, one_token_per_word};

    /// "Angela Merkel visited Paris ." (PER PER O LOC O), one token per word after BOS, and
    /// its codes. BOS carries a huge feature 0 that must never count.
    fn toy() -> (Document, Alignment, Vec<SparseCode>) {
        let corpus = conll("Angela B-PER\nMerkel I-PER\nvisited O\nParis B-LOC\n. O\n");
        let document = corpus.documents[0].clone();
        let alignment = Alignment::new(&document, &one_token_per_word(&document)).unwrap();
        let codes = vec![
            code(&[(0, 100.0)]),
            code(&[(1, 2.0), (2, 0.5)]),
            code(&[(1, 0.5), (3, 1.0)]),
            code(&[(2, 1.5)]),
            code(&[(1, 2.0), (4, 1.0)]),
            code(&[]),
        ];
        (document, alignment, codes)
    }

    fn counts(taus: Vec<f32>) -> FeatureCounts {
        let (document, alignment, codes) = toy();
        let mut counts = FeatureCounts::new(8, vec!["PER".into(), "LOC".into()], taus).unwrap();
        counts.add_document(&document, &alignment, &codes).unwrap();
        counts
    }

    /// Raw ratios (Beta(0, 0)) of every row with support ≥ `s_min` and ratio ≥ `p_min`.
    fn raw(p_min: f64, s_min: u32) -> CalibrationParams {
        CalibrationParams {
            p_min,
            s_min,
            smoothing: Smoothing::Beta {
                alpha: 0.0,
                beta: 0.0,
            },
            ..CalibrationParams::default()
        }
    }

    fn table(rows: &[Row]) -> Vec<(u32, &str, u32, u32)> {
        rows.iter()
            .map(|r| (r.feature, r.label.as_str(), r.hits, r.support))
            .collect()
    }

    #[test]
    fn add_words_counts_only_the_chosen_words() {
        let (document, alignment, codes) = toy();
        let mut counts =
            FeatureCounts::new(8, vec!["PER".into(), "LOC".into()], vec![0.0]).unwrap();
        // Words 0 (Angela) and 3 (Paris) only.
        counts
            .add_words(&document, &alignment, &codes, |w| w == 0 || w == 3)
            .unwrap();
        assert_eq!((counts.tokens(), counts.label_tokens()), (2, &[1, 1][..]));
        let mut none = FeatureCounts::new(8, vec!["PER".into()], vec![0.0]).unwrap();
        none.add_words(&document, &alignment, &codes, |_| false)
            .unwrap();
        assert_eq!(none.tokens(), 0);
    }

    #[test]
    fn word_last_counts_only_the_last_token_of_each_word() {
        // "Merkel" as two tokens, "Mer" (feature 5) and "kel" (feature 6).
        let corpus = conll("Angela B-PER\nMerkel I-PER\nvisited O\n");
        let document = &corpus.documents[0];
        let offsets = [(0, 0), (0, 6), (6, 10), (10, 13), (13, 21)];
        let alignment = Alignment::new(document, &offsets).unwrap();
        let codes = [
            code(&[]),
            code(&[(5, 1.0)]),
            code(&[(5, 1.0)]),
            code(&[(6, 1.0)]),
            code(&[(5, 1.0)]),
        ];
        let count = |counted| {
            let mut c = FeatureCounts::new(8, vec!["PER".into()], vec![0.0])
                .unwrap()
                .counting(counted);
            c.add_document(document, &alignment, &codes).unwrap();
            c
        };
        let all = count(CountedTokens::All);
        assert_eq!((all.tokens(), all.label_tokens()), (4, &[3][..]));
        let last = count(CountedTokens::WordLast);
        assert_eq!((last.tokens(), last.label_tokens()), (3, &[2][..]));
        let (rows, _) = last.rows(&raw(0.0, 1)).unwrap();
        assert_eq!(table(&rows), [(6, "PER", 1, 1), (5, "PER", 1, 2)]);
        let first = count(CountedTokens::WordFirst);
        let (rows, _) = first.rows(&raw(0.0, 1)).unwrap();
        assert_eq!(table(&rows), [(5, "PER", 2, 3)]);
        assert!(all.clone().merge(&last).is_err());
    }

    #[test]
    fn counts_support_and_hits_at_each_threshold() {
        let counts = counts(vec![1.0, 0.0, 1.0]);
        assert_eq!(counts.tokens(), 5);
        assert_eq!(counts.label_tokens(), [2, 1]);
        let (rows, boundary) = counts.rows(&raw(0.0, 1)).unwrap();
        assert!(boundary.is_empty());
        #[rustfmt::skip]
        assert_eq!(table(&rows), [
            (3, "PER", 1, 1), (1, "PER", 2, 3), (2, "PER", 1, 2), (4, "PER", 0, 1),
            (4, "LOC", 1, 1), (1, "LOC", 1, 3), (2, "LOC", 0, 2), (3, "LOC", 0, 1),
        ]);
        // At τ = 1 only activations above 1 fire: f1 on Angela and Paris, f2 on "visited".
        let (rows, _) = counts
            .rows(&CalibrationParams {
                tau: 1.0,
                ..raw(0.0, 1)
            })
            .unwrap();
        #[rustfmt::skip]
        assert_eq!(table(&rows), [
            (1, "PER", 1, 2), (2, "PER", 0, 1), (1, "LOC", 1, 2), (2, "LOC", 0, 1),
        ]);
    }

    #[test]
    fn p_min_and_s_min_filter_rows() {
        let (rows, _) = counts(vec![0.0]).rows(&raw(0.6, 2)).unwrap();
        assert_eq!(table(&rows), [(1, "PER", 2, 3)]);
        assert!((rows[0].precision - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn boundary_rows_count_first_tokens_of_entities() {
        let params = CalibrationParams {
            boundaries: true,
            ..raw(0.3, 1)
        };
        let (_, boundary) = counts(vec![0.0]).rows(&params).unwrap();
        #[rustfmt::skip]
        assert_eq!(table(&boundary), [
            (2, "PER", 1, 2), (1, "PER", 1, 3), (4, "LOC", 1, 1), (1, "LOC", 1, 3),
        ]);
    }

    #[test]
    fn merging_equals_counting_together() {
        let (document, alignment, codes) = toy();
        let mut twice = counts(vec![0.0, 1.0]);
        twice.add_document(&document, &alignment, &codes).unwrap();
        let mut merged = counts(vec![0.0, 1.0]);
        merged.merge(&counts(vec![1.0, 0.0])).unwrap();
        assert_eq!(merged, twice);
        assert!(merged.merge(&counts(vec![0.0])).is_err());
    }

    #[test]
    fn bad_inputs_are_errors() {
        let counts = counts(vec![0.0]);
        let err = counts
            .rows(&CalibrationParams {
                tau: 0.5,
                ..raw(0.5, 1)
            })
            .unwrap_err();
        assert!(
            err.to_string().contains("counted thresholds [0.0]"),
            "{err}"
        );
        assert!(counts.rows(&raw(1.5, 1)).is_err());
        assert!(counts.rows(&raw(0.5, 0)).is_err());
        let labels = || vec!["PER".to_string()];
        assert!(FeatureCounts::new(8, labels(), vec![f32::NAN]).is_err());
        assert!(FeatureCounts::new(8, vec!["A".into(), "A".into()], vec![0.0]).is_err());
        let (document, alignment, mut codes) = toy();
        codes[2] = code(&[(9, 1.0)]);
        let mut fresh = FeatureCounts::new(8, labels(), vec![0.0]).unwrap();
        let err = fresh
            .add_document(&document, &alignment, &codes)
            .unwrap_err();
        assert!(err.to_string().contains("token 2"), "{err}");
        assert_eq!(fresh.tokens(), 0);
        assert!(fresh
            .add_document(&document, &alignment, &codes[1..])
            .is_err());
    }
}
