//! Gemma Scope 2 (Gemma 3): `params.safetensors` (`w_enc [d_in, d_sae]`, `w_dec [d_sae, d_in]`,
//! `b_enc`, `b_dec`, `threshold`) + `config.json`. saener's own shipped format.
//!
//! Encode: `x·W_enc + b_enc` (no `b_dec` subtraction), then JumpReLU. The official
//! `config.json` has `width`, `architecture` (`jump_relu`), `model_name`, `hf_hook_point_in`
//! (`model.layers.9.output` is block 9's `resid_post`), `l0`, `affine_connection` and `type`;
//! without a `config.json` the layer is read from the folder name (`layer_9_width_16k_l0_small`).
//!
//! saener writes those keys too, so official tooling reads its files, and adds a `saener`
//! object with what they cannot say: the exact activation (TopK, BatchTopK), hook layer and
//! name, the SAE's name and a training record. On load the `saener` object, when present,
//! decides the activation. Tensors load from f32, bf16, f16 or f64; [`save`] writes any.
//! Transcoders (`type` other than `sae`, or `affine_connection`) are rejected.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{
    create_dir, expect_shape, layer_from_name, locate, resid_post_layer, write_json,
    write_safetensors, Dtype, Format, JsonConfig, TensorFile,
};
use crate::sae::{Source, Weights};
use crate::{Activation, Error, Result, Sae, SaeConfig};

/// The weights file that marks a Gemma Scope 2 folder.
pub const WEIGHTS_FILE: &str = "params.safetensors";
/// The config file beside it.
pub const CONFIG_FILE: &str = "config.json";

/// The `saener` object in `config.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SaenerMeta {
    format_version: u32,
    activation: Activation,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hook_layer: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hook_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    training: Option<serde_json::Value>,
}

/// Loads a Gemma Scope 2 SAE (official or saener-written) from its folder or its
/// `params.safetensors`.
pub fn load(path: impl AsRef<Path>) -> Result<Sae> {
    let (dir, file) = locate(path.as_ref(), WEIGHTS_FILE);
    let cfg_path = dir.join(CONFIG_FILE);
    let cfg = if cfg_path.is_file() {
        Some(JsonConfig::read(&cfg_path)?)
    } else {
        None
    };
    let meta: Option<SaenerMeta> = match cfg.as_ref().and_then(|c| c.get("saener")) {
        Some(v) => Some(
            serde_json::from_value(v.clone())
                .map_err(|e| Error::config(&cfg_path, "saener", e.to_string()))?,
        ),
        None => None,
    };
    let mut hook_name = None;
    let mut model = None;
    // Official files without an `architecture` key are JumpReLU.
    let mut activation = Activation::JumpRelu;
    if let Some(c) = &cfg {
        if let Some(kind) = c.str("type")?.filter(|t| *t != "sae") {
            return Err(Error::config(
                &cfg_path,
                "type",
                format!("'{kind}' is not supported: saener reads SAEs (type 'sae')"),
            ));
        }
        if c.bool("affine_connection")? == Some(true) {
            return Err(Error::config(
                &cfg_path,
                "affine_connection",
                "affine skip connections (transcoders) are not supported",
            ));
        }
        hook_name = c.str("hf_hook_point_in")?.map(String::from);
        model = c.str("model_name")?.map(String::from);
        activation = match c.str("architecture")? {
            None | Some("jump_relu" | "jumprelu") => Activation::JumpRelu,
            Some("relu" | "standard") => Activation::Relu,
            Some("topk") => Activation::TopK {
                k: c.req_usize("k")?,
            },
            Some(other) => {
                return Err(Error::config(
                    &cfg_path,
                    "architecture",
                    format!("'{other}' is not supported (expected jump_relu, relu or topk)"),
                ))
            }
        };
    }
    if let Some(m) = &meta {
        activation = m.activation;
    }

    let st = TensorFile::read(&file)?;
    let (shape, w_enc, dtype) = st.tensor_any_shape("w_enc")?;
    let &[d_in, d_sae] = &shape[..] else {
        return Err(Error::Shape {
            path: file.clone(),
            name: "w_enc".into(),
            found: shape,
            expected: "2 dimensions [d_in, d_sae]".into(),
        });
    };
    if let Some(width) = cfg
        .as_ref()
        .map(|c| c.usize("width"))
        .transpose()?
        .flatten()
    {
        expect_shape(
            &file,
            "w_enc",
            &shape,
            &[d_in, width],
            "d_in, width (config.json)",
        )?;
    }
    let w_dec = st.tensor("w_dec", &[d_sae, d_in], "d_sae, d_in")?;
    let b_enc = st.tensor("b_enc", &[d_sae], "d_sae")?;
    let b_dec = st.tensor("b_dec", &[d_in], "d_in")?;
    let threshold = match activation {
        Activation::JumpRelu => Some(st.tensor("threshold", &[d_sae], "d_sae")?),
        _ => None,
    };

    // saener's own record is exact, so it wins over what the official keys and folder imply.
    let (hook_layer, hook_name, name, training) = match meta {
        Some(m) => (m.hook_layer, m.hook_name, m.name, m.training),
        None => {
            let folder = dir.file_name().and_then(|n| n.to_str());
            let layer = hook_name
                .as_deref()
                .and_then(layer_from_name)
                .or_else(|| folder.and_then(layer_from_name));
            (layer, hook_name, None, None)
        }
    };
    let config = SaeConfig {
        hook_layer,
        hook_name,
        model,
        name,
        training,
        ..SaeConfig::new(d_in, d_sae, activation)
    };
    let weights = Weights {
        w_enc,
        b_enc,
        w_dec,
        b_dec,
        threshold,
    };
    let source = Source {
        format: Format::GemmaScope2,
        path: file,
        dtype,
    };
    Sae::from_parts(config, weights, Some(source))
}

/// Saves `sae` as `dir/params.safetensors` (tensors in `dtype`) + `dir/config.json`.
///
/// Official readers see a JumpReLU SAE whenever the encode is one: JumpReLU as is, ReLU with
/// zero thresholds, BatchTopK with its inference threshold on every feature (its TopK rule
/// for massive-norm rows, if any, only in the `saener` block). TopK is written
/// as `architecture: "topk"` with `k` and no threshold. An SAE that subtracts `b_dec` is
/// re-expressed with `b_dec·W_enc` folded into `b_enc`, as the format never subtracts it.
pub fn save(sae: &Sae, dir: impl AsRef<Path>, dtype: Dtype) -> Result<()> {
    let dir = dir.as_ref();
    let sae = sae.with_b_dec_applied(false);
    let c = sae.config();
    let threshold = match c.activation {
        Activation::JumpRelu => sae.threshold().map(<[f32]>::to_vec),
        Activation::Relu => Some(vec![0.0; c.d_sae]),
        Activation::BatchTopK { threshold, .. } => Some(vec![threshold; c.d_sae]),
        Activation::TopK { .. } => None,
    };
    let mut cfg = json!({
        "width": c.d_sae,
        "architecture": if threshold.is_some() { "jump_relu" } else { "topk" },
        "type": "sae",
        "affine_connection": false,
    });
    if let Activation::TopK { k } = c.activation {
        cfg["k"] = json!(k);
    }
    if let Some(m) = &c.model {
        cfg["model_name"] = json!(m);
    }
    if let Some(layer) = resid_post_layer(&sae) {
        let hook = format!("model.layers.{layer}.output");
        cfg["hf_hook_point_in"] = json!(hook);
        cfg["hf_hook_point_out"] = json!(hook);
    }
    let meta = SaenerMeta {
        format_version: 1,
        activation: c.activation,
        hook_layer: c.hook_layer,
        hook_name: c.hook_name.clone(),
        name: c.name.clone(),
        training: c.training.clone(),
    };
    cfg["saener"] = serde_json::to_value(meta).expect("SaenerMeta always serializes");

    let mut tensors = vec![
        ("w_enc", vec![c.d_in, c.d_sae], sae.w_enc()),
        ("w_dec", vec![c.d_sae, c.d_in], sae.w_dec()),
        ("b_enc", vec![c.d_sae], sae.b_enc()),
        ("b_dec", vec![c.d_in], sae.b_dec()),
    ];
    if let Some(t) = &threshold {
        tensors.push(("threshold", vec![c.d_sae], t));
    }
    create_dir(dir)?;
    write_json(&dir.join(CONFIG_FILE), &cfg)?;
    write_safetensors(&dir.join(WEIGHTS_FILE), &tensors, dtype)
}
