//! The fuzz targets' seeds and every input a fuzzer ever failed on (`fuzz/regressions/`),
//! replayed through the same entry function (`saener_sae::fuzzing::load`), so fixed bugs
//! stay fixed without cargo-fuzz.

use saener_sae::Format;

#[path = "../../../fuzz/inputs.rs"]
mod inputs;

use inputs::fuzz_inputs;

fn replay(target: &str, format: Format) {
    let inputs = fuzz_inputs(target);
    assert!(!inputs.is_empty());
    for (path, data) in inputs {
        let result = saener_sae::fuzzing::load(format, &data);
        // Seeds are valid SAEs (so fuzzing starts from files that load); regressions may
        // be errors, as long as they are errors rather than panics.
        if path.parent().unwrap().parent().unwrap().ends_with("seeds") {
            result.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }
}

#[test]
fn gemma_scope_inputs() {
    replay("sae_gemmascope", Format::GemmaScope);
}

#[test]
fn gemma_scope_2_inputs() {
    replay("sae_gemmascope2", Format::GemmaScope2);
}

#[test]
fn saelens_inputs() {
    replay("sae_saelens", Format::SaeLens);
}

#[test]
fn sparsify_inputs() {
    replay("sae_sparsify", Format::Sparsify);
}
