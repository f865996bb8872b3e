#![no_main]
//! The GemmaScope SAE reader on arbitrary files (see `saener_sae::fuzzing::load`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = saener_sae::fuzzing::load(saener_sae::Format::GemmaScope, data);
});
