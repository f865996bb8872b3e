//! The parameters of calibration and of both decoders, and the profile's kept rows: plain
//! data that `calibrate`, `profile`, `decode` and `bayes` all use. It imports none of them,
//! so they import it without a circle. Their serde shapes are the profile file's.

use serde::{Deserialize, Serialize};

use crate::align::WordPooling;
use crate::{argument, Error, Result};

/// A kept row: feature `feature` votes for type `label` with `precision`, smoothed from
/// `hits` of `support` firing tokens. For a boundary row `hits` counts first tokens of a
/// `label` entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Row {
    pub feature: u32,
    #[serde(rename = "type")]
    pub label: String,
    pub precision: f64,
    pub support: u32,
    pub hits: u32,
}

/// How the per-feature counts become a profile.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CalibrationParams {
    /// Firing threshold: a feature fires on a token when its activation is `> tau`. Must be
    /// one of the thresholds the counts were made at.
    pub tau: f32,
    /// Minimum smoothed precision of a kept (feature, type) row, in 0–1.
    pub p_min: f64,
    /// Minimum support (tokens the feature fires on) of a kept row, at least 1.
    pub s_min: u32,
    pub smoothing: Smoothing,
    /// Also keep boundary rows: precision of "fires on the first token of a t-entity".
    pub boundaries: bool,
}

impl Default for CalibrationParams {
    fn default() -> Self {
        CalibrationParams {
            tau: 0.0,
            p_min: 0.5,
            s_min: 5,
            smoothing: Smoothing::default(),
            boundaries: false,
        }
    }
}

impl CalibrationParams {
    pub(crate) fn validate(&self) -> Result<()> {
        if !(self.tau.is_finite() && self.tau >= 0.0) {
            return Err(argument("tau", "a finite threshold >= 0", self.tau));
        }
        if !(0.0..=1.0).contains(&self.p_min) {
            return Err(argument("p_min", "a number in 0..=1", self.p_min));
        }
        if self.s_min == 0 {
            return Err(argument("s_min", "at least 1", 0));
        }
        match self.smoothing {
            Smoothing::Wilson { z } if !(z.is_finite() && z > 0.0) => {
                Err(argument("wilson z", "a finite number > 0", z))
            }
            Smoothing::Beta { alpha, beta }
                if !(alpha.is_finite() && beta.is_finite() && alpha >= 0.0 && beta >= 0.0) =>
            {
                Err(argument(
                    "beta prior",
                    "finite alpha, beta >= 0",
                    format!("{alpha}, {beta}"),
                ))
            }
            _ => Ok(()),
        }
    }
}

/// Which tokens of a word calibration counts. Counting the token that decoding reads
/// (the last one, under [`crate::WordPooling::Last`]) keeps the counted and the decoded
/// populations the same; counting all tokens gives more support to multi-token words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CountedTokens {
    /// Every token that overlaps a word most (its [`crate::Alignment::word_of`]).
    #[default]
    All,
    /// Only the word's first token.
    WordFirst,
    /// Only the word's last token.
    WordLast,
}

impl CountedTokens {
    /// Whether token `t`, one of its word's `tokens`, is counted.
    pub(crate) fn counts(self, t: usize, tokens: std::ops::Range<usize>) -> bool {
        match self {
            CountedTokens::All => true,
            _ => self.token_of(tokens) == Some(t),
        }
    }

    /// The token of a word that marks it (entity-initial counts, boundary votes): its last
    /// under `WordLast`, else its first.
    pub(crate) fn token_of(self, mut tokens: std::ops::Range<usize>) -> Option<usize> {
        match self {
            CountedTokens::WordLast => tokens.next_back(),
            _ => tokens.next(),
        }
    }
}

/// How `hits / support` is smoothed, so that a feature seen 3 times does not outrank one
/// seen 300 times.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Smoothing {
    /// Wilson score interval's lower bound at `z` standard deviations: a precision the
    /// feature reaches with confidence (z = 1.96: the lower end of the two-sided 95 % interval, a 97.5 % one-sided bound). The default: it needs
    /// no prior tuned to each type's base rate, stays sensible at 0/n and n/n (where the
    /// normal-approximation interval collapses), and ranks 3/3 (0.44) far below 300/300
    /// (0.99).
    Wilson { z: f64 },
    /// Posterior mean under a Beta(`alpha`, `beta`) prior: `(hits + α) / (support + α + β)`.
    /// Beta(0, 0) is the raw ratio; a prior centred on the type's base rate shrinks rare
    /// features towards it.
    Beta { alpha: f64, beta: f64 },
}

impl Default for Smoothing {
    fn default() -> Self {
        Smoothing::Wilson { z: 1.96 }
    }
}

impl Smoothing {
    /// The smoothed precision of `hits` out of `support` (0 when `support` is 0).
    pub fn precision(self, hits: u32, support: u32) -> f64 {
        if support == 0 {
            return 0.0;
        }
        let (h, n) = (f64::from(hits), f64::from(support));
        match self {
            Smoothing::Wilson { z } => {
                let p = h / n;
                let z2 = z * z;
                let centre = p + z2 / (2.0 * n);
                let margin = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
                ((centre - margin) / (1.0 + z2 / n)).max(0.0)
            }
            Smoothing::Beta { alpha, beta } => (h + alpha) / (n + alpha + beta),
        }
    }
}

/// How a token's votes for one type combine into its score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Combine {
    /// The highest precision among the votes.
    Max,
    /// `1 − Π(1 − p)`: votes as independent detectors, so agreeing weak features add up.
    /// The default: it measured better than `Max` in the prototype (FINDINGS.md), where
    /// few single features are clean.
    #[default]
    NoisyOr,
}

/// Decoding parameters; they need no recalibration, so sweeps change them freely.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DecodeParams {
    pub combine: Combine,
    pub pooling: WordPooling,
    /// Minimum word score for a label, in `(0, 1]`.
    pub threshold: f64,
    /// Hysteresis: a word next to an entity of type t joins it when its score for t is at
    /// least this (below `threshold`), so a weak inner word ("Health" in "World Health
    /// Organization") does not split a name. `None`: no extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extend: Option<f64>,
}

impl Default for DecodeParams {
    fn default() -> Self {
        DecodeParams {
            combine: Combine::default(),
            pooling: WordPooling::default(),
            threshold: 0.5,
            extend: None,
        }
    }
}

impl DecodeParams {
    pub(crate) fn validate(&self) -> Result<()> {
        if !(self.threshold > 0.0 && self.threshold <= 1.0) {
            return Err(Error::Argument {
                name: "decision threshold".into(),
                expected: "a number in (0, 1]".into(),
                found: self.threshold.to_string(),
            });
        }
        if let Some(extend) = self.extend {
            if !(extend > 0.0 && extend <= self.threshold) {
                return Err(Error::Argument {
                    name: "extension threshold".into(),
                    expected: format!("a number in (0, threshold = {}]", self.threshold),
                    found: extend.to_string(),
                });
            }
        }
        Ok(())
    }
}

/// The scalars of a [`NaiveBayes`](crate::bayes::NaiveBayes) model besides its counts and offset weights.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NbParams {
    pub alpha: f64,
    pub s_min: u32,
    pub scale: f64,
    pub absence: f64,
    /// Per label, in the counts' label order.
    pub bias: Vec<f64>,
    pub viterbi: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_ranks_evidence_over_luck() {
        let wilson = Smoothing::default();
        assert!((wilson.precision(3, 3) - 0.438_493_919_550_982_2).abs() < 1e-12);
        assert!((wilson.precision(300, 300) - 0.987_356_570_002_264_2).abs() < 1e-12);
        assert!((wilson.precision(8, 10) - 0.490_156_846_720_723_5).abs() < 1e-12);
        assert_eq!(wilson.precision(0, 0), 0.0);
        assert_eq!(wilson.precision(0, 7), 0.0);
        let beta = Smoothing::Beta {
            alpha: 1.0,
            beta: 1.0,
        };
        assert_eq!(beta.precision(3, 3), 0.8);
        assert_eq!(beta.precision(300, 300), 301.0 / 302.0);
        // Under Wilson, 3/3 falls below a 0.5 cut that 300/300 and 8/10 (almost) pass.
        assert!(wilson.precision(3, 3) < wilson.precision(8, 10));
    }
}
