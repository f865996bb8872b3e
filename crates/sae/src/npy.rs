//! `.npy` arrays (NumPy format versions 1–3): little-endian `f4`, `f8` or `f2`, C order.
//! Reading serves golden files; writing serves the `params.npz` writer and `saener residuals`.
//!
//! Enough for Gemma Scope's `params.npz` members and saener's golden arrays; any other layout
//! (big-endian, Fortran order, integer dtypes) is a clear error rather than a guess.

use std::path::Path;

use crate::format::Dtype;
use crate::{Error, Result};

const MAGIC: &[u8] = b"\x93NUMPY";

/// Reads a `.npy` file as `(shape, values)`, values converted to `f32`, row-major.
pub fn read(path: impl AsRef<Path>) -> Result<(Vec<usize>, Vec<f32>)> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let (shape, data, _) = parse(&bytes, path, "array")?;
    Ok((shape, data))
}

/// Parses `.npy` bytes; errors name `path` and `member` (the array's name inside an `.npz`).
pub(crate) fn parse(
    bytes: &[u8],
    path: &Path,
    member: &str,
) -> Result<(Vec<usize>, Vec<f32>, Dtype)> {
    let bad = |reason: String| Error::corrupt(path, format!("{member}: {reason}"));
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(bad("not a .npy array (no \\x93NUMPY magic)".into()));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(bad(format!("unsupported .npy format version {v}"))),
    };
    let header = bytes
        .get(start..start + header_len)
        .ok_or_else(|| bad("header runs past the end of the data".into()))?;
    let header = std::str::from_utf8(header).map_err(|_| bad("header is not text".into()))?;

    let descr = header_value(header, "descr")
        .and_then(|v| v.strip_prefix(['\'', '"']))
        .and_then(|v| v.split(['\'', '"']).next())
        .ok_or_else(|| bad(format!("header has no 'descr': {header}")))?;
    let (dtype, width) = match descr {
        "<f4" => (Dtype::F32, 4),
        "<f8" => (Dtype::F64, 8),
        "<f2" => (Dtype::F16, 2),
        other => {
            return Err(bad(format!(
                "dtype '{other}' is not supported (expected little-endian float: <f4, <f8, <f2)"
            )))
        }
    };
    if header_value(header, "fortran_order").is_some_and(|v| v.starts_with("True")) {
        return Err(bad("Fortran-order arrays are not supported".into()));
    }
    let shape_text = header_value(header, "shape")
        .and_then(|v| v.strip_prefix('('))
        .and_then(|v| v.split(')').next())
        .ok_or_else(|| bad(format!("header has no 'shape': {header}")))?;
    let shape = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| bad(format!("bad shape ({shape_text})")))?;

    let count: usize = shape.iter().product();
    let body = &bytes[start + header_len..];
    if body.len() < count * width {
        return Err(bad(format!(
            "shape {shape:?} needs {} bytes of data, the file has {}",
            count * width,
            body.len()
        )));
    }
    let body = &body[..count * width];
    let data = match dtype {
        Dtype::F32 => body
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F64 => body
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("8-byte chunk")) as f32)
            .collect(),
        _ => body
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
    };
    Ok((shape, data, dtype))
}

/// Writes a little-endian `f4` array of `shape` as a `.npy` file.
pub fn write(path: impl AsRef<Path>, shape: &[usize], data: &[f32]) -> Result<()> {
    let path = path.as_ref();
    std::fs::write(path, encode(shape, data)).map_err(|e| Error::io(path, e))
}

/// `.npy` 1.0 bytes for a little-endian `f4` array.
pub(crate) fn encode(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let dims = match shape {
        [d] => format!("{d},"),
        _ => shape
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({dims}), }}");
    // NumPy pads the header with spaces so the data starts on a 64-byte boundary.
    let unpadded = MAGIC.len() + 4 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + header.len() + 4 * data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// The text after `'key':` in a NumPy header dict, leading spaces trimmed.
fn header_value<'h>(header: &'h str, key: &str) -> Option<&'h str> {
    let at = header
        .find(&format!("'{key}':"))
        .or_else(|| header.find(&format!("\"{key}\":")))?;
    Some(header[at + key.len() + 3..].trim_start())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_parse_round_trips() {
        for shape in [vec![2, 3], vec![5], vec![]] {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 1.0).collect();
            let bytes = encode(&shape, &data);
            assert_eq!(
                bytes[8..10],
                ((bytes.len() - 10 - 4 * n) as u16).to_le_bytes()
            );
            assert_eq!((bytes.len() - 4 * n) % 64, 0, "data is 64-byte aligned");
            let (s, d, dtype) = parse(&bytes, Path::new("x.npy"), "x").unwrap();
            assert_eq!((s, d, dtype), (shape, data, Dtype::F32));
        }
    }

    #[test]
    fn truncated_data_is_an_error_naming_the_member() {
        let bytes = encode(&[4, 4], &[1.0; 16]);
        let err = parse(
            &bytes[..bytes.len() - 3],
            Path::new("params.npz"),
            "W_enc.npy",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("params.npz") && err.contains("W_enc.npy"),
            "{err}"
        );
    }
}
