//! One `[[outputs]]` entry of `sensor.toml`: transport, format, filter, redaction and the
//! spool, with [`validate`] naming the key and the fix of every problem.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sinks::alert::{Alert, Level};
use sinks::siem::AlertFormat;

use crate::spool::{Fsync, WhenFull};

/// The transports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputType {
    File,
    Stdout,
    SyslogUdp,
    Tcp,
    Hec,
    Elasticsearch,
    Webhook,
    Kafka,
}

impl OutputType {
    pub const ALL: [OutputType; 8] = [
        OutputType::File,
        OutputType::Stdout,
        OutputType::SyslogUdp,
        OutputType::Tcp,
        OutputType::Hec,
        OutputType::Elasticsearch,
        OutputType::Webhook,
        OutputType::Kafka,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OutputType::File => "file",
            OutputType::Stdout => "stdout",
            OutputType::SyslogUdp => "syslog_udp",
            OutputType::Tcp => "tcp",
            OutputType::Hec => "hec",
            OutputType::Elasticsearch => "elasticsearch",
            OutputType::Webhook => "webhook",
            OutputType::Kafka => "kafka",
        }
    }

    /// The format used when `format` is not set.
    pub fn default_format(self) -> AlertFormat {
        match self {
            OutputType::SyslogUdp | OutputType::Tcp => AlertFormat::Syslog,
            _ => AlertFormat::Canonical,
        }
    }

    /// Keys that only this transport takes.
    fn own_keys(self) -> &'static [&'static str] {
        match self {
            OutputType::File => &[
                "path",
                "truncate",
                "rotate_bytes",
                "rotate_secs",
                "rotate_keep",
                "compress",
            ],
            OutputType::Stdout => &[],
            OutputType::SyslogUdp => &["address"],
            OutputType::Tcp => &[
                "address",
                "tls",
                "tls_ca_file",
                "tls_cert_file",
                "tls_key_file",
                "tls_verify",
                "tls_server_name",
            ],
            OutputType::Hec => &[
                "url",
                "token",
                "channel",
                "indexer_acks",
                "index",
                "sourcetype",
                "tls_ca_file",
                "tls_cert_file",
                "tls_key_file",
                "tls_verify",
                "tls_server_name",
            ],
            OutputType::Elasticsearch => &[
                "url",
                "index",
                "username",
                "password",
                "api_key",
                "tls_ca_file",
                "tls_cert_file",
                "tls_key_file",
                "tls_verify",
                "tls_server_name",
            ],
            OutputType::Webhook => &[
                "url",
                "headers",
                "tls_ca_file",
                "tls_cert_file",
                "tls_key_file",
                "tls_verify",
                "tls_server_name",
            ],
            OutputType::Kafka => &[
                "brokers",
                "topic",
                "compression",
                "tls",
                "tls_ca_file",
                "tls_cert_file",
                "tls_key_file",
                "tls_verify",
                "sasl_mechanism",
                "username",
                "password",
                "kafka_properties",
            ],
        }
    }
}

/// Every key an `[[outputs]]` table takes (for nearest-key suggestions).
pub const KEYS: &[&str] = &[
    "name",
    "type",
    "format",
    "min_severity",
    "detectors",
    "exclude_detectors",
    "redact_pii",
    "queue_capacity",
    "spool_dir",
    "spool_max_bytes",
    "when_full",
    "fsync",
    "batch_max",
    "retry_initial_ms",
    "retry_max_ms",
    "timeout_secs",
    "drain_timeout_secs",
    "dead_letter",
    "dead_letter_max_bytes",
    "path",
    "truncate",
    "rotate_bytes",
    "rotate_secs",
    "rotate_keep",
    "compress",
    "address",
    "tls",
    "tls_ca_file",
    "tls_cert_file",
    "tls_key_file",
    "tls_verify",
    "tls_server_name",
    "url",
    "token",
    "channel",
    "indexer_acks",
    "index",
    "sourcetype",
    "username",
    "password",
    "api_key",
    "headers",
    "brokers",
    "topic",
    "compression",
    "sasl_mechanism",
    "kafka_properties",
];

fn default_queue() -> usize {
    4096
}
fn default_spool_max() -> u64 {
    256 << 20
}
fn default_dead_letter_max() -> u64 {
    64 << 20
}
fn default_batch() -> usize {
    500
}
fn default_retry_initial() -> u64 {
    200
}
fn default_retry_max() -> u64 {
    30_000
}
fn default_timeout() -> u64 {
    10
}
fn default_drain() -> u64 {
    30
}
fn yes() -> bool {
    true
}

/// One output. Transport keys are options so that a key set for the wrong `type` is named.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Names the output in logs, metrics and the spool; `<type>-<n>` when empty.
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type")]
    pub kind: OutputType,
    /// An `--alert-format`; by default `syslog` for syslog_udp and tcp, else `canonical`.
    #[serde(default)]
    pub format: Option<String>,
    /// Alerts below this level are not sent.
    #[serde(default = "default_level")]
    pub min_severity: Level,
    /// Detector ids sent (empty: all).
    #[serde(default)]
    pub detectors: Vec<String>,
    /// Detector ids never sent.
    #[serde(default)]
    pub exclude_detectors: Vec<String>,
    /// Mask personal data (e-mail, phone, card, IBAN, national ids) by value in text fields.
    /// Credentials, tokens and cookies are always masked.
    #[serde(default = "yes")]
    pub redact_pii: bool,
    /// Alerts waiting in memory for the spool writer; beyond it they are dropped, counted.
    #[serde(default = "default_queue")]
    pub queue_capacity: usize,
    /// Directory of the on-disk spool; empty: memory only (lost on a crash).
    #[serde(default)]
    pub spool_dir: String,
    #[serde(default = "default_spool_max")]
    pub spool_max_bytes: u64,
    #[serde(default)]
    pub when_full: WhenFull,
    #[serde(default)]
    pub fsync: Fsync,
    /// Alerts per request or write.
    #[serde(default = "default_batch")]
    pub batch_max: usize,
    #[serde(default = "default_retry_initial")]
    pub retry_initial_ms: u64,
    #[serde(default = "default_retry_max")]
    pub retry_max_ms: u64,
    /// One attempt (connect, send, answer) at most.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// At exit, how long an output may take to drain what it holds.
    #[serde(default = "default_drain")]
    pub drain_timeout_secs: u64,
    /// JSON lines of permanently rejected alerts; empty: `<spool_dir>/dead-letter.jsonl`, or
    /// none (logged and counted only) without a spool.
    #[serde(default)]
    pub dead_letter: String,
    /// The dead-letter file's bound: past it, the file is kept as `<file>.1` (replacing the
    /// previous one) and a new one started, so at most twice this is on disk.
    #[serde(default = "default_dead_letter_max")]
    pub dead_letter_max_bytes: u64,

    // file
    pub path: Option<String>,
    /// Start the file empty (else append).
    pub truncate: Option<bool>,
    /// Rotate when the file reaches this size (0: never).
    pub rotate_bytes: Option<u64>,
    /// Rotate when the file is this old (0: never).
    pub rotate_secs: Option<u64>,
    /// Rotated files kept.
    pub rotate_keep: Option<usize>,
    /// Gzip rotated files.
    pub compress: Option<bool>,

    // syslog_udp, tcp
    /// `host:port`.
    pub address: Option<String>,
    pub tls: Option<bool>,
    pub tls_ca_file: Option<String>,
    pub tls_cert_file: Option<String>,
    pub tls_key_file: Option<String>,
    pub tls_verify: Option<bool>,
    pub tls_server_name: Option<String>,

    // hec, elasticsearch, webhook
    pub url: Option<String>,
    pub token: Option<String>,
    pub channel: Option<String>,
    pub indexer_acks: Option<bool>,
    pub index: Option<String>,
    pub sourcetype: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub api_key: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,

    // kafka
    /// Bootstrap brokers, `host:port[,host:port...]`.
    pub brokers: Option<String>,
    pub topic: Option<String>,
    /// Batch compression: none, gzip, snappy, lz4, zstd.
    pub compression: Option<String>,
    /// SASL over the connection (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) with `username` and
    /// `password`.
    pub sasl_mechanism: Option<String>,
    /// Further librdkafka settings, passed as they are (not those the keys above set).
    pub kafka_properties: Option<BTreeMap<String, String>>,
}

fn default_level() -> Level {
    Level::Info
}

impl OutputConfig {
    /// An output of this type with every default.
    pub fn new(kind: OutputType) -> OutputConfig {
        OutputConfig {
            name: String::new(),
            kind,
            format: None,
            min_severity: Level::Info,
            detectors: Vec::new(),
            exclude_detectors: Vec::new(),
            redact_pii: true,
            queue_capacity: default_queue(),
            spool_dir: String::new(),
            spool_max_bytes: default_spool_max(),
            when_full: WhenFull::default(),
            fsync: Fsync::default(),
            batch_max: default_batch(),
            retry_initial_ms: default_retry_initial(),
            retry_max_ms: default_retry_max(),
            timeout_secs: default_timeout(),
            drain_timeout_secs: default_drain(),
            dead_letter: String::new(),
            dead_letter_max_bytes: default_dead_letter_max(),
            path: None,
            truncate: None,
            rotate_bytes: None,
            rotate_secs: None,
            rotate_keep: None,
            compress: None,
            address: None,
            tls: None,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            tls_verify: None,
            tls_server_name: None,
            url: None,
            token: None,
            channel: None,
            indexer_acks: None,
            index: None,
            sourcetype: None,
            username: None,
            password: None,
            api_key: None,
            headers: None,
            brokers: None,
            topic: None,
            compression: None,
            sasl_mechanism: None,
            kafka_properties: None,
        }
    }

    /// The output `--alerts PATH|-` stands for: the whole file or stdout in one format, no
    /// spool, no PII masking (what `--alerts` always wrote).
    pub fn cli(path: &str, format: AlertFormat) -> OutputConfig {
        let mut c = if path == "-" {
            OutputConfig::new(OutputType::Stdout)
        } else {
            let mut c = OutputConfig::new(OutputType::File);
            c.path = Some(path.to_string());
            c.truncate = Some(true);
            c.rotate_bytes = Some(0);
            c
        };
        c.name = "alerts".to_string();
        c.format = Some(format.as_str().to_string());
        c.redact_pii = false;
        c
    }

    pub fn format(&self) -> AlertFormat {
        self.format
            .as_deref()
            .and_then(|f| f.parse().ok())
            .unwrap_or(self.kind.default_format())
    }

    pub fn name_or(&self, index: usize) -> String {
        if self.name.is_empty() {
            format!("{}-{index}", self.kind.as_str())
        } else {
            self.name.clone()
        }
    }

    /// Whether this output takes the alert (severity and detector filters).
    pub fn wants(&self, a: &Alert) -> bool {
        a.severity.level >= self.min_severity
            && (self.detectors.is_empty() || self.detectors.contains(&a.detector.id))
            && !self.exclude_detectors.contains(&a.detector.id)
    }

    pub fn spool_dir(&self) -> Option<PathBuf> {
        (!self.spool_dir.is_empty()).then(|| PathBuf::from(&self.spool_dir))
    }

    pub fn dead_letter_path(&self) -> Option<PathBuf> {
        if !self.dead_letter.is_empty() {
            return Some(PathBuf::from(&self.dead_letter));
        }
        self.spool_dir().map(|d| d.join("dead-letter.jsonl"))
    }

    /// The keys set that the type does not take.
    fn stray_keys(&self) -> Vec<&'static str> {
        let set: [(&'static str, bool); 28] = [
            ("path", self.path.is_some()),
            ("truncate", self.truncate.is_some()),
            ("rotate_bytes", self.rotate_bytes.is_some()),
            ("rotate_secs", self.rotate_secs.is_some()),
            ("rotate_keep", self.rotate_keep.is_some()),
            ("compress", self.compress.is_some()),
            ("address", self.address.is_some()),
            ("tls", self.tls.is_some()),
            ("tls_ca_file", self.tls_ca_file.is_some()),
            ("tls_cert_file", self.tls_cert_file.is_some()),
            ("tls_key_file", self.tls_key_file.is_some()),
            ("tls_verify", self.tls_verify.is_some()),
            ("tls_server_name", self.tls_server_name.is_some()),
            ("url", self.url.is_some()),
            ("token", self.token.is_some()),
            ("channel", self.channel.is_some()),
            ("indexer_acks", self.indexer_acks.is_some()),
            ("index", self.index.is_some()),
            ("sourcetype", self.sourcetype.is_some()),
            ("username", self.username.is_some()),
            ("password", self.password.is_some()),
            ("api_key", self.api_key.is_some()),
            ("headers", self.headers.is_some()),
            ("brokers", self.brokers.is_some()),
            ("topic", self.topic.is_some()),
            ("compression", self.compression.is_some()),
            ("sasl_mechanism", self.sasl_mechanism.is_some()),
            ("kafka_properties", self.kafka_properties.is_some()),
        ];
        let own = self.kind.own_keys();
        set.into_iter()
            .filter(|(k, on)| *on && !own.contains(k))
            .map(|(k, _)| k)
            .collect()
    }
}

/// Every problem of the outputs, each naming `outputs[i].key` and the fix.
pub fn validate(outputs: &[OutputConfig]) -> Vec<String> {
    let mut errs = Vec::new();
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    let mut spools: BTreeMap<String, usize> = BTreeMap::new();
    for (i, o) in outputs.iter().enumerate() {
        let at = format!("outputs[{i}]");
        let t = o.kind.as_str();
        let mut err = |key: &str, msg: String| errs.push(format!("{at}.{key}: {msg}"));
        let name = o.name_or(i);
        if let Some(j) = names.insert(name.clone(), i) {
            err(
                "name",
                format!(
                    "\"{name}\" is also the name of outputs[{j}]; give each output its own name"
                ),
            );
        }
        if !o.spool_dir.is_empty() {
            if let Some(j) = spools.insert(o.spool_dir.clone(), i) {
                err(
                    "spool_dir",
                    format!(
                        "\"{}\" is also the spool of outputs[{j}]; give each output its own directory",
                        o.spool_dir
                    ),
                );
            }
        }
        for k in o.stray_keys() {
            err(
                k,
                format!(
                    "does not apply to type = \"{t}\"; remove it (keys of {t}: {})",
                    o.kind.own_keys().join(", ")
                ),
            );
        }
        let format = match &o.format {
            None => o.kind.default_format(),
            Some(f) => match f.parse::<AlertFormat>() {
                Ok(f) => f,
                Err(e) => {
                    err("format", e.to_string());
                    o.kind.default_format()
                }
            },
        };
        if matches!(o.kind, OutputType::Elasticsearch | OutputType::Webhook) && !format.is_json() {
            err(
                "format",
                format!(
                    "type = \"{t}\" sends JSON documents; use canonical, ocsf, ecs or eve, not {format}"
                ),
            );
        }
        if o.queue_capacity == 0 || o.queue_capacity > 1 << 20 {
            err("queue_capacity", "must be 1 to 1048576".to_string());
        }
        if o.batch_max == 0 || o.batch_max > 100_000 {
            err("batch_max", "must be 1 to 100000".to_string());
        }
        if o.spool_max_bytes < (1 << 20) {
            err(
                "spool_max_bytes",
                format!("{} is below 1 MiB; use at least 1048576", o.spool_max_bytes),
            );
        }
        if o.dead_letter_max_bytes < (64 << 10) {
            err(
                "dead_letter_max_bytes",
                format!(
                    "{} is below 64 KiB; use at least 65536",
                    o.dead_letter_max_bytes
                ),
            );
        }
        if o.retry_initial_ms == 0 || o.retry_initial_ms > o.retry_max_ms {
            err(
                "retry_initial_ms",
                "must be at least 1 and at most retry_max_ms".to_string(),
            );
        }
        if o.timeout_secs == 0 || o.timeout_secs > 3600 {
            err("timeout_secs", "must be 1 to 3600".to_string());
        }
        if o.drain_timeout_secs > 3600 {
            err("drain_timeout_secs", "must be at most 3600".to_string());
        }
        match o.kind {
            OutputType::File => {
                if o.path.as_deref().unwrap_or("").is_empty() {
                    err(
                        "path",
                        "type = \"file\" needs a path, e.g. path = \"/var/log/mirador/alerts.json\""
                            .to_string(),
                    );
                }
                if o.rotate_keep == Some(0) {
                    err("rotate_keep", "must be at least 1".to_string());
                }
            }
            OutputType::SyslogUdp | OutputType::Tcp => match o.address.as_deref() {
                None | Some("") => err(
                    "address",
                    format!("type = \"{t}\" needs address = \"host:port\", e.g. \"127.0.0.1:514\""),
                ),
                Some(a) => {
                    if crate::transport::split_host_port(a).is_none() {
                        err(
                            "address",
                            format!("\"{a}\" is not host:port (an IPv6 address goes in brackets: \"[::1]:514\")"),
                        );
                    }
                }
            },
            OutputType::Hec | OutputType::Elasticsearch | OutputType::Webhook => {
                match o.url.as_deref() {
                    None | Some("") => err(
                        "url",
                        format!(
                            "type = \"{t}\" needs a url, e.g. url = \"https://siem.example:8088\""
                        ),
                    ),
                    Some(u) => {
                        if let Err(e) = crate::transport::http::Url::parse(u) {
                            err("url", format!("{e}; e.g. \"https://siem.example:8088\""));
                        }
                    }
                }
                if o.kind == OutputType::Hec && o.token.as_deref().unwrap_or("").is_empty() {
                    err(
                        "token",
                        "type = \"hec\" needs the HEC token, e.g. token = \"00000000-0000-0000-0000-000000000000\""
                            .to_string(),
                    );
                }
                if o.kind == OutputType::Elasticsearch
                    && o.password.is_some() != o.username.is_some()
                {
                    err(
                        "username",
                        "username and password go together; set both or neither".to_string(),
                    );
                }
            }
            OutputType::Kafka => {
                for (key, msg) in crate::transport::kafka::problems(o) {
                    err(key, msg);
                }
            }
            OutputType::Stdout => {}
        }
        if o.tls_cert_file.is_some() != o.tls_key_file.is_some() {
            err(
                "tls_cert_file",
                "a client certificate needs its key (tls_key_file) and the other way round"
                    .to_string(),
            );
        }
        if matches!(o.kind, OutputType::Tcp | OutputType::Kafka)
            && o.tls != Some(true)
            && (o.tls_ca_file.is_some() || o.tls_cert_file.is_some())
        {
            err(
                "tls",
                "TLS files are set but tls is off; set tls = true".to_string(),
            );
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<OutputConfig>, String> {
        #[derive(Deserialize)]
        struct Doc {
            outputs: Vec<OutputConfig>,
        }
        let d: Doc = toml_like(text)?;
        Ok(d.outputs)
    }

    /// The tests write outputs as JSON (serde is the same for TOML).
    fn toml_like<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_formats() {
        let o = parse(r#"{"outputs":[{"type":"tcp","address":"127.0.0.1:514"}]}"#).unwrap();
        assert_eq!(o[0].format(), AlertFormat::Syslog);
        assert_eq!(o[0].name_or(0), "tcp-0");
        assert!(validate(&o).is_empty());
    }

    #[test]
    fn problems_name_the_key_and_the_fix() {
        let o = parse(
            r#"{"outputs":[
                {"type":"hec","url":"ftp://x"},
                {"type":"file","address":"a:1"},
                {"type":"elasticsearch","url":"http://127.0.0.1:9200","format":"cef"},
                {"type":"tcp","address":"nohost","tls_ca_file":"/x"},
                {"type":"kafka","brokers":"127.0.0.1:9092","topic":"alerts","url":"http://x"},
                {"type":"kafka","compression":"lz4","kafka_properties":{"linger.ms":"5"}},
                {"type":"stdout","dead_letter_max_bytes":1000}
            ]}"#,
        )
        .unwrap();
        let e = validate(&o).join("\n");
        assert!(e.contains("outputs[0].url: "), "{e}");
        assert!(e.contains("outputs[0].token: type = \"hec\" needs"), "{e}");
        assert!(
            e.contains("outputs[1].address: does not apply to type = \"file\""),
            "{e}"
        );
        assert!(
            e.contains("outputs[1].path: type = \"file\" needs a path"),
            "{e}"
        );
        assert!(
            e.contains("outputs[2].format: type = \"elasticsearch\" sends JSON"),
            "{e}"
        );
        assert!(
            e.contains("outputs[3].address: \"nohost\" is not host:port"),
            "{e}"
        );
        assert!(
            e.contains("outputs[3].tls: TLS files are set but tls is off"),
            "{e}"
        );
        assert!(
            e.contains("outputs[4].url: does not apply to type = \"kafka\""),
            "{e}"
        );
        assert!(!e.contains("outputs[4].type"), "{e}");
        assert!(
            e.contains("outputs[5].brokers: type = \"kafka\" needs brokers"),
            "{e}"
        );
        assert!(
            e.contains("outputs[5].topic: type = \"kafka\" needs a topic"),
            "{e}"
        );
        assert!(
            e.contains(
                "outputs[6].dead_letter_max_bytes: 1000 is below 64 KiB; use at least 65536"
            ),
            "{e}"
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = parse(r#"{"outputs":[{"type":"file","path":"x","colour":"red"}]}"#).unwrap_err();
        assert!(e.contains("colour"), "{e}");
    }

    #[test]
    fn every_key_is_listed() {
        let mut o = OutputConfig::new(OutputType::File);
        o.headers = Some(BTreeMap::new());
        let v = serde_json::to_value(&o).unwrap();
        for k in v.as_object().unwrap().keys() {
            assert!(KEYS.contains(&k.as_str()), "{k} missing from KEYS");
        }
        assert_eq!(v.as_object().unwrap().len(), KEYS.len());
    }
}
