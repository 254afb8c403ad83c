//! HTTP transcript fixtures: each `transcripts/*.t` file holds a conversation as blocks of
//! client (`>>>`) and server (`<<<`) bytes, fed to the parser separately and in every
//! delivery size, and the transactions it must produce (`#= ` lines).
//!
//! Format: lines starting `#= ` are expected transactions, in order, written as
//! `METHOD TARGET VERSION -> STATUS req=N resp=N [anomalies]` (`-` for an absent side).
//! Other `#` lines are comments. Inside a block each line is sent followed by CRLF, except
//! that a line ending in `\` is sent without a line end (the backslash dropped), and the
//! escapes `\r`, `\n`, `\t`, `\\` and `\xNN` stand for those bytes (so `\n\` is a bare LF).

use std::path::Path;

use flow::Direction;
use http::{Connection, HttpConfig, HttpStats, Transaction};
use wire::Timestamp;

fn unescape(line: &str) -> Vec<u8> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            match b[i + 1] {
                b'r' => out.push(b'\r'),
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'\\' => out.push(b'\\'),
                b'x' if i + 3 < b.len() => {
                    let hex = std::str::from_utf8(&b[i + 2..i + 4]).expect("ascii");
                    out.push(u8::from_str_radix(hex, 16).expect("\\xNN"));
                    i += 2;
                }
                other => panic!("unknown escape \\{}", other as char),
            }
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

struct Transcript {
    pieces: Vec<(Direction, Vec<u8>)>,
    expected: Vec<String>,
}

fn load(path: &Path) -> Transcript {
    let text = std::fs::read_to_string(path).expect("readable transcript");
    let mut pieces: Vec<(Direction, Vec<u8>)> = Vec::new();
    let mut expected = Vec::new();
    for line in text.lines() {
        if let Some(e) = line.strip_prefix("#= ") {
            expected.push(e.trim().to_string());
        } else if line.starts_with('#') && pieces.is_empty() {
            continue;
        } else if line == ">>>" {
            pieces.push((Direction::Orig, Vec::new()));
        } else if line == "<<<" {
            pieces.push((Direction::Resp, Vec::new()));
        } else if let Some((_, buf)) = pieces.last_mut() {
            match line.strip_suffix('\\') {
                Some(cont) if !cont.ends_with('\\') || cont.ends_with("\\\\\\") => {
                    buf.extend(unescape(cont))
                }
                _ => {
                    buf.extend(unescape(line));
                    buf.extend_from_slice(b"\r\n");
                }
            }
        }
    }
    Transcript { pieces, expected }
}

fn summary(t: &Transaction) -> String {
    let req = t.request.as_ref();
    let resp = t.response.as_ref();
    format!(
        "{} {} {} -> {} req={} resp={} [{}]",
        req.map_or("-".into(), |r| String::from_utf8_lossy(r.method())
            .into_owned()),
        req.map_or("-".into(), |r| String::from_utf8_lossy(r.target())
            .into_owned()),
        req.map_or("-", |r| r.version.as_str()),
        resp.map_or("-".into(), |r| r.status.to_string()),
        req.map_or(0, |r| r.body.len),
        resp.map_or(0, |r| r.body.len),
        t.anomalies
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>()
            .join(",")
    )
}

fn run(t: &Transcript, chunk: usize) -> Vec<String> {
    let cfg = HttpConfig::default();
    let mut conn = Connection::new();
    let mut stats = HttpStats::default();
    let mut out = Vec::new();
    for (i, (dir, bytes)) in t.pieces.iter().enumerate() {
        for part in bytes.chunks(chunk.max(1)) {
            conn.data(
                &cfg,
                *dir,
                Timestamp::from_secs(i as u64 + 1),
                part,
                &mut stats,
                &mut out,
            );
        }
    }
    conn.close(&cfg, Timestamp::from_secs(10_000), &mut stats, &mut out);
    out.iter().map(summary).collect()
}

#[test]
fn every_transcript_gives_its_transactions_in_every_split() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/transcripts");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("transcripts dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "transcripts missing from {}",
        dir.display()
    );
    for f in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "t"))
    {
        let t = load(f);
        assert!(
            !t.expected.is_empty(),
            "{}: no `#= ` expectations",
            f.display()
        );
        for chunk in [usize::MAX, 1, 2, 5, 13] {
            assert_eq!(
                run(&t, chunk),
                t.expected,
                "{} with {chunk}-byte deliveries",
                f.display()
            );
        }
    }
}
