//! Builders for the unit tests of alignment, calibration and decoding.

use saener_sae::SparseCode;

use crate::calibrate::CalibrationParams;
use crate::corpus::{parse_conll, ConllOptions, Corpus, Document, Sentence, Word};
use crate::decode::DecodeParams;
use crate::profile::{Origin, Profile, Row};

/// A document whose words are the given character spans of `text`, one sentence per slice
/// of spans, without entities.
pub(crate) fn document(text: &str, sentences: &[&[(usize, usize)]]) -> Document {
    let chars: Vec<char> = text.chars().collect();
    let sentences = sentences
        .iter()
        .map(|spans| Sentence {
            words: spans
                .iter()
                .map(|&(start, end)| Word {
                    text: chars[start..end].iter().collect(),
                    start,
                    end,
                    columns: Vec::new(),
                })
                .collect(),
            entities: Vec::new(),
        })
        .collect();
    Document {
        id: "d".into(),
        text: text.into(),
        sentences,
        docstart: None,
    }
}

/// A corpus from CoNLL lines (`word tag`, blank line between sentences).
pub(crate) fn conll(text: &str) -> Corpus {
    parse_conll(text.as_bytes(), "test.conll", &ConllOptions::default())
        .unwrap()
        .corpus
}

/// Gemma-like token spans for `document`: BOS, then one token per word that also covers the
/// separator before it (as `"▁word"` does).
pub(crate) fn one_token_per_word(document: &Document) -> Vec<(usize, usize)> {
    let mut offsets = vec![(0, 0)];
    let mut prev = 0;
    for word in document.sentences.iter().flat_map(|s| &s.words) {
        offsets.push((prev, word.end));
        prev = word.end;
    }
    offsets
}

/// A profile with the given `(feature, type, precision)` rows, decoded with `decoding`.
pub(crate) fn profile(
    labels: &[&str],
    rows: &[(u32, &str, f64)],
    boundary_rows: &[(u32, &str, f64)],
    decoding: DecodeParams,
) -> Profile {
    let rows_of = |rows: &[(u32, &str, f64)]| -> Vec<Row> {
        rows.iter()
            .map(|&(feature, label, precision)| Row {
                feature,
                label: label.to_string(),
                precision,
                support: 10,
                hits: (precision * 10.0).round() as u32,
            })
            .collect()
    };
    Profile {
        format: 1,
        created_by: "test".into(),
        origin: Origin {
            model: "gemma-3-270m".into(),
            layer: 9,
            sae_id: "sae-a".into(),
            data_checksum: "c0ffee".into(),
            echo: false,
            precision: saener_lm::Precision::F32,
        },
        d_sae: 64,
        labels: labels.iter().map(|l| l.to_string()).collect(),
        calibration: CalibrationParams::default(),
        counted_tokens: Default::default(),
        decoding,
        tokens: 100,
        label_tokens: labels.iter().map(|l| (l.to_string(), 10)).collect(),
        rows: rows_of(rows),
        boundary_rows: rows_of(boundary_rows),
        naive_bayes: None,
        contexts: Default::default(),
    }
}

/// A sparse code from `(feature, activation)` pairs in ascending feature order.
pub(crate) fn code(pairs: &[(u32, f32)]) -> SparseCode {
    SparseCode {
        ids: pairs.iter().map(|p| p.0).collect(),
        values: pairs.iter().map(|p| p.1).collect(),
    }
}
