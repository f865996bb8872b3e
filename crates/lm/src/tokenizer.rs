//! Gemma 3's SentencePiece-BPE tokenizer, read from the GGUF metadata, with character offsets.
//!
//! The GGUF stores the SentencePiece model as `tokenizer.ggml.model = "llama"`: a vocabulary of
//! pieces with a score and a type each, and no merges list. [`Tokenizer::encode`] reproduces the
//! reference tokenizer (Hugging Face / SentencePiece with Gemma 3's `tokenizer.model`, checked
//! against `fixtures/golden/gemma3-270m/tokenizer.jsonl` and the shared folder's full set):
//!
//! 1. **Special pieces are split out first**, longest match at each position, scanning left to
//!    right. They are the user-defined pieces (type 4: runs of `\n`, runs of two or more plain
//!    spaces, runs of `\t`, some HTML tags such as `<b>` and `<table>`, `<start_of_image>`) and
//!    the control pieces (type 3: `<pad>`, `<eos>`, `<bos>`, `<unk>`, `<mask>`,
//!    `<start_of_turn>`, `<end_of_turn>`, `<unusedN>`). A single space is not special.
//!    *Choice:* control pieces written literally in the text ARE matched, as the golden reference
//!    does (`"<start_of_turn>literal"` → `[2, 105, 82951]`), although the SentencePiece library
//!    itself would treat them as plain text. Text is therefore not escaped: a document that
//!    contains `<eos>` gets token 1.
//! 2. **The rest is BPE by score.** No normalization and no dummy prefix; `' '` becomes `'▁'`
//!    without splitting on whitespace. Starting from single characters, the adjacent pair whose
//!    concatenation is a normal piece (type 1) with the highest score is merged, the leftmost on
//!    ties, until no pair merges.
//! 3. **Byte fallback.** A character that is not a piece becomes the `<0xXX>` tokens of its UTF-8
//!    bytes (type 6).
//!
//! [`Tokenizer::encode`] prepends BOS (id 2 for Gemma) and never appends EOS.
//!
//! # Offsets
//!
//! [`Encoding::offsets`]`[i]` is the half-open span `(start, end)` of token `i` in the input,
//! counted in Unicode code points (scalar values), as Python indexes a `str` — not bytes.
//! Tokens are in input order, spans are non-decreasing and tile the input: the first real token
//! starts at 0, each starts where the previous one ended, the last ends at the input's character
//! count. The byte-fallback tokens of one character all carry that character's span, so they
//! repeat the same span. BOS has the empty span `(0, 0)`. For every other token, the input
//! sliced at its span equals the token's piece, reading `'▁'` as `' '` on both sides (a
//! `'▁'` written in the input is read as a space).

use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{BufReader, Seek};
use std::path::Path;

use candle_core::quantized::gguf_file;

use crate::{Error, Result};

const KEY_MODEL: &str = "tokenizer.ggml.model";
const KEY_TOKENS: &str = "tokenizer.ggml.tokens";
const KEY_SCORES: &str = "tokenizer.ggml.scores";
const KEY_TYPES: &str = "tokenizer.ggml.token_type";
const KEY_BOS: &str = "tokenizer.ggml.bos_token_id";
const KEY_EOS: &str = "tokenizer.ggml.eos_token_id";
const KEY_PAD: &str = "tokenizer.ggml.padding_token_id";
const KEY_SPACE_PREFIX: &str = "tokenizer.ggml.add_space_prefix";

/// SentencePiece's word-boundary marker, which stands for a space inside pieces.
const SPACE_MARK: char = '▁';
const NONE: u32 = u32::MAX;

/// Token ids with the character span (Unicode code points, half-open, as Python counts) of each
/// token; see the [module docs](self) for the offset convention.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Encoding {
    pub ids: Vec<u32>,
    pub offsets: Vec<(usize, usize)>,
}

impl Encoding {
    fn push(&mut self, id: u32, span: (usize, usize)) {
        self.ids.push(id);
        self.offsets.push(span);
    }
}

/// SentencePiece piece types as stored in `tokenizer.ggml.token_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl Kind {
    fn from_gguf(t: i32) -> Option<Self> {
        Some(match t {
            1 => Kind::Normal,
            2 => Kind::Unknown,
            3 => Kind::Control,
            4 => Kind::UserDefined,
            5 => Kind::Unused,
            6 => Kind::Byte,
            _ => return None,
        })
    }
}

/// Gemma 3's tokenizer: SentencePiece BPE by score over the GGUF vocabulary.
///
/// Written by hand rather than with the `tokenizers` crate: BPE by score is a short loop, and the
/// GGUF has no merges list or `tokenizer.json` to feed that crate.
#[derive(Clone)]
pub struct Tokenizer {
    /// Piece text of each id.
    pieces: Vec<Box<str>>,
    kinds: Vec<Kind>,
    scores: Vec<f32>,
    /// Normal pieces (the only ones BPE may produce) → id.
    normal: FxHashMap<Box<str>, u32>,
    /// Normal piece id of each ASCII character (`NONE` if absent), to skip most initial lookups.
    ascii_ids: [u32; 128],
    /// Longest normal piece in bytes: longer pairs need no lookup.
    max_normal_len: usize,
    /// Control and user-defined pieces, matched in the raw text before BPE.
    specials: Trie,
    /// Id of the `<0xXX>` piece of each byte.
    byte_ids: [u32; 256],
    bos_id: u32,
    /// Ids that [`Tokenizer::decode`] drops: BOS, EOS, PAD.
    silent: Vec<u32>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.pieces.len())
            .field("special_pieces", &self.specials.n_keys)
            .field("bos_id", &self.bos_id)
            .finish_non_exhaustive()
    }
}

impl Tokenizer {
    /// Reads the tokenizer from a GGUF file's metadata (the tensors are not read).
    pub fn from_gguf(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let gguf = |reason| Error::Gguf {
            path: path.to_path_buf(),
            reason,
        };
        crate::gguf::check_header(&mut reader, len).map_err(gguf)?;
        reader
            .seek(std::io::SeekFrom::Start(0))
            .map_err(|e| Error::io(path, e))?;
        let content = gguf_file::Content::read(&mut reader).map_err(|e| Error::Gguf {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Self::from_gguf_content(&content, path)
    }

    /// Builds the tokenizer from already-parsed GGUF metadata; `path` only names the file in
    /// errors.
    pub fn from_gguf_content(content: &gguf_file::Content, path: &Path) -> Result<Self> {
        let md = &content.metadata;
        let err = |key: &str, reason: String| Error::Metadata {
            path: path.to_path_buf(),
            key: key.to_string(),
            reason,
        };
        let get = |key: &str| md.get(key).ok_or_else(|| err(key, "missing".to_string()));

        let model = get(KEY_MODEL)?
            .to_string()
            .map_err(|e| err(KEY_MODEL, e.to_string()))?;
        if model != "llama" {
            return Err(err(
                KEY_MODEL,
                format!("is '{model}', but only 'llama' (SentencePiece BPE) is supported"),
            ));
        }
        if let Some(v) = md.get(KEY_SPACE_PREFIX) {
            if v.to_bool().unwrap_or(false) {
                return Err(err(
                    KEY_SPACE_PREFIX,
                    "is true, which is not supported".into(),
                ));
            }
        }

        let array = |key: &str| -> Result<&Vec<gguf_file::Value>> {
            get(key)?
                .to_vec()
                .map_err(|_| err(key, "is not an array".to_string()))
        };
        let tokens = array(KEY_TOKENS)?
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.to_string()
                    .map(|s| s.as_str())
                    .map_err(|_| err(KEY_TOKENS, format!("entry {i} is not a string")))
            })
            .collect::<Result<Vec<&str>>>()?;
        let n = tokens.len();
        let check_len = |key: &str, len: usize| {
            if len == n {
                Ok(())
            } else {
                Err(err(
                    key,
                    format!("has {len} entries, but {KEY_TOKENS} has {n}"),
                ))
            }
        };
        let scores = array(KEY_SCORES)?;
        check_len(KEY_SCORES, scores.len())?;
        let scores = scores
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.to_f32()
                    .map_err(|_| err(KEY_SCORES, format!("entry {i} is not an f32")))
            })
            .collect::<Result<Vec<f32>>>()?;
        let types = array(KEY_TYPES)?;
        check_len(KEY_TYPES, types.len())?;
        let kinds = types
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.to_i32()
                    .ok()
                    .and_then(Kind::from_gguf)
                    .ok_or_else(|| err(KEY_TYPES, format!("entry {i} is not a type 1..=6: {v:?}")))
            })
            .collect::<Result<Vec<Kind>>>()?;

        let id_key = |key: &str, required: bool| -> Result<Option<u32>> {
            let Some(v) = md.get(key) else {
                return if required {
                    Err(err(key, "missing".into()))
                } else {
                    Ok(None)
                };
            };
            let id =
                value_as_u64(v).ok_or_else(|| err(key, format!("is not an integer: {v:?}")))?;
            if id >= n as u64 {
                return Err(err(key, format!("{id} is outside the vocabulary of {n}")));
            }
            Ok(Some(id as u32))
        };
        let bos_id = id_key(KEY_BOS, true)?.expect("required");
        let eos_id = id_key(KEY_EOS, false)?;
        let pad_id = id_key(KEY_PAD, false)?;

        let mut tok = Self::from_vocab(&tokens, scores, kinds, bos_id)
            .map_err(|(key, reason)| err(key, reason))?;
        tok.silent.extend(eos_id.into_iter().chain(pad_id));
        Ok(tok)
    }

    /// Builds the tables from a vocabulary; errors name the metadata key at fault.
    fn from_vocab(
        tokens: &[&str],
        scores: Vec<f32>,
        kinds: Vec<Kind>,
        bos_id: u32,
    ) -> std::result::Result<Self, (&'static str, String)> {
        let mut normal = FxHashMap::default();
        normal.reserve(tokens.len());
        let mut max_normal_len = 0;
        let mut specials = Trie::default();
        let mut byte_ids = [NONE; 256];
        for (id, (&piece, &kind)) in tokens.iter().zip(&kinds).enumerate() {
            let id = id as u32;
            match kind {
                Kind::Normal => {
                    // The first id wins if a piece is listed twice.
                    normal.entry(Box::from(piece)).or_insert(id);
                    max_normal_len = max_normal_len.max(piece.len());
                }
                Kind::Control | Kind::UserDefined if !piece.is_empty() => {
                    specials.insert(piece.as_bytes(), id);
                }
                Kind::Byte => {
                    let byte = parse_byte_piece(piece).ok_or_else(|| {
                        (
                            KEY_TYPES,
                            format!("byte token {id} is '{piece}', not '<0xXX>'"),
                        )
                    })?;
                    if byte_ids[byte as usize] == NONE {
                        byte_ids[byte as usize] = id;
                    }
                }
                // Unknown and unused pieces (SentencePiece's type 2 and 5) are never produced.
                _ => {}
            }
        }
        if let Some(b) = byte_ids.iter().position(|&id| id == NONE) {
            return Err((
                KEY_TYPES,
                format!("no byte-fallback token <0x{b:02X}> (type 6)"),
            ));
        }
        let mut ascii_ids = [NONE; 128];
        for (b, slot) in ascii_ids.iter_mut().enumerate() {
            let c = if b == b' ' as usize {
                SPACE_MARK
            } else {
                b as u8 as char
            };
            if let Some(&id) = normal.get(c.encode_utf8(&mut [0; 4]) as &str) {
                *slot = id;
            }
        }
        Ok(Tokenizer {
            pieces: tokens.iter().map(|&p| Box::from(p)).collect(),
            kinds,
            scores,
            normal,
            ascii_ids,
            max_normal_len,
            specials,
            byte_ids,
            bos_id,
            silent: vec![bos_id],
        })
    }

    /// Tokenizes `text`: BOS first (span `(0, 0)`), then the tokens of the text.
    pub fn encode(&self, text: &str) -> Encoding {
        let mut enc = Encoding::default();
        enc.push(self.bos_id, (0, 0));
        self.encode_into(text, &mut enc);
        enc
    }

    /// Tokenizes `text` without BOS.
    pub fn encode_without_bos(&self, text: &str) -> Encoding {
        let mut enc = Encoding::default();
        self.encode_into(text, &mut enc);
        enc
    }

    /// Turns ids back into text: `'▁'` becomes `' '`, consecutive byte tokens are reassembled
    /// into UTF-8 (invalid sequences become U+FFFD), BOS, EOS and PAD are dropped, other control
    /// pieces are written out (`<start_of_turn>`), and ids outside the vocabulary become U+FFFD.
    /// `decode(&encode(t).ids) == t` for any `t`.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            let Some(piece) = self.pieces.get(id as usize) else {
                bytes.extend_from_slice(char::REPLACEMENT_CHARACTER.to_string().as_bytes());
                continue;
            };
            if self.silent.contains(&id) {
                continue;
            }
            match self.kinds[id as usize] {
                Kind::Byte => bytes.push(parse_byte_piece(piece).expect("checked at load")),
                _ => {
                    for c in piece.chars() {
                        let c = if c == SPACE_MARK { ' ' } else { c };
                        bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                    }
                }
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The piece of `id` as stored in the vocabulary (`'▁'` for spaces, `<0xXX>` for bytes).
    pub fn token(&self, id: u32) -> Option<&str> {
        self.pieces.get(id as usize).map(|p| &**p)
    }

    /// Number of ids in the vocabulary (262,144 for Gemma 3).
    pub fn vocab_size(&self) -> usize {
        self.pieces.len()
    }

    /// The id prepended by [`Tokenizer::encode`] (2 for Gemma 3).
    pub fn bos_id(&self) -> u32 {
        self.bos_id
    }

    /// Splits out special pieces and runs BPE on the text between them.
    fn encode_into(&self, text: &str, enc: &mut Encoding) {
        let bytes = text.as_bytes();
        let mut bpe = Bpe::default();
        let (mut seg_byte, mut seg_char) = (0, 0);
        let (mut i, mut chars) = (0, 0);
        while i < bytes.len() {
            if let Some((len, id)) = self.specials.longest_match(&bytes[i..]) {
                if seg_byte < i {
                    bpe.run(self, &text[seg_byte..i], seg_char, enc);
                }
                let n = text[i..i + len].chars().count();
                enc.push(id, (chars, chars + n));
                i += len;
                chars += n;
                (seg_byte, seg_char) = (i, chars);
            } else {
                i += utf8_len(bytes[i]);
                chars += 1;
            }
        }
        if seg_byte < bytes.len() {
            bpe.run(self, &text[seg_byte..], seg_char, enc);
        }
    }
}

/// One symbol of the BPE linked list: a byte range of the normalized segment.
#[derive(Clone, Copy)]
struct Symbol {
    start: u32,
    /// Length in bytes; 0 once merged into its left neighbour.
    len: u32,
    /// Character range in the segment.
    char_start: u32,
    char_end: u32,
    prev: u32,
    next: u32,
    /// Normal piece id, or `NONE` for a character outside the vocabulary.
    id: u32,
}

/// A mergeable adjacent pair, ordered by score, then leftmost first (SentencePiece's agenda).
#[derive(Clone, Copy)]
struct Candidate {
    score: f32,
    left: u32,
    right: u32,
    /// Combined byte length when queued: detects pairs that changed since.
    len: u32,
    id: u32,
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

/// Buffers of the BPE, reused across the segments of one input.
#[derive(Default)]
struct Bpe {
    norm: String,
    symbols: Vec<Symbol>,
    heap: BinaryHeap<Candidate>,
}

impl Bpe {
    /// Tokenizes one segment free of special pieces, starting at character `char_base` of the
    /// input, appending to `enc`. The heap makes it O(n log n) in the segment length.
    fn run(&mut self, tok: &Tokenizer, segment: &str, char_base: usize, enc: &mut Encoding) {
        self.norm.clear();
        self.symbols.clear();
        self.heap.clear();
        for (k, c) in segment.chars().enumerate() {
            let ascii = c.is_ascii().then(|| tok.ascii_ids[c as usize]);
            let c = if c == ' ' { SPACE_MARK } else { c };
            let start = self.norm.len() as u32;
            self.norm.push(c);
            let len = c.len_utf8() as u32;
            let id = ascii.unwrap_or_else(|| {
                let piece = &self.norm[start as usize..];
                tok.normal.get(piece).copied().unwrap_or(NONE)
            });
            self.symbols.push(Symbol {
                start,
                len,
                char_start: k as u32,
                char_end: k as u32 + 1,
                prev: if k == 0 { NONE } else { k as u32 - 1 },
                next: k as u32 + 1,
                id,
            });
        }
        let Some(last) = self.symbols.last_mut() else {
            return;
        };
        last.next = NONE;

        let mut queue = Vec::with_capacity(self.symbols.len());
        for left in 0..self.symbols.len().saturating_sub(1) {
            if let Some(c) = self.candidate(tok, left as u32) {
                queue.push(c);
            }
        }
        self.heap = BinaryHeap::from(std::mem::take(&mut queue));

        while let Some(c) = self.heap.pop() {
            let (l, r) = (c.left as usize, c.right as usize);
            let (left, right) = (self.symbols[l], self.symbols[r]);
            if left.len == 0
                || right.len == 0
                || left.next != c.right
                || left.len + right.len != c.len
            {
                continue; // stale: one side was merged since
            }
            self.symbols[l].len = c.len;
            self.symbols[l].char_end = right.char_end;
            self.symbols[l].next = right.next;
            self.symbols[l].id = c.id;
            self.symbols[r].len = 0;
            if right.next != NONE {
                self.symbols[right.next as usize].prev = c.left;
            }
            if left.prev != NONE {
                if let Some(c) = self.candidate(tok, left.prev) {
                    self.heap.push(c);
                }
            }
            if let Some(c) = self.candidate(tok, c.left) {
                self.heap.push(c);
            }
        }

        let mut s = 0;
        while s != NONE {
            let sym = self.symbols[s as usize];
            let span = (
                char_base + sym.char_start as usize,
                char_base + sym.char_end as usize,
            );
            if sym.id != NONE {
                enc.push(sym.id, span);
            } else {
                // Byte fallback; every byte carries its character's span.
                let piece = &self.norm[sym.start as usize..(sym.start + sym.len) as usize];
                for (k, c) in piece.chars().enumerate() {
                    let at = span.0 + k;
                    for &b in c.encode_utf8(&mut [0; 4]).as_bytes() {
                        enc.push(tok.byte_ids[b as usize], (at, at + 1));
                    }
                }
            }
            s = sym.next;
        }
    }

    /// The pair starting at symbol `left`, if its concatenation is a normal piece.
    fn candidate(&self, tok: &Tokenizer, left: u32) -> Option<Candidate> {
        let l = &self.symbols[left as usize];
        if l.next == NONE {
            return None;
        }
        let r = &self.symbols[l.next as usize];
        let len = l.len + r.len;
        if len as usize > tok.max_normal_len {
            return None;
        }
        let piece = &self.norm[l.start as usize..(l.start + len) as usize];
        let &id = tok.normal.get(piece)?;
        Some(Candidate {
            score: tok.scores[id as usize],
            left,
            right: l.next,
            len,
            id,
        })
    }
}

/// Byte trie of the special pieces, for longest-match splitting.
#[derive(Clone)]
struct Trie {
    /// Children of each node, sorted by byte.
    children: Vec<Vec<(u8, u32)>>,
    /// Token id ending at each node, or `NONE`.
    ids: Vec<u32>,
    n_keys: usize,
}

impl Default for Trie {
    fn default() -> Self {
        Trie {
            children: vec![Vec::new()],
            ids: vec![NONE],
            n_keys: 0,
        }
    }
}

impl Trie {
    /// Adds `key`; if it is already present the first id is kept.
    fn insert(&mut self, key: &[u8], id: u32) {
        let mut node = 0;
        for &b in key {
            node = match self.children[node].binary_search_by_key(&b, |&(c, _)| c) {
                Ok(k) => self.children[node][k].1 as usize,
                Err(k) => {
                    let new = self.ids.len();
                    self.children.push(Vec::new());
                    self.ids.push(NONE);
                    self.children[node].insert(k, (b, new as u32));
                    new
                }
            };
        }
        if self.ids[node] == NONE {
            self.ids[node] = id;
            self.n_keys += 1;
        }
    }

    /// The longest key that `text` starts with: its length in bytes and its id.
    fn longest_match(&self, text: &[u8]) -> Option<(usize, u32)> {
        let mut node = 0;
        let mut best = None;
        for (k, &b) in text.iter().enumerate() {
            let children = &self.children[node];
            match children.binary_search_by_key(&b, |&(c, _)| c) {
                Ok(j) => node = children[j].1 as usize,
                Err(_) => break,
            }
            if self.ids[node] != NONE {
                best = Some((k + 1, self.ids[node]));
            }
        }
        best
    }
}

/// `<0xXX>` → the byte.
fn parse_byte_piece(piece: &str) -> Option<u8> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

/// Length of the UTF-8 sequence that starts with `first`.
fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

fn value_as_u64(v: &gguf_file::Value) -> Option<u64> {
    use gguf_file::Value as V;
    match *v {
        V::U8(x) => Some(x.into()),
        V::U16(x) => Some(x.into()),
        V::U32(x) => Some(x.into()),
        V::U64(x) => Some(x),
        V::I8(x) => u64::try_from(x).ok(),
        V::I16(x) => u64::try_from(x).ok(),
        V::I32(x) => u64::try_from(x).ok(),
        V::I64(x) => u64::try_from(x).ok(),
        _ => None,
    }
}

/// FxHash (rustc's hasher): several times faster than SipHash on short pieces; the keys are the
/// fixed vocabulary, so collision attacks cannot degrade the table.
type FxHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

#[derive(Default, Clone, Copy)]
struct FxHasher {
    hash: u64,
}

impl FxHasher {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(Self::SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(buf) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i.into());
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gguf_file::Value;

    /// A tiny vocabulary laid out like Gemma's: controls, user-defined runs, bytes, then normal
    /// pieces whose score falls with the id.
    fn tiny_vocab() -> (Vec<String>, Vec<f32>, Vec<i32>) {
        let mut tokens: Vec<String> = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>"]
            .map(String::from)
            .to_vec();
        let mut types = vec![3; tokens.len()];
        for p in ["\n", "\n\n", "  ", "   ", "<b>"] {
            tokens.push(p.into());
            types.push(4);
        }
        for b in 0..=255u8 {
            tokens.push(format!("<0x{b:02X}>"));
            types.push(6);
        }
        for p in [
            "▁", "a", "b", "c", "h", "i", "ab", "bc", "abc", "▁a", "hi", "▁hi", "aa",
        ] {
            tokens.push(p.into());
            types.push(1);
        }
        let scores = (0..tokens.len())
            .map(|i| if types[i] == 1 { -(i as f32) } else { 0.0 })
            .collect();
        (tokens, scores, types)
    }

    fn content(tokens: &[String], scores: &[f32], types: &[i32]) -> gguf_file::Content {
        let mut metadata = HashMap::new();
        metadata.insert(KEY_MODEL.into(), Value::String("llama".into()));
        metadata.insert(
            KEY_TOKENS.into(),
            Value::Array(tokens.iter().cloned().map(Value::String).collect()),
        );
        metadata.insert(
            KEY_SCORES.into(),
            Value::Array(scores.iter().copied().map(Value::F32).collect()),
        );
        metadata.insert(
            KEY_TYPES.into(),
            Value::Array(types.iter().copied().map(Value::I32).collect()),
        );
        metadata.insert(KEY_BOS.into(), Value::U32(2));
        metadata.insert(KEY_EOS.into(), Value::U32(1));
        metadata.insert(KEY_PAD.into(), Value::U32(0));
        gguf_file::Content {
            magic: gguf_file::VersionedMagic::GgufV3,
            metadata,
            tensor_infos: HashMap::new(),
            tensor_data_offset: 0,
        }
    }

    fn tiny() -> Tokenizer {
        let (t, s, ty) = tiny_vocab();
        Tokenizer::from_gguf_content(&content(&t, &s, &ty), Path::new("tiny.gguf")).unwrap()
    }

    fn pieces(tok: &Tokenizer, enc: &Encoding) -> Vec<String> {
        enc.ids
            .iter()
            .map(|&id| tok.token(id).unwrap().to_string())
            .collect()
    }

    #[test]
    fn merges_by_score_without_dummy_prefix() {
        let tok = tiny();
        // "ab" outranks "bc", so a|b|c → ab|c, then "abc" is a piece too.
        let enc = tok.encode_without_bos("abc");
        assert_eq!(pieces(&tok, &enc), ["abc"]);
        assert_eq!(enc.offsets, [(0, 3)]);
        // No dummy prefix: a leading word has no '▁'; a single space becomes '▁' and merges.
        let enc = tok.encode_without_bos("hi hi");
        assert_eq!(pieces(&tok, &enc), ["hi", "▁hi"]);
        assert_eq!(enc.offsets, [(0, 2), (2, 5)]);
        // Ties go to the leftmost pair: "aaa" → "aa" + "a".
        assert_eq!(pieces(&tok, &tok.encode_without_bos("aaa")), ["aa", "a"]);
    }

    #[test]
    fn bos_and_empty_input() {
        let tok = tiny();
        assert_eq!(tok.encode("").ids, [2]);
        assert_eq!(tok.encode("").offsets, [(0, 0)]);
        assert_eq!(tok.encode_without_bos(""), Encoding::default());
        let enc = tok.encode("a");
        assert_eq!(enc.ids[0], tok.bos_id());
        assert_eq!(enc.offsets, [(0, 0), (0, 1)]);
    }

    #[test]
    fn specials_split_longest_first() {
        let tok = tiny();
        let enc = tok.encode_without_bos("a   b\n\n<b><start_of_turn>  ");
        assert_eq!(
            pieces(&tok, &enc),
            ["a", "   ", "b", "\n\n", "<b>", "<start_of_turn>", "  "]
        );
        assert_eq!(
            enc.offsets,
            [(0, 1), (1, 4), (4, 5), (5, 7), (7, 10), (10, 25), (25, 27)]
        );
    }

    #[test]
    fn byte_fallback_carries_the_char_span() {
        let tok = tiny();
        let enc = tok.encode_without_bos("aé€b");
        assert_eq!(
            pieces(&tok, &enc),
            ["a", "<0xC3>", "<0xA9>", "<0xE2>", "<0x82>", "<0xAC>", "b"]
        );
        assert_eq!(
            enc.offsets,
            [(0, 1), (1, 2), (1, 2), (2, 3), (2, 3), (2, 3), (3, 4)]
        );
    }

    #[test]
    fn decode_round_trips() {
        let tok = tiny();
        for text in [
            "",
            "abc hi",
            "aé€b  \n<b>",
            "<start_of_turn>hi",
            " a  \n\n\nx",
        ] {
            assert_eq!(tok.decode(&tok.encode(text).ids), text, "{text:?}");
        }
        assert_eq!(tok.decode(&[1, 0, 9999]), "\u{FFFD}");
    }

    #[test]
    fn long_runs_are_fast_and_correct() {
        let tok = tiny();
        let text = "a".repeat(100_001);
        let enc = tok.encode_without_bos(&text);
        assert_eq!(enc.ids.len(), 50_001);
        assert_eq!(enc.offsets.last(), Some(&(100_000, 100_001)));
    }

    #[test]
    fn metadata_errors_name_the_key() {
        let (t, s, ty) = tiny_vocab();
        let path = Path::new("bad.gguf");
        let mut c = content(&t, &s[..s.len() - 1], &ty);
        let e = Tokenizer::from_gguf_content(&c, path)
            .unwrap_err()
            .to_string();
        assert!(e.contains(KEY_SCORES) && e.contains("entries"), "{e}");
        c.metadata.remove(KEY_TOKENS);
        let e = Tokenizer::from_gguf_content(&c, path)
            .unwrap_err()
            .to_string();
        assert!(e.contains(KEY_TOKENS) && e.contains("missing"), "{e}");
        let mut c = content(&t, &s, &ty);
        c.metadata.remove(KEY_BOS);
        let e = Tokenizer::from_gguf_content(&c, path)
            .unwrap_err()
            .to_string();
        assert!(e.contains(KEY_BOS), "{e}");
        let mut c = content(&t, &s, &ty);
        c.metadata
            .insert(KEY_MODEL.into(), Value::String("gpt2".into()));
        let e = Tokenizer::from_gguf_content(&c, path)
            .unwrap_err()
            .to_string();
        assert!(e.contains(KEY_MODEL) && e.contains("gpt2"), "{e}");
    }

    #[test]
    fn trie_prefers_the_longest_key() {
        let mut trie = Trie::default();
        trie.insert(b"ab", 1);
        trie.insert(b"abcd", 2);
        assert_eq!(trie.longest_match(b"abcx"), Some((2, 1)));
        assert_eq!(trie.longest_match(b"abcde"), Some((4, 2)));
        assert_eq!(trie.longest_match(b"b"), None);
    }
}
