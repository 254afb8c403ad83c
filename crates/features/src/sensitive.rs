//! Sensitive data detection (being written).
