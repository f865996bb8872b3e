//! Opening a GGUF file: header and metadata through candle's `gguf_file`, validation that it
//! is a complete Gemma 3 file, typed metadata look-ups, and tensors dequantized to f32.
//!
//! Tensors are read on demand with their own file handle, so a caller may load only the
//! blocks it needs, and may load several tensors in parallel.

use crate::{Error, Result};
use candle_core::quantized::gguf_file::{Content, TensorInfo, Value};
use candle_core::quantized::{ggml_file, GgmlDType};
use candle_core::{Device, Tensor};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The only architecture saener's forward pass implements.
pub const ARCHITECTURE: &str = "gemma3";

/// An opened, validated GGUF file. Holds the metadata and tensor directory, not the tensors.
#[derive(Debug)]
pub struct GgufFile {
    path: PathBuf,
    content: Content,
}

impl GgufFile {
    /// Parses the header, metadata and tensor directory of `path`, and checks that the
    /// architecture is `gemma3` and that every tensor's data lies inside the file (so a
    /// truncated download fails here, naming the file, rather than mid-load).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        let file_len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        Self::read(path, &mut BufReader::new(file), file_len)
    }

    /// [`GgufFile::open`] on a reader over `file_len` bytes; `path` names the file in errors
    /// and is where tensors will be read from.
    pub fn read(path: PathBuf, reader: &mut (impl Read + Seek), file_len: u64) -> Result<Self> {
        let content = Content::read(reader).map_err(|e| Error::Gguf {
            path: path.clone(),
            reason: format!("cannot read header ({e}); the file may be truncated or corrupt"),
        })?;
        let gguf = Self { path, content };
        let found = gguf.metadata_str("general.architecture")?;
        if found != ARCHITECTURE {
            return Err(Error::Architecture {
                path: gguf.path.clone(),
                found: found.to_string(),
                expected: ARCHITECTURE.to_string(),
            });
        }
        for (name, info) in &gguf.content.tensor_infos {
            let end = tensor_bytes(info)
                .and_then(|n| gguf.data_start(info)?.checked_add(n as u64))
                .filter(|&end| end <= file_len);
            if end.is_none() {
                return Err(Error::Gguf {
                    path: gguf.path.clone(),
                    reason: format!(
                        "truncated or corrupt: tensor '{name}' (shape {:?}, offset {}) does not \
                         lie within the file's {file_len} bytes",
                        info.shape.dims(),
                        info.offset
                    ),
                });
            }
        }
        Ok(gguf)
    }

    /// The parsed header: metadata and tensor directory.
    pub fn content(&self) -> &Content {
        &self.content
    }

    /// The file this was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// All metadata key/values, as candle parsed them.
    pub fn metadata(&self) -> &std::collections::HashMap<String, Value> {
        &self.content.metadata
    }

    fn metadata_value(&self, key: &str) -> Result<&Value> {
        self.content
            .metadata
            .get(key)
            .ok_or_else(|| self.metadata_error(key, "missing".to_string()))
    }

    fn metadata_error(&self, key: &str, reason: String) -> Error {
        Error::Metadata {
            path: self.path.clone(),
            key: key.to_string(),
            reason,
        }
    }

    /// A string metadata value.
    pub fn metadata_str(&self, key: &str) -> Result<&str> {
        self.metadata_value(key)?
            .to_string()
            .map(String::as_str)
            .map_err(|e| self.metadata_error(key, e.to_string()))
    }

    /// An unsigned integer metadata value, whatever integer width the file stored it in.
    pub fn metadata_usize(&self, key: &str) -> Result<usize> {
        let value = self.metadata_value(key)?;
        let n: i128 = match *value {
            Value::U8(v) => v.into(),
            Value::I8(v) => v.into(),
            Value::U16(v) => v.into(),
            Value::I16(v) => v.into(),
            Value::U32(v) => v.into(),
            Value::I32(v) => v.into(),
            Value::U64(v) => v.into(),
            Value::I64(v) => v.into(),
            _ => {
                return Err(self.metadata_error(
                    key,
                    format!("expected an integer, found {:?}", value.value_type()),
                ))
            }
        };
        usize::try_from(n).map_err(|_| self.metadata_error(key, format!("{n} is out of range")))
    }

    /// A floating-point metadata value (f32 or f64 in the file).
    pub fn metadata_f64(&self, key: &str) -> Result<f64> {
        match *self.metadata_value(key)? {
            Value::F32(v) => Ok(v.into()),
            Value::F64(v) => Ok(v),
            ref other => Err(self.metadata_error(
                key,
                format!("expected a float, found {:?}", other.value_type()),
            )),
        }
    }

    /// Whether the file has a tensor called `name`.
    pub fn has_tensor(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    /// Names of all tensors, sorted.
    pub fn tensor_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .content
            .tensor_infos
            .keys()
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        names
    }

    /// A tensor's storage type and shape (candle order: outermost first, so a weight matrix
    /// is `[out_features, in_features]`).
    pub fn tensor_type(&self, name: &str) -> Result<(GgmlDType, Vec<usize>)> {
        let info = self.info(name)?;
        Ok((info.ggml_dtype, info.shape.dims().to_vec()))
    }

    fn info(&self, name: &str) -> Result<&TensorInfo> {
        self.content
            .tensor_infos
            .get(name)
            .ok_or_else(|| Error::MissingTensor {
                path: self.path.clone(),
                name: name.to_string(),
            })
    }

    /// Where the tensor's bytes start; `None` if that overflows (a corrupt offset), which
    /// [`GgufFile::read`] rules out for every tensor of an opened file.
    fn data_start(&self, info: &TensorInfo) -> Option<u64> {
        self.content.tensor_data_offset.checked_add(info.offset)
    }

    /// Checks that tensor `name` exists with shape `expected_shape`.
    pub fn check_shape(&self, name: &str, expected_shape: &[usize]) -> Result<()> {
        let info = self.info(name)?;
        if info.shape.dims() != expected_shape {
            return Err(Error::Shape {
                path: self.path.clone(),
                name: name.to_string(),
                found: info.shape.dims().to_vec(),
                expected: expected_shape.to_vec(),
            });
        }
        Ok(())
    }

    /// The tensor's bytes exactly as stored (GGML blocks), after checking its shape.
    pub fn tensor_raw(&self, name: &str, expected_shape: &[usize]) -> Result<(GgmlDType, Vec<u8>)> {
        self.check_shape(name, expected_shape)?;
        let info = self.info(name)?;
        let io = |e| Error::io(&self.path, e);
        let mut file = File::open(&self.path).map_err(io)?;
        let start = self.data_start(info).expect("checked on open");
        file.seek(SeekFrom::Start(start)).map_err(io)?;
        let mut raw = vec![0u8; tensor_bytes(info).expect("checked on open")];
        file.read_exact(&mut raw).map_err(io)?;
        Ok((info.ggml_dtype, raw))
    }

    /// Tensor `name`, checked to have shape `expected_shape` and dequantized to f32.
    pub fn tensor_f32(&self, name: &str, expected_shape: &[usize]) -> Result<Tensor> {
        let (dtype, raw) = self.tensor_raw(name, expected_shape)?;
        let tensor = if dtype == GgmlDType::F32 {
            let values = raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect::<Vec<_>>();
            Tensor::from_vec(values, expected_shape, &Device::Cpu)?
        } else {
            ggml_file::qtensor_from_ggml(dtype, &raw, expected_shape.to_vec(), &Device::Cpu)?
                .dequantize(&Device::Cpu)?
        };
        Ok(tensor)
    }
}

/// Bytes a tensor occupies in the file; `None` if its shape's size overflows.
fn tensor_bytes(info: &TensorInfo) -> Option<usize> {
    let elements = info
        .shape
        .dims()
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))?;
    (elements / info.ggml_dtype.block_size()).checked_mul(info.ggml_dtype.type_size())
}
