//! The core: image bytes → ImageNet prediction. No HTTP, no Lambda: the Lambda handler, the local
//! server, the CLI and the benches all call [`Classifier::classify`].

use std::time::{Duration, Instant};

use crate::labels::Labels;
use crate::model::{LazyModel, ModelError};
use crate::preprocess::{self, Allowance, DecodeOptions, ImageError};

/// What the tutorial answers for an image: the arg-max class and its label, plus the scores.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// Index of the highest logit (the first one on ties, as `torch.max` does).
    pub class_id: usize,
    /// Label of `class_id`.
    pub class_name: String,
    /// Raw scores, one per class.
    pub logits: Vec<f32>,
    /// Width and height of the decoded image.
    pub source_size: (u32, u32),
    /// Where the time went.
    pub timings: Timings,
}

/// Time per stage of one prediction, for the log line and the benches.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    /// Bytes → pixels.
    pub decode: Duration,
    /// Pixels → normalised tensor.
    pub preprocess: Duration,
    /// Waiting for the model to load (zero once it is loaded).
    pub model_load: Duration,
    /// Tensor → logits.
    pub inference: Duration,
}

/// A class with its softmax probability, for top-k replies.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// Class index.
    pub class_id: usize,
    /// Its label.
    pub class_name: String,
    /// Softmax probability over all classes.
    pub probability: f32,
}

/// Why an image could not be classified: the client's image, or our model.
#[derive(Debug, thiserror::Error)]
pub enum ClassifyError {
    /// The bytes are not a usable image (a client error).
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The model could not be loaded or run (our error).
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// Model, labels and decode limits: everything needed to answer `/predict`.
#[derive(Debug)]
pub struct Classifier {
    model: LazyModel,
    labels: Labels,
    limits: DecodeOptions,
}

impl Classifier {
    /// Assembles a classifier; the model loads on the first [`Classifier::classify`].
    pub fn new(model: LazyModel, labels: Labels, limits: DecodeOptions) -> Classifier {
        Classifier {
            model,
            labels,
            limits,
        }
    }

    /// Decodes, preprocesses and classifies one image, within a fresh decode allowance.
    /// Blocking and CPU-bound: async callers run it on a blocking thread.
    pub fn classify(&self, bytes: &[u8]) -> Result<Prediction, ClassifyError> {
        self.classify_within(bytes, &self.allowance())
    }

    /// A fresh decode allowance for one request ([`DecodeOptions::max_work_ns`]), to share
    /// between its images and to cancel when the request is given up.
    pub fn allowance(&self) -> Allowance {
        self.limits.allowance()
    }

    /// [`Classifier::classify`] within a request's allowance: the decode's estimated work is
    /// taken from it, and once it is cancelled the decode stops and the model is not run.
    pub fn classify_within(
        &self,
        bytes: &[u8],
        allowance: &Allowance,
    ) -> Result<Prediction, ClassifyError> {
        let pre = preprocess::preprocess_within(bytes, self.limits, allowance)?;
        allowance.check()?;
        let load_start = Instant::now();
        let model = self.model.get()?;
        let model_load = load_start.elapsed();
        let infer_start = Instant::now();
        let logits = model.run(&pre.tensor)?;
        let inference = infer_start.elapsed();
        let class_id = argmax(&logits);
        Ok(Prediction {
            class_id,
            class_name: self.labels.name(class_id).to_owned(),
            logits,
            source_size: pre.source_size,
            timings: Timings {
                decode: pre.timings.decode,
                preprocess: pre.timings.transform,
                model_load,
                inference,
            },
        })
    }

    /// The `k` most probable classes of a prediction, most probable first.
    pub fn top_k(&self, prediction: &Prediction, k: usize) -> Vec<Scored> {
        let probabilities = softmax(&prediction.logits);
        let mut order: Vec<usize> = (0..probabilities.len()).collect();
        order.sort_by(|&a, &b| {
            probabilities[b]
                .total_cmp(&probabilities[a])
                .then(a.cmp(&b))
        });
        order
            .into_iter()
            .take(k)
            .map(|i| Scored {
                class_id: i,
                class_name: self.labels.name(i).to_owned(),
                probability: probabilities[i],
            })
            .collect()
    }

    /// The lazily loaded model, for status replies.
    pub fn model(&self) -> &LazyModel {
        &self.model
    }
}

/// Index of the largest value; the first on ties; NaN never wins.
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] || values[best].is_nan() {
            best = i;
        }
    }
    best
}

/// Numerically stable softmax.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&l| (l - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_first_of_ties() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 0.5, 0.2]), 1);
    }

    #[test]
    fn softmax_sums_to_one() {
        let p = softmax(&[1.0, 2.0, 3.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p[2] > p[1] && p[1] > p[0]);
    }
}
