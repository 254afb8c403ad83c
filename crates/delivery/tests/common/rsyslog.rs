//! A real rsyslog started on 127.0.0.1 (imtcp, optionally TLS through the gtls driver with a
//! client certificate required), and throwaway certificates made with `openssl`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::wait_until;

pub const RSYSLOGD: &str = "/usr/sbin/rsyslogd";

pub fn tools(need_tls: bool) -> bool {
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

pub struct Certs {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub other_ca: PathBuf,
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
pub fn make_certs(dir: &Path) -> Certs {
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

pub struct Rsyslog {
    child: Child,
    out: PathBuf,
}

impl Rsyslog {
    pub fn start(dir: &Path, port: u16, tls: Option<&Certs>) -> Rsyslog {
        Rsyslog::start_full(dir, port, tls, None)
    }

    /// Also listens for RFC 5426 datagrams on 127.0.0.1:`udp` (imudp).
    pub fn start_full(dir: &Path, port: u16, tls: Option<&Certs>, udp: Option<u16>) -> Rsyslog {
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
{udp}
ruleset(name="out") {{
  action(type="omfile" file="{out}" template="RSYSLOG_SyslogProtocol23Format")
}}
"#,
            work = work.display(),
            udp = udp
                .map(|p| format!(
                    "module(load=\"imudp\")\ninput(type=\"imudp\" address=\"127.0.0.1\" port=\"{p}\" ruleset=\"out\")"
                ))
                .unwrap_or_default(),
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
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }

    pub fn ids(&self) -> BTreeSet<String> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let i = l.find("[mirador@32473 id=\"")? + 19;
                Some(l[i..i + 32].to_string())
            })
            .collect()
    }

    pub fn lines(&self) -> Vec<String> {
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
