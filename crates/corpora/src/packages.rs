//! Fetching packages through their registries' own clients, once, into a cache folder.
//!
//! We shell out to `npm pack` and `pip download` rather than speak HTTP ourselves: the
//! clients already honour the user's registry, proxy and certificate configuration.

use crate::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The `.tgz` of an npm package, fetched with `npm pack` into `cache` unless present.
pub fn npm(cache: &Path, name: &str, version: &str) -> Result<PathBuf> {
    // `npm pack` names a scoped package `@scope/name` as `scope-name-<version>.tgz`.
    let stem = name.trim_start_matches('@').replace('/', "-");
    let file = cache.join(format!("{stem}-{version}.tgz"));
    if file.exists() {
        return Ok(file);
    }
    std::fs::create_dir_all(cache).map_err(|e| Error::io(cache, e))?;
    run(
        Command::new("npm")
            .args(["pack", "--silent", "--pack-destination"])
            .arg(cache)
            .arg(format!("{name}@{version}")),
        name,
    )?;
    found(file, name)
}

/// The wheel of a PyPI package, fetched with `pip download --no-deps` unless present.
pub fn pip(cache: &Path, name: &str, version: &str) -> Result<PathBuf> {
    let file = cache.join(format!(
        "{}-{version}-py3-none-any.whl",
        name.replace('-', "_")
    ));
    if file.exists() {
        return Ok(file);
    }
    std::fs::create_dir_all(cache).map_err(|e| Error::io(cache, e))?;
    run(
        Command::new("python3")
            .args(["-m", "pip", "download", "--no-deps", "--quiet", "-d"])
            .arg(cache)
            .arg(format!("{name}=={version}")),
        name,
    )?;
    found(file, name)
}

fn run(command: &mut Command, package: &str) -> Result<()> {
    let output = command.output().map_err(|e| Error::Fetch {
        package: package.into(),
        reason: format!("could not run {:?}: {e}", command.get_program()),
    })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::Fetch {
            package: package.into(),
            reason: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

fn found(file: PathBuf, package: &str) -> Result<PathBuf> {
    if file.exists() {
        Ok(file)
    } else {
        Err(Error::Fetch {
            package: package.into(),
            reason: format!("the client succeeded but {} is not there", file.display()),
        })
    }
}

/// Reads every regular file of a `.tgz` whose path satisfies `keep`, as (path, bytes).
pub(crate) fn tgz_files(tgz: &Path, keep: impl Fn(&str) -> bool) -> Result<Vec<(String, Vec<u8>)>> {
    use std::io::Read;
    let file = std::fs::File::open(tgz).map_err(|e| Error::io(tgz, e))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut files = Vec::new();
    for entry in archive.entries().map_err(|e| Error::io(tgz, e))? {
        let mut entry = entry.map_err(|e| Error::io(tgz, e))?;
        let path = entry
            .path()
            .map_err(|e| Error::io(tgz, e))?
            .to_string_lossy()
            .into_owned();
        if entry.header().entry_type().is_file() && keep(&path) {
            let mut bytes = Vec::new();
            entry
                .read_to_end(&mut bytes)
                .map_err(|e| Error::io(tgz, e))?;
            files.push((path, bytes));
        }
    }
    files.sort();
    Ok(files)
}
