//! Reader tests: every format variant is written by hand here, then read back.

use std::io::{self, Cursor, Read, Write};
use std::path::PathBuf;

use capture::{CaptureError, FileFormat, FileReader, ReaderStats};
use flate2::write::GzEncoder;
use flate2::Compression;
use proptest::prelude::*;
use wire::Timestamp;

// ---------------------------------------------------------------- file builders

fn u16b(v: u16, be: bool) -> [u8; 2] {
    if be {
        v.to_be_bytes()
    } else {
        v.to_le_bytes()
    }
}

fn u32b(v: u32, be: bool) -> [u8; 4] {
    if be {
        v.to_be_bytes()
    } else {
        v.to_le_bytes()
    }
}

fn pcap_header(be: bool, nanos: bool, snaplen: u32, linktype: u32) -> Vec<u8> {
    let magic = if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
    let mut v = Vec::new();
    v.extend_from_slice(&u32b(magic, be));
    v.extend_from_slice(&u16b(2, be));
    v.extend_from_slice(&u16b(4, be));
    v.extend_from_slice(&[0; 8]);
    v.extend_from_slice(&u32b(snaplen, be));
    v.extend_from_slice(&u32b(linktype, be));
    v
}

fn pcap_record(v: &mut Vec<u8>, be: bool, secs: u32, frac: u32, data: &[u8], orig: u32) {
    pcap_record_raw(v, be, secs, frac, data.len() as u32, orig);
    v.extend_from_slice(data);
}

fn pcap_record_raw(v: &mut Vec<u8>, be: bool, secs: u32, frac: u32, incl: u32, orig: u32) {
    v.extend_from_slice(&u32b(secs, be));
    v.extend_from_slice(&u32b(frac, be));
    v.extend_from_slice(&u32b(incl, be));
    v.extend_from_slice(&u32b(orig, be));
}

fn frame(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|k| (i * 31 + k * 7) as u8).collect()
}

/// A pcap with `n` frames of varying length, 1 ms apart from `T0`.
const T0: u32 = 1_700_000_000;

fn simple_pcap(be: bool, nanos: bool, n: usize) -> Vec<u8> {
    let mut v = pcap_header(be, nanos, 65535, 1);
    for i in 0..n {
        let frac = if nanos {
            i as u32 * 1_000_000 + 7
        } else {
            i as u32 * 1000 + 7
        };
        let f = frame(i, 60 + i * 13 % 1400);
        pcap_record(&mut v, be, T0, frac, &f, f.len() as u32);
    }
    v
}

fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

fn ng_block(v: &mut Vec<u8>, be: bool, btype: u32, body: &[u8]) {
    let total = (12 + pad4(body.len())) as u32;
    v.extend_from_slice(&u32b(btype, be));
    v.extend_from_slice(&u32b(total, be));
    v.extend_from_slice(body);
    v.resize(v.len() + pad4(body.len()) - body.len(), 0);
    v.extend_from_slice(&u32b(total, be));
}

fn ng_shb(v: &mut Vec<u8>, be: bool) {
    let mut b = Vec::new();
    b.extend_from_slice(&u32b(0x1A2B_3C4D, be));
    b.extend_from_slice(&u16b(1, be));
    b.extend_from_slice(&u16b(0, be));
    b.extend_from_slice(&[0xFF; 8]);
    ng_block(v, be, 0x0A0D_0D0A, &b);
}

fn ng_option(b: &mut Vec<u8>, be: bool, code: u16, val: &[u8]) {
    b.extend_from_slice(&u16b(code, be));
    b.extend_from_slice(&u16b(val.len() as u16, be));
    b.extend_from_slice(val);
    b.resize(b.len() + pad4(val.len()) - val.len(), 0);
}

/// IDB with optional if_tsresol byte and if_tsoffset seconds.
fn ng_idb(
    v: &mut Vec<u8>,
    be: bool,
    linktype: u16,
    snaplen: u32,
    tsresol: Option<u8>,
    tsoffset: Option<i64>,
) {
    let mut b = Vec::new();
    b.extend_from_slice(&u16b(linktype, be));
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(&u32b(snaplen, be));
    ng_option(&mut b, be, 2, b"eth0"); // if_name, ignored
    if let Some(r) = tsresol {
        ng_option(&mut b, be, 9, &[r]);
    }
    if let Some(o) = tsoffset {
        let bytes = if be { o.to_be_bytes() } else { o.to_le_bytes() };
        ng_option(&mut b, be, 14, &bytes);
    }
    ng_option(&mut b, be, 0, &[]);
    ng_block(v, be, 1, &b);
}

fn ng_epb(v: &mut Vec<u8>, be: bool, iface: u32, units: u64, data: &[u8], orig: u32) {
    let mut b = Vec::new();
    b.extend_from_slice(&u32b(iface, be));
    b.extend_from_slice(&u32b((units >> 32) as u32, be));
    b.extend_from_slice(&u32b(units as u32, be));
    b.extend_from_slice(&u32b(data.len() as u32, be));
    b.extend_from_slice(&u32b(orig, be));
    b.extend_from_slice(data);
    ng_block(v, be, 6, &b);
}

type Pkt = (Timestamp, u32, Vec<u8>, u32);

fn read_all(bytes: Vec<u8>) -> (Vec<Pkt>, ReaderStats) {
    let mut r = FileReader::from_reader(Box::new(Cursor::new(bytes)), "test").expect("opens");
    let mut out = Vec::new();
    while let Some(p) = r.next_packet().expect("no I/O error") {
        assert!(p.orig_len as usize >= p.data.len());
        out.push((p.ts, p.linktype, p.data.to_vec(), p.orig_len));
    }
    // End is sticky.
    assert!(r.next_packet().unwrap().is_none());
    (out, r.stats().clone())
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn open_err(bytes: Vec<u8>) -> CaptureError {
    match FileReader::from_reader(Box::new(Cursor::new(bytes)), "fixtures/x.bin") {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

fn tmp(name: &str, bytes: &[u8]) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("capture-{name}"));
    std::fs::write(&p, bytes).unwrap();
    p
}

// ---------------------------------------------------------------- pcap

#[test]
fn pcap_all_four_magics() {
    for be in [false, true] {
        for nanos in [false, true] {
            let (pkts, st) = read_all(simple_pcap(be, nanos, 5));
            assert_eq!(pkts.len(), 5, "be={be} nanos={nanos}");
            for (i, (ts, lt, data, orig)) in pkts.iter().enumerate() {
                let ns = i as u64 * 1_000_000 + if nanos { 7 } else { 7_000 };
                assert_eq!(*ts, Timestamp::from_secs(T0 as u64).plus_nanos(ns));
                assert_eq!(*lt, 1);
                assert_eq!(*data, frame(i, 60 + i * 13 % 1400));
                assert_eq!(*orig as usize, data.len());
            }
            assert_eq!(st.packets, 5);
            assert_eq!(st.bytes, pkts.iter().map(|p| p.2.len() as u64).sum::<u64>());
            assert_eq!(
                ReaderStats {
                    packets: 0,
                    bytes: 0,
                    ..st
                },
                ReaderStats::default()
            );
        }
    }
}

#[test]
fn pcap_format_is_reported() {
    let r =
        FileReader::from_reader(Box::new(Cursor::new(simple_pcap(true, true, 1))), "t").unwrap();
    assert_eq!(
        r.format(),
        FileFormat::Pcap {
            nanos: true,
            big_endian: true
        }
    );
    assert!(!r.is_gzip());
}

#[test]
fn pcap_snapped_record_keeps_orig_len() {
    let mut v = pcap_header(false, false, 100, 101);
    pcap_record(&mut v, false, T0, 0, &frame(0, 100), 1500);
    let (pkts, st) = read_all(v);
    assert_eq!(pkts[0].1, 101);
    assert_eq!(pkts[0].2.len(), 100);
    assert_eq!(pkts[0].3, 1500);
    assert_eq!(st.corrupt_records, 0);
}

#[test]
fn pcap_fcs_bits_masked_and_fcs_trimmed() {
    // Ethernet with a 4-byte FCS: length 2 (16-bit words) in bits 28-31, flag bit 26.
    let lt = 1 | 0x0400_0000 | (2 << 28);
    let mut v = pcap_header(false, false, 65535, lt);
    let f = frame(1, 64);
    pcap_record(&mut v, false, T0, 0, &f, 64);
    // Snapped inside the FCS: 62 of 64 bytes captured.
    pcap_record(&mut v, false, T0, 1, &f[..62], 64);
    // Snapped before the FCS.
    pcap_record(&mut v, false, T0, 2, &f[..40], 64);
    let (pkts, _) = read_all(v);
    assert_eq!(pkts[0].1, 1);
    assert_eq!(pkts[0].2, &f[..60]);
    assert_eq!(pkts[0].3, 60);
    assert_eq!(pkts[1].2, &f[..60]);
    assert_eq!(pkts[2].2, &f[..40]);
    assert_eq!(pkts[2].3, 60);
}

#[test]
fn pcap_header_only_is_an_empty_capture() {
    let (pkts, st) = read_all(pcap_header(false, false, 65535, 1));
    assert!(pkts.is_empty());
    assert_eq!(st, ReaderStats::default());
}

#[test]
fn pcap_truncated_last_record() {
    let full = simple_pcap(false, false, 4);
    // Cut inside the last record's data.
    let (pkts, st) = read_all(full[..full.len() - 10].to_vec());
    assert_eq!(pkts.len(), 3);
    assert_eq!(st.truncated_records, 1);
    assert_eq!(st.corrupt_records, 0);
    // Cut inside a record header.
    let mut v = simple_pcap(false, false, 2);
    v.extend_from_slice(&[1, 2, 3, 4, 5]);
    let (pkts, st) = read_all(v);
    assert_eq!(pkts.len(), 2);
    assert_eq!(st.truncated_records, 1);
}

#[test]
fn pcap_cut_file_header_is_a_clear_error() {
    let v = simple_pcap(false, false, 0);
    let e = open_err(v[..10].to_vec());
    assert!(matches!(e, CaptureError::BadHeader { .. }), "{e}");
    assert!(e.to_string().contains("10 of 24"), "{e}");
}

fn good_records(v: &mut Vec<u8>, from: usize, to: usize) {
    for i in from..to {
        let f = frame(i, 100 + i);
        pcap_record(v, false, T0 + i as u32, 0, &f, f.len() as u32);
    }
}

#[test]
fn pcap_corrupt_record_in_the_middle_resyncs() {
    for bad in [
        // incl_len absurd
        (0xFFFF_0000u32, 120u32),
        // incl_len > orig_len
        (150, 100),
    ] {
        let mut v = pcap_header(false, false, 65535, 1);
        good_records(&mut v, 0, 3);
        pcap_record_raw(&mut v, false, T0 + 3, 0, bad.0, bad.1);
        v.extend_from_slice(&frame(99, 120)); // the lost record's bytes
        good_records(&mut v, 4, 10);
        let (pkts, st) = read_all(v);
        let want: Vec<usize> = (0..3).chain(4..10).collect();
        assert_eq!(pkts.len(), want.len(), "{bad:?} {st:?}");
        for (p, i) in pkts.iter().zip(want) {
            assert_eq!(p.2, frame(i, 100 + i));
            assert_eq!(p.0, Timestamp::from_secs((T0 + i as u32) as u64));
        }
        assert_eq!(st.corrupt_records, 1);
        assert_eq!(st.resyncs, 1);
        assert_eq!(st.truncated_records, 0);
    }
}

#[test]
fn pcap_corrupt_record_before_the_last_one_resyncs_to_it() {
    let mut v = pcap_header(false, false, 65535, 1);
    good_records(&mut v, 0, 2);
    pcap_record_raw(&mut v, false, T0, 0, 0x7FFF_FFFF, 5);
    v.extend_from_slice(&[0xAA; 33]);
    good_records(&mut v, 2, 3);
    let (pkts, st) = read_all(v);
    assert_eq!(pkts.len(), 3);
    assert_eq!((st.corrupt_records, st.resyncs), (1, 1));
}

#[test]
fn pcap_corrupt_record_followed_by_garbage_stops() {
    let mut v = pcap_header(false, false, 65535, 1);
    good_records(&mut v, 0, 2);
    pcap_record_raw(&mut v, false, T0, 0, 0x7FFF_FFFF, 5);
    v.extend((0..5000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    let (pkts, st) = read_all(v);
    assert_eq!(pkts.len(), 2);
    assert_eq!((st.corrupt_records, st.resyncs), (1, 0));
}

#[test]
fn pcap_many_records_across_buffer_refills() {
    // ~40 MB, several buffer refills, records of all sizes, one bigger than the initial buffer.
    let mut v = pcap_header(true, true, 262_144, 1);
    let n = 30_000;
    for i in 0..n {
        let len = if i == 777 { 200_000 } else { (i * 7919) % 2500 };
        let f = frame(i, len);
        pcap_record(
            &mut v,
            true,
            T0 + (i / 1000) as u32,
            i as u32,
            &f,
            len as u32 + 4,
        );
    }
    let total = v.len();
    let mut r = FileReader::from_reader(Box::new(Cursor::new(v)), "big").unwrap();
    let mut i = 0;
    while let Some(p) = r.next_packet().unwrap() {
        let len = if i == 777 { 200_000 } else { (i * 7919) % 2500 };
        assert_eq!(p.data.len(), len);
        assert_eq!(p.data, &frame(i, len)[..]);
        assert_eq!(p.orig_len as usize, len + 4);
        i += 1;
    }
    assert_eq!(i, n);
    assert_eq!(r.compressed_bytes_read(), total as u64);
    assert_eq!(r.stats().corrupt_records + r.stats().truncated_records, 0);
}

#[test]
fn pcap_largest_record_and_one_byte_more() {
    let max = 16 << 20;
    let mut v = pcap_header(false, false, max, 1);
    let big = vec![0x42u8; max as usize];
    pcap_record(&mut v, false, T0, 0, &big, max);
    pcap_record_raw(&mut v, false, T0, 1, max + 1, max + 1);
    v.extend_from_slice(&big);
    v.push(0);
    let (pkts, st) = read_all(v);
    assert_eq!(pkts.len(), 1);
    assert_eq!(pkts[0].2.len(), max as usize);
    assert_eq!((st.corrupt_records, st.resyncs), (1, 0));
}

#[test]
fn reader_is_send() {
    fn send<T: Send>() {}
    send::<FileReader>();
    send::<CaptureError>();
}

// ---------------------------------------------------------------- gzip

#[test]
fn gzip_pcap_and_pcapng() {
    let plain = simple_pcap(false, true, 20);
    let (want, _) = read_all(plain.clone());
    let (got, st) = read_all(gzip(&plain));
    assert_eq!(got, want);
    assert_eq!(st.decompress_errors, 0);

    let ng = two_iface_pcapng(false);
    let (want, _) = read_all(ng.clone());
    let (got, _) = read_all(gzip(&ng));
    assert_eq!(got, want);
}

#[test]
fn gzip_multi_member() {
    let plain = simple_pcap(false, false, 10);
    let mut z = gzip(&plain[..500]);
    z.extend(gzip(&plain[500..]));
    let (got, st) = read_all(z);
    assert_eq!(got.len(), 10);
    assert_eq!(st.truncated_records, 0);
}

#[test]
fn gzip_cut_short_ends_the_capture() {
    let plain = simple_pcap(false, false, 200);
    let z = gzip(&plain);
    let mut r = FileReader::from_reader(Box::new(Cursor::new(z[..z.len() / 2].to_vec())), "cut.gz")
        .unwrap();
    assert!(r.is_gzip());
    let mut n = 0;
    while r.next_packet().unwrap().is_some() {
        n += 1;
    }
    assert!(n > 10 && n < 200, "{n}");
    assert_eq!(r.stats().decompress_errors, 1);
    assert!(r.decompress_error().is_some());
}

#[test]
fn gzip_of_garbage_and_gzip_of_nothing() {
    let e = open_err(gzip(b"GET / HTTP/1.1\r\n\r\n"));
    let msg = e.to_string();
    assert!(
        msg.contains("gzip-compressed") && msg.contains("47 45 54 20"),
        "{msg}"
    );
    let e = open_err(gzip(b""));
    assert!(matches!(e, CaptureError::Empty { .. }), "{e}");
    let e = open_err(vec![0x1f, 0x8b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert!(matches!(e, CaptureError::NotACapture { .. }), "{e}");
}

// ---------------------------------------------------------------- not a capture

#[test]
fn garbage_file_is_a_clear_error() {
    let p = tmp("x.txt", b"HTTP/1.1 200 OK\r\n\r\n");
    let e = FileReader::open(&p).err().expect("error");
    let msg = e.to_string();
    assert!(matches!(e, CaptureError::NotACapture { .. }));
    assert!(
        msg.contains("capture-x.txt: not a pcap or pcapng file"),
        "{msg}"
    );
    assert!(msg.contains("first bytes 48 54 54 50"), "{msg}");
    assert!(msg.contains("tcpdump"), "{msg}");
    assert!(msg.contains("text"), "{msg}");
}

#[test]
fn known_other_formats_get_a_hint() {
    let e = open_err(vec![0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0]);
    assert!(e.to_string().contains("zstd -d"), "{e}");
}

#[test]
fn empty_file_is_a_clear_error() {
    let p = tmp("empty.pcap", b"");
    let e = FileReader::open(&p).err().expect("error");
    assert!(matches!(e, CaptureError::Empty { .. }));
    assert!(e.to_string().contains("empty"), "{e}");
}

#[test]
fn missing_file_is_an_open_error() {
    let e = FileReader::open(std::path::Path::new("/nonexistent/dir/f.pcap"))
        .err()
        .expect("error");
    assert!(matches!(e, CaptureError::Open { .. }));
    assert!(
        e.to_string()
            .starts_with("/nonexistent/dir/f.pcap: cannot open"),
        "{e}"
    );
    let e = FileReader::open(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")))
        .err()
        .expect("error");
    assert!(matches!(e, CaptureError::Open { .. }), "{e}");
}

#[test]
fn open_reports_file_len_and_progress() {
    let bytes = gzip(&simple_pcap(false, false, 300));
    let p = tmp("progress.pcap.gz", &bytes);
    let mut r = FileReader::open(&p).unwrap();
    assert_eq!(r.file_len(), Some(bytes.len() as u64));
    let mut n = 0;
    while r.next_packet().unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 300);
    assert_eq!(r.compressed_bytes_read(), bytes.len() as u64);
}

struct FailAfter {
    data: Cursor<Vec<u8>>,
    limit: u64,
}

impl Read for FailAfter {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.data.position() >= self.limit {
            return Err(io::Error::other("disk on fire"));
        }
        let room = (self.limit - self.data.position()) as usize;
        let n = buf.len().min(room);
        self.data.read(&mut buf[..n])
    }
}

#[test]
fn io_failure_is_an_error() {
    for gz in [false, true] {
        let plain = simple_pcap(false, false, 2000);
        let bytes = if gz { gzip(&plain) } else { plain };
        let limit = bytes.len() as u64 / 2;
        let src = FailAfter {
            data: Cursor::new(bytes),
            limit,
        };
        let mut r = FileReader::from_reader(Box::new(src), "flaky.pcap").unwrap();
        let err = loop {
            match r.next_packet() {
                Ok(Some(_)) => {}
                Ok(None) => panic!("should fail"),
                Err(e) => break e,
            }
        };
        assert!(matches!(err, CaptureError::Io { .. }), "{err}");
        assert!(err.to_string().contains("disk on fire"), "{err}");
    }
}

// ---------------------------------------------------------------- pcapng

/// Two interfaces: Ethernet with µs timestamps, raw IP with ns and a 2^-20 interface.
fn two_iface_pcapng(be: bool) -> Vec<u8> {
    let mut v = Vec::new();
    ng_shb(&mut v, be);
    ng_idb(&mut v, be, 1, 65535, None, None);
    ng_idb(&mut v, be, 101, 0, Some(9), None);
    ng_idb(&mut v, be, 113, 0, Some(0x80 | 20), Some(-10));
    let t = T0 as u64;
    ng_epb(&mut v, be, 0, t * 1_000_000 + 123_456, &frame(0, 61), 61);
    ng_epb(
        &mut v,
        be,
        1,
        t * 1_000_000_000 + 123_456_789,
        &frame(1, 63),
        100,
    );
    ng_epb(&mut v, be, 2, (t << 20) | (1 << 19), &frame(2, 64), 64);
    v
}

#[test]
fn pcapng_two_interfaces_different_linktypes_and_resolutions() {
    for be in [false, true] {
        let (pkts, st) = read_all(two_iface_pcapng(be));
        assert_eq!(pkts.len(), 3);
        let t = Timestamp::from_secs(T0 as u64);
        assert_eq!(pkts[0].0, t.plus_nanos(123_456_000));
        assert_eq!(pkts[0].1, 1);
        assert_eq!(pkts[0].2, frame(0, 61));
        assert_eq!(pkts[1].0, t.plus_nanos(123_456_789));
        assert_eq!(pkts[1].1, 101);
        assert_eq!(pkts[1].3, 100);
        assert_eq!(
            pkts[2].0,
            Timestamp::from_secs(T0 as u64 - 10).plus_nanos(500_000_000)
        );
        assert_eq!(pkts[2].1, 113);
        assert_eq!(pkts[2].2, frame(2, 64));
        assert_eq!(
            st,
            ReaderStats {
                packets: 3,
                bytes: 61 + 63 + 64,
                ..ReaderStats::default()
            }
        );
    }
}

#[test]
fn pcapng_timestamp_resolutions() {
    let be = false;
    let mut v = Vec::new();
    ng_shb(&mut v, be);
    ng_idb(&mut v, be, 1, 0, Some(12), None); // picoseconds
    ng_idb(&mut v, be, 1, 0, Some(0), Some(7)); // seconds, +7 s
    ng_idb(&mut v, be, 1, 0, Some(0x80 | 10), None); // 1/1024 s
    ng_idb(&mut v, be, 1, 0, Some(3), Some(-100)); // ms, before the epoch: clamped
    ng_epb(&mut v, be, 0, 1_500_000_000_000_123_456, &frame(0, 20), 20);
    ng_epb(&mut v, be, 1, 9, &frame(0, 20), 20);
    ng_epb(&mut v, be, 2, 3 * 1024 + 512, &frame(0, 20), 20);
    ng_epb(&mut v, be, 3, 5, &frame(0, 20), 20);
    let (pkts, _) = read_all(v);
    let ts: Vec<Timestamp> = pkts.iter().map(|p| p.0).collect();
    assert_eq!(
        ts,
        vec![
            Timestamp(1_500_000_000_000_123),
            Timestamp::from_secs(16),
            Timestamp(3_500_000_000),
            Timestamp(0),
        ]
    );
}

#[test]
fn pcapng_sections_reset_interfaces_and_may_switch_byte_order() {
    let mut v = two_iface_pcapng(false);
    ng_shb(&mut v, true);
    ng_idb(&mut v, true, 276, 0, Some(3), None);
    ng_epb(&mut v, true, 0, 5_000, &frame(9, 40), 40);
    // Interface 1 existed in the first section only.
    ng_epb(&mut v, true, 1, 5_000, &frame(9, 40), 40);
    ng_epb(&mut v, true, 0, 6_000, &frame(10, 41), 41);
    let (pkts, st) = read_all(v);
    assert_eq!(pkts.len(), 5);
    assert_eq!(pkts[3].1, 276);
    assert_eq!(pkts[3].0, Timestamp::from_secs(5));
    assert_eq!(pkts[4].0, Timestamp::from_secs(6));
    assert_eq!(st.corrupt_records, 1);
    assert_eq!(st.resyncs, 0);
}

#[test]
fn pcapng_simple_and_obsolete_packet_blocks_and_skipped_blocks() {
    let be = false;
    let mut v = Vec::new();
    ng_shb(&mut v, be);
    ng_idb(&mut v, be, 1, 50, None, None);
    ng_epb(&mut v, be, 0, 1_000_000 * 42, &frame(0, 50), 80);
    // Name resolution, interface statistics, custom blocks: skipped.
    ng_block(&mut v, be, 4, &[0; 8]);
    ng_block(&mut v, be, 5, &[0; 12]);
    ng_block(&mut v, be, 0x0000_0BAD, &[1, 2, 3, 4, 5]);
    // SPB: original length 80, snaplen 50 → 50 captured, time of the previous packet.
    let mut b = Vec::new();
    b.extend_from_slice(&u32b(80, be));
    b.extend_from_slice(&frame(1, 50));
    ng_block(&mut v, be, 3, &b);
    // PB (type 2): 16-bit interface id and drop count.
    let mut b = Vec::new();
    b.extend_from_slice(&u16b(0, be));
    b.extend_from_slice(&u16b(0, be));
    b.extend_from_slice(&u32b(0, be));
    b.extend_from_slice(&u32b(43_000_000, be));
    b.extend_from_slice(&u32b(30, be));
    b.extend_from_slice(&u32b(30, be));
    b.extend_from_slice(&frame(2, 30));
    ng_block(&mut v, be, 2, &b);
    let (pkts, st) = read_all(v);
    assert_eq!(pkts.len(), 3);
    assert_eq!(pkts[1].0, Timestamp::from_secs(42));
    assert_eq!(pkts[1].2, frame(1, 50));
    assert_eq!(pkts[1].3, 80);
    assert_eq!(pkts[2].0, Timestamp::from_secs(43));
    assert_eq!(pkts[2].2, frame(2, 30));
    assert_eq!(st.skipped_blocks, 3);
    assert_eq!(st.corrupt_records, 0);
}

#[test]
fn pcapng_fcs_length_option_trims_frames() {
    let be = false;
    let mut v = Vec::new();
    ng_shb(&mut v, be);
    let mut b = Vec::new();
    b.extend_from_slice(&u16b(1, be));
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(&u32b(0, be));
    ng_option(&mut b, be, 13, &[32]); // if_fcslen: 32 bits
    ng_option(&mut b, be, 0, &[]);
    ng_block(&mut v, be, 1, &b);
    ng_epb(&mut v, be, 0, 0, &frame(0, 64), 64);
    let (pkts, _) = read_all(v);
    assert_eq!(pkts[0].2, frame(0, 60));
    assert_eq!(pkts[0].3, 60);
}

#[test]
fn pcapng_bad_block_lengths_are_corrupt_and_resynced() {
    let be = false;
    let mut good = Vec::new();
    ng_shb(&mut good, be);
    ng_idb(&mut good, be, 1, 0, None, None);
    ng_epb(&mut good, be, 0, 1, &frame(0, 60), 60);
    // Length not a multiple of 4.
    let mut v = good.clone();
    let at = v.len();
    ng_epb(&mut v, be, 0, 2, &frame(1, 60), 60);
    v[at + 4] = 0x4e;
    ng_epb(&mut v, be, 0, 3, &frame(2, 60), 60);
    let (pkts, st) = read_all(v);
    assert_eq!(pkts.len(), 2);
    assert_eq!(pkts[1].2, frame(2, 60));
    assert_eq!((st.corrupt_records, st.resyncs), (1, 1));
    // Trailer disagrees with the header.
    let mut v = good.clone();
    ng_epb(&mut v, be, 0, 2, &frame(1, 60), 60);
    let n = v.len();
    v[n - 4] ^= 0x10;
    ng_epb(&mut v, be, 0, 3, &frame(2, 60), 60);
    ng_epb(&mut v, be, 0, 4, &frame(3, 60), 60);
    let (pkts, st) = read_all(v);
    assert_eq!(pkts.len(), 3);
    assert_eq!((st.corrupt_records, st.resyncs), (1, 1));
    // Captured length larger than the block: the block is skipped.
    let mut v = good.clone();
    let at = v.len();
    ng_epb(&mut v, be, 0, 2, &frame(1, 60), 60);
    v[at + 20..at + 24].copy_from_slice(&u32b(61, be));
    ng_epb(&mut v, be, 0, 3, &frame(2, 60), 60);
    let (pkts, st) = read_all(v);
    assert_eq!(pkts.len(), 2);
    assert_eq!((st.corrupt_records, st.resyncs), (1, 0));
}

#[test]
fn pcapng_truncated_last_block() {
    let v = two_iface_pcapng(true);
    let (pkts, st) = read_all(v[..v.len() - 7].to_vec());
    assert_eq!(pkts.len(), 2);
    assert_eq!(st.truncated_records, 1);
}

#[test]
fn pcapng_bad_byte_order_magic_is_a_clear_error() {
    let mut v = two_iface_pcapng(false);
    v[8] = 0;
    let e = open_err(v);
    assert!(matches!(e, CaptureError::BadHeader { .. }), "{e}");
    assert!(e.to_string().contains("pcapng"), "{e}");
}

#[test]
fn pcapng_resync_over_many_large_candidates_stays_linear() {
    let be = false;
    let mut v = Vec::new();
    ng_shb(&mut v, be);
    ng_idb(&mut v, be, 1, 0, None, None);
    // A corrupt block header, then 8 MiB of "EPB, 2 MiB long" candidates whose trailers never
    // match: every 16 bytes the scan must look 2 MiB ahead.
    v.extend_from_slice(&u32b(6, be));
    v.extend_from_slice(&u32b(13, be));
    for _ in 0..(8 << 20) / 16 {
        v.extend_from_slice(&u32b(6, be));
        v.extend_from_slice(&u32b(2 << 20, be));
        v.extend_from_slice(&[0xff; 8]);
    }
    ng_epb(&mut v, be, 0, 1, &frame(0, 60), 60);
    let t = std::time::Instant::now();
    let (pkts, st) = read_all(v);
    assert!(
        t.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(pkts.len(), 1);
    assert_eq!((st.corrupt_records, st.resyncs), (1, 1));
}

// ---------------------------------------------------------------- robustness

/// Read everything; `plain_len` bounds the packet count (uncompressed input length).
fn drain(bytes: Vec<u8>, plain_len: usize) -> u64 {
    let len = plain_len as u64;
    let Ok(mut r) = FileReader::from_reader(Box::new(Cursor::new(bytes)), "prop") else {
        return 0;
    };
    let mut n = 0u64;
    while let Some(p) = r.next_packet().expect("no I/O errors from a Cursor") {
        assert!(p.orig_len as usize >= p.data.len());
        n += 1;
        // Every pcap record takes at least 16 bytes, every pcapng block at least 12.
        assert!(n <= len / 12 + 1, "more packets than the input can hold");
    }
    assert_eq!(r.stats().packets, n);
    n
}

proptest! {
    // Case count: PROPTEST_CASES (default 256).

    #[test]
    fn arbitrary_bytes_after_pcap_header(be: bool, nanos: bool, snaplen: u32, lt: u32,
                                         tail in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let mut v = pcap_header(be, nanos, snaplen, lt);
        v.extend(tail);
        let n = v.len();
        drain(v, n);
    }

    #[test]
    fn arbitrary_bytes_after_pcapng_header(be: bool, tail in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let mut v = Vec::new();
        ng_shb(&mut v, be);
        ng_idb(&mut v, be, 1, 0, Some(9), None);
        v.extend(tail);
        let n = v.len();
        drain(v, n);
    }

    #[test]
    fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let n = bytes.len();
        drain(bytes, n);
    }

    #[test]
    fn damaged_valid_files(ng: bool, gz: bool,
                           flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
                           cut in any::<prop::sample::Index>()) {
        let mut v = if ng { two_iface_pcapng(false) } else { simple_pcap(false, false, 12) };
        for (i, b) in flips {
            let i = i.index(v.len());
            if i >= 28 { v[i] = b; }
        }
        let keep = 28 + cut.index(v.len() - 28);
        v.truncate(keep);
        let n = v.len();
        if gz { v = gzip(&v); }
        drain(v, n);
    }
}
