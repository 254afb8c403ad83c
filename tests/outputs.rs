//! Alert outputs end to end: `[[outputs]]` beside `--alerts`, each in its own format and with
//! its own filter; an unreachable receiver does not hold `replay` up and its alerts stay in the
//! spool; bad `[[outputs]]` are refused naming the key and the fix.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{run, tempdir};
use serde_json::Value;
use testkit::api::{generate, ApiScenario};

fn toml_str(p: &Path) -> String {
    format!("{:?}", p.to_str().expect("UTF-8 path"))
}

/// A capture with shadow endpoints and its reference spec.
fn capture(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let t = generate(&ApiScenario {
        seed: 11,
        ..ApiScenario::default()
    });
    let pcap = dir.join("api.pcap");
    let spec = dir.join("spec.yaml");
    t.write_pcap(&pcap).expect("write the capture");
    std::fs::write(&spec, &t.spec_yaml).expect("write the spec");
    (pcap, spec)
}

#[test]
fn replay_sends_alerts_to_every_output_in_its_format_and_filter() {
    let dir = tempdir();
    let (pcap, spec) = capture(dir.path());
    let canonical = dir.path().join("alerts.jsonl");
    let ecs = dir.path().join("ecs.jsonl");
    let cef = dir.path().join("cef.log");
    let cfg = dir.path().join("sensor.toml");
    std::fs::write(
        &cfg,
        format!(
            "[inventory]\nspec = {}\n\n\
             [[outputs]]\nname = \"ecs-file\"\ntype = \"file\"\nformat = \"ecs\"\npath = {}\n\n\
             [[outputs]]\nname = \"shadow-cef\"\ntype = \"file\"\nformat = \"cef\"\npath = {}\n\
             detectors = [\"inventory.shadow_endpoint\"]\nmin_severity = \"high\"\n",
            toml_str(&spec),
            toml_str(&ecs),
            toml_str(&cef)
        ),
    )
    .unwrap();
    let r = run([
        "replay",
        "-c",
        cfg.to_str().unwrap(),
        "--no-progress",
        "--alerts",
        canonical.to_str().unwrap(),
        pcap.to_str().unwrap(),
    ]);
    r.assert_success();
    let alerts: Vec<Value> = std::fs::read_to_string(&canonical)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!alerts.is_empty(), "the capture raises alerts");
    let ids: BTreeSet<&str> = alerts
        .iter()
        .map(|a| a["alert_id"].as_str().unwrap())
        .collect();
    // ECS: every alert, event.id = alert_id.
    let ecs_ids: BTreeSet<String> = std::fs::read_to_string(&ecs)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["event"]["id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(ecs_ids, ids.iter().map(|s| s.to_string()).collect());
    // CEF: only high and critical shadow-endpoint alerts.
    let want = alerts
        .iter()
        .filter(|a| {
            a["detector"]["id"] == "inventory.shadow_endpoint"
                && matches!(a["severity"]["level"].as_str(), Some("high" | "critical"))
        })
        .count();
    let cef_text = std::fs::read_to_string(&cef).unwrap();
    assert_eq!(cef_text.lines().count(), want, "{cef_text}");
    assert!(cef_text.lines().all(|l| l.starts_with("CEF:0|Mirador|")));
    // Named in the summary on stderr.
    assert!(r.stderr.contains("output ecs-file: "), "{}", r.stderr);
}

#[test]
fn an_unreachable_receiver_leaves_alerts_in_the_spool_and_replay_exits() {
    let dir = tempdir();
    let (pcap, spec) = capture(dir.path());
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let spool = dir.path().join("spool");
    let cfg = dir.path().join("sensor.toml");
    std::fs::write(
        &cfg,
        format!(
            "[inventory]\nspec = {}\n\n\
             [[outputs]]\nname = \"siem\"\ntype = \"hec\"\nurl = \"http://127.0.0.1:{port}\"\n\
             token = \"t\"\nspool_dir = {}\nretry_initial_ms = 50\ndrain_timeout_secs = 60\n",
            toml_str(&spec),
            toml_str(&spool)
        ),
    )
    .unwrap();
    let start = Instant::now();
    let r = run([
        "replay",
        "-c",
        cfg.to_str().unwrap(),
        "--no-progress",
        pcap.to_str().unwrap(),
    ]);
    r.assert_success();
    // It did not wait out drain_timeout_secs: the spool holds the rest.
    assert!(start.elapsed() < Duration::from_secs(50));
    let line = r
        .stderr
        .lines()
        .find(|l| l.contains("output siem:"))
        .unwrap_or_else(|| panic!("{}", r.stderr));
    assert!(
        line.contains("left in the spool for the next start"),
        "{line}"
    );
    let spooled: u64 = std::fs::read_dir(&spool)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(spooled > 0);
}

#[test]
fn bad_outputs_are_refused_naming_the_key_and_the_fix() {
    for (text, needle) in [
        (
            "[[outputs]]\ntype = \"hec\"\nurl = \"http://127.0.0.1:8088\"\n",
            "outputs[0].token: type = \"hec\" needs the HEC token",
        ),
        (
            "[[outputs]]\ntype = \"file\"\npath = \"/tmp/x\"\nspool_dri = \"/tmp/s\"\n",
            "outputs[0].spool_dri: unknown key; did you mean `spool_dir`?",
        ),
        (
            "[[outputs]]\ntype = \"tcp\"\naddress = \"127.0.0.1:6514\"\nurl = \"http://x\"\n",
            "outputs[0].url: does not apply to type = \"tcp\"",
        ),
        (
            "[[outputs]]\npath = \"/tmp/x\"\n",
            "outputs[0].type: missing",
        ),
    ] {
        let dir = tempdir();
        let cfg = dir.path().join("sensor.toml");
        std::fs::write(&cfg, text).unwrap();
        let r = run(["check-config", "-c", cfg.to_str().unwrap()]);
        assert_eq!(r.status.code(), Some(1), "{text}: {}", r.stderr);
        assert!(r.stderr.contains(needle), "{text}: {}", r.stderr);
    }
}

/// GET on the daemon's metrics listener: the body.
fn get_metrics(port: u16) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn run_shows_output_metrics_and_drains_the_outputs_on_sigterm() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let dir = tempdir();
    let (pcap, spec) = capture(dir.path());
    let alerts = dir.path().join("siem.jsonl");
    let cfg = dir.path().join("sensor.toml");
    std::fs::write(
        &cfg,
        format!(
            "[metrics]\nlisten = \"127.0.0.1:0\"\n[run]\nuser = \"\"\nallow_root = true\n\
             [inventory]\nspec = {}\n\n\
             [[outputs]]\nname = \"siem-file\"\ntype = \"file\"\nformat = \"ocsf\"\npath = {}\n\
             spool_dir = {}\n",
            toml_str(&spec),
            toml_str(&alerts),
            toml_str(&dir.path().join("spool"))
        ),
    )
    .unwrap();
    let mut child = Command::new(common::bin())
        .args(["run", "-c"])
        .arg(&cfg)
        .arg("-r")
        .arg(&pcap)
        .arg("--transactions")
        .arg(dir.path().join("tx.jsonl"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mirador run -r");
    let mut stderr = child.stderr.take().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let l2 = log.clone();
    std::thread::spawn(move || {
        let mut b = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut b) {
            if n == 0 {
                break;
            }
            l2.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&b[..n]));
        }
    });
    let end = Instant::now() + Duration::from_secs(30);
    let port: u16 = loop {
        let text = log.lock().unwrap().clone();
        if let Some(p) = text.lines().find_map(|l| {
            let rest = l.split("addr=127.0.0.1:").nth(1)?;
            rest.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .ok()
        }) {
            break p;
        }
        assert!(Instant::now() < end, "no metrics address: {text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let end = Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        let m = get_metrics(port);
        if m.contains("mirador_alert_output_pending{output=\"siem-file\"}") {
            break m;
        }
        assert!(Instant::now() < end, "no output metrics: {m}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(metrics.contains("# TYPE mirador_alert_output_acked_total counter"));
    std::thread::sleep(Duration::from_millis(500));
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let status = child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let log = log.lock().unwrap().clone();
    assert_eq!(status.code(), Some(0), "{log}");
    // The shadow alerts raised at stop were delivered before exit, as OCSF findings.
    let text = std::fs::read_to_string(&alerts).unwrap_or_default();
    let findings: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!findings.is_empty(), "{log}");
    assert!(findings.iter().all(|f| f["class_uid"] == 2004));
    let line = log
        .lines()
        .find(|l| l.contains("output siem-file:"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(!line.contains("left in the spool"), "{line}");
    assert!(!line.contains("NOT DELIVERED"), "{line}");
}
