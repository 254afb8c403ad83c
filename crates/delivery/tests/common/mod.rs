//! Test receivers on 127.0.0.1: an HTTP server with Splunk HEC (token, channel, indexer
//! acks), Elasticsearch `_bulk` (`create`, 409 on a duplicate `_id`, per-item 429 on demand)
//! and webhook semantics; outages and error statuses on demand.
#![allow(dead_code)]

pub mod kafka;
pub mod rsyslog;

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

pub const TOKEN: &str = "test-token";

#[derive(Default)]
pub struct State {
    /// Every document or event received and accepted, in order (duplicates included).
    pub received: Vec<String>,
    /// `_bulk`: ids stored (a second `create` is a 409).
    pub stored: BTreeSet<String>,
    /// Answer every request with this status.
    pub status: Option<u16>,
    /// Answer 413 to a request whose body is longer than this.
    pub max_body: Option<usize>,
    /// `_bulk`: answer 429 for an item the first time its id is seen, when the id ends in
    /// one of these hex digits.
    pub flaky_suffixes: Vec<char>,
    flaky_seen: BTreeSet<String>,
    /// `_bulk`: answer 400 (mapper_parsing_exception) for documents whose detector id is this.
    pub reject_detector: Option<String>,
    /// HEC acks: ack id → polls left before it is reported indexed.
    acks: BTreeMap<u64, u32>,
    next_ack: u64,
    /// HEC acks: polls answered `false` before `true`.
    pub ack_delay_polls: u32,
    /// Delay before each answer.
    pub delay: Duration,
    pub requests: u64,
    pub channels: BTreeSet<String>,
    /// Bodies that were not what the protocol says (array instead of concatenated objects).
    pub malformed: u64,
}

pub struct Receiver {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    /// Listens on 127.0.0.1:`port` (0: any free port) with fresh state.
    pub fn start(port: u16) -> Receiver {
        Receiver::start_with(port, Arc::new(Mutex::new(State::default())))
    }

    /// Listens with the given state (a restart after an outage keeps what was received).
    pub fn start_with(port: u16, state: Arc<Mutex<State>>) -> Receiver {
        let port = if port == 0 { free_port() } else { port };
        let std_listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
                let mut conns = tokio::task::JoinSet::new();
                loop {
                    tokio::select! {
                        _ = &mut rx => break,
                        acc = listener.accept() => {
                            let Ok((stream, _)) = acc else { continue };
                            let st = st.clone();
                            conns.spawn(async move {
                                let svc = hyper::service::service_fn(move |req| handle(st.clone(), req));
                                let _ = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(TokioIo::new(stream), svc)
                                    .await;
                            });
                        }
                    }
                }
                conns.abort_all();
            });
        });
        Receiver {
            addr,
            state,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Closes the listener and every connection (an outage).
    pub fn stop(mut self) -> Arc<Mutex<State>> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.state.clone()
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    pub fn received(&self) -> Vec<String> {
        self.with(|s| s.received.clone())
    }

    /// Waits until `n` distinct ids arrived or `limit` passes; the distinct count.
    pub fn wait_distinct(&self, n: usize, limit: Duration) -> usize {
        let end = Instant::now() + limit;
        loop {
            let d = self.with(|s| s.received.iter().collect::<BTreeSet<_>>().len());
            if d >= n || Instant::now() > end {
                return d;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn reply(status: u16, body: Value) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap())
}

async fn handle(
    st: Arc<Mutex<State>>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let channel = req
        .headers()
        .get("x-splunk-request-channel")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return reply(400, json!({"error": "body"})),
    };
    let (delay, forced) = {
        let mut s = st.lock().unwrap();
        s.requests += 1;
        let too_large = s.max_body.is_some_and(|max| body.len() > max);
        (s.delay, if too_large { Some(413) } else { s.status })
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some(code) = forced {
        return reply(code, json!({"error": "on demand"}));
    }
    let mut s = st.lock().unwrap();
    match path.as_str() {
        "/services/collector/event" => {
            if auth != format!("Splunk {TOKEN}") {
                return reply(401, json!({"text": "Invalid token", "code": 4}));
            }
            if let Some(c) = channel {
                s.channels.insert(c);
            }
            // Concatenated JSON objects, not an array.
            let mut ids = Vec::new();
            for v in serde_json::Deserializer::from_slice(&body).into_iter::<Value>() {
                match v {
                    Ok(Value::Object(o)) if o.contains_key("event") => {
                        let id = o["fields"]["alert_id"].as_str().unwrap_or("").to_string();
                        ids.push(id);
                    }
                    _ => {
                        s.malformed += 1;
                        return reply(400, json!({"text": "Invalid data format", "code": 6}));
                    }
                }
            }
            s.received.extend(ids);
            let id = s.next_ack;
            s.next_ack += 1;
            let polls = s.ack_delay_polls;
            s.acks.insert(id, polls);
            reply(200, json!({"text": "Success", "code": 0, "ackId": id}))
        }
        "/services/collector/ack" => {
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let mut out = serde_json::Map::new();
            for id in v["acks"].as_array().cloned().unwrap_or_default() {
                let id = id.as_u64().unwrap_or(u64::MAX);
                let done = match s.acks.get_mut(&id) {
                    Some(0) => true,
                    Some(n) => {
                        *n -= 1;
                        false
                    }
                    None => false,
                };
                out.insert(id.to_string(), Value::Bool(done));
            }
            reply(200, json!({ "acks": out }))
        }
        "/_bulk" => {
            let text = String::from_utf8_lossy(&body).to_string();
            let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
            if !lines.len().is_multiple_of(2) {
                s.malformed += 1;
                return reply(400, json!({"error": "odd line count"}));
            }
            let mut items = Vec::new();
            let mut errors = false;
            for pair in lines.chunks(2) {
                let action: Value = serde_json::from_str(pair[0]).unwrap_or(Value::Null);
                let id = action["create"]["_id"].as_str().unwrap_or("").to_string();
                let doc: Value = serde_json::from_str(pair[1]).unwrap_or(Value::Null);
                let refused = s.reject_detector.is_some()
                    && doc["detector"]["id"].as_str() == s.reject_detector.as_deref();
                let status = if id.is_empty() || !doc.is_object() || refused {
                    400
                } else if s.stored.contains(&id) {
                    409
                } else if id
                    .chars()
                    .last()
                    .is_some_and(|c| s.flaky_suffixes.contains(&c))
                    && s.flaky_seen.insert(id.clone())
                {
                    429
                } else {
                    s.stored.insert(id.clone());
                    s.received.push(id.clone());
                    201
                };
                if status >= 300 {
                    errors = true;
                }
                let err = match status {
                    400 => json!({"type": "mapper_parsing_exception", "reason": "failed to parse"}),
                    409 => {
                        json!({"type": "version_conflict_engine_exception", "reason": "document already exists"})
                    }
                    429 => {
                        json!({"type": "es_rejected_execution_exception", "reason": "queue full"})
                    }
                    _ => Value::Null,
                };
                let mut item =
                    json!({"_index": action["create"]["_index"], "_id": id, "status": status});
                if !err.is_null() {
                    item["error"] = err;
                }
                items.push(json!({ "create": item }));
            }
            reply(200, json!({"took": 1, "errors": errors, "items": items}))
        }
        "/hook" => match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Array(a)) => {
                for v in a {
                    let id = v["alert_id"].as_str().unwrap_or("").to_string();
                    s.received.push(id);
                }
                reply(204, Value::Null)
            }
            _ => {
                s.malformed += 1;
                reply(400, json!({"error": "expected an array"}))
            }
        },
        _ => reply(404, json!({"error": "no such path"})),
    }
}

/// A port nothing listens on (bound then released), never the same twice in this test
/// process: tests run in parallel, and a port one test expects to be down must not become
/// another test's receiver.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        if GIVEN.lock().unwrap().insert(port) {
            return port;
        }
    }
}

pub fn ctx() -> sinks::siem::EncodeContext {
    sinks::siem::EncodeContext::new("test-host", "test-sensor")
}

/// Waits until `f` holds or `limit` passes; whether it held.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}
