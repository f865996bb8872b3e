//! What the trained baselines read: each word's features (its dense residual or its SAE
//! code at its last token), computed once per corpus and shared by the probes, the tagger
//! and the experiments that train many of them on the same words.

use saener_ner::{CodeCache, Corpus, EncodedCorpus, PipelineError, Stack, WordRows};
use saener_sae::SparseCode;

/// Per word of a corpus (documents, sentences and words in order), its features.
#[derive(Debug, Clone)]
pub enum WordFeatures {
    /// `[n_words, d]` row-major.
    Dense {
        /// Width of a row (the model's hidden size).
        d: usize,
        /// The rows, one per word.
        rows: Vec<f32>,
    },
    /// One code per word, features below `d`.
    Sparse {
        /// Width of the SAE.
        d: usize,
        /// The codes, one per word.
        codes: Vec<SparseCode>,
    },
}

impl WordFeatures {
    /// Dense rows from [`saener_ner::CodeEncoder::word_residuals`].
    pub fn dense(rows: &[WordRows]) -> WordFeatures {
        let d = rows.iter().map(|r| r.d).max().unwrap_or(0);
        WordFeatures::Dense {
            d,
            rows: rows.iter().flat_map(|r| r.rows.iter().copied()).collect(),
        }
    }

    /// The SAE code at each word's last token (empty for a word no token overlaps).
    pub fn sparse(encoded: &EncodedCorpus, d_sae: usize) -> WordFeatures {
        let mut codes = Vec::new();
        for (alignment, doc_codes) in encoded.alignments.iter().zip(&encoded.codes) {
            for w in 0..alignment.n_words() {
                codes.push(
                    alignment
                        .tokens_of(w)
                        .last()
                        .map(|t| doc_codes[t].clone())
                        .unwrap_or_default(),
                );
            }
        }
        WordFeatures::Sparse { d: d_sae, codes }
    }

    /// The rows of the given words, in that order.
    pub fn select(&self, words: &[usize]) -> WordFeatures {
        match self {
            WordFeatures::Dense { d, rows } => WordFeatures::Dense {
                d: *d,
                rows: words
                    .iter()
                    .flat_map(|&w| rows[w * d..(w + 1) * d].iter().copied())
                    .collect(),
            },
            WordFeatures::Sparse { d, codes } => WordFeatures::Sparse {
                d: *d,
                codes: words.iter().map(|&w| codes[w].clone()).collect(),
            },
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            WordFeatures::Dense { d, rows } => rows.len() / (*d).max(1),
            WordFeatures::Sparse { codes, .. } => codes.len(),
        }
    }

    pub(crate) fn width(&self) -> usize {
        match self {
            WordFeatures::Dense { d, .. } | WordFeatures::Sparse { d, .. } => *d,
        }
    }
}

/// Each word's dense residual (at its last token) at `stack`'s layer, through the cache.
pub fn dense_words(
    stack: &Stack,
    corpus: &Corpus,
    cache: &CodeCache,
) -> Result<WordFeatures, PipelineError> {
    Ok(WordFeatures::dense(&stack.word_residuals(corpus, cache)?))
}

/// A labelled corpus and its words' dense features: what the tagger trains and is scored
/// on. Kept together so that relabelled copies (perturbed, silver) reuse the features.
pub struct Featured {
    /// The words and their entities.
    pub corpus: Corpus,
    /// One dense row per word of `corpus`, in order.
    pub features: WordFeatures,
}

impl Featured {
    /// `corpus` with its words' dense residuals from `stack`, through the cache.
    pub fn new(
        stack: &Stack,
        corpus: Corpus,
        cache: &CodeCache,
    ) -> Result<Featured, PipelineError> {
        let features = dense_words(stack, &corpus, cache)?;
        Ok(Featured { corpus, features })
    }

    /// The same words with other entities (a perturbed or silver copy).
    pub fn relabelled(&self, corpus: Corpus) -> Featured {
        Featured {
            corpus,
            features: self.features.clone(),
        }
    }
}
