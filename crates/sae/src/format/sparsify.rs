//! EleutherAI sparsify: `cfg.json` + `sae.safetensors` with `encoder.weight [d_sae, d_in]`
//! (a `torch.nn.Linear`), `encoder.bias [d_sae]`, `W_dec [d_sae, d_in]`, `b_dec [d_in]`.
//!
//! Encode: the top `k` of `relu(encoder(x − b_dec))`. `cfg.json` has `k`, `d_in`, and the
//! width as `num_latents` (0 = unset) or `expansion_factor × d_in`. A run saves one folder per
//! hookpoint, named like `layers.9`: the layer comes from that name, and the model from the
//! run's `config.json` one level up (`model`), when present.
//!
//! Not supported, with an error naming the key: `activation: "groupmax"`, `transcode` and
//! `skip_connection` (transcoders map one site to another).

use std::path::Path;

use serde_json::json;

use super::{
    create_dir, expect_shape, layer_from_name, locate, write_json, write_safetensors, Dtype,
    Format, JsonConfig, TensorFile,
};
use crate::sae::{Source, Weights};
use crate::{Activation, Error, Result, Sae, SaeConfig};
use saener_kernels::transpose;

/// The weights file that marks a sparsify folder.
pub const WEIGHTS_FILE: &str = "sae.safetensors";
/// The config file beside it.
pub const CONFIG_FILE: &str = "cfg.json";

/// Loads a sparsify SAE from its hookpoint folder or its `sae.safetensors`.
pub fn load(path: impl AsRef<Path>) -> Result<Sae> {
    let (dir, file) = locate(path.as_ref(), WEIGHTS_FILE);
    let cfg = JsonConfig::read(&dir.join(CONFIG_FILE))?;
    let activation = cfg.str("activation")?.unwrap_or("topk");
    if activation != "topk" {
        return Err(Error::config(
            cfg.path(),
            "activation",
            format!("'{activation}' is not supported (expected topk)"),
        ));
    }
    for key in ["transcode", "skip_connection"] {
        if cfg.bool(key)? == Some(true) {
            return Err(Error::config(
                cfg.path(),
                key,
                "transcoders and skip connections are not supported; saener reads SAEs",
            ));
        }
    }
    let k = cfg.req_usize("k")?;
    let d_in = cfg.req_usize("d_in")?;
    let d_sae = match cfg.usize("num_latents")? {
        Some(n) if n > 0 => n,
        _ => d_in * cfg.req_usize("expansion_factor")?,
    };

    let st = TensorFile::read(&file)?;
    let (found, encoder, dtype) = st.tensor_any_shape("encoder.weight")?;
    expect_shape(
        &file,
        "encoder.weight",
        &found,
        &[d_sae, d_in],
        "d_sae, d_in (cfg.json)",
    )?;
    let b_enc = st.tensor("encoder.bias", &[d_sae], "d_sae")?;
    let w_dec = st.tensor("W_dec", &[d_sae, d_in], "d_sae, d_in")?;
    let b_dec = st.tensor("b_dec", &[d_in], "d_in")?;

    // The folder is the hookpoint only when named like one; a renamed copy says nothing.
    let hookpoint = dir
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| layer_from_name(n).is_some())
        .map(String::from);
    let run_config = dir.parent().map(|run| run.join("config.json"));
    let model = match run_config.filter(|p| p.is_file()) {
        Some(p) => JsonConfig::read(&p)?.str("model")?.map(String::from),
        None => None,
    };
    let config = SaeConfig {
        apply_b_dec_to_input: true,
        hook_layer: hookpoint.as_deref().and_then(layer_from_name),
        hook_name: hookpoint,
        model,
        ..SaeConfig::new(d_in, d_sae, Activation::TopK { k })
    };
    let weights = Weights {
        w_enc: transpose(&encoder, d_sae, d_in),
        b_enc,
        w_dec,
        b_dec,
        threshold: None,
    };
    let source = Source {
        format: Format::Sparsify,
        path: file,
        dtype,
    };
    Sae::from_parts(config, weights, Some(source))
}

/// Saves a TopK `sae` as a sparsify folder: `cfg.json` + `sae.safetensors` (f32).
///
/// Name the folder after the hookpoint (`layers.9`) so the layer survives a reload. An SAE
/// that does not subtract `b_dec` is re-expressed with `b_dec·W_enc` folded into the bias,
/// since sparsify always subtracts it.
pub fn save(sae: &Sae, dir: impl AsRef<Path>) -> Result<()> {
    let dir = dir.as_ref();
    let Activation::TopK { k } = sae.config().activation else {
        return Err(Error::Unsupported {
            path: dir.into(),
            action: "saved in sparsify format",
            reason: format!(
                "sparsify stores only TopK SAEs, this one is {}",
                sae.config().activation
            ),
        });
    };
    let sae = sae.with_b_dec_applied(true);
    let c = sae.config();
    let cfg = json!({
        "activation": "topk",
        "expansion_factor": c.d_sae / c.d_in,
        // SAELens's sparsify loader skips b_dec subtraction when this is true; sparsify
        // itself ignores it on load, so false keeps both readers right.
        "normalize_decoder": false,
        "num_latents": c.d_sae,
        "k": k,
        "multi_topk": false,
        "skip_connection": false,
        "transcode": false,
        "d_in": c.d_in,
    });
    let encoder = transpose(sae.w_enc(), c.d_in, c.d_sae);
    let tensors = [
        ("encoder.weight", vec![c.d_sae, c.d_in], &encoder[..]),
        ("encoder.bias", vec![c.d_sae], sae.b_enc()),
        ("W_dec", vec![c.d_sae, c.d_in], sae.w_dec()),
        ("b_dec", vec![c.d_in], sae.b_dec()),
    ];
    create_dir(dir)?;
    write_json(&dir.join(CONFIG_FILE), &cfg)?;
    write_safetensors(&dir.join(WEIGHTS_FILE), &tensors, Dtype::F32)
}
