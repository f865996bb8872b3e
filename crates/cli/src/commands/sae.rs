use anyhow::{Context, Result};
use saener_sae::Dtype;
use saener_train::{train, StoreReader, TrainConfig, TrainOutcome};
use std::ops::ControlFlow;
use std::path::PathBuf;

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
    /// Train a TopK SAE (AuxK against dead latents) on an activation store.
    ///
    /// Checkpoints go to OUT every --checkpoint-every steps; re-running the same command
    /// resumes from the latest one. The result is written to OUT/sae/ in Gemma Scope 2 layout
    /// (params.safetensors + config.json), loadable with --sae anywhere.
    #[command(
        after_help = "Example:\n  saener residuals --layer 9 --input corpus/train.jsonl --store store/\n  \
saener sae train --store store/ --out runs/l9-16k --tokens 5000000"
    )]
    Train {
        /// Activation store written by `saener residuals --store`.
        #[arg(long)]
        store: PathBuf,
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
            let reader = StoreReader::open(&store)?;
            cfg.d_in = reader.meta().d;
            cfg.d_sae = d_sae.unwrap_or(cfg.d_sae);
            cfg.k = k.unwrap_or(cfg.k);
            cfg.total_tokens = tokens.unwrap_or(cfg.total_tokens);
            cfg.batch_size = batch_size.unwrap_or(cfg.batch_size);
            cfg.checkpoint_every = checkpoint_every.unwrap_or(cfg.checkpoint_every);
            eprintln!(
                "saener: training on {} rows in {} shards ({} steps)",
                reader.n_rows(),
                reader.shards().len(),
                cfg.total_steps()
            );
            let bar = indicatif::ProgressBar::new(cfg.total_steps()).with_style(
                indicatif::ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:30}] step {pos}/{len} (ETA {eta}) {msg}",
                )
                .expect("valid template"),
            );
            let outcome = train(&cfg, &reader, &out, |m| {
                bar.set_position(m.step);
                bar.set_message(format!(
                    "fvu {:.3} l0 {:.1} dead {:.1}% {:.0} tok/s",
                    m.fvu,
                    m.l0,
                    100.0 * m.dead_fraction,
                    m.tokens_per_sec
                ));
                ControlFlow::Continue(())
            })?;
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
