//! Entry points shared by the fuzz targets in `fuzz/` and the tests that replay their
//! regression corpus. Each takes arbitrary bytes, must not panic on any input, and asserts
//! the invariants its reader or decoder promises (a failed assertion is a bug found).

use crate::align::Alignment;
use crate::corpus::{parse_conll, parse_jsonl, parse_text, Corpus, Document, TextMode};
use crate::decode::{Activations, Decoder};
use crate::profile::Profile;
use crate::ConllOptions;

/// The CoNLL reader: any bytes give a corpus or an error, and a corpus is well-formed.
pub fn conll(data: &[u8]) {
    if let Ok(loaded) = parse_conll(data, "fuzz.conll", &ConllOptions::default()) {
        check_corpus(&loaded.corpus);
        // What the writer writes, the reader reads back to the same words and entities.
        let again = parse_conll(
            loaded.corpus.to_conll().as_bytes(),
            "again.conll",
            &ConllOptions::default(),
        )
        .expect("the writer's output parses");
        check_corpus(&again.corpus);
    }
}

/// The JSONL span reader and the plain-text reader.
pub fn jsonl(data: &[u8]) {
    if let Ok(loaded) = parse_jsonl(data, "fuzz.jsonl") {
        check_corpus(&loaded.corpus);
    }
    for mode in [TextMode::Lines, TextMode::Whole] {
        if let Ok(loaded) = parse_text(data, "fuzz.txt", mode) {
            check_corpus(&loaded.corpus);
        }
    }
}

/// Asserts what [`Corpus`] documents: words are the text's characters at their offsets, in
/// order; entities are sorted, disjoint and within their sentence.
pub fn check_corpus(corpus: &Corpus) {
    for document in &corpus.documents {
        let chars: Vec<char> = document.text.chars().collect();
        let mut at = 0;
        for sentence in &document.sentences {
            for word in &sentence.words {
                assert!(at <= word.start && word.start <= word.end && word.end <= chars.len());
                let text: String = chars[word.start..word.end].iter().collect();
                assert_eq!(text, word.text, "word text differs from its span");
                at = word.end;
            }
            let mut end = 0;
            for entity in &sentence.entities {
                assert!(end <= entity.start && entity.start < entity.end);
                assert!(entity.end <= sentence.words.len());
                end = entity.end;
            }
        }
    }
}

/// The annotate path after the model, on synthetic codes: `data` splits into a text (its
/// first byte says how long) and activation bytes for `profile`'s features on one token per
/// character. The spans must lie within the text, in order, disjoint, with known labels and
/// scores in 0–1; and [`crate::annotate::pieces`] must tile the text.
pub fn decode(profile: &Profile, decoder: &Decoder, data: &[u8]) {
    let Some((&len, rest)) = data.split_first() else {
        return;
    };
    let (text, codes) = rest.split_at((len as usize * 4).min(rest.len()));
    let text = String::from_utf8_lossy(text).into_owned();
    let n_chars = text.chars().count();
    let document = Document::from_text("fuzz".into(), text.clone());
    // BOS, then one token per character (Gemma's tokens are coarser; the decoder must not
    // care).
    let offsets: Vec<(usize, usize)> = std::iter::once((0, 0))
        .chain((0..n_chars).map(|c| (c, c + 1)))
        .collect();
    let alignment = Alignment::new(&document, &offsets).expect("per-character tokens align");
    let m = profile.features().len();
    let values: Vec<f32> = (0..offsets.len() * m)
        .map(|i| match codes {
            [] => 0.0,
            _ => f32::from(codes[i % codes.len()]) * 0.5,
        })
        .collect();
    let spans = decoder
        .decode(&document, &alignment, Activations::Dense(&values))
        .expect("well-formed inputs decode");
    let mut end = 0;
    for span in &spans {
        assert!(end <= span.start && span.start < span.end && span.end <= n_chars);
        assert!(profile.labels.contains(&span.label));
        assert!((0.0..=1.0).contains(&span.score), "score {}", span.score);
        assert!(span.evidence.iter().all(|e| e.precision.is_finite()));
        end = span.end;
    }
    for (piece, context) in [(8, 0), (16, 4), (64, 16)] {
        check_pieces(&text, piece, context);
    }
}

/// Asserts that [`crate::annotate::pieces`] tiles `text` on char boundaries with pieces no
/// longer than asked (plus one char), contexts before their piece and never moving back.
pub fn check_pieces(text: &str, piece_bytes: usize, context_bytes: usize) {
    let mut at = 0;
    let mut context = 0;
    for p in crate::annotate::pieces(text, piece_bytes, context_bytes) {
        assert_eq!(p.start, at);
        assert!(p.end > p.start && p.end <= text.len());
        assert!(p.context <= p.start && p.context >= context);
        for i in [p.context, p.start, p.end] {
            assert!(text.is_char_boundary(i));
        }
        assert!(p.end - p.start <= piece_bytes.max(8) + 4, "{p:?}");
        at = p.end;
        context = p.context;
    }
    assert_eq!(at, text.len());
}
