//! Input plumbing shared by the subcommands.

use anyhow::{Context, Result};
use std::io::BufRead;
use std::path::PathBuf;

/// The model to run: `--model PATH` if given, else the default model (fetched on first use).
pub fn model_path(model: Option<PathBuf>) -> Result<PathBuf> {
    match model {
        Some(path) if path.exists() => Ok(path),
        Some(path) => anyhow::bail!("--model {}: no such file", path.display()),
        None => {
            if !saener_lm::default_model_path().exists() {
                eprintln!("saener: fetching the default model (Gemma 3 270M, ~250 MB) …");
            }
            Ok(saener_lm::ensure_default_model()?)
        }
    }
}

/// The SAE to use: `--sae PATH` if given, else the one shipped in this repository
/// (`models/gemma3-270m-l9-topk64-16k`, Gemma Scope 2 layout).
pub fn sae_path(sae: Option<PathBuf>) -> PathBuf {
    sae.unwrap_or_else(|| {
        PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../models/gemma3-270m-l9-topk64-16k"
        ))
    })
}

/// One JSONL input line: its 1-based line number and parsed value, or why it failed.
pub struct Record {
    pub line: usize,
    pub value: std::result::Result<serde_json::Value, String>,
}

impl Record {
    /// The record's `id` field, or its line number when absent.
    pub fn id(&self) -> String {
        match self.value.as_ref().ok().and_then(|v| v.get("id")) {
            Some(serde_json::Value::String(id)) => id.clone(),
            Some(other) => other.to_string(),
            None => format!("line{}", self.line),
        }
    }

    /// The record's `text` field, or an error naming the line and what was expected.
    pub fn text(&self) -> std::result::Result<&str, String> {
        let value = self.value.as_ref().map_err(Clone::clone)?;
        match value.get("text") {
            Some(serde_json::Value::String(text)) => Ok(text),
            Some(_) => Err(format!("line {}: field 'text' must be a string", self.line)),
            None => Err(format!("line {}: missing field 'text'", self.line)),
        }
    }
}

/// Calls `f` once per non-empty input line, in order, with the parsed record; a line that
/// is not valid UTF-8 or not JSON still reaches `f`, as an error, so outputs stay aligned
/// one-to-one with inputs.
pub fn for_each_json_line(
    mut input: impl BufRead,
    name: &str,
    mut f: impl FnMut(Record) -> Result<()>,
) -> Result<()> {
    let mut buf = Vec::new();
    let mut line = 0;
    let mut offset = 0usize;
    loop {
        buf.clear();
        let n = input
            .read_until(b'\n', &mut buf)
            .with_context(|| format!("reading {name}"))?;
        if n == 0 {
            return Ok(());
        }
        line += 1;
        let start = offset;
        offset += n;
        let bytes = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        if bytes.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let value = match std::str::from_utf8(bytes) {
            Err(e) => Err(format!(
                "{name}: line {line}: invalid UTF-8 at byte offset {}",
                start + e.valid_up_to()
            )),
            Ok(text) => serde_json::from_str(text)
                .map_err(|e| format!("{name}: line {line}: invalid JSON: {e}")),
        };
        f(Record { line, value })?;
    }
}

/// Documents of a text file: the "text" field of each line of a `.jsonl` file, else each
/// non-empty line of plain text. A malformed JSONL line is an error naming the line.
pub fn read_documents(path: &std::path::Path) -> Result<Vec<String>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader = std::io::BufReader::new(file);
    let name = path.display().to_string();
    let mut documents = Vec::new();
    if path.extension().is_some_and(|e| e == "jsonl") {
        for_each_json_line(reader, &name, |record| {
            let text = record.text().map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
            documents.push(text.to_string());
            Ok(())
        })?;
    } else {
        for (i, line) in reader.lines().enumerate() {
            let line = line.with_context(|| format!("{name}: line {}", i + 1))?;
            if !line.trim().is_empty() {
                documents.push(line);
            }
        }
    }
    Ok(documents)
}
