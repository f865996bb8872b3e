//! The downstream tagger of the silver-data study: a linear-chain CRF over frozen features.
//!
//! Each word is read as its dense residual (at its last token) concatenated with its
//! neighbours' within the sentence (`window` words on each side, zeros past the edges):
//! the language model reads left to right, so the right neighbours bring the context a
//! word's own residual has not seen. Tags are IOB2; transitions that make invalid IOB2
//! (`I-X` after anything but `B-X`/`I-X`, or at a sentence start) are forbidden in training
//! and decoding, so every prediction is a valid set of entities. Training minimises the
//! negative log-likelihood (forward–backward) with Adam over mini-batches of sentences and
//! an L2 penalty on the emission weights; decoding is Viterbi.
//!
//! Written out rather than on candle: the model is a few matrix–vector products per word
//! and a 9-state dynamic programme per sentence, which plain loops run at a few seconds per
//! epoch of CoNLL-2003 on one core, with no graph to build.

use std::path::Path;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;
use saener_kernels::dot;
use serde::{Deserialize, Serialize};

use saener_ner::{evaluate_corpus, Corpus, Entity, Error, EvalReport, Origin, Result};

use crate::features::{Featured, WordFeatures};
use crate::probe::{standardisation, Adam};
use crate::weights;

const FORMAT: u32 = 1;
/// The tagger's weights file: metadata key, name and layout version.
const FILE: weights::Kind = weights::Kind {
    key: "saener_tagger",
    what: "tagger metadata",
    format: FORMAT,
};

/// Training settings; the study keeps them fixed across runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TaggerOptions {
    /// Neighbours on each side whose features join a word's.
    pub window: usize,
    /// L2 penalty on the emission weights, per sentence.
    pub l2: f64,
    /// Passes over the training sentences.
    pub epochs: usize,
    /// Adam's step size.
    pub learning_rate: f64,
    /// Sentences per Adam step.
    pub batch_sentences: usize,
    /// Seed of the sentence order.
    pub seed: u64,
}

impl Default for TaggerOptions {
    fn default() -> Self {
        TaggerOptions {
            window: 1,
            // Chosen on gold CoNLL-2003 train → dev (strict F1 92.74 / 92.63 / 92.52 at
            // 1e-5 / 1e-4 / 1e-3), then frozen for every study run.
            l2: 1e-5,
            epochs: 8,
            learning_rate: 2e-3,
            batch_sentences: 32,
            seed: 0,
        }
    }
}

/// What a tagger file records besides its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaggerMeta {
    /// Layout version (1).
    pub format: u32,
    /// Entity types; tag 0 is O, tag `2c + 1` is `B-labels[c]`, `2c + 2` is `I-labels[c]`.
    pub labels: Vec<String>,
    /// The model, layer and training data it was made with.
    #[serde(flatten)]
    pub origin: Origin,
    /// How it was trained.
    pub options: TaggerOptions,
}

/// A trained tagger; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Tagger {
    /// Its types and how it was made.
    pub meta: TaggerMeta,
    /// Width of one word's features.
    d: usize,
    /// Inputs are standardised as `(x − shift) · scale` with train statistics.
    shift: Vec<f32>,
    scale: Vec<f32>,
    /// `[2·window + 1, tags, d]`: block `o` weighs the word at offset `o − window`.
    emission: Vec<f32>,
    bias: Vec<f32>,
    /// `[tags, tags]`, from → to; `start` and `end` score the first and last tag.
    transition: Vec<f32>,
    start: Vec<f32>,
    end: Vec<f32>,
}

/// The tags of `n_labels` types and which moves between them make valid IOB2.
struct TagSet {
    n: usize,
}

impl TagSet {
    fn new(n_labels: usize) -> TagSet {
        TagSet {
            n: 2 * n_labels + 1,
        }
    }

    /// The label index of an `I-` tag.
    fn inside_of(tag: usize) -> Option<usize> {
        (tag > 0 && tag.is_multiple_of(2)).then(|| tag / 2 - 1)
    }

    fn label_of(tag: usize) -> Option<usize> {
        (tag > 0).then(|| (tag - 1) / 2)
    }

    fn allowed(from: Option<usize>, to: usize) -> bool {
        match Self::inside_of(to) {
            None => true,
            Some(c) => from.is_some_and(|f| Self::label_of(f) == Some(c)),
        }
    }

    /// Each word's tag index, from a sentence's entities.
    fn encode(entities: &[Entity], n_words: usize, labels: &[String]) -> Vec<usize> {
        let mut tags = vec![0; n_words];
        for e in entities {
            if let Some(c) = labels.iter().position(|l| *l == e.label) {
                tags[e.start] = 2 * c + 1;
                tags[e.start + 1..e.end].fill(2 * c + 2);
            }
        }
        tags
    }

    /// Entities from a valid tag sequence.
    fn decode(tags: &[usize], labels: &[String]) -> Vec<Entity> {
        let mut entities: Vec<Entity> = Vec::new();
        for (i, &t) in tags.iter().enumerate() {
            match (Self::label_of(t), Self::inside_of(t)) {
                (Some(_), Some(_)) => entities.last_mut().expect("valid IOB2").end = i + 1,
                (Some(c), None) => entities.push(Entity {
                    start: i,
                    end: i + 1,
                    label: labels[c].clone(),
                }),
                _ => {}
            }
        }
        entities
    }
}

/// Gradient accumulators, one per worker.
#[derive(Clone)]
struct Gradients {
    emission: Vec<f32>,
    bias: Vec<f32>,
    transition: Vec<f32>,
    start: Vec<f32>,
    end: Vec<f32>,
}

impl Gradients {
    fn zeros(t: &Tagger) -> Gradients {
        Gradients {
            emission: vec![0.0; t.emission.len()],
            bias: vec![0.0; t.bias.len()],
            transition: vec![0.0; t.transition.len()],
            start: vec![0.0; t.start.len()],
            end: vec![0.0; t.end.len()],
        }
    }

    fn add(mut self, other: Gradients) -> Gradients {
        for (a, b) in [
            (&mut self.emission, &other.emission),
            (&mut self.bias, &other.bias),
            (&mut self.transition, &other.transition),
            (&mut self.start, &other.start),
            (&mut self.end, &other.end),
        ] {
            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        }
        self
    }
}

fn log_sum_exp(values: impl Iterator<Item = f64>) -> f64 {
    let values: Vec<f64> = values.collect();
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return max;
    }
    max + values.iter().map(|v| (v - max).exp()).sum::<f64>().ln()
}

impl Tagger {
    /// Trains on `features` (dense, one row per word of `corpus` in order) to predict the
    /// corpus's entities of `meta.labels` (other types are ignored).
    pub fn train(corpus: &Corpus, features: &WordFeatures, meta: TaggerMeta) -> Result<Tagger> {
        let WordFeatures::Dense { d, rows } = features else {
            return Err(Error::Argument {
                name: "tagger features".into(),
                expected: "dense word rows".into(),
                found: "sparse codes".into(),
            });
        };
        let sentences = sentence_ranges(corpus, rows.len() / (*d).max(1))?;
        let (shift, scale) = standardisation(features);
        let n_tags = TagSet::new(meta.labels.len()).n;
        let options = meta.options;
        let blocks = 2 * options.window + 1;
        let mut tagger = Tagger {
            d: *d,
            shift,
            scale,
            emission: vec![0.0; blocks * n_tags * d],
            bias: vec![0.0; n_tags],
            transition: vec![0.0; n_tags * n_tags],
            start: vec![0.0; n_tags],
            end: vec![0.0; n_tags],
            meta,
        };
        let gold: Vec<Vec<usize>> = corpus
            .sentences()
            .map(|s| TagSet::encode(&s.entities, s.words.len(), &tagger.meta.labels))
            .collect();
        let inputs: Vec<Vec<f32>> = sentences
            .iter()
            .map(|r| tagger.standardised(rows, r.clone()))
            .collect();

        let mut adam = [
            Adam::new(tagger.emission.len()),
            Adam::new(n_tags),
            Adam::new(n_tags * n_tags),
            Adam::new(n_tags),
            Adam::new(n_tags),
        ];
        let mut order: Vec<usize> = (0..inputs.len()).filter(|&s| !gold[s].is_empty()).collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(options.seed);
        let lr = options.learning_rate;
        for _ in 0..options.epochs {
            order.shuffle(&mut rng);
            for batch in order.chunks(options.batch_sentences.max(1)) {
                let mut g = batch
                    .par_iter()
                    .fold(
                        || Gradients::zeros(&tagger),
                        |g, &s| tagger.accumulate(&inputs[s], &gold[s], g),
                    )
                    .reduce(|| Gradients::zeros(&tagger), Gradients::add);
                let scale = 1.0 / batch.len() as f32;
                let l2 = options.l2 as f32;
                for (gw, w) in g.emission.iter_mut().zip(&tagger.emission) {
                    *gw = *gw * scale + l2 * w;
                }
                for v in [&mut g.bias, &mut g.transition, &mut g.start, &mut g.end] {
                    v.iter_mut().for_each(|x| *x *= scale);
                }
                adam[0].step(&mut tagger.emission, &g.emission, lr);
                adam[1].step(&mut tagger.bias, &g.bias, lr);
                adam[2].step(&mut tagger.transition, &g.transition, lr);
                adam[3].step(&mut tagger.start, &g.start, lr);
                adam[4].step(&mut tagger.end, &g.end, lr);
            }
        }
        Ok(tagger)
    }

    /// The standardised rows `range` of `rows`, `[n, d]`.
    fn standardised(&self, rows: &[f32], range: std::ops::Range<usize>) -> Vec<f32> {
        let d = self.d;
        rows[range.start * d..range.end * d]
            .chunks_exact(d)
            .flat_map(|row| {
                row.iter()
                    .zip(&self.shift)
                    .zip(&self.scale)
                    .map(|((v, m), s)| (v - m) * s)
            })
            .collect()
    }

    fn n_tags(&self) -> usize {
        self.bias.len()
    }

    /// `[n, tags]` emission scores of a sentence's standardised rows `x`.
    fn emissions(&self, x: &[f32]) -> Vec<f32> {
        let (d, t, w) = (self.d, self.n_tags(), self.meta.options.window as isize);
        let n = x.len() / d;
        let mut out: Vec<f32> = (0..n).flat_map(|_| self.bias.iter().copied()).collect();
        for i in 0..n {
            for (o, block) in self.emission.chunks_exact(t * d).enumerate() {
                let j = i as isize + o as isize - w;
                if j < 0 || j >= n as isize {
                    continue;
                }
                let xj = &x[j as usize * d..(j as usize + 1) * d];
                for (k, weights) in block.chunks_exact(d).enumerate() {
                    out[i * t + k] += dot(weights, xj);
                }
            }
        }
        out
    }

    fn transition_score(&self, from: Option<usize>, to: usize) -> f64 {
        if !TagSet::allowed(from, to) {
            return f64::NEG_INFINITY;
        }
        f64::from(match from {
            None => self.start[to],
            Some(f) => self.transition[f * self.n_tags() + to],
        })
    }

    /// Adds the gradient of one sentence's negative log-likelihood to `g`.
    fn accumulate(&self, x: &[f32], gold: &[usize], mut g: Gradients) -> Gradients {
        let (d, t, w) = (self.d, self.n_tags(), self.meta.options.window as isize);
        let n = gold.len();
        let e = self.emissions(x);
        let emit = |i: usize, k: usize| f64::from(e[i * t + k]);
        // Forward and backward log-potentials.
        let mut alpha = vec![f64::NEG_INFINITY; n * t];
        for (k, a) in alpha[..t].iter_mut().enumerate() {
            *a = self.transition_score(None, k) + emit(0, k);
        }
        for i in 1..n {
            for k in 0..t {
                alpha[i * t + k] = emit(i, k)
                    + log_sum_exp(
                        (0..t).map(|p| alpha[(i - 1) * t + p] + self.transition_score(Some(p), k)),
                    );
            }
        }
        let mut beta = vec![f64::NEG_INFINITY; n * t];
        for k in 0..t {
            beta[(n - 1) * t + k] = f64::from(self.end[k]);
        }
        for i in (0..n - 1).rev() {
            for p in 0..t {
                beta[i * t + p] = log_sum_exp((0..t).map(|k| {
                    self.transition_score(Some(p), k) + emit(i + 1, k) + beta[(i + 1) * t + k]
                }));
            }
        }
        let log_z = log_sum_exp((0..t).map(|k| alpha[(n - 1) * t + k] + f64::from(self.end[k])));

        // d NLL / d emission[i][k] = marginal − gold indicator.
        let mut de = vec![0f32; n * t];
        for i in 0..n {
            for k in 0..t {
                let marginal = (alpha[i * t + k] + beta[i * t + k] - log_z).exp();
                de[i * t + k] = marginal as f32 - f32::from(gold[i] == k);
            }
        }
        for i in 1..n {
            for p in 0..t {
                for k in 0..t {
                    let s = self.transition_score(Some(p), k);
                    if s == f64::NEG_INFINITY {
                        continue;
                    }
                    let pair =
                        (alpha[(i - 1) * t + p] + s + emit(i, k) + beta[i * t + k] - log_z).exp();
                    g.transition[p * t + k] += pair as f32;
                }
            }
            g.transition[gold[i - 1] * t + gold[i]] -= 1.0;
        }
        for k in 0..t {
            g.start[k] += de[k];
            let last = (alpha[(n - 1) * t + k] + f64::from(self.end[k]) - log_z).exp();
            g.end[k] += last as f32 - f32::from(gold[n - 1] == k);
        }
        for i in 0..n {
            for k in 0..t {
                g.bias[k] += de[i * t + k];
            }
            for o in 0..2 * w + 1 {
                let j = i as isize + o - w;
                if j < 0 || j >= n as isize {
                    continue;
                }
                let xj = &x[j as usize * d..(j as usize + 1) * d];
                let block = &mut g.emission[o as usize * t * d..(o as usize + 1) * t * d];
                for (k, row) in block.chunks_exact_mut(d).enumerate() {
                    let gk = de[i * t + k];
                    if gk != 0.0 {
                        row.iter_mut().zip(xj).for_each(|(r, &v)| *r += gk * v);
                    }
                }
            }
        }
        g
    }

    /// The most probable valid tag sequence of a sentence (Viterbi).
    fn viterbi(&self, x: &[f32]) -> Vec<usize> {
        let t = self.n_tags();
        let e = self.emissions(x);
        let n = e.len() / t;
        if n == 0 {
            return Vec::new();
        }
        let mut best = vec![f64::NEG_INFINITY; n * t];
        let mut back = vec![0usize; n * t];
        for k in 0..t {
            best[k] = self.transition_score(None, k) + f64::from(e[k]);
        }
        for i in 1..n {
            for k in 0..t {
                let (p, score) = (0..t)
                    .map(|p| (p, best[(i - 1) * t + p] + self.transition_score(Some(p), k)))
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .expect("at least one tag");
                best[i * t + k] = score + f64::from(e[i * t + k]);
                back[i * t + k] = p;
            }
        }
        let mut k = (0..t)
            .max_by(|&a, &b| {
                (best[(n - 1) * t + a] + f64::from(self.end[a]))
                    .total_cmp(&(best[(n - 1) * t + b] + f64::from(self.end[b])))
            })
            .expect("at least one tag");
        let mut tags = vec![0; n];
        for i in (0..n).rev() {
            tags[i] = k;
            k = back[i * t + k];
        }
        tags
    }

    /// The corpus with the tagger's entities in place of its own.
    pub fn predict(&self, corpus: &Corpus, features: &WordFeatures) -> Result<Corpus> {
        let WordFeatures::Dense { d, rows } = features else {
            return Err(Error::Argument {
                name: "tagger features".into(),
                expected: "dense word rows".into(),
                found: "sparse codes".into(),
            });
        };
        if *d != self.d {
            return Err(Error::Mismatch {
                at: "tagger input width".into(),
                gold: format!("{} features", self.d),
                pred: format!("{d} features"),
            });
        }
        let ranges = sentence_ranges(corpus, rows.len() / (*d).max(1))?;
        let entities: Vec<Vec<Entity>> = ranges
            .into_par_iter()
            .map(|r| {
                let tags = self.viterbi(&self.standardised(rows, r));
                TagSet::decode(&tags, &self.meta.labels)
            })
            .collect();
        let mut predicted = corpus.clone();
        let sentences = predicted
            .documents
            .iter_mut()
            .flat_map(|doc| doc.sentences.iter_mut());
        for (sentence, found) in sentences.zip(entities) {
            sentence.entities = found;
        }
        predicted.annotated = true;
        Ok(predicted)
    }

    /// Writes the tagger as safetensors with its [`TaggerMeta`] under `saener_tagger`.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let (t, d) = (self.n_tags(), self.d);
        let blocks = 2 * self.meta.options.window + 1;
        let meta = serde_json::to_string(&self.meta).expect("metadata serializes");
        weights::save(
            path.as_ref(),
            FILE.key,
            meta,
            &[
                ("emission", vec![blocks, t, d], &self.emission),
                ("bias", vec![t], &self.bias),
                ("transition", vec![t, t], &self.transition),
                ("start", vec![t], &self.start),
                ("end", vec![t], &self.end),
                ("shift", vec![d], &self.shift),
                ("scale", vec![d], &self.scale),
            ],
        )
    }

    /// Reads a tagger written by [`Tagger::save`].
    pub fn load(path: impl AsRef<Path>) -> Result<Tagger> {
        let (mut file, meta) = weights::read(path.as_ref(), &FILE, |m: &TaggerMeta| m.format)?;
        let t = TagSet::new(meta.labels.len()).n;
        let blocks = 2 * meta.options.window + 1;
        let d = file.shape("shift")?.first().copied().unwrap_or(0);
        Ok(Tagger {
            emission: file.take("emission", &[blocks, t, d])?,
            bias: file.take("bias", &[t])?,
            transition: file.take("transition", &[t, t])?,
            start: file.take("start", &[t])?,
            end: file.take("end", &[t])?,
            shift: file.take("shift", &[d])?,
            scale: file.take("scale", &[d])?,
            d,
            meta,
        })
    }
}

/// Trains a tagger on `train` and scores it on `test`, as `saener eval` scores a profile.
pub fn fit_and_score(
    train: &Featured,
    test: &Featured,
    meta: TaggerMeta,
) -> Result<(Tagger, EvalReport)> {
    let tagger = Tagger::train(&train.corpus, &train.features, meta)?;
    let predicted = tagger.predict(&test.corpus, &test.features)?;
    let report = evaluate_corpus(&test.corpus, &predicted)?;
    Ok((tagger, report))
}

/// The word-row range of each sentence, checking that `n_rows` covers the corpus.
fn sentence_ranges(corpus: &Corpus, n_rows: usize) -> Result<Vec<std::ops::Range<usize>>> {
    let mut ranges = Vec::new();
    let mut at = 0;
    for sentence in corpus.sentences() {
        ranges.push(at..at + sentence.words.len());
        at += sentence.words.len();
    }
    if at != n_rows {
        return Err(Error::Mismatch {
            at: "tagger input".into(),
            gold: format!("{at} words"),
            pred: format!("{n_rows} feature rows"),
        });
    }
    Ok(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::conll;

    fn meta(labels: &[&str], window: usize) -> TaggerMeta {
        TaggerMeta {
            format: FORMAT,
            labels: labels.iter().map(|l| l.to_string()).collect(),
            origin: Origin {
                model: "m".into(),
                layer: 9,
                sae_id: "s".into(),
                data_checksum: "c".into(),
                echo: false,
                precision: Default::default(),
            },
            options: TaggerOptions {
                window,
                epochs: 150,
                learning_rate: 0.05,
                batch_sentences: 2,
                ..TaggerOptions::default()
            },
        }
    }

    /// Two adjacent PER entities and a LOC: keeping the two names apart needs the B/I
    /// tags, learnt here from a dimension that marks each name's first word.
    fn toy() -> (Corpus, WordFeatures) {
        let corpus = conll(
            "Anna B-PER\nBell I-PER\nCarl B-PER\nDunn I-PER\nin O\nParis B-LOC\n. O\n\n\
             Eve B-PER\nsaw O\nRome B-LOC\n. O\n",
        );
        // Dimensions: PER, LOC, first word of a name.
        let rows = [
            [1.0, 0.0, 1.0],
            [1.0, 0.0, 0.0],
            [1.0, 0.0, 1.0],
            [1.0, 0.0, 0.0],
            [0.0, 0.0, 0.0],
            [0.0, 1.0, 1.0],
            [0.0, 0.0, 0.0],
            [1.0, 0.0, 1.0],
            [0.0, 0.0, 0.0],
            [0.0, 1.0, 1.0],
            [0.0, 0.0, 0.0],
        ];
        let features = WordFeatures::Dense {
            d: 3,
            rows: rows.iter().flatten().copied().collect(),
        };
        (corpus, features)
    }

    #[test]
    fn learns_adjacent_entities_and_round_trips_through_a_file() {
        let (corpus, features) = toy();
        for window in [0, 1] {
            let tagger = Tagger::train(&corpus, &features, meta(&["PER", "LOC"], window)).unwrap();
            let predicted = tagger.predict(&corpus, &features).unwrap();
            assert_eq!(predicted, corpus, "window {window}");

            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("tagger.safetensors");
            tagger.save(&path).unwrap();
            let back = Tagger::load(&path).unwrap();
            assert_eq!(back.meta, tagger.meta);
            assert_eq!(back.predict(&corpus, &features).unwrap(), predicted);
        }
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let (corpus, features) = toy();
        let WordFeatures::Dense { rows, .. } = &features else {
            unreachable!()
        };
        let mut m = meta(&["PER", "LOC"], 1);
        m.options.epochs = 3;
        let tagger = Tagger::train(&corpus, &features, m.clone()).unwrap();
        let x = tagger.standardised(rows, 0..7);
        let gold = TagSet::encode(&corpus.documents[0].sentences[0].entities, 7, &m.labels);
        let nll = |t: &Tagger| -> f64 {
            let e = t.emissions(&x);
            let n_tags = t.n_tags();
            let mut score = f64::from(t.start[gold[0]] + t.end[gold[6]]);
            for i in 0..7 {
                score += f64::from(e[i * n_tags + gold[i]]);
                if i > 0 {
                    score += t.transition_score(Some(gold[i - 1]), gold[i]);
                }
            }
            // log Z by brute force over all valid sequences of 5 tags on 7 words.
            let mut all = vec![(Vec::new(), 0.0f64)];
            for i in 0..7 {
                let mut next = Vec::new();
                for (seq, s) in &all {
                    for k in 0..n_tags {
                        let prev: Option<usize> = seq.last().copied();
                        let tr = t.transition_score(prev, k);
                        if tr == f64::NEG_INFINITY {
                            continue;
                        }
                        let mut seq2: Vec<usize> = seq.clone();
                        seq2.push(k);
                        next.push((seq2, s + tr + f64::from(e[i * n_tags + k])));
                    }
                }
                all = next;
            }
            let log_z = log_sum_exp(all.iter().map(|(seq, s)| s + f64::from(t.end[seq[6]])));
            log_z - score
        };
        let g = tagger.accumulate(&x, &gold, Gradients::zeros(&tagger));
        let eps = 1e-2f32;
        let checks: [(&str, usize, f32); 4] = [
            ("emission", 5, g.emission[5]),
            // 7: B-PER → I-PER, an allowed move.
            ("transition", 7, g.transition[7]),
            ("start", 1, g.start[1]),
            ("end", 0, g.end[0]),
        ];
        for (name, at, analytic) in checks {
            let bump = |delta: f32| {
                let mut t = tagger.clone();
                let v = match name {
                    "emission" => &mut t.emission,
                    "transition" => &mut t.transition,
                    "start" => &mut t.start,
                    _ => &mut t.end,
                };
                v[at] += delta;
                nll(&t)
            };
            let numeric = (bump(eps) - bump(-eps)) / (2.0 * f64::from(eps));
            assert!(
                (numeric - f64::from(analytic)).abs() < 1e-3,
                "{name}[{at}]: numeric {numeric}, analytic {analytic}"
            );
        }
    }

    #[test]
    fn mismatched_features_are_errors() {
        let (corpus, _) = toy();
        let short = WordFeatures::Dense {
            d: 3,
            rows: vec![0.0; 9],
        };
        assert!(Tagger::train(&corpus, &short, meta(&["PER"], 1)).is_err());
    }
}
