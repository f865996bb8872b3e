//! The fuzz targets' seeds and every input a fuzzer ever failed on (`fuzz/regressions/`),
//! replayed through the same entry functions (`saener_lm::fuzzing`), so fixed bugs stay
//! fixed without cargo-fuzz. The tokenizer needs the real model (fetched on first use).

#[path = "../../../fuzz/inputs.rs"]
mod inputs;

use inputs::fuzz_inputs;

#[test]
fn gguf_inputs_never_panic() {
    let inputs = fuzz_inputs("gguf");
    assert!(!inputs.is_empty());
    for (path, data) in inputs {
        eprintln!("{}", path.display());
        saener_lm::fuzzing::gguf(&data);
        if path.parent().unwrap().parent().unwrap().ends_with("seeds") {
            // Seeds are valid files, so fuzzing starts past the header checks.
            let mut reader = std::io::Cursor::new(&data);
            saener_lm::gguf::GgufFile::read(path.clone(), &mut reader, data.len() as u64).unwrap();
        }
    }
}

#[test]
fn tokenizer_offsets_tile_every_input_and_golden_text() {
    let model = saener_lm::ensure_default_model().expect("the default model");
    let tokenizer = saener_lm::Tokenizer::from_gguf(&model).unwrap();
    let inputs = fuzz_inputs("tokenizer");
    assert!(!inputs.is_empty());
    for (path, data) in inputs {
        eprintln!("{}", path.display());
        saener_lm::fuzzing::tokenize(&tokenizer, &String::from_utf8_lossy(&data));
    }
    let golden = saener_test_support::fixture("golden/gemma3-270m/tokenizer.jsonl");
    for line in std::fs::read_to_string(golden).unwrap().lines() {
        let case: serde_json::Value = serde_json::from_str(line).unwrap();
        saener_lm::fuzzing::tokenize(&tokenizer, case["text"].as_str().unwrap());
    }
}
