//! The `saener` binary end to end, on the real model (fetched on first use): the
//! `tokenize` and `residuals` interfaces other tools rely on, against the golden reference,
//! and the SAE path (store → train → export → info → eval) on a tiny SAE.

mod common;

use common::{fails, json_lines, ok, saener};
use saener_test_support::fixture;
use std::path::Path;

#[test]
fn tokenize_matches_golden_ids_and_keeps_one_line_per_input() {
    let golden = std::fs::read_to_string(fixture("golden/gemma3-270m/tokenizer.jsonl")).unwrap();
    let cases: Vec<serde_json::Value> = golden
        .lines()
        .take(200)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut input: String = cases
        .iter()
        .map(|c| serde_json::json!({ "text": c["text"] }).to_string() + "\n")
        .collect();
    input.push_str("{\"no_text\": 1}\nnot json\n");
    let out = json_lines(&ok(saener(&["tokenize"], &input)));
    assert_eq!(out.len(), cases.len() + 2);
    for (case, got) in cases.iter().zip(&out) {
        assert_eq!(got["ids"], case["ids"], "{}", case["text"]);
        let text: Vec<char> = case["text"].as_str().unwrap().chars().collect();
        let offsets = got["offsets"].as_array().unwrap();
        assert_eq!(offsets.len(), got["ids"].as_array().unwrap().len());
        let last_end = offsets.last().unwrap()[1].as_u64().unwrap() as usize;
        assert_eq!(last_end, text.len());
    }
    assert!(out[cases.len()]["error"]
        .as_str()
        .unwrap()
        .contains("missing field 'text'"));
    assert!(out[cases.len() + 1]["error"]
        .as_str()
        .unwrap()
        .contains("invalid JSON"));
}

#[test]
fn residuals_match_golden_layer_9_and_report_bad_records() {
    let cases: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("golden/gemma3-270m/model_cases.json")).unwrap(),
    )
    .unwrap();
    let names = ["capital", "biomed", "unicode"];
    let mut input: String = names
        .iter()
        .map(|n| {
            serde_json::json!({ "id": n, "text": cases["cases"][n]["text"] }).to_string() + "\n"
        })
        .collect();
    input.push_str("{\"id\": \"../escape\", \"text\": \"x\"}\n");
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().to_str().unwrap();
    let out = json_lines(&ok(saener(
        &["residuals", "--layer", "9", "--out", out_dir],
        &input,
    )));
    assert_eq!(out.len(), names.len() + 1);
    assert!(out[names.len()]["error"]
        .as_str()
        .unwrap()
        .contains("cannot be a file name"));

    let layer_9 = 2; // golden blocks: 0, 5, 9, 12, 17
    for (name, status) in names.iter().zip(&out) {
        let case = &cases["cases"][name];
        let n = case["n_tokens"].as_u64().unwrap() as usize;
        assert_eq!(status["tokens"].as_u64().unwrap() as usize, n);
        let meta: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join(format!("{name}.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(meta["ids"], case["ids"]);
        let (shape, ours) = saener_sae::npy::read(dir.path().join(format!("{name}.npy"))).unwrap();
        assert_eq!(shape, vec![n, 640]);
        let (_, golden) = saener_sae::npy::read(
            fixture("golden/gemma3-270m").join(case["resid_post_file"].as_str().unwrap()),
        )
        .unwrap();
        let golden = &golden[layer_9 * n * 640..(layer_9 + 1) * n * 640];
        for (t, (a, b)) in ours.chunks(640).zip(golden.chunks(640)).enumerate() {
            let err: f32 = a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y) * (x - y))
                .sum::<f32>()
                .sqrt();
            let norm: f32 = b.iter().map(|y| y * y).sum::<f32>().sqrt();
            assert!(
                err / norm < 1e-3,
                "{name} token {t}: relative error {}",
                err / norm
            );
        }
    }
}

/// Four sentences of news-like and biomedical text as `{"id","text"}` JSONL: the SAE tests' corpus.
fn write_corpus(path: &str) {
    let corpus: String = [
        "The committee met in Geneva on Tuesday to discuss the new trade agreement with Kenya.",
        "Researchers at the clinic reported that the drug reduced symptoms of asthma in children.",
        "After the storm, volunteers from Lyon and Marseille helped to repair the damaged roofs.",
        "Anna Schmidt won the regional chess championship for the third year in a row.",
    ]
    .iter()
    .enumerate()
    .map(|(i, t)| serde_json::json!({ "id": i.to_string(), "text": t }).to_string() + "\n")
    .collect();
    std::fs::write(path, corpus).unwrap();
}

#[test]
fn sae_store_train_info_eval_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = |p: &str| dir.path().join(p).to_str().unwrap().to_string();
    write_corpus(&path("corpus.jsonl"));
    let store_args = [
        "residuals",
        "--layer",
        "5",
        "--input",
        &path("corpus.jsonl"),
        "--store",
        &path("store"),
        "--rows-per-shard",
        "10",
    ];
    let first = ok(saener(&store_args, ""));
    assert!(first.contains("4 shards"), "{first}");
    // Re-running resumes: every shard is finished, nothing is rewritten.
    assert_eq!(ok(saener(&store_args, "")), first);
    let mut prefix_args = store_args.to_vec();
    let prefix_store = path("prefix");
    prefix_args[6] = &prefix_store; // the value of --store
    prefix_args.extend(["--max-shards", "2"]);
    assert!(ok(saener(&prefix_args, "")).contains("2 shards"));

    let config = serde_json::json!({
        "d_sae": 64, "k": 4, "batch_size": 16, "total_tokens": 320, "warmup_steps": 2,
        "init_sample_rows": 32, "eval_rows": 32, "checkpoint_every": 5, "dead_tokens": 64
    });
    std::fs::write(path("train.json"), config.to_string()).unwrap();
    ok(saener(
        &[
            "sae",
            "train",
            "--store",
            &path("store"),
            "--out",
            &path("run"),
            "--config",
            &path("train.json"),
        ],
        "",
    ));
    let info = ok(saener(&["sae", "info", &path("run/sae")], ""));
    assert!(info.contains("d_in 640 -> d_sae 64"), "{info}");
    assert!(info.contains("TopK (k = 4)"), "{info}");

    let report: serde_json::Value = serde_json::from_str(&ok(saener(
        &[
            "sae",
            "eval",
            "--text",
            &path("corpus.jsonl"),
            "--sae",
            &path("run/sae"),
            "--ce-tokens",
            "8",
        ],
        "",
    )))
    .unwrap();
    for key in [
        "fvu",
        "l0",
        "dead_fraction",
        "ce_clean",
        "ce_spliced",
        "ce_zero_ablation",
        "ce_loss_recovered",
    ] {
        assert!(report[key].as_f64().unwrap().is_finite(), "{key}: {report}");
    }
    assert!(report["l0"].as_f64().unwrap() <= 4.0 + 1e-9);
    assert!(report["ce_zero_ablation"].as_f64().unwrap() > report["ce_clean"].as_f64().unwrap());

    // The BatchTopK threshold, set on the same text, gives a mean L0 of k there.
    let threshold_args = [
        "sae",
        "threshold",
        "--text",
        &path("corpus.jsonl"),
        "--sae",
        &path("run/sae"),
        "--out",
        &path("run/sae-batchtopk"),
    ];
    assert!(ok(saener(&threshold_args, "")).contains("BatchTopK (k = 4"));
    let info = ok(saener(&["sae", "info", &path("run/sae-batchtopk")], ""));
    assert!(
        info.contains("BatchTopK (k = 4, inference threshold"),
        "{info}"
    );
    let report: serde_json::Value = serde_json::from_str(&ok(saener(
        &[
            "sae",
            "eval",
            "--text",
            &path("corpus.jsonl"),
            "--sae",
            &path("run/sae-batchtopk"),
            "--ce-tokens",
            "8",
        ],
        "",
    )))
    .unwrap();
    let l0 = report["l0"].as_f64().unwrap();
    assert!((l0 - 4.0).abs() < 0.1, "l0 {l0}");
}

#[test]
fn sae_train_streams_from_text_and_rerunning_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let path = |p: &str| dir.path().join(p).to_str().unwrap().to_string();
    write_corpus(&path("corpus.jsonl"));
    let config = serde_json::json!({
        "d_sae": 64, "k": 4, "batch_size": 16, "total_tokens": 160, "warmup_steps": 2,
        "init_sample_rows": 32, "eval_rows": 32, "checkpoint_every": 4, "dead_tokens": 64,
        "buffer_rows": 32
    });
    std::fs::write(path("train.json"), config.to_string()).unwrap();
    let args = [
        "sae",
        "train",
        "--text",
        &path("corpus.jsonl"),
        "--heldout",
        &path("corpus.jsonl"),
        "--layer",
        "5",
        "--out",
        &path("run"),
        "--config",
        &path("train.json"),
    ];
    let stats: serde_json::Value = serde_json::from_str(&ok(saener(&args, ""))).unwrap();
    assert_eq!(stats["steps"], 10);
    assert_eq!(stats["held_out"]["rows"], 32);
    let info = ok(saener(&["sae", "info", &path("run/sae")], ""));
    assert!(info.contains("d_in 640 -> d_sae 64"), "{info}");
    assert!(info.contains("TopK (k = 4)"), "{info}");
    // Re-running finds the final checkpoint and exports the same SAE again.
    let weights = std::fs::read(path("run/sae/params.safetensors")).unwrap();
    let again: serde_json::Value = serde_json::from_str(&ok(saener(&args, ""))).unwrap();
    assert_eq!(again["steps"], 10);
    assert_eq!(
        std::fs::read(path("run/sae/params.safetensors")).unwrap(),
        weights
    );
    // A store and text at once make no sense.
    let both = fails(saener(
        &[
            "sae", "train", "--text", "a", "--store", "b", "--out", "c", "--layer", "5",
        ],
        "",
    ));
    assert!(both.contains("cannot be used with"), "{both}");
}

#[test]
fn corpus_build_refuses_dev_and_test_splits_before_fetching_anything() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("corpus");
    for split in ["dev.conll", "test.conll", "testb.conll"] {
        let err = fails(saener(
            &[
                "corpus",
                "build",
                "--out",
                out.to_str().unwrap(),
                "--add-conll",
                split,
            ],
            "",
        ));
        assert!(err.contains("only training text"), "{err}");
    }
    assert!(!out.exists());
}

#[test]
fn sae_eval_rejects_an_sae_for_another_model() {
    let fixture = fixture("golden/sae-formats/saelens_topk");
    let text = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/news.jsonl");
    let output = saener(
        &[
            "sae",
            "eval",
            "--text",
            text.to_str().unwrap(),
            "--sae",
            fixture.to_str().unwrap(),
            "--layer",
            "9",
        ],
        "",
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("640") && stderr.contains("16"), "{stderr}");
}

#[test]
fn shipped_sae_is_the_default_and_fits_the_model() {
    let info = ok(saener(
        &[
            "sae",
            "info",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../models/gemma3-270m-l9-topk64-16k"
            ),
        ],
        "",
    ));
    assert!(info.contains("Gemma Scope 2, bf16"), "{info}");
    assert!(info.contains("d_in 640 -> d_sae 16384"), "{info}");
    assert!(
        info.contains("BatchTopK (k = 64, inference threshold ")
            && info.contains("; TopK where the input norm exceeds "),
        "{info}"
    );
    assert!(info.contains("layer 9"), "{info}");
}

/// Every decoding override parses (an `--extend` value once panicked inside clap), and a
/// missing profile is an error naming it.
#[test]
fn decoding_overrides_parse() {
    for extend in ["0.5", "none"] {
        let stderr = fails(saener(
            &[
                "eval",
                "--profile",
                "no_such_profile",
                "--data",
                "x.conll",
                "--extend",
                extend,
                "--threshold",
                "0.8",
                "--combine",
                "max",
                "--pooling",
                "mean",
            ],
            "",
        ));
        assert!(stderr.contains("--profile no_such_profile"), "{stderr}");
    }
}

/// The noisy-or overrides are refused on a naive-Bayes profile (the shipped ones), which
/// would ignore them, before any model is loaded.
#[test]
fn decoding_overrides_are_refused_on_a_naive_bayes_profile() {
    let stderr = fails(saener(
        &[
            "eval",
            "--profile",
            "conll2003",
            "--data",
            "x.conll",
            "--threshold",
            "0.8",
        ],
        "",
    ));
    assert!(stderr.contains("decodes with naive Bayes"), "{stderr}");
}

/// `serve` follows each profile's own reading, so `--echo` there is refused, before any
/// model is loaded.
#[test]
fn serve_refuses_echo() {
    let stderr = fails(saener(&["serve", "--echo"], ""));
    assert!(stderr.contains("--echo"), "{stderr}");
}
