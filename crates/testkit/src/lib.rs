//! Test support: writes pcap and pcapng files and builds TCP conversations frame by frame,
//! so tests across the project can force the hard cases (reordering, overlaps, loss,
//! retransmission, pipelining, chunked and compressed bodies, IPv6, VLAN, fragmentation,
//! sequence wrap) with a few lines of code.
//!
//! It is for tests, fixtures and benchmarks only: it must never be a dependency of the
//! sensor itself. It panics on misuse (an impossible request is a bug in the test), but its
//! output is always well-formed unless a mutation helper was asked to break it, and it is
//! fully deterministic (no clock, no randomness).

pub mod abuse;
pub mod api;
pub mod http;
mod net;
mod writer;

use std::net::SocketAddr;
use std::path::Path;

pub use net::LinkOpts;
pub use wire::Timestamp;
pub use writer::{write_pcap, PcapWriter, PcapngWriter};

/// TCP flag bits used in [`Seg::flags`].
pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}
use flags::{ACK, FIN, PSH, RST, SYN};

/// Direction of a segment relative to the connection's initiator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    ToServer,
    ToClient,
}

impl Dir {
    pub fn other(self) -> Dir {
        match self {
            Dir::ToServer => Dir::ToClient,
            Dir::ToClient => Dir::ToServer,
        }
    }
}

/// One TCP segment of a [`Conversation`], before rendering to a frame.
#[derive(Clone, Debug)]
pub struct Seg {
    pub dir: Dir,
    pub ts: Timestamp,
    pub seq: u32,
    pub ack: u32,
    /// TCP flag bits, see [`flags`].
    pub flags: u8,
    pub payload: Vec<u8>,
}

impl Seg {
    /// Sequence number just after this segment (SYN and FIN count one each).
    pub fn end_seq(&self) -> u32 {
        let ctl = (self.flags & SYN != 0) as u32 + (self.flags & FIN != 0) as u32;
        self.seq
            .wrapping_add(self.payload.len() as u32)
            .wrapping_add(ctl)
    }
}

/// Default start time of a conversation: 2023-11-14T22:13:20Z.
pub const DEFAULT_START_SECS: u64 = 1_700_000_000;
/// Time between consecutive segments.
pub const SEG_STEP_NS: u64 = 100_000;
pub const DEFAULT_CLIENT_ISN: u32 = 1_000_000;
pub const DEFAULT_SERVER_ISN: u32 = 3_000_000_000;
pub const DEFAULT_MSS: usize = 1460;

/// A scripted TCP connection between `client` and `server`. Each call appends segments with
/// consistent sequence and acknowledgment numbers; [`Conversation::segs_mut`] and the
/// mutation helpers ([`swap`], [`drop_seg`], [`duplicate`], [`split`], [`overlap_with`]…)
/// then break it in controlled ways, and [`Conversation::render`] turns it into frames.
#[derive(Clone, Debug)]
pub struct Conversation {
    client: SocketAddr,
    server: SocketAddr,
    now: Timestamp,
    mss: usize,
    isn: [u32; 2],
    next: [u32; 2],
    segs: Vec<Seg>,
}

fn idx(dir: Dir) -> usize {
    match dir {
        Dir::ToServer => 0,
        Dir::ToClient => 1,
    }
}

impl Conversation {
    /// IPv4 or IPv6 by the addresses (both must be the same family). Starts at
    /// [`DEFAULT_START_SECS`] with ISNs [`DEFAULT_CLIENT_ISN`] / [`DEFAULT_SERVER_ISN`].
    pub fn new(client: SocketAddr, server: SocketAddr) -> Self {
        assert_eq!(
            client.is_ipv4(),
            server.is_ipv4(),
            "testkit: client and server must both be IPv4 or both IPv6"
        );
        let isn = [DEFAULT_CLIENT_ISN, DEFAULT_SERVER_ISN];
        Conversation {
            client,
            server,
            now: Timestamp::from_secs(DEFAULT_START_SECS),
            mss: DEFAULT_MSS,
            isn,
            next: [isn[0].wrapping_add(1), isn[1].wrapping_add(1)],
            segs: Vec::new(),
        }
    }

    /// Time of the next segment. Call before adding segments.
    pub fn with_start(mut self, ts: Timestamp) -> Self {
        self.now = ts;
        self
    }

    /// Largest payload per segment (data is split at this size); also sent in the SYN's MSS
    /// option.
    pub fn with_mss(mut self, mss: usize) -> Self {
        assert!(mss > 0 && mss <= 65_000, "testkit: mss must be 1..=65000");
        self.mss = mss;
        self
    }

    /// Initial sequence numbers. Call before adding segments; values near `u32::MAX` make
    /// the stream wrap.
    pub fn with_isn(mut self, client: u32, server: u32) -> Self {
        self.isn = [client, server];
        self.next = [client.wrapping_add(1), server.wrapping_add(1)];
        self
    }

    /// ISNs just below `u32::MAX` (client `u32::MAX - 100`, server `u32::MAX - 1000`), so
    /// both directions' sequence numbers wrap within the first kilobyte or so.
    pub fn with_wrapping_isn(self) -> Self {
        self.with_isn(u32::MAX - 100, u32::MAX - 1000)
    }

    pub fn client_addr(&self) -> SocketAddr {
        self.client
    }

    pub fn server_addr(&self) -> SocketAddr {
        self.server
    }

    /// Time the next segment will get.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Next sequence number `dir` will send.
    pub fn next_seq(&self, dir: Dir) -> u32 {
        self.next[idx(dir)]
    }

    fn push(&mut self, dir: Dir, seq: u32, ack: u32, flags: u8, payload: Vec<u8>) {
        self.segs.push(Seg {
            dir,
            ts: self.now,
            seq,
            ack,
            flags,
            payload,
        });
        self.now = self.now.plus_nanos(SEG_STEP_NS);
    }

    /// SYN, SYN-ACK, ACK.
    pub fn handshake(&mut self) -> &mut Self {
        let [c, s] = self.isn;
        self.push(Dir::ToServer, c, 0, SYN, Vec::new());
        self.push(Dir::ToClient, s, c.wrapping_add(1), SYN | ACK, Vec::new());
        self.next = [c.wrapping_add(1), s.wrapping_add(1)];
        self.push(Dir::ToServer, self.next[0], self.next[1], ACK, Vec::new());
        self
    }

    /// `data` from `dir`, split at the MSS; the last segment carries PSH. Every segment
    /// acknowledges everything the peer has sent; 100 µs between segments.
    pub fn send(&mut self, dir: Dir, data: &[u8]) -> &mut Self {
        let n = data.len().div_ceil(self.mss);
        for (i, chunk) in data.chunks(self.mss).enumerate() {
            let flags = if i + 1 == n { ACK | PSH } else { ACK };
            let (seq, ack) = (self.next[idx(dir)], self.next[idx(dir.other())]);
            self.push(dir, seq, ack, flags, chunk.to_vec());
            self.next[idx(dir)] = seq.wrapping_add(chunk.len() as u32);
        }
        self
    }

    /// Data from the client, see [`Conversation::send`].
    pub fn client(&mut self, data: &[u8]) -> &mut Self {
        self.send(Dir::ToServer, data)
    }

    /// Data from the server, see [`Conversation::send`].
    pub fn server(&mut self, data: &[u8]) -> &mut Self {
        self.send(Dir::ToClient, data)
    }

    fn control(&mut self, dir: Dir, flags: u8) {
        let (seq, ack) = (self.next[idx(dir)], self.next[idx(dir.other())]);
        self.push(dir, seq, ack, flags, Vec::new());
        if flags & FIN != 0 {
            self.next[idx(dir)] = seq.wrapping_add(1);
        }
    }

    /// A pure ACK from `dir`.
    pub fn ack_from(&mut self, dir: Dir) -> &mut Self {
        self.control(dir, ACK);
        self
    }

    /// FIN (with ACK) from `dir`.
    pub fn fin_from(&mut self, dir: Dir) -> &mut Self {
        self.control(dir, FIN | ACK);
        self
    }

    /// RST (with ACK) from `dir`.
    pub fn rst_from(&mut self, dir: Dir) -> &mut Self {
        self.control(dir, RST | ACK);
        self
    }

    /// FIN from the client, FIN from the server, final ACK from the client.
    pub fn close(&mut self) -> &mut Self {
        self.fin_from(Dir::ToServer)
            .fin_from(Dir::ToClient)
            .ack_from(Dir::ToServer)
    }

    /// Let time pass before the next segment.
    pub fn advance(&mut self, nanos: u64) -> &mut Self {
        self.now = self.now.plus_nanos(nanos);
        self
    }

    pub fn segs(&self) -> &[Seg] {
        &self.segs
    }

    /// For mutation: reorder, drop (loss), duplicate (retransmit), overlap. See the free
    /// functions of this crate.
    pub fn segs_mut(&mut self) -> &mut Vec<Seg> {
        &mut self.segs
    }

    /// One frame per segment, in `segs` order (several when `link` asks for
    /// fragmentation), each with its segment's timestamp.
    pub fn render(&self, link: &LinkOpts) -> Vec<(Timestamp, Vec<u8>)> {
        let mut out = Vec::with_capacity(self.segs.len());
        for (i, seg) in self.segs.iter().enumerate() {
            let (src, dst) = match seg.dir {
                Dir::ToServer => (self.client, self.server),
                Dir::ToClient => (self.server, self.client),
            };
            let mss = (seg.flags & SYN != 0).then_some(self.mss as u16);
            let tcp = net::tcp_segment(src, dst, seg, mss);
            // IP identification: the frame's position, so the output is deterministic.
            for frame in net::frames(src, dst, seg.dir, &tcp, (i + 1) as u32, link) {
                out.push((seg.ts, frame));
            }
        }
        out
    }

    /// Render and write a classic pcap (µs) at `path`.
    pub fn write_pcap(&self, path: &Path, link: &LinkOpts) -> std::io::Result<()> {
        write_pcap(path, &self.render(link), link.linktype)
    }
}

/// Interleave several rendered captures by timestamp (stable: equal times keep argument
/// order), e.g. two connections on the same link.
pub fn merge(parts: Vec<Vec<(Timestamp, Vec<u8>)>>) -> Vec<(Timestamp, Vec<u8>)> {
    let mut all: Vec<_> = parts.into_iter().flatten().collect();
    all.sort_by_key(|(ts, _)| *ts);
    all
}

// ---- Mutation helpers. Timestamps stay with positions unless stated, so the capture
// ---- remains in time order, as a real capture of a reordered stream would be.

/// Exchange segments `i` and `j` (reordering). Timestamps stay in place.
pub fn swap(segs: &mut [Seg], i: usize, j: usize) {
    let (ti, tj) = (segs[i].ts, segs[j].ts);
    segs.swap(i, j);
    segs[i].ts = ti;
    segs[j].ts = tj;
}

/// Move segment `from` to index `to` (a late arrival when `to > from`). Timestamps stay in
/// place.
pub fn move_seg(segs: &mut Vec<Seg>, from: usize, to: usize) {
    let times: Vec<Timestamp> = segs.iter().map(|s| s.ts).collect();
    let s = segs.remove(from);
    segs.insert(to, s);
    for (s, t) in segs.iter_mut().zip(times) {
        s.ts = t;
    }
}

/// Remove segment `i` (loss before the capture point) and return it.
pub fn drop_seg(segs: &mut Vec<Seg>, i: usize) -> Seg {
    segs.remove(i)
}

/// Insert a copy of segment `i` right after it, 1 µs later (a retransmission).
pub fn duplicate(segs: &mut Vec<Seg>, i: usize) {
    let mut copy = segs[i].clone();
    copy.ts = copy.ts.plus_nanos(1_000);
    segs.insert(i + 1, copy);
}

/// Split segment `i` after `at` payload bytes into two segments with the same timestamp.
/// The first keeps SYN, the second keeps FIN and PSH.
pub fn split(segs: &mut Vec<Seg>, i: usize, at: usize) {
    let s = &mut segs[i];
    assert!(
        at > 0 && at < s.payload.len(),
        "testkit: split point {at} must be inside the payload (len {})",
        s.payload.len()
    );
    let tail = s.payload.split_off(at);
    let mut second = s.clone();
    second.payload = tail;
    second.seq = s
        .seq
        .wrapping_add(at as u32)
        .wrapping_add((s.flags & SYN != 0) as u32);
    second.flags &= !SYN;
    s.flags &= !(FIN | PSH);
    segs.insert(i + 1, second);
}

/// Make segment `i` overlap the next segment of the same direction that follows it in
/// sequence space: its payload is extended by the first `bytes_from_next` bytes of that
/// segment. With `altered`, the extra bytes differ from the originals (each byte + 1), an
/// inconsistent retransmission that a reassembler must detect.
pub fn overlap_with(segs: &mut [Seg], i: usize, bytes_from_next: usize, altered: bool) {
    let (dir, end) = (segs[i].dir, segs[i].end_seq());
    let next = segs
        .iter()
        .position(|s| s.dir == dir && s.seq == end && !s.payload.is_empty())
        .expect("testkit: overlap_with needs a following segment in the same direction");
    let n = bytes_from_next.min(segs[next].payload.len());
    let mut extra = segs[next].payload[..n].to_vec();
    if altered {
        for b in &mut extra {
            *b = b.wrapping_add(1);
        }
    }
    segs[i].payload.extend_from_slice(&extra);
}

/// Give the segments evenly spaced timestamps from `start`, `step` apart, in their current
/// order.
pub fn retime(segs: &mut [Seg], start: Timestamp, step: u64) {
    for (k, s) in segs.iter_mut().enumerate() {
        s.ts = start.plus_nanos(step * k as u64);
    }
}
