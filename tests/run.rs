//! `mirador run` end to end: live capture on loopback and across a veth pair between two
//! network namespaces, with real servers and clients; signals, reload, metrics, privilege
//! drop. Tests that need root or namespaces say so and pass without running when they cannot.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The live tests share the machine's loopback and two cores: one at a time, so that one
/// test's traffic or load is not another's packet loss.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mirador")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false)
}

/// A minimal HTTP/1.1 server on a free loopback port answering every request with a small
/// body; returns the port.
fn serve() -> u16 {
    let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind test server");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(64) {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 2048];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\nConnection: close\r\n\r\n{\"ok\":true}");
        }
    });
    port
}

fn get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).expect("send");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn metric(port: u16, name: &str) -> Option<u64> {
    let text = std::panic::catch_unwind(|| get(port, "/metrics")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} "))?.trim().parse().ok())
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
}

struct Sensor {
    child: Child,
    dir: tempfile::TempDir,
    metrics: u16,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

/// A child that is killed if the test fails before it ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl std::ops::Deref for KillOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

/// Collects a child's stderr in the background; returns the buffer.
fn collect(mut from: impl Read + Send + 'static) -> std::sync::Arc<std::sync::Mutex<String>> {
    let buf = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let b = buf.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = from.read(&mut chunk) {
            if n == 0 {
                break;
            }
            b.lock()
                .expect("lock")
                .push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    });
    buf
}

/// The metrics port the sensor bound (it listens on port 0 and logs the address).
fn metrics_port(stderr: &std::sync::Arc<std::sync::Mutex<String>>) -> u16 {
    let mut port = None;
    wait_for("the metrics address in the log", || {
        let text = stderr.lock().expect("lock").clone();
        port = text.lines().find_map(|l| {
            let rest = l.split("addr=127.0.0.1:").nth(1)?;
            rest.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .ok()
        });
        port.is_some()
    });
    port.expect("port")
}

impl Drop for Sensor {
    /// A test that fails before stopping its sensor must not leave it capturing.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Sensor {
    fn start(extra: &str, iface: &str, netns: Option<&str>) -> Sensor {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("sensor.toml");
        std::fs::write(&cfg, format!("[capture]\ninterfaces = [\"{iface}\"]\n[metrics]\nlisten = \"127.0.0.1:0\"\n{extra}")).expect("config");
        let tx = dir.path().join("tx.jsonl");
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, bin()]);
                c
            }
            None => Command::new(bin()),
        };
        cmd.args(["run", "-c"])
            .arg(&cfg)
            .arg("--transactions")
            .arg(&tx);
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mirador run starts");
        let stderr = collect(child.stderr.take().expect("stderr"));
        Sensor {
            child,
            dir,
            metrics: 0,
            stderr,
        }
    }
    fn config(&self) -> PathBuf {
        self.dir.path().join("sensor.toml")
    }
    fn records(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.dir.path().join("tx.jsonl")).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).expect("record is JSON"))
            .collect()
    }
    fn stop(
        mut self,
    ) -> (
        std::process::ExitStatus,
        String,
        Vec<serde_json::Value>,
        Duration,
    ) {
        signal(&self.child, "TERM");
        let start = Instant::now();
        let status = self.child.wait().expect("wait");
        let took = start.elapsed();
        std::thread::sleep(Duration::from_millis(100));
        let err = self.stderr.lock().expect("lock").clone();
        let recs = self.records();
        (status, err, recs, took)
    }
    /// Waits until the sensor (in a namespace, whose metrics this test cannot reach) logs
    /// that it runs.
    fn ready_in(self, _netns: &str) -> Sensor {
        let log = self.stderr.clone();
        wait_for("the sensor to start", || {
            log.lock().expect("lock").contains("running")
        });
        self
    }
    /// Waits for the metrics endpoint and remembers its port.
    fn ready(mut self) -> Sensor {
        self.metrics = metrics_port(&self.stderr);
        self
    }
}

#[test]
fn live_capture_on_loopback_with_metrics_reload_and_clean_stop() {
    let _serial = serial();
    if !is_root() {
        eprintln!("skipped: capturing on lo needs root or CAP_NET_RAW");
        return;
    }
    let port = serve();
    let s = Sensor::start(
        "[run]\nuser = \"\"\nallow_root = true\nshutdown_deadline_secs = 5\n",
        "lo",
        None,
    )
    .ready();
    // The filter goes in through the file the sensor reloads.
    let base = std::fs::read_to_string(s.config()).expect("config");
    let with_filter = base.replace(
        "[capture]\n",
        &format!("[capture]\nfilter = \"tcp port {port}\"\n"),
    );
    std::fs::write(s.config(), &with_filter).expect("config");
    wait_for("metrics", || {
        metric(s.metrics, "mirador_packets_total").is_some()
    });
    signal(&s.child, "HUP");
    wait_for("reload", || {
        metric(s.metrics, "mirador_reloads_total") == Some(1)
    });
    for i in 0..5 {
        assert!(get(port, &format!("/api/v1/items/{i}")).starts_with("HTTP/1.1 200"));
    }
    wait_for("five transactions", || {
        metric(s.metrics, "mirador_transactions_total").unwrap_or(0) >= 5
    });
    // A bad config is refused and the sensor keeps running on the old one.
    std::fs::write(
        s.config(),
        with_filter.replace("[capture]\n", "[capture]\nsnaplen = 1\n"),
    )
    .expect("config");
    signal(&s.child, "HUP");
    wait_for("reload refusal", || {
        metric(s.metrics, "mirador_reload_failures_total") == Some(1)
    });
    assert!(get(port, "/after-refusal").starts_with("HTTP/1.1 200"));
    wait_for("sixth transaction", || {
        metric(s.metrics, "mirador_transactions_total").unwrap_or(0) >= 6
    });
    assert_eq!(
        get(s.metrics, "/healthz").lines().next(),
        Some("HTTP/1.1 200 OK")
    );
    // A request that arrives in pieces is still answered as a whole.
    let mut piecewise = TcpStream::connect(("127.0.0.1", s.metrics)).expect("connect");
    piecewise.write_all(b"GET /met").expect("send");
    std::thread::sleep(Duration::from_millis(200));
    piecewise
        .write_all(b"rics HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    let mut answer = String::new();
    let _ = piecewise.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 200 OK") && answer.contains("mirador_packets_total"),
        "{answer}"
    );
    assert_eq!(metric(s.metrics, "mirador_flows_evicted_total"), Some(0));
    assert!(
        metric(
            s.metrics,
            "mirador_stage_latency_seconds_count{stage=\"worker\"}"
        )
        .unwrap_or(0)
            > 0
    );
    assert!(
        metric(
            s.metrics,
            "mirador_stage_latency_seconds_count{stage=\"capture_queue\"}"
        )
        .unwrap_or(0)
            > 0
    );
    assert_eq!(metric(s.metrics, "mirador_alerts_total"), Some(0));
    assert_eq!(
        metric(s.metrics, "mirador_queue_dropped_batches_total"),
        Some(0)
    );
    assert!(metric(s.metrics, "mirador_flows_active").is_some());
    let (status, err, recs, took) = s.stop();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(took < Duration::from_secs(5), "stopped in {took:?}");
    assert!(
        err.contains("reload refused") && err.contains("capture.snaplen"),
        "{err}"
    );
    let urls: Vec<&str> = recs
        .iter()
        .filter_map(|r| r["url"]["original"].as_str())
        .collect();
    for i in 0..5 {
        let want = format!("/api/v1/items/{i}");
        assert!(
            urls.contains(&want.as_str()),
            "{want} missing from {urls:?}"
        );
    }
    assert!(urls.contains(&"/after-refusal"));
    assert!(recs
        .iter()
        .all(|r| r["http"]["response"]["status_code"] == 200));
}

#[test]
fn drops_root_to_the_configured_user_keeping_capture() {
    let _serial = serial();
    if !is_root() {
        eprintln!("skipped: needs root to drop it");
        return;
    }
    let port = serve();
    let s = Sensor::start("[run]\nuser = \"nobody\"\n", "lo", None).ready();
    wait_for("metrics", || {
        metric(s.metrics, "mirador_packets_total").is_some()
    });
    let uid = std::fs::read_to_string(format!("/proc/{}/status", s.child.id())).expect("status");
    let line = uid
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .expect("Uid line")
        .to_string();
    let caps = uid
        .lines()
        .find(|l| l.starts_with("CapEff:"))
        .expect("CapEff")
        .to_string();
    // Every thread, the ones started before the drop (metrics, outputs) included: capability
    // sets are per thread, and only the switching thread asked to keep any.
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{}/task", s.child.id())).expect("tasks") {
        let status =
            std::fs::read_to_string(task.expect("task").path().join("status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .map(|l| l[name.len()..].trim().to_string())
                .unwrap_or_default()
        };
        threads.push((
            field("Name:"),
            field("Uid:"),
            field("CapPrm:"),
            field("CapEff:"),
        ));
    }
    assert!(
        threads.iter().any(|t| t.0 == "mirador-metrics"),
        "the metrics thread, started before the drop, is there: {threads:?}"
    );
    for (name, uid, prm, eff) in &threads {
        assert!(
            !uid.split_whitespace().any(|u| u == "0"),
            "{name} still root: {uid}"
        );
        for set in [prm, eff] {
            let bits = u64::from_str_radix(set, 16).expect("capability mask");
            assert_eq!(
                bits & !0x3000,
                0,
                "{name} keeps more than NET_RAW/NET_ADMIN: {set}"
            );
        }
    }
    assert!(get(port, "/as-nobody").starts_with("HTTP/1.1 200"));
    wait_for("transaction after the drop", || {
        metric(s.metrics, "mirador_transactions_total").unwrap_or(0) >= 1
    });
    let (status, err, recs, _) = s.stop();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(
        !line.split_whitespace().skip(1).any(|u| u == "0"),
        "still root: {line}"
    );
    // CAP_NET_ADMIN (12) and CAP_NET_RAW (13) only: 0x3000.
    assert!(caps.ends_with("0000000000003000"), "{caps}");
    assert!(recs.iter().any(|r| r["url"]["original"] == "/as-nobody"));
}

#[test]
fn refuses_to_keep_root_and_names_the_fix() {
    let _serial = serial();
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    for (cfg, want) in [
        (
            "[run]\nuser = \"\"\n",
            "refusing to keep running as root: set run.user",
        ),
        (
            "[run]\nuser = \"mirador-no-such-user\"\n",
            "run.user: there is no user \"mirador-no-such-user\"",
        ),
    ] {
        let mut s = Sensor::start(cfg, "lo", None);
        let status = s.child.wait().expect("wait");
        std::thread::sleep(Duration::from_millis(100));
        let err = s.stderr.lock().expect("lock").clone();
        assert_eq!(status.code(), Some(1), "{err}");
        assert!(err.contains(want), "{err}");
    }
}

#[test]
fn run_without_an_interface_says_how_to_give_one() {
    let _serial = serial();
    let out = Command::new(bin())
        .args(["run"])
        .env_remove("MIRADOR_CAPTURE__INTERFACES")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no interface to capture on: give -i IFACE or set capture.interfaces"),
        "{err}"
    );
}

/// Two namespaces joined by a veth pair; a real server in one, a real client in the other;
/// the sensor captures on the server's end of the veth.
struct Netns {
    a: String,
    b: String,
}

impl Netns {
    fn create() -> Option<Netns> {
        let id = std::process::id();
        let n = Netns {
            a: format!("mir-a-{id}"),
            b: format!("mir-b-{id}"),
        };
        let ip = |args: &[&str]| {
            Command::new("ip")
                .args(args)
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        };
        let ok = ip(&["netns", "add", &n.a])
            && ip(&["netns", "add", &n.b])
            && ip(&[
                "link",
                "add",
                "veth-mir-a",
                "netns",
                &n.a,
                "type",
                "veth",
                "peer",
                "name",
                "veth-mir-b",
                "netns",
                &n.b,
            ])
            && ip(&[
                "-n",
                &n.a,
                "addr",
                "add",
                "10.203.0.1/24",
                "dev",
                "veth-mir-a",
            ])
            && ip(&[
                "-n",
                &n.b,
                "addr",
                "add",
                "10.203.0.2/24",
                "dev",
                "veth-mir-b",
            ])
            && ip(&["-n", &n.a, "link", "set", "veth-mir-a", "up"])
            && ip(&["-n", &n.b, "link", "set", "veth-mir-b", "up"])
            && ip(&["-n", &n.a, "link", "set", "lo", "up"]);
        if ok {
            Some(n)
        } else {
            drop(n);
            None
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

#[test]
fn every_transaction_between_two_namespaces_is_seen() {
    let _serial = serial();
    if !is_root() {
        eprintln!("skipped: network namespaces need root");
        return;
    }
    let Some(ns) = Netns::create() else {
        eprintln!("skipped: cannot create network namespaces here");
        return;
    };
    let www = tempfile::tempdir().expect("www");
    for i in 0..20 {
        std::fs::write(
            www.path().join(format!("item{i}.json")),
            format!("{{\"id\":{i}}}"),
        )
        .expect("file");
    }
    let mut server = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.a,
            "python3",
            "-m",
            "http.server",
            "8080",
            "--bind",
            "10.203.0.1",
            "--directory",
        ])
        .arg(www.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 http.server");
    // Two workers and three analysis shards: the sharded live path end to end.
    let s = Sensor::start(
        "[run]\nuser = \"\"\nallow_root = true\n[pipeline]\nworkers = 2\nanalysis_shards = 3\n",
        "veth-mir-a",
        Some(&ns.a),
    );
    std::thread::sleep(Duration::from_millis(800));
    let client = r#"
import http.client, sys
ok = 0
for i in range(20):
    c = http.client.HTTPConnection("10.203.0.1", 8080, timeout=5)
    c.request("GET", f"/item{i}.json", headers={"User-Agent": "mirador-test"})
    r = c.getresponse(); r.read(); ok += r.status == 200
    c.close()
print(ok)
"#;
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.b, "python3", "-c", client])
        .output()
        .expect("client");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "20",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(Duration::from_millis(500));
    let (status, err, recs, _) = s.stop();
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(status.code(), Some(0), "{err}");
    let mut urls: Vec<String> = recs
        .iter()
        .filter_map(|r| r["url"]["original"].as_str().map(String::from))
        .collect();
    urls.sort();
    let mut want: Vec<String> = (0..20).map(|i| format!("/item{i}.json")).collect();
    want.sort();
    assert_eq!(urls, want, "{err}");
    assert!(recs
        .iter()
        .all(|r| r["source"]["ip"] == "10.203.0.2" && r["destination"]["ip"] == "10.203.0.1"));
    assert!(recs
        .iter()
        .all(|r| r["user_agent"]["original"] == "mirador-test"));
}

/// An output that accepts nothing (stdout into a pipe nobody reads) costs records, counted,
/// never capture: every transaction is still seen and the sensor still stops on time.
#[test]
fn a_stalled_output_does_not_slow_capture_or_stop() {
    let _serial = serial();
    if !is_root() {
        eprintln!("skipped: capturing on lo needs root or CAP_NET_RAW");
        return;
    }
    let port = serve();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("sensor.toml");
    std::fs::write(
        &cfg,
        format!(
            "[capture]\ninterfaces = [\"lo\"]\nfilter = \"tcp port {port}\"\n[pipeline]\nqueue_batches = 4096\n[metrics]\nlisten = \"127.0.0.1:0\"\n[run]\nuser = \"\"\nallow_root = true\nshutdown_deadline_secs = 2\n"
        ),
    )
    .expect("config");
    // stdout is a pipe this test never reads: it fills after 64 KiB and then blocks writes.
    let mut child = Command::new(bin())
        .args(["run", "-c"])
        .arg(&cfg)
        .args(["--transactions", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mirador run");
    let stderr = collect(child.stderr.take().expect("stderr"));
    let mut child = KillOnDrop(child);
    let metrics = metrics_port(&stderr);
    let n = 60u64;
    for i in 0..n {
        // Long targets make the records large, so the pipe fills quickly.
        let path = format!("/stalled/{i}/{}", "x".repeat(2000));
        assert!(get(port, &path).starts_with("HTTP/1.1 200"));
    }
    wait_for("every transaction", || {
        metric(metrics, "mirador_transactions_total") == Some(n)
    });
    assert_eq!(
        metric(metrics, "mirador_queue_dropped_batches_total"),
        Some(0)
    );
    assert_eq!(
        metric(metrics, "mirador_kernel_dropped_packets_total"),
        Some(0)
    );
    assert!(
        metric(metrics, "mirador_records_written_total").unwrap_or(0) < n,
        "the stalled pipe took everything"
    );
    let started = Instant::now();
    signal(&child, "TERM");
    let status = child.wait().expect("wait");
    let took = started.elapsed();
    std::thread::sleep(Duration::from_millis(100));
    let err = stderr.lock().expect("lock").clone();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(took < Duration::from_secs(5), "stopped in {took:?}");
    assert!(err.contains("exiting anyway"), "{err}");
}

/// tcpreplay puts a real capture back on the wire (a veth between two namespaces) and the
/// live sensor sees exactly the transactions that replaying the file gives.
#[test]
fn tcpreplay_onto_a_veth_gives_the_same_transactions_as_the_file() {
    let _serial = serial();
    if !is_root() {
        eprintln!("skipped: network namespaces need root");
        return;
    }
    if Command::new("tcpreplay").arg("--version").output().is_err() {
        eprintln!("skipped: tcpreplay is not installed (apt-get install tcpreplay)");
        return;
    }
    let Some(ns) = Netns::create() else {
        eprintln!("skipped: cannot create network namespaces here");
        return;
    };
    let capture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/loopback-api.pcap");
    let from_file = Command::new(bin())
        .args(["replay", "--transactions", "-"])
        .arg(&capture)
        .output()
        .expect("replay");
    let want: Vec<String> = String::from_utf8_lossy(&from_file.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("record");
            format!(
                "{} {} {}",
                v["http"]["request"]["method"],
                v["url"]["original"],
                v["http"]["response"]["status_code"]
            )
        })
        .collect();
    assert!(want.len() >= 10, "the fixture holds its transactions");
    let s = Sensor::start(
        "[run]\nuser = \"\"\nallow_root = true\n",
        "veth-mir-a",
        Some(&ns.a),
    )
    .ready_in(&ns.a);
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.b,
            "tcpreplay",
            "-q",
            "-i",
            "veth-mir-b",
            "--mbps=100",
        ])
        .arg(&capture)
        .output()
        .expect("tcpreplay");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(Duration::from_millis(500));
    let (status, err, recs, _) = s.stop();
    assert_eq!(status.code(), Some(0), "{err}");
    let mut got: Vec<String> = recs
        .iter()
        .map(|v| {
            format!(
                "{} {} {}",
                v["http"]["request"]["method"],
                v["url"]["original"],
                v["http"]["response"]["status_code"]
            )
        })
        .collect();
    let mut want = want;
    got.sort();
    want.sort();
    assert_eq!(got, want, "{err}");
}

/// `run -r FILE` reads captures through the live path (shards, delivery) and keeps running
/// until told to stop; its transactions are the ones `replay` gives.
#[test]
fn run_reads_capture_files_through_the_live_path() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("sensor.toml");
    std::fs::write(&cfg, "[pipeline]\nworkers = 2\nanalysis_shards = 2\n[metrics]\nlisten = \"127.0.0.1:0\"\n[run]\nuser = \"\"\nallow_root = true\n").expect("config");
    let capture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/loopback-api.pcap");
    let tx = dir.path().join("tx.jsonl");
    let mut child = Command::new(bin())
        .args(["run", "-c"])
        .arg(&cfg)
        .arg("-r")
        .arg(&capture)
        .arg("--transactions")
        .arg(&tx)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mirador run -r");
    let stderr = collect(child.stderr.take().expect("stderr"));
    let mut child = KillOnDrop(child);
    let metrics = metrics_port(&stderr);
    wait_for("the file's transactions", || {
        metric(metrics, "mirador_records_written_total").unwrap_or(0) >= 10
    });
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "run keeps running after the file"
    );
    signal(&child, "TERM");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0), "{}", stderr.lock().expect("lock"));
    let key = |l: &str| {
        let v: serde_json::Value = serde_json::from_str(l).expect("record");
        format!(
            "{} {} {}",
            v["http"]["request"]["method"],
            v["url"]["original"],
            v["http"]["response"]["status_code"]
        )
    };
    let mut got: Vec<String> = std::fs::read_to_string(&tx)
        .expect("tx")
        .lines()
        .map(key)
        .collect();
    let replay = Command::new(bin())
        .args(["replay", "--transactions", "-"])
        .arg(&capture)
        .output()
        .expect("replay");
    let mut want: Vec<String> = String::from_utf8_lossy(&replay.stdout)
        .lines()
        .map(key)
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
}

/// The daemon saves its detection model at shutdown and carries on from it at the next start
/// (a restart does not relearn from zero).
#[test]
fn the_daemon_saves_its_model_and_restores_it() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("model.bin");
    let cfg = dir.path().join("sensor.toml");
    std::fs::write(
        &cfg,
        format!(
            "[detect]\nmodel_path = \"{}\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n[run]\nuser = \"\"\nallow_root = true\n",
            model.display()
        ),
    )
    .expect("config");
    let capture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/loopback-api.pcap");
    let once = || {
        let tx = dir.path().join("tx.jsonl");
        let mut child = Command::new(bin())
            .args(["run", "-c"])
            .arg(&cfg)
            .arg("-r")
            .arg(&capture)
            .arg("--transactions")
            .arg(&tx)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mirador run -r");
        let stderr = collect(child.stderr.take().expect("stderr"));
        let child = KillOnDrop(child);
        let metrics = metrics_port(&stderr);
        wait_for("the file's transactions", || {
            metric(metrics, "mirador_records_written_total").unwrap_or(0) >= 10
        });
        signal(&child, "TERM");
        let mut child = child;
        let status = child.wait().expect("wait");
        let log = stderr.lock().expect("lock").clone();
        assert_eq!(status.code(), Some(0), "{log}");
        let scored = std::fs::read_to_string(&tx)
            .expect("tx")
            .lines()
            .filter(|l| l.contains("\"anomaly\":{\"score\":"))
            .count();
        assert!(scored >= 10, "records carry scores");
        log
    };
    let first = once();
    assert!(first.contains("model saved"), "{first}");
    assert!(!first.contains("model restored"), "{first}");
    let size = std::fs::metadata(&model).expect("model written").len();
    assert!(size > 1000, "{size}");
    let second = once();
    assert!(second.contains("model restored"), "{second}");
    // It learnt on from where the first run stopped.
    let learnt = |log: &str| -> u64 {
        log.lines()
            .find(|l| l.contains("model restored"))
            .and_then(|l| l.split("learnt=").nth(1))
            .and_then(|v| v.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    assert!(learnt(&second) >= 10, "{second}");
}
