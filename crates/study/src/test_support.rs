//! Builders for the unit tests.

use saener_ner::{parse_conll, ConllOptions, Corpus};

/// A corpus from CoNLL lines (`word tag`, blank line between sentences).
pub(crate) fn conll(text: &str) -> Corpus {
    parse_conll(text.as_bytes(), "test.conll", &ConllOptions::default())
        .unwrap()
        .corpus
}
