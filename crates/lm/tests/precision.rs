//! Accuracy of the fast precisions against the f32 reference: per-token relative L2 error
//! of the residual stream at each golden layer, median and 99th percentile, on a fixed set
//! of sentences. Each bound is stated below and checked; the measured values are printed
//! (`cargo test -p saener-lm --release --test precision -- --nocapture`).
//!
//! Needs the real model, which is fetched on first use. A precision this CPU cannot run is
//! reported and skipped.

use saener_kernels::{Cpu, Precision};
use saener_lm::gemma3::{Gemma3, LoadOptions};
use saener_lm::Tokenizer;

const GOLDEN_LAYERS: [usize; 5] = [0, 5, 9, 12, 17];

/// Sentences of several kinds (news, biomedical, code-like, numbers, non-English).
const TEXTS: [&str; 8] = [
    "EU rejects German call to boycott British lamb.",
    "Peter Blackburn, BRUSSELS 1996-08-22: the European Commission said on Thursday it disagreed with German advice to consumers to shun British lamb until scientists determine whether mad cow disease can be transmitted to sheep.",
    "Germline mutations in BRCA1 are responsible for most cases of inherited breast and ovarian cancer.",
    "Induction of hepatic injury by acetaminophen overdose was reduced in mice lacking the receptor.",
    "fn main() { let x: Vec<u32> = (0..10).collect(); println!(\"{x:?}\"); }",
    "Results: 1,204 of 3,518 patients (34.2 %) responded at week 12 (p < 0.001).",
    "Der Bundestag hat am Donnerstag das Gesetz mit großer Mehrheit verabschiedet.",
    "Tokyo stocks closed higher on Friday, with the Nikkei average up 1.3 percent at 21,302.",
];

/// (precision, bound on the median, bound on the 99th percentile) of the per-token relative
/// L2 error, at every golden layer.
const BOUNDS: [(Precision, f64, f64); 2] =
    [(Precision::Int8, 0.05, 0.15), (Precision::Bf16, 0.01, 0.03)];

fn per_token_errors(ours: &[Vec<f32>], reference: &[Vec<f32>]) -> Vec<f64> {
    ours.iter()
        .zip(reference)
        .map(|(a, b)| {
            let (mut diff, mut norm) = (0f64, 0f64);
            for (&x, &y) in a.iter().zip(b) {
                diff += (f64::from(x) - f64::from(y)).powi(2);
                norm += f64::from(y).powi(2);
            }
            (diff / norm).sqrt()
        })
        .collect()
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

#[test]
fn fast_precisions_stay_within_their_bounds_of_f32() {
    let path = saener_lm::ensure_default_model().expect("fetching the default model");
    let tokenizer = Tokenizer::from_gguf(&path).unwrap();
    let ids: Vec<Vec<u32>> = TEXTS.iter().map(|t| tokenizer.encode(t).ids).collect();
    let seqs: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
    let load = |precision| {
        let options = LoadOptions {
            precision,
            ..LoadOptions::default()
        };
        Gemma3::load(&path, options)
    };
    let residuals = |model: &Gemma3| -> Vec<Vec<Vec<f32>>> {
        GOLDEN_LAYERS
            .iter()
            .map(|&layer| {
                let out = model.resid_post_batch(&seqs, layer).unwrap();
                out.iter()
                    .flat_map(|t| t.to_vec2::<f32>().unwrap())
                    .collect()
            })
            .collect()
    };
    let reference = residuals(&load(Precision::F32).unwrap());
    for (precision, median_bound, p99_bound) in BOUNDS {
        let model = match load(precision) {
            Ok(model) => model,
            Err(e) => {
                eprintln!(
                    "{precision}: skipped on this CPU ({}): {e}",
                    Cpu::detect().describe()
                );
                continue;
            }
        };
        assert_eq!(model.precision(), precision);
        for (layer, (ours, reference)) in GOLDEN_LAYERS
            .iter()
            .zip(residuals(&model).iter().zip(&reference))
        {
            let mut errors = per_token_errors(ours, reference);
            errors.sort_by(f64::total_cmp);
            let (median, p99) = (quantile(&errors, 0.5), quantile(&errors, 0.99));
            println!(
                "{precision} layer {layer}: relative error median {median:.4}, p99 {p99:.4}, max {:.4} ({} tokens)",
                errors[errors.len() - 1],
                errors.len()
            );
            assert!(
                median <= median_bound,
                "{precision} layer {layer}: median {median} > {median_bound}"
            );
            assert!(
                p99 <= p99_bound,
                "{precision} layer {layer}: p99 {p99} > {p99_bound}"
            );
        }
    }
}
