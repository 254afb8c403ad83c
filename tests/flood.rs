//! A SYN flood: 1,000,000 SYNs from distinct random-looking sources against a flow table
//! bounded to 10,000 flows. The table must stay within its bound (evicting the embryonic
//! flows) and the process's memory must stay bounded.

mod common;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::time::Instant;

use common::*;
use testkit::{PcapWriter, Timestamp};

const SYNS: u32 = 1_000_000;
const MAX_FLOWS: u64 = 10_000;
/// Peak resident set of the replay, in KiB.
const MAX_RSS_KIB: u64 = 200 * 1024;

fn sum16(mut acc: u32, b: &[u8]) -> u32 {
    for c in b.chunks(2) {
        acc += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    acc
}

fn fold(mut acc: u32) -> [u8; 2] {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    (!(acc as u16)).to_be_bytes()
}

/// Ethernet + IPv4 + TCP SYN (54 bytes) to 10.9.9.9:80; the source, ports, sequence and
/// checksums are patched per packet.
fn template() -> [u8; 54] {
    let mut f = [0u8; 54];
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&40u16.to_be_bytes());
    ip[8] = 64; // ttl
    ip[9] = 6; // tcp
    ip[16..20].copy_from_slice(&[10, 9, 9, 9]);
    let tcp = &mut f[34..54];
    tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x02; // SYN
    tcp[14..16].copy_from_slice(&64_240u16.to_be_bytes());
    f
}

/// xorshift64*: deterministic "random" ports and sequence numbers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn write_flood(path: &std::path::Path) {
    let mut w = PcapWriter::new(
        BufWriter::with_capacity(1 << 20, File::create(path).expect("create")),
        1,
        65_535,
        false,
    )
    .expect("pcap header");
    let mut f = template();
    let mut rng = Rng(0x6d69_7261_646f_7221);
    let start = Timestamp::from_secs(1_700_000_000);
    for i in 0..SYNS {
        // Distinct sources in 10.0.0.0/8: an odd multiplier permutes the 24 host bits.
        let host = i.wrapping_mul(0x9e_3779) & 0x00ff_ffff;
        let src = (10u32 << 24) | host;
        let r = rng.next();
        let sport = 1024 + (r as u16 % 64_000);
        let seq = (r >> 32) as u32;
        f[18..20].copy_from_slice(&(i as u16).to_be_bytes()); // IP id
        f[26..30].copy_from_slice(&src.to_be_bytes());
        f[24..26].copy_from_slice(&[0, 0]);
        let ck = fold(sum16(0, &f[14..34]));
        f[24..26].copy_from_slice(&ck);
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[38..42].copy_from_slice(&seq.to_be_bytes());
        f[50..52].copy_from_slice(&[0, 0]);
        let pseudo = sum16(sum16(0, &f[26..34]), &[0, 6, 0, 20]);
        let ck = fold(sum16(pseudo, &f[34..54]));
        f[50..52].copy_from_slice(&ck);
        // 1 µs apart: the whole flood is one second of packet time, far below the
        // embryonic timeout, so only eviction can keep the table bounded.
        w.write(start.plus_nanos(u64::from(i) * 1_000), &f)
            .expect("write");
    }
    w.into_inner().flush().expect("flush");
}

#[test]
fn syn_flood_stays_within_max_flows() {
    let dir = tempdir();
    let pcap = dir.path().join("synflood.pcap");
    let t0 = Instant::now();
    write_flood(&pcap);
    let written = t0.elapsed();
    let size = std::fs::metadata(&pcap).unwrap().len();
    assert_eq!(size, 24 + u64::from(SYNS) * (16 + 54));
    let cfg = dir.path().join("sensor.toml");
    std::fs::write(&cfg, format!("[flow]\nmax_flows = {MAX_FLOWS}\n")).unwrap();

    // Under GNU time when it is installed, for the peak RSS; plain otherwise.
    let time = std::path::Path::new("/usr/bin/time");
    let t1 = Instant::now();
    let run = if time.exists() {
        let out = std::process::Command::new(time)
            .args(["-f", "maxrss_kib %M", bin(), "replay", "-c"])
            .arg(&cfg)
            .arg(&pcap)
            .output()
            .expect("run under /usr/bin/time");
        Run {
            status: out.status,
            stdout: out.stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    } else {
        eprintln!("flood: /usr/bin/time not found, skipping the peak-RSS check");
        run([
            std::ffi::OsStr::new("replay"),
            "-c".as_ref(),
            cfg.as_os_str(),
            pcap.as_os_str(),
        ])
    };
    let replayed = t1.elapsed();
    run.assert_success();
    eprintln!(
        "flood: wrote {size} bytes in {written:.2?}, replayed in {replayed:.2?}\n{}",
        run.stderr
    );

    assert_eq!(run.counter("packets"), u64::from(SYNS));
    let (created, peak) = run.flows();
    assert_eq!(created, u64::from(SYNS), "one flow per SYN");
    assert!(
        peak <= MAX_FLOWS,
        "peak concurrent flows {peak} > {MAX_FLOWS}"
    );
    assert!(peak >= MAX_FLOWS - 1, "the table did fill up: peak {peak}");
    let evicted = run.counter("flow.evicted_embryonic");
    assert!(
        evicted >= u64::from(SYNS) - MAX_FLOWS,
        "evicted embryonic flows {evicted}"
    );
    assert_eq!(run.counter("flow.evicted_established"), 0);
    assert_eq!(run.summary_number("transactions", "transactions"), 0);
    if time.exists() {
        let rss = run.counter("maxrss_kib");
        assert!(
            rss < MAX_RSS_KIB,
            "peak RSS {rss} KiB is over {MAX_RSS_KIB} KiB"
        );
    }
}
