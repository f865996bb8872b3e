//! Label-free calibration: precise features from a lexicon matched in unlabelled text (or
//! from the names in a few annotated examples), with no annotated corpus.
//!
//! The lexicon's matches ([`crate::lexicon`]) are the only positives; every other token is
//! *unlabelled*, not negative, because a lexicon names only some of a type's entities. For
//! feature f and type t, counting gives `P(matched t | f fires)`, which under the usual
//! positive–unlabelled assumption (the matched entities are a random sample of the type's
//! entities, "selected completely at random") equals `c_t · P(t | f fires)`, where `c_t` is
//! the share of t's tokens the lexicon matches. saener corrects for it the way Elkan &
//! Noto (2008) estimate `c` from a classifier's maximum: `c_t` is the highest matched-rate
//! of any t-feature (with enough support), and each feature's precision is its matched-rate
//! divided by `c_t` (at most 1). Equivalently, features are ranked by lift over the type's
//! base rate and scaled so that the best one has precision 1.
//!
//! **Memorisation.** A feature that fires on a few exact strings of the lexicon ("Paris"
//! and nothing else) would look perfectly precise. Each name has a fold
//! ([`crate::lexicon::FOLDS`]); a feature's matched-rate is estimated from each fold's
//! matches alone (scaled by that fold's share of matched tokens), and the *lowest* estimate
//! counts. A feature that fires on the names of one fold only gets about 0; a type
//! detector fires on both. Rates are smoothed ([`crate::Smoothing`], Wilson lower bound by
//! default) before scaling, so rare features rank low.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::calibrate::{CalibrationParams, CountedTokens, FeatureCounts};
use crate::codes::EncodedCorpus;
use crate::decode::DecodeParams;
use crate::lexicon::{Matcher, FOLDS};
use crate::profile::{Origin, Profile, Row};
use crate::{Error, Result};

/// How label-free counts become a profile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LabelFreeParams {
    /// τ, p_min (on the corrected precision), s_min and smoothing; `boundaries` must be
    /// false (a lexicon says nothing reliable about where unlabelled entities start).
    pub calibration: CalibrationParams,
    pub counted: CountedTokens,
    pub decoding: DecodeParams,
}

impl Default for LabelFreeParams {
    /// A-priori defaults, the same for every type and corpus (no labelled data chooses
    /// them): τ = 100, p_min = 0.3, s_min = 10, Wilson z = 1.96, noisy-or, last-token
    /// pooling, decision threshold 0.8, hysteresis 0.5.
    fn default() -> Self {
        LabelFreeParams {
            calibration: CalibrationParams {
                tau: 100.0,
                p_min: 0.3,
                s_min: 10,
                ..CalibrationParams::default()
            },
            counted: CountedTokens::All,
            decoding: DecodeParams {
                threshold: 0.8,
                extend: Some(0.5),
                ..DecodeParams::default()
            },
        }
    }
}

/// What label-free calibration found, per type (in profile label order).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelFreeReport {
    pub labels: Vec<String>,
    /// Matched tokens per type and fold.
    pub matched_tokens: Vec<[u64; FOLDS]>,
    /// Whether both folds had matches (else the memorisation check was skipped for the type).
    pub held_out: Vec<bool>,
    /// The estimated label frequency `c_t` (0 if no feature qualified).
    pub label_frequency: Vec<f64>,
    /// Rows kept.
    pub rows: Vec<usize>,
    /// Tokens counted.
    pub tokens: u64,
}

/// The internal label of a type's fold during counting.
fn fold_label(label: &str, fold: usize) -> String {
    format!("{label}#{fold}")
}

/// Calibrates a profile from the lexicon of `matcher` matched in `parts` (encoded corpora,
/// SAE `d_sae` wide). Every part's entities are *replaced* by the matches before counting,
/// so gold labels of a file read for its text are never used. `origin.data_checksum` is
/// replaced by a checksum of the text with its lexicon labels.
pub fn calibrate_from_lexicon(
    origin: Origin,
    parts: Vec<EncodedCorpus>,
    d_sae: usize,
    matcher: &Matcher,
    params: &LabelFreeParams,
) -> Result<(Profile, LabelFreeReport)> {
    let calibration = params.calibration;
    calibration.validate()?;
    if calibration.boundaries {
        return Err(Error::Argument {
            name: "boundaries".into(),
            expected: "false for label-free calibration".into(),
            found: "true".into(),
        });
    }
    let labels = matcher.labels().to_vec();
    let fold_labels: Vec<String> = labels
        .iter()
        .flat_map(|l| (0..FOLDS).map(move |k| fold_label(l, k)))
        .collect();
    let mut counts = FeatureCounts::new(d_sae, fold_labels.clone(), vec![calibration.tau])?
        .counting(params.counted);
    let mut checksum = Sha256::new();
    for mut part in parts {
        part.corpus = matcher.label_with(&part.corpus, fold_label);
        checksum.update(part.corpus.checksum());
        counts.merge(&FeatureCounts::from_corpus(
            &part,
            d_sae,
            fold_labels.clone(),
            vec![calibration.tau],
            params.counted,
            None,
        )?)?;
    }

    let mut report = LabelFreeReport {
        labels: labels.clone(),
        matched_tokens: Vec::new(),
        held_out: Vec::new(),
        label_frequency: Vec::new(),
        rows: Vec::new(),
        tokens: counts.tokens(),
    };
    let mut rows = Vec::new();
    for (t, label) in labels.iter().enumerate() {
        let matched: [u64; FOLDS] = std::array::from_fn(|k| counts.label_tokens()[t * FOLDS + k]);
        let total: u64 = matched.iter().sum();
        let held_out = matched.iter().all(|&m| m > 0);
        // Per feature: (support, labelled hits, matched-rate before the c_t correction).
        let mut rated = Vec::new();
        for f in 0..d_sae {
            let (support, hits) = counts.cell(f, calibration.tau)?;
            let hits = &hits[t * FOLDS..(t + 1) * FOLDS];
            if support < calibration.s_min || hits.iter().all(|&h| h == 0) {
                continue;
            }
            let rate = if held_out {
                (0..FOLDS)
                    .map(|k| {
                        let share = matched[k] as f64 / total as f64;
                        calibration.smoothing.precision(hits[k], support) / share
                    })
                    .fold(f64::INFINITY, f64::min)
            } else {
                calibration.smoothing.precision(hits.iter().sum(), support)
            };
            rated.push((f as u32, support, hits.iter().sum::<u32>(), rate));
        }
        let c = rated.iter().map(|r| r.3).fold(0.0, f64::max);
        let first = rows.len();
        if c > 0.0 {
            for (feature, support, hits, rate) in rated {
                let precision = (rate / c).min(1.0);
                if precision >= calibration.p_min {
                    rows.push(Row {
                        feature,
                        label: label.clone(),
                        precision,
                        support,
                        hits,
                    });
                }
            }
        }
        rows[first..]
            .sort_by(|a, b| (b.precision.total_cmp(&a.precision)).then(a.feature.cmp(&b.feature)));
        report.matched_tokens.push(matched);
        report.held_out.push(held_out);
        report.label_frequency.push(c);
        report.rows.push(rows.len() - first);
    }
    let group: Vec<usize> = (0..fold_labels.len()).map(|i| i / FOLDS).collect();
    let by_type = counts.group_labels(labels, &group)?;
    let origin = Origin {
        data_checksum: format!("{:x}", checksum.finalize()),
        ..origin
    };
    let profile = Profile::from_rows(
        origin,
        &by_type,
        calibration,
        params.decoding,
        rows,
        Vec::new(),
    )?;
    Ok((profile, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::DocumentCodes;
    use crate::corpus::{parse_text, TextMode};
    use crate::decode::{Activations, Decoder};
    use crate::lexicon::{Lexicon, MatchOptions};
    use crate::test_support::{code, one_token_per_word};
    use crate::Smoothing;

    const CITIES: [&str; 8] = [
        "Paris", "Oslo", "Lima", "Rome", "Cairo", "Delhi", "Quito", "Dakar",
    ];

    /// One line per city: "we flew to <city> today", one token per word. Feature 1 fires on
    /// every city (a type detector), feature 2 only on "Paris" (memorisation), feature 3 on
    /// every word; feature 4 on "today" (never a city).
    fn encoded(cities: &[&str]) -> EncodedCorpus {
        let text: String = cities
            .iter()
            .map(|c| format!("we flew to {c} today\n"))
            .collect();
        let corpus = parse_text(text.as_bytes(), "t.txt", TextMode::Lines)
            .unwrap()
            .corpus;
        let codes = corpus
            .documents
            .iter()
            .map(|d| {
                let offsets = one_token_per_word(d);
                let mut codes = vec![code(&[])];
                for w in &d.sentences[0].words {
                    let mut c = vec![];
                    if CITIES.contains(&w.text.as_str()) {
                        c.push((1, 5.0));
                    }
                    if w.text == "Paris" {
                        c.push((2, 5.0));
                    }
                    c.push((3, 5.0));
                    if w.text == "today" {
                        c.push((4, 5.0));
                    }
                    codes.push(code(&c));
                }
                DocumentCodes { offsets, codes }
            })
            .collect();
        EncodedCorpus::new(corpus, codes).unwrap()
    }

    fn origin() -> Origin {
        Origin {
            model: "m".into(),
            layer: 9,
            sae_id: "s".into(),
            data_checksum: String::new(),
        }
    }

    fn params() -> LabelFreeParams {
        LabelFreeParams {
            calibration: CalibrationParams {
                tau: 1.0,
                p_min: 0.3,
                s_min: 1,
                smoothing: Smoothing::Beta {
                    alpha: 0.0,
                    beta: 0.0,
                },
                boundaries: false,
            },
            counted: CountedTokens::All,
            decoding: DecodeParams::default(),
        }
    }

    /// The lexicon names half the cities; both folds must have names.
    fn lexicon() -> Lexicon {
        let names = &CITIES[..4];
        let folds: Vec<usize> = names.iter().map(|n| crate::lexicon::fold_of(n)).collect();
        assert!(folds.contains(&0) && folds.contains(&1), "{folds:?}");
        Lexicon::parse(&format!("city = {names:?}"), "l.toml").unwrap()
    }

    #[test]
    fn generalising_features_are_kept_and_memorised_ones_dropped() {
        let mut cities = CITIES.to_vec();
        cities.extend(["Paris"; 6]);
        let matcher = lexicon().matcher(MatchOptions::default());
        let (profile, report) =
            calibrate_from_lexicon(origin(), vec![encoded(&cities)], 8, &matcher, &params())
                .unwrap();
        let kept: Vec<(u32, f64)> = profile
            .rows
            .iter()
            .map(|r| (r.feature, r.precision))
            .collect();
        // Feature 1: matched-rate 10/14 overall; the correction scales it to 1. Feature 2
        // (only "Paris") fires on one fold's names only, so its held-out rate is 0.
        assert_eq!(kept[0], (1, 1.0));
        assert!(kept.iter().all(|&(f, _)| f != 2 && f != 4), "{kept:?}");
        assert_eq!(report.held_out, [true]);
        assert!(report.label_frequency[0] > 0.0 && report.label_frequency[0] < 1.0);
        assert_eq!(profile.labels, ["city"]);
        assert_eq!(
            profile.label_tokens["city"],
            report.matched_tokens[0].iter().sum::<u64>()
        );
        // Decoding finds cities the lexicon never named.
        let test = encoded(&["Quito"]);
        let decoder = Decoder::new(&profile, DecodeParams::default()).unwrap();
        let spans = decoder
            .decode(
                &test.corpus.documents[0],
                &test.alignments[0],
                Activations::Sparse(&test.codes[0]),
            )
            .unwrap();
        assert_eq!((spans.len(), spans[0].start, spans[0].end), (1, 11, 16));
    }

    #[test]
    fn gold_labels_of_the_text_are_ignored() {
        // The same text read as "gold" that calls every word a city changes nothing.
        let matcher = lexicon().matcher(MatchOptions::default());
        let plain = encoded(&CITIES);
        let mut gold = plain.clone();
        for document in &mut gold.corpus.documents {
            for sentence in &mut document.sentences {
                let n = sentence.words.len();
                sentence.entities = vec![crate::Entity {
                    start: 0,
                    end: n,
                    label: "city".into(),
                }];
            }
        }
        let run = |e| calibrate_from_lexicon(origin(), vec![e], 8, &matcher, &params()).unwrap();
        assert_eq!(run(plain), run(gold));
    }

    #[test]
    fn boundaries_are_refused() {
        let mut p = params();
        p.calibration.boundaries = true;
        let matcher = lexicon().matcher(MatchOptions::default());
        assert!(calibrate_from_lexicon(origin(), vec![encoded(&CITIES)], 8, &matcher, &p).is_err());
    }
}
