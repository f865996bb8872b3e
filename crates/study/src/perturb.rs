//! Controlled noise on a corpus's entities, for measuring how annotation noise moves scores.
//! Only entities change; documents, sentences and words stay as they are.
//!
//! Deterministic for a seed: the random stream is rand's `StdRng` seeded from the `u64`,
//! which is stable for the rand version pinned in `Cargo.lock`.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use saener_ner::{Corpus, Entity, Error, Result, Sentence};

/// What to do to `round(rate × n)` entities, `n` the number of entities in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PerturbKind {
    /// False negatives: drop entities chosen uniformly.
    Fn,
    /// Boundary errors: move one edge of an entity by one word, extending or shrinking it,
    /// never to an empty span and never so that it overlaps or touches another entity
    /// (touching same-type entities would merge under IOB1 and conlleval). The edge and
    /// direction are drawn among the allowed moves; an entity with none is passed over for
    /// another. Each entity moves at most once.
    Boundary,
    /// False positives: add entities of a type drawn uniformly from the corpus's types, with
    /// lengths drawn from the gold length distribution, at uniformly drawn word positions
    /// that neither overlap nor touch any entity. `rate` may exceed 1.
    Fp,
    /// Type errors: entities chosen uniformly get another type, drawn uniformly from the
    /// corpus's other types (which needs at least two types); boundaries stay.
    Type,
}

/// Tries per spurious entity before concluding the corpus has no room left for it.
const PLACEMENT_TRIES: usize = 1000;

/// A noisy copy of `corpus`; see [`PerturbKind`]. Fewer than `round(rate × n)` entities
/// change only when the corpus does not allow more (no movable entity left, no free room).
pub fn perturb(corpus: &Corpus, kind: PerturbKind, rate: f64, seed: u64) -> Result<Corpus> {
    let max = if kind == PerturbKind::Fp {
        f64::MAX
    } else {
        1.0
    };
    if !(0.0..=max).contains(&rate) {
        return Err(Error::Argument {
            name: format!("{kind:?} rate"),
            expected: format!("a number in 0..={max}"),
            found: rate.to_string(),
        });
    }
    let labels: Vec<String> = corpus.labels().into_iter().collect();
    if kind == PerturbKind::Type && rate > 0.0 && labels.len() < 2 {
        return Err(Error::Argument {
            name: "Type rate".into(),
            expected: "0 for a corpus with fewer than two entity types".into(),
            found: rate.to_string(),
        });
    }
    let mut out = corpus.clone();
    let mut rng = StdRng::seed_from_u64(seed);
    let addresses = entity_addresses(&out);
    let target = (rate * addresses.len() as f64).round() as usize;
    match kind {
        PerturbKind::Fn => drop_entities(&mut out, addresses, target, &mut rng),
        PerturbKind::Boundary => move_boundaries(&mut out, addresses, target, &mut rng),
        PerturbKind::Fp => add_spurious(&mut out, target, &mut rng),
        PerturbKind::Type => relabel(&mut out, addresses, target, &labels, &mut rng),
    }
    Ok(out)
}

/// (document, sentence, entity) index of every entity, in corpus order.
fn entity_addresses(corpus: &Corpus) -> Vec<(usize, usize, usize)> {
    let mut addresses = Vec::new();
    for (d, document) in corpus.documents.iter().enumerate() {
        for (s, sentence) in document.sentences.iter().enumerate() {
            addresses.extend((0..sentence.entities.len()).map(|e| (d, s, e)));
        }
    }
    addresses
}

fn drop_entities(
    corpus: &mut Corpus,
    mut addresses: Vec<(usize, usize, usize)>,
    count: usize,
    rng: &mut StdRng,
) {
    addresses.shuffle(rng);
    let mut doomed = addresses[..count].to_vec();
    doomed.sort_unstable();
    // From the back, so that the indices still to remove stay valid.
    for &(d, s, e) in doomed.iter().rev() {
        corpus.documents[d].sentences[s].entities.remove(e);
    }
}

fn relabel(
    corpus: &mut Corpus,
    mut addresses: Vec<(usize, usize, usize)>,
    count: usize,
    labels: &[String],
    rng: &mut StdRng,
) {
    addresses.shuffle(rng);
    for &(d, s, e) in &addresses[..count] {
        let entity = &mut corpus.documents[d].sentences[s].entities[e];
        let others: Vec<&String> = labels.iter().filter(|l| **l != entity.label).collect();
        entity.label = others.choose(rng).expect("two types or more").to_string();
    }
}

fn move_boundaries(
    corpus: &mut Corpus,
    mut addresses: Vec<(usize, usize, usize)>,
    count: usize,
    rng: &mut StdRng,
) {
    addresses.shuffle(rng);
    let mut moved = 0;
    for (d, s, e) in addresses {
        if moved == count {
            break;
        }
        let sentence = &mut corpus.documents[d].sentences[s];
        if let Some(&(start, end)) = boundary_moves(sentence, e).choose(rng) {
            let entity = &mut sentence.entities[e];
            (entity.start, entity.end) = (start, end);
            moved += 1;
        }
    }
}

/// The spans one edge move away from entity `e` that stay non-empty and keep a free word
/// between it and its neighbours (or the sentence edge).
fn boundary_moves(sentence: &Sentence, e: usize) -> Vec<(usize, usize)> {
    let Entity { start, end, .. } = sentence.entities[e];
    let min_start = if e == 0 {
        0
    } else {
        sentence.entities[e - 1].end + 1
    };
    let max_end = sentence
        .entities
        .get(e + 1)
        .map_or(sentence.words.len(), |next| next.start - 1);
    let mut moves = Vec::with_capacity(4);
    if end - start >= 2 {
        moves.extend([(start + 1, end), (start, end - 1)]);
    }
    if start > min_start {
        moves.push((start - 1, end));
    }
    if end < max_end {
        moves.push((start, end + 1));
    }
    moves
}

fn add_spurious(corpus: &mut Corpus, count: usize, rng: &mut StdRng) {
    let labels: Vec<String> = corpus.labels().into_iter().collect();
    let lengths: Vec<usize> = corpus
        .sentences()
        .flat_map(|s| &s.entities)
        .map(|e| e.end - e.start)
        .collect();
    // Sentences as (document, sentence), the index of their first word in the corpus, and
    // which of their words an entity covers.
    let mut places = Vec::new();
    let mut first_word = Vec::new();
    let mut covered: Vec<Vec<bool>> = Vec::new();
    let mut total = 0;
    for (d, document) in corpus.documents.iter().enumerate() {
        for (s, sentence) in document.sentences.iter().enumerate() {
            let mut taken = vec![false; sentence.words.len()];
            for entity in &sentence.entities {
                taken[entity.start..entity.end].fill(true);
            }
            places.push((d, s));
            first_word.push(total);
            covered.push(taken);
            total += sentence.words.len();
        }
    }
    for _ in 0..count {
        let Some(label) = labels.choose(rng).cloned() else {
            return;
        };
        let spot = (0..PLACEMENT_TRIES).find_map(|_| {
            let length = *lengths.choose(rng)?;
            let word = rng.gen_range(0..total);
            let i = first_word.partition_point(|&w| w <= word) - 1;
            let start = word - first_word[i];
            let taken = &covered[i];
            let end = start + length;
            // The span and one word on each side must be free.
            let free = end <= taken.len()
                && !taken[start.saturating_sub(1)..(end + 1).min(taken.len())]
                    .iter()
                    .any(|&t| t);
            free.then_some((i, start, end))
        });
        let Some((i, start, end)) = spot else {
            return;
        };
        covered[i][start..end].fill(true);
        let (d, s) = places[i];
        let entities = &mut corpus.documents[d].sentences[s].entities;
        let at = entities.partition_point(|x| x.start < start);
        entities.insert(at, Entity { start, end, label });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use saener_ner::{parse_conll, ConllOptions};
    use std::collections::BTreeSet;

    /// 300 sentences of 3–20 words with entities of 1–3 words, some adjacent, laid out by a
    /// fixed linear congruential sequence.
    fn corpus() -> Corpus {
        let mut state: u64 = 12345;
        let mut next = |n: u64| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) % n
        };
        let labels = ["PER", "LOC", "ORG"];
        let mut text = String::new();
        for s in 0..300 {
            let len = 3 + next(18) as usize;
            let mut i = 0;
            while i < len {
                if next(4) == 0 {
                    let label = labels[next(3) as usize];
                    let n = (1 + next(3) as usize).min(len - i);
                    for k in 0..n {
                        let prefix = if k == 0 { "B" } else { "I" };
                        text += &format!("w{s}_{}\t{prefix}-{label}\n", i + k);
                    }
                    i += n;
                } else {
                    text += &format!("w{s}_{i}\tO\n");
                    i += 1;
                }
            }
            text.push('\n');
        }
        parse_conll(text.as_bytes(), "synthetic", &ConllOptions::default())
            .unwrap()
            .corpus
    }

    const ALL: [PerturbKind; 4] = [
        PerturbKind::Fn,
        PerturbKind::Boundary,
        PerturbKind::Fp,
        PerturbKind::Type,
    ];

    type Spans = Vec<BTreeSet<Entity>>;

    /// Entities per sentence; asserts that the words did not change.
    fn entities(original: &Corpus, perturbed: &Corpus) -> (Spans, Spans) {
        let (mut before, mut after) = (Vec::new(), Vec::new());
        for (a, b) in original.sentences().zip(perturbed.sentences()) {
            assert_eq!(a.words, b.words);
            assert!(
                b.entities.windows(2).all(|w| w[0].end <= w[1].start),
                "sorted, disjoint"
            );
            before.push(a.entities.iter().cloned().collect());
            after.push(b.entities.iter().cloned().collect());
        }
        assert_eq!(original.documents.len(), perturbed.documents.len());
        (before, after)
    }

    /// Whether `e` overlaps or touches another entity of `others`.
    fn crowds(e: &Entity, others: &BTreeSet<Entity>) -> bool {
        others
            .iter()
            .any(|o| o != e && o.start <= e.end && e.start <= o.end)
    }

    fn n_entities(corpus: &Corpus) -> usize {
        corpus.stats().entities
    }

    #[test]
    fn fn_drops_the_requested_share() {
        let gold = corpus();
        let n = n_entities(&gold);
        let noisy = perturb(&gold, PerturbKind::Fn, 0.3, 1).unwrap();
        let (before, after) = entities(&gold, &noisy);
        assert!(before.iter().zip(&after).all(|(b, a)| a.is_subset(b)));
        let dropped = n - n_entities(&noisy);
        assert!(
            (dropped as f64 - 0.3 * n as f64).abs() <= 1.0,
            "{dropped} of {n}"
        );
    }

    #[test]
    fn boundary_moves_one_edge_by_one_word() {
        let gold = corpus();
        let n = n_entities(&gold);
        let noisy = perturb(&gold, PerturbKind::Boundary, 0.25, 2).unwrap();
        let (before, after) = entities(&gold, &noisy);
        let mut moved = 0;
        for (b, a) in before.iter().zip(&after) {
            assert_eq!(b.len(), a.len());
            for (old, new) in b.iter().zip(a) {
                if old == new {
                    continue;
                }
                moved += 1;
                assert_eq!(old.label, new.label);
                let shift = old.start.abs_diff(new.start) + old.end.abs_diff(new.end);
                assert_eq!(shift, 1, "{old:?} → {new:?}");
                assert!(new.start < new.end);
                // An extension's new word, and the word beyond it, belong to no other entity.
                let grown = if new.start < old.start {
                    Some(Entity {
                        start: new.start.saturating_sub(1),
                        end: new.start + 1,
                        ..new.clone()
                    })
                } else if new.end > old.end {
                    Some(Entity {
                        start: new.end - 1,
                        end: new.end + 1,
                        ..new.clone()
                    })
                } else {
                    None
                };
                if let Some(edge) = grown {
                    let others = a.iter().filter(|o| *o != new);
                    assert!(
                        others
                            .clone()
                            .all(|o| o.end <= edge.start || edge.end <= o.start),
                        "{new:?} in {a:?}"
                    );
                }
            }
        }
        assert!(
            (moved as f64 - 0.25 * n as f64).abs() <= 1.0,
            "{moved} of {n}"
        );
    }

    #[test]
    fn fp_adds_free_standing_entities() {
        let gold = corpus();
        let n = n_entities(&gold);
        let labels = gold.labels();
        let lengths: BTreeSet<usize> = gold
            .sentences()
            .flat_map(|s| &s.entities)
            .map(|e| e.end - e.start)
            .collect();
        let noisy = perturb(&gold, PerturbKind::Fp, 0.2, 3).unwrap();
        let (before, after) = entities(&gold, &noisy);
        let mut added = 0;
        for (b, a) in before.iter().zip(&after) {
            assert!(b.is_subset(a));
            for new in a.difference(b) {
                added += 1;
                assert!(!crowds(new, a), "{new:?} crowds {a:?}");
                assert!(labels.contains(&new.label));
                assert!(lengths.contains(&(new.end - new.start)));
            }
        }
        assert!(
            (added as f64 - 0.2 * n as f64).abs() <= 1.0,
            "{added} of {n}"
        );
    }

    #[test]
    fn type_changes_labels_only() {
        let gold = corpus();
        let noisy = perturb(&gold, PerturbKind::Type, 0.3, 2).unwrap();
        let (before, after) = entities(&gold, &noisy);
        let mut changed = 0;
        for (b, a) in before.iter().zip(&after) {
            let span = |e: &Entity| (e.start, e.end);
            assert_eq!(
                b.iter().map(span).collect::<Vec<_>>(),
                a.iter().map(span).collect::<Vec<_>>()
            );
            changed += b.iter().zip(a).filter(|(x, y)| x.label != y.label).count();
        }
        let n = n_entities(&gold) as f64;
        assert!((changed as f64 - 0.3 * n).abs() <= 1.0, "{changed} of {n}");

        let one_type = parse_conll(b"Ann B-PER\nsaw O\nBob B-PER\n", "one", &Default::default())
            .unwrap()
            .corpus;
        let err = perturb(&one_type, PerturbKind::Type, 0.5, 0).unwrap_err();
        assert!(matches!(err, Error::Argument { .. }), "{err}");
    }

    #[test]
    fn seeds_decide_the_outcome() {
        let gold = corpus();
        for kind in ALL {
            let a = perturb(&gold, kind, 0.1, 7).unwrap();
            assert_eq!(a, perturb(&gold, kind, 0.1, 7).unwrap(), "{kind:?}");
            assert_ne!(a, perturb(&gold, kind, 0.1, 8).unwrap(), "{kind:?}");
            assert_eq!(perturb(&gold, kind, 0.0, 7).unwrap(), gold, "{kind:?}");
        }
    }

    /// `NoiseRates` (what `saener diff` prints) reads back the rate a perturbation was made
    /// at, on its own kind only, within one entity.
    #[test]
    fn noise_rates_measure_each_perturbation_on_its_kind() {
        let gold = corpus();
        let n = n_entities(&gold) as f64;
        for kind in ALL {
            for rate in [0.1, 0.3, 0.5] {
                let noisy = perturb(&gold, kind, rate, 3).unwrap();
                let m = saener_ner::NoiseRates::measure(&gold, &noisy).unwrap();
                let measured = [m.false_negative, m.boundary, m.false_positive, m.type_];
                let on = ALL.iter().position(|&k| k == kind).unwrap();
                for (k, &r) in measured.iter().enumerate() {
                    let want = if k == on { rate } else { 0.0 };
                    assert!((r - want).abs() * n <= 1.0, "{kind:?} at {rate}: {m:?}");
                }
            }
        }
    }

    #[test]
    fn rejects_rates_out_of_range() {
        let gold = corpus();
        for (kind, rate) in [
            (PerturbKind::Fn, 1.5),
            (PerturbKind::Boundary, -0.1),
            (PerturbKind::Fp, f64::NAN),
            (PerturbKind::Fp, f64::INFINITY),
        ] {
            let err = perturb(&gold, kind, rate, 0).unwrap_err();
            assert!(matches!(err, Error::Argument { .. }), "{err}");
        }
        assert!(perturb(&gold, PerturbKind::Fp, 2.0, 0).is_ok());
    }
}
