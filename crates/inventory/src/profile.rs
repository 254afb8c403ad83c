//! Detection features of each transaction and of the entities behind it (client address,
//! credential, endpoint, client network), from the transaction and what the inventory learnt
//! of it. Bounded entity tables; evictions counted.

use std::net::IpAddr;

use features::entity::{
    client_network, ip_key, key_hash, Decays, EntityFeatures, EntityKind, EntityTable, Event,
    TableStats,
};

use features::tx::{self, TxFeatures, TxInput};
use http::Transaction;

use crate::Annotations;

/// Entities tracked per kind.
#[derive(Debug, Clone, Copy)]
pub struct ProfileLimits {
    pub clients: usize,
    pub identities: usize,
    pub endpoints: usize,
    pub networks: usize,
    /// Entities idle this long (packet time) are dropped.
    pub idle_ns: u64,
}

impl Default for ProfileLimits {
    fn default() -> Self {
        ProfileLimits {
            clients: 100_000,
            identities: 100_000,
            endpoints: 10_000,
            networks: 20_000,
            idle_ns: 2 * 3600 * 1_000_000_000,
        }
    }
}

/// The features of one transaction, and the keys of the entities it updated (their features
/// are read with [`Profiler::entities`], when a detector needs them: computing them costs more
/// than updating them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profile {
    pub tx: TxFeatures,
    pub now_ns: u64,
    pub client: u64,
    pub network: u64,
    /// The credential's entity (its subject when it names one), when the request carried one.
    pub identity: Option<u64>,
    /// The endpoint's entity, when the request named a known route.
    pub endpoint: Option<u64>,
}

/// The features of each entity of a transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Entities {
    pub client: Option<EntityFeatures>,
    pub network: Option<EntityFeatures>,
    pub identity: Option<EntityFeatures>,
    pub endpoint: Option<EntityFeatures>,
}

/// The features of a transaction that need no history (the endpoint's history, added by
/// [`TxFeatures::with_history`], is zero here); `None` without a request.
pub fn transaction_features(tx: &Transaction) -> Option<TxFeatures> {
    let req = tx.request.as_ref()?;
    let cookies = req
        .head
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"cookie"))
        .map(|(_, v)| cookie_count(v))
        .sum();
    transaction_features_with(tx, cookies)
}

/// The cookies one `Cookie` header value holds (as the `cookies` feature counts them).
pub fn cookie_count(value: &[u8]) -> usize {
    value.split(|&b| b == b';').count()
}

/// [`transaction_features`] of a request whose `Cookie` headers hold `cookies` cookies (for a
/// caller that has walked the headers already).
pub fn transaction_features_with(tx: &Transaction, cookies: usize) -> Option<TxFeatures> {
    let req = tx.request.as_ref()?;
    let resp = tx.response.as_ref();
    let target = req.target();
    let (path, query) = match memchr::memchr(b'?', target) {
        Some(q) => (&target[..q], &target[q + 1..]),
        None => (target, &[][..]),
    };
    Some(tx::extract(&TxInput {
        method: req.method(),
        path,
        query,
        request_headers: req.head.fields.len(),
        request_head_bytes: req.body.wire_len.saturating_sub(req.body.len),
        request_body: req.body.content(),
        request_body_len: req.body.len,
        response_body_len: resp.map_or(0, |r| r.body.len),
        status: resp.map(|r| r.status).filter(|&s| s != 0),
        latency_ns: resp.map(|r| r.end.since(req.start)),
        body_depth: 0,
        cookies,
        unseen_params: 0,
        unseen_fields: 0,
    }))
}

pub struct Profiler {
    limits: ProfileLimits,
    clients: EntityTable,
    identities: EntityTable,
    endpoints: EntityTable,
    networks: EntityTable,
    /// Packet time of the last expiry sweep.
    swept_ns: u64,
}

impl std::fmt::Debug for Profiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profiler")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// How often (packet time) idle entities are swept.
const SWEEP_NS: u64 = 60 * 1_000_000_000;

impl Profiler {
    pub fn new(limits: ProfileLimits) -> Self {
        Profiler {
            limits,
            clients: EntityTable::new(EntityKind::ClientIp, limits.clients),
            identities: EntityTable::new(EntityKind::Identity, limits.identities),
            endpoints: EntityTable::new(EntityKind::Endpoint, limits.endpoints),
            networks: EntityTable::new(EntityKind::ClientNetwork, limits.networks),
            swept_ns: 0,
        }
    }

    /// Size and evictions of each entity table.
    pub fn stats(&self) -> [(EntityKind, TableStats); 4] {
        [
            (EntityKind::ClientIp, self.clients.stats()),
            (EntityKind::Identity, self.identities.stats()),
            (EntityKind::Endpoint, self.endpoints.stats()),
            (EntityKind::ClientNetwork, self.networks.stats()),
        ]
    }

    pub fn observe(
        &mut self,
        client: IpAddr,
        tx: &Transaction,
        notes: &Annotations,
    ) -> Option<Profile> {
        let mut profile = Profile::default();
        self.observe_into(client, tx, notes, None, &mut profile)
            .then_some(profile)
    }

    /// [`Profiler::observe`] into `out` (false, and `out` untouched, for a transaction with no
    /// request): a batch reuses one profile instead of moving a new one per transaction.
    /// `prepared` is [`transaction_features`] of `tx`, when a flow worker computed them.
    pub fn observe_into(
        &mut self,
        client: IpAddr,
        tx: &Transaction,
        notes: &Annotations,
        prepared: Option<&TxFeatures>,
        out: &mut Profile,
    ) -> bool {
        let Some(req) = tx.request.as_ref() else {
            return false;
        };
        let resp = tx.response.as_ref();
        let target = req.target();
        let status = resp.map(|r| r.status).filter(|&s| s != 0);
        // Written in place: the features are 184 bytes, and a copy through the stack per
        // transaction showed.
        match prepared {
            Some(f) => out.tx = *f,
            None => match transaction_features(tx) {
                Some(f) => out.tx = f,
                None => return false,
            },
        }
        out.tx
            .set_history(notes.body_depth, notes.unseen_params, notes.unseen_fields);

        let now_ns = tx.start().as_nanos();
        let event = Event {
            now_ns,
            endpoint: notes.route_key,
            object: notes
                .object_id
                .clone()
                .and_then(|r| target.get(r))
                .map(key_hash),
            error: status.is_some_and(|s| s >= 400),
            auth_failure: matches!(status, Some(401 | 403)),
            bytes_out: resp.map_or(0, |r| r.body.len),
        };
        let mut decays = Decays::default();
        let client_key = ip_key(client);
        self.clients.update_with(client_key, &event, &mut decays);
        let network = ip_key(client_network(client));
        self.networks.update_with(network, &event, &mut decays);
        let identity = notes.credentials.first().map(|c| {
            let id = c.subject_hash.unwrap_or(c.secret);
            let key = u64::from_le_bytes(id.0[..8].try_into().unwrap_or_default());
            self.identities.update_with(key, &event, &mut decays);
            key
        });
        let endpoint = (event.endpoint != 0).then(|| {
            // An endpoint's distinct endpoints is always one: skip counting it.
            let own = Event {
                endpoint: 0,
                ..event
            };
            self.endpoints
                .update_with(event.endpoint, &own, &mut decays);
            event.endpoint
        });

        if now_ns.saturating_sub(self.swept_ns) >= SWEEP_NS {
            self.swept_ns = now_ns;
            let idle = self.limits.idle_ns;
            for table in [
                &mut self.clients,
                &mut self.identities,
                &mut self.endpoints,
                &mut self.networks,
            ] {
                table.expire(now_ns, idle);
            }
        }
        out.now_ns = now_ns;
        out.client = client_key;
        out.network = network;
        out.identity = identity;
        out.endpoint = endpoint;
        true
    }

    /// The features of a transaction's client at its time.
    pub fn client(&self, p: &Profile) -> Option<EntityFeatures> {
        self.clients.features(p.client, p.now_ns)
    }

    /// The features of a transaction's endpoint at its time.
    pub fn endpoint(&self, p: &Profile) -> Option<EntityFeatures> {
        p.endpoint
            .and_then(|k| self.endpoints.features(k, p.now_ns))
    }

    /// The features of a transaction's entities at its time (`None` for one since evicted).
    pub fn entities(&self, p: &Profile) -> Entities {
        Entities {
            client: self.clients.features(p.client, p.now_ns),
            network: self.networks.features(p.network, p.now_ns),
            identity: p
                .identity
                .and_then(|k| self.identities.features(k, p.now_ns)),
            endpoint: p
                .endpoint
                .and_then(|k| self.endpoints.features(k, p.now_ns)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use features::entity::EntityFeature;
    use features::tx::TxFeature;

    fn tx(request: &[u8], response: &[u8], at_secs: u64) -> Transaction {
        let cfg = http::HttpConfig::default();
        let mut c = http::Connection::new();
        let mut stats = http::HttpStats::default();
        let mut out = Vec::new();
        let t = wire::Timestamp::from_secs(at_secs);
        c.data(
            &cfg,
            flow::Direction::Orig,
            t,
            request,
            &mut stats,
            &mut out,
        );
        c.data(
            &cfg,
            flow::Direction::Resp,
            t,
            response,
            &mut stats,
            &mut out,
        );
        c.close(&cfg, t, &mut stats, &mut out);
        out.remove(0)
    }

    #[test]
    fn entities_count_requests_distinct_objects_and_errors() {
        let mut p = Profiler::new(ProfileLimits::default());
        let client: IpAddr = "10.1.2.3".parse().unwrap();
        let mut last = None;
        for i in 0..50u64 {
            let t = tx(
                format!("GET /users/{i}?q=%27or%201=1 HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes(),
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
                1_700_000_000 + i,
            );
            let target = t.request.as_ref().unwrap().target();
            let start = b"/users/".len();
            let end = target.iter().position(|&b| b == b'?').unwrap();
            let notes = Annotations {
                route: Some("GET /users/{id}".into()),
                route_key: key_hash(b"GET /users/{id}"),
                object_id: Some(start..end),
                ..Default::default()
            };
            last = p.observe(client, &t, &notes);
        }
        let profile = last.expect("a request");
        assert_eq!(profile.tx[TxFeature::StatusClass], 4.0);
        assert!(profile.tx[TxFeature::PercentEncoded] > 0.0);
        assert!(profile.identity.is_none());
        let e = p.entities(&profile);
        let client = e.client.expect("client tracked");
        let objects = client[EntityFeature::DistinctObjects1h];
        assert!((40.0..60.0).contains(&objects), "{objects}");
        assert_eq!(client[EntityFeature::DistinctEndpoints1h].round(), 1.0);
        assert!(client[EntityFeature::ErrorRatio1h] > 0.99);
        // The /24 of the client is one network entity with the same traffic.
        assert!(e.network.is_some());
        let stats = p.stats();
        assert_eq!(stats[0].1.entities, 1);
        assert_eq!(stats[2].1.entities, 1);
    }

    #[test]
    fn entity_tables_stay_bounded_and_count_evictions() {
        let limits = ProfileLimits {
            clients: 8,
            networks: 4,
            ..Default::default()
        };
        let mut p = Profiler::new(limits);
        let t = tx(
            b"GET / HTTP/1.1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            1,
        );
        for i in 0..100u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + (i << 8)));
            p.observe(ip, &t, &Annotations::default());
        }
        let stats = p.stats();
        assert_eq!(stats[0].1.entities, 8);
        assert_eq!(stats[0].1.evicted, 92);
        assert_eq!(stats[3].1.entities, 4);
        assert_eq!(stats[3].1.evicted, 96);
    }
}
