//! Endpoint templating and detection features (issue 4). Deterministic: no clock, no I/O.
//!
//! So far: [`segment`], the shape of one path segment (`123` is an integer, `{id}` in a
//! template), and [`template`], which learns one host and method's templates from shape and
//! cardinality. Per-host catalogues, overrides, confidence and features build on them.

pub mod segment;
pub mod template;
