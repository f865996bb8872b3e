use crate::commands::io::{for_each_json_line, model_path, Record};
use anyhow::{Context, Result};
use saener_lm::gemma3::{Gemma3, LoadOptions, WindowOptions};
use saener_lm::residuals::{ExtractOptions, Extractor};
use saener_lm::{Precision, Tokenizer};
use saener_train::{extract_to_store, Dtype, StoreMeta, StoreReader, StoreWriter};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    /// Decoder block whose output (resid_post) is written, 0-indexed as Gemma Scope counts.
    #[arg(long)]
    layer: usize,
    /// Output folder: `<id>.npy` (float32 [n_tokens, d_model], BOS is row 0) and `<id>.json`
    /// (token ids and character offsets) per input record.
    #[arg(long, required_unless_present = "store", conflicts_with = "store")]
    out: Option<PathBuf>,
    /// Instead of per-document files, fill a sharded activation store for SAE training
    /// (bf16 rows, BOS excluded). Resumable: re-running skips finished shards.
    #[arg(long, requires = "input")]
    store: Option<PathBuf>,
    /// Nominal rows per store shard (shards hold whole documents).
    #[arg(long, default_value_t = 16384)]
    rows_per_shard: usize,
    /// Stop once the store holds this many shards (a reproducible prefix of the input).
    #[arg(long)]
    max_shards: Option<usize>,
    /// Read JSONL records from this file instead of stdin.
    #[arg(long)]
    input: Option<PathBuf>,
    /// GGUF model (default: Gemma 3 270M in $SAENER_HOME, fetched if missing).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Sequences per forward pass (sorted by length within each chunk of input).
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Longest input run in one pass, in tokens (at most the model's context length);
    /// longer documents are windowed, never cut.
    #[arg(long, default_value_t = WindowOptions::default().window)]
    window: usize,
    /// Tokens of left context each window repeats from the previous one.
    #[arg(long, default_value_t = WindowOptions::default().overlap)]
    overlap: usize,
    /// Arithmetic of the model's matrix products: f32 (the default: residuals are the
    /// model's own), bf16 (needs AMX), int8 (needs AVX512-VNNI), or auto (as `annotate`).
    #[arg(long, default_value = "f32")]
    precision: Precision,
}

/// Input records are read in chunks of this many, so memory stays bounded on large inputs.
const CHUNK: usize = 256;

/// JSONL `{"id","text"}` (stdin or `--input`) → `OUT/<id>.npy` + `OUT/<id>.json`, and one
/// JSONL line per input record on stdout: `{"id","tokens"}` or `{"id","error"}`; or, with
/// `--store`, an activation store for SAE training.
pub fn run(args: Args) -> Result<()> {
    let model_file = model_path(args.model)?;
    let tokenizer = Tokenizer::from_gguf(&model_file)?;
    let model = Gemma3::load(
        &model_file,
        LoadOptions {
            max_layer: Some(args.layer),
            precision: args.precision,
            ..LoadOptions::default()
        },
    )?;
    let extractor = Extractor {
        tokenizer: &tokenizer,
        model: &model,
        options: ExtractOptions {
            layer: args.layer,
            batch_size: args.batch_size,
            window: WindowOptions {
                window: args.window,
                overlap: args.overlap,
            },
            echo: false,
        },
    };
    if let Some(store) = &args.store {
        let input = args
            .input
            .as_deref()
            .expect("clap requires --input with --store");
        return fill_store(
            &extractor,
            input,
            store,
            &model_file,
            args.rows_per_shard,
            args.max_shards,
        );
    }
    let out_dir = args
        .out
        .as_deref()
        .expect("clap requires --out without --store");
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let bar = crate::commands::progress::tokens_bar(None);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut chunk = Vec::with_capacity(CHUNK);
    let flush = |chunk: &mut Vec<Record>, out: &mut dyn Write| -> Result<()> {
        write_chunk(&extractor, chunk, out_dir, out, &bar)?;
        chunk.clear();
        Ok(())
    };
    let (input, name) = open_input(args.input.as_deref())?;
    for_each_json_line(input, &name, |record| {
        chunk.push(record);
        if chunk.len() == CHUNK {
            flush(&mut chunk, &mut out)?;
        }
        Ok(())
    })?;
    flush(&mut chunk, &mut out)?;
    bar.finish();
    out.flush()?;
    Ok(())
}

fn open_input(path: Option<&Path>) -> Result<(Box<dyn std::io::BufRead>, String)> {
    Ok(match path {
        Some(path) => (
            Box::new(std::io::BufReader::new(
                std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?,
            )),
            path.display().to_string(),
        ),
        None => (Box::new(std::io::stdin().lock()), "<stdin>".to_string()),
    })
}

/// Fills (or resumes) an activation store from every record of `input`. A record without
/// text is an error here, not a skipped line: the store must be reproducible from its input.
fn fill_store(
    extractor: &Extractor,
    input: &Path,
    store: &Path,
    model_file: &Path,
    rows_per_shard: usize,
    max_shards: Option<usize>,
) -> Result<()> {
    let mut texts = Vec::new();
    let (reader, name) = open_input(Some(input))?;
    for_each_json_line(reader, &name, |record| {
        texts.push(record.text().map_err(anyhow::Error::msg)?.to_string());
        Ok(())
    })?;
    let meta = StoreMeta {
        model: saener_lm::fetch::sha256_file(model_file)?,
        layer: extractor.options.layer,
        corpus_checksum: saener_lm::fetch::sha256_file(input)?,
        d: extractor.model.config().hidden_size,
        dtype: Dtype::Bf16,
        rows_per_shard,
    };
    let (writer, first_shard) = StoreWriter::create_or_resume(store, meta)?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    eprintln!(
        "saener: {} documents from {}; resuming at shard {first_shard}",
        refs.len(),
        input.display()
    );
    let bar = crate::commands::progress::tokens_bar(None);
    extract_to_store(&refs, extractor, &writer, first_shard, max_shards, |n| {
        bar.inc(n as u64)
    })?;
    bar.finish();
    let reader = StoreReader::open(store)?;
    println!(
        "{}: {} shards, {} rows",
        store.display(),
        reader.shards().len(),
        reader.n_rows()
    );
    Ok(())
}

fn write_chunk(
    extractor: &Extractor,
    records: &[Record],
    dir: &Path,
    out: &mut dyn Write,
    bar: &indicatif::ProgressBar,
) -> Result<()> {
    // Each record is validated once; the valid ones go through the model together.
    let checked: Vec<(String, std::result::Result<&str, String>)> = records
        .iter()
        .map(|r| {
            let id = r.id();
            let text = r.text().and_then(|t| safe_file_stem(&id).map(|()| t));
            (id, text)
        })
        .collect();
    let texts: Vec<&str> = checked
        .iter()
        .filter_map(|(_, t)| t.as_ref().ok().copied())
        .collect();
    let mut residuals = extractor.run(&texts, |n| bar.inc(n as u64))?.into_iter();
    let d = extractor.model.config().hidden_size;
    let mut results = Vec::with_capacity(records.len());
    for (id, text) in checked {
        let Ok(_) = text else {
            results.push(serde_json::json!({ "id": id, "error": text.err() }));
            continue;
        };
        let res = residuals.next().expect("one result per valid record");
        let n = res.encoding.ids.len();
        saener_sae::npy::write(dir.join(format!("{id}.npy")), &[n, d], &res.rows)?;
        let json_path = dir.join(format!("{id}.json"));
        std::fs::write(&json_path, serde_json::to_string(&res.encoding)? + "\n")
            .with_context(|| format!("writing {}", json_path.display()))?;
        results.push(serde_json::json!({ "id": id, "tokens": n }));
    }
    for result in results {
        writeln!(out, "{result}")?;
    }
    Ok(())
}

/// An id becomes a file name: refuse anything that could escape the output folder.
fn safe_file_stem(id: &str) -> std::result::Result<(), String> {
    let bad = id.is_empty()
        || id == "."
        || id == ".."
        || id.contains(['/', '\\', '\0'])
        || id.len() > 200;
    if bad {
        Err(format!(
            "id {id:?} cannot be a file name (empty, '.', '..', a path separator, NUL, or over 200 bytes)"
        ))
    } else {
        Ok(())
    }
}
