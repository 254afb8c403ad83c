//! `sensor.toml`: the sensor's configuration, validated before anything starts. Unknown keys
//! are refused (a typo must not silently fall back to a default), and each bad value gets a
//! message naming the key and the fix.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

const NS: u64 = 1_000_000_000;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub decode: DecodeSection,
    pub flow: FlowSection,
    pub http: HttpSection,
    pub output: OutputSection,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecodeSection {
    pub max_fragment_sets: usize,
    pub max_fragment_bytes: usize,
    pub fragment_timeout_secs: u64,
    pub decode_tunnels: bool,
    pub max_tunnel_depth: u8,
}

impl Default for DecodeSection {
    fn default() -> Self {
        let d = wire::DecoderConfig::default();
        DecodeSection {
            max_fragment_sets: d.max_fragment_sets,
            max_fragment_bytes: d.max_fragment_bytes,
            fragment_timeout_secs: d.fragment_timeout_ns / NS,
            decode_tunnels: d.decode_tunnels,
            max_tunnel_depth: d.max_tunnel_depth,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlowSection {
    pub max_flows: usize,
    pub max_buffered_bytes_per_direction: usize,
    pub max_buffered_bytes_total: usize,
    pub idle_timeout_secs: u64,
    pub embryonic_timeout_secs: u64,
    pub closed_timeout_secs: u64,
}

impl Default for FlowSection {
    fn default() -> Self {
        let f = flow::FlowConfig::default();
        FlowSection {
            max_flows: f.max_flows,
            max_buffered_bytes_per_direction: f.max_buffered_bytes_per_direction,
            max_buffered_bytes_total: f.max_buffered_bytes_total,
            idle_timeout_secs: f.idle_timeout_ns / NS,
            embryonic_timeout_secs: f.embryonic_timeout_ns / NS,
            closed_timeout_secs: f.closed_timeout_ns / NS,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    pub max_head_bytes: usize,
    pub max_headers: usize,
    pub body_keep_bytes: usize,
    pub max_decompressed_bytes: u64,
    pub decode_requests: bool,
    pub decode_responses: bool,
    pub max_pending: usize,
}

impl Default for HttpSection {
    fn default() -> Self {
        let h = http::HttpConfig::default();
        HttpSection {
            max_head_bytes: h.max_head_bytes,
            max_headers: h.max_headers,
            body_keep_bytes: h.body_keep_bytes,
            max_decompressed_bytes: h.max_decompressed_bytes,
            decode_requests: h.decode_requests,
            decode_responses: h.decode_responses,
            max_pending: h.max_pending,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct OutputSection {
    /// Where transaction records go: a path, "-" for stdout, or empty for nowhere.
    pub transactions: String,
}

fn check(ok: bool, key: &str, what: &str) -> Result<()> {
    if !ok {
        bail!("{key}: {what}");
    }
    Ok(())
}

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "{}: cannot read the config file; check the path given with -c",
                path.display()
            )
        })?;
        Self::parse(&text).with_context(|| format!("{}: invalid configuration", path.display()))
    }

    pub fn parse(text: &str) -> Result<Config> {
        let cfg: Config =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<()> {
        let d = &self.decode;
        check(
            d.max_fragment_sets >= 1,
            "decode.max_fragment_sets",
            "must be at least 1",
        )?;
        check(
            d.max_fragment_bytes >= 65_535,
            "decode.max_fragment_bytes",
            "must be at least 65535 (one full datagram)",
        )?;
        check(
            d.fragment_timeout_secs >= 1,
            "decode.fragment_timeout_secs",
            "must be at least 1 second",
        )?;
        check(
            (1..=8).contains(&d.max_tunnel_depth),
            "decode.max_tunnel_depth",
            "must be between 1 and 8",
        )?;
        let f = &self.flow;
        check(f.max_flows >= 1, "flow.max_flows", "must be at least 1")?;
        check(
            f.max_flows <= 100_000_000,
            "flow.max_flows",
            "must be at most 100000000; each flow costs about 1 KiB",
        )?;
        check(
            f.max_buffered_bytes_per_direction >= 1500,
            "flow.max_buffered_bytes_per_direction",
            "must be at least 1500 (one full segment)",
        )?;
        check(
            f.max_buffered_bytes_total >= f.max_buffered_bytes_per_direction,
            "flow.max_buffered_bytes_total",
            "must be at least flow.max_buffered_bytes_per_direction",
        )?;
        check(
            f.idle_timeout_secs >= 1,
            "flow.idle_timeout_secs",
            "must be at least 1 second",
        )?;
        check(
            f.embryonic_timeout_secs >= 1,
            "flow.embryonic_timeout_secs",
            "must be at least 1 second",
        )?;
        let h = &self.http;
        check(
            h.max_head_bytes >= 1024,
            "http.max_head_bytes",
            "must be at least 1024",
        )?;
        check(
            (1..=10_000).contains(&h.max_headers),
            "http.max_headers",
            "must be between 1 and 10000",
        )?;
        check(h.max_pending >= 1, "http.max_pending", "must be at least 1")?;
        Ok(())
    }

    pub fn engine(&self) -> engine::EngineConfig {
        engine::EngineConfig {
            decoder: wire::DecoderConfig {
                max_fragment_sets: self.decode.max_fragment_sets,
                max_fragment_bytes: self.decode.max_fragment_bytes,
                fragment_timeout_ns: self.decode.fragment_timeout_secs.saturating_mul(NS),
                decode_tunnels: self.decode.decode_tunnels,
                max_tunnel_depth: self.decode.max_tunnel_depth,
                ..wire::DecoderConfig::default()
            },
            flow: flow::FlowConfig {
                max_flows: self.flow.max_flows,
                max_buffered_bytes_per_direction: self.flow.max_buffered_bytes_per_direction,
                max_buffered_bytes_total: self.flow.max_buffered_bytes_total,
                idle_timeout_ns: self.flow.idle_timeout_secs.saturating_mul(NS),
                embryonic_timeout_ns: self.flow.embryonic_timeout_secs.saturating_mul(NS),
                closed_timeout_ns: self.flow.closed_timeout_secs.saturating_mul(NS),
            },
            http: http::HttpConfig {
                max_head_bytes: self.http.max_head_bytes,
                max_headers: self.http.max_headers,
                body_keep_bytes: self.http.body_keep_bytes,
                max_decompressed_bytes: self.http.max_decompressed_bytes,
                decode_requests: self.http.decode_requests,
                decode_responses: self.http.decode_responses,
                max_pending: self.http.max_pending,
            },
        }
    }

    pub fn transactions_path(&self) -> Option<PathBuf> {
        (!self.output.transactions.is_empty()).then(|| PathBuf::from(&self.output.transactions))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_sensor_toml_parses_and_equals_the_defaults() {
        let text = include_str!("../../../sensor.toml");
        let cfg = Config::parse(text).expect("sensor.toml must parse");
        let def = Config::default();
        assert_eq!(
            format!("{:?}", cfg.engine()),
            format!("{:?}", def.engine()),
            "sensor.toml documents the defaults"
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::parse("[flow]\nmax_flow = 10\n").expect_err("typo must fail");
        let msg = format!("{err:#}");
        assert!(msg.contains("max_flow"), "{msg}");
        assert!(msg.contains("max_flows"), "lists the valid keys: {msg}");
    }

    #[test]
    fn bad_value_names_key_and_fix() {
        let err = Config::parse("[flow]\nmax_flows = 0\n").expect_err("zero flows must fail");
        assert_eq!(format!("{err:#}"), "flow.max_flows: must be at least 1");
        let err = Config::parse("[http]\nmax_headers = \"many\"\n").expect_err("type error");
        assert!(format!("{err:#}").contains("max_headers"));
    }
}
