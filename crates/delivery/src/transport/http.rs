//! A small HTTP/1.1 client on hyper: one kept-alive connection per output (the sender sends
//! one request at a time), plain or rustls TLS, every step under the output's timeout.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::SendError;
use crate::config::OutputConfig;
use crate::DeliveryError;

/// Largest response body read (bulk answers list every item).
const MAX_RESPONSE: usize = 64 << 20;

/// `http[s]://host[:port][/base]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// Path prefix without a trailing `/` (often empty).
    pub base: String,
}

impl Url {
    pub fn parse(s: &str) -> Result<Url, String> {
        let (https, rest) = if let Some(r) = s.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!("\"{s}\" must start with http:// or https://"));
        };
        let (authority, base) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(format!(
                "\"{s}\": credentials do not go in the url; use the output's token, username/password or api_key"
            ));
        }
        let default_port = if https { 443 } else { 80 };
        let (host, port) = if authority.starts_with('[') || authority.matches(':').count() == 1 {
            match super::split_host_port(authority) {
                Some(hp) => hp,
                None if authority.starts_with('[') && authority.ends_with(']') => {
                    (authority[1..authority.len() - 1].to_string(), default_port)
                }
                None => return Err(format!("\"{s}\": bad host or port")),
            }
        } else if authority.contains(':') {
            return Err(format!("\"{s}\": an IPv6 address goes in brackets"));
        } else {
            (authority.to_string(), default_port)
        };
        if host.is_empty() {
            return Err(format!("\"{s}\": no host"));
        }
        if base.contains(['?', '#']) {
            return Err(format!("\"{s}\": no query or fragment, only a base path"));
        }
        Ok(Url {
            https,
            host,
            port,
            base: base.to_string(),
        })
    }

    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

pub struct HttpClient {
    pub url: Url,
    tls: Option<(TlsConnector, rustls::pki_types::ServerName<'static>)>,
    timeout: Duration,
    conn: Option<SendRequest<Full<Bytes>>>,
}

impl HttpClient {
    pub fn new(cfg: &OutputConfig, timeout: Duration) -> Result<HttpClient, DeliveryError> {
        let raw = cfg.url.clone().unwrap_or_default();
        let url = Url::parse(&raw).map_err(DeliveryError::Config)?;
        let tls = if url.https {
            let c = super::tls::client_config(cfg)?;
            Some((
                TlsConnector::from(c),
                super::tls::server_name(cfg, &url.host)?,
            ))
        } else {
            None
        };
        Ok(HttpClient {
            url,
            tls,
            timeout,
            conn: None,
        })
    }

    pub fn reset(&mut self) {
        self.conn = None;
    }

    async fn connect(&mut self) -> Result<SendRequest<Full<Bytes>>, SendError> {
        let addr = self.url.authority();
        let tcp = tokio::time::timeout(self.timeout, TcpStream::connect(&addr))
            .await
            .map_err(|_| SendError::Retriable(format!("{addr}: connect timed out")))?
            .map_err(|e| super::classify_io(&addr, &e))?;
        let _ = tcp.set_nodelay(true);
        let hs = |e: hyper::Error| SendError::Retriable(format!("{addr}: {e}"));
        let sender = match &self.tls {
            None => {
                let (s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                    .await
                    .map_err(hs)?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                s
            }
            Some((connector, name)) => {
                let tls = tokio::time::timeout(self.timeout, connector.connect(name.clone(), tcp))
                    .await
                    .map_err(|_| SendError::Retriable(format!("{addr}: TLS handshake timed out")))?
                    .map_err(|e| SendError::Retriable(format!("{addr}: TLS handshake: {e}")))?;
                let (s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                    .await
                    .map_err(hs)?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                s
            }
        };
        Ok(sender)
    }

    /// POSTs `body` to the base path + `path`; the status and the response body. Transport
    /// failures are retriable; the status is the caller's to classify.
    pub async fn post(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), SendError> {
        let r = tokio::time::timeout(self.timeout, self.post_inner(path, headers, body)).await;
        match r {
            Ok(Ok(x)) => Ok(x),
            Ok(Err(e)) => {
                self.conn = None;
                Err(e)
            }
            Err(_) => {
                self.conn = None;
                Err(SendError::Retriable(format!(
                    "{}: no answer within {:?}",
                    self.url.authority(),
                    self.timeout
                )))
            }
        }
    }

    async fn post_inner(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), SendError> {
        let reuse = match self.conn.take() {
            Some(mut s) => s.ready().await.is_ok().then_some(s),
            None => None,
        };
        let mut sender = match reuse {
            Some(s) => s,
            None => self.connect().await?,
        };
        let mut req = hyper::Request::builder()
            .method(hyper::Method::POST)
            .uri(match format!("{}{path}", self.url.base) {
                p if p.is_empty() => "/".to_string(),
                p => p,
            })
            .header(hyper::header::HOST, self.url.authority())
            .header(hyper::header::USER_AGENT, "mirador");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| SendError::Permanent(format!("request: {e}")))?;
        let what = self.url.authority();
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| SendError::Retriable(format!("{what}: {e}")))?;
        let status = resp.status().as_u16();
        let keep = !resp
            .headers()
            .get(hyper::header::CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        let mut body = resp.into_body();
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| SendError::Retriable(format!("{what}: {e}")))?;
            if let Ok(data) = frame.into_data() {
                if out.len() + data.len() > MAX_RESPONSE {
                    return Err(SendError::Retriable(format!(
                        "{what}: response larger than {MAX_RESPONSE} bytes"
                    )));
                }
                out.extend_from_slice(&data);
            }
        }
        if keep {
            self.conn = Some(sender);
        }
        Ok((status, out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = Url::parse("https://splunk.example:8088/").unwrap();
        assert_eq!(
            (u.https, u.host.as_str(), u.port, u.base.as_str()),
            (true, "splunk.example", 8088, "")
        );
        let u = Url::parse("http://127.0.0.1/es/").unwrap();
        assert_eq!((u.port, u.base.as_str()), (80, "/es"));
        let u = Url::parse("http://[::1]:9200").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 9200));
        for bad in [
            "ftp://x",
            "http://",
            "http://u:p@h",
            "http://h:x",
            "http://::1:80",
            "http://h/p?q",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }
}
