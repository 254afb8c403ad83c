//! The API inventory (issue 4): what endpoints exist, what they take and return, who calls
//! them, and how that compares with a reference spec. Deterministic: packet time, no I/O.
//!
//! [`catalogue`] templates paths per host and method (learnt, or by operator rule);
//! [`Inventory`] feeds each transaction into per-[`endpoint`] tables: parameters, [`schema`]s
//! of JSON bodies, [`sketch`]es of sizes and latency, auth schemes, sensitive data, clients;
//! [`openapi`] renders it as OpenAPI 3.1, [`spec`] compares it with a reference spec, and
//! [`alerts`] raises shadow-endpoint alerts. [`profile`] turns each transaction and its
//! entities into detection features. [`Analyzer`] runs both per transaction.

pub mod alerts;
pub mod catalogue;
pub mod endpoint;
mod observe;
pub mod openapi;
pub mod profile;
pub mod schema;
pub mod sketch;
pub mod spec;

pub use observe::{Annotations, EndpointKey, Inventory, InventoryConfig, InventoryStats};

/// The analysis stage's per-transaction work: the inventory, then detection features.
#[derive(Debug)]
pub struct Analyzer {
    pub inventory: Inventory,
    pub profiler: profile::Profiler,
}

impl Analyzer {
    pub fn new(cfg: InventoryConfig, limits: profile::ProfileLimits) -> Self {
        Analyzer {
            inventory: Inventory::new(cfg),
            profiler: profile::Profiler::new(limits),
        }
    }

    /// Learns from one transaction; its annotations (for the record) and features.
    pub fn observe(
        &mut self,
        flow: &engine::FlowIds,
        tx: &http::Transaction,
    ) -> Option<(Annotations, Option<profile::Profile>)> {
        let notes = self.inventory.observe(flow, tx)?;
        let profile = self.profiler.observe(flow.client.ip(), tx, &notes);
        Some((notes, profile))
    }
}
