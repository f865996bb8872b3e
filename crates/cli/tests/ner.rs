//! `calibrate`, `eval` and `annotate` end to end on the real model and the shipped SAE, on
//! a few NCBI-disease documents (public domain): small enough to run in seconds, real
//! enough that a broken stage shows up as a wrong count, a bad offset or a zero F1.

mod common;

use common::{first_documents, json_lines, ok, saener};
use serde_json::Value;
use std::path::Path;

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn calibrate_eval_annotate_on_ncbi_documents() {
    let dir = tempfile::tempdir().unwrap();
    let (train, dev) = (dir.path().join("train.conll"), dir.path().join("dev.conll"));
    first_documents("ncbi_disease/train.conll", 40, &train);
    first_documents("ncbi_disease/dev.conll", 12, &dev);
    let profile = dir.path().join("profile.json");
    let sweep = dir.path().join("sweep.jsonl");
    let cache = dir.path().join("codes");
    let path = |p: &Path| p.to_str().unwrap().to_string();
    ok(saener(
        &[
            "calibrate",
            "--data",
            &path(&train),
            "--dev",
            &path(&dev),
            "--out",
            &path(&profile),
            "--sweep-out",
            &path(&sweep),
            "--cache",
            &path(&cache),
            "--p-min",
            "0.3,0.5",
            "--s-min",
            "3",
        ],
        "",
    ));
    let p = read_json(&profile);
    assert_eq!(p["labels"], serde_json::json!(["Disease"]));
    assert_eq!(p["layer"], 9);
    assert!(p["rows"].as_array().unwrap().len() >= 5, "{}", p["rows"]);
    let trials = json_lines(&std::fs::read_to_string(&sweep).unwrap());
    assert_eq!(trials.len(), 2);
    assert!(trials
        .iter()
        .all(|t| t["f1"].is_f64() && t["calibration"]["tau"].is_f64()));
    // Train and dev each cached once.
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 2);

    let report = dir.path().join("report.json");
    let table = ok(saener(
        &[
            "eval",
            "--profile",
            &path(&profile),
            "--data",
            &path(&dev),
            "--json",
            &path(&report),
            "--report",
            &path(&dir.path().join("report.html")),
            "--cache",
            &path(&cache),
        ],
        "",
    ));
    assert!(table.contains("micro"), "{table}");
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    for part in [
        "<svg",
        "Error breakdown",
        "Missed:",
        "Spurious:",
        "<td>Disease</td>",
    ] {
        assert!(html.contains(part), "{part} missing from the HTML report");
    }
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 2, "dev re-read");
    let r = read_json(&report);

    // Codes computed through the residual cache are the codes computed from the model:
    // once with the residuals computed, once from the residuals alone.
    let kept = dir.path().join("kept");
    let eval_kept = || {
        let out = dir.path().join("kept.json");
        ok(saener(
            &[
                "eval",
                "--profile",
                &path(&profile),
                "--data",
                &path(&dev),
                "--json",
                &path(&out),
                "--cache",
                &path(&kept),
                "--keep-residuals",
            ],
            "",
        ));
        read_json(&out)
    };
    assert_eq!(eval_kept()["strict"], r["strict"]);
    let (residuals, codes): (Vec<_>, Vec<_>) = std::fs::read_dir(&kept)
        .unwrap()
        .map(|e| e.unwrap().path())
        .partition(|p| p.to_str().unwrap().ends_with("-residuals"));
    assert_eq!((residuals.len(), codes.len()), (1, 1));
    std::fs::remove_dir_all(&codes[0]).unwrap();
    assert_eq!(eval_kept()["strict"], r["strict"]);
    for scheme in ["strict", "conlleval"] {
        for key in ["precision", "recall", "f1"] {
            let v = r[scheme]["micro"][key].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&v), "{scheme} {key} {v}");
        }
        assert!(r[scheme]["per_type"]["Disease"]["f1"].is_f64());
    }
    // 40 documents of calibration already find diseases; chance would be near 0.
    let f1 = r["strict"]["micro"]["f1"].as_f64().unwrap();
    assert!(f1 > 0.2, "dev F1 {f1}");

    // Contexts from the cached calibration codes; every other field stays as it was.
    let before = std::fs::read_to_string(&profile).unwrap();
    let contexts = |data: &Path| {
        saener(
            &[
                "profile",
                "contexts",
                "--profile",
                &path(&profile),
                "--data",
                &path(data),
                "--cache",
                &path(&cache),
            ],
            "",
        )
    };
    ok(contexts(&train));
    let after = read_json(&profile);
    let feature = p["rows"][0]["feature"].to_string();
    let first = &after["contexts"][&feature][0];
    assert!(
        first["text"].is_string() && first["activation"].is_f64(),
        "{first}"
    );
    let unchanged = before.trim_end().strip_suffix('}').unwrap().trim_end();
    assert!(std::fs::read_to_string(&profile)
        .unwrap()
        .starts_with(unchanged));
    // Not the calibration data: refused.
    assert!(!contexts(&dev).status.success());
    // --max-features: contexts for that many features only.
    let one = dir.path().join("one.json");
    ok(saener(
        &[
            "profile",
            "contexts",
            "--profile",
            &path(&profile),
            "--data",
            &path(&train),
            "--cache",
            &path(&cache),
            "--max-features",
            "1",
            "--out",
            &path(&one),
        ],
        "",
    ));
    assert_eq!(read_json(&one)["contexts"].as_object().unwrap().len(), 1);

    // The probing baselines read the same words (SAE codes from the cache, dense residuals
    // cached beside them) and report in the same JSON layout.
    for input in ["sae", "dense"] {
        let probe = dir.path().join(format!("{input}.safetensors"));
        ok(saener(
            &[
                "probe",
                "train",
                "--input",
                input,
                "--data",
                &path(&train),
                "--dev",
                &path(&dev),
                "--l2",
                "1e-4,1e-3",
                "--epochs",
                "5",
                "--out",
                &path(&probe),
                "--cache",
                &path(&cache),
            ],
            "",
        ));
        let report = dir.path().join(format!("{input}.json"));
        ok(saener(
            &[
                "probe",
                "eval",
                "--probe",
                &path(&probe),
                "--data",
                &path(&dev),
                "--json",
                &path(&report),
                "--cache",
                &path(&cache),
            ],
            "",
        ));
        let f1 = read_json(&report)["strict"]["micro"]["f1"]
            .as_f64()
            .unwrap();
        assert!(f1 > 0.2, "{input} probe dev F1 {f1}");
        let table = ok(saener(&["compare", &path(&report)], ""));
        assert!(table.contains("Disease F1"), "{table}");
    }

    // SAE codes exist only at the SAE's layer.
    let wrong_layer = saener(
        &[
            "probe",
            "train",
            "--input",
            "sae",
            "--layer",
            "5",
            "--data",
            &path(&train),
            "--out",
            &path(&dir.path().join("x.safetensors")),
        ],
        "",
    );
    assert!(!wrong_layer.status.success());
    assert!(String::from_utf8_lossy(&wrong_layer.stderr).contains("--layer is for dense probes"));

    // Data efficiency over the same (cached) codes and residuals: a table, JSON, a chart.
    let (runs, svg) = (dir.path().join("eff.json"), dir.path().join("eff.svg"));
    let table = ok(saener(
        &[
            "efficiency",
            "--profile",
            &path(&profile),
            "--data",
            &path(&train),
            "--test",
            &path(&dev),
            "--sizes",
            "10,all",
            "--draws",
            "2",
            "--json",
            &path(&runs),
            "--svg",
            &path(&svg),
            "--cache",
            &path(&cache),
        ],
        "",
    ));
    assert!(table.contains("| probe on dense residual |"), "{table}");
    // Two draws of 10 sentences and one of all, for each of the three methods.
    assert_eq!(read_json(&runs).as_array().unwrap().len(), 9);
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));

    // A naive-Bayes profile is recounted with its own parameters: on all of its own
    // calibration data, the recount scores exactly what the profile does.
    let nb = dir.path().join("nb.json");
    let nb_args = [
        "--decoder",
        "naive-bayes",
        "--tau",
        "80",
        "--s-min",
        "3",
        "--nb-offsets=-1,1",
        "--nb-weight",
        "0.5",
        "--nb-bias=-2",
    ];
    let data_args = ["--data", &path(&train), "--cache", &path(&cache)];
    ok(saener(
        &[
            &["calibrate", "--out", &path(&nb)],
            &data_args[..],
            &nb_args,
        ]
        .concat(),
        "",
    ));
    let nb_report = dir.path().join("nb-report.json");
    ok(saener(
        &[
            "eval",
            "--profile",
            &path(&nb),
            "--data",
            &path(&dev),
            "--json",
            &path(&nb_report),
            "--cache",
            &path(&cache),
        ],
        "",
    ));
    let nb_runs = dir.path().join("nb-eff.json");
    ok(saener(
        &[
            &["efficiency", "--profile", &path(&nb), "--test", &path(&dev)],
            &data_args[..],
            &["--sizes", "all", "--json", &path(&nb_runs)],
        ]
        .concat(),
        "",
    ));
    let runs = read_json(&nb_runs);
    let sae_ner = &runs.as_array().unwrap()[0];
    assert_eq!(sae_ner["method"], "SAE-NER");
    assert_eq!(
        sae_ner["f1"],
        read_json(&nb_report)["strict"]["micro"]["f1"]
    );

    let texts = [
        "Germline mutations in BRCA1 predispose to breast and ovarian cancer.",
        "",
        "Ataxia-telangiectasia (A-T) is a recessive disorder.\nPatients with Huntington disease were excluded.",
    ];
    let mut input = String::new();
    for (i, text) in texts.iter().enumerate() {
        input += &serde_json::json!({"id": format!("r{i}"), "text": text}).to_string();
        input += "\n";
        if i == 0 {
            input += "{\"id\": \"broken\", \"text\": 3}\n";
        }
    }
    let out = json_lines(&ok(saener(
        &["annotate", "--profile", &path(&profile)],
        &input,
    )));
    let ids: Vec<&str> = out.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["r0", "broken", "r1", "r2"]);
    assert!(out[1]["error"].as_str().unwrap().contains("text"));
    assert_eq!(out[2]["entities"], serde_json::json!([]));
    let mut found = 0;
    for (record, text) in [(&out[0], texts[0]), (&out[3], texts[2])] {
        let chars: Vec<char> = text.chars().collect();
        for e in record["entities"].as_array().unwrap() {
            let (s, t) = (
                e["start"].as_u64().unwrap() as usize,
                e["end"].as_u64().unwrap() as usize,
            );
            let slice: String = chars[s..t].iter().collect();
            assert_eq!(e["text"].as_str().unwrap(), slice);
            // Spans are whole words: no run of letters and digits is cut at either end
            // (punctuation is a word of its own, so "-" after "Ataxia" may start a span).
            let cuts =
                |a: usize, b: usize| chars[a].is_alphanumeric() && chars[b].is_alphanumeric();
            assert!(s == 0 || !cuts(s - 1, s), "{slice} in {text}");
            assert!(t == chars.len() || !cuts(t - 1, t), "{slice} in {text}");
            assert_eq!(e["label"], "Disease");
            assert!(!e["evidence"].as_array().unwrap().is_empty());
            found += 1;
        }
    }
    assert!(found > 0, "no disease found in {out:?}");

    // Column output keeps the words, one per line, with IOB2 tags.
    let conll = ok(saener(
        &[
            "annotate",
            "--profile",
            &path(&profile),
            "--format",
            "conll",
        ],
        &format!("{}\n", texts[0]),
    ));
    let words: Vec<&str> = conll.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(words.len(), 11, "{conll}");
    assert!(words
        .iter()
        .all(|l| l.ends_with("\tO") || l.contains("\tB-Disease") || l.contains("\tI-Disease")));

    // A profile for another SAE is refused, naming the SAE.
    let mut foreign = p.clone();
    foreign["sae_id"] = "0".repeat(64).into();
    let foreign_path = dir.path().join("foreign.json");
    std::fs::write(&foreign_path, foreign.to_string()).unwrap();
    let refused = saener(&["annotate", "--profile", &path(&foreign_path)], "x\n");
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("SAE"), "{message}");

    // Echo is the profile's to decide: `--echo` against a plain profile is refused, and an
    // echo profile is evaluated on echo residuals (a cache folder of their own).
    let refused = saener(&["annotate", "--profile", &path(&profile), "--echo"], "x\n");
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("--echo"), "{message}");
    let mut echo = p.clone();
    echo["echo"] = true.into();
    let echo_path = dir.path().join("echo.json");
    std::fs::write(&echo_path, echo.to_string()).unwrap();
    let folders = std::fs::read_dir(&cache).unwrap().count();
    let eval_echo = |extra: &[&str]| {
        let mut args = vec!["eval", "--profile", echo_path.to_str().unwrap()];
        args.extend([
            "--data",
            dev.to_str().unwrap(),
            "--cache",
            cache.to_str().unwrap(),
        ]);
        args.extend(extra);
        ok(saener(&args, ""))
    };
    assert!(eval_echo(&[]).contains("micro"));
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), folders + 1);
    eval_echo(&["--echo"]);
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), folders + 1);
}

#[test]
fn shipped_profiles_load_by_name_and_annotate_the_bundled_example() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/news.jsonl");
    let out = json_lines(&ok(saener(
        &[
            "annotate",
            "--profile",
            "conll2003",
            "--input",
            example.to_str().unwrap(),
        ],
        "",
    )));
    assert_eq!(out.len(), 3);
    let people: Vec<&str> = out[0]["entities"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["label"] == "PER")
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(people, ["Maria Keller"], "{}", out[0]);

    // An interrupted batch (one record and half a line written) resumes to the same file.
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.jsonl");
    let full: String = out.iter().map(|r| format!("{r}\n")).collect();
    let first_line = full.lines().next().unwrap();
    std::fs::write(&output, format!("{first_line}\n{{\"id\": \"news-")).unwrap();
    let resume = [
        "annotate",
        "--profile",
        "conll2003",
        "--input",
        example.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--resume",
    ];
    ok(saener(&resume, ""));
    let resumed = json_lines(&std::fs::read_to_string(&output).unwrap());
    assert_eq!(resumed, out);
    for name in ["ncbi_disease", "bc5cdr"] {
        ok(saener(
            &["annotate", "--profile", name],
            "Cystic fibrosis.\n",
        ));
    }
    let missing = saener(&["annotate", "--profile", "ontonotes"], "x\n");
    assert!(!missing.status.success());
    let message = String::from_utf8_lossy(&missing.stderr);
    assert!(
        message.contains("bc5cdr, conll2003, ncbi_disease"),
        "{message}"
    );
}
