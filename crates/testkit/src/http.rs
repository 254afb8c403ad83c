//! HTTP/1.x message bytes for tests: requests, responses, chunked and compressed bodies.

use std::io::Write;

use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
use flate2::Compression;

fn has_header(headers: &[(&str, &str)], name: &str) -> bool {
    headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name))
}

fn push_headers(out: &mut Vec<u8>, headers: &[(&str, &str)]) {
    for (k, v) in headers {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// `GET path HTTP/1.1` with Host, User-Agent and Accept.
pub fn get(path: &str, host: &str) -> Vec<u8> {
    request(
        "GET",
        path,
        host,
        &[("User-Agent", "testkit/1"), ("Accept", "*/*")],
        b"",
    )
}

/// Any request. `Content-Length` is added when there is a body (or the method is POST,
/// PUT or PATCH) unless `headers` has Content-Length or Transfer-Encoding; the body is
/// appended as given (use [`chunked`] for a chunked body).
pub fn request(
    method: &str,
    path: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n").into_bytes();
    push_headers(&mut out, headers);
    let wants_len = !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH");
    if wants_len
        && !has_header(headers, "content-length")
        && !has_header(headers, "transfer-encoding")
    {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// `POST` with a JSON body.
pub fn post_json(path: &str, host: &str, json: &str) -> Vec<u8> {
    request(
        "POST",
        path,
        host,
        &[("Content-Type", "application/json")],
        json.as_bytes(),
    )
}

/// `HTTP/1.1 status reason`, the headers, `Content-Length` unless `headers` has
/// Content-Length or Transfer-Encoding (or the status has no body: 1xx, 204, 304), then
/// the body as given.
pub fn response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status)).into_bytes();
    push_headers(&mut out, headers);
    let bodyless = (100..200).contains(&status) || status == 204 || status == 304;
    if !bodyless
        && !has_header(headers, "content-length")
        && !has_header(headers, "transfer-encoding")
    {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// A response with `Transfer-Encoding: chunked` and `parts` as the chunks.
pub fn chunked_response(status: u16, headers: &[(&str, &str)], parts: &[&[u8]]) -> Vec<u8> {
    let mut h = headers.to_vec();
    h.push(("Transfer-Encoding", "chunked"));
    response(status, &h, &chunked(parts))
}

/// A chunked body: each part as one chunk (empty parts are skipped, they would end the
/// body), then the last chunk and an empty trailer.
pub fn chunked(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts.iter().filter(|p| !p.is_empty()) {
        out.extend_from_slice(format!("{:x}\r\n", p.len()).as_bytes());
        out.extend_from_slice(p);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// gzip (`Content-Encoding: gzip`).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).expect("writing to a Vec");
    e.finish().expect("writing to a Vec")
}

/// zlib-wrapped deflate, what `Content-Encoding: deflate` means.
pub fn deflate(data: &[u8]) -> Vec<u8> {
    let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).expect("writing to a Vec");
    e.finish().expect("writing to a Vec")
}

/// Raw deflate without the zlib wrapper, which some servers send for `deflate`.
pub fn raw_deflate(data: &[u8]) -> Vec<u8> {
    let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).expect("writing to a Vec");
    e.finish().expect("writing to a Vec")
}

/// Reason phrase for common status codes ("Unknown" otherwise).
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Content Too Large",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}
