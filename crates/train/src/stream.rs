//! Streaming training: text goes through the LM into a shuffle buffer of activations in
//! memory, and the trainer draws its batches from there, in one resumable process with no
//! activation store on disk.
//!
//! # The buffer, and why a checkpoint holds it
//!
//! Before every step the buffer is refilled to at least `buffer_rows` rows, a chunk of
//! [`DOCS_PER_REFILL`] whole documents at a time, read from the corpus position onward (the
//! corpus is read in order, epoch after epoch; `saener corpus build` has already shuffled its
//! documents). The step then draws its `batch_size` rows uniformly without replacement, each
//! drawn row's slot taking the buffer's last row, with an RNG keyed by `(seed, step)`. A row
//! waits `buffer_rows / batch_size` steps on average (32 by default), so a batch mixes rows
//! of some hundreds of documents rather than a few neighbouring ones, and within an epoch no
//! row is drawn twice.
//!
//! The buffer's whole state is its rows, in order, and the corpus position (documents read);
//! the draws are a pure function of the step. A checkpoint therefore stores the buffer as it
//! is, in the same file as the model so the two are replaced together: 1.25 KB a row at
//! d = 640 in bf16, 160 MiB at the default 131,072 rows, beside 0.25 GB of parameters and
//! Adam moments per 16k latents. The alternative, rebuilding the buffer on resume from the
//! documents it came from, would need to know which of their rows had been drawn and to run
//! the LM over up to a buffer's worth of text again, minutes at the forward pass's ~700
//! tokens/s on two cores, where writing it costs a second of disk; it would also tie
//! checkpoints to refill boundaries, where storing the buffer allows one after any step (a
//! stop request, a `checkpoint_every` that is not a multiple of anything).
//!
//! Rows are held as bf16, the store's format too, which halves the buffer and makes the
//! saved buffer exactly the one in memory.
//!
//! # Memory
//!
//! The buffer peaks at `buffer_rows` plus one refill's rows (64 documents), `2 · d` bytes a
//! row; one refill's rows also pass through f32 on their way in. Besides that: the corpus
//! text (the caller's `&[&str]`, ~4 bytes a token), the LM (~1.1 GB dequantised), the SAE
//! with its Adam moments (`6 · d_sae · d · 4` bytes) and, while a checkpoint is loaded, the
//! whole checkpoint file once more.
//!
//! # Exact resume
//!
//! A run killed at any moment resumes from its last checkpoint with the same parameters,
//! Adam moments, dead-latent counters, buffer and corpus position, and since refills read
//! the same chunks of documents and the draws depend only on the step, it continues bit for
//! bit as the uninterrupted run would, on the same CPU (the LM's and the trainer's kernels
//! are picked by CPU features). On another machine it continues all the same, only not
//! bitwise.

use std::ops::ControlFlow;
use std::path::Path;

use half::bf16;
use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::rng::Rng;
use crate::tensors::{self, Out};
use crate::trainer::{run_to_end, Provenance, RowSource, SourceState, State, CHECKPOINT_FILE};
use crate::{io_err, Error, Result, StepMetrics, TrainConfig, TrainOutcome};
use saener_lm::residuals::Extractor;

/// Documents the LM reads per refill: enough for its length-sorted batching to pay off
/// (as in [`crate::extract_to_store`]). Part of the resume fingerprint.
pub const DOCS_PER_REFILL: usize = 64;
// Keeps the draw and initial-sample streams apart from each other and from the store's.
const TAG_DRAW: u64 = 11;
/// Held-out documents the LM reads per call: few, so that no more text is run than the
/// evaluation's `eval_rows` need.
const HELD_OUT_DOCS_PER_CALL: usize = 8;
const TAG_INIT: u64 = 12;
const BUFFER_TENSOR: &str = "stream.buffer";

/// Turns documents into residual rows: the LM in real runs ([`LmRows`]), a synthetic
/// function in tests.
pub trait Featurizer {
    /// Row width.
    fn d(&self) -> usize;
    /// The rows of `documents`, concatenated in input order, BOS rows excluded.
    fn rows(&self, documents: &[&str]) -> Result<Vec<f32>>;
    /// Everything that determines the rows (weights, layer, precision, batching), for the
    /// resume check: a checkpoint is only continued with the same rows.
    fn key(&self) -> String;
    /// The model, as recorded in the exported SAE.
    fn model(&self) -> String;
    /// The residual layer, as recorded in the exported SAE.
    fn layer(&self) -> usize;
}

/// The LM as a [`Featurizer`]: `model_id` names its weights (the GGUF's sha256, as a store
/// records it).
pub struct LmRows<'a> {
    pub extractor: Extractor<'a>,
    pub model_id: String,
}

impl Featurizer for LmRows<'_> {
    fn d(&self) -> usize {
        self.extractor.model.config().hidden_size
    }

    fn rows(&self, documents: &[&str]) -> Result<Vec<f32>> {
        let d = self.d();
        let residuals = self
            .extractor
            .run(documents, |_| {})
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let mut rows = Vec::with_capacity(residuals.iter().map(|r| r.rows.len() - d).sum());
        for r in residuals {
            // Row 0 is the BOS: its norm dwarfs every other row's and it carries no text.
            rows.extend_from_slice(&r.rows[d..]);
        }
        Ok(rows)
    }

    fn key(&self) -> String {
        format!(
            "model {} precision {:?} {:?}",
            self.model_id,
            self.extractor.model.precision(),
            self.extractor.options
        )
    }

    fn model(&self) -> String {
        self.model_id.clone()
    }

    fn layer(&self) -> usize {
        self.extractor.options.layer
    }
}

/// The corpus position, stored in the checkpoint's JSON beside the buffer tensor.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Position {
    /// Documents read so far, over all epochs; the next is `documents[next_doc % len]`.
    next_doc: u64,
    /// Rows in the buffer (the tensor's first dimension, repeated as a check).
    buffered_rows: u64,
}

/// The shuffle buffer over a corpus: the row source of a streaming run.
struct Stream<'a, F> {
    featurizer: &'a F,
    documents: &'a [&'a str],
    seed: u64,
    /// Rows the buffer is refilled to before each draw.
    capacity: usize,
    d: usize,
    /// bf16 bit patterns, row-major.
    rows: Vec<u16>,
    next_doc: u64,
}

impl<F: Featurizer> Stream<'_, F> {
    fn len(&self) -> usize {
        self.rows.len() / self.d
    }

    /// Reads chunks of documents until the buffer holds `capacity` rows.
    fn fill(&mut self) -> Result<()> {
        let n = self.documents.len();
        let (first_doc, mut added) = (self.next_doc, 0);
        while self.len() < self.capacity {
            if added == 0 && self.next_doc - first_doc >= n as u64 {
                return Err(Error::Invalid(format!(
                    "none of the {n} documents yields a row (empty texts?)"
                )));
            }
            let start = (self.next_doc % n as u64) as usize;
            let end = (start + DOCS_PER_REFILL).min(n);
            let context = |e: String| Error::Invalid(format!("documents {start}..{end}: {e}"));
            let rows = self
                .featurizer
                .rows(&self.documents[start..end])
                .map_err(|e| context(e.to_string()))?;
            if let Some(i) = rows.iter().position(|v| !v.is_finite()) {
                return Err(context(format!("row {} holds {}", i / self.d, rows[i])));
            }
            self.rows
                .extend(rows.iter().map(|&v| bf16::from_f32(v).to_bits()));
            added += rows.len();
            self.next_doc += (end - start) as u64;
        }
        Ok(())
    }

    /// `n` distinct buffered rows (all if fewer), in buffer order, as f32: the sample that
    /// sets the input scale and `b_dec` of a fresh run.
    fn sample(&self, n: usize) -> Vec<f32> {
        let len = self.len() as u64;
        let n = (n as u64).min(len);
        // Floyd's algorithm, as the store's sample: n distinct ids without a permutation.
        let mut rng = Rng::derive(self.seed, &[TAG_INIT]);
        let mut ids = std::collections::BTreeSet::new();
        for j in len - n..len {
            let t = rng.below(j + 1);
            if !ids.insert(t) {
                ids.insert(j);
            }
        }
        let d = self.d;
        let mut out = vec![0.0; ids.len() * d];
        for (dst, &id) in out.chunks_exact_mut(d).zip(&ids) {
            let id = id as usize;
            self.rows[id * d..(id + 1) * d]
                .reinterpret_cast::<bf16>()
                .convert_to_f32_slice(dst);
        }
        out
    }
}

impl<F: Featurizer> RowSource for Stream<'_, F> {
    fn batch(&mut self, step: u64, rows: usize, out: &mut Vec<f32>) -> Result<()> {
        self.fill()?;
        let d = self.d;
        out.clear();
        out.resize(rows * d, 0.0);
        let mut rng = Rng::derive(self.seed, &[TAG_DRAW, step]);
        for dst in out.chunks_exact_mut(d) {
            let last = self.len() - 1;
            let j = rng.below(last as u64 + 1) as usize;
            self.rows[j * d..(j + 1) * d]
                .reinterpret_cast::<bf16>()
                .convert_to_f32_slice(dst);
            self.rows.copy_within(last * d..(last + 1) * d, j * d);
            self.rows.truncate(last * d);
        }
        Ok(())
    }

    fn checkpoint(&self) -> SourceState<'_> {
        let position = Position {
            next_doc: self.next_doc,
            buffered_rows: self.len() as u64,
        };
        SourceState {
            tensors: vec![(
                BUFFER_TENSOR,
                Out::Bf16(&self.rows, vec![self.len(), self.d]),
            )],
            meta: Some(serde_json::to_value(position).expect("position serialises")),
        }
    }
}

/// What a streaming run's checkpoint must match: the featurizer's key, the refill chunking
/// and every document's text, in order.
fn fingerprint(featurizer: &impl Featurizer, documents: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(format!(
        "saener stream v1; {DOCS_PER_REFILL} documents per refill; {}\n",
        featurizer.key()
    ));
    for doc in documents {
        h.update((doc.len() as u64).to_le_bytes());
        h.update(doc.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The first `max_rows` rows of `documents`, for the final evaluation.
fn held_out_rows(
    featurizer: &impl Featurizer,
    documents: &[&str],
    max_rows: usize,
) -> Result<Vec<f32>> {
    let want = max_rows * featurizer.d();
    let mut out = Vec::new();
    for chunk in documents.chunks(HELD_OUT_DOCS_PER_CALL) {
        if out.len() >= want {
            break;
        }
        out.extend(featurizer.rows(chunk)?);
    }
    out.truncate(want);
    Ok(out)
}

/// Trains an SAE on the rows `featurizer` makes of `documents` (read in order, epoch after
/// epoch, through the shuffle buffer described in the [module docs](self)), writing
/// checkpoints, `metrics.csv` and the final SAE into `out_dir` as [`crate::train`] does, and
/// resuming from `out_dir/checkpoint.safetensors` if present (its config, bar
/// `checkpoint_every` and `eval_rows`, its documents and its featurizer must match, else
/// [`Error::CheckpointMismatch`]).
///
/// At the end the SAE is evaluated on the first `eval_rows` rows of `held_out` (skipped if
/// it is empty). `on_step` sees every step's metrics; returning `ControlFlow::Break(())`
/// checkpoints and returns [`TrainOutcome::Stopped`].
pub fn train_streaming<F: Featurizer>(
    cfg: &TrainConfig,
    featurizer: &F,
    documents: &[&str],
    held_out: &[&str],
    out_dir: &Path,
    on_step: impl FnMut(&StepMetrics) -> ControlFlow<()>,
) -> Result<TrainOutcome> {
    let d = featurizer.d();
    cfg.validate(d)?;
    if cfg.buffer_rows < 2 * cfg.batch_size {
        return Err(Error::Invalid(format!(
            "train config: buffer_rows ({}) must be at least twice batch_size ({})",
            cfg.buffer_rows, cfg.batch_size
        )));
    }
    if documents.is_empty() {
        return Err(Error::Invalid("no documents to train on".into()));
    }
    std::fs::create_dir_all(out_dir).map_err(io_err(out_dir))?;
    let ckpt = out_dir.join(CHECKPOINT_FILE);
    let fingerprint = fingerprint(featurizer, documents);
    let mut stream = Stream {
        featurizer,
        documents,
        seed: cfg.seed,
        capacity: cfg.buffer_rows,
        d,
        rows: Vec::new(),
        next_doc: 0,
    };
    let state = if ckpt.exists() {
        let file = tensors::In::read(&ckpt)?;
        let (state, position) = State::load(&file, &ckpt, cfg, &fingerprint)?;
        let position: Position = position
            .and_then(|p| serde_json::from_value(p).ok())
            .ok_or_else(|| Error::CheckpointMismatch {
                path: ckpt.clone(),
                reason: "it holds no stream position (not a streaming run's checkpoint)".into(),
            })?;
        stream.rows = file.bf16_rows(BUFFER_TENSOR, d)?;
        if stream.len() as u64 != position.buffered_rows {
            return Err(Error::Safetensors {
                path: ckpt,
                reason: format!(
                    "the buffer holds {} rows, the position says {}",
                    stream.len(),
                    position.buffered_rows
                ),
            });
        }
        stream.next_doc = position.next_doc;
        state
    } else {
        stream.fill()?;
        State::init(cfg, stream.sample(cfg.init_sample_rows))?
    };
    let provenance = Provenance {
        model: featurizer.model(),
        layer: featurizer.layer(),
        fingerprint,
    };
    run_to_end(
        cfg,
        state,
        stream,
        out_dir,
        &provenance,
        || held_out_rows(featurizer, held_out, cfg.eval_rows),
        on_step,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::normalize;
    use crate::{ActivationKind, TrainedSae};
    use saener_kernels::axpy;
    use std::path::PathBuf;

    /// Documents are `"<id> <rows>"`. Row `r` of document `id` is `offset + Σ_{3 of 48} a_i
    /// f_i + noise` from a stream keyed by `(id, r)`, the synthetic store's distribution.
    struct Synthetic {
        d: usize,
        dirs: Vec<f32>,
        offset: Vec<f32>,
    }

    impl Synthetic {
        fn new(d: usize) -> Self {
            let mut rng = Rng::derive(99, &[]);
            let mut dirs: Vec<f32> = (0..48 * d).map(|_| rng.normal() as f32).collect();
            dirs.chunks_mut(d).for_each(normalize);
            let offset = (0..d).map(|_| 40.0 * rng.normal() as f32).collect();
            Synthetic { d, dirs, offset }
        }
    }

    fn parse(doc: &str) -> (u64, u64) {
        let (id, n) = doc.split_once(' ').unwrap();
        (id.parse().unwrap(), n.parse().unwrap())
    }

    impl Featurizer for Synthetic {
        fn d(&self) -> usize {
            self.d
        }

        fn rows(&self, documents: &[&str]) -> Result<Vec<f32>> {
            let d = self.d;
            let mut out = Vec::new();
            for doc in documents {
                let (id, n) = parse(doc);
                for r in 0..n {
                    let mut rng = Rng::derive(id, &[r]);
                    let mut x: Vec<f32> = self
                        .offset
                        .iter()
                        .map(|o| o + 2.0 * rng.normal() as f32)
                        .collect();
                    for _ in 0..3 {
                        let f = rng.below(48) as usize;
                        let a = 100.0 + 200.0 * rng.uniform() as f32;
                        axpy(a, &self.dirs[f * d..(f + 1) * d], &mut x);
                    }
                    out.extend(x);
                }
            }
            Ok(out)
        }

        fn key(&self) -> String {
            format!("synthetic d {}", self.d)
        }

        fn model(&self) -> String {
            "synthetic".into()
        }

        fn layer(&self) -> usize {
            0
        }
    }

    /// Rows `[id, r]`: each row names its document and place, exactly (small integers are
    /// exact in bf16).
    struct Tagged;

    impl Featurizer for Tagged {
        fn d(&self) -> usize {
            2
        }

        fn rows(&self, documents: &[&str]) -> Result<Vec<f32>> {
            Ok(documents
                .iter()
                .flat_map(|doc| {
                    let (id, n) = parse(doc);
                    (0..n).flat_map(move |r| [id as f32, r as f32])
                })
                .collect())
        }

        fn key(&self) -> String {
            "tagged".into()
        }

        fn model(&self) -> String {
            "tagged".into()
        }

        fn layer(&self) -> usize {
            0
        }
    }

    /// 150 documents of 2 to 30 rows: ~2,400 rows an epoch, ~1,000 a refill.
    fn corpus() -> Vec<String> {
        (0..150)
            .map(|i| format!("{i} {}", 2 + (i * 37) % 29))
            .collect()
    }

    fn small_config() -> TrainConfig {
        TrainConfig {
            d_in: 32,
            d_sae: 64,
            k: 4,
            batch_size: 128,
            lr: Some(1e-2),
            warmup_steps: 10,
            total_tokens: 128 * 60, // ~3 epochs
            aux_k: Some(8),
            dead_tokens: 128 * 3, // AuxK active during the run
            checkpoint_every: 7,
            init_sample_rows: 256,
            eval_rows: 256,
            buffer_rows: 512,
            activation: ActivationKind::BatchTopK,
            ..TrainConfig::default()
        }
    }

    fn finished(outcome: TrainOutcome) -> TrainedSae {
        match outcome {
            TrainOutcome::Finished(sae) => *sae,
            TrainOutcome::Stopped { step } => panic!("stopped at {step}"),
        }
    }

    /// `metrics.csv` without its last column, tokens/s, the one thing that may differ.
    fn metrics(dir: &Path) -> Vec<String> {
        std::fs::read_to_string(dir.join("metrics.csv"))
            .unwrap()
            .lines()
            .map(|l| l.rsplit_once(',').unwrap().0.to_owned())
            .collect()
    }

    #[test]
    fn stopped_crashed_and_moved_run_matches_uninterrupted_bitwise() {
        let dir = tempfile::tempdir().unwrap();
        let texts = corpus();
        let docs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let held_out = ["1000 200", "1001 100"];
        let f = Synthetic::new(32);
        let cfg = small_config();
        let run = |out: &PathBuf, on_step: &mut dyn FnMut(&StepMetrics) -> ControlFlow<()>| {
            train_streaming(&cfg, &f, &docs, &held_out, out, on_step)
        };
        let whole_dir = dir.path().join("whole");
        let mut first_fvu = None;
        let whole = finished(
            run(&whole_dir, &mut |m| {
                first_fvu.get_or_insert(m.fvu);
                ControlFlow::Continue(())
            })
            .unwrap(),
        );
        let stats = &whole.config().stats;
        let (last, held) = (stats.last_step.clone().unwrap(), stats.held_out.unwrap());
        assert_eq!(stats.steps, 60);
        // It learns, a run this short no further than that.
        let first_fvu = first_fvu.unwrap();
        eprintln!("fvu {first_fvu} -> {} (held-out {})", last.fvu, held.fvu);
        assert!(
            last.fvu < first_fvu / 2.0,
            "fvu {first_fvu} -> {}",
            last.fvu
        );
        assert!(held.fvu < 0.5, "held-out fvu {}", held.fvu);
        assert_eq!(held.rows, 256);

        // Stopped at step 23: a checkpoint at 23, the buffer mid-way between refills.
        let first = dir.path().join("first");
        let stopped = run(&first, &mut |m| {
            if m.step == 23 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
        assert!(matches!(stopped, TrainOutcome::Stopped { step: 23 }));
        // Another corpus is refused, not silently trained on.
        let err = train_streaming(&cfg, &f, &docs[1..], &held_out, &first, |_| {
            ControlFlow::Continue(())
        })
        .unwrap_err();
        assert!(matches!(err, Error::CheckpointMismatch { .. }), "{err}");

        // The run directory moves to another machine, and continues there.
        let moved = dir.path().join("moved");
        std::fs::create_dir(&moved).unwrap();
        for entry in std::fs::read_dir(&first).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, moved.join(path.file_name().unwrap())).unwrap();
        }
        // A crash after step 30: the checkpoint at 28 survives, the CSV has rows beyond it.
        let crashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run(&moved, &mut |m| {
                assert_ne!(m.step, 30, "simulated crash");
                ControlFlow::Continue(())
            })
        }));
        assert!(crashed.is_err());
        let resumed = finished(run(&moved, &mut |_| ControlFlow::Continue(())).unwrap());

        assert_eq!(
            resumed.weights(),
            whole.weights(),
            "weights differ after resume"
        );
        assert_eq!(resumed.config().activation, whole.config().activation);
        assert_eq!(
            resumed.config().stats.held_out,
            whole.config().stats.held_out
        );
        assert_eq!(
            resumed.config().store_fingerprint,
            whole.config().store_fingerprint
        );
        assert_eq!(metrics(&moved), metrics(&whole_dir));
        // The final checkpoints agree too: buffer, corpus position, Adam moments.
        let ckpt = |d: &Path| {
            let file = tensors::In::read(&d.join(CHECKPOINT_FILE)).unwrap();
            let meta: serde_json::Value =
                serde_json::from_str(&file.metadata("saener_train").unwrap()).unwrap();
            let adam = file.f32("adam.w_enc.v", &[64, 32]).unwrap();
            (
                file.bf16_rows(BUFFER_TENSOR, 32).unwrap(),
                meta["source"].clone(),
                adam,
            )
        };
        assert_eq!(ckpt(&moved), ckpt(&whole_dir));
        // Running again after the end re-exports the same SAE.
        let again = finished(run(&moved, &mut |_| panic!("no steps left")).unwrap());
        assert_eq!(again.weights(), whole.weights());
    }

    #[test]
    fn the_buffer_draws_each_row_once_per_epoch_and_mixes_documents() {
        let texts = corpus();
        let docs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let epoch_rows: usize = docs.iter().map(|d| parse(d).1 as usize).sum();
        let mut stream = Stream {
            featurizer: &Tagged,
            documents: &docs,
            seed: 3,
            capacity: 512,
            d: 2,
            rows: Vec::new(),
            next_doc: 0,
        };
        let mut drawn: Vec<(u32, u32)> = Vec::new();
        let mut batch = Vec::new();
        let mut step = 0;
        while drawn.len() + 128 <= epoch_rows && stream.next_doc < docs.len() as u64 {
            stream.batch(step, 128, &mut batch).unwrap();
            let rows: Vec<(u32, u32)> = batch
                .chunks(2)
                .map(|r| (r[0] as u32, r[1] as u32))
                .collect();
            let documents: std::collections::HashSet<u32> = rows.iter().map(|r| r.0).collect();
            assert!(
                documents.len() > 40,
                "step {step}: rows of {} documents",
                documents.len()
            );
            drawn.extend(rows);
            step += 1;
        }
        assert!(step > 5, "only {step} steps");
        // What was drawn and what is buffered are exactly the rows of the documents read.
        let mut seen = drawn.clone();
        seen.extend(stream.rows.chunks(2).map(|r| {
            let r = [bf16::from_bits(r[0]), bf16::from_bits(r[1])];
            (r[0].to_f32() as u32, r[1].to_f32() as u32)
        }));
        seen.sort_unstable();
        // The last refill may have wrapped into the next epoch.
        let read: Vec<(u32, u32)> = (0..stream.next_doc as usize)
            .flat_map(|i| {
                let (id, n) = parse(docs[i % docs.len()]);
                (0..n as u32).map(move |r| (id as u32, r))
            })
            .collect();
        let mut read_sorted = read.clone();
        read_sorted.sort_unstable();
        assert_eq!(seen, read_sorted);
        // Not the corpus order.
        assert_ne!(&drawn[..128], &read[..128]);
    }

    #[test]
    fn too_small_a_buffer_and_empty_documents_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = TrainConfig {
            buffer_rows: 200,
            ..small_config()
        };
        let f = Synthetic::new(32);
        let err = train_streaming(&cfg, &f, &["0 5"], &[], dir.path(), |_| {
            ControlFlow::Continue(())
        })
        .unwrap_err();
        assert!(err.to_string().contains("buffer_rows"), "{err}");
        let err = train_streaming(
            &small_config(),
            &f,
            &["0 0", "1 0"],
            &[],
            dir.path(),
            |_| ControlFlow::Continue(()),
        )
        .unwrap_err();
        assert!(err.to_string().contains("yields a row"), "{err}");
    }
}
