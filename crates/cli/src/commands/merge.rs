//! `saener merge`: the shards of `annotate --shard i/n` back into one file in input order.

use anyhow::{Context as _, Result};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;

use crate::commands::annotate::{parse_shard, shard_prefix, Shard};

#[derive(clap::Args)]
#[command(
    after_help = "Each shard line starts with {\"index\":N,\"shard\":\"i/n\", (written by \
`annotate --shard i/n`); merge strips that prefix, so the result is byte-identical to one \
unsharded run. It checks that the n shards are all there, that every index from 0 up \
appears exactly once, and that no shard stops while another goes on (an unfinished shard). \
Pass --records with the input's record count to also catch shards that all stop early.\n\n\
Example:\n  saener merge --output all.jsonl part-0.jsonl part-1.jsonl part-2.jsonl"
)]
pub struct Args {
    /// The shard outputs, in any order.
    #[arg(required = true)]
    shards: Vec<PathBuf>,
    /// Merged output (default: stdout).
    #[arg(long)]
    output: Option<PathBuf>,
    /// The number of input records: fail unless the merge has exactly this many.
    #[arg(long)]
    records: Option<usize>,
}

/// One shard file, read line by line.
struct ShardFile {
    path: PathBuf,
    lines: std::io::Lines<BufReader<std::fs::File>>,
    line: usize,
}

/// Parses the `{"index":N,"shard":"i/n",` prefix of a shard line: `(index, shard, rest)`.
fn split_line(line: &str) -> Option<(usize, Shard, &str)> {
    let rest = line.strip_prefix("{\"index\":")?;
    let (index, rest) = rest.split_once(",\"shard\":\"")?;
    let (shard, rest) = rest.split_once("\",")?;
    Some((index.parse().ok()?, parse_shard(shard).ok()?, rest))
}

pub fn run(args: Args) -> Result<()> {
    let mut files = Vec::new();
    let mut count = None;
    for path in &args.shards {
        let file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        files.push(ShardFile {
            path: path.clone(),
            lines: BufReader::new(file).lines(),
            line: 0,
        });
        // The shard count comes from the first line of a non-empty shard.
        let first = BufReader::new(std::fs::File::open(path)?).lines().next();
        if let Some(first) = first {
            let first = first.with_context(|| format!("reading {}", path.display()))?;
            let (_, shard, _) = split_line(&first).with_context(|| {
                format!(
                    "{}: line 1 does not start with {{\"index\":N,\"shard\":\"i/n\", (not \
                     written by annotate --shard)",
                    path.display()
                )
            })?;
            anyhow::ensure!(
                count.is_none_or(|n| n == shard.count),
                "{}: shard {shard}, but another shard counts {} shards",
                path.display(),
                count.unwrap_or(0)
            );
            count = Some(shard.count);
        }
    }
    let Some(n) = count else {
        anyhow::bail!("all shards are empty: nothing to merge");
    };
    anyhow::ensure!(
        files.len() == n,
        "the shards are {n} in all (i/{n}), but {} files were given",
        files.len()
    );
    // Order the files by the shard they hold; an empty file (fewer records than shards)
    // takes a place no other file claims.
    let mut by_shard: Vec<Option<ShardFile>> = (0..n).map(|_| None).collect();
    let mut empty = Vec::new();
    for file in files {
        let first = BufReader::new(std::fs::File::open(&file.path)?)
            .lines()
            .next();
        match first.transpose()?.as_deref().and_then(split_line) {
            Some((_, shard, _)) => {
                let slot = &mut by_shard[shard.index];
                anyhow::ensure!(
                    slot.is_none(),
                    "{} and {} both hold shard {shard}",
                    slot.as_ref().expect("occupied").path.display(),
                    file.path.display()
                );
                *slot = Some(file);
            }
            None => empty.push(file),
        }
    }
    let mut shards: Vec<ShardFile> = by_shard
        .into_iter()
        .map(|slot| slot.or_else(|| empty.pop()).expect("n files for n shards"))
        .collect();

    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut index = 0;
    loop {
        let i = index % n;
        let shard = &mut shards[i];
        let Some(line) = shard.lines.next() else {
            // The shard that should hold `index` has ended: every other must have too.
            let ended = shard.path.clone();
            for other in &mut shards {
                if let Some(line) = other.lines.next() {
                    let line = line?;
                    let found = split_line(&line).map_or("?".into(), |(k, ..)| k.to_string());
                    anyhow::bail!(
                        "{} ends before record {index}, but {} goes on with record {found}: \
                         shard {i}/{n} is unfinished (resume it with annotate --resume)",
                        ended.display(),
                        other.path.display()
                    );
                }
            }
            break;
        };
        shard.line += 1;
        let line = line.with_context(|| format!("reading {}", shard.path.display()))?;
        let expected = Shard { index: i, count: n };
        match split_line(&line) {
            Some((k, s, rest)) if k == index && s == expected => writeln!(out, "{{{rest}")?,
            _ => anyhow::bail!(
                "{}: line {}: expected record {index} of shard {expected} (a line starting \
                 with {}), found {:?}",
                shard.path.display(),
                shard.line,
                shard_prefix(index, expected),
                line.chars().take(60).collect::<String>()
            ),
        }
        index += 1;
    }
    if let Some(records) = args.records {
        anyhow::ensure!(
            records == index,
            "the shards hold {index} records, but --records says the input has {records}"
        );
    }
    out.flush()?;
    Ok(())
}
