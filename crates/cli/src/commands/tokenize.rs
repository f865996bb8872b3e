use crate::commands::io::{for_each_json_line, model_path};
use anyhow::Result;
use saener_lm::Tokenizer;
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// GGUF model whose tokenizer is used (default: Gemma 3 270M in $SAENER_HOME, fetched if missing).
    #[arg(long)]
    model: Option<PathBuf>,
}

/// JSONL `{"text"}` on stdin → JSONL `{"ids":[...],"offsets":[[start,end],...]}` on stdout.
/// Offsets are half-open spans in Unicode code points; BOS is first, with span [0, 0].
pub fn run(args: Args) -> Result<()> {
    let tokenizer = Tokenizer::from_gguf(&model_path(args.model)?)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for_each_json_line(std::io::stdin().lock(), "<stdin>", |record| {
        let line = match record.text() {
            Ok(text) => serde_json::to_string(&tokenizer.encode(text))?,
            Err(error) => serde_json::json!({ "error": error }).to_string(),
        };
        writeln!(out, "{line}")?;
        Ok(())
    })?;
    out.flush()?;
    Ok(())
}
