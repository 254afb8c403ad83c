//! End-to-end: captures written by testkit that force the hard cases of HTTP framing, TCP
//! reassembly, link and IP decoding, and the smuggling signals, replayed through the real
//! `mirador replay --transactions -` binary; each test asserts the exact transactions seen.

mod common;

use common::*;
use testkit::http::{self as h, chunked_response, get, post_json, request, response};
use testkit::{Conversation, Dir, LinkOpts, Timestamp};

// ---------------------------------------------------------------- HTTP framing

#[test]
fn keep_alive_several_requests_on_one_connection() {
    let mut c = conv();
    c.client(&get("/a", "api.test"))
        .server(&response(200, &[("Content-Type", "text/plain")], b"hello"))
        .client(&post_json("/api/v1/users", "api.test", r#"{"name":"ada"}"#))
        .server(&response(
            201,
            &[("Content-Type", "application/json")],
            br#"{"id":7}"#,
        ))
        .client(&get("/missing", "api.test"))
        .server(&response(404, &[], b"nope"))
        .close();
    let run = replay_eth(&c);
    let recs = run.records();
    assert_eq!(
        run.briefs(),
        [
            "#0 GET /a 200 req=0 resp=5 -",
            "#1 POST /api/v1/users 201 req=14 resp=8 -",
            "#2 GET /missing 404 req=0 resp=4 -",
        ]
    );
    assert_endpoints(&recs, client(), server());
    let uid = flow_uid(&recs[0]);
    assert!(
        recs.iter().all(|r| flow_uid(r) == uid),
        "one flow: {recs:?}"
    );
    assert_eq!(recs[1]["http"]["request"]["mime_type"], "application/json");
    assert_eq!(recs[0]["url"]["domain"], "api.test");
    assert_eq!(recs[0]["user_agent"]["original"], "testkit/1");
    assert_eq!(recs[0]["http"]["version"], "1.1");
    // request first byte = 4th segment (after the handshake), 100 µs apart
    assert_eq!(recs[0]["@timestamp"], "2023-11-14T22:13:20.000300Z");
    assert_eq!(run.counter("http.not_http_directions"), 0);
}

#[test]
fn pipelined_requests_in_one_segment_and_responses_in_one_segment() {
    let mut reqs = get("/one", "p.test");
    reqs.extend(get("/two?x=1", "p.test"));
    reqs.extend(request("DELETE", "/three", "p.test", &[], b""));
    let mut resps = response(200, &[], b"first");
    resps.extend(response(200, &[], b"second!"));
    resps.extend(response(204, &[], b""));
    let mut c = conv();
    c.client(&reqs).server(&resps).close();
    assert_eq!(c.segs().iter().filter(|s| !s.payload.is_empty()).count(), 2);
    let run = replay_eth(&c);
    assert_eq!(
        run.briefs(),
        [
            "#0 GET /one 200 req=0 resp=5 -",
            "#1 GET /two?x=1 200 req=0 resp=7 -",
            "#2 DELETE /three 204 req=0 resp=0 -",
        ]
    );
    let recs = run.records();
    assert_eq!(recs[1]["url"]["path"], "/two");
    assert_eq!(recs[1]["url"]["query"], "x=1");
}

#[test]
fn head_204_and_304_have_no_body_even_with_content_length() {
    let mut c = conv();
    c.client(&request("HEAD", "/big", "h.test", &[], b""))
        .server(&response(200, &[("Content-Length", "1234")], b""))
        .client(&request("DELETE", "/item/1", "h.test", &[], b""))
        .server(&response(204, &[], b""))
        .client(&request(
            "GET",
            "/cached",
            "h.test",
            &[("If-None-Match", "\"abc\"")],
            b"",
        ))
        .server(&response(304, &[("ETag", "\"abc\"")], b""))
        .client(&get("/after", "h.test"))
        .server(&response(200, &[], b"ok"))
        .close();
    let run = replay_eth(&c);
    assert_eq!(
        run.briefs(),
        [
            "#0 HEAD /big 200 req=0 resp=0 -",
            "#1 DELETE /item/1 204 req=0 resp=0 -",
            "#2 GET /cached 304 req=0 resp=0 -",
            "#3 GET /after 200 req=0 resp=2 -",
        ]
    );
}

#[test]
fn expect_100_continue_is_one_transaction() {
    let head = b"PUT /upload HTTP/1.1\r\nHost: u.test\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n";
    let mut c = conv();
    c.client(head)
        .server(b"HTTP/1.1 100 Continue\r\n\r\n")
        .client(b"0123456789")
        .server(&response(201, &[], b"done"))
        .client(&get("/next", "u.test"))
        .server(&response(200, &[], b"n"))
        .close();
    let run = replay_eth(&c);
    assert_eq!(
        run.briefs(),
        [
            "#0 PUT /upload 201 req=10 resp=4 -",
            "#1 GET /next 200 req=0 resp=1 -",
        ]
    );
    assert_eq!(
        run.records()[0]["http"]["request"]["bytes"],
        (head.len() + 10) as u64
    );
}

#[test]
fn chunked_request_and_response_with_extensions_and_trailers() {
    let req = b"POST /upload HTTP/1.1\r\nHost: c.test\r\nTransfer-Encoding: chunked\r\n\r\n\
5;name=val\r\nhello\r\n6;ext\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n";
    let resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n\
1a;foo=\"bar\"\r\nabcdefghijklmnopqrstuvwxyz\r\n3\r\n123\r\n0\r\nX-Checksum: abc\r\n\r\n";
    let mut c = conv();
    c.client(req)
        .server(resp)
        .client(&get("/after", "c.test"))
        .server(&chunked_response(200, &[], &[b"ab", b"cde"]))
        .close();
    let run = replay_eth(&c);
    assert_eq!(
        run.briefs(),
        [
            "#0 POST /upload 200 req=11 resp=29 -",
            "#1 GET /after 200 req=0 resp=5 -",
        ]
    );
    let recs = run.records();
    assert_eq!(recs[0]["http"]["request"]["bytes"], req.len() as u64);
    assert_eq!(recs[0]["http"]["response"]["bytes"], resp.len() as u64);
}

#[test]
fn gzip_response_counts_the_compressed_entity() {
    let plain = br#"{"items":[1,2,3,4,5,6,7,8,9,10],"note":"repeated repeated repeated repeated"}"#;
    let gz = h::gzip(plain);
    assert_ne!(gz.len(), plain.len());
    let mut c = conv();
    c.client(&request(
        "GET",
        "/api/v1/items",
        "g.test",
        &[("Accept-Encoding", "gzip")],
        b"",
    ))
    .server(&response(
        200,
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
        ],
        &gz,
    ))
    .close();
    let run = replay_eth(&c);
    assert_eq!(
        run.briefs(),
        [format!(
            "#0 GET /api/v1/items 200 req=0 resp={} -",
            gz.len()
        )]
    );
    assert_eq!(
        run.records()[0]["http"]["response"]["mime_type"],
        "application/json"
    );
}

#[test]
fn http10_response_read_until_close() {
    let body: Vec<u8> = (0..3000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut resp = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n".to_vec();
    resp.extend_from_slice(&body);
    let mut c = conv();
    c.client(b"GET /old HTTP/1.0\r\nHost: o.test\r\n\r\n")
        .server(&resp)
        .fin_from(Dir::ToClient)
        .fin_from(Dir::ToServer)
        .ack_from(Dir::ToClient);
    let run = replay_eth(&c);
    assert_eq!(run.briefs(), ["#0 GET /old 200 req=0 resp=3000 -"]);
    assert_eq!(run.records()[0]["http"]["version"], "1.0");
}

#[test]
fn connect_then_tunnel_bytes_gives_only_the_connect() {
    let mut c = conv();
    c.client(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
        .server(b"HTTP/1.1 200 Connection established\r\n\r\n")
        // TLS-ish records, and plaintext that looks like HTTP inside the tunnel
        .client(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5])
        .server(&[0x16, 0x03, 0x03, 0x00, 0x02, 9, 9])
        .client(&get("/inside-tunnel", "example.com"))
        .server(&response(200, &[], b"tunnelled"))
        .close();
    let run = replay_eth(&c);
    assert_eq!(
        run.briefs(),
        ["#0 CONNECT example.com:443 200 req=0 resp=0 -"]
    );
    assert_eq!(run.records()[0]["url"]["domain"], "example.com");
    assert_eq!(run.counter("http.tunnels"), 1);
}

#[test]
fn websocket_upgrade_gives_only_the_101() {
    let mut c = conv();
    c.client(&request(
        "GET",
        "/chat",
        "ws.test",
        &[
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "13"),
        ],
        b"",
    ))
    .server(&response(
        101,
        &[
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        ],
        b"",
    ))
    // A masked text frame and an unmasked one, then bytes that read like HTTP.
    .client(&[
        0x81,
        0x85,
        1,
        2,
        3,
        4,
        b'h' ^ 1,
        b'e' ^ 2,
        b'l' ^ 3,
        b'l' ^ 4,
        b'o' ^ 1,
    ])
    .server(&[0x81, 0x02, b'h', b'i'])
    .client(&get("/not-a-request", "ws.test"))
    .server(&response(200, &[], b"not a response"))
    .close();
    let run = replay_eth(&c);
    assert_eq!(run.briefs(), ["#0 GET /chat 101 req=0 resp=0 -"]);
    assert_eq!(run.counter("http.tunnels"), 1);
}

#[test]
fn pipelined_head_in_the_middle_frames_the_next_response() {
    // The HEAD response announces 100 bytes it does not send: only the request method tells
    // the parser that the next bytes are the next response.
    let mut reqs = get("/a", "p.test");
    reqs.extend(request("HEAD", "/b", "p.test", &[], b""));
    reqs.extend(get("/c", "p.test"));
    let mut resps = response(200, &[], b"aaa");
    resps.extend(response(200, &[("Content-Length", "100")], b""));
    resps.extend(response(200, &[], b"c"));
    let mut c = conv();
    c.client(&reqs).server(&resps).close();
    let run = replay_eth(&c);
    assert_eq!(
        run.briefs(),
        [
            "#0 GET /a 200 req=0 resp=3 -",
            "#1 HEAD /b 200 req=0 resp=0 -",
            "#2 GET /c 200 req=0 resp=1 -",
        ]
    );
}

#[test]
fn several_interim_responses_before_the_final_one() {
    let mut c = conv();
    c.client(&get("/early", "e.test"))
        .server(b"HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n")
        .server(&response(200, &[], b"fin"))
        .client(&get("/next", "e.test"))
        .server(&response(200, &[], b"n"))
        .close();
    let run = replay_eth(&c);
    assert_eq!(
        run.briefs(),
        [
            "#0 GET /early 200 req=0 resp=3 -",
            "#1 GET /next 200 req=0 resp=1 -",
        ]
    );
}

#[test]
fn chunk_size_overflowing_u64_is_bad_chunk() {
    let mut c = conv();
    c.client(&get("/ovf", "s.test"))
        .server(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000001\r\nab\r\n0\r\n\r\n")
        .client(&get("/n", "s.test"))
        .server(&response(200, &[], b"n"))
        .close();
    let run = replay_eth(&c);
    assert_eq!(
        run.briefs(),
        [
            "#0 GET /ovf 200 req=0 resp=0 bad_chunk",
            "#1 GET /n 200 req=0 resp=1 -",
        ]
    );
}

#[test]
fn client_half_close_after_the_request() {
    let mut c = conv();
    c.client(&get("/hc", "h.test"))
        .fin_from(Dir::ToServer)
        .server(&response(200, &[], b"late"))
        .fin_from(Dir::ToClient)
        .ack_from(Dir::ToServer);
    let run = replay_eth(&c);
    assert_eq!(run.briefs(), ["#0 GET /hc 200 req=0 resp=4 -"]);
    assert!(run.stderr.contains("fin 1"), "{}", run.stderr);
}

// ---------------------------------------------------------------- TCP reassembly

/// Index of the `n`th (0-based) segment from `dir` that carries data.
fn data_seg(c: &Conversation, dir: Dir, n: usize) -> usize {
    c.segs()
        .iter()
        .enumerate()
        .filter(|(_, s)| s.dir == dir && !s.payload.is_empty())
        .nth(n)
        .map(|(i, _)| i)
        .unwrap_or_else(|| panic!("no data segment {n} from {dir:?}"))
}

fn body(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'0' + (i % 10) as u8).collect()
}

#[test]
fn out_of_order_segments_are_put_back_in_order() {
    let mut c = Conversation::new(client(), server()).with_mss(400);
    c.handshake()
        .client(&get("/ooo", "t.test"))
        .server(&response(200, &[], &body(1000)))
        .client(&get("/next", "t.test"))
        .server(&response(200, &[], b"x"))
        .close();
    let (a, b) = (
        data_seg(&c, Dir::ToClient, 0),
        data_seg(&c, Dir::ToClient, 1),
    );
    testkit::swap(c.segs_mut(), a, b);
    let run = replay_eth(&c);
    assert_eq!(
        run.briefs(),
        [
            "#0 GET /ooo 200 req=0 resp=1000 -",
            "#1 GET /next 200 req=0 resp=1 -",
        ]
    );
    assert!(run.summary_number("reassembly", "out-of-order segments") >= 1);
    assert_eq!(run.summary_number("reassembly", "gaps"), 0);
}

#[test]
fn retransmitted_duplicate_is_ignored() {
    let mut c = Conversation::new(client(), server()).with_mss(400);
    c.handshake()
        .client(&get("/dup", "t.test"))
        .server(&response(200, &[], &body(1000)))
        .close();
    let i = data_seg(&c, Dir::ToClient, 1);
    let len = c.segs()[i].payload.len() as u64;
    testkit::duplicate(c.segs_mut(), i);
    let j = data_seg(&c, Dir::ToServer, 0);
    testkit::duplicate(c.segs_mut(), j);
    let run = replay_eth(&c);
    assert_eq!(run.briefs(), ["#0 GET /dup 200 req=0 resp=1000 -"]);
    let req_len = get("/dup", "t.test").len() as u64;
    assert_eq!(
        run.summary_number("reassembly", "retransmitted bytes"),
        len + req_len
    );
}

#[test]
fn altered_retransmission_in_a_request_head_keeps_the_first_bytes() {
    // The request line arrives in two segments; the first is retransmitted with one byte
    // changed ("/aaaa" -> "/aXaa") before the rest of the head. The first copy wins and the
    // request carries the anomaly; the next transaction does not.
    let mut c = conv();
    c.client(b"GET /aaaa")
        .client(b"bbbb HTTP/1.1\r\nHost: o.test\r\n\r\n")
        .server(&response(200, &[], b"ok"))
        .client(&get("/next", "o.test"))
        .server(&response(200, &[], b"ok"))
        .close();
    let first = data_seg(&c, Dir::ToServer, 0);
    testkit::duplicate(c.segs_mut(), first);
    c.segs_mut()[first + 1].payload[6] = b'X';
    let run = replay_eth(&c);
    assert_eq!(
        run.briefs(),
        [
            "#0 GET /aaaabbbb 200 req=0 resp=2 overlap_mismatch",
            "#1 GET /next 200 req=0 resp=2 -",
        ]
    );
    assert_eq!(run.counter("flow.overlap_mismatch"), 1);
}

#[test]
fn altered_overlap_with_early_data_in_a_response_body_is_flagged() {
    // Segment k+1 of the body arrives early; then segment k arrives extended over the first
    // 100 bytes of k+1 with different bytes. The early (first-seen) bytes win.
    let mut c = Conversation::new(client(), server()).with_mss(500);
    c.handshake()
        .client(&get("/body", "o.test"))
        .server(&response(200, &[], &body(2000)))
        .client(&get("/next", "o.test"))
        .server(&response(200, &[], b"ok"))
        .close();
    let k = data_seg(&c, Dir::ToClient, 1);
    testkit::overlap_with(c.segs_mut(), k, 100, true);
    testkit::swap(c.segs_mut(), k, k + 1);
    let run = replay_eth(&c);
    assert_eq!(
        run.briefs(),
        [
            "#0 GET /body 200 req=0 resp=2000 overlap_mismatch",
            "#1 GET /next 200 req=0 resp=2 -",
        ]
    );
    assert_eq!(run.counter("flow.overlap_mismatch"), 1);
    assert!(run.summary_number("reassembly", "out-of-order segments") >= 1);
}

#[test]
fn altered_duplicate_in_a_response_body_is_flagged() {
    let mut c = Conversation::new(client(), server()).with_mss(500);
    c.handshake()
        .client(&get("/body", "o.test"))
        .server(&response(200, &[], &body(2000)))
        .client(&get("/next", "o.test"))
        .server(&response(200, &[], b"ok"))
        .close();
    let k = data_seg(&c, Dir::ToClient, 1);
    testkit::duplicate(c.segs_mut(), k);
    c.segs_mut()[k + 1].payload[7] ^= 0xff;
    let run = replay_eth(&c);
    assert_eq!(
        run.briefs(),
        [
            "#0 GET /body 200 req=0 resp=2000 overlap_mismatch",
            "#1 GET /next 200 req=0 resp=2 -",
        ]
    );
    assert_eq!(run.counter("flow.overlap_mismatch"), 1);
}

#[test]
fn lost_segment_in_response_body_is_a_gap_and_the_flow_goes_on() {
    let mut c = Conversation::new(client(), server()).with_mss(1000);
    c.handshake()
        .client(&get("/lossy", "t.test"))
        .server(&response(200, &[], &body(3000)))
        .ack_from(Dir::ToServer)
        .client(&get("/next", "t.test"))
        .server(&response(200, &[], b"fine"))
        .close();
    let lost = data_seg(&c, Dir::ToClient, 1);
    let lost_len = c.segs()[lost].payload.len() as u64;
    testkit::drop_seg(c.segs_mut(), lost);
    let run = replay_eth(&c);
    assert_eq!(
        run.briefs(),
        [
            "#0 GET /lossy 200 req=0 resp=3000 gap",
            "#1 GET /next 200 req=0 resp=4 -",
        ]
    );
    assert_eq!(run.summary_number("reassembly", "gaps"), 1);
    let gaps = format!("gaps 1 ({lost_len} bytes)");
    assert!(run.stderr.contains(&gaps), "{}", run.stderr);
}

#[test]
fn sequence_numbers_wrapping_past_u32_max() {
    let mut c = Conversation::new(client(), server())
        .with_wrapping_isn()
        .with_mss(300);
    c.handshake()
        .client(&post_json("/wrap", "w.test", &"x".repeat(500)))
        .server(&response(200, &[], &body(2500)))
        .client(&get("/wrap2", "w.test"))
        .server(&response(200, &[], b"after"))
        .close();
    // both directions really wrap
    assert!(c.next_seq(Dir::ToServer) < 10_000 && c.next_seq(Dir::ToClient) < 10_000);
    let run = replay_eth(&c);
    assert_eq!(
        run.briefs(),
        [
            "#0 POST /wrap 200 req=500 resp=2500 -",
            "#1 GET /wrap2 200 req=0 resp=5 -",
        ]
    );
    assert_eq!(run.summary_number("reassembly", "gaps"), 0);
}

#[test]
fn mid_stream_pickup_without_handshake_or_first_request() {
    let mut c = conv();
    c.client(&get("/first", "m.test"))
        .server(&response(200, &[], b"one"))
        .client(&get("/second", "m.test"))
        .server(&response(200, &[], b"two"))
        .client(&get("/third", "m.test"))
        .server(&response(200, &[], b"three"))
        .close();
    // The capture starts at the second request: no SYNs, no first exchange.
    let start = data_seg(&c, Dir::ToServer, 1);
    c.segs_mut().drain(..start);
    let run = replay_eth(&c);
    assert_eq!(
        run.briefs(),
        [
            "#0 GET /second 200 req=0 resp=3 -",
            "#1 GET /third 200 req=0 resp=5 -",
        ]
    );
    assert_endpoints(&run.records(), client(), server());
}

#[test]
fn mid_stream_pickup_starting_with_a_server_segment() {
    let mut c = conv();
    c.client(&get("/first", "m.test"))
        .server(&response(200, &[], b"one"))
        .client(&get("/second", "m.test"))
        .server(&response(200, &[], b"two"))
        .close();
    // The first packet seen is the first response: the server looks like the originator.
    let start = data_seg(&c, Dir::ToClient, 0);
    c.segs_mut().drain(..start);
    let run = replay_eth(&c);
    assert_eq!(
        run.briefs(),
        [
            "#0 - - 200 req=0 resp=3 unsolicited_response",
            "#1 GET /second 200 req=0 resp=3 -",
        ]
    );
    assert_endpoints(&run.records(), client(), server());
}

#[test]
fn new_syn_on_the_same_four_tuple_after_fin_is_a_new_flow() {
    let mut first = conv();
    first
        .client(&get("/before", "r.test"))
        .server(&response(200, &[], b"1"))
        .close();
    let later = first.now().plus_nanos(500_000_000);
    let mut second = Conversation::new(client(), server())
        .with_start(later)
        .with_isn(50_000_000, 70_000_000);
    second
        .handshake()
        .client(&get("/after", "r.test"))
        .server(&response(200, &[], b"22"))
        .close();
    let frames = testkit::merge(vec![
        first.render(&LinkOpts::ethernet()),
        second.render(&LinkOpts::ethernet()),
    ]);
    let run = replay_frames(&frames, 1);
    assert_eq!(
        run.briefs(),
        [
            "#0 GET /before 200 req=0 resp=1 -",
            "#0 GET /after 200 req=0 resp=2 -",
        ]
    );
    let recs = run.records();
    assert_ne!(flow_uid(&recs[0]), flow_uid(&recs[1]));
    assert_eq!(run.flows().0, 2);
}

#[test]
fn rst_in_the_middle_of_a_response() {
    let mut c = Conversation::new(client(), server()).with_mss(500);
    c.handshake()
        .client(&get("/reset", "r.test"))
        .server(&response(200, &[], &body(2000)));
    // keep the head and the first 2 segments of the response, then the server resets
    let keep = data_seg(&c, Dir::ToClient, 1) + 1;
    c.segs_mut().truncate(keep);
    // the conversation's sequence state is past the dropped data; write the RST by hand
    let last = c.segs()[keep - 1].clone();
    let mut rst = last.clone();
    rst.seq = last.end_seq();
    rst.payload.clear();
    rst.flags = testkit::flags::RST | testkit::flags::ACK;
    rst.ts = last.ts.plus_nanos(100_000);
    c.segs_mut().push(rst);
    let run = replay_eth(&c);
    // What the response carried before the reset: two 500-byte segments minus the head.
    let head_len = response(200, &[], &body(2000)).len() - 2000;
    assert_eq!(
        run.briefs(),
        [format!(
            "#0 GET /reset 200 req=0 resp={} truncated_body",
            1000 - head_len
        )]
    );
    assert!(run.stderr.contains("rst 1"), "{}", run.stderr);
}

// ---------------------------------------------------------------- link and IP layers

/// A POST with a 1200-byte JSON body answered by a 3000-byte body (frames above any small
/// MTU), then a GET, on a connection between `cl` and `sv`.
fn api_exchange(cl: std::net::SocketAddr, sv: std::net::SocketAddr) -> Conversation {
    let json = format!(r#"{{"pad":"{}"}}"#, "p".repeat(1190));
    assert_eq!(json.len(), 1200);
    let mut c = Conversation::new(cl, sv);
    c.handshake()
        .client(&post_json("/api/v1/orders", "shop.test", &json))
        .server(&response(
            201,
            &[("Content-Type", "application/json")],
            &body(3000),
        ))
        .client(&get("/api/v1/orders/1", "shop.test"))
        .server(&response(200, &[], b"{}"))
        .close();
    c
}

const API_BRIEFS: [&str; 2] = [
    "#0 POST /api/v1/orders 201 req=1200 resp=3000 -",
    "#1 GET /api/v1/orders/1 200 req=0 resp=2 -",
];

#[test]
fn ipv6() {
    let (cl, sv) = (
        "[2001:db8::1]:40000".parse().unwrap(),
        "[2001:db8::2]:80".parse().unwrap(),
    );
    let run = replay_conv(&api_exchange(cl, sv), &LinkOpts::ethernet());
    assert_eq!(run.briefs(), API_BRIEFS);
    let recs = run.records();
    assert_endpoints(&recs, cl, sv);
    assert_eq!(recs[0]["source"]["ip"], "2001:db8::1");
    assert!(recs[0]["network"].get("vlan").is_none());
}

#[test]
fn ipv6_fragments() {
    let (cl, sv) = (
        "[2001:db8::1]:40000".parse().unwrap(),
        "[2001:db8::2]:80".parse().unwrap(),
    );
    let run = replay_conv(&api_exchange(cl, sv), &LinkOpts::ethernet().fragment(512));
    assert_eq!(run.briefs(), API_BRIEFS);
    assert_endpoints(&run.records(), cl, sv);
    // the POST and the two full-size response segments are fragmented
    assert_eq!(
        run.summary_number("decoded", "reassembled"),
        3,
        "{}",
        run.stderr
    );
}

#[test]
fn vlan_802_1q() {
    let run = replay_conv(
        &api_exchange(client(), server()),
        &LinkOpts::ethernet().vlan(&[100]),
    );
    assert_eq!(run.briefs(), API_BRIEFS);
    let recs = run.records();
    assert_endpoints(&recs, client(), server());
    for r in &recs {
        assert_eq!(r["network"]["vlan"]["id"], "100", "{r}");
    }
}

#[test]
fn qinq_reports_the_outer_vlan() {
    let run = replay_conv(
        &api_exchange(client(), server()),
        &LinkOpts::ethernet().vlan(&[200, 100]),
    );
    assert_eq!(run.briefs(), API_BRIEFS);
    for r in &run.records() {
        assert_eq!(r["network"]["vlan"]["id"], "200", "{r}");
    }
}

#[test]
fn ipv4_fragmented_segments() {
    let c = api_exchange(client(), server());
    let link = LinkOpts::ethernet().fragment(256);
    let frames = c.render(&link);
    assert!(
        frames.len() > c.segs().len() + 10,
        "the capture really fragments"
    );
    let run = replay_conv(&c, &link);
    assert_eq!(run.briefs(), API_BRIEFS);
    assert_endpoints(&run.records(), client(), server());
    // the POST and the two full-size response segments are fragmented
    assert_eq!(run.summary_number("decoded", "reassembled"), 3);
    let frags = run.summary_number("decoded", "fragments") as usize;
    assert_eq!(frags, frames.len() - (c.segs().len() - 3));
}

#[test]
fn linux_sll_and_sll2() {
    for linktype in [113, 276] {
        let run = replay_conv(
            &api_exchange(client(), server()),
            &LinkOpts::with_linktype(linktype),
        );
        assert_eq!(run.briefs(), API_BRIEFS, "linktype {linktype}");
        assert_endpoints(&run.records(), client(), server());
    }
    let run = replay_conv(
        &api_exchange(client(), server()),
        &LinkOpts::with_linktype(113).vlan(&[7]),
    );
    assert_eq!(run.briefs(), API_BRIEFS);
    assert_eq!(run.records()[0]["network"]["vlan"]["id"], "7");
}

#[test]
fn raw_ip_and_bsd_loopback() {
    for linktype in [101, 12, 0, 108] {
        let run = replay_conv(
            &api_exchange(client(), server()),
            &LinkOpts::with_linktype(linktype),
        );
        assert_eq!(run.briefs(), API_BRIEFS, "linktype {linktype}");
        assert_endpoints(&run.records(), client(), server());
    }
    let (cl, sv) = (
        "[fd00::1]:5555".parse().unwrap(),
        "[fd00::2]:80".parse().unwrap(),
    );
    let run = replay_conv(&api_exchange(cl, sv), &LinkOpts::with_linktype(101));
    assert_eq!(run.briefs(), API_BRIEFS);
    assert_endpoints(&run.records(), cl, sv);
}

#[test]
fn ethernet_padding_is_not_payload() {
    // Short frames padded to 60 bytes, as received frames are: the IP length must be used.
    let mut link = LinkOpts::ethernet();
    link.eth_pad = true;
    let run = replay_conv(&api_exchange(client(), server()), &link);
    assert_eq!(run.briefs(), API_BRIEFS);
    assert_eq!(run.summary_number("reassembly", "gaps"), 0);
}

#[test]
fn ipv4_fragments_in_reverse_order() {
    let c = api_exchange(client(), server());
    let mut frames = c.render(&LinkOpts::ethernet().fragment(256));
    // flags+offset of an IPv4 frame on Ethernet: bytes 20..22
    let frag = |f: &[u8]| u16::from_be_bytes([f[20], f[21]]);
    let mut i = 0;
    let mut reversed = 0;
    while i < frames.len() {
        if frag(&frames[i].1) & 0x2000 == 0 {
            i += 1;
            continue;
        }
        // a datagram: first fragment (MF set) up to the one without MF
        let mut j = i;
        while frag(&frames[j].1) & 0x2000 != 0 {
            j += 1;
        }
        let times: Vec<Timestamp> = frames[i..=j].iter().map(|f| f.0).collect();
        frames[i..=j].reverse();
        for (f, t) in frames[i..=j].iter_mut().zip(times) {
            f.0 = t;
        }
        reversed += 1;
        i = j + 1;
    }
    assert_eq!(reversed, 3);
    let run = replay_frames(&frames, 1);
    assert_eq!(run.briefs(), API_BRIEFS);
    assert_eq!(run.summary_number("decoded", "reassembled"), 3);
}

#[test]
fn frames_cut_by_the_snaplen_are_gaps() {
    let c = api_exchange(client(), server());
    let dir = tempdir();
    let path = dir.path().join("snap200.pcap");
    let mut w =
        testkit::PcapWriter::new(std::fs::File::create(&path).unwrap(), 1, 200, false).unwrap();
    for (ts, f) in c.render(&LinkOpts::ethernet()) {
        w.write(ts, &f).unwrap();
    }
    drop(w);
    let run = replay_files(None, &[&path]);
    // Declared lengths are kept; the bytes past the snaplen are gaps.
    assert_eq!(
        run.briefs(),
        [
            "#0 POST /api/v1/orders 201 req=1200 resp=3000 gap",
            "#1 GET /api/v1/orders/1 200 req=0 resp=2 -",
        ]
    );
    assert!(run.summary_number("reassembly", "gaps") >= 2);
}

// ---------------------------------------------------------------- ports and protocols

#[test]
fn http_on_a_non_standard_port() {
    let sv = "10.0.0.2:8081".parse().unwrap();
    let mut c = Conversation::new(client(), sv);
    c.handshake()
        .client(&get("/status", "svc.test:8081"))
        .server(&response(200, &[], b"up"))
        .close();
    let run = replay_eth(&c);
    assert_eq!(run.briefs(), ["#0 GET /status 200 req=0 resp=2 -"]);
    let recs = run.records();
    assert_endpoints(&recs, client(), sv);
    assert_eq!(recs[0]["url"]["domain"], "svc.test");
    assert_eq!(recs[0]["url"]["port"], 8081);
}

#[test]
fn tls_like_flow_yields_no_records() {
    let sv = "10.0.0.2:443".parse().unwrap();
    let mut hello = vec![
        0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00, 0x00, 0xc4, 0x03, 0x03,
    ];
    hello.extend((0..200u8).map(|i| i.wrapping_mul(37)));
    let mut server_hello = vec![
        0x16, 0x03, 0x03, 0x00, 0x50, 0x02, 0x00, 0x00, 0x4c, 0x03, 0x03,
    ];
    server_hello.extend((0..80u8).map(|i| i.wrapping_mul(91)));
    let mut c = Conversation::new(client(), sv);
    c.handshake()
        .client(&hello)
        .server(&server_hello)
        .client(&[0x17, 0x03, 0x03, 0x00, 0x03, 1, 2, 3])
        .close();
    let run = replay_eth(&c);
    assert!(
        run.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&run.stdout)
    );
    assert_eq!(run.counter("http.not_http_directions"), 2);
    assert_eq!(run.flows().0, 1);
}

// ---------------------------------------------------------------- smuggling signals

#[test]
fn content_length_with_transfer_encoding_follows_chunked() {
    // CL.TE: by Content-Length the second request is body; by chunked framing (what the
    // RFC says wins) it is a request of its own, and the sensor must show it.
    let smuggled = b"GET /smuggled HTTP/1.1\r\nHost: s.test\r\n\r\n";
    let mut req = format!(
        "POST /front HTTP/1.1\r\nHost: s.test\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        5 + smuggled.len()
    )
    .into_bytes();
    req.extend_from_slice(smuggled);
    let mut c = conv();
    c.client(&req)
        .server(&response(200, &[], b"front"))
        .server(&response(200, &[], b"admin!"))
        .close();
    let run = replay_eth(&c);
    assert_eq!(
        run.briefs(),
        [
            "#0 POST /front 200 req=0 resp=5 te_cl_conflict",
            "#1 GET /smuggled 200 req=0 resp=6 -",
        ]
    );
    assert_eq!(run.counter("http.te_cl_conflict"), 1);
}

#[test]
fn two_different_content_lengths() {
    // The sensor frames by the largest claim (so a body is never misread as a head).
    let mut c = conv();
    c.client(
        b"POST /cl HTTP/1.1\r\nHost: s.test\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde",
    )
    .server(&response(400, &[], b"bad"))
    .client(&get("/next", "s.test"))
    .server(&response(200, &[], b"ok"))
    .close();
    let run = replay_eth(&c);
    assert_eq!(
        run.briefs(),
        [
            "#0 POST /cl 400 req=5 resp=3 conflicting_content_length",
            "#1 GET /next 200 req=0 resp=2 -",
        ]
    );
    assert_eq!(run.counter("http.conflicting_content_length"), 1);
}

#[test]
fn invalid_chunk_size() {
    let mut c = conv();
    c.client(&get("/chunks", "s.test"))
        .server(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")
        .close();
    let run = replay_eth(&c);
    assert_eq!(run.briefs(), ["#0 GET /chunks 200 req=0 resp=0 bad_chunk"]);
    assert_eq!(run.counter("http.bad_chunk"), 1);
}

#[test]
fn obs_fold_header() {
    let mut c = conv();
    c.client(b"GET /fold HTTP/1.1\r\nHost: s.test\r\nX-Long: part one\r\n  part two\r\nAccept: */*\r\n\r\n")
        .server(&response(200, &[], b"f"))
        .client(&get("/after", "s.test"))
        .server(&response(200, &[], b"g"))
        .close();
    let run = replay_eth(&c);
    assert_eq!(
        run.briefs(),
        [
            "#0 GET /fold 200 req=0 resp=1 obs_fold",
            "#1 GET /after 200 req=0 resp=1 -",
        ]
    );
    assert_eq!(run.records()[0]["url"]["domain"], "s.test");
}

#[test]
fn bare_lf_line_endings() {
    let mut c = conv();
    c.client(b"GET /lf HTTP/1.1\nHost: s.test\nUser-Agent: lf/1\n\n")
        .server(b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok")
        .close();
    let run = replay_eth(&c);
    assert_eq!(run.briefs(), ["#0 GET /lf 200 req=0 resp=2 bare_lf"]);
    let r = &run.records()[0];
    assert_eq!(r["url"]["domain"], "s.test");
    assert_eq!(r["user_agent"]["original"], "lf/1");
}

#[test]
fn response_without_request() {
    let mut c = conv();
    c.client(&get("/one", "s.test"))
        .server(&response(200, &[], b"1"))
        .server(&response(200, &[], b"22"))
        .close();
    let run = replay_eth(&c);
    assert_eq!(
        run.briefs(),
        [
            "#0 GET /one 200 req=0 resp=1 -",
            "#1 - - 200 req=0 resp=2 unsolicited_response",
        ]
    );
    let recs = run.records();
    assert_endpoints(&recs, client(), server());
    assert!(recs[1].get("url").is_none());
}

// ---------------------------------------------------------------- determinism

fn three_flows() -> Vec<(Timestamp, Vec<u8>)> {
    let mut parts = Vec::new();
    for k in 0..3u16 {
        let cl = format!("10.0.1.{}:{}", k + 1, 50_000 + k).parse().unwrap();
        let mut c = Conversation::new(cl, server())
            .with_start(Timestamp::from_secs(1_700_000_000).plus_nanos(k as u64 * 150_000))
            .with_mss(700);
        c.handshake()
            .client(&get(&format!("/flow/{k}"), "d.test"))
            .server(&response(200, &[], &body(1500 + k as usize)))
            .client(&post_json("/echo", "d.test", "{}"))
            .server(&response(200, &[], b"{}"))
            .close();
        parts.push(c.render(&LinkOpts::ethernet()));
    }
    testkit::merge(parts)
}

#[test]
fn replaying_twice_gives_identical_output() {
    let dir = tempdir();
    let path = dir.path().join("three.pcap");
    testkit::write_pcap(&path, &three_flows(), 1).unwrap();
    let a = replay_files(None, &[&path]);
    let b = replay_files(None, &[&path]);
    assert_eq!(a.records().len(), 6);
    assert_eq!(a.stdout, b.stdout);
    let uids: std::collections::BTreeSet<String> = a.records().iter().map(flow_uid).collect();
    assert_eq!(uids.len(), 3);
}

#[test]
fn several_files_are_one_capture() {
    let frames = three_flows();
    let dir = tempdir();
    let whole = dir.path().join("whole.pcap");
    testkit::write_pcap(&whole, &frames, 1).unwrap();
    // Cut in the middle of the flows (inside a response body) into three files.
    let cuts = [frames.len() / 3, 2 * frames.len() / 3];
    let parts = [
        &frames[..cuts[0]],
        &frames[cuts[0]..cuts[1]],
        &frames[cuts[1]..],
    ];
    let mut paths = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let path = dir.path().join(format!("part{i}.pcap"));
        testkit::write_pcap(&path, p, 1).unwrap();
        paths.push(path);
    }
    let one = replay_files(None, &[&whole]);
    let split = replay_files(None, &paths.iter().map(|p| p.as_path()).collect::<Vec<_>>());
    assert_eq!(one.records().len(), 6);
    assert_eq!(split.stdout, one.stdout);
    assert_eq!(split.flows(), one.flows());
    assert_eq!(split.counter("capture.truncated_records"), 0);
}

// ---- Regression tests for bugs the end-to-end suite found.

/// complete.
#[test]
fn overlap_mismatch_lands_on_the_next_transaction() {
    for variant in 0..2 {
        let mut c = conv();
        c.client(b"GET /aaaa")
            .client(b"bbbb HTTP/1.1\r\nHost: o.test\r\n\r\n")
            .server(&response(200, &[], b"ok"))
            .client(&get("/next", "o.test"))
            .server(&response(200, &[], b"ok"))
            .close();
        let first = data_seg(&c, Dir::ToServer, 0);
        if variant == 0 {
            // the second segment arrives early; the first then arrives overlapping it with
            // altered bytes
            testkit::overlap_with(c.segs_mut(), first, 4, true);
            testkit::swap(c.segs_mut(), first, first + 1);
        } else {
            // an altered retransmission of the second segment after the head is complete
            testkit::duplicate(c.segs_mut(), first + 1);
            c.segs_mut()[first + 2].payload[0] = b'X';
        }
        let run = replay_eth(&c);
        assert_eq!(
            run.briefs(),
            [
                "#0 GET /aaaabbbb 200 req=0 resp=2 overlap_mismatch",
                "#1 GET /next 200 req=0 resp=2 -",
            ],
            "variant {variant}"
        );
    }
}

/// HTTP" for good, so the later response is lost (missing_response).
#[test]
fn pickup_inside_a_response_body_loses_later_responses() {
    let mut c = Conversation::new(client(), server()).with_mss(500);
    c.handshake()
        .client(&get("/big", "m.test"))
        .server(&response(200, &[], &body(3000)))
        .client(&get("/second", "m.test"))
        .server(&response(200, &[], b"two"))
        .close();
    let start = data_seg(&c, Dir::ToClient, 3); // inside the 3000-byte body
    c.segs_mut().drain(..start);
    let run = replay_eth(&c);
    assert_eq!(run.briefs(), ["#0 GET /second 200 req=0 resp=3 -"]);
    assert_eq!(run.counter("http.not_http_directions"), 0);
}

/// later request is never parsed and both responses become unsolicited.
#[test]
fn pickup_inside_a_request_body_loses_later_requests() {
    let mut c = Conversation::new(client(), server()).with_mss(500);
    c.handshake()
        .client(&post_json("/up", "m.test", &"u".repeat(3000)))
        .server(&response(200, &[], b"one"))
        .client(&get("/second", "m.test"))
        .server(&response(200, &[], b"two"))
        .close();
    let start = data_seg(&c, Dir::ToServer, 3); // inside the 3000-byte body
    c.segs_mut().drain(..start);
    let run = replay_eth(&c);
    assert_eq!(
        run.briefs(),
        [
            "#0 - - 200 req=0 resp=3 unsolicited_response",
            "#1 GET /second 200 req=0 resp=3 -",
        ]
    );
}

/// loss in the middle of the body gives `gap` and the full length.
#[test]
fn lost_last_segment_is_truncated_body_not_gap() {
    let mut c = Conversation::new(client(), server()).with_mss(500);
    c.handshake()
        .client(&get("/tail", "t.test"))
        .server(&response(200, &[], &body(1200)))
        .close();
    let last = data_seg(&c, Dir::ToClient, 2);
    testkit::drop_seg(c.segs_mut(), last);
    let run = replay_eth(&c);
    assert_eq!(run.briefs(), ["#0 GET /tail 200 req=0 resp=1200 gap"]);
    assert_eq!(run.summary_number("reassembly", "gaps"), 1);
}

/// completely captured request instead of the damaged transaction.
#[test]
fn gap_in_a_request_head_is_blamed_on_the_next_request() {
    let mut c = Conversation::new(client(), server()).with_mss(20);
    c.handshake()
        .client(&get("/a-long-path-name/that/spans", "x"))
        .server(&response(200, &[], b"1"))
        .client(&get("/n", "x"))
        .server(&response(200, &[], b"n"))
        .close();
    let s1 = data_seg(&c, Dir::ToServer, 1);
    testkit::drop_seg(c.segs_mut(), s1);
    let run = replay_eth(&c);
    let briefs = run.briefs();
    assert_eq!(briefs[1], "#1 GET /n 200 req=0 resp=1 -", "{briefs:?}");
    assert!(
        briefs[0].ends_with("gap") || briefs[0].contains("gap,"),
        "{briefs:?}"
    );
}

/// flow.packets_after_close (one per connection in every clean capture).
#[test]
fn clean_close_counts_a_packet_after_close() {
    let mut c = conv();
    c.client(&get("/a", "x"))
        .server(&response(200, &[], b"1"))
        .close();
    let run = replay_eth(&c);
    assert_eq!(run.counter("flow.packets_after_close"), 0);
}

/// A gzip bomb in a request body (a decompression-bomb attack on the API server) is flagged;
/// its corrupt twin too; a bomb in a response is flagged only when responses are decoded.
#[test]
fn compressed_bodies_are_decoded_off_the_packet_path_and_bombs_flagged() {
    let bomb = h::gzip(&vec![b'A'; 20 << 20]); // 20 MiB of 'A' in a few KiB
    let mut corrupt = h::gzip(b"{\"a\":1}");
    let n = corrupt.len();
    corrupt[n / 2] ^= 0xff;
    let mut c = conv();
    c.client(&request(
        "POST",
        "/upload",
        "b.test",
        &[("Content-Encoding", "gzip")],
        &bomb,
    ))
    .server(&response(200, &[], b"ok"))
    .client(&request(
        "POST",
        "/broken",
        "b.test",
        &[("Content-Encoding", "gzip")],
        &corrupt,
    ))
    .server(&response(200, &[], b"ok"))
    .client(&get("/download", "b.test"))
    .server(&response(200, &[("Content-Encoding", "gzip")], &bomb))
    .close();
    let frames = c.render(&LinkOpts::ethernet());
    let dir = tempdir();
    let pcap = dir.path().join("bombs.pcap");
    testkit::write_pcap(&pcap, &frames, 1).expect("pcap");
    let run = replay_files(None, &[&pcap]);
    assert_eq!(
        run.briefs(),
        [
            format!(
                "#0 POST /upload 200 req={} resp=2 decompression_limit",
                bomb.len()
            ),
            format!(
                "#1 POST /broken 200 req={} resp=2 decompression_error",
                corrupt.len()
            ),
            format!("#2 GET /download 200 req=0 resp={} -", bomb.len()),
        ]
    );
    assert_eq!(counter(&run.stderr, "http.decompression_limit"), 1);
    let cfg = dir.path().join("decode-responses.toml");
    std::fs::write(&cfg, "[http]\ndecode_responses = true\n").expect("config");
    let run = replay_files(Some(&cfg), &[&pcap]);
    assert!(
        run.briefs()[2].ends_with("decompression_limit"),
        "{:?}",
        run.briefs()
    );
    assert_eq!(counter(&run.stderr, "http.decompression_limit"), 2);
}

/// The pipeline shards flows over workers and merges their records back by packet order:
/// any worker count gives byte-identical output.
#[test]
fn worker_count_does_not_change_the_output() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
    let mut files: Vec<_> = std::fs::read_dir(&fixtures)
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
        .collect();
    files.sort();
    assert!(files.len() >= 2);
    let outputs: Vec<Vec<u8>> = [1, 2, 3, 7]
        .iter()
        .map(|w| {
            let mut args: Vec<std::ffi::OsString> = vec![
                "replay".into(),
                "--workers".into(),
                w.to_string().into(),
                "--transactions".into(),
                "-".into(),
            ];
            args.extend(files.iter().map(|f| f.clone().into_os_string()));
            let r = run(args);
            r.assert_success();
            r.stdout
        })
        .collect();
    assert!(outputs[0].len() > 1000);
    for (i, o) in outputs.iter().enumerate().skip(1) {
        assert!(o == &outputs[0], "workers run {i} differs");
    }
}
