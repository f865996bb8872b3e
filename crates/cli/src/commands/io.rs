//! Input plumbing shared by the subcommands.

use anyhow::{Context, Result};
use saener_ner::StackConfig;
use std::io::{BufRead, Read as _};
use std::path::PathBuf;

/// The model to run: `--model PATH` if given, else the default model (fetched on first use).
pub fn model_path(model: Option<PathBuf>) -> Result<PathBuf> {
    let config = StackConfig {
        model,
        ..StackConfig::default()
    };
    Ok(config.model_path()?)
}

/// The SAE to use: `--sae PATH` if given, else the one shipped in this repository.
pub fn sae_path(sae: Option<PathBuf>) -> PathBuf {
    StackConfig {
        sae,
        ..StackConfig::default()
    }
    .sae_path()
}

/// One JSONL input line: its 1-based line number and parsed value, or why it failed.
pub struct Record {
    /// The input's name, for errors.
    pub file: String,
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
        if !value.is_object() {
            return Err(format!(
                "{}: line {}: expected a JSON object with a 'text' field, found {}",
                self.file,
                self.line,
                json_type(value)
            ));
        }
        match value.get("text") {
            Some(serde_json::Value::String(text)) => Ok(text),
            Some(_) => Err(format!(
                "{}: line {}: field 'text': expected a string, found {}",
                self.file,
                self.line,
                json_type(&value["text"])
            )),
            None => Err(format!(
                "{}: line {}: missing field 'text' (expected a string)",
                self.file, self.line
            )),
        }
    }
}

/// The JSON type of `value`, for "expected …, found …" errors.
fn json_type(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// A non-blank input line: its 1-based number, byte range in the input, and bytes (without
/// the line break).
pub struct RawLine {
    pub line: usize,
    pub start: u64,
    pub end: u64,
    pub bytes: Vec<u8>,
}

impl RawLine {
    /// The line as text, or (unless `lossy`, which replaces invalid sequences with U+FFFD)
    /// an error naming the input, line and byte offset of the first invalid byte.
    pub fn text(&self, name: &str, lossy: bool) -> std::result::Result<String, String> {
        match std::str::from_utf8(&self.bytes) {
            Ok(text) => Ok(text.to_string()),
            Err(_) if lossy => Ok(String::from_utf8_lossy(&self.bytes).into_owned()),
            Err(e) => Err(format!(
                "{name}: line {}: invalid UTF-8 at byte offset {} (--lossy replaces it)",
                self.line,
                self.start + e.valid_up_to() as u64
            )),
        }
    }
}

/// The most bytes one input line (one record) may hold unless a command says otherwise:
/// far above any real document, and small enough that an input without line breaks
/// (`/dev/zero`, a binary file) is refused within a fraction of a second instead of
/// filling memory.
pub const MAX_RECORD_BYTES: usize = 64 << 20;

/// The non-blank lines of an input, one at a time (memory is one line, however long the
/// input). Blank lines (only ASCII whitespace) are skipped but counted.
pub struct Lines<R> {
    input: R,
    name: String,
    line: usize,
    offset: u64,
    max_bytes: usize,
}

impl<R: BufRead> Lines<R> {
    pub fn new(input: R, name: &str) -> Self {
        Lines {
            input,
            name: name.to_string(),
            line: 0,
            offset: 0,
            max_bytes: MAX_RECORD_BYTES,
        }
    }

    /// Lines longer than `max_bytes` (line break excluded) are an error.
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// The next non-blank line, `None` at the end; an I/O error or a line over the limit
    /// is an error naming the input and line.
    pub fn next_line(&mut self) -> Result<Option<RawLine>> {
        loop {
            let mut buf = Vec::new();
            // The limit's byte, a "\r" and the "\n": whatever is longer is over it.
            let most = self.max_bytes as u64 + 2;
            let n = (&mut self.input)
                .take(most)
                .read_until(b'\n', &mut buf)
                .with_context(|| format!("reading {}", self.name))?;
            if n == 0 {
                return Ok(None);
            }
            let content = buf.len() - usize::from(buf.ends_with(b"\n"));
            let content = content - usize::from(buf[..content].ends_with(b"\r"));
            anyhow::ensure!(
                content <= self.max_bytes,
                "{}: line {}: longer than {} bytes, the most one record may hold (is this the \
                 right file?)",
                self.name,
                self.line + 1,
                self.max_bytes
            );
            self.line += 1;
            let start = self.offset;
            self.offset += n as u64;
            if buf.ends_with(b"\n") {
                buf.pop();
                if buf.ends_with(b"\r") {
                    buf.pop();
                }
            }
            if !buf.iter().all(u8::is_ascii_whitespace) {
                return Ok(Some(RawLine {
                    line: self.line,
                    start,
                    end: self.offset,
                    bytes: buf,
                }));
            }
        }
    }
}

impl Record {
    /// Parses one JSONL line; invalid UTF-8 (unless `lossy`) or JSON is kept as the error.
    pub fn parse(raw: &RawLine, name: &str, lossy: bool) -> Record {
        let value = raw.text(name, lossy).and_then(|text| {
            serde_json::from_str(&text)
                .map_err(|e| format!("{name}: line {}: invalid JSON: {e}", raw.line))
        });
        Record {
            file: name.to_string(),
            line: raw.line,
            value,
        }
    }
}

/// Calls `f` once per non-empty input line, in order, with the parsed record; a line that
/// is not valid UTF-8 or not JSON still reaches `f`, as an error, so outputs stay aligned
/// one-to-one with inputs.
pub fn for_each_json_line(
    input: impl BufRead,
    name: &str,
    mut f: impl FnMut(Record) -> Result<()>,
) -> Result<()> {
    let mut lines = Lines::new(input, name);
    while let Some(raw) = lines.next_line()? {
        f(Record::parse(&raw, name, false))?;
    }
    Ok(())
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
            let text = record.text().map_err(anyhow::Error::msg)?;
            documents.push(text.to_string());
            Ok(())
        })?;
    } else {
        let mut lines = Lines::new(reader, &name);
        while let Some(raw) = lines.next_line()? {
            documents.push(raw.text(&name, false).map_err(anyhow::Error::msg)?);
        }
    }
    Ok(documents)
}
