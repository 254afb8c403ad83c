//! `syslog_udp`: one alert per datagram (RFC 5424 with the `syslog` format; RFC 5426).
//! `tcp`: octet-counted frames (RFC 6587 §3.4.1), optionally in TLS (RFC 5425). Neither
//! protocol acknowledges: a record counts as delivered once the kernel took it, and before
//! each batch a TCP connection the peer has closed is replaced, so a receiver restart does not
//! swallow the next batch. A receiver that dies with unread data in its socket still loses it
//! (the protocol's limit; HEC, `_bulk` and webhooks acknowledge).

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::{all_delivered, classify_io, split_host_port, ItemResult, SendError};
use crate::config::OutputConfig;
use crate::spool::Record;
use crate::DeliveryError;

/// Largest datagram payload sent; larger alerts are rejected (dead-lettered).
pub const MAX_DATAGRAM: usize = 65_000;

pub struct UdpOut {
    address: String,
    socket: Option<UdpSocket>,
}

impl UdpOut {
    pub fn new(cfg: &OutputConfig) -> Result<UdpOut, DeliveryError> {
        Ok(UdpOut {
            address: cfg.address.clone().unwrap_or_default(),
            socket: None,
        })
    }

    pub async fn send(&mut self, batch: &[&Record]) -> Result<Vec<ItemResult>, SendError> {
        if self.socket.is_none() {
            let target = tokio::net::lookup_host(&self.address)
                .await
                .map_err(|e| classify_io(&self.address, &e))?
                .next()
                .ok_or_else(|| SendError::Retriable(format!("{}: no address", self.address)))?;
            let bind = if target.is_ipv4() {
                "0.0.0.0:0"
            } else {
                "[::]:0"
            };
            let s = UdpSocket::bind(bind)
                .await
                .map_err(|e| classify_io("udp bind", &e))?;
            s.connect(target)
                .await
                .map_err(|e| classify_io(&self.address, &e))?;
            self.socket = Some(s);
        }
        let Some(s) = &self.socket else {
            return Err(SendError::Retriable("udp: no socket".into()));
        };
        let mut out = Vec::with_capacity(batch.len());
        for (i, r) in batch.iter().enumerate() {
            if r.payload.len() > MAX_DATAGRAM {
                out.push(ItemResult::Reject(format!(
                    "{} bytes do not fit a UDP datagram",
                    r.payload.len()
                )));
                continue;
            }
            if let Err(e) = s.send(&r.payload).await {
                // What went before was sent; the rest waits.
                let reason = classify_io(&self.address, &e).to_string();
                out.extend((i..batch.len()).map(|_| ItemResult::Retry(reason.clone())));
                self.socket = None;
                return Ok(out);
            }
            out.push(ItemResult::Delivered);
        }
        Ok(out)
    }
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref().0,
        }
    }

    async fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => {
                s.write_all(b).await?;
                s.flush().await
            }
            Stream::Tls(s) => {
                s.write_all(b).await?;
                s.flush().await
            }
        }
    }
}

pub struct TcpOut {
    address: String,
    host: String,
    tls: Option<(TlsConnector, rustls::pki_types::ServerName<'static>)>,
    timeout: Duration,
    stream: Option<Stream>,
    buf: Vec<u8>,
}

impl TcpOut {
    pub fn new(cfg: &OutputConfig, timeout: Duration) -> Result<TcpOut, DeliveryError> {
        let address = cfg.address.clone().unwrap_or_default();
        let (host, _) = split_host_port(&address)
            .ok_or_else(|| DeliveryError::Config(format!("{address}: not host:port")))?;
        let tls = if cfg.tls == Some(true) {
            let c = super::tls::client_config(cfg)?;
            Some((TlsConnector::from(c), super::tls::server_name(cfg, &host)?))
        } else {
            None
        };
        Ok(TcpOut {
            address,
            host,
            tls,
            timeout,
            stream: None,
            buf: Vec::new(),
        })
    }

    pub fn reset(&mut self) {
        self.stream = None;
    }

    async fn connect(&mut self) -> Result<(), SendError> {
        let tcp = tokio::time::timeout(self.timeout, TcpStream::connect(&self.address))
            .await
            .map_err(|_| SendError::Retriable(format!("{}: connect timed out", self.address)))?
            .map_err(|e| classify_io(&self.address, &e))?;
        let _ = tcp.set_nodelay(true);
        let stream = match &self.tls {
            None => Stream::Plain(tcp),
            Some((connector, name)) => {
                let s = tokio::time::timeout(self.timeout, connector.connect(name.clone(), tcp))
                    .await
                    .map_err(|_| {
                        SendError::Retriable(format!("{}: TLS handshake timed out", self.host))
                    })?
                    .map_err(|e| {
                        SendError::Retriable(format!("{}: TLS handshake: {e}", self.address))
                    })?;
                Stream::Tls(Box::new(s))
            }
        };
        self.stream = Some(stream);
        Ok(())
    }

    /// Whether the peer has closed (or reset) the connection: a non-blocking peek at the
    /// socket (not through the runtime, whose readiness may be stale) finds end of stream or
    /// an error. Data waiting (a TLS session ticket) or nothing to read means alive.
    fn peer_gone(s: &Stream) -> bool {
        use nix::sys::socket::{recv, MsgFlags};
        use std::os::fd::AsRawFd;
        let mut b = [0u8; 1];
        let fd = s.tcp().as_raw_fd();
        match recv(fd, &mut b, MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT) {
            Ok(0) => true,
            Ok(_) => false,
            Err(nix::errno::Errno::EAGAIN) => false,
            Err(_) => true,
        }
    }

    pub async fn send(&mut self, batch: &[&Record]) -> Result<Vec<ItemResult>, SendError> {
        if let Some(s) = &self.stream {
            if Self::peer_gone(s) {
                self.stream = None;
            }
        }
        if self.stream.is_none() {
            self.connect().await?;
        }
        self.buf.clear();
        for r in batch {
            sinks::siem::octet_counted(&r.payload, &mut self.buf);
        }
        let Some(s) = self.stream.as_mut() else {
            return Err(SendError::Retriable("tcp: not connected".into()));
        };
        match s.write_all(&self.buf).await {
            Ok(()) => Ok(all_delivered(batch.len())),
            Err(e) => {
                self.stream = None;
                Err(classify_io(&self.address, &e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OutputType;
    use std::io::Read;

    fn rec(i: u8) -> Record {
        Record {
            enqueued_ns: 0,
            time_ns: 0,
            alert_id: format!("{i}"),
            dedup_key: String::new(),
            payload: vec![b'a' + i; 10],
        }
    }

    /// A receiver that reads one frame per connection and closes: the next batch must go on
    /// a new connection, not into the closed one.
    #[test]
    fn a_closed_connection_is_replaced_before_the_next_batch() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        l.set_nonblocking(true).unwrap();
        let server = std::thread::spawn(move || {
            let mut got = Vec::new();
            let end = std::time::Instant::now() + Duration::from_secs(5);
            while got.len() < 2 && std::time::Instant::now() < end {
                let Ok((mut c, _)) = l.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                c.set_nonblocking(false).unwrap();
                let mut b = [0u8; 13];
                c.read_exact(&mut b).unwrap();
                got.push(b.to_vec());
                // Closed with nothing left unread.
            }
            got
        });
        let mut cfg = OutputConfig::new(OutputType::Tcp);
        cfg.address = Some(format!("127.0.0.1:{port}"));
        let mut t = TcpOut::new(&cfg, Duration::from_secs(2)).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (a, b) = (rec(0), rec(1));
        assert_eq!(rt.block_on(t.send(&[&a])).unwrap(), all_delivered(1));
        // Let the receiver read and close.
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(rt.block_on(t.send(&[&b])).unwrap(), all_delivered(1));
        let got = server.join().unwrap();
        assert_eq!(
            got,
            vec![b"10 aaaaaaaaaa".to_vec(), b"10 bbbbbbbbbb".to_vec()]
        );
    }
}
