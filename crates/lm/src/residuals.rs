//! Text → residual stream for many documents at once: tokenize, batch by length, window
//! long documents, and hand back one row per token with its character span.
//!
//! This is the stage every later one reads from (SAE training, calibration, annotation),
//! so it owns the batching policy: documents are sorted by token count and grouped into
//! batches of similar length (little padding), and a document longer than the window goes
//! through [`Gemma3::resid_post_windowed`] on its own, so nothing is ever truncated.

use crate::gemma3::{Gemma3, WindowOptions};
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
}

impl ExtractOptions {
    pub fn new(layer: usize) -> Self {
        ExtractOptions {
            layer,
            batch_size: 16,
            window: WindowOptions::default(),
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
    pub fn run(&self, texts: &[&str], mut progress: impl FnMut(usize)) -> Result<Vec<Residuals>> {
        let encodings: Vec<Encoding> = texts.iter().map(|t| self.tokenizer.encode(t)).collect();
        let d = self.model.config().hidden_size;
        let mut rows: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];

        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| encodings[i].ids.len());
        let (long, short): (Vec<usize>, Vec<usize>) = order
            .into_iter()
            .partition(|&i| encodings[i].ids.len() > self.options.window.window);

        for batch in short.chunks(self.options.batch_size.max(1)) {
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

        Ok(encodings
            .into_iter()
            .zip(rows)
            .map(|(encoding, rows)| {
                debug_assert_eq!(rows.len(), encoding.ids.len() * d);
                Residuals { encoding, rows }
            })
            .collect())
    }
}
