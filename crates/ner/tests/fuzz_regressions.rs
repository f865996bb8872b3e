//! The fuzz targets' seeds and every input a fuzzer ever failed on (`fuzz/regressions/`),
//! replayed through the same entry functions (`saener_ner::fuzzing`), so fixed bugs stay
//! fixed without cargo-fuzz.

use saener_ner::{Decoder, Profile};

#[path = "../../../fuzz/inputs.rs"]
mod inputs;

use inputs::fuzz_inputs;

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
