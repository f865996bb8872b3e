//! SAELens: `cfg.json` + `sae_weights.safetensors` (`W_enc [d_in, d_sae]`, `W_dec [d_sae, d_in]`,
//! `b_enc`, `b_dec`, and `threshold` for `jumprelu`).
//!
//! Encode: `pre = (x − b_dec·apply_b_dec_to_input)·W_enc + b_enc`, then by `architecture`:
//! `standard` relu, `jumprelu` `relu(pre)·(pre > threshold)`, `topk` the top `k` of `pre` relu'd.
//! Both config layouts load: 6.x (`architecture`, `k` and `metadata.{hook_name, model_name}`)
//! and earlier (`hook_name` or `hook_point`, `hook_layer`, `model_name` at the top level; TopK
//! as `activation_fn: "topk"` with `activation_fn_kwargs.k`).
//!
//! Not supported, with an error naming the key: `normalize_activations` other than `none`
//! (`expected_average_only_in` needs a scaling factor SAELens keeps outside the SAE files;
//! `constant_norm_rescale` and `layer_norm` rescale each token, so decode would need state
//! from encode), `finetuning_scaling_factor`, and architectures other than the three above.
//! A TopK SAE with `rescale_acts_by_decoder_norm` is loaded by folding the decoder norms into
//! the weights, which computes the same codes and reconstructions.

use std::path::Path;

use serde_json::{json, Map, Value};

use super::{
    create_dir, expect_shape, layer_from_name, locate, reject_massive_norm_rule, resid_post_layer,
    write_json, write_safetensors, Dtype, Format, JsonConfig, TensorFile,
};
use crate::sae::{Source, Weights};
use crate::{Activation, Error, Result, Sae, SaeConfig};

/// The weights file that marks a SAELens folder.
pub const WEIGHTS_FILE: &str = "sae_weights.safetensors";
/// The config file beside it.
pub const CONFIG_FILE: &str = "cfg.json";

/// Loads a SAELens SAE from its folder or its `sae_weights.safetensors`.
pub fn load(path: impl AsRef<Path>) -> Result<Sae> {
    let (dir, file) = locate(path.as_ref(), WEIGHTS_FILE);
    let cfg = JsonConfig::read(&dir.join(CONFIG_FILE))?;
    let meta = cfg.object("metadata")?;
    let d_in = cfg.req_usize("d_in")?;
    let d_sae = cfg.req_usize("d_sae")?;

    let activation_fn = match cfg.str("activation_fn")? {
        Some(f) => Some(f),
        None => cfg.str("activation_fn_str")?,
    };
    let kwargs = cfg.object("activation_fn_kwargs")?;
    let architecture = match cfg.str("architecture")? {
        Some(a) => a,
        None if activation_fn == Some("topk") => "topk",
        None => "standard",
    };
    let activation = match architecture {
        "standard" => {
            if let Some(f) = activation_fn.filter(|f| *f != "relu") {
                let key = if cfg.get("activation_fn").is_some() {
                    "activation_fn"
                } else {
                    "activation_fn_str"
                };
                return Err(Error::config(
                    cfg.path(),
                    key,
                    format!("'{f}' is not supported (a standard SAE must use relu)"),
                ));
            }
            Activation::Relu
        }
        "jumprelu" => Activation::JumpRelu,
        "topk" => {
            let k = match cfg.usize("k")? {
                Some(k) => k,
                None => match &kwargs {
                    Some(kw) => kw.req_usize("k")?,
                    None => cfg.req_usize("k")?,
                },
            };
            Activation::TopK { k }
        }
        other => {
            return Err(Error::config(
                cfg.path(),
                "architecture",
                format!("'{other}' is not supported (expected standard, jumprelu or topk)"),
            ))
        }
    };

    match cfg.get("normalize_activations") {
        None | Some(Value::Bool(false)) => {}
        Some(Value::String(s)) if s == "none" => {}
        Some(v) => {
            let why = match v.as_str() {
                Some("expected_average_only_in") | None => {
                    "its scaling factor is not stored in the SAE files; fold it into the \
                     weights (SAELens fold_activation_norm_scaling_factor) and save again"
                }
                Some("constant_norm_rescale" | "layer_norm") => {
                    "per-token input rescaling is not supported (decode would need each \
                     token's scale from encode)"
                }
                Some(_) => {
                    "unknown value (SAELens knows none, expected_average_only_in, \
                            constant_norm_rescale, layer_norm)"
                }
            };
            return Err(Error::config(
                cfg.path(),
                "normalize_activations",
                format!("{v} is not supported: {why}"),
            ));
        }
    }
    if matches!(cfg.get("finetuning_scaling_factor"), Some(v) if v != &Value::Bool(false)) {
        return Err(Error::config(
            cfg.path(),
            "finetuning_scaling_factor",
            "decoder finetuning scaling is not supported",
        ));
    }

    let hook_name = match (cfg.str("hook_name")?, cfg.str("hook_point")?) {
        (Some(h), _) | (None, Some(h)) => Some(h.to_string()),
        (None, None) => match &meta {
            Some(m) => m.str("hook_name")?.map(String::from),
            None => None,
        },
    };
    let hook_layer = match hook_name.as_deref().and_then(layer_from_name) {
        Some(l) => Some(l),
        None => cfg.usize("hook_layer")?,
    };
    let model = match cfg.str("model_name")? {
        Some(m) => Some(m.to_string()),
        None => match &meta {
            Some(m) => m.str("model_name")?.map(String::from),
            None => None,
        },
    };

    let st = TensorFile::read(&file)?;
    let (found, mut w_enc, dtype) = st.tensor_any_shape("W_enc")?;
    expect_shape(
        &file,
        "W_enc",
        &found,
        &[d_in, d_sae],
        "d_in, d_sae (cfg.json)",
    )?;
    let mut w_dec = st.tensor("W_dec", &[d_sae, d_in], "d_sae, d_in")?;
    let mut b_enc = st.tensor("b_enc", &[d_sae], "d_sae")?;
    let b_dec = st.tensor("b_dec", &[d_in], "d_in")?;
    let threshold = match activation {
        Activation::JumpRelu => Some(st.tensor("threshold", &[d_sae], "d_sae")?),
        _ => None,
    };
    if matches!(activation, Activation::TopK { .. })
        && cfg.bool("rescale_acts_by_decoder_norm")? == Some(true)
    {
        fold_decoder_norms(d_in, &mut w_enc, &mut b_enc, &mut w_dec);
    }

    let config = SaeConfig {
        apply_b_dec_to_input: cfg.bool("apply_b_dec_to_input")?.unwrap_or(true),
        hook_layer,
        hook_name,
        model,
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
        format: Format::SaeLens,
        path: file,
        dtype,
    };
    Sae::from_parts(config, weights, Some(source))
}

/// SAELens's `rescale_acts_by_decoder_norm` ranks `pre·‖W_dec_j‖` and decodes
/// `code / ‖W_dec_j‖`; scaling encoder column `j` and `b_enc[j]` by the norm and decoder row
/// `j` by its inverse computes the same thing with the plain TopK rule.
fn fold_decoder_norms(d_in: usize, w_enc: &mut [f32], b_enc: &mut [f32], w_dec: &mut [f32]) {
    let d_sae = b_enc.len();
    for (j, row) in w_dec.chunks_exact_mut(d_in).enumerate() {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        // A zero decoder row gives a pre-activation of exactly 0, which relu drops.
        let (scale_enc, scale_dec) = if norm > 0.0 {
            (norm, 1.0 / norm)
        } else {
            (0.0, 1.0)
        };
        b_enc[j] *= scale_enc;
        for i in 0..d_in {
            w_enc[i * d_sae + j] *= scale_enc;
        }
        for v in row {
            *v *= scale_dec;
        }
    }
}

/// Saves `sae` as a SAELens 6.x folder: `cfg.json` + `sae_weights.safetensors` (f32).
///
/// ReLU is `standard`, JumpReLU `jumprelu`, TopK `topk`; BatchTopK is written as `jumprelu`
/// with its inference threshold on every feature, as SAELens itself saves BatchTopK SAEs;
/// with a TopK rule for massive-norm rows it has no SAELens form and is an error.
pub fn save(sae: &Sae, dir: impl AsRef<Path>) -> Result<()> {
    let dir = dir.as_ref();
    reject_massive_norm_rule(sae, dir, "saved as SAELens")?;
    let c = sae.config();
    let (architecture, threshold) = match c.activation {
        Activation::Relu => ("standard", None),
        Activation::JumpRelu => ("jumprelu", sae.threshold().map(<[f32]>::to_vec)),
        Activation::TopK { .. } => ("topk", None),
        Activation::BatchTopK { threshold, .. } => ("jumprelu", Some(vec![threshold; c.d_sae])),
    };
    let mut metadata = Map::new();
    // The version marks the 6.x cfg layout, so SAELens reads it without its pre-6 conversion.
    metadata.insert("sae_lens_version".into(), json!("6.0.0"));
    metadata.insert("sae_lens_training_version".into(), json!("6.0.0"));
    metadata.insert("saener_version".into(), json!(env!("CARGO_PKG_VERSION")));
    let hook_name = match (&c.hook_name, resid_post_layer(sae)) {
        (Some(h), _) if h.starts_with("blocks.") => Some(h.clone()),
        (_, Some(layer)) => Some(format!("blocks.{layer}.hook_resid_post")),
        (h, None) => h.clone(),
    };
    if let Some(h) = hook_name {
        metadata.insert("hook_name".into(), json!(h));
    }
    if let Some(m) = &c.model {
        metadata.insert("model_name".into(), json!(m));
    }
    let mut cfg = json!({
        "d_in": c.d_in,
        "d_sae": c.d_sae,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": c.apply_b_dec_to_input,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": metadata,
        "architecture": architecture,
    });
    if let Activation::TopK { k } = c.activation {
        cfg["k"] = json!(k);
        cfg["rescale_acts_by_decoder_norm"] = json!(false);
    }

    let mut tensors = vec![
        ("W_enc", vec![c.d_in, c.d_sae], sae.w_enc()),
        ("W_dec", vec![c.d_sae, c.d_in], sae.w_dec()),
        ("b_enc", vec![c.d_sae], sae.b_enc()),
        ("b_dec", vec![c.d_in], sae.b_dec()),
    ];
    if let Some(t) = &threshold {
        tensors.push(("threshold", vec![c.d_sae], t));
    }
    create_dir(dir)?;
    write_json(&dir.join(CONFIG_FILE), &cfg)?;
    write_safetensors(&dir.join(WEIGHTS_FILE), &tensors, Dtype::F32)
}
