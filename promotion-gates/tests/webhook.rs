//! The webhook gate against real HTTP and HTTPS servers on loopback.
//!
//! Run with `cargo test -p promotion-gates --test webhook`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::HeaderMap;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use promotion_core::testing::GateProbe;
use promotion_core::Digest;
use promotion_gates::process::Secret;
use promotion_gates::webhook::{
    sign, verify_signature, SignatureError, WebhookConfigError, WebhookGate,
    DEFAULT_SIGNATURE_HEADER, DEFAULT_SIGNATURE_TOLERANCE,
};
use promotion_gates::{Gate, GateError, Verdict};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::rustls;

/// The probe's clock: 2026-11-26T09:00:00Z.
const PROBE_UNIX: u64 = 1_795_683_600;

/// A request as the test server received it.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

type Reply = Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send>>;
type Handler = Arc<dyn Fn(Received) -> Reply + Send + Sync>;

/// A server on 127.0.0.1 answering with `handler`, plain or over TLS; it records every request.
struct Server {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Server {
    async fn start(handler: Handler, tls: Option<tokio_rustls::TlsAcceptor>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let handler = handler.clone();
                let log = log.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        None => serve_connection(stream, handler, log).await,
                        Some(acceptor) => {
                            // A client that rejects the certificate aborts the handshake.
                            if let Ok(stream) = acceptor.accept(stream).await {
                                serve_connection(stream, handler, log).await;
                            }
                        }
                    }
                });
            }
        });
        Server { addr, received }
    }

    async fn plain<F, Fut>(handler: F) -> Server
    where
        F: Fn(Received) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
    {
        Self::start(Arc::new(move |r| Box::pin(handler(r)) as Reply), None).await
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

async fn serve_connection<S>(stream: S, handler: Handler, log: Arc<Mutex<Vec<Received>>>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req: Request<Incoming>| {
        let handler = handler.clone();
        let log = log.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = match body.collect().await {
                Ok(b) => b.to_bytes().to_vec(),
                Err(_) => Vec::new(),
            };
            let received = Received {
                path: parts.uri.path().to_owned(),
                headers: parts.headers,
                body,
            };
            log.lock().unwrap().push(received.clone());
            Ok::<_, Infallible>(handler(received).await)
        }
    });
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

fn answer(status: u16, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header("content-type", "application/json")
        .body(Full::new(body.into()))
        .unwrap()
}

fn json_answer(status: u16, value: Value) -> Response<Full<Bytes>> {
    answer(status, value.to_string())
}

async fn evaluate(gate: &WebhookGate) -> Result<Verdict, GateError> {
    GateProbe::new().stage("production").evaluate(gate).await
}

fn passed(r: Result<Verdict, GateError>) -> promotion_core::Evidence {
    match r {
        Ok(Verdict::Pass(e)) => e,
        other => panic!("expected a pass, got {other:?}"),
    }
}

fn failed(r: Result<Verdict, GateError>) -> promotion_core::Evidence {
    match r {
        Ok(Verdict::Fail(e)) => e,
        other => panic!("expected a fail, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Plain HTTP

#[tokio::test]
async fn a_good_answer_passes_with_url_status_criteria_and_digests_as_evidence() {
    const BODY: &str = r#"{"approved":true,"score":0.97,"ticket":"CHG-1"}"#;
    let server = Server::plain(|_| async { answer(200, BODY) }).await;
    let url = server.url("/check");
    let gate = WebhookGate::builder(&url)
        .name("cab")
        .expect_true("/approved")
        .expect_json("/score", json!(0.97))
        .use_system_proxy(false)
        .build()
        .unwrap();
    let ev = passed(evaluate(&gate).await);
    assert_eq!(
        ev.summary,
        format!("POST {url} answered 200 OK; /approved = true, /score = 0.97")
    );
    assert_eq!(ev.producer, "cab");
    assert_eq!(ev.facts["status"], "200");

    // What the server received is what the evidence says was sent.
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.path, "/check");
    assert_eq!(request.headers["content-type"], "application/json");
    assert!(request.headers.get(DEFAULT_SIGNATURE_HEADER).is_none());
    assert_eq!(
        ev.data["request"]["sha256"],
        Digest::of(&request.body).to_string()
    );
    assert_eq!(ev.data["request"]["bytes"], request.body.len());
    assert_eq!(ev.data["request"]["signed"], false);
    assert_eq!(ev.attachments[0].name, "request body");
    assert_eq!(ev.attachments[0].digest, Digest::of(&request.body));
    assert_eq!(ev.attachments[1].name, "response body");
    assert_eq!(ev.attachments[1].digest, Digest::of(BODY.as_bytes()));
    assert_eq!(
        ev.data["response"]["sha256"],
        Digest::of(BODY.as_bytes()).to_string()
    );
    assert_eq!(ev.data["response"]["truncated"], false);
    assert_eq!(ev.data["url"], url);
    assert_eq!(ev.data["status"], 200);
    assert_eq!(ev.data["accepted_status"], json!(["200-299"]));
    assert_eq!(
        ev.data["criteria"],
        json!([
            {"pointer": "/approved", "expected": true, "actual": true, "met": true},
            {"pointer": "/score", "expected": 0.97, "actual": 0.97, "met": true},
        ])
    );

    // The body describes the release and the stage, in canonical JSON.
    let sent: Value = serde_json::from_slice(&request.body).unwrap();
    let probe = GateProbe::new();
    assert_eq!(sent["schema"], "promotion.webhook/v1");
    assert_eq!(sent["stage"], "production");
    assert_eq!(sent["phase"], "entry");
    assert_eq!(sent["pipeline"], "probe");
    assert_eq!(sent["gate"], "cab");
    assert_eq!(sent["round"], 1);
    assert_eq!(sent["attempt"], 1);
    assert_eq!(sent["timestamp"], PROBE_UNIX);
    assert_eq!(sent["sent_at"], "2026-11-26T09:00:00Z");
    assert_eq!(sent["release"]["id"], probe.release_ref().id().to_string());
    assert_eq!(sent["release"]["artifacts"][0]["name"], "image");
    assert_eq!(sent["release"]["source"]["commit"], "a".repeat(40));
    assert_eq!(
        request.body,
        promotion_core::canonical_json(&sent).unwrap(),
        "the body is canonical JSON"
    );
}

#[tokio::test]
async fn a_negative_or_missing_field_fails_naming_each_criterion() {
    let server = Server::plain(|_| async {
        json_answer(
            200,
            json!({"approved": false, "reason": "CAB meets on Thursday"}),
        )
    })
    .await;
    let url = server.url("/check");
    let gate = WebhookGate::builder(&url)
        .expect_true("/approved")
        .expect_json("/risk", json!("low"))
        .use_system_proxy(false)
        .build()
        .unwrap();
    let ev = failed(evaluate(&gate).await);
    assert_eq!(
        ev.summary,
        format!(
            "POST {url} answered 200 OK but /approved is false, expected true; \
             /risk is missing, expected \"low\""
        )
    );
    assert_eq!(ev.data["criteria"][0]["met"], false);
    assert_eq!(ev.data["criteria"][0]["actual"], false);
    assert_eq!(ev.data["criteria"][1]["actual"], Value::Null);
    assert_eq!(ev.data["problems"].as_array().unwrap().len(), 2);

    // A string "true" is not the boolean true.
    let server = Server::plain(|_| async { json_answer(200, json!({"approved": "true"})) }).await;
    let gate = WebhookGate::builder(server.url("/"))
        .expect_true("/approved")
        .use_system_proxy(false)
        .build()
        .unwrap();
    let ev = failed(evaluate(&gate).await);
    assert!(
        ev.summary
            .ends_with("but /approved is \"true\", expected true"),
        "{}",
        ev.summary
    );
}

#[tokio::test]
async fn a_status_outside_the_accepted_set_fails_and_custom_sets_are_honoured() {
    let server = Server::plain(|r: Received| async move {
        match r.path.as_str() {
            "/forbidden" => json_answer(403, json!({"error": "not allowed"})),
            "/accepted" => answer(202, ""),
            _ => answer(302, ""),
        }
    })
    .await;
    let gate = |path: &str| {
        WebhookGate::builder(server.url(path))
            .use_system_proxy(false)
            .build()
            .unwrap()
    };
    let ev = failed(evaluate(&gate("/forbidden")).await);
    assert_eq!(
        ev.summary,
        format!(
            "POST {} answered 403 Forbidden, expected 200-299",
            server.url("/forbidden")
        )
    );
    assert_eq!(ev.data["status"], 403);
    // Redirects are answers, not followed.
    let ev = failed(evaluate(&gate("/moved")).await);
    assert!(ev.summary.contains("answered 302 Found"), "{}", ev.summary);
    // The default range accepts 202 with an empty body when there are no JSON criteria.
    passed(evaluate(&gate("/accepted")).await);

    // Only 200 and 204: 202 now fails.
    let strict = WebhookGate::builder(server.url("/accepted"))
        .accept_status(200)
        .accept_status(204)
        .use_system_proxy(false)
        .build()
        .unwrap();
    let ev = failed(evaluate(&strict).await);
    assert!(
        ev.summary
            .ends_with("answered 202 Accepted, expected 200, 204"),
        "{}",
        ev.summary
    );
    // A range that includes 403 makes it a pass.
    let lenient = WebhookGate::builder(server.url("/forbidden"))
        .accept_status_range(200, 499)
        .use_system_proxy(false)
        .build()
        .unwrap();
    passed(evaluate(&lenient).await);
}

#[tokio::test]
async fn a_server_error_is_a_gate_error_so_the_engine_retries() {
    let server = Server::plain(|r: Received| async move {
        match r.path.as_str() {
            "/busy" => answer(429, "slow down"),
            _ => answer(500, "database is down"),
        }
    })
    .await;
    let gate = WebhookGate::builder(server.url("/check"))
        .expect_true("/approved")
        .use_system_proxy(false)
        .build()
        .unwrap();
    match evaluate(&gate).await {
        Err(GateError::Unavailable { service, message }) => {
            assert_eq!(service, format!("webhook {}", server.url("/check")));
            assert_eq!(
                message,
                "answered 500 Internal Server Error: database is down"
            );
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
    let busy = WebhookGate::builder(server.url("/busy"))
        .use_system_proxy(false)
        .build()
        .unwrap();
    assert!(matches!(
        evaluate(&busy).await,
        Err(GateError::Unavailable { message, .. }) if message.starts_with("answered 429 Too Many Requests")
    ));
}

#[tokio::test]
async fn a_slow_answer_times_out_as_an_error() {
    let server = Server::plain(|_| async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        json_answer(200, json!({"approved": true}))
    })
    .await;
    let gate = WebhookGate::builder(server.url("/slow"))
        .expect_true("/approved")
        .timeout(Duration::from_millis(300))
        .use_system_proxy(false)
        .build()
        .unwrap();
    let started = Instant::now();
    let result = evaluate(&gate).await;
    assert!(
        matches!(result, Err(GateError::TimedOut(d)) if d == Duration::from_millis(300)),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn an_answer_that_is_not_json_is_invalid_input_naming_the_url() {
    let server = Server::plain(|r: Received| async move {
        match r.path.as_str() {
            "/html" => answer(200, "<html>502 Bad Gateway</html>"),
            _ => answer(200, r#"{"approved": tr"#),
        }
    })
    .await;
    for (path, wanted) in [("/html", "expected value"), ("/cut", "EOF while parsing")] {
        let gate = WebhookGate::builder(server.url(path))
            .expect_true("/approved")
            .use_system_proxy(false)
            .build()
            .unwrap();
        match evaluate(&gate).await {
            Err(GateError::InvalidInput { what, message }) => {
                assert_eq!(what, format!("answer of {}", server.url(path)));
                assert!(message.contains("is not JSON"), "{message}");
                assert!(message.contains(wanted), "{message}");
            }
            other => panic!("expected invalid input for {path}, got {other:?}"),
        }
    }
    // Without criteria the body is not parsed: the status decides.
    let gate = WebhookGate::builder(server.url("/html"))
        .use_system_proxy(false)
        .build()
        .unwrap();
    passed(evaluate(&gate).await);
}

#[tokio::test]
async fn a_body_cut_off_by_the_connection_is_unavailable() {
    // A raw server that promises 100 bytes, sends 15 and hangs up.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = vec![0u8; 65536];
            let _ = stream.read(&mut buf).await;
            let _ = stream
                .write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                      content-length: 100\r\n\r\n{\"approved\": tr",
                )
                .await;
            let _ = stream.shutdown().await;
        }
    });
    let url = format!("http://{addr}/check");
    let gate = WebhookGate::builder(&url)
        .expect_true("/approved")
        .use_system_proxy(false)
        .build()
        .unwrap();
    match evaluate(&gate).await {
        Err(GateError::Unavailable { service, message }) => {
            assert_eq!(service, format!("webhook {url}"));
            assert!(!message.is_empty());
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn an_answer_over_the_size_limit_is_invalid_input() {
    let server = Server::plain(|_| async {
        json_answer(200, json!({"approved": true, "padding": "x".repeat(1000)}))
    })
    .await;
    let gate = WebhookGate::builder(server.url("/big"))
        .expect_true("/approved")
        .max_response_bytes(64)
        .use_system_proxy(false)
        .build()
        .unwrap();
    match evaluate(&gate).await {
        Err(GateError::InvalidInput { what, message }) => {
            assert_eq!(what, format!("answer of {}", server.url("/big")));
            assert_eq!(
                message,
                "the answer is larger than 64 bytes (max_response_bytes)"
            );
        }
        other => panic!("expected invalid input, got {other:?}"),
    }
    // The same answer fits the default limit.
    let gate = WebhookGate::builder(server.url("/big"))
        .expect_true("/approved")
        .use_system_proxy(false)
        .build()
        .unwrap();
    passed(evaluate(&gate).await);
}

#[tokio::test]
async fn a_refused_connection_is_unavailable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    // A password in the URL stays out of the error.
    let gate = WebhookGate::builder(format!("http://bot:hunter2@{addr}/check"))
        .use_system_proxy(false)
        .build()
        .unwrap();
    match evaluate(&gate).await {
        Err(e @ GateError::Unavailable { .. }) => {
            let GateError::Unavailable { service, .. } = &e else {
                unreachable!()
            };
            assert_eq!(service, &format!("webhook http://bot:***@{addr}/check"));
            assert!(!e.report().contains("hunter2"), "{}", e.report());
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
}

#[test]
fn outside_a_tokio_runtime_the_gate_says_so_instead_of_panicking() {
    let gate = WebhookGate::builder("http://127.0.0.1:9/").build().unwrap();
    let r = futures::executor::block_on(GateProbe::new().evaluate(&gate));
    assert!(
        matches!(&r, Err(GateError::Misconfigured(m)) if m.contains("tokio runtime")),
        "{r:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Signatures

const SECRET: &str = "correct horse battery staple";

/// A receiver that authenticates requests with `verify_signature` and says why it refuses.
async fn signing_receiver() -> Server {
    Server::plain(|r: Received| async move {
        let Some(header) = r
            .headers
            .get(DEFAULT_SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
        else {
            return json_answer(401, json!({"error": "unsigned"}));
        };
        // The receiver's clock: ten seconds after the probe's.
        let now = UNIX_EPOCH + Duration::from_secs(PROBE_UNIX + 10);
        match verify_signature(
            SECRET.as_bytes(),
            header,
            &r.body,
            now,
            DEFAULT_SIGNATURE_TOLERANCE,
        ) {
            Ok(_) => json_answer(200, json!({"approved": true})),
            Err(e) => json_answer(401, json!({"error": e.to_string()})),
        }
    })
    .await
}

#[tokio::test]
async fn a_receiver_accepts_the_signed_request_and_rejects_bad_signatures() {
    let server = signing_receiver().await;
    let url = server.url("/hook");
    let gate = WebhookGate::builder(&url)
        .expect_true("/approved")
        .signing_secret(Secret::new(SECRET))
        .use_system_proxy(false)
        .build()
        .unwrap();
    let ev = passed(evaluate(&gate).await);
    assert_eq!(ev.data["request"]["signed"], true);
    assert_eq!(
        ev.data["request"]["signature_header"],
        DEFAULT_SIGNATURE_HEADER.to_ascii_lowercase()
    );
    assert_eq!(ev.data["request"]["timestamp"], PROBE_UNIX);

    // The header is exactly `t=<probe time>,v1=<HMAC of "t." + body>`.
    let request = server.requests().pop().unwrap();
    let header = request.headers[DEFAULT_SIGNATURE_HEADER].to_str().unwrap();
    let t = i64::try_from(PROBE_UNIX).unwrap();
    assert_eq!(header, sign(SECRET.as_bytes(), t, &request.body));
    let (stamp, mac) = header.split_once(',').unwrap();
    assert_eq!(stamp, format!("t={PROBE_UNIX}"));
    assert_eq!(mac.len(), 3 + 64);

    // The secret is nowhere: not in Debug output, evidence or what was sent.
    assert!(!format!("{gate:?}").contains(SECRET));
    assert!(!serde_json::to_string(&ev).unwrap().contains(SECRET));
    assert!(!String::from_utf8_lossy(&request.body).contains(SECRET));
    assert!(!header.contains(SECRET));

    // A wrong secret: the receiver refuses, which is a negative answer.
    let wrong = WebhookGate::builder(&url)
        .expect_true("/approved")
        .signing_secret(Secret::new("incorrect horse"))
        .use_system_proxy(false)
        .build()
        .unwrap();
    let ev = failed(evaluate(&wrong).await);
    assert_eq!(
        ev.summary,
        format!("POST {url} answered 401 Unauthorized, expected 200-299")
    );
    // An unsigned request too.
    let unsigned = WebhookGate::builder(&url)
        .expect_true("/approved")
        .use_system_proxy(false)
        .build()
        .unwrap();
    failed(evaluate(&unsigned).await);

    // A signature header under another name is not seen by this receiver.
    let renamed = WebhookGate::builder(&url)
        .signing_secret(Secret::new(SECRET))
        .signature_header("X-Hub-Signature-256")
        .use_system_proxy(false)
        .build()
        .unwrap();
    failed(evaluate(&renamed).await);
    let last = server.requests().pop().unwrap();
    assert!(last.headers.get("x-hub-signature-256").is_some());

    // Replaying the captured request: a changed body, or the same request an hour later,
    // is refused by the receiver's check.
    let now = UNIX_EPOCH + Duration::from_secs(PROBE_UNIX + 10);
    let mut tampered = request.body.clone();
    tampered.extend_from_slice(b" ");
    assert_eq!(
        verify_signature(
            SECRET.as_bytes(),
            header,
            &tampered,
            now,
            DEFAULT_SIGNATURE_TOLERANCE
        ),
        Err(SignatureError::Mismatch)
    );
    let later = SystemTime::UNIX_EPOCH + Duration::from_secs(PROBE_UNIX + 3600);
    assert!(matches!(
        verify_signature(
            SECRET.as_bytes(),
            header,
            &request.body,
            later,
            DEFAULT_SIGNATURE_TOLERANCE
        ),
        Err(SignatureError::OutsideTolerance {
            distance_secs: 3600,
            ..
        })
    ));
}

// ---------------------------------------------------------------------------------------------
// TLS

struct TlsFixture {
    cert_pem: String,
    acceptor: tokio_rustls::TlsAcceptor,
}

fn self_signed() -> TlsFixture {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        certified.key_pair.serialize_der(),
    ));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![certified.cert.der().clone()], key)
    .unwrap();
    TlsFixture {
        cert_pem: certified.cert.pem(),
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
    }
}

async fn tls_server(fixture: &TlsFixture) -> String {
    let handler: Handler =
        Arc::new(|_| Box::pin(async { json_answer(200, json!({"approved": true})) }) as Reply);
    let server = Server::start(handler, Some(fixture.acceptor.clone())).await;
    format!("https://{}/check", server.addr)
}

#[tokio::test]
async fn https_with_a_trusted_self_signed_certificate_passes() {
    let fixture = self_signed();
    let url = tls_server(&fixture).await;
    let gate = WebhookGate::builder(&url)
        .expect_true("/approved")
        .root_ca_pem(&fixture.cert_pem)
        .use_system_proxy(false)
        .build()
        .unwrap();
    let ev = passed(evaluate(&gate).await);
    assert_eq!(ev.data["url"], url);
    // Trusting only that certificate works too.
    let only = WebhookGate::builder(&url)
        .expect_true("/approved")
        .root_ca_pem(&fixture.cert_pem)
        .built_in_roots(false)
        .use_system_proxy(false)
        .build()
        .unwrap();
    passed(evaluate(&only).await);
}

#[tokio::test]
async fn https_with_an_untrusted_certificate_is_a_typed_tls_error() {
    let fixture = self_signed();
    let url = tls_server(&fixture).await;
    // No root CA: the self-signed certificate chains to nothing trusted.
    let gate = WebhookGate::builder(&url)
        .expect_true("/approved")
        .use_system_proxy(false)
        .build()
        .unwrap();
    match evaluate(&gate).await {
        Err(GateError::Unavailable { service, message }) => {
            assert_eq!(service, format!("webhook {url}"));
            assert!(
                message
                    .starts_with("TLS handshake failed: the server's certificate is not trusted"),
                "{message}"
            );
            assert!(message.contains("(UnknownIssuer)"), "{message}");
            assert!(
                message.ends_with("trust its CA with root_ca_pem"),
                "{message}"
            );
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
    // Another certificate as root CA does not help either.
    let other = self_signed();
    let gate = WebhookGate::builder(&url)
        .root_ca_pem(&other.cert_pem)
        .built_in_roots(false)
        .use_system_proxy(false)
        .build()
        .unwrap();
    assert!(matches!(
        evaluate(&gate).await,
        Err(GateError::Unavailable { message, .. }) if message.contains("not trusted")
    ));
}

// ---------------------------------------------------------------------------------------------
// Configuration

#[test]
fn every_misconfiguration_is_a_typed_error_naming_the_setting() {
    let build = |b: promotion_gates::webhook::WebhookGateBuilder| b.build().unwrap_err();
    let ok = || WebhookGate::builder("https://hooks.example.com/check");

    let e = build(WebhookGate::builder("not a url"));
    assert!(matches!(&e, WebhookConfigError::InvalidUrl { url, .. } if url == "not a url"));
    assert!(
        e.to_string().starts_with("webhook gate: url `not a url`"),
        "{e}"
    );
    let e = build(WebhookGate::builder("ftp://example.com/x"));
    assert_eq!(
        e.to_string(),
        "webhook gate: url `ftp://example.com/x` has scheme `ftp`; only http and https are supported"
    );
    assert_eq!(
        build(ok().accept_status(42)),
        WebhookConfigError::InvalidStatus { code: 42 }
    );
    assert_eq!(
        build(ok().accept_status_range(300, 200)).to_string(),
        "webhook gate: accept_status_range: 300-200 is not a range of HTTP status codes \
         (100 to 599, low to high)"
    );
    assert!(matches!(
        build(ok().accept_status_range(200, 700)),
        WebhookConfigError::InvalidStatusRange {
            low: 200,
            high: 700
        }
    ));
    let e = build(ok().expect_true("approved"));
    assert!(
        e.to_string()
            .starts_with("webhook gate: expect_json: `approved` is not a JSON pointer"),
        "{e}"
    );
    assert!(matches!(
        build(ok().expect_true("/a").expect_json("/a", json!(1))),
        WebhookConfigError::DuplicateJsonPointer { pointer } if pointer == "/a"
    ));
    assert_eq!(
        build(ok().signing_secret(Secret::new(""))),
        WebhookConfigError::EmptySecret
    );
    let e = build(
        ok().signing_secret(Secret::new("s"))
            .signature_header("bad header"),
    );
    assert_eq!(
        e.to_string(),
        "webhook gate: signature_header `bad header`: it is not a valid HTTP header name"
    );
    assert!(matches!(
        build(ok().signing_secret(Secret::new("s")).signature_header("Content-Type")),
        WebhookConfigError::InvalidSignatureHeader { problem, .. } if problem.contains("sets this header")
    ));
    assert_eq!(
        build(ok().timeout(Duration::ZERO)),
        WebhookConfigError::ZeroTimeout
    );
    assert_eq!(
        build(ok().max_response_bytes(0)),
        WebhookConfigError::ZeroMaxResponseBytes
    );
    assert_eq!(
        build(ok().built_in_roots(false)),
        WebhookConfigError::NoTrustedRoots
    );
    // Plain HTTP needs no roots.
    assert!(WebhookGate::builder("http://127.0.0.1:1/")
        .built_in_roots(false)
        .build()
        .is_ok());
    assert!(matches!(
        build(ok().name(" bad")),
        WebhookConfigError::InvalidName(_)
    ));

    // Root CAs: no certificate at all, a damaged one, and the second of two calls.
    let e = build(ok().root_ca_pem("just text"));
    assert_eq!(
        e.to_string(),
        "webhook gate: root_ca_pem #1: it holds no `-----BEGIN CERTIFICATE-----` block"
    );
    let damaged = "-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----\n";
    let good = self_signed().cert_pem;
    let e = build(ok().root_ca_pem(&good).root_ca_pem(damaged));
    assert!(
        matches!(&e, WebhookConfigError::InvalidRootCa { index: 2, message } if message.starts_with("certificate 1")),
        "{e}"
    );
    assert!(ok().root_ca_pem(&good).build().is_ok());
}

#[test]
fn debug_output_hides_secret_and_url_password() {
    let gate = WebhookGate::builder("https://bot:hunter2@hooks.example.com/check")
        .signing_secret(Secret::new("s3cr3t-value"))
        .build()
        .unwrap();
    let debug = format!("{gate:?}");
    assert!(!debug.contains("s3cr3t-value"), "{debug}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(
        debug.contains("https://bot:***@hooks.example.com/check"),
        "{debug}"
    );
    assert_eq!(gate.name(), "webhook");
    assert_eq!(gate.url(), "https://bot:***@hooks.example.com/check");
    let builder = WebhookGate::builder("https://bot:hunter2@hooks.example.com/check")
        .signing_secret(Secret::new("s3cr3t-value"));
    let debug = format!("{builder:?}");
    assert!(
        !debug.contains("s3cr3t-value") && !debug.contains("hunter2"),
        "{debug}"
    );
}
