//! The model worker: one thread owns the annotators and serves a bounded queue, taking
//! every request that arrives within `batch_wait` of the first into one batch.
//!
//! The forward pass is CPU-bound and already uses every core, so one worker is enough;
//! batching is what buys throughput (several documents per forward pass).

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Instant;

use saener_lm::residuals::{ExtractOptions, Extractor};
use saener_ner::{Annotation, Annotator, Document};
use tokio::sync::oneshot;

use crate::metrics::Metrics;
use crate::{Limits, Models};

/// A request's documents for one profile, and where its result goes.
struct Job {
    profile: usize,
    documents: Vec<Document>,
    reply: oneshot::Sender<Result<Vec<Annotation>, String>>,
}

/// Why a request was not queued.
pub(crate) enum Refused {
    /// The queue is at capacity.
    Full,
    /// The worker has stopped.
    Stopped,
}

/// The queue's sending end; cheap to clone.
#[derive(Clone)]
pub(crate) struct Engine {
    queue: SyncSender<Job>,
    metrics: Arc<Metrics>,
}

pub(crate) type Reply = oneshot::Receiver<Result<Vec<Annotation>, String>>;

impl Engine {
    /// Starts the worker, which prepares one annotator per profile before this returns.
    pub(crate) fn start(
        models: Arc<Models>,
        limits: Limits,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<(Engine, std::thread::JoinHandle<()>)> {
        let (queue, jobs) = sync_channel(limits.queue_capacity.max(1));
        let (ready, started) = std::sync::mpsc::channel();
        let worker_metrics = metrics.clone();
        let worker = std::thread::Builder::new()
            .name("saener-model".into())
            .spawn(move || {
                let extractor = Extractor {
                    tokenizer: &models.tokenizer,
                    model: &models.model,
                    options: ExtractOptions {
                        batch_size: models.batch_size,
                        ..ExtractOptions::new(models.layer)
                    },
                };
                let annotators: Result<Vec<Annotator<'_>>, _> = models
                    .profiles
                    .iter()
                    .map(|(_, p)| Annotator::new(extractor, &models.sae, p, p.decoding))
                    .collect();
                match annotators {
                    Ok(annotators) => {
                        let _ = ready.send(Ok(()));
                        work(&annotators, &jobs, limits, &worker_metrics);
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                    }
                }
            })?;
        started
            .recv()
            .map_err(|_| anyhow::anyhow!("the model worker stopped while starting"))??;
        Ok((Engine { queue, metrics }, worker))
    }

    /// Queues `documents` for profile number `profile`; the receiver gets their
    /// annotations in order, or the model's error.
    pub(crate) fn submit(
        &self,
        profile: usize,
        documents: Vec<Document>,
    ) -> Result<Reply, Refused> {
        let (reply, receiver) = oneshot::channel();
        // Counted before sending so the worker's decrement never runs first.
        self.metrics.queue_depth.inc();
        match self.queue.try_send(Job {
            profile,
            documents,
            reply,
        }) {
            Ok(()) => Ok(receiver),
            Err(e) => {
                self.metrics.queue_depth.dec();
                Err(match e {
                    TrySendError::Full(_) => Refused::Full,
                    TrySendError::Disconnected(_) => Refused::Stopped,
                })
            }
        }
    }
}

/// Serves batches until every sender is gone (the server has shut down).
fn work(annotators: &[Annotator<'_>], jobs: &Receiver<Job>, limits: Limits, metrics: &Metrics) {
    while let Ok(first) = jobs.recv() {
        let until = Instant::now() + limits.batch_wait;
        let mut documents = first.documents.len();
        let mut batch = vec![first];
        while documents < limits.max_batch_documents {
            match jobs.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(job) => {
                    documents += job.documents.len();
                    batch.push(job);
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        metrics.queue_depth.dec_by(batch.len() as i64);
        // A client that timed out or hung up no longer waits: skip its work.
        batch.retain(|job| !job.reply.is_closed());
        for (p, annotator) in annotators.iter().enumerate() {
            let (group, rest): (Vec<Job>, Vec<Job>) =
                batch.into_iter().partition(|job| job.profile == p);
            batch = rest;
            if !group.is_empty() {
                run(annotator, group, metrics);
            }
        }
    }
}

/// Annotates a group of jobs in one call; if that fails, each job alone, so one bad
/// request costs only its own answer.
fn run(annotator: &Annotator<'_>, group: Vec<Job>, metrics: &Metrics) {
    let documents: Vec<Document> = group
        .iter()
        .flat_map(|job| job.documents.iter().cloned())
        .collect();
    // A panic in the model must not take the worker (and every later request) down.
    let result =
        std::panic::catch_unwind(AssertUnwindSafe(|| annotator.annotate_counted(&documents)))
            .unwrap_or_else(|_| {
                Err(saener_ner::Error::Argument {
                    name: "model".into(),
                    expected: "a result".into(),
                    found: "a panic while annotating".into(),
                })
            });
    match result {
        Ok(annotations) => {
            metrics.batch_documents.observe(documents.len() as f64);
            metrics.documents.inc_by(documents.len() as u64);
            let tokens: usize = annotations.iter().map(|a| a.tokens).sum();
            metrics.tokens.inc_by(tokens as u64);
            let mut annotations = annotations.into_iter();
            for job in group {
                let mine = annotations.by_ref().take(job.documents.len()).collect();
                let _ = job.reply.send(Ok(mine));
            }
        }
        Err(_) if group.len() > 1 => {
            for job in group {
                run(annotator, vec![job], metrics);
            }
        }
        Err(e) => {
            for job in group {
                let _ = job.reply.send(Err(e.to_string()));
            }
        }
    }
}
