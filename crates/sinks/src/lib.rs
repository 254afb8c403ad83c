//! Encoders for the records that leave the sensor: the ECS transaction record (RECORDS.md §1),
//! the canonical alert (§2) and its SIEM formats. Encoders write into a caller's buffer and
//! never do I/O themselves.

pub mod alert;
pub mod ecs;
pub mod json;
pub mod siem;
pub mod time;
