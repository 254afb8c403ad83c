//! The API inventory (issue 4): what endpoints exist, what they take and return, who calls
//! them, and how that compares with a reference spec. Deterministic: packet time, no I/O.
//!
//! [`catalogue`] templates paths per host and method (learnt, or by operator rule);
//! [`Inventory`] feeds each transaction into per-[`endpoint`] tables: parameters, [`schema`]s
//! of JSON bodies, [`sketch`]es of sizes and latency, auth schemes, sensitive data, clients;
//! [`openapi`] renders it as OpenAPI 3.1, [`spec`] compares it with a reference spec, and
//! [`alerts`] raises shadow-endpoint alerts.

pub mod alerts;
pub mod catalogue;
pub mod endpoint;
mod observe;
pub mod openapi;
pub mod schema;
pub mod sketch;
pub mod spec;

pub use observe::{Annotations, EndpointKey, Inventory, InventoryConfig, InventoryStats};
