//! `sensor.toml`: the sensor's configuration, validated before anything starts. Unknown keys
//! are refused (a typo must not silently fall back to a default), and each bad value gets a
//! message naming the key and the fix.
//!
//! Loading goes in four steps, each failing with one message:
//! 1. the text is parsed as TOML (syntax errors come with toml's own line/column snippet);
//! 2. the table is walked against [`SCHEMA`], the one list of sections, keys and value kinds:
//!    unknown sections and keys are named with their full path, the nearest valid name and the
//!    line; wrong types name the expected type;
//! 3. `MIRADOR_<SECTION>__<KEY>` environment variables override the file
//!    ([`Config::load_with_env`]), checked against the same schema;
//! 4. the table is deserialized into [`Config`] and the values validated
//!    ([`Config::validate`]); facts about the host where it runs (network interfaces) only in
//!    [`Config::validate_for_run`].

pub mod detection;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use toml::{Table, Value};

const NS: u64 = 1_000_000_000;
const MIB: u64 = 1 << 20;

/// Prefix of the environment variables that override the file.
const ENV_PREFIX: &str = "MIRADOR_";

/// Where Linux lists the host's network interfaces.
const SYS_CLASS_NET: &str = "/sys/class/net";

/// The accepted `log.level` values.
const LOG_LEVELS: &[&str] = &["error", "warn", "info", "debug", "trace"];

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub capture: CaptureSection,
    pub decode: DecodeSection,
    pub flow: FlowSection,
    pub http: HttpSection,
    pub pipeline: PipelineSection,
    pub inventory: InventorySection,
    pub detect: detection::DetectSection,
    pub output: OutputSection,
    pub metrics: MetricsSection,
    pub log: LogSection,
    pub run: RunSection,
    /// Alert outputs (`[[outputs]]`), checked by the delivery crate.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<::delivery::OutputConfig>,
}

/// Live capture (`mirador run`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureSection {
    /// Network interfaces to capture from.
    pub interfaces: Vec<String>,
    /// Bytes kept of each packet.
    pub snaplen: u32,
    pub promiscuous: bool,
    /// Kernel capture buffer per interface.
    pub buffer_bytes: u64,
    /// BPF filter (pcap-filter(7)); empty captures everything.
    pub filter: String,
    pub fanout: FanoutMode,
    /// Fanout group id; 0 derives one from the process id.
    pub fanout_group: u16,
    /// Packets handed on at once.
    pub batch_packets: usize,
    /// Longest a quiet link holds a partial batch, in milliseconds (wall clock).
    pub timeout_ms: u32,
}

impl Default for CaptureSection {
    fn default() -> Self {
        CaptureSection {
            interfaces: Vec::new(),
            snaplen: 65_535,
            promiscuous: true,
            buffer_bytes: 64 * MIB,
            filter: String::new(),
            fanout: FanoutMode::None,
            fanout_group: 0,
            batch_packets: 256,
            timeout_ms: 100,
        }
    }
}

/// How packets of one interface are spread over capture sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FanoutMode {
    /// One socket per interface.
    #[default]
    None,
    /// Several sockets, packets spread by flow hash.
    Hash,
}

/// The names `capture.fanout` accepts, as serde spells them.
const FANOUT_MODES: &[&str] = &["none", "hash"];

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
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

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
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

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
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

/// Threads and queues between capture and analysis.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineSection {
    /// Analysis workers; 0 = one per core less one, at least 1 (see [`Config::worker_count`]).
    pub workers: usize,
    /// Batches queued ahead of each worker.
    pub queue_batches: usize,
    /// Analysis shards for live capture; transactions go to one by client address, so each
    /// client's transactions meet in one shard whichever worker parsed them.
    pub analysis_shards: usize,
}

impl Default for PipelineSection {
    fn default() -> Self {
        PipelineSection {
            workers: 0,
            queue_batches: 64,
            analysis_shards: 1,
        }
    }
}

/// The API inventory: endpoint templates, parameters, schemas, auth, sensitive data.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct InventorySection {
    pub enabled: bool,
    /// Key of the keyed hashes that stand for credentials (`mirador.identity`).
    pub identity_key: String,
    pub max_hosts: usize,
    pub max_endpoints: usize,
    /// Path-tree nodes per host and method.
    pub max_nodes: usize,
    /// Distinct words at one path position before it is a parameter.
    pub word_fanout: usize,
    /// Distinct codes (letters and digits) at one path position before it is a parameter.
    pub code_fanout: usize,
    /// `[HOST] [METHOD] /template` rules that map matching paths to the template.
    pub force_templates: Vec<String>,
    /// `[HOST] [METHOD] /template` rules whose parameters must stay literal.
    pub forbid_templates: Vec<String>,
    /// Header names that carry API keys, added to the built-in ones.
    pub api_key_headers: Vec<String>,
    pub api_key_params: Vec<String>,
    pub session_cookies: Vec<String>,
    /// Bodies per endpoint and direction parsed in full, then one in `body_sample_every`,
    /// backing off to one in `body_sample_max_every` while inspections find nothing new.
    pub bodies_in_full: u64,
    pub body_sample_every: u64,
    pub body_sample_max_every: u64,
    /// Reference OpenAPI spec (YAML or JSON) to mark operations shadow, zombie or unused.
    pub spec: String,
    /// Where `mirador run` writes the inventory every `export_interval_secs`; "" for nowhere.
    pub export_path: String,
    pub export_interval_secs: u64,
    pub export_format: ExportFormat,
}

impl Default for InventorySection {
    fn default() -> Self {
        let i = inventory::InventoryConfig::default();
        InventorySection {
            enabled: true,
            identity_key: String::new(),
            max_hosts: i.catalogue.max_hosts,
            max_endpoints: i.max_endpoints,
            max_nodes: i.catalogue.tree.max_nodes,
            word_fanout: i.catalogue.tree.word_fanout,
            code_fanout: i.catalogue.tree.code_fanout,
            force_templates: Vec::new(),
            forbid_templates: Vec::new(),
            api_key_headers: Vec::new(),
            api_key_params: Vec::new(),
            session_cookies: Vec::new(),
            bodies_in_full: i.bodies_in_full,
            body_sample_every: i.body_sample_every,
            body_sample_max_every: i.body_sample_max_every,
            spec: String::new(),
            export_path: String::new(),
            export_interval_secs: 300,
            export_format: ExportFormat::OpenapiJson,
        }
    }
}

/// How the inventory is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ExportFormat {
    #[default]
    OpenapiJson,
    OpenapiYaml,
}

const EXPORT_FORMATS: &[&str] = &["openapi-json", "openapi-yaml"];

/// Parses `[HOST] [METHOD] /template`: a host (`*`, `name`, `*.suffix`) and a method are
/// optional, in that order.
pub fn parse_rule(
    action: inventory::catalogue::RuleAction,
    text: &str,
) -> std::result::Result<inventory::catalogue::Rule, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let (host, method, template) = match words.as_slice() {
        [t] => ("*", None, *t),
        [a, t] if a.bytes().all(|b| b.is_ascii_uppercase()) => ("*", Some(*a), *t),
        [h, t] => (*h, None, *t),
        [h, m, t] => (*h, Some(*m), *t),
        _ => return Err(format!("\"{text}\" is not \"[HOST] [METHOD] /template\"")),
    };
    inventory::catalogue::Rule::new(action, host, method, template)
        .map_err(|e| format!("\"{text}\": {e}"))
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputSection {
    /// Where transaction records go: a path, "-" for stdout, or empty for nowhere.
    pub transactions: String,
    /// Where alert records go: a path, "-" for stdout, or empty for nowhere.
    pub alerts: String,
}

/// The running process: privileges and shutdown.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunSection {
    /// Account to switch to once the capture sockets are open.
    pub user: String,
    /// Permit running on as root.
    pub allow_root: bool,
    /// Longest a shutdown may take to drain and flush (wall clock).
    pub shutdown_deadline_secs: u64,
}

impl Default for RunSection {
    fn default() -> Self {
        RunSection {
            user: "mirador".to_owned(),
            allow_root: false,
            shutdown_deadline_secs: 10,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// `address:port` of the metrics endpoint; empty disables it.
    pub listen: String,
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection {
            listen: "127.0.0.1:9108".to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    pub format: LogFormat,
    /// error, warn, info, debug or trace.
    pub level: String,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The names `log.format` accepts, as serde spells them.
const LOG_FORMATS: &[&str] = &["text", "json"];

// ---------------------------------------------------------------------------------------------
// Schema: every section and key with the kind of value it takes. The one place that lists them;
// a unit test checks it against the serde structs above and against the shipped sensor.toml.

/// The kind of value a key takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A non-negative integer no larger than `max`.
    Int {
        max: u64,
    },
    /// A finite number (an integer is accepted too); ranges are checked by validation.
    Float,
    Bool,
    Str,
    /// An array of strings (comma-separated in an environment override).
    StrList,
    /// One of these strings.
    Enum(&'static [&'static str]),
}

/// An unsigned integer of at most `max`; TOML integers stop at `i64::MAX`.
const fn uint(max: u64) -> Kind {
    Kind::Int {
        max: if max > i64::MAX as u64 {
            i64::MAX as u64
        } else {
            max
        },
    }
}

const U8: Kind = uint(u8::MAX as u64);
const U16: Kind = uint(u16::MAX as u64);
const U32: Kind = uint(u32::MAX as u64);
const U64: Kind = uint(u64::MAX);
const USIZE: Kind = uint(usize::MAX as u64);
const BOOL: Kind = Kind::Bool;
const STR: Kind = Kind::Str;

type SectionSchema = (&'static str, &'static [(&'static str, Kind)]);

/// Sections in the order of `sensor.toml`, keys in the order of their structs.
const SCHEMA: &[SectionSchema] = &[
    (
        "capture",
        &[
            ("interfaces", Kind::StrList),
            ("snaplen", U32),
            ("promiscuous", BOOL),
            ("buffer_bytes", U64),
            ("filter", STR),
            ("fanout", Kind::Enum(FANOUT_MODES)),
            ("fanout_group", U16),
            ("batch_packets", USIZE),
            ("timeout_ms", U32),
        ],
    ),
    (
        "decode",
        &[
            ("max_fragment_sets", USIZE),
            ("max_fragment_bytes", USIZE),
            ("fragment_timeout_secs", U64),
            ("decode_tunnels", BOOL),
            ("max_tunnel_depth", U8),
        ],
    ),
    (
        "flow",
        &[
            ("max_flows", USIZE),
            ("max_buffered_bytes_per_direction", USIZE),
            ("max_buffered_bytes_total", USIZE),
            ("idle_timeout_secs", U64),
            ("embryonic_timeout_secs", U64),
            ("closed_timeout_secs", U64),
        ],
    ),
    (
        "http",
        &[
            ("max_head_bytes", USIZE),
            ("max_headers", USIZE),
            ("body_keep_bytes", USIZE),
            ("max_decompressed_bytes", U64),
            ("decode_requests", BOOL),
            ("decode_responses", BOOL),
            ("max_pending", USIZE),
        ],
    ),
    (
        "pipeline",
        &[
            ("workers", USIZE),
            ("queue_batches", USIZE),
            ("analysis_shards", USIZE),
        ],
    ),
    (
        "inventory",
        &[
            ("enabled", BOOL),
            ("identity_key", STR),
            ("max_hosts", USIZE),
            ("max_endpoints", USIZE),
            ("max_nodes", USIZE),
            ("word_fanout", USIZE),
            ("code_fanout", USIZE),
            ("force_templates", Kind::StrList),
            ("forbid_templates", Kind::StrList),
            ("api_key_headers", Kind::StrList),
            ("api_key_params", Kind::StrList),
            ("session_cookies", Kind::StrList),
            ("bodies_in_full", U64),
            ("body_sample_every", U64),
            ("body_sample_max_every", U64),
            ("spec", STR),
            ("export_path", STR),
            ("export_interval_secs", U64),
            ("export_format", Kind::Enum(EXPORT_FORMATS)),
        ],
    ),
    ("detect", detection::KEYS),
    ("output", &[("transactions", STR), ("alerts", STR)]),
    ("metrics", &[("listen", STR)]),
    (
        "log",
        &[("format", Kind::Enum(LOG_FORMATS)), ("level", STR)],
    ),
    (
        "run",
        &[
            ("user", STR),
            ("allow_root", BOOL),
            ("shutdown_deadline_secs", U64),
        ],
    ),
];

fn schema_section(name: &str) -> Option<&'static [(&'static str, Kind)]> {
    SCHEMA
        .iter()
        .find(|(s, _)| *s == name)
        .map(|(_, keys)| *keys)
}

fn schema_key(keys: &[(&'static str, Kind)], name: &str) -> Option<Kind> {
    keys.iter().find(|(k, _)| *k == name).map(|(_, kind)| *kind)
}

/// "a string", "an integer", ... for messages.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date-time",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

fn quoted_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

fn expected(kind: Kind) -> String {
    match kind {
        Kind::Int { .. } => "an integer".to_owned(),
        Kind::Float => "a number".to_owned(),
        Kind::Bool => "a boolean".to_owned(),
        Kind::Str => "a string".to_owned(),
        Kind::StrList => "an array of strings".to_owned(),
        Kind::Enum(names) => format!("one of {}", quoted_list(names)),
    }
}

/// Checks one value against its kind; the message lacks the key, which the caller adds.
fn check_kind(kind: Kind, v: &Value) -> std::result::Result<(), String> {
    match (kind, v) {
        (Kind::Int { max }, Value::Integer(i)) => {
            if *i < 0 {
                Err(format!("expected a non-negative integer, found {i}"))
            } else if *i as u64 > max {
                Err(format!("{i} is too large (at most {max})"))
            } else {
                Ok(())
            }
        }
        (Kind::Bool, Value::Boolean(_)) | (Kind::Str, Value::String(_)) => Ok(()),
        (Kind::Float, Value::Integer(_)) => Ok(()),
        (Kind::Float, Value::Float(f)) if f.is_finite() => Ok(()),
        (Kind::Float, Value::Float(f)) => Err(format!("expected a finite number, found {f}")),
        (Kind::StrList, Value::Array(items)) => match items.iter().find(|x| !x.is_str()) {
            None => Ok(()),
            Some(x) => Err(format!(
                "expected an array of strings, found {} in the array",
                type_name(x)
            )),
        },
        (Kind::Enum(names), Value::String(s)) => {
            if names.contains(&s.as_str()) {
                Ok(())
            } else {
                let hint = closest(s, names.iter().copied())
                    .map(|c| format!("; did you mean \"{c}\"?"))
                    .unwrap_or_default();
                Err(format!(
                    "unknown value \"{s}\", expected one of {}{hint}",
                    quoted_list(names)
                ))
            }
        }
        _ => Err(format!(
            "expected {}, found {}",
            expected(kind),
            type_name(v)
        )),
    }
}

/// The candidate nearest to `word` (Jaro-Winkler, case-insensitive, `-` read as `_`), if any
/// is close enough to be what was meant.
fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let word = word.to_ascii_lowercase().replace('-', "_");
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(&word, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// Sections that have a key named exactly `key`.
fn sections_with_key(key: &str) -> impl Iterator<Item = &'static str> + '_ {
    SCHEMA
        .iter()
        .filter(move |(_, keys)| schema_key(keys, key).is_some())
        .map(|(s, _)| *s)
}

/// The key path to suggest for the unknown `section.key` (section known): a key of that name
/// in another section first (it was put in the wrong place), else the nearest key of the
/// section.
fn suggest_key(section: &str, key: &str) -> Option<String> {
    if let Some(other) = sections_with_key(key).next() {
        return Some(format!("{other}.{key}"));
    }
    let keys = schema_section(section)?;
    closest(key, keys.iter().map(|(k, _)| *k)).map(|k| format!("{section}.{k}"))
}

fn suggest_section(name: &str) -> Option<&'static str> {
    closest(name, SCHEMA.iter().map(|(s, _)| *s))
}

fn section_names() -> String {
    SCHEMA
        .iter()
        .map(|(s, _)| *s)
        .collect::<Vec<_>>()
        .join(", ")
}

fn key_names(keys: &[(&'static str, Kind)]) -> String {
    keys.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
}

/// A problem found while walking the file: its message and where it is.
struct Found {
    path: Vec<String>,
    msg: String,
}

/// `[[outputs]]`: an array of tables whose keys are the delivery crate's; values are checked
/// by serde and [`delivery::config::validate`].
fn outputs_problems(value: &Value) -> Vec<Found> {
    // Positions are those of the first [[outputs]] line (`line_of` walks tables only).
    let path = || vec!["outputs".to_string()];
    let Value::Array(items) = value else {
        return vec![Found {
            path: path(),
            msg: format!(
                "outputs: expected [[outputs]] tables, found {}",
                type_name(value)
            ),
        }];
    };
    let mut found = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Value::Table(t) = item else {
            found.push(Found {
                path: path(),
                msg: format!("outputs[{i}]: expected a table, found {}", type_name(item)),
            });
            continue;
        };
        if !t.contains_key("type") {
            found.push(Found {
                path: path(),
                msg: format!(
                    "outputs[{i}].type: missing; one of {}",
                    quoted_list(&::delivery::OutputType::ALL.map(|k| k.as_str()))
                ),
            });
        }
        for key in t.keys() {
            if ::delivery::config::KEYS.contains(&key.as_str()) {
                continue;
            }
            let msg = match closest(key, ::delivery::config::KEYS.iter().copied()) {
                Some(k) => format!("outputs[{i}].{key}: unknown key; did you mean `{k}`?"),
                None => format!(
                    "outputs[{i}].{key}: unknown key; the keys of [[outputs]] are {}",
                    ::delivery::config::KEYS.join(", ")
                ),
            };
            found.push(Found { path: path(), msg });
        }
    }
    found
}

/// Walks the parsed file against [`SCHEMA`]; every problem, in no particular order.
fn schema_problems(table: &Table) -> Vec<Found> {
    let mut found = Vec::new();
    for (name, value) in table {
        if name == "outputs" {
            found.extend(outputs_problems(value));
            continue;
        }
        let Some(keys) = schema_section(name) else {
            // A plain value at the top level may be a key that lost its section header.
            let owner = (!value.is_table())
                .then(|| sections_with_key(name).next())
                .flatten();
            let msg = match (owner, suggest_section(name)) {
                (Some(s), _) => format!(
                    "{name}: keys belong in a section; did you mean `{s}.{name}` (under [{s}])?"
                ),
                (None, Some(s)) => format!("{name}: unknown section; did you mean `{s}`?"),
                (None, None) => format!(
                    "{name}: unknown section; the sections are {}",
                    section_names()
                ),
            };
            found.push(Found {
                path: vec![name.clone()],
                msg,
            });
            continue;
        };
        let Value::Table(t) = value else {
            found.push(Found {
                path: vec![name.clone()],
                msg: format!(
                    "{name}: expected a table ([{name}]), found {}",
                    type_name(value)
                ),
            });
            continue;
        };
        for (key, v) in t {
            let path = vec![name.clone(), key.clone()];
            let msg = match schema_key(keys, key) {
                None => match suggest_key(name, key) {
                    Some(s) => format!("{name}.{key}: unknown key; did you mean `{s}`?"),
                    None => format!(
                        "{name}.{key}: unknown key; the keys of [{name}] are {}",
                        key_names(keys)
                    ),
                },
                Some(kind) => match check_kind(kind, v) {
                    Ok(()) => continue,
                    Err(m) => format!("{name}.{key}: {m}"),
                },
            };
            found.push(Found { path, msg });
        }
    }
    found
}

/// The 1-based line of the key at `path` (section, then key) in `text`.
fn line_of(text: &str, path: &[String]) -> Option<usize> {
    use toml::de::{DeTable, DeValue};
    let doc = DeTable::parse(text).ok()?;
    let mut table: &DeTable<'_> = doc.get_ref();
    let mut start = None;
    for (i, name) in path.iter().enumerate() {
        let (k, v) = table
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == name.as_str())?;
        start = Some(k.span().start);
        if i + 1 < path.len() {
            match v.get_ref() {
                DeValue::Table(t) => table = t,
                _ => return None,
            }
        }
    }
    let start = start?.min(text.len());
    Some(
        text.as_bytes()[..start]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1,
    )
}

/// Parses the text and checks it against the schema: the first problem in the file (by line)
/// is the error.
fn parse_table(text: &str) -> Result<Table> {
    let table: Table = text
        .parse()
        .map_err(|e: toml::de::Error| anyhow!("{}", e.to_string().trim_end()))?;
    let found = schema_problems(&table);
    if found.is_empty() {
        return Ok(table);
    }
    let first = found
        .into_iter()
        .map(|f| (line_of(text, &f.path), f.msg))
        .min_by_key(|(line, _)| line.unwrap_or(usize::MAX))
        .expect("not empty");
    match first {
        (Some(line), msg) => bail!("{msg} (line {line})"),
        (None, msg) => bail!("{msg}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Environment overrides.

/// `flow.max_flows` → `MIRADOR_FLOW__MAX_FLOWS`.
fn env_name(section: &str, key: &str) -> String {
    format!(
        "{ENV_PREFIX}{}__{}",
        section.to_ascii_uppercase(),
        key.to_ascii_uppercase()
    )
}

/// The TOML value an environment variable's text stands for, checked against `kind`.
fn env_value(kind: Kind, raw: &str) -> std::result::Result<Value, String> {
    let v = match kind {
        Kind::Int { .. } => {
            let t = raw.trim();
            match t.parse::<i64>() {
                Ok(i) => Value::Integer(i),
                Err(_) if t.parse::<u64>().is_ok() => {
                    return Err(format!("{t} is too large (at most {})", i64::MAX))
                }
                Err(_) => return Err(format!("expected an integer, found `{raw}`")),
            }
        }
        Kind::Float => match raw.trim().parse::<f64>() {
            Ok(f) => Value::Float(f),
            Err(_) => return Err(format!("expected a number, found `{raw}`")),
        },
        Kind::Bool => match raw.trim().to_ascii_lowercase().as_str() {
            "true" => Value::Boolean(true),
            "false" => Value::Boolean(false),
            _ => return Err(format!("expected true or false, found `{raw}`")),
        },
        Kind::Str => Value::String(raw.to_owned()),
        Kind::StrList => Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_owned()))
                .collect(),
        ),
        Kind::Enum(_) => Value::String(raw.trim().to_ascii_lowercase()),
    };
    check_kind(kind, &v).map(|()| v)
}

/// Applies the `MIRADOR_<SECTION>__<KEY>` variables of `env` to `table`; other variables are
/// ignored. Returns which variable set which key (`section.key` → variable name).
fn apply_env(
    table: &mut Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<BTreeMap<String, String>> {
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(name, _)| {
            name.get(..ENV_PREFIX.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(ENV_PREFIX))
        })
        .collect();
    vars.sort();
    let mut set: BTreeMap<String, String> = BTreeMap::new();
    for (var, raw) in vars {
        let rest = &var[ENV_PREFIX.len()..];
        // Only MIRADOR_<SECTION>__<KEY> names are overrides. Others with the prefix are left
        // alone: orchestrators inject such variables (Kubernetes service links do), and a
        // sensor that refused to start on them would be fragile.
        let Some((section, key)) = rest.split_once("__") else {
            continue;
        };
        let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
        let Some(keys) = schema_section(&section) else {
            match suggest_section(&section) {
                Some(s) => bail!(
                    "{var}: unknown section `{section}`; did you mean `{s}` ({})?",
                    env_name(s, &key)
                ),
                None => bail!(
                    "{var}: unknown section `{section}`; the sections are {}",
                    section_names()
                ),
            }
        };
        let Some(kind) = schema_key(keys, &key) else {
            match suggest_key(&section, &key) {
                Some(s) => {
                    let (ss, sk) = s.split_once('.').expect("section.key");
                    bail!(
                        "{var}: unknown key `{section}.{key}`; did you mean `{s}` ({})?",
                        env_name(ss, sk)
                    )
                }
                None => bail!(
                    "{var}: unknown key `{section}.{key}`; the keys of [{section}] are {}",
                    key_names(keys)
                ),
            }
        };
        let value = env_value(kind, &raw).map_err(|m| anyhow!("{var}: {section}.{key}: {m}"))?;
        let path = format!("{section}.{key}");
        if let Some(prev) = set.insert(path.clone(), var.clone()) {
            bail!("{prev} and {var} both set {path}; keep one");
        }
        let section_table = table
            .entry(section)
            .or_insert_with(|| Value::Table(Table::new()));
        // The file passed the schema walk, so a known section is a table.
        let Value::Table(section_table) = section_table else {
            bail!("{path}: the section is not a table");
        };
        section_table.insert(key, value);
    }
    Ok(set)
}

// ---------------------------------------------------------------------------------------------
// Validation.

/// A value that is well-typed but not acceptable: which key, and what to do.
#[derive(Debug)]
struct Invalid {
    key: &'static str,
    msg: String,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.msg)
    }
}

impl std::error::Error for Invalid {}

type Checked = std::result::Result<(), Invalid>;

fn check(ok: bool, key: &'static str, what: impl Into<String>) -> Checked {
    if ok {
        Ok(())
    } else {
        Err(Invalid {
            key,
            msg: what.into(),
        })
    }
}

fn in_range<T: PartialOrd + fmt::Display>(v: T, lo: T, hi: T, key: &'static str) -> Checked {
    check(
        lo <= v && v <= hi,
        key,
        format!("must be between {lo} and {hi}"),
    )
}

/// Compiles a BPF filter with libpcap; libpcap's message when it does not compile.
fn compile_filter(filter: &str) -> std::result::Result<(), String> {
    let dead = pcap::Capture::dead(pcap::Linktype::ETHERNET).map_err(|e| e.to_string())?;
    match dead.compile(filter, true) {
        Ok(_) => Ok(()),
        Err(pcap::Error::PcapError(msg)) => Err(msg),
        Err(e) => Err(e.to_string()),
    }
}

/// `""` and `"-"` are fine; a path needs a directory where this process can create files,
/// which is tried for real (a probe file is created and removed).
fn check_output_path(key: &'static str, value: &str) -> Checked {
    if value.is_empty() || value == "-" {
        return Ok(());
    }
    let path = Path::new(value);
    let fail = |msg: String| Err(Invalid { key, msg });
    // An existing file or device (e.g. /dev/null) that opens for writing is fine as it is.
    if path.exists()
        && !path.is_dir()
        && std::fs::OpenOptions::new().append(true).open(path).is_ok()
    {
        return Ok(());
    }
    if path.is_dir() {
        return fail(format!(
            "{value} is a directory; give a file path, \"-\" for stdout or \"\" for none"
        ));
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return fail(format!(
                "directory {} does not exist; create it or fix the path",
                dir.display()
            ))
        }
        Err(e) => {
            return fail(format!(
                "cannot use directory {} ({e}); fix the path",
                dir.display()
            ))
        }
        Ok(m) if !m.is_dir() => {
            return fail(format!(
                "{} is not a directory; fix the path",
                dir.display()
            ))
        }
        Ok(_) => {}
    }
    static PROBES: AtomicU64 = AtomicU64::new(0);
    let probe = dir.join(format!(
        ".mirador-write-probe-{}-{}",
        std::process::id(),
        PROBES.fetch_add(1, Ordering::Relaxed)
    ));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(file) => {
            drop(file);
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => fail(format!(
            "cannot create files in directory {} ({e}); fix the path or the directory's permissions",
            dir.display()
        )),
    }
}

/// Each of `names` must be a network interface under `sys_class_net`.
fn check_interfaces_exist(names: &[String], sys_class_net: &Path) -> Checked {
    let key = "capture.interfaces";
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !sys_class_net.join(n).exists())
        .collect();
    let Some(first) = missing.first() else {
        return Ok(());
    };
    let present = match std::fs::read_dir(sys_class_net) {
        Ok(entries) => {
            let mut v: Vec<String> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            if v.is_empty() {
                "none".to_owned()
            } else {
                v.join(", ")
            }
        }
        Err(e) => format!("cannot list {}: {e}", sys_class_net.display()),
    };
    check(
        false,
        key,
        format!("interface {first} does not exist on this host (present: {present}); fix {key}"),
    )
}

impl Config {
    /// Reads and validates a configuration file (no environment overrides).
    pub fn load(path: &Path) -> Result<Config> {
        Self::load_with_env(Some(path), std::iter::empty())
    }

    /// Parses and validates configuration text (no environment overrides).
    #[cfg(test)]
    pub fn parse(text: &str) -> Result<Config> {
        Self::build(parse_table(text)?, &BTreeMap::new())
    }

    /// The configuration of the file at `path` (defaults when `None`), overridden by the
    /// `MIRADOR_<SECTION>__<KEY>=value` variables of `env` (names case-insensitive; lists
    /// comma-separated; booleans `true`/`false`), validated. Variables without the
    /// `MIRADOR_` prefix are ignored; one with it that names no key, or a bad value, fails
    /// with the variable's name. The binary passes `std::env::vars()`.
    pub fn load_with_env(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config> {
        let in_file = |e: anyhow::Error, p: &Path| {
            e.context(format!("{}: invalid configuration", p.display()))
        };
        let mut table = match path {
            None => Table::new(),
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| {
                    format!(
                        "{}: cannot read the config file; check the path given with -c",
                        p.display()
                    )
                })?;
                parse_table(&text).map_err(|e| in_file(e, p))?
            }
        };
        let overrides = apply_env(&mut table, env)?;
        Self::build(table, &overrides).map_err(|e| {
            // An error about a value the environment set is the environment's; the
            // rest is the file's.
            let from_env = e
                .downcast_ref::<Invalid>()
                .is_some_and(|inv| overrides.contains_key(inv.key));
            match path {
                Some(p) if !from_env => in_file(e, p),
                _ => e,
            }
        })
    }

    /// Deserializes a schema-checked table and validates it; a bad value set by an
    /// environment variable names the variable.
    fn build(table: Table, overrides: &BTreeMap<String, String>) -> Result<Config> {
        let cfg: Config = Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| anyhow!("{}", e.to_string().trim_end()))?;
        if let Err(inv) = cfg.check_values() {
            return Err(anyhow::Error::new(match overrides.get(inv.key) {
                Some(var) => Invalid {
                    key: inv.key,
                    msg: format!("{} (set by {var})", inv.msg),
                },
                None => inv,
            }));
        }
        Ok(cfg)
    }

    /// Checks every value (what does not depend on the host it will run on, except that
    /// output directories must exist and be writable). Called by `load` and `parse`.
    pub fn validate(&self) -> Result<()> {
        self.check_values().map_err(anyhow::Error::new)?;
        if let Some(p) = ::delivery::config::validate(&self.outputs)
            .into_iter()
            .next()
        {
            bail!("{p}");
        }
        Ok(())
    }

    /// [`validate`](Self::validate), and the facts of this host a live run needs: every
    /// `capture.interfaces` entry exists.
    pub fn validate_for_run(&self) -> Result<()> {
        self.validate()?;
        check_interfaces_exist(&self.capture.interfaces, Path::new(SYS_CLASS_NET))
            .map_err(anyhow::Error::new)
    }

    fn check_values(&self) -> Checked {
        let c = &self.capture;
        for (i, name) in c.interfaces.iter().enumerate() {
            check(
                !name.is_empty()
                    && name.len() <= 15
                    && name != "."
                    && name != ".."
                    && !name.contains(['/', '\0'])
                    && !name.chars().any(char::is_whitespace),
                "capture.interfaces",
                format!(
                    "\"{name}\" is not an interface name (1 to 15 characters, no '/' or spaces)"
                ),
            )?;
            check(
                !c.interfaces[..i].contains(name),
                "capture.interfaces",
                format!("{name} is listed twice; list each interface once"),
            )?;
        }
        in_range(c.snaplen, 64, 262_144, "capture.snaplen")?;
        check(
            c.buffer_bytes >= MIB,
            "capture.buffer_bytes",
            "must be at least 1048576 (1 MiB)",
        )?;
        in_range(c.batch_packets, 1, 65_536, "capture.batch_packets")?;
        in_range(c.timeout_ms, 1, 10_000, "capture.timeout_ms")?;
        if !c.filter.trim().is_empty() {
            if let Err(e) = compile_filter(&c.filter) {
                check(
                    false,
                    "capture.filter",
                    format!(
                        "libpcap cannot compile \"{}\": {e}; fix the filter (pcap-filter(7) syntax)",
                        c.filter
                    ),
                )?;
            }
        }

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

        let p = &self.pipeline;
        check(
            p.workers <= 256,
            "pipeline.workers",
            "must be at most 256 (0 picks one per core, less one)",
        )?;
        in_range(p.queue_batches, 1, 65_536, "pipeline.queue_batches")?;
        in_range(p.analysis_shards, 1, 64, "pipeline.analysis_shards")?;

        let i = &self.inventory;
        in_range(i.max_hosts, 1, 1_000_000, "inventory.max_hosts")?;
        in_range(i.max_endpoints, 1, 10_000_000, "inventory.max_endpoints")?;
        in_range(i.max_nodes, 16, 10_000_000, "inventory.max_nodes")?;
        in_range(i.word_fanout, 2, 100_000, "inventory.word_fanout")?;
        in_range(i.code_fanout, 1, 100_000, "inventory.code_fanout")?;
        in_range(
            i.body_sample_every,
            1,
            1_000_000,
            "inventory.body_sample_every",
        )?;
        check(
            (i.body_sample_every..=1_000_000).contains(&i.body_sample_max_every),
            "inventory.body_sample_max_every",
            format!(
                "must be between inventory.body_sample_every ({}) and 1000000 (equal to it for \
                 a fixed sample)",
                i.body_sample_every
            ),
        )?;
        for (key, action, rules) in [
            (
                "inventory.force_templates",
                inventory::catalogue::RuleAction::Force,
                &i.force_templates,
            ),
            (
                "inventory.forbid_templates",
                inventory::catalogue::RuleAction::Forbid,
                &i.forbid_templates,
            ),
        ] {
            for r in rules {
                if let Err(e) = parse_rule(action, r) {
                    check(false, key, e)?;
                }
            }
        }
        in_range(
            i.export_interval_secs,
            1,
            86_400,
            "inventory.export_interval_secs",
        )?;
        check_output_path("inventory.export_path", &i.export_path)?;
        check(
            i.export_path != "-",
            "inventory.export_path",
            "must be a file path (the inventory is rewritten whole each time), not \"-\"",
        )?;

        self.detect.check()?;

        let o = &self.output;
        check_output_path("output.transactions", &o.transactions)?;
        check_output_path("output.alerts", &o.alerts)?;
        check(
            o.alerts.is_empty() || o.alerts == "-" || o.alerts != o.transactions,
            "output.alerts",
            "is the same file as output.transactions; give each its own file",
        )?;

        let m = &self.metrics;
        check(
            m.listen.is_empty() || m.listen.parse::<SocketAddr>().is_ok(),
            "metrics.listen",
            format!(
                "\"{}\" is not an address:port; use e.g. \"127.0.0.1:9108\" or \"[::1]:9108\", \
                 or \"\" to disable metrics",
                m.listen
            ),
        )?;

        let l = &self.log;
        check(
            LOG_LEVELS.contains(&l.level.as_str()),
            "log.level",
            format!(
                "\"{}\" is not a level; use one of {}",
                l.level,
                quoted_list(LOG_LEVELS)
            ),
        )?;

        in_range(
            self.run.shutdown_deadline_secs,
            1,
            3600,
            "run.shutdown_deadline_secs",
        )?;
        Ok(())
    }

    /// Analysis workers to start: `pipeline.workers`, or when 0 one per available core less
    /// one (for capture), at least 1.
    pub fn worker_count(&self) -> usize {
        if self.pipeline.workers > 0 {
            return self.pipeline.workers;
        }
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .saturating_sub(1)
            .max(1)
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

    /// The inventory's configuration, rules compiled (run [`validate`](Self::validate) first:
    /// a rule that does not compile is left out here).
    pub fn inventory(&self) -> inventory::InventoryConfig {
        use inventory::catalogue::RuleAction;
        let i = &self.inventory;
        let mut c = inventory::InventoryConfig::default();
        c.catalogue.max_hosts = i.max_hosts;
        c.catalogue.tree.max_nodes = i.max_nodes;
        c.catalogue.tree.word_fanout = i.word_fanout;
        c.catalogue.tree.code_fanout = i.code_fanout;
        c.max_endpoints = i.max_endpoints;
        c.rules = i
            .force_templates
            .iter()
            .filter_map(|r| parse_rule(RuleAction::Force, r).ok())
            .chain(
                i.forbid_templates
                    .iter()
                    .filter_map(|r| parse_rule(RuleAction::Forbid, r).ok()),
            )
            .collect();
        c.auth
            .api_key_headers
            .extend(i.api_key_headers.iter().cloned());
        c.auth
            .api_key_params
            .extend(i.api_key_params.iter().cloned());
        c.auth
            .session_cookies
            .extend(i.session_cookies.iter().cloned());
        c.identity_key = i.identity_key.as_bytes().to_vec();
        c.bodies_in_full = i.bodies_in_full;
        c.body_sample_every = i.body_sample_every;
        c.body_sample_max_every = i.body_sample_max_every;
        c.decode_keep_bytes = self.http.body_keep_bytes;
        c.decode_max_bytes = self.http.max_decompressed_bytes;
        c
    }

    /// The analysis stage: the inventory and the detection features.
    pub fn analyzer(&self) -> inventory::Analyzer {
        inventory::Analyzer::new(
            self.inventory(),
            inventory::profile::ProfileLimits::default(),
        )
    }

    pub fn transactions_path(&self) -> Option<PathBuf> {
        (!self.output.transactions.is_empty()).then(|| PathBuf::from(&self.output.transactions))
    }

    /// Where alert records go: `None` for nowhere, `-` for stdout.
    pub fn alerts_path(&self) -> Option<PathBuf> {
        (!self.output.alerts.is_empty()).then(|| PathBuf::from(&self.output.alerts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../../sensor.toml");

    fn err(text: &str) -> String {
        format!("{:#}", Config::parse(text).expect_err("must be refused"))
    }

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn env_err(text: Option<&str>, vars: &[(&str, &str)]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sensor.toml");
        if let Some(t) = text {
            std::fs::write(&path, t).unwrap();
        }
        let e = Config::load_with_env(text.map(|_| path.as_path()), env(vars))
            .expect_err("must be refused");
        format!("{e:#}")
    }

    #[test]
    fn shipped_sensor_toml_parses_and_equals_the_defaults() {
        let cfg = Config::parse(SHIPPED).expect("sensor.toml must parse");
        let def = Config::default();
        assert_eq!(cfg, def, "sensor.toml documents the defaults");
        assert_eq!(
            format!("{:?}", cfg.engine()),
            format!("{:?}", def.engine()),
            "sensor.toml documents the defaults"
        );
        // Spot-check the documented defaults of the new sections against the brief.
        assert_eq!(def.capture.snaplen, 65_535);
        assert!(def.capture.promiscuous);
        assert_eq!(def.capture.buffer_bytes, 64 << 20);
        assert_eq!(def.capture.fanout, FanoutMode::None);
        assert_eq!(def.capture.batch_packets, 256);
        assert_eq!(def.capture.timeout_ms, 100);
        assert_eq!(def.pipeline.queue_batches, 64);
        assert_eq!(def.run.user, "mirador");
        assert!(!def.run.allow_root);
        assert_eq!(def.run.shutdown_deadline_secs, 10);
        assert_eq!(def.metrics.listen, "127.0.0.1:9108");
        assert_eq!(def.log.format, LogFormat::Text);
        assert_eq!(def.log.level, "info");
        assert_eq!(def.output.alerts, "");
    }

    fn schema_pairs() -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = SCHEMA
            .iter()
            .flat_map(|(s, keys)| {
                keys.iter()
                    .map(move |(k, _)| (s.to_string(), k.to_string()))
            })
            .collect();
        v.sort();
        v
    }

    fn table_pairs(t: &Table) -> Vec<(String, String)> {
        let mut v = Vec::new();
        for (s, sec) in t {
            let sec = sec.as_table().unwrap_or_else(|| panic!("{s} is a table"));
            for k in sec.keys() {
                v.push((s.clone(), k.clone()));
            }
        }
        v.sort();
        v
    }

    /// The schema has exactly the serde structs' sections and keys, each default value is of
    /// the schema's kind, and each key is read by serde (a changed value changes the config).
    #[test]
    fn schema_matches_the_serde_structs() {
        let def = Config::default();
        let ser = Table::try_from(&def).expect("the config serializes");
        assert_eq!(table_pairs(&ser), schema_pairs());
        for (section, keys) in SCHEMA {
            for (key, kind) in *keys {
                let v = &ser[*section][*key];
                check_kind(*kind, v).unwrap_or_else(|m| panic!("{section}.{key}: {m}"));
                let changed = match (kind, v) {
                    (Kind::Int { .. }, Value::Integer(i)) => Value::Integer(i + 1),
                    (Kind::Float, Value::Float(f)) => Value::Float(f + 1.0),
                    (Kind::Bool, Value::Boolean(b)) => Value::Boolean(!b),
                    (Kind::Str, Value::String(s)) => Value::String(format!("{s}x")),
                    (Kind::StrList, _) => Value::Array(vec![Value::String("lo".into())]),
                    (Kind::Enum(names), Value::String(s)) => Value::String(
                        names
                            .iter()
                            .find(|n| **n != s)
                            .expect("two values")
                            .to_string(),
                    ),
                    _ => panic!("{section}.{key}: unexpected default {v:?}"),
                };
                let mut t = Table::new();
                let mut sec = Table::new();
                sec.insert(key.to_string(), changed);
                t.insert(section.to_string(), Value::Table(sec));
                let cfg: Config = Value::Table(t)
                    .try_into()
                    .unwrap_or_else(|e| panic!("{section}.{key}: {e}"));
                assert_ne!(cfg, def, "{section}.{key} is not read by serde");
            }
        }
    }

    /// Every schema key is documented in the shipped sensor.toml (with a comment right above
    /// it), and the file has no key the schema lacks.
    #[test]
    fn schema_matches_the_shipped_sensor_toml() {
        let t: Table = SHIPPED.parse().expect("sensor.toml is TOML");
        assert_eq!(table_pairs(&t), schema_pairs());
        let lines: Vec<&str> = SHIPPED.lines().collect();
        for (section, keys) in SCHEMA {
            let header = lines
                .iter()
                .position(|l| *l == format!("[{section}]"))
                .unwrap_or_else(|| panic!("[{section}] in sensor.toml"));
            for (key, _) in *keys {
                let at = lines[header..]
                    .iter()
                    .position(|l| l.starts_with(&format!("{key} = ")))
                    .unwrap_or_else(|| panic!("{section}.{key} in sensor.toml"))
                    + header;
                assert!(
                    lines[at - 1].starts_with("# "),
                    "{section}.{key} has a comment line above it in sensor.toml"
                );
            }
        }
    }

    /// The value lists of the enum kinds are exactly serde's spellings of the enums.
    #[test]
    fn enum_value_lists_match_serde() {
        fn all_fanout() -> Vec<FanoutMode> {
            // Adding a variant breaks this match: add it to the list and to FANOUT_MODES.
            let _exhaustive = |m: FanoutMode| match m {
                FanoutMode::None | FanoutMode::Hash => (),
            };
            vec![FanoutMode::None, FanoutMode::Hash]
        }
        fn all_log() -> Vec<LogFormat> {
            let _exhaustive = |m: LogFormat| match m {
                LogFormat::Text | LogFormat::Json => (),
            };
            vec![LogFormat::Text, LogFormat::Json]
        }
        let names = |vals: Vec<Value>| -> Vec<String> {
            vals.into_iter()
                .map(|v| v.as_str().expect("a string").to_owned())
                .collect()
        };
        let fanout = names(
            all_fanout()
                .into_iter()
                .map(|m| Value::try_from(m).unwrap())
                .collect(),
        );
        assert_eq!(fanout, FANOUT_MODES);
        let log = names(
            all_log()
                .into_iter()
                .map(|m| Value::try_from(m).unwrap())
                .collect(),
        );
        assert_eq!(log, LOG_FORMATS);
    }

    #[test]
    fn unknown_key_is_named_with_the_nearest_key_and_line() {
        assert_eq!(
            err("[flow]\nmax_flow = 10\n"),
            "flow.max_flow: unknown key; did you mean `flow.max_flows`? (line 2)"
        );
        assert_eq!(
            err("# c\n\n[capture]\nsnap_len = 100\n"),
            "capture.snap_len: unknown key; did you mean `capture.snaplen`? (line 4)"
        );
        // a key of another section: that section's key is suggested
        assert_eq!(
            err("[flow]\nmax_headers = 5\n"),
            "flow.max_headers: unknown key; did you mean `http.max_headers`? (line 2)"
        );
        // dotted and inline forms are the same keys
        assert_eq!(
            err("flow.max_flow = 1\n"),
            "flow.max_flow: unknown key; did you mean `flow.max_flows`? (line 1)"
        );
        assert_eq!(
            err("pipeline = { worker = 2 }\n"),
            "pipeline.worker: unknown key; did you mean `pipeline.workers`? (line 1)"
        );
    }

    #[test]
    fn unknown_key_far_from_every_key_lists_the_section_keys() {
        let msg = err("[pipeline]\nworkers = 2\nzzz = 1\n");
        assert_eq!(
            msg,
            "pipeline.zzz: unknown key; the keys of [pipeline] are workers, queue_batches, analysis_shards (line 3)"
        );
        assert!(!msg.contains("did you mean"));
    }

    #[test]
    fn unknown_section_is_named_with_the_nearest_section() {
        assert_eq!(
            err("[metric]\nlisten = \"\"\n"),
            "metric: unknown section; did you mean `metrics`? (line 1)"
        );
        assert_eq!(
            err("[flow]\nmax_flows = 5\n\n[captures]\n"),
            "captures: unknown section; did you mean `capture`? (line 4)"
        );
        let msg = err("[zzz]\n");
        assert_eq!(
            msg,
            "zzz: unknown section; the sections are capture, decode, flow, http, pipeline, \
             inventory, detect, output, metrics, log, run (line 1)"
        );
        assert_eq!(
            err("max_flows = 5\n"),
            "max_flows: keys belong in a section; did you mean `flow.max_flows` (under [flow])? (line 1)"
        );
    }

    #[test]
    fn the_first_problem_in_the_file_is_reported() {
        // [flow] sorts before [http], but the [http] mistake comes first in the file.
        assert_eq!(
            err("[http]\nmax_headerz = 1\n[flow]\nmax_flow = 1\n"),
            "http.max_headerz: unknown key; did you mean `http.max_headers`? (line 2)"
        );
    }

    #[test]
    fn wrong_types_name_the_key_and_the_expected_type() {
        let cases = [
            ("[flow]\nmax_flows = \"many\"\n", "flow.max_flows: expected an integer, found a string (line 2)"),
            ("[flow]\nmax_flows = 1.5\n", "flow.max_flows: expected an integer, found a float (line 2)"),
            ("[flow]\nmax_flows = -1\n", "flow.max_flows: expected a non-negative integer, found -1 (line 2)"),
            ("[decode]\nmax_tunnel_depth = 300\n", "decode.max_tunnel_depth: 300 is too large (at most 255) (line 2)"),
            ("[decode]\ndecode_tunnels = 1\n", "decode.decode_tunnels: expected a boolean, found an integer (line 2)"),
            ("[capture]\ninterfaces = \"eth0\"\n", "capture.interfaces: expected an array of strings, found a string (line 2)"),
            ("[capture]\ninterfaces = [\"eth0\", 1]\n", "capture.interfaces: expected an array of strings, found an integer in the array (line 2)"),
            ("[capture]\nfanout = \"hsh\"\n", "capture.fanout: unknown value \"hsh\", expected one of \"none\", \"hash\"; did you mean \"hash\"? (line 2)"),
            ("[capture]\nfanout = true\n", "capture.fanout: expected one of \"none\", \"hash\", found a boolean (line 2)"),
            ("[log]\nformat = \"xml\"\n", "log.format: unknown value \"xml\", expected one of \"text\", \"json\" (line 2)"),
            ("[metrics]\nlisten = 9108\n", "metrics.listen: expected a string, found an integer (line 2)"),
            ("flow = 1\n", "flow: expected a table ([flow]), found an integer (line 1)"),
        ];
        for (text, want) in cases {
            assert_eq!(err(text), want, "for {text:?}");
        }
    }

    #[test]
    fn toml_syntax_errors_keep_tomls_position() {
        let msg = err("[flow\nmax_flows = 1\n");
        assert!(msg.contains("line 1"), "{msg}");
    }

    /// Each validation rule, with the message it gives.
    #[test]
    fn bad_values_name_the_key_and_the_fix() {
        let cases = [
            ("[flow]\nmax_flows = 0\n", "flow.max_flows: must be at least 1"),
            ("[capture]\nsnaplen = 63\n", "capture.snaplen: must be between 64 and 262144"),
            ("[capture]\nsnaplen = 262145\n", "capture.snaplen: must be between 64 and 262144"),
            ("[capture]\nbuffer_bytes = 1048575\n", "capture.buffer_bytes: must be at least 1048576 (1 MiB)"),
            ("[capture]\nbatch_packets = 0\n", "capture.batch_packets: must be between 1 and 65536"),
            ("[capture]\nbatch_packets = 65537\n", "capture.batch_packets: must be between 1 and 65536"),
            ("[capture]\ntimeout_ms = 0\n", "capture.timeout_ms: must be between 1 and 10000"),
            ("[capture]\ntimeout_ms = 10001\n", "capture.timeout_ms: must be between 1 and 10000"),
            ("[capture]\ninterfaces = [\"eth0\", \"eth0\"]\n", "capture.interfaces: eth0 is listed twice; list each interface once"),
            ("[capture]\ninterfaces = [\"../etc\"]\n", "capture.interfaces: \"../etc\" is not an interface name (1 to 15 characters, no '/' or spaces)"),
            ("[capture]\ninterfaces = [\"\"]\n", "capture.interfaces: \"\" is not an interface name (1 to 15 characters, no '/' or spaces)"),
            ("[pipeline]\nworkers = 257\n", "pipeline.workers: must be at most 256 (0 picks one per core, less one)"),
            ("[pipeline]\nqueue_batches = 0\n", "pipeline.queue_batches: must be between 1 and 65536"),
            ("[pipeline]\nqueue_batches = 65537\n", "pipeline.queue_batches: must be between 1 and 65536"),
            ("[inventory]\nbody_sample_max_every = 255\n", "inventory.body_sample_max_every: must be between inventory.body_sample_every (256) and 1000000 (equal to it for a fixed sample)"),
            ("[inventory]\nbody_sample_every = 64\nbody_sample_max_every = 1000001\n", "inventory.body_sample_max_every: must be between inventory.body_sample_every (64) and 1000000 (equal to it for a fixed sample)"),
            ("[run]\nshutdown_deadline_secs = 0\n", "run.shutdown_deadline_secs: must be between 1 and 3600"),
            ("[run]\nshutdown_deadline_secs = 3601\n", "run.shutdown_deadline_secs: must be between 1 and 3600"),
            ("[metrics]\nlisten = \"localhost:9108\"\n", "metrics.listen: \"localhost:9108\" is not an address:port; use e.g. \"127.0.0.1:9108\" or \"[::1]:9108\", or \"\" to disable metrics"),
            ("[metrics]\nlisten = \"127.0.0.1\"\n", "metrics.listen: \"127.0.0.1\" is not an address:port; use e.g. \"127.0.0.1:9108\" or \"[::1]:9108\", or \"\" to disable metrics"),
            ("[log]\nlevel = \"verbose\"\n", "log.level: \"verbose\" is not a level; use one of \"error\", \"warn\", \"info\", \"debug\", \"trace\""),
            ("[log]\nlevel = \"INFO\"\n", "log.level: \"INFO\" is not a level; use one of \"error\", \"warn\", \"info\", \"debug\", \"trace\""),
        ];
        for (text, want) in cases {
            assert_eq!(err(text), want, "for {text:?}");
        }
        // and the edges are accepted
        for ok in [
            "[capture]\nsnaplen = 64\nbuffer_bytes = 1048576\nbatch_packets = 65536\ntimeout_ms = 10000\n",
            "[capture]\nsnaplen = 262144\nbatch_packets = 1\ntimeout_ms = 1\n",
            "[pipeline]\nworkers = 256\nqueue_batches = 65536\n",
            "[run]\nshutdown_deadline_secs = 3600\n",
            "[metrics]\nlisten = \"\"\n",
            "[metrics]\nlisten = \"[::1]:9200\"\n",
            "[log]\nlevel = \"trace\"\nformat = \"json\"\n",
        ] {
            Config::parse(ok).unwrap_or_else(|e| panic!("{ok:?}: {e:#}"));
        }
    }

    #[test]
    fn bpf_filter_is_compiled_by_libpcap() {
        let cfg =
            Config::parse("[capture]\nfilter = \"tcp port 80 or (vlan and tcp port 8080)\"\n")
                .expect("a valid filter");
        assert_eq!(
            cfg.capture.filter,
            "tcp port 80 or (vlan and tcp port 8080)"
        );
        let msg = err("[capture]\nfilter = \"tcp prt 80\"\n");
        assert!(
            msg.starts_with("capture.filter: libpcap cannot compile \"tcp prt 80\": "),
            "{msg}"
        );
        assert!(msg.contains("syntax error"), "libpcap's text: {msg}");
        assert!(
            msg.ends_with("; fix the filter (pcap-filter(7) syntax)"),
            "{msg}"
        );
    }

    #[test]
    fn output_paths_need_a_writable_directory() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let ok = format!("[output]\ntransactions = \"{d}/tx.json\"\nalerts = \"-\"\n");
        let cfg = Config::parse(&ok).expect("a writable directory");
        assert_eq!(cfg.alerts_path(), Some(PathBuf::from("-")));
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "the probe file is removed and the output not created"
        );
        assert_eq!(
            err(&format!("[output]\ntransactions = \"{d}/no/tx.json\"\n")),
            format!(
                "output.transactions: directory {d}/no does not exist; create it or fix the path"
            )
        );
        std::fs::write(dir.path().join("file"), b"x").unwrap();
        assert_eq!(
            err(&format!("[output]\nalerts = \"{d}/file/alerts.json\"\n")),
            format!("output.alerts: {d}/file is not a directory; fix the path")
        );
        assert_eq!(
            err(&format!("[output]\nalerts = \"{d}\"\n")),
            format!(
                "output.alerts: {d} is a directory; give a file path, \"-\" for stdout or \"\" for none"
            )
        );
        // /sys refuses new files even to root
        let msg = err("[output]\nalerts = \"/sys/alerts.json\"\n");
        assert!(
            msg.starts_with("output.alerts: cannot create files in directory /sys ("),
            "{msg}"
        );
        assert!(
            msg.ends_with("); fix the path or the directory's permissions"),
            "{msg}"
        );
        assert_eq!(
            err(&format!(
                "[output]\ntransactions = \"{d}/out.json\"\nalerts = \"{d}/out.json\"\n"
            )),
            "output.alerts: is the same file as output.transactions; give each its own file"
        );
    }

    #[test]
    fn interfaces_are_checked_only_for_a_run() {
        let cfg = Config::parse("[capture]\ninterfaces = [\"lo\", \"mirador-nx0\"]\n")
            .expect("another host's interfaces are fine for parse/validate");
        cfg.validate().expect("validate does not look at the host");
        let msg = format!(
            "{:#}",
            cfg.validate_for_run().expect_err("no such interface")
        );
        assert!(
            msg.starts_with(
                "capture.interfaces: interface mirador-nx0 does not exist on this host (present: "
            ),
            "{msg}"
        );
        assert!(msg.contains("lo"), "lists the present ones: {msg}");
        assert!(msg.ends_with("); fix capture.interfaces"), "{msg}");
        let lo = Config::parse("[capture]\ninterfaces = [\"lo\"]\n").unwrap();
        lo.validate_for_run().expect("lo exists");
    }

    #[test]
    fn missing_interface_message_lists_the_present_ones() {
        let sys = tempfile::tempdir().unwrap();
        for n in ["lo", "eth0"] {
            std::fs::create_dir(sys.path().join(n)).unwrap();
        }
        let names = vec!["eth0".to_owned(), "eth9".to_owned()];
        let e = check_interfaces_exist(&names, sys.path()).expect_err("eth9 is missing");
        assert_eq!(
            e.to_string(),
            "capture.interfaces: interface eth9 does not exist on this host \
             (present: eth0, lo); fix capture.interfaces"
        );
        check_interfaces_exist(&names[..1], sys.path()).expect("eth0 is present");
    }

    #[test]
    fn worker_count_defaults_to_cores_less_one() {
        let mut cfg = Config::default();
        cfg.pipeline.workers = 3;
        assert_eq!(cfg.worker_count(), 3);
        cfg.pipeline.workers = 0;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(cfg.worker_count(), (cores - 1).max(1));
        assert!(cfg.worker_count() >= 1);
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sensor.toml");
        std::fs::write(
            &path,
            "[flow]\nmax_flows = 0\nidle_timeout_secs = 60\n[capture]\ninterfaces = [\"eth0\"]\n",
        )
        .unwrap();
        let cfg = Config::load_with_env(
            Some(&path),
            env(&[
                // fixes the file's invalid value
                ("MIRADOR_FLOW__MAX_FLOWS", "1000"),
                // names are case-insensitive
                ("mirador_capture__interfaces", "eth1, eth2,"),
                ("Mirador_Capture__Promiscuous", "FALSE"),
                ("MIRADOR_CAPTURE__FILTER", "tcp port 80"),
                ("MIRADOR_CAPTURE__FANOUT", "Hash"),
                ("MIRADOR_LOG__FORMAT", "json"),
                ("MIRADOR_METRICS__LISTEN", ""),
                ("MIRADOR_PIPELINE__WORKERS", " 4 "),
                // not ours
                ("PATH", "/usr/bin"),
                ("MIRADORS", "x"),
            ]),
        )
        .expect("overrides apply");
        assert_eq!(cfg.flow.max_flows, 1000);
        assert_eq!(
            cfg.flow.idle_timeout_secs, 60,
            "the file's other values stay"
        );
        assert_eq!(cfg.capture.interfaces, ["eth1", "eth2"]);
        assert!(!cfg.capture.promiscuous);
        assert_eq!(cfg.capture.filter, "tcp port 80");
        assert_eq!(cfg.capture.fanout, FanoutMode::Hash);
        assert_eq!(cfg.log.format, LogFormat::Json);
        assert_eq!(cfg.metrics.listen, "");
        assert_eq!(cfg.pipeline.workers, 4);
        assert_eq!(cfg.worker_count(), 4);

        // without a file: defaults, then the environment
        let cfg = Config::load_with_env(
            None,
            env(&[
                ("MIRADOR_CAPTURE__INTERFACES", ""),
                ("MIRADOR_RUN__ALLOW_ROOT", "true"),
            ]),
        )
        .unwrap();
        let mut want = Config::default();
        want.run.allow_root = true;
        assert_eq!(cfg, want);
        // and no environment: the file alone, like `load`
        assert_eq!(
            Config::load_with_env(None, Vec::new()).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn prefixed_variables_that_are_not_overrides_are_left_alone() {
        // Kubernetes service links inject names like these; they are not `SECTION__KEY`.
        let env = [
            ("MIRADOR_SERVICE_HOST".to_string(), "10.0.0.1".to_string()),
            ("MIRADOR_PORT".to_string(), "tcp://x".to_string()),
        ];
        let cfg = Config::load_with_env(None, env).expect("not overrides, not errors");
        assert_eq!(cfg, Config::default());
    }

    #[test]
    fn bad_environment_overrides_name_the_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("MIRADOR_FLOW__MAX_FLOW", "10")],
                "MIRADOR_FLOW__MAX_FLOW: unknown key `flow.max_flow`; did you mean `flow.max_flows` (MIRADOR_FLOW__MAX_FLOWS)?",
            ),
            (
                &[("MIRADOR_METRIC__LISTEN", "")],
                "MIRADOR_METRIC__LISTEN: unknown section `metric`; did you mean `metrics` (MIRADOR_METRICS__LISTEN)?",
            ),
            (
                &[("MIRADOR_ZZZ__QQQ", "")],
                "MIRADOR_ZZZ__QQQ: unknown section `zzz`; the sections are capture, decode, flow, http, pipeline, inventory, detect, output, metrics, log, run",
            ),
            (
                &[("MIRADOR_FLOW__MAX_FLOWS", "lots")],
                "MIRADOR_FLOW__MAX_FLOWS: flow.max_flows: expected an integer, found `lots`",
            ),
            (
                &[("MIRADOR_FLOW__MAX_FLOWS", "-5")],
                "MIRADOR_FLOW__MAX_FLOWS: flow.max_flows: expected a non-negative integer, found -5",
            ),
            (
                &[("MIRADOR_DECODE__MAX_TUNNEL_DEPTH", "256")],
                "MIRADOR_DECODE__MAX_TUNNEL_DEPTH: decode.max_tunnel_depth: 256 is too large (at most 255)",
            ),
            (
                &[("MIRADOR_CAPTURE__PROMISCUOUS", "yes")],
                "MIRADOR_CAPTURE__PROMISCUOUS: capture.promiscuous: expected true or false, found `yes`",
            ),
            (
                &[("MIRADOR_LOG__FORMAT", "xml")],
                "MIRADOR_LOG__FORMAT: log.format: unknown value \"xml\", expected one of \"text\", \"json\"",
            ),
            (
                &[("MIRADOR_FLOW__MAX_FLOWS", "1"), ("mirador_flow__max_flows", "2")],
                "MIRADOR_FLOW__MAX_FLOWS and mirador_flow__max_flows both set flow.max_flows; keep one",
            ),
            // a well-typed value that fails validation names the variable too
            (
                &[("MIRADOR_CAPTURE__SNAPLEN", "10")],
                "capture.snaplen: must be between 64 and 262144 (set by MIRADOR_CAPTURE__SNAPLEN)",
            ),
        ];
        for (vars, want) in cases {
            assert_eq!(env_err(None, vars), *want, "for {vars:?}");
            // with a file, the message is the variable's, not the file's
            assert_eq!(
                env_err(Some("[flow]\nmax_flows = 7\n"), vars),
                *want,
                "for {vars:?}"
            );
        }
        // a bad value from the file is still the file's
        let msg = env_err(
            Some("[capture]\nsnaplen = 10\n"),
            &[("MIRADOR_FLOW__MAX_FLOWS", "5")],
        );
        assert!(
            msg.ends_with("sensor.toml: invalid configuration: capture.snaplen: must be between 64 and 262144"),
            "{msg}"
        );
        // the file is checked before the environment is applied
        let msg = env_err(
            Some("[flow]\nmax_flow = 1\n"),
            &[("MIRADOR_FLOW__MAX_FLOW", "5")],
        );
        assert!(
            msg.ends_with("invalid configuration: flow.max_flow: unknown key; did you mean `flow.max_flows`? (line 2)"),
            "{msg}"
        );
    }
}
