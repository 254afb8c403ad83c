//! A real Kafka-protocol broker for the tests: tansu (`cargo install tansu`, in-memory
//! storage), started on 127.0.0.1 with plain TCP, TLS or SASL, topics created through
//! librdkafka's admin API, and messages read back with kcat (`kcat -C -J`).

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

/// Whether tansu and kcat are there; outside CI a missing one skips the test (the reason is
/// printed), in CI it fails it.
pub fn tools() -> bool {
    let mut missing = Vec::new();
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
        "{} missing; scripts/setup-debian.sh installs it",
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
    /// Clients must authenticate with SASL.
    pub sasl: bool,
}

/// librdkafka/kcat settings of a client of that broker (CA file, SASL PLAIN user).
#[derive(Clone, Debug, Default)]
pub struct ClientAuth {
    pub ca: Option<PathBuf>,
    pub plain: Option<(String, String)>,
}

impl ClientAuth {
    fn props(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        let proto = match (self.ca.is_some(), self.plain.is_some()) {
            (false, false) => "plaintext",
            (true, false) => "ssl",
            (false, true) => "sasl_plaintext",
            (true, true) => "sasl_ssl",
        };
        p.push(("security.protocol".to_string(), proto.to_string()));
        if let Some(ca) = &self.ca {
            p.push(("ssl.ca.location".into(), ca.display().to_string()));
        }
        if let Some((u, pw)) = &self.plain {
            p.push(("sasl.mechanisms".into(), "PLAIN".into()));
            p.push(("sasl.username".into(), u.clone()));
            p.push(("sasl.password".into(), pw.clone()));
        }
        p
    }
}

pub struct Broker {
    child: Option<Child>,
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
        let log = dir.join(format!("tansu-{port}.log"));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut cmd = Command::new(bin);
        cmd.args(["broker", "--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .arg("--silent")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        if let Some((cert, key)) = &sec.tls {
            cmd.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        if sec.sasl {
            cmd.arg("--authentication");
        }
        let mut child = cmd.spawn().expect("start tansu");
        let up = wait_until(Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        if !up {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "tansu did not listen on {port} within 30 s: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        Broker {
            child: Some(child),
            port,
            log,
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Creates a topic through librdkafka's admin API (works over TLS and SASL, unlike the
    /// tansu CLI); waits until the broker lists it.
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
        if let Some(mut c) = self.child.take() {
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
