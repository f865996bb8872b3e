use anyhow::{Context as _, Result};
use saener_ner::{NamedProfile, Pipeline, StackConfig};
use saener_server::{Access, Limits, Server};
use std::io::Read as _;
use std::net::ToSocketAddrs as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::commands::stack::{load_profile, StackArgs};

#[derive(clap::Args)]
#[command(
    after_help = "Routes: POST /v1/annotate {\"profile\",\"documents\":[{\"id\",\"text\"}]}, \
GET /v1/profiles, GET /v1/features/{id}?profile=P, GET /healthz, GET /metrics (Prometheus), \
GET /openapi.json, and the web page at /. Errors are JSON {\"error\":{\"code\",\"message\"}}. \
Ctrl-C or SIGTERM stops accepting connections and finishes the requests in flight (for at most \
--timeout-secs).\n\n\
Access: bound to loopback (the default), the server answers only requests whose Host is \
localhost, 127.0.0.1 or ::1 (a web page elsewhere cannot reach it through DNS rebinding); \
--allow-host replaces that list. With --token-file or SAENER_TOKEN set, every route but \
/healthz and the web page needs 'Authorization: Bearer <token>'. Listening on another \
address without a token prints a warning.\n\nExamples:\n  \
saener serve\n  saener serve --port 9000 --profile conll2003 --profile my-profile.json\n  \
SAENER_TOKEN=$(cat ~/.saener-token) saener serve --host 0.0.0.0 --allow-host ner.internal\n  \
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
    /// Seconds from a request's headers to its answer (reading the body, queueing and the
    /// model included) before a 504; its remaining work is dropped.
    #[arg(long, default_value_t = Limits::default().timeout.as_secs())]
    timeout_secs: u64,
    /// Seconds a client has to send a request's headers (and, again, its body) before the
    /// connection is closed (408 for a body); idle keep-alive connections close after it too.
    #[arg(long, default_value_t = Limits::default().read_timeout.as_secs())]
    read_timeout_secs: u64,
    /// Connections served at once; more wait until one closes.
    #[arg(long, default_value_t = Limits::default().max_connections)]
    max_connections: usize,
    /// A file holding the bearer token every request but /healthz and the web page must
    /// send (default: the SAENER_TOKEN environment variable, if set; else no token).
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// A Host name to answer to (repeatable; port and case ignored). Default: the loopback
    /// names when listening on loopback, else any name.
    #[arg(long, value_name = "NAME")]
    allow_host: Vec<String>,
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
            Ok(NamedProfile::new(short, profile))
        })
        .collect::<Result<Vec<_>>>()?;
    let pipeline = Pipeline::load(&StackConfig::from(&args.stack), profiles)?;
    let limits = Limits {
        max_body_bytes: args.max_body_bytes,
        max_documents: args.max_documents,
        max_chars: args.max_chars,
        timeout: Duration::from_secs(args.timeout_secs),
        read_timeout: Duration::from_secs(args.read_timeout_secs),
        max_connections: args.max_connections,
        queue_capacity: args.queue,
        batch_wait: Duration::from_millis(args.batch_wait_ms),
        max_batch_documents: args.max_batch_documents,
        ..Limits::default()
    };
    let token = token(
        args.token_file.as_deref(),
        std::env::var("SAENER_TOKEN").ok(),
    )?;
    let loopback = (args.host.as_str(), args.port)
        .to_socket_addrs()
        .with_context(|| format!("--host {}", args.host))?
        .all(|address| address.ip().is_loopback());
    if !loopback && token.is_none() {
        eprintln!(
            "saener: warning: listening on {} (not loopback) without a token: anyone who can \
             reach this port can use the server; set SAENER_TOKEN or --token-file, and \
             --allow-host",
            args.host
        );
    }
    let hosts = if !args.allow_host.is_empty() {
        Some(args.allow_host.clone())
    } else if loopback {
        Some(Access::loopback_hosts())
    } else {
        None
    };
    let server = Server::with_access(Arc::new(pipeline), limits, Access { token, hosts })?;
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

/// Tokens longer than this are refused (a token file is one line, not a data file).
const MAX_TOKEN_BYTES: u64 = 4096;

/// The token from `--token-file` (its first line), else from `SAENER_TOKEN`.
fn token(file: Option<&Path>, env: Option<String>) -> Result<Option<String>> {
    let token = match file {
        Some(path) => {
            let mut text = String::new();
            std::fs::File::open(path)
                .and_then(|f| f.take(MAX_TOKEN_BYTES + 1).read_to_string(&mut text))
                .with_context(|| format!("--token-file {}", path.display()))?;
            anyhow::ensure!(
                text.len() as u64 <= MAX_TOKEN_BYTES,
                "--token-file {}: longer than {MAX_TOKEN_BYTES} bytes; a token file holds one line",
                path.display()
            );
            text.lines().next().unwrap_or_default().trim().to_string()
        }
        None => match env {
            Some(token) => token.trim().to_string(),
            None => return Ok(None),
        },
    };
    anyhow::ensure!(
        !token.is_empty(),
        "the token is empty ({}); leave it unset to serve without one",
        file.map_or("SAENER_TOKEN".to_string(), |p| p.display().to_string())
    );
    Ok(Some(token))
}

/// The shipped profiles' names, conll2003 first (the general-domain default).
fn shipped_names() -> Vec<String> {
    let mut names = crate::commands::stack::shipped_profiles();
    names.sort_by_key(|n| (n != "conll2003", n.clone()));
    names
}
