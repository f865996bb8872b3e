//! Inputs without bounds fail fast with an error naming the file: a record or profile too
//! large to be one (`/dev/zero`), an output that cannot be written, no cache directory; and
//! `serve` refuses two profiles of one name. Every run is killed if it takes too long, so a
//! regression fails the test instead of filling memory.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::json_lines;

/// Runs saener with `stdin` as input; fails the test if it runs longer than `limit`.
fn saener_within(limit: Duration, args: &[&str], configure: impl FnOnce(&mut Command)) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_saener"));
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    configure(&mut command);
    let mut child = command.spawn().expect("run saener");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            child.kill().unwrap();
            panic!("saener {args:?} still ran after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn failure(output: Output) -> String {
    assert!(
        !output.status.success(),
        "saener succeeded but should have failed"
    );
    String::from_utf8(output.stderr).unwrap()
}

/// Long enough for loading the model on a slow machine, short of filling memory from
/// `/dev/zero` (gigabytes a second).
const LIMIT: Duration = Duration::from_secs(120);

#[test]
fn a_line_without_end_fails_fast_naming_the_input() {
    let stderr = failure(saener_within(
        LIMIT,
        &["annotate", "--profile", "conll2003", "--input", "/dev/zero"],
        |_| {},
    ));
    assert!(
        stderr.contains("/dev/zero: line 1: longer than 67108864 bytes"),
        "{stderr}"
    );
}

#[test]
fn records_before_an_oversized_line_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let output = dir.path().join("out.jsonl");
    let big = format!("{{\"id\":\"big\",\"text\":\"{}\"}}", "word ".repeat(400));
    std::fs::write(
        &input,
        format!("{{\"id\":\"a\",\"text\":\"Paris.\"}}\n{{\"id\":\"b\",\"text\":\"Rome.\"}}\n{big}\n{{\"id\":\"c\",\"text\":\"Oslo.\"}}\n"),
    )
    .unwrap();
    let (input_arg, output_arg) = (input.to_str().unwrap(), output.to_str().unwrap());
    let annotate = |extra: &[&str]| {
        let mut args = vec!["annotate", "--profile", "conll2003"];
        args.extend_from_slice(&["--input", input_arg, "--output", output_arg]);
        args.extend_from_slice(extra);
        saener_within(LIMIT, &args, |_| {})
    };
    let stderr = failure(annotate(&["--max-record-bytes", "1000"]));
    assert!(
        stderr.contains("stopped after 2 records, all written"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{input_arg}: line 3: longer than 1000 bytes")),
        "{stderr}"
    );
    let written = json_lines(&std::fs::read_to_string(&output).unwrap());
    let ids: Vec<&str> = written.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["a", "b"]);
    // A higher limit resumes where the run stopped.
    assert!(annotate(&["--resume"]).status.success());
    let written = json_lines(&std::fs::read_to_string(&output).unwrap());
    let ids: Vec<&str> = written.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["a", "b", "big", "c"]);
}

#[test]
fn a_profile_without_end_fails_fast_naming_the_file() {
    let stderr = failure(saener_within(
        LIMIT,
        &["annotate", "--profile", "/dev/zero"],
        |_| {},
    ));
    assert!(
        stderr.contains("/dev/zero: larger than 256 MiB, the most a profile may be"),
        "{stderr}"
    );
}

#[test]
fn output_errors_name_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"id\":\"a\",\"text\":\"Angela Merkel visited Paris.\"}\n",
    )
    .unwrap();
    let dir_path = dir.path().to_str().unwrap();
    for (output, error) in [
        ("/dev/full", "writing /dev/full: No space left on device"),
        (dir_path, "Is a directory"),
    ] {
        let stderr = failure(saener_within(
            LIMIT,
            &[
                "annotate",
                "--profile",
                "conll2003",
                "--input",
                input.to_str().unwrap(),
                "--output",
                output,
            ],
            |_| {},
        ));
        assert!(
            stderr.contains(error) && stderr.contains(output),
            "{stderr}"
        );
    }
}

#[test]
fn no_cache_directory_is_an_error_not_the_current_directory() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = failure(saener_within(LIMIT, &["fetch-model"], |command| {
        command
            .env_remove("HOME")
            .env_remove("SAENER_HOME")
            .current_dir(dir.path());
    }));
    assert!(
        stderr.contains("neither SAENER_HOME nor HOME is set"),
        "{stderr}"
    );
    assert!(!Path::new(&dir.path().join(".cache")).exists());
}

#[test]
fn serve_refuses_two_profiles_of_one_name() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("conll2003.json");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../models/gemma3-270m-l9-topk64-16k/profiles/conll2003.json"
        ),
        &copy,
    )
    .unwrap();
    let stderr = failure(saener_within(
        LIMIT,
        &[
            "serve",
            "--port",
            "0",
            "--profile",
            "conll2003",
            "--profile",
            copy.to_str().unwrap(),
        ],
        |_| {},
    ));
    assert!(
        stderr.contains("two profiles are named \"conll2003\""),
        "{stderr}"
    );
}
