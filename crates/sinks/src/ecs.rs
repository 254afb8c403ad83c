//! The transaction record (RECORDS.md §1): Elastic Common Schema names, one JSON object per
//! line. Field names are a public interface: change them only with a record version bump.

use std::io::Write as _;

use engine::{FlowIds, TxRecord};
use http::{Head, Request, Transaction};

use crate::json::{self, Obj};
use crate::time::rfc3339_micros;

/// Host and port a request was addressed to: the Host header, else an absolute-form target.
fn authority(req: &Request) -> Option<(&[u8], Option<u16>)> {
    let raw = match req.head.get("host") {
        Some(h) if !h.is_empty() => h,
        _ => {
            let t = req.target();
            let rest = t
                .iter()
                .position(|&b| b == b':')
                .filter(|&p| t[p..].starts_with(b"://"))
                .map(|p| &t[p + 3..])?;
            let end = rest
                .iter()
                .position(|&b| b == b'/' || b == b'?')
                .unwrap_or(rest.len());
            &rest[..end]
        }
    };
    Some(split_host_port(raw))
}

/// Host and port of a Host header value (`h`, `h:p`, `[v6]:p`); a bare IPv6 has no port.
pub fn split_host_port(raw: &[u8]) -> (&[u8], Option<u16>) {
    if let Some(rest) = raw.strip_prefix(b"[") {
        if let Some(end) = rest.iter().position(|&b| b == b']') {
            let port = rest[end + 1..].strip_prefix(b":").and_then(parse_port);
            return (&rest[..end], port);
        }
    }
    match raw.iter().rposition(|&b| b == b':') {
        Some(p) if raw.iter().filter(|&&b| b == b':').count() == 1 => {
            (&raw[..p], parse_port(&raw[p + 1..]))
        }
        _ => (raw, None),
    }
}

fn parse_port(b: &[u8]) -> Option<u16> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// Path and query of a request target (origin- or absolute-form).
fn path_query(target: &[u8]) -> (Option<&[u8]>, Option<&[u8]>) {
    let mut t = target;
    if let Some(p) = t.windows(3).position(|w| w == b"://") {
        if t[..p].iter().all(|b| b.is_ascii_alphabetic()) {
            let after = &t[p + 3..];
            t = match after.iter().position(|&b| b == b'/' || b == b'?') {
                Some(s) => &after[s..],
                None => &[],
            };
        }
    }
    if !t.starts_with(b"/") && !t.starts_with(b"?") {
        return (None, None);
    }
    match t.iter().position(|&b| b == b'?') {
        Some(q) => (Some(&t[..q]), Some(&t[q + 1..])),
        None => (Some(t), None),
    }
}

fn mime(head: &Head) -> Option<&[u8]> {
    let ct = head.get("content-type")?;
    let end = ct.iter().position(|&b| b == b';').unwrap_or(ct.len());
    let m = ct[..end].trim_ascii();
    (!m.is_empty()).then_some(m)
}

fn ip(out: &mut Vec<u8>, addr: std::net::IpAddr) {
    use std::io::Write;
    out.push(b'"');
    let _ = write!(out, "{addr}");
    out.push(b'"');
}

/// The members that are the same for every transaction of a flow, encoded once per flow.
fn flow_members(flow: &FlowIds) -> Box<[u8]> {
    let mut buf = Vec::with_capacity(256);
    // A throwaway object: its members are what is kept, without the braces.
    let mut o = Obj::new(&mut buf);
    o.obj("source", |s| {
        ip(s.key("ip"), flow.client.ip());
        s.uint("port", flow.client.port() as u64);
    });
    o.obj("destination", |d| {
        ip(d.key("ip"), flow.server.ip());
        d.uint("port", flow.server.port() as u64);
    });
    o.obj("network", |n| {
        n.str("community_id", flow.community_id.as_bytes());
        n.str("transport", b"tcp");
        if let Some(v) = flow.vlan {
            n.obj("vlan", |vl| vl.str("id", v.to_string().as_bytes()));
        }
    });
    o.end();
    buf[1..buf.len() - 1].into()
}

/// Sizes and mime type of one side; a side never seen carried no bytes.
fn message_fields(q: &mut Obj<'_>, side: Option<(&Head, &http::Body)>) {
    let (bytes, body) = side.map_or((0, 0), |(_, b)| (b.wire_len, b.len));
    q.uint("bytes", bytes);
    q.obj("body", |b| b.uint("bytes", body));
    if let Some(m) = side.and_then(|(h, _)| mime(h)) {
        q.str("mime_type", m);
    }
}

/// A score as the shortest decimal that reads back to it (what `{}` prints), written without
/// float formatting when it is a whole number of thousandths (scores are rounded to three
/// places): every record carries one.
fn score_text(score: f64, buf: &mut [u8; 32]) -> &[u8] {
    let milli = (score * 1000.0).round();
    if (0.0..1e15).contains(&milli) && milli / 1000.0 == score {
        let milli = milli as u64;
        let mut digits = itoa::Buffer::new();
        let whole = digits.format(milli / 1000).as_bytes();
        let mut len = whole.len();
        buf[..len].copy_from_slice(whole);
        let mut frac = milli % 1000;
        if frac != 0 {
            buf[len] = b'.';
            len += 1;
            let mut place = 100;
            while frac != 0 {
                buf[len] = b'0' + (frac / place) as u8;
                len += 1;
                frac %= place;
                place /= 10;
            }
        }
        return &buf[..len];
    }
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    let _ = write!(cursor, "{score}");
    let len = cursor.position() as usize;
    &buf[..len]
}

fn hex(bytes: &[u8; 16]) -> [u8; 32] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = DIGITS[usize::from(b >> 4)];
        out[2 * i + 1] = DIGITS[usize::from(b & 15)];
    }
    out
}

/// Appends one transaction record and a newline.
pub fn transaction(out: &mut Vec<u8>, rec: &TxRecord) {
    let tx: &Transaction = &rec.tx;
    let req = tx.request.as_ref();
    let resp = tx.response.as_ref();
    let mut o = Obj::new(out);
    let ts = o.key("@timestamp");
    ts.push(b'"');
    rfc3339_micros(ts, tx.start());
    ts.push(b'"');
    o.obj("event", |e| {
        e.str("kind", b"event");
        e.raw("category", br#"["network","web"]"#);
        e.str("dataset", b"mirador.http");
        if let (Some(rq), Some(rs)) = (req, resp) {
            e.uint("duration", rs.end.since(rq.start));
        }
    });
    let flow = rec.flow.encoded.get_or_init(|| flow_members(&rec.flow));
    o.members(flow);
    o.obj("http", |h| {
        let version = req.map(|r| r.version).or(resp.map(|r| r.version));
        if let Some(v) = version {
            h.str("version", v.as_str().as_bytes());
        }
        // A side that was never seen carried no bytes: its counters are 0 (as Zeek logs them),
        // and `mirador.anomalies` says why (`missing_response`, `unsolicited_response`).
        h.obj("request", |q| {
            if let Some(r) = req {
                q.str("method", r.method());
            }
            message_fields(q, req.map(|r| (&r.head, &r.body)));
        });
        h.obj("response", |q| {
            if let Some(r) = resp.filter(|r| r.status != 0) {
                q.uint("status_code", r.status as u64);
            }
            message_fields(q, resp.map(|r| (&r.head, &r.body)));
        });
    });
    if let Some(r) = req {
        // Credentials in the query leave as hashes (`mirador.identity`), never as sent.
        let target = rec
            .notes
            .as_ref()
            .and_then(|n| n.redacted_target.as_deref())
            .map_or(r.target(), str::as_bytes);
        o.obj("url", |u| {
            u.str("original", target);
            let (path, query) = path_query(target);
            if let Some(p) = path {
                u.str("path", p);
            }
            if let Some(q) = query {
                u.str("query", q);
            }
            if let Some((host, port)) = authority(r) {
                if !host.is_empty() {
                    u.str("domain", host);
                }
                if let Some(p) = port {
                    u.uint("port", p as u64);
                }
            }
        });
        if let Some(ua) = r.head.get("user-agent") {
            o.obj("user_agent", |u| u.str("original", ua));
        }
    }
    o.obj("mirador", |m| {
        m.obj("flow", |f| f.str("uid", rec.flow.uid.as_bytes()));
        m.obj("tx", |t| t.uint("index", tx.index as u64));
        if !tx.anomalies.is_empty() {
            let a = m.key("anomalies");
            a.push(b'[');
            for (i, an) in tx.anomalies.iter().enumerate() {
                if i > 0 {
                    a.push(b',');
                }
                json::string(a, an.as_str().as_bytes());
            }
            a.push(b']');
        }
        if let Some(notes) = &rec.notes {
            if let Some(route) = &notes.route {
                m.str("route", route.as_bytes());
            }
            if !notes.identity.is_empty() {
                let a = m.key("identity");
                a.push(b'[');
                for (i, id) in notes.identity.iter().enumerate() {
                    if i > 0 {
                        a.push(b',');
                    }
                    let mut e = Obj::new(a);
                    e.str("scheme", id.scheme.as_bytes());
                    e.str("location", id.location.as_bytes());
                    e.str("name", id.name.as_bytes());
                    e.str("credential", &hex(&id.credential));
                    if let Some(s) = &id.subject {
                        e.str("subject", &hex(s));
                    }
                    e.end();
                }
                a.push(b']');
            }
            if !notes.sensitive.is_empty() {
                let a = m.key("sensitive");
                a.push(b'[');
                for (i, k) in notes.sensitive.iter().enumerate() {
                    if i > 0 {
                        a.push(b',');
                    }
                    json::string(a, k.as_bytes());
                }
                a.push(b']');
            }
            if let Some(an) = &notes.anomaly {
                m.obj("anomaly", |o| {
                    let score = if an.score.is_finite() { an.score } else { 0.0 };
                    let mut text = [0u8; 32];
                    o.raw("score", score_text(score, &mut text));
                    o.raw("alerted", if an.alerted { b"true" } else { b"false" });
                });
            }
        }
    });
    o.end();
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::FlowIds;
    use flow::Direction;
    use http::{Connection, HttpConfig, HttpStats};
    use std::sync::Arc;
    use wire::Timestamp;

    fn record(req: &[u8], resp: &[u8]) -> serde_json::Value {
        let cfg = HttpConfig::default();
        let mut c = Connection::new();
        let mut stats = HttpStats::default();
        let mut txs = Vec::new();
        c.data(
            &cfg,
            Direction::Orig,
            Timestamp::from_secs_nanos(1_700_000_000, 5_000),
            req,
            &mut stats,
            &mut txs,
        );
        c.data(
            &cfg,
            Direction::Resp,
            Timestamp::from_secs_nanos(1_700_000_001, 0),
            resp,
            &mut stats,
            &mut txs,
        );
        c.close(
            &cfg,
            Timestamp::from_secs(1_700_000_002),
            &mut stats,
            &mut txs,
        );
        let flow = Arc::new(FlowIds {
            uid: "Cabc".into(),
            community_id: "1:x".into(),
            client: "10.0.0.1:40000".parse().expect("addr"),
            server: "[2001:db8::1]:8080".parse().expect("addr"),
            vlan: Some(42),
            encoded: Default::default(),
        });
        let mut out = Vec::new();
        transaction(
            &mut out,
            &TxRecord {
                flow,
                tx: txs.remove(0),
                order: Default::default(),
                origin: 0,
                notes: None,
                prepared: None,
            },
        );
        assert_eq!(out.last(), Some(&b'\n'));
        serde_json::from_slice(&out).expect("valid JSON")
    }

    #[test]
    fn scores_read_as_rust_prints_them() {
        let mut buf = [0u8; 32];
        for k in (0..20_000u64).chain([123_456_789, 999_999_999_999]) {
            let score = (k as f64 / 1000.0 * 1000.0).round() / 1000.0;
            assert_eq!(
                std::str::from_utf8(score_text(score, &mut buf)).unwrap(),
                format!("{score}")
            );
        }
        for score in [0.1234567, 1e-9, 3.25e17] {
            assert_eq!(
                std::str::from_utf8(score_text(score, &mut buf)).unwrap(),
                format!("{score}")
            );
        }
    }

    #[test]
    fn record_has_the_public_field_names() {
        let v = record(
            b"POST /api/v1/users/12?x=1&y=%20 HTTP/1.1\r\nHost: API.example.com:8443\r\nUser-Agent: curl/8\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: 2\r\n\r\n{}",
            b"HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        );
        assert_eq!(v["@timestamp"], "2023-11-14T22:13:20.000005Z");
        assert_eq!(v["event"]["dataset"], "mirador.http");
        assert_eq!(v["event"]["duration"], 999_995_000u64);
        assert_eq!(v["source"]["ip"], "10.0.0.1");
        assert_eq!(v["destination"]["ip"], "2001:db8::1");
        assert_eq!(v["destination"]["port"], 8080);
        assert_eq!(v["network"]["vlan"]["id"], "42");
        assert_eq!(v["http"]["request"]["method"], "POST");
        assert_eq!(v["http"]["request"]["body"]["bytes"], 2);
        assert_eq!(v["http"]["request"]["mime_type"], "application/json");
        assert_eq!(v["http"]["response"]["status_code"], 201);
        assert_eq!(v["http"]["response"]["body"]["bytes"], 3);
        assert_eq!(v["http"]["version"], "1.1");
        assert_eq!(v["url"]["original"], "/api/v1/users/12?x=1&y=%20");
        assert_eq!(v["url"]["path"], "/api/v1/users/12");
        assert_eq!(v["url"]["query"], "x=1&y=%20");
        assert_eq!(v["url"]["domain"], "API.example.com");
        assert_eq!(v["url"]["port"], 8443);
        assert_eq!(v["user_agent"]["original"], "curl/8");
        assert_eq!(v["mirador"]["tx"]["index"], 0);
        assert!(v["mirador"].get("anomalies").is_none());
    }

    #[test]
    fn absolute_form_target_gives_domain_and_anomalies_are_listed() {
        let v = record(
            b"GET http://proxy.test:3128/a/b?q HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
            b"HTTP/1.1 200 OK\r\n\r\n",
        );
        assert_eq!(v["url"]["domain"], "proxy.test");
        assert_eq!(v["url"]["path"], "/a/b");
        assert_eq!(v["url"]["query"], "q");
        assert_eq!(
            v["mirador"]["anomalies"],
            serde_json::json!(["duplicate_content_length"])
        );
    }

    #[test]
    fn host_port_splitting() {
        assert_eq!(split_host_port(b"[::1]:80"), (&b"::1"[..], Some(80)));
        assert_eq!(split_host_port(b"a.b"), (&b"a.b"[..], None));
        assert_eq!(split_host_port(b"::1"), (&b"::1"[..], None));
    }
}
