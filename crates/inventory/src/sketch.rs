//! Quantile sketch (being written).
