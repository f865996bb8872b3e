use anyhow::Result;
use saener_ner::Decoder;
use std::path::PathBuf;

use crate::commands::stack::{
    encode, load_profile, read_words, write_corpus, CacheArgs, Context, DecodeOverrides, Stack,
    StackArgs,
};

#[derive(clap::Args)]
#[command(after_help = "Example:\n  saener silver --profile conll2003 \
--data ../shared/data/conll2003/train.conll --out silver.conll\n\n\
Only the text of --data is read: any gold entities in it are replaced by SAE-NER's. \
`saener diff --gold ../shared/data/conll2003/train.conll --pred silver.conll` measures the \
silver data's noise.")]
pub struct Args {
    /// Profile: a path, or the name of a shipped one (conll2003, ncbi_disease, bc5cdr).
    #[arg(long)]
    profile: String,
    /// Data to label: CoNLL columns, or JSONL (.jsonl, entities optional).
    #[arg(long)]
    data: PathBuf,
    /// Write here (the format of --data) instead of to stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Context each sentence is read in.
    #[arg(long, value_enum, default_value_t = Context::Document)]
    context: Context,
    #[command(flatten)]
    decoding: DecodeOverrides,
    #[command(flatten)]
    stack: StackArgs,
    #[command(flatten)]
    cache: CacheArgs,
}

pub fn run(args: Args) -> Result<()> {
    let profile = load_profile(&args.profile)?;
    let mut stack = Stack::load(&args.stack)?;
    stack.check(&profile)?;
    let corpus = read_words(&args.data, args.context)?;
    if corpus.checksum() == profile.origin.data_checksum {
        eprintln!(
            "saener: note: {} is the data this profile was calibrated on: its silver labels are in-sample",
            args.data.display()
        );
    }
    let encoded = encode(&stack, corpus, &args.cache)?;
    let decoder = Decoder::new(&profile, args.decoding.apply(&profile)?)?;
    let silver = decoder.predict_corpus(&encoded)?;
    write_corpus(&silver, &args.data, args.out.as_deref())
}
