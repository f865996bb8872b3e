//! Reads every CoNLL file of the shared data folder: counts, byte-identical round trip, and
//! a JSONL round trip. The data stays outside the repository (CoNLL-2003 is research-only):
//! the folder is `$SAENER_SHARED/data`, by default `shared/data` beside the checkout, and these
//! tests skip with a note without it (`saener_test_support::shared`).

use std::collections::BTreeMap;

use saener_ner::{
    evaluate_corpus, parse_conll, parse_jsonl, ConllOptions, Corpus, DocumentMode, TagScheme,
};

/// Counts of one file.
struct Expected {
    file: &'static str,
    documents: usize,
    sentences: usize,
    words: usize,
    entities: &'static [(&'static str, usize)],
}

/// Counted independently of this crate by a Python script over the raw files: documents =
/// `-DOCSTART-` lines; sentences = runs of non-blank lines other than `-DOCSTART-`; words =
/// those lines; entities = `B-` tags of the last column (the script also checked that every
/// `I-X` follows `B-X`/`I-X`, so each `B-` starts exactly one entity). They agree with each
/// folder's SOURCE.md.
const EXPECTED: &[Expected] = &[
    Expected {
        file: "bc5cdr/dev.conll",
        documents: 500,
        sentences: 4581,
        words: 117453,
        entities: &[("Chemical", 5347), ("Disease", 4246)],
    },
    Expected {
        file: "bc5cdr/train.conll",
        documents: 500,
        sentences: 4560,
        words: 118170,
        entities: &[("Chemical", 5203), ("Disease", 4182)],
    },
    Expected {
        file: "conll2003/dev.conll",
        documents: 216,
        sentences: 3250,
        words: 51362,
        entities: &[("LOC", 1837), ("MISC", 922), ("ORG", 1341), ("PER", 1842)],
    },
    Expected {
        file: "conll2003/test.conll",
        documents: 231,
        sentences: 3453,
        words: 46435,
        entities: &[("LOC", 1668), ("MISC", 702), ("ORG", 1661), ("PER", 1617)],
    },
    Expected {
        file: "conll2003/train.conll",
        documents: 946,
        sentences: 14041,
        words: 203621,
        entities: &[("LOC", 7140), ("MISC", 3438), ("ORG", 6321), ("PER", 6600)],
    },
    Expected {
        file: "ncbi_disease/dev.conll",
        documents: 100,
        sentences: 923,
        words: 23969,
        entities: &[("Disease", 787)],
    },
    Expected {
        file: "ncbi_disease/test.conll",
        documents: 100,
        sentences: 940,
        words: 24497,
        entities: &[("Disease", 960)],
    },
    Expected {
        file: "ncbi_disease/train.conll",
        documents: 592,
        sentences: 5424,
        words: 135701,
        entities: &[("Disease", 5134)],
    },
];

/// Every expected file as (name, bytes, corpus read with `mode`); none, with a note saying
/// so, when the shared data folder is absent (a bare clone), unless `SAENER_REQUIRE_SHARED`.
fn each_file(mode: DocumentMode) -> Vec<(&'static str, Vec<u8>, Corpus)> {
    let Some(dir) = saener_test_support::shared("data") else {
        return Vec::new();
    };
    let options = ConllOptions {
        documents: mode,
        ..Default::default()
    };
    EXPECTED
        .iter()
        .map(|&Expected { file: name, .. }| {
            let bytes = std::fs::read(dir.join(name)).unwrap();
            let loaded = parse_conll(&bytes, name, &options).unwrap();
            assert!(
                loaded.warnings.is_empty(),
                "{name}: {:?}",
                &loaded.warnings[..1]
            );
            assert_eq!(loaded.scheme, Some(TagScheme::Iob2), "{name}");
            (name, bytes, loaded.corpus)
        })
        .collect()
}

#[test]
fn counts_match_independent_counts() {
    for ((name, _, corpus), expected) in each_file(DocumentMode::Auto).iter().zip(EXPECTED) {
        let stats = corpus.stats();
        let per_label: BTreeMap<String, usize> = expected
            .entities
            .iter()
            .map(|&(label, n)| (label.to_string(), n))
            .collect();
        assert_eq!(
            (stats.documents, stats.sentences, stats.words),
            (expected.documents, expected.sentences, expected.words),
            "{name}"
        );
        assert_eq!(stats.per_label, per_label, "{name}");
        assert_eq!(stats.entities, per_label.values().sum::<usize>(), "{name}");
    }
}

#[test]
fn conll2003_test_has_the_published_totals() {
    let files = each_file(DocumentMode::Auto);
    if let Some((_, _, corpus)) = files.iter().find(|f| f.0 == "conll2003/test.conll") {
        let stats = corpus.stats();
        assert_eq!((stats.sentences, stats.entities), (3453, 5648));
    }
}

#[test]
fn writing_reproduces_the_files_byte_for_byte() {
    for mode in [DocumentMode::Auto, DocumentMode::Sentences] {
        for (name, bytes, corpus) in each_file(mode) {
            assert!(corpus.to_conll().as_bytes() == bytes, "{name} ({mode:?})");
            if mode == DocumentMode::Sentences {
                assert_eq!(corpus.documents.len(), corpus.stats().sentences, "{name}");
            }
        }
    }
}

#[test]
fn jsonl_round_trip_keeps_entity_spans() {
    let char_spans = |corpus: &Corpus| -> Vec<(usize, usize, usize, String)> {
        let mut spans = Vec::new();
        for (d, document) in corpus.documents.iter().enumerate() {
            for sentence in &document.sentences {
                for entity in &sentence.entities {
                    let (start, end) = sentence.char_span(entity);
                    spans.push((d, start, end, entity.label.clone()));
                }
            }
        }
        spans
    };
    for (name, _, corpus) in each_file(DocumentMode::Auto) {
        let jsonl = corpus.to_jsonl();
        let back = parse_jsonl(jsonl.as_bytes(), name).unwrap();
        // CoNLL words that hold punctuation are split further, but entity edges stay on
        // word edges, so nothing is snapped.
        assert!(
            back.warnings.is_empty(),
            "{name}: {:?}",
            &back.warnings[..1]
        );
        assert_eq!(char_spans(&back.corpus), char_spans(&corpus), "{name}");
        assert_eq!(back.corpus.to_jsonl(), jsonl, "{name}");
    }
}

/// An oracle profile (feature `l` fires inside gold entities of label `l`, feature `100 + l`
/// on their first word) decodes every file back to its gold entities, and every span's
/// character offsets slice the document text back to exactly its words.
#[test]
fn oracle_codes_decode_to_gold_with_exact_offsets() {
    use saener_ner::{
        predicted_document, Activations, Alignment, DecodeParams, Decoder, Origin, Profile, Row,
    };
    use saener_sae::SparseCode;
    for (name, _, corpus) in each_file(DocumentMode::Auto) {
        let labels: Vec<String> = corpus.labels().into_iter().collect();
        let row = |feature: usize, label: &String| Row {
            feature: feature as u32,
            label: label.clone(),
            precision: 0.9,
            support: 10,
            hits: 9,
        };
        let profile = Profile {
            format: 1,
            created_by: "test".into(),
            origin: Origin {
                model: "m".into(),
                layer: 9,
                sae_id: "s".into(),
                data_checksum: corpus.checksum(),
                echo: false,
                precision: saener_lm::Precision::F32,
            },
            d_sae: 200,
            labels: labels.clone(),
            calibration: Default::default(),
            counted_tokens: Default::default(),
            decoding: DecodeParams::default(),
            tokens: 1,
            label_tokens: Default::default(),
            rows: labels.iter().enumerate().map(|(l, x)| row(l, x)).collect(),
            boundary_rows: labels
                .iter()
                .enumerate()
                .map(|(l, x)| row(100 + l, x))
                .collect(),
            naive_bayes: None,
            contexts: Default::default(),
        };
        let decoder = Decoder::new(&profile, profile.decoding).unwrap();
        let mut predicted = corpus.clone();
        for (document, out) in corpus.documents.iter().zip(&mut predicted.documents) {
            // BOS, then one token per word covering the separator before it ("▁word").
            let mut offsets = vec![(0, 0)];
            let mut codes = vec![SparseCode::default()];
            let mut prev = 0;
            for sentence in &document.sentences {
                let mut tags = vec![None; sentence.words.len()];
                for e in &sentence.entities {
                    let l = labels.iter().position(|x| *x == e.label).unwrap() as u32;
                    tags[e.start] = Some((l, true));
                    tags[e.start + 1..e.end].fill(Some((l, false)));
                }
                for (word, tag) in sentence.words.iter().zip(tags) {
                    offsets.push((prev, word.end));
                    prev = word.end;
                    codes.push(match tag {
                        None => SparseCode::default(),
                        Some((l, first)) => SparseCode {
                            ids: [l].into_iter().chain(first.then_some(100 + l)).collect(),
                            values: vec![1.0; 1 + usize::from(first)],
                        },
                    });
                }
            }
            let alignment = Alignment::new(document, &offsets).unwrap();
            let spans = decoder
                .decode(document, &alignment, Activations::Sparse(&codes))
                .unwrap();
            let chars: Vec<char> = document.text.chars().collect();
            for span in &spans {
                let words = &document.sentences[span.sentence].words;
                let first = &words[span.word_start];
                let last = &words[span.word_end - 1];
                assert_eq!((span.start, span.end), (first.start, last.end), "{name}");
                let slice: String = chars[span.start..span.end].iter().collect();
                assert!(
                    slice.starts_with(&first.text) && slice.ends_with(&last.text),
                    "{name}: {slice:?}"
                );
                let joined: String = words[span.word_start..span.word_end]
                    .iter()
                    .map(|w| w.text.as_str())
                    .collect();
                assert_eq!(
                    slice.split_whitespace().collect::<String>(),
                    joined,
                    "{name}"
                );
            }
            *out = predicted_document(document, &spans);
        }
        let report = evaluate_corpus(&corpus, &predicted).unwrap();
        assert_eq!(report.strict.micro.f1, 1.0, "{name}");
    }
}
