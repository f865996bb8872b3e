use anyhow::{Context as _, Result};
use saener_ner::{Annotator, ConllOptions, Corpus, Document, EntityRecord, Span};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;

use crate::commands::io::{for_each_json_line, Record};
use crate::commands::stack::{load_profile, DecodeOverrides, Stack, StackArgs};

#[derive(clap::Args)]
#[command(
    after_help = "Input: JSONL {\"id\",\"text\"} records, plain text (one document per \
non-blank line), or a CoNLL column file (its words are kept, its tags ignored). Output: JSONL, \
one line per input record in input order: {\"id\",\"entities\":[{\"start\",\"end\",\"text\",\
\"label\",\"score\",\"evidence\":[{\"feature\",\"activation\",\"precision\"}]}]}, offsets in \
Unicode code points into the record's text; a record that fails gets {\"id\",\"error\"} \
instead. --format conll writes one word per line with its predicted IOB2 tag (a failing \
record becomes a line '# error <id>: <message>').\n\nExamples:\n  \
echo '{\"id\":\"a\",\"text\":\"Angela Merkel visited Paris.\"}' | saener annotate --profile conll2003\n  \
saener annotate --profile ncbi_disease --input abstracts.txt --output entities.jsonl"
)]
pub struct Args {
    /// Profile: a path, or the name of a shipped one (conll2003, ncbi_disease, bc5cdr).
    #[arg(long)]
    profile: String,
    /// Input file (default: stdin).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Output file (default: stdout).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Input format; auto reads .conll/.txt/.jsonl by extension, and stdin as JSONL when its
    /// first non-blank character is '{', else as text.
    #[arg(long, value_enum, default_value_t = InputFormat::Auto)]
    input_format: InputFormat,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Jsonl)]
    format: OutputFormat,
    /// Keep the records already in --output (JSONL) and annotate only the rest.
    #[arg(long, requires = "output")]
    resume: bool,
    /// Records per model call (the model batches them by length).
    #[arg(long, default_value_t = 64)]
    chunk: usize,
    #[command(flatten)]
    decoding: DecodeOverrides,
    #[command(flatten)]
    stack: StackArgs,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum InputFormat {
    Auto,
    Jsonl,
    Text,
    Conll,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum OutputFormat {
    Jsonl,
    Conll,
    /// For people: each record's text, then one line per entity with its evidence.
    Pretty,
}

/// One input record: its id and document, or why it could not be read.
struct Item {
    id: String,
    document: std::result::Result<Document, String>,
}

pub fn run(args: Args) -> Result<()> {
    let profile = load_profile(&args.profile)?;
    let params = args.decoding.apply(profile.decoding);

    let (name, mut input): (String, Box<dyn BufRead>) = match &args.input {
        Some(path) => (
            path.display().to_string(),
            Box::new(BufReader::new(
                std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?,
            )),
        ),
        None => ("stdin".into(), Box::new(BufReader::new(std::io::stdin()))),
    };
    let format = match args.input_format {
        InputFormat::Auto => detect(&args.input, &mut input)?,
        other => other,
    };
    let items = read_items(format, &name, input)?;

    let skip = match (&args.output, args.resume) {
        (Some(path), true) if path.exists() => {
            anyhow::ensure!(
                args.format == OutputFormat::Jsonl,
                "--resume needs --format jsonl"
            );
            // Keep the leading complete records; a torn last line is dropped and redone.
            let kept: Vec<String> = BufReader::new(std::fs::File::open(path)?)
                .lines()
                .map_while(std::result::Result::ok)
                .take_while(|l| serde_json::from_str::<Value>(l).is_ok())
                .collect();
            let done = kept.len();
            std::fs::write(
                path,
                kept.iter().map(|l| format!("{l}\n")).collect::<String>(),
            )?;
            done.min(items.len())
        }
        _ => 0,
    };
    let mut output: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(skip > 0)
                .write(true)
                .truncate(skip == 0)
                .open(path)
                .with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };

    let stack = Stack::load(&args.stack)?;
    stack.check(&profile)?;
    let annotator = Annotator::new(stack.encoder().extractor, &stack.sae, &profile, params)?;
    if skip > 0 {
        eprintln!("saener: resuming after {skip} records already in the output");
    }
    for chunk in items[skip..].chunks(args.chunk.max(1)) {
        for (item, result) in chunk.iter().zip(annotate_chunk(&annotator, chunk)) {
            let line = match (args.format, result) {
                (OutputFormat::Jsonl, Ok(spans)) => jsonl_record(&item.id, item.text(), &spans),
                (OutputFormat::Jsonl, Err(e)) => json!({"id": item.id, "error": e}).to_string(),
                (OutputFormat::Conll, Ok(spans)) => {
                    let document = item.document.as_ref().expect("annotated");
                    let predicted = saener_ner::predicted_document(document, &spans);
                    Corpus {
                        documents: vec![predicted],
                        annotated: true,
                        separator: Default::default(),
                    }
                    .to_conll()
                }
                (OutputFormat::Conll, Err(e)) => format!("# error {}: {e}\n", item.id),
                (OutputFormat::Pretty, Ok(spans)) => pretty_record(&item.id, item.text(), &spans),
                (OutputFormat::Pretty, Err(e)) => format!("{}: error: {e}", item.id),
            };
            writeln!(output, "{}", line.trim_end_matches('\n'))?;
            if args.format != OutputFormat::Jsonl {
                writeln!(output)?;
            }
        }
        output.flush()?;
    }
    Ok(())
}

impl Item {
    fn text(&self) -> &str {
        self.document.as_ref().map_or("", |d| d.text.as_str())
    }
}

/// Spans per item of `chunk`: annotated together, and one by one if that fails, so one bad
/// record costs only its own result.
fn annotate_chunk(
    annotator: &Annotator<'_>,
    chunk: &[Item],
) -> Vec<std::result::Result<Vec<Span>, String>> {
    let documents: Vec<Document> = chunk
        .iter()
        .filter_map(|i| i.document.as_ref().ok().cloned())
        .collect();
    let mut together = annotator.annotate(&documents).ok().map(Vec::into_iter);
    chunk
        .iter()
        .map(|item| {
            let document = item.document.as_ref().map_err(Clone::clone)?;
            match together.as_mut() {
                Some(spans) => Ok(spans.next().expect("one result per document")),
                None => annotator
                    .annotate(std::slice::from_ref(document))
                    .map(|mut v| v.remove(0))
                    .map_err(|e| e.to_string()),
            }
        })
        .collect()
}

fn jsonl_record(id: &str, text: &str, spans: &[Span]) -> String {
    json!({"id": id, "entities": EntityRecord::all(text, spans)}).to_string()
}

fn pretty_record(id: &str, text: &str, spans: &[Span]) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = format!("{id}: {text}\n");
    if spans.is_empty() {
        out += "  (no entities)\n";
    }
    for s in spans {
        let evidence: Vec<String> = s
            .evidence
            .iter()
            .take(3)
            .map(|e| format!("#{} (p {:.2})", e.feature, e.precision))
            .collect();
        out += &format!(
            "  {:<8} {:>4}..{:<4} {:<32} score {:.2}  features {}\n",
            s.label,
            s.start,
            s.end,
            format!("{:?}", chars[s.start..s.end].iter().collect::<String>()),
            s.score,
            evidence.join(", ")
        );
    }
    out
}

/// The input format from the file extension, or for stdin from its first non-blank byte.
fn detect(path: &Option<PathBuf>, input: &mut Box<dyn BufRead>) -> Result<InputFormat> {
    if let Some(ext) = path.as_ref().and_then(|p| p.extension()) {
        match ext.to_str() {
            Some("jsonl" | "json") => return Ok(InputFormat::Jsonl),
            Some("conll" | "iob" | "bio" | "tsv") => return Ok(InputFormat::Conll),
            Some("txt") => return Ok(InputFormat::Text),
            _ => {}
        }
    }
    loop {
        let buf = input.fill_buf()?;
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => {
                return Ok(if buf[i] == b'{' {
                    InputFormat::Jsonl
                } else {
                    InputFormat::Text
                })
            }
            None if buf.is_empty() => return Ok(InputFormat::Text),
            None => {
                let n = buf.len();
                input.consume(n);
            }
        }
    }
}

fn read_items(format: InputFormat, name: &str, mut input: Box<dyn BufRead>) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    match format {
        InputFormat::Jsonl => for_each_json_line(input, name, |record: Record| {
            let id = record.id();
            let document = record
                .text()
                .map(|text| Document::from_text(id.clone(), text.to_string()));
            items.push(Item { id, document });
            Ok(())
        })?,
        InputFormat::Text => {
            for (i, line) in input.lines().enumerate() {
                let id = (i + 1).to_string();
                let document = line
                    .map(|text| Document::from_text(id.clone(), text))
                    .map_err(|e| format!("{name}: line {}: {e}", i + 1));
                if document.as_ref().is_ok_and(|d| d.text.trim().is_empty()) {
                    continue;
                }
                items.push(Item { id, document });
            }
        }
        InputFormat::Conll => {
            let mut bytes = Vec::new();
            input.read_to_end(&mut bytes)?;
            let loaded = saener_ner::parse_conll(&bytes, name, &ConllOptions::default())?;
            for document in loaded.corpus.documents {
                items.push(Item {
                    id: document.id.clone(),
                    document: Ok(document),
                });
            }
        }
        InputFormat::Auto => unreachable!("resolved by detect"),
    }
    Ok(items)
}
