//! Live capture tests on real interfaces.
//!
//! Each test builds its own pair of network namespaces joined by a veth pair (names carry the
//! process id and a counter, so tests can run in parallel and next to other runs):
//!
//! ```text
//!   netns mirador-<pid>-<n>-cap             netns mirador-<pid>-<n>-peer
//!   mc<pid>x<n>  10.99.0.1  <── veth ──>   mp<pid>x<n>  10.99.0.2
//!   (LiveSource captures here)             (traffic is sent from here)
//! ```
//!
//! IPv6 is disabled in both namespaces and the neighbours are static, so the link carries
//! nothing but what a test sends. Namespaces are entered per thread with `setns(2)` (`nix`):
//! a `LiveSource` is opened in a thread that joined the capture namespace (its socket stays
//! bound to that interface wherever it is read from), traffic is sent from `std::net`
//! sockets created in a thread that joined the peer namespace. Outside programs are used only
//! to build and remove the namespaces (`ip`, and `sysctl` through `ip netns exec`) and, in
//! one test, `setpriv` to drop capabilities. The namespaces are deleted by a
//! drop guard, also when a test panics (deleting a namespace removes its veth end, and the
//! pair with it).
//!
//! The tests skip (print why and pass) when not run as root or when `ip netns add` fails.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use capture::{CaptureError, Fanout, FanoutMode, LiveConfig, LiveSource, RawPacket};
use nix::sched::{setns, CloneFlags};

const CAP_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
const CAP_MAC: &str = "02:00:5e:99:00:01";
const PEER_MAC: &str = "02:00:5e:99:00:02";
const LINKTYPE_ETHERNET: u32 = 1;
const LINKTYPE_LINUX_SLL: u32 = 113;
const TIMEOUT_MS: u32 = 100;

// ---------------------------------------------------------------- namespaces

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn run(prog: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(prog)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {prog}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{prog} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// Two namespaces joined by a veth pair; deleted on drop.
struct Lab {
    cap_ns: String,
    peer_ns: String,
    cap_if: String,
    peer_if: String,
    /// Namespaces created so far, deleted on drop.
    created: Vec<String>,
    /// Sockets on the destination ports, so that the capture side sends no ICMP "port
    /// unreachable" back (it would be captured too).
    sinks: Vec<UdpSocket>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.created.iter().rev() {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Build a lab, or say why not and return `None` (the test then passes without running).
fn lab(test: &str) -> Option<Lab> {
    if !is_root() {
        eprintln!("SKIP {test}: needs root (network namespaces, packet sockets)");
        return None;
    }
    let pid = std::process::id();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut lab = Lab {
        cap_ns: format!("mirador-{pid}-{n}-cap"),
        peer_ns: format!("mirador-{pid}-{n}-peer"),
        cap_if: format!("mc{pid}x{n}"),
        peer_if: format!("mp{pid}x{n}"),
        created: Vec::new(),
        sinks: Vec::new(),
    };
    if let Err(e) = ip(&["netns", "add", &lab.cap_ns]) {
        eprintln!("SKIP {test}: cannot create a network namespace: {e}");
        return None;
    }
    lab.created.push(lab.cap_ns.clone());
    ip(&["netns", "add", &lab.peer_ns]).expect("second namespace");
    lab.created.push(lab.peer_ns.clone());
    lab.setup().expect("namespace setup");
    lab.sinks = in_netns(&lab.cap_ns, || {
        [9999, 9998]
            .map(|port| UdpSocket::bind((CAP_IP, port)).expect("bind sink"))
            .into()
    });
    Some(lab)
}

impl Lab {
    fn setup(&self) -> Result<(), String> {
        let (c, p) = (self.cap_ns.as_str(), self.peer_ns.as_str());
        for ns in [c, p] {
            // No IPv6 (router solicitations, MLD): the link is silent unless a test sends.
            run(
                "ip",
                &[
                    "netns",
                    "exec",
                    ns,
                    "sysctl",
                    "-qw",
                    "net.ipv6.conf.all.disable_ipv6=1",
                    "net.ipv6.conf.default.disable_ipv6=1",
                ],
            )?;
        }
        ip(&[
            "-n",
            c,
            "link",
            "add",
            &self.cap_if,
            "address",
            CAP_MAC,
            "type",
            "veth",
            "peer",
            "name",
            &self.peer_if,
            "address",
            PEER_MAC,
            "netns",
            p,
        ])?;
        ip(&["-n", c, "addr", "add", "10.99.0.1/24", "dev", &self.cap_if])?;
        ip(&["-n", p, "addr", "add", "10.99.0.2/24", "dev", &self.peer_if])?;
        // Static neighbours: no ARP on the wire.
        ip(&[
            "-n",
            c,
            "neigh",
            "replace",
            "10.99.0.2",
            "lladdr",
            PEER_MAC,
            "dev",
            &self.cap_if,
            "nud",
            "permanent",
        ])?;
        ip(&[
            "-n",
            p,
            "neigh",
            "replace",
            "10.99.0.1",
            "lladdr",
            CAP_MAC,
            "dev",
            &self.peer_if,
            "nud",
            "permanent",
        ])?;
        ip(&["-n", c, "link", "set", &self.cap_if, "up"])?;
        ip(&["-n", p, "link", "set", &self.peer_if, "up"])?;
        self.wait_path()
    }

    /// Wait until a datagram sent from the peer reaches a socket in the capture namespace:
    /// right after `link set up` the veth may still drop what is sent. Uses port 7, which no
    /// test captures.
    fn wait_path(&self) -> Result<(), String> {
        let rx = in_netns(&self.cap_ns, || UdpSocket::bind((CAP_IP, 7)))
            .map_err(|e| format!("bind in capture namespace: {e}"))?;
        rx.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let tx = in_netns(&self.peer_ns, || UdpSocket::bind((PEER_IP, 0)))
            .map_err(|e| format!("bind in peer namespace: {e}"))?;
        let start = Instant::now();
        let mut buf = [0u8; 16];
        while start.elapsed() < Duration::from_secs(10) {
            let _ = tx.send_to(b"warmup", (CAP_IP, 7));
            if rx.recv(&mut buf).is_ok() {
                return Ok(());
            }
        }
        Err("the veth pair never carried a datagram".into())
    }

    fn config(&self, filter: &str) -> LiveConfig {
        LiveConfig {
            interface: self.cap_if.clone(),
            snaplen: 65535,
            promiscuous: true,
            buffer_bytes: 4 << 20,
            filter: filter.to_string(),
            fanout: None,
            timeout_ms: TIMEOUT_MS,
        }
    }

    /// Open a source inside the capture namespace.
    fn open(&self, cfg: &LiveConfig) -> Result<LiveSource, CaptureError> {
        in_netns(&self.cap_ns, || LiveSource::open(cfg))
    }

    /// Send `per_port` datagrams from each of `sports` to `10.99.0.1:dport`, all ports in
    /// turn. Payload: source port (2 bytes), sequence number per port (4 bytes), then zeros
    /// up to `len`.
    fn send(&self, sports: &[u16], per_port: u32, dport: u16, len: usize) {
        in_netns(&self.peer_ns, || {
            let socks: Vec<UdpSocket> = sports
                .iter()
                .map(|&p| UdpSocket::bind((PEER_IP, p)).expect("bind sender"))
                .collect();
            let mut buf = vec![0u8; len.max(6)];
            let mut sent = 0u32;
            for seq in 0..per_port {
                for (s, &port) in socks.iter().zip(sports) {
                    buf[..2].copy_from_slice(&port.to_be_bytes());
                    buf[2..6].copy_from_slice(&seq.to_be_bytes());
                    s.send_to(&buf, SocketAddrV4::new(CAP_IP, dport))
                        .expect("send");
                    sent += 1;
                    // Stay far below the receive backlog (netdev_max_backlog, 1000).
                    if sent % 100 == 0 {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
        });
    }
}

/// Run `f` on a thread that joined network namespace `ns`.
fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::scope(|s| {
        s.spawn(move || {
            let fd = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            setns(&fd, CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

// ---------------------------------------------------------------- reading

/// A captured UDP datagram, copied out of the ring.
#[derive(Clone, Debug)]
struct Got {
    ts: u64,
    linktype: u32,
    len: usize,
    orig_len: u32,
    sport: u16,
    dport: u16,
    /// (source port, sequence) from the payload.
    id: (u16, u32),
}

/// UDP over IPv4 in an Ethernet or Linux cooked frame.
fn parse(p: &RawPacket<'_>) -> Option<Got> {
    let (ethertype, ip) = match p.linktype {
        LINKTYPE_ETHERNET => (p.data.get(12..14)?, p.data.get(14..)?),
        LINKTYPE_LINUX_SLL => (p.data.get(14..16)?, p.data.get(16..)?),
        _ => return None,
    };
    if ethertype != [0x08, 0x00] || ip.first()? >> 4 != 4 || *ip.get(9)? != 17 {
        return None;
    }
    let udp = ip.get(usize::from(ip[0] & 0x0f) * 4..)?;
    let port = |o: usize| Some(u16::from_be_bytes([*udp.get(o)?, *udp.get(o + 1)?]));
    let pl = udp.get(8..14)?;
    Some(Got {
        ts: p.ts.as_nanos(),
        linktype: p.linktype,
        len: p.data.len(),
        orig_len: p.orig_len,
        sport: port(0)?,
        dport: port(2)?,
        id: (
            u16::from_be_bytes([pl[0], pl[1]]),
            u32::from_be_bytes([pl[2], pl[3], pl[4], pl[5]]),
        ),
    })
}

/// Read from all `srcs` until `want` UDP datagrams arrived in total (or 10 s passed), then
/// keep reading for three more timeouts to catch any extra. Non-UDP frames are counted in
/// the second value.
fn collect(srcs: &mut [&mut LiveSource], want: usize) -> (Vec<Vec<Got>>, usize) {
    let mut got: Vec<Vec<Got>> = vec![Vec::new(); srcs.len()];
    let mut other = 0usize;
    let total = |g: &Vec<Vec<Got>>| g.iter().map(Vec::len).sum::<usize>();
    let start = Instant::now();
    let mut settle: Option<Instant> = None;
    loop {
        for (i, src) in srcs.iter_mut().enumerate() {
            src.read_batch(256, &mut |p| match parse(&p) {
                Some(g) => got[i].push(g),
                None => other += 1,
            })
            .expect("read_batch");
        }
        match settle {
            None if total(&got) >= want || start.elapsed() > Duration::from_secs(10) => {
                settle = Some(Instant::now());
            }
            Some(t) if t.elapsed() > Duration::from_millis(3 * u64::from(TIMEOUT_MS)) => break,
            _ => {}
        }
    }
    (got, other)
}

fn wall_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn live_err(e: CaptureError) -> (String, String, String) {
    let msg = e.to_string();
    match e {
        CaptureError::Live { interface, detail } => (interface, detail, msg),
        other => panic!("expected CaptureError::Live, got {other:?}"),
    }
}

// ---------------------------------------------------------------- tests

#[test]
fn exact_count_timestamps_and_linktype() {
    let Some(lab) = lab("exact_count_timestamps_and_linktype") else {
        return;
    };
    let mut src = lab.open(&lab.config("udp port 9999")).expect("open");
    assert_eq!(src.linktype(), LINKTYPE_ETHERNET);
    assert_eq!(src.interface(), lab.cap_if);

    let before = wall_nanos();
    lab.send(&[40000], 200, 9999, 100);
    // Noise the filter must keep out: another port, and the warm-up port.
    lab.send(&[40001], 20, 9998, 100);
    lab.send(&[40002], 20, 7, 100);
    let after = wall_nanos();

    let (got, other) = collect(&mut [&mut src], 200);
    let got = &got[0];
    assert_eq!(other, 0, "the filter lets only UDP port 9999 through");
    assert_eq!(got.len(), 200, "exactly the datagrams sent");
    for (i, g) in got.iter().enumerate() {
        assert_eq!((g.sport, g.dport), (40000, 9999));
        assert_eq!(
            g.id,
            (40000, i as u32),
            "in order, none missing or repeated"
        );
        assert_eq!(g.linktype, LINKTYPE_ETHERNET);
        assert_eq!(g.len, 14 + 20 + 8 + 100);
        assert_eq!(g.orig_len as usize, g.len);
    }
    assert!(
        got.windows(2).all(|w| w[0].ts <= w[1].ts),
        "timestamps never go back"
    );
    let strictly = got.windows(2).filter(|w| w[0].ts < w[1].ts).count();
    assert!(
        strictly >= 190,
        "timestamps increase ({strictly} of 199 steps)"
    );
    // Packet time is wall-clock time of the capture (1 s slack for clock granularity).
    let (first, last) = (got[0].ts, got[199].ts);
    assert!(
        first + 1_000_000_000 >= before && last <= after + 1_000_000_000,
        "timestamps {first}..{last} outside the sending window {before}..{after}"
    );
    // Nanosecond precision: with microseconds every time stamp would end in 000.
    let sub_us = got.iter().filter(|g| g.ts % 1000 != 0).count();
    assert!(
        sub_us > 100,
        "only {sub_us} of 200 time stamps have sub-µs digits"
    );

    let st = src.stats();
    assert_eq!(st.received, 200);
    assert_eq!(st.bytes, 200 * (14 + 20 + 8 + 100));
    assert_eq!(st.kernel_dropped, 0);
    assert_eq!(st.interface_dropped, 0);
    eprintln!(
        "exact_count: 200/200 captured over {:.2} ms of packet time, stats {st:?}",
        (last - first) as f64 / 1e6
    );
}

#[test]
fn silent_link_returns_within_timeout() {
    let Some(lab) = lab("silent_link_returns_within_timeout") else {
        return;
    };
    // No filter: anything at all on the link would show up.
    let mut src = lab.open(&lab.config("")).expect("open");
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let n = src
            .read_batch(64, &mut |p| panic!("silent link delivered {p:?}"))
            .expect("read_batch");
        let dt = t.elapsed();
        assert_eq!(n, 0);
        assert!(dt < Duration::from_secs(1), "read_batch blocked for {dt:?}");
        // It waits instead of spinning (poll(2) sleeps for the timeout).
        assert!(
            dt >= Duration::from_millis(u64::from(TIMEOUT_MS) / 2),
            "read_batch returned after {dt:?}, it should wait for the timeout"
        );
        times.push(dt);
    }
    eprintln!("silent link, timeout_ms={TIMEOUT_MS}: read_batch returned 0 after {times:?}");

    // One packet after a silence arrives within about one timeout (the kernel hands over a
    // partly filled ring block after timeout_ms).
    lab.send(&[40000], 1, 9999, 10);
    let sent = Instant::now();
    let mut n = 0;
    while n == 0 && sent.elapsed() < Duration::from_secs(5) {
        n = src.read_batch(64, &mut |_| {}).expect("read_batch");
    }
    let latency = sent.elapsed();
    assert_eq!(n, 1);
    assert!(latency < Duration::from_secs(1), "latency {latency:?}");
    eprintln!("single packet on a quiet link delivered after {latency:?}");
}

#[test]
fn bad_filter_and_missing_interface() {
    let Some(lab) = lab("bad_filter_and_missing_interface") else {
        return;
    };
    let e = lab
        .open(&lab.config("udp prot 9999"))
        .expect_err("a bad filter is refused");
    let (iface, detail, msg) = live_err(e);
    eprintln!("bad filter: {msg}");
    assert_eq!(iface, lab.cap_if);
    assert!(
        msg.starts_with(&format!(
            "{}: bad capture filter \"udp prot 9999\": ",
            lab.cap_if
        )),
        "{msg}"
    );
    assert!(detail.contains("syntax error"), "pcap's words: {msg}");
    assert!(detail.contains("fix capture.filter"), "the fix: {msg}");

    let missing = format!("mx{}x9", std::process::id());
    let mut cfg = lab.config("");
    cfg.interface = missing.clone();
    let (iface, _, msg) = live_err(lab.open(&cfg).expect_err("no such interface"));
    eprintln!("missing interface: {msg}");
    assert_eq!(iface, missing);
    assert!(
        msg.starts_with(&format!("{missing}: cannot capture: ")),
        "{msg}"
    );
    assert!(msg.contains("No such device"), "pcap's words: {msg}");
    assert!(msg.ends_with("; check capture.interfaces"), "{msg}");

    let mut cfg = lab.config("");
    cfg.timeout_ms = 0;
    let (_, _, msg) = live_err(lab.open(&cfg).expect_err("timeout 0 is refused"));
    assert!(msg.contains("capture.timeout_ms"), "{msg}");
}

/// Without CAP_NET_RAW the message says how to grant it. The test runs itself again as a
/// child process with every capability dropped (setpriv); the child makes the assertions.
#[test]
fn permission_denied_message() {
    const CHILD: &str = "MIRADOR_LIVE_EPERM_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let e = LiveSource::open(&LiveConfig::new("lo"))
            .expect_err("opening without CAP_NET_RAW must fail");
        let (iface, _, msg) = live_err(e);
        eprintln!("without capabilities: {msg}");
        assert_eq!(iface, "lo");
        assert!(
            msg.starts_with("lo: cannot capture: permission denied"),
            "{msg}"
        );
        assert!(
            msg.ends_with(
                "; run as root or give the binary CAP_NET_RAW and CAP_NET_ADMIN \
                 (setcap cap_net_raw,cap_net_admin+eip mirador)"
            ),
            "{msg}"
        );
        return;
    }
    if !is_root() {
        eprintln!("SKIP permission_denied_message: needs root to drop capabilities");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("setpriv")
        .args([
            "--inh-caps=-all",
            "--ambient-caps=-all",
            "--bounding-set=-all",
            "--",
        ])
        .arg(&exe)
        .args(["--exact", "permission_denied_message", "--nocapture"])
        .env(CHILD, "1")
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            eprintln!("SKIP permission_denied_message: cannot run setpriv: {e}");
            return;
        }
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() && text.contains("setpriv:") {
        eprintln!("SKIP permission_denied_message: setpriv failed: {text}");
        return;
    }
    assert!(out.status.success(), "child failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "child did not run the test:\n{text}"
    );
    eprintln!(
        "{}",
        text.lines().find(|l| l.contains("without")).unwrap_or("")
    );
}

#[test]
fn fanout_hash_delivers_each_packet_once_and_keeps_flows_together() {
    let Some(lab) = lab("fanout_hash") else {
        return;
    };
    let group = (std::process::id() & 0xffff) as u16;
    let mut cfg = lab.config("udp port 9999");
    cfg.fanout = Some(Fanout {
        group,
        mode: FanoutMode::Hash,
    });
    let mut a = lab.open(&cfg).expect("open a");
    let mut b = lab.open(&cfg).expect("open b");

    // A member with another mode is refused by the kernel.
    let mut lb = cfg.clone();
    lb.fanout = Some(Fanout {
        group,
        mode: FanoutMode::Lb,
    });
    let (_, _, msg) = live_err(lab.open(&lb).expect_err("mode mismatch refused"));
    eprintln!("fanout mode mismatch: {msg}");
    assert!(
        msg.contains(&format!("cannot join fanout group {group} (mode lb)")),
        "{msg}"
    );

    let ports: Vec<u16> = (41000..41016).collect();
    lab.send(&ports, 25, 9999, 64);
    let (got, other) = collect(&mut [&mut a, &mut b], 400);
    assert_eq!(other, 0);

    let mut seen = BTreeSet::new();
    for g in got.iter().flatten() {
        assert!(seen.insert(g.id), "packet {:?} delivered twice", g.id);
    }
    let all: BTreeSet<(u16, u32)> = ports
        .iter()
        .flat_map(|&p| (0..25).map(move |s| (p, s)))
        .collect();
    assert_eq!(seen, all, "every packet exactly once across the group");

    let mut owner: BTreeMap<u16, BTreeSet<usize>> = BTreeMap::new();
    for (i, v) in got.iter().enumerate() {
        for g in v {
            owner.entry(g.sport).or_default().insert(i);
        }
    }
    for (port, who) in &owner {
        assert_eq!(
            who.len(),
            1,
            "flow from port {port} split over sources {who:?}"
        );
    }
    let flows_a = owner.values().filter(|w| w.contains(&0)).count();
    eprintln!(
        "fanout hash: source a {} packets / {flows_a} flows, source b {} packets / {} flows",
        got[0].len(),
        got[1].len(),
        16 - flows_a
    );
    // 16 flows all hashing to one member has probability 2^-15.
    assert!(
        !got[0].is_empty() && !got[1].is_empty(),
        "fanout split nothing"
    );
    assert_eq!(a.stats().received + b.stats().received, 400);
}

#[test]
fn fanout_hash_reassembles_fragments() {
    let Some(lab) = lab("fanout_hash_defrag") else {
        return;
    };
    let mut cfg = lab.config("udp port 9999");
    cfg.fanout = Some(Fanout {
        group: 7,
        mode: FanoutMode::Hash,
    });
    let mut a = lab.open(&cfg).expect("open a");
    let mut b = lab.open(&cfg).expect("open b");
    // A control outside the group, capturing only fragments, sees what is on the wire.
    let mut frag_cfg = lab.config("ip[6:2] & 0x3fff != 0");
    frag_cfg.fanout = None;
    let mut control = lab.open(&frag_cfg).expect("open control");
    // 3000-byte datagrams leave the peer as three IPv4 fragments each (MTU 1500).
    let ports: Vec<u16> = (42000..42008).collect();
    lab.send(&ports, 5, 9999, 3000);
    let (got, other) = collect(&mut [&mut a, &mut b], 40);
    assert_eq!(other, 0);
    let all: Vec<&Got> = got.iter().flatten().collect();
    assert_eq!(all.len(), 40, "one reassembled frame per datagram");
    assert!(all.iter().all(|g| g.len == 14 + 20 + 8 + 3000));
    let ids: BTreeSet<_> = all.iter().map(|g| g.id).collect();
    assert_eq!(ids.len(), 40);
    for port in &ports {
        let on: BTreeSet<usize> = (0..2)
            .filter(|&i| got[i].iter().any(|g| g.sport == *port))
            .collect();
        assert_eq!(on.len(), 1, "flow {port} on sources {on:?}");
    }
    let mut fragments = 0usize;
    let start = Instant::now();
    while fragments < 120 && start.elapsed() < Duration::from_secs(5) {
        control
            .read_batch(256, &mut |p| {
                assert!(p.data.len() <= 14 + 1500);
                fragments += 1;
            })
            .expect("read control");
    }
    assert_eq!(
        fragments, 120,
        "the wire carried three fragments per datagram"
    );
    eprintln!(
        "fanout hash + defrag: {} / {} reassembled datagrams from {fragments} fragments",
        got[0].len(),
        got[1].len()
    );
}

#[test]
fn set_filter_changes_what_is_captured() {
    let Some(lab) = lab("set_filter") else {
        return;
    };
    let mut src = lab.open(&lab.config("udp port 9999")).expect("open");
    lab.send(&[43000], 50, 9999, 32);
    lab.send(&[43001], 50, 9998, 32);
    let (got, _) = collect(&mut [&mut src], 50);
    assert_eq!(got[0].len(), 50);
    assert!(got[0].iter().all(|g| g.dport == 9999));

    // Datagrams that matched the old filter and wait unread in the ring when the filter
    // changes are not delivered: libpcap filters them again with the new filter.
    lab.send(&[43008], 30, 9999, 32);
    std::thread::sleep(Duration::from_millis(3 * u64::from(TIMEOUT_MS)));
    src.set_filter("udp port 9998").expect("set_filter");
    lab.send(&[43002], 50, 9999, 32);
    lab.send(&[43003], 50, 9998, 32);
    let (got, _) = collect(&mut [&mut src], 50);
    assert_eq!(got[0].len(), 50);
    assert!(got[0].iter().all(|g| g.dport == 9998 && g.sport == 43003));

    // A bad filter on reload is refused and the previous one stays.
    let (_, _, msg) = live_err(src.set_filter("udp port").expect_err("refused"));
    eprintln!("bad reload: {msg}");
    assert!(msg.contains("keeps its previous filter"), "{msg}");
    lab.send(&[43004], 10, 9999, 32);
    lab.send(&[43005], 10, 9998, 32);
    let (got, _) = collect(&mut [&mut src], 10);
    assert_eq!(got[0].len(), 10);
    assert!(got[0].iter().all(|g| g.sport == 43005));

    // The empty filter captures everything.
    src.set_filter("").expect("empty filter");
    lab.send(&[43006], 10, 9999, 32);
    lab.send(&[43007], 10, 9998, 32);
    let (got, _) = collect(&mut [&mut src], 20);
    assert_eq!(got[0].len(), 20);
    assert_eq!(src.stats().received, 50 + 50 + 10 + 20);
}

/// `any` cannot be promiscuous; libpcap says so with a warning, which the source absorbs.
#[test]
fn any_device_with_promiscuous_requested() {
    let Some(lab) = lab("any_device") else {
        return;
    };
    let mut cfg = lab.config("udp port 9999");
    cfg.interface = "any".into();
    assert!(cfg.promiscuous);
    let mut src = lab.open(&cfg).expect("open any");
    assert_eq!(src.linktype(), LINKTYPE_LINUX_SLL);
    lab.send(&[44000], 20, 9999, 16);
    let (got, _) = collect(&mut [&mut src], 20);
    assert_eq!(got[0].len(), 20);
    assert!(got[0].iter().all(|g| g.linktype == LINKTYPE_LINUX_SLL));
}

/// When the interface goes away the source reports it instead of going quiet.
#[test]
fn interface_removed_while_capturing() {
    let Some(lab) = lab("interface_removed") else {
        return;
    };
    let mut src = lab.open(&lab.config("")).expect("open");
    ip(&["-n", &lab.cap_ns, "link", "del", &lab.cap_if]).expect("delete veth");
    let start = Instant::now();
    let mut calls = 0;
    let err = loop {
        calls += 1;
        match src.read_batch(64, &mut |_| {}) {
            Err(e) => break e,
            Ok(_) if start.elapsed() > Duration::from_secs(3) => {
                panic!("still reading Ok after {calls} calls")
            }
            Ok(_) => {}
        }
    };
    let (_, _, msg) = live_err(err);
    eprintln!(
        "interface removed: after {:?}, {calls} calls: {msg}",
        start.elapsed()
    );
    assert!(msg.contains("capture failed"), "{msg}");
}

/// A downed interface reads as a silent link (no error, no spinning) and capture resumes
/// when it comes back up.
#[test]
fn interface_down_and_up_again() {
    let Some(lab) = lab("interface_down") else {
        return;
    };
    let mut src = lab.open(&lab.config("udp port 9999")).expect("open");
    ip(&["-n", &lab.cap_ns, "link", "set", &lab.cap_if, "down"]).expect("down");
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let n = src
            .read_batch(64, &mut |_| {})
            .expect("a downed interface is no error");
        let dt = t.elapsed();
        assert_eq!(n, 0);
        assert!(
            dt >= Duration::from_millis(u64::from(TIMEOUT_MS) / 2) && dt < Duration::from_secs(1),
            "read_batch on a downed interface took {dt:?}"
        );
        times.push(dt);
    }
    eprintln!("interface down: read_batch returned 0 after {times:?}");
    ip(&["-n", &lab.cap_ns, "link", "set", &lab.cap_if, "up"]).expect("up");
    lab.wait_path().expect("path back");
    lab.send(&[45000], 20, 9999, 16);
    let (got, _) = collect(&mut [&mut src], 20);
    assert_eq!(
        got[0].len(),
        20,
        "capture resumes after the interface is up again"
    );
}

/// A reader that falls behind loses packets to a full ring; every one is accounted for as
/// received or kernel-dropped. Also: snaplen cuts frames, `orig_len` keeps the wire length.
#[test]
fn ring_overflow_is_counted_and_snaplen_applies() {
    let Some(lab) = lab("ring_overflow") else {
        return;
    };
    let mut cfg = lab.config("udp port 9999");
    cfg.snaplen = 128;
    cfg.buffer_bytes = 64 << 10;
    let mut src = lab.open(&cfg).expect("open");
    // Nothing is read while sending.
    lab.send(&[47000], 5000, 9999, 200);
    let mut got = Vec::new();
    let start = Instant::now();
    let mut settle: Option<Instant> = None;
    loop {
        src.read_batch(256, &mut |p| got.push(parse(&p).expect("a UDP datagram")))
            .expect("read_batch");
        let st = src.stats();
        match settle {
            None if st.received + st.kernel_dropped >= 5000
                || start.elapsed() > Duration::from_secs(10) =>
            {
                settle = Some(Instant::now())
            }
            Some(t) if t.elapsed() > Duration::from_millis(3 * u64::from(TIMEOUT_MS)) => break,
            _ => {}
        }
    }
    let got = [got];
    let st = src.stats();
    eprintln!(
        "64 KiB ring, 5000 datagrams sent unread: {} received, {} kernel-dropped",
        st.received, st.kernel_dropped
    );
    assert_eq!(st.received as usize, got[0].len());
    assert!(
        st.kernel_dropped > 0,
        "a 64 KiB ring cannot hold 5000 frames"
    );
    assert_eq!(
        st.received + st.kernel_dropped,
        5000,
        "every packet accounted for"
    );
    assert!(got[0]
        .iter()
        .all(|g| g.len == 128 && g.orig_len == 14 + 20 + 8 + 200));
    // Whatever was kept is in order.
    assert!(got[0].windows(2).all(|w| w[0].id.1 < w[1].id.1));
}

/// Not a pass/fail test: how fast one source drains a veth flooded by four sender threads,
/// and what the kernel drops. Run with `cargo test -p capture --release --test live --
/// --ignored --nocapture`.
#[test]
#[ignore = "measurement"]
fn throughput() {
    let Some(lab) = lab("throughput") else {
        return;
    };
    let mut cfg = lab.config("udp port 9999");
    cfg.buffer_bytes = 64 << 20;
    let mut src = lab.open(&cfg).expect("open");
    const PER_THREAD: u32 = 250_000;
    let done = std::sync::atomic::AtomicBool::new(false);
    let mut batches = 0u64;
    let start = Instant::now();
    std::thread::scope(|s| {
        let sender = s.spawn(|| {
            std::thread::scope(|s2| {
                for t in 0..4u16 {
                    let lab = &lab;
                    s2.spawn(move || {
                        in_netns(&lab.peer_ns, || {
                            let sock = UdpSocket::bind((PEER_IP, 46000 + t)).unwrap();
                            let buf = [0u8; 64];
                            let mut sent = 0u32;
                            for _ in 0..PER_THREAD {
                                if sock.send_to(&buf, (CAP_IP, 9999)).is_ok() {
                                    sent += 1;
                                }
                            }
                            sent
                        })
                    });
                }
            });
            done.store(true, Ordering::Relaxed);
        });
        let mut idle_after_done = 0;
        while idle_after_done < 3 {
            let n = src.read_batch(1024, &mut |_| {}).unwrap();
            batches += 1;
            if n == 0 && done.load(Ordering::Relaxed) {
                idle_after_done += 1;
            }
        }
        sender.join().unwrap();
    });
    let secs = start.elapsed().as_secs_f64() - 3.0 * f64::from(TIMEOUT_MS) / 1000.0;
    let st = src.stats();
    eprintln!(
        "throughput: sent {} datagrams, captured {} in {batches} batches, {:.0} packets/s, \
         kernel dropped {}",
        4 * PER_THREAD,
        st.received,
        st.received as f64 / secs,
        st.kernel_dropped,
    );
}
