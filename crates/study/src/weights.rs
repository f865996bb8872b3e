//! Small trained-weight files (the probes, the tagger): named f32 tensors in safetensors,
//! with the model's description as JSON under one metadata key.

use std::collections::HashMap;
use std::path::Path;

use saener_ner::{Error, Result};

/// Writes `tensors` (name, shape, row-major values) and `meta` under `key`.
pub(crate) fn save(
    path: &Path,
    key: &str,
    meta: String,
    tensors: &[(&str, Vec<usize>, &[f32])],
) -> Result<()> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), data)| {
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                    .expect("shape matches data");
            (name.to_string(), view)
        })
        .collect::<Vec<_>>();
    let metadata = HashMap::from([(key.to_string(), meta)]);
    safetensors::serialize_to_file(views, Some(metadata), path).map_err(|e| Error::Io {
        file: path.display().to_string(),
        source: std::io::Error::other(e.to_string()),
    })
}

/// A file read by [`load`]: its metadata JSON and its tensors, taken out by name.
pub(crate) struct Loaded {
    file: String,
    pub meta: String,
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

/// Reads every f32 tensor of a file written by [`save`] and the metadata under `key`.
fn load(path: &Path, key: &str) -> Result<Loaded> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        file: file.clone(),
        source,
    })?;
    let invalid = |field: &str, expected: &str, found: String| Error::Invalid {
        file: file.clone(),
        field: field.to_string(),
        expected: expected.to_string(),
        found,
    };
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| invalid("header", "a safetensors file", e.to_string()))?;
    let meta = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(key))
        .ok_or_else(|| invalid(key, "metadata", "none".into()))?
        .clone();
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| invalid("tensors", "a safetensors file", e.to_string()))?;
    let mut tensors = HashMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != safetensors::Dtype::F32 {
            return Err(invalid(&name, "dtype F32", format!("{:?}", view.dtype())));
        }
        let values = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        tensors.insert(name, (view.shape().to_vec(), values));
    }
    Ok(Loaded {
        file,
        meta,
        tensors,
    })
}

/// What kind of weights file a model writes: its metadata key, the metadata's name in
/// errors, and the layout version it must have.
pub(crate) struct Kind {
    pub key: &'static str,
    pub what: &'static str,
    pub format: u32,
}

/// Reads a file of `kind` written by [`save`] and its metadata, parsed as `M`; `format`
/// reads the metadata's layout version.
pub(crate) fn read<M: serde::de::DeserializeOwned>(
    path: &Path,
    kind: &Kind,
    format: impl Fn(&M) -> u32,
) -> Result<(Loaded, M)> {
    let file = load(path, kind.key)?;
    let meta: M = serde_json::from_str(&file.meta)
        .map_err(|e| file.invalid(kind.key, kind.what, e.to_string()))?;
    if format(&meta) != kind.format {
        let expected = kind.format.to_string();
        return Err(file.invalid("format", &expected, format(&meta).to_string()));
    }
    Ok((file, meta))
}

impl Loaded {
    /// The error for a bad field of this file.
    pub fn invalid(&self, field: &str, expected: &str, found: impl Into<String>) -> Error {
        Error::Invalid {
            file: self.file.clone(),
            field: field.to_string(),
            expected: expected.to_string(),
            found: found.into(),
        }
    }

    /// The shape of tensor `name`.
    pub fn shape(&self, name: &str) -> Result<&[usize]> {
        self.tensors
            .get(name)
            .map(|(shape, _)| shape.as_slice())
            .ok_or_else(|| self.invalid(name, "an f32 tensor", "none"))
    }

    /// Takes tensor `name`, which must have shape `shape`.
    pub fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let found = self.shape(name)?;
        if found != shape {
            return Err(self.invalid(name, &format!("shape {shape:?}"), format!("{found:?}")));
        }
        Ok(self.tensors.remove(name).expect("checked above").1)
    }
}
