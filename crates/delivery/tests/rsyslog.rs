//! Delivery to a real rsyslog (Debian's `rsyslog` and `rsyslog-gnutls`) started by the test
//! on 127.0.0.1: imtcp with octet-counted RFC 5424 frames, and imtcp over TLS (gtls driver,
//! client certificate required, throwaway CA made with `openssl`). What arrived is read back
//! from the file rsyslog writes. Skipped, with the reason printed, when a tool is missing.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::rsyslog::{make_certs, tools, Certs, Rsyslog};
use common::{ctx, free_port, wait_until};
use delivery::synthetic::alert;
use delivery::{OutputConfig, OutputType, Outputs};

fn tcp(port: u16) -> OutputConfig {
    let mut c = OutputConfig::new(OutputType::Tcp);
    c.address = Some(format!("127.0.0.1:{port}"));
    c.retry_initial_ms = 20;
    c.retry_max_ms = 300;
    c.timeout_secs = 3;
    c
}

#[test]
fn rsyslog_tcp_octet_counted_with_an_outage() {
    if !tools(false) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let rs = Rsyslog::start(dir.path(), port, None);
    let mut c = tcp(port);
    c.spool_dir = dir.path().join("spool").display().to_string();
    let out = Outputs::start(&[c], &ctx()).unwrap();
    let a: Vec<_> = (0..400)
        .map(|i| alert("rsyslog", i, "rate.client", 75))
        .collect();
    out.submit(&a[..200]);
    assert!(wait_until(Duration::from_secs(20), || rs.ids().len() == 200));
    rs.stop();
    out.submit(&a[200..]);
    assert!(wait_until(Duration::from_secs(30), || out.metrics()[0]
        .1
        .retried
        > 0));
    let back = Instant::now();
    let rs = Rsyslog::start(dir.path(), port, None);
    let all: BTreeSet<String> = a.iter().map(|x| x.alert_id.clone()).collect();
    assert!(
        wait_until(Duration::from_secs(30), || rs.ids() == all),
        "{} of 400",
        rs.ids().len()
    );
    eprintln!(
        "rsyslog tcp: 200 alerts drained {:?} after rsyslog came back",
        back.elapsed()
    );
    let left = out.finish(Some(Instant::now() + Duration::from_secs(5)));
    assert_eq!(left[0].pending, 0);
    // Frames were parsed as RFC 5424 (rsyslog re-emits them with our MSGID and SD).
    let line = rs.lines().into_iter().next().unwrap();
    assert!(
        line.contains(" mirador - rate.client [mirador@32473 id=\""),
        "{line}"
    );
    // Secrets masked on the way out.
    assert!(!rs.lines().iter().any(|l| l.contains("access_token=abc")));
}

fn tls(port: u16, certs: &Certs) -> OutputConfig {
    let mut c = tcp(port);
    c.tls = Some(true);
    c.tls_ca_file = Some(certs.ca.display().to_string());
    c.tls_cert_file = Some(certs.client_cert.display().to_string());
    c.tls_key_file = Some(certs.client_key.display().to_string());
    c
}

#[test]
fn rsyslog_tls_with_a_client_certificate() {
    if !tools(true) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let port = free_port();
    let rs = Rsyslog::start(dir.path(), port, Some(&certs));
    let out = Outputs::start(&[tls(port, &certs)], &ctx()).unwrap();
    let a: Vec<_> = (0..300)
        .map(|i| alert("rsyslog-tls", i, "bola", 95))
        .collect();
    out.submit(&a);
    let all: BTreeSet<String> = a.iter().map(|x| x.alert_id.clone()).collect();
    assert!(
        wait_until(Duration::from_secs(30), || rs.ids() == all),
        "{} of 300",
        rs.ids().len()
    );
    let left = out.finish(Some(Instant::now() + Duration::from_secs(5)));
    assert_eq!(left[0].metrics.acked, 300);
    assert_eq!(left[0].pending, 0);
}

#[test]
fn rsyslog_tls_refuses_a_server_the_ca_did_not_sign() {
    if !tools(true) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let port = free_port();
    let rs = Rsyslog::start(dir.path(), port, Some(&certs));
    let mut c = tls(port, &certs);
    c.tls_ca_file = Some(certs.other_ca.display().to_string());
    let out = Outputs::start(&[c], &ctx()).unwrap();
    out.submit(&[alert("rsyslog-badca", 0, "bola", 95)]);
    assert!(wait_until(Duration::from_secs(30), || out.metrics()[0]
        .1
        .retried
        >= 2));
    let left = out.finish(Some(Instant::now() + Duration::from_millis(300)));
    assert_eq!(left[0].metrics.acked, 0);
    assert_eq!(
        left[0].pending, 1,
        "kept, not delivered to an unverified server"
    );
    assert!(rs.ids().is_empty());
}

#[test]
fn rsyslog_udp_datagrams() {
    if !tools(false) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (port, udp) = (free_port(), free_port());
    let rs = Rsyslog::start_full(dir.path(), port, None, Some(udp));
    let mut c = OutputConfig::new(OutputType::SyslogUdp);
    c.address = Some(format!("127.0.0.1:{udp}"));
    let out = Outputs::start(&[c], &ctx()).unwrap();
    let a: Vec<_> = (0..100)
        .map(|i| alert("rsyslog-udp", i, "rate.client", 45))
        .collect();
    for chunk in a.chunks(10) {
        out.submit(chunk);
        std::thread::sleep(Duration::from_millis(5));
    }
    let all: BTreeSet<String> = a.iter().map(|x| x.alert_id.clone()).collect();
    assert!(
        wait_until(Duration::from_secs(20), || rs.ids() == all),
        "{} of 100",
        rs.ids().len()
    );
    let left = out.finish(Some(Instant::now() + Duration::from_secs(5)));
    assert_eq!(left[0].metrics.acked, 100);
}
