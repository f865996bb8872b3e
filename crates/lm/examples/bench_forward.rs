//! Forward-pass throughput: tokens/s to a block, one sentence at a time and in
//! length-sorted batches, plus the load time.
//!
//! ```text
//! cargo run --release -p saener-lm --example bench_forward -- [LAYER...]
//! ```
//! Sentences are the real-text lines (CoNLL-2003, NCBI-disease, BC5CDR dev) of
//! `shared/golden/gemma3-270m/tokenizer.jsonl` with 20 to 60 token ids (BOS included);
//! `SAENER_SHARED` overrides the shared folder, `BENCH_SENTENCES` how many to use
//! (default 320), `BENCH_BATCH_SIZES` which batch sizes (default `1,16`), `BENCH_REPEATS`
//! how many passes over them (default 3; the best and the median are printed, since
//! other processes on a shared machine slow some passes down).

use saener_lm::gemma3::{Gemma3, LoadOptions};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let layers: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let layers = if layers.is_empty() {
        vec![12, 9]
    } else {
        layers
    };
    let shared = std::env::var_os("SAENER_SHARED").map_or_else(
        || concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared").into(),
        std::path::PathBuf::from,
    );
    let n_sentences: usize = std::env::var("BENCH_SENTENCES").map_or(Ok(320), |s| s.parse())?;
    let batch_sizes: Vec<usize> = std::env::var("BENCH_BATCH_SIZES")
        .unwrap_or_else(|_| "1,16".into())
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let repeats: usize = std::env::var("BENCH_REPEATS").map_or(Ok(3), |s| s.parse())?;
    let jsonl = std::fs::read_to_string(shared.join("golden/gemma3-270m/tokenizer.jsonl"))?;
    let mut sentences: Vec<Vec<u32>> = jsonl
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line)?;
            Ok(v["ids"]
                .as_array()
                .ok_or("no ids")?
                .iter()
                .map(|id| id.as_u64().unwrap_or(0) as u32)
                .collect::<Vec<u32>>())
        })
        .filter(|ids| {
            ids.as_ref()
                .map_or(true, |ids| (20..=60).contains(&ids.len()))
        })
        .take(n_sentences)
        .collect::<Result<_, Box<dyn std::error::Error>>>()?;
    sentences.sort_by_key(Vec::len);
    let n_tokens: usize = sentences.iter().map(Vec::len).sum();
    println!(
        "{} sentences, {n_tokens} tokens ({:.1} per sentence), {} rayon threads",
        sentences.len(),
        n_tokens as f64 / sentences.len() as f64,
        rayon::current_num_threads()
    );

    let max_layer = layers.iter().copied().max();
    let start = Instant::now();
    let model = Gemma3::load(
        saener_lm::default_model_path()?,
        LoadOptions {
            max_layer,
            ..LoadOptions::default()
        },
    )?;
    println!(
        "load (blocks 0..={}): {:.2} s",
        max_layer.unwrap_or(17),
        start.elapsed().as_secs_f64()
    );

    // Warm-up: first-touch page faults and thread start-up.
    model.resid_post_batch(&[&sentences[0]], layers[0])?;
    for &layer in &layers {
        for &batch_size in &batch_sizes {
            let mut rates: Vec<f64> = (0..repeats)
                .map(|_| {
                    let start = Instant::now();
                    for batch in sentences.chunks(batch_size) {
                        let refs: Vec<&[u32]> = batch.iter().map(Vec::as_slice).collect();
                        model.resid_post_batch(&refs, layer)?;
                    }
                    Ok(n_tokens as f64 / start.elapsed().as_secs_f64())
                })
                .collect::<Result<_, saener_lm::Error>>()?;
            rates.sort_by(f64::total_cmp);
            println!(
                "layer {layer:>2}, batch {batch_size:>2}: best {:>6.0} tok/s, median {:>6.0}",
                rates[rates.len() - 1],
                rates[rates.len() / 2]
            );
        }
    }
    Ok(())
}
