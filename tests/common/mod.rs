//! Shared helpers of the end-to-end tests: write a capture, run the real `mirador` binary on
//! it, and read back the transaction records (stdout) and the run summary (stderr).
//!
//! Included by each test file with `mod common;`; not every file uses every helper.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use serde_json::Value;
use testkit::{Conversation, LinkOpts, Timestamp};

/// The binary under test, as cargo built it for this test run.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mirador")
}

/// Root of the Cargo workspace (`/work/main` in the project's checkout).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root exists")
}

/// What one run of the binary produced.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    /// The transaction records: every stdout line parsed as JSON (a line that is not JSON
    /// fails the test).
    pub fn records(&self) -> Vec<Value> {
        let text = std::str::from_utf8(&self.stdout).expect("stdout is UTF-8");
        text.lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l}"))
            })
            .collect()
    }

    /// The records in the compact form of [`brief`].
    pub fn briefs(&self) -> Vec<String> {
        self.records().iter().map(brief).collect()
    }

    /// A counter of the summary's "drops and evictions" table (or any line whose first
    /// word is `name` followed by a number). Panics when the line is missing.
    pub fn counter(&self, name: &str) -> u64 {
        counter(&self.stderr, name)
    }

    /// `flows N  (peak concurrent M)` → (N, M).
    pub fn flows(&self) -> (u64, u64) {
        let line = self
            .stderr
            .lines()
            .find(|l| l.trim_start().starts_with("flows "))
            .unwrap_or_else(|| panic!("no `flows` line in the summary:\n{}", self.stderr));
        let nums: Vec<u64> = line
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().expect("digits"))
            .collect();
        assert_eq!(nums.len(), 2, "unexpected flows line: {line}");
        (nums[0], nums[1])
    }

    /// The number after `label` on the summary line that starts with `line_start`, e.g.
    /// `summary_number("reassembly", "out-of-order segments")`.
    pub fn summary_number(&self, line_start: &str, label: &str) -> u64 {
        let line = self
            .stderr
            .lines()
            .find(|l| l.trim_start().starts_with(line_start))
            .unwrap_or_else(|| panic!("no `{line_start}` line in the summary:\n{}", self.stderr));
        let at = line
            .find(label)
            .unwrap_or_else(|| panic!("no `{label}` on the line: {line}"));
        line[at + label.len()..]
            .split_whitespace()
            .next()
            .and_then(|w| w.trim_matches(|c: char| !c.is_ascii_digit()).parse().ok())
            .unwrap_or_else(|| panic!("no number after `{label}`: {line}"))
    }

    pub fn assert_success(&self) -> &Self {
        assert!(
            self.status.success(),
            "mirador failed ({}):\n{}",
            self.status,
            self.stderr
        );
        self
    }
}

/// First number after `name` on the summary line whose first word is `name`.
pub fn counter(stderr: &str, name: &str) -> u64 {
    for line in stderr.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some(name) {
            if let Some(n) = words.next().and_then(|w| w.parse().ok()) {
                return n;
            }
        }
    }
    panic!("no `{name}` counter in the summary:\n{stderr}");
}

/// Runs the binary with `args`; never fails (the caller checks the status).
pub fn run<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the mirador binary runs");
    Run {
        status: out.status,
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `mirador replay [-c CONFIG] --transactions - FILE...`, which must succeed.
pub fn replay_files(config: Option<&Path>, files: &[&Path]) -> Run {
    let mut args: Vec<&OsStr> = vec![OsStr::new("replay")];
    if let Some(c) = config {
        args.push(OsStr::new("-c"));
        args.push(c.as_os_str());
    }
    args.push(OsStr::new("--transactions"));
    args.push(OsStr::new("-"));
    args.extend(files.iter().map(|f| f.as_os_str()));
    let r = run(args);
    r.assert_success();
    r
}

/// A fresh temporary directory for one test.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("mirador-e2e-")
        .tempdir()
        .expect("temp dir")
}

/// Writes `frames` as a classic pcap and replays it.
pub fn replay_frames(frames: &[(Timestamp, Vec<u8>)], linktype: u32) -> Run {
    let dir = tempdir();
    let path = dir.path().join("capture.pcap");
    testkit::write_pcap(&path, frames, linktype).expect("write pcap");
    replay_files(None, &[&path])
}

/// Renders `conv` with `link`, writes it as a pcap and replays it. Checks what holds for
/// every record of one connection: source and destination are the conversation's client and
/// server, and all records carry the same `mirador.flow.uid`.
pub fn replay_conv(conv: &Conversation, link: &LinkOpts) -> Run {
    let run = replay_frames(&conv.render(link), link.linktype);
    let recs = run.records();
    assert_endpoints(&recs, conv.client_addr(), conv.server_addr());
    if let Some(first) = recs.first() {
        let uid = flow_uid(first);
        for r in &recs {
            assert_eq!(flow_uid(r), uid, "one connection, one flow uid: {r}");
        }
    }
    run
}

/// Replays a conversation on plain Ethernet.
pub fn replay_eth(conv: &Conversation) -> Run {
    replay_conv(conv, &LinkOpts::ethernet())
}

/// The default test client and server.
pub fn client() -> SocketAddr {
    "10.0.0.1:40000".parse().expect("addr")
}

pub fn server() -> SocketAddr {
    "10.0.0.2:80".parse().expect("addr")
}

/// A conversation between [`client`] and [`server`] that has done its handshake.
pub fn conv() -> Conversation {
    let mut c = Conversation::new(client(), server());
    c.handshake();
    c
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A record in one line: `#INDEX METHOD URL STATUS req=N resp=N ANOMALIES`, with `-` for
/// absent values (`req`/`resp` are `http.{request,response}.body.bytes`), e.g.
/// `#0 GET /a 200 req=0 resp=5 -` or `#1 - - 200 req=0 resp=2 unsolicited_response`.
pub fn brief(r: &Value) -> String {
    let anomalies = match &r["mirador"]["anomalies"] {
        Value::Array(a) => a.iter().map(s).collect::<Vec<_>>().join(","),
        Value::Null => "-".into(),
        other => panic!("mirador.anomalies is not an array: {other}"),
    };
    format!(
        "#{} {} {} {} req={} resp={} {}",
        s(&r["mirador"]["tx"]["index"]),
        s(&r["http"]["request"]["method"]),
        s(&r["url"]["original"]),
        s(&r["http"]["response"]["status_code"]),
        s(&r["http"]["request"]["body"]["bytes"]),
        s(&r["http"]["response"]["body"]["bytes"]),
        anomalies
    )
}

/// `source.ip:port` and `destination.ip:port` of a record as socket addresses.
pub fn endpoints(r: &Value) -> (SocketAddr, SocketAddr) {
    let one = |side: &str| -> SocketAddr {
        let ip: std::net::IpAddr = r[side]["ip"]
            .as_str()
            .unwrap_or_else(|| panic!("{side}.ip missing: {r}"))
            .parse()
            .unwrap_or_else(|e| panic!("{side}.ip does not parse ({e}): {r}"));
        let port = r[side]["port"]
            .as_u64()
            .unwrap_or_else(|| panic!("{side}.port missing: {r}"));
        SocketAddr::new(ip, u16::try_from(port).expect("port fits u16"))
    };
    (one("source"), one("destination"))
}

/// Asserts every record names `client` as source and `server` as destination.
pub fn assert_endpoints(records: &[Value], client: SocketAddr, server: SocketAddr) {
    for r in records {
        assert_eq!(
            endpoints(r),
            (client, server),
            "source/destination must be client/server: {r}"
        );
    }
}

/// `mirador.flow.uid` of a record.
pub fn flow_uid(r: &Value) -> String {
    r["mirador"]["flow"]["uid"]
        .as_str()
        .unwrap_or_else(|| panic!("mirador.flow.uid missing: {r}"))
        .to_string()
}
