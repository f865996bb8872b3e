//! Builders for the unit tests of alignment, calibration and decoding.

use saener_sae::SparseCode;

use crate::align::Alignment;
use crate::bayes::NbCounts;
use crate::codes::EncodedCorpus;
use crate::corpus::{parse_conll, ConllOptions, Corpus, Document, Sentence, Word};
use crate::params::{CalibrationParams, DecodeParams, NbParams, Row};
use crate::profile::{Origin, Profile};

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

/// "Angela Merkel visited Paris" (B-PER I-PER O B-LOC), one token per word: feature 1
/// fires on both names' words, 2 on Merkel and "visited", 3 on Paris.
pub(crate) fn nb_toy() -> EncodedCorpus {
    let corpus = conll("Angela B-PER\nMerkel I-PER\nvisited O\nParis B-LOC\n");
    let document = &corpus.documents[0];
    let alignment = Alignment::new(document, &one_token_per_word(document)).unwrap();
    let codes = vec![
        code(&[(9, 500.0)]),
        code(&[(1, 2.0)]),
        code(&[(1, 1.0), (2, 3.0)]),
        code(&[(2, 1.0)]),
        code(&[(3, 4.0)]),
    ];
    EncodedCorpus {
        corpus,
        alignments: vec![alignment],
        codes: vec![codes],
    }
}

/// The types of [`nb_toy`].
pub(crate) fn nb_labels() -> Vec<String> {
    vec!["PER".into(), "LOC".into()]
}

/// Naive-Bayes scalars for the toy counts: add-one smoothing, Viterbi.
pub(crate) fn nb_params() -> NbParams {
    NbParams {
        alpha: 1.0,
        s_min: 1,
        scale: 1.0,
        absence: 1.0,
        bias: vec![0.0, 0.0],
        viterbi: true,
    }
}

/// [`nb_toy`] counted at τ 0 and 1.5, offsets 0 and +1.
pub(crate) fn nb_counts() -> NbCounts {
    NbCounts::from_corpus(&nb_toy(), 16, nb_labels(), vec![0.0, 1.5], vec![1, 0], None).unwrap()
}

/// A naive-Bayes profile counted on [`nb_toy`], decoded jointly or not.
pub(crate) fn nb_profile(viterbi: bool) -> Profile {
    let nb = NbParams {
        viterbi,
        ..nb_params()
    };
    let model = nb_counts().model(0.0, &[(0, 1.0), (1, 1.0)], &nb).unwrap();
    Profile {
        d_sae: 16,
        naive_bayes: Some(model),
        ..profile(&["PER", "LOC"], &[], &[], DecodeParams::default())
    }
}
