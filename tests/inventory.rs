//! The API inventory end to end, scored against labelled traffic: `testkit::api` generates a
//! capture of a small shop API together with the truth about it (routes and their calls, spec
//! status, auth, sensitive data, probes) and its reference spec; `mirador inventory`,
//! `mirador replay` and `mirador run` must find exactly that truth.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::{bin, replay_files, run, tempdir, Run};
use serde_json::Value;
use testkit::api::{generate, same_route, ApiScenario, ApiTraffic, RouteLabel, RouteStatus};

const SEED: u64 = 7;
/// Defaults of `inventory.word_fanout` and `inventory.code_fanout`: distinct values a path
/// position takes before it becomes a parameter.
const WORD_FANOUT: usize = 64;
const CODE_FANOUT: usize = 3;
/// OpenAPI operation keys and the methods as the labels spell them.
const METHODS: [(&str, &str); 8] = [
    ("get", "GET"),
    ("put", "PUT"),
    ("post", "POST"),
    ("delete", "DELETE"),
    ("options", "OPTIONS"),
    ("head", "HEAD"),
    ("patch", "PATCH"),
    ("trace", "TRACE"),
];

// ---------------------------------------------------------------------------------------------
// Fixtures

fn scenario() -> ApiScenario {
    ApiScenario {
        seed: SEED,
        ..ApiScenario::default()
    }
}

/// The labelled traffic, generated once per test binary.
fn traffic() -> &'static ApiTraffic {
    static TRAFFIC: OnceLock<ApiTraffic> = OnceLock::new();
    TRAFFIC.get_or_init(|| generate(&scenario()))
}

/// The capture and the reference spec, written into a directory of their own.
struct Files {
    dir: tempfile::TempDir,
    pcap: PathBuf,
    spec: PathBuf,
}

fn files() -> Files {
    let dir = tempdir();
    let pcap = dir.path().join("api.pcap");
    let spec = dir.path().join("spec.yaml");
    traffic().write_pcap(&pcap).expect("write the capture");
    std::fs::write(&spec, &traffic().spec_yaml).expect("write the spec");
    Files { dir, pcap, spec }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// `mirador inventory ARGS`, which must succeed; stdout.
fn inventory_ok(args: &[&str]) -> Vec<u8> {
    let mut all = vec!["inventory", "--no-progress"];
    all.extend_from_slice(args);
    let r = run(all);
    r.assert_success();
    r.stdout
}

/// `mirador inventory --spec spec.yaml --format openapi-json api.pcap`, parsed.
fn inventory_doc(f: &Files, extra: &[&str]) -> Value {
    let mut args = vec!["--spec", s(&f.spec), "--format", "openapi-json"];
    args.extend_from_slice(extra);
    args.push(s(&f.pcap));
    let out = inventory_ok(&args);
    serde_json::from_slice(&out).expect("the JSON inventory parses")
}

/// The inventory of the labelled capture against its spec, computed once per test binary.
fn doc() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| inventory_doc(&files(), &[]))
}

/// `mirador replay --transactions -` of the labelled capture (default config): its stdout,
/// computed once per test binary.
fn replay_stdout() -> &'static [u8] {
    static OUT: OnceLock<Vec<u8>> = OnceLock::new();
    OUT.get_or_init(|| replay_files(None, &[&files().pcap]).stdout)
}

/// The records of [`replay_stdout`].
fn replay_records() -> Vec<Value> {
    std::str::from_utf8(replay_stdout())
        .expect("UTF-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a record is JSON"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Reading the document

/// One operation of the document: `paths[path][method]`.
#[derive(Clone, Copy)]
struct Op<'a> {
    path: &'a str,
    /// Upper case, as the labels spell it.
    method: &'a str,
    v: &'a Value,
}

impl<'a> Op<'a> {
    fn status(&self) -> Option<&'a str> {
        self.v["x-mirador-status"].as_str()
    }

    fn stats(&self) -> &'a Value {
        &self.v["x-mirador-stats"]
    }

    fn calls(&self) -> u64 {
        self.stats()["calls"]
            .as_u64()
            .unwrap_or_else(|| panic!("{}: no x-mirador-stats.calls", self.name()))
    }

    fn hosts(&self) -> Vec<&'a str> {
        self.stats()["hosts"]
            .as_object()
            .map(|h| h.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    fn name(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// `(place, field, kind)` of every `x-mirador-sensitive` entry.
    fn sensitive(&self) -> BTreeSet<(String, String, String)> {
        let Some(list) = self.v["x-mirador-sensitive"].as_array() else {
            return BTreeSet::new();
        };
        list.iter()
            .map(|e| {
                let f = |k: &str| {
                    e[k].as_str()
                        .unwrap_or_else(|| {
                            panic!("{}: sensitive entry without {k}: {e}", self.name())
                        })
                        .to_string()
                };
                (f("place"), f("field"), f("kind"))
            })
            .collect()
    }

    /// Security requirement ids; `""` stands for the empty requirement `{}`.
    fn security(&self) -> Vec<String> {
        let list = self.v["security"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: no security list", self.name()));
        list.iter()
            .map(|req| {
                let o = req
                    .as_object()
                    .expect("a security requirement is an object");
                assert!(
                    o.len() <= 1,
                    "{}: one scheme per requirement: {req}",
                    self.name()
                );
                o.keys().next().cloned().unwrap_or_default()
            })
            .collect()
    }
}

fn operations(doc: &Value) -> Vec<Op<'_>> {
    let paths = doc["paths"].as_object().expect("the document has paths");
    let mut out = Vec::new();
    for (path, item) in paths {
        for (key, method) in METHODS {
            if let Some(v) = item.get(key) {
                out.push(Op { path, method, v });
            }
        }
    }
    out
}

/// The one operation that stands for a labelled route (same method, same route, served on the
/// label's host).
fn op_of<'a>(ops: &[Op<'a>], l: &RouteLabel) -> Op<'a> {
    let found: Vec<&Op> = ops
        .iter()
        .filter(|o| {
            o.method == l.method && same_route(o.path, &l.template) && o.hosts().contains(&&*l.host)
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one operation for {} {} {}, found {:?}",
        l.host,
        l.method,
        l.template,
        found.iter().map(|o| o.name()).collect::<Vec<_>>()
    );
    *found[0]
}

/// Whether a concrete `path` fits `template` (a `{...}` segment takes any non-empty segment);
/// the number of literal segments when it does, so the most literal template can win.
fn fits(template: &str, path: &str) -> Option<usize> {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    if t.len() != p.len() {
        return None;
    }
    let mut literal = 0;
    for (a, b) in t.iter().zip(&p) {
        if a.starts_with('{') && a.ends_with('}') {
            if b.is_empty() {
                return None;
            }
        } else if a == b {
            literal += 1;
        } else {
            return None;
        }
    }
    Some(literal)
}

/// The labelled route a request went to (the most literal template that fits), or None for a
/// probe.
fn route_of(host: &str, method: &str, path: &str) -> Option<&'static RouteLabel> {
    traffic()
        .labels
        .routes
        .iter()
        .filter(|r| r.host == host && r.method == method)
        .filter_map(|r| fits(&r.template, path).map(|n| (n, r)))
        .max_by_key(|(n, _)| *n)
        .map(|(_, r)| r)
}

fn route_name(l: &RouteLabel) -> String {
    format!("{} {} {}", l.host, l.method, l.template)
}

/// Record field as a string.
fn field<'a>(r: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(r, |v, k| v.get(*k))?.as_str()
}

fn is_hex32(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

// ---------------------------------------------------------------------------------------------
// 1. Endpoints

#[test]
fn endpoints_match_the_generators_routes() {
    let labels = &traffic().labels;
    let doc = doc();
    let ops = operations(doc);

    // Observed: (method, path, host) of every operation seen in traffic.
    let mut observed = Vec::new();
    for o in ops.iter().filter(|o| o.status() != Some("unused")) {
        let hosts = o.hosts();
        assert!(!hosts.is_empty(), "{}: no x-mirador-stats.hosts", o.name());
        let servers: Vec<&str> = o.v["servers"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: no servers", o.name()))
            .iter()
            .map(|s| s["url"].as_str().expect("server url"))
            .collect();
        let want: Vec<String> = hosts.iter().map(|h| format!("http://{h}")).collect();
        assert_eq!(servers, want, "{}: servers are its hosts", o.name());
        for h in hosts {
            observed.push((*o, h));
        }
    }
    let matched_observed = observed
        .iter()
        .filter(|(o, h)| labels.route(h, o.method, o.path).is_some())
        .count();
    let matched_labels = labels
        .routes
        .iter()
        .filter(|l| {
            observed.iter().any(|(o, h)| {
                *h == l.host && o.method == l.method && same_route(o.path, &l.template)
            })
        })
        .count();
    let precision = matched_observed as f64 / observed.len() as f64;
    let recall = matched_labels as f64 / labels.routes.len() as f64;
    eprintln!(
        "inventory endpoints (seed {SEED}): precision {precision:.3} ({matched_observed}/{}), recall {recall:.3} ({matched_labels}/{})",
        observed.len(),
        labels.routes.len()
    );
    let extra: Vec<String> = observed
        .iter()
        .filter(|(o, h)| labels.route(h, o.method, o.path).is_none())
        .map(|(o, h)| format!("{h} {}", o.name()))
        .collect();
    let missed: Vec<String> = labels
        .routes
        .iter()
        .filter(|l| {
            !observed.iter().any(|(o, h)| {
                *h == l.host && o.method == l.method && same_route(o.path, &l.template)
            })
        })
        .map(route_name)
        .collect();
    // Precision 1 and recall 1, compared as counts.
    assert_eq!(
        matched_observed,
        observed.len(),
        "precision {precision:.3}: operations that are no route: {extra:?}"
    );
    assert_eq!(
        matched_labels,
        labels.routes.len(),
        "recall {recall:.3}: routes not found: {missed:?}"
    );

    // Calls. The generator's counts are exact, with one documented exception: a request to a
    // real route that is answered 400 or 404 ("no such route") before the sensor has learnt
    // that route cannot be told from a probe, so it is counted in `unrouted_requests`, not as
    // a call. Hence: no operation has more calls than its route, only routes that can answer
    // 400/404 (a path parameter, or a request body) may have fewer, and the calls missing
    // from all routes are exactly the unrouted requests beyond the probes.
    let unrouted = doc["x-mirador-summary"]["unrouted_requests"]
        .as_u64()
        .expect("x-mirador-summary.unrouted_requests");
    let mut missing_total = 0;
    let mut report = Vec::new();
    for l in &labels.routes {
        let o = op_of(&ops, l);
        let calls = o.stats()["hosts"][&l.host]
            .as_u64()
            .expect("calls per host");
        assert_eq!(calls, o.calls(), "{}: one host, all its calls", o.name());
        assert!(
            calls <= l.calls,
            "{}: {calls} calls, more than the {} sent",
            route_name(l),
            l.calls
        );
        let missing = l.calls - calls;
        if missing > 0 {
            report.push(format!("{}: {calls} of {}", route_name(l), l.calls));
            assert!(
                l.template.contains('{') || matches!(&*l.method, "POST" | "PUT"),
                "{}: {missing} calls missing, but it never answers 400 or 404",
                route_name(l)
            );
        }
        missing_total += missing;
    }
    if !report.is_empty() {
        eprintln!("calls answered 400/404 before their route was learnt: {report:?}");
    }
    assert_eq!(
        missing_total + labels.probes,
        unrouted,
        "calls missing from routes ({report:?}) plus probes ({}) must be the unrouted requests",
        labels.probes
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Spec status

#[test]
fn every_route_gets_its_spec_status() {
    let labels = &traffic().labels;
    let doc = doc();
    let ops = operations(doc);
    let mut want: BTreeMap<&str, u64> = BTreeMap::new();
    for l in &labels.routes {
        let o = op_of(&ops, l);
        assert_eq!(
            o.status(),
            Some(l.status.as_str()),
            "{}: x-mirador-status",
            route_name(l)
        );
        if l.status == RouteStatus::Zombie {
            assert_eq!(
                o.v["deprecated"],
                true,
                "{}: a zombie is deprecated",
                o.name()
            );
        }
        *want.entry(l.status.as_str()).or_default() += 1;
    }
    for l in &labels.unused {
        let found: Vec<&Op> = ops
            .iter()
            .filter(|o| o.method == l.method && same_route(o.path, &l.template))
            .collect();
        assert_eq!(
            found.len(),
            1,
            "{}: one operation for the unused route",
            route_name(l)
        );
        assert_eq!(found[0].status(), Some("unused"), "{}", route_name(l));
        assert!(
            found[0].v.get("x-mirador-stats").is_none(),
            "{}: never called, so no stats",
            route_name(l)
        );
        *want.entry("unused").or_default() += 1;
    }
    let got: BTreeMap<&str, u64> = doc["x-mirador-summary"]["status"]
        .as_object()
        .expect("x-mirador-summary.status")
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_u64().expect("a count")))
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(got, want, "x-mirador-summary.status");
    assert_eq!(
        want.get("shadow").copied().unwrap_or(0),
        4,
        "the scenario has four shadow routes"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Sensitive data

#[test]
fn every_exposure_is_found_and_no_other() {
    let labels = &traffic().labels;
    let ops = operations(doc());
    let mut expected: BTreeMap<String, BTreeSet<(String, String, String)>> = BTreeMap::new();
    for e in &labels.exposures {
        let l = labels
            .route(&e.host, &e.method, &e.template)
            .expect("every exposure is on a labelled route");
        let o = op_of(&ops, l);
        let want = (e.location.to_string(), e.field.clone(), e.kind.to_string());
        let got = o.sensitive();
        assert!(
            got.contains(&want),
            "{}: {} in {} field {} not found; x-mirador-sensitive has {got:?}",
            o.name(),
            e.kind,
            e.location,
            e.field
        );
        expected.entry(o.name()).or_default().insert(want);
    }
    let mut extra = Vec::new();
    for o in &ops {
        let want = expected.get(&o.name()).cloned().unwrap_or_default();
        for got in o.sensitive() {
            if !want.contains(&got) {
                extra.push(format!("{}: {got:?}", o.name()));
            }
        }
    }
    assert!(
        extra.is_empty(),
        "sensitive data no label mentions: {extra:#?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Probes

#[test]
fn probes_are_not_endpoints() {
    let labels = &traffic().labels;
    let doc = doc();
    let ops = operations(doc);
    // Every request that fits no labelled route is a probe: there are exactly as many as the
    // labels say, all answered 404.
    let recs = replay_records();
    let mut probes = Vec::new();
    for r in &recs {
        let host = field(r, &["url", "domain"]).expect("url.domain");
        let method = field(r, &["http", "request", "method"]).expect("method");
        let path = field(r, &["url", "path"]).expect("url.path");
        if route_of(host, method, path).is_none() {
            assert_eq!(r["http"]["response"]["status_code"], 404, "a probe: {r}");
            probes.push((host.to_string(), method.to_string(), path.to_string()));
        }
    }
    assert_eq!(probes.len() as u64, labels.probes, "probes in the capture");

    let unrouted = doc["x-mirador-summary"]["unrouted_requests"]
        .as_u64()
        .expect("unrouted_requests");
    // At least the probes; real routes answered 400/404 before they were learnt add to it
    // (see endpoints_match_the_generators_routes, which checks the exact sum).
    assert!(
        unrouted >= labels.probes,
        "unrouted_requests {unrouted} < {} probes",
        labels.probes
    );
    for (host, method, path) in &probes {
        let hits: Vec<String> = ops
            .iter()
            .filter(|o| o.method == method && fits(o.path, path).is_some())
            .filter(|o| o.hosts().is_empty() || o.hosts().contains(&host.as_str()))
            .map(|o| o.name())
            .collect();
        assert!(
            hits.is_empty(),
            "probe {host} {method} {path} became (or fits) operations {hits:?}"
        );
    }
    assert_eq!(
        ops.len(),
        labels.routes.len() + labels.unused.len(),
        "operations: the labelled routes and the unused ones, no more: {:?}",
        ops.iter().map(|o| o.name()).collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Auth

/// Whether the security scheme `def` is what the label's auth kind calls for.
fn scheme_fits(kind: &str, def: &Value) -> bool {
    let (ty, scheme, format, place) = (
        def["type"].as_str(),
        def["scheme"].as_str(),
        def["bearerFormat"].as_str(),
        def["in"].as_str(),
    );
    match kind {
        "bearer_jwt" => ty == Some("http") && scheme == Some("bearer") && format == Some("JWT"),
        "bearer" => ty == Some("http") && scheme == Some("bearer") && format != Some("JWT"),
        "basic" => ty == Some("http") && scheme == Some("basic"),
        "api_key" => ty == Some("apiKey") && matches!(place, Some("header" | "query")),
        "session_cookie" => ty == Some("apiKey") && place == Some("cookie"),
        other => panic!("unknown auth kind {other}"),
    }
}

#[test]
fn auth_schemes_and_unauthenticated_endpoints() {
    let labels = &traffic().labels;
    let doc = doc();
    let ops = operations(doc);
    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("components.securitySchemes");
    let mut unsigned_routes = Vec::new();
    for l in &labels.routes {
        let o = op_of(&ops, l);
        let security = o.security();
        let unauth = o.stats()["unauthenticated_success"]
            .as_u64()
            .expect("unauthenticated_success");
        let unsigned = o.stats()["unsigned_tokens"]
            .as_u64()
            .expect("unsigned_tokens");
        if unsigned > 0 {
            unsigned_routes.push(route_name(l));
            assert_eq!(
                l.auth,
                Some("bearer_jwt"),
                "{}: unsigned tokens on a route that takes no JWT",
                route_name(l)
            );
        }
        match l.auth {
            Some(kind) => {
                let fitting: Vec<&String> = security
                    .iter()
                    .filter(|id| {
                        schemes
                            .get(id.as_str())
                            .is_some_and(|d| scheme_fits(kind, d))
                    })
                    .collect();
                assert!(
                    !fitting.is_empty(),
                    "{}: no {kind} scheme in security {security:?} (schemes {schemes:?})",
                    route_name(l)
                );
                assert_eq!(
                    unauth,
                    0,
                    "{}: every call carries a credential",
                    route_name(l)
                );
                assert!(
                    !security.iter().any(String::is_empty),
                    "{}: `{{}}` in security, but no call went without credentials",
                    route_name(l)
                );
            }
            None => {
                assert!(unauth > 0, "{}: unauthenticated_success", route_name(l));
                assert_eq!(
                    security,
                    vec![String::new()],
                    "{}: security is just `{{}}`",
                    route_name(l)
                );
            }
        }
    }
    match labels.alg_none_client {
        Some(ip) => assert!(
            !unsigned_routes.is_empty(),
            "client {ip} sends an alg:none JWT, yet no route counts unsigned tokens"
        ),
        None => assert!(unsigned_routes.is_empty(), "{unsigned_routes:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Valid OpenAPI 3.1

const VALIDATE: &str = r#"
import sys
from openapi_spec_validator.readers import read_from_filename
try:
    from openapi_spec_validator import validate, OpenAPIV31SpecValidator
    def check(d):
        validate(d, cls=OpenAPIV31SpecValidator)
except ImportError:
    from openapi_spec_validator import validate_spec, openapi_v31_spec_validator
    def check(d):
        validate_spec(d, validator=openapi_v31_spec_validator)
d, _ = read_from_filename(sys.argv[1])
if not str(d.get("openapi", "")).startswith("3.1"):
    sys.exit("not OpenAPI 3.1: openapi = %r" % d.get("openapi"))
check(d)
print("valid")
"#;

/// Whether python3 can import openapi_spec_validator; when it cannot, fails on CI (which
/// installs it) and otherwise says why the check is skipped.
fn validator_available(test: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import openapi_spec_validator"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: python3 cannot import openapi_spec_validator; pip install openapi-spec-validator"
        );
        eprintln!("skipped {test}: python3 cannot import openapi_spec_validator (pip install openapi-spec-validator)");
    }
    ok
}

/// Runs the validator on `path`: Ok, or its complaint.
fn validate_openapi(path: &Path) -> Result<(), String> {
    let out = Command::new("python3")
        .args(["-c", VALIDATE])
        .arg(path)
        .output()
        .expect("python3 runs");
    if out.status.success() && out.stdout.starts_with(b"valid") {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[test]
fn export_is_valid_openapi_3_1() {
    if !validator_available("export_is_valid_openapi_3_1") {
        return;
    }
    let f = files();
    // The check itself must be able to fail: a document without info.version is refused.
    let broken = f.dir.path().join("broken.json");
    std::fs::write(
        &broken,
        r#"{"openapi":"3.1.0","info":{"title":"x"},"paths":{}}"#,
    )
    .expect("write");
    assert!(
        validate_openapi(&broken).is_err(),
        "the validator accepts anything"
    );
    for (format, name) in [("openapi-yaml", "inv.yaml"), ("openapi-json", "inv.json")] {
        let out = f.dir.path().join(name);
        inventory_ok(&[
            "--spec",
            s(&f.spec),
            "--format",
            format,
            "-o",
            s(&out),
            s(&f.pcap),
        ]);
        if let Err(e) = validate_openapi(&out) {
            panic!("{format} export is not valid OpenAPI 3.1:\n{e}");
        }
    }
    // Without a spec too.
    let plain = f.dir.path().join("plain.yaml");
    inventory_ok(&["-o", s(&plain), s(&f.pcap)]);
    if let Err(e) = validate_openapi(&plain) {
        panic!("export without a spec is not valid OpenAPI 3.1:\n{e}");
    }
}

// ---------------------------------------------------------------------------------------------
// 7. Determinism

#[test]
fn output_is_deterministic() {
    let f = files();
    for format in ["openapi-json", "openapi-yaml"] {
        let once = |workers: &str| {
            inventory_ok(&[
                "--spec",
                s(&f.spec),
                "--format",
                format,
                "--workers",
                workers,
                s(&f.pcap),
            ])
        };
        let a = once("1");
        let b = once("1");
        let c = once("2");
        assert!(a.len() > 1000, "{format}: a real document");
        assert!(a == b, "{format}: two runs differ");
        assert!(a == c, "{format}: --workers 1 and --workers 2 differ");
    }
}

// ---------------------------------------------------------------------------------------------
// 8. Records: route and identity

/// `Authorization` header values sent in the capture.
fn authorization_values(t: &ApiTraffic) -> BTreeSet<String> {
    let needle = b"\r\nAuthorization: ";
    let mut out = BTreeSet::new();
    for (_, frame) in &t.frames {
        let mut rest = &frame[..];
        while let Some(at) = rest.windows(needle.len()).position(|w| w == needle) {
            rest = &rest[at + needle.len()..];
            let end = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .unwrap_or(rest.len());
            out.insert(String::from_utf8_lossy(&rest[..end]).into_owned());
        }
    }
    out
}

/// source.ip → credential hash of the bearer JWT requests of labelled routes; asserts one
/// hash per client.
fn jwt_credentials(recs: &[Value]) -> BTreeMap<String, String> {
    let mut by_ip: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in recs {
        let id = &r["mirador"]["identity"][0];
        if id["scheme"] == "bearer_jwt" {
            let ip = field(r, &["source", "ip"]).expect("source.ip");
            let c = id["credential"].as_str().expect("credential");
            by_ip.entry(ip.into()).or_default().insert(c.into());
        }
    }
    by_ip
        .into_iter()
        .map(|(ip, set)| {
            assert_eq!(set.len(), 1, "client {ip} sends one JWT, hashed as {set:?}");
            (ip, set.into_iter().next().expect("one"))
        })
        .collect()
}

#[test]
fn records_carry_route_and_identity_hashes() {
    let t = traffic();
    let f = files();
    let recs = replay_records();
    assert_eq!(recs.len() as u64, t.labels.transactions);
    // Route literal paths recorded before their template was learnt, per route.
    let mut literal: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let (mut probes, mut unrouted_real) = (0, 0);
    for r in &recs {
        let host = field(r, &["url", "domain"]).expect("url.domain");
        let method = field(r, &["http", "request", "method"]).expect("method");
        let path = field(r, &["url", "path"]).expect("url.path");
        let route = field(r, &["mirador", "route"]);
        let ids = r["mirador"]["identity"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let Some(l) = route_of(host, method, path) else {
            probes += 1;
            assert_eq!(route, None, "a probe hit no known route: {r}");
            continue;
        };
        match route {
            None => {
                // Only a "no such route" answer before the route was learnt leaves it out.
                let status = r["http"]["response"]["status_code"].as_u64();
                assert!(
                    matches!(status, Some(400 | 404)),
                    "{}: request to the route without mirador.route: {r}",
                    route_name(l)
                );
                unrouted_real += 1;
            }
            Some(route) => {
                let (m, template) = route.split_once(' ').expect("METHOD TEMPLATE");
                assert_eq!(m, method, "{r}");
                if !same_route(template, &l.template) {
                    // Learning takes evidence: a word- or code-valued position becomes a
                    // parameter only after word_fanout / code_fanout distinct values, and the
                    // records made before that carry the literal path: the inventory's export
                    // folds them into the template, a record already written cannot be.
                    assert_eq!(
                        template,
                        path,
                        "{}: record routed to something else: {r}",
                        route_name(l)
                    );
                    literal
                        .entry(route_name(l))
                        .or_default()
                        .insert(path.to_string());
                }
            }
        }
        match l.auth {
            None => assert!(ids.is_empty(), "{}: no credential sent: {r}", route_name(l)),
            Some(kind) => {
                let id = ids
                    .first()
                    .unwrap_or_else(|| panic!("{}: no mirador.identity: {r}", route_name(l)));
                assert_eq!(id["scheme"], kind, "{r}");
                let c = id["credential"].as_str().unwrap_or_default();
                assert!(is_hex32(c), "credential is 32 hex digits: {r}");
                if let Some(sub) = id.get("subject") {
                    assert!(is_hex32(sub.as_str().unwrap_or_default()), "subject: {r}");
                }
                if kind == "bearer_jwt" {
                    assert!(
                        id.get("subject").is_some(),
                        "a JWT's subject is hashed: {r}"
                    );
                }
            }
        }
    }
    assert_eq!(probes, t.labels.probes, "records fitting no route");
    for (route, paths) in &literal {
        assert!(
            paths.len() <= WORD_FANOUT.max(CODE_FANOUT),
            "{route}: {} distinct literal routes, more than learning takes",
            paths.len()
        );
    }
    if !literal.is_empty() || unrouted_real > 0 {
        eprintln!(
            "records before learning: literal routes {:?}, unrouted {unrouted_real}",
            literal
                .iter()
                .map(|(k, v)| (k, v.len()))
                .collect::<Vec<_>>()
        );
    }

    // One JWT, one hash; different JWTs, different hashes.
    let default_key = jwt_credentials(&recs);
    assert!(default_key.len() >= 2, "several clients send JWTs");
    let distinct: BTreeSet<&String> = default_key.values().collect();
    assert_eq!(
        distinct.len(),
        default_key.len(),
        "different JWTs, different hashes"
    );
    // Another identity_key, other hashes for the same tokens.
    let cfg = f.dir.path().join("rotated.toml");
    std::fs::write(
        &cfg,
        "[inventory]\nidentity_key = \"another-deployment-key\"\n",
    )
    .expect("config");
    let rotated = jwt_credentials(&replay_files(Some(&cfg), &[&f.pcap]).records());
    assert_eq!(
        rotated.keys().collect::<Vec<_>>(),
        default_key.keys().collect::<Vec<_>>()
    );
    for (ip, hash) in &default_key {
        assert_ne!(
            &rotated[ip], hash,
            "client {ip}: the same hash under another identity_key"
        );
    }

    // No credential in clear.
    let text = std::str::from_utf8(replay_stdout()).expect("UTF-8");
    assert!(!text.contains("eyJ"), "a raw JWT in the records");
    let values = authorization_values(t);
    assert!(
        values.len() >= 3,
        "the capture carries Authorization headers"
    );
    for v in &values {
        let secret = v.split_once(' ').map_or(v.as_str(), |(_, s)| s);
        assert!(
            !text.contains(secret),
            "the Authorization value {v:?} is in the records"
        );
    }
    // API keys sent in the query leave hashed: the target is written with the value replaced.
    assert!(!text.contains("pk_live_"), "a query API key in the records");
    let redacted = recs
        .iter()
        .filter_map(|r| field(r, &["url", "original"]))
        .filter(|u| u.contains("api_key=REDACTED"))
        .count();
    assert!(redacted > 0, "no record shows the redacted api_key");
}

// ---------------------------------------------------------------------------------------------
// 9. Bad command lines

fn assert_fails(r: &Run, code: i32, needles: &[&str]) {
    assert_eq!(r.status.code(), Some(code), "stderr: {}", r.stderr);
    assert!(r.stdout.is_empty(), "nothing on stdout on failure");
    for n in needles {
        assert!(r.stderr.contains(n), "`{n}` missing from: {}", r.stderr);
    }
}

#[test]
fn bad_inventory_cli_use_is_explained() {
    let f = files();
    let pcap = s(&f.pcap);
    let missing = f.dir.path().join("no-such-spec.yaml");
    let r = run(["inventory", "--spec", s(&missing), pcap]);
    assert_fails(&r, 1, &[s(&missing), "cannot read"]);
    assert!(r.stderr.starts_with("mirador: error: "), "{}", r.stderr);

    for (name, text) in [("empty.json", "{}\n"), ("hello.yaml", "hello: world\n")] {
        let spec = f.dir.path().join(name);
        std::fs::write(&spec, text).expect("write");
        let r = run(["inventory", "--spec", s(&spec), pcap]);
        assert_fails(&r, 1, &[s(&spec), "not a usable OpenAPI spec"]);
    }

    let r = run(["inventory", "--format", "xml", pcap]);
    assert_fails(&r, 2, &["xml", "openapi-json", "openapi-yaml"]);

    let r = run(["inventory"]);
    assert_fails(&r, 2, &["FILE"]);
}

// ---------------------------------------------------------------------------------------------
// 10. Operator rules

#[test]
fn operator_rules_force_and_forbid() {
    let labels = &traffic().labels;
    let f = files();
    let cfg = f.dir.path().join("rules.toml");
    std::fs::write(
        &cfg,
        "[inventory]\nforce_templates = [\"api.shop.test GET /api/v2/profiles/{username}\"]\nforbid_templates = [\"GET /api/v2/reports/{date}\"]\n",
    )
    .expect("config");
    let out = inventory_ok(&["-c", s(&cfg), "--format", "openapi-json", s(&f.pcap)]);
    let doc: Value = serde_json::from_slice(&out).expect("JSON");
    let ops = operations(&doc);

    // Forced: exactly the operator's template, its name kept, every call of the route.
    let profiles: Vec<&Op> = ops
        .iter()
        .filter(|o| o.path.starts_with("/api/v2/profiles/"))
        .collect();
    assert_eq!(
        profiles.iter().map(|o| o.name()).collect::<Vec<_>>(),
        vec!["GET /api/v2/profiles/{username}".to_string()]
    );
    let p = profiles[0];
    assert_eq!(
        p.v["x-mirador-template"]["source"], "rule",
        "{}",
        p.v["x-mirador-template"]
    );
    let label = labels
        .route("api.shop.test", "GET", "/api/v2/profiles/{x}")
        .expect("profile route");
    // A forced template routes from the first request, 404s included: no call goes missing.
    assert_eq!(p.calls(), label.calls, "calls of the forced route");
    let names: Vec<&Value> = p.v["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .filter(|x| x["in"] == "path")
        .map(|x| &x["name"])
        .collect();
    assert_eq!(names, vec!["username"]);

    // Forbidden: reports stay literal.
    let reports: Vec<&Op> = ops
        .iter()
        .filter(|o| o.method == "GET" && o.path.starts_with("/api/v2/reports/"))
        .collect();
    assert!(reports.len() > 10, "several literal report operations");
    let is_date = |seg: &str| {
        let b = seg.as_bytes();
        b.len() == 10
            && b.iter().enumerate().all(|(i, c)| {
                if i == 4 || i == 7 {
                    *c == b'-'
                } else {
                    c.is_ascii_digit()
                }
            })
    };
    for o in &reports {
        let seg = &o.path["/api/v2/reports/".len()..];
        assert!(is_date(seg), "{}: a literal date, not a template", o.name());
    }
    let report_label = labels
        .route("api.shop.test", "GET", "/api/v2/reports/{date}")
        .expect("report route");
    // Every call of the route is on one of them, but for requests answered 404 to a date
    // not seen before: those are unrouted, like the probes.
    let sum: u64 = reports.iter().map(|o| o.calls()).sum();
    let unrouted = doc["x-mirador-summary"]["unrouted_requests"]
        .as_u64()
        .expect("unrouted_requests");
    assert!(
        sum <= report_label.calls && report_label.calls - sum <= unrouted - labels.probes,
        "report calls {sum} of {}, unrouted {unrouted}",
        report_label.calls
    );
    // Other routes are still learnt.
    assert!(ops.iter().any(|o| o.name() == "GET /api/v2/users/{id}"));
}

// ---------------------------------------------------------------------------------------------
// 11. The daemon

/// A `mirador run -r api.pcap` with the given config, killed if the test fails first.
struct Daemon {
    child: Child,
    stderr: Arc<Mutex<String>>,
    metrics: u16,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Collects a child's stderr in the background.
fn collect(mut from: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let buf = Arc::new(Mutex::new(String::new()));
    let b = buf.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = from.read(&mut chunk) {
            if n == 0 {
                break;
            }
            b.lock()
                .expect("lock")
                .push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    });
    buf
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// HTTP GET on the metrics listener: (head, body).
fn get(port: u16, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).expect("send");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    match out.split_once("\r\n\r\n") {
        Some((h, b)) => (h.to_string(), b.to_string()),
        None => (out, String::new()),
    }
}

fn metric(port: u16, name: &str) -> Option<u64> {
    let (_, text) = std::panic::catch_unwind(|| get(port, "/metrics")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} "))?.trim().parse().ok())
}

impl Daemon {
    fn start(config: &Path, pcap: &Path, transactions: &Path) -> Daemon {
        let mut child = Command::new(bin())
            .args(["run", "-c"])
            .arg(config)
            .arg("-r")
            .arg(pcap)
            .arg("--transactions")
            .arg(transactions)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mirador run -r");
        let stderr = collect(child.stderr.take().expect("stderr"));
        let mut d = Daemon {
            child,
            stderr,
            metrics: 0,
        };
        // It listens on port 0 and logs the address.
        let mut port = None;
        wait_for("the metrics address in the log", || {
            let text = d.stderr.lock().expect("lock").clone();
            port = text.lines().find_map(|l| {
                let rest = l.split("addr=127.0.0.1:").nth(1)?;
                rest.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
                    .parse()
                    .ok()
            });
            port.is_some() || text.contains("error")
        });
        d.metrics = port.unwrap_or_else(|| panic!("no metrics port: {}", d.log()));
        d
    }

    fn log(&self) -> String {
        self.stderr.lock().expect("lock").clone()
    }

    /// Waits until every transaction of the capture went through, the analysis stage (the
    /// inventory) included: records are written after it.
    fn wait_for_all(&self, n: u64) {
        wait_for("every transaction of the capture", || {
            metric(self.metrics, "mirador_transactions_total") == Some(n)
                && metric(self.metrics, "mirador_records_written_total") == Some(n)
        });
    }

    fn stop(mut self) -> String {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success());
        let status = self.child.wait().expect("wait");
        std::thread::sleep(Duration::from_millis(100));
        let log = self.log();
        assert_eq!(status.code(), Some(0), "{log}");
        log
    }
}

fn toml_str(p: &Path) -> String {
    format!("{:?}", s(p))
}

/// (METHOD, path, x-mirador-status) of every operation.
fn op_set(doc: &Value) -> BTreeSet<(String, String, String)> {
    operations(doc)
        .iter()
        .map(|o| {
            (
                o.method.to_string(),
                o.path.to_string(),
                o.status().unwrap_or("-").to_string(),
            )
        })
        .collect()
}

/// The inventory's own shadow check (detection off: with it on, detection raises shadow
/// endpoints at their first call, tested in `tests/detection.rs`).
#[test]
fn daemon_writes_the_inventory_and_raises_shadow_alerts() {
    let t = traffic();
    let f = files();
    let export = f.dir.path().join("inventory.json");
    let alerts = f.dir.path().join("alerts.jsonl");
    let cfg = f.dir.path().join("sensor.toml");
    std::fs::write(
        &cfg,
        format!(
            "[pipeline]\nqueue_batches = 4096\n[metrics]\nlisten = \"127.0.0.1:0\"\n[run]\nuser = \"\"\nallow_root = true\n\
             [inventory]\nspec = {}\nexport_path = {}\nexport_interval_secs = 1\nexport_format = \"openapi-json\"\n\
             [detect]\nenabled = false\n\
             [output]\nalerts = {}\n",
            toml_str(&f.spec),
            toml_str(&export),
            toml_str(&alerts)
        ),
    )
    .expect("config");
    let cli = op_set(doc());
    let d = Daemon::start(&cfg, &f.pcap, &f.dir.path().join("tx.jsonl"));
    d.wait_for_all(t.labels.transactions);

    // Served while it runs.
    let (head, body) = get(d.metrics, "/inventory");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let served: Value = serde_json::from_str(&body).expect("/inventory is JSON");
    assert_eq!(
        op_set(&served),
        cli,
        "/inventory and `mirador inventory` differ"
    );

    // Rewritten at each tick, not only at the end.
    wait_for("an export with every transaction", || {
        std::fs::read(&export)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .is_some_and(|v| v["x-mirador-summary"]["transactions"] == t.labels.transactions)
    });
    let log = d.stop();

    let doc: Value =
        serde_json::from_slice(&std::fs::read(&export).expect("export file")).expect("JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        op_set(&doc),
        cli,
        "the export and `mirador inventory` differ"
    );
    if validator_available("daemon export validation") {
        if let Err(e) = validate_openapi(&export) {
            panic!("the daemon's export is not valid OpenAPI 3.1:\n{e}");
        }
    }

    // One create per shadow route; updates only of what was created.
    let text = std::fs::read_to_string(&alerts).expect("alerts file");
    let mut created: BTreeMap<String, String> = BTreeMap::new();
    for line in text.lines() {
        let a: Value = serde_json::from_str(line).expect("alert is JSON");
        assert_eq!(a["detector"]["id"], "inventory.shadow_endpoint", "{a}");
        let key = a["dedup_key"].as_str().expect("dedup_key").to_string();
        match a["lifecycle"].as_str() {
            Some("create") => {
                let route = a["http"]["route"].as_str().expect("http.route");
                let (method, template) = route.split_once(' ').expect("METHOD TEMPLATE");
                let host = a["server"]["host"].as_str().expect("server.host");
                let l = t
                    .labels
                    .route(host, method, template)
                    .unwrap_or_else(|| panic!("alert for no labelled route: {a}"));
                assert_eq!(l.status, RouteStatus::Shadow, "alert for {}", route_name(l));
                let evidence = a["evidence"].as_array().expect("evidence");
                assert!(!evidence.is_empty(), "no evidence: {a}");
                for e in evidence {
                    assert!(e["flow_uid"].is_string() && e["tx_index"].is_u64(), "{e}");
                }
                for k in ["alert_id", "title", "summary"] {
                    assert!(a[k].as_str().is_some_and(|v| !v.is_empty()), "{k}: {a}");
                }
                let name = route_name(l);
                assert!(
                    !created.values().any(|v| *v == name),
                    "two creates for {name}"
                );
                assert!(
                    created.insert(key, name).is_none(),
                    "dedup_key created twice: {a}"
                );
            }
            Some("update") => assert!(created.contains_key(&key), "update before create: {a}"),
            other => panic!("lifecycle {other:?}: {a}"),
        }
    }
    let want: BTreeSet<String> = t
        .labels
        .routes
        .iter()
        .filter(|l| l.status == RouteStatus::Shadow)
        .map(route_name)
        .collect();
    let got: BTreeSet<String> = created.into_values().collect();
    assert_eq!(got, want, "shadow alerts\n{log}");
}

#[test]
fn served_inventory_is_labelled_json() {
    let f = files();
    let cfg = f.dir.path().join("sensor.toml");
    std::fs::write(
        &cfg,
        "[metrics]\nlisten = \"127.0.0.1:0\"\n[run]\nuser = \"\"\nallow_root = true\n",
    )
    .expect("config");
    let d = Daemon::start(&cfg, &f.pcap, &f.dir.path().join("tx.jsonl"));
    d.wait_for_all(traffic().labels.transactions);
    let (head, body) = get(d.metrics, "/inventory");
    d.stop();
    assert!(serde_json::from_str::<Value>(&body).is_ok(), "JSON body");
    let ct = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    assert!(ct.starts_with("application/json"), "Content-Type: {ct}");
}
