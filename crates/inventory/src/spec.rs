//! A reference OpenAPI spec (2.0 paths or 3.x, YAML or JSON) and how observed endpoints stand
//! against it: documented, shadow (not in the spec), zombie (in the spec as deprecated, or an
//! older version of a route the spec also has, and still served), unused (never seen).

use serde_json::Value;

/// How an operation stands against the reference spec (`x-mirador-status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    Documented,
    Shadow,
    Zombie,
    Unused,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Documented => "documented",
            Status::Shadow => "shadow",
            Status::Zombie => "zombie",
            Status::Unused => "unused",
        }
    }
}

/// One operation of the spec.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecOperation {
    pub method: String,
    /// Full path (server base path included), e.g. `/api/v2/users/{userId}`.
    pub path: String,
    pub deprecated: bool,
    /// Superseded by the same route under a higher version segment (`/v1/…` vs `/v2/…`).
    pub superseded: bool,
    /// The spec's own text of the operation (copied into the export for unused ones).
    pub raw: Value,
}

/// A parsed reference spec.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    pub operations: Vec<SpecOperation>,
    /// Host names of the spec's servers; empty when they name none (then any host matches).
    pub hosts: Vec<String>,
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

impl Spec {
    /// Parses YAML or JSON text; the error names what is missing.
    pub fn parse(text: &str) -> Result<Spec, String> {
        let doc: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(_) => {
                serde_norway::from_str(text).map_err(|e| format!("neither JSON nor YAML: {e}"))?
            }
        };
        if doc.get("openapi").is_none() && doc.get("swagger").is_none() {
            return Err(
                "no \"openapi\" (or \"swagger\") version field: not an OpenAPI document".into(),
            );
        }
        let paths = doc
            .get("paths")
            .and_then(Value::as_object)
            .ok_or("no \"paths\" object")?;
        let mut hosts = Vec::new();
        let mut base = String::new();
        if let Some(servers) = doc.get("servers").and_then(Value::as_array) {
            for s in servers.iter().filter_map(|s| s.get("url")?.as_str()) {
                let (host, path) = split_url(s);
                if let Some(h) = host {
                    hosts.push(h);
                }
                if base.is_empty() {
                    base = path;
                }
            }
        }
        if let Some(h) = doc.get("host").and_then(Value::as_str) {
            hosts.push(strip_port(h).to_ascii_lowercase());
        }
        if let Some(b) = doc.get("basePath").and_then(Value::as_str) {
            base = b.trim_end_matches('/').to_string();
        }
        hosts.sort();
        hosts.dedup();
        let mut operations = Vec::new();
        for (path, item) in paths {
            let Some(item) = item.as_object() else {
                continue;
            };
            for m in METHODS {
                let Some(op) = item.get(m) else { continue };
                operations.push(SpecOperation {
                    method: m.to_ascii_uppercase(),
                    path: format!("{base}{path}"),
                    deprecated: op.get("deprecated").and_then(Value::as_bool) == Some(true),
                    superseded: false,
                    raw: op.clone(),
                });
            }
        }
        let keys: Vec<(String, String, u32)> = operations
            .iter()
            .map(|o| {
                let (k, v) = version_key(&o.path);
                (o.method.clone(), k, v)
            })
            .collect();
        for (i, op) in operations.iter_mut().enumerate() {
            let (m, k, v) = &keys[i];
            op.superseded = *v > 0 && keys.iter().any(|(m2, k2, v2)| m2 == m && k2 == k && v2 > v);
        }
        operations.sort_by(|a, b| (&a.path, &a.method).cmp(&(&b.path, &b.method)));
        Ok(Spec { operations, hosts })
    }

    /// The spec operation an observed endpoint falls under: same method, and every segment
    /// equal or a spec parameter; a literal match beats a parameter one.
    pub fn find(&self, host: &str, method: &str, template: &str) -> Option<usize> {
        if !self.covers_host(host) {
            return None;
        }
        let t: Vec<&str> = segments(template).collect();
        let mut best: Option<(usize, usize)> = None;
        for (i, op) in self.operations.iter().enumerate() {
            if !op.method.eq_ignore_ascii_case(method) {
                continue;
            }
            let s: Vec<&str> = segments(&op.path).collect();
            if s.len() != t.len() {
                continue;
            }
            let mut literal = 0;
            let ok = s.iter().zip(&t).all(|(a, b)| {
                if is_param(a) {
                    true
                } else if a == b {
                    literal += 1;
                    true
                } else {
                    false
                }
            });
            if ok && best.is_none_or(|(_, l)| literal > l) {
                best = Some((i, literal));
            }
        }
        best.map(|(i, _)| i)
    }

    pub fn covers_host(&self, host: &str) -> bool {
        self.hosts.is_empty() || self.hosts.iter().any(|h| h == host)
    }

    /// Status of an observed endpoint matched to operation `index` (or to none).
    pub fn status_of(&self, index: Option<usize>) -> Status {
        match index.map(|i| &self.operations[i]) {
            None => Status::Shadow,
            Some(op) if op.deprecated || op.superseded => Status::Zombie,
            Some(_) => Status::Documented,
        }
    }
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.strip_prefix('/').unwrap_or(path).split('/')
}

fn is_param(seg: &str) -> bool {
    seg.starts_with('{') && seg.contains('}')
}

/// The path with its version segment (`v2`) blanked, and the version (0 when none).
fn version_key(path: &str) -> (String, u32) {
    let mut version = 0;
    let key: Vec<String> = segments(path)
        .map(|s| {
            let n = s
                .strip_prefix(['v', 'V'])
                .filter(|d| !d.is_empty() && d.len() <= 3 && d.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|d| d.parse::<u32>().ok());
            match n {
                Some(n) if version == 0 => {
                    version = n;
                    "{version}".to_string()
                }
                _ if is_param(s) => "{}".to_string(),
                _ => s.to_string(),
            }
        })
        .collect();
    (key.join("/"), version)
}

/// Host and path of a server URL (`https://api.x.test:8443/v2` → `api.x.test`, `/v2`).
fn split_url(url: &str) -> (Option<String>, String) {
    let rest = url.split_once("://").map(|(_, r)| r);
    match rest {
        Some(r) => {
            let (authority, path) = r.split_once('/').map_or((r, ""), |(a, p)| (a, p));
            let host = strip_port(authority).to_ascii_lowercase();
            let path = path.trim_end_matches('/');
            (
                (!host.is_empty() && !host.contains('{')).then_some(host),
                if path.is_empty() {
                    String::new()
                } else {
                    format!("/{path}")
                },
            )
        }
        None => (None, url.trim_end_matches('/').to_string()),
    }
}

fn strip_port(authority: &str) -> &str {
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r#"
openapi: 3.1.0
info: {title: t, version: "1"}
servers:
  - url: https://api.shop.test/api
paths:
  /v2/users/{userId}:
    get: {responses: {"200": {description: ok}}}
  /v2/users/me:
    get: {responses: {"200": {description: ok}}}
  /v1/users/{userId}:
    get: {responses: {"200": {description: ok}}}
  /v2/old:
    get: {deprecated: true, responses: {"200": {description: ok}}}
    post: {responses: {"200": {description: ok}}}
"#;

    #[test]
    fn parses_operations_with_base_path_and_hosts() {
        let spec = Spec::parse(SPEC).unwrap();
        assert_eq!(spec.hosts, vec!["api.shop.test".to_string()]);
        assert_eq!(spec.operations.len(), 5);
        assert!(spec.operations.iter().all(|o| o.path.starts_with("/api/v")));
        let v1 = spec
            .operations
            .iter()
            .find(|o| o.path == "/api/v1/users/{userId}")
            .unwrap();
        assert!(v1.superseded && !v1.deprecated);
        let v2 = spec
            .operations
            .iter()
            .find(|o| o.path == "/api/v2/users/{userId}")
            .unwrap();
        assert!(!v2.superseded);
    }

    #[test]
    fn observed_endpoints_get_their_status() {
        let spec = Spec::parse(SPEC).unwrap();
        let status = |m: &str, t: &str| spec.status_of(spec.find("api.shop.test", m, t));
        assert_eq!(status("GET", "/api/v2/users/{id}"), Status::Documented);
        assert_eq!(status("GET", "/api/v2/users/me"), Status::Documented);
        // A literal match wins over the parameter route.
        let me = spec
            .find("api.shop.test", "GET", "/api/v2/users/me")
            .unwrap();
        assert_eq!(spec.operations[me].path, "/api/v2/users/me");
        assert_eq!(status("GET", "/api/v1/users/{id}"), Status::Zombie);
        assert_eq!(status("GET", "/api/v2/old"), Status::Zombie);
        assert_eq!(status("POST", "/api/v2/old"), Status::Documented);
        assert_eq!(status("DELETE", "/api/v2/old"), Status::Shadow);
        assert_eq!(status("GET", "/api/v2/users/{id}/tokens"), Status::Shadow);
        // The spec's parameter does not match a different literal position.
        assert_eq!(status("GET", "/api/v2/{id}/users/me"), Status::Shadow);
        // Another host is not covered by this spec.
        assert_eq!(
            spec.status_of(spec.find("other.test", "GET", "/api/v2/users/{id}")),
            Status::Shadow
        );
    }

    #[test]
    fn bad_specs_say_why() {
        assert!(Spec::parse("{}").unwrap_err().contains("openapi"));
        assert!(Spec::parse("openapi: 3.1.0\n")
            .unwrap_err()
            .contains("paths"));
        assert!(Spec::parse(": : :\n\t- [").unwrap_err().contains("YAML"));
        let swagger =
            r#"{"swagger":"2.0","host":"h.test:80","basePath":"/b","paths":{"/x":{"get":{}}}}"#;
        let s = Spec::parse(swagger).unwrap();
        assert_eq!(s.hosts, vec!["h.test".to_string()]);
        assert_eq!(s.operations[0].path, "/b/x");
    }
}
