//! Reads the fuzz targets' seeds and regression inputs for the replay tests of `saener-lm`,
//! `saener-sae` and `saener-ner`, which include this file with `#[path]` (test code shared
//! by three crates that do not depend on one another).

/// The seeds and regression inputs of fuzz target `target`: every file in
/// `fuzz/seeds/<target>/` and `fuzz/regressions/<target>/`, with its path.
pub fn fuzz_inputs(target: &str) -> Vec<(std::path::PathBuf, Vec<u8>)> {
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
