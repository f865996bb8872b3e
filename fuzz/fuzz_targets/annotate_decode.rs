#![no_main]
//! The annotate path after the model: arbitrary text and synthetic SAE activations for the
//! shipped CoNLL-2003 profile → spans within bounds (the model itself is too slow to fuzz).
use saener_ner::{Decoder, Profile};
use std::sync::OnceLock;

static PROFILE: OnceLock<(Profile, Decoder)> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (profile, decoder) = PROFILE.get_or_init(|| {
        let json = include_str!("../../models/gemma3-270m-l9-topk64-16k/profiles/conll2003.json");
        let profile = Profile::parse(json, "conll2003.json").expect("the shipped profile");
        let decoder = Decoder::new(&profile, profile.decoding).expect("its decoder");
        (profile, decoder)
    });
    saener_ner::fuzzing::decode(profile, decoder, data);
});
