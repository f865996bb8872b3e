//! Entity-level evaluation: exact match of type and both boundaries, under two counting
//! conventions that differ only on invalid IOB2 (an `I-X` that continues no entity):
//!
//! - **strict** — seqeval `mode='strict', scheme=IOB2`: an entity is `B-X` followed by
//!   `I-X`*; an `I-X` that does not continue an open `X` entity, and the `I-` run it heads,
//!   is no entity at all.
//! - **conlleval** — conlleval.pl's chunking: an `I-X` after `O`, after another type, or at
//!   a sentence start starts an entity (as if it were `B-X`).
//!
//! Tags are `O`, `B-<type>` or `I-<type>`. Gold read by [`crate::corpus`] is always valid,
//! so the two conventions differ only through the predictions.
//!
//! Precision = correct / predicted, recall = correct / gold, F1 = 2PR / (P + R), each 0
//! when its denominator is 0 (seqeval's and conlleval's default). Macro averages are the
//! unweighted means of the per-type precision, recall and F1 over the types that occur in
//! gold or predictions (seqeval's convention); 0 when there is no type at all.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::corpus::{Corpus, Entity, Sentence};
use crate::tags::{self, Chunk, Prefix, Tag};
use crate::{Error, Result};

/// Precision, recall and F1 (fractions in 0–1) with the counts behind them. For a macro
/// average the counts are the totals over all types, as for the micro average.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Prf {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Predicted entities that match a gold entity exactly.
    pub correct: usize,
    /// Predicted entities.
    pub predicted: usize,
    /// Gold entities.
    pub support: usize,
}

impl Prf {
    fn from_counts(correct: usize, predicted: usize, support: usize) -> Prf {
        let ratio = |n: usize, d: usize| if d == 0 { 0.0 } else { n as f64 / d as f64 };
        let (precision, recall) = (ratio(correct, predicted), ratio(correct, support));
        Prf {
            precision,
            recall,
            f1: f1(precision, recall),
            correct,
            predicted,
            support,
        }
    }
}

fn f1(precision: f64, recall: f64) -> f64 {
    if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    }
}

/// Scores under one counting convention.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scores {
    pub micro: Prf,
    #[serde(rename = "macro")]
    pub macro_: Prf,
    /// Per entity type, over the types in gold or predictions.
    pub per_type: BTreeMap<String, Prf>,
}

/// Where predictions go wrong, over strict entities. Every predicted entity is exactly one
/// of `correct`, `type_`, `boundary`, `boundary_type` or `spurious`; `missed` counts gold
/// entities. Spans overlap when they share at least one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ErrorBreakdown {
    /// Prediction equal to a gold entity in type and both boundaries.
    pub correct: usize,
    /// Prediction with the boundaries of a gold entity but another type.
    #[serde(rename = "type")]
    pub type_: usize,
    /// Prediction overlapping a gold entity of its type, with other boundaries.
    pub boundary: usize,
    /// Prediction overlapping gold entities, none of its type or boundaries.
    pub boundary_type: usize,
    /// Prediction overlapping no gold entity.
    pub spurious: usize,
    /// Gold entity overlapped by no prediction.
    pub missed: usize,
}

/// The full evaluation: both conventions and the error breakdown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    pub strict: Scores,
    pub conlleval: Scores,
    pub errors: ErrorBreakdown,
}

/// How noisy an annotation of a corpus is against its gold annotation, each rate a share
/// of the *gold* entities — the unit `saener_study::perturb` works in, so a corpus perturbed
/// at rate R measures R on its kind. Counted from the [`ErrorBreakdown`]:
///
/// - `false_negative`: gold entities that no annotated entity overlaps (missed);
/// - `false_positive`: annotated entities that overlap no gold entity (spurious);
/// - `boundary`: annotated entities overlapping a gold entity of their type, with other
///   boundaries;
/// - `type_`: annotated entities overlapping gold entities of other types only, with the
///   same boundaries as one of them or not (the type is wrong either way).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NoiseRates {
    pub gold_entities: usize,
    pub annotated_entities: usize,
    pub false_negative: f64,
    pub false_positive: f64,
    pub boundary: f64,
    #[serde(rename = "type")]
    pub type_: f64,
}

impl NoiseRates {
    /// The noise of `annotated` (a copy of `gold`'s words with other entities).
    pub fn measure(gold: &Corpus, annotated: &Corpus) -> Result<NoiseRates> {
        let errors = evaluate_corpus(gold, annotated)?.errors;
        let count = |c: &Corpus| c.sentences().map(|s| s.entities.len()).sum::<usize>();
        let gold_entities = count(gold);
        let share = |k: usize| k as f64 / gold_entities.max(1) as f64;
        Ok(NoiseRates {
            gold_entities,
            annotated_entities: count(annotated),
            false_negative: share(errors.missed),
            false_positive: share(errors.spurious),
            boundary: share(errors.boundary),
            type_: share(errors.type_ + errors.boundary_type),
        })
    }
}

impl fmt::Display for NoiseRates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} gold entities, {} annotated; as shares of the gold entities:",
            self.gold_entities, self.annotated_entities
        )?;
        for (name, rate) in [
            ("false negatives", self.false_negative),
            ("false positives", self.false_positive),
            ("boundary errors", self.boundary),
            ("type errors", self.type_),
        ] {
            writeln!(f, "  {name:<16} {:6.2} %", 100.0 * rate)?;
        }
        Ok(())
    }
}

/// An entity of the evaluation: sentence index and chunk.
type Span<'a> = (usize, Chunk<'a>);

/// Evaluates predicted tag sequences against gold ones, sentence by sentence. Both must
/// have the same number of sentences and the same length per sentence.
pub fn evaluate<G: AsRef<str>, P: AsRef<str>>(
    gold: &[Vec<G>],
    pred: &[Vec<P>],
) -> Result<EvalReport> {
    if gold.len() != pred.len() {
        let at = "the number of sentences";
        return Err(mismatch(at, gold.len(), pred.len()));
    }
    let mut gold_tags = Vec::with_capacity(gold.len());
    let mut pred_tags = Vec::with_capacity(pred.len());
    for (s, (g, p)) in gold.iter().zip(pred).enumerate() {
        if g.len() != p.len() {
            let (g, p) = (format!("{} tags", g.len()), format!("{} tags", p.len()));
            return Err(mismatch(format!("sentence {s}"), g, p));
        }
        gold_tags.push(parse_sequence(g, "gold", s)?);
        pred_tags.push(parse_sequence(p, "predicted", s)?);
    }
    let strict_gold = spans(&gold_tags, tags::strict_chunks);
    let strict_pred = spans(&pred_tags, tags::strict_chunks);
    let conll_gold = spans(&gold_tags, tags::lenient_chunks);
    let conll_pred = spans(&pred_tags, tags::lenient_chunks);
    Ok(EvalReport {
        strict: score(&strict_gold, &strict_pred),
        conlleval: score(&conll_gold, &conll_pred),
        errors: breakdown(&strict_gold, &strict_pred),
    })
}

/// Evaluates a predicted corpus against a gold one with the same documents, sentences and
/// words (a copy of the gold corpus with other entities). Corpus entities are valid spans,
/// so both conventions agree here.
pub fn evaluate_corpus(gold: &Corpus, pred: &Corpus) -> Result<EvalReport> {
    let (gold_docs, pred_docs) = (&gold.documents, &pred.documents);
    if gold_docs.len() != pred_docs.len() {
        let at = "the number of documents";
        return Err(mismatch(at, gold_docs.len(), pred_docs.len()));
    }
    let (mut gold_tags, mut pred_tags) = (Vec::new(), Vec::new());
    for (gd, pd) in gold_docs.iter().zip(pred_docs) {
        if gd.sentences.len() != pd.sentences.len() {
            let at = format!("document {} (number of sentences)", gd.id);
            return Err(mismatch(at, gd.sentences.len(), pd.sentences.len()));
        }
        for (k, (gs, ps)) in gd.sentences.iter().zip(&pd.sentences).enumerate() {
            let words =
                |s: &Sentence| -> Vec<String> { s.words.iter().map(|w| w.text.clone()).collect() };
            let (gw, pw) = (words(gs), words(ps));
            if gw != pw {
                let at = format!("document {} sentence {k}", gd.id);
                return Err(mismatch(at, gw.join(" "), pw.join(" ")));
            }
            gold_tags.push(gs.tags());
            pred_tags.push(ps.tags());
        }
    }
    evaluate(&gold_tags, &pred_tags)
}

fn mismatch(at: impl Into<String>, gold: impl fmt::Display, pred: impl fmt::Display) -> Error {
    Error::Mismatch {
        at: at.into(),
        gold: gold.to_string(),
        pred: pred.to_string(),
    }
}

/// The chunks of every sentence, tagged with the sentence index.
fn spans<'a>(tags: &[Vec<Tag<'a>>], chunker: fn(&[Tag<'a>]) -> Vec<Chunk<'a>>) -> Vec<Span<'a>> {
    tags.iter()
        .enumerate()
        .flat_map(|(s, t)| chunker(t).into_iter().map(move |c| (s, c)))
        .collect()
}

fn parse_sequence<'a, T: AsRef<str>>(
    tags: &'a [T],
    side: &str,
    sentence: usize,
) -> Result<Vec<Tag<'a>>> {
    tags.iter()
        .enumerate()
        .map(|(i, t)| match tags::parse_tag(t.as_ref()) {
            Some(tag @ (None | Some((Prefix::B | Prefix::I, _)))) => Ok(tag),
            _ => Err(Error::Tag {
                at: format!("{side} sentence {sentence} token {i}"),
                tag: t.as_ref().to_string(),
            }),
        })
        .collect()
}

fn score(gold: &[Span<'_>], pred: &[Span<'_>]) -> Scores {
    let gold_set: HashSet<&Span<'_>> = gold.iter().collect();
    // Per type: (correct, predicted, gold).
    let mut counts: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    for span in gold {
        counts.entry(span.1.label).or_default().2 += 1;
    }
    for span in pred {
        let entry = counts.entry(span.1.label).or_default();
        entry.1 += 1;
        if gold_set.contains(span) {
            entry.0 += 1;
        }
    }
    let per_type: BTreeMap<String, Prf> = counts
        .iter()
        .map(|(label, &(c, p, g))| (label.to_string(), Prf::from_counts(c, p, g)))
        .collect();
    let (c, p, g) = counts
        .values()
        .fold((0, 0, 0), |acc, v| (acc.0 + v.0, acc.1 + v.1, acc.2 + v.2));
    let micro = Prf::from_counts(c, p, g);
    let mean = |field: fn(&Prf) -> f64| {
        if per_type.is_empty() {
            0.0
        } else {
            per_type.values().map(field).sum::<f64>() / per_type.len() as f64
        }
    };
    let macro_ = Prf {
        precision: mean(|s| s.precision),
        recall: mean(|s| s.recall),
        f1: mean(|s| s.f1),
        ..micro
    };
    Scores {
        micro,
        macro_,
        per_type,
    }
}

/// The spans of sentence `s`; spans are in sentence order.
fn in_sentence<'s, 'a>(spans: &'s [Span<'a>], s: usize) -> &'s [Span<'a>] {
    let from = spans.partition_point(|x| x.0 < s);
    let to = spans.partition_point(|x| x.0 <= s);
    &spans[from..to]
}

/// How one predicted entity (or one missed gold entity) fared; see [`ErrorBreakdown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Correct,
    Type,
    Boundary,
    BoundaryType,
    Spurious,
    Missed,
}

/// One judged entity: a prediction with the gold entity it is judged against (none when
/// spurious), or a missed gold entity. `sentence` counts sentences over the whole corpus,
/// in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judged {
    pub outcome: Outcome,
    pub sentence: usize,
    pub predicted: Option<Entity>,
    pub gold: Option<Entity>,
}

fn entity(span: &Span<'_>) -> Entity {
    Entity {
        start: span.1.start,
        end: span.1.end,
        label: span.1.label.to_string(),
    }
}

/// Every prediction, then every missed gold entity, judged; counting the outcomes gives
/// the [`ErrorBreakdown`].
fn judge(gold: &[Span<'_>], pred: &[Span<'_>]) -> Vec<Judged> {
    // Only spans of one sentence are compared.
    let overlaps = |a: &Span<'_>, b: &Span<'_>| a.1.start < b.1.end && b.1.start < a.1.end;
    let same_bounds = |a: &Span<'_>, b: &Span<'_>| (a.1.start, a.1.end) == (b.1.start, b.1.end);
    let mut judged = Vec::new();
    for p in pred {
        let near: Vec<&Span<'_>> = in_sentence(gold, p.0)
            .iter()
            .filter(|g| overlaps(g, p))
            .collect();
        let (outcome, against) = if near.is_empty() {
            (Outcome::Spurious, None)
        } else if let Some(g) = near.iter().find(|g| same_bounds(g, p)) {
            let outcome = if g.1.label == p.1.label {
                Outcome::Correct
            } else {
                Outcome::Type
            };
            (outcome, Some(*g))
        } else if let Some(g) = near.iter().find(|g| g.1.label == p.1.label) {
            (Outcome::Boundary, Some(*g))
        } else {
            (Outcome::BoundaryType, Some(near[0]))
        };
        judged.push(Judged {
            outcome,
            sentence: p.0,
            predicted: Some(entity(p)),
            gold: against.map(entity),
        });
    }
    for g in gold {
        if !in_sentence(pred, g.0).iter().any(|p| overlaps(g, p)) {
            judged.push(Judged {
                outcome: Outcome::Missed,
                sentence: g.0,
                predicted: None,
                gold: Some(entity(g)),
            });
        }
    }
    judged
}

fn parse_all<'a>(tags: &'a [Vec<String>], side: &str) -> Result<Vec<Vec<Tag<'a>>>> {
    tags.iter()
        .enumerate()
        .map(|(s, t)| parse_sequence(t, side, s))
        .collect()
}

fn breakdown(gold: &[Span<'_>], pred: &[Span<'_>]) -> ErrorBreakdown {
    let mut errors = ErrorBreakdown::default();
    for j in judge(gold, pred) {
        *match j.outcome {
            Outcome::Correct => &mut errors.correct,
            Outcome::Type => &mut errors.type_,
            Outcome::Boundary => &mut errors.boundary,
            Outcome::BoundaryType => &mut errors.boundary_type,
            Outcome::Spurious => &mut errors.spurious,
            Outcome::Missed => &mut errors.missed,
        } += 1;
    }
    errors
}

/// Every predicted and missed entity of `pred` against `gold` (same documents, sentences
/// and words, as for [`evaluate_corpus`]), judged as the error breakdown counts them.
pub fn judge_corpus(gold: &Corpus, pred: &Corpus) -> Result<Vec<Judged>> {
    // Checks that the corpora line up, with the same errors as the metrics.
    evaluate_corpus(gold, pred)?;
    let sentences = |c: &'_ Corpus| -> Vec<Sentence> {
        c.documents
            .iter()
            .flat_map(|d| d.sentences.clone())
            .collect()
    };
    let (gold, pred) = (sentences(gold), sentences(pred));
    let spans_of = |sentences: &[Sentence]| -> Vec<Vec<String>> {
        sentences.iter().map(Sentence::tags).collect()
    };
    let (gold_tags, pred_tags) = (spans_of(&gold), spans_of(&pred));
    let (g, p) = (
        parse_all(&gold_tags, "gold")?,
        parse_all(&pred_tags, "predicted")?,
    );
    Ok(judge(
        &spans(&g, tags::strict_chunks),
        &spans(&p, tags::strict_chunks),
    ))
}

impl fmt::Display for EvalReport {
    /// A text table per convention (per type, micro, macro; percentages) and the errors.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (title, scores) in [
            ("strict (seqeval IOB2)", &self.strict),
            ("conlleval", &self.conlleval),
        ] {
            writeln!(
                f,
                "{title:<24} {:>9} {:>7} {:>7} {:>8} {:>9} {:>7}",
                "precision", "recall", "f1", "correct", "predicted", "gold"
            )?;
            let rows = scores
                .per_type
                .iter()
                .map(|(label, prf)| (label.as_str(), prf))
                .chain([("micro", &scores.micro), ("macro", &scores.macro_)]);
            for (name, prf) in rows {
                writeln!(
                    f,
                    "  {name:<22} {:>9.2} {:>7.2} {:>7.2} {:>8} {:>9} {:>7}",
                    100.0 * prf.precision,
                    100.0 * prf.recall,
                    100.0 * prf.f1,
                    prf.correct,
                    prf.predicted,
                    prf.support
                )?;
            }
        }
        let e = &self.errors;
        writeln!(
            f,
            "errors (strict): correct {}, type {}, boundary {}, boundary+type {}, spurious {}, missed {}",
            e.correct, e.type_, e.boundary, e.boundary_type, e.spurious, e.missed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(gold: &[&[&str]], pred: &[&[&str]]) -> EvalReport {
        let owned = |x: &[&[&str]]| -> Vec<Vec<String>> {
            x.iter()
                .map(|s| s.iter().map(|t| t.to_string()).collect())
                .collect()
        };
        evaluate(&owned(gold), &owned(pred)).unwrap()
    }

    fn assert_prf(prf: &Prf, precision: f64, recall: f64, f1: f64) {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(
            close(prf.precision, precision) && close(prf.recall, recall) && close(prf.f1, f1),
            "{prf:?} != ({precision}, {recall}, {f1})"
        );
    }

    // All expected values below were worked out by hand (chunks listed in the comments) and
    // agree with seqeval 1.2.2: classification_report(mode='strict', scheme=IOB2) for
    // `strict`, and the default (conlleval-compatible) mode for `conlleval`.

    #[test]
    fn inside_tag_after_outside() {
        // gold: PER[0,2) LOC[3,4). pred: strict drops the leading I-PER run → LOC only;
        // conlleval starts PER at the I-PER → PER[0,2) LOC[3,4).
        let r = run(
            &[&["B-PER", "I-PER", "O", "B-LOC"]],
            &[&["I-PER", "I-PER", "O", "B-LOC"]],
        );
        assert_prf(&r.strict.micro, 1.0, 0.5, 2.0 / 3.0);
        assert_prf(&r.strict.per_type["PER"], 0.0, 0.0, 0.0);
        assert_prf(&r.strict.per_type["LOC"], 1.0, 1.0, 1.0);
        assert_prf(&r.strict.macro_, 0.5, 0.5, 0.5);
        assert_prf(&r.conlleval.micro, 1.0, 1.0, 1.0);
        assert_prf(&r.conlleval.macro_, 1.0, 1.0, 1.0);
        let errors = ErrorBreakdown {
            correct: 1,
            missed: 1,
            ..Default::default()
        };
        assert_eq!(r.errors, errors);
    }

    #[test]
    fn inside_tag_after_other_type() {
        // gold: PER[0,1) ORG[1,2). pred B-PER I-ORG: strict → PER[0,1) only;
        // conlleval → PER[0,1) ORG[1,2), since the type change starts a chunk.
        let r = run(&[&["B-PER", "B-ORG", "O"]], &[&["B-PER", "I-ORG", "O"]]);
        assert_prf(&r.strict.micro, 1.0, 0.5, 2.0 / 3.0);
        assert_prf(&r.strict.per_type["ORG"], 0.0, 0.0, 0.0);
        assert_prf(&r.strict.macro_, 0.5, 0.5, 0.5);
        assert_prf(&r.conlleval.micro, 1.0, 1.0, 1.0);
        assert_prf(&r.conlleval.per_type["ORG"], 1.0, 1.0, 1.0);
    }

    #[test]
    fn stray_inside_tags_in_predictions() {
        // gold: s0 PER[2,4); s1 LOC[0,1) ORG[2,5); s2 MISC[0,2) — 4 entities.
        // strict pred: s0 PER[2,4); s1 LOC[0,1); s2 MISC[0,1) — 3, of which 2 correct.
        // conlleval pred: s0 MISC[1,2) PER[2,4); s1 LOC[0,1) ORG[3,5); s2 MISC[0,1) LOC[1,3)
        // — 6, of which 2 correct.
        let r = run(
            &[
                &["O", "O", "B-PER", "I-PER", "O"],
                &["B-LOC", "O", "B-ORG", "I-ORG", "I-ORG"],
                &["B-MISC", "I-MISC", "O"],
            ],
            &[
                &["O", "I-MISC", "B-PER", "I-PER", "O"],
                &["B-LOC", "O", "O", "I-ORG", "I-ORG"],
                &["B-MISC", "I-LOC", "I-LOC"],
            ],
        );
        // strict: P = 2/3, R = 2/4, F1 = 2·(2/3)(1/2) / (2/3 + 1/2) = 4/7.
        assert_prf(&r.strict.micro, 2.0 / 3.0, 0.5, 4.0 / 7.0);
        // per type LOC 1/1/1, MISC 0, ORG 0, PER 1/1/1 → macro 2/4 each.
        assert_prf(&r.strict.macro_, 0.5, 0.5, 0.5);
        assert_prf(&r.strict.per_type["MISC"], 0.0, 0.0, 0.0);
        assert_eq!(
            (
                r.strict.micro.correct,
                r.strict.micro.predicted,
                r.strict.micro.support
            ),
            (2, 3, 4)
        );
        // conlleval: P = 2/6, R = 2/4, F1 = 2·(1/3)(1/2) / (1/3 + 1/2) = 2/5.
        assert_prf(&r.conlleval.micro, 1.0 / 3.0, 0.5, 0.4);
        // LOC: 1 of 2 predicted, 1 of 1 gold → P 1/2, R 1, F1 2/3.
        assert_prf(&r.conlleval.per_type["LOC"], 0.5, 1.0, 2.0 / 3.0);
        assert_prf(&r.conlleval.per_type["ORG"], 0.0, 0.0, 0.0);
        // macro over LOC, MISC, ORG, PER: P (1/2+0+0+1)/4, R (1+0+0+1)/4, F1 (2/3+0+0+1)/4.
        assert_prf(&r.conlleval.macro_, 0.375, 0.5, 5.0 / 12.0);
        // strict errors: PER and LOC correct; MISC[0,1) vs gold MISC[0,2) boundary;
        // gold ORG[2,5) has no overlapping strict prediction → missed.
        let errors = ErrorBreakdown {
            correct: 2,
            boundary: 1,
            missed: 1,
            ..Default::default()
        };
        assert_eq!(r.errors, errors);
    }

    #[test]
    fn error_categories() {
        let r = run(
            &[
                &["B-PER", "I-PER", "O", "O", "B-LOC"],
                &["B-ORG", "I-ORG", "I-ORG", "O"],
                &["O", "B-LOC", "I-LOC", "O"],
                &["B-PER", "O"],
            ],
            &[
                // ORG[0,2) on gold PER[0,2): type; MISC[3,4): spurious; gold LOC[4,5): missed.
                &["B-ORG", "I-ORG", "O", "B-MISC", "O"],
                // ORG[0,2) on gold ORG[0,3): boundary.
                &["B-ORG", "I-ORG", "O", "O"],
                // PER[2,4) on gold LOC[1,3): boundary and type.
                &["O", "O", "B-PER", "I-PER"],
                &["B-PER", "O"],
            ],
        );
        let errors = ErrorBreakdown {
            correct: 1,
            type_: 1,
            boundary: 1,
            boundary_type: 1,
            spurious: 1,
            missed: 1,
        };
        assert_eq!(r.errors, errors);
        // 1 correct of 5 predicted and 5 gold; per type LOC 0, MISC 0, ORG 0, PER 1/2.
        assert_prf(&r.strict.micro, 0.2, 0.2, 0.2);
        assert_prf(&r.strict.macro_, 0.125, 0.125, 0.125);
        assert_eq!(r.strict, r.conlleval);
    }

    #[test]
    fn nothing_to_score_is_zero() {
        let r = run(&[&["O", "O"]], &[&["O", "O"]]);
        assert!(r.strict.per_type.is_empty());
        assert_prf(&r.strict.micro, 0.0, 0.0, 0.0);
        assert_prf(&r.conlleval.macro_, 0.0, 0.0, 0.0);
    }

    #[test]
    fn serializes_to_the_agreed_shape() {
        let r = run(&[&["B-PER", "O"]], &[&["B-PER", "B-LOC"]]);
        let json = serde_json::to_value(&r).unwrap();
        for convention in ["strict", "conlleval"] {
            for average in ["micro", "macro"] {
                for field in ["precision", "recall", "f1"] {
                    assert!(
                        json[convention][average][field].is_f64(),
                        "{convention}.{average}.{field}"
                    );
                }
            }
            assert_eq!(json[convention]["per_type"]["PER"]["f1"], 1.0);
            assert_eq!(json[convention]["per_type"]["LOC"]["precision"], 0.0);
        }
        assert_eq!(json["strict"]["micro"]["precision"], 0.5);
        assert_eq!(json["errors"]["type"], 0);
        assert_eq!(json["errors"]["spurious"], 1);
    }

    #[test]
    fn rejects_misaligned_or_invalid_input() {
        let err = evaluate(&[vec!["O"]], &[vec!["O", "O"]]).unwrap_err();
        assert!(matches!(err, Error::Mismatch { .. }), "{err}");
        let err = evaluate(&[vec!["O"]], &Vec::<Vec<&str>>::new()).unwrap_err();
        assert!(matches!(err, Error::Mismatch { .. }), "{err}");
        let err = evaluate(&[vec!["S-PER"]], &[vec!["O"]]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "gold sentence 0 token 0: invalid tag \"S-PER\": expected O, B-<type> or I-<type>"
        );
    }

    #[test]
    fn evaluates_corpora_with_the_same_words() {
        let text = "a B-PER\nb I-PER\nc O\n\nd B-LOC\n\n";
        let options = crate::corpus::ConllOptions::default();
        let gold = crate::corpus::parse_conll(text.as_bytes(), "g", &options)
            .unwrap()
            .corpus;
        let mut pred = gold.clone();
        pred.documents[0].sentences[0].entities[0].end = 1;
        let r = evaluate_corpus(&gold, &pred).unwrap();
        assert_prf(&r.strict.micro, 0.5, 0.5, 0.5);
        assert_eq!(r.errors.boundary, 1);
        pred.documents[1].sentences[0].words[0].text = "x".into();
        let err = evaluate_corpus(&gold, &pred).unwrap_err();
        assert_eq!(
            err.to_string(),
            "gold and predictions differ at document 1 sentence 0: gold has d, predictions have x"
        );
    }

    #[test]
    fn table_lists_types_and_averages() {
        let r = run(&[&["B-PER", "O"]], &[&["B-PER", "B-LOC"]]);
        let table = r.to_string();
        for needle in [
            "strict (seqeval IOB2)",
            "conlleval",
            "PER",
            "LOC",
            "micro",
            "macro",
            "spurious 1",
        ] {
            assert!(table.contains(needle), "{needle} missing from\n{table}");
        }
        assert!(table.contains("100.00"), "{table}");
    }
}
