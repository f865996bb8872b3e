//! Label-free calibration signal: a lexicon of example names per entity type, matched in
//! unlabelled text.
//!
//! A [`Lexicon`] is read from TOML (`type = ["name", ...]`, one array per type) or built
//! from a few annotated examples ([`Lexicon::from_examples`]). A [`Matcher`] finds its names
//! in a corpus: whole words only (a match starts at a word's first character and ends at a
//! word's last), case-sensitive unless asked, longest match first, left to right, never
//! across sentences. A name listed under two types is ambiguous and never matched.
//!
//! [`Matcher::label`] returns a copy of a corpus whose entities are the matches and nothing
//! else: it reads only the words, so gold entities of the input (a CoNLL train split read
//! for its text) cannot leak into the labels.
//!
//! Every name also has a **fold** (one of [`FOLDS`], from a hash of the name), so that
//! calibration can tell a feature that fires on the names of every fold (a type detector)
//! from one that fires on a few memorised strings ([`crate::label_free`]).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::corpus::{Corpus, Document, Entity, Sentence, Word};
use crate::{Error, Result};

/// Folds the names are split into for the generalisation check.
pub const FOLDS: usize = 3;

/// Example names per entity type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lexicon {
    /// Type → its names (distinct, in first-seen order). Types sorted by name.
    pub types: BTreeMap<String, Vec<String>>,
}

/// How a [`Matcher`] compares names with text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MatchOptions {
    /// Compare lower-cased names and text.
    pub ignore_case: bool,
    /// Merge matches of one type that follow each other with nothing between them but
    /// spaces ("John" "Smith" from lists of first and last names): one entity, whose fold
    /// is that of the joined string.
    pub join_adjacent: bool,
}

impl Lexicon {
    /// Reads a lexicon from a TOML file (see [`Lexicon::parse`]), or from JSONL (a `.jsonl`
    /// file: `{"type", "name"}` lines, as [`crate::gazetteer`] writes them).
    pub fn load(path: impl AsRef<Path>) -> Result<Lexicon> {
        let file = path.as_ref().display().to_string();
        let bytes = std::fs::read(path.as_ref()).map_err(|source| Error::Io {
            file: file.clone(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let offset = e.utf8_error().valid_up_to();
            Error::Utf8 {
                file: file.clone(),
                line: line_of(e.as_bytes(), offset),
                offset,
            }
        })?;
        if path.as_ref().extension().is_some_and(|e| e == "jsonl") {
            let types = crate::gazetteer::parse_jsonl_lexicon(&text, &file)?;
            if types.is_empty() {
                return Err(Error::Field {
                    file,
                    line: 1,
                    field: "lexicon".into(),
                    expected: "at least one {\"type\": ..., \"name\": ...} line".into(),
                    found: "none".into(),
                });
            }
            return Ok(Lexicon { types });
        }
        Lexicon::parse(&text, &file)
    }

    /// Parses TOML whose top-level keys are type names, each an array of names (non-empty
    /// strings, trimmed; repeats dropped); `file` names it in errors, with the line.
    pub fn parse(text: &str, file: &str) -> Result<Lexicon> {
        type Raw = BTreeMap<String, toml::Spanned<Vec<toml::Spanned<String>>>>;
        let raw: Raw = toml::from_str(text).map_err(|e| Error::Field {
            file: file.to_string(),
            line: e.span().map_or(0, |s| line_of(text.as_bytes(), s.start)),
            field: "lexicon".into(),
            expected: "top-level `type = [\"name\", ...]` arrays of strings".into(),
            found: e.message().to_string(),
        })?;
        let mut types = BTreeMap::new();
        for (label, names) in raw {
            let line = line_of(text.as_bytes(), names.span().start);
            let mut kept: Vec<String> = Vec::new();
            for name in names.into_inner() {
                let line = line_of(text.as_bytes(), name.span().start);
                let trimmed = name.get_ref().trim();
                if !trimmed.chars().any(char::is_alphanumeric) {
                    return Err(Error::Field {
                        file: file.to_string(),
                        line,
                        field: label.clone(),
                        expected: "names with at least one letter or digit".into(),
                        found: format!("{:?}", name.get_ref()),
                    });
                }
                if !kept.iter().any(|k| k == trimmed) {
                    kept.push(trimmed.to_string());
                }
            }
            if kept.is_empty() {
                return Err(Error::Field {
                    file: file.to_string(),
                    line,
                    field: label,
                    expected: "at least one name".into(),
                    found: "an empty array".into(),
                });
            }
            types.insert(label, kept);
        }
        if types.is_empty() {
            return Err(Error::Field {
                file: file.to_string(),
                line: 1,
                field: "lexicon".into(),
                expected: "at least one `type = [\"name\", ...]` array".into(),
                found: "none".into(),
            });
        }
        Ok(Lexicon { types })
    }

    /// The surface strings of the entities of an annotated corpus, per type: a few examples
    /// turned into a lexicon.
    pub fn from_examples(corpus: &Corpus) -> Result<Lexicon> {
        let mut types: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for document in &corpus.documents {
            let chars: Vec<char> = document.text.chars().collect();
            for sentence in &document.sentences {
                for entity in &sentence.entities {
                    let (start, end) = sentence.char_span(entity);
                    let name: String = chars[start..end].iter().collect();
                    let names = types.entry(entity.label.clone()).or_default();
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
            }
        }
        if types.is_empty() {
            return Err(Error::Argument {
                name: "examples".into(),
                expected: "annotated examples with at least one entity".into(),
                found: "no entities".into(),
            });
        }
        Ok(Lexicon { types })
    }

    /// The type names, sorted.
    pub fn labels(&self) -> Vec<String> {
        self.types.keys().cloned().collect()
    }

    /// A matcher for this lexicon's names.
    pub fn matcher(&self, options: MatchOptions) -> Matcher {
        let mut names: HashMap<String, Option<(usize, usize)>> = HashMap::new();
        for (t, list) in self.types.values().enumerate() {
            for name in list {
                let key = options.key(name);
                let value = Some((t, fold_of(&key)));
                names
                    .entry(key)
                    .and_modify(|v| {
                        if v.is_some_and(|(other, _)| other != t) {
                            *v = None;
                        }
                    })
                    .or_insert(value);
            }
        }
        let max_chars = names.keys().map(|k| k.chars().count()).max().unwrap_or(0);
        Matcher {
            labels: self.labels(),
            names,
            max_chars,
            options,
        }
    }
}

/// Finds a [`Lexicon`]'s names in text; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Matcher {
    labels: Vec<String>,
    /// Name (as compared) → (type index, fold), or `None` if listed under several types.
    names: HashMap<String, Option<(usize, usize)>>,
    /// The longest name, in characters.
    max_chars: usize,
    options: MatchOptions,
}

/// A lexicon match in a sentence: words `start..end`, the name's type index and fold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    pub start: usize,
    pub end: usize,
    pub label: usize,
    pub fold: usize,
}

impl MatchOptions {
    fn key(&self, s: &str) -> String {
        if self.ignore_case {
            s.to_lowercase()
        } else {
            s.to_string()
        }
    }
}

impl Matcher {
    /// The lexicon's types, in the order of [`Match::label`].
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Names listed under more than one type (never matched).
    pub fn ambiguous(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .names
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.as_str())
            .collect();
        names.sort_unstable();
        names
    }

    /// The matches in one sentence of a document whose text is `text`, whose characters
    /// start at the byte offsets `bytes` (one more at the end): longest first, left to right.
    fn find(&self, text: &str, bytes: &[usize], words: &[Word]) -> Vec<Match> {
        let mut found = Vec::new();
        let mut i = 0;
        while i < words.len() {
            let start = words[i].start;
            let mut best = None;
            for (j, word) in words.iter().enumerate().skip(i) {
                if word.end - start > self.max_chars {
                    break;
                }
                let key = self.options.key(&text[bytes[start]..bytes[word.end]]);
                if let Some(&Some((label, fold))) = self.names.get(&key) {
                    best = Some(Match {
                        start: i,
                        end: j + 1,
                        label,
                        fold,
                    });
                }
            }
            match best {
                Some(m) => {
                    let last = found.last_mut().filter(|last: &&mut Match| {
                        self.options.join_adjacent
                            && last.end == m.start
                            && last.label == m.label
                            && text[bytes[words[last.end - 1].end]..bytes[words[m.start].start]]
                                .chars()
                                .all(|c| c == ' ')
                    });
                    match last {
                        Some(last) => {
                            last.end = m.end;
                            let joined =
                                &text[bytes[words[last.start].start]..bytes[words[m.end - 1].end]];
                            last.fold = fold_of(&self.options.key(joined));
                        }
                        None => found.push(m),
                    }
                    i = m.end;
                }
                None => i += 1,
            }
        }
        found
    }

    /// Every sentence's matches, per document.
    pub fn matches(&self, corpus: &Corpus) -> Vec<Vec<Vec<Match>>> {
        use rayon::prelude::*;
        corpus
            .documents
            .par_iter()
            .map(|document| {
                let bytes: Vec<usize> = document
                    .text
                    .char_indices()
                    .map(|(b, _)| b)
                    .chain([document.text.len()])
                    .collect();
                document
                    .sentences
                    .iter()
                    .map(|s| self.find(&document.text, &bytes, &s.words))
                    .collect()
            })
            .collect()
    }

    /// A copy of `corpus` whose entities are exactly the lexicon matches, labelled by
    /// `name(type, fold)`; the input's own entities are never read.
    pub(crate) fn label_with(
        &self,
        corpus: &Corpus,
        name: impl Fn(&str, usize) -> String,
    ) -> Corpus {
        let matches = self.matches(corpus);
        let documents = corpus
            .documents
            .iter()
            .zip(matches)
            .map(|(document, per_sentence)| Document {
                id: document.id.clone(),
                text: document.text.clone(),
                docstart: document.docstart.clone(),
                sentences: document
                    .sentences
                    .iter()
                    .zip(per_sentence)
                    .map(|(sentence, found)| Sentence {
                        words: sentence.words.clone(),
                        entities: found
                            .into_iter()
                            .map(|m| Entity {
                                start: m.start,
                                end: m.end,
                                label: name(&self.labels[m.label], m.fold),
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect();
        Corpus {
            documents,
            annotated: true,
            separator: corpus.separator,
        }
    }

    /// A copy of `corpus` whose entities are exactly the lexicon matches (silver labels);
    /// the input's own entities are never read.
    pub fn label(&self, corpus: &Corpus) -> Corpus {
        self.label_with(corpus, |label, _| label.to_string())
    }
}

/// A few annotated examples per type for few-shot calibration: sentences of `corpus`
/// (each as its own document, with all its gold entities), drawn in an order fixed by
/// `seed`, kept while they contain a type that has fewer than `per_type` example sentences.
pub fn sample_examples(corpus: &Corpus, per_type: usize, seed: u64) -> Corpus {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let sentences = corpus.clone().into_sentence_documents();
    let mut order: Vec<usize> = (0..sentences.documents.len()).collect();
    order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    let labels = corpus.labels();
    let mut have: BTreeMap<&str, usize> = labels.iter().map(|l| (l.as_str(), 0)).collect();
    let mut kept = Vec::new();
    for i in order {
        let document = &sentences.documents[i];
        let types: std::collections::BTreeSet<&str> = document
            .sentences
            .iter()
            .flat_map(|s| s.entities.iter().map(|e| e.label.as_str()))
            .collect();
        if types.iter().any(|t| have[t] < per_type) {
            for t in types {
                *have.get_mut(t).expect("a corpus label") += 1;
            }
            kept.push(i);
        }
        if have.values().all(|&n| n >= per_type) {
            break;
        }
    }
    kept.sort_unstable();
    let documents = kept
        .into_iter()
        .map(|i| Document {
            docstart: None,
            ..sentences.documents[i].clone()
        })
        .collect();
    Corpus {
        documents,
        ..sentences
    }
}

/// The fold of a name (as compared): a hash, so that it does not depend on list order.
pub(crate) fn fold_of(key: &str) -> usize {
    Sha256::digest(key.as_bytes())[0] as usize % FOLDS
}

/// The 1-based line of byte `offset` in `bytes`.
fn line_of(bytes: &[u8], offset: usize) -> usize {
    bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::{parse_text, TextMode};
    use crate::test_support::conll;

    fn lexicon(toml: &str) -> Lexicon {
        Lexicon::parse(toml, "l.toml").unwrap()
    }

    fn found(matcher: &Matcher, corpus: &Corpus) -> Vec<(String, String)> {
        let labelled = matcher.label(corpus);
        let mut out = Vec::new();
        for document in &labelled.documents {
            let chars: Vec<char> = document.text.chars().collect();
            for sentence in &document.sentences {
                for entity in &sentence.entities {
                    let (s, e) = sentence.char_span(entity);
                    out.push((entity.label.clone(), chars[s..e].iter().collect()));
                }
            }
        }
        out
    }

    fn text(s: &str) -> Corpus {
        parse_text(s.as_bytes(), "t.txt", TextMode::Lines)
            .unwrap()
            .corpus
    }

    #[test]
    fn longest_whole_word_case_sensitive_matches() {
        let lex = lexicon(
            "location = [\"New York\", \"York\", \"U.S.\", \"Paris\"]\n\
             team = [\"New York Yankees\", \"Paris Saint-Germain\"]\n",
        );
        let corpus = text(
            "The New York Yankees beat Paris Saint-Germain in New York.\n\
             Parisian cafes; paris; U.S.-led talks near York\n",
        );
        let m = lex.matcher(MatchOptions::default());
        assert_eq!(
            found(&m, &corpus),
            [
                ("team".into(), "New York Yankees".into()),
                ("team".into(), "Paris Saint-Germain".into()),
                ("location".into(), "New York".into()),
                ("location".into(), "U.S.".into()),
                ("location".into(), "York".into()),
            ]
        );
        let any_case = lex.matcher(MatchOptions {
            ignore_case: true,
            ..Default::default()
        });
        assert!(found(&any_case, &corpus).contains(&("location".into(), "paris".into())));
    }

    #[test]
    fn gold_entities_never_become_labels() {
        // The CoNLL gold says "Paris" is a person and "Kenya" an organisation; only the
        // lexicon decides.
        let corpus = conll("Paris B-PER\nvisited O\nKenya B-ORG\nand O\nOslo B-LOC\n");
        let m = lexicon("LOC = [\"Paris\", \"Kenya\"]").matcher(MatchOptions::default());
        assert_eq!(
            found(&m, &corpus),
            [
                ("LOC".into(), "Paris".into()),
                ("LOC".into(), "Kenya".into())
            ]
        );
    }

    #[test]
    fn adjacent_matches_of_a_type_join_when_asked() {
        let lex = lexicon("PER = [\"John\", \"Smith\", \"Ann\"]\nLOC = [\"Oslo\"]\n");
        let corpus = text("John Smith met Ann, Smith and Oslo John\n");
        let join = lex.matcher(MatchOptions {
            join_adjacent: true,
            ..Default::default()
        });
        assert_eq!(
            found(&join, &corpus),
            [
                ("PER".into(), "John Smith".into()),
                ("PER".into(), "Ann".into()),
                ("PER".into(), "Smith".into()),
                ("LOC".into(), "Oslo".into()),
                ("PER".into(), "John".into()),
            ]
        );
        let apart = found(&lex.matcher(MatchOptions::default()), &corpus);
        assert_eq!(
            apart[..2],
            [
                ("PER".into(), "John".into()),
                ("PER".into(), "Smith".into())
            ]
        );
    }

    #[test]
    fn names_under_two_types_are_never_matched() {
        let lex = lexicon("PER = [\"Washington\", \"Lincoln\"]\nLOC = [\"Washington\"]\n");
        let m = lex.matcher(MatchOptions::default());
        assert_eq!(m.ambiguous(), ["Washington"]);
        assert_eq!(
            found(&m, &text("Lincoln left Washington")),
            [("PER".into(), "Lincoln".into())]
        );
    }

    #[test]
    fn folds_split_the_names() {
        let names: Vec<String> = (0..200).map(|i| format!("\"Name{i}\"")).collect();
        let m = lexicon(&format!("X = [{}]", names.join(","))).matcher(Default::default());
        for fold in 0..FOLDS {
            let n = m.names.values().filter(|v| v.unwrap().1 == fold).count();
            assert!((40..95).contains(&n), "{n} of 200 in fold {fold}");
        }
    }

    #[test]
    fn examples_become_a_lexicon() {
        let corpus = conll("Angela B-PER\nMerkel I-PER\nin O\nBonn B-LOC\n\nBonn B-LOC\n");
        let lex = Lexicon::from_examples(&corpus).unwrap();
        assert_eq!(lex.types["PER"], ["Angela Merkel"]);
        assert_eq!(lex.types["LOC"], ["Bonn"]);
        assert!(Lexicon::from_examples(&conll("a O\n")).is_err());
    }

    #[test]
    fn examples_are_whole_sentences_until_every_type_has_enough() {
        let corpus = conll(
            "-DOCSTART- O\n\nAnn B-PER\nran O\n\nin O\nOslo B-LOC\n\nit O\nrained O\n\n\
             Bo B-PER\nsaw O\nRome B-LOC\n\nEd B-PER\nleft O\n",
        );
        let one = sample_examples(&corpus, 1, 3);
        assert_eq!(one, sample_examples(&corpus, 1, 3));
        let count = |c: &Corpus, t: &str| {
            c.sentences()
                .filter(|s| s.entities.iter().any(|e| e.label == t))
                .count()
        };
        assert!(count(&one, "PER") >= 1 && count(&one, "LOC") >= 1);
        assert!(one.sentences().all(|s| !s.entities.is_empty()));
        assert!(one.documents.iter().all(|d| d.sentences.len() == 1));
        let all = sample_examples(&corpus, 5, 0);
        assert_eq!((count(&all, "PER"), count(&all, "LOC")), (3, 2));
        assert_eq!(all.documents.len(), 4);
    }

    #[test]
    fn bad_lexicons_name_file_line_and_field() {
        let err = |s: &str| Lexicon::parse(s, "l.toml").unwrap_err().to_string();
        let e = err("PER = [\"Ann\"]\nLOC = [\"Oslo\", 3]\n");
        assert!(e.starts_with("l.toml:2:"), "{e}");
        let e = err("PER = [\"Ann\"]\n\nLOC = [\"Oslo\", \"  \"]\n");
        assert!(e.starts_with("l.toml:3: LOC: expected names"), "{e}");
        let e = err("PER = [\"Ann\"]\nLOC = []\n");
        assert!(
            e.starts_with("l.toml:2: LOC: expected at least one name"),
            "{e}"
        );
        assert!(err("").contains("at least one"));
        assert!(err("PER = \"Ann\"").starts_with("l.toml:1:"));
    }
}
