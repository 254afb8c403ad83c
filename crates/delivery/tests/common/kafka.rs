//! A real Kafka-protocol broker for the tests: tansu (`cargo install tansu`, in-memory
//! storage), started on 127.0.0.1, topics created through librdkafka's admin API, and messages
//! read back with kcat (`kcat -C -J`).
//!
//! TLS: tansu 0.6.0 cannot be started with TLS from its command line (`--cert` and `--key`
//! are in one clap group, so giving both is refused, and it needs both), so TLS is terminated
//! in front of it by stunnel (Debian `stunnel4`, OpenSSL): tansu listens on a second port and
//! advertises the TLS one, so every connection of a client goes through TLS.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use serde_json::Value;

use super::wait_until;

/// Whether this run is CI (`CI` set and not "false"/"0"): there a missing tool fails the test,
/// since `scripts/setup-debian.sh` installs it.
fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The tansu binary: `$TANSU`, else `tansu` on the PATH, else cargo's bin directory.
pub fn tansu_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TANSU") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    on_path("tansu").or_else(|| {
        let home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
        Some(home.join("bin/tansu")).filter(|p| p.is_file())
    })
}

/// Whether tansu and kcat (and stunnel for TLS) are there; outside CI a missing one skips the
/// test (the reason is printed), in CI it fails it.
pub fn tools() -> bool {
    tools_for(false)
}

pub fn tools_for(tls: bool) -> bool {
    let mut missing = Vec::new();
    if tls && on_path("stunnel4").is_none() && on_path("stunnel").is_none() {
        missing.push("stunnel (apt-get install stunnel4)");
    }
    if tansu_bin().is_none() {
        missing.push(
            "tansu (cargo install --locked tansu --no-default-features --features dynostore)",
        );
    }
    if on_path("kcat").is_none() {
        missing.push("kcat (apt-get install kcat)");
    }
    if missing.is_empty() {
        return true;
    }
    let why = format!(
        "{} missing; scripts/setup-debian.sh --tests installs it",
        missing.join(" and ")
    );
    assert!(!ci(), "CI is set but {why}");
    eprintln!("SKIPPED: {why}");
    false
}

/// How the broker listens.
#[derive(Clone, Debug, Default)]
pub struct Security {
    /// Server certificate and key (TLS on the listener).
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// librdkafka/kcat settings of a client of that broker (the CA file with TLS).
#[derive(Clone, Debug, Default)]
pub struct ClientAuth {
    pub ca: Option<PathBuf>,
}

impl ClientAuth {
    fn props(&self) -> Vec<(String, String)> {
        match &self.ca {
            None => vec![("security.protocol".into(), "plaintext".into())],
            Some(ca) => vec![
                ("security.protocol".into(), "ssl".into()),
                ("ssl.ca.location".into(), ca.display().to_string()),
            ],
        }
    }
}

pub struct Broker {
    child: Option<Child>,
    /// stunnel in front of tansu, with TLS.
    tls: Option<Child>,
    pub port: u16,
    pub log: PathBuf,
}

/// One message read back.
#[derive(Clone, Debug)]
pub struct Msg {
    pub partition: i64,
    pub key: String,
    pub payload: String,
    pub headers: BTreeMap<String, String>,
}

impl Broker {
    /// Starts tansu on 127.0.0.1:`port` (in-memory storage: a restart starts empty) and waits
    /// until it accepts connections. Its output goes to `dir/tansu-<port>.log`.
    pub fn start(dir: &Path, port: u16, sec: &Security) -> Broker {
        let bin = tansu_bin().expect("tools() checked");
        let url = format!("tcp://127.0.0.1:{port}");
        // With TLS, tansu listens behind stunnel and advertises stunnel's port.
        let inner = if sec.tls.is_some() {
            super::free_port()
        } else {
            port
        };
        let listen = format!("tcp://127.0.0.1:{inner}");
        let log = dir.join(format!("tansu-{port}.log"));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut cmd = Command::new(bin);
        cmd.args(["broker", "--listener-url", &listen])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .arg("--silent")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        let child = cmd.spawn().expect("start tansu");
        let mut b = Broker {
            child: Some(child),
            tls: None,
            port,
            log,
        };
        b.wait_listening(inner, "tansu");
        if let Some((cert, key)) = &sec.tls {
            let conf = dir.join(format!("stunnel-{port}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "foreground = yes\npid =\noutput = {}\n[kafka]\naccept = 127.0.0.1:{port}\nconnect = 127.0.0.1:{inner}\ncert = {}\nkey = {}\n",
                    b.log.display(),
                    cert.display(),
                    key.display()
                ),
            )
            .unwrap();
            let bin = on_path("stunnel4")
                .or_else(|| on_path("stunnel"))
                .expect("tools_for(true) checked");
            b.tls = Some(
                Command::new(bin)
                    .arg(&conf)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start stunnel"),
            );
            b.wait_listening(port, "stunnel");
        }
        b
    }

    fn wait_listening(&mut self, port: u16, what: &str) {
        let up = wait_until(Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        if !up {
            self.kill();
            panic!(
                "{what} did not listen on {port} within 30 s: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Creates a topic through librdkafka's admin API (works over TLS, unlike the tansu CLI).
    pub fn create_topic(&self, topic: &str, partitions: i32, auth: &ClientAuth) {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.addr());
        for (k, v) in auth.props() {
            c.set(k, v);
        }
        let admin: AdminClient<DefaultClientContext> = c.create().expect("admin client");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let res = rt
            .block_on(admin.create_topics(
                &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
                &opts,
            ))
            .expect("create_topics");
        for r in res {
            if let Err((t, e)) = r {
                panic!(
                    "creating topic {t}: {e}; broker log: {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
        }
    }

    /// Every message of `topic` from the beginning, by kcat (`-J`: one JSON envelope a line).
    pub fn read(&self, topic: &str, auth: &ClientAuth) -> Vec<Msg> {
        let mut cmd = Command::new("kcat");
        cmd.args(["-C", "-J", "-e", "-q", "-o", "beginning"]).args([
            "-b",
            &self.addr(),
            "-t",
            topic,
        ]);
        for (k, v) in auth.props() {
            cmd.arg("-X").arg(format!("{k}={v}"));
        }
        let out = cmd.output().expect("run kcat");
        if !out.status.success() {
            // The topic may not be there yet (a broker just restarted): nothing read.
            return Vec::new();
        }
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
                let mut headers = BTreeMap::new();
                if let Some(h) = v["headers"].as_array() {
                    for kv in h.chunks(2) {
                        if let [k, v] = kv {
                            headers.insert(
                                k.as_str().unwrap_or("").to_string(),
                                v.as_str().unwrap_or("").to_string(),
                            );
                        }
                    }
                }
                Msg {
                    partition: v["partition"].as_i64().unwrap_or(-1),
                    key: v["key"].as_str().unwrap_or("").to_string(),
                    payload: v["payload"].as_str().unwrap_or("").to_string(),
                    headers,
                }
            })
            .collect()
    }

    /// Kills the broker (an outage: what it stored in memory is gone with it).
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        for mut c in [self.tls.take(), self.child.take()].into_iter().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}
