use anyhow::{Context as _, Result};
use saener_ner::{
    Annotator, CharSlicer, ConllOptions, Corpus, Document, EntityRecord, NamedProfile, Pipeline,
    Span, PIECE_BYTES,
};
use serde_json::{json, Value};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::commands::io::{Lines, Record, MAX_RECORD_BYTES};
use crate::commands::stack::{load_profile, DecodeOverrides, StackArgs};

#[derive(clap::Args)]
#[command(
    after_help = "Input: JSONL {\"id\",\"text\"} records, plain text (one document per \
non-blank line), or a CoNLL column file (its words are kept, its tags ignored). Output: JSONL, \
one line per input record in input order: {\"id\",\"entities\":[{\"start\",\"end\",\"text\",\
\"label\",\"score\",\"evidence\":[{\"feature\",\"activation\",\"precision\"}]}]}, offsets in \
Unicode code points into the record's text; a record that fails gets {\"id\",\"error\"} \
instead. --format conll writes one word per line with its predicted IOB2 tag (a failing \
record becomes a line '# error <id>: <message>').\n\n\
Large jobs: JSONL and text input are streamed, --chunk records at a time; after each chunk the \
output is flushed and synced to disk, so --resume after a crash (even kill -9) finishes the \
file exactly as an uninterrupted run would. --shard i/n annotates only records i, i+n, \
i+2n, … (0-based, blank lines not counted), each line prefixed with {\"index\",\"shard\"}; \
`saener merge` puts the shards back in input order. A text longer than 32 KiB is read by \
the model in pieces, so memory does not grow with its length.\n\nExamples:\n  \
echo '{\"id\":\"a\",\"text\":\"Angela Merkel visited Paris.\"}' | saener annotate --profile conll2003\n  \
saener annotate --profile ncbi_disease --input abstracts.txt --output entities.jsonl\n  \
saener annotate --profile conll2003 --input big.jsonl --output part-3.jsonl --shard 3/8 --resume\n  \
saener merge --output all.jsonl part-*.jsonl"
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
    /// Keep the records already in --output (JSONL) and annotate only the rest; the kept
    /// records' ids must match the input's.
    #[arg(long, requires = "output")]
    resume: bool,
    /// Annotate only shard i of n (0-based): the records whose index modulo n is i.
    #[arg(long, value_parser = parse_shard, value_name = "I/N")]
    shard: Option<Shard>,
    /// Replace invalid UTF-8 in the input with U+FFFD instead of failing that record.
    #[arg(long)]
    lossy: bool,
    /// Records per model call (the model batches them by length) and between syncs of the
    /// output to disk.
    #[arg(long, default_value_t = 64)]
    chunk: usize,
    /// The most bytes one input line (JSONL or text record) may hold; a longer line stops
    /// the run with an error naming it, after writing every record before it (--resume
    /// goes on from there). A CoNLL input may hold 16 times this in all.
    #[arg(long, default_value_t = MAX_RECORD_BYTES)]
    max_record_bytes: usize,
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

/// `--shard i/n`: records whose 0-based index is `i` modulo `n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

pub fn parse_shard(s: &str) -> std::result::Result<Shard, String> {
    let parsed = s
        .split_once('/')
        .and_then(|(i, n)| Some((i.parse().ok()?, n.parse().ok()?)));
    match parsed {
        Some((index, count)) if index < count => Ok(Shard { index, count }),
        _ => Err(format!(
            "expected i/n with 0 <= i < n (e.g. 0/4 … 3/4), found {s:?}"
        )),
    }
}

/// The prefix that marks a line of a sharded output: `{"index":N,"shard":"i/n",`; the rest
/// of the line is the record exactly as an unsharded run writes it, minus its `{`.
pub fn shard_prefix(index: usize, shard: Shard) -> String {
    format!("{{\"index\":{index},\"shard\":\"{shard}\",")
}

/// What the model reads for one record.
enum Source {
    /// JSONL or plain text: words are found when its chunk is annotated.
    Text(String),
    /// A CoNLL document, its words given.
    Document(Document),
}

/// One input record: its 0-based index among records, id, source or why it could not be
/// read, and the input byte offset just after it (for progress).
struct Item {
    index: usize,
    id: String,
    source: std::result::Result<Source, String>,
    end: u64,
}

impl Item {
    fn text(&self) -> &str {
        match &self.source {
            Ok(Source::Text(text)) => text,
            Ok(Source::Document(d)) => &d.text,
            Err(_) => "",
        }
    }
}

pub fn run(args: Args) -> Result<()> {
    let profile = load_profile(&args.profile)?;
    let params = args.decoding.apply(&profile)?;
    anyhow::ensure!(
        args.format == OutputFormat::Jsonl || !(args.resume || args.shard.is_some()),
        "--resume and --shard need --format jsonl"
    );

    let (name, mut input, total): (String, Box<dyn BufRead>, Option<u64>) = match &args.input {
        Some(path) => {
            let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
            let len = file.metadata().ok().map(|m| m.len());
            (
                path.display().to_string(),
                Box::new(BufReader::new(file)),
                len,
            )
        }
        None => (
            "stdin".into(),
            Box::new(BufReader::new(std::io::stdin())),
            None,
        ),
    };
    let format = match args.input_format {
        InputFormat::Auto => detect(&args.input, &mut input)?,
        other => other,
    };
    let mut reader = Reader::new(
        format,
        &name,
        input,
        args.lossy,
        args.shard,
        args.max_record_bytes,
    )?;

    // Resuming: verify and skip the records already written, drop a torn last line.
    let mut resumed_at = 0;
    let mut kept = 0;
    if let (Some(path), true) = (&args.output, args.resume) {
        if path.exists() {
            let (len, count) = complete_prefix(path)?;
            resumed_at = skip_kept(path, count, &mut reader, args.shard)?;
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?;
            file.set_len(len)
                .and_then(|()| file.sync_all())
                .with_context(|| {
                    format!("truncating {} to its complete records", path.display())
                })?;
            kept = count;
        }
    }
    let mut sink = Sink::open(args.output.as_deref(), kept > 0)?;

    let profile = NamedProfile {
        name: args.profile.clone(),
        profile,
        params,
    };
    let pipeline = Pipeline::load(&(&args.stack).into(), vec![profile])?;
    let annotator = pipeline.annotator(0)?;
    if kept > 0 {
        eprintln!("saener: resuming after {kept} records already in the output");
    }
    let bar = progress_bar(total);
    bar.set_position(resumed_at);
    bar.reset_eta();
    let started = Instant::now();
    let mut done = 0usize;
    // Long texts go in pieces (bounded memory) except for CoNLL output, which needs the
    // whole document's words.
    let pieces = args.format != OutputFormat::Conll;
    loop {
        let mut chunk = Vec::new();
        // An input that cannot be read on stops the run, but only after the records read
        // before it are written.
        let mut unreadable = None;
        while chunk.len() < args.chunk.max(1) {
            match reader.next_item() {
                Ok(Some(item)) => chunk.push(item),
                Ok(None) => break,
                Err(e) => {
                    unreadable = Some(e);
                    break;
                }
            }
        }
        if let Some(last) = chunk.last() {
            let end = last.end;
            for (item, result) in chunk.iter().zip(annotate_chunk(&annotator, &chunk, pieces)) {
                let line = render(args.format, item, result);
                match args.shard {
                    Some(shard) => {
                        let rest = line.strip_prefix('{').expect("a JSON object");
                        sink.write_line(&format!("{}{rest}", shard_prefix(item.index, shard)))?
                    }
                    None => sink.write_line(line.trim_end_matches('\n'))?,
                }
                if args.format != OutputFormat::Jsonl {
                    sink.write_line("")?;
                }
            }
            sink.commit()?;
            done += chunk.len();
            bar.set_position(end);
            bar.set_message(format!(
                "{} records, {:.1} records/s",
                kept + done,
                done as f64 / started.elapsed().as_secs_f64().max(1e-9)
            ));
        }
        if let Some(e) = unreadable {
            bar.finish_and_clear();
            return Err(e.context(format!(
                "stopped after {} records, all written",
                kept + done
            )));
        }
        if chunk.is_empty() {
            break;
        }
    }
    bar.finish_and_clear();
    Ok(())
}

/// Where the records go: a file (synced to disk after every chunk) or stdout. Its errors
/// (a full disk, an I/O error) name it.
struct Sink {
    out: Box<dyn Write>,
    file: Option<File>,
    name: String,
}

impl Sink {
    fn open(path: Option<&Path>, append: bool) -> Result<Sink> {
        let Some(path) = path else {
            return Ok(Sink {
                out: Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
                file: None,
                name: "stdout".into(),
            });
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(append)
            .write(true)
            .truncate(!append)
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        Ok(Sink {
            out: Box::new(std::io::BufWriter::new(file.try_clone()?)),
            file: Some(file),
            name: path.display().to_string(),
        })
    }

    fn write_line(&mut self, line: &str) -> Result<()> {
        writeln!(self.out, "{line}").with_context(|| format!("writing {}", self.name))
    }

    /// Makes everything written so far durable: a crash after this loses none of it.
    fn commit(&mut self) -> Result<()> {
        self.out
            .flush()
            .with_context(|| format!("writing {}", self.name))?;
        if let Some(file) = &self.file {
            file.sync_data()
                .with_context(|| format!("syncing {} to disk", self.name))?;
        }
        Ok(())
    }
}

/// Bytes and number of the complete records at the head of an interrupted output. Only the
/// last line may be torn (no line break, or not JSON), as a kill leaves it; a bad line
/// before others is an error, since cutting there would throw records away.
fn complete_prefix(path: &Path) -> Result<(u64, usize)> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut input = BufReader::new(file);
    let (mut len, mut count) = (0u64, 0usize);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = input
            .read_until(b'\n', &mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            return Ok((len, count));
        }
        let complete = buf.ends_with(b"\n")
            && serde_json::from_slice::<serde_json::Map<String, Value>>(&buf).is_ok();
        if !complete {
            let more = input.fill_buf()?.iter().any(|b| !b.is_ascii_whitespace());
            anyhow::ensure!(
                !more,
                "{}: line {} is not a complete JSON record, and more lines follow it: this is \
                 not the torn end of an interrupted run, so --resume will not truncate it",
                path.display(),
                count + 1
            );
            return Ok((len, count));
        }
        len += n as u64;
        count += 1;
    }
}

/// Reads the first `count` records of `reader` and checks each against the output's line
/// (same id, and in a shard the same index), so that resuming with another input or shard
/// is refused instead of silently mixing records. Returns the input offset reached.
fn skip_kept(path: &Path, count: usize, reader: &mut Reader, shard: Option<Shard>) -> Result<u64> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut output = BufReader::new(file).lines();
    let mut end = 0;
    for k in 1..=count {
        let line = output
            .next()
            .context("output shorter than checked")?
            .with_context(|| format!("reading {}", path.display()))?;
        let record: Value =
            serde_json::from_str(&line).with_context(|| format!("{}: line {k}", path.display()))?;
        let Some(item) = reader.next_item()? else {
            anyhow::bail!(
                "{}: has {count} records but the input has only {} (in this shard): the \
                 output belongs to another input",
                path.display(),
                k - 1
            );
        };
        let id_matches = record.get("id") == Some(&Value::String(item.id.clone()));
        let index_matches = shard
            .is_none_or(|_| record.get("index").and_then(Value::as_u64) == Some(item.index as u64));
        anyhow::ensure!(
            id_matches && index_matches,
            "{}: line {k} is record {} (id {}), but input record {} has id {:?}: the output \
             belongs to another input or shard; refusing to resume",
            path.display(),
            record.get("index").map_or("?".into(), Value::to_string),
            record.get("id").map_or("?".into(), Value::to_string),
            item.index,
            item.id
        );
        end = item.end;
    }
    Ok(end)
}

fn progress_bar(total: Option<u64>) -> indicatif::ProgressBar {
    let (bar, template) = match total {
        Some(total) => (
            indicatif::ProgressBar::new(total),
            "{elapsed_precise} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, ETA {eta}) {msg}",
        ),
        None => (
            indicatif::ProgressBar::no_length(),
            "{elapsed_precise} {bytes} read ({bytes_per_sec}) {msg}",
        ),
    };
    bar.set_style(indicatif::ProgressStyle::with_template(template).expect("valid template"));
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    bar
}

/// The records of the input, one at a time: JSONL and text are streamed line by line; a
/// CoNLL file is parsed whole (documents need their sentence structure), then handed out.
struct Reader {
    format: InputFormat,
    name: String,
    lossy: bool,
    shard: Option<Shard>,
    lines: Lines<Box<dyn BufRead>>,
    conll: std::vec::IntoIter<(Document, u64)>,
    index: usize,
}

impl Reader {
    fn new(
        format: InputFormat,
        name: &str,
        mut input: Box<dyn BufRead>,
        lossy: bool,
        shard: Option<Shard>,
        max_record_bytes: usize,
    ) -> Result<Reader> {
        let mut conll = Vec::new();
        if format == InputFormat::Conll {
            // Read whole, so bounded as a whole: 16 records' worth.
            let most = max_record_bytes.saturating_mul(16);
            let mut bytes = Vec::new();
            (&mut input)
                .take(most as u64 + 1)
                .read_to_end(&mut bytes)
                .with_context(|| format!("reading {name}"))?;
            anyhow::ensure!(
                bytes.len() <= most,
                "{name}: a CoNLL input of more than {most} bytes (16 × --max-record-bytes); \
                 split it into files or raise --max-record-bytes"
            );
            let len = bytes.len() as u64;
            if lossy {
                bytes = String::from_utf8_lossy(&bytes).into_owned().into_bytes();
            }
            let loaded = saener_ner::parse_conll(&bytes, name, &ConllOptions::default())?;
            let n = loaded.corpus.documents.len() as u64;
            conll = (loaded.corpus.documents.into_iter().zip(1..))
                .map(|(document, k)| (document, len * k / n.max(1)))
                .collect();
        }
        Ok(Reader {
            format,
            name: name.to_string(),
            lossy,
            shard,
            lines: Lines::new(input, name).with_max_bytes(max_record_bytes),
            conll: conll.into_iter(),
            index: 0,
        })
    }

    /// The next record of this shard, `None` at the end of the input.
    fn next_item(&mut self) -> Result<Option<Item>> {
        loop {
            let index = self.index;
            let item = match self.format {
                InputFormat::Conll => match self.conll.next() {
                    Some((document, end)) => Item {
                        index,
                        id: document.id.clone(),
                        source: Ok(Source::Document(document)),
                        end,
                    },
                    None => return Ok(None),
                },
                InputFormat::Jsonl => {
                    let Some(raw) = self.lines.next_line()? else {
                        return Ok(None);
                    };
                    let record = Record::parse(&raw, &self.name, self.lossy);
                    Item {
                        index,
                        id: record.id(),
                        source: record.text().map(|t| Source::Text(t.to_string())),
                        end: raw.end,
                    }
                }
                InputFormat::Text => {
                    let Some(raw) = self.lines.next_line()? else {
                        return Ok(None);
                    };
                    Item {
                        index,
                        id: raw.line.to_string(),
                        source: raw.text(&self.name, self.lossy).map(Source::Text),
                        end: raw.end,
                    }
                }
                InputFormat::Auto => unreachable!("resolved by detect"),
            };
            self.index += 1;
            if self.shard.is_none_or(|s| index % s.count == s.index) {
                return Ok(Some(item));
            }
        }
    }
}

/// Spans per item of `chunk`, or why it failed (see [`Annotator::annotate_each`]). With
/// `pieces`, a text (not a CoNLL document) longer than [`PIECE_BYTES`] is annotated alone,
/// piece by piece.
fn annotate_chunk(
    annotator: &Annotator<'_>,
    chunk: &[Item],
    pieces: bool,
) -> Vec<std::result::Result<Vec<Span>, String>> {
    let documents: Vec<Document> = chunk
        .iter()
        .filter_map(|item| match &item.source {
            Ok(Source::Text(text)) => Some(Document::from_text(item.id.clone(), text.clone())),
            Ok(Source::Document(document)) => Some(document.clone()),
            Err(_) => None,
        })
        .collect();
    let texts = chunk
        .iter()
        .all(|item| !matches!(item.source, Ok(Source::Document(_))));
    let in_pieces = |d: &Document| pieces && texts && d.text.len() > PIECE_BYTES;
    let mut results = annotator.annotate_each(&documents, in_pieces).into_iter();
    chunk
        .iter()
        .map(|item| {
            item.source.as_ref().map_err(Clone::clone)?;
            let spans = results.next().expect("one result per readable item");
            spans.map_err(|e| e.to_string())
        })
        .collect()
}

/// One record in the output format (JSONL: one line, no line break).
fn render(
    format: OutputFormat,
    item: &Item,
    result: std::result::Result<Vec<Span>, String>,
) -> String {
    match (format, result) {
        (OutputFormat::Jsonl, Ok(spans)) => jsonl_record(&item.id, item.text(), &spans),
        (OutputFormat::Jsonl, Err(e)) => json!({"id": item.id, "error": e}).to_string(),
        (OutputFormat::Conll, Ok(spans)) => {
            let document = match &item.source {
                Ok(Source::Document(d)) => d.clone(),
                _ => Document::from_text(item.id.clone(), item.text().to_string()),
            };
            let predicted = saener_ner::predicted_document(&document, &spans);
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
    }
}

fn jsonl_record(id: &str, text: &str, spans: &[Span]) -> String {
    json!({"id": id, "entities": EntityRecord::all(text, spans)}).to_string()
}

fn pretty_record(id: &str, text: &str, spans: &[Span]) -> String {
    let mut chars = CharSlicer::new(text);
    let mut out = format!("{id}: {text}\n");
    if spans.is_empty() {
        out += "  (no entities)\n";
    }
    for s in spans {
        let evidence: Vec<String> = s
            .evidence
            .iter()
            .take(3)
            .map(|e| match e.log_odds {
                // Naive-Bayes evidence is ranked by its log-odds, not its precision.
                Some(log_odds) => format!("#{} (+{log_odds:.1}, p {:.2})", e.feature, e.precision),
                None => format!("#{} (p {:.2})", e.feature, e.precision),
            })
            .collect();
        out += &format!(
            "  {:<8} {:>4}..{:<4} {:<32} score {:.2}  features {}\n",
            s.label,
            s.start,
            s.end,
            format!("{:?}", chars.slice(s.start, s.end)),
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
