//! Label-free calibration end to end on the real model: a lexicon (or a few examples)
//! matched in the bundled programming text calibrates a new type, which then finds
//! languages the lexicon never named.

// Not every helper is used here.
mod common;

use common::{json_lines, ok, saener};
use std::path::{Path, PathBuf};

fn repo(p: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(p)
        .to_str()
        .unwrap()
        .to_string()
}

/// Languages in `examples/programming_test.txt` that the lexicon leaves out on purpose.
const UNSEEN: [&str; 5] = ["Kotlin", "Zig", "Elixir", "Julia", "Nim"];

/// The entities of type `language` that `profile` finds in the bundled test text.
fn languages(profile: &Path) -> Vec<String> {
    let out = ok(saener(
        &[
            "annotate",
            "--profile",
            profile.to_str().unwrap(),
            "--input",
            &repo("examples/programming_test.txt"),
        ],
        "",
    ));
    json_lines(&out)
        .iter()
        .flat_map(|r| r["entities"].as_array().unwrap().clone())
        .filter(|e| e["label"] == "language")
        .map(|e| e["text"].as_str().unwrap().to_string())
        .collect()
}

/// Calibrates on the bundled programming text with `args`; the profile's path.
fn calibrate(args: &[&str], dir: &Path) -> PathBuf {
    let out = dir.join("profile.json");
    let text = repo("examples/programming.txt");
    let cache = dir.join("codes");
    let mut all = vec![
        "calibrate",
        "--text",
        &text,
        "--out",
        out.to_str().unwrap(),
        "--cache",
        cache.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    ok(saener(&all, ""));
    out
}

/// Checks a profile calibrated from the programming lexicon with a 4-point grid: every
/// trial scored, both types kept, and at least 3 of the 5 unseen languages found. Returns
/// the profile's JSON.
fn check_lexicon_profile(profile: &Path, sweep: &Path) -> serde_json::Value {
    let trials = json_lines(&std::fs::read_to_string(sweep).unwrap());
    assert_eq!(trials.len(), 4);
    assert!(trials.iter().all(|t| t["score"].is_f64()));
    let p: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(profile).unwrap()).unwrap();
    assert_eq!(p["labels"], serde_json::json!(["language", "library"]));
    let found = languages(profile);
    let unseen = UNSEEN
        .iter()
        .filter(|l| found.contains(&l.to_string()))
        .count();
    assert!(unseen >= 3, "found {found:?}");
    p
}

#[test]
fn a_lexicon_calibrates_a_new_type_that_finds_unseen_names() {
    let dir = tempfile::tempdir().unwrap();
    let lexicon = repo("lexicons/programming_languages.toml");
    let sweep = dir.path().join("sweep.jsonl");
    let profile = calibrate(
        &[
            "--lexicon",
            &lexicon,
            "--tau",
            "60,100",
            "--s-min",
            "3",
            "--threshold",
            "0.7,0.9",
            "--sweep-out",
            sweep.to_str().unwrap(),
        ],
        dir.path(),
    );
    check_lexicon_profile(&profile, &sweep);
}

#[test]
fn a_lexicon_calibrates_the_naive_bayes_decoder() {
    let dir = tempfile::tempdir().unwrap();
    let lexicon = repo("lexicons/programming_languages.toml");
    let sweep = dir.path().join("sweep.jsonl");
    let profile = calibrate(
        &[
            "--lexicon",
            &lexicon,
            "--decoder",
            "naive-bayes",
            "--tau",
            "60",
            "--s-min",
            "3",
            "--nb-alpha",
            "0.1",
            "--nb-scale",
            "0.25,0.5",
            "--nb-bias=-4,0",
            "--nb-viterbi",
            "true",
            "--sweep-out",
            sweep.to_str().unwrap(),
        ],
        dir.path(),
    );
    let p = check_lexicon_profile(&profile, &sweep);
    let features = p["naive_bayes"]["offsets"][0]["features"].as_array();
    assert!(features.unwrap().len() > 10);
}

#[test]
fn a_few_examples_calibrate_like_a_lexicon() {
    let dir = tempfile::tempdir().unwrap();
    let examples = dir.path().join("examples.jsonl");
    let lines: String = [
        ("We rewrote the parser in Rust.", "Rust"),
        ("Her thesis code is all Python.", "Python"),
        ("The bank still runs COBOL.", "COBOL"),
        ("He teaches Haskell on Fridays.", "Haskell"),
        ("The firmware is written in C and the tools in Go.", "Go"),
        ("Most of the web is JavaScript.", "JavaScript"),
    ]
    .iter()
    .map(|(text, name)| {
        let start = text.find(name).unwrap();
        serde_json::json!({"text": text, "entities": [{"start": start, "end": start + name.len(), "label": "language"}]})
            .to_string()
            + "\n"
    })
    .collect();
    std::fs::write(&examples, lines).unwrap();
    let profile = calibrate(
        &[
            "--examples",
            examples.to_str().unwrap(),
            "--s-min",
            "3",
            "--tau",
            "60",
        ],
        dir.path(),
    );
    let p: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&profile).unwrap()).unwrap();
    assert_eq!(p["labels"], serde_json::json!(["language"]));
    assert!(!p["rows"].as_array().unwrap().is_empty());
    let found = languages(&profile);
    assert!(!found.is_empty(), "nothing found");
}

#[test]
fn a_bad_lexicon_names_file_line_and_type() {
    let dir = tempfile::tempdir().unwrap();
    let lexicon = dir.path().join("bad.toml");
    std::fs::write(
        &lexicon,
        "language = [\"Rust\"]\nlibrary = [\"Serde\", \"\"]\n",
    )
    .unwrap();
    let out = saener(
        &[
            "calibrate",
            "--lexicon",
            lexicon.to_str().unwrap(),
            "--text",
            &repo("examples/programming_test.txt"),
            "--out",
            dir.path().join("p.json").to_str().unwrap(),
        ],
        "",
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:2: library: expected names"), "{err}");
}
