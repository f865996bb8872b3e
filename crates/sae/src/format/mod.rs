//! How an SAE is stored: one module per on-disk format, each with `load` and `save`, and
//! [`load_any`], which tells them apart by the files present.
//!
//! | format | files | encode convention |
//! |---|---|---|
//! | [`gemmascope2`] (saener's own) | `params.safetensors` + `config.json` | no `b_dec` subtraction |
//! | [`gemmascope`] | `params.npz` | JumpReLU, no `b_dec` subtraction |
//! | [`saelens`] | `cfg.json` + `sae_weights.safetensors` | `apply_b_dec_to_input` in cfg |
//! | [`sparsify`] | `cfg.json` + `sae.safetensors` | TopK, always subtracts `b_dec` |
//!
//! Writers for formats that fix the convention fold `b_dec·W_enc` into `b_enc`, so the saved
//! file computes the same codes under that format's own rule.

pub mod gemmascope;
pub mod gemmascope2;
pub mod saelens;
pub mod sparsify;

use std::fmt;
use std::path::{Path, PathBuf};

use safetensors::tensor::{SafeTensors, TensorView};
use serde_json::{Map, Value};

use crate::sae::check_finite;
use crate::{Activation, Error, Result, Sae};

/// An on-disk SAE format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Gemma Scope (Gemma 2): `params.npz`.
    GemmaScope,
    /// Gemma Scope 2 (Gemma 3): `params.safetensors` + `config.json`; saener's own format.
    GemmaScope2,
    /// SAELens: `cfg.json` + `sae_weights.safetensors`.
    SaeLens,
    /// EleutherAI sparsify: `cfg.json` + `sae.safetensors`.
    Sparsify,
}

/// Detection order and the file that marks each format.
const MARKERS: [(Format, &str); 4] = [
    (Format::GemmaScope2, gemmascope2::WEIGHTS_FILE),
    (Format::GemmaScope, gemmascope::WEIGHTS_FILE),
    (Format::SaeLens, saelens::WEIGHTS_FILE),
    (Format::Sparsify, sparsify::WEIGHTS_FILE),
];

impl Format {
    /// Finds the format of the SAE at `path`: a folder, or a weights or config file in it.
    pub fn detect(path: impl AsRef<Path>) -> Result<Format> {
        let path = path.as_ref();
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.is_file() {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if let Some((format, _)) = MARKERS.iter().find(|(_, file)| *file == name) {
                return Ok(*format);
            }
            if matches!(name, "cfg.json" | "config.json") {
                return Format::detect(parent_dir(path));
            }
            return Err(Error::NotFound {
                path: path.into(),
                looked_for: looked_for(),
            });
        }
        if let Some((format, _)) = MARKERS.iter().find(|(_, file)| path.join(file).is_file()) {
            return Ok(*format);
        }
        // A run folder (sparsify, Gemma Scope releases) holds one SAE per subfolder.
        let mut nested: Vec<String> = std::fs::read_dir(path)
            .map_err(|e| Error::io(path, e))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|sub| MARKERS.iter().any(|(_, file)| sub.join(file).is_file()))
            .filter_map(|sub| sub.file_name()?.to_str().map(String::from))
            .collect();
        nested.sort();
        let mut looked_for = looked_for();
        if !nested.is_empty() {
            looked_for += &format!("; its subfolders {} hold SAEs: pass one", nested.join(", "));
        }
        Err(Error::NotFound {
            path: path.into(),
            looked_for,
        })
    }

    /// Loads the SAE at `path` (a folder or its weights file) in this format.
    pub fn load(self, path: impl AsRef<Path>) -> Result<Sae> {
        match self {
            Format::GemmaScope => gemmascope::load(path),
            Format::GemmaScope2 => gemmascope2::load(path),
            Format::SaeLens => saelens::load(path),
            Format::Sparsify => sparsify::load(path),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::GemmaScope => "Gemma Scope",
            Format::GemmaScope2 => "Gemma Scope 2",
            Format::SaeLens => "SAELens",
            Format::Sparsify => "sparsify",
        })
    }
}

/// Loads an SAE in whichever format the files at `path` (a folder or a file in it) are.
pub fn load_any(path: impl AsRef<Path>) -> Result<Sae> {
    let path = path.as_ref();
    Format::detect(path)?.load(path)
}

fn looked_for() -> String {
    let list: Vec<String> = MARKERS
        .iter()
        .map(|(format, file)| format!("{file} ({format})"))
        .collect();
    list.join(", ")
}

/// How weights are (or will be) stored on disk; in memory they are always `f32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    /// 32-bit float.
    F32,
    /// bfloat16: f32's range, 8 significant bits; half the size.
    BF16,
    /// IEEE half precision.
    F16,
    /// 64-bit float (numpy's default), narrowed to f32 on load.
    F64,
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dtype::F32 => "f32",
            Dtype::BF16 => "bf16",
            Dtype::F16 => "f16",
            Dtype::F64 => "f64",
        })
    }
}

fn parent_dir(file: &Path) -> &Path {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// `(folder, weights file)` for a path that is either.
pub(crate) fn locate(path: &Path, weights_file: &str) -> (PathBuf, PathBuf) {
    if path.is_file() {
        (parent_dir(path).to_path_buf(), path.to_path_buf())
    } else {
        (path.to_path_buf(), path.join(weights_file))
    }
}

/// The layer number in a hook or folder name: `blocks.9.hook_resid_post`,
/// `model.layers.9.output`, `layers.9`, `layer_9_width_16k_l0_small`, `layer_12/width_16k`.
pub(crate) fn layer_from_name(name: &str) -> Option<usize> {
    ["blocks.", "layers.", "layers_", "layer_", "layer."]
        .iter()
        .find_map(|prefix| {
            let rest = &name[name.find(prefix)? + prefix.len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
}

/// The layer of a residual-stream (`resid_post`) hook, or `None` when the SAE reads some other
/// site or the layer is unknown; writers use it to name the hook in their own convention.
pub(crate) fn resid_post_layer(sae: &Sae) -> Option<usize> {
    let c = sae.config();
    let layer = c.hook_layer?;
    let resid = match c.hook_name.as_deref() {
        None => true,
        Some(h) => {
            h.ends_with("hook_resid_post")
                || h == format!("model.layers.{layer}.output")
                || h == format!("layers.{layer}")
        }
    };
    resid.then_some(layer)
}

/// Refuses a BatchTopK SAE with a TopK rule for massive-norm rows: only saener's own block in
/// Gemma Scope 2 can express it.
pub(crate) fn reject_massive_norm_rule(sae: &Sae, dir: &Path, action: &'static str) -> Result<()> {
    match sae.config().activation {
        Activation::BatchTopK {
            topk_above_norm: Some(_),
            ..
        } => Err(Error::Unsupported {
            path: dir.into(),
            action,
            reason: "its TopK rule for massive-norm rows has no equivalent in this format; \
                     save it as Gemma Scope 2"
                .into(),
        }),
        _ => Ok(()),
    }
}

pub(crate) fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}

pub(crate) fn write_json(path: &Path, value: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("a JSON value always serializes");
    std::fs::write(path, text + "\n").map_err(|e| Error::io(path, e))
}

/// A JSON config object whose errors name the file and the key (`metadata.hook_name`).
pub(crate) struct JsonConfig {
    path: PathBuf,
    prefix: String,
    map: Map<String, Value>,
}

impl JsonConfig {
    pub(crate) fn read(path: &Path) -> Result<JsonConfig> {
        let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        match serde_json::from_slice(&text) {
            Ok(Value::Object(map)) => Ok(JsonConfig {
                path: path.into(),
                prefix: String::new(),
                map,
            }),
            Ok(_) => Err(Error::config(path, "(top level)", "expected a JSON object")),
            Err(source) => Err(Error::Json {
                path: path.into(),
                source,
            }),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, key: &str, reason: impl Into<String>) -> Error {
        Error::config(&self.path, format!("{}{key}", self.prefix), reason)
    }

    /// The value at `key`; JSON `null` counts as absent, as the Python writers mean it.
    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub(crate) fn usize(&self, key: &str) -> Result<Option<usize>> {
        self.get(key)
            .map(|v| {
                v.as_u64().map(|n| n as usize).ok_or_else(|| {
                    self.error(key, format!("expected a non-negative integer, found {v}"))
                })
            })
            .transpose()
    }

    pub(crate) fn req_usize(&self, key: &str) -> Result<usize> {
        self.usize(key)?
            .ok_or_else(|| self.error(key, "missing (expected a non-negative integer)"))
    }

    pub(crate) fn str(&self, key: &str) -> Result<Option<&str>> {
        self.get(key)
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| self.error(key, format!("expected a string, found {v}")))
            })
            .transpose()
    }

    pub(crate) fn bool(&self, key: &str) -> Result<Option<bool>> {
        self.get(key)
            .map(|v| {
                v.as_bool()
                    .ok_or_else(|| self.error(key, format!("expected true or false, found {v}")))
            })
            .transpose()
    }

    /// The nested object at `key`, its errors prefixed with `key.`.
    pub(crate) fn object(&self, key: &str) -> Result<Option<JsonConfig>> {
        self.get(key)
            .map(|v| match v {
                Value::Object(map) => Ok(JsonConfig {
                    path: self.path.clone(),
                    prefix: format!("{}{key}.", self.prefix),
                    map: map.clone(),
                }),
                other => Err(self.error(key, format!("expected an object, found {other}"))),
            })
            .transpose()
    }
}

/// A safetensors file read into memory, validated on open.
pub(crate) struct TensorFile {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl TensorFile {
    pub(crate) fn read(path: &Path) -> Result<TensorFile> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        if let Err(e) = SafeTensors::deserialize(&bytes) {
            return Err(Error::corrupt(
                path,
                diagnose_safetensors(&bytes, &e.to_string()),
            ));
        }
        Ok(TensorFile {
            path: path.into(),
            bytes,
        })
    }

    fn parsed(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes).expect("validated in TensorFile::read")
    }

    /// `(shape, values as f32, stored dtype)`, checked to be finite.
    pub(crate) fn tensor_any_shape(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>, Dtype)> {
        let st = self.parsed();
        let view = st.tensor(name).map_err(|_| {
            let mut found = st.names();
            found.sort();
            Error::MissingTensor {
                path: self.path.clone(),
                name: name.into(),
                found: found.join(", "),
            }
        })?;
        let (data, dtype) = to_f32(&view).ok_or_else(|| Error::TensorDtype {
            path: self.path.clone(),
            name: name.into(),
            found: format!("{:?}", view.dtype()),
        })?;
        check_finite(&self.path, name, &data)?;
        Ok((view.shape().to_vec(), data, dtype))
    }

    /// Like [`TensorFile::tensor_any_shape`], requiring `shape` (`dims` names its axes).
    pub(crate) fn tensor(&self, name: &str, shape: &[usize], dims: &str) -> Result<Vec<f32>> {
        let (found, data, _) = self.tensor_any_shape(name)?;
        expect_shape(&self.path, name, &found, shape, dims)?;
        Ok(data)
    }
}

pub(crate) fn expect_shape(
    path: &Path,
    name: &str,
    found: &[usize],
    shape: &[usize],
    dims: &str,
) -> Result<()> {
    if found == shape {
        return Ok(());
    }
    Err(Error::Shape {
        path: path.into(),
        name: name.into(),
        found: found.to_vec(),
        expected: format!("{shape:?} = [{dims}]"),
    })
}

/// Explains a safetensors parse failure; for a truncated file (the common case: an
/// interrupted download) it names the first tensor whose bytes run past the end.
fn diagnose_safetensors(bytes: &[u8], error: &str) -> String {
    let Some(len_bytes) = bytes.get(..8) else {
        return format!(
            "{} bytes, shorter than the 8-byte header length ({error})",
            bytes.len()
        );
    };
    let header_len = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes")) as usize;
    let Some(header) = bytes.get(8..8usize.saturating_add(header_len)) else {
        return format!(
            "the header claims {header_len} bytes but the file has {} ({error})",
            bytes.len()
        );
    };
    let available = (bytes.len() - 8 - header_len) as u64;
    let Ok(Value::Object(tensors)) = serde_json::from_slice::<Value>(header) else {
        return format!("unreadable header ({error})");
    };
    let offsets = |info: &Value| -> Option<(u64, u64)> {
        let o = info.get("data_offsets")?.as_array()?;
        Some((o.first()?.as_u64()?, o.get(1)?.as_u64()?))
    };
    let cut = tensors
        .iter()
        .filter_map(|(name, info)| offsets(info).map(|(start, end)| (start, end, name)))
        .filter(|&(_, end, _)| end > available)
        .min();
    match cut {
        Some((start, end, name)) => format!(
            "tensor '{name}' needs bytes {start}..{end} of the data section, which has only \
             {available} bytes ({error})"
        ),
        None => error.to_string(),
    }
}

fn to_f32(view: &TensorView<'_>) -> Option<(Vec<f32>, Dtype)> {
    use safetensors::Dtype as St;
    let b = view.data();
    Some(match view.dtype() {
        St::F32 => (
            b.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F32,
        ),
        St::BF16 => (
            b.chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::BF16,
        ),
        St::F16 => (
            b.chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::F16,
        ),
        St::F64 => (
            b.chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8-byte chunk")) as f32)
                .collect(),
            Dtype::F64,
        ),
        _ => return None,
    })
}

/// Writes `(name, shape, values)` tensors as a safetensors file, converting to `dtype`.
pub(crate) fn write_safetensors(
    path: &Path,
    tensors: &[(&str, Vec<usize>, &[f32])],
    dtype: Dtype,
) -> Result<()> {
    use safetensors::Dtype as St;
    let st_dtype = match dtype {
        Dtype::F32 => St::F32,
        Dtype::BF16 => St::BF16,
        Dtype::F16 => St::F16,
        Dtype::F64 => St::F64,
    };
    let buffers: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, data)| match dtype {
            Dtype::F32 => data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Dtype::BF16 => data
                .iter()
                .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
                .collect(),
            Dtype::F16 => data
                .iter()
                .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                .collect(),
            Dtype::F64 => data
                .iter()
                .flat_map(|&v| f64::from(v).to_le_bytes())
                .collect(),
        })
        .collect();
    let views = tensors
        .iter()
        .zip(&buffers)
        .map(|((name, shape, _), bytes)| {
            let view = TensorView::new(st_dtype, shape.clone(), bytes)
                .expect("shape and byte length agree by construction");
            (*name, view)
        })
        .collect::<Vec<_>>();
    safetensors::serialize_to_file(views, None, path)
        .map_err(|e| Error::io(path, std::io::Error::other(e.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_numbers_come_from_every_naming_convention() {
        for (name, layer) in [
            ("blocks.9.hook_resid_post", Some(9)),
            ("model.layers.12.output", Some(12)),
            ("layers.3", Some(3)),
            ("layer_5_width_16k_l0_small", Some(5)),
            ("gemma-scope/layer_20/width_16k/average_l0_71", Some(20)),
            ("embed_tokens", None),
        ] {
            assert_eq!(layer_from_name(name), layer, "{name}");
        }
    }
}
