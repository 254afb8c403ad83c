//! Parser tests over transcripts: the client's and the server's bytes fed separately, in
//! every split, must give the same transactions.

use crate::*;
use flow::Direction;
use wire::Timestamp;

/// Feeds `(direction, bytes)` pieces; each piece is cut into `chunk`-byte deliveries.
pub(crate) fn run(
    pieces: &[(Direction, &[u8])],
    chunk: usize,
    cfg: &HttpConfig,
) -> (Vec<Transaction>, HttpStats) {
    let mut c = Connection::new();
    let mut stats = HttpStats::default();
    let mut out = Vec::new();
    for (i, (dir, bytes)) in pieces.iter().enumerate() {
        let ts = Timestamp::from_secs(1000 + i as u64);
        for part in bytes.chunks(chunk.max(1)) {
            c.data(cfg, *dir, ts, part, &mut stats, &mut out);
        }
    }
    c.close(cfg, Timestamp::from_secs(5000), &mut stats, &mut out);
    (out, stats)
}

fn summary(t: &Transaction) -> String {
    let req = t.request.as_ref();
    let resp = t.response.as_ref();
    format!(
        "{} {} {} -> {} req={} resp={} [{}]",
        req.map_or("-".into(), |r| String::from_utf8_lossy(r.method())
            .into_owned()),
        req.map_or("-".into(), |r| String::from_utf8_lossy(r.target())
            .into_owned()),
        req.map_or("-", |r| r.version.as_str()),
        resp.map_or("-".into(), |r| r.status.to_string()),
        req.map_or(0, |r| r.body.len),
        resp.map_or(0, |r| r.body.len),
        t.anomalies
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>()
            .join(",")
    )
}

/// Runs the same conversation with every delivery size from 1 byte to whole pieces and
/// checks all agree; returns the summaries.
fn check_split_invariant(pieces: &[(Direction, &[u8])]) -> Vec<String> {
    let cfg = HttpConfig::default();
    let whole: Vec<String> = run(pieces, usize::MAX, &cfg)
        .0
        .iter()
        .map(summary)
        .collect();
    for chunk in [1, 2, 3, 7, 64] {
        let got: Vec<String> = run(pieces, chunk, &cfg).0.iter().map(summary).collect();
        assert_eq!(got, whole, "delivery size {chunk}");
    }
    whole
}

const O: Direction = Direction::Orig;
const R: Direction = Direction::Resp;

#[test]
fn pipelined_keepalive_requests_pair_in_order() {
    let got = check_split_invariant(&[
        (O, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nHEAD /c HTTP/1.1\r\nHost: x\r\n\r\n"),
        (R, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 404 No\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"),
    ]);
    assert_eq!(
        got,
        vec![
            "GET /a 1.1 -> 200 req=0 resp=3 []",
            "GET /b 1.1 -> 404 req=0 resp=0 []",
            "HEAD /c 1.1 -> 200 req=0 resp=0 []"
        ]
    );
}

#[test]
fn chunked_request_and_response_bodies() {
    let got = check_split_invariant(&[
        (O, b"POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: 1\r\n\r\n"),
        (R, b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n"),
    ]);
    assert_eq!(got, vec!["POST /up 1.1 -> 201 req=5 resp=10 []"]);
}

#[test]
fn interim_100_continue_waits_for_final_response() {
    let (txs, _) = run(
        &[
            (
                O,
                b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
            ),
            (R, b"HTTP/1.1 100 Continue\r\n\r\n"),
            (O, b"data"),
            (R, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        ],
        usize::MAX,
        &HttpConfig::default(),
    );
    assert_eq!(txs.len(), 1);
    let resp = txs[0].response.as_ref().expect("response");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.interim, vec![100]);
    assert_eq!(txs[0].request.as_ref().map(|r| r.body.len), Some(4));
}

#[test]
fn response_without_length_reads_until_close() {
    let got = check_split_invariant(&[
        (O, b"GET / HTTP/1.0\r\n\r\n"),
        (
            R,
            b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of this until close",
        ),
    ]);
    assert_eq!(got, vec!["GET / 1.0 -> 200 req=0 resp=23 []"]);
}

#[test]
fn no_body_statuses_and_connect_tunnel() {
    let got = check_split_invariant(&[
        (O, b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nCONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n\x16\x03\x01binary"),
        (R, b"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\nHTTP/1.1 304 Not Modified\r\n\r\nHTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03tls..."),
    ]);
    assert_eq!(
        got,
        vec![
            "GET /a 1.1 -> 204 req=0 resp=0 []".to_string(),
            "GET /b 1.1 -> 304 req=0 resp=0 []".into(),
            "CONNECT h:443 1.1 -> 200 req=0 resp=0 []".into()
        ]
    );
}

#[test]
fn upgrade_101_stops_parsing() {
    let (txs, stats) = run(
        &[
            (O, b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x85frame"),
            (R, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello"),
        ],
        usize::MAX,
        &HttpConfig::default(),
    );
    assert_eq!(txs.len(), 1);
    assert_eq!(txs[0].response.as_ref().map(|r| r.status), Some(101));
    assert_eq!(stats.tunnels, 1);
}

#[test]
fn http09_request_gets_raw_response() {
    let got = check_split_invariant(&[(O, b"GET /index.html\r\n"), (R, b"<html>hello</html>")]);
    assert_eq!(got, vec!["GET /index.html 0.9 -> 0 req=0 resp=18 []"]);
}

#[test]
fn smuggling_signals_are_typed() {
    let got = check_split_invariant(&[
        (O, b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"),
        (R, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ]);
    assert_eq!(
        got,
        vec![
            "POST / 1.1 -> 200 req=0 resp=0 [te_cl_conflict]",
            "GET /smuggled 1.1 -> 200 req=0 resp=0 []"
        ]
    );
}

#[test]
fn unsolicited_response_and_missing_response() {
    let got = check_split_invariant(&[
        (R, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"),
        (O, b"GET /never-answered HTTP/1.1\r\n\r\n"),
    ]);
    assert_eq!(
        got,
        vec![
            "- - - -> 200 req=0 resp=2 [unsolicited_response]",
            "GET /never-answered 1.1 -> - req=0 resp=0 [missing_response]"
        ]
    );
}

#[test]
fn non_http_flow_yields_nothing() {
    let (txs, stats) = run(
        &[
            (O, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
            (R, b"\x16\x03\x03\x00\x5a"),
        ],
        1,
        &HttpConfig::default(),
    );
    assert!(txs.is_empty());
    assert_eq!(stats.not_http, 2);
}

#[test]
fn gap_in_length_body_keeps_the_next_transaction() {
    let cfg = HttpConfig::default();
    let mut c = Connection::new();
    let mut stats = HttpStats::default();
    let mut out = Vec::new();
    let ts = Timestamp::from_secs(1);
    c.data(
        &cfg,
        O,
        ts,
        b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n",
        &mut stats,
        &mut out,
    );
    c.data(
        &cfg,
        R,
        ts,
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
        &mut stats,
        &mut out,
    );
    c.gap(&cfg, R, 4, &mut stats, &mut out);
    c.data(
        &cfg,
        R,
        ts,
        b"xyzHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nZ",
        &mut stats,
        &mut out,
    );
    assert_eq!(out.len(), 2);
    assert!(out[0].anomalies.contains(HttpAnomaly::Gap));
    assert_eq!(out[0].response.as_ref().map(|r| r.body.len), Some(10));
    assert_eq!(out[1].response.as_ref().map(|r| r.body.len), Some(1));
}

#[test]
fn gap_in_head_keeps_the_cut_message_and_resyncs_on_the_next() {
    let cfg = HttpConfig::default();
    let mut c = Connection::new();
    let mut stats = HttpStats::default();
    let mut out = Vec::new();
    let ts = Timestamp::from_secs(1);
    c.data(&cfg, O, ts, b"GET /1 HTTP/1.1\r\nHo", &mut stats, &mut out);
    c.gap(&cfg, O, 100, &mut stats, &mut out);
    c.data(
        &cfg,
        O,
        ts,
        b"st: lost\r\n\r\nGET /2 HTTP/1.1\r\n\r\n",
        &mut stats,
        &mut out,
    );
    c.data(
        &cfg,
        R,
        ts,
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
        &mut stats,
        &mut out,
    );
    c.close(&cfg, ts, &mut stats, &mut out);
    assert_eq!(out.len(), 2);
    let first = out[0].request.as_ref().expect("cut request kept");
    assert_eq!(first.target(), b"/1");
    assert!(out[0].anomalies.contains(HttpAnomaly::Gap));
    assert_eq!(out[0].response.as_ref().map(|r| r.status), Some(200));
    assert_eq!(
        out[1].request.as_ref().map(|r| r.target()),
        Some(&b"/2"[..])
    );
    assert_eq!(out[1].response.as_ref().map(|r| r.status), Some(204));
    assert!(
        !out[1].anomalies.contains(HttpAnomaly::Gap),
        "the whole second request was seen"
    );
}

#[test]
fn midstream_pickup_inside_a_body_finds_the_next_messages() {
    let cfg = HttpConfig::default();
    let mut c = Connection::midstream();
    let mut stats = HttpStats::default();
    let mut out = Vec::new();
    let ts = Timestamp::from_secs(1);
    // The server's first bytes are the tail of a body whose head was never seen, with a line
    // of text that starts like a request line but is not one.
    c.data(
        &cfg,
        R,
        ts,
        b"ody tail\nHello world, this is text\n{\"json\": 1}",
        &mut stats,
        &mut out,
    );
    c.data(
        &cfg,
        O,
        ts,
        b"tail of a request body\r\nGET /next HTTP/1.1\r\n\r\n",
        &mut stats,
        &mut out,
    );
    c.data(
        &cfg,
        R,
        ts,
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        &mut stats,
        &mut out,
    );
    c.close(&cfg, ts, &mut stats, &mut out);
    assert_eq!(stats.not_http, 0);
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0].request.as_ref().map(|r| r.target()),
        Some(&b"/next"[..])
    );
    assert_eq!(out[0].response.as_ref().map(|r| r.body.len), Some(2));
    // Without mid-stream pickup, first bytes that are not HTTP mean the flow is not HTTP...
    let mut c = Connection::new();
    c.data(&cfg, R, ts, b"\x16\x03\x01\x00\xa5", &mut stats, &mut out);
    assert_eq!(stats.not_http, 1);
    // ...while mid-stream the same bytes are skipped (bounded) looking for a message.
    let mut c = Connection::midstream();
    c.data(&cfg, R, ts, b"\x16\x03\x01\x00\xa5", &mut stats, &mut out);
    assert_eq!(stats.not_http, 1);
}

#[test]
fn reassembly_anomaly_lands_on_the_message_it_hit() {
    let cfg = HttpConfig::default();
    let mut c = Connection::new();
    let mut stats = HttpStats::default();
    let mut out = Vec::new();
    let ts = Timestamp::from_secs(1);
    c.data(
        &cfg,
        O,
        ts,
        b"GET /a HTTP/1.1\r\n\r\n",
        &mut stats,
        &mut out,
    );
    // Reported after the delivery that completed /a's head.
    c.anomaly(O, HttpAnomaly::OverlapMismatch);
    c.data(
        &cfg,
        O,
        ts,
        b"GET /b HTTP/1.1\r\n\r\n",
        &mut stats,
        &mut out,
    );
    c.data(
        &cfg,
        R,
        ts,
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
            .repeat(2)
            .as_slice(),
        &mut stats,
        &mut out,
    );
    assert_eq!(out.len(), 2);
    assert!(out[0].anomalies.contains(HttpAnomaly::OverlapMismatch));
    assert!(!out[1].anomalies.contains(HttpAnomaly::OverlapMismatch));
}

#[test]
fn pipeline_bound_holds() {
    let cfg = HttpConfig {
        max_pending: 4,
        ..HttpConfig::default()
    };
    let reqs = b"GET / HTTP/1.1\r\n\r\n".repeat(10);
    let (txs, _) = run(&[(O, &reqs)], usize::MAX, &cfg);
    assert_eq!(txs.len(), 10);
    assert_eq!(
        txs.iter()
            .filter(|t| t.anomalies.contains(HttpAnomaly::PipelineOverflow))
            .count(),
        6
    );
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn arbitrary_bytes_never_panic(
            a in proptest::collection::vec(any::<u8>(), 0..400),
            b in proptest::collection::vec(any::<u8>(), 0..400),
            chunk in 1usize..50,
        ) {
            let (txs, _) = run(&[(O, &a), (R, &b)], chunk, &HttpConfig::default());
            prop_assert!(txs.len() <= 400);
        }

        #[test]
        fn http_like_bytes_never_panic_and_pair_in_order(
            parts in proptest::collection::vec(prop_oneof![
                Just(&b"GET / HTTP/1.1\r\n"[..]), Just(&b"HTTP/1.1 200 OK\r\n"[..]), Just(&b"Content-Length: 3\r\n"[..]),
                Just(&b"Transfer-Encoding: chunked\r\n"[..]), Just(&b"\r\n"[..]), Just(&b"3\r\nabc\r\n"[..]), Just(&b"0\r\n\r\n"[..]),
                Just(&b"ffffffffffffffffff\r\n"[..]), Just(&b"\n"[..]), Just(&b" folded\r\n"[..]), Just(&b"abc"[..]),
            ], 0..40),
            split in any::<usize>(),
            chunk in 1usize..30,
        ) {
            let bytes: Vec<u8> = parts.concat();
            let cut = if bytes.is_empty() { 0 } else { split % bytes.len() };
            let (txs, _) = run(&[(O, &bytes[..cut]), (R, &bytes[cut..])], chunk, &HttpConfig::default());
            for w in txs.windows(2) {
                prop_assert!(w[0].index < w[1].index);
            }
        }
    }
}
