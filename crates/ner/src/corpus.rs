//! Corpora: one data model for CoNLL column files, JSONL span files and plain text.
//!
//! A [`Corpus`] is a list of [`Document`]s. A document owns its `text`; its [`Sentence`]s
//! hold the [`Word`]s, each with its character span in that text, and the gold [`Entity`]s
//! as word-index spans. Words and offsets are computed once, when reading, and travel with
//! the data: the model's tokens are later aligned to words by character offsets.
//!
//! **Offsets** are Unicode code points (what Python's `len(str)` counts), half-open
//! `start..end`, into [`Document::text`]; never bytes.
//!
//! **Text of a CoNLL document**: its words joined by one space, its sentences by `"\n"`.
//! JSONL and plain-text documents keep their text as given; sentences are its lines.
//!
//! **Tags**: gold entities are stored as spans, so they are valid by construction;
//! [`Sentence::tags`] renders them in IOB2. Input IOB1, IOB2 and BIOES are all read into
//! spans; invalid sequences are repaired the standard (conlleval) way, with a [`Warning`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::tags::{self, Prefix, Tag};
use crate::{Error, Result};

/// A word with its character span (code points, half-open) in the document text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Word {
    /// The word itself; always equal to the text's characters `start..end`.
    pub text: String,
    pub start: usize,
    pub end: usize,
    /// CoNLL only: the columns between the word and the tag (POS and chunk tags in
    /// CoNLL-2003), kept so that the writer reproduces them. Empty for other formats.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
}

/// An entity as a span of words `start..end` (word indices in its sentence, end exclusive).
/// Its character span is [`Sentence::char_span`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Entity {
    pub start: usize,
    pub end: usize,
    pub label: String,
}

/// A sentence: words and the entities over them. Entities are sorted by `start`, do not
/// overlap and lie within `0..words.len()`; the readers guarantee this, and code that edits
/// `entities` must keep it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sentence {
    pub words: Vec<Word>,
    pub entities: Vec<Entity>,
}

impl Sentence {
    /// One IOB2 tag per word, from the entities.
    pub fn tags(&self) -> Vec<String> {
        let mut tags = vec!["O".to_string(); self.words.len()];
        for entity in &self.entities {
            tags[entity.start] = format!("B-{}", entity.label);
            for tag in &mut tags[entity.start + 1..entity.end] {
                *tag = format!("I-{}", entity.label);
            }
        }
        tags
    }

    /// The character span of an entity of this sentence in the document text.
    pub fn char_span(&self, entity: &Entity) -> (usize, usize) {
        (
            self.words[entity.start].start,
            self.words[entity.end - 1].end,
        )
    }
}

/// A document: the unit of context the model reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Document {
    /// CoNLL: the document's index in the file (`"12"`; `"12.3"` for sentence 3 of it in
    /// sentence mode). JSONL: the `id` field, else the line number. Text: the line number.
    pub id: String,
    pub text: String,
    pub sentences: Vec<Sentence>,
    /// CoNLL only: the verbatim `-DOCSTART-` line that opened this document; the writer
    /// writes it back. In sentence mode the first sentence of the document carries it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docstart: Option<String>,
}

/// The column separator the CoNLL writer uses; the reader keeps the input's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum Separator {
    #[default]
    Tab,
    Space,
}

impl Separator {
    fn as_str(self) -> &'static str {
        match self {
            Separator::Tab => "\t",
            Separator::Space => " ",
        }
    }
}

/// A corpus: documents in file order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Corpus {
    pub documents: Vec<Document>,
    /// Whether the input carried gold entities (false for plain text, and for JSONL unless
    /// every line has an `entities` field).
    pub annotated: bool,
    pub separator: Separator,
}

/// Counts of a corpus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CorpusStats {
    pub documents: usize,
    pub sentences: usize,
    pub words: usize,
    pub entities: usize,
    pub per_label: BTreeMap<String, usize>,
}

/// Tag scheme of a CoNLL file's last column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum TagScheme {
    /// BIOES if any `E-`/`S-` tag occurs; else IOB1 if some `I-` starts an entity and every
    /// `B-` directly follows an entity of its own type (IOB1 uses `B-` only there); else IOB2.
    #[default]
    Auto,
    /// `I-X` after `O` or another type starts an entity (no warning).
    Iob1,
    /// `I-X` after `O` or another type is invalid: read as `B-X`, with a warning.
    Iob2,
    /// IOB2 plus `E-` (last word) and `S-` (single word). `I-`/`E-` that continue nothing are
    /// read as starting an entity, and entities not closed by `E-`/`S-` are kept as they are;
    /// both with a warning.
    Bioes,
}

/// How a CoNLL file is cut into documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DocumentMode {
    /// The sentences between `-DOCSTART-` lines form a document; a file without such lines
    /// has one document per sentence.
    #[default]
    Auto,
    /// One document per sentence, whatever the markers (sentence context instead of
    /// document context). See [`Corpus::into_sentence_documents`].
    Sentences,
}

/// Options of [`read_conll`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConllOptions {
    pub scheme: TagScheme,
    pub documents: DocumentMode,
}

/// How [`read_text`] cuts a file into documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TextMode {
    /// One document per non-blank line.
    #[default]
    Lines,
    /// The whole file is one document (its lines are the sentences).
    Whole,
}

/// Something a reader repaired or dropped, with where it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// What a reader returns: the corpus and the warnings about it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub corpus: Corpus,
    pub warnings: Vec<Warning>,
    /// CoNLL only: the tag scheme of the input (as detected, under [`TagScheme::Auto`]).
    pub scheme: Option<TagScheme>,
}

impl Corpus {
    /// All sentences, in order.
    pub fn sentences(&self) -> impl Iterator<Item = &Sentence> {
        self.documents.iter().flat_map(|d| &d.sentences)
    }

    /// The entity labels that occur, sorted.
    pub fn labels(&self) -> BTreeSet<String> {
        self.sentences()
            .flat_map(|s| &s.entities)
            .map(|e| e.label.clone())
            .collect()
    }

    /// Counts of documents, sentences, words and entities (in total and per label).
    pub fn stats(&self) -> CorpusStats {
        let mut per_label = BTreeMap::new();
        let (mut sentences, mut words, mut entities) = (0, 0, 0);
        for sentence in self.sentences() {
            sentences += 1;
            words += sentence.words.len();
            entities += sentence.entities.len();
            for entity in &sentence.entities {
                *per_label.entry(entity.label.clone()).or_insert(0) += 1;
            }
        }
        CorpusStats {
            documents: self.documents.len(),
            sentences,
            words,
            entities,
            per_label,
        }
    }

    /// SHA-256 (hex) of the corpus content: documents, words with offsets and columns,
    /// entities. It identifies what the model sees and what is scored, independent of the
    /// file's name or format, and differs between document and sentence mode.
    pub fn checksum(&self) -> String {
        let mut hasher = Sha256::new();
        serde_json::to_writer(&mut hasher, self).expect("a corpus always serializes to JSON");
        format!("{:x}", hasher.finalize())
    }

    /// `n` sentences drawn uniformly without replacement (all of them if there are fewer),
    /// a pure function of `seed`, as a mask per document over its words (numbered across
    /// the document): a calibration subset that keeps every sentence in its context.
    pub fn sample_sentences(&self, n: usize, seed: u64) -> Vec<Vec<bool>> {
        use rand::seq::SliceRandom;
        use rand::SeedableRng;
        let mut all: Vec<(usize, usize)> = self
            .documents
            .iter()
            .enumerate()
            .flat_map(|(d, doc)| (0..doc.sentences.len()).map(move |s| (d, s)))
            .collect();
        all.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
        let mut masks: Vec<Vec<bool>> = self
            .documents
            .iter()
            .map(|d| vec![false; d.sentences.iter().map(|s| s.words.len()).sum()])
            .collect();
        for &(d, s) in all.iter().take(n) {
            let doc = &self.documents[d];
            let first: usize = doc.sentences[..s].iter().map(|x| x.words.len()).sum();
            masks[d][first..first + doc.sentences[s].words.len()].fill(true);
        }
        masks
    }

    /// Splits every multi-sentence document into one document per sentence, with id
    /// `"{id}.{k}"`, its text the sentence's part of the document text and offsets shifted
    /// accordingly. The first part keeps the `-DOCSTART-` line, so the CoNLL output is
    /// unchanged.
    pub fn into_sentence_documents(self) -> Corpus {
        let documents = self
            .documents
            .into_iter()
            .flat_map(Document::into_sentence_documents)
            .collect();
        Corpus { documents, ..self }
    }

    /// The corpus as a CoNLL file: each word on a line with its kept columns and its IOB2
    /// tag last, sentences followed by a blank line, `-DOCSTART-` lines (followed by a blank
    /// line) where the input had them. Reading a file in this layout and writing it back
    /// reproduces it byte for byte, if its tags were valid IOB2.
    pub fn to_conll(&self) -> String {
        let sep = self.separator.as_str();
        let mut out = String::new();
        for document in &self.documents {
            if let Some(line) = &document.docstart {
                out.push_str(line);
                out.push_str("\n\n");
            }
            for sentence in &document.sentences {
                for (word, tag) in sentence.words.iter().zip(sentence.tags()) {
                    out.push_str(&word.text);
                    for column in &word.columns {
                        out.push_str(sep);
                        out.push_str(column);
                    }
                    out.push_str(sep);
                    out.push_str(&tag);
                    out.push('\n');
                }
                out.push('\n');
            }
        }
        out
    }

    /// The corpus as JSONL: one `{"id","text","entities":[{"start","end","label"}]}` object
    /// per document and line, offsets in characters of `text`; no `entities` if the corpus
    /// is not annotated.
    pub fn to_jsonl(&self) -> String {
        #[derive(Serialize)]
        struct JsonEntity<'a> {
            start: usize,
            end: usize,
            label: &'a str,
        }
        #[derive(Serialize)]
        struct JsonDocument<'a> {
            id: &'a str,
            text: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            entities: Option<Vec<JsonEntity<'a>>>,
        }
        let mut out = String::new();
        for document in &self.documents {
            let entities = self.annotated.then(|| {
                document
                    .sentences
                    .iter()
                    .flat_map(|s| {
                        s.entities.iter().map(move |e| {
                            let (start, end) = s.char_span(e);
                            JsonEntity {
                                start,
                                end,
                                label: &e.label,
                            }
                        })
                    })
                    .collect()
            });
            let line = JsonDocument {
                id: &document.id,
                text: &document.text,
                entities,
            };
            out.push_str(&serde_json::to_string(&line).expect("a document always serializes"));
            out.push('\n');
        }
        out
    }
}

impl Document {
    /// A document from its text: sentences are its lines, words come from [`tokenize`];
    /// no entities.
    pub fn from_text(id: String, text: String) -> Document {
        let sentences = tokenize(&text)
            .into_iter()
            .map(|words| Sentence {
                words,
                entities: Vec::new(),
            })
            .collect();
        Document {
            id,
            text,
            sentences,
            docstart: None,
        }
    }

    /// A document laid out from its sentences' words (CoNLL): the text joins words with one
    /// space and sentences with `"\n"`; every word's offsets are set accordingly.
    fn from_words(id: String, docstart: Option<String>, mut sentences: Vec<Sentence>) -> Document {
        let mut text = String::new();
        let mut pos = 0;
        for (s, sentence) in sentences.iter_mut().enumerate() {
            if s > 0 {
                text.push('\n');
                pos += 1;
            }
            for (w, word) in sentence.words.iter_mut().enumerate() {
                if w > 0 {
                    text.push(' ');
                    pos += 1;
                }
                word.start = pos;
                pos += word.text.chars().count();
                word.end = pos;
                text.push_str(&word.text);
            }
        }
        Document {
            id,
            text,
            sentences,
            docstart,
        }
    }

    /// See [`Corpus::into_sentence_documents`].
    fn into_sentence_documents(self) -> Vec<Document> {
        if self.sentences.len() <= 1 {
            return vec![self];
        }
        // Byte position of every character index (and of the end), to slice by characters.
        let bytes: Vec<usize> = self
            .text
            .char_indices()
            .map(|(b, _)| b)
            .chain([self.text.len()])
            .collect();
        let mut docstart = self.docstart;
        self.sentences
            .into_iter()
            .enumerate()
            .map(|(k, mut sentence)| {
                let start = sentence.words.first().map_or(0, |w| w.start);
                let end = sentence.words.last().map_or(0, |w| w.end);
                for word in &mut sentence.words {
                    word.start -= start;
                    word.end -= start;
                }
                Document {
                    id: format!("{}.{k}", self.id),
                    text: self.text[bytes[start]..bytes[end]].to_string(),
                    sentences: vec![sentence],
                    docstart: docstart.take(),
                }
            })
            .collect()
    }
}

/// Splits text into sentences (its lines) of words: a word is a maximal run of alphanumeric
/// characters, or a single other non-whitespace character (punctuation and symbols stand
/// alone, so `22-oxacalcitriol` gives `22`, `-`, `oxacalcitriol`). Offsets are characters.
/// Lines without words give no sentence. Combining marks are not alphanumeric and split
/// words, so decomposed (NFD) text should be composed first.
pub fn tokenize(text: &str) -> Vec<Vec<Word>> {
    let mut sentences = Vec::new();
    let mut words: Vec<Word> = Vec::new();
    // The alphanumeric run in progress: its start as (character index, byte index).
    let mut run: Option<(usize, usize)> = None;
    let close_run = |run: &mut Option<(usize, usize)>, words: &mut Vec<Word>, c, b| {
        if let Some((start, byte)) = run.take() {
            words.push(Word {
                text: text[byte..b].to_string(),
                start,
                end: c,
                columns: Vec::new(),
            });
        }
    };
    let mut n_chars = 0;
    for (c, (b, ch)) in text.char_indices().enumerate() {
        n_chars = c + 1;
        if ch.is_alphanumeric() {
            run.get_or_insert((c, b));
            continue;
        }
        close_run(&mut run, &mut words, c, b);
        if ch == '\n' {
            if !words.is_empty() {
                sentences.push(std::mem::take(&mut words));
            }
        } else if !ch.is_whitespace() {
            words.push(Word {
                text: ch.to_string(),
                start: c,
                end: c + 1,
                columns: Vec::new(),
            });
        }
    }
    close_run(&mut run, &mut words, n_chars, text.len());
    if !words.is_empty() {
        sentences.push(words);
    }
    sentences
}

fn read_file(path: &Path) -> Result<(Vec<u8>, String)> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        file: file.clone(),
        source,
    })?;
    Ok((bytes, file))
}

/// Decodes UTF-8, naming the line and byte offset of the first invalid byte.
fn decode<'a>(bytes: &'a [u8], file: &str) -> Result<&'a str> {
    std::str::from_utf8(bytes).map_err(|e| {
        let offset = e.valid_up_to();
        Error::Utf8 {
            file: file.to_string(),
            line: bytes[..offset].iter().filter(|&&b| b == b'\n').count() + 1,
            offset,
        }
    })
}

/// Builds [`Error::Field`]s for one file.
struct Fields<'a> {
    file: &'a str,
}

impl Fields<'_> {
    fn error(
        &self,
        line: usize,
        field: impl Into<String>,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Error {
        Error::Field {
            file: self.file.to_string(),
            line,
            field: field.into(),
            expected: expected.into(),
            found: found.into(),
        }
    }

    fn warning(&self, line: usize, message: String) -> Warning {
        Warning {
            file: self.file.to_string(),
            line,
            message,
        }
    }
}

/// Reads a CoNLL column file; see [`parse_conll`].
pub fn read_conll(path: impl AsRef<Path>, options: &ConllOptions) -> Result<Loaded> {
    let (bytes, file) = read_file(path.as_ref())?;
    parse_conll(&bytes, &file, options)
}

/// A CoNLL word before tags are resolved.
struct RawWord<'a> {
    text: &'a str,
    columns: Vec<&'a str>,
    tag: Tag<'a>,
    line: usize,
}

/// A CoNLL document before tags are resolved.
struct RawDocument<'a> {
    docstart: Option<&'a str>,
    sentences: Vec<Vec<RawWord<'a>>>,
}

/// Parses CoNLL columns: `word [columns…] tag` per line, at least two columns, the same
/// number on every line; tab-separated if the first word line has a tab (then split on each
/// tab), else split on runs of whitespace. Blank lines end sentences (several count as one);
/// a line whose first field is `-DOCSTART-` starts a document and is kept verbatim. Trailing
/// whitespace and `\r` are ignored. `file` names the input in errors and warnings.
pub fn parse_conll(bytes: &[u8], file: &str, options: &ConllOptions) -> Result<Loaded> {
    let text = decode(bytes, file)?;
    let fields = Fields { file };
    let mut documents = vec![RawDocument {
        docstart: None,
        sentences: Vec::new(),
    }];
    let mut sentence: Vec<RawWord> = Vec::new();
    let mut separator = None;
    let mut layout: Option<(usize, usize)> = None; // (number of columns, line that set it)
    for (index, line) in text.split('\n').enumerate() {
        let line_no = index + 1;
        let line = line.trim_end();
        let current = documents.last_mut().expect("there is always a document");
        if line.is_empty() {
            if !sentence.is_empty() {
                current.sentences.push(std::mem::take(&mut sentence));
            }
            continue;
        }
        if line.split_whitespace().next() == Some("-DOCSTART-") {
            if !sentence.is_empty() {
                current.sentences.push(std::mem::take(&mut sentence));
            }
            documents.push(RawDocument {
                docstart: Some(line),
                sentences: Vec::new(),
            });
            continue;
        }
        let sep = *separator.get_or_insert(if line.contains('\t') {
            Separator::Tab
        } else {
            Separator::Space
        });
        let cols: Vec<&str> = match sep {
            Separator::Tab => line.split('\t').collect(),
            Separator::Space => line.split_whitespace().collect(),
        };
        let (n, first_line) = *layout.get_or_insert((cols.len(), line_no));
        if cols.len() < 2 {
            return Err(fields.error(
                line_no,
                "columns",
                "at least 2 columns (word … tag)",
                format!("1 column: {line:?}"),
            ));
        }
        if cols.len() != n {
            return Err(fields.error(
                line_no,
                "columns",
                format!("{n} columns, as on line {first_line}"),
                cols.len().to_string(),
            ));
        }
        if cols[0].is_empty() {
            return Err(fields.error(line_no, "column 1 (word)", "a word", "an empty column"));
        }
        let tag = tags::parse_tag(cols[n - 1]).ok_or_else(|| {
            fields.error(
                line_no,
                format!("column {n} (tag)"),
                "O or B-, I-, E-, S- and a type (e.g. B-PER)",
                format!("{:?}", cols[n - 1]),
            )
        })?;
        sentence.push(RawWord {
            text: cols[0],
            columns: cols[1..n - 1].to_vec(),
            tag,
            line: line_no,
        });
    }
    if !sentence.is_empty() {
        let current = documents.last_mut().expect("there is always a document");
        current.sentences.push(sentence);
    }
    let has_markers = documents.len() > 1;
    if documents[0].sentences.is_empty() {
        documents.remove(0);
    }

    let scheme = match options.scheme {
        TagScheme::Auto => detect_scheme(documents.iter().flat_map(|d| &d.sentences)),
        scheme => scheme,
    };
    let mut warnings = Vec::new();
    // Offsets are set when the sentences are laid out into a document.
    let mut resolve = |words: Vec<RawWord>| -> Result<Sentence> {
        let entities = resolve_tags(&words, scheme, &fields, &mut warnings)?;
        let words = words
            .into_iter()
            .map(|w| Word {
                text: w.text.to_string(),
                start: 0,
                end: 0,
                columns: w.columns.into_iter().map(str::to_string).collect(),
            })
            .collect();
        Ok(Sentence { words, entities })
    };
    let mut built = Vec::new();
    for raw in documents {
        let sentences = raw
            .sentences
            .into_iter()
            .map(&mut resolve)
            .collect::<Result<Vec<_>>>()?;
        let docstart = raw.docstart.map(str::to_string);
        if has_markers {
            built.push(Document::from_words(
                built.len().to_string(),
                docstart,
                sentences,
            ));
        } else {
            // Without markers every sentence is its own document.
            for sentence in sentences {
                built.push(Document::from_words(
                    built.len().to_string(),
                    None,
                    vec![sentence],
                ));
            }
        }
    }
    let corpus = Corpus {
        documents: built,
        annotated: true,
        separator: separator.unwrap_or_default(),
    };
    let corpus = match options.documents {
        DocumentMode::Auto => corpus,
        DocumentMode::Sentences => corpus.into_sentence_documents(),
    };
    Ok(Loaded {
        corpus,
        warnings,
        scheme: Some(scheme),
    })
}

/// See [`TagScheme::Auto`].
fn detect_scheme<'a>(sentences: impl Iterator<Item = &'a Vec<RawWord<'a>>>) -> TagScheme {
    let mut inside_starts = false;
    let mut begin_after_other = false;
    for words in sentences {
        let mut prev: Tag = None;
        for word in words {
            let same_as_prev = |label| matches!(prev, Some((_, l)) if l == label);
            match word.tag {
                Some((Prefix::E | Prefix::S, _)) => return TagScheme::Bioes,
                Some((Prefix::B, label)) if !same_as_prev(label) => begin_after_other = true,
                Some((Prefix::I, label)) if !same_as_prev(label) => inside_starts = true,
                _ => {}
            }
            prev = word.tag;
        }
    }
    if inside_starts && !begin_after_other {
        TagScheme::Iob1
    } else {
        TagScheme::Iob2
    }
}

fn show_tag(tag: Tag) -> String {
    match tag {
        None => "O".to_string(),
        Some((prefix, label)) => format!("{prefix:?}-{label}"),
    }
}

/// Turns one sentence's tags into entities under `scheme` (never `Auto`), with conlleval's
/// repair of invalid sequences, warning about each repair.
fn resolve_tags(
    words: &[RawWord],
    scheme: TagScheme,
    fields: &Fields,
    warnings: &mut Vec<Warning>,
) -> Result<Vec<Entity>> {
    let tags: Vec<Tag> = words.iter().map(|w| w.tag).collect();
    if scheme != TagScheme::Bioes {
        if let Some(w) = words
            .iter()
            .find(|w| matches!(w.tag, Some((Prefix::E | Prefix::S, _))))
        {
            return Err(fields.error(
                w.line,
                "tag",
                format!("O, B- or I- tags ({scheme:?} scheme)"),
                show_tag(w.tag),
            ));
        }
    }
    let chunks = tags::lenient_chunks(&tags);
    for chunk in &chunks {
        let first = &words[chunk.start];
        let (first_prefix, last_prefix) = match (first.tag, tags[chunk.end - 1]) {
            (Some((p, _)), Some((q, _))) => (p, q),
            _ => unreachable!("chunks cover only non-O tags"),
        };
        let continuation = matches!(first_prefix, Prefix::I | Prefix::E);
        if continuation && scheme != TagScheme::Iob1 {
            let prev = if chunk.start == 0 {
                "the sentence start".to_string()
            } else {
                show_tag(tags[chunk.start - 1])
            };
            warnings.push(fields.warning(
                first.line,
                format!(
                    "{} after {prev} continues no entity; read as the start of one",
                    show_tag(first.tag)
                ),
            ));
        } else if scheme == TagScheme::Bioes
            && first_prefix == Prefix::B
            && last_prefix != Prefix::E
        {
            warnings.push(fields.warning(
                words[chunk.end - 1].line,
                format!(
                    "{}-entity starting at line {} is not closed by E-{}; kept as it is",
                    chunk.label, first.line, chunk.label
                ),
            ));
        }
    }
    Ok(chunks
        .into_iter()
        .map(|c| Entity {
            start: c.start,
            end: c.end,
            label: c.label.to_string(),
        })
        .collect())
}

/// Reads a JSONL span file; see [`parse_jsonl`].
pub fn read_jsonl(path: impl AsRef<Path>) -> Result<Loaded> {
    let (bytes, file) = read_file(path.as_ref())?;
    parse_jsonl(&bytes, &file)
}

/// Parses JSONL: per non-blank line an object with `text` (string, required), `id` (string
/// or non-negative integer; default: the line number) and `entities` (optional array of
/// `{"start", "end", "label"}`, character offsets into `text`, `start < end <= length`).
/// Other fields are ignored. The text is split into sentences and words by [`tokenize`].
///
/// A span that does not fall on word boundaries is snapped outward to the words it
/// overlaps (as NCBI-disease and BC5CDR extend mentions to whole tokens), with a warning;
/// one covering no word, or overlapping an earlier-starting (or, at the same start, longer)
/// span, is dropped with a warning, since IOB2 cannot nest. A span crossing a line break
/// is an error, since sentences are lines.
pub fn parse_jsonl(bytes: &[u8], file: &str) -> Result<Loaded> {
    let text = decode(bytes, file)?;
    let fields = Fields { file };
    let mut documents = Vec::new();
    let mut warnings = Vec::new();
    let mut annotated = true;
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line).map_err(|e| Error::Json {
            file: file.to_string(),
            line: line_no,
            message: e.to_string(),
        })?;
        let object = value
            .as_object()
            .ok_or_else(|| fields.error(line_no, "line", "a JSON object", describe(&value)))?;
        let doc_text = match object.get("text") {
            Some(Value::String(s)) => s.clone(),
            other => {
                let found = other.map_or("no such field".to_string(), describe);
                return Err(fields.error(line_no, "text", "a string", found));
            }
        };
        let id = match object.get("id") {
            None => line_no.to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) if n.is_u64() => n.to_string(),
            Some(v) => {
                let expected = "a string or a non-negative integer";
                return Err(fields.error(line_no, "id", expected, describe(v)));
            }
        };
        let mut document = Document::from_text(id, doc_text);
        match object.get("entities") {
            None => annotated = false,
            Some(Value::Array(items)) => {
                let n_chars = document.text.chars().count();
                let spans = items
                    .iter()
                    .enumerate()
                    .map(|(k, item)| parse_span(item, k, n_chars, line_no, &fields))
                    .collect::<Result<Vec<_>>>()?;
                attach_spans(&mut document, spans, line_no, &fields, &mut warnings)?;
            }
            Some(v) => {
                let expected = "an array of {start, end, label} objects";
                return Err(fields.error(line_no, "entities", expected, describe(v)));
            }
        }
        documents.push(document);
    }
    let corpus = Corpus {
        documents,
        annotated,
        separator: Separator::default(),
    };
    Ok(Loaded {
        corpus,
        warnings,
        scheme: None,
    })
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
    }
}

/// A character span from JSONL, with its index in the `entities` array.
struct Span {
    start: usize,
    end: usize,
    label: String,
    index: usize,
}

fn parse_span(
    item: &Value,
    k: usize,
    n_chars: usize,
    line: usize,
    fields: &Fields,
) -> Result<Span> {
    let name = format!("entities[{k}]");
    let object = item.as_object().ok_or_else(|| {
        fields.error(line, &name, "an object {start, end, label}", describe(item))
    })?;
    let offset = |key: &str| match object.get(key) {
        Some(Value::Number(n)) if n.is_u64() => Ok(n.as_u64().expect("checked") as usize),
        other => Err(fields.error(
            line,
            format!("{name}.{key}"),
            "a non-negative integer (a character offset)",
            other.map_or("no such field".to_string(), describe),
        )),
    };
    let (start, end) = (offset("start")?, offset("end")?);
    let label = match object.get("label") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        other => {
            let found = other.map_or("no such field".to_string(), describe);
            return Err(fields.error(line, format!("{name}.label"), "a non-empty string", found));
        }
    };
    if end > n_chars {
        return Err(fields.error(
            line,
            format!("{name}.end"),
            format!("at most the text length, {n_chars} characters"),
            end.to_string(),
        ));
    }
    if start >= end {
        return Err(fields.error(
            line,
            name,
            "start < end",
            format!("start {start}, end {end}"),
        ));
    }
    Ok(Span {
        start,
        end,
        label,
        index: k,
    })
}

/// Maps character spans onto the document's words; see [`parse_jsonl`] for the rules.
fn attach_spans(
    document: &mut Document,
    spans: Vec<Span>,
    line: usize,
    fields: &Fields,
    warnings: &mut Vec<Warning>,
) -> Result<()> {
    // Every word as (sentence, word index, start, end), in text order.
    let flat: Vec<(usize, usize, usize, usize)> = document
        .sentences
        .iter()
        .enumerate()
        .flat_map(|(s, sentence)| {
            sentence
                .words
                .iter()
                .enumerate()
                .map(move |(w, word)| (s, w, word.start, word.end))
        })
        .collect();
    // Per sentence: (entity, index in the JSON array).
    let mut placed: Vec<Vec<(Entity, usize)>> = vec![Vec::new(); document.sentences.len()];
    for span in spans {
        let describe_span = format!(
            "entities[{}] [{}, {}) {}",
            span.index, span.start, span.end, span.label
        );
        let first = flat.partition_point(|&(.., end)| end <= span.start);
        let past = flat.partition_point(|&(_, _, start, _)| start < span.end);
        if first >= past {
            let message = format!("{describe_span} covers no word; dropped");
            warnings.push(fields.warning(line, message));
            continue;
        }
        let (s, a, start, _) = flat[first];
        let (s_last, b, _, end) = flat[past - 1];
        if s != s_last {
            return Err(fields.error(
                line,
                format!("entities[{}]", span.index),
                "a span within one line of text (sentences are lines)",
                format!("[{}, {}) across a line break", span.start, span.end),
            ));
        }
        if (start, end) != (span.start, span.end) {
            let words: Vec<&str> = document.sentences[s].words[a..=b]
                .iter()
                .map(|w| w.text.as_str())
                .collect();
            let message = format!(
                "{describe_span} is not on word boundaries; snapped to [{start}, {end}) {:?}",
                words.join(" ")
            );
            warnings.push(fields.warning(line, message));
        }
        let entity = Entity {
            start: a,
            end: b + 1,
            label: span.label,
        };
        placed[s].push((entity, span.index));
    }
    for (sentence, mut candidates) in document.sentences.iter_mut().zip(placed) {
        candidates.sort_by_key(|(e, k)| (e.start, std::cmp::Reverse(e.end), *k));
        let mut kept: Vec<(Entity, usize)> = Vec::with_capacity(candidates.len());
        for (entity, k) in candidates {
            match kept.last() {
                Some((last, j)) if entity.start < last.end => {
                    let message = format!(
                        "entities[{k}] overlaps entities[{j}] after mapping to words; dropped (entities cannot nest)"
                    );
                    warnings.push(fields.warning(line, message));
                }
                _ => kept.push((entity, k)),
            }
        }
        sentence.entities = kept.into_iter().map(|(e, _)| e).collect();
    }
    Ok(())
}

/// Reads plain text; see [`parse_text`].
pub fn read_text(path: impl AsRef<Path>, mode: TextMode) -> Result<Loaded> {
    let (bytes, file) = read_file(path.as_ref())?;
    parse_text(&bytes, &file, mode)
}

/// Parses plain text for annotation (no gold). [`TextMode::Lines`]: one document per
/// non-blank line, its id the line number (`\r\n` endings are accepted). [`TextMode::Whole`]:
/// the file is one document, id `"0"`. Words come from [`tokenize`].
pub fn parse_text(bytes: &[u8], file: &str, mode: TextMode) -> Result<Loaded> {
    let text = decode(bytes, file)?;
    let documents = match mode {
        TextMode::Lines => text
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(i, line)| Document::from_text((i + 1).to_string(), line.to_string()))
            .collect(),
        TextMode::Whole => vec![Document::from_text("0".to_string(), text.to_string())],
    };
    let corpus = Corpus {
        documents,
        annotated: false,
        separator: Separator::default(),
    };
    Ok(Loaded {
        corpus,
        warnings: Vec::new(),
        scheme: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampled_sentences_are_whole_deterministic_and_capped() {
        let text = "-DOCSTART- O\n\nA O\nb O\n\nC O\n\n-DOCSTART- O\n\nD O\ne O\nf O\n\nG O\n";
        let corpus = parse_conll(text.as_bytes(), "t.conll", &ConllOptions::default())
            .unwrap()
            .corpus;
        let words = |m: &[Vec<bool>]| m.iter().flatten().filter(|&&k| k).count();
        let two = corpus.sample_sentences(2, 7);
        assert_eq!(two, corpus.sample_sentences(2, 7));
        assert_eq!(two.iter().map(Vec::len).collect::<Vec<_>>(), [3, 4]);
        // Each sentence is kept whole: the masks are unions of whole sentences.
        let sentences = [(0, 0..2), (0, 2..3), (1, 0..3), (1, 3..4)];
        let kept = sentences
            .iter()
            .filter(|(d, r)| two[*d][r.clone()].iter().all(|&k| k))
            .count();
        assert_eq!(kept, 2);
        assert!(sentences
            .iter()
            .all(|(d, r)| two[*d][r.clone()].iter().all(|&k| k)
                || two[*d][r.clone()].iter().all(|&k| !k)));
        assert_eq!(words(&corpus.sample_sentences(10, 0)), 7);
        assert_eq!(words(&corpus.sample_sentences(0, 0)), 0);
    }

    fn conll(text: &str) -> Loaded {
        parse_conll(text.as_bytes(), "t.conll", &ConllOptions::default()).unwrap()
    }

    fn conll_with(text: &str, scheme: TagScheme) -> Result<Loaded> {
        let options = ConllOptions {
            scheme,
            ..Default::default()
        };
        parse_conll(text.as_bytes(), "t.conll", &options)
    }

    fn jsonl(text: &str) -> Result<Loaded> {
        parse_jsonl(text.as_bytes(), "t.jsonl")
    }

    fn spans(corpus: &Corpus) -> Vec<(String, usize, usize, String)> {
        corpus
            .documents
            .iter()
            .flat_map(|d| {
                d.sentences.iter().flat_map(move |s| {
                    s.entities.iter().map(move |e| {
                        let (start, end) = s.char_span(e);
                        (d.id.clone(), start, end, e.label.clone())
                    })
                })
            })
            .collect()
    }

    fn messages(loaded: &Loaded) -> Vec<String> {
        loaded.warnings.iter().map(|w| w.to_string()).collect()
    }

    const FOUR_COLUMNS: &str = "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\ncall NN I-NP O\n\nPeter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n\n-DOCSTART- -X- -X- O\n\nBRUSSELS NNP B-NP B-LOC\n\n";

    #[test]
    fn reads_documents_words_offsets_and_entities() {
        let loaded = conll(FOUR_COLUMNS);
        assert!(loaded.warnings.is_empty());
        assert_eq!(loaded.scheme, Some(TagScheme::Iob2));
        let corpus = &loaded.corpus;
        assert_eq!(corpus.separator, Separator::Space);
        assert_eq!(corpus.documents.len(), 2);
        let doc = &corpus.documents[0];
        assert_eq!(doc.id, "0");
        assert_eq!(doc.text, "EU rejects German call\nPeter Blackburn");
        assert_eq!(doc.docstart.as_deref(), Some("-DOCSTART- -X- -X- O"));
        let peter = &doc.sentences[1].words[0];
        assert_eq!((peter.start, peter.end), (23, 28));
        assert_eq!(peter.columns, ["NNP", "B-NP"]);
        assert_eq!(
            spans(corpus),
            [
                ("0".into(), 0, 2, "ORG".into()),
                ("0".into(), 11, 17, "MISC".into()),
                ("0".into(), 23, 38, "PER".into()),
                ("1".into(), 0, 8, "LOC".into()),
            ]
        );
        assert_eq!(doc.sentences[1].tags(), ["B-PER", "I-PER"]);
        let stats = corpus.stats();
        assert_eq!(
            (
                stats.documents,
                stats.sentences,
                stats.words,
                stats.entities
            ),
            (2, 3, 7, 4)
        );
        assert_eq!(
            corpus.labels().into_iter().collect::<Vec<_>>(),
            ["LOC", "MISC", "ORG", "PER"]
        );
        assert_eq!(corpus.to_conll(), FOUR_COLUMNS);
    }

    #[test]
    fn offsets_count_code_points() {
        let text = "Zürich\tB-LOC\n北京\tB-LOC\n🙂\tO\nok\tO\n\n";
        let corpus = conll(text).corpus;
        let doc = &corpus.documents[0];
        assert_eq!(doc.text, "Zürich 北京 🙂 ok");
        let offsets: Vec<_> = doc.sentences[0]
            .words
            .iter()
            .map(|w| (w.start, w.end))
            .collect();
        assert_eq!(offsets, [(0, 6), (7, 9), (10, 11), (12, 14)]);
        assert_eq!(corpus.to_conll(), text);
    }

    #[test]
    fn without_markers_each_sentence_is_a_document() {
        let text = "BRCA1\tB-Disease\nis\tO\n\nataxia\tB-Disease\n-\tI-Disease\ntelangiectasia\tI-Disease\n\n";
        let loaded = conll(text);
        let corpus = &loaded.corpus;
        assert_eq!(corpus.separator, Separator::Tab);
        let ids: Vec<_> = corpus.documents.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["0", "1"]);
        assert_eq!(corpus.documents[1].text, "ataxia - telangiectasia");
        assert_eq!(spans(corpus)[1], ("1".into(), 0, 23, "Disease".into()));
        assert_eq!(corpus.to_conll(), text);
    }

    #[test]
    fn sentence_mode_splits_documents_and_keeps_the_file() {
        let options = ConllOptions {
            documents: DocumentMode::Sentences,
            ..Default::default()
        };
        let loaded = parse_conll(FOUR_COLUMNS.as_bytes(), "t.conll", &options).unwrap();
        let corpus = &loaded.corpus;
        let ids: Vec<_> = corpus.documents.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["0.0", "0.1", "1"]);
        let second = &corpus.documents[1];
        assert_eq!(second.text, "Peter Blackburn");
        assert_eq!(second.docstart, None);
        assert_eq!(
            (
                second.sentences[0].words[1].start,
                second.sentences[0].words[1].end
            ),
            (6, 15)
        );
        assert_eq!(spans(corpus)[2], ("0.1".into(), 0, 15, "PER".into()));
        assert_eq!(corpus.to_conll(), FOUR_COLUMNS);
        assert_ne!(corpus.checksum(), conll(FOUR_COLUMNS).corpus.checksum());
    }

    #[test]
    fn checksum_is_of_content() {
        let a = conll(FOUR_COLUMNS).corpus;
        let b = parse_conll(
            FOUR_COLUMNS.as_bytes(),
            "elsewhere.conll",
            &ConllOptions::default(),
        )
        .unwrap()
        .corpus;
        assert_eq!(a.checksum(), b.checksum());
        assert_eq!(a.checksum().len(), 64);
        let mut c = a.clone();
        c.documents[1].sentences[0].entities.clear();
        assert_ne!(a.checksum(), c.checksum());
    }

    #[test]
    fn iob1_is_detected_and_converted_silently() {
        // IOB1: I- starts entities; B- only between two adjacent entities of one type.
        let text = "a I-PER\nb I-PER\nc B-PER\nd O\ne I-LOC\nf I-ORG\n\n";
        let loaded = conll(text);
        assert_eq!(loaded.scheme, Some(TagScheme::Iob1));
        assert!(loaded.warnings.is_empty());
        let tags = loaded.corpus.documents[0].sentences[0].tags();
        assert_eq!(tags, ["B-PER", "I-PER", "B-PER", "O", "B-LOC", "B-ORG"]);
    }

    #[test]
    fn invalid_iob2_is_repaired_with_warnings() {
        let text = "a B-PER\nb O\nc I-PER\nd I-PER\n\ne B-LOC\nf I-ORG\n\n";
        let loaded = conll(text);
        assert_eq!(loaded.scheme, Some(TagScheme::Iob2));
        assert_eq!(
            messages(&loaded),
            [
                "t.conll:3: I-PER after O continues no entity; read as the start of one",
                "t.conll:7: I-ORG after B-LOC continues no entity; read as the start of one",
            ]
        );
        let corpus = &loaded.corpus;
        assert_eq!(
            corpus.documents[0].sentences[0].tags(),
            ["B-PER", "O", "B-PER", "I-PER"]
        );
        assert_eq!(corpus.documents[1].sentences[0].tags(), ["B-LOC", "B-ORG"]);
        // Forcing IOB1 reads the same entities without complaint.
        let iob1 = conll_with(text, TagScheme::Iob1).unwrap();
        assert!(iob1.warnings.is_empty());
        assert_eq!(iob1.corpus, loaded.corpus);
    }

    #[test]
    fn bioes_is_detected_converted_and_repaired() {
        let text = "a S-PER\nb B-LOC\nc I-LOC\nd E-LOC\ne O\nf E-ORG\ng B-PER\nh O\n\n";
        let loaded = conll(text);
        assert_eq!(loaded.scheme, Some(TagScheme::Bioes));
        let tags = loaded.corpus.documents[0].sentences[0].tags();
        assert_eq!(
            tags,
            ["B-PER", "B-LOC", "I-LOC", "I-LOC", "O", "B-ORG", "B-PER", "O"]
        );
        assert_eq!(
            messages(&loaded),
            [
                "t.conll:6: E-ORG after O continues no entity; read as the start of one",
                "t.conll:7: PER-entity starting at line 7 is not closed by E-PER; kept as it is",
            ]
        );
        let err = conll_with(text, TagScheme::Iob2).unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.conll:1: tag: expected O, B- or I- tags (Iob2 scheme), found S-PER"
        );
    }

    #[test]
    fn malformed_input_names_file_line_and_field() {
        let cases = [
            ("a O\nb\n", "t.conll:2: columns: expected at least 2 columns (word … tag), found 1 column: \"b\""),
            ("a X O\nb O\n", "t.conll:2: columns: expected 3 columns, as on line 1, found 2"),
            ("a O\nb PERSON\n", "t.conll:2: column 2 (tag): expected O or B-, I-, E-, S- and a type (e.g. B-PER), found \"PERSON\""),
            ("a\tO\n\tO\n", "t.conll:2: column 1 (word): expected a word, found an empty column"),
        ];
        for (text, message) in cases {
            let err = conll_with(text, TagScheme::Auto).unwrap_err();
            assert_eq!(err.to_string(), message);
        }
        let err =
            parse_conll(b"a O\n\nb\xff O\n", "t.conll", &ConllOptions::default()).unwrap_err();
        assert_eq!(err.to_string(), "t.conll:3: invalid UTF-8 at byte offset 6");
        let err = read_conll("/nonexistent/x.conll", &ConllOptions::default()).unwrap_err();
        assert!(
            err.to_string().starts_with("/nonexistent/x.conll: "),
            "{err}"
        );
    }

    #[test]
    fn tokenizes_words_and_punctuation_with_char_offsets() {
        let sentences = tokenize("Café 22-oxa, (x)\n\n  Zürich's  ");
        let words: Vec<Vec<(&str, usize, usize)>> = sentences
            .iter()
            .map(|s| {
                s.iter()
                    .map(|w| (w.text.as_str(), w.start, w.end))
                    .collect()
            })
            .collect();
        assert_eq!(
            words,
            [
                vec![
                    ("Café", 0, 4),
                    ("22", 5, 7),
                    ("-", 7, 8),
                    ("oxa", 8, 11),
                    (",", 11, 12),
                    ("(", 13, 14),
                    ("x", 14, 15),
                    (")", 15, 16)
                ],
                vec![("Zürich", 20, 26), ("'", 26, 27), ("s", 27, 28)],
            ]
        );
    }

    #[test]
    fn reads_jsonl_spans() {
        let text = concat!(
            r#"{"id": "a", "text": "Köln and Paris-Nord\nBerlin", "entities": [{"start": 0, "end": 4, "label": "LOC"}, {"start": 9, "end": 14, "label": "LOC"}, {"start": 20, "end": 26, "label": "LOC"}]}"#,
            "\n\n",
            r#"{"id": 7, "text": "no entities here"}"#,
            "\n"
        );
        let loaded = jsonl(text).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let corpus = &loaded.corpus;
        assert!(!corpus.annotated);
        assert_eq!(corpus.documents[1].id, "7");
        assert_eq!(corpus.documents[0].sentences.len(), 2);
        assert_eq!(
            spans(corpus),
            [
                ("a".into(), 0, 4, "LOC".into()),
                ("a".into(), 9, 14, "LOC".into()),
                ("a".into(), 20, 26, "LOC".into()),
            ]
        );
        assert_eq!(
            corpus.documents[0].sentences[0].tags(),
            ["B-LOC", "O", "B-LOC", "O", "O"]
        );
    }

    #[test]
    fn jsonl_spans_off_word_boundaries_are_snapped_or_dropped() {
        let text = r#"{"text": "the Ca2 ion  here", "entities": [{"start": 4, "end": 6, "label": "Chemical"}, {"start": 5, "end": 11, "label": "X"}, {"start": 11, "end": 13, "label": "Y"}]}"#;
        let loaded = jsonl(text).unwrap();
        // Both snapped spans start at "Ca2"; the longer one wins.
        assert_eq!(
            messages(&loaded),
            [
                "t.jsonl:1: entities[0] [4, 6) Chemical is not on word boundaries; snapped to [4, 7) \"Ca2\"",
                "t.jsonl:1: entities[1] [5, 11) X is not on word boundaries; snapped to [4, 11) \"Ca2 ion\"",
                "t.jsonl:1: entities[2] [11, 13) Y covers no word; dropped",
                "t.jsonl:1: entities[0] overlaps entities[1] after mapping to words; dropped (entities cannot nest)",
            ]
        );
        assert_eq!(spans(&loaded.corpus), [("1".into(), 4, 11, "X".into())]);
    }

    #[test]
    fn jsonl_errors_name_line_and_field() {
        let cases = [
            ("{\"text\": 1}", "t.jsonl:1: text: expected a string, found number 1"),
            ("\n{\"id\": true, \"text\": \"a\"}", "t.jsonl:2: id: expected a string or a non-negative integer, found boolean true"),
            ("{\"text\": \"a\", \"entities\": {}}", "t.jsonl:1: entities: expected an array of {start, end, label} objects, found an object"),
            ("{\"text\": \"ab\", \"entities\": [{\"start\": 0, \"end\": 3, \"label\": \"X\"}]}", "t.jsonl:1: entities[0].end: expected at most the text length, 2 characters, found 3"),
            ("{\"text\": \"ab\", \"entities\": [{\"start\": 2, \"end\": 1, \"label\": \"X\"}]}", "t.jsonl:1: entities[0]: expected start < end, found start 2, end 1"),
            ("{\"text\": \"ab\", \"entities\": [{\"start\": -1, \"end\": 1, \"label\": \"X\"}]}", "t.jsonl:1: entities[0].start: expected a non-negative integer (a character offset), found number -1"),
            ("{\"text\": \"ab\", \"entities\": [{\"start\": 0, \"end\": 1}]}", "t.jsonl:1: entities[0].label: expected a non-empty string, found no such field"),
            ("{\"text\": \"a\\nb\", \"entities\": [{\"start\": 0, \"end\": 3, \"label\": \"X\"}]}", "t.jsonl:1: entities[0]: expected a span within one line of text (sentences are lines), found [0, 3) across a line break"),
            ("[1]", "t.jsonl:1: line: expected a JSON object, found an array"),
        ];
        for (text, message) in cases {
            assert_eq!(jsonl(text).unwrap_err().to_string(), message);
        }
        let err = jsonl("{\"text\": \"a\"}\n{\"text\": ").unwrap_err();
        assert!(
            err.to_string().starts_with("t.jsonl:2: invalid JSON: EOF"),
            "{err}"
        );
        let err = parse_jsonl(b"{\"text\": \"\xc3(\"}", "t.jsonl").unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.jsonl:1: invalid UTF-8 at byte offset 10"
        );
    }

    #[test]
    fn conll_to_jsonl_and_back_keeps_entities() {
        let corpus = conll(FOUR_COLUMNS).corpus;
        let back = jsonl(&corpus.to_jsonl()).unwrap();
        assert!(back.warnings.is_empty());
        assert!(back.corpus.annotated);
        assert_eq!(spans(&back.corpus), spans(&corpus));
        assert_eq!(back.corpus.to_jsonl(), corpus.to_jsonl());
    }

    #[test]
    fn reads_plain_text() {
        let text = "First line.\r\n\nSecond, line\n";
        let lines = parse_text(text.as_bytes(), "t.txt", TextMode::Lines)
            .unwrap()
            .corpus;
        assert!(!lines.annotated);
        let docs: Vec<_> = lines
            .documents
            .iter()
            .map(|d| (d.id.as_str(), d.text.as_str()))
            .collect();
        assert_eq!(docs, [("1", "First line."), ("3", "Second, line")]);
        assert_eq!(lines.stats().words, 6);
        let whole = parse_text(text.as_bytes(), "t.txt", TextMode::Whole)
            .unwrap()
            .corpus;
        assert_eq!(whole.documents.len(), 1);
        assert_eq!(whole.documents[0].text, text);
        assert_eq!(whole.documents[0].sentences.len(), 2);
        assert_eq!(whole.documents[0].sentences[1].words[0].start, 14);
        assert_eq!(
            whole.to_jsonl(),
            "{\"id\":\"0\",\"text\":\"First line.\\r\\n\\nSecond, line\\n\"}\n"
        );
    }
}
