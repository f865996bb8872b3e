//! Streaming training on the real model (fetched on first use), on a few hundred tokens: a
//! run stopped part-way and resumed from its checkpoint ends bit for bit where an
//! uninterrupted run does, the LM's forward passes included.

use saener_lm::gemma3::{Gemma3, LoadOptions};
use saener_lm::residuals::{ExtractOptions, Extractor};
use saener_lm::Tokenizer;
use saener_train::{train_streaming, LmRows, TrainConfig, TrainOutcome, TrainedSae};
use std::ops::ControlFlow;

const LAYER: usize = 5;

const TEXTS: [&str; 10] = [
    "The committee met in Geneva on Tuesday to discuss the new trade agreement with Kenya.",
    "Researchers at the clinic reported that the drug reduced symptoms of asthma in children.",
    "After the storm, volunteers from Lyon and Marseille helped to repair the damaged roofs.",
    "Anna Schmidt won the regional chess championship for the third year in a row.",
    "Shares of the mining company fell sharply after it cut its forecast for copper output.",
    "Mutations in the BRCA1 gene raise the risk of breast and ovarian cancer.",
    "The museum in Kyoto will reopen next spring with a new wing for modern ceramics.",
    "Patients with type 2 diabetes were given metformin or a placebo for twelve weeks.",
    "The striker scored twice as Celtic beat Rangers 3-1 in front of a record crowd.",
    "Officials in Brazil said the bridge over the Amazon tributary would open in May.",
];

fn finished(outcome: TrainOutcome) -> TrainedSae {
    match outcome {
        TrainOutcome::Finished(sae) => *sae,
        TrainOutcome::Stopped { step } => panic!("stopped at {step}"),
    }
}

#[test]
fn streaming_run_resumed_on_the_real_model_matches_an_uninterrupted_one() {
    let path = saener_lm::ensure_default_model().expect("fetching the default model");
    let tokenizer = Tokenizer::from_gguf(&path).unwrap();
    let model = Gemma3::load(
        &path,
        LoadOptions {
            max_layer: Some(LAYER),
            ..LoadOptions::default()
        },
    )
    .unwrap();
    let lm = LmRows {
        extractor: Extractor {
            tokenizer: &tokenizer,
            model: &model,
            options: ExtractOptions {
                // Several forward batches per refill, so their order is part of what resumes.
                batch_size: 4,
                ..ExtractOptions::new(LAYER)
            },
        },
        model_id: "gemma-3-270m-q4_k_m".into(),
    };
    // ~170 tokens an epoch; 20 steps of 16 read about two epochs through a 48-row buffer.
    let cfg = TrainConfig {
        d_in: 640,
        d_sae: 64,
        k: 4,
        batch_size: 16,
        total_tokens: 16 * 20,
        warmup_steps: 2,
        aux_k: Some(8),
        dead_tokens: 64,
        checkpoint_every: 3,
        init_sample_rows: 32,
        eval_rows: 32,
        buffer_rows: 48,
        ..TrainConfig::default()
    };
    let (first, rest) = TEXTS.split_at(8);
    let dir = tempfile::tempdir().unwrap();
    let whole = finished(
        train_streaming(&cfg, &lm, first, rest, &dir.path().join("whole"), |_| {
            ControlFlow::Continue(())
        })
        .unwrap(),
    );
    let out = dir.path().join("resumed");
    let stopped = train_streaming(&cfg, &lm, first, rest, &out, |m| {
        if m.step == 8 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .unwrap();
    assert!(matches!(stopped, TrainOutcome::Stopped { step: 8 }));
    let resumed = finished(
        train_streaming(&cfg, &lm, first, rest, &out, |m| {
            assert!(m.step > 8, "step {} ran again", m.step);
            ControlFlow::Continue(())
        })
        .unwrap(),
    );
    assert_eq!(resumed.weights(), whole.weights());
    assert_eq!(
        resumed.config().stats.held_out,
        whole.config().stats.held_out
    );
    let held = whole.config().stats.held_out.unwrap();
    assert_eq!(held.rows, 32);
    assert!(held.fvu.is_finite() && held.l0 <= 4.0, "{held:?}");
    assert_eq!(whole.config().layer, LAYER);
}
