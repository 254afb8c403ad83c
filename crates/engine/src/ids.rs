//! Flow identifiers that leave the sensor: a Zeek-style uid and the Community ID v1 hash.

use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr};

use base64::Engine as _;
use flow::FlowMeta;
use sha1::{Digest, Sha1};

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A flow id derived from the 5-tuple and first packet time, so it is the same in every run
/// over the same capture whichever worker saw the flow: `C` + 16 base62 characters.
pub fn flow_uid(meta: &FlowMeta) -> String {
    let mut h = ahash::RandomState::with_seeds(0x6d69, 0x7261, 0x646f, 0x7200).build_hasher();
    h.write_u64(meta.first_ts.as_nanos());
    for (ip, port) in [
        (meta.orig_ip, meta.orig_port),
        (meta.resp_ip, meta.resp_port),
    ] {
        match ip {
            IpAddr::V4(a) => h.write(&a.octets()),
            IpAddr::V6(a) => h.write(&a.octets()),
        }
        h.write_u16(port);
    }
    let mut a = h.finish();
    let mut b = a.rotate_left(29) ^ 0x9e37_79b9_7f4a_7c15;
    b = b.wrapping_mul(0xff51_afd7_ed55_8ccd);
    let mut s = String::with_capacity(17);
    s.push('C');
    for i in 0..16 {
        let src = if i < 8 { &mut a } else { &mut b };
        s.push(BASE62[(*src % 62) as usize] as char);
        *src /= 62;
    }
    s
}

/// Community ID v1 (https://github.com/corelight/community-id-spec) for a TCP/UDP flow.
pub fn community_id(a: SocketAddr, b: SocketAddr, proto: u8, seed: u16) -> String {
    let key = |s: &SocketAddr| -> (Vec<u8>, u16) {
        let ip = match s.ip() {
            IpAddr::V4(v) => v.octets().to_vec(),
            IpAddr::V6(v) => v.octets().to_vec(),
        };
        (ip, s.port())
    };
    let (ka, kb) = (key(&a), key(&b));
    let (first, second) = if ka <= kb { (ka, kb) } else { (kb, ka) };
    let mut h = Sha1::new();
    h.update(seed.to_be_bytes());
    h.update(&first.0);
    h.update(&second.0);
    h.update([proto, 0]);
    h.update(first.1.to_be_bytes());
    h.update(second.1.to_be_bytes());
    format!(
        "1:{}",
        base64::engine::general_purpose::STANDARD.encode(h.finalize())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn community_id_matches_the_spec_vectors() {
        // From the community-id-spec baseline (tcp, seed 0).
        let a: SocketAddr = "128.232.110.120:34855".parse().expect("addr");
        let b: SocketAddr = "66.35.250.204:80".parse().expect("addr");
        assert_eq!(community_id(a, b, 6, 0), "1:LQU9qZlK+B5F3KDmev6m5PMibrg=");
        assert_eq!(community_id(b, a, 6, 0), "1:LQU9qZlK+B5F3KDmev6m5PMibrg=");
    }
}
