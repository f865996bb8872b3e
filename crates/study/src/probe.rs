//! Trained probing baselines, the comparison SAE-NER is judged against: multinomial
//! logistic regression from a word's activations to its class (O or an entity type), with
//! L2 regularisation, trained by Adam on mini-batches.
//!
//! A word is read at its last token, as SAE-NER decodes it, from either the dense residual
//! ([`ProbeInput::Dense`]) or the SAE code ([`ProbeInput::Sae`]) of that token. Predicted
//! word classes become spans by the same runs as SAE-NER ([`saener_ner::decode`]), so the two
//! methods differ only in how a word gets its label. Logistic regression is written out
//! here because it is forty lines of arithmetic on data already in memory; candle's
//! optimisers would add graph overhead to a 640 × 5 weight matrix.

use std::collections::HashMap;
use std::path::Path;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use saener_ner::decode::{entity_runs, predicted_document};
use saener_ner::{Corpus, Error, Origin, Result};

use crate::features::WordFeatures;
use crate::weights;

/// Version of the probe file layout.
const FORMAT: u32 = 1;
/// The probe's weights file: metadata key, name and layout version.
const FILE: weights::Kind = weights::Kind {
    key: "saener_probe",
    what: "probe metadata",
    format: FORMAT,
};

/// What a probe reads at each word's last token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeInput {
    /// The residual stream at the SAE's layer.
    Dense,
    /// The SAE code of that residual.
    Sae,
}

/// Each word's class: 0 for O, `c + 1` for `labels[c]`.
pub fn word_classes(corpus: &Corpus, labels: &[String]) -> Vec<u32> {
    let index: HashMap<&str, u32> = labels
        .iter()
        .enumerate()
        .map(|(c, l)| (l.as_str(), c as u32 + 1))
        .collect();
    let mut classes = Vec::new();
    for sentence in corpus.sentences() {
        let mut row = vec![0; sentence.words.len()];
        for e in &sentence.entities {
            if let Some(&c) = index.get(e.label.as_str()) {
                row[e.start..e.end].fill(c);
            }
        }
        classes.extend(row);
    }
    classes
}

/// Training settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProbeOptions {
    /// L2 penalty on the weights (not the biases), per example.
    pub l2: f64,
    /// Passes over the training words.
    pub epochs: usize,
    /// Adam's step size.
    pub learning_rate: f64,
    /// Words per Adam step.
    pub batch_size: usize,
    /// Weight each class by the inverse of its frequency (O is most of the words).
    pub class_weighting: bool,
    /// Seed of the word order.
    pub seed: u64,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            l2: 1e-4,
            epochs: 10,
            learning_rate: 1e-3,
            batch_size: 256,
            class_weighting: false,
            seed: 0,
        }
    }
}

/// What a probe file records besides its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeMeta {
    /// Layout version (1).
    pub format: u32,
    /// What the probe reads.
    pub input: ProbeInput,
    /// Entity types; class 0 is O.
    pub labels: Vec<String>,
    /// The model, layer, SAE and training data it was made with.
    #[serde(flatten)]
    pub origin: Origin,
    /// How it was trained.
    pub options: ProbeOptions,
}

/// A trained probe; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Probe {
    /// What it reads and how it was made.
    pub meta: ProbeMeta,
    d: usize,
    /// Inputs are standardised as `(x − shift) · scale` with train statistics.
    shift: Vec<f32>,
    scale: Vec<f32>,
    /// `[d, n_classes]` row-major.
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl Probe {
    /// Trains on `features` with word `classes` (from [`word_classes`]).
    pub fn train(features: &WordFeatures, classes: &[u32], meta: ProbeMeta) -> Result<Probe> {
        let n = features.len();
        let n_classes = meta.labels.len() + 1;
        if n != classes.len() || n == 0 {
            return Err(Error::Mismatch {
                at: "probe training data".into(),
                gold: format!("{} word classes", classes.len()),
                pred: format!("{n} word feature rows"),
            });
        }
        let d = features.width();
        let (shift, scale) = standardisation(features);
        let mut probe = Probe {
            d,
            shift,
            scale,
            weight: vec![0.0; d * n_classes],
            bias: vec![0.0; n_classes],
            meta,
        };
        let options = probe.meta.options;
        let mut counts = vec![0usize; n_classes];
        classes.iter().for_each(|&c| counts[c as usize] += 1);
        let class_weight: Vec<f32> = counts
            .iter()
            .map(|&k| match (options.class_weighting, k) {
                (true, 0) => 0.0,
                (true, k) => n as f32 / (n_classes * k) as f32,
                (false, _) => 1.0,
            })
            .collect();

        let mut adam_w = Adam::new(d * n_classes);
        let mut adam_b = Adam::new(n_classes);
        let mut order: Vec<usize> = (0..n).collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(options.seed);
        let mut x = vec![0.0f32; d];
        for _ in 0..options.epochs {
            order.shuffle(&mut rng);
            for batch in order.chunks(options.batch_size.max(1)) {
                let mut grad_w = vec![0.0f32; d * n_classes];
                let mut grad_b = vec![0.0f32; n_classes];
                for &i in batch {
                    let active = probe.standardised(features, i, &mut x);
                    let p = probe.probabilities(&x, &active);
                    let c = classes[i] as usize;
                    let weight = class_weight[c] / batch.len() as f32;
                    for k in 0..n_classes {
                        let g = weight * (p[k] - f32::from(k == c));
                        grad_b[k] += g;
                        for &j in &active {
                            grad_w[j * n_classes + k] += g * x[j];
                        }
                    }
                    for &j in &active {
                        x[j] = 0.0;
                    }
                }
                let l2 = options.l2 as f32;
                for (g, w) in grad_w.iter_mut().zip(&probe.weight) {
                    *g += l2 * w;
                }
                adam_w.step(&mut probe.weight, &grad_w, options.learning_rate);
                adam_b.step(&mut probe.bias, &grad_b, options.learning_rate);
            }
        }
        Ok(probe)
    }

    /// Standardises word `i` into `x`; returns the indices that may be nonzero.
    fn standardised(&self, features: &WordFeatures, i: usize, x: &mut [f32]) -> Vec<usize> {
        match features {
            WordFeatures::Dense { d, rows } => {
                for (j, (&v, out)) in rows[i * d..(i + 1) * d]
                    .iter()
                    .zip(x.iter_mut())
                    .enumerate()
                {
                    *out = (v - self.shift[j]) * self.scale[j];
                }
                (0..*d).collect()
            }
            WordFeatures::Sparse { codes, .. } => {
                let code = &codes[i];
                for (&f, &v) in code.ids.iter().zip(&code.values) {
                    x[f as usize] = v * self.scale[f as usize];
                }
                code.ids.iter().map(|&f| f as usize).collect()
            }
        }
    }

    /// Softmax over classes of the standardised input `x` (nonzero only at `active`).
    fn probabilities(&self, x: &[f32], active: &[usize]) -> Vec<f32> {
        let n_classes = self.bias.len();
        let mut logits = self.bias.clone();
        for &j in active {
            let row = &self.weight[j * n_classes..(j + 1) * n_classes];
            for (l, &w) in logits.iter_mut().zip(row) {
                *l += w * x[j];
            }
        }
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut total = 0.0;
        for l in &mut logits {
            *l = (*l - max).exp();
            total += *l;
        }
        logits.iter_mut().for_each(|l| *l /= total);
        logits
    }

    /// The corpus with the probe's entities: each word takes its most probable class, and
    /// runs of words with one type become entities.
    pub fn predict(&self, corpus: &Corpus, features: &WordFeatures) -> Result<Corpus> {
        let n_words: usize = corpus.sentences().map(|s| s.words.len()).sum();
        if features.len() != n_words || features.width() != self.d {
            return Err(Error::Mismatch {
                at: "probe input".into(),
                gold: format!("{n_words} words × {} features", self.d),
                pred: format!("{} rows × {}", features.len(), features.width()),
            });
        }
        let mut x = vec![0.0f32; self.d];
        let mut i = 0;
        let mut documents = Vec::with_capacity(corpus.documents.len());
        for document in &corpus.documents {
            let mut spans = Vec::new();
            for (s, sentence) in document.sentences.iter().enumerate() {
                let mut word_labels = Vec::with_capacity(sentence.words.len());
                for _ in &sentence.words {
                    let active = self.standardised(features, i, &mut x);
                    let p = self.probabilities(&x, &active);
                    for &j in &active {
                        x[j] = 0.0;
                    }
                    let (best, &score) = p
                        .iter()
                        .enumerate()
                        .max_by(|a, b| a.1.total_cmp(b.1))
                        .expect("at least one class");
                    word_labels.push((best > 0).then(|| (best - 1, f64::from(score))));
                    i += 1;
                }
                for run in entity_runs(&word_labels, |_, _| false) {
                    spans.push(run.span(s, sentence, &self.meta.labels));
                }
            }
            documents.push(predicted_document(document, &spans));
        }
        Ok(Corpus {
            documents,
            annotated: true,
            separator: corpus.separator,
        })
    }

    /// Writes the probe as safetensors (`weight [d, classes]`, `bias`, `shift`, `scale`)
    /// with its [`ProbeMeta`] as JSON under the metadata key `saener_probe`.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let n_classes = self.bias.len();
        let meta = serde_json::to_string(&self.meta).expect("metadata serializes");
        weights::save(
            path.as_ref(),
            FILE.key,
            meta,
            &[
                ("weight", vec![self.d, n_classes], &self.weight),
                ("bias", vec![n_classes], &self.bias),
                ("shift", vec![self.d], &self.shift),
                ("scale", vec![self.d], &self.scale),
            ],
        )
    }

    /// Reads a probe written by [`Probe::save`].
    pub fn load(path: impl AsRef<Path>) -> Result<Probe> {
        let (mut file, meta) = weights::read(path.as_ref(), &FILE, |m: &ProbeMeta| m.format)?;
        let n_classes = meta.labels.len() + 1;
        let d = file.shape("weight")?[0];
        Ok(Probe {
            weight: file.take("weight", &[d, n_classes])?,
            bias: file.take("bias", &[n_classes])?,
            shift: file.take("shift", &[d])?,
            scale: file.take("scale", &[d])?,
            d,
            meta,
        })
    }
}

/// `(shift, scale)` standardising each dense input to mean 0 and variance 1; sparse codes
/// are only scaled, by one factor (their mean active value), to keep them sparse.
pub(crate) fn standardisation(features: &WordFeatures) -> (Vec<f32>, Vec<f32>) {
    match features {
        WordFeatures::Dense { d, rows } => {
            let n = (rows.len() / d).max(1) as f64;
            let mut mean = vec![0f64; *d];
            let mut square = vec![0f64; *d];
            for row in rows.chunks_exact(*d) {
                for (j, &v) in row.iter().enumerate() {
                    mean[j] += f64::from(v);
                    square[j] += f64::from(v) * f64::from(v);
                }
            }
            let shift: Vec<f32> = mean.iter().map(|m| (m / n) as f32).collect();
            let scale = mean
                .iter()
                .zip(&square)
                .map(|(m, s)| {
                    let variance = s / n - (m / n) * (m / n);
                    (1.0 / variance.max(1e-12).sqrt()) as f32
                })
                .collect();
            (shift, scale)
        }
        WordFeatures::Sparse { d, codes } => {
            let (total, count) = codes
                .iter()
                .flat_map(|c| &c.values)
                .fold((0f64, 0usize), |(t, k), &v| (t + f64::from(v), k + 1));
            let mean = if count == 0 {
                1.0
            } else {
                total / count as f64
            };
            (vec![0.0; *d], vec![(1.0 / mean) as f32; *d])
        }
    }
}

/// Adam (Kingma & Ba) with the usual defaults.
pub(crate) struct Adam {
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
}

impl Adam {
    pub(crate) fn new(n: usize) -> Adam {
        Adam {
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
        }
    }

    pub(crate) fn step(&mut self, params: &mut [f32], grads: &[f32], lr: f64) {
        const B1: f32 = 0.9;
        const B2: f32 = 0.999;
        self.t += 1;
        let (c1, c2) = (1.0 - B1.powi(self.t), 1.0 - B2.powi(self.t));
        for ((p, &g), (m, v)) in params
            .iter_mut()
            .zip(grads)
            .zip(self.m.iter_mut().zip(self.v.iter_mut()))
        {
            *m = B1 * *m + (1.0 - B1) * g;
            *v = B2 * *v + (1.0 - B2) * g * g;
            *p -= lr as f32 * (*m / c1) / ((*v / c2).sqrt() + 1e-8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::conll;
    use saener_sae::SparseCode;

    fn meta(input: ProbeInput) -> ProbeMeta {
        ProbeMeta {
            format: FORMAT,
            input,
            labels: vec!["PER".into(), "LOC".into()],
            origin: Origin {
                model: "m".into(),
                layer: 9,
                sae_id: "s".into(),
                data_checksum: "c".into(),
                echo: false,
                precision: Default::default(),
            },
            options: ProbeOptions {
                epochs: 200,
                learning_rate: 0.05,
                batch_size: 4,
                ..ProbeOptions::default()
            },
        }
    }

    /// "Angela Merkel visited Paris ." with a feature per class: dense dimension c (or SAE
    /// feature c) is high on words of class c.
    fn toy() -> (Corpus, Vec<u32>) {
        let corpus = conll("Angela B-PER\nMerkel I-PER\nvisited O\nParis B-LOC\n. O\n");
        let classes = word_classes(&corpus, &meta(ProbeInput::Dense).labels);
        (corpus, classes)
    }

    #[test]
    fn dense_and_sparse_probes_learn_separable_classes_and_decode_spans() {
        let (corpus, classes) = toy();
        assert_eq!(classes, [1, 1, 0, 2, 0]);
        let dense = WordFeatures::Dense {
            d: 3,
            rows: classes
                .iter()
                .flat_map(|&c| (0..3).map(move |j| if j == c { 5.0 } else { 0.0 }))
                .collect(),
        };
        let sparse = WordFeatures::Sparse {
            d: 8,
            codes: classes
                .iter()
                .map(|&c| SparseCode {
                    ids: vec![c + 4],
                    values: vec![2.0],
                })
                .collect(),
        };
        for (features, input) in [(dense, ProbeInput::Dense), (sparse, ProbeInput::Sae)] {
            let probe = Probe::train(&features, &classes, meta(input)).unwrap();
            let predicted = probe.predict(&corpus, &features).unwrap();
            let report = saener_ner::evaluate_corpus(&corpus, &predicted).unwrap();
            assert_eq!(report.strict.micro.f1, 1.0, "{input:?}");

            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("probe.safetensors");
            probe.save(&path).unwrap();
            let back = Probe::load(&path).unwrap();
            assert_eq!(back.meta, probe.meta);
            assert_eq!(back.weight, probe.weight);
            assert_eq!(predicted, back.predict(&corpus, &features).unwrap());
        }
    }

    #[test]
    fn mismatched_inputs_are_errors() {
        let (corpus, classes) = toy();
        let features = WordFeatures::Dense {
            d: 2,
            rows: vec![0.0; 8],
        };
        assert!(Probe::train(&features, &classes, meta(ProbeInput::Dense)).is_err());
        let ok = WordFeatures::Dense {
            d: 2,
            rows: vec![1.0; 10],
        };
        let probe = Probe::train(&ok, &classes, meta(ProbeInput::Dense)).unwrap();
        assert!(probe.predict(&corpus, &features).is_err());
    }
}
