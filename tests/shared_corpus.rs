//! Conformance against the shared Zeek corpus (`../shared/corpus/zeek`, next to the
//! workspace), scored by `../shared/tools/conformance.py`: recall and precision of the
//! transactions must both stay at or above 0.95 on the `core` tier, and the binary must not
//! fail on any trace.
//!
//! `../shared` is not part of the project: on a fresh clone without it (or without
//! python3) this test prints a notice and passes.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;

const MIN_RECALL: f64 = 0.95;
const MIN_PRECISION: f64 = 0.95;

fn shared_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

fn python3_available() -> bool {
    Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `conformance: recall X precision Y ...` → (X, Y).
fn parse_scores(stdout: &str) -> (f64, f64) {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("conformance:"))
        .unwrap_or_else(|| panic!("no `conformance:` line in:\n{stdout}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let after = |key: &str| -> f64 {
        let i = words
            .iter()
            .position(|w| *w == key)
            .unwrap_or_else(|| panic!("no `{key}` in: {line}"));
        words[i + 1]
            .parse()
            .unwrap_or_else(|e| panic!("`{key}` value does not parse ({e}): {line}"))
    };
    (after("recall"), after("precision"))
}

#[test]
fn score_line_parses() {
    let out = "DIFF x\ntraces 53 (exact 46, errors 0); ...\n\
               conformance: recall 0.953 precision 0.967 exact-traces 46/53 body-size-agreement 0.947\n";
    assert_eq!(parse_scores(out), (0.953, 0.967));
}

#[test]
fn zeek_core_corpus_recall_and_precision() {
    let shared = shared_dir();
    let corpus = shared.join("corpus/zeek");
    let tool = shared.join("tools/conformance.py");
    if !corpus.join("manifest.json").is_file() || !tool.is_file() {
        eprintln!(
            "shared_corpus: SKIPPED: {} not found (the shared corpus is not part of a fresh clone)",
            corpus.display()
        );
        return;
    }
    if !python3_available() {
        eprintln!("shared_corpus: SKIPPED: python3 is not installed");
        return;
    }
    let dir = tempdir();
    let json = dir.path().join("conformance.json");
    let cmd = format!("'{}' replay --transactions - {{pcap}}", bin());
    let out = Command::new("python3")
        .arg(&tool)
        .arg(&corpus)
        .args(["--tier", "core", "--cmd", &cmd, "--json"])
        .arg(&json)
        .current_dir(workspace_root())
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "conformance.py failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let (recall, precision) = parse_scores(&stdout);
    eprintln!("shared_corpus: recall {recall} precision {precision}");
    assert!(
        recall >= MIN_RECALL,
        "recall {recall} < {MIN_RECALL}:\n{stdout}"
    );
    assert!(
        precision >= MIN_PRECISION,
        "precision {precision} < {MIN_PRECISION}:\n{stdout}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("--json output")).expect("JSON");
    let totals = &report["totals"];
    assert_eq!(
        totals["errors"], 0,
        "the binary failed on some traces:\n{stdout}"
    );
    assert!(
        totals["traces"].as_u64().unwrap_or(0) >= 50,
        "core tier unexpectedly small: {totals}"
    );
}
