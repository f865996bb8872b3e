//! The server end to end with the real model: every JSON answer is validated against the
//! server's own OpenAPI document, then the queue limit, graceful shutdown and hostile
//! clients (stalled, abandoning, oversized, unauthorised). Tests with slow clients are
//! bounded by short limits and a timeout on the test itself.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use saener_ner::{NamedProfile, Pipeline, StackConfig};
use saener_server::{Access, Limits, Server, ServerError};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

/// The model, SAE and two shipped profiles, loaded once for all tests.
fn pipeline() -> Arc<Pipeline> {
    static PIPELINE: OnceLock<Arc<Pipeline>> = OnceLock::new();
    PIPELINE
        .get_or_init(|| {
            let config = StackConfig::default();
            let profiles = ["conll2003", "ncbi_disease"]
                .map(|name| NamedProfile::new(name, config.load_profile(name).unwrap()));
            Arc::new(Pipeline::load(&config, profiles.into()).unwrap())
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
    send(router, request).await
}

async fn send(router: &axum::Router, request: Request<Body>) -> Answer {
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
    let server = Server::new(pipeline(), small_limits()).unwrap();
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
    let server = Server::new(pipeline(), limits).unwrap();
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
    let router = Server::new(pipeline(), limits).unwrap().router();
    let answer = call(&router, "POST", "/v1/annotate", Some(&request)).await;
    assert_eq!(answer.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        validate(&doc, "post", "/v1/annotate", &answer)["error"]["code"],
        "timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_the_requests_in_flight() {
    let (address, stop, serving) = serve(Server::new(pipeline(), Limits::default()).unwrap()).await;

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

/// Serves on a free loopback port: the address, the stop trigger and the serving task.
async fn serve(
    server: Server,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), ServerError>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(listener, async {
        let _ = stopped.await;
    }));
    (address, stop, serving)
}

/// Everything the server sends on `stream` until it closes it (at most `within`).
async fn until_closed(stream: &mut tokio::net::TcpStream, within: Duration) -> String {
    let mut bytes = Vec::new();
    tokio::time::timeout(within, stream.read_to_end(&mut bytes))
        .await
        .expect("the server closes the connection in time")
        .unwrap();
    String::from_utf8_lossy(&bytes).into_owned()
}

async fn metrics_text(router: &axum::Router) -> String {
    String::from_utf8(call(router, "GET", "/metrics", None).await.body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_label_only_known_methods() {
    let router = Server::new(pipeline(), small_limits()).unwrap().router();
    for i in 0..50 {
        let answer = call(&router, &format!("M{i:06}XXX"), "/healthz", None).await;
        assert!(answer.status.is_client_error(), "{}", answer.status);
    }
    let text = metrics_text(&router).await;
    assert!(!text.contains("M0000"), "{text}");
    let other: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("method=\"other\""))
        .collect();
    assert_eq!(other.len(), 1, "{text}");
    assert!(other[0].ends_with(" 50"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_clients_are_cut_off_while_others_are_served() {
    let limits = Limits {
        read_timeout: Duration::from_millis(500),
        ..small_limits()
    };
    let (address, stop, serving) = serve(Server::new(pipeline(), limits).unwrap()).await;
    // Headers that never end, and a body that never comes.
    let mut head = tokio::net::TcpStream::connect(address).await.unwrap();
    head.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nx-slow: ")
        .await
        .unwrap();
    let mut body = tokio::net::TcpStream::connect(address).await.unwrap();
    body.write_all(
        b"POST /v1/annotate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
          content-length: 100\r\nconnection: close\r\n\r\n{\"documents\"",
    )
    .await
    .unwrap();
    // An idle keep-alive connection that never sends a request.
    let mut idle = tokio::net::TcpStream::connect(address).await.unwrap();

    let mut whole = tokio::net::TcpStream::connect(address).await.unwrap();
    whole
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = until_closed(&mut whole, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let answer = until_closed(&mut body, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"request_timeout\""), "{answer}");
    for stalled in [&mut head, &mut idle] {
        // hyper answers a header timeout with 408 or just closes.
        let answer = until_closed(stalled, Duration::from_secs(5)).await;
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "{answer}"
        );
    }
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), serving)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_a_stalled_client() {
    // The header read timeout is out of the way: only the shutdown deadline (the request
    // timeout) can end the stalled connection.
    let limits = Limits {
        timeout: Duration::from_secs(1),
        read_timeout: Duration::from_secs(3600),
        ..small_limits()
    };
    let (address, stop, serving) = serve(Server::new(pipeline(), limits).unwrap()).await;
    let mut stalled = tokio::net::TcpStream::connect(address).await.unwrap();
    stalled
        .write_all(b"POST /v1/annotate HTTP/1.1\r\nhost: localhost\r\ncontent-length: 10\r\n\r\n{")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), serving)
        .await
        .expect("the server stops within its request timeout despite the stalled client")
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_for_a_request_that_timed_out_is_dropped() {
    // Pieces of 1 KiB: the long document below would keep the model busy for minutes.
    let limits = Limits {
        timeout: Duration::from_secs(10),
        piece_bytes: 1024,
        max_chars: 1_000_000,
        ..Limits::default()
    };
    let router = Server::new(pipeline(), limits).unwrap().router();
    let doc = openapi(&router).await;
    let long = "Officials in Brussels and Washington met on Monday to discuss trade. ".repeat(3000);
    let request = json!({"documents": [{"text": long}]}).to_string();
    let answer = call(&router, "POST", "/v1/annotate", Some(&request)).await;
    assert_eq!(answer.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        validate(&doc, "post", "/v1/annotate", &answer)["error"]["code"],
        "timeout"
    );
    // Had the worker gone on with the abandoned document, this would wait behind it.
    let request = json!({"documents": [{"text": "Angela Merkel visited Paris."}]}).to_string();
    let answer = call(&router, "POST", "/v1/annotate", Some(&request)).await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let text = metrics_text(&router).await;
    assert!(text.contains("saener_documents_total 1\n"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_declared_bodies_are_refused_before_100_continue() {
    let (address, stop, serving) = serve(Server::new(pipeline(), small_limits()).unwrap()).await;
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(
            b"POST /v1/annotate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
              content-length: 5000000\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n",
        )
        .await
        .unwrap();
    let answer = until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(!answer.contains("100 Continue"), "{answer}");
    assert!(answer.contains("\"payload_too_large\""), "{answer}");
    stop.send(()).unwrap();
    serving.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_outside_the_schema_are_refused() {
    let router = Server::new(pipeline(), small_limits()).unwrap().router();
    let doc = openapi(&router).await;

    // serde reads a struct from an array of its fields; the schema says object.
    let answer = call(&router, "POST", "/v1/annotate", Some("[null, []]")).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    let error = validate(&doc, "post", "/v1/annotate", &answer);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("object"),
        "{error}"
    );

    let request = Request::builder()
        .method("POST")
        .uri("/v1/annotate")
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(Body::from(vec![0x1f, 0x8b, 8, 0]))
        .unwrap();
    let answer = send(&router, request).await;
    assert_eq!(answer.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let error = validate(&doc, "post", "/v1/annotate", &answer);
    assert_eq!(error["error"]["code"], "unsupported_encoding");

    // Feature ids are int32 in the document: above i32::MAX is a bad request that says so.
    assert_eq!(
        doc["paths"]["/v1/features/{id}"]["get"]["parameters"][0]["schema"]["format"],
        "int32"
    );
    for id in ["4294967296", "2147483648", "-1"] {
        let answer = call(&router, "GET", &format!("/v1/features/{id}"), None).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{id}");
        let error = validate(&doc, "get", "/v1/features/{id}", &answer);
        let message = error["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("2147483647") && message.contains("int32"),
            "{message}"
        );
    }
    let answer = call(&router, "GET", "/v1/features/2147483647", None).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_and_host_names_guard_the_api() {
    let access = Access {
        token: Some("s3cret".into()),
        hosts: Some(Access::loopback_hosts()),
    };
    let router = Server::with_access(pipeline(), small_limits(), access)
        .unwrap()
        .router();
    let get = |uri: &str, host: &str, token: Option<&str>| {
        let mut request = Request::builder().uri(uri).header("host", host);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        request.body(Body::empty()).unwrap()
    };
    for token in [None, Some("wrong")] {
        for uri in ["/v1/profiles", "/openapi.json", "/metrics"] {
            let answer = send(&router, get(uri, "localhost:8080", token)).await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{uri}");
            assert_eq!(answer.headers["www-authenticate"], "Bearer");
            assert_eq!(answer.json()["error"]["code"], "unauthorized");
        }
    }
    let answer = send(&router, get("/openapi.json", "127.0.0.1", Some("s3cret"))).await;
    assert_eq!(answer.status, StatusCode::OK);
    let doc = answer.json();
    let answer = send(&router, get("/v1/profiles", "localhost", None)).await;
    validate(&doc, "get", "/v1/profiles", &answer);
    let answer = send(&router, get("/v1/profiles", "[::1]:80", Some("s3cret"))).await;
    assert_eq!(answer.status, StatusCode::OK);
    for open in ["/healthz", "/", "/app.js"] {
        let answer = send(&router, get(open, "localhost", None)).await;
        assert_eq!(answer.status, StatusCode::OK, "{open}");
    }
    // A page elsewhere whose name was pointed at 127.0.0.1 (DNS rebinding).
    let answer = send(
        &router,
        get("/v1/profiles", "evil.example:8080", Some("s3cret")),
    )
    .await;
    assert_eq!(answer.status, StatusCode::MISDIRECTED_REQUEST);
    let error = validate(&doc, "get", "/v1/profiles", &answer);
    assert_eq!(error["error"]["code"], "misdirected_request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_read_in_pieces_keeps_its_offsets() {
    // Pieces of 1 KiB: the ~3 KB document is read in three or four of them.
    let limits = Limits {
        piece_bytes: 1024,
        ..Limits::default()
    };
    let router = Server::new(pipeline(), limits).unwrap().router();
    let names = [
        "Angela Merkel",
        "Maria Keller",
        "John Smith",
        "Aiko Tanaka",
        "Pedro Alvarez",
        "Lena Novak",
    ];
    let places = [
        "Paris",
        "Nairobi",
        "Frankfurt",
        "Osaka",
        "Lima",
        "Geneva",
        "Cairo",
    ];
    let text: String = (0..80)
        .map(|i| {
            format!(
                "{} visited {} on Monday and spoke to reporters. ",
                names[i % names.len()],
                places[i % places.len()]
            )
        })
        .collect();
    let known: Vec<&str> = names
        .iter()
        .chain(&places)
        .flat_map(|n| n.split(' '))
        .chain(["Monday"])
        .collect();
    let request = json!({"documents": [{"text": text}]}).to_string();
    let answer = call(&router, "POST", "/v1/annotate", Some(&request)).await;
    assert_eq!(answer.status, StatusCode::OK);
    let body = answer.json();
    let entities = body["documents"][0]["entities"].as_array().unwrap();
    let chars: Vec<char> = text.chars().collect();
    let mut last_end = 0;
    for entity in entities {
        let (start, end) = (
            entity["start"].as_u64().unwrap() as usize,
            entity["end"].as_u64().unwrap() as usize,
        );
        assert!(start >= last_end && end > start, "{body}");
        last_end = end;
        // Offsets shifted by a piece's context would cut words: every word is a whole one.
        let slice: String = chars[start..end].iter().collect();
        for word in slice
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            assert!(
                known.contains(&word),
                "{slice:?} at {start}: {word:?} is cut"
            );
        }
    }
    // Entities all the way through, not only in the first piece.
    assert!(last_end > text.len() * 3 / 4, "{body}");
}
