//! Text → residual stream for many documents at once: tokenize, batch by length, window
//! long documents, and hand back one row per token with its character span.
//!
//! This is the stage every later one reads from (SAE training, calibration, annotation),
//! so it owns the batching policy: documents are sorted by token count and grouped into
//! batches of similar length (little padding), and a document longer than the window goes
//! through [`Gemma3::resid_post_windowed`] on its own, so nothing is ever truncated.
//!
//! With [`ExtractOptions::echo`], each text is read twice, `BOS text ⏎ text`, and the
//! rows of the second copy are returned: a left-to-right model's residual at a token then
//! has seen the whole text, its right context included ("echo embeddings", Springer et al.
//! 2024). It doubles the tokens run. A text longer than half the window is echoed piece by
//! piece, each piece seeing itself twice but not the pieces before it.

use crate::gemma3::{Gemma3, WindowOptions, MAX_TOKENS_PER_PASS};
use crate::{Encoding, Result, Tokenizer};

/// One document's residual stream after block `layer`.
#[derive(Debug, Clone)]
pub struct Residuals {
    /// Token ids and character spans; BOS is token 0.
    pub encoding: Encoding,
    /// `[encoding.ids.len(), d_model]` row-major f32; row 0 is the BOS.
    pub rows: Vec<f32>,
}

/// Batching policy of [`Extractor`].
#[derive(Debug, Clone, Copy)]
pub struct ExtractOptions {
    /// Decoder block whose output (`resid_post`) is returned, 0-indexed.
    pub layer: usize,
    /// Most sequences per forward pass.
    pub batch_size: usize,
    /// Windowing of documents longer than `window.window` tokens.
    pub window: WindowOptions,
    /// Read each text twice and return the second copy's rows.
    pub echo: bool,
}

impl ExtractOptions {
    pub fn new(layer: usize) -> Self {
        ExtractOptions {
            layer,
            batch_size: 16,
            window: WindowOptions::default(),
            echo: false,
        }
    }
}

/// Runs a tokenizer and a model together over documents.
#[derive(Clone, Copy)]
pub struct Extractor<'a> {
    pub tokenizer: &'a Tokenizer,
    pub model: &'a Gemma3,
    pub options: ExtractOptions,
}

impl Extractor<'_> {
    /// Residuals of each text, in input order. `progress` is called with the number of
    /// tokens finished after each forward pass.
    pub fn run(&self, texts: &[&str], progress: impl FnMut(usize)) -> Result<Vec<Residuals>> {
        let encodings: Vec<Encoding> = texts.iter().map(|t| self.tokenizer.encode(t)).collect();
        let rows = if self.options.echo {
            self.echo_rows(&encodings, progress)?
        } else {
            self.plain_rows(&encodings, progress)?
        };
        let d = self.model.config().hidden_size;
        Ok(encodings
            .into_iter()
            .zip(rows)
            .map(|(encoding, rows)| {
                debug_assert_eq!(rows.len(), encoding.ids.len() * d);
                Residuals { encoding, rows }
            })
            .collect())
    }

    /// Each encoding's rows, read once.
    fn plain_rows(
        &self,
        encodings: &[Encoding],
        mut progress: impl FnMut(usize),
    ) -> Result<Vec<Vec<f32>>> {
        let mut rows: Vec<Vec<f32>> = vec![Vec::new(); encodings.len()];

        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| encodings[i].ids.len());
        let (long, short): (Vec<usize>, Vec<usize>) = order
            .into_iter()
            .partition(|&i| encodings[i].ids.len() > self.options.window.window);

        for batch in batches(&short, |i| encodings[i].ids.len(), self.options.batch_size) {
            let seqs: Vec<&[u32]> = batch.iter().map(|&i| encodings[i].ids.as_slice()).collect();
            let outputs = self.model.resid_post_batch(&seqs, self.options.layer)?;
            for (&i, tensor) in batch.iter().zip(outputs) {
                rows[i] = tensor.flatten_all()?.to_vec1::<f32>()?;
            }
            progress(seqs.iter().map(|s| s.len()).sum());
        }
        for i in long {
            let ids = &encodings[i].ids;
            let tensor =
                self.model
                    .resid_post_windowed(ids, self.options.layer, self.options.window)?;
            rows[i] = tensor.flatten_all()?.to_vec1::<f32>()?;
            progress(ids.len());
        }
        Ok(rows)
    }

    /// Each encoding's rows, read as the second copy of `BOS piece ⏎ piece` for pieces of at
    /// most half a window, so no echoed sequence needs windowing. The BOS row is the BOS's
    /// own (it sees nothing either way).
    fn echo_rows(
        &self,
        encodings: &[Encoding],
        mut progress: impl FnMut(usize),
    ) -> Result<Vec<Vec<f32>>> {
        let newline = self.tokenizer.encode_without_bos("\n").ids;
        let bos = self.tokenizer.encode("").ids;
        let piece_len = (self.options.window.window).saturating_sub(bos.len() + newline.len()) / 2;
        if piece_len == 0 {
            return Err(crate::Error::InvalidInput(format!(
                "window {} is too short to echo",
                self.options.window.window
            )));
        }
        // (document, piece start in the body, echoed ids); bodies exclude the BOS.
        let mut sequences: Vec<(usize, usize, Vec<u32>)> = Vec::new();
        for (i, encoding) in encodings.iter().enumerate() {
            let body = &encoding.ids[bos.len()..];
            for (p, piece) in body.chunks(piece_len).enumerate() {
                let ids = [&bos[..], piece, &newline, piece].concat();
                sequences.push((i, p * piece_len, ids));
            }
        }
        let echoed: Vec<Encoding> = sequences
            .iter()
            .map(|(_, _, ids)| Encoding {
                ids: ids.clone(),
                offsets: vec![(0, 0); ids.len()],
            })
            .collect();
        let outputs = self.plain_rows(&echoed, &mut progress)?;

        let d = self.model.config().hidden_size;
        let mut rows: Vec<Vec<f32>> = encodings
            .iter()
            .map(|e| vec![0.0; e.ids.len() * d])
            .collect();
        let mut bos_done = vec![false; encodings.len()];
        for ((i, start, ids), out) in sequences.iter().zip(outputs) {
            let piece = (ids.len() - bos.len() - newline.len()) / 2;
            let second = ids.len() - piece;
            let at = bos.len() + start;
            rows[*i][at * d..(at + piece) * d].copy_from_slice(&out[second * d..]);
            if !bos_done[*i] {
                rows[*i][..bos.len() * d].copy_from_slice(&out[..bos.len() * d]);
                bos_done[*i] = true;
            }
        }
        // A text with no tokens has no piece: its BOS is read alone.
        let empty: Vec<usize> = (0..encodings.len()).filter(|&i| !bos_done[i]).collect();
        if !empty.is_empty() {
            let alone: Vec<Encoding> = empty.iter().map(|&i| encodings[i].clone()).collect();
            for (&i, out) in empty.iter().zip(self.plain_rows(&alone, &mut progress)?) {
                rows[i] = out;
            }
        }
        Ok(rows)
    }
}

/// Consecutive runs of `order` with at most `max_sequences` sequences and, unless one
/// sequence alone is longer, at most [`MAX_TOKENS_PER_PASS`] tokens: with the window as long
/// as the model's context, a count alone no longer bounds a batch's memory.
fn batches(
    order: &[usize],
    tokens: impl Fn(usize) -> usize,
    max_sequences: usize,
) -> Vec<&[usize]> {
    let mut out = Vec::new();
    let (mut start, mut total) = (0, 0);
    for (at, &i) in order.iter().enumerate() {
        let n = tokens(i);
        let full = at - start == max_sequences.max(1) || total + n > MAX_TOKENS_PER_PASS;
        if at > start && full {
            out.push(&order[start..at]);
            (start, total) = (at, 0);
        }
        total += n;
    }
    if start < order.len() {
        out.push(&order[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_the_count_and_the_token_budget() {
        let lengths = [10, 20, 30, 40, 50];
        let order: Vec<usize> = (0..lengths.len()).collect();
        let by_count = batches(&order, |i| lengths[i], 2);
        assert_eq!(by_count, [&[0, 1][..], &[2, 3], &[4]]);

        let big = MAX_TOKENS_PER_PASS / 2 + 1;
        let lengths = [big, big, 3 * MAX_TOKENS_PER_PASS, 1, 1];
        let by_tokens = batches(&order, |i| lengths[i], 16);
        // Two halves overflow the budget; an over-long sequence runs alone; none is dropped.
        assert_eq!(by_tokens, [&[0][..], &[1], &[2], &[3, 4]]);
        assert!(batches(&[], |_| 1, 4).is_empty());
    }
}
