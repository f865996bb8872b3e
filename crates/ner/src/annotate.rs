//! Inference end to end: documents → tokens → residuals after the SAE's layer → the
//! profile's features only → spans with evidence.
//!
//! Only the profile's encoder columns are computed (a few hundred of the SAE's thousands),
//! which is exact for SAEs with a per-feature firing rule (ReLU, JumpReLU, BatchTopK); see
//! [`saener_sae::Sae::feature_subset`] for TopK.

use saener_lm::residuals::Extractor;
use saener_sae::{FeatureSubset, Sae};

use crate::align::Alignment;
use crate::corpus::Document;
use crate::decode::{Activations, DecodeParams, Decoder, Span};
use crate::profile::Profile;
use crate::Result;

/// A profile ready to annotate text with one model and SAE.
pub struct Annotator<'a> {
    extractor: Extractor<'a>,
    subset: FeatureSubset,
    decoder: Decoder,
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
        let texts: Vec<&str> = documents.iter().map(|d| d.text.as_str()).collect();
        let residuals = self.extractor.run(&texts, |_| {})?;
        documents
            .iter()
            .zip(residuals)
            .map(|(document, r)| {
                let alignment = Alignment::new(document, &r.encoding.offsets)?;
                let activations = self.subset.encode(&r.rows)?;
                self.decoder
                    .decode(document, &alignment, Activations::Dense(&activations))
            })
            .collect()
    }
}
