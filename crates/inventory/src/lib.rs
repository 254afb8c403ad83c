//! The API inventory (issue 4): what endpoints exist, what they take and return, who calls
//! them, and how that compares with a reference spec. Deterministic: packet time, no I/O.
//!
//! [`schema`] infers JSON body schemas, [`sketch`] keeps bounded quantile sketches of sizes
//! and latencies.

pub mod schema;
pub mod sketch;
