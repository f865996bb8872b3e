//! The fuzz targets' seeds and every input a fuzzer ever failed on (`fuzz/regressions/`),
//! replayed through the same entry functions (`saener_ner::fuzzing`), so fixed bugs stay
//! fixed without cargo-fuzz.

use saener_ner::{Decoder, Profile};

/// The seeds and regression inputs of fuzz target `target`: every file in
/// `fuzz/seeds/<target>/` and `fuzz/regressions/<target>/`, with its path.
fn fuzz_inputs(target: &str) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let fuzz = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut inputs = Vec::new();
    for folder in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(folder).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            inputs.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    inputs.sort();
    inputs
}

#[test]
fn conll_inputs() {
    for (path, data) in fuzz_inputs("conll") {
        eprintln!("{}", path.display());
        saener_ner::fuzzing::conll(&data);
    }
}

#[test]
fn jsonl_inputs() {
    for (path, data) in fuzz_inputs("jsonl") {
        eprintln!("{}", path.display());
        saener_ner::fuzzing::jsonl(&data);
    }
}

#[test]
fn annotate_decode_inputs() {
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../models/gemma3-270m-l9-topk64-16k/profiles/conll2003.json"
    );
    let profile = Profile::load(file).unwrap();
    let decoder = Decoder::new(&profile, profile.decoding).unwrap();
    for (path, data) in fuzz_inputs("annotate_decode") {
        eprintln!("{}", path.display());
        saener_ner::fuzzing::decode(&profile, &decoder, &data);
    }
}
