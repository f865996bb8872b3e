use anyhow::{Context as _, Result};
use saener_ner::{set_contexts_json, top_contexts, Profile};
use std::path::PathBuf;

use crate::commands::stack::{
    encode, load_profile, profile_path, read_corpus, CacheArgs, Context, Stack, StackArgs,
};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Store each kept feature's top-activating contexts from the calibration data in the
    /// profile (what `GET /v1/features/{id}` and the web page show). Only the `contexts`
    /// field changes.
    #[command(
        after_help = "The data must be the profile's calibration data (its checksum is \
checked); its codes come from the cache that calibration filled, so this takes seconds when \
the cache is warm.\n\nExample:\n  \
saener profile contexts --profile conll2003 --data ../shared/data/conll2003/train.conll"
    )]
    Contexts(ContextsArgs),
}

#[derive(clap::Args)]
pub struct ContextsArgs {
    /// Profile: a path, or the name of a shipped one.
    #[arg(long)]
    profile: String,
    /// The profile's calibration data (CoNLL, or JSONL with character spans).
    #[arg(long)]
    data: PathBuf,
    /// Where to write the profile (default: over the input profile).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Contexts kept per feature (strongest first, one per sentence).
    #[arg(long, default_value_t = 3)]
    per_feature: usize,
    /// Words either side of the firing word.
    #[arg(long, default_value_t = 4)]
    width: usize,
    /// Give contexts only to this many features: those firing on the most calibration words
    /// inside entities, i.e. the likeliest to appear as evidence (a naive-Bayes profile keeps
    /// 10k or more, too many to give all of them contexts). Default: every feature.
    #[arg(long)]
    max_features: Option<usize>,
    /// Context the calibration read each sentence in.
    #[arg(long, value_enum, default_value_t = Context::Document)]
    context: Context,
    #[command(flatten)]
    stack: StackArgs,
    #[command(flatten)]
    cache: CacheArgs,
}

pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Contexts(args) => contexts(args),
    }
}

fn contexts(args: ContextsArgs) -> Result<()> {
    let path = profile_path(&args.profile);
    if !path.exists() {
        // Its error lists the shipped profiles.
        load_profile(&args.profile)?;
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let file = path.display().to_string();
    let profile = Profile::parse(&text, &file)?;
    let out = args.out.unwrap_or(path);
    let mut stack = Stack::load(&args.stack)?;
    stack.check(&profile)?;
    let corpus = read_corpus(&args.data, args.context)?;
    anyhow::ensure!(
        corpus.checksum() == profile.origin.data_checksum,
        "{} (read with --context {:?}) is not this profile's calibration data: checksum {}, the profile records {}",
        args.data.display(),
        args.context,
        corpus.checksum(),
        profile.origin.data_checksum
    );
    let encoded = encode(&stack, corpus, &args.cache)?;
    let mut features = profile.features();
    if let Some(n) = args.max_features {
        features.sort_by_cached_key(|&f| std::cmp::Reverse(entity_hits(&profile, f)));
        features.truncate(n);
        features.sort_unstable();
    }
    let contexts = top_contexts(
        &encoded,
        &features,
        profile.calibration.tau,
        args.per_feature,
        args.width,
    );
    let json = set_contexts_json(&text, &file, &contexts)?;
    std::fs::write(&out, json).with_context(|| format!("writing {}", out.display()))?;
    eprintln!(
        "saener: {} of {} features have contexts; wrote {}",
        contexts.len(),
        profile.features().len(),
        out.display()
    );
    Ok(())
}

/// How many calibration words inside an entity (of any of the profile's types) `feature`
/// fired on.
fn entity_hits(profile: &Profile, feature: u32) -> u32 {
    match &profile.naive_bayes {
        Some(nb) => nb
            .type_rows(feature, &profile.labels)
            .iter()
            .map(|r| r.hits)
            .sum(),
        None => profile
            .rows
            .iter()
            .filter(|r| r.feature == feature)
            .map(|r| r.hits)
            .sum(),
    }
}
