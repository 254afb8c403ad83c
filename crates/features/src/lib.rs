//! Endpoint templating and detection features (issue 4). Deterministic: no clock, no I/O.
//!
//! [`segment`] is the shape of one path segment (`123` is an integer, `{id}` in a template);
//! [`template`] learns one host and method's templates from shape and cardinality;
//! [`auth`] names the credential on a request and follows it by keyed hash;
//! [`sensitive`] finds and redacts sensitive values;
//! [`tx`] turns one transaction into a fixed feature array;
//! [`entity`] follows clients, identities, endpoints and networks at several time scales;
//! [`injection`] finds SQL injection, XSS, traversal, command injection and SSRF in values;
//! [`chunked`] is the growable storage of their bounded tables; [`prefetch`] overlaps their
//! cache misses across a batch.

pub mod auth;
pub mod chunked;
pub mod entity;
pub mod injection;
pub mod prefetch;
pub mod segment;
pub mod sensitive;
pub mod template;
pub mod tx;
