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
        let start = reader.stream_position().map_err(|e| Error::io(&path, e))?;
        check_header(reader, file_len).map_err(|reason| Error::Gguf {
            path: path.clone(),
            reason,
        })?;
        reader
            .seek(SeekFrom::Start(start))
            .map_err(|e| Error::io(&path, e))?;
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

/// Walks the GGUF header before candle parses it, checking every length and count against
/// the bytes left in the file: candle allocates whatever a (corrupt) length says, recurses
/// into nested arrays, and divides by `general.alignment`. The error says what is wrong and
/// at which byte offset.
pub(crate) fn check_header(
    reader: &mut impl Read,
    file_len: u64,
) -> std::result::Result<(), String> {
    let mut h = Header {
        reader,
        at: 0,
        len: file_len,
        wide: true,
    };
    if h.bytes(4)? != b"GGUF" {
        return Err("no GGUF magic at byte 0 (not a GGUF file)".into());
    }
    let version = h.u32()?;
    h.wide = match version {
        1 => false,
        2 | 3 => true,
        _ => {
            return Err(format!(
                "unsupported GGUF version {version} (expected 1, 2 or 3)"
            ))
        }
    };
    // A tensor takes at least a name length, a dimension count, a type and an offset.
    let tensors = h.count(4 + 4 + 4 + 8, "tensor count")?;
    let kvs = h.count(4 + 4 + 1, "metadata count")?;
    for _ in 0..kvs {
        let key = h.string()?;
        let kind = h.u32()?;
        if key == b"general.alignment" {
            let at = h.at;
            let alignment = match kind {
                0 | 1 => u64::from(h.bytes(1)?[0]),
                2 | 3 => u64::from(u16::from_le_bytes(h.array()?)),
                4 | 5 => u64::from(u32::from_le_bytes(h.array()?)),
                _ => 1, // candle then uses its default alignment
            };
            if alignment == 0 {
                return Err(format!("general.alignment at byte {at} is 0"));
            }
            if kind <= 5 {
                continue;
            }
        }
        h.value(kind, 0)?;
    }
    for _ in 0..tensors {
        h.string()?;
        let at = h.at;
        let dims = h.u32()?;
        if dims > 4 {
            return Err(format!(
                "a tensor at byte {at} has {dims} dimensions (GGML allows at most 4)"
            ));
        }
        h.bytes(dims as usize * if h.wide { 8 } else { 4 })?;
        h.bytes(4 + 8)?; // type, offset: checked by candle and GgufFile::read
    }
    Ok(())
}

/// A reader that knows how many bytes the file has left.
struct Header<'r, R> {
    reader: &'r mut R,
    at: u64,
    len: u64,
    /// Version 2 and 3 lengths and counts are u64; version 1's are u32.
    wide: bool,
}

impl<R: Read> Header<'_, R> {
    fn bytes(&mut self, n: usize) -> std::result::Result<Vec<u8>, String> {
        if n as u64 > self.len.saturating_sub(self.at) {
            return Err(format!(
                "truncated or corrupt: {n} bytes needed at byte {}, but the file has {}",
                self.at, self.len
            ));
        }
        let mut buf = vec![0; n];
        self.reader
            .read_exact(&mut buf)
            .map_err(|e| format!("reading byte {}: {e}", self.at))?;
        self.at += n as u64;
        Ok(buf)
    }

    fn array<const N: usize>(&mut self) -> std::result::Result<[u8; N], String> {
        Ok(self.bytes(N)?.try_into().expect("N bytes"))
    }

    fn u32(&mut self) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// A length or count, at most what the rest of the file can hold at `min` bytes each.
    fn count(&mut self, min: u64, what: &str) -> std::result::Result<usize, String> {
        let at = self.at;
        let n = if self.wide {
            u64::from_le_bytes(self.array()?)
        } else {
            u64::from(self.u32()?)
        };
        let room = self.len.saturating_sub(self.at) / min.max(1);
        if n > room {
            return Err(format!(
                "truncated or corrupt: {what} {n} at byte {at}, but the {} bytes left hold at most {room}",
                self.len - self.at
            ));
        }
        Ok(n as usize)
    }

    fn string(&mut self) -> std::result::Result<Vec<u8>, String> {
        let n = self.count(1, "string length")?;
        self.bytes(n)
    }

    fn value(&mut self, kind: u32, depth: usize) -> std::result::Result<(), String> {
        let size = match kind {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            10..=12 => 8,
            8 => return self.string().map(drop),
            9 => {
                if depth > 2 {
                    return Err(format!("arrays nested too deep at byte {}", self.at));
                }
                let at = self.at;
                let inner = self.u32()?;
                // The least bytes an element takes: a string's length, an array's type and
                // length, else one byte.
                let min = match inner {
                    8 if self.wide => 8,
                    8 => 4,
                    9 => 8,
                    0..=12 => 1,
                    _ => return Err(format!("unknown array value type {inner} at byte {at}")),
                };
                let n = self.count(min, "array length")?;
                for _ in 0..n {
                    self.value(inner, depth + 1)?;
                }
                return Ok(());
            }
            _ => {
                return Err(format!(
                    "unknown metadata value type {kind} at byte {}",
                    self.at - 4
                ))
            }
        };
        self.bytes(size).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fuzz seed: a small valid GGUF (gemma3 metadata, a tiny vocabulary, one tensor).
    fn seed() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fuzz/seeds/gguf/tiny_gemma3"
        ))
        .unwrap()
    }

    fn open(bytes: &[u8]) -> Result<GgufFile> {
        let mut reader = std::io::Cursor::new(bytes);
        GgufFile::read("x.gguf".into(), &mut reader, bytes.len() as u64)
    }

    fn error(bytes: &[u8]) -> String {
        let message = open(bytes).unwrap_err().to_string();
        assert!(
            message.starts_with("x.gguf: not a valid GGUF file: "),
            "{message}"
        );
        message
    }

    #[test]
    fn corrupt_headers_are_errors_naming_the_byte() {
        let good = seed();
        open(&good).unwrap();
        let patch = |at: usize, bytes: &[u8]| {
            let mut b = good.clone();
            b[at..at + bytes.len()].copy_from_slice(bytes);
            b
        };
        assert!(error(&patch(0, b"GGML")).contains("no GGUF magic"));
        assert!(error(&patch(4, &[9, 0, 0, 0])).contains("unsupported GGUF version 9"));
        // The first key's length (byte 24) claims far more than the file.
        let message = error(&patch(24, &u64::MAX.to_le_bytes()));
        assert!(
            message.contains("string length") && message.contains("at byte 24"),
            "{message}"
        );
        // general.alignment (the second key; its u32 value follows the key and its type).
        let key = b"general.alignment";
        let at = good.windows(key.len()).position(|w| w == key).unwrap() + key.len() + 4;
        assert!(error(&patch(at, &[0, 0, 0, 0])).contains("general.alignment at byte"));
        let message = error(&good[..good.len() / 2]);
        assert!(message.contains("truncated"), "{message}");
        // A tensor offset that overflows is caught without overflowing.
        let name = b"token_embd.weight";
        let at = good.windows(name.len()).position(|w| w == name).unwrap() + name.len();
        let offset = at + 4 + 2 * 8 + 4;
        let message = error(&patch(offset, &u64::MAX.to_le_bytes()));
        assert!(message.contains("does not lie within"), "{message}");
    }
}
