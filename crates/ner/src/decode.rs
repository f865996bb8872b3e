//! Decoding: token votes → word labels → entity spans with their evidence.
//!
//! 1. **Tokens.** A kept row (f, t, p) of the profile votes p for type t on every token where
//!    f fires (activation `> τ`, the profile's τ). A token's score for t combines its votes
//!    ([`Combine`]); no vote is score 0.
//! 2. **Words.** A word pools each type's score over the tokens overlapping it
//!    ([`WordPooling`](crate::WordPooling)); its label is the best type (the first in the
//!    profile's label order on ties) if that score is at least the decision threshold,
//!    else O.
//! 3. **Spans.** Within a sentence, a run of words with the same label is one entity, split
//!    before a word whose marking token fires a boundary feature of that type (profiles
//!    calibrated with boundaries; the token read is the one calibration counted, see
//!    [`crate::CountedTokens`]). Spans never cross sentences. A span's score is the mean
//!    of its words' scores for its type.
//! 4. **Evidence.** The kept features of the span's type that fired on the span's tokens,
//!    each once with its highest activation, by precision (highest first; then activation),
//!    at most [`MAX_EVIDENCE`].
//!
//! A profile with a `naive_bayes` section is decoded by [`crate::bayes`] instead
//! ([`Decoder::NaiveBayes`]): the same firing features, read as log-odds of IOB2 tags of each
//! word and its neighbours.

use saener_sae::SparseCode;
use serde::Serialize;

use rayon::prelude::*;

use crate::align::Alignment;
use crate::bayes::{tag_spans, word_features, Scorer};
use crate::codes::EncodedCorpus;
use crate::corpus::{Corpus, Document, Entity, Sentence};
use crate::params::{Combine, CountedTokens, DecodeParams};
use crate::profile::Profile;
use crate::{Error, Result};

/// The most evidence features a span carries.
pub const MAX_EVIDENCE: usize = 10;

const NO_COLUMN: u32 = u32::MAX;

/// One document's feature activations, one row per token of its alignment (BOS row 0
/// included; it never votes).
#[derive(Debug, Clone, Copy)]
pub enum Activations<'a> {
    /// Full sparse codes, one per token.
    Sparse(&'a [SparseCode]),
    /// Row-major `[n_tokens, m]` activations of the profile's `m` features only, column `c`
    /// for `Profile::features()[c]` (what the SAE encodes at inference).
    Dense(&'a [f32]),
}

/// A feature that voted for a span's type.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Evidence {
    pub feature: u32,
    /// Its highest activation on the span's tokens.
    pub activation: f32,
    /// Its precision for the span's type (the profile row's; naive Bayes: the share of the
    /// calibration words it fired on that were in an entity of that type).
    pub precision: f64,
    /// Naive Bayes only: its summed log-odds contribution to the span's tags against O.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_odds: Option<f64>,
}

/// A predicted entity.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Span {
    /// Sentence index in the document.
    pub sentence: usize,
    /// Word span in that sentence, end exclusive (as [`Entity`]).
    pub word_start: usize,
    pub word_end: usize,
    /// Character span in the document text (code points, half-open).
    pub start: usize,
    pub end: usize,
    pub label: String,
    /// Mean word score for `label`, in 0–1 (naive Bayes: the mean posterior of the words'
    /// tags).
    pub score: f64,
    pub evidence: Vec<Evidence>,
}

/// A profile prepared for decoding: one variant per decoder, chosen by the profile (a
/// `naive_bayes` section selects naive Bayes; without one its rows vote).
#[derive(Debug, Clone)]
pub enum Decoder {
    /// The precision-vote decoder of the [module docs](self).
    Vote(VoteDecoder),
    /// The count-based naive-Bayes decoder ([`crate::bayes`]).
    NaiveBayes(NbDecoder),
}

/// The profile features a decoder reads and its firing threshold: what both decoders need
/// to find the features that fire on a token.
#[derive(Debug, Clone)]
struct Columns {
    labels: Vec<String>,
    tau: f32,
    /// `Profile::features()`: column `c` is feature `features[c]`.
    features: Vec<u32>,
    /// Per SAE feature: its column, or `NO_COLUMN` (a table, not a search: it is looked up
    /// for every active feature of every token).
    column_of: Vec<u32>,
}

/// The precision-vote decoder: a profile's rows as votes per column. Made by
/// [`Decoder::new`].
#[derive(Debug, Clone)]
pub struct VoteDecoder {
    columns: Columns,
    params: DecodeParams,
    /// Per column: the (label index, precision) votes of its type rows.
    votes: Vec<Vec<(usize, f64)>>,
    /// Per column: the label indices it is a boundary feature of; empty if the profile has
    /// no boundary rows.
    starts: Vec<Vec<usize>>,
    /// Which token of a word boundary features are read on (the one calibration counted).
    boundary_token: CountedTokens,
}

/// The naive-Bayes decoder: a profile's `naive_bayes` tables as dense log-odds. Made by
/// [`Decoder::new`].
#[derive(Debug, Clone)]
pub struct NbDecoder {
    columns: Columns,
    scorer: Scorer,
}

impl Decoder {
    /// Prepares `profile` for decoding with `params` (usually `profile.decoding`; checked
    /// for either decoder, though only the vote decoder reads them).
    pub fn new(profile: &Profile, params: DecodeParams) -> Result<Decoder> {
        profile.validate("profile")?;
        params.validate()?;
        let features = profile.features();
        let mut column_of = vec![NO_COLUMN; profile.d_sae];
        for (c, &f) in features.iter().enumerate() {
            column_of[f as usize] = c as u32;
        }
        let columns = Columns {
            labels: profile.labels.clone(),
            tau: profile.calibration.tau,
            features,
            column_of,
        };
        Ok(match &profile.naive_bayes {
            Some(nb) => Decoder::NaiveBayes(NbDecoder {
                scorer: Scorer::new(nb, &profile.labels, profile.d_sae),
                columns,
            }),
            None => Decoder::Vote(VoteDecoder::new(profile, params, columns)),
        })
    }

    fn columns(&self) -> &Columns {
        match self {
            Decoder::Vote(d) => &d.columns,
            Decoder::NaiveBayes(d) => &d.columns,
        }
    }

    /// Decodes one document: its spans, in text order.
    pub fn decode(
        &self,
        document: &Document,
        alignment: &Alignment,
        activations: Activations<'_>,
    ) -> Result<Vec<Span>> {
        let m = self.columns().features.len();
        let rows = match activations {
            Activations::Sparse(codes) => codes.len(),
            Activations::Dense(values) => {
                let expected = alignment.n_tokens() * m;
                if values.len() != expected {
                    return Err(Error::Argument {
                        name: format!("dense activations of document {}", document.id),
                        expected: format!(
                            "{expected} values ({} tokens × {m} profile features)",
                            alignment.n_tokens(),
                        ),
                        found: values.len().to_string(),
                    });
                }
                alignment.n_tokens()
            }
        };
        alignment.check(document, rows)?;
        Ok(match self {
            Decoder::Vote(d) => d.decode(document, alignment, activations, rows),
            Decoder::NaiveBayes(d) => d.decode(document, alignment, activations),
        })
    }

    /// Decodes every document of `encoded`: each document's spans, in order.
    pub fn decode_corpus(&self, encoded: &EncodedCorpus) -> Result<Vec<Vec<Span>>> {
        (0..encoded.corpus.documents.len())
            .into_par_iter()
            .map(|i| {
                self.decode(
                    &encoded.corpus.documents[i],
                    &encoded.alignments[i],
                    Activations::Sparse(&encoded.codes[i]),
                )
            })
            .collect()
    }

    /// Decodes every document of `encoded`: the corpus with predicted entities in place of
    /// its own, for [`crate::evaluate_corpus`] and the writers.
    pub fn predict_corpus(&self, encoded: &EncodedCorpus) -> Result<Corpus> {
        Ok(predicted_corpus(
            &encoded.corpus,
            &self.decode_corpus(encoded)?,
        ))
    }
}

impl Columns {
    /// Calls `f(column, activation)` for every profile feature that fires on token `t`.
    fn for_each_firing(
        &self,
        activations: Activations<'_>,
        t: usize,
        mut f: impl FnMut(usize, f32),
    ) {
        match activations {
            Activations::Sparse(codes) => {
                for (&id, &v) in codes[t].ids.iter().zip(&codes[t].values) {
                    if v > self.tau {
                        match self.column_of.get(id as usize) {
                            Some(&c) if c != NO_COLUMN => f(c as usize, v),
                            _ => {}
                        }
                    }
                }
            }
            Activations::Dense(values) => {
                let m = self.features.len();
                for (c, &v) in values[t * m..(t + 1) * m].iter().enumerate() {
                    if v > self.tau {
                        f(c, v);
                    }
                }
            }
        }
    }
}

impl NbDecoder {
    /// [`Decoder::decode`] with the naive-Bayes decoder, on checked activations.
    fn decode(
        &self,
        document: &Document,
        alignment: &Alignment,
        activations: Activations<'_>,
    ) -> Vec<Span> {
        let columns = &self.columns;
        let words = word_features(alignment, |t, f| {
            columns.for_each_firing(activations, t, |c, v| f(columns.features[c], v))
        });
        let mut spans = Vec::new();
        let mut first = 0;
        for (s, sentence) in document.sentences.iter().enumerate() {
            let words = &words[first..first + sentence.words.len()];
            first += sentence.words.len();
            let (tags, posteriors) = self.scorer.tag_sentence(words);
            for (start, end, label) in tag_spans(&tags) {
                let run = Run {
                    start,
                    end,
                    label,
                    score: posteriors[start..end].iter().sum::<f64>() / (end - start) as f64,
                };
                let evidence = self
                    .scorer
                    .evidence(words, &tags, start..end, MAX_EVIDENCE)
                    .into_iter()
                    .map(|(feature, activation, precision, log_odds)| Evidence {
                        feature,
                        activation,
                        precision,
                        log_odds: Some(log_odds),
                    })
                    .collect();
                spans.push(Span {
                    evidence,
                    ..run.span(s, sentence, &columns.labels)
                });
            }
        }
        spans
    }
}

impl VoteDecoder {
    fn new(profile: &Profile, params: DecodeParams, columns: Columns) -> VoteDecoder {
        let column = |f: u32| columns.column_of[f as usize] as usize;
        let label = |l: &str| {
            profile
                .labels
                .iter()
                .position(|x| x == l)
                .expect("validated")
        };
        let n = columns.features.len();
        let mut votes = vec![Vec::new(); n];
        for row in &profile.rows {
            votes[column(row.feature)].push((label(&row.label), row.precision));
        }
        // Empty without boundary rows, so that decoding skips the boundary checks.
        let mut starts = vec![Vec::new(); n * usize::from(!profile.boundary_rows.is_empty())];
        for row in &profile.boundary_rows {
            starts[column(row.feature)].push(label(&row.label));
        }
        VoteDecoder {
            columns,
            params,
            votes,
            starts,
            boundary_token: profile.counted_tokens,
        }
    }

    /// [`Decoder::decode`] with the vote decoder, on checked activations of `rows` tokens.
    fn decode(
        &self,
        document: &Document,
        alignment: &Alignment,
        activations: Activations<'_>,
        rows: usize,
    ) -> Vec<Span> {
        let scores = self.token_scores(activations, rows);
        let mut spans = Vec::new();
        let mut offset = 0;
        for (s, sentence) in document.sentences.iter().enumerate() {
            let word_scores: Vec<Vec<f64>> = (0..sentence.words.len())
                .map(|w| self.word_scores(&scores, alignment.tokens_of(offset + w)))
                .collect();
            let word_labels = self.word_labels(&word_scores);
            let runs = entity_runs(&word_labels, |end, label| {
                let token = self
                    .boundary_token
                    .token_of(alignment.tokens_of(offset + end));
                self.starts_entity(activations, token, label)
            });
            for run in runs {
                let tokens = alignment.tokens_of(offset + run.start).start
                    ..alignment.tokens_of(offset + run.end - 1).end;
                spans.push(Span {
                    evidence: self.evidence(activations, tokens, run.label),
                    ..run.span(s, sentence, &self.columns.labels)
                });
            }
            offset += sentence.words.len();
        }
        spans
    }

    /// Token scores, row-major `[n_tokens, n_labels]`.
    fn token_scores(&self, activations: Activations<'_>, n_tokens: usize) -> Vec<f64> {
        let n_labels = self.columns.labels.len();
        // Noisy-or accumulates Π(1 − p) and converts at the end.
        let noisy_or = self.params.combine == Combine::NoisyOr;
        let mut scores = vec![if noisy_or { 1.0 } else { 0.0 }; n_tokens * n_labels];
        for t in 0..n_tokens {
            let row = &mut scores[t * n_labels..(t + 1) * n_labels];
            self.columns.for_each_firing(activations, t, |c, _| {
                for &(l, p) in &self.votes[c] {
                    row[l] = if noisy_or {
                        row[l] * (1.0 - p)
                    } else {
                        row[l].max(p)
                    };
                }
            });
        }
        if noisy_or {
            scores.iter_mut().for_each(|s| *s = 1.0 - *s);
        }
        scores
    }

    /// A word's pooled score for each label, from its tokens' scores.
    fn word_scores(&self, scores: &[f64], tokens: std::ops::Range<usize>) -> Vec<f64> {
        let n_labels = self.columns.labels.len();
        (0..n_labels)
            .map(|l| {
                self.params
                    .pooling
                    .pool(tokens.clone().map(|t| scores[t * n_labels + l]))
            })
            .collect()
    }

    /// Each word's label and score, or `None` (O): the best label if it reaches the
    /// threshold, then (with `extend`) neighbours of labelled words that reach `extend` for
    /// the same label, outward in both directions.
    fn word_labels(&self, word_scores: &[Vec<f64>]) -> Vec<Option<(usize, f64)>> {
        let mut labels: Vec<Option<(usize, f64)>> = word_scores
            .iter()
            .map(|scores| {
                let mut best: Option<(usize, f64)> = None;
                for (l, &score) in scores.iter().enumerate() {
                    if best.is_none_or(|(_, b)| score > b) {
                        best = Some((l, score));
                    }
                }
                best.filter(|&(_, score)| score >= self.params.threshold)
            })
            .collect();
        if let Some(extend) = self.params.extend {
            let n = labels.len();
            let forward: Vec<usize> = (1..n).collect();
            let backward: Vec<usize> = (0..n.saturating_sub(1)).rev().collect();
            for (order, step) in [(forward, -1isize), (backward, 1)] {
                for w in order {
                    let neighbour = (w as isize + step) as usize;
                    if let (None, Some((l, _))) = (labels[w], labels[neighbour]) {
                        let score = word_scores[w][l];
                        if score >= extend {
                            labels[w] = Some((l, score));
                        }
                    }
                }
            }
        }
        labels
    }

    /// Whether a boundary feature of `label` fires on `token` (the word's marking token).
    fn starts_entity(
        &self,
        activations: Activations<'_>,
        token: Option<usize>,
        label: usize,
    ) -> bool {
        let mut fires = false;
        if let (Some(t), false) = (token, self.starts.is_empty()) {
            self.columns.for_each_firing(activations, t, |c, _| {
                fires |= self.starts[c].contains(&label)
            });
        }
        fires
    }

    /// The evidence for `label` on `tokens`; see the [module docs](self).
    fn evidence(
        &self,
        activations: Activations<'_>,
        tokens: std::ops::Range<usize>,
        label: usize,
    ) -> Vec<Evidence> {
        let mut evidence = Vec::new();
        for t in tokens {
            self.columns
                .for_each_firing(activations, t, |c, activation| {
                    if let Some(&(_, precision)) = self.votes[c].iter().find(|(l, _)| *l == label) {
                        evidence.push(Evidence {
                            feature: self.columns.features[c],
                            activation,
                            precision,
                            log_odds: None,
                        });
                    }
                });
        }
        // Keep each feature's highest activation, then order by strength.
        evidence.sort_by(|a, b| {
            a.feature
                .cmp(&b.feature)
                .then(b.activation.total_cmp(&a.activation))
        });
        evidence.dedup_by_key(|e| e.feature);
        evidence.sort_by(|a, b| {
            b.precision
                .total_cmp(&a.precision)
                .then(b.activation.total_cmp(&a.activation))
                .then(a.feature.cmp(&b.feature))
        });
        evidence.truncate(MAX_EVIDENCE);
        evidence
    }
}

/// A run of words with one label: words `start..end` of a sentence, `score` the mean of
/// their scores. Public so that other word classifiers (the trained probes) make spans
/// exactly as SAE-NER does.
pub struct Run {
    /// First word of the run, in its sentence.
    pub start: usize,
    /// One past its last word.
    pub end: usize,
    /// Index of its label in the decoder's label order.
    pub label: usize,
    /// Mean of its words' scores.
    pub score: f64,
}

impl Run {
    /// The run as a span of sentence `s` (no evidence).
    pub fn span(&self, s: usize, sentence: &Sentence, labels: &[String]) -> Span {
        Span {
            sentence: s,
            word_start: self.start,
            word_end: self.end,
            start: sentence.words[self.start].start,
            end: sentence.words[self.end - 1].end,
            label: labels[self.label].clone(),
            score: self.score,
            evidence: Vec::new(),
        }
    }
}

/// Entities from one sentence's word labels: each maximal run of words with the same label,
/// split before word `w` where `starts(w, label)` says a new entity begins.
pub fn entity_runs(
    word_labels: &[Option<(usize, f64)>],
    mut starts: impl FnMut(usize, usize) -> bool,
) -> Vec<Run> {
    let mut runs = Vec::new();
    let mut w = 0;
    while w < word_labels.len() {
        let Some((label, _)) = word_labels[w] else {
            w += 1;
            continue;
        };
        let mut end = w + 1;
        while end < word_labels.len()
            && word_labels[end].is_some_and(|(l, _)| l == label)
            && !starts(end, label)
        {
            end += 1;
        }
        let total: f64 = word_labels[w..end].iter().flatten().map(|&(_, p)| p).sum();
        runs.push(Run {
            start: w,
            end,
            label,
            score: total / (end - w) as f64,
        });
        w = end;
    }
    runs
}

/// A copy of `corpus` whose entities are `spans` (one list per document, as
/// [`Decoder::decode_corpus`] gives them).
pub fn predicted_corpus(corpus: &Corpus, spans: &[Vec<Span>]) -> Corpus {
    Corpus {
        documents: corpus
            .documents
            .iter()
            .zip(spans)
            .map(|(document, spans)| predicted_document(document, spans))
            .collect(),
        annotated: true,
        separator: corpus.separator,
    }
}

/// A copy of `document` whose entities are `spans` (as [`Decoder::decode`] gave them for
/// this document), with the same words: for [`crate::evaluate_corpus`] and the writers.
pub fn predicted_document(document: &Document, spans: &[Span]) -> Document {
    let mut predicted = document.clone();
    for sentence in &mut predicted.sentences {
        sentence.entities.clear();
    }
    for span in spans {
        predicted.sentences[span.sentence].entities.push(Entity {
            start: span.word_start,
            end: span.word_end,
            label: span.label.clone(),
        });
    }
    predicted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::align::WordPooling;
    use crate::calibrate::FeatureCounts;
    use crate::corpus::Corpus;
    use crate::evaluate_corpus;
    use crate::params::{CalibrationParams, Smoothing};
    use crate::profile::Origin;
    use crate::test_support::{code, conll, nb_profile, nb_toy, one_token_per_word, profile};

    const TWO_SENTENCES: &str = "-DOCSTART- -X- O O\n\n\
        Angela B-PER\nMerkel I-PER\nvisited O\nParis B-LOC\n\nBerlin B-ORG\nrocks O\n";

    /// "Angela Merkel visited Paris\nBerlin rocks", one token per word, and codes: the PER
    /// features 10 and 11 (precision 0.4 each) on both names, the LOC features 20 (0.9) on
    /// Paris and Berlin, 30 (0.3) on Berlin and "rocks".
    fn toy() -> (Corpus, Alignment, Vec<SparseCode>) {
        let corpus = conll(TWO_SENTENCES);
        let document = &corpus.documents[0];
        let alignment = Alignment::new(document, &one_token_per_word(document)).unwrap();
        let codes = vec![
            code(&[(10, 50.0), (20, 50.0)]),
            code(&[(10, 1.0), (11, 2.0)]),
            code(&[(10, 3.0), (11, 0.5), (12, 9.0)]),
            code(&[]),
            code(&[(20, 1.0)]),
            code(&[(20, 2.0), (30, 1.0)]),
            code(&[(30, 1.0)]),
        ];
        (corpus, alignment, codes)
    }

    fn toy_profile(combine: Combine) -> Profile {
        let rows = [
            (10, "PER", 0.4),
            (11, "PER", 0.4),
            (20, "LOC", 0.9),
            (30, "LOC", 0.3),
        ];
        let decoding = DecodeParams {
            combine,
            ..DecodeParams::default()
        };
        profile(&["PER", "LOC"], &rows, &[], decoding)
    }

    fn decode(
        profile: &Profile,
        corpus: &Corpus,
        alignment: &Alignment,
        codes: &[SparseCode],
    ) -> Vec<Span> {
        let decoder = Decoder::new(profile, profile.decoding).unwrap();
        decoder
            .decode(&corpus.documents[0], alignment, Activations::Sparse(codes))
            .unwrap()
    }

    fn summary(spans: &[Span]) -> Vec<(usize, usize, usize, usize, usize, &str)> {
        spans
            .iter()
            .map(|s| {
                (
                    s.sentence,
                    s.word_start,
                    s.word_end,
                    s.start,
                    s.end,
                    s.label.as_str(),
                )
            })
            .collect()
    }

    fn evidence(span: &Span) -> Vec<(u32, f32, f64)> {
        span.evidence
            .iter()
            .map(|e| (e.feature, e.activation, e.precision))
            .collect()
    }

    #[test]
    fn noisy_or_adds_up_weak_votes_and_spans_stay_in_sentences() {
        let (corpus, alignment, codes) = toy();
        let spans = decode(&toy_profile(Combine::NoisyOr), &corpus, &alignment, &codes);
        // PER: 1 − 0.6² = 0.64 on both names. Paris and Berlin are adjacent LOC words but in
        // two sentences. "rocks" has only 0.3 < 0.5.
        #[rustfmt::skip]
        assert_eq!(summary(&spans), [
            (0, 0, 2, 0, 13, "PER"), (0, 3, 4, 22, 27, "LOC"), (1, 0, 1, 28, 34, "LOC"),
        ]);
        let text: Vec<char> = corpus.documents[0].text.chars().collect();
        let slice = |s: &Span| text[s.start..s.end].iter().collect::<String>();
        assert_eq!(slice(&spans[0]), "Angela Merkel");
        assert_eq!(slice(&spans[2]), "Berlin");
        assert!((spans[0].score - 0.64).abs() < 1e-12);
        assert!((spans[2].score - (1.0 - 0.1 * 0.7)).abs() < 1e-12);
        // Evidence: each feature once at its highest activation; equal precisions, so the
        // stronger activation first. Feature 12 is not in the profile.
        assert_eq!(evidence(&spans[0]), [(10, 3.0, 0.4), (11, 2.0, 0.4)]);
        assert_eq!(evidence(&spans[2]), [(20, 2.0, 0.9), (30, 1.0, 0.3)]);
    }

    #[test]
    fn max_keeps_only_single_strong_features() {
        let (corpus, alignment, codes) = toy();
        let spans = decode(&toy_profile(Combine::Max), &corpus, &alignment, &codes);
        assert_eq!(
            summary(&spans),
            [(0, 3, 4, 22, 27, "LOC"), (1, 0, 1, 28, 34, "LOC")]
        );
        assert!((spans[1].score - 0.9).abs() < 1e-12);
    }

    #[test]
    fn dense_activations_decode_like_sparse_codes() {
        let (corpus, alignment, codes) = toy();
        let profile = toy_profile(Combine::NoisyOr);
        let features = profile.features();
        assert_eq!(features, [10, 11, 20, 30]);
        let dense: Vec<f32> = codes
            .iter()
            .flat_map(|c| {
                features.iter().map(|f| match c.ids.binary_search(f) {
                    Ok(i) => c.values[i],
                    Err(_) => 0.0,
                })
            })
            .collect();
        let decoder = Decoder::new(&profile, profile.decoding).unwrap();
        let document = &corpus.documents[0];
        let from_dense = decoder
            .decode(document, &alignment, Activations::Dense(&dense))
            .unwrap();
        assert_eq!(from_dense, decode(&profile, &corpus, &alignment, &codes));
        let err = decoder
            .decode(document, &alignment, Activations::Dense(&dense[1..]))
            .unwrap_err();
        assert!(
            err.to_string().contains("7 tokens × 4 profile features"),
            "{err}"
        );
        assert!(decoder
            .decode(document, &alignment, Activations::Sparse(&codes[1..]))
            .is_err());
    }

    #[test]
    fn tau_and_threshold_gate_votes() {
        let (corpus, alignment, codes) = toy();
        let mut profile = toy_profile(Combine::NoisyOr);
        // At τ = 1.5 only Angela's f11 (2.0), Merkel's f10 (3.0) and Berlin's f20 (2.0) fire.
        profile.calibration.tau = 1.5;
        assert_eq!(
            summary(&decode(&profile, &corpus, &alignment, &codes)),
            [(1, 0, 1, 28, 34, "LOC")]
        );
        profile.decoding.threshold = 0.4;
        assert_eq!(
            summary(&decode(&profile, &corpus, &alignment, &codes)),
            [(0, 0, 2, 0, 13, "PER"), (1, 0, 1, 28, 34, "LOC")]
        );
        profile.decoding.threshold = 0.0;
        assert!(Decoder::new(&profile, profile.decoding).is_err());
    }

    #[test]
    fn extension_joins_weak_inner_words_of_the_same_type() {
        // "World Health Organization said": ORG strong on World and Organization, weak
        // (0.3) on Health, weak LOC (0.3) on "said".
        let corpus = conll("World B-ORG\nHealth I-ORG\nOrganization I-ORG\nsaid O\n");
        let document = &corpus.documents[0];
        let alignment = Alignment::new(document, &one_token_per_word(document)).unwrap();
        let codes = [
            code(&[]),
            code(&[(1, 1.0)]),
            code(&[(2, 1.0)]),
            code(&[(1, 1.0)]),
            code(&[(3, 1.0)]),
        ];
        let rows = [(1, "ORG", 0.9), (2, "ORG", 0.3), (3, "LOC", 0.3)];
        let spans = |extend| {
            let decoding = DecodeParams {
                extend,
                ..DecodeParams::default()
            };
            let profile = profile(&["ORG", "LOC"], &rows, &[], decoding);
            let decoder = Decoder::new(&profile, decoding).unwrap();
            decoder
                .decode(document, &alignment, Activations::Sparse(&codes))
                .unwrap()
                .iter()
                .map(|s| (s.word_start, s.word_end, s.label.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(spans(None), [(0, 1, "ORG".into()), (2, 3, "ORG".into())]);
        // "said" has no ORG score, and LOC does not extend an ORG entity.
        assert_eq!(spans(Some(0.25)), [(0, 3, "ORG".into())]);
        assert_eq!(spans(Some(0.35)), spans(None));
        let invalid = DecodeParams {
            extend: Some(0.6),
            ..DecodeParams::default()
        };
        assert!(invalid.validate().is_err());
    }

    #[test]
    fn pooling_picks_the_tokens_a_word_is_read_at() {
        // "Leicestershire won" as "▁Leicester" + "shire", "▁won"; LOC fires on "Leicester".
        let corpus = conll("Leicestershire B-LOC\nwon O\n");
        let document = &corpus.documents[0];
        let alignment = Alignment::new(document, &[(0, 0), (0, 9), (9, 14), (14, 18)]).unwrap();
        let codes = [code(&[]), code(&[(20, 1.0)]), code(&[]), code(&[])];
        let labels = |pooling| {
            let decoding = DecodeParams {
                pooling,
                ..DecodeParams::default()
            };
            let profile = profile(&["LOC"], &[(20, "LOC", 0.9)], &[], decoding);
            let decoder = Decoder::new(&profile, decoding).unwrap();
            let spans = decoder
                .decode(document, &alignment, Activations::Sparse(&codes))
                .unwrap();
            spans.iter().map(|s| (s.start, s.end)).collect::<Vec<_>>()
        };
        assert_eq!(labels(WordPooling::First), [(0, 14)]);
        assert_eq!(labels(WordPooling::Max), [(0, 14)]);
        assert_eq!(labels(WordPooling::Last), []);
        assert_eq!(labels(WordPooling::Mean), []);
    }

    #[test]
    fn boundary_features_split_adjacent_entities() {
        let corpus = conll("Angela B-PER\nMerkel I-PER\nBarack B-PER\nObama I-PER\n");
        let document = &corpus.documents[0];
        let alignment = Alignment::new(document, &one_token_per_word(document)).unwrap();
        // Feature 50 marks first names, the first tokens of PER entities.
        let codes = [
            code(&[]),
            code(&[(10, 1.0), (50, 1.0)]),
            code(&[(10, 1.0)]),
            code(&[(10, 1.0), (50, 1.0)]),
            code(&[(10, 1.0)]),
        ];
        let spans = |boundary: &[(u32, &str, f64)]| {
            let rows = [(10, "PER", 0.9)];
            let profile = profile(&["PER", "LOC"], &rows, boundary, DecodeParams::default());
            let decoder = Decoder::new(&profile, profile.decoding).unwrap();
            let spans = decoder
                .decode(document, &alignment, Activations::Sparse(&codes))
                .unwrap();
            spans
                .iter()
                .map(|s| (s.word_start, s.word_end))
                .collect::<Vec<_>>()
        };
        assert_eq!(spans(&[]), [(0, 4)]);
        assert_eq!(spans(&[(50, "PER", 0.7)]), [(0, 2), (2, 4)]);
        // A boundary feature of another type does not split.
        assert_eq!(spans(&[(50, "LOC", 0.7)]), [(0, 4)]);
    }

    #[test]
    fn decoded_corpus_scores_against_gold() {
        let (gold, alignment, codes) = toy();
        let spans = decode(&toy_profile(Combine::NoisyOr), &gold, &alignment, &codes);
        let predicted = Corpus {
            documents: vec![predicted_document(&gold.documents[0], &spans)],
            ..gold.clone()
        };
        assert_eq!(predicted.documents[0].sentences[1].tags(), ["B-LOC", "O"]);
        // Angela Merkel and Paris are right; Berlin is an ORG in gold.
        let report = evaluate_corpus(&gold, &predicted).unwrap();
        let micro = report.strict.micro;
        assert_eq!((micro.correct, micro.predicted, micro.support), (2, 3, 3));
        assert_eq!(report.errors.type_, 1);
        assert_eq!(report.strict.per_type["PER"].f1, 1.0);
    }

    #[test]
    fn calibrated_profile_decodes_its_own_data() {
        let corpus = conll("Angela B-PER\nMerkel I-PER\nvisited O\nParis B-LOC\n");
        let document = &corpus.documents[0];
        let alignment = Alignment::new(document, &one_token_per_word(document)).unwrap();
        let codes = [
            code(&[]),
            code(&[(1, 1.0), (2, 1.0)]),
            code(&[(1, 1.0)]),
            code(&[(2, 1.0)]),
            code(&[(3, 1.0)]),
        ];
        let labels = vec!["PER".to_string(), "LOC".to_string()];
        let mut counts = FeatureCounts::new(4, labels, vec![0.0]).unwrap();
        counts.add_document(document, &alignment, &codes).unwrap();
        let origin = Origin {
            model: "m".into(),
            layer: 3,
            sae_id: "s".into(),
            data_checksum: corpus.checksum(),
            echo: false,
            precision: saener_lm::Precision::F32,
        };
        let calibration = CalibrationParams {
            p_min: 0.9,
            s_min: 1,
            smoothing: Smoothing::Beta {
                alpha: 0.0,
                beta: 0.0,
            },
            ..CalibrationParams::default()
        };
        let profile =
            Profile::calibrate(origin, &counts, calibration, DecodeParams::default()).unwrap();
        let kept: Vec<_> = profile
            .rows
            .iter()
            .map(|r| (r.feature, r.label.as_str()))
            .collect();
        assert_eq!(kept, [(1, "PER"), (3, "LOC")]);
        assert_eq!(profile.label_tokens["PER"], 2);
        assert_eq!(profile.tokens, 4);
        assert_eq!(Profile::parse(&profile.to_json(), "p").unwrap(), profile);
        let decoder = Decoder::new(&profile, profile.decoding).unwrap();
        let spans = decoder
            .decode(document, &alignment, Activations::Sparse(&codes))
            .unwrap();
        let found: Vec<_> = spans
            .iter()
            .map(|s| (s.start, s.end, s.label.as_str()))
            .collect();
        assert_eq!(found, [(0, 13, "PER"), (22, 27, "LOC")]);
    }

    #[test]
    fn profiles_decode_with_evidence_and_round_trip() {
        let encoded = nb_toy();
        let profile = nb_profile(true);
        assert_eq!(profile.features(), [1, 2, 3]);
        let json = profile.to_json();
        assert!(json.contains("\"1: 0 1 1 0 0\""), "{json}");
        assert_eq!(Profile::parse(&json, "nb.json").unwrap(), profile);
        let decoder = Decoder::new(&profile, profile.decoding).unwrap();
        let spans = &decoder.decode_corpus(&encoded).unwrap()[0];
        // Its own calibration sentence comes back.
        let found: Vec<(usize, usize, &str)> = spans
            .iter()
            .map(|s| (s.word_start, s.word_end, s.label.as_str()))
            .collect();
        assert_eq!(found, [(0, 2, "PER"), (3, 4, "LOC")]);
        for span in spans {
            assert!(span.score > 0.0 && span.score <= 1.0);
            let gains: Vec<f64> = span.evidence.iter().map(|e| e.log_odds.unwrap()).collect();
            assert!(!gains.is_empty() && gains.iter().all(|&g| g > 0.0));
            assert!(gains.windows(2).all(|w| w[0] >= w[1]), "{gains:?}");
        }
        assert_eq!(spans[1].evidence[0].feature, 3);
        assert_eq!(spans[1].evidence[0].precision, 1.0);
        let nb = profile.naive_bayes.as_ref().unwrap();
        let rows: Vec<(String, u32, u32)> = nb
            .type_rows(2, &profile.labels)
            .into_iter()
            .map(|r| (r.label, r.hits, r.support))
            .collect();
        assert_eq!(rows, [("PER".into(), 1, 2), ("LOC".into(), 0, 2)]);
        assert!(nb.type_rows(9, &profile.labels).is_empty());
        // Only the profile's features, as annotation encodes them, decode the same.
        let features = profile.features();
        let dense: Vec<f32> = encoded.codes[0]
            .iter()
            .flat_map(|c| {
                features.iter().map(|f| match c.ids.binary_search(f) {
                    Ok(i) => c.values[i],
                    Err(_) => 0.0,
                })
            })
            .collect();
        let from_dense = decoder
            .decode(
                &encoded.corpus.documents[0],
                &encoded.alignments[0],
                Activations::Dense(&dense),
            )
            .unwrap();
        assert_eq!(&from_dense, spans);
    }
}
