//! Choosing calibration and decoding parameters on a development set: every point of a
//! grid is calibrated from the same counts (milliseconds each), decoded on the dev codes
//! and scored by strict micro F1. The test split never enters here.

use serde::Serialize;

use crate::align::WordPooling;
use crate::calibrate::FeatureCounts;
use crate::codes::EncodedCorpus;
use crate::decode::Decoder;
use crate::eval::evaluate_corpus;
use crate::params::{CalibrationParams, Combine, CountedTokens, DecodeParams, Smoothing};
use crate::profile::{Origin, Profile};
use crate::{Error, Result};

/// The parameter values to try; every combination is one trial.
#[derive(Debug, Clone)]
pub struct Grid {
    /// Firing thresholds; each must have been counted.
    pub taus: Vec<f32>,
    pub p_mins: Vec<f64>,
    pub s_mins: Vec<u32>,
    pub smoothings: Vec<Smoothing>,
    pub boundaries: Vec<bool>,
    pub combines: Vec<Combine>,
    pub poolings: Vec<WordPooling>,
    pub thresholds: Vec<f64>,
    /// Hysteresis thresholds (`None`: off); values above a point's threshold are skipped.
    pub extends: Vec<Option<f64>>,
}

impl Grid {
    /// The grid's first point: what calibration uses without a dev set to choose on.
    pub fn first(&self) -> (CalibrationParams, DecodeParams) {
        let calibration = CalibrationParams {
            tau: self.taus[0],
            p_min: self.p_mins[0],
            s_min: self.s_mins[0],
            smoothing: self.smoothings[0],
            boundaries: self.boundaries[0],
        };
        let decoding = DecodeParams {
            combine: self.combines[0],
            pooling: self.poolings[0],
            threshold: self.thresholds[0],
            extend: self.extends[0],
        };
        (calibration, decoding)
    }

    /// Every parameter combination, calibration parameters outermost.
    /// The number of parameter combinations.
    pub fn points_len(&self) -> usize {
        self.points().len()
    }

    pub(crate) fn points(&self) -> Vec<(CalibrationParams, DecodeParams)> {
        let mut points = Vec::new();
        for &tau in &self.taus {
            for &p_min in &self.p_mins {
                for &s_min in &self.s_mins {
                    for &smoothing in &self.smoothings {
                        for &boundaries in &self.boundaries {
                            let calibration = CalibrationParams {
                                tau,
                                p_min,
                                s_min,
                                smoothing,
                                boundaries,
                            };
                            for &combine in &self.combines {
                                for &pooling in &self.poolings {
                                    for &threshold in &self.thresholds {
                                        for &extend in &self.extends {
                                            if extend.is_some_and(|e| e > threshold) {
                                                continue;
                                            }
                                            let decoding = DecodeParams {
                                                combine,
                                                pooling,
                                                threshold,
                                                extend,
                                            };
                                            points.push((calibration, decoding));
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        points
    }
}

/// One grid point's result on the dev set (strict, micro, entity-level exact match).
#[derive(Debug, Clone, Serialize)]
pub struct Trial {
    pub counted_tokens: CountedTokens,
    pub calibration: CalibrationParams,
    pub decoding: DecodeParams,
    /// Kept type rows and boundary rows.
    pub rows: usize,
    pub boundary_rows: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

/// Runs every point of `grid` on each of `counts` (made with different
/// [`CountedTokens`]); returns the trials in order and the index of the best (highest dev
/// F1; the earliest on ties, so the result does not depend on thread timing).
pub fn sweep(
    origin: &Origin,
    counts: &[FeatureCounts],
    dev: &EncodedCorpus,
    grid: &Grid,
    mut progress: impl FnMut(usize, usize),
) -> Result<(Vec<Trial>, usize)> {
    let points: Vec<_> = counts
        .iter()
        .flat_map(|c| grid.points().into_iter().map(move |p| (c, p)))
        .collect();
    if points.is_empty() {
        return Err(Error::Argument {
            name: "parameter grid".into(),
            expected: "at least one value per parameter".into(),
            found: "an empty list".into(),
        });
    }
    let mut trials = Vec::with_capacity(points.len());
    for (i, (counts, (calibration, decoding))) in points.iter().enumerate() {
        let profile = Profile::calibrate(origin.clone(), counts, *calibration, *decoding)?;
        let predicted = Decoder::new(&profile, *decoding)?.predict_corpus(dev)?;
        let micro = evaluate_corpus(&dev.corpus, &predicted)?.strict.micro;
        trials.push(Trial {
            counted_tokens: counts.counted(),
            calibration: *calibration,
            decoding: *decoding,
            rows: profile.rows.len(),
            boundary_rows: profile.boundary_rows.len(),
            precision: micro.precision,
            recall: micro.recall,
            f1: micro.f1,
        });
        progress(i + 1, points.len());
    }
    let best = (0..trials.len())
        .reduce(|a, b| if trials[b].f1 > trials[a].f1 { b } else { a })
        .expect("at least one trial");
    Ok((trials, best))
}
