use anyhow::{Context, Result};
use saener_sae::Dtype;
use saener_train::{train, StoreReader, TrainConfig, TrainOutcome};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Print what an SAE file or folder holds (format, sizes, activation, hook layer, id).
    Info {
        /// An SAE folder or file in any supported format (Gemma Scope, Gemma Scope 2, SAELens, sparsify).
        path: PathBuf,
    },
    /// Evaluate an SAE on held-out text: reconstruction, sparsity, dead features, and the
    /// next-token loss with the SAE spliced into the model. Prints one JSON object.
    #[command(
        after_help = "Keys: fvu (fraction of variance unexplained), l0 (mean active features per \
token), dead_fraction (features that never fire on the text; dead_fraction_tokens says how many \
tokens that rests on), ce_clean, ce_spliced, ce_zero_ablation (next-token loss in nats, over \
ce_tokens tokens), ce_loss_recovered = (ce_zero_ablation - ce_spliced) / (ce_zero_ablation - ce_clean)."
    )]
    Eval {
        /// Held-out text: JSONL with a "text" field per line, or plain text, one document per line.
        #[arg(long)]
        text: PathBuf,
        /// SAE folder or file in any supported format (default: the SAE shipped in models/).
        #[arg(long)]
        sae: Option<PathBuf>,
        /// Residual layer the SAE reads (default: the SAE's recorded hook layer).
        #[arg(long)]
        layer: Option<usize>,
        /// GGUF model (default: Gemma 3 270M in $SAENER_HOME, fetched if missing).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Tokens (BOS excluded) used for fvu, l0 and dead_fraction.
        #[arg(long, default_value_t = 65536)]
        max_tokens: usize,
        /// Tokens used for the three next-token losses (each needs a full forward and the
        /// 262k-way output head, so this is the slow part).
        #[arg(long, default_value_t = 4096)]
        ce_tokens: usize,
    },
    /// Give a TopK SAE BatchTopK's inference rule: one global firing threshold, set so that
    /// the mean number of active features on held-out text is k. Encoding then depends on
    /// each feature alone, so `annotate` can encode only a profile's features, exactly.
    ///
    /// Tokens whose residual norm exceeds 4× the median (a model's "massive activations",
    /// about 0.3 % of Gemma 3's tokens) keep TopK: a fixed threshold would let thousands of
    /// features fire on them. They are left out of the estimate and stored as
    /// `topk_above_norm` in the `saener` block of `config.json`.
    Threshold {
        /// Held-out text: JSONL with a "text" field per line, or plain text, one document per line.
        #[arg(long)]
        text: PathBuf,
        /// A TopK SAE folder or file in any supported format.
        #[arg(long)]
        sae: PathBuf,
        /// Where to write the thresholded SAE (Gemma Scope 2 layout).
        #[arg(long)]
        out: PathBuf,
        /// GGUF model (default: Gemma 3 270M in $SAENER_HOME, fetched if missing).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Tokens (BOS excluded) the threshold is estimated on.
        #[arg(long, default_value_t = 65536)]
        max_tokens: usize,
    },
    /// Train a TopK SAE (AuxK against dead latents) on an activation store, or straight from
    /// text (--text: the LM runs as training goes, through a shuffle buffer in memory).
    ///
    /// Checkpoints go to OUT every --checkpoint-every steps; re-running the same command
    /// resumes from the latest one, on this machine or another (a streaming run's checkpoint
    /// holds its shuffle buffer and corpus position too). The result is written to OUT/sae/ in
    /// Gemma Scope 2 layout (params.safetensors + config.json), loadable with --sae anywhere.
    #[command(
        after_help = "Examples:\n  saener residuals --layer 9 --input corpus/train.jsonl --store store/\n  \
saener sae train --store store/ --out runs/l9-16k --tokens 5000000\n\n  \
saener sae train --text corpus/train.jsonl --heldout corpus/heldout.jsonl --layer 9 \\\n    \
--out runs/l9-32k --d-sae 32768 --tokens 40000000"
    )]
    Train {
        /// Activation store written by `saener residuals --store`.
        #[arg(long, required_unless_present = "text", conflicts_with = "text")]
        store: Option<PathBuf>,
        /// Stream from text instead: JSONL with a "text" field per line (`saener corpus
        /// build`'s train.jsonl), or plain text, one document per line; read in order, epoch
        /// after epoch.
        #[arg(long, requires = "layer")]
        text: Option<PathBuf>,
        /// With --text: held-out text the final SAE is evaluated on (its first eval_rows
        /// tokens).
        #[arg(long, requires = "text")]
        heldout: Option<PathBuf>,
        /// With --text: the decoder block whose output (resid_post) the SAE reads.
        #[arg(long, requires = "text")]
        layer: Option<usize>,
        /// With --text: GGUF model (default: Gemma 3 270M in $SAENER_HOME, fetched if missing).
        #[arg(long, requires = "text")]
        model: Option<PathBuf>,
        /// With --text: arithmetic of the LM's matrix products: f32 (the default, as for
        /// `residuals`: the rows are the model's own), bf16 (needs AMX), int8 (needs
        /// AVX512-VNNI), or auto. Recorded in the checkpoint: a run resumes only with the same.
        #[arg(long, default_value = "f32")]
        precision: saener_lm::Precision,
        /// With --text: rows of the shuffle buffer (2 bytes × d_model each, kept in every
        /// checkpoint).
        #[arg(long, requires = "text")]
        buffer_rows: Option<usize>,
        /// Run folder: checkpoint, metrics.csv, and the exported SAE.
        #[arg(long)]
        out: PathBuf,
        /// Full training config as JSON (fields of saener_train::TrainConfig); flags below override it.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Number of latents.
        #[arg(long)]
        d_sae: Option<usize>,
        /// Active latents per token.
        #[arg(long)]
        k: Option<usize>,
        /// Training tokens (rows) in all; more than the store holds means several epochs.
        #[arg(long)]
        tokens: Option<u64>,
        /// Rows per optimiser step.
        #[arg(long)]
        batch_size: Option<usize>,
        /// Steps between checkpoints.
        #[arg(long)]
        checkpoint_every: Option<u64>,
        /// Name recorded in the exported SAE's config.
        #[arg(long, default_value = "saener-gemma3-270m")]
        name: String,
    },
}

pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Info { path } => {
            let sae = saener_sae::load_any(&path)?;
            println!("{sae}");
            Ok(())
        }
        Command::Eval {
            text,
            sae,
            layer,
            model,
            max_tokens,
            ce_tokens,
        } => {
            let sae = saener_sae::load_any(crate::commands::io::sae_path(sae))?;
            let model_file = crate::commands::io::model_path(model)?;
            let tokenizer = saener_lm::Tokenizer::from_gguf(&model_file)?;
            let model = saener_lm::gemma3::Gemma3::load(&model_file, Default::default())?;
            let layer = layer
                .or(sae.config().hook_layer)
                .context("the SAE records no hook layer: pass --layer")?;
            sae.check_compatible(model.config().hidden_size, layer)?;
            let documents = crate::commands::io::read_documents(&text)?;
            let report = saener_train::evaluate::evaluate(
                &sae,
                &model,
                &tokenizer,
                &documents,
                &saener_train::evaluate::EvalOptions {
                    layer,
                    max_tokens,
                    ce_tokens,
                },
            )?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        Command::Threshold {
            text,
            sae,
            out,
            model,
            max_tokens,
        } => {
            let sae = saener_sae::load_any(&sae)?;
            let layer = sae
                .config()
                .hook_layer
                .context("the SAE records no hook layer")?;
            let model_file = crate::commands::io::model_path(model)?;
            let tokenizer = saener_lm::Tokenizer::from_gguf(&model_file)?;
            let model = saener_lm::gemma3::Gemma3::load(
                &model_file,
                saener_lm::gemma3::LoadOptions {
                    max_layer: Some(layer),
                    ..Default::default()
                },
            )?;
            sae.check_compatible(model.config().hidden_size, layer)?;
            let documents = crate::commands::io::read_documents(&text)?;
            let rows = saener_train::evaluate::held_out_rows(
                &model, &tokenizer, &documents, layer, max_tokens,
            )?;
            let thresholded = sae.with_batch_topk_threshold(&rows)?;
            let dtype = sae.source().map_or(Dtype::F32, |s| s.dtype);
            saener_sae::format::gemmascope2::save(&thresholded, &out, dtype)?;
            println!("{}", thresholded.config().activation);
            eprintln!(
                "saener: threshold from {} tokens; SAE written to {}",
                rows.len() / sae.config().d_in,
                out.display()
            );
            Ok(())
        }
        Command::Train {
            store,
            text,
            heldout,
            layer,
            model,
            precision,
            buffer_rows,
            out,
            config,
            d_sae,
            k,
            tokens,
            batch_size,
            checkpoint_every,
            name,
        } => {
            let mut cfg: TrainConfig = match &config {
                Some(path) => serde_json::from_str(
                    &std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))?,
                )
                .with_context(|| format!("{}: not a valid training config", path.display()))?,
                None => TrainConfig::default(),
            };
            cfg.d_sae = d_sae.unwrap_or(cfg.d_sae);
            cfg.k = k.unwrap_or(cfg.k);
            cfg.total_tokens = tokens.unwrap_or(cfg.total_tokens);
            cfg.batch_size = batch_size.unwrap_or(cfg.batch_size);
            cfg.checkpoint_every = checkpoint_every.unwrap_or(cfg.checkpoint_every);
            cfg.buffer_rows = buffer_rows.unwrap_or(cfg.buffer_rows);
            let bar = indicatif::ProgressBar::new(cfg.total_steps()).with_style(
                indicatif::ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:30}] step {pos}/{len} (ETA {eta}) {msg}",
                )
                .expect("valid template"),
            );
            // Tokens/s over this process's steps: a streaming step that refilled the buffer
            // takes far longer than one that did not, so one step's rate says little.
            let started = std::time::Instant::now();
            let batch = cfg.batch_size as u64;
            let mut first_tokens = None;
            let on_step = |m: &saener_train::StepMetrics| {
                let from = *first_tokens.get_or_insert(m.tokens - batch);
                let rate = (m.tokens - from) as f64 / started.elapsed().as_secs_f64();
                bar.set_position(m.step);
                bar.set_message(format!(
                    "{} tokens, {rate:.0} tok/s, mse {:.4} fvu {:.3} l0 {:.1} dead {:.1}%",
                    m.tokens,
                    m.mse,
                    m.fvu,
                    m.l0,
                    100.0 * m.dead_fraction
                ));
                ControlFlow::Continue(())
            };
            let outcome = match (store, text) {
                (Some(store), _) => {
                    let reader = StoreReader::open(&store)?;
                    cfg.d_in = reader.meta().d;
                    eprintln!(
                        "saener: training on {} rows in {} shards ({} steps)",
                        reader.n_rows(),
                        reader.shards().len(),
                        cfg.total_steps()
                    );
                    train(&cfg, &reader, &out, on_step)?
                }
                (None, Some(text)) => {
                    let layer = layer.expect("clap requires --layer with --text");
                    stream(
                        &cfg,
                        &text,
                        heldout.as_deref(),
                        layer,
                        model,
                        precision,
                        &out,
                        on_step,
                    )?
                }
                (None, None) => unreachable!("clap requires --store or --text"),
            };
            bar.finish();
            let TrainOutcome::Finished(trained) = outcome else {
                anyhow::bail!("training stopped before the end; run the same command to resume");
            };
            let sae_dir = out.join("sae");
            saener_sae::format::gemmascope2::save(&trained.to_sae(&name)?, &sae_dir, Dtype::BF16)?;
            println!("{}", serde_json::to_string_pretty(&trained.config().stats)?);
            eprintln!("saener: SAE written to {}", sae_dir.display());
            Ok(())
        }
    }
}

/// `sae train --text`: the LM to `layer` as the featurizer of a streaming run.
#[allow(clippy::too_many_arguments)]
fn stream(
    cfg: &TrainConfig,
    text: &Path,
    heldout: Option<&Path>,
    layer: usize,
    model: Option<PathBuf>,
    precision: saener_lm::Precision,
    out: &Path,
    on_step: impl FnMut(&saener_train::StepMetrics) -> ControlFlow<()>,
) -> Result<TrainOutcome> {
    let model_file = crate::commands::io::model_path(model)?;
    let tokenizer = saener_lm::Tokenizer::from_gguf(&model_file)?;
    let lm = saener_lm::gemma3::Gemma3::load(
        &model_file,
        saener_lm::gemma3::LoadOptions {
            max_layer: Some(layer),
            precision,
            ..Default::default()
        },
    )?;
    let mut cfg = cfg.clone();
    cfg.d_in = lm.config().hidden_size;
    let featurizer = saener_train::LmRows {
        extractor: saener_lm::residuals::Extractor {
            tokenizer: &tokenizer,
            model: &lm,
            options: saener_lm::residuals::ExtractOptions::new(layer),
        },
        model_id: saener_lm::fetch::sha256_file(&model_file)?,
    };
    let texts = crate::commands::io::read_documents(text)?;
    let held_out = match heldout {
        Some(path) => crate::commands::io::read_documents(path)?,
        None => Vec::new(),
    };
    let documents: Vec<&str> = texts.iter().map(String::as_str).collect();
    let held_out: Vec<&str> = held_out.iter().map(String::as_str).collect();
    eprintln!(
        "saener: streaming {} documents from {} through layer {layer} ({} steps of {} tokens)",
        documents.len(),
        text.display(),
        cfg.total_steps(),
        cfg.batch_size
    );
    Ok(saener_train::train_streaming(
        &cfg,
        &featurizer,
        &documents,
        &held_out,
        out,
        on_step,
    )?)
}
