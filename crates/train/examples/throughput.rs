//! Training throughput on synthetic residuals, with a per-phase time breakdown.
//!
//! ```text
//! cargo run --release -p saener-train --example throughput -- \
//!     [--steps 6] [--d-in 640] [--d-sae 16384] [--k 64] [--batch 4096] [--batch-topk] \
//!     [--dead-tokens N]   # small N makes most latents dead at once, exercising AuxK
//! ```
//!
//! Writes a temporary store (f16 rows: a fixed offset plus a few random directions, so
//! norms are in the hundreds like Gemma's), trains for `steps`, and prints each step's phase
//! times and the mean over all steps but the first (which pays for page faults).

use std::ops::ControlFlow;

use saener_train::{
    train, ActivationKind, Dtype, StepMetrics, StoreMeta, StoreReader, StoreWriter, TrainConfig,
};

/// xorshift64*: enough randomness for synthetic data without a dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
        bits as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("numeric argument"))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let steps = arg(&args, "--steps", 6);
    let d = arg(&args, "--d-in", 640) as usize;
    let batch = arg(&args, "--batch", 4096) as usize;
    let cfg = TrainConfig {
        d_in: d,
        d_sae: arg(&args, "--d-sae", 16384) as usize,
        k: arg(&args, "--k", 64) as usize,
        batch_size: batch,
        activation: if args.iter().any(|a| a == "--batch-topk") {
            ActivationKind::BatchTopK
        } else {
            ActivationKind::TopK
        },
        total_tokens: steps * batch as u64,
        dead_tokens: arg(&args, "--dead-tokens", 1_000_000),
        checkpoint_every: u64::MAX,
        eval_rows: batch,
        ..TrainConfig::default()
    };

    let dir = tempfile::tempdir()?;
    let store_dir = dir.path().join("store");
    let meta = StoreMeta {
        model: "synthetic".into(),
        layer: 0,
        corpus_checksum: "none".into(),
        d,
        dtype: Dtype::F16,
        rows_per_shard: batch,
    };
    let (writer, _) = StoreWriter::create_or_resume(&store_dir, meta)?;
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let n_dirs = 256;
    let dirs: Vec<f32> = (0..n_dirs * d).map(|_| rng.next() * 8.0).collect();
    let offset: Vec<f32> = (0..d).map(|_| rng.next() * 5.0).collect();
    // One shard per step plus one held out.
    for s in 0..=steps as usize {
        let mut rows = Vec::with_capacity(batch * d);
        for _ in 0..batch {
            let mut x: Vec<f32> = offset.iter().map(|o| o + rng.next()).collect();
            for _ in 0..8 {
                let f = ((rng.next() + 1.0) * 0.5 * n_dirs as f32) as usize % n_dirs;
                let a = rng.next() + 1.5;
                for (x, w) in x.iter_mut().zip(&dirs[f * d..(f + 1) * d]) {
                    *x += a * w;
                }
            }
            rows.extend(x);
        }
        writer.write_shard(s, &rows, batch, s as u64..s as u64 + 1)?;
    }
    let store = StoreReader::open(&store_dir)?;

    println!(
        "d_in {d}, d_sae {}, k {}, batch {batch}, {:?}, {} rayon threads",
        cfg.d_sae,
        cfg.k,
        cfg.activation,
        rayon::current_num_threads()
    );
    println!("step  tok/s   load  matmul select sparse update  (seconds)  fvu    l0  dead");
    let mut all: Vec<StepMetrics> = Vec::new();
    let t0 = std::time::Instant::now();
    train(&cfg, &store, &dir.path().join("out"), |m| {
        let p = &m.phases;
        println!(
            "{:>4} {:>6.0} {:>6.3} {:>6.3} {:>6.3} {:>6.3} {:>6.3}            {:.3} {:>5.1} {:.2}",
            m.step,
            m.tokens_per_sec,
            p.load,
            p.matmul,
            p.select,
            p.sparse,
            p.update,
            m.fvu,
            m.l0,
            m.dead_fraction
        );
        all.push(m.clone());
        ControlFlow::Continue(())
    })?;
    let rest = if all.len() > 1 { &all[1..] } else { &all[..] };
    let mean =
        |f: &dyn Fn(&StepMetrics) -> f64| rest.iter().map(f).sum::<f64>() / rest.len() as f64;
    let step_secs = mean(&|m| batch as f64 / m.tokens_per_sec as f64);
    println!(
        "mean   {:>6.0} {:>6.3} {:>6.3} {:>6.3} {:>6.3} {:>6.3}  step {:.3} s",
        batch as f64 / step_secs,
        mean(&|m| m.phases.load),
        mean(&|m| m.phases.matmul),
        mean(&|m| m.phases.select),
        mean(&|m| m.phases.sparse),
        mean(&|m| m.phases.update),
        step_secs
    );
    let in_steps: f64 = all
        .iter()
        .map(|m| batch as f64 / m.tokens_per_sec as f64)
        .sum();
    println!(
        "outside steps (init, final checkpoint, held-out eval, export): {:.1} s",
        t0.elapsed().as_secs_f64() - in_steps
    );
    let matmul_gflops = 2.0 * (batch * d * cfg.d_sae) as f64 / mean(&|m| m.phases.matmul) / 1e9;
    println!("encoder matmul: {matmul_gflops:.1} GFLOP/s");
    Ok(())
}
