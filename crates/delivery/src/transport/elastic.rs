//! `elasticsearch`: Elasticsearch or OpenSearch `_bulk` with `create` and `_id` = alert id, so
//! a resend of a delivered alert is a 409 that counts as delivered. Per item: 2xx and 409
//! delivered, 429 and 5xx sent again (only those items), anything else dead-lettered with the
//! error the cluster gave.

use std::time::Duration;

use serde_json::Value;

use super::http::HttpClient;
use super::{classify_status, ItemResult, SendError};
use crate::config::OutputConfig;
use crate::spool::Record;
use crate::DeliveryError;

/// Index used when `index` is not set.
pub const DEFAULT_INDEX: &str = "mirador-alerts";

pub struct ElasticOut {
    client: HttpClient,
    index: String,
    auth: Option<String>,
}

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(input.len().div_ceil(3) * 4);
    for c in input.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

impl ElasticOut {
    pub fn new(cfg: &OutputConfig, timeout: Duration) -> Result<ElasticOut, DeliveryError> {
        let auth = match (&cfg.username, &cfg.password, &cfg.api_key) {
            (_, _, Some(k)) if !k.is_empty() => Some(format!("ApiKey {k}")),
            (Some(u), Some(p), _) => {
                Some(format!("Basic {}", base64(format!("{u}:{p}").as_bytes())))
            }
            _ => None,
        };
        Ok(ElasticOut {
            client: HttpClient::new(cfg, timeout)?,
            index: cfg
                .index
                .clone()
                .filter(|i| !i.is_empty())
                .unwrap_or_else(|| DEFAULT_INDEX.to_string()),
            auth,
        })
    }

    pub fn reset(&mut self) {
        self.client.reset();
    }

    pub async fn send(&mut self, batch: &[&Record]) -> Result<Vec<ItemResult>, SendError> {
        let mut body = Vec::new();
        for r in batch {
            let action = serde_json::json!({"create": {"_index": self.index, "_id": r.alert_id}});
            body.extend_from_slice(action.to_string().as_bytes());
            body.push(b'\n');
            body.extend_from_slice(&r.payload);
            body.push(b'\n');
        }
        let mut headers = vec![("content-type", "application/x-ndjson")];
        if let Some(a) = &self.auth {
            headers.push(("authorization", a.as_str()));
        }
        let (status, resp) = self.client.post("/_bulk", &headers, body).await?;
        classify_status(status, &resp)?;
        Ok(items(&resp, batch.len()))
    }
}

/// Per-item results of a `_bulk` answer; all retried when the answer does not list them.
pub fn items(resp: &[u8], n: usize) -> Vec<ItemResult> {
    let v: Value = match serde_json::from_slice(resp) {
        Ok(v) => v,
        Err(e) => return vec![ItemResult::Retry(format!("unreadable _bulk answer: {e}")); n],
    };
    let Some(items) = v.get("items").and_then(Value::as_array) else {
        return vec![ItemResult::Retry("_bulk answer without items".into()); n];
    };
    if items.len() != n {
        return vec![ItemResult::Retry(format!("_bulk answered {} items for {n}", items.len())); n];
    }
    items
        .iter()
        .map(|it| {
            let op = it
                .get("create")
                .or_else(|| it.get("index"))
                .unwrap_or(&Value::Null);
            let status = op.get("status").and_then(Value::as_u64).unwrap_or(0);
            let reason = || {
                let e = op.get("error").unwrap_or(&Value::Null);
                let t = e.get("type").and_then(Value::as_str).unwrap_or("error");
                let r = e.get("reason").and_then(Value::as_str).unwrap_or("");
                format!("_bulk item {status}: {t}: {r}")
            };
            match status {
                200..=299 | 409 => ItemResult::Delivered,
                429 | 500..=599 => ItemResult::Retry(reason()),
                _ => ItemResult::Reject(reason()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_items_are_classified() {
        let resp = br#"{"errors":true,"items":[
            {"create":{"status":201}},
            {"create":{"status":409,"error":{"type":"version_conflict_engine_exception"}}},
            {"create":{"status":429,"error":{"type":"es_rejected_execution_exception"}}},
            {"create":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"bad"}}}
        ]}"#;
        let r = items(resp, 4);
        assert_eq!(r[0], ItemResult::Delivered);
        assert_eq!(r[1], ItemResult::Delivered);
        assert!(matches!(r[2], ItemResult::Retry(_)));
        assert!(matches!(&r[3], ItemResult::Reject(m) if m.contains("mapper_parsing_exception")));
        assert!(items(resp, 3)
            .iter()
            .all(|x| matches!(x, ItemResult::Retry(_))));
        assert!(items(b"nope", 2)
            .iter()
            .all(|x| matches!(x, ItemResult::Retry(_))));
        assert_eq!(base64(b"elastic:changeme"), "ZWxhc3RpYzpjaGFuZ2VtZQ==");
        assert_eq!(base64(b"ab"), "YWI=");
    }
}
