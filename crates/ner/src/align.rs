//! Token ↔ word alignment by character overlap.
//!
//! Rows are the tokens of the document's [`saener_lm::Encoding`], **BOS included at row 0**
//! (the layout of every residual and code matrix). Words are the document's words in
//! sentence order, numbered across the whole document (word `k` of sentence 1 follows the
//! last word of sentence 0).
//!
//! Two maps, for two uses:
//! - **token → word** ([`Alignment::word_of`]): the word the token overlaps most, the leftmost
//!   on ties; `None` when it overlaps no word (BOS with its empty span, a lone `"▁"` before
//!   digits, whitespace and newlines between words). Calibration gives each token exactly one
//!   label this way, so no token is counted twice.
//! - **word → tokens** ([`Alignment::tokens_of`]): *every* token that overlaps the word, a
//!   contiguous range. A token that straddles two words (`"-ox"` over `-` and `oxacalcitriol`)
//!   votes for both in decoding, so no covered word is left without tokens.
//!
//! Gemma's pieces carry the space before a word (`"▁Paris"` spans ` Paris`), so overlap, not
//! containment, is the rule. Byte-fallback tokens of one character share its span and all
//! map to that character's word.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::corpus::Document;
use crate::{Error, Result};

/// The alignment of one document's tokens and words; see the [module docs](self).
/// Computed once per document and stored with its codes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alignment {
    /// Per token: the word it overlaps most.
    token_word: Vec<Option<u32>>,
    /// Per word: the half-open range of tokens overlapping it.
    word_tokens: Vec<(u32, u32)>,
}

impl Alignment {
    /// Aligns `document`'s words with token character spans `offsets` (code points,
    /// half-open, as [`saener_lm::Encoding::offsets`], BOS first). Token spans must be in
    /// text order (starts and ends non-decreasing); words must be in text order and not
    /// overlap, as the corpus readers make them.
    pub fn new(document: &Document, offsets: &[(usize, usize)]) -> Result<Alignment> {
        let words: Vec<(usize, usize)> = document
            .sentences
            .iter()
            .flat_map(|s| &s.words)
            .map(|w| (w.start, w.end))
            .collect();
        check_order(&words, &document.id, "word", |prev, cur| {
            cur.0 <= cur.1 && prev.1 <= cur.0
        })?;
        check_order(offsets, &document.id, "token", |prev, cur| {
            cur.0 <= cur.1 && prev.0 <= cur.0 && prev.1 <= cur.1
        })?;
        let as_u32 = |i: usize| u32::try_from(i).expect("fewer than 2^32 tokens and words");
        let token_word = offsets
            .iter()
            .map(|&(ts, te)| {
                let first = words.partition_point(|&(_, we)| we <= ts);
                let mut best: Option<(usize, usize)> = None;
                for (w, &(ws, we)) in words.iter().enumerate().skip(first) {
                    if ws >= te {
                        break;
                    }
                    let overlap = te.min(we) - ts.max(ws);
                    if overlap > 0 && best.is_none_or(|(_, b)| overlap > b) {
                        best = Some((w, overlap));
                    }
                }
                best.map(|(w, _)| as_u32(w))
            })
            .collect();
        let word_tokens = words
            .iter()
            .map(|&(ws, we)| {
                let lo = offsets.partition_point(|&(_, te)| te <= ws);
                let hi = offsets.partition_point(|&(ts, _)| ts < we);
                (as_u32(lo), as_u32(hi.max(lo)))
            })
            .collect();
        Ok(Alignment {
            token_word,
            word_tokens,
        })
    }

    /// Number of tokens (rows), BOS included.
    pub fn n_tokens(&self) -> usize {
        self.token_word.len()
    }

    /// Number of words in the document.
    pub fn n_words(&self) -> usize {
        self.word_tokens.len()
    }

    /// The word (document-wide index) that `token` overlaps most, if any.
    pub fn word_of(&self, token: usize) -> Option<usize> {
        self.token_word[token].map(|w| w as usize)
    }

    /// The tokens that overlap `word` (empty only for a word no token covers).
    pub fn tokens_of(&self, word: usize) -> Range<usize> {
        let (lo, hi) = self.word_tokens[word];
        lo as usize..hi as usize
    }

    /// Checks that this alignment fits `document`'s words and `n_tokens` rows of codes: an
    /// alignment read back from a cache may belong to other data.
    pub(crate) fn check(&self, document: &Document, n_tokens: usize) -> Result<()> {
        let n_words: usize = document.sentences.iter().map(|s| s.words.len()).sum();
        let in_bounds = self
            .word_tokens
            .iter()
            .all(|&(lo, hi)| lo <= hi && hi as usize <= self.n_tokens())
            && self
                .token_word
                .iter()
                .all(|w| w.is_none_or(|w| (w as usize) < self.n_words()));
        if self.n_words() != n_words || self.n_tokens() != n_tokens || !in_bounds {
            return Err(Error::Argument {
                name: format!("alignment of document {}", document.id),
                expected: format!("{n_words} words and {n_tokens} tokens (rows of codes)"),
                found: format!(
                    "{} words and {} tokens{}",
                    self.n_words(),
                    self.n_tokens(),
                    if in_bounds {
                        ""
                    } else {
                        ", with indices out of range"
                    }
                ),
            });
        }
        Ok(())
    }
}

/// Checks that consecutive spans satisfy `ordered`, naming the first pair that does not.
fn check_order(
    spans: &[(usize, usize)],
    document: &str,
    what: &str,
    ordered: impl Fn((usize, usize), (usize, usize)) -> bool,
) -> Result<()> {
    let mut prev = (0, 0);
    for (i, &span) in spans.iter().enumerate() {
        if !ordered(prev, span) {
            return Err(Error::Argument {
                name: format!("{what} spans of document {document}"),
                expected: format!("{what}s in text order, each span start <= end"),
                found: format!("{what} {i} at {span:?} after {prev:?}"),
            });
        }
        prev = span;
    }
    Ok(())
}

/// How a word takes a score from its tokens' scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WordPooling {
    /// The first token's score.
    First,
    /// The last token's score. The default: a causal LM's last sub-token has read the whole
    /// word, which measured best in the prototype (FINDINGS.md).
    #[default]
    Last,
    /// The highest token score.
    Max,
    /// The mean token score.
    Mean,
}

impl WordPooling {
    /// Pools the scores of a word's tokens, in token order; 0 for a word without tokens.
    pub(crate) fn pool(self, mut scores: impl ExactSizeIterator<Item = f64>) -> f64 {
        // Scores are in 0–1, so 0 is the neutral start of a max.
        match self {
            WordPooling::First => scores.next().unwrap_or(0.0),
            WordPooling::Last => scores.last().unwrap_or(0.0),
            WordPooling::Max => scores.fold(0.0, f64::max),
            WordPooling::Mean => match scores.len() {
                0 => 0.0,
                n => scores.sum::<f64>() / n as f64,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::document;

    fn words_of(a: &Alignment) -> Vec<Option<usize>> {
        (0..a.n_tokens()).map(|t| a.word_of(t)).collect()
    }

    fn tokens_of(a: &Alignment) -> Vec<Range<usize>> {
        (0..a.n_words()).map(|w| a.tokens_of(w)).collect()
    }

    #[test]
    fn leading_spaces_multi_token_words_and_no_word_tokens() {
        // "West Leicestershire 1996 ." as Gemma cuts it: BOS, "West", "▁Leicester", "shire",
        // "▁" (a lone space before digits), "1", "9", "9", "6", "▁.".
        let doc = document(
            "West Leicestershire 1996 .",
            &[&[(0, 4), (5, 19), (20, 24), (25, 26)]],
        );
        let offsets = [
            (0, 0),
            (0, 4),
            (4, 14),
            (14, 19),
            (19, 20),
            (20, 21),
            (21, 22),
            (22, 23),
            (23, 24),
            (24, 26),
        ];
        let a = Alignment::new(&doc, &offsets).unwrap();
        let w = |i| Some(i);
        assert_eq!(
            words_of(&a),
            [None, w(0), w(1), w(1), None, w(2), w(2), w(2), w(2), w(3)]
        );
        assert_eq!(tokens_of(&a), [1..2, 2..4, 5..9, 9..10]);
    }

    #[test]
    fn byte_fallback_tokens_share_their_character() {
        // "a 𝔸b": the 4 byte tokens of 𝔸 all carry span (2, 3); "𝔸b" is one word.
        let doc = document("a 𝔸b", &[&[(0, 1), (2, 4)]]);
        let offsets = [
            (0, 0),
            (0, 1),
            (1, 2),
            (2, 3),
            (2, 3),
            (2, 3),
            (2, 3),
            (3, 4),
        ];
        let a = Alignment::new(&doc, &offsets).unwrap();
        let w = |i| Some(i);
        assert_eq!(
            words_of(&a),
            [None, w(0), None, w(1), w(1), w(1), w(1), w(1)]
        );
        assert_eq!(tokens_of(&a), [1..2, 3..8]);
    }

    #[test]
    fn a_token_over_two_words_goes_to_the_larger_overlap_and_votes_for_both() {
        // Words "22", "-", "oxa"; tokens "▁22", "-ox", "a": "-ox" overlaps "-" by 1 and
        // "oxa" by 2. A tie ("'s" over "'" and "s") goes to the leftmost word.
        let doc = document(
            " 22-oxa 's",
            &[&[(1, 3), (3, 4), (4, 7)], &[(8, 9), (9, 10)]],
        );
        let offsets = [(0, 0), (0, 3), (3, 6), (6, 7), (7, 8), (8, 10)];
        let a = Alignment::new(&doc, &offsets).unwrap();
        let w = |i| Some(i);
        assert_eq!(words_of(&a), [None, w(0), w(2), w(2), None, w(3)]);
        // Word "s" (index 4) keeps the token it shares with "'".
        assert_eq!(tokens_of(&a), [1..2, 2..3, 2..4, 5..6, 5..6]);
    }

    #[test]
    fn sentences_number_words_across_the_document() {
        let doc = document("A b\nC", &[&[(0, 1), (2, 3)], &[(4, 5)]]);
        let offsets = [(0, 0), (0, 1), (1, 3), (3, 4), (4, 5)];
        let a = Alignment::new(&doc, &offsets).unwrap();
        assert_eq!(words_of(&a), [None, Some(0), Some(1), None, Some(2)]);
        assert_eq!(a.n_words(), 3);
    }

    #[test]
    fn out_of_order_spans_are_errors() {
        let doc = document("ab cd", &[&[(0, 2), (3, 5)]]);
        let err = Alignment::new(&doc, &[(0, 0), (3, 5), (0, 2)]).unwrap_err();
        assert!(err.to_string().contains("token 2 at (0, 2)"), "{err}");
        let doc = document("ab cd", &[&[(3, 5), (0, 2)]]);
        assert!(Alignment::new(&doc, &[(0, 0)]).is_err());
    }

    #[test]
    fn check_rejects_alignments_of_other_data() {
        let doc = document("ab", &[&[(0, 2)]]);
        let a = Alignment::new(&doc, &[(0, 0), (0, 2)]).unwrap();
        a.check(&doc, 2).unwrap();
        assert!(a.check(&doc, 3).is_err());
        let other = document("ab c", &[&[(0, 2), (3, 4)]]);
        assert!(a.check(&other, 2).is_err());
    }

    #[test]
    fn pooling() {
        let s = [0.2, 0.9, 0.4];
        let pool = |p: WordPooling| p.pool(s.iter().copied());
        assert_eq!(pool(WordPooling::First), 0.2);
        assert_eq!(pool(WordPooling::Last), 0.4);
        assert_eq!(pool(WordPooling::Max), 0.9);
        assert!((pool(WordPooling::Mean) - 0.5).abs() < 1e-12);
        assert_eq!(WordPooling::Max.pool([].into_iter()), 0.0);
    }
}
