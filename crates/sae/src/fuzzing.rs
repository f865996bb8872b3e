//! Entry points shared by the fuzz targets in `fuzz/` and the tests that replay their
//! regression corpus. Each takes arbitrary bytes, must not panic, and asserts what a loaded
//! SAE promises (a failed assertion is a bug found).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::format::{gemmascope, gemmascope2, saelens, sparsify};
use crate::{Format, Sae};

/// The SAE reader of `format` on arbitrary bytes: the first two bytes (little-endian) are
/// the length of the config file, then the config, then the weights file (Gemma Scope has
/// no config; its `params.npz` is all of `data`; an empty config means no config file). If the SAE loads, its weights are finite
/// and it encodes and decodes a row without panicking. Returns the load's result.
pub fn load(format: Format, data: &[u8]) -> crate::Result<()> {
    let (config, weights) = match data {
        [a, b, rest @ ..] if format != Format::GemmaScope => {
            rest.split_at((u16::from_le_bytes([*a, *b]) as usize).min(rest.len()))
        }
        _ => (&[][..], data),
    };
    let files: &[(&str, &[u8])] = match format {
        Format::GemmaScope => &[(gemmascope::WEIGHTS_FILE, weights)],
        Format::GemmaScope2 => &[
            (gemmascope2::CONFIG_FILE, config),
            (gemmascope2::WEIGHTS_FILE, weights),
        ],
        Format::SaeLens => &[
            (saelens::CONFIG_FILE, config),
            (saelens::WEIGHTS_FILE, weights),
        ],
        Format::Sparsify => &[
            (sparsify::CONFIG_FILE, config),
            (sparsify::WEIGHTS_FILE, weights),
        ],
    };
    let dir = TempDir::new();
    for (name, bytes) in files
        .iter()
        .filter(|(name, bytes)| !bytes.is_empty() || !name.ends_with(".json"))
    {
        std::fs::write(dir.0.join(name), bytes).expect("writing a fuzz input");
    }
    let sae = format.load(&dir.0)?;
    check(&sae);
    Ok(())
}

fn check(sae: &Sae) {
    assert!(sae.w_enc().iter().chain(sae.w_dec()).all(|v| v.is_finite()));
    let d_in = sae.config().d_in;
    // Bound the work on huge (but valid) shapes.
    if d_in == 0 || sae.w_enc().len() > 1 << 20 {
        return;
    }
    let row = vec![1.0f32; d_in];
    let codes = sae
        .encode_sparse(&row)
        .expect("a row of d_in values encodes");
    let _ = sae.decode_sparse(&codes);
}

/// A folder of its own under the temp dir, removed on drop (no `tempfile` dependency).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("saener-fuzz-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("creating a temp folder");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
