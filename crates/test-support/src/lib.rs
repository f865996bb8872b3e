//! Where saener's tests find reference data.
//!
//! Two places: `fixtures/` in the repository (small files every clone has; see
//! `fixtures/README.md` and `fixtures/regenerate.py`), and the larger shared folder beside the
//! checkout (`../shared`, or `$SAENER_SHARED`), which holds what may not live in the
//! repository (CoNLL-2003 text, the long golden residuals). A bare clone has no shared folder:
//! tests that need it print what they skipped and pass, unless `SAENER_REQUIRE_SHARED=1`
//! (CI sets it), which turns a missing shared file into a failure, so that nothing CI is
//! meant to check is skipped silently.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root exists")
}

/// `fixtures/<relative>` in the repository. Panics if it is missing: fixtures are committed.
pub fn fixture(relative: &str) -> PathBuf {
    let path = repo_root().join("fixtures").join(relative);
    assert!(
        path.exists(),
        "fixture {} is missing (fixtures/regenerate.py rebuilds fixtures/)",
        path.display()
    );
    path
}

/// The shared folder: `$SAENER_SHARED`, else `shared/` beside the checkout.
pub fn shared_dir() -> PathBuf {
    std::env::var_os("SAENER_SHARED").map_or_else(|| repo_root().join("../shared"), PathBuf::from)
}

/// `<shared>/<relative>` if it exists. Otherwise prints which test skips what needs it (the
/// whole test, or only its shared cases) and returns `None`, or panics when `SAENER_REQUIRE_SHARED` is set to anything but `0` or empty.
pub fn shared(relative: &str) -> Option<PathBuf> {
    let path = shared_dir().join(relative);
    if path.exists() {
        return Some(path);
    }
    let required = std::env::var("SAENER_REQUIRE_SHARED").is_ok_and(|v| !v.is_empty() && v != "0");
    assert!(
        !required,
        "{} is missing and SAENER_REQUIRE_SHARED is set (point SAENER_SHARED at the shared folder)",
        path.display()
    );
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    // Written to the stream itself, not through `eprintln!`, which the test harness
    // captures and hides for passing tests: a skip must be seen.
    let note = format!(
        "{test}: skipping what needs {} (the shared reference folder; set SAENER_SHARED to it)\n",
        path.display()
    );
    let _ = std::io::stderr().write_all(note.as_bytes());
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_folder_is_found_from_any_crate() {
        assert!(fixture("golden/gemma3-270m/tokenizer.jsonl").is_file());
    }

    #[test]
    fn a_missing_shared_file_skips_or_fails_as_configured() {
        // Only the case that does not depend on the environment: a path that never exists.
        let missing = "no/such/file";
        if std::env::var("SAENER_REQUIRE_SHARED").is_ok_and(|v| !v.is_empty() && v != "0") {
            assert!(std::panic::catch_unwind(|| shared(missing)).is_err());
        } else {
            assert_eq!(shared(missing), None);
        }
    }
}
