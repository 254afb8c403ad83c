//! `webhook`: each batch POSTed as one JSON array of the encoded alerts, with the configured
//! extra headers. 2xx delivered; other statuses classified as for every HTTP transport.

use std::time::Duration;

use super::http::HttpClient;
use super::{all_delivered, classify_status, ItemResult, SendError};
use crate::config::OutputConfig;
use crate::spool::Record;
use crate::DeliveryError;

pub struct WebhookOut {
    client: HttpClient,
    headers: Vec<(String, String)>,
}

impl WebhookOut {
    pub fn new(cfg: &OutputConfig, timeout: Duration) -> Result<WebhookOut, DeliveryError> {
        let headers = cfg
            .headers
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        Ok(WebhookOut {
            client: HttpClient::new(cfg, timeout)?,
            headers,
        })
    }

    pub fn reset(&mut self) {
        self.client.reset();
    }

    pub async fn send(&mut self, batch: &[&Record]) -> Result<Vec<ItemResult>, SendError> {
        let mut body = vec![b'['];
        for (i, r) in batch.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(&r.payload);
        }
        body.push(b']');
        let mut headers: Vec<(&str, &str)> = vec![("content-type", "application/json")];
        headers.extend(self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let (status, resp) = self.client.post("", &headers, body).await?;
        classify_status(status, &resp)?;
        Ok(all_delivered(batch.len()))
    }
}
