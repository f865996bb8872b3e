//! Perturbations of a real corpus score exactly as their kind and rate say. The data stays
//! outside the repository (CoNLL-2003 is research-only): `$SAENER_SHARED/data`, by default
//! `shared/data` beside the checkout; without it the test skips with a note
//! (`saener_test_support::shared`).

use saener_ner::{evaluate_corpus, read_conll, ConllOptions, Corpus};
use saener_study::{perturb, PerturbKind};

#[test]
fn perturbations_of_real_data_score_as_expected() {
    let Some(dir) = saener_test_support::shared("data") else {
        return;
    };
    let path = dir.join("conll2003/test.conll");
    let gold = &read_conll(&path, &ConllOptions::default()).unwrap().corpus;
    let n = gold.stats().entities; // 5,648
    let k = (0.2 * n as f64).round() as usize; // 1,130
    let scores = |pred: &Corpus| evaluate_corpus(gold, pred).unwrap();

    let same = scores(gold);
    assert_eq!((same.strict.micro.f1, same.conlleval.macro_.f1), (1.0, 1.0));

    // Dropping k entities: every remaining prediction is correct, recall is (n - k) / n.
    let dropped = scores(&perturb(gold, PerturbKind::Fn, 0.2, 11).unwrap());
    assert_eq!(dropped.strict.micro.correct, n - k);
    assert_eq!(dropped.strict.micro.precision, 1.0);
    assert_eq!(dropped.errors.missed, k);

    // Adding k spurious entities: precision is n / (n + k), and each one is spurious.
    let added = scores(&perturb(gold, PerturbKind::Fp, 0.2, 12).unwrap());
    assert_eq!(added.strict.micro.predicted, n + k);
    assert_eq!(added.errors.spurious, k);
    assert_eq!(added.strict.micro.recall, 1.0);

    // Moving k boundaries: exactly those k predictions are boundary errors.
    let moved = scores(&perturb(gold, PerturbKind::Boundary, 0.2, 13).unwrap());
    assert_eq!(moved.errors.boundary, k);
    assert_eq!(moved.strict.micro.correct, n - k);
    assert_eq!(moved.strict, moved.conlleval);
}
