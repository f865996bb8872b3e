#![no_main]
//! The JSONL span reader and the plain-text reader on arbitrary bytes.
libfuzzer_sys::fuzz_target!(|data: &[u8]| saener_ner::fuzzing::jsonl(data));
