//! What a feature reads: its top-activating contexts in the calibration corpus, kept with
//! the profile so that a span's evidence can be explained without the corpus at hand.
//!
//! A context is the firing word with a few words either side in its sentence; a feature
//! keeps its `per_feature` strongest firings, at most one per sentence (so one repeated
//! headline cannot fill them all).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::codes::EncodedCorpus;
use crate::{Error, Result};

/// One calibration snippet where a feature fired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FeatureContext {
    /// The firing word with up to `width` words either side, joined by single spaces.
    pub text: String,
    /// The firing word in `text` (code points, half-open).
    pub start: usize,
    pub end: usize,
    /// The feature's activation on the word's strongest token.
    pub activation: f32,
    /// The word's gold type in the calibration data, or `O`.
    pub label: String,
}

/// The `per_feature` strongest firings (above `tau`) of each of `features` in `encoded`,
/// strongest first, at most one per sentence, as snippets of `width` words either side.
pub fn top_contexts(
    encoded: &EncodedCorpus,
    features: &[u32],
    tau: f32,
    per_feature: usize,
    width: usize,
) -> BTreeMap<u32, Vec<FeatureContext>> {
    // Per feature: (activation, document, word), best firing per sentence only.
    let mut best: BTreeMap<u32, Vec<(f32, usize, usize)>> =
        features.iter().map(|&f| (f, Vec::new())).collect();
    for (d, (codes, alignment)) in encoded.codes.iter().zip(&encoded.alignments).enumerate() {
        // Per (feature, sentence): the strongest word, so the sentence counts once.
        let mut in_document: BTreeMap<(u32, usize), (f32, usize)> = BTreeMap::new();
        let sentence_of = sentence_index(&encoded.corpus.documents[d]);
        for (t, code) in codes.iter().enumerate() {
            let Some(word) = alignment.word_of(t) else {
                continue;
            };
            for (&id, &value) in code.ids.iter().zip(&code.values) {
                if value > tau && best.contains_key(&id) {
                    let entry = in_document
                        .entry((id, sentence_of[word]))
                        .or_insert((value, word));
                    if value > entry.0 {
                        *entry = (value, word);
                    }
                }
            }
        }
        for ((feature, _), (value, word)) in in_document {
            let list = best.get_mut(&feature).expect("only profile features");
            list.push((value, d, word));
            // Keep the list short: sort and cut whenever it doubles.
            if list.len() >= 2 * per_feature.max(1) {
                cut(list, per_feature);
            }
        }
    }
    best.into_iter()
        .filter_map(|(feature, mut list)| {
            cut(&mut list, per_feature);
            let contexts: Vec<FeatureContext> = list
                .into_iter()
                .map(|(activation, d, word)| snippet(encoded, d, word, width, activation))
                .collect();
            (!contexts.is_empty()).then_some((feature, contexts))
        })
        .collect()
}

/// `profile_json` (a profile as [`crate::Profile::to_json`] writes it) with its `contexts`
/// field set to `contexts`, every other byte unchanged, one context per line.
///
/// Text, not a parse and re-serialization: serde_json's default float parsing may move a
/// precision by one ulp, which would rewrite every row of a shipped profile.
pub fn set_contexts_json(
    profile_json: &str,
    file: &str,
    contexts: &BTreeMap<u32, Vec<FeatureContext>>,
) -> Result<String> {
    // The field is written last, so it is either absent or the tail of the object.
    let body = match profile_json.find("\n  \"contexts\": ") {
        Some(at) => profile_json[..at].strip_suffix(','),
        None => profile_json.trim_end().strip_suffix('}').map(str::trim_end),
    };
    let body = body.ok_or_else(|| Error::Invalid {
        file: file.to_string(),
        field: "(layout)".into(),
        expected: "a profile as saener writes it (pretty JSON, contexts last)".into(),
        found: "other JSON".into(),
    })?;
    if contexts.is_empty() {
        return Ok(format!("{body}\n}}\n"));
    }
    let features: Vec<String> = contexts
        .iter()
        .map(|(feature, list)| {
            let lines: Vec<String> = list
                .iter()
                .map(|c| serde_json::to_string(c).expect("a context always serializes"))
                .collect();
            format!(
                "    \"{feature}\": [\n      {}\n    ]",
                lines.join(",\n      ")
            )
        })
        .collect();
    Ok(format!(
        "{body},\n  \"contexts\": {{\n{}\n  }}\n}}\n",
        features.join(",\n")
    ))
}

/// Strongest first, ties by position (deterministic), at most `n`.
fn cut(list: &mut Vec<(f32, usize, usize)>, n: usize) {
    list.sort_by(|a, b| b.0.total_cmp(&a.0).then((a.1, a.2).cmp(&(b.1, b.2))));
    list.truncate(n);
}

/// Per document-wide word index: its sentence.
fn sentence_index(document: &crate::Document) -> Vec<usize> {
    document
        .sentences
        .iter()
        .enumerate()
        .flat_map(|(s, sentence)| std::iter::repeat_n(s, sentence.words.len()))
        .collect()
}

fn snippet(
    encoded: &EncodedCorpus,
    d: usize,
    word: usize,
    width: usize,
    activation: f32,
) -> FeatureContext {
    let document = &encoded.corpus.documents[d];
    let (mut s, mut w) = (0, word);
    while w >= document.sentences[s].words.len() {
        w -= document.sentences[s].words.len();
        s += 1;
    }
    let sentence = &document.sentences[s];
    let words = &sentence.words[w.saturating_sub(width)..(w + width + 1).min(sentence.words.len())];
    let at = w - w.saturating_sub(width);
    let mut text = String::new();
    let (mut start, mut end) = (0, 0);
    for (i, x) in words.iter().enumerate() {
        if i > 0 {
            text.push(' ');
        }
        if i == at {
            start = text.chars().count();
            end = start + x.text.chars().count();
        }
        text.push_str(&x.text);
    }
    let label = sentence
        .entities
        .iter()
        .find(|e| (e.start..e.end).contains(&w))
        .map_or("O".to_string(), |e| e.label.clone());
    FeatureContext {
        text,
        start,
        end,
        // One decimal is all a reader needs, and keeps profiles small.
        activation: (activation * 10.0).round() / 10.0,
        label,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::align::Alignment;
    use crate::test_support::{code, conll, one_token_per_word};

    #[test]
    fn strongest_firings_one_per_sentence_with_the_word_marked() {
        let corpus = conll(
            "-DOCSTART- O\n\nAngela B-PER\nMerkel I-PER\nvisited O\nParis B-LOC\n\nBerlin B-LOC\nis O\nbig O\n",
        );
        let document = &corpus.documents[0];
        let alignment = Alignment::new(document, &one_token_per_word(document)).unwrap();
        // Tokens: BOS, then one per word. Feature 1 fires twice in sentence 0 and once in
        // sentence 1; feature 2 only below tau.
        let codes = vec![
            code(&[]),
            code(&[(1, 2.0)]),
            code(&[(1, 3.0)]),
            code(&[]),
            code(&[(2, 0.5)]),
            code(&[(1, 1.5)]),
            code(&[]),
            code(&[]),
        ];
        let encoded = EncodedCorpus {
            corpus: corpus.clone(),
            alignments: vec![alignment],
            codes: vec![codes],
        };
        let contexts = top_contexts(&encoded, &[1, 2], 1.0, 3, 1);
        assert!(!contexts.contains_key(&2));
        let found: Vec<_> = contexts[&1]
            .iter()
            .map(|c| (&c.text[..], c.start, c.end, c.activation, &c.label[..]))
            .collect();
        assert_eq!(
            found,
            [
                ("Angela Merkel visited", 7, 13, 3.0, "PER"),
                ("Berlin is", 0, 6, 1.5, "LOC"),
            ]
        );
        assert_eq!(top_contexts(&encoded, &[1], 1.0, 1, 0)[&1].len(), 1);
    }

    #[test]
    fn contexts_are_spliced_into_the_profile_text_leaving_the_rest_alone() {
        let mut profile =
            crate::test_support::profile(&["PER"], &[(3, "PER", 0.9)], &[], Default::default());
        let original = profile.to_json();
        let contexts: BTreeMap<u32, Vec<FeatureContext>> = [(
            3,
            vec![FeatureContext {
                text: "Angela \"Merkel\"".into(),
                start: 7,
                end: 15,
                activation: 2.5,
                label: "PER".into(),
            }],
        )]
        .into();
        let with = set_contexts_json(&original, "p.json", &contexts).unwrap();
        assert!(with.starts_with(original.trim_end().strip_suffix('}').unwrap().trim_end()));
        assert!(
            with.contains("\n      {\"text\":\"Angela \\\"Merkel\\\"\",\"start\":7,"),
            "{with}"
        );
        profile.contexts = contexts;
        assert_eq!(crate::Profile::parse(&with, "p.json").unwrap(), profile);
        // Again: replaced, not appended; and removed with an empty map.
        assert_eq!(
            set_contexts_json(&with, "p.json", &profile.contexts).unwrap(),
            with
        );
        assert_eq!(
            set_contexts_json(&with, "p.json", &BTreeMap::new()).unwrap(),
            original
        );
        assert!(set_contexts_json("[]", "p.json", &profile.contexts).is_err());
    }
}
