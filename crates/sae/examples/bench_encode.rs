//! Encode speed of a Gemma-3-270M-sized SAE (d_in 640, 16,384 features) on 1,024 tokens.
//!
//! `cargo run -p saener-sae --release --example bench_encode`

use std::time::Instant;

use saener_sae::{Activation, Sae, SaeConfig};

const D_IN: usize = 640;
const D_SAE: usize = 16_384;
const TOKENS: usize = 1_024;

fn noise(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 23) as f32 - 1.0) * scale
        })
        .collect()
}

/// Best of five runs, in milliseconds.
fn time<T>(mut f: impl FnMut() -> T) -> f64 {
    (0..5)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(f());
            start.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() -> saener_sae::Result<()> {
    let x = noise(TOKENS * D_IN, 1, 1.0);
    let features: Vec<u32> = (0..D_SAE as u32).step_by(32).collect();
    println!(
        "{TOKENS} tokens x d_in {D_IN} -> d_sae {D_SAE}, {} rayon threads",
        rayon::current_num_threads()
    );
    for activation in [Activation::TopK { k: 64 }, Activation::JumpRelu] {
        let mut config = SaeConfig::new(D_IN, D_SAE, activation);
        config.apply_b_dec_to_input = true;
        let threshold = (activation == Activation::JumpRelu).then(|| vec![0.5; D_SAE]);
        let sae = Sae::new(
            config,
            noise(D_IN * D_SAE, 2, 0.05),
            noise(D_SAE, 3, 0.1),
            noise(D_SAE * D_IN, 4, 0.05),
            noise(D_IN, 5, 0.1),
            threshold,
        )?;
        let codes = sae.encode_sparse(&x)?;
        let l0 = codes.iter().map(|c| c.ids.len()).sum::<usize>() as f64 / TOKENS as f64;
        let subset = sae.feature_subset(&features)?;
        println!("{activation} (mean L0 {l0:.1}):");
        println!(
            "  encode_sparse        {:8.1} ms",
            time(|| sae.encode_sparse(&x))
        );
        println!(
            "  encode_dense         {:8.1} ms",
            time(|| sae.encode_dense(&x))
        );
        println!(
            "  subset encode ({} f) {:8.1} ms",
            features.len(),
            time(|| subset.encode(&x))
        );
        println!(
            "  decode_sparse        {:8.1} ms",
            time(|| sae.decode_sparse(&codes))
        );
    }
    Ok(())
}
