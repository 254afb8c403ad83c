//! `mirador check-config` end to end: each mistake in a configuration file exits 1 with one
//! message naming the file, the key's full path and the fix (with the nearest valid name and
//! the line for unknown names), and a full valid configuration exits 0.
//!
//! Environment overrides are tested by the unit tests of `config.rs` (`load_with_env`).

mod common;

use std::path::Path;

use common::{run, tempdir, workspace_root, Run};

/// Writes `text` as `sensor.toml` in `dir` and runs `check-config` on it.
fn check_config(dir: &Path, text: &str) -> (Run, String) {
    let cfg = dir.join("sensor.toml");
    std::fs::write(&cfg, text).expect("write the config");
    let path = cfg.to_str().expect("UTF-8 path").to_owned();
    (run(["check-config", "-c", path.as_str()]), path)
}

/// Asserts a refused configuration: exit 1, nothing on stdout, and exactly the one line
/// `mirador: error: FILE: invalid configuration: MESSAGE`.
fn assert_refused(text: &str, message: &str) {
    let dir = tempdir();
    let (run, path) = check_config(dir.path(), text);
    assert_eq!(run.status.code(), Some(1), "for {text:?}: {}", run.stderr);
    assert!(run.stdout.is_empty());
    assert_eq!(
        run.stderr,
        format!("mirador: error: {path}: invalid configuration: {message}\n"),
        "for {text:?}"
    );
}

#[test]
fn unknown_key_names_the_path_the_nearest_key_and_the_line() {
    assert_refused(
        "[flow]\nmax_flow = 1\n",
        "flow.max_flow: unknown key; did you mean `flow.max_flows`? (line 2)",
    );
    assert_refused(
        "[capture]\ninterfaces = [\"eth1\"]\n\n[pipeline]\nworker = 4\n",
        "pipeline.worker: unknown key; did you mean `pipeline.workers`? (line 5)",
    );
}

#[test]
fn unknown_key_with_nothing_close_lists_the_keys() {
    assert_refused(
        "[metrics]\nport = 9108\n",
        "metrics.port: unknown key; the keys of [metrics] are listen (line 2)",
    );
}

#[test]
fn unknown_section_names_the_nearest_section() {
    assert_refused(
        "[flow]\nmax_flows = 10\n[metric]\nlisten = \"\"\n",
        "metric: unknown section; did you mean `metrics`? (line 3)",
    );
}

#[test]
fn wrong_type_names_the_key_and_the_expected_type() {
    assert_refused(
        "[flow]\nmax_flows = \"many\"\n",
        "flow.max_flows: expected an integer, found a string (line 2)",
    );
    assert_refused(
        "[capture]\npromiscuous = \"yes\"\n",
        "capture.promiscuous: expected a boolean, found a string (line 2)",
    );
    assert_refused(
        "[log]\nformat = \"jsn\"\n",
        "log.format: unknown value \"jsn\", expected one of \"text\", \"json\"; did you mean \"json\"? (line 2)",
    );
}

#[test]
fn each_bad_value_names_the_key_and_the_fix() {
    let cases = [
        ("[capture]\nsnaplen = 63\n", "capture.snaplen: must be between 64 and 262144"),
        ("[capture]\nsnaplen = 262145\n", "capture.snaplen: must be between 64 and 262144"),
        ("[capture]\nbuffer_bytes = 65536\n", "capture.buffer_bytes: must be at least 1048576 (1 MiB)"),
        ("[capture]\nbatch_packets = 0\n", "capture.batch_packets: must be between 1 and 65536"),
        ("[capture]\ntimeout_ms = 20000\n", "capture.timeout_ms: must be between 1 and 10000"),
        ("[capture]\ninterfaces = [\"eth1\", \"eth1\"]\n", "capture.interfaces: eth1 is listed twice; list each interface once"),
        ("[pipeline]\nworkers = 1000\n", "pipeline.workers: must be at most 256 (0 picks one per core, less one)"),
        ("[pipeline]\nqueue_batches = 0\n", "pipeline.queue_batches: must be between 1 and 65536"),
        ("[run]\nshutdown_deadline_secs = 0\n", "run.shutdown_deadline_secs: must be between 1 and 3600"),
        ("[run]\nshutdown_deadline_secs = 86400\n", "run.shutdown_deadline_secs: must be between 1 and 3600"),
        ("[metrics]\nlisten = \"9108\"\n", "metrics.listen: \"9108\" is not an address:port; use e.g. \"127.0.0.1:9108\" or \"[::1]:9108\", or \"\" to disable metrics"),
        ("[log]\nlevel = \"warning\"\n", "log.level: \"warning\" is not a level; use one of \"error\", \"warn\", \"info\", \"debug\", \"trace\""),
        ("[flow]\nmax_flows = 0\n", "flow.max_flows: must be at least 1"),
        ("[inventory]\nforce_templates = [\"users/{id}\"]\n", "inventory.force_templates: \"users/{id}\": template \"users/{id}\" must start with '/'"),
        ("[inventory]\nforbid_templates = [\"a b c d\"]\n", "inventory.forbid_templates: \"a b c d\" is not \"[HOST] [METHOD] /template\""),
        ("[inventory]\nforce_templates = [\"/x/{id\"]\n", "inventory.force_templates: \"/x/{id\": template \"/x/{id\" has an unclosed '{' in \"{id\""),
        ("[inventory]\nword_fanout = 1\n", "inventory.word_fanout: must be between 2 and 100000"),
        ("[inventory]\nexport_path = \"-\"\n", "inventory.export_path: must be a file path (the inventory is rewritten whole each time), not \"-\""),
    ];
    for (text, message) in cases {
        assert_refused(text, message);
    }
}

#[test]
fn bad_bpf_filter_reports_libpcaps_error() {
    let dir = tempdir();
    let (run, path) = check_config(dir.path(), "[capture]\nfilter = \"tcp port eighty\"\n");
    assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
    let prefix = format!(
        "mirador: error: {path}: invalid configuration: capture.filter: libpcap cannot compile \"tcp port eighty\": "
    );
    assert!(run.stderr.starts_with(&prefix), "{}", run.stderr);
    // libpcap's own words: an unknown port name
    assert!(run.stderr.contains("eighty"), "{}", run.stderr);
    assert!(
        run.stderr
            .ends_with("; fix the filter (pcap-filter(7) syntax)\n"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr.lines().count(), 1);
}

#[test]
fn output_paths_need_an_existing_writable_directory() {
    let dir = tempdir();
    let d = dir.path().to_str().unwrap();
    assert_refused(
        &format!("[output]\ntransactions = \"{d}/missing/tx.json\"\n"),
        &format!(
            "output.transactions: directory {d}/missing does not exist; create it or fix the path"
        ),
    );
    // /sys refuses new files, even to root
    let (run, path) = check_config(dir.path(), "[output]\nalerts = \"/sys/alerts.json\"\n");
    assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
    let prefix = format!(
        "mirador: error: {path}: invalid configuration: output.alerts: cannot create files in directory /sys ("
    );
    assert!(run.stderr.starts_with(&prefix), "{}", run.stderr);
    assert!(
        run.stderr
            .ends_with("); fix the path or the directory's permissions\n"),
        "{}",
        run.stderr
    );
}

/// `check-config` validates for `run`: every interface must exist on this host.
#[test]
fn check_config_names_a_missing_interface_and_the_present_ones() {
    let dir = tempdir();
    let (run, path) = check_config(
        dir.path(),
        "[capture]\ninterfaces = [\"lo\", \"mirador-nx9\"]\n",
    );
    assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
    let prefix = format!(
        "mirador: error: {path}: invalid configuration: capture.interfaces: interface mirador-nx9 does not exist on this host (present: "
    );
    assert!(run.stderr.starts_with(&prefix), "{}", run.stderr);
    assert!(run.stderr.contains("lo"), "{}", run.stderr);
    assert!(
        run.stderr.ends_with("); fix capture.interfaces\n"),
        "{}",
        run.stderr
    );
}

/// Every key set to a valid value other than its default passes, and checking the output
/// directories leaves nothing behind.
#[test]
fn full_valid_config_passes() {
    let dir = tempdir();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let o = out.to_str().unwrap();
    let text = format!(
        r#"
[capture]
interfaces = ["lo"]
snaplen = 9000
promiscuous = false
buffer_bytes = 268435456
filter = "tcp port 80 or tcp port 8080 or (vlan and tcp)"
fanout = "hash"
fanout_group = 42
batch_packets = 1024
timeout_ms = 50

[decode]
max_fragment_sets = 1024
max_fragment_bytes = 8388608
fragment_timeout_secs = 15
decode_tunnels = false
max_tunnel_depth = 2

[flow]
max_flows = 100000
max_buffered_bytes_per_direction = 131072
max_buffered_bytes_total = 33554432
idle_timeout_secs = 120
embryonic_timeout_secs = 20
closed_timeout_secs = 5

[http]
max_head_bytes = 32768
max_headers = 64
body_keep_bytes = 4096
max_decompressed_bytes = 1048576
decode_requests = false
decode_responses = true
max_pending = 16

[pipeline]
workers = 4
queue_batches = 128
analysis_shards = 2

[inventory]
enabled = true
identity_key = "s3cret"
max_hosts = 16
max_endpoints = 500
max_nodes = 1024
word_fanout = 32
code_fanout = 4
force_templates = ["api.example.com GET /api/{{version}}/items", "/files/{{name}}.json"]
forbid_templates = ["*.example.com /years/{{year}}"]
api_key_headers = ["x-company-key"]
api_key_params = ["k"]
session_cookies = ["*_sid"]
bodies_in_full = 64
body_sample_every = 4
body_sample_max_every = 64
spec = ""
export_path = "{o}/inventory.json"
export_interval_secs = 60
export_format = "openapi-yaml"


[detect]
enabled = true
false_alarm_rate = 0.01
score_floor = 5.0
learning_transactions = 1000
persistence_k = 3
persistence_n = 10
model_trees = 16
model_depth = 9
model_window = 2048
model_path = ""
snapshot_interval_secs = 600
feedback_file = ""
suppress = ["detector=detect.scraping; client=10.0.0.0/8"]
allow = ["route=GET /api/v1/health"]
close_after_secs = 600
update_every_secs = 120
budget_per_hour = 100
max_open_alerts = 5000
login_paths = ["login", "oauth/token"]
client_login_failures = 10.0
client_distinct_users = 5.0
network_login_failures = 25.0
network_distinct_users = 12.0
global_login_failures = 15.0
global_failure_factor = 3.0
global_distinct_sources = 6.0
global_distinct_users = 8.0
sharing_addresses = 6.0
sharing_networks = 4.0
enumeration_objects = 20.0
enumeration_error_ratio = 0.4
enumeration_sequential_ratio = 0.5
scraping_objects = 200.0
spike_min_per_minute = 25.0
spike_factor = 8.0
spike_learning_minutes = 30
exposure_learning_responses = 50
exposure_sample_every = 4
bulk_min_bytes_per_minute = 1000000.0
bulk_response_bytes = 50000.0
bulk_factor = 12.0
auth_learning_calls = 100
auth_learning_secs = 3600
auth_required_ratio = 0.99
token_expiry_skew_secs = 30
off_hours_share = 0.02
off_hours_requests = 30
off_hours_learning_hours = 24
utc_offset = "+01:00"
evasion_anomalies = ["te_cl_conflict", "duplicate_host"]
max_clients = 50000
max_identities = 50000
max_pairs = 100000
max_endpoints = 5000
[output]
transactions = "{o}/tx.json"
alerts = "-"

[metrics]
listen = "[::1]:9200"

[log]
format = "json"
level = "debug"

[run]
user = "nobody"
allow_root = true
shutdown_deadline_secs = 30
"#
    );
    // The test stays "full": the same sections and keys as the shipped sensor.toml.
    let keys = |t: &toml::Table| -> Vec<String> {
        let mut v: Vec<String> = t
            .iter()
            .flat_map(|(s, sec)| {
                sec.as_table()
                    .expect("a section")
                    .keys()
                    .map(move |k| format!("{s}.{k}"))
            })
            .collect();
        v.sort();
        v
    };
    let shipped: toml::Table = std::fs::read_to_string(workspace_root().join("sensor.toml"))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(keys(&text.parse().unwrap()), keys(&shipped));

    let (run, path) = check_config(dir.path(), &text);
    assert_eq!(run.status.code(), Some(0), "{}", run.stderr);
    assert_eq!(run.stderr, format!("{path}: configuration is valid\n"));
    assert_eq!(
        std::fs::read_dir(&out).unwrap().count(),
        0,
        "the write probe is removed and no output file is created"
    );
}
