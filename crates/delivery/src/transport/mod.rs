//! The transports. Each takes a batch of spooled [`Record`]s and says, per record, whether
//! the receiver took it, should get it again later, or refused it for good.

pub mod elastic;
pub mod file;
pub mod hec;
pub mod http;
pub mod kafka;
pub mod syslog;
pub mod tls;
pub mod webhook;

use std::io;
use std::time::Duration;

use crate::config::{OutputConfig, OutputType};
use crate::spool::Record;
use crate::DeliveryError;

/// What became of one record of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ItemResult {
    Delivered,
    /// Send it again later (the reason is logged).
    Retry(String),
    /// Never send it again: dead-letter it with this reason.
    Reject(String),
}

/// A failure of a whole batch.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Connection refused or reset, timeout, HTTP 408/429/5xx, ...: try again later.
    #[error("{0} (will retry)")]
    Retriable(String),
    /// HTTP 400/401/403, a record the transport cannot carry: dead-letter.
    #[error("{0} (rejected)")]
    Permanent(String),
    /// HTTP 413: the request was too large. Sent again in halves; a single record that is
    /// still too large is dead-lettered.
    #[error("{0} (too large)")]
    TooLarge(String),
}

impl SendError {
    pub fn is_retriable(&self) -> bool {
        matches!(self, SendError::Retriable(_))
    }
}

/// I/O failures of the sensor's side of a connection are worth a retry, except data the
/// transport cannot carry.
pub fn classify_io(what: &str, e: &io::Error) -> SendError {
    match e.kind() {
        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData => {
            SendError::Permanent(format!("{what}: {e}"))
        }
        _ => SendError::Retriable(format!("{what}: {e}")),
    }
}

/// HTTP status classes: 2xx delivered; 408, 425, 429 and 5xx retriable; any other status
/// (400, 401, 403, 404, redirects) is a permanent reject; 413 says the request was too large.
pub fn classify_status(status: u16, body: &[u8]) -> Result<(), SendError> {
    let snippet = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    match status {
        200..=299 => Ok(()),
        408 | 425 | 429 | 500..=599 => {
            Err(SendError::Retriable(format!("HTTP {status}: {snippet}")))
        }
        413 => Err(SendError::TooLarge(format!("HTTP {status}: {snippet}"))),
        _ => Err(SendError::Permanent(format!("HTTP {status}: {snippet}"))),
    }
}

/// `host:port` (IPv6 in brackets) into host and port.
pub fn split_host_port(a: &str) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = a.strip_prefix('[') {
        let (h, p) = rest.split_once("]:")?;
        (h, p)
    } else {
        let (h, p) = a.rsplit_once(':')?;
        if h.contains(':') {
            return None;
        }
        (h, p)
    };
    if host.is_empty() {
        return None;
    }
    Some((host.to_string(), port.parse().ok()?))
}

/// One output's transport.
pub enum Transport {
    File(file::FileOut),
    Stdout(file::StdoutOut),
    SyslogUdp(syslog::UdpOut),
    Tcp(syslog::TcpOut),
    Hec(hec::HecOut),
    Elastic(elastic::ElasticOut),
    Webhook(webhook::WebhookOut),
    Kafka(kafka::KafkaOut),
}

impl Transport {
    /// Builds the transport (opens files, loads TLS material); connects lazily.
    pub fn build(cfg: &OutputConfig) -> Result<Transport, DeliveryError> {
        let timeout = Duration::from_secs(cfg.timeout_secs.max(1));
        Ok(match cfg.kind {
            OutputType::File => Transport::File(file::FileOut::open(cfg)?),
            OutputType::Stdout => Transport::Stdout(file::StdoutOut::default()),
            OutputType::SyslogUdp => Transport::SyslogUdp(syslog::UdpOut::new(cfg)?),
            OutputType::Tcp => Transport::Tcp(syslog::TcpOut::new(cfg, timeout)?),
            OutputType::Hec => Transport::Hec(hec::HecOut::new(cfg, timeout)?),
            OutputType::Elasticsearch => {
                Transport::Elastic(elastic::ElasticOut::new(cfg, timeout)?)
            }
            OutputType::Webhook => Transport::Webhook(webhook::WebhookOut::new(cfg, timeout)?),
            OutputType::Kafka => Transport::Kafka(kafka::KafkaOut::new(cfg)?),
        })
    }

    /// Sends a batch; `Ok` holds one result per record, in order.
    pub async fn send(&mut self, batch: &[&Record]) -> Result<Vec<ItemResult>, SendError> {
        match self {
            Transport::File(t) => t.send(batch),
            Transport::Stdout(t) => t.send(batch),
            Transport::SyslogUdp(t) => t.send(batch).await,
            Transport::Tcp(t) => t.send(batch).await,
            Transport::Hec(t) => t.send(batch).await,
            Transport::Elastic(t) => t.send(batch).await,
            Transport::Webhook(t) => t.send(batch).await,
            Transport::Kafka(t) => t.send(batch).await,
        }
    }

    /// Forgets the connection (after a timeout the stream may be mid-message).
    pub fn reset(&mut self) {
        match self {
            Transport::Tcp(t) => t.reset(),
            Transport::Hec(t) => t.reset(),
            Transport::Elastic(t) => t.reset(),
            Transport::Webhook(t) => t.reset(),
            Transport::Kafka(t) => t.reset(),
            Transport::File(_) | Transport::Stdout(_) | Transport::SyslogUdp(_) => {}
        }
    }

    /// Reopens files (log rotation by an outside tool).
    pub fn reopen(&mut self) {
        if let Transport::File(f) = self {
            f.reopen();
        }
    }
}

/// All delivered.
pub(crate) fn all_delivered(n: usize) -> Vec<ItemResult> {
    vec![ItemResult::Delivered; n]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ports() {
        assert_eq!(
            split_host_port("127.0.0.1:514"),
            Some(("127.0.0.1".into(), 514))
        );
        assert_eq!(split_host_port("[::1]:6514"), Some(("::1".into(), 6514)));
        assert_eq!(split_host_port("::1:6514"), None);
        assert_eq!(split_host_port("host"), None);
        assert_eq!(split_host_port(":1"), None);
        assert_eq!(split_host_port("h:99999"), None);
    }

    #[test]
    fn statuses() {
        assert!(classify_status(201, b"").is_ok());
        for s in [408, 429, 500, 502, 503] {
            assert!(classify_status(s, b"").unwrap_err().is_retriable(), "{s}");
        }
        for s in [301, 400, 401, 403, 404, 413] {
            assert!(!classify_status(s, b"").unwrap_err().is_retriable(), "{s}");
        }
        assert!(matches!(
            classify_status(413, b""),
            Err(SendError::TooLarge(_))
        ));
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert!(classify_io("connect", &refused).is_retriable());
    }
}
