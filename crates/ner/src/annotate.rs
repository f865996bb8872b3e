//! Inference end to end: documents → tokens → residuals after the SAE's layer → the
//! profile's features only → spans with evidence.
//!
//! Only the profile's encoder columns are computed (a few hundred of the SAE's thousands),
//! which is exact for SAEs with a per-feature firing rule (ReLU, JumpReLU, BatchTopK); see
//! [`saener_sae::Sae::feature_subset`] for TopK.

use saener_lm::residuals::Extractor;
use saener_sae::{FeatureSubset, Sae};
use serde::Serialize;

use crate::align::Alignment;
use crate::corpus::Document;
use crate::decode::{Activations, DecodeParams, Decoder, Evidence, Span};
use crate::profile::Profile;
use crate::Result;

/// A profile ready to annotate text with one model and SAE.
pub struct Annotator<'a> {
    extractor: Extractor<'a>,
    subset: FeatureSubset,
    decoder: Decoder,
}

/// One document's result: its spans and how many tokens the model read (BOS included).
#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    pub spans: Vec<Span>,
    pub tokens: usize,
}

/// An entity as `annotate` and the HTTP API write it: character span, its text, type,
/// score and evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EntityRecord {
    /// Code points into the document text, half-open.
    pub start: usize,
    pub end: usize,
    pub text: String,
    pub label: String,
    /// Mean word score for `label`, in 0–1.
    pub score: f64,
    /// The features that voted for `label`, by precision.
    pub evidence: Vec<Evidence>,
}

impl EntityRecord {
    /// The records of `spans` in `text`.
    pub fn all(text: &str, spans: &[Span]) -> Vec<EntityRecord> {
        let chars: Vec<char> = text.chars().collect();
        spans
            .iter()
            .map(|s| EntityRecord {
                start: s.start,
                end: s.end,
                text: chars[s.start..s.end].iter().collect(),
                label: s.label.clone(),
                score: s.score,
                evidence: s.evidence.clone(),
            })
            .collect()
    }
}

impl<'a> Annotator<'a> {
    /// Prepares `profile` (calibrated for `sae` and the extractor's layer; check with
    /// [`Profile::check_compatible`]) with decoding parameters `params`.
    pub fn new(
        extractor: Extractor<'a>,
        sae: &Sae,
        profile: &Profile,
        params: DecodeParams,
    ) -> Result<Annotator<'a>> {
        Ok(Annotator {
            extractor,
            subset: sae.feature_subset(&profile.features())?,
            decoder: Decoder::new(profile, params)?,
        })
    }

    /// The spans of each document, in order. The model runs on all documents together
    /// (batched by length); an error fails the whole call, so callers that must isolate a
    /// bad document retry it alone.
    pub fn annotate(&self, documents: &[Document]) -> Result<Vec<Vec<Span>>> {
        Ok(self
            .annotate_counted(documents)?
            .into_iter()
            .map(|a| a.spans)
            .collect())
    }

    /// Like [`Annotator::annotate`], with each document's token count (for throughput
    /// metrics).
    pub fn annotate_counted(&self, documents: &[Document]) -> Result<Vec<Annotation>> {
        let texts: Vec<&str> = documents.iter().map(|d| d.text.as_str()).collect();
        let residuals = self.extractor.run(&texts, |_| {})?;
        documents
            .iter()
            .zip(residuals)
            .map(|(document, r)| {
                let alignment = Alignment::new(document, &r.encoding.offsets)?;
                let activations = self.subset.encode(&r.rows)?;
                let spans =
                    self.decoder
                        .decode(document, &alignment, Activations::Dense(&activations))?;
                Ok(Annotation {
                    spans,
                    tokens: r.encoding.ids.len(),
                })
            })
            .collect()
    }
}
