//! Incremental HTTP/1.x parsing of reassembled TCP streams into transactions.
//!
//! Bytes arrive per direction in any split; heads are parsed with httparse (a lenient parser
//! takes what real peers send that httparse refuses), bodies are framed by Content-Length,
//! chunked coding or connection close and kept (bounded) for later stages, which may undo
//! their content coding with [`Transaction::decode_bodies`] (gzip, deflate, br, zstd, bounded);
//! requests are paired with responses under pipelining. Malformed or hostile input is
//! never an error: it becomes a typed [`HttpAnomaly`] on the transaction. No I/O, no clock.

mod body;
mod conn;
mod decode;
mod head;
mod types;

pub use conn::{Connection, Emit, HttpConfig, HttpStats};
pub use decode::Decoders;
pub use types::{
    Anomalies, Body, Coding, Field, Head, HttpAnomaly, Request, Response, Transaction, Version,
};

#[cfg(test)]
mod tests;
