//! Feeds arbitrary frames to the wire decoder: it must never panic and must keep its
//! counters consistent and its fragment pool within bounds.
//!
//! Input: first byte picks the link type; the rest is first decoded as one frame, then
//! split into several frames (each prefixed by a 1-byte length and a 1-byte time step)
//! fed to the same decoder, to exercise fragment reassembly, eviction and expiry.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::{Decoded, Decoder, DecoderConfig, LinkType, Timestamp};

const LINKS: [LinkType; 10] = [
    LinkType::Null,
    LinkType::Ethernet,
    LinkType::RawIp,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
    LinkType::Loop,
    LinkType::Ipv4,
    LinkType::Ipv6,
    LinkType::Nflog,
    LinkType::Unknown(147),
];

const MAX_SETS: usize = 4;
const MAX_BYTES: usize = 2048;

fn check_out(out: &Decoded<'_>) {
    if let Decoded::Tcp(seg) = out {
        assert!(seg.payload.len() <= 1 << 17);
    }
}

fn check_stats(d: &Decoder) {
    let s = d.stats();
    assert_eq!(
        s.packets,
        s.tcp + s.not_tcp + s.fragments_held + s.malformed
    );
    assert!(s.total_anomalies() >= s.malformed);
    assert!(s.fragment_bytes_held as usize <= MAX_BYTES);
    assert!(d.fragment_sets() <= MAX_SETS);
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let link = LINKS[pick as usize % LINKS.len()];
    let mut d = Decoder::new(DecoderConfig {
        max_fragment_sets: MAX_SETS,
        max_fragment_bytes: MAX_BYTES,
        max_datagram_bytes: 4096,
        fragment_timeout_ns: 100,
        max_tunnel_depth: 2,
        ..DecoderConfig::default()
    });

    // The whole input as one frame.
    check_out(&d.decode(link, Timestamp(0), rest));
    check_stats(&d);

    // The input as a sequence of frames: [len][time step][len bytes]...
    let mut ts = 0u64;
    let mut cur = rest;
    while let [len, step, tail @ ..] = cur {
        let n = (*len as usize).min(tail.len());
        let (frame, next) = tail.split_at(n);
        ts += *step as u64;
        check_out(&d.decode(link, Timestamp(ts), frame));
        check_stats(&d);
        cur = next;
    }
    d.expire(Timestamp(ts + 101));
    assert_eq!(d.fragment_sets(), 0);
    assert_eq!(d.stats().fragment_bytes_held, 0);
});
