//! The server end to end with the real model: every JSON answer is validated against the
//! server's own OpenAPI document, then the queue limit and graceful shutdown.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use saener_lm::gemma3::{Gemma3, LoadOptions};
use saener_lm::Tokenizer;
use saener_ner::Profile;
use saener_server::{Limits, Models, Server};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

/// The model, SAE and two shipped profiles, loaded once for all tests.
fn models() -> Arc<Models> {
    static MODELS: OnceLock<Arc<Models>> = OnceLock::new();
    MODELS
        .get_or_init(|| {
            let model_file = saener_lm::ensure_default_model().unwrap();
            let sae_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../models/gemma3-270m-l9-topk64-16k");
            let sae = saener_sae::load_any(&sae_dir).unwrap();
            let layer = sae.config().hook_layer.unwrap();
            let profiles = ["conll2003", "ncbi_disease"].map(|name| {
                let path = sae_dir.join("profiles").join(format!("{name}.json"));
                (name.to_string(), Profile::load(path).unwrap())
            });
            Arc::new(Models {
                tokenizer: Tokenizer::from_gguf(&model_file).unwrap(),
                model: Gemma3::load(
                    &model_file,
                    LoadOptions {
                        max_layer: Some(layer),
                        ..LoadOptions::default()
                    },
                )
                .unwrap(),
                sae,
                layer,
                model_id: saener_lm::fetch::sha256_file(&model_file).unwrap(),
                batch_size: 16,
                profiles: profiles.into(),
            })
        })
        .clone()
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("{e}: {}", String::from_utf8_lossy(&self.body));
        })
    }
}

async fn call(router: &axum::Router, method: &str, uri: &str, body: Option<&str>) -> Answer {
    let mut request = Request::builder().method(method).uri(uri);
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let request = request
        .body(Body::from(body.unwrap_or_default().to_string()))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

/// The server's OpenAPI document, made strict for testing: an object schema with named
/// properties admits no others, so a field the document does not list fails validation.
async fn openapi(router: &axum::Router) -> Value {
    let answer = call(router, "GET", "/openapi.json", None).await;
    assert_eq!(answer.status, StatusCode::OK);
    let mut doc = answer.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{doc}");
    for schema in doc["components"]["schemas"]
        .as_object_mut()
        .unwrap()
        .values_mut()
    {
        if schema.get("properties").is_some() {
            schema["additionalProperties"] = json!(false);
        }
    }
    doc
}

/// Checks that `answer` is documented for `method path` with its status, and that its
/// body (JSON) satisfies the documented schema.
fn validate(doc: &Value, method: &str, path: &str, answer: &Answer) -> Value {
    let status = answer.status.as_u16().to_string();
    let documented = &doc["paths"][path][method]["responses"][&status];
    assert!(
        documented.is_object(),
        "{method} {path} answered {status}, which the document does not list: {}",
        String::from_utf8_lossy(&answer.body)
    );
    let body = answer.json();
    let mut schema = documented["content"]["application/json"]["schema"].clone();
    schema["components"] = doc["components"].clone();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&body)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} {status} does not match its schema: {errors:?}\n{body}"
    );
    body
}

fn small_limits() -> Limits {
    Limits {
        max_body_bytes: 8 << 10,
        max_documents: 4,
        max_chars: 2_000,
        ..Limits::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_matches_real_responses() {
    let server = Server::new(models(), small_limits()).unwrap();
    let router = server.router();
    let doc = openapi(&router).await;

    let health = call(&router, "GET", "/healthz", None).await;
    assert_eq!(validate(&doc, "get", "/healthz", &health)["status"], "ok");

    let profiles = call(&router, "GET", "/v1/profiles", None).await;
    let profiles = validate(&doc, "get", "/v1/profiles", &profiles);
    assert_eq!(profiles["default"], "conll2003");
    assert_eq!(
        profiles["profiles"][0]["labels"],
        json!(["LOC", "MISC", "ORG", "PER"])
    );

    let request = json!({"profile": "conll2003", "documents": [
        {"id": "a", "text": "Angela Merkel met Emmanuel Macron in Paris."},
        {"text": ""},
    ]})
    .to_string();
    let answer = call(&router, "POST", "/v1/annotate", Some(&request)).await;
    assert_eq!(answer.status, StatusCode::OK);
    let body = validate(&doc, "post", "/v1/annotate", &answer);
    let documents = body["documents"].as_array().unwrap();
    assert_eq!(documents[0]["id"], "a");
    assert_eq!(documents[1], json!({"id": "2", "entities": []}));
    let entities = documents[0]["entities"].as_array().unwrap();
    assert!(
        entities
            .iter()
            .any(|e| e["text"] == "Paris" && e["label"] == "LOC"),
        "{body}"
    );
    let feature = &entities[0]["evidence"][0]["feature"];

    let uri = format!("/v1/features/{feature}?profile=conll2003");
    let answer = call(&router, "GET", &uri, None).await;
    assert_eq!(answer.status, StatusCode::OK);
    let info = validate(&doc, "get", "/v1/features/{id}", &answer);
    assert_eq!(&info["feature"], feature);
    assert!(!info["types"].as_array().unwrap().is_empty());

    // Errors: each with its documented status and the JSON error shape.
    let long = "word ".repeat(500);
    let cases: [(&str, &str, Option<String>, u16, &str); 9] = [
        ("get", "/v1/features/999999", None, 404, "unknown_feature"),
        ("get", "/v1/features/abc", None, 400, "bad_request"),
        (
            "get",
            "/v1/features/1?profile=x",
            None,
            404,
            "unknown_profile",
        ),
        (
            "post",
            "/v1/annotate",
            Some(json!({"profile": "x", "documents": []}).to_string()),
            404,
            "unknown_profile",
        ),
        (
            "post",
            "/v1/annotate",
            Some(json!({"documents": vec![json!({"text": "a"}); 5]}).to_string()),
            413,
            "too_many_documents",
        ),
        (
            "post",
            "/v1/annotate",
            Some(json!({"documents": [{"text": long}]}).to_string()),
            413,
            "document_too_long",
        ),
        (
            "post",
            "/v1/annotate",
            Some(json!({"documents": [{"text": "x".repeat(9000)}]}).to_string()),
            413,
            "payload_too_large",
        ),
        (
            "post",
            "/v1/annotate",
            Some("{\"documents\": [".to_string()),
            400,
            "invalid_json",
        ),
        (
            "post",
            "/v1/annotate",
            Some(json!({"documents": [{"txt": "a"}]}).to_string()),
            422,
            "invalid_request",
        ),
    ];
    for (method, uri, body, status, code) in cases {
        let answer = call(&router, &method.to_uppercase(), uri, body.as_deref()).await;
        assert_eq!(answer.status.as_u16(), status, "{method} {uri}");
        let path = uri.split('?').next().unwrap();
        let path = if path.starts_with("/v1/features/") {
            "/v1/features/{id}"
        } else {
            path
        };
        let error = validate(&doc, method, path, &answer);
        assert_eq!(error["error"]["code"], code, "{error}");
    }
    for (method, uri, status) in [("GET", "/nowhere", 404), ("GET", "/v1/annotate", 405)] {
        let answer = call(&router, method, uri, None).await;
        assert_eq!(answer.status.as_u16(), status);
        assert!(answer.json()["error"]["message"].is_string());
    }

    let metrics = call(&router, "GET", "/metrics", None).await;
    assert_eq!(metrics.status, StatusCode::OK);
    let text = String::from_utf8(metrics.body).unwrap();
    for name in [
        "saener_http_requests_total{route=\"/v1/annotate\",method=\"POST\",status=\"200\"} 1",
        "saener_http_request_duration_seconds_bucket{",
        "saener_documents_total 2",
        "saener_tokens_total ",
        "saener_queue_depth 0",
    ] {
        assert!(text.contains(name), "{name} missing from\n{text}");
    }
    let page = call(&router, "GET", "/", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(String::from_utf8(page.body)
        .unwrap()
        .contains("<title>saener</title>"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_with_retry_after() {
    // One waiting request at most, one document per batch: the worker is busy with the
    // first request while the others arrive.
    let limits = Limits {
        queue_capacity: 1,
        max_batch_documents: 1,
        ..Limits::default()
    };
    let server = Server::new(models(), limits).unwrap();
    let router = server.router();
    let doc = openapi(&router).await;
    let text =
        "The European Commission said on Thursday it disagreed with German advice. ".repeat(4);
    let request = json!({"documents": [{"text": text}]}).to_string();
    let calls: Vec<_> = (0..12)
        .map(|_| {
            let (router, request) = (router.clone(), request.clone());
            tokio::spawn(async move { call(&router, "POST", "/v1/annotate", Some(&request)).await })
        })
        .collect();
    let mut refused = 0;
    for handle in calls {
        let answer = handle.await.unwrap();
        validate(&doc, "post", "/v1/annotate", &answer);
        if answer.status == StatusCode::SERVICE_UNAVAILABLE {
            refused += 1;
            assert_eq!(answer.json()["error"]["code"], "queue_full");
            assert_eq!(answer.headers["retry-after"], "1");
        } else {
            assert_eq!(answer.status, StatusCode::OK);
        }
    }
    assert!((1..12).contains(&refused), "{refused} of 12 refused");

    // A request the client stops waiting for answers 504.
    let limits = Limits {
        timeout: Duration::from_millis(1),
        ..Limits::default()
    };
    let router = Server::new(models(), limits).unwrap().router();
    let answer = call(&router, "POST", "/v1/annotate", Some(&request)).await;
    assert_eq!(answer.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        validate(&doc, "post", "/v1/annotate", &answer)["error"]["code"],
        "timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_the_requests_in_flight() {
    let server = Server::new(models(), Limits::default()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(listener, async {
        let _ = stopped.await;
    }));

    // Enough text to keep the model busy for a while (hundreds of tokens).
    let text = "Officials in Brussels and Washington met on Monday to discuss trade. ".repeat(30);
    let documents: Vec<Value> = (0..4).map(|_| json!({"text": text})).collect();
    let body = json!({"documents": documents}).to_string();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "POST /v1/annotate HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.send(()).unwrap();

    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"entities\""));
    tokio::time::timeout(Duration::from_secs(60), serving)
        .await
        .expect("the server stops after the last request")
        .unwrap()
        .unwrap();
    assert!(tokio::net::TcpStream::connect(address).await.is_err());
}
