//! Rendered conversations parse back with etherparse; written captures read back with the
//! project's own reader.

use std::io::{Cursor, Read};
use std::net::SocketAddr;

use etherparse::{
    Ipv4HeaderSlice, Ipv6FragmentHeader, NetSlice, SlicedPacket, TcpSlice, TransportSlice,
};
use testkit::flags::{ACK, FIN, PSH, SYN};
use testkit::{http, Conversation, Dir, LinkOpts, PcapWriter, PcapngWriter, Seg, Timestamp};

fn v4() -> (SocketAddr, SocketAddr) {
    (
        "10.0.0.1:40000".parse().unwrap(),
        "10.0.0.2:8080".parse().unwrap(),
    )
}

fn v6() -> (SocketAddr, SocketAddr) {
    (
        "[2001:db8::1]:40000".parse().unwrap(),
        "[2001:db8::2]:443".parse().unwrap(),
    )
}

/// Everything a test wants to know about one rendered TCP frame.
#[derive(Debug)]
struct Parsed {
    src_port: u16,
    dst_port: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: Vec<u8>,
    vlans: Vec<u16>,
}

fn tcp_flags(t: &TcpSlice) -> u8 {
    (t.fin() as u8)
        | (t.syn() as u8) << 1
        | (t.rst() as u8) << 2
        | (t.psh() as u8) << 3
        | (t.ack() as u8) << 4
}

fn parse(p: SlicedPacket) -> Parsed {
    let Some(TransportSlice::Tcp(t)) = &p.transport else {
        panic!("not TCP: {p:?}")
    };
    // The checksum is right.
    let want = match &p.net {
        Some(NetSlice::Ipv4(ip)) => {
            let h = ip.header();
            assert_eq!(h.to_header().calc_header_checksum(), h.header_checksum());
            t.calc_checksum_ipv4(h.source(), h.destination()).unwrap()
        }
        Some(NetSlice::Ipv6(ip)) => {
            let h = ip.header();
            t.calc_checksum_ipv6(h.source(), h.destination()).unwrap()
        }
        other => panic!("no IP: {other:?}"),
    };
    assert_eq!(t.checksum(), want, "TCP checksum");
    Parsed {
        src_port: t.source_port(),
        dst_port: t.destination_port(),
        seq: t.sequence_number(),
        ack: t.acknowledgment_number(),
        flags: tcp_flags(t),
        payload: t.payload().to_vec(),
        vlans: p.vlan_ids().iter().map(|v| v.value()).collect(),
    }
}

fn parse_eth(frame: &[u8]) -> Parsed {
    parse(SlicedPacket::from_ethernet(frame).expect("parses"))
}

/// The byte stream one direction carried, from the payloads in segment order.
fn stream(c: &Conversation, dir: Dir) -> Vec<u8> {
    c.segs()
        .iter()
        .filter(|s| s.dir == dir)
        .flat_map(|s| s.payload.clone())
        .collect()
}

fn exchange(c: &mut Conversation) -> (Vec<u8>, Vec<u8>) {
    let req = http::get("/api/users/1", "example.test");
    let body = vec![b'x'; 3000];
    let resp = http::response(200, &[("Content-Type", "text/plain")], &body);
    c.handshake().client(&req).server(&resp).close();
    (req, resp)
}

#[test]
fn conversation_renders_and_parses_back() {
    let (cl, sv) = v4();
    let mut c = Conversation::new(cl, sv).with_mss(1000);
    let (req, resp) = exchange(&mut c);
    // SYN, SYN-ACK, ACK, 1 request segment, 4 response segments, FIN, FIN, ACK.
    assert_eq!(c.segs().len(), 3 + 1 + 4 + 3);
    let frames = c.render(&LinkOpts::default());
    assert_eq!(frames.len(), c.segs().len());
    let parsed: Vec<Parsed> = frames.iter().map(|(_, f)| parse_eth(f)).collect();
    let isn_c = testkit::DEFAULT_CLIENT_ISN;
    let isn_s = testkit::DEFAULT_SERVER_ISN;
    assert_eq!((parsed[0].flags, parsed[0].seq), (SYN, isn_c));
    assert_eq!(
        (parsed[1].flags, parsed[1].seq, parsed[1].ack),
        (SYN | ACK, isn_s, isn_c + 1)
    );
    assert_eq!((parsed[2].flags, parsed[2].ack), (ACK, isn_s + 1));
    assert_eq!(parsed[3].flags, ACK | PSH);
    assert_eq!(parsed[3].payload, req);
    assert_eq!((parsed[3].src_port, parsed[3].dst_port), (40000, 8080));
    assert_eq!((parsed[4].src_port, parsed[4].dst_port), (8080, 40000));
    assert_eq!(parsed[4].seq, isn_s + 1);
    assert_eq!(parsed[4].ack, isn_c + 1 + req.len() as u32);
    assert_eq!(parsed[4].flags, ACK);
    assert_eq!(parsed[7].flags, ACK | PSH);
    let got: Vec<u8> = parsed[4..8]
        .iter()
        .flat_map(|p| p.payload.clone())
        .collect();
    assert_eq!(got, resp);
    assert_eq!(parsed[5].seq, isn_s + 1 + 1000);
    assert_eq!(parsed[8].flags, FIN | ACK);
    assert_eq!(parsed[9].flags, FIN | ACK);
    assert_eq!(parsed[9].ack, parsed[8].seq + 1);
    assert_eq!(parsed[10].flags, ACK);
    assert_eq!(parsed[10].ack, parsed[9].seq + 1);
    // The SYN carries the MSS option.
    let (_, syn) = &frames[0];
    let t = TcpSlice::from_slice(&syn[34..]).unwrap();
    assert_eq!(t.options(), &[2, 4, 0x03, 0xe8]);
    // Timestamps: start time, 100 µs apart.
    let t0 = Timestamp::from_secs(testkit::DEFAULT_START_SECS);
    for (i, (ts, _)) in frames.iter().enumerate() {
        assert_eq!(*ts, t0.plus_nanos(i as u64 * 100_000));
    }
    assert_eq!(stream(&c, Dir::ToServer), req);
}

#[test]
fn ipv6_conversation() {
    let (cl, sv) = v6();
    let mut c = Conversation::new(cl, sv);
    let (req, resp) = exchange(&mut c);
    let frames = c.render(&LinkOpts::default());
    let parsed: Vec<Parsed> = frames.iter().map(|(_, f)| parse_eth(f)).collect();
    assert_eq!(&frames[0].1[12..14], &[0x86, 0xdd]);
    assert_eq!(parsed[3].payload, req);
    assert_eq!(parsed[4].dst_port, 40000);
    let got: Vec<u8> = parsed
        .iter()
        .filter(|p| p.src_port == 443)
        .flat_map(|p| p.payload.clone())
        .collect();
    assert_eq!(got, resp);
}

#[test]
fn sequence_numbers_wrap() {
    let (cl, sv) = v4();
    let mut c = Conversation::new(cl, sv)
        .with_isn(u32::MAX - 10, u32::MAX)
        .with_mss(8);
    c.handshake().client(&[7u8; 40]).server(b"ok");
    let p: Vec<Parsed> = c
        .render(&LinkOpts::default())
        .iter()
        .map(|(_, f)| parse_eth(f))
        .collect();
    assert_eq!(p[0].seq, u32::MAX - 10);
    assert_eq!(p[1].seq, u32::MAX);
    assert_eq!(p[1].ack, u32::MAX - 9);
    assert_eq!(p[2].ack, 0);
    let seqs: Vec<u32> = p[3..8].iter().map(|x| x.seq).collect();
    assert_eq!(seqs, vec![u32::MAX - 9, u32::MAX - 1, 6, 14, 22]);
    assert_eq!(p[8].seq, 0);
    assert_eq!(p[8].ack, 30);
}

#[test]
fn ipv4_fragmentation_splits_at_multiples_of_eight() {
    let (cl, sv) = v4();
    let mut c = Conversation::new(cl, sv);
    let data: Vec<u8> = (0..500u32).map(|i| i as u8).collect();
    c.client(&data);
    let frames = c.render(&LinkOpts::default().fragment(100));
    // 520 bytes of TCP in pieces of 96.
    assert_eq!(frames.len(), 6);
    let mut tcp = Vec::new();
    let mut id = None;
    for (k, (_, f)) in frames.iter().enumerate() {
        let h = Ipv4HeaderSlice::from_slice(&f[14..]).unwrap();
        assert_eq!(h.to_header().calc_header_checksum(), h.header_checksum());
        assert_eq!(h.fragments_offset().value() as usize * 8, k * 96);
        assert_eq!(h.more_fragments(), k < 5);
        assert_eq!(*id.get_or_insert(h.identification()), h.identification());
        let payload = &f[14 + 20..];
        assert_eq!(payload.len(), h.payload_len().unwrap() as usize);
        assert_eq!(payload.len(), if k < 5 { 96 } else { 520 - 5 * 96 });
        tcp.extend_from_slice(payload);
    }
    let t = TcpSlice::from_slice(&tcp).unwrap();
    assert_eq!(t.payload(), &data[..]);
    assert_eq!(t.destination_port(), 8080);
    // Small segments are not fragmented.
    let mut c = Conversation::new(cl, sv);
    c.client(b"hi");
    assert_eq!(c.render(&LinkOpts::default().fragment(100)).len(), 1);
}

#[test]
fn ipv6_fragmentation_uses_a_fragment_header() {
    let (cl, sv) = v6();
    let mut c = Conversation::new(cl, sv);
    let data = vec![0x5a; 300];
    c.client(&data);
    let frames = c.render(&LinkOpts::default().fragment(130));
    // 320 bytes in pieces of 128.
    assert_eq!(frames.len(), 3);
    let mut tcp = Vec::new();
    for (k, (_, f)) in frames.iter().enumerate() {
        let ip = &f[14..];
        assert_eq!(ip[6], 44, "next header: fragment");
        let (fh, rest) = Ipv6FragmentHeader::from_slice(&ip[40..]).unwrap();
        assert_eq!(fh.next_header.0, 6);
        assert_eq!(fh.fragment_offset.value() as usize * 8, k * 128);
        assert_eq!(fh.more_fragments, k < 2);
        assert_eq!(fh.identification, 1);
        assert_eq!(u16::from_be_bytes([ip[4], ip[5]]) as usize, 8 + rest.len());
        tcp.extend_from_slice(rest);
    }
    assert_eq!(tcp.len(), 320);
    assert_eq!(TcpSlice::from_slice(&tcp).unwrap().payload(), &data[..]);
}

#[test]
fn vlan_tags_are_present() {
    let (cl, sv) = v4();
    let mut c = Conversation::new(cl, sv);
    c.client(b"GET / HTTP/1.1\r\n\r\n");
    let f = &c.render(&LinkOpts::default().vlan(&[42]))[0].1;
    assert_eq!(&f[12..16], &[0x81, 0x00, 0, 42]);
    let p = parse_eth(f);
    assert_eq!(p.vlans, vec![42]);
    assert_eq!(p.payload, b"GET / HTTP/1.1\r\n\r\n");
    let f = &c.render(&LinkOpts::default().vlan(&[100, 200]))[0].1;
    assert_eq!(&f[12..14], &[0x88, 0xa8]);
    let p = parse_eth(f);
    assert_eq!(p.vlans, vec![100, 200]);
    assert_eq!(p.dst_port, 8080);
}

#[test]
fn ethernet_padding() {
    let (cl, sv) = v4();
    let mut c = Conversation::new(cl, sv);
    c.handshake();
    let opts = LinkOpts {
        eth_pad: true,
        ..LinkOpts::default()
    };
    for (_, f) in c.render(&opts) {
        assert_eq!(f.len(), 60);
        assert!(parse_eth(&f).payload.is_empty());
    }
}

#[test]
fn other_link_types() {
    let (cl, sv) = v4();
    let mut c = Conversation::new(cl, sv);
    c.client(b"abc");
    let (_, raw) = &c.render(&LinkOpts::with_linktype(101))[0];
    assert_eq!(parse(SlicedPacket::from_ip(raw).unwrap()).payload, b"abc");
    let (_, sll) = &c.render(&LinkOpts::with_linktype(113))[0];
    assert_eq!(
        parse(SlicedPacket::from_linux_sll(sll).unwrap()).payload,
        b"abc"
    );
    let (_, sll2) = &c.render(&LinkOpts::with_linktype(276))[0];
    assert_eq!(&sll2[..2], &[0x08, 0x00]);
    assert_eq!(
        parse(SlicedPacket::from_ip(&sll2[20..]).unwrap()).payload,
        b"abc"
    );
    let (_, null) = &c.render(&LinkOpts::with_linktype(0))[0];
    assert_eq!(&null[..4], &[2, 0, 0, 0]);
    assert_eq!(
        parse(SlicedPacket::from_ip(&null[4..]).unwrap()).payload,
        b"abc"
    );
    let (cl, sv) = v6();
    let mut c = Conversation::new(cl, sv);
    c.client(b"abc");
    let (_, null) = &c.render(&LinkOpts::with_linktype(0))[0];
    assert_eq!(&null[..4], &[30, 0, 0, 0]);
    let (_, lo) = &c.render(&LinkOpts::with_linktype(108))[0];
    assert_eq!(&lo[..4], &[0, 0, 0, 24]);
    let sll2 = &c.render(&LinkOpts::with_linktype(276).vlan(&[7]))[0].1;
    assert_eq!(&sll2[..2], &[0x81, 0x00]);
    assert_eq!(&sll2[20..24], &[0, 7, 0x86, 0xdd]);
}

fn seg_summary(s: &[Seg]) -> Vec<(Dir, u32, usize)> {
    s.iter().map(|s| (s.dir, s.seq, s.payload.len())).collect()
}

#[test]
fn mutation_helpers() {
    let (cl, sv) = v4();
    let mut c = Conversation::new(cl, sv).with_mss(10);
    c.client(&[b'a'; 30]).server(b"0123456789abcdefghij");
    let base = c.segs().to_vec();
    let times: Vec<Timestamp> = base.iter().map(|s| s.ts).collect();
    let s0 = base[0].seq;

    let segs = c.segs_mut();
    testkit::swap(segs, 0, 1);
    assert_eq!(segs[0].seq, s0 + 10);
    assert_eq!(segs[1].seq, s0);
    assert_eq!(segs.iter().map(|s| s.ts).collect::<Vec<_>>(), times);
    testkit::swap(segs, 0, 1);

    testkit::move_seg(segs, 0, 2);
    assert_eq!(
        segs.iter().map(|s| s.seq).take(3).collect::<Vec<_>>(),
        vec![s0 + 10, s0 + 20, s0]
    );
    assert_eq!(segs.iter().map(|s| s.ts).collect::<Vec<_>>(), times);
    testkit::move_seg(segs, 2, 0);

    let dropped = testkit::drop_seg(segs, 1);
    assert_eq!(dropped.seq, s0 + 10);
    segs.insert(1, dropped);

    testkit::duplicate(segs, 3);
    assert_eq!(
        seg_summary(&segs[3..5]),
        seg_summary(&[base[3].clone(), base[3].clone()])
    );
    assert!(segs[4].ts > segs[3].ts && segs[4].ts < segs[5].ts);
    segs.remove(4);

    testkit::split(segs, 2, 4);
    assert_eq!(
        seg_summary(&segs[2..4]),
        vec![(Dir::ToServer, s0 + 20, 4), (Dir::ToServer, s0 + 24, 6)]
    );
    assert_eq!(segs[2].flags, ACK);
    assert_eq!(segs[3].flags, ACK | PSH);
    assert_eq!(segs[2].payload, vec![b'a'; 4]);

    // Server segments: "0123456789" then "abcdefghij".
    let i = segs.iter().position(|s| s.dir == Dir::ToClient).unwrap();
    testkit::overlap_with(segs, i, 3, false);
    assert_eq!(segs[i].payload, b"0123456789abc");
    assert_eq!(segs[i].end_seq(), segs[i + 1].seq + 3);
    segs[i].payload.truncate(10);
    testkit::overlap_with(segs, i, 3, true);
    assert_eq!(segs[i].payload, b"0123456789bcd");

    testkit::retime(segs, Timestamp::from_secs(5), 10);
    assert_eq!(segs[2].ts, Timestamp::from_secs(5).plus_nanos(20));

    // Rendering follows the mutated order.
    let frames = c.render(&LinkOpts::default());
    assert_eq!(parse_eth(&frames[i].1).payload, b"0123456789bcd");
}

#[test]
fn merge_interleaves_by_time() {
    let (cl, sv) = v4();
    let mut a = Conversation::new(cl, sv);
    a.client(b"a").client(b"a");
    let mut b = Conversation::new("10.0.0.3:1234".parse().unwrap(), sv)
        .with_start(Timestamp::from_secs(testkit::DEFAULT_START_SECS).plus_nanos(50_000));
    b.client(b"b").client(b"b");
    let all = testkit::merge(vec![
        a.render(&LinkOpts::default()),
        b.render(&LinkOpts::default()),
    ]);
    let order: Vec<u8> = all.iter().map(|(_, f)| parse_eth(f).payload[0]).collect();
    assert_eq!(order, b"abab");
}

// ---------------------------------------------------------------- writers

fn read_back(bytes: Vec<u8>) -> Vec<(Timestamp, u32, Vec<u8>, u32)> {
    let mut r = capture::FileReader::from_reader(Box::new(Cursor::new(bytes)), "t").unwrap();
    let mut out = Vec::new();
    while let Some(p) = r.next_packet().unwrap() {
        out.push((p.ts, p.linktype, p.data.to_vec(), p.orig_len));
    }
    let st = r.stats();
    assert_eq!(st.corrupt_records + st.truncated_records + st.resyncs, 0);
    out
}

fn sample_frames() -> Vec<(Timestamp, Vec<u8>)> {
    let (cl, sv) = v4();
    let mut c = Conversation::new(cl, sv).with_start(Timestamp(1_700_000_000_123_456_789));
    exchange(&mut c);
    c.render(&LinkOpts::default())
}

#[test]
fn pcap_writer_reads_back() {
    let frames = sample_frames();
    for nanos in [false, true] {
        let mut w = PcapWriter::new(Vec::new(), 1, 0, nanos).unwrap();
        for (ts, f) in &frames {
            w.write(*ts, f).unwrap();
        }
        let got = read_back(w.into_inner());
        assert_eq!(got.len(), frames.len());
        for ((ts, f), (gts, lt, data, orig)) in frames.iter().zip(&got) {
            let want_ts = if nanos {
                *ts
            } else {
                Timestamp(ts.0 / 1000 * 1000)
            };
            assert_eq!(*gts, want_ts);
            assert_eq!(*lt, 1);
            assert_eq!(data, f);
            assert_eq!(*orig as usize, f.len());
        }
    }
}

#[test]
fn pcap_writer_snaplen_and_truncated_records() {
    let mut w = PcapWriter::new(Vec::new(), 101, 64, true).unwrap();
    w.write(Timestamp(5), &[1; 100]).unwrap();
    w.write_truncated(Timestamp(6), &[2; 10], 1500).unwrap();
    let got = read_back(w.into_inner());
    assert_eq!((got[0].2.len(), got[0].3), (64, 100));
    assert_eq!(
        (got[1].0, got[1].1, got[1].2.len(), got[1].3),
        (Timestamp(6), 101, 10, 1500)
    );
}

#[test]
fn pcapng_writer_reads_back() {
    let frames = sample_frames();
    let mut w = PcapngWriter::new(Vec::new()).unwrap();
    let eth = w.add_interface(1, 0, false).unwrap();
    let raw = w.add_interface(101, 40, true).unwrap();
    assert_eq!((eth, raw), (0, 1));
    for (ts, f) in &frames {
        w.write(eth, *ts, f).unwrap();
        w.write(raw, *ts, &f[14..]).unwrap();
    }
    assert!(w.write(2, Timestamp(0), b"x").is_err());
    let got = read_back(w.into_inner());
    assert_eq!(got.len(), 2 * frames.len());
    for (k, (ts, f)) in frames.iter().enumerate() {
        let a = &got[2 * k];
        assert_eq!(
            (a.0, a.1, &a.2, a.3 as usize),
            (Timestamp(ts.0 / 1000 * 1000), 1, f, f.len())
        );
        let b = &got[2 * k + 1];
        let ip = &f[14..];
        assert_eq!(
            (b.0, b.1, &b.2[..], b.3 as usize),
            (*ts, 101, &ip[..ip.len().min(40)], ip.len())
        );
    }
}

#[test]
fn write_pcap_file_opens() {
    let frames = sample_frames();
    let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("testkit-write.pcap");
    testkit::write_pcap(&path, &frames, 1).unwrap();
    let mut r = capture::FileReader::open(&path).unwrap();
    let mut n = 0;
    while let Some(p) = r.next_packet().unwrap() {
        assert_eq!(p.data, &frames[n].1[..]);
        n += 1;
    }
    assert_eq!(n, frames.len());
}

// ---------------------------------------------------------------- http

#[test]
fn http_helpers() {
    assert_eq!(
        http::get("/x?y=1", "h.test"),
        b"GET /x?y=1 HTTP/1.1\r\nHost: h.test\r\nUser-Agent: testkit/1\r\nAccept: */*\r\n\r\n"
    );
    assert_eq!(
        http::post_json("/u", "h", "{}"),
        b"POST /u HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    );
    assert_eq!(
        http::response(404, &[("X-A", "b")], b"nope"),
        b"HTTP/1.1 404 Not Found\r\nX-A: b\r\nContent-Length: 4\r\n\r\nnope"
    );
    assert_eq!(
        http::response(204, &[], b""),
        b"HTTP/1.1 204 No Content\r\n\r\n"
    );
    assert_eq!(
        http::chunked(&[b"hello", b"", b"0123456789abcdef!"]),
        b"5\r\nhello\r\n11\r\n0123456789abcdef!\r\n0\r\n\r\n"
    );
    assert_eq!(
        http::chunked_response(200, &[], &[b"ab"]),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n"
    );
    let body = b"{\"id\":1,\"name\":\"x\"}".repeat(20);
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&http::gzip(&body)[..])
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out, body);
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(&http::deflate(&body)[..])
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out, body);
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(&http::raw_deflate(&body)[..])
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out, body);
}

// ---------------------------------------------------------------- with the project's decoder

/// Every link type, VLAN and fragmentation option decodes with `wire` back to the same
/// segments.
#[test]
fn rendered_frames_decode_with_wire() {
    let cases = [
        LinkOpts::default(),
        LinkOpts::default().vlan(&[5]),
        LinkOpts::default().vlan(&[5, 6]),
        LinkOpts::default().fragment(64),
        LinkOpts {
            eth_pad: true,
            ..LinkOpts::default()
        },
        LinkOpts::with_linktype(101),
        LinkOpts::with_linktype(113),
        LinkOpts::with_linktype(113).vlan(&[9]),
        LinkOpts::with_linktype(276),
        LinkOpts::with_linktype(0),
        LinkOpts::with_linktype(108),
    ];
    for (cl, sv) in [v4(), v6()] {
        let mut c = Conversation::new(cl, sv).with_wrapping_isn().with_mss(300);
        exchange(&mut c);
        for link in &cases {
            let mut dec = wire::Decoder::default();
            let lt = wire::LinkType::from_pcap(link.linktype);
            let mut got = Vec::new();
            for (ts, f) in c.render(link) {
                match dec.decode(lt, ts, &f) {
                    wire::Decoded::Tcp(t) => got.push((
                        t.src_port,
                        t.seq,
                        t.ack,
                        t.flags.0,
                        t.payload.to_vec(),
                        t.vlan,
                    )),
                    wire::Decoded::FragmentHeld => {}
                    other => panic!("{link:?} {cl}: {other:?}"),
                }
            }
            let want: Vec<_> = c
                .segs()
                .iter()
                .map(|s| {
                    let port = if s.dir == Dir::ToServer {
                        cl.port()
                    } else {
                        sv.port()
                    };
                    (
                        port,
                        s.seq,
                        s.ack,
                        s.flags,
                        s.payload.clone(),
                        link.vlan.first().copied(),
                    )
                })
                .collect();
            assert_eq!(got, want, "{link:?} {cl}");
        }
    }
}
