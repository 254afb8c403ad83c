//! `kafka`: a librdkafka producer (rdkafka, librdkafka built from its bundled source) with
//! `acks=all` and `enable.idempotence=true`. Each alert is one message: key = the alert's
//! dedup key (an episode's alerts land on one partition, in order; murmur2 as Java clients
//! hash), value = the record in the output's format, headers `alert_id` and `format`.
//!
//! A batch is produced at once and every delivery report awaited: a record counts as
//! delivered only when the leader answered that all in-sync replicas have it. Reports map to
//! per-record results: a broken connection, a timeout, a full queue, a leader election or a
//! missing topic are retried; a message too large, an invalid topic, a refused authorisation
//! or an invalid record are dead-lettered. librdkafka retries within `message.timeout.ms`
//! (3 × `timeout_secs`) on its own; what it did not deliver by then is retried by the output,
//! so nothing leaves the spool before the broker acknowledged it. A producer whose id or epoch
//! the broker no longer accepts (fenced, fatal error, lost sequence) is replaced by a new one
//! for the next attempt: tansu, for one, fences the epoch librdkafka bumps after a timeout.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use super::{ItemResult, SendError};
use crate::config::OutputConfig;
use crate::spool::Record;
use crate::DeliveryError;

/// `compression` values.
pub const COMPRESSIONS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];
/// `sasl_mechanism` values (librdkafka's own; GSSAPI needs Cyrus SASL, not built in).
pub const SASL_MECHANISMS: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// librdkafka properties the output sets itself, with the key to use instead.
const RESERVED: &[(&str, &str)] = &[
    ("bootstrap.servers", "set `brokers`"),
    ("metadata.broker.list", "set `brokers`"),
    (
        "acks",
        "always \"all\": an alert leaves the spool only once every in-sync replica has it",
    ),
    (
        "request.required.acks",
        "always \"all\": an alert leaves the spool only once every in-sync replica has it",
    ),
    (
        "enable.idempotence",
        "always true: a retry within librdkafka never writes a message twice",
    ),
    (
        "message.timeout.ms",
        "set `timeout_secs` (messages time out after 3 × timeout_secs)",
    ),
    (
        "delivery.timeout.ms",
        "set `timeout_secs` (messages time out after 3 × timeout_secs)",
    ),
    ("compression.codec", "set `compression`"),
    ("compression.type", "set `compression`"),
    ("security.protocol", "set `tls` and `sasl_mechanism`"),
    ("sasl.mechanism", "set `sasl_mechanism`"),
    ("sasl.mechanisms", "set `sasl_mechanism`"),
    ("sasl.username", "set `username`"),
    ("sasl.password", "set `password`"),
    ("ssl.ca.location", "set `tls_ca_file`"),
    ("ssl.certificate.location", "set `tls_cert_file`"),
    ("ssl.key.location", "set `tls_key_file`"),
    ("enable.ssl.certificate.verification", "set `tls_verify`"),
    (
        "transactional.id",
        "transactions are not used; idempotence already keeps retries from duplicating",
    ),
];

/// Whether `t` is a valid Kafka topic name.
fn topic_ok(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 249
        && t != "."
        && t != ".."
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The bootstrap brokers as librdkafka wants them, or the entry that is not `host:port`.
fn brokers(list: &str) -> Result<String, String> {
    let mut out = Vec::new();
    for b in list.split(',').map(str::trim) {
        if super::split_host_port(b).is_none() {
            return Err(b.to_string());
        }
        out.push(b);
    }
    Ok(out.join(","))
}

fn compression(o: &OutputConfig) -> &str {
    o.compression.as_deref().unwrap_or("none")
}

/// `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`.
fn security_protocol(o: &OutputConfig) -> &'static str {
    match (o.tls == Some(true), o.sasl_mechanism.is_some()) {
        (false, false) => "plaintext",
        (true, false) => "ssl",
        (false, true) => "sasl_plaintext",
        (true, true) => "sasl_ssl",
    }
}

/// The librdkafka configuration of an output (its keys, then `kafka_properties`, then what the
/// output always sets). Checked by librdkafka itself in [`problems`].
pub fn client_config(o: &OutputConfig) -> ClientConfig {
    let timeout_ms = o.timeout_secs.max(1) * 1000;
    let mut c = ClientConfig::new();
    c.set("client.id", "mirador")
        // The key hash Java clients use: the same dedup key on the same partition as theirs.
        .set("partitioner", "murmur2_random")
        .set("socket.timeout.ms", timeout_ms.to_string())
        .set("request.timeout.ms", timeout_ms.to_string());
    for (k, v) in o.kafka_properties.iter().flatten() {
        c.set(k, v);
    }
    c.set(
        "bootstrap.servers",
        brokers(o.brokers.as_deref().unwrap_or("")).unwrap_or_default(),
    )
    .set("acks", "all")
    .set("enable.idempotence", "true")
    .set("message.timeout.ms", (timeout_ms * 3).to_string())
    .set("compression.codec", compression(o))
    .set("security.protocol", security_protocol(o));
    if o.tls == Some(true) {
        if let Some(ca) = &o.tls_ca_file {
            c.set("ssl.ca.location", ca);
        }
        if let (Some(cert), Some(key)) = (&o.tls_cert_file, &o.tls_key_file) {
            c.set("ssl.certificate.location", cert)
                .set("ssl.key.location", key);
        }
        if o.tls_verify == Some(false) {
            c.set("enable.ssl.certificate.verification", "false")
                .set("ssl.endpoint.identification.algorithm", "none");
        }
    }
    if let Some(m) = &o.sasl_mechanism {
        c.set("sasl.mechanisms", m.to_ascii_uppercase())
            .set("sasl.username", o.username.as_deref().unwrap_or(""))
            .set("sasl.password", o.password.as_deref().unwrap_or(""));
    }
    c.set_log_level(RDKafkaLogLevel::Warning);
    c
}

/// Every problem of a kafka output's keys, as (key, message naming the fix).
pub fn problems(o: &OutputConfig) -> Vec<(&'static str, String)> {
    let mut p = Vec::new();
    match o.brokers.as_deref().map(str::trim) {
        None | Some("") => p.push((
            "brokers",
            "type = \"kafka\" needs brokers = \"host:port[,host:port...]\", e.g. \"kafka1.example:9092,kafka2.example:9092\"".to_string(),
        )),
        Some(list) => {
            if let Err(bad) = brokers(list) {
                p.push((
                    "brokers",
                    format!("\"{bad}\" is not host:port; list brokers as \"host:port,host:port\" (an IPv6 address goes in brackets: \"[::1]:9092\")"),
                ));
            }
        }
    }
    match o.topic.as_deref() {
        None | Some("") => p.push((
            "topic",
            "type = \"kafka\" needs a topic, e.g. topic = \"mirador-alerts\"".to_string(),
        )),
        Some(t) if !topic_ok(t) => p.push((
            "topic",
            format!("\"{t}\" is not a Kafka topic name: 1 to 249 characters of a-z, A-Z, 0-9, '.', '_', '-'"),
        )),
        Some(_) => {}
    }
    if !COMPRESSIONS.contains(&compression(o)) {
        p.push((
            "compression",
            format!(
                "\"{}\" is not one of {}",
                compression(o),
                COMPRESSIONS.join(", ")
            ),
        ));
    }
    match &o.sasl_mechanism {
        Some(m) => {
            if !SASL_MECHANISMS.contains(&m.to_ascii_uppercase().as_str()) {
                p.push((
                    "sasl_mechanism",
                    format!(
                        "\"{m}\" is not built into this sensor; use one of {}",
                        SASL_MECHANISMS.join(", ")
                    ),
                ));
            }
            for (key, v) in [("username", &o.username), ("password", &o.password)] {
                if v.as_deref().unwrap_or("").is_empty() {
                    p.push((key, format!("sasl_mechanism = \"{m}\" needs a {key}")));
                }
            }
        }
        None => {
            if o.username.is_some() || o.password.is_some() {
                p.push((
                    "sasl_mechanism",
                    "username and password are for SASL; set sasl_mechanism = \"SCRAM-SHA-512\" (or PLAIN, SCRAM-SHA-256)".to_string(),
                ));
            }
        }
    }
    if o.tls != Some(true) && o.tls_verify.is_some() {
        p.push((
            "tls",
            "tls_verify is set but tls is off; set tls = true".to_string(),
        ));
    }
    let props = o.kafka_properties.clone().unwrap_or_default();
    let mut reserved = false;
    for k in props.keys() {
        if let Some((_, why)) = RESERVED.iter().find(|(r, _)| r == k) {
            reserved = true;
            p.push((
                "kafka_properties",
                format!("\"{k}\" is set by the output ({why}); remove it"),
            ));
        }
    }
    if !reserved && p.is_empty() {
        // librdkafka checks every name and value (files are read when the producer starts).
        if let Err(e) = client_config(o).create_native_config() {
            p.push(("kafka_properties", describe_config_error(&e, &props)));
        }
    }
    p
}

fn describe_config_error(e: &KafkaError, props: &BTreeMap<String, String>) -> String {
    match e {
        KafkaError::ClientConfig(_, desc, key, value) if props.contains_key(key) => {
            format!("\"{key}\" = \"{value}\": {desc}; see librdkafka's CONFIGURATION.md")
        }
        other => format!("librdkafka refuses the configuration: {other}"),
    }
}

/// What librdkafka said last about the cluster (its error callback), so that a message that
/// timed out carries the reason (refused connection, TLS handshake, SASL authentication).
#[derive(Clone, Default)]
struct Context {
    last_error: Arc<Mutex<Option<String>>>,
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error
            | RDKafkaLogLevel::Warning => tracing::debug!("librdkafka {fac}: {msg}"),
            _ => tracing::trace!("librdkafka {fac}: {msg}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!("librdkafka: {error}: {reason}");
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.to_string());
    }
}

pub struct KafkaOut {
    config: ClientConfig,
    context: Context,
    producer: Option<FutureProducer<Context>>,
    topic: String,
    format: &'static str,
    /// How long to wait for every report of a batch: librdkafka's message timeout, and some.
    wait: Duration,
}

/// Whether librdkafka's error for one message means the broker will never take it.
pub fn permanent(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as E;
    matches!(
        code,
        E::MessageSizeTooLarge
            | E::InvalidMessageSize
            | E::MessageBatchTooLarge
            | E::InvalidTopic
            | E::TopicAuthorizationFailed
            | E::ClusterAuthorizationFailed
            | E::InvalidRecord
            | E::InvalidRequiredAcks
            | E::InvalidTimestamp
            | E::UnsupportedForMessageFormat
            | E::UnsupportedCompressionType
            | E::PolicyViolation
            | E::InvalidArgument
            | E::BadMessage
    )
}

/// Whether the error means this producer's id or epoch is no good any more (fenced, fatal,
/// sequence lost): its messages go again through a new producer, which gets a new id.
pub fn producer_broken(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as E;
    matches!(
        code,
        E::Fatal
            | E::ProducerFenced
            | E::InvalidProducerEpoch
            | E::InvalidProducerIdMapping
            | E::UnknownProducerId
            | E::OutOfOrderSequenceNumber
    )
}

impl KafkaOut {
    pub fn new(cfg: &OutputConfig) -> Result<KafkaOut, DeliveryError> {
        let problems = problems(cfg);
        if !problems.is_empty() {
            let all: Vec<String> = problems.iter().map(|(k, m)| format!("{k}: {m}")).collect();
            return Err(DeliveryError::Config(all.join("; ")));
        }
        if cfg.sasl_mechanism.as_deref().map(str::to_ascii_uppercase) == Some("PLAIN".into())
            && cfg.tls != Some(true)
        {
            tracing::warn!(
                topic = cfg.topic.as_deref().unwrap_or(""),
                "kafka output: SASL PLAIN without tls sends the password in clear; set tls = true"
            );
        }
        for f in [&cfg.tls_ca_file, &cfg.tls_cert_file, &cfg.tls_key_file]
            .into_iter()
            .flatten()
        {
            if let Err(e) = std::fs::metadata(f) {
                return Err(DeliveryError::Tls(format!("{f}: {e}")));
            }
        }
        let timeout = Duration::from_secs(cfg.timeout_secs.max(1));
        let mut out = KafkaOut {
            config: client_config(cfg),
            context: Context::default(),
            producer: None,
            topic: cfg.topic.clone().unwrap_or_default(),
            format: cfg.format().as_str(),
            wait: timeout * 3 + timeout / 2,
        };
        // Starting the producer reads the TLS files: a bad file is a configuration error now,
        // not a retry later. It connects in the background.
        out.producer().map_err(|e| match e {
            SendError::Retriable(m) | SendError::Permanent(m) | SendError::TooLarge(m) => {
                DeliveryError::Config(m)
            }
        })?;
        Ok(out)
    }

    fn producer(&mut self) -> Result<&FutureProducer<Context>, SendError> {
        if self.producer.is_none() {
            let p = self
                .config
                .create_with_context(self.context.clone())
                .map_err(|e| SendError::Retriable(format!("kafka producer: {e}")))?;
            self.producer = Some(p);
        }
        self.producer
            .as_ref()
            .ok_or_else(|| SendError::Retriable("kafka producer: not made".into()))
    }

    /// Drops the producer (after a fatal error of the idempotent producer, or when an attempt
    /// ran out of time): the next batch starts a new one.
    pub fn reset(&mut self) {
        self.producer = None;
    }

    fn last_error(&self) -> String {
        match self
            .context
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_deref()
        {
            Some(e) => format!(" (last broker error: {e})"),
            None => String::new(),
        }
    }

    fn result(&mut self, e: &KafkaError) -> ItemResult {
        let code = e.rdkafka_error_code();
        match code {
            Some(c) if permanent(c) => ItemResult::Reject(format!("kafka: {e}")),
            Some(c) if producer_broken(c) => {
                let why = self
                    .producer
                    .as_ref()
                    .and_then(|p| p.client().fatal_error())
                    .map(|(c, m)| format!("{c}: {m}"))
                    .unwrap_or_default();
                self.producer = None;
                ItemResult::Retry(format!(
                    "kafka: {e}{}; starting a new producer",
                    if why.is_empty() {
                        why
                    } else {
                        format!(" ({why})")
                    }
                ))
            }
            Some(RDKafkaErrorCode::MessageTimedOut) => {
                ItemResult::Retry(format!("kafka: {e}{}", self.last_error()))
            }
            _ => ItemResult::Retry(format!("kafka: {e}")),
        }
    }

    pub async fn send(&mut self, batch: &[&Record]) -> Result<Vec<ItemResult>, SendError> {
        let topic = self.topic.clone();
        let format = self.format;
        let wait = self.wait;
        let producer = self.producer()?.clone();
        let mut results: Vec<Option<ItemResult>> = vec![None; batch.len()];
        let mut reports = Vec::with_capacity(batch.len());
        for (i, r) in batch.iter().enumerate() {
            let headers = OwnedHeaders::new_with_capacity(2)
                .insert(Header {
                    key: "alert_id",
                    value: Some(r.alert_id.as_bytes()),
                })
                .insert(Header {
                    key: "format",
                    value: Some(format.as_bytes()),
                });
            let msg = FutureRecord::to(&topic)
                .key(r.dedup_key.as_bytes())
                .payload(&r.payload)
                .headers(headers);
            match producer.send_result(msg) {
                Ok(report) => reports.push((i, report)),
                Err((e, _)) => results[i] = Some(self.result(&e)),
            }
        }
        let deadline = tokio::time::Instant::now() + wait;
        for (i, report) in reports {
            results[i] = Some(match tokio::time::timeout_at(deadline, report).await {
                Ok(Ok(Ok(_))) => ItemResult::Delivered,
                Ok(Ok(Err((e, _)))) => self.result(&e),
                Ok(Err(_)) => ItemResult::Retry("kafka: the producer went away".into()),
                Err(_) => ItemResult::Retry(format!(
                    "kafka: no delivery report within {wait:?}{}",
                    self.last_error()
                )),
            });
        }
        if results.iter().any(|r| r == &Some(ItemResult::Delivered)) {
            // The cluster answers: an older error no longer explains a later timeout.
            *self
                .context
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = None;
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| ItemResult::Retry("kafka: not produced".into())))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{validate, OutputType};

    fn kafka() -> OutputConfig {
        let mut c = OutputConfig::new(OutputType::Kafka);
        c.brokers = Some("127.0.0.1:9092, [::1]:9093".into());
        c.topic = Some("mirador-alerts".into());
        c
    }

    fn problems_of(c: &OutputConfig) -> String {
        validate(std::slice::from_ref(c)).join("\n")
    }

    #[test]
    fn a_plain_output_is_valid_and_sets_the_delivery_guarantees() {
        let c = kafka();
        assert_eq!(problems_of(&c), "");
        let cc = client_config(&c);
        assert_eq!(cc.get("acks"), Some("all"));
        assert_eq!(cc.get("enable.idempotence"), Some("true"));
        assert_eq!(
            cc.get("bootstrap.servers"),
            Some("127.0.0.1:9092,[::1]:9093")
        );
        assert_eq!(cc.get("message.timeout.ms"), Some("30000"));
        assert_eq!(cc.get("security.protocol"), Some("plaintext"));
        assert_eq!(cc.get("compression.codec"), Some("none"));
        assert!(cc.create_native_config().is_ok());
    }

    #[test]
    fn tls_and_sasl_choose_the_security_protocol() {
        let mut c = kafka();
        c.tls = Some(true);
        c.tls_ca_file = Some("/etc/ca.pem".into());
        c.sasl_mechanism = Some("scram-sha-512".into());
        c.username = Some("mirador".into());
        c.password = Some("secret".into());
        c.compression = Some("zstd".into());
        assert_eq!(problems_of(&c), "");
        let cc = client_config(&c);
        assert_eq!(cc.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(cc.get("sasl.mechanisms"), Some("SCRAM-SHA-512"));
        assert_eq!(cc.get("ssl.ca.location"), Some("/etc/ca.pem"));
        c.tls = None;
        c.tls_ca_file = None;
        assert_eq!(
            client_config(&c).get("security.protocol"),
            Some("sasl_plaintext")
        );
    }

    #[test]
    fn required_keys_and_bad_values_are_named_with_the_fix() {
        let c = OutputConfig::new(OutputType::Kafka);
        let e = problems_of(&c);
        assert!(
            e.contains("outputs[0].brokers: type = \"kafka\" needs brokers"),
            "{e}"
        );
        assert!(
            e.contains("outputs[0].topic: type = \"kafka\" needs a topic"),
            "{e}"
        );

        let mut c = kafka();
        c.brokers = Some("127.0.0.1:9092,kafka2".into());
        c.topic = Some("alerts/prod".into());
        c.compression = Some("brotli".into());
        let e = problems_of(&c);
        assert!(
            e.contains("outputs[0].brokers: \"kafka2\" is not host:port"),
            "{e}"
        );
        assert!(
            e.contains("outputs[0].topic: \"alerts/prod\" is not a Kafka topic name"),
            "{e}"
        );
        assert!(
            e.contains("outputs[0].compression: \"brotli\" is not one of none, gzip"),
            "{e}"
        );
        for t in [".", "..", &"x".repeat(250)] {
            assert!(!topic_ok(t), "{t}");
        }
        assert!(topic_ok("mirador.alerts_v1-prod"));
    }

    #[test]
    fn sasl_needs_its_credentials_and_credentials_need_sasl() {
        let mut c = kafka();
        c.sasl_mechanism = Some("GSSAPI".into());
        let e = problems_of(&c);
        assert!(
            e.contains("outputs[0].sasl_mechanism: \"GSSAPI\" is not built into this sensor"),
            "{e}"
        );
        assert!(
            e.contains("outputs[0].username: sasl_mechanism = \"GSSAPI\" needs a username"),
            "{e}"
        );
        assert!(e.contains("outputs[0].password: "), "{e}");
        let mut c = kafka();
        c.username = Some("u".into());
        c.password = Some("p".into());
        let e = problems_of(&c);
        assert!(
            e.contains("outputs[0].sasl_mechanism: username and password are for SASL"),
            "{e}"
        );
        let mut c = kafka();
        c.tls_ca_file = Some("/ca.pem".into());
        c.tls_verify = Some(false);
        let e = problems_of(&c);
        assert!(
            e.contains("outputs[0].tls: TLS files are set but tls is off"),
            "{e}"
        );
        assert!(
            e.contains("outputs[0].tls: tls_verify is set but tls is off"),
            "{e}"
        );
    }

    #[test]
    fn properties_pass_through_but_never_weaken_delivery() {
        let mut c = kafka();
        let mut props = BTreeMap::new();
        props.insert("linger.ms".to_string(), "20".to_string());
        props.insert("client.id".to_string(), "sensor-7".to_string());
        c.kafka_properties = Some(props.clone());
        assert_eq!(problems_of(&c), "");
        let cc = client_config(&c);
        assert_eq!(cc.get("linger.ms"), Some("20"));
        assert_eq!(cc.get("client.id"), Some("sensor-7"));

        props.insert("acks".to_string(), "1".to_string());
        props.insert("message.timeout.ms".to_string(), "600000".to_string());
        c.kafka_properties = Some(props);
        let e = problems_of(&c);
        assert!(
            e.contains(
                "outputs[0].kafka_properties: \"acks\" is set by the output (always \"all\""
            ),
            "{e}"
        );
        assert!(
            e.contains("\"message.timeout.ms\" is set by the output (set `timeout_secs`"),
            "{e}"
        );

        let mut c = kafka();
        c.kafka_properties = Some(BTreeMap::from([(
            "linger.msec".to_string(),
            "5".to_string(),
        )]));
        let e = problems_of(&c);
        assert!(
            e.contains("outputs[0].kafka_properties: \"linger.msec\" = \"5\": No such configuration property"),
            "{e}"
        );
        c.kafka_properties = Some(BTreeMap::from([(
            "linger.ms".to_string(),
            "soon".to_string(),
        )]));
        let e = problems_of(&c);
        assert!(
            e.contains("outputs[0].kafka_properties: \"linger.ms\" = \"soon\": "),
            "{e}"
        );
    }

    #[test]
    fn keys_of_other_types_are_refused() {
        let mut c = kafka();
        c.url = Some("http://x".into());
        c.tls_server_name = Some("x".into());
        let e = problems_of(&c);
        assert!(
            e.contains("outputs[0].url: does not apply to type = \"kafka\""),
            "{e}"
        );
        assert!(
            e.contains("outputs[0].tls_server_name: does not apply"),
            "{e}"
        );
        let mut f = OutputConfig::new(OutputType::File);
        f.path = Some("/tmp/x".into());
        f.compression = Some("gzip".into());
        let e = problems_of(&f);
        assert!(
            e.contains("outputs[0].compression: does not apply to type = \"file\""),
            "{e}"
        );
    }

    #[test]
    fn errors_are_classified() {
        use RDKafkaErrorCode as E;
        for c in [
            E::MessageSizeTooLarge,
            E::InvalidTopic,
            E::TopicAuthorizationFailed,
            E::InvalidRecord,
        ] {
            assert!(permanent(c), "{c:?}");
        }
        for c in [
            E::MessageTimedOut,
            E::QueueFull,
            E::BrokerTransportFailure,
            E::AllBrokersDown,
            E::LeaderNotAvailable,
            E::NotLeaderForPartition,
            E::NotEnoughReplicas,
            E::RequestTimedOut,
            E::UnknownTopicOrPartition,
            E::UnknownTopic,
            E::Fatal,
            E::ProducerFenced,
        ] {
            assert!(!permanent(c), "{c:?}");
        }
        for c in [E::Fatal, E::ProducerFenced, E::OutOfOrderSequenceNumber] {
            assert!(producer_broken(c), "{c:?}");
        }
        assert!(!producer_broken(E::MessageTimedOut));
    }

    #[test]
    fn a_missing_ca_file_is_refused_when_the_output_starts() {
        let mut c = kafka();
        c.tls = Some(true);
        c.tls_ca_file = Some("/nonexistent/ca.pem".into());
        let e = KafkaOut::new(&c).err().unwrap().to_string();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    }
}
