//! A corpus's SAE codes: the language model and the SAE run once over a corpus, and the
//! sparse code of every token is kept on disk with its character span, so calibration
//! sweeps and evaluations re-read it in seconds instead of re-running the model.
//!
//! A cache is one folder per key, under a root (by default `$SAENER_HOME/codes`). The key
//! is a hash of everything the codes depend on: the model file's SHA-256, the layer, the
//! SAE's content id, the corpus checksum (which differs between document and sentence
//! context) and the windowing. A folder whose recorded key differs is never read: it is
//! rebuilt. Writing appends one record per document and syncs after each chunk, so an
//! interrupted run resumes where it stopped (a torn last record is cut off).
//!
//! Dense residuals at each word's last token (for probes, [`CodeEncoder::word_residuals`])
//! are cached the same way in a `-dense` folder, as bf16. On request, every token's residual
//! is cached too, in f32 (so codes computed from it are bit-identical to codes computed
//! from the model) in a `-residuals` folder keyed without the SAE: codes for another SAE of
//! the same layer then skip the model, which is what comparing SAEs on NER needs.
//!
//! Layout of `codes.bin`, little-endian, after an 8-byte magic: per document, in corpus
//! order, `u32` document index, `u32` token count `n`, then `n × (u32 start, u32 end,
//! u32 active)`, then all active feature ids (`u32`), then their values (`f32`). Token 0
//! is BOS, stored with no active features (it is never counted or decoded).
//! This is hand-written rather than a general serializer because records are appended
//! and validated one by one for resuming, and the files are hundreds of megabytes.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use saener_lm::residuals::{Extractor, Residuals};
use saener_sae::{Sae, SparseCode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use rayon::prelude::*;

use crate::align::Alignment;
use crate::corpus::{Corpus, Document};
use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"SAENERC1";
const CODES_FILE: &str = "codes.bin";
const WORDS_FILE: &str = "words.bin";
const RESIDUALS_FILE: &str = "residuals.bin";
const KEY_FILE: &str = "key.json";
/// Characters of text per model call between syncs (about 12k tokens, ~15 s on 2 cores).
const CHUNK_CHARS: usize = 48_000;

/// One document's codes: token spans (code points, BOS first with `(0, 0)`) and one sparse
/// code per token.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentCodes {
    pub offsets: Vec<(usize, usize)>,
    pub codes: Vec<SparseCode>,
}

/// A corpus with every document's codes and token ↔ word alignment: what calibration
/// counts and evaluation decodes.
#[derive(Debug, Clone)]
pub struct EncodedCorpus {
    pub corpus: Corpus,
    pub alignments: Vec<Alignment>,
    pub codes: Vec<Vec<SparseCode>>,
}

impl EncodedCorpus {
    /// Pairs `corpus` with its codes (from [`CodeEncoder::corpus_codes`]), aligning tokens
    /// to words.
    pub fn new(corpus: Corpus, codes: Vec<DocumentCodes>) -> Result<EncodedCorpus> {
        if codes.len() != corpus.documents.len() {
            return Err(Error::Mismatch {
                at: "the number of documents".into(),
                gold: corpus.documents.len().to_string(),
                pred: format!("{} encoded", codes.len()),
            });
        }
        let alignments = corpus
            .documents
            .par_iter()
            .zip(&codes)
            .map(|(document, c)| {
                let alignment = Alignment::new(document, &c.offsets)?;
                alignment.check(document, c.codes.len())?;
                Ok(alignment)
            })
            .collect::<Result<_>>()?;
        Ok(EncodedCorpus {
            corpus,
            alignments,
            codes: codes.into_iter().map(|c| c.codes).collect(),
        })
    }

    /// Splits off the documents from `at` on, as a corpus of their own (a tuning set held
    /// out of calibration data).
    pub fn split_off(&mut self, at: usize) -> EncodedCorpus {
        EncodedCorpus {
            corpus: Corpus {
                documents: self.corpus.documents.split_off(at),
                annotated: self.corpus.annotated,
                separator: self.corpus.separator,
            },
            alignments: self.alignments.split_off(at),
            codes: self.codes.split_off(at),
        }
    }

    /// Tokens (BOS included) over all documents.
    pub fn n_tokens(&self) -> usize {
        self.codes.iter().map(Vec::len).sum()
    }
}

/// What the codes depend on; a cache is used only if all of it matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheKey {
    /// SHA-256 of the GGUF model file.
    pub model: String,
    pub layer: usize,
    /// [`Sae::id`].
    pub sae: String,
    /// [`Corpus::checksum`].
    pub corpus: String,
    /// Window length and overlap of long documents.
    pub window: (usize, usize),
    pub documents: usize,
    /// Echo reading ([`saener_lm::residuals::ExtractOptions::echo`]); left out of the key
    /// when off, so caches made before it existed stay valid.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub echo: bool,
    /// Precision of the model's matrix products ([`saener_lm::gemma3::Gemma3::precision`]);
    /// left out of the key at f32, so caches made before it existed stay valid.
    #[serde(default = "f32_name", skip_serializing_if = "is_f32")]
    pub precision: String,
}

fn f32_name() -> String {
    saener_lm::Precision::F32.to_string()
}

fn is_f32(precision: &str) -> bool {
    precision == saener_lm::Precision::F32.as_str()
}

impl CacheKey {
    fn folder_name(&self) -> String {
        let json = serde_json::to_string(self).expect("a key serializes");
        let digest = Sha256::digest(json.as_bytes());
        format!("{:x}", digest)[..24].to_string()
    }
}

/// Runs the model and the SAE over documents.
pub struct CodeEncoder<'a> {
    pub extractor: Extractor<'a>,
    pub sae: &'a Sae,
    /// SHA-256 of the model file, for cache keys and profiles.
    pub model_id: String,
}

impl CodeEncoder<'_> {
    /// The cache key of `corpus` under this encoder.
    pub fn key(&self, corpus: &Corpus) -> CacheKey {
        let window = self.extractor.options.window;
        CacheKey {
            model: self.model_id.clone(),
            layer: self.extractor.options.layer,
            sae: self.sae.id().to_string(),
            corpus: corpus.checksum(),
            window: (window.window, window.overlap),
            documents: corpus.documents.len(),
            echo: self.extractor.options.echo,
            precision: self.extractor.model.precision().to_string(),
        }
    }

    fn encode_rows(&self, residuals: TokenRows) -> Result<DocumentCodes> {
        let d = self.sae.config().d_in;
        let mut codes = vec![SparseCode::default()];
        codes.extend(self.sae.encode_sparse(&residuals.rows[d..])?);
        Ok(DocumentCodes {
            offsets: residuals.offsets,
            codes,
        })
    }

    /// Codes of every document of `corpus`, from the cache under `root` if it holds them,
    /// else computed (resuming a partial cache) and stored there. `progress(done, total)`
    /// counts documents. Without a root, nothing is read or written.
    ///
    /// With `keep_residuals` (and a root), codes the cache lacks are computed from the
    /// corpus's cached residuals, which are computed and cached first if missing (progress
    /// then counts that pass before the encoding pass).
    pub fn corpus_codes(
        &self,
        corpus: &Corpus,
        root: Option<&Path>,
        keep_residuals: bool,
        progress: impl FnMut(usize, usize),
    ) -> Result<Vec<DocumentCodes>> {
        let make = |_: &Document, rows| self.encode_rows(rows);
        self.derive(
            corpus,
            root,
            keep_residuals,
            ("", CODES_FILE),
            progress,
            make,
        )
    }

    /// The dense residual row of each word's last token (what a dense probe reads), per
    /// document, cached like [`CodeEncoder::corpus_codes`] (bf16 on disk), and like it
    /// computed from the residual cache with `keep_residuals`. The SAE is not run; a word
    /// no token overlaps gets a zero row.
    pub fn word_residuals(
        &self,
        corpus: &Corpus,
        root: Option<&Path>,
        keep_residuals: bool,
        progress: impl FnMut(usize, usize),
    ) -> Result<Vec<WordRows>> {
        let cache = ("-dense", WORDS_FILE);
        self.derive(corpus, root, keep_residuals, cache, progress, word_rows)
    }

    /// Records `make(document, its token rows)` of every document of `corpus`, cached under
    /// `root` in the key's folder (plus `suffix`) as `file_name`; the token rows come from
    /// the model, or with `keep_residuals` (and a root) from the residual cache, loaded on
    /// the first chunk that needs computing, so a complete cache of records never reads the
    /// (much larger) residuals.
    fn derive<R: Record>(
        &self,
        corpus: &Corpus,
        root: Option<&Path>,
        keep_residuals: bool,
        (suffix, file_name): (&str, &str),
        progress: impl FnMut(usize, usize),
        make: impl Fn(&Document, TokenRows) -> Result<R>,
    ) -> Result<Vec<R>> {
        let key = self.key(corpus);
        let dir = root.map(|r| r.join(format!("{}{suffix}", key.folder_name())));
        let progress = std::cell::RefCell::new(progress);
        let report = |done, total| (progress.borrow_mut())(done, total);
        let mut residuals: Option<Vec<Option<TokenRows>>> = None;
        cached(corpus, &key, dir, file_name, report, |start, chunk| {
            let Some(root) = root.filter(|_| keep_residuals) else {
                let texts: Vec<&str> = chunk.iter().map(|d| d.text.as_str()).collect();
                return chunk
                    .iter()
                    .zip(self.extractor.run(&texts, |_| {})?)
                    .map(|(document, r)| make(document, TokenRows::from(r)))
                    .collect();
            };
            let rows = match &mut residuals {
                Some(rows) => rows,
                None => residuals.insert(
                    self.token_residuals(corpus, root, report)?
                        .into_iter()
                        .map(Some)
                        .collect(),
                ),
            };
            chunk
                .iter()
                .zip(&mut rows[start..start + chunk.len()])
                .map(|(document, r)| {
                    make(document, r.take().expect("each document is derived once"))
                })
                .collect()
        })
    }

    /// Every token's residual of every document of `corpus`, cached under `root` with a key
    /// that leaves the SAE out.
    fn token_residuals(
        &self,
        corpus: &Corpus,
        root: &Path,
        progress: impl FnMut(usize, usize),
    ) -> Result<Vec<TokenRows>> {
        let key = CacheKey {
            sae: String::new(),
            ..self.key(corpus)
        };
        let dir = root.join(format!("{}-residuals", key.folder_name()));
        cached(
            corpus,
            &key,
            Some(dir),
            RESIDUALS_FILE,
            progress,
            |_, chunk| {
                let texts: Vec<&str> = chunk.iter().map(|d| d.text.as_str()).collect();
                Ok(self
                    .extractor
                    .run(&texts, |_| {})?
                    .into_iter()
                    .map(TokenRows::from)
                    .collect())
            },
        )
    }
}

/// Per word of a document, `d` values: the residual at the word's last token.
#[derive(Debug, Clone, PartialEq)]
pub struct WordRows {
    pub d: usize,
    /// `[n_words, d]` row-major.
    pub rows: Vec<f32>,
}

/// One document's residual stream, every token (BOS first): its character spans and
/// `[n_tokens, d]` row-major f32 values.
#[derive(Debug, Clone, PartialEq)]
struct TokenRows {
    offsets: Vec<(usize, usize)>,
    rows: Vec<f32>,
}

impl From<Residuals> for TokenRows {
    fn from(residuals: Residuals) -> Self {
        TokenRows {
            offsets: residuals.encoding.offsets,
            rows: residuals.rows,
        }
    }
}

fn word_rows(document: &Document, residuals: TokenRows) -> Result<WordRows> {
    let d = residuals.rows.len() / residuals.offsets.len().max(1);
    let alignment = Alignment::new(document, &residuals.offsets)?;
    let mut rows = vec![0.0; alignment.n_words() * d];
    for (w, row) in rows.chunks_exact_mut(d.max(1)).enumerate() {
        if let Some(t) = alignment.tokens_of(w).last() {
            row.copy_from_slice(&residuals.rows[t * d..(t + 1) * d]);
        }
    }
    Ok(WordRows { d, rows })
}

/// One record per document of a cache file.
trait Record: Sized {
    fn write(&self, put: &mut dyn FnMut(u32));
    /// Parses the record body (after the index); `None` if the bytes run out.
    fn read(reader: &mut RecordReader<'_>) -> Option<Self>;
}

impl Record for DocumentCodes {
    fn write(&self, put: &mut dyn FnMut(u32)) {
        put(self.offsets.len() as u32);
        for (&(start, end), code) in self.offsets.iter().zip(&self.codes) {
            put(start as u32);
            put(end as u32);
            put(code.ids.len() as u32);
        }
        for code in &self.codes {
            code.ids.iter().for_each(|&id| put(id));
        }
        for code in &self.codes {
            code.values.iter().for_each(|v| put(v.to_bits()));
        }
    }

    fn read(reader: &mut RecordReader<'_>) -> Option<Self> {
        let n = words(reader.u32s(1)?)[0] as usize;
        let tokens = words(reader.u32s(3 * n)?);
        let active: usize = tokens.chunks_exact(3).map(|t| t[2] as usize).sum();
        let ids = words(reader.u32s(active)?);
        let values: Vec<f32> = words(reader.u32s(active)?)
            .into_iter()
            .map(f32::from_bits)
            .collect();
        let (mut offsets, mut codes) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let mut k = 0;
        for t in tokens.chunks_exact(3) {
            offsets.push((t[0] as usize, t[1] as usize));
            let m = t[2] as usize;
            codes.push(SparseCode {
                ids: ids[k..k + m].to_vec(),
                values: values[k..k + m].to_vec(),
            });
            k += m;
        }
        Some(DocumentCodes { offsets, codes })
    }
}

impl Record for TokenRows {
    /// The token count `n`, `d`, `n × (u32 start, u32 end)`, then `n × d` f32 values.
    fn write(&self, put: &mut dyn FnMut(u32)) {
        let n = self.offsets.len();
        put(n as u32);
        put((self.rows.len() / n.max(1)) as u32);
        for &(start, end) in &self.offsets {
            put(start as u32);
            put(end as u32);
        }
        self.rows.iter().for_each(|v| put(v.to_bits()));
    }

    fn read(reader: &mut RecordReader<'_>) -> Option<Self> {
        let head = words(reader.u32s(2)?);
        let (n, d) = (head[0] as usize, head[1] as usize);
        let offsets = words(reader.u32s(n.checked_mul(2)?)?)
            .chunks_exact(2)
            .map(|s| (s[0] as usize, s[1] as usize))
            .collect();
        let rows = words(reader.u32s(n.checked_mul(d)?)?)
            .into_iter()
            .map(f32::from_bits)
            .collect();
        Some(TokenRows { offsets, rows })
    }
}

impl Record for WordRows {
    /// `d`, the word count, then bf16 values two to a word (half the size of f32; a probe
    /// loses nothing measurable to it).
    fn write(&self, put: &mut dyn FnMut(u32)) {
        put(self.d as u32);
        put((self.rows.len() / self.d.max(1)) as u32);
        for pair in self.rows.chunks(2) {
            let lo = half::bf16::from_f32(pair[0]).to_bits() as u32;
            let hi = pair
                .get(1)
                .map_or(0, |&v| half::bf16::from_f32(v).to_bits() as u32);
            put(lo | (hi << 16));
        }
    }

    fn read(reader: &mut RecordReader<'_>) -> Option<Self> {
        let head = words(reader.u32s(2)?);
        let (d, n) = (head[0] as usize, head[1] as usize);
        let len = d.checked_mul(n)?;
        let rows = words(reader.u32s(len.div_ceil(2))?)
            .into_iter()
            .flat_map(|w| [w as u16, (w >> 16) as u16])
            .take(len)
            .map(|b| half::bf16::from_bits(b).to_f32())
            .collect();
        Some(WordRows { d, rows })
    }
}

/// The records of `corpus` under `dir` (computed by `compute(first document index, chunk)`
/// for what the cache lacks), or all computed in memory without a `dir`.
fn cached<R: Record>(
    corpus: &Corpus,
    key: &CacheKey,
    dir: Option<PathBuf>,
    file_name: &str,
    mut progress: impl FnMut(usize, usize),
    mut compute: impl FnMut(usize, &[Document]) -> Result<Vec<R>>,
) -> Result<Vec<R>> {
    let total = corpus.documents.len();
    let Some(dir) = dir else {
        let mut out = Vec::with_capacity(total);
        for chunk in chunks(&corpus.documents) {
            out.extend(compute(out.len(), chunk)?);
            progress(out.len(), total);
        }
        return Ok(out);
    };
    let mut writer = CacheWriter::open::<R>(&dir, key, file_name)?;
    let mut done = writer.documents;
    progress(done, total);
    for chunk in chunks(&corpus.documents[done..]) {
        for record in compute(done, chunk)? {
            writer.append(done, &record)?;
            done += 1;
        }
        writer.sync()?;
        progress(done, total);
    }
    drop(writer);
    read_cache(&dir.join(file_name), total)
}

/// Consecutive runs of documents of about [`CHUNK_CHARS`] characters (at least one each).
fn chunks(documents: &[Document]) -> impl Iterator<Item = &[Document]> {
    let mut rest = documents;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut chars = 0;
        let n = rest
            .iter()
            .take_while(|d| {
                let take = chars < CHUNK_CHARS;
                chars += d.text.len();
                take
            })
            .count()
            .max(1);
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        Some(chunk)
    })
}

/// Appends document records to a cache folder, after validating what it already holds.
struct CacheWriter {
    out: BufWriter<File>,
    file: PathBuf,
    /// Complete records in the file.
    documents: usize,
}

impl CacheWriter {
    fn open<R: Record>(dir: &Path, key: &CacheKey, file_name: &str) -> Result<CacheWriter> {
        let key_file = dir.join(KEY_FILE);
        let file = dir.join(file_name);
        let same_key = std::fs::read_to_string(&key_file)
            .ok()
            .and_then(|text| serde_json::from_str::<CacheKey>(&text).ok())
            .is_some_and(|k| k == *key);
        if !same_key {
            // A different or unreadable key: whatever is there is stale.
            if dir.exists() {
                std::fs::remove_dir_all(dir).map_err(|e| io(dir, e))?;
            }
            std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
            let json = serde_json::to_string_pretty(key).expect("a key serializes");
            std::fs::write(&key_file, json).map_err(|e| io(&key_file, e))?;
        }
        let mut f = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&file)
            .map_err(|e| io(&file, e))?;
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).map_err(|e| io(&file, e))?;
        let (documents, valid) = if bytes.len() < MAGIC.len() {
            (0, 0)
        } else if &bytes[..MAGIC.len()] != MAGIC {
            return Err(corrupt(&file, 0, "a saener codes file"));
        } else {
            let mut reader = RecordReader::new(&bytes, &file);
            let mut documents = 0;
            let mut valid = reader.pos;
            while let Some(Ok(_)) = reader.next_record::<R>(documents) {
                documents += 1;
                valid = reader.pos;
            }
            (documents, valid)
        };
        // Cut a torn tail (or an empty file) back to the last whole record.
        f.set_len(valid as u64).map_err(|e| io(&file, e))?;
        f.seek(SeekFrom::End(0)).map_err(|e| io(&file, e))?;
        let mut out = BufWriter::new(f);
        if valid == 0 {
            out.write_all(MAGIC).map_err(|e| io(&file, e))?;
        }
        Ok(CacheWriter {
            out,
            file,
            documents,
        })
    }

    fn append(&mut self, index: usize, record: &impl Record) -> Result<()> {
        let mut buf = Vec::new();
        let mut put = |v: u32| buf.extend_from_slice(&v.to_le_bytes());
        put(index as u32);
        record.write(&mut put);
        self.out.write_all(&buf).map_err(|e| io(&self.file, e))?;
        self.documents += 1;
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        self.out.flush().map_err(|e| io(&self.file, e))?;
        self.out
            .get_ref()
            .sync_data()
            .map_err(|e| io(&self.file, e))
    }
}

/// Reads a complete cache file of `expected` documents.
fn read_cache<R: Record>(file: &Path, expected: usize) -> Result<Vec<R>> {
    let bytes = std::fs::read(file).map_err(|e| io(file, e))?;
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(corrupt(file, 0, "a saener codes file"));
    }
    let mut reader = RecordReader::new(&bytes, file);
    let mut out = Vec::with_capacity(expected);
    while out.len() < expected {
        match reader.next_record(out.len()) {
            Some(record) => out.push(record?),
            None => return Err(corrupt(file, reader.pos, "another document record")),
        }
    }
    if reader.pos != bytes.len() {
        return Err(corrupt(file, reader.pos, "the end of the file"));
    }
    Ok(out)
}

/// Parses records from a codes file.
struct RecordReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    file: &'a Path,
}

impl<'a> RecordReader<'a> {
    fn new(bytes: &'a [u8], file: &'a Path) -> Self {
        RecordReader {
            bytes,
            pos: MAGIC.len(),
            file,
        }
    }

    /// The next record, which must be document `index`; `None` at a clean or torn end.
    fn next_record<R: Record>(&mut self, index: usize) -> Option<Result<R>> {
        let start = self.pos;
        let record = self.parse(index);
        if record.is_none() {
            self.pos = start;
        }
        record
    }

    fn u32s(&mut self, n: usize) -> Option<&'a [u8]> {
        let len = n.checked_mul(4)?;
        let slice = self.bytes.get(self.pos..self.pos.checked_add(len)?)?;
        self.pos += len;
        Some(slice)
    }

    fn parse<R: Record>(&mut self, index: usize) -> Option<Result<R>> {
        let at = self.pos;
        let found = words(self.u32s(1)?)[0] as usize;
        if found != index {
            let expected = format!("the record of document {index}");
            return Some(Err(corrupt(self.file, at, &expected)));
        }
        R::read(self).map(Ok)
    }
}

fn words(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn io(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        file: path.display().to_string(),
        source,
    }
}

fn corrupt(file: &Path, offset: usize, expected: &str) -> Error {
    Error::Field {
        file: file.display().to_string(),
        line: 0,
        field: format!("byte {offset}"),
        expected: expected.to_string(),
        found: "other bytes (a damaged cache: delete the folder to rebuild it)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize, seed: u32) -> DocumentCodes {
        DocumentCodes {
            offsets: (0..n).map(|i| (i, i + 1)).collect(),
            codes: (0..n)
                .map(|i| SparseCode {
                    ids: (0..(i as u32 % 3)).map(|j| j * 7 + seed).collect(),
                    values: (0..(i % 3)).map(|j| j as f32 + 0.5).collect(),
                })
                .collect(),
        }
    }

    fn key() -> CacheKey {
        CacheKey {
            model: "m".into(),
            layer: 9,
            sae: "s".into(),
            corpus: "c".into(),
            window: (1024, 128),
            documents: 3,
            echo: false,
            precision: f32_name(),
        }
    }

    #[test]
    fn precision_is_in_the_key_except_at_f32() {
        let f32_key = key();
        assert!(!serde_json::to_string(&f32_key)
            .unwrap()
            .contains("precision"));
        let int8 = CacheKey {
            precision: "int8".into(),
            ..key()
        };
        assert_ne!(int8.folder_name(), f32_key.folder_name());
    }

    #[test]
    fn records_round_trip_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let docs = [sample(4, 1), sample(7, 2), sample(1, 3)];
        let mut writer =
            CacheWriter::open::<DocumentCodes>(dir.path(), &key(), CODES_FILE).unwrap();
        writer.append(0, &docs[0]).unwrap();
        writer.append(1, &docs[1]).unwrap();
        writer.sync().unwrap();
        drop(writer);
        // Tear the second record in half.
        let file = dir.path().join(CODES_FILE);
        let len = std::fs::metadata(&file).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&file)
            .unwrap()
            .set_len(len - 10)
            .unwrap();
        let mut writer =
            CacheWriter::open::<DocumentCodes>(dir.path(), &key(), CODES_FILE).unwrap();
        assert_eq!(writer.documents, 1);
        writer.append(1, &docs[1]).unwrap();
        writer.append(2, &docs[2]).unwrap();
        writer.sync().unwrap();
        drop(writer);
        assert_eq!(
            read_cache::<DocumentCodes>(&file, 3).unwrap(),
            docs.to_vec()
        );
        assert!(read_cache::<DocumentCodes>(&file, 4).is_err());
    }

    #[test]
    fn word_rows_round_trip_through_bf16() {
        let dir = tempfile::tempdir().unwrap();
        let rows = [
            WordRows {
                d: 3,
                rows: vec![1.0, -2.5, 1e-3, 7.0, 0.0, 3.25, 1.0, 2.0, 3.0],
            },
            WordRows { d: 3, rows: vec![] },
        ];
        let mut writer = CacheWriter::open::<WordRows>(dir.path(), &key(), WORDS_FILE).unwrap();
        for (i, r) in rows.iter().enumerate() {
            writer.append(i, r).unwrap();
        }
        writer.sync().unwrap();
        let back = read_cache::<WordRows>(&dir.path().join(WORDS_FILE), 2).unwrap();
        assert_eq!(back[1], rows[1]);
        for (a, b) in back[0].rows.iter().zip(&rows[0].rows) {
            assert!((a - b).abs() <= b.abs() / 128.0, "{a} vs {b}");
        }
    }

    #[test]
    fn token_rows_round_trip_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let rows = [
            TokenRows {
                offsets: vec![(0, 0), (0, 3), (3, 9)],
                rows: vec![0.0, 1.5, -2.25, 1e-7, f32::MAX, -0.0],
            },
            TokenRows {
                offsets: vec![(0, 0)],
                rows: vec![3.0, 4.0],
            },
        ];
        let mut writer =
            CacheWriter::open::<TokenRows>(dir.path(), &key(), RESIDUALS_FILE).unwrap();
        for (i, r) in rows.iter().enumerate() {
            writer.append(i, r).unwrap();
        }
        writer.sync().unwrap();
        let back = read_cache::<TokenRows>(&dir.path().join(RESIDUALS_FILE), 2).unwrap();
        assert_eq!(back, rows.to_vec());
    }

    #[test]
    fn a_different_key_discards_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer =
            CacheWriter::open::<DocumentCodes>(dir.path(), &key(), CODES_FILE).unwrap();
        writer.append(0, &sample(3, 1)).unwrap();
        writer.sync().unwrap();
        drop(writer);
        let other = CacheKey {
            sae: "another SAE".into(),
            ..key()
        };
        assert_eq!(
            CacheWriter::open::<DocumentCodes>(dir.path(), &other, CODES_FILE)
                .unwrap()
                .documents,
            0
        );
        assert_eq!(
            CacheWriter::open::<DocumentCodes>(dir.path(), &key(), CODES_FILE)
                .unwrap()
                .documents,
            0
        );
    }

    #[test]
    fn records_out_of_order_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer =
            CacheWriter::open::<DocumentCodes>(dir.path(), &key(), CODES_FILE).unwrap();
        writer.append(5, &sample(2, 1)).unwrap();
        writer.sync().unwrap();
        let err = read_cache::<DocumentCodes>(&dir.path().join(CODES_FILE), 1).unwrap_err();
        assert!(err.to_string().contains("document 0"), "{err}");
    }
}
