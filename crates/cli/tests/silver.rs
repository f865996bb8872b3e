//! The silver-data study's commands end to end: `perturb` and `diff` on NCBI-disease train
//! (public domain), and `silver`, `tagger` and `study` on a few of its documents with the
//! real model and the shipped SAE.

mod common;

use common::{fails, first_documents, ok, saener};
use serde_json::Value;
use std::path::Path;

fn path(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// Each line with its last column (the tag) removed.
fn without_tags(conll: &str) -> Vec<String> {
    conll
        .lines()
        .map(|l| match l.rsplit_once(['\t', ' ']) {
            Some((rest, _)) if !l.starts_with("-DOCSTART-") => rest.to_string(),
            _ => l.to_string(),
        })
        .collect()
}

#[test]
fn perturb_changes_only_tags_and_diff_reads_the_rate_back() {
    let dir = tempfile::tempdir().unwrap();
    let gold = dir.path().join("gold.conll");
    first_documents("ncbi_disease/train.conll", 80, &gold);
    let gold_text = std::fs::read_to_string(&gold).unwrap();

    let same = ok(saener(
        &[
            "perturb",
            "--data",
            &path(&gold),
            "--kind",
            "fn",
            "--rate",
            "0",
        ],
        "",
    ));
    assert_eq!(same, gold_text, "rate 0 writes the input back unchanged");

    for (kind, field) in [
        ("fn", "false_negative"),
        ("boundary", "boundary"),
        ("fp", "false_positive"),
    ] {
        let noisy = dir.path().join(format!("{kind}.conll"));
        let args = [
            "perturb",
            "--data",
            &path(&gold),
            "--kind",
            kind,
            "--rate",
            "0.2",
            "--seed",
            "4",
        ];
        let stdout = ok(saener(&args, ""));
        assert_eq!(
            stdout,
            ok(saener(&args, "")),
            "{kind}: one seed, one output"
        );
        std::fs::write(&noisy, &stdout).unwrap();
        assert_ne!(stdout, gold_text, "{kind}");
        assert_eq!(without_tags(&stdout), without_tags(&gold_text), "{kind}");

        let report = dir.path().join(format!("{kind}.json"));
        ok(saener(
            &[
                "diff",
                "--gold",
                &path(&gold),
                "--pred",
                &path(&noisy),
                "--json",
                &path(&report),
            ],
            "",
        ));
        let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        let n = r["gold_entities"].as_f64().unwrap();
        assert!(n > 100.0, "{r}");
        for other in ["false_negative", "false_positive", "boundary", "type"] {
            let want = if other == field { 0.2 } else { 0.0 };
            let got = r[other].as_f64().unwrap();
            assert!((got - want).abs() * n <= 1.0, "{kind}: {other} = {got}");
        }
    }

    let bad = fails(saener(
        &[
            "perturb",
            "--data",
            &path(&gold),
            "--kind",
            "fn",
            "--rate",
            "1.5",
        ],
        "",
    ));
    assert!(bad.contains("rate"), "{bad}");
}

#[test]
fn silver_tagger_and_a_tiny_study_on_ncbi_documents() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").join("tiny");
    std::fs::create_dir_all(&data).unwrap();
    let (train, dev) = (data.join("train.conll"), data.join("dev.conll"));
    first_documents("ncbi_disease/train.conll", 20, &train);
    first_documents("ncbi_disease/dev.conll", 6, &dev);
    let cache = dir.path().join("codes");

    let silver = dir.path().join("silver.conll");
    ok(saener(
        &[
            "silver",
            "--profile",
            "ncbi_disease",
            "--data",
            &path(&train),
            "--out",
            &path(&silver),
            "--cache",
            &path(&cache),
        ],
        "",
    ));
    let (silver_text, gold_text) = (
        std::fs::read_to_string(&silver).unwrap(),
        std::fs::read_to_string(&train).unwrap(),
    );
    assert_eq!(without_tags(&silver_text), without_tags(&gold_text));
    let diff = ok(saener(
        &["diff", "--gold", &path(&train), "--pred", &path(&silver)],
        "",
    ));
    assert!(diff.contains("false negatives"), "{diff}");

    let tagger = dir.path().join("tagger.safetensors");
    ok(saener(
        &[
            "tagger",
            "train",
            "--data",
            &path(&train),
            "--out",
            &path(&tagger),
            // A few hundred sentences need more steps than the study's full train splits.
            "--epochs",
            "30",
            "--learning-rate",
            "0.01",
            "--cache",
            &path(&cache),
        ],
        "",
    ));
    let report = dir.path().join("report.json");
    ok(saener(
        &[
            "tagger",
            "eval",
            "--tagger",
            &path(&tagger),
            "--data",
            &path(&dev),
            "--json",
            &path(&report),
            "--cache",
            &path(&cache),
        ],
        "",
    ));
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let f1 = r["strict"]["micro"]["f1"].as_f64().unwrap();
    // Trained on ~200 sentences, the CRF over frozen residuals already finds many
    // diseases (0.43 when written); an untrained or broken one finds none.
    assert!(f1 > 0.3, "dev F1 {f1}");

    let out = dir.path().join("study");
    let study = [
        "study",
        "--dataset",
        "tiny",
        "--data-dir",
        &path(&dir.path().join("data")),
        "--profile",
        "ncbi_disease",
        "--out",
        &path(&out),
        "--rates",
        "0.3",
        "--seeds",
        "1",
        "--epochs",
        "2",
        "--cache",
        &path(&cache),
    ];
    let table = ok(saener(&study, ""));
    assert!(table.contains("| false negatives |"), "{table}");
    assert!(table.contains("Silver"), "{table}");
    let runs = std::fs::read_to_string(out.join("runs.jsonl")).unwrap();
    // gold, silver, and one run per noise kind.
    assert_eq!(runs.lines().count(), 5, "{runs}");
    for file in ["summary.json", "table.md", "chart.svg", "study.json"] {
        assert!(out.join(file).exists(), "{file}");
    }
    // A second run finds everything done and trains nothing.
    let again = saener(&study, "");
    assert!(String::from_utf8_lossy(&again.stderr).contains("5 finished runs"));
    assert_eq!(
        std::fs::read_to_string(out.join("runs.jsonl")).unwrap(),
        runs
    );
    // Another tagger setting in the same folder is refused, not mixed in.
    let mut other = study.to_vec();
    let epochs = other.iter().position(|a| *a == "--epochs").unwrap() + 1;
    other[epochs] = "3";
    let refused = fails(saener(&other, ""));
    assert!(refused.contains("another setup"), "{refused}");
}
