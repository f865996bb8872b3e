use crate::commands::io::{model_path, sae_path};
use crate::commands::stack::load_profile;
use anyhow::{Context, Result};
use saener_lm::gemma3::{Gemma3, LoadOptions};
use saener_lm::residuals::{ExtractOptions, Extractor};
use saener_lm::{Cpu, Precision, Tokenizer};
use saener_ner::{read_conll, Annotator, ConllOptions, Document, DocumentMode};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// CoNLL file whose sentences are timed (each sentence is one input).
    #[arg(long)]
    data: PathBuf,
    /// Sentences to time (the first N of the file).
    #[arg(long, default_value_t = 320)]
    sentences: usize,
    /// Layers to stop after.
    #[arg(long, value_delimiter = ',', default_value = "12,9")]
    layers: Vec<usize>,
    /// Batch sizes (sequences per forward pass; batches are length-sorted).
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    batch_sizes: Vec<usize>,
    /// Timed passes per setting; the best and the median are reported.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Also write the timed sentences, one per line, for bench/reference_forward.py.
    #[arg(long)]
    write_sentences: Option<PathBuf>,
    /// GGUF model (default: Gemma 3 270M in $SAENER_HOME, fetched if missing).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Also time `annotate` end to end with this profile (path or shipped name), beside the
    /// forward pass alone to the SAE's layer, at each batch size, in the same run.
    #[arg(long)]
    profile: Option<String>,
    /// SAE for --profile (default: the shipped one).
    #[arg(long)]
    sae: Option<PathBuf>,
    /// Precisions to time side by side, repeats interleaved: f32, int8, bf16 or auto, and
    /// `f32-avx2`, f32 kept on the AVX2 reference kernel where AVX-512 is present. Each
    /// loads its own copy of the model; --profile runs with the first.
    #[arg(long, value_delimiter = ',', default_value = "auto", value_parser = parse_kernels)]
    precision: Vec<Kernels>,
}

/// A precision, and whether f32 stays on the AVX2 kernel.
#[derive(Clone, Copy)]
struct Kernels {
    precision: Precision,
    avx2_only: bool,
}

impl Kernels {
    fn label(&self, model: &Gemma3) -> String {
        let resolved = model.precision();
        match (self.avx2_only, self.precision) {
            (true, _) => "f32-avx2".into(),
            (false, Precision::Auto) => format!("auto ({resolved})"),
            _ => resolved.to_string(),
        }
    }
}

fn parse_kernels(s: &str) -> std::result::Result<Kernels, String> {
    if s == "f32-avx2" {
        return Ok(Kernels {
            precision: Precision::F32,
            avx2_only: true,
        });
    }
    let precision = s
        .parse::<Precision>()
        .map_err(|e| format!("{e} (or f32-avx2)"))?;
    Ok(Kernels {
        precision,
        avx2_only: false,
    })
}

/// Prints tokens/s of tokenize + forward to each layer at each batch size, the model load
/// time and the peak RSS: the figures BENCHMARKS.md records.
pub fn run(args: Args) -> Result<()> {
    let corpus = read_conll(
        &args.data,
        &ConllOptions {
            documents: DocumentMode::Sentences,
            ..Default::default()
        },
    )?
    .corpus;
    let documents: Vec<Document> = corpus
        .documents
        .into_iter()
        .filter(|d| !d.text.trim().is_empty())
        .take(args.sentences)
        .collect();
    let sentences: Vec<String> = documents.iter().map(|d| d.text.clone()).collect();
    if let Some(path) = &args.write_sentences {
        std::fs::write(path, sentences.join("\n") + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let texts: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let model_file = model_path(args.model)?;
    let annotate = match &args.profile {
        Some(name) => {
            let profile = load_profile(name)?;
            let sae = saener_sae::load_any(sae_path(args.sae.clone()))?;
            let layer = sae
                .config()
                .hook_layer
                .context("the SAE records no hook layer")?;
            Some((profile, sae, layer))
        }
        None => None,
    };
    let max_layer = args
        .layers
        .iter()
        .copied()
        .chain(annotate.as_ref().map(|a| a.2))
        .max()
        .context("--layers is empty")?;

    let start = Instant::now();
    let tokenizer = Tokenizer::from_gguf(&model_file)?;
    let mut models = Vec::new();
    for kernels in &args.precision {
        let model = Gemma3::load(
            &model_file,
            LoadOptions {
                max_layer: Some(max_layer),
                precision: kernels.precision,
                avx2_only: kernels.avx2_only,
            },
        )?;
        models.push((kernels.label(&model), model));
    }
    let load_secs = start.elapsed().as_secs_f64() / models.len().max(1) as f64;
    let (_, model) = models.first().context("--precision is empty")?;
    let start = Instant::now();
    let tokens: usize = texts.iter().map(|t| tokenizer.encode(t).ids.len()).sum();
    let tokenize_rate = tokens as f64 / start.elapsed().as_secs_f64();

    println!(
        "CPU: {} ({}); model load (tokenizer + blocks 0..={max_layer}): {load_secs:.2} s per precision; {} sentences, {tokens} tokens (BOS included); tokenizer alone {tokenize_rate:.0} tok/s; {} threads",
        cpu_model().unwrap_or_else(|| "unknown".into()),
        Cpu::detect().describe(),
        texts.len(),
        rayon::current_num_threads()
    );
    println!("| layer | batch | precision | best tok/s | median tok/s | best vs first |");
    println!("|---|---|---|---|---|---|");
    for &layer in &args.layers {
        for &batch_size in &args.batch_sizes {
            let mut rates = vec![Vec::new(); models.len()];
            for _ in 0..args.repeats.max(1) {
                for ((_, model), rates) in models.iter().zip(&mut rates) {
                    let extractor = Extractor {
                        tokenizer: &tokenizer,
                        model,
                        options: ExtractOptions {
                            batch_size,
                            ..ExtractOptions::new(layer)
                        },
                    };
                    let start = Instant::now();
                    extractor.run(&texts, |_| {})?;
                    rates.push(tokens as f64 / start.elapsed().as_secs_f64());
                }
            }
            let mut first_best = None;
            for ((label, _), rates) in models.iter().zip(&mut rates) {
                rates.sort_by(f64::total_cmp);
                let best = rates[rates.len() - 1];
                let first = *first_best.get_or_insert(best);
                println!(
                    "| {layer} | {batch_size} | {label} | {best:.0} | {:.0} | {:.2}x |",
                    rates[rates.len() / 2],
                    best / first
                );
            }
        }
    }
    if let Some((profile, sae, layer)) = &annotate {
        println!(
            "\nannotate end to end (tokenize, blocks 0..={layer}{}, {} of {} SAE features, decode) beside one plain forward pass, same inputs, repeats interleaved:",
            if profile.origin.echo { " over each text read twice (echo)" } else { "" },
            profile.features().len(),
            sae.config().d_sae
        );
        println!(
            "| batch | forward best tok/s | annotate best tok/s | annotate cost over forward |"
        );
        println!("|---|---|---|---|");
        for &batch_size in &args.batch_sizes {
            let extractor = Extractor {
                tokenizer: &tokenizer,
                model,
                options: ExtractOptions {
                    batch_size,
                    ..ExtractOptions::new(*layer)
                },
            };
            let annotator = Annotator::new(extractor, sae, profile, profile.decoding)?;
            let (mut forward, mut full) = (f64::INFINITY, f64::INFINITY);
            for _ in 0..args.repeats.max(1) {
                let start = Instant::now();
                extractor.run(&texts, |_| {})?;
                forward = forward.min(start.elapsed().as_secs_f64());
                let start = Instant::now();
                annotator.annotate(&documents)?;
                full = full.min(start.elapsed().as_secs_f64());
            }
            println!(
                "| {batch_size} | {:.0} | {:.0} | {:+.1} % |",
                tokens as f64 / forward,
                tokens as f64 / full,
                100.0 * (full / forward - 1.0)
            );
        }
    }
    println!(
        "peak RSS: {}",
        peak_rss().unwrap_or_else(|| "unknown".into())
    );
    Ok(())
}

/// The CPU's model name (Linux `/proc/cpuinfo`).
fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("model name"))?;
    Some(line.split_once(':')?.1.trim().to_string())
}

/// The process's peak resident set (Linux `VmHWM`).
fn peak_rss() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(format!("{:.2} GiB", kb / 1024.0 / 1024.0))
}
