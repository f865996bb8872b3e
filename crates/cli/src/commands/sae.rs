use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Print what an SAE file or folder holds (format, sizes, activation, hook layer, id).
    Info {
        /// An SAE folder or file in any supported format (Gemma Scope, Gemma Scope 2, SAELens, sparsify).
        path: PathBuf,
    },
}

pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Info { path } => {
            let sae = saener_sae::load_any(&path)?;
            println!("{sae}");
            Ok(())
        }
    }
}
