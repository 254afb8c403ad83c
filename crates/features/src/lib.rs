//! Endpoint templating and detection features (issue 4). Deterministic: no clock, no I/O.
//!
//! So far: [`segment`], the shape of one path segment (`123` is an integer, `{id}` in a
//! template). The catalogue that adds cardinality across traffic builds on it.

pub mod segment;
