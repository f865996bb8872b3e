//! The model worker: one thread owns the annotators and serves a bounded queue, taking
//! every request that arrives within `batch_wait` of the first into one batch.
//!
//! The forward pass is CPU-bound and already uses every core, so one worker is enough;
//! batching is what buys throughput (several documents per forward pass).
//!
//! The model gets at most [`Limits::piece_bytes`] of text per call (long documents piece by
//! piece), and before each call the worker drops the documents of requests nobody waits
//! for any more (timed out or disconnected), so an abandoned request stops costing time
//! after one such step instead of holding up every request behind it.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Instant;

use saener_ner::{Annotation, Annotator, Document, Pipeline};
use tokio::sync::oneshot;

use crate::metrics::Metrics;
use crate::{Limits, ServerError};

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
        pipeline: Arc<Pipeline>,
        limits: Limits,
        metrics: Arc<Metrics>,
    ) -> Result<(Engine, std::thread::JoinHandle<()>), ServerError> {
        let (queue, jobs) = sync_channel(limits.queue_capacity.max(1));
        let (ready, started) = std::sync::mpsc::channel();
        let worker_metrics = metrics.clone();
        let worker = std::thread::Builder::new()
            .name("saener-model".into())
            .spawn(move || {
                let annotators: Result<Vec<Annotator<'_>>, _> = (0..pipeline.profiles().len())
                    .map(|i| pipeline.annotator(i))
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
            })
            .map_err(ServerError::Spawn)?;
        started
            .recv()
            .map_err(|_| ServerError::WorkerStopped)?
            .map_err(ServerError::Prepare)?;
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
        for (p, annotator) in annotators.iter().enumerate() {
            let (group, rest): (Vec<Job>, Vec<Job>) =
                batch.into_iter().partition(|job| job.profile == p);
            batch = rest;
            if !group.is_empty() {
                run(annotator, group, limits.piece_bytes, metrics);
            }
        }
    }
}

/// A job while its documents are annotated.
struct Progress {
    job: Job,
    done: Vec<Option<Annotation>>,
    failed: Option<String>,
}

impl Progress {
    /// Whether its work is still wanted: its client waits and none of its documents failed.
    fn wanted(&self) -> bool {
        self.failed.is_none() && !self.job.reply.is_closed()
    }
}

/// A document: its job's and its own position there.
type DocRef = (usize, usize);

/// Annotates a group of jobs: the short documents of all of them together, at most
/// `piece_bytes` of text per model call, then each long one piece by piece. A failed call
/// is retried document by document, so one bad request costs only its own answer.
fn run(annotator: &Annotator<'_>, group: Vec<Job>, piece_bytes: usize, metrics: &Metrics) {
    let mut jobs: Vec<Progress> = group
        .into_iter()
        .map(|job| Progress {
            done: vec![None; job.documents.len()],
            failed: None,
            job,
        })
        .collect();
    let text_len = |jobs: &[Progress], (j, d): DocRef| jobs[j].job.documents[d].text.len();
    let (long, short): (Vec<DocRef>, Vec<DocRef>) = jobs
        .iter()
        .enumerate()
        .flat_map(|(j, p)| (0..p.job.documents.len()).map(move |d| (j, d)))
        .partition(|&doc| text_len(&jobs, doc) > piece_bytes);

    let mut call: Vec<DocRef> = Vec::new();
    let mut bytes = 0;
    for doc in short {
        let len = text_len(&jobs, doc);
        if !call.is_empty() && bytes + len > piece_bytes {
            annotate_together(annotator, &mut jobs, &std::mem::take(&mut call), metrics);
            bytes = 0;
        }
        call.push(doc);
        bytes += len;
    }
    annotate_together(annotator, &mut jobs, &call, metrics);
    for doc in long {
        annotate_in_pieces(annotator, &mut jobs, doc, piece_bytes, metrics);
    }

    for progress in jobs {
        let done = progress.done.into_iter().collect::<Option<Vec<_>>>();
        let reply = match (progress.failed, done) {
            (Some(message), _) => Err(message),
            (None, Some(annotations)) => Ok(annotations),
            // Given up on by its client: nobody to answer.
            (None, None) => continue,
        };
        let _ = progress.job.reply.send(reply);
    }
}

/// Annotates `docs` (those still wanted) in one model call; if that fails, each alone.
fn annotate_together(
    annotator: &Annotator<'_>,
    jobs: &mut [Progress],
    docs: &[DocRef],
    metrics: &Metrics,
) {
    let docs: Vec<DocRef> = docs
        .iter()
        .copied()
        .filter(|&(j, _)| jobs[j].wanted())
        .collect();
    if docs.is_empty() {
        return;
    }
    let documents: Vec<Document> = docs
        .iter()
        .map(|&(j, d)| jobs[j].job.documents[d].clone())
        .collect();
    match guarded(|| annotator.annotate_counted(&documents)) {
        Ok(annotations) => {
            metrics.batch_documents.observe(documents.len() as f64);
            for ((j, d), annotation) in docs.into_iter().zip(annotations) {
                finish(&mut jobs[j], d, annotation, metrics);
            }
        }
        Err(_) if docs.len() > 1 => {
            for doc in docs {
                annotate_together(annotator, jobs, &[doc], metrics);
            }
        }
        Err(message) => jobs[docs[0].0].failed = Some(message),
    }
}

/// Annotates one long document piece by piece, as long as its request is wanted.
fn annotate_in_pieces(
    annotator: &Annotator<'_>,
    jobs: &mut [Progress],
    (j, d): DocRef,
    piece_bytes: usize,
    metrics: &Metrics,
) {
    let document = &jobs[j].job.documents[d];
    let mut pieces = annotator.annotate_pieces(&document.id, &document.text, piece_bytes);
    let mut whole = Annotation {
        spans: Vec::new(),
        tokens: 0,
    };
    let outcome = loop {
        if !jobs[j].wanted() {
            return;
        }
        match guarded(|| pieces.next().transpose()) {
            Ok(Some(piece)) => {
                metrics.batch_documents.observe(1.0);
                whole.spans.extend(piece.spans);
                whole.tokens += piece.tokens;
            }
            Ok(None) => break Ok(whole),
            Err(message) => break Err(message),
        }
    };
    drop(pieces);
    match outcome {
        Ok(annotation) => finish(&mut jobs[j], d, annotation, metrics),
        Err(message) => jobs[j].failed = Some(message),
    }
}

fn finish(progress: &mut Progress, d: usize, annotation: Annotation, metrics: &Metrics) {
    metrics.documents.inc();
    metrics.tokens.inc_by(annotation.tokens as u64);
    progress.done[d] = Some(annotation);
}

/// Runs a model call; its error, or a panic, becomes the message for the client. A panic in
/// the model must not take the worker (and every later request) down.
fn guarded<T>(call: impl FnOnce() -> saener_ner::Result<T>) -> Result<T, String> {
    match std::panic::catch_unwind(AssertUnwindSafe(call)) {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err("the model panicked while annotating this request".to_string()),
    }
}
