//! Delivery to a real rsyslog (Debian's `rsyslog` and `rsyslog-gnutls`) started by the test
//! on 127.0.0.1: imtcp with octet-counted RFC 5424 frames, and imtcp over TLS (gtls driver,
//! client certificate required, throwaway CA made with `openssl`). What arrived is read back
//! from the file rsyslog writes. Skipped, with the reason printed, when a tool is missing.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{ctx, free_port, wait_until};
use delivery::synthetic::alert;
use delivery::{OutputConfig, OutputType, Outputs};

const RSYSLOGD: &str = "/usr/sbin/rsyslogd";

fn tools(need_tls: bool) -> bool {
    if !Path::new(RSYSLOGD).exists() {
        eprintln!("SKIPPED: {RSYSLOGD} missing (apt-get install rsyslog rsyslog-gnutls)");
        return false;
    }
    if need_tls {
        if Command::new("openssl").arg("version").output().is_err() {
            eprintln!("SKIPPED: openssl missing");
            return false;
        }
        if !Path::new("/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so").exists()
            && !Path::new("/usr/lib/rsyslog/lmnsd_gtls.so").exists()
        {
            eprintln!("SKIPPED: rsyslog's gtls driver missing (apt-get install rsyslog-gnutls)");
            return false;
        }
    }
    true
}

struct Certs {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    other_ca: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A throwaway CA, a server certificate for 127.0.0.1 and a client certificate.
fn make_certs(dir: &Path) -> Certs {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    for ca in ["ca", "other-ca"] {
        let (key, pem, subj) = (
            format!("{ca}.key"),
            format!("{ca}.pem"),
            format!("/CN=mirador test {ca}"),
        );
        let mut a = vec!["req", "-x509"];
        a.extend(ec);
        a.extend(["-keyout", &key, "-out", &pem, "-days", "2", "-subj", &subj]);
        openssl(dir, &a);
    }
    for (who, ext) in [
        (
            "server",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
        ),
        (
            "client",
            "subjectAltName=DNS:mirador-sensor\nextendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n",
        ),
    ] {
        std::fs::write(dir.join(format!("{who}.ext")), ext).unwrap();
        let mut a = vec!["req".to_string()];
        a.extend(ec.iter().map(|s| s.to_string()));
        a.extend(
            [
                "-keyout",
                &format!("{who}.key"),
                "-out",
                &format!("{who}.csr"),
                "-subj",
                &format!("/CN={who}"),
            ]
            .map(String::from),
        );
        openssl(dir, &a.iter().map(String::as_str).collect::<Vec<_>>());
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{who}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{who}.pem"),
                "-days",
                "2",
                "-extfile",
                &format!("{who}.ext"),
            ],
        );
    }
    Certs {
        ca: dir.join("ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
        client_cert: dir.join("client.pem"),
        client_key: dir.join("client.key"),
        other_ca: dir.join("other-ca.pem"),
    }
}

struct Rsyslog {
    child: Child,
    out: PathBuf,
}

impl Rsyslog {
    fn start(dir: &Path, port: u16, tls: Option<&Certs>) -> Rsyslog {
        let work = dir.join("work");
        std::fs::create_dir_all(&work).unwrap();
        let out = dir.join("out.log");
        let (global_tls, module) = match tls {
            None => (String::new(), "module(load=\"imtcp\")".to_string()),
            Some(c) => (
                format!(
                    " DefaultNetstreamDriverCAFile=\"{}\" DefaultNetstreamDriverCertFile=\"{}\" DefaultNetstreamDriverKeyFile=\"{}\"",
                    c.ca.display(),
                    c.server_cert.display(),
                    c.server_key.display()
                ),
                "module(load=\"imtcp\" StreamDriver.Name=\"gtls\" StreamDriver.Mode=\"1\" StreamDriver.AuthMode=\"x509/certvalid\")".to_string(),
            ),
        };
        let conf = format!(
            r#"global(workDirectory="{work}" maxMessageSize="64k"{global_tls})
{module}
input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="out")
ruleset(name="out") {{
  action(type="omfile" file="{out}" template="RSYSLOG_SyslogProtocol23Format")
}}
"#,
            work = work.display(),
            out = out.display(),
        );
        let conf_path = dir.join("rsyslog.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(RSYSLOGD)
            .args(["-n", "-iNONE", "-f"])
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        assert!(
            wait_until(Duration::from_secs(10), || std::net::TcpStream::connect((
                "127.0.0.1",
                port
            ))
            .is_ok()),
            "rsyslogd did not listen on 127.0.0.1:{port}"
        );
        Rsyslog { child, out }
    }

    /// SIGTERM: rsyslog writes what it has and exits.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }

    fn ids(&self) -> BTreeSet<String> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let i = l.find("[mirador@32473 id=\"")? + 19;
                Some(l[i..i + 32].to_string())
            })
            .collect()
    }

    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
    assert!(wait_until(Duration::from_secs(10), || out.metrics()[0]
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
    assert!(wait_until(Duration::from_secs(10), || out.metrics()[0]
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
