use anyhow::{Context as _, Result};
use saener_server::{Limits, Models, Server};
use std::sync::Arc;
use std::time::Duration;

use crate::commands::stack::{load_profile, Stack, StackArgs};

#[derive(clap::Args)]
#[command(
    after_help = "Routes: POST /v1/annotate {\"profile\",\"documents\":[{\"id\",\"text\"}]}, \
GET /v1/profiles, GET /v1/features/{id}?profile=P, GET /healthz, GET /metrics (Prometheus), \
GET /openapi.json, and the web page at /. Errors are JSON {\"error\":{\"code\",\"message\"}}. \
Ctrl-C or SIGTERM stops accepting connections and finishes the requests in flight.\n\nExamples:\n  \
saener serve\n  saener serve --port 9000 --profile conll2003 --profile my-profile.json\n  \
curl -s localhost:8080/v1/annotate -H 'content-type: application/json' \\\n    \
-d '{\"documents\":[{\"text\":\"Angela Merkel visited Paris.\"}]}'"
)]
pub struct Args {
    /// Address to listen on (loopback only by default).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0: any free port, printed at start).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Profiles to serve, by shipped name or path (repeatable; the first is the default).
    /// Default: every shipped profile, conll2003 first.
    #[arg(long)]
    profile: Vec<String>,
    /// Largest request body, in bytes.
    #[arg(long, default_value_t = Limits::default().max_body_bytes)]
    max_body_bytes: usize,
    /// Most documents per request.
    #[arg(long, default_value_t = Limits::default().max_documents)]
    max_documents: usize,
    /// Most characters per document (longer than the model's window is fine: windowed).
    #[arg(long, default_value_t = Limits::default().max_chars)]
    max_chars: usize,
    /// Seconds from arrival to answer, queueing included, before a 504.
    #[arg(long, default_value_t = Limits::default().timeout.as_secs())]
    timeout_secs: u64,
    /// Requests that may wait for the model; more are refused with 503 + Retry-After.
    #[arg(long, default_value_t = Limits::default().queue_capacity)]
    queue: usize,
    /// Milliseconds the model waits for more requests to join a batch.
    #[arg(long, default_value_t = Limits::default().batch_wait.as_millis() as u64)]
    batch_wait_ms: u64,
    /// Most documents per model batch.
    #[arg(long, default_value_t = Limits::default().max_batch_documents)]
    max_batch_documents: usize,
    #[command(flatten)]
    stack: StackArgs,
}

pub fn run(args: Args) -> Result<()> {
    anyhow::ensure!(
        !args.stack.echo,
        "--echo: serve reads text for each profile the way that profile was calibrated (echo or not); leave the flag out"
    );
    let names = if args.profile.is_empty() {
        shipped_names()
    } else {
        args.profile.clone()
    };
    let profiles = names
        .iter()
        .map(|name| {
            let profile = load_profile(name)?;
            // A path serves under its file stem.
            let short = std::path::Path::new(name)
                .file_stem()
                .map_or(name.clone(), |s| s.to_string_lossy().into_owned());
            Ok((short, profile))
        })
        .collect::<Result<Vec<_>>>()?;
    let stack = Stack::load(&args.stack)?;
    let models = Models {
        tokenizer: stack.tokenizer,
        model: stack.model,
        sae: stack.sae,
        layer: stack.layer,
        model_id: stack.model_id,
        batch_size: stack.batch_size,
        profiles,
    };
    let limits = Limits {
        max_body_bytes: args.max_body_bytes,
        max_documents: args.max_documents,
        max_chars: args.max_chars,
        timeout: Duration::from_secs(args.timeout_secs),
        queue_capacity: args.queue,
        batch_wait: Duration::from_millis(args.batch_wait_ms),
        max_batch_documents: args.max_batch_documents,
    };
    let server = Server::new(Arc::new(models), limits)?;
    // HTTP handling is light; the model runs on its own thread with every core.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
            .await
            .with_context(|| format!("listening on {}:{}", args.host, args.port))?;
        // The one line scripts wait for (the e2e test reads the port from it).
        println!("saener: listening on http://{}", listener.local_addr()?);
        server
            .serve(listener, saener_server::shutdown_signal())
            .await?;
        eprintln!("saener: stopped");
        Ok(())
    })
}

/// The shipped profiles' names, conll2003 first (the general-domain default).
fn shipped_names() -> Vec<String> {
    let mut names = crate::commands::stack::shipped_profiles();
    names.sort_by_key(|n| (n != "conll2003", n.clone()));
    names
}
