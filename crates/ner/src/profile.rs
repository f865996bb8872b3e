//! The calibrated profile: the kept (feature, type, precision) rows with everything needed
//! to use them correctly — which model, layer and SAE they belong to, the parameters they
//! were made and are decoded with, and which data they were counted on. A small JSON file.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::bayes::NaiveBayes;
use crate::calibrate::FeatureCounts;
use crate::contexts::FeatureContext;
use crate::params::{CalibrationParams, CountedTokens, DecodeParams, Row};
use crate::{Error, Result};

/// Version of the profile layout; bumped when a field changes meaning.
const FORMAT: u32 = 1;
/// The largest profile file read: a hundred times the shipped ones (~1.5 MB each).
pub const MAX_PROFILE_BYTES: u64 = 256 << 20;

/// What a profile was calibrated for and on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The language model's name.
    pub model: String,
    /// The decoder block whose `resid_post` the SAE reads (0-indexed).
    pub layer: usize,
    /// The SAE's content id ([`saener_sae::Sae::id`]).
    pub sae_id: String,
    /// Checksum of the calibration data ([`crate::Corpus::checksum`]).
    pub data_checksum: String,
    /// Whether the residuals were read with echo
    /// ([`saener_lm::residuals::ExtractOptions::echo`]); inference must read them the same
    /// way.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub echo: bool,
    /// The arithmetic of the model's matrix products the codes were computed at (resolved,
    /// never `auto`). Files without it are f32, as every profile was before precisions
    /// existed, so f32 is left out when written and shipped profiles stay as they are.
    #[serde(default, skip_serializing_if = "is_f32", with = "precision_name")]
    pub precision: saener_lm::Precision,
}

fn is_f32(precision: &saener_lm::Precision) -> bool {
    *precision == saener_lm::Precision::F32
}

/// A precision in a profile file: its command-line name (`bf16`, `int8`).
mod precision_name {
    use saener_lm::Precision;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(precision: &Precision, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(precision.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Precision, D::Error> {
        match String::deserialize(d)?.parse() {
            Ok(Precision::Auto) | Err(_) => Err(serde::de::Error::custom(
                "precision: expected f32, bf16 or int8",
            )),
            Ok(precision) => Ok(precision),
        }
    }
}

/// A calibrated profile; see the [module docs](self).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Layout version (1).
    pub format: u32,
    /// The program that made it, with its version.
    pub created_by: String,
    #[serde(flatten)]
    pub origin: Origin,
    /// Width of the SAE: every row's feature is below it.
    pub d_sae: usize,
    /// Entity types, in the order decoding breaks ties.
    pub labels: Vec<String>,
    pub calibration: CalibrationParams,
    /// Which of a word's tokens were counted (all, when absent).
    #[serde(default)]
    pub counted_tokens: CountedTokens,
    /// The decoding parameters chosen with the profile (callers may override them).
    pub decoding: DecodeParams,
    /// Calibration tokens counted, in total and per type (the base rates that precisions
    /// compare with); for a naive-Bayes profile, calibration words.
    pub tokens: u64,
    pub label_tokens: BTreeMap<String, u64>,
    /// Kept type rows, by type, then precision (highest first).
    pub rows: Vec<Row>,
    /// Kept boundary rows ("first token of a t-entity"), if calibrated with boundaries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub boundary_rows: Vec<Row>,
    /// The count-based naive-Bayes decoder's tables and scalars; when present, decoding
    /// uses it instead of the rows' votes (`calibration.tau` is its firing threshold), and
    /// `decoding` is unused. Absent in profiles of the voting decoder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub naive_bayes: Option<NaiveBayes>,
    /// Per kept feature, its top-activating calibration contexts (`saener profile
    /// contexts`); absent in profiles made without them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub contexts: BTreeMap<u32, Vec<FeatureContext>>,
}

impl Profile {
    /// Selects the rows of `counts` under `calibration` (milliseconds: a sweep over
    /// `p_min`, `s_min` and smoothing reuses the same counts).
    pub fn calibrate(
        origin: Origin,
        counts: &FeatureCounts,
        calibration: CalibrationParams,
        decoding: DecodeParams,
    ) -> Result<Profile> {
        let (rows, boundary_rows) = counts.rows(&calibration)?;
        Profile::from_rows(origin, counts, calibration, decoding, rows, boundary_rows)
    }

    /// A profile of `rows` selected from `counts` by another rule (label-free calibration),
    /// with the counts' metadata.
    pub(crate) fn from_rows(
        origin: Origin,
        counts: &FeatureCounts,
        calibration: CalibrationParams,
        decoding: DecodeParams,
        rows: Vec<Row>,
        boundary_rows: Vec<Row>,
    ) -> Result<Profile> {
        decoding.validate()?;
        Ok(Profile {
            format: FORMAT,
            created_by: concat!("saener-ner ", env!("CARGO_PKG_VERSION")).to_string(),
            origin,
            d_sae: counts.d_sae(),
            labels: counts.labels().to_vec(),
            calibration,
            counted_tokens: counts.counted(),
            decoding,
            tokens: counts.tokens(),
            label_tokens: counts
                .labels()
                .iter()
                .cloned()
                .zip(counts.label_tokens().iter().copied())
                .collect(),
            rows,
            boundary_rows,
            naive_bayes: None,
            contexts: BTreeMap::new(),
        })
    }

    /// A profile for the naive-Bayes decoder: `model`, counted for `labels` with an SAE
    /// `d_sae` wide at firing threshold `tau`, keeping features from `s_min` words; no
    /// voting rows. `tokens` and `label_tokens` count calibration words.
    pub fn from_naive_bayes(
        origin: Origin,
        labels: Vec<String>,
        d_sae: usize,
        model: NaiveBayes,
        tau: f32,
        s_min: u32,
    ) -> Result<Profile> {
        model
            .check(&labels, d_sae)
            .map_err(|(name, expected, found)| Error::Argument {
                name,
                expected,
                found,
            })?;
        let own = model.offsets.iter().find(|o| o.offset == 0);
        let words = own
            .map(|o| o.words.clone())
            .ok_or_else(|| Error::Argument {
                name: "naive_bayes.offsets".into(),
                expected: "offset 0 (the word itself)".into(),
                found: "none".into(),
            })?;
        Ok(Profile {
            format: FORMAT,
            created_by: concat!("saener-ner ", env!("CARGO_PKG_VERSION")).to_string(),
            origin,
            d_sae,
            label_tokens: labels
                .iter()
                .enumerate()
                .map(|(t, l)| (l.clone(), words[1 + 2 * t] + words[2 + 2 * t]))
                .collect(),
            labels,
            calibration: CalibrationParams {
                tau,
                s_min,
                ..CalibrationParams::default()
            },
            counted_tokens: CountedTokens::default(),
            decoding: DecodeParams::default(),
            tokens: words.iter().sum(),
            rows: Vec::new(),
            boundary_rows: Vec::new(),
            naive_bayes: Some(model),
            contexts: BTreeMap::new(),
        })
    }

    /// Checks that the profile was calibrated for this model, layer and SAE; the error
    /// names each that differs, with both values.
    pub fn check_compatible(&self, model: &str, layer: usize, sae_id: &str) -> Result<()> {
        let o = &self.origin;
        let fields = [
            ("model", o.model.clone(), model.to_string()),
            ("layer", o.layer.to_string(), layer.to_string()),
            ("SAE", o.sae_id.clone(), sae_id.to_string()),
        ];
        let (mut expected, mut found) = (Vec::new(), Vec::new());
        for (name, profile, used) in fields {
            if profile != used {
                expected.push(format!("{name} {profile}"));
                found.push(format!("{name} {used}"));
            }
        }
        if expected.is_empty() {
            return Ok(());
        }
        Err(Error::Argument {
            name: "profile (as calibrated vs in use)".into(),
            expected: expected.join(", "),
            found: found.join(", "),
        })
    }

    /// The distinct features of all rows (type and boundary) and naive-Bayes tables,
    /// ascending: the SAE columns inference must encode, in the column order of
    /// [`crate::Activations::Dense`].
    pub fn features(&self) -> Vec<u32> {
        let mut features: Vec<u32> = self
            .rows
            .iter()
            .chain(&self.boundary_rows)
            .map(|r| r.feature)
            .chain(self.naive_bayes.iter().flat_map(NaiveBayes::features))
            .collect();
        features.sort_unstable();
        features.dedup();
        features
    }

    /// Reads a profile from a JSON file, checking every field.
    pub fn load(path: impl AsRef<Path>) -> Result<Profile> {
        use std::io::Read as _;
        let file = path.as_ref().display().to_string();
        let io = |source| Error::Io {
            file: file.clone(),
            source,
        };
        // Bounded, so that a wrong path (`/dev/zero`, a corpus) fails at once instead of
        // filling memory.
        let mut text = String::new();
        std::fs::File::open(path.as_ref())
            .and_then(|f| f.take(MAX_PROFILE_BYTES + 1).read_to_string(&mut text))
            .map_err(io)?;
        if text.len() as u64 > MAX_PROFILE_BYTES {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "larger than {} MiB, the most a profile may be; is this a profile?",
                    MAX_PROFILE_BYTES >> 20
                ),
            )));
        }
        Profile::parse(&text, &file)
    }

    /// Parses a profile from JSON text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Profile> {
        let profile: Profile = serde_json::from_str(text).map_err(|e| Error::Json {
            file: file.to_string(),
            line: e.line(),
            message: e.to_string(),
        })?;
        profile.validate(file)?;
        Ok(profile)
    }

    /// Writes the profile as pretty JSON.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let file = path.as_ref().display().to_string();
        std::fs::write(path.as_ref(), self.to_json()).map_err(|source| Error::Io { file, source })
    }

    /// The profile as pretty JSON, ending with a newline.
    pub fn to_json(&self) -> String {
        let mut json = serde_json::to_string_pretty(self).expect("a profile always serializes");
        json.push('\n');
        json
    }

    /// Checks what the JSON types cannot: the format, distinct labels, rows that name known
    /// types and in-range features, precisions in 0–1, `hits <= support`, one row per
    /// (feature, type), valid parameters.
    pub(crate) fn validate(&self, file: &str) -> Result<()> {
        let invalid = |field: String, expected: &str, found: String| Error::Invalid {
            file: file.to_string(),
            field,
            expected: expected.to_string(),
            found,
        };
        if self.format != FORMAT {
            return Err(invalid("format".into(), "1", self.format.to_string()));
        }
        let labels: HashSet<&str> = self.labels.iter().map(String::as_str).collect();
        if labels.is_empty() || labels.len() != self.labels.len() {
            return Err(invalid(
                "labels".into(),
                "one or more distinct types",
                self.labels.join(","),
            ));
        }
        for (name, rows) in [("rows", &self.rows), ("boundary_rows", &self.boundary_rows)] {
            let mut seen = HashSet::new();
            for (i, row) in rows.iter().enumerate() {
                let at = |field: &str| format!("{name}[{i}].{field}");
                if !labels.contains(row.label.as_str()) {
                    return Err(invalid(at("type"), "one of labels", row.label.clone()));
                }
                if row.feature as usize >= self.d_sae {
                    let expected = format!("a feature below d_sae = {}", self.d_sae);
                    return Err(invalid(at("feature"), &expected, row.feature.to_string()));
                }
                if !(0.0..=1.0).contains(&row.precision) {
                    return Err(invalid(
                        at("precision"),
                        "a number in 0..=1",
                        row.precision.to_string(),
                    ));
                }
                if row.hits > row.support {
                    let expected = format!("at most support = {}", row.support);
                    return Err(invalid(at("hits"), &expected, row.hits.to_string()));
                }
                if !seen.insert((row.feature, row.label.as_str())) {
                    let found = format!(
                        "a second row for feature {} and type {}",
                        row.feature, row.label
                    );
                    return Err(invalid(
                        at("feature"),
                        "one row per feature and type",
                        found,
                    ));
                }
            }
        }
        if let Some(nb) = &self.naive_bayes {
            nb.check(&self.labels, self.d_sae)
                .map_err(|(field, expected, found)| invalid(field, &expected, found))?;
        }
        let params = self
            .calibration
            .validate()
            .and_then(|()| self.decoding.validate());
        params.map_err(|e| {
            invalid(
                "calibration/decoding".into(),
                "valid parameters",
                e.to_string(),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{nb_profile, profile};

    fn sample() -> Profile {
        let rows = [(7, "PER", 0.9), (3, "LOC", 0.8), (7, "LOC", 0.6)];
        profile(
            &["PER", "LOC"],
            &rows,
            &[(5, "PER", 0.7)],
            DecodeParams::default(),
        )
    }

    #[test]
    fn json_round_trip_through_a_file() {
        let profile = sample();
        let json = profile.to_json();
        assert!(json.contains("\"type\": \"LOC\""), "{json}");
        assert!(json.contains("\"kind\": \"wilson\""), "{json}");
        assert!(json.contains("\"pooling\": \"last\""), "{json}");
        assert!(json.contains("\"sae_id\": \"sae-a\""), "{json}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("profile.json");
        profile.save(&path).unwrap();
        assert_eq!(Profile::load(&path).unwrap(), profile);
        // Without boundary rows the field is left out and reads back empty.
        let plain = Profile {
            boundary_rows: Vec::new(),
            ..profile
        };
        assert!(!plain.to_json().contains("boundary_rows"));
        assert_eq!(Profile::parse(&plain.to_json(), "p.json").unwrap(), plain);
    }

    /// Shipped profiles, and a noisy-or profile made before the naive-Bayes decoder existed
    /// (the old shipped NCBI profile cut to three rows), read back with every field they
    /// had and nothing added: the same JSON value written back.
    #[test]
    fn profiles_old_and_shipped_load_unchanged() {
        let root = env!("CARGO_MANIFEST_DIR");
        let shipped = format!("{root}/../../models/gemma3-270m-l9-topk64-16k/profiles");
        let old = format!("{root}/tests/data/noisy_or_profile_v1.json");
        let value = |json: &str| serde_json::from_str::<serde_json::Value>(json).unwrap();
        let mut paths: Vec<String> = ["conll2003", "ncbi_disease", "bc5cdr"]
            .iter()
            .map(|name| format!("{shipped}/{name}.json"))
            .collect();
        paths.push(old.clone());
        for path in &paths {
            let text = std::fs::read_to_string(path).unwrap();
            let profile = Profile::parse(&text, path).unwrap();
            assert!(value(&profile.to_json()) == value(&text), "{path}");
        }
        let old = Profile::load(&old).unwrap();
        assert!(old.naive_bayes.is_none());
        assert_eq!(old.features(), [3730, 9994, 11498]);
        assert_eq!(old.contexts.len(), 3);
    }

    #[test]
    fn features_are_sorted_and_distinct() {
        assert_eq!(sample().features(), [3, 5, 7]);
    }

    #[test]
    fn compatibility_names_what_differs() {
        let profile = sample();
        profile
            .check_compatible("gemma-3-270m", 9, "sae-a")
            .unwrap();
        let err = profile
            .check_compatible("gemma-3-270m", 6, "sae-b")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("expected layer 9, SAE sae-a, found layer 6, SAE sae-b"),
            "{err}"
        );
        assert!(!err.contains("model"), "{err}");
        let err = profile.check_compatible("other", 9, "sae-a").unwrap_err();
        assert!(err
            .to_string()
            .contains("expected model gemma-3-270m, found model other"));
    }

    #[test]
    fn malformed_files_name_the_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.json");
        let load = |profile: &Profile| {
            std::fs::write(&path, profile.to_json()).unwrap();
            Profile::load(&path).unwrap_err().to_string()
        };
        let mut bad = sample();
        bad.rows[1].label = "ORG".into();
        let err = load(&bad);
        assert!(
            err.contains("bad.json: rows[1].type: expected one of labels, found ORG"),
            "{err}"
        );
        let mut bad = sample();
        bad.boundary_rows[0].feature = 64;
        assert!(load(&bad).contains("boundary_rows[0].feature"));
        let mut bad = sample();
        bad.rows[2].feature = 7;
        bad.rows[2].label = "PER".into();
        assert!(load(&bad).contains("one row per feature and type"));
        let mut bad = sample();
        bad.decoding.threshold = 2.0;
        assert!(load(&bad).contains("decision threshold"));

        let json = sample().to_json().replace("\"layer\": 9,", "");
        let err = Profile::parse(&json, "cut.json").unwrap_err().to_string();
        assert!(
            err.starts_with("cut.json:") && err.contains("missing field `layer`"),
            "{err}"
        );
        let err = Profile::load(dir.path().join("absent.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("absent.json"), "{err}");
    }

    #[test]
    fn malformed_tables_name_the_field() {
        let mut bad = nb_profile(false);
        bad.naive_bayes.as_mut().unwrap().offsets[0].features[0].counts[1] = 9;
        let err = Profile::parse(&bad.to_json(), "nb.json")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("naive_bayes.offsets[0].features[0].counts"),
            "{err}"
        );
        let mut bad = nb_profile(false);
        bad.naive_bayes.as_mut().unwrap().classes.pop();
        let err = Profile::parse(&bad.to_json(), "nb.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("naive_bayes.classes"), "{err}");
        let json = nb_profile(false)
            .to_json()
            .replace("\"1: 0 1 1 0 0\"", "\"1 0 1\"");
        let err = Profile::parse(&json, "nb.json").unwrap_err().to_string();
        assert!(err.contains("expected \"feature: counts"), "{err}");
    }
}
