//! Gemma Scope (Gemma 2): `params.npz`, a zip of `.npy` arrays as `numpy.savez` writes them:
//! `W_enc [d_in, d_sae]`, `W_dec [d_sae, d_in]`, `b_enc [d_sae]`, `b_dec [d_in]`,
//! `threshold [d_sae]`.
//!
//! Encode: JumpReLU on `x·W_enc + b_enc` — no `b_dec` subtraction. There is no config file; the
//! layer is read from the release's path (`layer_12/width_16k/average_l0_71/params.npz`).

use std::io::{Cursor, Read, Write};
use std::path::Path;

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use super::{
    create_dir, expect_shape, layer_from_name, locate, reject_massive_norm_rule, Dtype, Format,
};
use crate::npy;
use crate::sae::{check_finite, Source, Weights};
use crate::{Activation, Error, Result, Sae, SaeConfig};

/// The weights file that marks a Gemma Scope folder.
pub const WEIGHTS_FILE: &str = "params.npz";

/// Loads a Gemma Scope SAE from its folder or its `params.npz`.
pub fn load(path: impl AsRef<Path>) -> Result<Sae> {
    let (dir, file) = locate(path.as_ref(), WEIGHTS_FILE);
    let bytes = std::fs::read(&file).map_err(|e| Error::io(&file, e))?;
    let mut zip = ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| Error::corrupt(&file, format!("not a readable .npz (zip) archive: {e}")))?;
    let members: Vec<String> = zip.file_names().map(String::from).collect();
    let mut array = |name: &str| -> Result<(Vec<usize>, Vec<f32>, Dtype)> {
        let member = format!("{name}.npy");
        let mut entry = zip.by_name(&member).map_err(|_| Error::MissingTensor {
            path: file.clone(),
            name: name.into(),
            found: members.join(", "),
        })?;
        let mut buf = Vec::with_capacity(entry.size() as usize);
        entry
            .read_to_end(&mut buf)
            .map_err(|e| Error::corrupt(&file, format!("{member}: {e}")))?;
        let (shape, data, dtype) = npy::parse(&buf, &file, &member)?;
        check_finite(&file, name, &data)?;
        Ok((shape, data, dtype))
    };

    let (shape, w_enc, dtype) = array("W_enc")?;
    let &[d_in, d_sae] = &shape[..] else {
        return Err(Error::Shape {
            path: file,
            name: "W_enc".into(),
            found: shape,
            expected: "2 dimensions [d_in, d_sae]".into(),
        });
    };
    let mut expect = |name: &str, dims: &[usize], labels: &str| -> Result<Vec<f32>> {
        let (found, data, _) = array(name)?;
        expect_shape(&file, name, &found, dims, labels)?;
        Ok(data)
    };
    let w_dec = expect("W_dec", &[d_sae, d_in], "d_sae, d_in")?;
    let b_enc = expect("b_enc", &[d_sae], "d_sae")?;
    let b_dec = expect("b_dec", &[d_in], "d_in")?;
    let threshold = expect("threshold", &[d_sae], "d_sae")?;

    // The release path is `layer_L/width_W/average_l0_X/`; look a few folders up for the layer.
    let hook_layer = dir
        .ancestors()
        .take(3)
        .filter_map(|a| a.file_name()?.to_str())
        .find_map(layer_from_name);
    let config = SaeConfig {
        hook_layer,
        ..SaeConfig::new(d_in, d_sae, Activation::JumpRelu)
    };
    let weights = Weights {
        w_enc,
        b_enc,
        w_dec,
        b_dec,
        threshold: Some(threshold),
    };
    let source = Source {
        format: Format::GemmaScope,
        path: file,
        dtype,
    };
    Sae::from_parts(config, weights, Some(source))
}

/// Saves `sae` as `dir/params.npz` (f32, uncompressed like `numpy.savez`).
///
/// The layout is JumpReLU-only: ReLU is written with zero thresholds and BatchTopK with its
/// inference threshold on every feature, both exact; TopK, and BatchTopK with a TopK rule for
/// massive-norm rows, cannot be expressed and are errors. An SAE that subtracts `b_dec` is
/// re-expressed with `b_dec·W_enc` folded into `b_enc`.
/// Metadata (layer, model) is not kept: the format has nowhere to put it.
pub fn save(sae: &Sae, dir: impl AsRef<Path>) -> Result<()> {
    let dir = dir.as_ref();
    reject_massive_norm_rule(sae, dir, "saved as Gemma Scope params.npz")?;
    let d_sae = sae.config().d_sae;
    let threshold = match sae.config().activation {
        Activation::JumpRelu => sae.threshold().map(<[f32]>::to_vec).unwrap_or_default(),
        Activation::Relu => vec![0.0; d_sae],
        Activation::BatchTopK { threshold, .. } => vec![threshold; d_sae],
        Activation::TopK { .. } => {
            return Err(Error::Unsupported {
                path: dir.into(),
                action: "saved as Gemma Scope params.npz",
                reason: "a TopK SAE has no JumpReLU equivalent; save it as Gemma Scope 2, \
                         SAELens or sparsify"
                    .into(),
            })
        }
    };
    let sae = sae.with_b_dec_applied(false);
    let (d_in, d_sae) = (sae.config().d_in, sae.config().d_sae);
    let arrays: [(&str, Vec<usize>, &[f32]); 5] = [
        ("W_enc", vec![d_in, d_sae], sae.w_enc()),
        ("W_dec", vec![d_sae, d_in], sae.w_dec()),
        ("b_enc", vec![d_sae], sae.b_enc()),
        ("b_dec", vec![d_in], sae.b_dec()),
        ("threshold", vec![d_sae], &threshold),
    ];
    create_dir(dir)?;
    let path = dir.join(WEIGHTS_FILE);
    let zip_error = |e: zip::result::ZipError| Error::io(&path, std::io::Error::other(e));
    let out = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
    let mut zip = ZipWriter::new(std::io::BufWriter::new(out));
    for (name, shape, data) in arrays {
        let bytes = npy::encode(&shape, data);
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Stored)
            .large_file(bytes.len() as u64 >= u32::MAX as u64);
        zip.start_file(format!("{name}.npy"), options)
            .map_err(zip_error)?;
        zip.write_all(&bytes).map_err(|e| Error::io(&path, e))?;
    }
    zip.finish()
        .map_err(zip_error)?
        .flush()
        .map_err(|e| Error::io(&path, e))
}
