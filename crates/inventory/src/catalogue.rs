//! Endpoint templates per host and method, with the operator's rules on top.
//!
//! Each host and method has its own [`PathTree`]. Rules from the config come first: a *force*
//! rule maps every path it matches to its template, whatever was learnt; a *forbid* rule keeps
//! literal the positions a learnt template would make parameters. Hosts and methods are
//! bounded; traffic past the bounds is templated by shape alone and counted.

use std::collections::BTreeMap;

use features::segment::{classify, split_extension, Evidence};
use features::template::{Learnt, PathTree, TemplateLimits};

/// Bounds of the whole catalogue.
#[derive(Debug, Clone, Copy)]
pub struct CatalogueLimits {
    pub max_hosts: usize,
    /// Methods learnt per host (a method token is whatever the client sent).
    pub max_methods: usize,
    pub tree: TemplateLimits,
}

impl Default for CatalogueLimits {
    fn default() -> Self {
        CatalogueLimits {
            max_hosts: 256,
            max_methods: 16,
            tree: TemplateLimits::default(),
        }
    }
}

/// Hosts another host's templates are compared with (bounds the work of an export).
const MAX_HOSTS_CONSULTED: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleAction {
    /// Paths matching the pattern get exactly this template.
    Force,
    /// A learnt template matching the pattern keeps its parameter positions literal.
    Forbid,
}

/// One operator rule, e.g. force `/api/{version}/users/{id}` on `*.example.com`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub action: RuleAction,
    /// `*`, an exact host, or `*.suffix`.
    pub host: String,
    /// A method, or every method when `None`.
    pub method: Option<String>,
    pub template: String,
    segments: Vec<PatternSegment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PatternSegment {
    Literal(String),
    /// `{name}` or `{name}.ext`.
    Param(Option<String>),
}

impl Rule {
    /// Checks and compiles a rule; the error says what is wrong with it.
    pub fn new(
        action: RuleAction,
        host: &str,
        method: Option<&str>,
        template: &str,
    ) -> Result<Rule, String> {
        let Some(body) = template.strip_prefix('/') else {
            return Err(format!("template {template:?} must start with '/'"));
        };
        let host = host.trim().to_ascii_lowercase();
        if host.is_empty() {
            return Err("host must be \"*\", a host name or \"*.suffix\"".into());
        }
        if host != "*" && host[1..].contains('*') || (host.contains('*') && !host.starts_with('*'))
        {
            return Err(format!(
                "host {host:?}: only a leading \"*\" or \"*.suffix\" is allowed"
            ));
        }
        let mut segments = Vec::new();
        for seg in body.split('/') {
            if let Some(inner) = seg.strip_prefix('{') {
                let (name, rest) = inner.split_once('}').ok_or_else(|| {
                    format!("template {template:?} has an unclosed '{{' in {seg:?}")
                })?;
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    return Err(format!(
                        "template {template:?}: parameter name {name:?} must be letters, digits or '_'"
                    ));
                }
                let ext = match rest {
                    "" => None,
                    r => Some(
                        r.strip_prefix('.')
                            .filter(|e| !e.is_empty())
                            .ok_or_else(|| {
                                format!("template {template:?}: after '}}' only \".ext\" may follow in {seg:?}")
                            })?
                            .to_string(),
                    ),
                };
                segments.push(PatternSegment::Param(ext));
            } else if seg.contains(['{', '}']) {
                return Err(format!(
                    "template {template:?}: a parameter must be a whole segment, got {seg:?}"
                ));
            } else {
                segments.push(PatternSegment::Literal(seg.to_string()));
            }
        }
        Ok(Rule {
            action,
            host,
            method: method.map(|m| m.to_string()),
            template: template.to_string(),
            segments,
        })
    }

    fn applies_to(&self, host: &str, method: &str) -> bool {
        let host_ok = match self.host.strip_prefix('*') {
            None => self.host == host,
            Some("") => true,
            Some(suffix) => host.ends_with(suffix) && host.len() > suffix.len(),
        };
        host_ok && self.method.as_deref().is_none_or(|m| m == method)
    }

    /// Whether a path (or a template) matches; a pattern parameter matches any non-empty
    /// segment with the right extension.
    fn matches(&self, path: &str) -> bool {
        let body = path.strip_prefix('/').unwrap_or(path);
        let mut segs = body.split('/');
        for pat in &self.segments {
            let Some(seg) = segs.next() else { return false };
            let ok = match pat {
                PatternSegment::Literal(l) => l == seg,
                PatternSegment::Param(ext) => {
                    !seg.is_empty()
                        && match ext {
                            None => true,
                            Some(e) => seg
                                .strip_suffix(e.as_str())
                                .is_some_and(|s| s.ends_with('.') && s.len() > 1),
                        }
                }
            };
            if !ok {
                return false;
            }
        }
        segs.next().is_none()
    }
}

/// How a path was templated.
#[derive(Debug, Clone, PartialEq)]
pub struct Routed {
    pub template: String,
    pub source: RouteSource,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RouteSource {
    /// Learnt from traffic; false when the path is no learnt route (nothing learnt ends there).
    Learnt(bool),
    /// An operator's force rule (the rule's template).
    Forced,
    /// Past the host or method bound: by shape alone, not learnt.
    Unlearned,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CatalogueStats {
    /// Transactions of hosts past `max_hosts`, templated by shape alone.
    pub hosts_over_limit: u64,
    /// Transactions of methods past `max_methods` for their host.
    pub methods_over_limit: u64,
    /// Paths the trees could not learn (full).
    pub paths_unlearned: u64,
}

/// Templates of every host and method.
#[derive(Debug)]
pub struct Catalogue {
    limits: CatalogueLimits,
    rules: Vec<Rule>,
    hosts: BTreeMap<Box<str>, BTreeMap<Box<str>, PathTree>>,
    stats: CatalogueStats,
    generation: u64,
}

impl Catalogue {
    pub fn new(limits: CatalogueLimits, rules: Vec<Rule>) -> Self {
        Catalogue {
            limits,
            rules,
            hosts: BTreeMap::new(),
            stats: CatalogueStats::default(),
            generation: 0,
        }
    }

    pub fn stats(&self) -> CatalogueStats {
        let mut s = self.stats;
        s.paths_unlearned += self
            .hosts
            .values()
            .flat_map(|m| m.values())
            .map(PathTree::unlearned)
            .sum::<u64>();
        s
    }

    /// Changes whenever any learnt template may have changed: templates routed at one
    /// generation hold until the next.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn hosts(&self) -> usize {
        self.hosts.len()
    }

    /// The learnt trees, for a snapshot (rules and limits come from the config).
    pub fn snapshot(&self) -> serde_json::Value {
        serde_json::to_value(&self.hosts).unwrap_or(serde_json::Value::Null)
    }

    /// Takes the learnt trees of a snapshot; hosts past the limit are dropped and counted.
    pub fn restore(&mut self, v: serde_json::Value) -> Result<(), String> {
        let hosts: BTreeMap<Box<str>, BTreeMap<Box<str>, PathTree>> =
            serde_json::from_value(v).map_err(|e| e.to_string())?;
        self.hosts.clear();
        for (host, methods) in hosts {
            if self.hosts.len() >= self.limits.max_hosts {
                self.stats.hosts_over_limit += 1;
                continue;
            }
            self.hosts.insert(host, methods);
        }
        self.generation += 1;
        Ok(())
    }

    /// Templates a path; learns from it when `learn` (the caller does not learn from 404s and
    /// other answers that say the route does not exist).
    pub fn route(&mut self, host: &str, method: &str, path: &str, learn: bool) -> Routed {
        if let Some(rule) = self.rule(RuleAction::Force, host, method, path) {
            return Routed {
                template: rule.template.clone(),
                source: RouteSource::Forced,
            };
        }
        if learn {
            let Some(tree) = self.tree_mut(host, method) else {
                // A bound was hit (counted there).
                return Routed {
                    template: by_shape(path),
                    source: RouteSource::Unlearned,
                };
            };
            let before = tree.generation();
            let mut template = tree.observe(path);
            if tree.generation() != before {
                self.generation += 1;
            }
            if let Some(rule) = self.rule(RuleAction::Forbid, host, method, &template) {
                template = literalize(&template, path, rule);
            }
            return Routed {
                template,
                source: RouteSource::Learnt(true),
            };
        }
        let Some(tree) = self.hosts.get(host).and_then(|m| m.get(method)) else {
            return Routed {
                template: by_shape(path),
                source: RouteSource::Learnt(false),
            };
        };
        let learnt = tree.lookup(path);
        let known = learnt.is_some();
        let mut template = learnt
            .map(|l| l.template)
            .unwrap_or_else(|| tree.template_of(path));
        if let Some(rule) = self.rule(RuleAction::Forbid, host, method, &template) {
            template = literalize(&template, path, rule);
        }
        Routed {
            template,
            source: RouteSource::Learnt(known),
        }
    }

    /// The learnt template a path has now, without learning (for re-keying old entries), and
    /// the evidence behind it.
    pub fn current(
        &self,
        host: &str,
        method: &str,
        path: &str,
    ) -> Option<(String, Option<Learnt>)> {
        if let Some(rule) = self.rule(RuleAction::Force, host, method, path) {
            return Some((rule.template.clone(), None));
        }
        let learnt = self.hosts.get(host)?.get(method)?.lookup(path)?;
        let mut template = learnt.template.clone();
        if let Some(rule) = self.rule(RuleAction::Forbid, host, method, &template) {
            template = literalize(&template, path, rule);
        }
        Some((template, Some(learnt)))
    }

    /// A more general template another host learnt for the same method and path, when this
    /// host's has fewer parameters: the same API often answers under several names (a DNS
    /// name and a bare address), and a value seen once on one of them is a value, not a route.
    pub fn generalize(
        &self,
        host: &str,
        method: &str,
        path: &str,
        template: &str,
    ) -> Option<String> {
        let params = |t: &str| t.bytes().filter(|&b| b == b'{').count();
        let mine = params(template);
        let mut best: Option<String> = None;
        for (other, methods) in self.hosts.iter().take(MAX_HOSTS_CONSULTED) {
            if &**other == host {
                continue;
            }
            let Some(learnt) = methods.get(method).and_then(|t| t.lookup(path)) else {
                continue;
            };
            let n = params(&learnt.template);
            if n > mine && best.as_deref().is_none_or(|b| n > params(b)) {
                best = Some(learnt.template);
            }
        }
        best
    }

    /// The evidence another host learnt for exactly this template.
    pub fn other_hosts_evidence(
        &self,
        host: &str,
        method: &str,
        path: &str,
        template: &str,
    ) -> Option<Learnt> {
        self.hosts
            .iter()
            .take(MAX_HOSTS_CONSULTED)
            .filter(|(other, _)| &***other != host)
            .filter_map(|(_, methods)| methods.get(method)?.lookup(path))
            .find(|l| l.template == template)
    }

    fn rule(&self, action: RuleAction, host: &str, method: &str, path: &str) -> Option<&Rule> {
        self.rules
            .iter()
            .find(|r| r.action == action && r.applies_to(host, method) && r.matches(path))
    }

    fn tree_mut(&mut self, host: &str, method: &str) -> Option<&mut PathTree> {
        if !self.hosts.contains_key(host) {
            if self.hosts.len() >= self.limits.max_hosts {
                self.stats.hosts_over_limit += 1;
                return None;
            }
            self.hosts.insert(host.into(), BTreeMap::new());
        }
        let methods = self.hosts.get_mut(host)?;
        if !methods.contains_key(method) {
            if methods.len() >= self.limits.max_methods {
                self.stats.methods_over_limit += 1;
                return None;
            }
            methods.insert(method.into(), PathTree::new(self.limits.tree));
            self.generation += 1;
        }
        methods.get_mut(method)
    }
}

impl Catalogue {
    /// Learns the path in its tree (the caller decided it names a real route).
    pub fn learn(&mut self, host: &str, method: &str, path: &str) {
        self.route(host, method, path, true);
    }
}

/// Puts back the path's own segments where a forbid rule's pattern has parameters.
fn literalize(template: &str, path: &str, rule: &Rule) -> String {
    let t = template.strip_prefix('/').unwrap_or(template).split('/');
    let p = path.strip_prefix('/').unwrap_or(path).split('/');
    let mut out = String::with_capacity(path.len());
    for ((tseg, pseg), pat) in t.zip(p).zip(&rule.segments) {
        out.push('/');
        match pat {
            PatternSegment::Param(_) => out.push_str(pseg),
            PatternSegment::Literal(_) => out.push_str(tseg),
        }
    }
    out
}

/// The template a path gets when nothing was learnt: identifiers by shape, the rest literal.
pub fn by_shape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for seg in path.strip_prefix('/').unwrap_or(path).split('/') {
        out.push('/');
        let (stem, ext) = split_extension(seg);
        let shape = classify(stem);
        if shape.evidence() == Evidence::Strong {
            out.push('{');
            out.push_str(shape.placeholder());
            out.push('}');
            if let Some(ext) = ext {
                out.push('.');
                out.push_str(ext);
            }
        } else {
            out.push_str(seg);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn learn_all(cat: &mut Catalogue, host: &str, method: &str, paths: &[String]) {
        for p in paths {
            cat.learn(host, method, p);
        }
    }

    #[test]
    fn hosts_and_methods_learn_separately() {
        let mut cat = Catalogue::new(CatalogueLimits::default(), vec![]);
        let ids: Vec<String> = (0..10).map(|i| format!("/users/{i}")).collect();
        learn_all(&mut cat, "a.test", "GET", &ids);
        assert_eq!(
            cat.route("a.test", "GET", "/users/77", false).template,
            "/users/{id}"
        );
        assert_eq!(
            cat.route("a.test", "GET", "/users/77", false).source,
            RouteSource::Learnt(true)
        );
        // Same path on another host or method is not (yet) a learnt route.
        assert_eq!(
            cat.route("b.test", "GET", "/users/77", false).source,
            RouteSource::Learnt(false)
        );
        assert!(cat.current("a.test", "DELETE", "/users/77").is_none());
        assert_eq!(cat.hosts(), 1);
    }

    #[test]
    fn a_literal_on_one_host_takes_another_hosts_template() {
        let mut cat = Catalogue::new(CatalogueLimits::default(), vec![]);
        for i in 0..10 {
            cat.learn("api.test", "GET", &format!("/items/SKU-{i:04}.json"));
        }
        cat.learn("10.0.0.1", "GET", "/items/SKU-0042.json");
        let here = cat.route("10.0.0.1", "GET", "/items/SKU-0042.json", false);
        assert_eq!(here.template, "/items/SKU-0042.json");
        assert_eq!(
            cat.generalize("10.0.0.1", "GET", "/items/SKU-0042.json", &here.template)
                .as_deref(),
            Some("/items/{sku}.json")
        );
        // Nothing more general elsewhere, or another method: no change.
        assert_eq!(
            cat.generalize(
                "api.test",
                "GET",
                "/items/SKU-0001.json",
                "/items/{sku}.json"
            ),
            None
        );
        assert_eq!(
            cat.generalize(
                "10.0.0.1",
                "PUT",
                "/items/SKU-0042.json",
                "/items/SKU-0042.json"
            ),
            None
        );
    }

    #[test]
    fn force_rule_wins_over_learning() {
        let rule = Rule::new(
            RuleAction::Force,
            "*.shop.test",
            None,
            "/api/{version}/items",
        )
        .unwrap();
        let mut cat = Catalogue::new(CatalogueLimits::default(), vec![rule]);
        for v in ["v1", "v2"] {
            let r = cat.route("api.shop.test", "GET", &format!("/api/{v}/items"), true);
            assert_eq!(r.template, "/api/{version}/items");
            assert_eq!(r.source, RouteSource::Forced);
        }
        // Not under the host pattern: learnt normally, the words stay literal.
        let r = cat.route("other.test", "GET", "/api/v1/items", true);
        assert_eq!(r.template, "/api/v1/items");
        // A bare "shop.test" does not match "*.shop.test".
        let r = cat.route("shop.test", "GET", "/api/v1/items", true);
        assert_eq!(r.template, "/api/v1/items");
    }

    #[test]
    fn forbid_rule_keeps_positions_literal() {
        let rule = Rule::new(RuleAction::Forbid, "*", Some("GET"), "/years/{year}").unwrap();
        let mut cat = Catalogue::new(CatalogueLimits::default(), vec![rule]);
        let years: Vec<String> = (1990..2030).map(|y| format!("/years/{y}")).collect();
        learn_all(&mut cat, "h", "GET", &years);
        learn_all(&mut cat, "h", "POST", &years);
        assert_eq!(
            cat.route("h", "GET", "/years/2001", false).template,
            "/years/2001"
        );
        assert_eq!(
            cat.route("h", "POST", "/years/2001", false).template,
            "/years/{id}"
        );
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        let err = |t: &str| Rule::new(RuleAction::Force, "*", None, t).unwrap_err();
        assert!(err("users/{id}").contains("must start with '/'"));
        assert!(err("/users/{id").contains("unclosed"));
        assert!(err("/users/x{id}").contains("whole segment"));
        assert!(err("/users/{}").contains("parameter name"));
        assert!(err("/users/{id}x").contains(".ext"));
        assert!(Rule::new(RuleAction::Force, "a*.b", None, "/x")
            .unwrap_err()
            .contains("leading"));
        let ok = Rule::new(RuleAction::Force, "*", None, "/files/{name}.json").unwrap();
        assert!(ok.matches("/files/a.json"));
        assert!(!ok.matches("/files/a.xml"));
        assert!(!ok.matches("/files/.json"));
        assert!(!ok.matches("/files/a.json/x"));
    }

    #[test]
    fn host_and_method_bounds_are_counted() {
        let limits = CatalogueLimits {
            max_hosts: 2,
            max_methods: 1,
            ..Default::default()
        };
        let mut cat = Catalogue::new(limits, vec![]);
        for h in 0..5 {
            let r = cat.route(&format!("h{h}"), "GET", "/users/5", true);
            assert_eq!(r.template, "/users/{id}");
        }
        cat.route("h0", "PUT", "/users/5", true);
        let s = cat.stats();
        assert_eq!(cat.hosts(), 2);
        assert_eq!(s.hosts_over_limit, 3);
        assert_eq!(s.methods_over_limit, 1);
    }
}
