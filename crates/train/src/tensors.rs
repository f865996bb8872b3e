//! Reading and writing the flat f32 / f64 / u64 / bf16 tensors of checkpoints and exported
//! SAEs.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, View};

use crate::store::atomic_replace;
use crate::{io_err, Error, Result};

/// A borrowed tensor to write.
pub(crate) enum Out<'a> {
    F32(&'a [f32], Vec<usize>),
    F64(&'a [f64], Vec<usize>),
    U64(&'a [u64], Vec<usize>),
    /// bfloat16 values as their bit patterns.
    Bf16(&'a [u16], Vec<usize>),
}

impl View for Out<'_> {
    fn dtype(&self) -> Dtype {
        match self {
            Out::F32(..) => Dtype::F32,
            Out::F64(..) => Dtype::F64,
            Out::U64(..) => Dtype::U64,
            Out::Bf16(..) => Dtype::BF16,
        }
    }

    fn shape(&self) -> &[usize] {
        match self {
            Out::F32(_, s) | Out::F64(_, s) | Out::U64(_, s) | Out::Bf16(_, s) => s,
        }
    }

    // Bytes are produced one tensor at a time as the file is written, so saving never holds
    // a second copy of all parameters.
    fn data(&self) -> Cow<'_, [u8]> {
        match self {
            Out::F32(v, _) => Cow::Owned(v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            Out::F64(v, _) => Cow::Owned(v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            Out::U64(v, _) => Cow::Owned(v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            Out::Bf16(v, _) => Cow::Owned(v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        }
    }

    fn data_len(&self) -> usize {
        match self {
            Out::F32(v, _) => v.len() * 4,
            Out::F64(v, _) => v.len() * 8,
            Out::U64(v, _) => v.len() * 8,
            Out::Bf16(v, _) => v.len() * 2,
        }
    }
}

/// Writes `tensors` (and string `metadata`) to `path` atomically.
pub(crate) fn write(
    path: &Path,
    tensors: Vec<(&str, Out<'_>)>,
    metadata: HashMap<String, String>,
) -> Result<()> {
    atomic_replace(path, |tmp| {
        safetensors::serialize_to_file(tensors, Some(metadata), tmp).map_err(|e| {
            Error::Safetensors {
                path: tmp.to_owned(),
                reason: e.to_string(),
            }
        })
    })
}

/// A safetensors file read into memory.
pub(crate) struct In {
    path: std::path::PathBuf,
    bytes: Vec<u8>,
}

impl In {
    pub(crate) fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(io_err(path))?;
        let file = In {
            path: path.to_owned(),
            bytes,
        };
        file.parse()?;
        Ok(file)
    }

    fn err(&self, reason: impl Into<String>) -> Error {
        Error::Safetensors {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    fn parse(&self) -> Result<SafeTensors<'_>> {
        SafeTensors::deserialize(&self.bytes).map_err(|e| self.err(e.to_string()))
    }

    /// The string metadata entry `key`.
    pub(crate) fn metadata(&self, key: &str) -> Result<String> {
        let (_, meta) =
            SafeTensors::read_metadata(&self.bytes).map_err(|e| self.err(e.to_string()))?;
        meta.metadata()
            .as_ref()
            .and_then(|m| m.get(key).cloned())
            .ok_or_else(|| self.err(format!("metadata key '{key}' is missing")))
    }

    /// The raw little-endian bytes of tensor `name`, checked for dtype and shape.
    fn raw(&self, name: &str, dtype: Dtype, shape: &[usize]) -> Result<Vec<u8>> {
        self.raw_matching(name, dtype, shape, |s| s == shape)
    }

    /// [`Self::raw`] with the shape checked by `fits` (`expected` is only for the message).
    fn raw_matching(
        &self,
        name: &str,
        dtype: Dtype,
        expected: &[usize],
        fits: impl Fn(&[usize]) -> bool,
    ) -> Result<Vec<u8>> {
        let st = self.parse()?;
        let t = st
            .tensor(name)
            .map_err(|_| self.err(format!("tensor '{name}' is missing")))?;
        if t.dtype() != dtype || !fits(t.shape()) {
            return Err(self.err(format!(
                "tensor '{name}' is {:?} {:?}, expected {dtype:?} {expected:?}",
                t.dtype(),
                t.shape()
            )));
        }
        Ok(t.data().to_vec())
    }

    pub(crate) fn f32(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let raw = self.raw(name, Dtype::F32, shape)?;
        Ok(raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    pub(crate) fn f64(&self, name: &str, shape: &[usize]) -> Result<Vec<f64>> {
        let raw = self.raw(name, Dtype::F64, shape)?;
        Ok(raw
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("chunks of 8")))
            .collect())
    }

    pub(crate) fn u64(&self, name: &str, shape: &[usize]) -> Result<Vec<u64>> {
        let raw = self.raw(name, Dtype::U64, shape)?;
        Ok(raw
            .chunks_exact(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("chunks of 8")))
            .collect())
    }

    /// A bf16 tensor of shape `[rows, width]`, any number of rows, as bit patterns.
    pub(crate) fn bf16_rows(&self, name: &str, width: usize) -> Result<Vec<u16>> {
        let raw = self.raw_matching(name, Dtype::BF16, &[0, width], |s| {
            s.len() == 2 && s[1] == width
        })?;
        Ok(raw
            .chunks_exact(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .collect())
    }
}
