#![no_main]
//! The GGUF reader, model config and tokenizer metadata on arbitrary bytes.
libfuzzer_sys::fuzz_target!(|data: &[u8]| saener_lm::fuzzing::gguf(data));
