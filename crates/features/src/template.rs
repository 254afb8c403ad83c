//! Learning endpoint templates from the paths of one host and method (`/users/123` →
//! `/users/{id}`).
//!
//! A [`PathTree`] is a trie over path segments. A segment whose shape alone marks it as an
//! identifier goes to its position's parameter child at once. Other segments stay literal until
//! their position has seen too many distinct ones: more than `code_fanout` non-word values (codes,
//! tokens, hex) or more than `word_fanout` values of any kind. Then those literals, with
//! everything learnt below them, are merged into the parameter child. Words need far more
//! evidence than codes, because `/api/users`, `/api/orders`, … are routes, not values.
//!
//! Memory is bounded by `max_nodes`; a path that would need more is templated by shape alone,
//! without learning, and counted in [`PathTree::unlearned`].

use crate::segment::{classify, split_extension, Evidence, Shape};

/// Bounds and thresholds of one tree.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct TemplateLimits {
    /// Nodes (distinct path prefixes) one tree may hold.
    pub max_nodes: usize,
    /// Distinct non-word literals (codes, tokens, hex) at one position before it is a parameter.
    pub code_fanout: usize,
    /// Distinct literals of any shape at one position before it is a parameter.
    pub word_fanout: usize,
}

impl Default for TemplateLimits {
    fn default() -> Self {
        // 64 words: a REST collection rarely has more sibling routes; a slug position
        // (`/articles/how-to-x`) passes it within a few hundred page views.
        TemplateLimits {
            max_nodes: 4096,
            code_fanout: 3,
            word_fanout: 64,
        }
    }
}

const SHAPES: usize = Shape::ALL.len();

type NodeId = u32;

/// Segments learnt per path; deeper ones are templated by shape (and bound the recursion).
const MAX_DEPTH: usize = 32;

#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
struct Node {
    /// Literal children by segment, kept sorted for deterministic output and binary search.
    literals: Vec<(Box<str>, NodeId)>,
    /// Parameter children by file extension (`None` for none): `{id}` and `{id}.json` differ.
    params: Vec<(Option<Box<str>>, NodeId)>,
    /// Shapes of the values seen at this node when it is a parameter child.
    shapes: [u32; SHAPES],
    /// Paths that ended here.
    hits: u64,
    /// Words too were made parameters here, so new words go to the parameter child.
    words_promoted: bool,
}

impl Node {
    fn placeholder(&self) -> &'static str {
        // Most frequent shape; ties go to the more specific (earlier) shape, so the name is a
        // function of the counts, not of arrival order.
        let mut best = 0;
        for i in 1..SHAPES {
            if self.shapes[i] > self.shapes[best] {
                best = i;
            }
        }
        if self.shapes[best] == 0 {
            return Shape::Other.placeholder();
        }
        Shape::ALL[best].placeholder()
    }
}

/// A learnt template and why its parameters are parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Learnt {
    pub template: String,
    /// Paths that ended at this template.
    pub hits: u64,
    pub params: Vec<ParamEvidence>,
}

/// The evidence behind one parameter of a template.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParamEvidence {
    /// 0-based segment position in the path.
    pub position: usize,
    /// The dominant shape of its values (names the placeholder).
    pub shape: Shape,
    /// Share of the values that had that shape.
    pub share: f64,
    /// Values seen at the position.
    pub values: u64,
    /// Made a parameter because the position had too many distinct values, not by shape alone.
    pub by_cardinality: bool,
}

impl Learnt {
    /// How sure the template is, in [0, 1]: each parameter's dominant-shape share, weighted by
    /// how strongly that shape marks an identifier, times how much support the template has.
    pub fn confidence(&self) -> f64 {
        let support = 1.0 - 0.5f64.powf(self.hits as f64 / 4.0);
        self.params.iter().fold(support, |c, p| {
            let weight = match p.shape.evidence() {
                Evidence::Strong => 1.0,
                Evidence::Likely => 0.9,
                Evidence::Weak => 0.8,
            };
            c * weight * p.share
        })
    }
}

/// The learnt templates of one host and method. Serializable, so what was learnt survives a
/// restart (model snapshots).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct PathTree {
    limits: TemplateLimits,
    nodes: Vec<Node>,
    free: Vec<NodeId>,
    live: usize,
    unlearned: u64,
    generation: u64,
}

impl PathTree {
    pub fn new(limits: TemplateLimits) -> Self {
        PathTree {
            limits,
            nodes: vec![Node::default()],
            free: Vec::new(),
            live: 1,
            unlearned: 0,
            generation: 0,
        }
    }

    /// Nodes in use (bounded by `max_nodes`).
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 1 && self.nodes[0].hits == 0
    }

    /// Changes whenever the tree's shape changes (a node added, merged or freed): a template
    /// computed at one generation holds until the next.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Paths templated by shape alone because the tree was full.
    pub fn unlearned(&self) -> u64 {
        self.unlearned
    }

    /// Learns from one path (without its query) and returns its template as learnt so far.
    pub fn observe(&mut self, path: &str) -> String {
        let mut node: NodeId = 0;
        let mut template = String::with_capacity(path.len());
        let segments = path.strip_prefix('/').unwrap_or(path);
        let mut rest = segments.split('/');
        let mut depth = 0;
        while let Some(segment) = rest.next() {
            template.push('/');
            depth += 1;
            let learnt = if depth > MAX_DEPTH {
                None
            } else {
                self.step(node, segment)
            };
            match learnt {
                Some((next, label)) => {
                    template.push_str(&label);
                    node = next;
                }
                None => {
                    self.unlearned += 1;
                    push_by_shape(&mut template, segment);
                    for segment in rest.by_ref() {
                        template.push('/');
                        push_by_shape(&mut template, segment);
                    }
                    return template;
                }
            }
        }
        self.nodes[node as usize].hits += 1;
        template
    }

    /// The template a path has now, without learning from it.
    pub fn template_of(&self, path: &str) -> String {
        let mut node = Some(0);
        let mut template = String::with_capacity(path.len());
        let segments = path.strip_prefix('/').unwrap_or(path);
        for (depth, segment) in segments.split('/').enumerate() {
            template.push('/');
            let (stem, ext) = split_extension(segment);
            let found = node
                .filter(|_| depth < MAX_DEPTH)
                .and_then(|n| self.route(n, segment, ext, classify(stem)));
            match found {
                Some((child, is_param)) => {
                    template.push_str(&self.segment_text(child, is_param, segment, ext));
                    node = Some(child);
                }
                None => {
                    push_by_shape(&mut template, segment);
                    node = None;
                }
            }
        }
        template
    }

    /// The learnt template a path falls under, with the evidence for each of its parameters;
    /// `None` when no learnt path ends there (an unknown route: a probe, a typo, a scan).
    pub fn lookup(&self, path: &str) -> Option<Learnt> {
        let mut node: NodeId = 0;
        let mut template = String::with_capacity(path.len());
        let mut params = Vec::new();
        let segments = path.strip_prefix('/').unwrap_or(path);
        for (depth, segment) in segments.split('/').enumerate() {
            if depth >= MAX_DEPTH {
                return None;
            }
            let (stem, ext) = split_extension(segment);
            let (child, is_param) = self.route(node, segment, ext, classify(stem))?;
            template.push('/');
            template.push_str(&self.segment_text(child, is_param, segment, ext));
            if is_param {
                params.push(self.param_evidence(child, depth));
            }
            node = child;
        }
        let hits = self.nodes[node as usize].hits;
        (hits > 0).then_some(Learnt {
            template,
            hits,
            params,
        })
    }

    fn param_evidence(&self, id: NodeId, position: usize) -> ParamEvidence {
        let node = &self.nodes[id as usize];
        let values: u64 = node.shapes.iter().map(|&n| u64::from(n)).sum();
        let (best, count) = node
            .shapes
            .iter()
            .enumerate()
            .fold((0, 0u32), |b, (i, &n)| if n > b.1 { (i, n) } else { b });
        ParamEvidence {
            position,
            shape: if count == 0 {
                Shape::Other
            } else {
                Shape::ALL[best]
            },
            share: if values == 0 {
                0.0
            } else {
                f64::from(count) / values as f64
            },
            values,
            by_cardinality: node.words_promoted || Shape::ALL[best].evidence() != Evidence::Strong,
        }
    }

    /// Every learnt template that some path ended at, with its hit count, sorted.
    pub fn templates(&self) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        let mut stack = vec![(0 as NodeId, String::new())];
        while let Some((id, prefix)) = stack.pop() {
            let node = &self.nodes[id as usize];
            if node.hits > 0 {
                let text = if prefix.is_empty() {
                    "/".to_string()
                } else {
                    prefix.clone()
                };
                out.push((text, node.hits));
            }
            for (segment, child) in &node.literals {
                stack.push((*child, format!("{prefix}/{segment}")));
            }
            for (ext, child) in &node.params {
                let name = self.nodes[*child as usize].placeholder();
                stack.push((*child, format!("{prefix}/{}", label(name, ext.as_deref()))));
            }
        }
        out.sort();
        out
    }

    /// Where a segment goes from `node` as learnt so far: its literal child, or the parameter
    /// child that takes values of its shape (`ext` and `shape` are the segment's). The bool says
    /// which: true for the parameter.
    fn route(
        &self,
        node: NodeId,
        segment: &str,
        ext: Option<&str>,
        shape: Shape,
    ) -> Option<(NodeId, bool)> {
        let here = &self.nodes[node as usize];
        if let Ok(i) = here.literals.binary_search_by(|(k, _)| (**k).cmp(segment)) {
            return Some((here.literals[i].1, false));
        }
        // A parameter made of identifiers does not swallow `/users/me` or `/users/search`, and
        // an empty segment is structure, never a value.
        if segment.is_empty() || (shape == Shape::Word && !here.words_promoted) {
            return None;
        }
        let child = here.params.iter().find(|(e, _)| e.as_deref() == ext)?.1;
        Some((child, true))
    }

    fn segment_text(
        &self,
        node: NodeId,
        is_param: bool,
        segment: &str,
        ext: Option<&str>,
    ) -> String {
        if is_param {
            label(self.nodes[node as usize].placeholder(), ext)
        } else {
            segment.to_string()
        }
    }

    fn step(&mut self, node: NodeId, segment: &str) -> Option<(NodeId, String)> {
        let (stem, ext) = split_extension(segment);
        let shape = classify(stem);
        if let Some((child, is_param)) = self.route(node, segment, ext, shape) {
            if !is_param {
                return Some((child, segment.to_string()));
            }
            let node = &mut self.nodes[child as usize];
            node.shapes[shape as usize] += 1;
            return Some((child, label(node.placeholder(), ext)));
        }
        if shape.evidence() == Evidence::Strong {
            let child = self.param_child(node, ext)?;
            self.nodes[child as usize].shapes[shape as usize] += 1;
            return Some((child, label(self.nodes[child as usize].placeholder(), ext)));
        }
        let child = self.alloc()?;
        let literals = &mut self.nodes[node as usize].literals;
        let at = literals
            .binary_search_by(|(k, _)| (**k).cmp(segment))
            .unwrap_err();
        literals.insert(at, (segment.into(), child));
        if self.promote_if_crowded(node) {
            return self.step(node, segment);
        }
        Some((child, segment.to_string()))
    }

    /// Turns a crowded position into a parameter; true if any literal moved.
    fn promote_if_crowded(&mut self, node: NodeId) -> bool {
        let literals = &self.nodes[node as usize].literals;
        // An empty segment (`//`, a trailing `/`) is structure, never a value.
        let is_code = |segment: &str| {
            !segment.is_empty() && classify(split_extension(segment).0) != Shape::Word
        };
        let codes = literals.iter().filter(|(s, _)| is_code(s)).count();
        let moving: Vec<(Box<str>, NodeId)> = if literals.len() > self.limits.word_fanout {
            self.nodes[node as usize].words_promoted = true;
            let (moving, staying) = std::mem::take(&mut self.nodes[node as usize].literals)
                .into_iter()
                .partition(|(s, _)| !s.is_empty());
            self.nodes[node as usize].literals = staying;
            moving
        } else if codes > self.limits.code_fanout {
            let (moving, staying) = std::mem::take(&mut self.nodes[node as usize].literals)
                .into_iter()
                .partition(|(s, _)| is_code(s));
            self.nodes[node as usize].literals = staying;
            moving
        } else {
            return false;
        };
        for (segment, subtree) in moving {
            let (stem, ext) = split_extension(&segment);
            let shape = classify(stem);
            let hits = self.subtree_hits(subtree);
            match self.param_child(node, ext) {
                Some(target) => {
                    self.nodes[target as usize].shapes[shape as usize] +=
                        u32::try_from(hits).unwrap_or(u32::MAX);
                    self.merge(subtree, target);
                }
                None => self.release(subtree),
            }
        }
        true
    }

    fn subtree_hits(&self, id: NodeId) -> u64 {
        let node = &self.nodes[id as usize];
        node.hits
            + node
                .literals
                .iter()
                .map(|(_, c)| self.subtree_hits(*c))
                .sum::<u64>()
            + node
                .params
                .iter()
                .map(|(_, c)| self.subtree_hits(*c))
                .sum::<u64>()
    }

    /// Moves everything learnt under `from` into `into`, then frees `from`.
    fn merge(&mut self, from: NodeId, into: NodeId) {
        let source = std::mem::take(&mut self.nodes[from as usize]);
        self.free_node(from);
        let target = &mut self.nodes[into as usize];
        target.hits += source.hits;
        target.words_promoted |= source.words_promoted;
        for i in 0..SHAPES {
            target.shapes[i] = target.shapes[i].saturating_add(source.shapes[i]);
        }
        for (segment, child) in source.literals {
            let target = &mut self.nodes[into as usize];
            match target.literals.binary_search_by(|(k, _)| k.cmp(&segment)) {
                Ok(i) => {
                    let existing = target.literals[i].1;
                    self.merge(child, existing);
                }
                Err(i) => target.literals.insert(i, (segment, child)),
            }
        }
        for (ext, child) in source.params {
            let target = &mut self.nodes[into as usize];
            match target.params.iter().find(|(e, _)| *e == ext) {
                Some(&(_, existing)) => self.merge(child, existing),
                None => target.params.push((ext, child)),
            }
        }
        self.nodes[into as usize].params.sort();
        self.promote_if_crowded(into);
    }

    fn param_child(&mut self, node: NodeId, ext: Option<&str>) -> Option<NodeId> {
        let here = &self.nodes[node as usize];
        if let Some(&(_, child)) = here.params.iter().find(|(e, _)| e.as_deref() == ext) {
            return Some(child);
        }
        let child = self.alloc()?;
        let params = &mut self.nodes[node as usize].params;
        params.push((ext.map(Into::into), child));
        params.sort();
        Some(child)
    }

    fn alloc(&mut self) -> Option<NodeId> {
        if self.live >= self.limits.max_nodes {
            return None;
        }
        self.generation += 1;
        self.live += 1;
        match self.free.pop() {
            Some(id) => Some(id),
            None => {
                self.nodes.push(Node::default());
                NodeId::try_from(self.nodes.len() - 1).ok()
            }
        }
    }

    fn free_node(&mut self, id: NodeId) {
        self.generation += 1;
        self.nodes[id as usize] = Node::default();
        self.free.push(id);
        self.live -= 1;
    }

    fn release(&mut self, id: NodeId) {
        let node = std::mem::take(&mut self.nodes[id as usize]);
        let children = node.literals.into_iter().map(|(_, c)| c);
        for child in children.chain(node.params.into_iter().map(|(_, c)| c)) {
            self.release(child);
        }
        self.free_node(id);
    }
}

fn label(placeholder: &str, ext: Option<&str>) -> String {
    match ext {
        Some(ext) => format!("{{{placeholder}}}.{ext}"),
        None => format!("{{{placeholder}}}"),
    }
}

fn push_by_shape(template: &mut String, segment: &str) {
    let (stem, ext) = split_extension(segment);
    let shape = classify(stem);
    if shape.evidence() == Evidence::Strong {
        template.push_str(&label(shape.placeholder(), ext));
    } else {
        template.push_str(segment);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn learn(paths: &[String]) -> PathTree {
        let mut tree = PathTree::new(TemplateLimits::default());
        for p in paths {
            tree.observe(p);
        }
        tree
    }

    #[test]
    fn lookup_knows_learnt_routes_only() {
        let mut tree = PathTree::new(TemplateLimits::default());
        for i in 0..20 {
            tree.observe(&format!("/users/{i}/orders"));
        }
        tree.observe("/health");
        let learnt = tree.lookup("/users/999/orders").expect("learnt route");
        assert_eq!(learnt.template, "/users/{id}/orders");
        assert_eq!(learnt.hits, 20);
        assert_eq!(learnt.params.len(), 1);
        assert_eq!(learnt.params[0].position, 1);
        assert_eq!(learnt.params[0].shape, Shape::Integer);
        assert!(!learnt.params[0].by_cardinality);
        assert!((learnt.params[0].share - 1.0).abs() < 1e-9);
        assert!(learnt.confidence() > 0.95, "{}", learnt.confidence());
        // A prefix of a route, an unknown branch and a probe are not routes.
        assert!(tree.lookup("/users/999").is_none());
        assert!(tree.lookup("/wp-admin/setup.php").is_none());
        assert!(tree.lookup("/health/x").is_none());
        let health = tree.lookup("/health").expect("literal route");
        assert!(health.params.is_empty());
        assert!(health.confidence() < learnt.confidence());
    }

    #[test]
    fn confidence_drops_with_mixed_shapes() {
        let mut tree = PathTree::new(TemplateLimits::default());
        for i in 0..40 {
            tree.observe(&format!("/files/{}", 1000 + i));
        }
        let pure = tree.lookup("/files/1").map(|l| l.confidence());
        let mut mixed = PathTree::new(TemplateLimits::default());
        for i in 0..40 {
            if i % 2 == 0 {
                mixed.observe(&format!("/files/{}", 1000 + i));
            } else {
                mixed.observe(&format!("/files/ab{i:02}cd-x{i}"));
            }
        }
        let impure = mixed.lookup("/files/1").expect("learnt");
        assert!(impure.params[0].share < 0.9);
        assert!(impure.confidence() < pure.unwrap_or(0.0));
    }

    fn names(tree: &PathTree) -> Vec<String> {
        tree.templates().into_iter().map(|(t, _)| t).collect()
    }

    #[test]
    fn identifiers_are_parameters_on_first_sight_even_mid_path() {
        let mut tree = PathTree::new(TemplateLimits::default());
        assert_eq!(
            tree.observe("/api/v1/users/123.json"),
            "/api/v1/users/{id}.json"
        );
        assert_eq!(
            tree.observe("/api/v1/users/7/orders.json"),
            "/api/v1/users/{id}/orders.json"
        );
        assert_eq!(
            tree.observe("/files/3f2504e0-4f89-11d3-9a0c-0305e82c3301/meta"),
            "/files/{uuid}/meta"
        );
        assert_eq!(tree.observe("/"), "/");
        assert_eq!(
            names(&tree),
            [
                "/",
                "/api/v1/users/{id}.json",
                "/api/v1/users/{id}/orders.json",
                "/files/{uuid}/meta"
            ]
        );
    }

    #[test]
    fn codes_become_parameters_after_a_few_distinct_values() {
        let paths: Vec<String> = (0..10)
            .map(|i| format!("/api/v1/products/SKU-{:05}.json", i * 7))
            .collect();
        let tree = learn(&paths);
        assert_eq!(names(&tree), ["/api/v1/products/{sku}.json"]);
        assert_eq!(tree.templates()[0].1, 10);
        assert_eq!(
            tree.template_of("/api/v1/products/SKU-99999.json"),
            "/api/v1/products/{sku}.json"
        );
    }

    #[test]
    fn sibling_routes_that_are_words_stay_literal() {
        let routes = ["users", "orders", "products", "carts", "health", "login"];
        let paths: Vec<String> = (0..60)
            .map(|i| format!("/api/{}", routes[i % routes.len()]))
            .collect();
        let tree = learn(&paths);
        let mut want: Vec<String> = routes.iter().map(|r| format!("/api/{r}")).collect();
        want.sort();
        assert_eq!(names(&tree), want);
    }

    #[test]
    fn many_distinct_words_at_one_position_become_a_parameter_with_their_subtrees() {
        let paths: Vec<String> = (0..200)
            .map(|i| {
                format!(
                    "/blog/post-number-{}-about-{}/comments",
                    words(i),
                    words(i * 7)
                )
            })
            .collect();
        let mut tree = learn(&paths);
        assert_eq!(names(&tree), ["/blog/{name}/comments"]);
        assert_eq!(tree.templates()[0].1, 200);
        assert!(tree.len() < 10, "merged subtrees are freed: {}", tree.len());
        // An empty segment is structure: it never joins the parameter.
        assert_eq!(tree.observe("/blog/"), "/blog/");
    }

    #[test]
    fn a_url_spray_cannot_grow_the_tree_past_its_bound() {
        let limits = TemplateLimits {
            max_nodes: 50,
            ..TemplateLimits::default()
        };
        let mut tree = PathTree::new(limits);
        for i in 0..5000 {
            tree.observe(&format!("/{}/{}/{}", words(i), words(i + 1), words(i + 2)));
            assert!(tree.len() <= 50);
        }
        assert!(tree.unlearned() > 0);
        // Unlearned paths are still templated by shape.
        assert_eq!(
            tree.observe("/zzz/yyy/123"),
            tree.template_of("/zzz/yyy/123")
        );
        assert!(tree.observe("/zzz/yyy/123").ends_with("/{id}"));
    }

    #[test]
    fn names_do_not_depend_on_arrival_order() {
        let mut paths: Vec<String> = (0..40).map(|i| format!("/o/{}", 1000 + i)).collect();
        paths.extend((0..5).map(|i| format!("/o/AB{:04}X", i)));
        let forward = names(&learn(&paths));
        paths.reverse();
        assert_eq!(forward, names(&learn(&paths)));
        assert_eq!(forward, ["/o/{id}"]);
    }

    #[test]
    fn a_word_next_to_an_id_parameter_stays_a_route() {
        let mut tree = PathTree::new(TemplateLimits::default());
        tree.observe("/users/1");
        tree.observe("/users/2");
        assert_eq!(tree.observe("/users/me"), "/users/me");
        assert_eq!(tree.observe("/users/3"), "/users/{id}");
        assert_eq!(names(&tree), ["/users/me", "/users/{id}"]);
    }

    proptest::proptest! {
        #[test]
        fn any_paths_keep_the_bound_and_agree_with_template_of(
            paths in proptest::collection::vec("(/[a-zA-Z0-9._@%-]{0,12}){0,40}", 1..200),
        ) {
            let limits = TemplateLimits { max_nodes: 64, code_fanout: 2, word_fanout: 5 };
            let mut tree = PathTree::new(limits);
            for path in &paths {
                let learnt = tree.observe(path);
                proptest::prop_assert!(tree.len() <= 64);
                proptest::prop_assert_eq!(learnt.matches('/').count(), path.matches('/').count().max(1));
                proptest::prop_assert_eq!(tree.template_of(path), learnt);
            }
        }
    }

    /// A deterministic, distinct lowercase word for each number.
    fn words(mut n: usize) -> String {
        let mut s = String::new();
        loop {
            s.push((b'a' + (n % 26) as u8) as char);
            n /= 26;
            if n == 0 {
                break s;
            }
        }
    }
}
