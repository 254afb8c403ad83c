//! Encoders for the records that leave the sensor. Today: the ECS transaction record
//! (RECORDS.md §1). Encoders write into a caller's buffer and never do I/O themselves.

pub mod ecs;
pub mod json;
pub mod time;
