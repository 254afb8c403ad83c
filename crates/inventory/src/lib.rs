//! The API inventory (issue 4): what endpoints exist, what they take and return, who calls
//! them, and how that compares with a reference spec. Deterministic: packet time, no I/O.
//!
//! [`catalogue`] templates paths per host and method (learnt, or by operator rule);
//! [`Inventory`] feeds each transaction into per-[`endpoint`] tables: parameters, [`schema`]s
//! of JSON bodies, [`sketch`]es of sizes and latency, auth schemes, sensitive data, clients;
//! [`openapi`] renders it as OpenAPI 3.1, [`spec`] compares it with a reference spec, and
//! [`alerts`] raises shadow-endpoint alerts. [`profile`] turns each transaction and its
//! entities into detection features. [`Analyzer`] runs both per transaction.

pub mod alerts;
pub mod catalogue;
pub mod endpoint;
pub mod json;
mod observe;
pub mod openapi;
pub mod profile;
pub mod schema;
pub mod sketch;
pub mod spec;

use features::auth::CredentialHeader;
use observe::Ahead;

pub use observe::{Annotations, EndpointKey, Inventory, InventoryConfig, InventoryStats};

/// The analysis stage's per-transaction work: the inventory, then detection features.
#[derive(Debug)]
pub struct Analyzer {
    pub inventory: Inventory,
    pub profiler: profile::Profiler,
}

impl Analyzer {
    pub fn new(cfg: InventoryConfig, limits: profile::ProfileLimits) -> Self {
        Analyzer {
            inventory: Inventory::new(cfg),
            profiler: profile::Profiler::new(limits),
        }
    }

    /// Learns from one transaction; its annotations (for the record) and features.
    pub fn observe(
        &mut self,
        flow: &engine::FlowIds,
        tx: &http::Transaction,
    ) -> Option<(Annotations, profile::Profile)> {
        let (mut notes, mut profile) = (Annotations::default(), profile::Profile::default());
        self.observe_into(flow, tx, None, None, &mut notes, &mut profile)
            .then_some((notes, profile))
    }

    /// [`Analyzer::observe`] of each record in turn, handing its index in the batch, the record,
    /// what was learnt of it and the profiler (for entity features) to `then`. Each
    /// transaction's memory (written by a worker on another core) and its route-cache entry are
    /// random reads: started a few transactions ahead, their misses overlap instead of stalling
    /// one after another.
    pub fn observe_batch(
        &mut self,
        batch: &[engine::TxRecord],
        mut then: impl FnMut(
            usize,
            &engine::TxRecord,
            &Annotations,
            &profile::Profile,
            &profile::Profiler,
        ),
    ) {
        // One of each, rewritten in place per transaction: moving a fresh one out of every
        // call was a sixth of the stage's copying.
        let (mut notes, mut profile) = (Annotations::default(), profile::Profile::default());
        // Three steps, each reading what the one before loaded: the record, then its heads
        // (behind pointers in the record), then the route-cache entry (a hash of the heads).
        const AHEAD: usize = 4;
        let mut probes: [Option<Ahead<'_>>; AHEAD] = [None; AHEAD];
        for rec in batch.iter().take(3 * AHEAD) {
            prefetch_record(rec);
        }
        for rec in batch.iter().take(2 * AHEAD) {
            prefetch_transaction(&rec.tx);
        }
        for (i, rec) in batch.iter().take(AHEAD).enumerate() {
            probes[i] = self
                .inventory
                .prefetch(&rec.flow, &rec.tx, rec.prepared.as_ref());
        }
        for (i, rec) in batch.iter().enumerate() {
            if let Some(later) = batch.get(i + 3 * AHEAD) {
                prefetch_record(later);
            }
            if let Some(later) = batch.get(i + 2 * AHEAD) {
                prefetch_transaction(&later.tx);
            }
            let ahead = probes[i % AHEAD].take();
            if let Some(later) = batch.get(i + AHEAD) {
                probes[i % AHEAD] =
                    self.inventory
                        .prefetch(&later.flow, &later.tx, later.prepared.as_ref());
            }
            let prepared = rec.prepared.as_ref().map(|p| &p.features);
            if self.observe_into(
                &rec.flow,
                &rec.tx,
                ahead,
                prepared,
                &mut notes,
                &mut profile,
            ) {
                then(i, rec, &notes, &profile, &self.profiler);
            }
        }
    }

    /// [`Analyzer::observe`] with what [`Inventory::prefetch`] made for `tx`.
    fn observe_into<'t>(
        &mut self,
        flow: &engine::FlowIds,
        tx: &'t http::Transaction,
        ahead: Option<Ahead<'t>>,
        prepared: Option<&features::tx::TxFeatures>,
        notes: &mut Annotations,
        profile: &mut profile::Profile,
    ) -> bool {
        self.inventory.observe_into(flow, tx, ahead, notes)
            && self
                .profiler
                .observe_into(flow.client.ip(), tx, notes, prepared, profile)
    }
}

/// A flow worker's share of the analysis ([`Analyzer::preparer`]): the part of each
/// transaction's that needs no table of the analysis stage's, done ahead of it and in parallel
/// with the other workers.
#[derive(Debug, Clone)]
pub struct Preparer {
    hinter: features::auth::Hinter,
    /// Scratch for the route-cache key.
    route_key: Vec<u8>,
}

impl Analyzer {
    /// A [`Preparer`] whose records this analyzer takes (its credential fingerprints are this
    /// analyzer's; another's hints are ignored).
    pub fn preparer(&self) -> Preparer {
        Preparer {
            hinter: self.inventory.hinter(),
            route_key: Vec::new(),
        }
    }
}

impl Preparer {
    /// `tx`'s features but for the endpoint's history, the route-cache hash of its request,
    /// and where its credentials are; `None` without a request.
    pub fn prepare(
        &mut self,
        flow: &engine::FlowIds,
        tx: &http::Transaction,
    ) -> Option<engine::Prepared> {
        let req = tx.request.as_ref()?;
        let target = observe::split_target(req.target());
        // One walk over the headers for the credentials, the Host and the cookies.
        let (mut host, mut cookies) = (None, 0);
        let auth = self
            .hinter
            .hint_visiting(req.head.iter(), target.query, |name, value, kind| {
                if kind == Some(CredentialHeader::Cookie) {
                    cookies += profile::cookie_count(value);
                } else if host.is_none() && name.eq_ignore_ascii_case(b"host") {
                    host = Some(value);
                }
            });
        let method = observe::method_name(req.method());
        Some(engine::Prepared {
            features: profile::transaction_features_with(tx, cookies)?,
            route_hash: observe::request_route_hash(
                &mut self.route_key,
                host.or(target.authority),
                flow.server.ip(),
                method,
                target.path,
            ),
            auth,
            target: target.cuts(req.target()),
        })
    }
}

/// Starts loading a record itself.
fn prefetch_record(rec: &engine::TxRecord) {
    features::prefetch::read_bytes(
        (rec as *const engine::TxRecord).cast(),
        std::mem::size_of::<engine::TxRecord>(),
    );
}

/// Starts loading the parts of `tx` the analysis reads first (heads and their field index):
/// they were written on another core. Called further ahead than [`Inventory::prefetch`], which
/// reads them.
fn prefetch_transaction(tx: &http::Transaction) {
    use features::prefetch::{read, read_slice};
    if let Some(r) = &tx.request {
        read_slice(&r.head.raw, 512);
        read_slice(&r.head.fields, 256);
    }
    if let Some(r) = &tx.response {
        read(r.head.raw.as_ptr());
        read(r.head.fields.as_ptr());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn record(
        flow: &Arc<engine::FlowIds>,
        request: &str,
        response: &str,
        at_ms: u64,
    ) -> engine::TxRecord {
        let cfg = http::HttpConfig::default();
        let mut c = http::Connection::new();
        let mut stats = http::HttpStats::default();
        let mut out = Vec::new();
        let t = wire::Timestamp::from_secs_nanos(
            1_700_000_000 + at_ms / 1000,
            (at_ms % 1000) as u32 * 1_000_000,
        );
        c.data(
            &cfg,
            flow::Direction::Orig,
            t,
            request.as_bytes(),
            &mut stats,
            &mut out,
        );
        c.data(
            &cfg,
            flow::Direction::Resp,
            t,
            response.as_bytes(),
            &mut stats,
            &mut out,
        );
        c.close(&cfg, t, &mut stats, &mut out);
        engine::TxRecord {
            flow: flow.clone(),
            tx: out.remove(0),
            order: engine::Order {
                at: at_ms,
                flow: 0,
                sub: 0,
            },
            origin: 0,
            notes: None,
            prepared: None,
        }
    }

    /// 10.0.0.1:4000 → 10.9.9.9:80.
    fn one_flow() -> Arc<engine::FlowIds> {
        Arc::new(engine::FlowIds {
            uid: "C1".into(),
            community_id: String::new(),
            client: "10.0.0.1:4000".parse().unwrap(),
            server: "10.9.9.9:80".parse().unwrap(),
            vlan: None,
            encoded: Default::default(),
        })
    }

    /// One endpoint called `calls` times with the same JSON answer, which gains a field from
    /// call `extra_from` on: the response bodies inspected, and whether the field was learnt.
    fn inspections(max_every: u64, calls: u64, extra_from: Option<u64>) -> (u64, bool) {
        let flow = one_flow();
        let cfg = InventoryConfig {
            bodies_in_full: 4,
            body_sample_every: 8,
            body_sample_max_every: max_every,
            ..InventoryConfig::default()
        };
        let mut analyzer = Analyzer::new(cfg, profile::ProfileLimits::default());
        for call in 1..=calls {
            let body = if extra_from.is_some_and(|from| call >= from) {
                r#"{"id":7,"name":"x","extra":true}"#
            } else {
                r#"{"id":7,"name":"x"}"#
            };
            let r = record(
                &flow,
                "GET /api/items/7 HTTP/1.1\r\nHost: a.example\r\n\r\n",
                &format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                ),
                call * 10,
            );
            assert!(analyzer.observe(&r.flow, &r.tx).is_some());
        }
        let endpoints = analyzer.inventory.endpoints();
        assert_eq!(endpoints.len(), 1);
        let response = &endpoints[0].1.response;
        let learnt = response.schema.fields().iter().any(|f| f.path == "extra");
        (response.inspected, learnt)
    }

    #[test]
    fn with_the_cap_at_the_base_rate_the_sample_is_fixed() {
        // Calls 1-4, then every multiple of 8 up to 300.
        assert_eq!(inspections(8, 300, None), (4 + 37, false));
    }

    #[test]
    fn sampling_backs_off_while_nothing_is_new_and_returns_when_something_is() {
        // Settled: 8, 16, 32, 64, then every 64th call (the cap).
        assert_eq!(inspections(64, 300, None), (4 + 7, false));
        // A field from call 100 on is seen at call 128; the rate starts over from one in 8
        // (136, 144, 160, 192, then every 64th).
        assert_eq!(inspections(64, 300, Some(100)), (4 + 5 + 4 + 1, true));
        // A fixed one in 8 costs far more for the same finding.
        assert_eq!(inspections(8, 300, Some(100)), (4 + 37, true));
    }

    #[test]
    fn a_batch_with_loads_started_ahead_learns_what_one_by_one_learns() {
        let flows: Vec<Arc<engine::FlowIds>> = (0..3)
            .map(|i| {
                Arc::new(engine::FlowIds {
                    uid: format!("C{i}"),
                    community_id: String::new(),
                    client: format!("10.0.0.{i}:4000").parse().unwrap(),
                    server: "10.9.9.9:80".parse().unwrap(),
                    vlan: None,
                    encoded: Default::default(),
                })
            })
            .collect();
        // Paths turn into templates part-way (the catalogue's generation moves between a
        // probe and its use), hosts differ, one request has no Host, tokens rotate.
        let records: Vec<engine::TxRecord> = (0..400u64)
            .map(|i| {
                let host = match i % 5 {
                    0 => String::new(),
                    1 => "Host: b.example\r\n".into(),
                    _ => "Host: a.example\r\n".into(),
                };
                let path = match i % 4 {
                    0 => format!("/api/users/{}", 1000 + i * 7),
                    1 => format!("/api/orders/{}/items?page={}", i * 3, i % 9),
                    2 => "/health".into(),
                    _ => format!("/api/products/SKU-{:05}", i * 11),
                };
                let status = if i % 13 == 0 { "404 Not Found" } else { "200 OK" };
                let body = format!("{{\"id\":{i},\"email\":\"u{i}@example.com\"}}");
                let request = if i % 6 == 5 {
                    let sent = format!("{{\"name\":\"n{i}\",\"tags\":[\"a\",{{\"x\":{i}}}]}}");
                    format!(
                        "POST /api/users?src=web%20app&n={i} HTTP/1.1\r\n{host}Cookie: sid=s{}; theme=dark\r\nAuthorization: Bearer tok{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{sent}",
                        i % 4,
                        i / 10,
                        sent.len()
                    )
                } else {
                    format!(
                        "GET {path} HTTP/1.1\r\n{host}Authorization: Bearer tok{}\r\n\r\n",
                        i / 10
                    )
                };
                record(
                    &flows[(i % 3) as usize],
                    &request,
                    &format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    ),
                    i * 250,
                )
            })
            .collect();
        let mut one = Analyzer::new(
            InventoryConfig::default(),
            profile::ProfileLimits::default(),
        );
        let expected: Vec<_> = records
            .iter()
            .map(|r| {
                one.observe(&r.flow, &r.tx)
                    .map(|(a, p)| (a.notes(), p, a.object_id, a.route))
            })
            .collect();
        let mut batched = Analyzer::new(
            InventoryConfig::default(),
            profile::ProfileLimits::default(),
        );
        let mut got = vec![None; records.len()];
        let mut start = 0;
        for size in [1usize, 2, 7, 50, 3, 200, 137].iter().cycle() {
            if start >= records.len() {
                break;
            }
            let end = (start + size).min(records.len());
            let chunk = &records[start..end];
            let mut at = start;
            batched.observe_batch(chunk, |i, _, a, p, _| {
                assert_eq!(start + i, at, "in order");
                got[at] = Some((a.notes(), p.clone(), a.object_id.clone(), a.route.clone()));
                at += 1;
            });
            assert_eq!(at, end, "every record of the chunk comes back, in order");
            start = end;
        }
        assert_eq!(got, expected);
        assert!(expected.iter().filter(|e| e.is_some()).count() == records.len());

        // As in the pipeline: a worker prepared each record, with other routes' hashes in
        // its scratch key before.
        let mut from_workers = Analyzer::new(
            InventoryConfig::default(),
            profile::ProfileLimits::default(),
        );
        let mut preparer = from_workers.preparer();
        let prepared_records: Vec<engine::TxRecord> = records
            .iter()
            .cloned()
            .map(|mut r| {
                r.prepared = preparer.prepare(&r.flow, &r.tx);
                assert!(r.prepared.is_some(), "every record has a request");
                r
            })
            .collect();
        let mut got = Vec::new();
        for chunk in prepared_records.chunks(37) {
            from_workers.observe_batch(chunk, |_, _, a, p, _| {
                got.push(Some((
                    a.notes(),
                    p.clone(),
                    a.object_id.clone(),
                    a.route.clone(),
                )));
            });
        }
        assert_eq!(got, expected, "prepared by a worker or not, the same");
        let templated = expected
            .iter()
            .flatten()
            .filter(|e| e.3.as_deref().is_some_and(|r| r.contains('{')))
            .count();
        assert!(
            templated > 100,
            "templates were learnt on the way: {templated}"
        );
        assert_eq!(
            one.inventory.endpoint_count(),
            batched.inventory.endpoint_count()
        );
    }

    #[test]
    fn a_worker_walks_the_headers_once_to_the_same_host_cookies_and_hint() {
        let flow = one_flow();
        let heads = [
            "GET /a?x=1 HTTP/1.1\r\n\r\n",
            "GET /a HTTP/1.1\r\nHost: h.example\r\n\r\n",
            "GET /a HTTP/1.1\r\nAccept: */*\r\nHOST: Last.example:8080\r\n\r\n",
            "GET /a HTTP/1.1\r\nHost: first\r\nHost: second\r\n\r\n",
            "GET /a HTTP/1.1\r\nCookie: a=1; b=2\r\nHost: after-cookie\r\ncookie: c=3\r\n\r\n",
            "GET /a HTTP/1.1\r\nCOOKIE: ;;\r\nAuthorization: Bearer t\r\n\r\n",
            "GET http://authority.example/p?q HTTP/1.1\r\n\r\n",
            "GET http://authority.example/p HTTP/1.1\r\nHost: header.example\r\n\r\n",
            "GET /k?api_key=s HTTP/1.1\r\nHost: h\r\nX-API-Key: k\r\n\r\n",
            "GET /a HTTP/1.1\r\nAuthorization: Bearer t\r\nAuthorization: Basic dTpw\r\nHost: h\r\n\r\n",
        ];
        let odd = InventoryConfig {
            auth: features::auth::AuthConfig {
                api_key_headers: vec!["host".into()],
                ..Default::default()
            },
            ..InventoryConfig::default()
        };
        for cfg in [InventoryConfig::default(), odd] {
            let analyzer = Analyzer::new(cfg.clone(), profile::ProfileLimits::default());
            let mut preparer = analyzer.preparer();
            let hinter = analyzer.inventory.hinter();
            for head in heads {
                let r = record(&flow, head, "HTTP/1.1 204 No Content\r\n\r\n", 5);
                let req = r.tx.request.as_ref().unwrap();
                let prepared = preparer.prepare(&r.flow, &r.tx).unwrap();
                let target = observe::split_target(req.target());
                let host = req.head.get("host").or(target.authority);
                let method = observe::method_name(req.method());
                let mut key = Vec::new();
                let hash = observe::request_route_hash(
                    &mut key,
                    host,
                    flow.server.ip(),
                    method,
                    target.path,
                );
                assert_eq!(prepared.route_hash, hash, "{head:?}");
                assert_eq!(
                    Some(prepared.features),
                    profile::transaction_features(&r.tx),
                    "{head:?}"
                );
                assert_eq!(
                    prepared.auth,
                    hinter.hint(req.head.iter(), target.query),
                    "{head:?}"
                );
            }
        }
    }
}
