//! Helpers shared by the end-to-end tests of the `saener` binary.

// Each test file compiles this module on its own and uses only some of it.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

pub fn saener(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_saener"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run saener");
    let written = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    // A command that fails before reading its input (a bad flag, a missing profile) closes
    // the pipe first; its exit status and stderr are the answer the test checks.
    if let Err(e) = written {
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::BrokenPipe,
            "writing stdin: {e}"
        );
    }
    child.wait_with_output().expect("saener finishes")
}

pub fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "saener failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

pub fn json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The stderr of a run that must fail.
pub fn fails(output: Output) -> String {
    assert!(
        !output.status.success(),
        "saener succeeded but should have failed"
    );
    String::from_utf8(output.stderr).unwrap()
}

/// The first `n` `-DOCSTART-` documents of a CoNLL file in `fixtures/data/` (which holds the
/// first 80 of NCBI-disease train and 12 of dev), written to `out`.
pub fn first_documents(file: &str, n: usize, out: &std::path::Path) {
    let path = saener_test_support::fixture("data").join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut kept = String::new();
    let mut documents = 0;
    for line in text.split_inclusive('\n') {
        if line.starts_with("-DOCSTART-") {
            documents += 1;
            if documents > n {
                break;
            }
        }
        kept.push_str(line);
    }
    assert_eq!(
        documents.min(n),
        n,
        "{} has fewer than {n} documents",
        path.display()
    );
    std::fs::write(out, kept).unwrap();
}
