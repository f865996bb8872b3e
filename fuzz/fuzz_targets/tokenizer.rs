#![no_main]
//! Gemma's tokenizer (from the cached default model) on arbitrary text: offsets tile it.
use std::sync::OnceLock;

static TOKENIZER: OnceLock<saener_lm::Tokenizer> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let tokenizer = TOKENIZER.get_or_init(|| {
        saener_lm::Tokenizer::from_gguf(&saener_lm::default_model_path())
            .expect("the default model is cached (saener fetch-model)")
    });
    saener_lm::fuzzing::tokenize(tokenizer, &String::from_utf8_lossy(data));
});
