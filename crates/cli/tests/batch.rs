//! Large-batch `annotate` on the real model: killed with SIGKILL mid-run and resumed, the
//! output is byte-identical to an uninterrupted run; shards merge back to the same bytes;
//! bad records become error records in place; mismatched resumes and unfinished shards are
//! refused.

mod common;

use common::{ok, saener};
use std::path::Path;
use std::process::{Command, Stdio};

/// A small JSONL input written for this test (no corpus data): varied sentences, a line of
/// invalid JSON, a record without text, and a line with invalid UTF-8.
fn input(dir: &Path) -> std::path::PathBuf {
    let people = [
        "Angela Merkel",
        "Marie Curie",
        "Nelson Mandela",
        "Ada Lovelace",
    ];
    let places = ["Paris", "Nairobi", "Lima", "Osaka", "Toronto"];
    let mut bytes = Vec::new();
    for i in 0..24 {
        let text = format!(
            "{} flew from {} to {} on day {i} to meet the World Health Organization.",
            people[i % people.len()],
            places[i % places.len()],
            places[(i + 2) % places.len()]
        );
        bytes.extend(
            serde_json::json!({"id": format!("doc-{i}"), "text": text})
                .to_string()
                .bytes(),
        );
        bytes.push(b'\n');
        match i {
            5 => bytes.extend(b"{\"id\": \"broken\", \"text\": \n"),
            9 => bytes.extend(b"{\"id\": \"no-text\"}\n\n{\"id\": \"n\", \"text\": 5}\n[1]\n"),
            13 => bytes.extend(b"{\"id\": \"latin1\", \"text\": \"caf\xe9\"}\n"),
            _ => {}
        }
    }
    let path = dir.join("input.jsonl");
    std::fs::write(&path, bytes).unwrap();
    path
}

fn annotate(input: &Path, output: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "annotate",
        "--profile",
        "conll2003",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn run(args: &[String]) -> std::process::Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    saener(&args, "")
}

#[test]
fn killed_run_resumes_byte_identical_and_shards_merge_back() {
    let dir = tempfile::tempdir().unwrap();
    let input = input(dir.path());
    let reference = dir.path().join("reference.jsonl");
    ok(run(&annotate(&input, &reference, &[])));
    let expected = std::fs::read(&reference).unwrap();
    let records = expected.iter().filter(|&&b| b == b'\n').count();
    assert_eq!(records, 24 + 5, "one line per non-blank input line");
    let text = String::from_utf8(expected.clone()).unwrap();
    assert!(text.contains("line 7: invalid JSON"), "{text}");
    assert!(text.contains("missing field 'text'"), "{text}");
    assert!(text.contains("field 'text': expected a string, found a number"));
    assert!(text.contains("expected a JSON object with a 'text' field, found an array"));
    assert!(text.contains("invalid UTF-8 at byte offset"), "{text}");

    // SIGKILL once some records are durable, then resume.
    let output = dir.path().join("killed.jsonl");
    let args = annotate(&input, &output, &["--chunk", "1"]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_saener"))
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines =
        |p: &Path| std::fs::read(p).map_or(0, |b| b.iter().filter(|&&b| b == b'\n').count());
    while lines(&output) < 3 && child.try_wait().unwrap().is_none() {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    let done = lines(&output);
    assert!(
        (3..records).contains(&done),
        "killed after {done} of {records} records; the test needs a kill mid-run"
    );
    let resumed = run(&[args.as_slice(), &["--resume".to_string()]].concat());
    let message = String::from_utf8_lossy(&ok_stderr(resumed)).into_owned();
    assert!(message.contains("resuming after"), "{message}");
    assert_eq!(std::fs::read(&output).unwrap(), expected);

    // Resuming onto the output of another input is refused, and the file left alone.
    let other = dir.path().join("other.jsonl");
    std::fs::write(&other, "{\"id\":\"x\",\"text\":\"Paris.\"}\n".repeat(5)).unwrap();
    let refused = run(&annotate(&other, &output, &["--resume"]));
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("refusing to resume"));
    assert_eq!(std::fs::read(&output).unwrap(), expected);

    // Two shards, one killed mid-way, merged too early (refused), resumed, merged.
    let shard = |i: usize| dir.path().join(format!("part-{i}.jsonl"));
    ok(run(&annotate(&input, &shard(0), &["--shard", "0/2"])));
    let args = annotate(&input, &shard(1), &["--shard", "1/2", "--chunk", "1"]);
    kill_after(&args, &shard(1), 2, records / 2);
    let merged = dir.path().join("merged.jsonl");
    let merge = |extra: &[&str]| {
        let mut args = vec!["merge", "--output", merged.to_str().unwrap()];
        args.extend(extra);
        let paths: Vec<String> = [1, 0].map(|i| shard(i).display().to_string()).to_vec();
        args.extend(paths.iter().map(String::as_str));
        saener(&args, "")
    };
    let early = merge(&[]);
    assert!(!early.status.success());
    let message = String::from_utf8_lossy(&early.stderr).into_owned();
    assert!(message.contains("shard 1/2 is unfinished"), "{message}");
    ok(run(&[args.as_slice(), &["--resume".to_string()]].concat()));
    ok(merge(&["--records", &records.to_string()]));
    assert_eq!(std::fs::read(&merged).unwrap(), expected);
}

/// Runs `args`, SIGKILLs it once `output` holds `at_least` lines, and checks that the kill
/// came mid-run (fewer than `total` lines).
fn kill_after(args: &[String], output: &Path, at_least: usize, total: usize) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_saener"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = || std::fs::read(output).map_or(0, |b| b.iter().filter(|&&b| b == b'\n').count());
    while lines() < at_least && child.try_wait().unwrap().is_none() {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    let done = lines();
    assert!(
        (at_least..total).contains(&done),
        "killed after {done} of {total} records; the test needs a kill mid-run"
    );
}

#[test]
fn invalid_utf8_names_the_byte_or_is_replaced_with_lossy() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.txt");
    std::fs::write(&input, b"Paris is nice.\n\ncaf\xe9 in Lima.\n").unwrap();
    let output = dir.path().join("out.jsonl");
    ok(run(&annotate(&input, &output, &[])));
    let strict = std::fs::read_to_string(&output).unwrap();
    let lines: Vec<&str> = strict.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[1].contains("input.txt: line 3: invalid UTF-8 at byte offset 19"),
        "{strict}"
    );
    ok(run(&annotate(&input, &output, &["--lossy"])));
    let lossy = std::fs::read_to_string(&output).unwrap();
    assert!(
        lossy.lines().nth(1).unwrap().starts_with("{\"entities\":"),
        "{lossy}"
    );

    // A bad line before the last is not a torn write: --resume refuses to cut there.
    std::fs::write(&output, format!("{}\nnot json\n{}\n", lines[0], lines[0])).unwrap();
    let refused = run(&annotate(&input, &output, &["--resume"]));
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(
        message.contains("line 2 is not a complete JSON record"),
        "{message}"
    );
}

#[test]
fn merge_restores_order_and_refuses_missing_duplicate_and_foreign_shards() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, lines: &[&str]| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
        )
        .unwrap();
        path.display().to_string()
    };
    let a = write(
        "a",
        &[
            r#"{"index":0,"shard":"0/2","id":"x"}"#,
            r#"{"index":2,"shard":"0/2","id":"z"}"#,
        ],
    );
    let b = write("b", &[r#"{"index":1,"shard":"1/2","id":"y"}"#]);
    let merged = ok(saener(&["merge", &b, &a], ""));
    assert_eq!(merged, "{\"id\":\"x\"}\n{\"id\":\"y\"}\n{\"id\":\"z\"}\n");
    let fails = |args: &[&str], needle: &str| {
        let out = saener(args, "");
        let message = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success() && message.contains(needle),
            "{message}"
        );
    };
    fails(
        &["merge", &a],
        "the shards are 2 in all (i/2), but 1 files were given",
    );
    fails(&["merge", &a, &a], "both hold shard 0/2");
    fails(&["merge", &a, &b, "--records", "4"], "the input has 4");
    let plain = write("plain", &[r#"{"id":"x","entities":[]}"#]);
    fails(&["merge", &plain, &b], "not written by annotate --shard");
    let gap = write("gap", &[r#"{"index":3,"shard":"1/2","id":"w"}"#]);
    fails(&["merge", &a, &gap], "expected record 1 of shard 1/2");
}

fn ok_stderr(output: std::process::Output) -> Vec<u8> {
    assert!(
        output.status.success(),
        "saener failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stderr
}
