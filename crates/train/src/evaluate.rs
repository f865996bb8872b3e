//! Judging an SAE on held-out text, the way SAE papers do: how much of the residual
//! stream it reconstructs (FVU), how sparse its codes are (L0), how many features never
//! fire, and how much of the model's next-token loss survives when the reconstruction
//! replaces the real residual stream (CE loss recovered, against zero-ablation).

use crate::{Error, Result};
use saener_lm::gemma3::Gemma3;
use saener_lm::Tokenizer;
use saener_sae::Sae;
use serde::Serialize;

/// What [`evaluate`] measures on, and how much.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Residual layer the SAE reads.
    pub layer: usize,
    /// Tokens (BOS excluded) for `fvu`, `l0` and `dead_fraction`.
    pub max_tokens: usize,
    /// Tokens for the three next-token losses (full forward plus the output head each).
    pub ce_tokens: usize,
}

/// The metrics, fractions in 0–1 and losses in nats.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// Σ‖x − x̂‖² / Σ‖x − mean(x)‖² over all evaluated tokens.
    pub fvu: f64,
    /// Mean number of active features per token.
    pub l0: f64,
    /// Features that never fired on the evaluated tokens.
    pub dead_fraction: f64,
    /// Tokens `fvu`, `l0` and `dead_fraction` rest on (BOS excluded).
    pub dead_fraction_tokens: usize,
    /// Mean next-token loss of the unmodified model.
    pub ce_clean: f64,
    /// ... with every non-BOS residual after `layer` replaced by the SAE's reconstruction.
    pub ce_spliced: f64,
    /// ... with those residuals replaced by zeros.
    pub ce_zero_ablation: f64,
    /// (ce_zero_ablation − ce_spliced) / (ce_zero_ablation − ce_clean).
    pub ce_loss_recovered: f64,
    /// Predicted positions the three losses average over.
    pub ce_tokens: usize,
    pub layer: usize,
    pub documents: usize,
}

/// Runs the model over `documents` (each cut into pieces of at most [`PIECE`] tokens, BOS
/// first, so no text is dropped and no piece needs windowing) until the token budgets are
/// spent, and measures `sae` there.
pub fn evaluate(
    sae: &Sae,
    model: &Gemma3,
    tokenizer: &Tokenizer,
    documents: &[String],
    options: &EvalOptions,
) -> Result<EvalReport> {
    let d = sae.config().d_in;
    let lm = |e: saener_lm::Error| Error::Invalid(e.to_string());
    let sae_err = |e: saener_sae::Error| Error::Invalid(e.to_string());

    let mut fired = vec![false; sae.config().d_sae];
    let (mut tokens, mut active) = (0usize, 0usize);
    let mut sum = vec![0f64; d];
    let (mut sum_sq, mut err_sq) = (0f64, 0f64);
    let (mut ce_clean, mut ce_spliced, mut ce_zero, mut ce_n) = (0f64, 0f64, 0f64, 0usize);
    let mut used_documents = 0;

    for (document, ids) in pieces(tokenizer, documents) {
        if tokens >= options.max_tokens && ce_n >= options.ce_tokens {
            break;
        }
        used_documents = document + 1;
        let rows = model
            .resid_post(&ids, options.layer)
            .and_then(|t| Ok(t.flatten_all()?.to_vec1::<f32>()?))
            .map_err(lm)?;
        let x = &rows[d..];
        let codes = sae.encode_sparse(x).map_err(sae_err)?;
        let recon = sae.decode_sparse(&codes).map_err(sae_err)?;

        if tokens < options.max_tokens {
            for (code, (row, rec)) in codes
                .iter()
                .zip(x.chunks_exact(d).zip(recon.chunks_exact(d)))
            {
                active += code.ids.len();
                for &f in &code.ids {
                    fired[f as usize] = true;
                }
                for ((s, &v), &r) in sum.iter_mut().zip(row).zip(rec) {
                    *s += f64::from(v);
                    sum_sq += f64::from(v) * f64::from(v);
                    err_sq += f64::from(v - r) * f64::from(v - r);
                }
            }
            tokens += x.len() / d;
        }

        if ce_n < options.ce_tokens {
            let mean = |losses: Vec<f32>| losses.iter().map(|&l| f64::from(l)).sum::<f64>();
            let clean = model
                .next_token_losses(&ids, options.layer, &|_| {})
                .map_err(lm)?;
            let spliced = model
                .next_token_losses(&ids, options.layer, &|r: &mut [f32]| {
                    r[d..].copy_from_slice(&recon)
                })
                .map_err(lm)?;
            let zero = model
                .next_token_losses(&ids, options.layer, &|r: &mut [f32]| r[d..].fill(0.0))
                .map_err(lm)?;
            ce_n += clean.len();
            ce_clean += mean(clean);
            ce_spliced += mean(spliced);
            ce_zero += mean(zero);
        }
    }
    if tokens == 0 || ce_n == 0 {
        return Err(Error::Invalid("the evaluation text has no tokens".into()));
    }
    let n = tokens as f64;
    let mean_sq: f64 = sum.iter().map(|s| (s / n) * (s / n)).sum();
    let variance = sum_sq - n * mean_sq;
    let (ce_clean, ce_spliced, ce_zero) = (
        ce_clean / ce_n as f64,
        ce_spliced / ce_n as f64,
        ce_zero / ce_n as f64,
    );
    Ok(EvalReport {
        fvu: err_sq / variance,
        l0: active as f64 / n,
        dead_fraction: fired.iter().filter(|&&f| !f).count() as f64 / fired.len() as f64,
        dead_fraction_tokens: tokens,
        ce_clean,
        ce_spliced,
        ce_zero_ablation: ce_zero,
        ce_loss_recovered: (ce_zero - ce_spliced) / (ce_zero - ce_clean),
        ce_tokens: ce_n,
        layer: options.layer,
        documents: used_documents,
    })
}

/// Longest piece a held-out document is cut into, BOS included.
pub const PIECE: usize = 1024;

/// `(document index, BOS + up to PIECE − 1 token ids)` for each piece of each document.
fn pieces<'a>(
    tokenizer: &'a Tokenizer,
    documents: &'a [String],
) -> impl Iterator<Item = (usize, Vec<u32>)> + 'a {
    documents.iter().enumerate().flat_map(move |(i, text)| {
        let ids = tokenizer.encode_without_bos(text).ids;
        ids.chunks(PIECE - 1)
            .map(|piece| {
                std::iter::once(tokenizer.bos_id())
                    .chain(piece.iter().copied())
                    .collect()
            })
            .map(|piece| (i, piece))
            .collect::<Vec<_>>()
    })
}

/// Residuals `[n, d_model]` after block `layer` of the first `max_tokens` non-BOS tokens of
/// `documents`, cut into pieces as [`evaluate`] does: the rows an SAE statistic is taken on.
pub fn held_out_rows(
    model: &Gemma3,
    tokenizer: &Tokenizer,
    documents: &[String],
    layer: usize,
    max_tokens: usize,
) -> Result<Vec<f32>> {
    let d = model.config().hidden_size;
    let mut out = Vec::new();
    for (_, ids) in pieces(tokenizer, documents) {
        if out.len() >= max_tokens * d {
            break;
        }
        let rows = model
            .resid_post(&ids, layer)
            .and_then(|t| Ok(t.flatten_all()?.to_vec1::<f32>()?))
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let take = (max_tokens * d - out.len()).min(rows.len() - d);
        out.extend_from_slice(&rows[d..d + take]);
    }
    if out.is_empty() {
        return Err(Error::Invalid("the held-out text has no tokens".into()));
    }
    Ok(out)
}
