//! The inventory as an OpenAPI 3.1 document (RECORDS.md §3).
//!
//! One path item per template; an operation per method, merged across the hosts that serve it
//! (listed in its `servers`). Observed facts ride in `x-mirador-*` extensions: `stats`,
//! `template` (confidence and parameter evidence), `sensitive`, and with a reference spec
//! `status`. No observed value is ever written: parameters and schemas carry types only.

use std::collections::BTreeMap;

use features::auth::Scheme;
use serde_json::{json, Map, Value};
use wire::Timestamp;

use crate::endpoint::{Endpoint, ParamTable};
use crate::spec::{Spec, Status};
use crate::Inventory;

/// Share of an endpoint's calls a parameter must appear in to be `required`.
const REQUIRED_SHARE: f64 = 0.99;

/// Renders the inventory; with a spec, every operation gets `x-mirador-status` and the
/// spec's operations never seen are added as `unused`.
pub fn render(inv: &mut Inventory, spec: Option<&Spec>) -> Value {
    let mut ops: BTreeMap<(String, String), Op> = BTreeMap::new();
    let keys: Vec<_> = inv
        .endpoints()
        .into_iter()
        .map(|(k, e)| (k.clone(), e.clone()))
        .collect();
    for (key, ep) in keys {
        let (source, evidence) = inv.provenance(&key, &ep);
        let (host, method, template) = (&*key.0, &*key.1, &*key.2);
        let path = openapi_path(template);
        let status = spec.map(|s| {
            let i = s.find(host, method, template);
            (s.status_of(i), i)
        });
        let op = ops
            .entry((path.clone(), method.to_ascii_lowercase()))
            .or_insert_with(|| Op {
                template: template.to_string(),
                hosts: BTreeMap::new(),
                ep: None,
                evidence: evidence.clone(),
                source,
                status: None,
                spec_index: None,
            });
        op.hosts.insert(host.to_string(), ep.calls);
        if let Some((st, i)) = status {
            // Across hosts, the least documented status wins (a shadow host is news).
            if op.status.is_none_or(|cur| rank(st) > rank(cur)) {
                op.status = Some(st);
            }
            op.spec_index = op.spec_index.or(i);
        }
        match &mut op.ep {
            Some(merged) => merged.merge(ep, &inv.config().endpoint),
            None => op.ep = Some(ep),
        }
    }

    let mut paths = Map::new();
    let mut schemes = BTreeMap::new();
    let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    for ((path, method), op) in &ops {
        let Some(ep) = &op.ep else { continue };
        let mut o = operation(method, path, op, ep, &mut schemes);
        if let Some(st) = op.status {
            o.insert("x-mirador-status".into(), json!(st.as_str()));
            *counts.entry(st.as_str()).or_default() += 1;
            if st == Status::Zombie {
                o.insert("deprecated".into(), json!(true));
            }
        }
        insert_op(&mut paths, path, method, o);
    }
    if let Some(spec) = spec {
        let used: std::collections::BTreeSet<usize> =
            ops.values().filter_map(|o| o.spec_index).collect();
        for (i, sop) in spec.operations.iter().enumerate() {
            if used.contains(&i) {
                continue;
            }
            let mut path = openapi_path(&sop.path);
            // Equivalent templated paths must be one path item: use the observed spelling.
            if let Some(same) = paths.keys().find(|k| route_shape(k) == route_shape(&path)) {
                path = same.clone();
            }
            let method = sop.method.to_ascii_lowercase();
            if paths.get(&path).and_then(|p| p.get(&method)).is_some() {
                continue;
            }
            let mut o = Map::new();
            o.insert("operationId".into(), json!(operation_id(&method, &path)));
            o.insert(
                "summary".into(),
                json!(format!("{} {}", sop.method, sop.path)),
            );
            o.insert("parameters".into(), Value::Array(path_params(&path, None)));
            o.insert(
                "responses".into(),
                json!({"default": {"description": "documented in the reference spec; never seen"}}),
            );
            if sop.deprecated {
                o.insert("deprecated".into(), json!(true));
            }
            o.insert("x-mirador-status".into(), json!(Status::Unused.as_str()));
            *counts.entry(Status::Unused.as_str()).or_default() += 1;
            insert_op(&mut paths, &path, &method, o);
        }
    }

    let mut doc = Map::new();
    doc.insert("openapi".into(), json!("3.1.0"));
    doc.insert(
        "info".into(),
        json!({
            "title": "API observed by Mirador",
            "version": "observed",
            "description": "Endpoints, parameters, schemas, auth and sensitive data inferred from traffic. Values are never recorded: parameters and schemas carry types only.",
        }),
    );
    let hosts: std::collections::BTreeSet<&str> = ops
        .values()
        .flat_map(|o| o.hosts.keys().map(String::as_str))
        .collect();
    doc.insert(
        "servers".into(),
        Value::Array(
            hosts
                .iter()
                .map(|h| json!({"url": server_url(h)}))
                .collect(),
        ),
    );
    doc.insert("paths".into(), Value::Object(paths));
    if !schemes.is_empty() {
        doc.insert(
            "components".into(),
            json!({"securitySchemes": Value::Object(schemes.into_iter().collect())}),
        );
    }
    let s = inv.stats();
    let c = inv.catalogue().stats();
    let mut summary = json!({
        "transactions": s.transactions,
        "operations": ops.len(),
        "hosts": hosts.len(),
        "unrouted_requests": s.unrouted,
        "endpoints_over_limit": s.endpoints_over_limit,
        "hosts_over_limit": c.hosts_over_limit,
        "paths_unlearned": c.paths_unlearned,
        "bodies_inspected": s.bodies_inspected,
        "bodies_not_json": s.bodies_not_json,
    });
    if spec.is_some() {
        summary["status"] = json!(counts);
    }
    doc.insert("x-mirador-summary".into(), summary);
    Value::Object(doc)
}

struct Op {
    template: String,
    hosts: BTreeMap<String, u64>,
    ep: Option<Endpoint>,
    evidence: Option<features::template::Learnt>,
    /// Where the template comes from (see [`Inventory::provenance`]).
    source: &'static str,
    status: Option<Status>,
    spec_index: Option<usize>,
}

fn rank(s: Status) -> u8 {
    match s {
        Status::Documented => 0,
        Status::Zombie => 1,
        Status::Shadow => 2,
        Status::Unused => 3,
    }
}

fn insert_op(paths: &mut Map<String, Value>, path: &str, method: &str, op: Map<String, Value>) {
    let item = paths
        .entry(path.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(item) = item.as_object_mut() {
        item.insert(method.to_string(), Value::Object(op));
    }
}

fn server_url(host: &str) -> String {
    if host.contains(':') {
        format!("http://[{host}]")
    } else {
        format!("http://{host}")
    }
}

/// A template as an OpenAPI path: parameter names unique (`{id}`, `{id2}`), and braces that
/// were literal bytes on the wire percent-encoded so they are not read as templates.
pub fn openapi_path(template: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for seg in template.strip_prefix('/').unwrap_or(template).split('/') {
        out.push('/');
        match param_segment(seg) {
            Some((name, ext)) => {
                let n = seen.entry(name.to_string()).or_default();
                *n += 1;
                let name = if *n == 1 {
                    name.to_string()
                } else {
                    format!("{name}{n}")
                };
                out.push('{');
                out.push_str(&name);
                out.push('}');
                if let Some(ext) = ext {
                    out.push('.');
                    out.push_str(ext);
                }
            }
            None => {
                for c in seg.chars() {
                    match c {
                        '{' => out.push_str("%7B"),
                        '}' => out.push_str("%7D"),
                        c => out.push(c),
                    }
                }
            }
        }
    }
    out
}

/// A path with every parameter name blanked: equal shapes are the same OpenAPI path.
fn route_shape(path: &str) -> String {
    path.split('/')
        .map(|seg| match param_segment(seg) {
            Some((_, Some(ext))) => format!("{{}}.{ext}"),
            Some((_, None)) => "{}".to_string(),
            None => seg.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// `{name}` or `{name}.ext`.
fn param_segment(seg: &str) -> Option<(&str, Option<&str>)> {
    let inner = seg.strip_prefix('{')?;
    let (name, rest) = inner.split_once('}')?;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    match rest {
        "" => Some((name, None)),
        r => Some((name, Some(r.strip_prefix('.')?)))
            .filter(|(_, e)| e.is_some_and(|e| !e.is_empty() && !e.contains(['{', '}']))),
    }
}

fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_ascii_lowercase();
    for c in path.chars() {
        if c.is_ascii_alphanumeric() {
            id.push(c.to_ascii_lowercase());
        } else if !id.ends_with('_') {
            id.push('_');
        }
    }
    id.trim_end_matches('_').to_string()
}

/// Path parameters of an OpenAPI path, with the learnt evidence where there is some.
fn path_params(path: &str, evidence: Option<&features::template::Learnt>) -> Vec<Value> {
    let mut out = Vec::new();
    let mut param_index = 0;
    for seg in path.strip_prefix('/').unwrap_or(path).split('/') {
        let Some((name, _)) = param_segment(seg) else {
            continue;
        };
        let mut p =
            json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}});
        if let Some(ev) = evidence.and_then(|e| e.params.get(param_index)) {
            let (ty, format) = shape_type(ev.shape);
            p["schema"] = json!({"type": ty});
            if let Some(f) = format {
                p["schema"]["format"] = json!(f);
            }
            p["x-mirador-shape"] = json!({
                "shape": format!("{:?}", ev.shape).to_ascii_lowercase(),
                "share": round3(ev.share),
                "values": ev.values,
                "by_cardinality": ev.by_cardinality,
            });
        }
        param_index += 1;
        out.push(p);
    }
    out
}

fn shape_type(shape: features::segment::Shape) -> (&'static str, Option<&'static str>) {
    use features::segment::Shape;
    match shape {
        Shape::Integer => ("integer", None),
        Shape::Uuid => ("string", Some("uuid")),
        Shape::Date => ("string", Some("date")),
        Shape::Email => ("string", Some("email")),
        _ => ("string", None),
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn time(ns: u64) -> String {
    let mut out = Vec::new();
    sinks::time::rfc3339_micros(&mut out, Timestamp(ns));
    String::from_utf8(out).unwrap_or_default()
}

fn params(table: &ParamTable, place: &str, calls: u64) -> Vec<Value> {
    table
        .names
        .iter()
        .map(|(name, stat)| {
            let (ty, format) = stat.value_type().openapi();
            let mut schema = json!({"type": ty});
            if let Some(f) = format {
                schema["format"] = json!(f);
            }
            let required = place != "cookie"
                && calls >= 3
                && stat.count as f64 >= REQUIRED_SHARE * calls as f64;
            json!({
                "name": &**name,
                "in": place,
                "required": required,
                "schema": schema,
                "x-mirador-seen": stat.count,
            })
        })
        .collect()
}

fn body_content(side: &crate::endpoint::BodyStats) -> Value {
    let mut content = Map::new();
    let schema = if side.schema.documents() > 0 {
        side.schema.to_json_schema(REQUIRED_SHARE)
    } else {
        json!({})
    };
    if side.content_types.is_empty() {
        content.insert("application/octet-stream".into(), json!({"schema": {}}));
    }
    for ct in side.content_types.keys() {
        let s = if ct.contains("json") {
            schema.clone()
        } else {
            json!({})
        };
        content.insert(ct.to_string(), json!({ "schema": s }));
    }
    Value::Object(content)
}

fn quantiles(s: &crate::sketch::Sketch, scale: f64) -> Value {
    if s.count() == 0 {
        return Value::Null;
    }
    let q = |p| s.quantile(p).map(|v| round3(v / scale));
    json!({"p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "max": s.max().map(|v| round3(v / scale)), "count": s.count()})
}

fn operation(
    method: &str,
    path: &str,
    op: &Op,
    ep: &Endpoint,
    schemes: &mut BTreeMap<String, Value>,
) -> Map<String, Value> {
    let mut o = Map::new();
    o.insert("operationId".into(), json!(operation_id(method, path)));
    o.insert(
        "summary".into(),
        json!(format!("{} {}", method.to_ascii_uppercase(), op.template)),
    );
    if op.hosts.len() > 1 || !op.hosts.is_empty() {
        o.insert(
            "servers".into(),
            Value::Array(
                op.hosts
                    .keys()
                    .map(|h| json!({"url": server_url(h)}))
                    .collect(),
            ),
        );
    }
    let mut parameters = path_params(path, op.evidence.as_ref());
    parameters.extend(params(&ep.query, "query", ep.calls));
    parameters.extend(params(&ep.headers, "header", ep.calls));
    parameters.extend(params(&ep.cookies, "cookie", ep.calls));
    o.insert("parameters".into(), Value::Array(parameters));
    if ep.request.sizes.count() > 0 {
        o.insert(
            "requestBody".into(),
            json!({"content": body_content(&ep.request)}),
        );
    }
    let mut responses = Map::new();
    for (&status, &n) in &ep.statuses {
        let code = if status == 0 {
            "default".to_string()
        } else {
            status.to_string()
        };
        let mut r = json!({"description": format!("seen {n} times")});
        if (200..300).contains(&status) && ep.response.sizes.count() > 0 {
            r["content"] = body_content(&ep.response);
        }
        responses.insert(code, r);
    }
    if responses.is_empty() {
        responses.insert("default".into(), json!({"description": "no response seen"}));
    }
    o.insert("responses".into(), Value::Object(responses));

    // Security: every scheme seen; `{}` too when unauthenticated calls succeeded.
    let mut security = Vec::new();
    let mut by_name: BTreeMap<String, u64> = BTreeMap::new();
    for ((scheme, location, name), &n) in &ep.auth {
        let (id, def) = security_scheme(*scheme, location, name);
        schemes.insert(id.clone(), def);
        *by_name.entry(id).or_default() += n;
    }
    for id in by_name.keys() {
        security.push(json!({ id.clone(): [] }));
    }
    if ep.unauthenticated_success > 0 {
        security.push(json!({}));
    }
    o.insert("security".into(), Value::Array(security));

    if !ep.sensitive.is_empty() {
        o.insert(
            "x-mirador-sensitive".into(),
            Value::Array(
                ep.sensitive
                    .iter()
                    .map(|((place, field, kind), n)| {
                        json!({"place": place.as_str(), "field": &**field, "kind": kind.as_str(), "count": n})
                    })
                    .collect(),
            ),
        );
    }
    let top_clients: Vec<Value> = {
        let mut c: Vec<_> = ep.clients.iter().collect();
        c.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        c.iter()
            .take(10)
            .map(|(ip, n)| json!({"ip": ip.to_string(), "calls": n}))
            .collect()
    };
    o.insert(
        "x-mirador-stats".into(),
        json!({
            "calls": ep.calls,
            "first_seen": time(ep.first_seen),
            "last_seen": time(ep.last_seen),
            "hosts": op.hosts,
            "status_codes": ep.statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<Map<_, _>>(),
            "unanswered": ep.unanswered,
            "clients": ep.clients.len() as u64 + u64::from(ep.other_clients > 0),
            "calls_from_other_clients": ep.other_clients,
            "top_clients": top_clients,
            "identities": ep.identity_count(),
            "unauthenticated_success": ep.unauthenticated_success,
            "unsigned_tokens": ep.unsigned_tokens,
            "latency_ms": quantiles(&ep.latency, 1e6),
            "request_bytes": quantiles(&ep.request.sizes, 1.0),
            "response_bytes": quantiles(&ep.response.sizes, 1.0),
            "bodies_inspected": {"request": ep.request.inspected, "response": ep.response.inspected},
        }),
    );
    let mut template = json!({ "source": op.source });
    if let Some(ev) = &op.evidence {
        // The tree counts the paths it walked; repeats served from the route cache count in
        // the endpoint's calls, the template's real support.
        let support = features::template::Learnt {
            hits: ev.hits.max(ep.calls),
            ..ev.clone()
        };
        template["confidence"] = json!(round3(support.confidence()));
    }
    o.insert("x-mirador-template".into(), template);
    if ep.unauthenticated_success > 0 && ep.success == ep.unauthenticated_success {
        o.insert("x-mirador-unauthenticated".into(), json!(true));
    }
    o
}

fn security_scheme(scheme: Scheme, location: &str, name: &str) -> (String, Value) {
    let safe: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    match scheme {
        Scheme::Basic => ("basic".into(), json!({"type": "http", "scheme": "basic"})),
        Scheme::Digest => ("digest".into(), json!({"type": "http", "scheme": "digest"})),
        Scheme::BearerJwt if location == "header" && name == "authorization" => (
            "bearer_jwt".into(),
            json!({"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}),
        ),
        Scheme::BearerOpaque if name == "authorization" => {
            ("bearer".into(), json!({"type": "http", "scheme": "bearer"}))
        }
        Scheme::Other => (
            format!("other_{safe}"),
            json!({"type": "apiKey", "in": api_key_in(location), "name": name, "description": "an Authorization scheme other than Basic, Bearer or Digest"}),
        ),
        _ => (
            format!("{}_{}_{safe}", scheme.as_str(), location),
            json!({"type": "apiKey", "in": api_key_in(location), "name": name}),
        ),
    }
}

fn api_key_in(location: &str) -> &'static str {
    match location {
        "query" => "query",
        "cookie" => "cookie",
        _ => "header",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_get_unique_parameter_names_and_escaped_braces() {
        assert_eq!(
            openapi_path("/users/{id}/friends/{id}"),
            "/users/{id}/friends/{id2}"
        );
        assert_eq!(openapi_path("/p/{sku}.json"), "/p/{sku}.json");
        assert_eq!(openapi_path("/raw/{x"), "/raw/%7Bx");
        assert_eq!(openapi_path("/"), "/");
        assert_eq!(operation_id("get", "/users/{id}.json"), "get_users_id_json");
    }
}
