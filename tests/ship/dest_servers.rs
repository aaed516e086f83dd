//! Small local servers that follow the documented protocols of Splunk's HTTP Event Collector and
//! Elasticsearch's `_bulk` API, including their failure answers, for the shipping tests. Used by
//! `tests/ship_dest.rs` (through the real binary) and by the unit tests of `src/ship/hec.rs` and
//! `src/ship/elastic.rs` (through `#[path]`), so both test the same protocol.
//!
//! Each server runs on its own Tokio runtime on a loopback port; `stop` closes the port (the
//! destination then sees "connection refused") and `restart` opens the same port again.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// The token the HEC server accepts.
pub const HEC_TOKEN: &str = "hec-test-token-4f1c";

/// A failure the next request gets instead of the normal answer.
#[derive(Clone, Debug)]
pub enum Fault {
    /// The normal answer (to fail a later request, not this one).
    Pass,
    /// An HTTP status with a JSON body and an optional `Retry-After` (seconds).
    Status {
        status: u16,
        body: Value,
        retry_after: Option<u64>,
    },
    /// HEC: `400 {"text":"Invalid data format","code":6,"invalid-event-number":N}`.
    HecInvalidEvent(usize),
}

impl Fault {
    /// HEC's "Server is busy" (503, code 9).
    pub fn hec_busy(retry_after: Option<u64>) -> Self {
        Fault::Status {
            status: 503,
            body: json!({"text": "Server is busy", "code": 9}),
            retry_after,
        }
    }
    /// HEC's "Internal server error" (500, code 8).
    pub fn hec_internal() -> Self {
        Fault::Status {
            status: 500,
            body: json!({"text": "Internal server error", "code": 8}),
            retry_after: None,
        }
    }
    /// A 429 with `Retry-After: secs`.
    pub fn too_many(secs: u64) -> Self {
        Fault::Status {
            status: 429,
            body: json!({"error": {"type": "es_rejected_execution_exception", "reason": "rejected execution"}, "status": 429}),
            retry_after: Some(secs),
        }
    }
    /// A bare 502 (a proxy in front of the server).
    pub fn bad_gateway() -> Self {
        Fault::Status {
            status: 502,
            body: json!({"error": "bad gateway"}),
            retry_after: None,
        }
    }
}

/// What a server saw, shared with the test.
#[derive(Default, Debug)]
pub struct Seen {
    /// Every request's arrival time and path, in order.
    pub requests: Vec<(Instant, String)>,
    /// The documents stored, by `<chain_id>:<seq>`, with how often each was stored.
    pub stored: BTreeMap<String, (Value, usize)>,
    /// Failures to answer the next requests to the data endpoint with, in order.
    pub faults: VecDeque<Fault>,
    /// HEC: the `X-Splunk-Request-Channel` of each data request.
    pub channels: Vec<String>,
    /// HEC: ack polls answer `false` this many times per ackId before `true`.
    pub ack_false_polls: usize,
    /// HEC: the next this many ackIds are lost (never `true`), as after an indexer restart.
    pub lose_acks: usize,
    /// HEC: whether indexer acknowledgement is on (off: no ackId in the answer).
    pub ack_disabled: bool,
    /// HEC: ackId → (polls answered false so far, lost, the envelopes it covers).
    pub acks: HashMap<u64, (usize, bool)>,
    /// HEC: the next ackId.
    pub next_ack: u64,
    /// HEC: ack polls.
    pub ack_polls: usize,
    /// Elasticsearch: `_id` → statuses to answer for that item before storing it (429, 400, …).
    pub item_faults: HashMap<String, VecDeque<u16>>,
    /// Elasticsearch: the Basic credentials required (`user:password`), if any.
    pub basic: Option<String>,
    /// Elasticsearch: the `Authorization` header value required instead, if any.
    pub authorization: Option<String>,
    /// The raw bodies of the data requests.
    pub bodies: Vec<Vec<u8>>,
}

/// A running mock server.
pub struct Server {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Seen>>,
    kind: Kind,
    runtime: Option<tokio::runtime::Runtime>,
}

#[derive(Clone, Copy)]
enum Kind {
    Hec,
    Elastic,
}

impl Server {
    /// A Splunk HEC server with indexer acknowledgement on.
    pub fn hec() -> Server {
        Server::start(
            Kind::Hec,
            "127.0.0.1:0".parse().expect("addr"),
            Arc::default(),
        )
    }

    /// An Elasticsearch server.
    pub fn elastic() -> Server {
        Server::start(
            Kind::Elastic,
            "127.0.0.1:0".parse().expect("addr"),
            Arc::default(),
        )
    }

    fn start(kind: Kind, addr: SocketAddr, seen: Arc<Mutex<Seen>>) -> Server {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let listener = std::net::TcpListener::bind(addr).expect("bind a loopback port");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let app = match kind {
            Kind::Hec => Router::new()
                .route("/services/collector/event", post(hec_event))
                .route("/services/collector/ack", post(hec_ack)),
            Kind::Elastic => Router::new().route("/_bulk", post(es_bulk)),
        }
        .with_state(seen.clone());
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let _ = axum::serve(listener, app).await;
        });
        Server {
            addr,
            seen,
            kind,
            runtime: Some(runtime),
        }
    }

    /// Closes the port: connections are refused until `restart`.
    pub fn stop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
        // Give the kernel a moment to close the listening socket.
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    /// Opens the same port again, with what was stored kept.
    pub fn restart(&mut self) {
        let mut again = Server::start(self.kind, self.addr, self.seen.clone());
        self.runtime = again.runtime.take();
    }

    /// The shared state.
    pub fn seen(&self) -> MutexGuard<'_, Seen> {
        self.seen.lock().expect("mock state")
    }

    /// `http://127.0.0.1:PORT`
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn answer(status: u16, body: &Value, retry_after: Option<u64>) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "application/json".parse().expect("header"));
    if let Some(secs) = retry_after {
        headers.insert("retry-after", secs.to_string().parse().expect("header"));
    }
    (
        StatusCode::from_u16(status).expect("status"),
        headers,
        body.to_string(),
    )
        .into_response()
}

fn hec_auth(headers: &HeaderMap) -> Option<Response> {
    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
        None => Some(answer(
            401,
            &json!({"text": "Token is required", "code": 2}),
            None,
        )),
        Some(v) if !v.starts_with("Splunk ") => Some(answer(
            401,
            &json!({"text": "Invalid authorization", "code": 3}),
            None,
        )),
        Some(v) if v != format!("Splunk {HEC_TOKEN}") => Some(answer(
            403,
            &json!({"text": "Invalid token", "code": 4}),
            None,
        )),
        Some(_) => None,
    }
}

#[allow(
    clippy::too_many_lines,
    reason = "one answer per documented failure, in order"
)]
async fn hec_event(
    State(seen): State<Arc<Mutex<Seen>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = seen.lock().expect("mock state");
    s.requests
        .push((Instant::now(), "/services/collector/event".to_owned()));
    if let Some(r) = hec_auth(&headers) {
        return r;
    }
    let channel = headers
        .get("x-splunk-request-channel")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if !s.ack_disabled {
        let Some(channel) = channel else {
            return answer(
                400,
                &json!({"text": "Data channel is missing", "code": 10}),
                None,
            );
        };
        if uuid::Uuid::parse_str(&channel).is_err() {
            return answer(
                400,
                &json!({"text": "Invalid data channel", "code": 11}),
                None,
            );
        }
        s.channels.push(channel);
    }
    s.bodies.push(body.to_vec());
    match s.faults.pop_front() {
        Some(Fault::Status {
            status,
            body,
            retry_after,
        }) => return answer(status, &body, retry_after),
        Some(Fault::HecInvalidEvent(n)) => {
            return answer(
                400,
                &json!({"text": "Invalid data format", "code": 6, "invalid-event-number": n}),
                None,
            );
        }
        Some(Fault::Pass) | None => {}
    }
    // Event envelopes back to back, not an array: each must be an object with a non-blank event.
    let mut envelopes = Vec::new();
    for (i, item) in serde_json::Deserializer::from_slice(&body)
        .into_iter::<Value>()
        .enumerate()
    {
        let Ok(Value::Object(env)) = item else {
            return answer(
                400,
                &json!({"text": "Invalid data format", "code": 6, "invalid-event-number": i}),
                None,
            );
        };
        match env.get("event") {
            None => {
                return answer(
                    400,
                    &json!({"text": "Event field is required", "code": 12, "invalid-event-number": i}),
                    None,
                );
            }
            Some(Value::String(e)) if e.is_empty() => {
                return answer(
                    400,
                    &json!({"text": "Event field cannot be blank", "code": 13, "invalid-event-number": i}),
                    None,
                );
            }
            Some(_) => {}
        }
        envelopes.push(Value::Object(env));
    }
    if envelopes.is_empty() {
        return answer(400, &json!({"text": "No data", "code": 5}), None);
    }
    for env in envelopes {
        let key = format!(
            "{}:{}",
            env["fields"]["chain_id"].as_str().unwrap_or("?"),
            env["fields"]["seq"].as_str().unwrap_or("?")
        );
        s.stored
            .entry(key)
            .and_modify(|e| e.1 += 1)
            .or_insert((env, 1));
    }
    if s.ack_disabled {
        return answer(200, &json!({"text": "Success", "code": 0}), None);
    }
    let id = s.next_ack;
    s.next_ack += 1;
    let lost = if s.lose_acks > 0 {
        s.lose_acks -= 1;
        true
    } else {
        false
    };
    s.acks.insert(id, (0, lost));
    answer(
        200,
        &json!({"text": "Success", "code": 0, "ackId": id}),
        None,
    )
}

async fn hec_ack(
    State(seen): State<Arc<Mutex<Seen>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = seen.lock().expect("mock state");
    s.requests
        .push((Instant::now(), "/services/collector/ack".to_owned()));
    if let Some(r) = hec_auth(&headers) {
        return r;
    }
    if s.ack_disabled {
        return answer(400, &json!({"text": "ACK is disabled", "code": 14}), None);
    }
    if headers.get("x-splunk-request-channel").is_none() {
        return answer(
            400,
            &json!({"text": "Data channel is missing", "code": 10}),
            None,
        );
    }
    s.ack_polls += 1;
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return answer(
            400,
            &json!({"text": "Invalid data format", "code": 6}),
            None,
        );
    };
    let Some(ids) = req["acks"].as_array() else {
        return answer(
            400,
            &json!({"text": "Invalid data format", "code": 6}),
            None,
        );
    };
    let false_polls = s.ack_false_polls;
    let mut acks = serde_json::Map::new();
    for id in ids {
        let Some(id) = id.as_u64() else {
            return answer(
                400,
                &json!({"text": "Invalid data format", "code": 6}),
                None,
            );
        };
        let done = match s.acks.get_mut(&id) {
            Some((polls, lost)) => {
                if *lost {
                    false
                } else if *polls >= false_polls {
                    true
                } else {
                    *polls += 1;
                    false
                }
            }
            None => false,
        };
        acks.insert(id.to_string(), Value::Bool(done));
    }
    answer(200, &json!({"acks": acks}), None)
}

fn es_auth(s: &Seen, headers: &HeaderMap) -> Option<Response> {
    use base64::Engine as _;
    let given = headers.get("authorization").and_then(|v| v.to_str().ok());
    let want = if let Some(basic) = &s.basic {
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(basic)
        ))
    } else {
        s.authorization.clone()
    };
    match want {
        Some(want) if given != Some(want.as_str()) => Some(answer(
            401,
            &json!({"error": {"type": "security_exception", "reason": "unable to authenticate user"}, "status": 401}),
            None,
        )),
        _ => None,
    }
}

#[allow(
    clippy::too_many_lines,
    reason = "one answer per documented failure, in order"
)]
async fn es_bulk(
    State(seen): State<Arc<Mutex<Seen>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = seen.lock().expect("mock state");
    s.requests.push((Instant::now(), "/_bulk".to_owned()));
    if let Some(r) = es_auth(&s, &headers) {
        return r;
    }
    let ctype = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ctype.starts_with("application/x-ndjson") && !ctype.starts_with("application/json") {
        return answer(
            406,
            &json!({"error": format!("Content-Type header [{ctype}] is not supported"), "status": 406}),
            None,
        );
    }
    s.bodies.push(body.to_vec());
    if let Some(Fault::Status {
        status,
        body,
        retry_after,
    }) = s.faults.pop_front()
    {
        return answer(status, &body, retry_after);
    }
    if !body.ends_with(b"\n") {
        return answer(
            400,
            &json!({"error": {"type": "illegal_argument_exception", "reason": "The bulk request must be terminated by a newline [\\n]"}, "status": 400}),
            None,
        );
    }
    let lines: Vec<&[u8]> = body[..body.len() - 1].split(|b| *b == b'\n').collect();
    if !lines.len().is_multiple_of(2) {
        return answer(
            400,
            &json!({"error": {"type": "illegal_argument_exception", "reason": "Malformed action/metadata line"}, "status": 400}),
            None,
        );
    }
    let mut items = Vec::new();
    let mut errors = false;
    for pair in lines.chunks(2) {
        let Ok(action) = serde_json::from_slice::<Value>(pair[0]) else {
            return answer(
                400,
                &json!({"error": {"type": "x_content_parse_exception", "reason": "Malformed action/metadata line"}, "status": 400}),
                None,
            );
        };
        let Some(meta) = action.get("create") else {
            return answer(
                400,
                &json!({"error": {"type": "illegal_argument_exception", "reason": "expected create"}, "status": 400}),
                None,
            );
        };
        let index = meta["_index"].as_str().unwrap_or("").to_owned();
        let id = meta["_id"].as_str().unwrap_or("").to_owned();
        let fault = s.item_faults.get_mut(&id).and_then(VecDeque::pop_front);
        let (status, error) = match fault {
            Some(429) => (
                429,
                Some(
                    json!({"type": "es_rejected_execution_exception", "reason": "rejected execution of coordinating operation"}),
                ),
            ),
            Some(400) => (
                400,
                Some(
                    json!({"type": "document_parsing_exception", "reason": "[1:42] failed to parse field [latency_ms] of type [long]"}),
                ),
            ),
            Some(other) => (
                other,
                Some(
                    json!({"type": "unavailable_shards_exception", "reason": "primary shard is not active"}),
                ),
            ),
            None => match serde_json::from_slice::<Value>(pair[1]) {
                Err(_) => (
                    400,
                    Some(
                        json!({"type": "document_parsing_exception", "reason": "failed to parse"}),
                    ),
                ),
                Ok(doc) => {
                    if let Some(e) = s.stored.get_mut(&id) {
                        e.1 += 1;
                        (
                            409,
                            Some(
                                json!({"type": "version_conflict_engine_exception", "reason": format!("[{id}]: version conflict, document already exists (current version [1])")}),
                            ),
                        )
                    } else {
                        s.stored.insert(id.clone(), (doc, 1));
                        (201, None)
                    }
                }
            },
        };
        let mut item = json!({"_index": index, "_id": id, "status": status});
        if let Some(error) = error {
            errors = true;
            item["error"] = error;
        } else {
            item["_version"] = json!(1);
            item["result"] = json!("created");
        }
        items.push(json!({ "create": item }));
    }
    answer(
        200,
        &json!({"took": 3, "errors": errors, "items": items}),
        None,
    )
}
