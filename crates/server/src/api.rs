//! The HTTP API: routes, request and response types (with their JSON schemas), limits and
//! JSON errors.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, MatchedPath, Path, Query, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::BodyExt as _;
use saener_ner::{Document, EntityRecord, FeatureContext, NamedProfile, Pipeline, Row};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::access::{Access, Denied};
use crate::engine::{Engine, Refused};
use crate::metrics::{Metrics, RequestLabels, RouteLabels};
use crate::{web, Limits};

/// Seconds a client refused for a full queue is asked to wait.
const RETRY_AFTER_SECONDS: u64 = 1;

#[derive(Clone)]
pub(crate) struct AppState {
    pub engine: Engine,
    pub pipeline: Arc<Pipeline>,
    pub limits: Limits,
    pub metrics: Arc<Metrics>,
    pub access: Arc<Access>,
}

/// The OpenAPI document of every JSON route.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "saener",
        description = "Zero-shot NER read off the sparse-autoencoder features of Gemma 3 270M; every span comes with the features behind it."
    ),
    paths(annotate, profiles, feature, healthz, metrics),
    components(schemas(
        AnnotateRequest,
        InputDocument,
        AnnotateResponse,
        AnnotatedDocument,
        EntityRecord,
        saener_ner::Evidence,
        ProfilesResponse,
        ProfileInfo,
        FeatureResponse,
        Row,
        FeatureContext,
        Health,
        ErrorBody,
        ErrorDetail
    ))
)]
pub struct ApiDoc;

pub(crate) fn router(state: AppState) -> Router {
    let body_limit = state.limits.max_body_bytes;
    Router::new()
        .route("/v1/annotate", post(annotate))
        .route("/v1/profiles", get(profiles))
        .route("/v1/features/{id}", get(feature))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .merge(web::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Innermost first: the body is read only for an admitted request, within the
        // request's deadline, and every answer (refusals and 504s too) is counted.
        .layer(middleware::from_fn_with_state(state.clone(), read_body))
        .layer(middleware::from_fn_with_state(state.clone(), admit))
        .layer(middleware::from_fn_with_state(state.clone(), deadline))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// Counts every request and times it, by route template (not raw path, which would make
/// one series per feature id) and method (known methods only: a client may send any token
/// as a method, and each would become a series that is never freed).
async fn track(
    State(state): State<AppState>,
    matched: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let route = matched.map_or("unmatched".to_string(), |m| m.as_str().to_string());
    let method = method_label(request.method()).to_string();
    let start = Instant::now();
    let response = next.run(request).await;
    state
        .metrics
        .latency
        .get_or_create(&RouteLabels {
            route: route.clone(),
        })
        .observe(start.elapsed().as_secs_f64());
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            route,
            method,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// One deadline for the whole request from its headers on: reading the body, waiting in
/// the queue, the model's work. At the deadline the handler is dropped, and with it the
/// request's place in the queue or its remaining work (the worker looks before each step).
async fn deadline(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limit = state.limits.timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            format!("not answered within {} s", limit.as_secs_f64()),
        )
        .into_response(),
    }
}

/// The `Host` and token checks of [`Access`].
async fn admit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match state.access.check(&request) {
        Ok(()) => next.run(request).await,
        Err(Denied::Host(host)) => ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "misdirected_request",
            format!("this server does not answer to the host name {host:?}"),
        )
        .into_response(),
        Err(Denied::Token) => {
            let mut response = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this server needs the header 'Authorization: Bearer <token>' with its token",
            )
            .into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            response
        }
    }
}

/// Reads the whole body before any handler runs, within [`Limits::read_timeout`] (408
/// after it) and [`Limits::max_body_bytes`] (413). A declared length over the limit is
/// refused before reading anything, so a client that asked `Expect: 100-continue` is not
/// told to send it. Compressed bodies are refused (415): decoding them would need a
/// second limit on the decoded size, and JSON requests are small.
async fn read_body(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limits = state.limits;
    let (parts, body) = request.into_parts();
    if let Some(encoding) = parts.headers.get(header::CONTENT_ENCODING) {
        if !encoding.as_bytes().eq_ignore_ascii_case(b"identity") {
            return ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_encoding",
                format!(
                    "Content-Encoding {:?} is not accepted; send the body uncompressed",
                    String::from_utf8_lossy(encoding.as_bytes())
                ),
            )
            .into_response();
        }
    }
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if let Some(declared) = declared.filter(|&n| n > limits.max_body_bytes as u64) {
        return body_too_large(Some(declared), limits);
    }
    let limited = http_body_util::Limited::new(body, limits.max_body_bytes);
    let bytes = match tokio::time::timeout(limits.read_timeout, limited.collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return body_too_large(None, limits)
        }
        Ok(Err(e)) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("reading the body: {e}"),
            )
            .into_response()
        }
        Err(_) => {
            return ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!(
                    "the body did not arrive within {} s",
                    limits.read_timeout.as_secs_f64()
                ),
            )
            .into_response()
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// 413 for a body of `declared` bytes, or of unknown length that ran over the limit.
fn body_too_large(declared: Option<u64>, limits: Limits) -> Response {
    let size = declared.map_or("over the limit".to_string(), |n| format!("of {n} bytes"));
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!(
            "request body {size}; at most {} bytes",
            limits.max_body_bytes
        ),
    )
    .into_response()
}

// ---- errors ----

/// Every error response: `{"error": {"code", "message"}}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `bad_request`, `invalid_json`, `payload_too_large`,
    /// `too_many_documents`, `document_too_long`, `unknown_profile`, `unknown_feature`,
    /// `invalid_request`, `unsupported_media_type`, `unsupported_encoding`, `not_found`,
    /// `method_not_allowed`, `unauthorized`, `misdirected_request`, `request_timeout`,
    /// `queue_full`, `timeout`, `annotation_failed`, `unavailable`.
    code: String,
    /// For people: what was wrong and what the limit is.
    message: String,
}

pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
            },
        });
        let mut response = (self.status, body).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, RETRY_AFTER_SECONDS.into());
        }
        response
    }
}

/// `Json` whose rejections are JSON errors too (axum's are plain text), and that takes
/// only a JSON object, as the OpenAPI document says (serde would also read a struct from
/// an array of its fields).
pub(crate) struct ApiJson<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let (parts, body) = request.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.to_string()))?;
        // Cheap: `Bytes` clones share the buffer.
        let request = Request::from_parts(parts, Body::from(bytes.clone()));
        let value = match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => value,
            Err(rejection) => return Err(json_rejection(rejection)),
        };
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                "the request must be a JSON object (see /openapi.json), not an array",
            ));
        }
        Ok(ApiJson(value))
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let status = rejection.status();
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_request",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        _ => "invalid_json",
    };
    ApiError::new(status, code, rejection.body_text())
}

async fn not_found(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {}", request.uri().path()),
    )
}

async fn method_not_allowed(method: Method, request: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", request.uri().path()),
    )
}

// ---- POST /v1/annotate ----

/// Documents to annotate with one profile.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnnotateRequest {
    /// A profile name from `GET /v1/profiles` (default: the server's first).
    #[serde(default)]
    profile: Option<String>,
    documents: Vec<InputDocument>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InputDocument {
    /// Echoed in the answer (default: the 1-based position in `documents`).
    #[serde(default)]
    id: Option<String>,
    text: String,
}

/// One result per input document, in order: the CLI's `annotate` records.
#[derive(Serialize, ToSchema)]
pub struct AnnotateResponse {
    profile: String,
    documents: Vec<AnnotatedDocument>,
}

#[derive(Serialize, ToSchema)]
pub struct AnnotatedDocument {
    id: String,
    /// In text order; offsets are code points into the document's text.
    entities: Vec<EntityRecord>,
}

/// Annotate documents: entities with character offsets, score and evidence.
#[utoipa::path(
    post,
    path = "/v1/annotate",
    request_body = AnnotateRequest,
    responses(
        (status = 200, description = "Entities per document", body = AnnotateResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "The server has a token and the request did not carry it as 'Authorization: Bearer <token>'", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "Bearer"))),
        (status = 404, description = "Unknown profile", body = ErrorBody),
        (status = 408, description = "The body did not arrive within the read timeout", body = ErrorBody),
        (status = 413, description = "Body (declared or sent), document count or document length over its limit", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json, or a Content-Encoding other than identity", body = ErrorBody),
        (status = 421, description = "A Host name this server does not answer to", body = ErrorBody),
        (status = 422, description = "JSON of the wrong shape (not an object, unknown or missing fields)", body = ErrorBody),
        (status = 500, description = "The model failed", body = ErrorBody),
        (status = 503, description = "Queue full; retry after the Retry-After header's seconds", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 504, description = "Not answered within the request timeout", body = ErrorBody),
    )
)]
async fn annotate(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<AnnotateRequest>,
) -> Result<Json<AnnotateResponse>, ApiError> {
    let limits = state.limits;
    let index = profile_index(&state.pipeline, request.profile.as_deref())?;
    let name = state.pipeline.profiles()[index].name.clone();
    if request.documents.len() > limits.max_documents {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_documents",
            format!(
                "{} documents; at most {} per request",
                request.documents.len(),
                limits.max_documents
            ),
        ));
    }
    let mut documents = Vec::with_capacity(request.documents.len());
    for (i, input) in request.documents.into_iter().enumerate() {
        let id = input.id.unwrap_or_else(|| (i + 1).to_string());
        let chars = input.text.chars().count();
        if chars > limits.max_chars {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "document_too_long",
                format!(
                    "document {id}: {chars} characters; at most {} per document",
                    limits.max_chars
                ),
            ));
        }
        documents.push(Document::from_text(id, input.text));
    }
    if documents.is_empty() {
        return Ok(Json(AnnotateResponse {
            profile: name,
            documents: Vec::new(),
        }));
    }
    let ids: Vec<String> = documents.iter().map(|d| d.id.clone()).collect();
    let texts: Vec<String> = documents.iter().map(|d| d.text.clone()).collect();
    let reply = state
        .engine
        .submit(index, documents)
        .map_err(|refused| match refused {
            Refused::Full => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "queue_full",
                format!(
                    "{} requests are already waiting for the model; retry in {RETRY_AFTER_SECONDS} s",
                    limits.queue_capacity
                ),
            ),
            Refused::Stopped => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the server is shutting down",
            ),
        })?;
    // No timeout here: [`deadline`] covers the whole request.
    let annotations = match reply.await {
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the model worker stopped",
            ))
        }
        Ok(Err(message)) => {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "annotation_failed",
                message,
            ))
        }
        Ok(Ok(annotations)) => annotations,
    };
    let documents = ids
        .into_iter()
        .zip(texts)
        .zip(annotations)
        .map(|((id, text), annotation)| AnnotatedDocument {
            id,
            entities: EntityRecord::all(&text, &annotation.spans),
        })
        .collect();
    Ok(Json(AnnotateResponse {
        profile: name,
        documents,
    }))
}

/// The profile a request names, or the first (the default) when it names none.
fn profile_index(pipeline: &Pipeline, name: Option<&str>) -> Result<usize, ApiError> {
    let Some(name) = name else { return Ok(0) };
    pipeline.position(name).map_err(|_| {
        let names: Vec<&str> = pipeline
            .profiles()
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_profile",
            format!("no profile {name:?}; this server has {}", names.join(", ")),
        )
    })
}

// ---- GET /v1/profiles ----

#[derive(Serialize, ToSchema)]
pub struct ProfilesResponse {
    /// The profile used when a request names none.
    default: String,
    profiles: Vec<ProfileInfo>,
}

#[derive(Serialize, ToSchema)]
pub struct ProfileInfo {
    name: String,
    /// Entity types, in the order decoding breaks ties.
    labels: Vec<String>,
    /// SHA-256 of the language model file.
    model: String,
    /// The layer whose residual stream the SAE reads.
    layer: usize,
    /// The SAE's content id.
    sae: String,
    /// Distinct features that vote.
    features: usize,
    /// Whether the profile stores top-activating contexts for its features.
    contexts: bool,
}

/// The profiles this server annotates with.
#[utoipa::path(
    get,
    path = "/v1/profiles",
    responses(
        (status = 200, description = "Profiles", body = ProfilesResponse),
        (status = 401, description = "Token missing or wrong", body = ErrorBody),
        (status = 421, description = "A Host name this server does not answer to", body = ErrorBody),
    )
)]
async fn profiles(State(state): State<AppState>) -> Json<ProfilesResponse> {
    let profiles = state
        .pipeline
        .profiles()
        .iter()
        .map(
            |NamedProfile {
                 name, profile: p, ..
             }| ProfileInfo {
                name: name.clone(),
                labels: p.labels.clone(),
                model: p.origin.model.clone(),
                layer: p.origin.layer,
                sae: p.origin.sae_id.clone(),
                features: p.features().len(),
                contexts: !p.contexts.is_empty(),
            },
        )
        .collect();
    Json(ProfilesResponse {
        default: state.pipeline.profiles()[0].name.clone(),
        profiles,
    })
}

// ---- GET /v1/features/{id} ----

#[derive(Deserialize)]
struct FeatureQuery {
    profile: Option<String>,
}

/// What one feature means to a profile.
#[derive(Serialize, ToSchema)]
pub struct FeatureResponse {
    feature: u32,
    profile: String,
    /// The types this feature votes for, with precision, support and hits on the
    /// calibration data, by precision (naive-Bayes profiles: every type, in label order,
    /// counted on the words it fires on).
    types: Vec<Row>,
    /// The types whose entities it marks the first token of (boundary rows), if any.
    boundary: Vec<Row>,
    /// Base rate per type: the fraction of calibration tokens inside such entities, what a
    /// precision compares with.
    base_rates: std::collections::BTreeMap<String, f64>,
    /// Its strongest firings on the calibration data (empty if the profile stores none).
    contexts: Vec<FeatureContext>,
}

/// A feature's precision per type and its top-activating calibration contexts.
#[utoipa::path(
    get,
    path = "/v1/features/{id}",
    params(
        ("id" = u32, Path, description = "SAE feature index"),
        ("profile" = Option<String>, Query, description = "Profile name (default: the server's first)")
    ),
    responses(
        (status = 200, description = "The feature", body = FeatureResponse),
        (status = 400, description = "Not a feature index (an int32 of at least 0)", body = ErrorBody),
        (status = 401, description = "Token missing or wrong", body = ErrorBody),
        (status = 404, description = "Unknown profile, or a feature the profile does not keep", body = ErrorBody),
        (status = 421, description = "A Host name this server does not answer to", body = ErrorBody),
    )
)]
async fn feature(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<FeatureQuery>, QueryRejection>,
) -> Result<Json<FeatureResponse>, ApiError> {
    let Query(query) =
        query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text()))?;
    // The document says int32 (what utoipa makes of u32), so ids above i32::MAX are
    // refused even though they would parse.
    let feature = id
        .parse::<i32>()
        .ok()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!(
                    "feature {id:?}: expected an integer from 0 to {} (int32)",
                    i32::MAX
                ),
            )
        })?;
    let named =
        &state.pipeline.profiles()[profile_index(&state.pipeline, query.profile.as_deref())?];
    let (name, profile) = (&named.name, &named.profile);
    let of = |rows: &[Row]| -> Vec<Row> {
        let mut kept: Vec<Row> = rows
            .iter()
            .filter(|r| r.feature == feature)
            .cloned()
            .collect();
        kept.sort_by(|a, b| b.precision.total_cmp(&a.precision));
        kept
    };
    let types = match &profile.naive_bayes {
        Some(nb) => nb.type_rows(feature, &profile.labels),
        None => of(&profile.rows),
    };
    let boundary = of(&profile.boundary_rows);
    // A naive-Bayes profile keeps features that count only at a neighbour offset.
    let kept = match &profile.naive_bayes {
        Some(nb) => nb.features().binary_search(&feature).is_ok(),
        None => !types.is_empty() || !boundary.is_empty(),
    };
    if !kept {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_feature",
            format!("profile {name} keeps no row for feature {feature}"),
        ));
    }
    let base_rates = profile
        .label_tokens
        .iter()
        .map(|(label, &n)| (label.clone(), n as f64 / profile.tokens.max(1) as f64))
        .collect();
    Ok(Json(FeatureResponse {
        feature,
        profile: name.to_string(),
        types,
        boundary,
        base_rates,
        contexts: profile.contexts.get(&feature).cloned().unwrap_or_default(),
    }))
}

// ---- health, metrics, the document ----

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` while the server answers.
    status: String,
}

/// Liveness: the server answers (the model is loaded before it listens).
#[utoipa::path(
    get,
    path = "/healthz",
    responses(
        (status = 200, description = "Alive (no token needed)", body = Health),
        (status = 421, description = "A Host name this server does not answer to", body = ErrorBody),
    )
)]
async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Prometheus metrics (OpenMetrics text): requests, latency, documents, tokens, queue depth,
/// batch sizes.
#[utoipa::path(
    get,
    path = "/metrics",
    responses(
        (status = 200, description = "Metrics", body = String, content_type = "application/openmetrics-text"),
        (status = 401, description = "Token missing or wrong", body = ErrorBody),
        (status = 421, description = "A Host name this server does not answer to", body = ErrorBody),
    )
)]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
