//! Inferring a JSON body's schema from the documents seen, with presence counts.
//!
//! A [`Schema`] is an arena of nodes, one per place in the documents (the root, a property, the
//! items of an array, the values of a map), each counting the values seen there and their JSON
//! types and sniffing string formats on its first [`FORMAT_SAMPLE`] strings.
//! [`Schema::to_json_schema`] exports JSON Schema 2020-12 (OpenAPI 3.1) holding property names,
//! types, formats and counts, never an observed value.
//!
//! Bounded by [`SchemaLimits`]: containers deeper than `max_depth` are not descended, nodes stop
//! at `max_nodes`, keys longer than [`MAX_KEY_BYTES`] are not learnt, and an object place with
//! more than `max_properties` distinct keys is taken for a map keyed by data (ids, names): its
//! properties are folded into one value schema, exported as `additionalProperties`. What is not
//! learnt is counted in [`Schema::dropped`].

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::{Map, Value};

use crate::json::{Doc, Json, View};

/// Bounds of one schema.
#[derive(Clone, Copy, Debug)]
pub struct SchemaLimits {
    /// Container levels learnt (a document of this depth is learnt whole); at most
    /// [`DEPTH_CEILING`].
    pub max_depth: usize,
    /// Distinct keys one object place may have before it is taken for a map.
    pub max_properties: usize,
    /// Nodes (places) one schema may hold; at least the root.
    pub max_nodes: usize,
}

impl Default for SchemaLimits {
    fn default() -> Self {
        SchemaLimits {
            max_depth: 16,
            max_properties: 128,
            max_nodes: 1024,
        }
    }
}

/// Deepest nesting learnt or scanned whatever the limits say: bounds the recursion. serde_json's
/// parser refuses deeper documents anyway.
pub const DEPTH_CEILING: usize = 128;
/// Longer keys are data, not names, and would make memory unbounded.
pub const MAX_KEY_BYTES: usize = 128;
/// Strings checked per node for a format; later ones are not looked at.
pub const FORMAT_SAMPLE: u32 = 32;
/// Leaves [`for_each_leaf`] reports per document.
pub const LEAF_BUDGET: usize = 4096;
/// Objects a place must have seen before any of its properties is called required.
pub const MIN_REQUIRED_EVIDENCE: u64 = 3;

type NodeId = u32;
const ROOT: NodeId = 0;

const NULL: u8 = 1;
const BOOLEAN: u8 = 1 << 1;
const INTEGER: u8 = 1 << 2;
const NUMBER: u8 = 1 << 3;
const STRING: u8 = 1 << 4;
const ARRAY: u8 = 1 << 5;
const OBJECT: u8 = 1 << 6;
const SCALARS: u8 = NULL | BOOLEAN | INTEGER | NUMBER | STRING;
/// In alphabetical order, the order of `"type"` lists.
const TYPE_NAMES: [(u8, &str); 7] = [
    (ARRAY, "array"),
    (BOOLEAN, "boolean"),
    (INTEGER, "integer"),
    (NULL, "null"),
    (NUMBER, "number"),
    (OBJECT, "object"),
    (STRING, "string"),
];

fn kind_of<J: Json>(value: &View<'_, J>) -> u8 {
    match value {
        View::Null => NULL,
        View::Bool => BOOLEAN,
        View::Number(n) if n.is_f64() => NUMBER,
        View::Number(_) => INTEGER,
        View::String(_) => STRING,
        View::Array(_) => ARRAY,
        View::Object { .. } => OBJECT,
    }
}

/// Sorted type names; an integer place that also saw fractions is a number.
fn type_names(kinds: u8) -> Vec<&'static str> {
    TYPE_NAMES
        .iter()
        .filter(|&&(bit, _)| kinds & bit != 0 && !(bit == INTEGER && kinds & NUMBER != 0))
        .map(|&(_, name)| name)
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    DateTime,
    Date,
    Uuid,
    Email,
    Ipv4,
    Ipv6,
    Uri,
}

impl Format {
    /// Precedence when several survive (none of these overlap today).
    const ALL: [Format; 7] = [
        Format::DateTime,
        Format::Date,
        Format::Uuid,
        Format::Email,
        Format::Ipv4,
        Format::Ipv6,
        Format::Uri,
    ];

    fn bit(self) -> u8 {
        1 << self as u8
    }

    fn name(self) -> &'static str {
        match self {
            Format::DateTime => "date-time",
            Format::Date => "date",
            Format::Uuid => "uuid",
            Format::Email => "email",
            Format::Ipv4 => "ipv4",
            Format::Ipv6 => "ipv6",
            Format::Uri => "uri",
        }
    }

    fn matches(self, s: &str) -> bool {
        match self {
            Format::DateTime => is_date_time(s.as_bytes()),
            Format::Date => is_full_date(s.as_bytes()),
            Format::Uuid => is_uuid(s.as_bytes()),
            Format::Email => is_email(s),
            Format::Ipv4 => s.len() <= 15 && s.parse::<Ipv4Addr>().is_ok(),
            Format::Ipv6 => s.len() <= 45 && s.contains(':') && s.parse::<Ipv6Addr>().is_ok(),
            Format::Uri => is_http_uri(s.as_bytes()),
        }
    }
}

/// The formats every string sampled at a node matched.
#[derive(Clone, Copy, Debug)]
struct FormatSniff {
    candidates: u8,
    sampled: u32,
}

impl Default for FormatSniff {
    fn default() -> Self {
        FormatSniff {
            candidates: (1 << Format::ALL.len()) - 1,
            sampled: 0,
        }
    }
}

impl FormatSniff {
    /// Whether `s` ruled a format out.
    fn sniff(&mut self, s: &str) -> bool {
        if self.sampled >= FORMAT_SAMPLE || self.candidates == 0 {
            return false;
        }
        self.sampled += 1;
        let before = self.candidates;
        for format in Format::ALL {
            if self.candidates & format.bit() != 0 && !format.matches(s) {
                self.candidates &= !format.bit();
            }
        }
        self.candidates != before
    }

    fn merge(&mut self, other: &FormatSniff) {
        self.candidates &= other.candidates;
        self.sampled = self
            .sampled
            .saturating_add(other.sampled)
            .min(FORMAT_SAMPLE);
    }

    fn format(&self) -> Option<Format> {
        if self.sampled == 0 {
            return None;
        }
        Format::ALL
            .into_iter()
            .find(|f| self.candidates & f.bit() != 0)
    }
}

/// One place in the documents.
#[derive(Clone, Debug, Default)]
struct Node {
    /// Values seen here; for a property, the objects that had it.
    seen: u64,
    kinds: u8,
    /// Objects seen here: the denominator of "required".
    objects: u64,
    /// Sorted by key: deterministic output and binary search.
    properties: Vec<(Box<str>, NodeId)>,
    /// Taken for a map keyed by data: every key's value goes to `values`.
    is_map: bool,
    values: Option<NodeId>,
    items: Option<NodeId>,
    formats: FormatSniff,
}

impl Node {
    fn has_children(&self) -> bool {
        !self.properties.is_empty() || self.values.is_some() || self.items.is_some()
    }
}

/// What one document brought.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Observation {
    /// Properties never seen before in this schema (0 on the first document).
    pub new_fields: u32,
    /// Nesting depth of the document, as [`depth`] counts it.
    pub depth: u32,
    /// Part of the document was not learnt, or an object place turned into a map.
    pub truncated: bool,
}

/// A leaf place of the schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldInfo {
    /// `user.email`, `items[].price`, `[]` for the items of a root array, `*` for the values of
    /// a map (`prices.*`), empty for a scalar root.
    pub path: String,
    pub types: Vec<&'static str>,
    pub seen: u64,
}

/// The learnt schema of one body (one endpoint, one direction).
#[derive(Clone, Debug)]
pub struct Schema {
    limits: SchemaLimits,
    nodes: Vec<Node>,
    /// Slots of nodes folded into others, reused first.
    free: Vec<NodeId>,
    documents: u64,
    not_json: u64,
    dropped: u64,
    /// Times a document taught this schema something: a new place, a JSON type new to a
    /// place, a string format ruled out, an object place turned into a map.
    changes: u64,
}

/// Per-document bookkeeping of a walk.
#[derive(Default)]
struct Walk {
    count_new: bool,
    new_fields: u32,
    depth: u32,
    truncated: bool,
}

impl Schema {
    pub fn new(limits: SchemaLimits) -> Self {
        Schema {
            limits,
            nodes: vec![Node::default()],
            free: Vec::new(),
            documents: 0,
            not_json: 0,
            dropped: 0,
            changes: 0,
        }
    }

    /// Parses `body` as JSON and learns it; `None` (counted in [`Schema::not_json`]) when it is
    /// not JSON, including documents nested deeper than serde_json's limit of 128.
    pub fn observe_bytes(&mut self, body: &[u8]) -> Option<Observation> {
        match Doc::parse(body) {
            Ok(doc) => Some(self.observe(&doc)),
            Err(_) => {
                self.not_json += 1;
                None
            }
        }
    }

    pub fn observe<J: Json>(&mut self, doc: &J) -> Observation {
        let mut walk = Walk {
            count_new: self.documents > 0,
            ..Walk::default()
        };
        self.documents += 1;
        self.learn(ROOT, doc, 0, &mut walk);
        Observation {
            new_fields: walk.new_fields,
            depth: walk.depth,
            truncated: walk.truncated,
        }
    }

    /// Learns `other`'s documents as if they had been observed here, within this schema's
    /// limits (what does not fit is counted in [`Schema::dropped`]).
    pub fn merge(&mut self, other: &Schema) {
        self.documents += other.documents;
        self.not_json += other.not_json;
        self.dropped += other.dropped;
        self.absorb(&other.nodes, ROOT, ROOT, 0);
    }

    pub fn documents(&self) -> u64 {
        self.documents
    }

    pub fn not_json(&self) -> u64 {
        self.not_json
    }

    /// Values and property names not learnt because of the limits: a subtree past
    /// `max_depth` or past `max_nodes`, a key past [`MAX_KEY_BYTES`], each name forgotten when
    /// an object place turned into a map. Later keys of a map are learnt as its values and
    /// not counted.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// How many times observing taught this schema something (see the field); it only grows,
    /// so a caller can tell whether a document was news.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// Nodes in use, at most `max_nodes`.
    pub fn node_count(&self) -> usize {
        self.nodes.len() - self.free.len()
    }

    /// JSON Schema of the documents seen. Every node has `"x-mirador-seen"` (values seen there)
    /// and `"type"` (a sorted list when several; integer with number is number); strings have
    /// `"format"` when each of the first [`FORMAT_SAMPLE`] seen matched it; objects have
    /// `"properties"` and `"required"`, maps `"additionalProperties"` (their values' schema, or
    /// `true` when the node budget left none); arrays `"items"` unless every one was empty.
    ///
    /// A property is required when its object place has seen at least
    /// [`MIN_REQUIRED_EVIDENCE`] objects and the property was in at least `required_ratio` of
    /// them (clamped to [0, 1]; NaN means 1).
    pub fn to_json_schema(&self, required_ratio: f64) -> Value {
        let ratio = if required_ratio.is_nan() {
            1.0
        } else {
            required_ratio.clamp(0.0, 1.0)
        };
        self.export(ROOT, ratio)
    }

    /// Every leaf place (one that saw a scalar, or a container with nothing learnt below), in
    /// depth-first order, properties sorted.
    pub fn fields(&self) -> Vec<FieldInfo> {
        let mut out = Vec::new();
        self.collect_fields(ROOT, &mut String::new(), &mut out);
        out
    }

    fn max_depth(&self) -> usize {
        self.limits.max_depth.min(DEPTH_CEILING)
    }

    fn alloc(&mut self) -> Option<NodeId> {
        if self.node_count() >= self.limits.max_nodes.max(1) {
            return None;
        }
        if let Some(id) = self.free.pop() {
            return Some(id);
        }
        let id = NodeId::try_from(self.nodes.len()).ok()?;
        self.nodes.push(Node::default());
        Some(id)
    }

    fn node(&mut self, id: NodeId) -> &mut Node {
        &mut self.nodes[id as usize]
    }

    /// `level` is the number of containers around `value`.
    fn learn<J: Json>(&mut self, id: NodeId, value: &J, level: usize, walk: &mut Walk) {
        let view = value.view();
        let node = &mut self.nodes[id as usize];
        node.seen = node.seen.saturating_add(1);
        let kinds = node.kinds | kind_of(&view);
        let new_kind = kinds != node.kinds;
        node.kinds = kinds;
        // A value that brings a new type and rules out a format is one change.
        self.changes += u64::from(new_kind);
        let empty = match &view {
            View::String(s) => {
                let narrowed = node.formats.sniff(s);
                self.changes += u64::from(narrowed && !new_kind);
                return;
            }
            View::Array(items) => items.is_empty(),
            View::Object { len, .. } => {
                node.objects = node.objects.saturating_add(1);
                *len == 0
            }
            _ => return,
        };
        if level >= self.max_depth() {
            walk.depth = walk
                .depth
                .max(level_u32(level).saturating_add(depth(value)));
            if !empty {
                self.dropped += 1;
                walk.truncated = true;
            }
            return;
        }
        walk.depth = walk.depth.max(level_u32(level + 1));
        match view {
            View::Array(items) if !empty => match self.items_of(id, walk) {
                Some(items_id) => {
                    for item in items {
                        self.learn(items_id, item, level + 1, walk);
                    }
                }
                None => {
                    walk.depth = walk
                        .depth
                        .max(level_u32(level).saturating_add(depth(value)))
                }
            },
            View::Object { entries, .. } => {
                for (key, value) in entries {
                    match self.child(id, key, level, walk) {
                        Some(child) => self.learn(child, value, level + 1, walk),
                        None => {
                            let below = level_u32(level + 1).saturating_add(depth(value));
                            walk.depth = walk.depth.max(below);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn items_of(&mut self, id: NodeId, walk: &mut Walk) -> Option<NodeId> {
        if let Some(items) = self.node(id).items {
            return Some(items);
        }
        let items = self.alloc_or_drop(walk)?;
        self.node(id).items = Some(items);
        Some(items)
    }

    fn values_of(&mut self, id: NodeId, walk: &mut Walk) -> Option<NodeId> {
        if let Some(values) = self.node(id).values {
            return Some(values);
        }
        let values = self.alloc_or_drop(walk)?;
        self.node(id).values = Some(values);
        Some(values)
    }

    fn alloc_or_drop(&mut self, walk: &mut Walk) -> Option<NodeId> {
        let id = self.alloc();
        match id {
            Some(_) => self.changes += 1,
            None => {
                self.dropped += 1;
                walk.truncated = true;
            }
        }
        id
    }

    /// The node of `key` in object place `id` (at `level`), made if needed.
    fn child(&mut self, id: NodeId, key: &str, level: usize, walk: &mut Walk) -> Option<NodeId> {
        if self.node(id).is_map {
            return self.values_of(id, walk);
        }
        let node = &self.nodes[id as usize];
        let pos = match node.properties.binary_search_by(|(k, _)| (**k).cmp(key)) {
            Ok(i) => return Some(node.properties[i].1),
            Err(pos) => pos,
        };
        if key.len() > MAX_KEY_BYTES {
            self.dropped += 1;
            walk.truncated = true;
            return None;
        }
        if node.properties.len() >= self.limits.max_properties {
            self.make_map(id, level);
            self.dropped += 1;
            walk.truncated = true;
            return self.values_of(id, walk);
        }
        let child = self.alloc_or_drop(walk)?;
        self.node(id).properties.insert(pos, (key.into(), child));
        if walk.count_new {
            walk.new_fields = walk.new_fields.saturating_add(1);
        }
        Some(child)
    }

    /// Turns object place `id` into a map: its properties' schemas are merged into one.
    fn make_map(&mut self, id: NodeId, level: usize) {
        let properties = std::mem::take(&mut self.node(id).properties);
        self.node(id).is_map = true;
        self.dropped += properties.len() as u64;
        self.changes += 1;
        let mut walk = Walk::default();
        for (_, child) in properties {
            // Detached first, so its slots are free for the merged schema.
            let subtree = self.detach(child);
            if let Some(values) = self.values_of(id, &mut walk) {
                self.absorb(&subtree, ROOT, values, level + 1);
            }
        }
    }

    /// Removes the subtree at `id` from the arena, as an arena of its own rooted at 0.
    fn detach(&mut self, id: NodeId) -> Vec<Node> {
        let mut out = Vec::new();
        self.detach_into(id, &mut out);
        out
    }

    fn detach_into(&mut self, id: NodeId, out: &mut Vec<Node>) -> NodeId {
        let mut node = std::mem::take(self.node(id));
        self.free.push(id);
        let new_id = out.len() as NodeId;
        out.push(Node::default());
        node.items = node.items.map(|c| self.detach_into(c, out));
        node.values = node.values.map(|c| self.detach_into(c, out));
        for (_, c) in &mut node.properties {
            *c = self.detach_into(*c, out);
        }
        out[new_id as usize] = node;
        new_id
    }

    /// Adds node `src_id` of arena `src`, with its subtree, into node `id` at `level`.
    fn absorb(&mut self, src: &[Node], src_id: NodeId, id: NodeId, level: usize) {
        let from = &src[src_id as usize];
        let node = self.node(id);
        node.seen = node.seen.saturating_add(from.seen);
        node.kinds |= from.kinds;
        node.objects = node.objects.saturating_add(from.objects);
        node.formats.merge(&from.formats);
        if !from.has_children() && !from.is_map {
            return;
        }
        if level >= self.max_depth() {
            self.dropped += 1;
            return;
        }
        let mut walk = Walk::default();
        if let Some(from_items) = from.items {
            if let Some(items) = self.items_of(id, &mut walk) {
                self.absorb(src, from_items, items, level + 1);
            }
        }
        if from.is_map && !self.node(id).is_map {
            self.make_map(id, level);
        }
        if let Some(from_values) = from.values {
            if let Some(values) = self.values_of(id, &mut walk) {
                self.absorb(src, from_values, values, level + 1);
            }
        }
        for (key, from_child) in &from.properties {
            if let Some(child) = self.child(id, key, level, &mut walk) {
                self.absorb(src, *from_child, child, level + 1);
            }
        }
    }

    fn export(&self, id: NodeId, ratio: f64) -> Value {
        let node = &self.nodes[id as usize];
        let mut out = Map::new();
        let types = type_names(node.kinds);
        match types.as_slice() {
            [] => {}
            [one] => {
                out.insert("type".into(), (*one).into());
            }
            _ => {
                out.insert("type".into(), types.into());
            }
        }
        if node.kinds & STRING != 0 {
            if let Some(format) = node.formats.format() {
                out.insert("format".into(), format.name().into());
            }
        }
        if !node.properties.is_empty() {
            let mut properties = Map::new();
            let mut required = Vec::new();
            for (key, child) in &node.properties {
                properties.insert(key.to_string(), self.export(*child, ratio));
                let present = self.nodes[*child as usize].seen;
                if node.objects >= MIN_REQUIRED_EVIDENCE
                    && present as f64 >= ratio * node.objects as f64 - 1e-9
                {
                    required.push(Value::from(&**key));
                }
            }
            out.insert("properties".into(), properties.into());
            if !required.is_empty() {
                out.insert("required".into(), required.into());
            }
        }
        if node.is_map {
            let values = node
                .values
                .map_or(Value::Bool(true), |v| self.export(v, ratio));
            out.insert("additionalProperties".into(), values);
        }
        if let Some(items) = node.items {
            out.insert("items".into(), self.export(items, ratio));
        }
        out.insert("x-mirador-seen".into(), node.seen.into());
        Value::Object(out)
    }

    fn collect_fields(&self, id: NodeId, path: &mut String, out: &mut Vec<FieldInfo>) {
        let node = &self.nodes[id as usize];
        if node.kinds & SCALARS != 0 || !node.has_children() {
            out.push(FieldInfo {
                path: path.clone(),
                types: type_names(node.kinds),
                seen: node.seen,
            });
        }
        let len = path.len();
        for (key, child) in &node.properties {
            push_key(path, key);
            self.collect_fields(*child, path, out);
            path.truncate(len);
        }
        if let Some(values) = node.values {
            push_key(path, "*");
            self.collect_fields(values, path, out);
            path.truncate(len);
        }
        if let Some(items) = node.items {
            path.push_str("[]");
            self.collect_fields(items, path, out);
            path.truncate(len);
        }
    }
}

fn push_key(path: &mut String, key: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
}

fn level_u32(level: usize) -> u32 {
    u32::try_from(level).unwrap_or(u32::MAX)
}

/// Calls `f(path, value)` for every string and number leaf of `doc` (a number as its JSON
/// text), depth-first in key order, paths spelt as in [`Schema::fields`] but with a map's real
/// keys. Stops after [`LEAF_BUDGET`] leaves; containers deeper than `max_depth` (at most
/// [`DEPTH_CEILING`]) are not entered.
pub fn for_each_leaf<J: Json>(doc: &J, max_depth: usize, f: &mut dyn FnMut(&str, &str)) {
    let mut scan = LeafScan {
        path: String::new(),
        number: String::new(),
        budget: LEAF_BUDGET,
        max_depth: max_depth.min(DEPTH_CEILING),
        f,
    };
    scan.visit(doc, 0);
}

struct LeafScan<'a> {
    path: String,
    number: String,
    budget: usize,
    max_depth: usize,
    f: &'a mut dyn FnMut(&str, &str),
}

impl LeafScan<'_> {
    fn visit<J: Json>(&mut self, value: &J, level: usize) {
        if self.budget == 0 {
            return;
        }
        match value.view() {
            View::String(s) => {
                self.budget -= 1;
                (self.f)(&self.path, s);
            }
            View::Number(n) => {
                self.budget -= 1;
                // serde_json spells integers with itoa too; `write!` only for fractions.
                let mut digits = itoa::Buffer::new();
                let text = if let Some(u) = n.as_u64() {
                    digits.format(u)
                } else if let Some(i) = n.as_i64() {
                    digits.format(i)
                } else {
                    self.number.clear();
                    let _ = write!(self.number, "{n}");
                    &self.number
                };
                (self.f)(&self.path, text);
            }
            View::Array(items) if level < self.max_depth => {
                let len = self.path.len();
                self.path.push_str("[]");
                for item in items {
                    self.visit(item, level + 1);
                    if self.budget == 0 {
                        break;
                    }
                }
                self.path.truncate(len);
            }
            View::Object { entries, .. } if level < self.max_depth => {
                let len = self.path.len();
                for (key, value) in entries {
                    push_key(&mut self.path, key);
                    self.visit(value, level + 1);
                    self.path.truncate(len);
                    if self.budget == 0 {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
}

/// Nesting depth of a document: containers on the longest path (a scalar is 0, `[]` and
/// `{"a": 1}` are 1). Iterative, so any depth is safe.
pub fn depth<J: Json>(doc: &J) -> u32 {
    enum Children<'a, J: Json + 'a> {
        Items(std::slice::Iter<'a, J>),
        Entries(J::Entries<'a>),
    }
    fn children<J: Json>(value: &J) -> Option<Children<'_, J>> {
        match value.view() {
            View::Array(items) => Some(Children::Items(items.iter())),
            View::Object { entries, .. } => Some(Children::Entries(entries)),
            _ => None,
        }
    }
    let mut stack: Vec<Children<'_, J>> = children(doc).into_iter().collect();
    let mut deepest = stack.len();
    while let Some(top) = stack.last_mut() {
        let next = match top {
            Children::Items(it) => it.next(),
            Children::Entries(it) => it.next().map(|(_, v)| v),
        };
        match next {
            None => {
                stack.pop();
            }
            Some(value) => {
                if let Some(c) = children(value) {
                    stack.push(c);
                    deepest = deepest.max(stack.len());
                }
            }
        }
    }
    level_u32(deepest)
}

fn number(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
}

/// RFC 3339 `full-date`: `YYYY-MM-DD`, a real day of that month.
fn is_full_date(b: &[u8]) -> bool {
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let (Some(year), Some(month), Some(day)) = (number(&b[..4]), number(&b[5..7]), number(&b[8..]))
    else {
        return false;
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

/// RFC 3339 `date-time`: `2024-03-01T12:30:00Z`, fraction and numeric offset optional.
fn is_date_time(b: &[u8]) -> bool {
    if b.len() < 20 || !is_full_date(&b[..10]) || !matches!(b[10], b'T' | b't') {
        return false;
    }
    let time = &b[11..];
    if time[2] != b':' || time[5] != b':' {
        return false;
    }
    let in_range = |digits: &[u8], max: u32| number(digits).is_some_and(|n| n <= max);
    if !(in_range(&time[..2], 23) && in_range(&time[3..5], 59) && in_range(&time[6..8], 60)) {
        return false;
    }
    let mut rest = &time[8..];
    if let Some(fraction) = rest.strip_prefix(b".") {
        let digits = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return false;
        }
        rest = &fraction[digits..];
    }
    match rest {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h @ .., b':', m1, m2] if h.len() == 2 => {
            in_range(h, 23) && in_range(&[*m1, *m2], 59)
        }
        _ => false,
    }
}

/// `8-4-4-4-12` hex digits, any version, either case.
fn is_uuid(b: &[u8]) -> bool {
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// `local@domain.tld` with a dot-atom local part; quoted local parts and address literals are
/// left out on purpose.
fn is_email(s: &str) -> bool {
    if s.len() > 254 {
        return false;
    }
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let atext = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&c);
    !local.is_empty()
        && local.len() <= 64
        && local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.bytes().all(atext))
        && is_domain(domain)
}

/// Two labels or more, the last with a letter (so not an IPv4 address).
fn is_domain(domain: &str) -> bool {
    let mut labels = 0;
    let mut has_letter = false;
    for label in domain.split('.') {
        let b = label.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 63
            && b[0] != b'-'
            && b[b.len() - 1] != b'-'
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-');
        if !ok {
            return false;
        }
        labels += 1;
        has_letter = b.iter().any(u8::is_ascii_alphabetic);
    }
    labels >= 2 && domain.len() <= 253 && has_letter
}

/// An absolute `http`/`https` URI with a host, ASCII URI characters only, at most 8 KiB.
fn is_http_uri(b: &[u8]) -> bool {
    if b.len() > 8192 {
        return false;
    }
    let rest = if b.len() > 8 && b[..8].eq_ignore_ascii_case(b"https://") {
        &b[8..]
    } else if b.len() > 7 && b[..7].eq_ignore_ascii_case(b"http://") {
        &b[7..]
    } else {
        return false;
    };
    let authority = rest
        .iter()
        .position(|c| matches!(c, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    authority > 0
        && rest
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=%".contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn learnt(docs: &[Value]) -> Schema {
        let mut schema = Schema::new(SchemaLimits::default());
        for doc in docs {
            schema.observe(doc);
        }
        schema
    }

    fn at<'a>(schema: &'a Value, pointer: &str) -> &'a Value {
        schema
            .pointer(pointer)
            .unwrap_or_else(|| panic!("no {pointer} in {schema:#}"))
    }

    #[test]
    fn nested_objects_and_arrays() {
        let doc = json!({
            "user": {"id": 7, "email": "a@example.com", "tags": ["x", "y"]},
            "items": [{"price": 1.5, "sku": "A1"}, {"price": 2, "sku": "B2", "note": null}],
            "empty": [],
        });
        let schema = learnt(&[doc.clone(), doc.clone(), doc]);
        let out = schema.to_json_schema(0.99);
        assert_eq!(at(&out, "/type"), "object");
        assert_eq!(at(&out, "/x-mirador-seen"), 3);
        assert_eq!(at(&out, "/properties/user/properties/id/type"), "integer");
        assert_eq!(
            at(&out, "/properties/user/properties/tags/items/type"),
            "string"
        );
        assert_eq!(
            at(
                &out,
                "/properties/user/properties/tags/items/x-mirador-seen"
            ),
            6
        );
        assert_eq!(
            at(&out, "/properties/items/items/properties/price/type"),
            "number"
        );
        assert_eq!(
            at(&out, "/properties/items/items/required"),
            &json!(["price", "sku"])
        );
        assert_eq!(
            at(&out, "/properties/items/items/properties/note/type"),
            "null"
        );
        assert_eq!(at(&out, "/properties/empty/type"), "array");
        assert!(out.pointer("/properties/empty/items").is_none());
        assert_eq!(at(&out, "/required"), &json!(["empty", "items", "user"]));

        let fields: Vec<(String, Vec<&str>, u64)> = schema
            .fields()
            .into_iter()
            .map(|f| (f.path, f.types, f.seen))
            .collect();
        let expected = [
            ("empty", vec!["array"], 3),
            ("items[].note", vec!["null"], 3),
            ("items[].price", vec!["number"], 6),
            ("items[].sku", vec!["string"], 6),
            ("user.email", vec!["string"], 3),
            ("user.id", vec!["integer"], 3),
            ("user.tags[]", vec!["string"], 6),
        ];
        let expected: Vec<(String, Vec<&str>, u64)> = expected
            .into_iter()
            .map(|(p, t, n)| (p.to_string(), t, n))
            .collect();
        assert_eq!(fields, expected);
    }

    #[test]
    fn required_by_frequency() {
        let docs: Vec<Value> = (0..100)
            .map(|i| {
                if i % 2 == 0 {
                    json!({"id": i, "half": true})
                } else {
                    json!({"id": i})
                }
            })
            .collect();
        let out = learnt(&docs).to_json_schema(0.99);
        assert_eq!(at(&out, "/required"), &json!(["id"]));
        assert_eq!(at(&out, "/properties/half/x-mirador-seen"), 50);
        assert_eq!(
            learnt(&docs).to_json_schema(0.5)["required"],
            json!(["half", "id"])
        );

        // 99 of 100 passes 0.99; too little evidence makes nothing required.
        let mut docs: Vec<Value> = (0..99).map(|_| json!({"a": 1})).collect();
        docs.push(json!({}));
        assert_eq!(learnt(&docs).to_json_schema(0.99)["required"], json!(["a"]));
        let two = learnt(&[json!({"a": 1}), json!({"a": 2})]).to_json_schema(0.99);
        assert!(two.get("required").is_none());
    }

    #[test]
    fn type_unions_are_sorted_and_numbers_absorb_integers() {
        let docs = [
            json!({"a": 1, "b": 1}),
            json!({"a": null, "b": 2.5}),
            json!({"a": 3, "b": 4}),
        ];
        let out = learnt(&docs).to_json_schema(0.99);
        assert_eq!(at(&out, "/properties/a/type"), &json!(["integer", "null"]));
        assert_eq!(at(&out, "/properties/b/type"), "number");
        let mixed = learnt(&[json!("s"), json!([1]), json!(true), json!({}), json!(null)]);
        assert_eq!(
            mixed.to_json_schema(0.99)["type"],
            json!(["array", "boolean", "null", "object", "string"])
        );
    }

    #[test]
    fn formats_detected_when_every_value_matches() {
        let docs: Vec<Value> = (0..10)
            .map(|i| {
                json!({
                    "at": format!("2024-03-{:02}T12:30:0{}.25+02:00", i + 1, i % 10),
                    "day": format!("2024-02-{:02}", 20 + i % 10),
                    "email": format!("user.{i}+tag@mail.example.org"),
                    "id": format!("3f2504e0-4f89-11d3-9a0c-0305e82c33{i:02}"),
                    "v4": format!("10.0.0.{i}"),
                    "v6": format!("2001:db8::{i:x}"),
                    "link": format!("https://example.com/a/{i}?q=1#x"),
                    "name": format!("name {i}"),
                    "count": i,
                })
            })
            .collect();
        let out = learnt(&docs).to_json_schema(0.99);
        for (field, format) in [
            ("at", "date-time"),
            ("day", "date"),
            ("email", "email"),
            ("id", "uuid"),
            ("v4", "ipv4"),
            ("v6", "ipv6"),
            ("link", "uri"),
        ] {
            assert_eq!(
                at(&out, &format!("/properties/{field}/format")),
                format,
                "{field}"
            );
        }
        assert!(out.pointer("/properties/name/format").is_none());
        assert!(out.pointer("/properties/count/format").is_none());

        let mut docs = docs;
        docs.insert(3, json!({"email": "not an email"}));
        let out = learnt(&docs).to_json_schema(0.99);
        assert!(out.pointer("/properties/email/format").is_none());
        assert_eq!(at(&out, "/properties/id/format"), "uuid");
    }

    #[test]
    fn format_validators() {
        for good in ["2024-02-29T00:00:00Z", "1999-12-31t23:59:60.123456-11:30"] {
            assert!(is_date_time(good.as_bytes()), "{good}");
        }
        for bad in [
            "2023-02-29T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00",
            "2024-01-01 00:00:00Z",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00+0100",
            "2024-01-01T00:00:00+01:60",
        ] {
            assert!(!is_date_time(bad.as_bytes()), "{bad}");
        }
        assert!(is_full_date(b"2000-02-29") && !is_full_date(b"1900-02-29"));
        assert!(!is_full_date(b"2024-13-01") && !is_full_date(b"2024-1-01"));
        for bad in [
            "a@b",
            "@b.com",
            "a@@b.com",
            "a..b@c.com",
            "a@-b.com",
            "a@1.2.3.4",
            "a b@c.com",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
        assert!(is_email("first.o'last@sub.example.co.uk"));
        assert!(!Format::Ipv4.matches("01.2.3.4") && !Format::Ipv4.matches("256.1.1.1"));
        assert!(Format::Ipv6.matches("::ffff:10.0.0.1") && !Format::Ipv6.matches("1::2::3"));
        assert!(is_http_uri(b"HTTP://h") && !is_http_uri(b"https://") && !is_http_uri(b"ftp://h"));
        assert!(!is_http_uri(b"https://a b") && !is_http_uri(b"https:///path"));
        assert!(!is_uuid(b"3f2504e0-4f89-11d3-9a0c-0305e82c330g"));
    }

    #[test]
    fn new_fields_counts_properties_never_seen() {
        let mut schema = Schema::new(SchemaLimits::default());
        let first = schema.observe(&json!({"a": 1, "b": {"c": 2}}));
        assert_eq!(
            first,
            Observation {
                new_fields: 0,
                depth: 2,
                truncated: false
            }
        );
        let second = schema.observe(&json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [{"f": 1}]}));
        assert_eq!(
            second,
            Observation {
                new_fields: 3,
                depth: 3,
                truncated: false
            }
        );
        assert_eq!(schema.observe(&json!({"e": []})).new_fields, 0);
    }

    #[test]
    fn a_huge_object_becomes_a_map() {
        let wide: Map<String, Value> = (0..10_000)
            .map(|i| (format!("id{i:05}"), json!({"name": "n", "score": i})))
            .collect();
        let mut schema = Schema::new(SchemaLimits::default());
        let obs = schema.observe(&json!({"users": wide, "total": 10_000}));
        assert!(obs.truncated);
        assert_eq!(obs.depth, 3);
        assert!(schema.node_count() <= 1024);
        assert_eq!(schema.dropped(), 129);
        let out = schema.to_json_schema(0.99);
        let users = at(&out, "/properties/users");
        assert!(users.get("properties").is_none());
        assert_eq!(at(users, "/additionalProperties/x-mirador-seen"), 10_000);
        assert_eq!(
            at(users, "/additionalProperties/required"),
            &json!(["name", "score"])
        );
        assert!(!out.to_string().contains("id0"));

        let again = schema.observe(&json!({"users": {"someone": {"name": "x", "score": 1}}}));
        assert_eq!(
            again,
            Observation {
                new_fields: 0,
                depth: 3,
                truncated: false
            }
        );
        let paths: Vec<String> = schema.fields().into_iter().map(|f| f.path).collect();
        assert_eq!(paths, ["total", "users.*.name", "users.*.score"]);
    }

    #[test]
    fn deep_documents_stop_at_max_depth() {
        let mut doc = json!("bottom");
        for i in 0..1000 {
            doc = if i % 2 == 0 {
                json!([doc])
            } else {
                json!({ "k": doc })
            };
        }
        assert_eq!(depth(&doc), 1000);
        let mut schema = Schema::new(SchemaLimits::default());
        let obs = schema.observe(&doc);
        assert_eq!(
            obs,
            Observation {
                new_fields: 0,
                depth: 1000,
                truncated: true
            }
        );
        assert_eq!(schema.dropped(), 1);
        assert_eq!(schema.node_count(), 17);
        let mut leaves = 0;
        for_each_leaf(&doc, usize::MAX, &mut |_, _| leaves += 1);
        assert_eq!(leaves, 0, "past the depth ceiling");
        let json = serde_json::to_string(&schema.to_json_schema(0.99)).unwrap();
        assert!(!json.contains("bottom"));

        let mut tiny = Schema::new(SchemaLimits {
            max_depth: 1,
            max_properties: 2,
            max_nodes: 3,
        });
        let obs = tiny.observe(&json!({"a": {"x": 1}, "b": 2, "c": 3}));
        assert!(obs.truncated);
        assert_eq!(tiny.node_count(), 2, "a and b folded into the map's values");
        assert_eq!(tiny.dropped(), 4, "a's content, the names a and b, and c");
    }

    #[test]
    fn node_budget_drops_what_does_not_fit() {
        let limits = SchemaLimits {
            max_depth: 16,
            max_properties: 128,
            max_nodes: 4,
        };
        let mut schema = Schema::new(limits);
        let obs = schema.observe(&json!({"a": 1, "b": 2, "c": 3, "d": 4, "e": [1]}));
        assert!(obs.truncated);
        assert_eq!(schema.node_count(), 4);
        assert_eq!(schema.dropped(), 2);
        let keys: Vec<String> = schema.fields().into_iter().map(|f| f.path).collect();
        assert_eq!(keys, ["a", "b", "c"]);
    }

    #[test]
    fn long_keys_are_not_learnt() {
        let key = "k".repeat(MAX_KEY_BYTES + 1);
        let mut schema = Schema::new(SchemaLimits::default());
        let obs = schema.observe(&json!({ key.clone(): 1, "short": 2 }));
        assert!(obs.truncated);
        assert_eq!(schema.dropped(), 1);
        assert!(!schema.to_json_schema(0.99).to_string().contains(&key));
    }

    #[test]
    fn bodies_learn_what_their_parsed_values_teach() {
        let bodies: [&[u8]; 4] = [
            br#"{"id": 1, "tags": ["a", "b"], "who": {"email": "a@example.com"}, "id": 2}"#,
            br#"{"id": 1.5, "esc\"aped": "2024-03-01", "who": null, "extra": [{"x": 1}]}"#,
            br#"[{"id": 3}, {"id": "x"}]"#,
            br#"{"when": "2024-03-01T12:00:00Z", "who": {"email": "b@example.org"}}"#,
        ];
        let limits = SchemaLimits {
            max_depth: 2,
            max_properties: 4,
            max_nodes: 12,
        };
        let (mut from_bytes, mut from_values) = (Schema::new(limits), Schema::new(limits));
        for body in bodies {
            let value: Value = serde_json::from_slice(body).unwrap();
            assert_eq!(
                from_bytes.observe_bytes(body),
                Some(from_values.observe(&value))
            );
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for_each_leaf(&Doc::parse(body).unwrap(), 2, &mut |p, v| {
                a.push(format!("{p}={v}"))
            });
            for_each_leaf(&value, 2, &mut |p, v| b.push(format!("{p}={v}")));
            assert_eq!(a, b);
        }
        assert_eq!(
            from_bytes.to_json_schema(0.9),
            from_values.to_json_schema(0.9)
        );
        assert_eq!(from_bytes.changes(), from_values.changes());
        assert_eq!(from_bytes.dropped(), from_values.dropped());
        assert!(from_bytes.changes() > 0);
    }

    #[test]
    fn a_schema_counts_what_documents_teach_it() {
        let mut schema = Schema::new(SchemaLimits::default());
        schema.observe(&json!({"a": 1, "b": "x"}));
        let learnt = schema.changes();
        schema.observe(&json!({"a": 2, "b": "y"}));
        assert_eq!(
            schema.changes(),
            learnt,
            "the same shape again teaches nothing"
        );
        schema.observe(&json!({"a": 2.5, "b": "y"}));
        assert_eq!(
            schema.changes(),
            learnt + 1,
            "a fraction where integers were"
        );
        schema.observe(&json!({"a": 2, "b": "y", "c": [true]}));
        // Two new places (the property, its items), each with its first type.
        assert_eq!(schema.changes(), learnt + 1 + 4, "a property and its items");
    }

    #[test]
    fn not_json_is_counted() {
        let mut schema = Schema::new(SchemaLimits::default());
        assert!(schema.observe_bytes(b"<html>").is_none());
        assert!(schema.observe_bytes(b"").is_none());
        assert!(schema.observe_bytes(b"{\"a\":1} trailing").is_none());
        assert!(
            schema.observe_bytes(&[b'['; 200]).is_none(),
            "past serde_json's depth limit"
        );
        let obs = schema.observe_bytes(br#" {"a": [1, 2]} "#).unwrap();
        assert_eq!(obs.depth, 2);
        assert_eq!((schema.documents(), schema.not_json()), (1, 4));
    }

    #[test]
    fn output_is_deterministic_and_holds_no_value() {
        let secret = "zq-SECRET-4417@example.com";
        let docs = vec![
            json!({"z": secret, "a": [secret, {"m": secret, "b": 1}], "k": {"secret": secret}}),
            json!({"a": [], "z": 5, "new": secret}),
            json!(secret),
        ];
        let render = |docs: &[Value]| {
            let schema = learnt(docs);
            serde_json::to_string(&schema.to_json_schema(0.99)).unwrap()
        };
        let out = render(&docs);
        assert_eq!(out, render(&docs));
        assert!(!out.contains("SECRET") && !out.contains("4417"), "{out}");
        let fields = format!("{:?}", learnt(&docs).fields());
        assert!(!fields.contains("SECRET"), "{fields}");
    }

    #[test]
    fn merge_learns_the_other_documents() {
        let docs: Vec<Value> = (0..40)
            .map(|i| match i % 3 {
                0 => json!({"id": i, "tags": ["a"], "at": "2024-01-01"}),
                1 => json!({"id": i, "tags": [], "who": {"email": "a@b.io"}}),
                _ => json!({"id": i as f64 + 0.5, "map": {format!("k{i}"): i}}),
            })
            .collect();
        let limits = SchemaLimits {
            max_depth: 16,
            max_properties: 8,
            max_nodes: 64,
        };
        let mut whole = Schema::new(limits);
        let (mut left, mut right) = (Schema::new(limits), Schema::new(limits));
        for (i, doc) in docs.iter().enumerate() {
            whole.observe(doc);
            if i < 17 { &mut left } else { &mut right }.observe(doc);
        }
        right.observe_bytes(b"nope");
        left.merge(&right);
        assert_eq!(left.to_json_schema(0.9), whole.to_json_schema(0.9));
        assert_eq!(left.fields(), whole.fields());
        assert_eq!((left.documents(), left.not_json()), (40, 1));
    }

    #[test]
    fn leaves_in_document_order() {
        let doc = json!({"user": {"email": "a@b.io", "age": 30}, "items": [{"price": 1.5}, "x"], "ok": true});
        let mut seen = Vec::new();
        for_each_leaf(&doc, 16, &mut |path, value| {
            seen.push(format!("{path}={value}"))
        });
        assert_eq!(
            seen,
            [
                "items[].price=1.5",
                "items[]=x",
                "user.age=30",
                "user.email=a@b.io"
            ]
        );
        let mut seen = Vec::new();
        for_each_leaf(&doc, 1, &mut |path, value| {
            seen.push(format!("{path}={value}"))
        });
        assert!(seen.is_empty());
        for_each_leaf(&json!(12), 0, &mut |path, value| {
            seen.push(format!("{path}={value}"))
        });
        assert_eq!(seen, ["=12"]);
        let wide = Value::Array((0..10_000).map(Value::from).collect());
        let mut n = 0;
        for_each_leaf(&wide, 16, &mut |_, _| n += 1);
        assert_eq!(n, LEAF_BUDGET);
        assert_eq!(
            (
                depth(&json!(1)),
                depth(&json!([])),
                depth(&json!({"a": [[1]]}))
            ),
            (0, 1, 3)
        );
    }

    fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            ".{0,12}".prop_map(Value::String),
            prop_oneof![
                Just("2024-01-01"),
                Just("2024-01-01T00:00:00Z"),
                Just("a@b.io"),
                Just("::1"),
            ]
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(8, 256, 12, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..12).prop_map(Value::Array),
                proptest::collection::vec(("[a-f]{0,3}", inner), 0..12)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn any_document_keeps_the_bounds(docs in proptest::collection::vec(any_json(), 1..8)) {
            for limits in [
                SchemaLimits::default(),
                SchemaLimits { max_depth: 3, max_properties: 4, max_nodes: 12 },
                SchemaLimits { max_depth: 0, max_properties: 0, max_nodes: 0 },
            ] {
                let mut schema = Schema::new(limits);
                let mut other = Schema::new(limits);
                for doc in &docs {
                    let obs = schema.observe(doc);
                    proptest::prop_assert_eq!(obs.depth, depth(doc));
                    other.observe(doc);
                    proptest::prop_assert!(schema.node_count() <= limits.max_nodes.max(1));
                }
                schema.merge(&other);
                proptest::prop_assert!(schema.node_count() <= limits.max_nodes.max(1));
                let out = schema.to_json_schema(0.99);
                proptest::prop_assert_eq!(out["x-mirador-seen"].as_u64(), Some(2 * docs.len() as u64));
                schema.fields();
                for doc in &docs {
                    for_each_leaf(doc, limits.max_depth, &mut |_, _| {});
                }
            }
        }
    }
}
