//! `hec`: Splunk HTTP Event Collector. Events go to `/services/collector/event` as
//! concatenated JSON objects (not an array) with `Authorization: Splunk <token>` and a
//! request channel; with `indexer_acks = true` a batch counts as delivered only when
//! `/services/collector/ack` says it was indexed (else it is sent again: same alert ids).

use std::time::{Duration, Instant};

use serde_json::Value;

use super::http::HttpClient;
use super::{all_delivered, classify_status, ItemResult, SendError};
use crate::config::OutputConfig;
use crate::spool::Record;
use crate::DeliveryError;

pub struct HecOut {
    client: HttpClient,
    auth: String,
    channel: String,
    acks: bool,
    index: Option<String>,
    sourcetype: String,
    json: bool,
    timeout: Duration,
}

/// A random channel id in UUID form (HEC wants one per client when acks are on).
fn new_channel() -> String {
    let a = fastrand::u64(..);
    let b = fastrand::u64(..);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48 & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

impl HecOut {
    pub fn new(cfg: &OutputConfig, timeout: Duration) -> Result<HecOut, DeliveryError> {
        Ok(HecOut {
            client: HttpClient::new(cfg, timeout)?,
            auth: format!("Splunk {}", cfg.token.clone().unwrap_or_default()),
            channel: cfg
                .channel
                .clone()
                .filter(|c| !c.is_empty())
                .unwrap_or_else(new_channel),
            acks: cfg.indexer_acks.unwrap_or(false),
            index: cfg.index.clone().filter(|i| !i.is_empty()),
            sourcetype: cfg
                .sourcetype
                .clone()
                .unwrap_or_else(|| format!("mirador:{}", cfg.format())),
            json: cfg.format().is_json(),
            timeout,
        })
    }

    pub fn reset(&mut self) {
        self.client.reset();
    }

    /// One HEC event object for a record.
    fn event(&self, r: &Record, out: &mut Vec<u8>) {
        let time = r.time_ns as f64 / 1e9;
        let mut head = serde_json::Map::new();
        head.insert("time".into(), Value::from((time * 1000.0).round() / 1000.0));
        head.insert("source".into(), Value::from("mirador"));
        head.insert("sourcetype".into(), Value::from(self.sourcetype.clone()));
        if let Some(i) = &self.index {
            head.insert("index".into(), Value::from(i.clone()));
        }
        let mut fields = serde_json::Map::new();
        fields.insert("alert_id".into(), Value::from(r.alert_id.clone()));
        head.insert("fields".into(), Value::Object(fields));
        let head = Value::Object(head).to_string();
        // `{...,"event":<payload>}`: the head without its closing brace.
        out.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
        out.extend_from_slice(b",\"event\":");
        if self.json && serde_json::from_slice::<serde::de::IgnoredAny>(&r.payload).is_ok() {
            out.extend_from_slice(&r.payload);
        } else {
            let text = String::from_utf8_lossy(&r.payload);
            out.extend_from_slice(Value::from(text.as_ref()).to_string().as_bytes());
        }
        out.push(b'}');
    }

    pub async fn send(&mut self, batch: &[&Record]) -> Result<Vec<ItemResult>, SendError> {
        let mut body = Vec::new();
        for r in batch {
            self.event(r, &mut body);
        }
        let headers = [
            ("authorization", self.auth.as_str()),
            ("x-splunk-request-channel", self.channel.as_str()),
            ("content-type", "application/json"),
        ];
        let path = "/services/collector/event";
        let (status, resp) = self.client.post(path, &headers, body).await?;
        classify_status(status, &resp)?;
        if !self.acks {
            return Ok(all_delivered(batch.len()));
        }
        let ack_id = serde_json::from_slice::<Value>(&resp)
            .ok()
            .and_then(|v| v.get("ackId").and_then(Value::as_u64))
            .ok_or_else(|| {
                SendError::Retriable(
                    "HEC answered without an ackId; are indexer acknowledgements on for this token?"
                        .into(),
                )
            })?;
        self.wait_ack(ack_id).await?;
        Ok(all_delivered(batch.len()))
    }

    /// Polls `/services/collector/ack` until the batch is indexed or a deadline passes.
    async fn wait_ack(&mut self, id: u64) -> Result<(), SendError> {
        let deadline = Instant::now() + self.timeout * 3;
        let mut pause = Duration::from_millis(50);
        let body = format!("{{\"acks\":[{id}]}}").into_bytes();
        loop {
            let headers = [
                ("authorization", self.auth.as_str()),
                ("x-splunk-request-channel", self.channel.as_str()),
                ("content-type", "application/json"),
            ];
            let (status, resp) = self
                .client
                .post("/services/collector/ack", &headers, body.clone())
                .await?;
            classify_status(status, &resp)?;
            let acked = serde_json::from_slice::<Value>(&resp)
                .ok()
                .and_then(|v| v.get("acks")?.get(id.to_string())?.as_bool())
                .unwrap_or(false);
            if acked {
                return Ok(());
            }
            if Instant::now() + pause > deadline {
                return Err(SendError::Retriable(format!(
                    "HEC ack {id} not confirmed in time; sending again"
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OutputType;

    #[test]
    fn events_are_objects_with_the_payload_inline_or_as_text() {
        let mut cfg = OutputConfig::new(OutputType::Hec);
        cfg.url = Some("http://127.0.0.1:1".into());
        cfg.token = Some("t".into());
        let hec = HecOut::new(&cfg, Duration::from_secs(1)).unwrap();
        let r = Record {
            enqueued_ns: 0,
            time_ns: 1_700_000_000_123_000_000,
            alert_id: "abc".into(),
            dedup_key: "k".into(),
            payload: br#"{"a":1}"#.to_vec(),
        };
        let mut out = Vec::new();
        hec.event(&r, &mut out);
        hec.event(&r, &mut out);
        let objs: Vec<Value> = serde_json::Deserializer::from_slice(&out)
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[0]["event"]["a"], 1);
        assert_eq!(objs[0]["time"].as_f64().unwrap(), 1_700_000_000.123);
        assert_eq!(objs[0]["fields"]["alert_id"], "abc");
        let mut cfg2 = cfg.clone();
        cfg2.format = Some("cef".into());
        let hec = HecOut::new(&cfg2, Duration::from_secs(1)).unwrap();
        let mut out = Vec::new();
        hec.event(
            &Record {
                payload: b"CEF:0|x".to_vec(),
                ..r
            },
            &mut out,
        );
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["event"], "CEF:0|x");
        assert_eq!(new_channel().len(), 36);
    }
}
