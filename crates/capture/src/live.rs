//! Live capture from a network interface through libpcap (the `pcap` crate).
//!
//! One [`LiveSource`] is one libpcap handle on one interface. On Linux libpcap captures with
//! an `AF_PACKET` socket and a `TPACKET_V3` memory-mapped ring (immediate mode stays off, so
//! the kernel fills whole blocks and hands them over when full or after `timeout_ms`). The
//! handle is put in non-blocking mode and [`LiveSource::read_batch`] waits with `poll(2)` on
//! its descriptor for at most `timeout_ms`: libpcap's own read timeout is not enough, since
//! with `TPACKET_V3` it only runs once a block has data. (Measured with libpcap 1.10.3 on
//! Linux 6.18: a blocking `pcap_dispatch` with a 100 ms timeout, immediate mode on or off, was
//! still blocked after 3 s on a silent veth.) The capture thread must see its stop flag.
//!
//! Packets are handed out as [`RawPacket`]s borrowing the ring (`pcap_dispatch`), with
//! nanosecond timestamps. Several sources on one interface can share the traffic with an
//! `AF_PACKET` fanout group ([`Fanout`]); with [`FanoutMode::Hash`] each flow stays on one
//! source and IP fragments are reassembled by the kernel before hashing.

use std::os::fd::AsFd;

use ::pcap::{Active, Capture, Precision};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use wire::Timestamp;

use crate::{CaptureError, RawPacket};

/// What to capture and how.
#[derive(Clone, Debug)]
pub struct LiveConfig {
    /// Interface name as `ip link` shows it (`any` captures all interfaces, without
    /// promiscuous mode, as Linux cooked frames).
    pub interface: String,
    /// Bytes kept of each frame (libpcap treats 0 as its maximum, 262144).
    pub snaplen: u32,
    /// Put the interface in promiscuous mode (ignored on `any`, which cannot be).
    pub promiscuous: bool,
    /// Size of the kernel ring (`pcap_set_buffer_size`); 0 keeps libpcap's default (2 MiB).
    /// At most `i32::MAX`.
    pub buffer_bytes: u64,
    /// BPF filter in pcap-filter(7) syntax; empty captures everything.
    pub filter: String,
    /// Join an `AF_PACKET` fanout group to share the interface's traffic with other sources.
    pub fanout: Option<Fanout>,
    /// Longest time [`LiveSource::read_batch`] waits on a silent link, and the time after which
    /// the kernel hands over a partly filled ring block. At least 1.
    pub timeout_ms: u32,
}

impl LiveConfig {
    /// A configuration with the defaults: snaplen 65535, promiscuous, 64 MiB ring, no filter,
    /// no fanout, 100 ms timeout.
    pub fn new(interface: impl Into<String>) -> LiveConfig {
        LiveConfig {
            interface: interface.into(),
            snaplen: 65535,
            promiscuous: true,
            buffer_bytes: 64 << 20,
            filter: String::new(),
            fanout: None,
            timeout_ms: 100,
        }
    }
}

/// An `AF_PACKET` fanout group: every socket in the group gets a share of the packets, each
/// packet goes to exactly one of them. All members must use the same mode.
#[derive(Clone, Copy, Debug)]
pub struct Fanout {
    pub group: u16,
    pub mode: FanoutMode,
}

/// How the kernel picks the member of a fanout group that gets a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FanoutMode {
    /// By flow hash (`PACKET_FANOUT_HASH` with `PACKET_FANOUT_FLAG_DEFRAG`): both a flow's
    /// packets and its IP fragments go to one member. The one to use for flow analysis.
    Hash,
    /// By the CPU that received the packet (`PACKET_FANOUT_CPU`).
    Cpu,
    /// Round robin (`PACKET_FANOUT_LB`); splits flows, so only for per-packet work.
    Lb,
}

impl FanoutMode {
    fn name(self) -> &'static str {
        match self {
            FanoutMode::Hash => "hash",
            FanoutMode::Cpu => "cpu",
            FanoutMode::Lb => "lb",
        }
    }
}

/// Counters of a live source since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveStats {
    /// Packets handed to the caller by [`LiveSource::read_batch`].
    pub received: u64,
    /// Captured bytes handed to the caller (sum of `data.len()`).
    pub bytes: u64,
    /// Packets the kernel dropped because the ring was full (`ps_drop`).
    pub kernel_dropped: u64,
    /// Packets the interface or its driver dropped (`ps_ifdrop`).
    pub interface_dropped: u64,
}

/// A live capture on one interface. Move it to the capture thread; it is `Send`, not `Sync`.
pub struct LiveSource {
    cap: Capture<Active>,
    interface: String,
    linktype: u32,
    timeout: PollTimeout,
    received: u64,
    bytes: u64,
    kernel_dropped: u64,
    interface_dropped: u64,
    /// Last raw `pcap_stats` values: libpcap's counters are 32 bits and wrap, ours do not.
    last_drop: u32,
    last_ifdrop: u32,
}

impl std::fmt::Debug for LiveSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSource")
            .field("interface", &self.interface)
            .field("linktype", &self.linktype)
            .field("received", &self.received)
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

/// The pcap-level settings a [`LiveConfig`] turns into, checked before touching libpcap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PcapParams {
    snaplen: i32,
    buffer_size: Option<i32>,
    timeout_ms: i32,
}

impl PcapParams {
    fn from_config(cfg: &LiveConfig) -> Result<PcapParams, CaptureError> {
        if cfg.timeout_ms == 0 {
            return Err(live_err(
                &cfg.interface,
                "read timeout is 0 ms, which would make the capture thread spin; set \
                 capture.timeout_ms to at least 1 (100 is a good value)",
            ));
        }
        let buffer_size = match cfg.buffer_bytes {
            0 => None,
            b => Some(i32::try_from(b).map_err(|_| {
                live_err(
                    &cfg.interface,
                    format!(
                        "capture buffer of {b} bytes is larger than libpcap accepts ({} bytes); \
                         lower capture.buffer_bytes or use fanout to spread the load",
                        i32::MAX
                    ),
                )
            })?),
        };
        Ok(PcapParams {
            // libpcap replaces a snaplen <= 0 or above its maximum with the maximum.
            snaplen: i32::try_from(cfg.snaplen).unwrap_or(0),
            buffer_size,
            timeout_ms: i32::try_from(cfg.timeout_ms).unwrap_or(i32::MAX),
        })
    }
}

impl LiveSource {
    /// Open `cfg.interface`, apply the filter, join the fanout group, and start capturing.
    ///
    /// The socket captures from activation on and joins the fanout group last, so a packet
    /// arriving while group members are still opening can reach more than one of them.
    pub fn open(cfg: &LiveConfig) -> Result<LiveSource, CaptureError> {
        let params = PcapParams::from_config(cfg)?;
        let iface = cfg.interface.as_str();
        let cap = match activate(iface, params, cfg.promiscuous) {
            // libpcap reports "promiscuous mode not supported" (on `any`) as a warning, which
            // the pcap crate turns into an error after closing the handle: open it again
            // without promiscuous mode.
            Err(e) if cfg.promiscuous && is_promisc_warning(&e) => activate(iface, params, false),
            r => r,
        }
        .map_err(|e| open_error(iface, &e))?;
        let mut cap = cap
            .setnonblock()
            .map_err(|e| live_err(iface, format!("cannot capture: {}", pcap_text(&e))))?;
        if !cfg.filter.is_empty() {
            cap.filter(&cfg.filter, true)
                .map_err(|e| filter_error(iface, &cfg.filter, &e, false))?;
        }
        if let Some(fanout) = cfg.fanout {
            join_fanout(&cap, fanout).map_err(|errno| fanout_error(iface, fanout, errno))?;
        }
        let linktype = cap.get_datalink().0 as u32;
        Ok(LiveSource {
            cap,
            interface: cfg.interface.clone(),
            linktype,
            timeout: PollTimeout::try_from(params.timeout_ms).unwrap_or(PollTimeout::MAX),
            received: 0,
            bytes: 0,
            kernel_dropped: 0,
            interface_dropped: 0,
            last_drop: 0,
            last_ifdrop: 0,
        })
    }

    /// The pcap `LINKTYPE_` of the frames (1 for Ethernet, 113/276 for Linux cooked).
    pub fn linktype(&self) -> u32 {
        self.linktype
    }

    /// The interface this source captures on.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// Read what is available, up to `max` packets, calling `f` for each; the packet borrows
    /// libpcap's ring for the duration of the call. Returns the number read. When nothing is
    /// available it waits for at most `timeout_ms` (also on a silent link) and returns 0, so
    /// the caller can check its stop flag. A signal interrupting the wait also returns 0.
    pub fn read_batch(
        &mut self,
        max: usize,
        f: &mut dyn FnMut(RawPacket<'_>),
    ) -> Result<usize, CaptureError> {
        if max == 0 {
            return Ok(0);
        }
        let got = self.drain(max, f)?;
        if got > 0 {
            return Ok(got);
        }
        let ready = {
            let mut fds = [PollFd::new(self.cap.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, self.timeout) {
                Ok(n) => n > 0,
                Err(Errno::EINTR) => false,
                Err(e) => {
                    return Err(live_err(
                        &self.interface,
                        format!("capture failed: poll: {}; restart the capture", e.desc()),
                    ))
                }
            }
        };
        // On POLLERR (interface down) libpcap reads and clears the socket error and reports
        // the interface gone as an error; a merely downed interface then reads as silent.
        if ready {
            self.drain(max, f)
        } else {
            Ok(0)
        }
    }

    /// Process whole ring blocks until `max` packets or none are left.
    fn drain(
        &mut self,
        max: usize,
        f: &mut dyn FnMut(RawPacket<'_>),
    ) -> Result<usize, CaptureError> {
        let linktype = self.linktype;
        let mut total = 0usize;
        let mut bytes = 0u64;
        while total < max {
            // pcap_dispatch takes an int count.
            let want = (max - total).min(i32::MAX as usize);
            let res = self.cap.dispatch(Some(want), |p| {
                let h = p.header;
                let data = p.data;
                bytes += data.len() as u64;
                f(RawPacket {
                    ts: timestamp(h.ts.tv_sec, h.ts.tv_usec),
                    linktype,
                    data,
                    orig_len: h.len.max(data.len() as u32),
                });
            });
            match res {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) => {
                    self.received += total as u64;
                    self.bytes += bytes;
                    return Err(read_error(&self.interface, &e));
                }
            }
        }
        self.received += total as u64;
        self.bytes += bytes;
        Ok(total)
    }

    /// Our counters and the kernel's drop counters (`pcap_stats`), widened to 64 bits.
    pub fn stats(&mut self) -> LiveStats {
        if let Ok(s) = self.cap.stats() {
            self.kernel_dropped += u64::from(s.dropped.wrapping_sub(self.last_drop));
            self.interface_dropped += u64::from(s.if_dropped.wrapping_sub(self.last_ifdrop));
            self.last_drop = s.dropped;
            self.last_ifdrop = s.if_dropped;
        }
        LiveStats {
            received: self.received,
            bytes: self.bytes,
            kernel_dropped: self.kernel_dropped,
            interface_dropped: self.interface_dropped,
        }
    }

    /// Replace the BPF filter (`""` captures everything). On error the previous filter stays.
    /// Packets already waiting in the ring are filtered again with the new filter by libpcap;
    /// those it rejects are not delivered and not counted anywhere.
    pub fn set_filter(&mut self, filter: &str) -> Result<(), CaptureError> {
        self.cap
            .filter(filter, true)
            .map_err(|e| filter_error(&self.interface, filter, &e, true))
    }
}

fn activate(iface: &str, p: PcapParams, promisc: bool) -> Result<Capture<Active>, ::pcap::Error> {
    let mut c = Capture::from_device(iface)?
        .snaplen(p.snaplen)
        .promisc(promisc)
        .timeout(p.timeout_ms)
        .immediate_mode(false)
        // Linux always supports nanosecond time stamps on live captures.
        .precision(Precision::Nano);
    if let Some(b) = p.buffer_size {
        c = c.buffer_size(b);
    }
    c.open()
}

/// Packet time from a `pcap_pkthdr` timeval holding nanoseconds (`Precision::Nano`).
/// (`time_t` and `suseconds_t` are 32 bits on some targets.)
fn timestamp(sec: impl Into<i64>, nanos: impl Into<i64>) -> Timestamp {
    let (sec, nanos): (i64, i64) = (sec.into(), nanos.into());
    Timestamp::from_secs_nanos(sec.max(0) as u64, nanos.clamp(0, 999_999_999) as u32)
}

/// The `PACKET_FANOUT` socket option value: group id in the low 16 bits, mode and flags above.
fn fanout_arg(f: Fanout) -> u32 {
    let mode = match f.mode {
        FanoutMode::Hash => libc::PACKET_FANOUT_HASH | libc::PACKET_FANOUT_FLAG_DEFRAG,
        FanoutMode::Cpu => libc::PACKET_FANOUT_CPU,
        FanoutMode::Lb => libc::PACKET_FANOUT_LB,
    };
    u32::from(f.group) | (mode << 16)
}

/// Put libpcap's packet socket into a fanout group.
#[allow(unsafe_code)]
fn join_fanout(cap: &Capture<Active>, fanout: Fanout) -> Result<(), Errno> {
    use std::os::fd::AsRawFd;
    let arg: libc::c_int = fanout_arg(fanout) as libc::c_int;
    let fd = cap.as_fd();
    // SAFETY: `fd` is the open AF_PACKET socket of a live libpcap handle, borrowed from `cap`
    // for the duration of the call, so it cannot be closed or reused meanwhile. PACKET_FANOUT
    // takes an `int` by pointer; `arg` is a live, aligned `c_int` and `optlen` is exactly its
    // size, so the kernel reads only that. The option does not change anything libpcap relies
    // on (the socket stays bound to the same interface with the same ring); it only changes
    // which packets the socket receives.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_FANOUT,
            (&arg as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(Errno::last())
    }
}

fn live_err(iface: &str, detail: impl Into<String>) -> CaptureError {
    CaptureError::Live {
        interface: iface.to_string(),
        detail: detail.into(),
    }
}

/// libpcap's own words, without the pcap crate's "libpcap error: " prefix.
fn pcap_text(e: &::pcap::Error) -> String {
    match e {
        ::pcap::Error::PcapError(s) => s.trim().to_string(),
        ::pcap::Error::InvalidInputString => "the name contains a NUL byte".to_string(),
        other => other.to_string(),
    }
}

fn is_promisc_warning(e: &::pcap::Error) -> bool {
    pcap_text(e)
        .to_ascii_lowercase()
        .contains("promiscuous mode not supported")
}

fn is_permission(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("permission") || t.contains("not permitted")
}

const PERMISSION_FIX: &str = "run as root or give the binary CAP_NET_RAW and CAP_NET_ADMIN \
                              (setcap cap_net_raw,cap_net_admin+eip mirador)";

/// The message for a failed `pcap_create`/`pcap_activate`: what libpcap said and the fix.
fn open_error(iface: &str, e: &::pcap::Error) -> CaptureError {
    live_err(iface, open_detail(iface, &pcap_text(e)))
}

fn open_detail(iface: &str, text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    if is_permission(text) {
        format!("cannot capture: permission denied ({text}); {PERMISSION_FIX}")
    } else if lower.contains("no such device") {
        format!("cannot capture: {text}; check capture.interfaces")
    } else if lower.contains("not up") || lower.contains("network is down") {
        format!("cannot capture: {text}; bring the interface up (ip link set {iface} up)")
    } else {
        format!(
            "cannot capture: {text}; check capture.interfaces and that the interface can be \
             captured on (tcpdump -i {iface})"
        )
    }
}

fn filter_error(iface: &str, filter: &str, e: &::pcap::Error, reload: bool) -> CaptureError {
    let text = pcap_text(e);
    let keep = if reload {
        "; the capture keeps its previous filter"
    } else {
        ""
    };
    let fix = if is_permission(&text) {
        PERMISSION_FIX
    } else {
        "fix capture.filter (syntax: man 7 pcap-filter; try it with tcpdump -d)"
    };
    live_err(
        iface,
        format!("bad capture filter \"{filter}\": {text}{keep}; {fix}"),
    )
}

fn fanout_error(iface: &str, f: Fanout, errno: Errno) -> CaptureError {
    let fix = match errno {
        Errno::EPERM | Errno::EACCES => PERMISSION_FIX,
        Errno::EINVAL | Errno::EEXIST => {
            "every capture in one fanout group must use the same fanout mode and no other \
             program may use the group id; change capture.fanout_group or capture.fanout"
        }
        _ => "check capture.fanout_group and capture.fanout (AF_PACKET fanout needs Linux)",
    };
    live_err(
        iface,
        format!(
            "cannot capture: cannot join fanout group {} (mode {}): {}; {fix}",
            f.group,
            f.mode.name(),
            errno.desc()
        ),
    )
}

fn read_error(iface: &str, e: &::pcap::Error) -> CaptureError {
    let text = pcap_text(e);
    let lower = text.to_ascii_lowercase();
    let fix = if lower.contains("disappeared") || lower.contains("went down") {
        "check that the interface still exists (ip link); the capture must be reopened"
    } else {
        "the capture must be reopened"
    };
    live_err(iface, format!("capture failed: {text}; {fix}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> LiveConfig {
        LiveConfig::new("eth0")
    }

    #[test]
    fn params_from_defaults() {
        let p = PcapParams::from_config(&cfg()).unwrap();
        assert_eq!(
            p,
            PcapParams {
                snaplen: 65535,
                buffer_size: Some(64 << 20),
                timeout_ms: 100
            }
        );
    }

    #[test]
    fn params_edges() {
        let mut c = cfg();
        c.buffer_bytes = 0;
        c.snaplen = u32::MAX;
        c.timeout_ms = u32::MAX;
        let p = PcapParams::from_config(&c).unwrap();
        assert_eq!(p.buffer_size, None, "0 keeps libpcap's default");
        assert_eq!(p.snaplen, 0, "out of range means libpcap's maximum");
        assert_eq!(p.timeout_ms, i32::MAX);

        c.buffer_bytes = i32::MAX as u64;
        assert_eq!(
            PcapParams::from_config(&c).unwrap().buffer_size,
            Some(i32::MAX)
        );
        c.buffer_bytes = i32::MAX as u64 + 1;
        let e = PcapParams::from_config(&c).unwrap_err().to_string();
        assert!(
            e.starts_with("eth0: capture buffer of 2147483648 bytes"),
            "{e}"
        );
        assert!(e.contains("capture.buffer_bytes"), "{e}");

        let mut c = cfg();
        c.timeout_ms = 0;
        let e = PcapParams::from_config(&c).unwrap_err().to_string();
        assert!(e.starts_with("eth0: read timeout is 0 ms"), "{e}");
        assert!(e.contains("capture.timeout_ms"), "{e}");
    }

    #[test]
    fn fanout_option_value() {
        // Values from linux/if_packet.h.
        let f = |group, mode| fanout_arg(Fanout { group, mode });
        assert_eq!(f(7, FanoutMode::Hash), 0x8000_0007);
        assert_eq!(f(0xffff, FanoutMode::Hash), 0x8000_ffff);
        assert_eq!(f(1, FanoutMode::Lb), 0x0001_0001);
        assert_eq!(f(2, FanoutMode::Cpu), 0x0002_0002);
        assert_eq!(libc::PACKET_FANOUT, 18);
        assert_eq!(libc::SOL_PACKET, 263);
    }

    #[test]
    fn nanosecond_timestamps() {
        assert_eq!(
            timestamp(1_700_000_000, 123_456_789).as_nanos(),
            1_700_000_000_123_456_789
        );
        assert_eq!(timestamp(-1i64, -5i64).as_nanos(), 0);
        assert_eq!(timestamp(1i64, 2_000_000_000i64).as_nanos(), 1_999_999_999);
    }

    #[test]
    fn open_messages() {
        let e = live_err("eth9", open_detail("eth9", "No such device exists")).to_string();
        assert_eq!(
            e,
            "eth9: cannot capture: No such device exists; check capture.interfaces"
        );
        let e = live_err(
            "eth0",
            open_detail(
                "eth0",
                "You don't have permission to perform this capture on that device \
                 (socket: Operation not permitted)",
            ),
        )
        .to_string();
        assert!(
            e.starts_with("eth0: cannot capture: permission denied ("),
            "{e}"
        );
        assert!(
            e.ends_with(
                "; run as root or give the binary CAP_NET_RAW and CAP_NET_ADMIN \
                 (setcap cap_net_raw,cap_net_admin+eip mirador)"
            ),
            "{e}"
        );
        let e = open_detail("eth1", "eth1: That device is not up");
        assert!(
            e.ends_with("bring the interface up (ip link set eth1 up)"),
            "{e}"
        );
    }

    #[test]
    fn error_texts_lose_the_crate_prefix() {
        let e = ::pcap::Error::PcapError("syntax error ".into());
        assert_eq!(pcap_text(&e), "syntax error");
        let e = filter_error("eth0", "udp prot 1", &e, true).to_string();
        assert_eq!(
            e,
            "eth0: bad capture filter \"udp prot 1\": syntax error; the capture keeps its \
             previous filter; fix capture.filter (syntax: man 7 pcap-filter; try it with \
             tcpdump -d)"
        );
        assert!(is_promisc_warning(&::pcap::Error::PcapError(
            "Promiscuous mode not supported on the \"any\" device".into()
        )));
    }

    #[test]
    fn fanout_messages() {
        let f = Fanout {
            group: 42,
            mode: FanoutMode::Lb,
        };
        let e = fanout_error("eth0", f, Errno::EINVAL).to_string();
        assert!(
            e.starts_with("eth0: cannot capture: cannot join fanout group 42 (mode lb): "),
            "{e}"
        );
        assert!(e.contains("same fanout mode"), "{e}");
    }

    #[test]
    fn source_is_send() {
        fn send<T: Send>() {}
        send::<LiveSource>();
    }
}
