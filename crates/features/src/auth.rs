//! Auth scheme and identity (being written).
