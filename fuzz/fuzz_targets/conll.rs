#![no_main]
//! The CoNLL reader (and writer round trip) on arbitrary bytes.
libfuzzer_sys::fuzz_target!(|data: &[u8]| saener_ner::fuzzing::conll(data));
