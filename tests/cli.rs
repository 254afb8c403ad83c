//! The command line on bad input: each mistake exits non-zero with one clear message naming
//! the file or key; damaged captures are read as far as possible and the damage is counted in
//! the summary; compressed captures read like plain ones.

mod common;

use std::io::Write;
use std::path::Path;

use common::*;
use testkit::http::{get, response};
use testkit::{LinkOpts, PcapWriter, Timestamp};

/// Asserts a failed run: exit status 1, nothing on stdout, and exactly one message on stderr
/// (starting `mirador: error: `; only a TOML syntax snippet may continue it on further
/// lines) that contains every one of `needles`.
fn assert_one_error(run: &Run, needles: &[&str]) {
    assert_eq!(run.status.code(), Some(1), "stderr: {}", run.stderr);
    assert!(run.stdout.is_empty(), "no records on failure");
    let err = &run.stderr;
    assert!(err.starts_with("mirador: error: "), "message: {err}");
    assert_eq!(
        err.matches("mirador: ").count(),
        1,
        "one message, got:\n{err}"
    );
    assert!(
        !err.contains("summary"),
        "no summary after a failure:\n{err}"
    );
    for n in needles {
        assert!(err.contains(n), "`{n}` missing from: {err}");
    }
}

/// [`assert_one_error`], and the message is a single line.
fn assert_one_line_error(run: &Run, needles: &[&str]) {
    assert_one_error(run, needles);
    assert_eq!(run.stderr.lines().count(), 1, "one line:\n{}", run.stderr);
}

fn replay_args<'a>(extra: &[&'a str], file: &'a str) -> Vec<&'a str> {
    let mut v = vec!["replay", "--transactions", "-"];
    v.extend_from_slice(extra);
    v.push(file);
    v
}

/// Two HTTP exchanges on one connection, rendered on Ethernet.
fn sample_frames() -> Vec<(Timestamp, Vec<u8>)> {
    let mut c = conv();
    c.client(&get("/one", "cli.test"))
        .server(&response(200, &[], b"first"))
        .client(&get("/two", "cli.test"))
        .server(&response(200, &[], b"second"))
        .close();
    c.render(&LinkOpts::ethernet())
}

const SAMPLE_BRIEFS: [&str; 2] = [
    "#0 GET /one 200 req=0 resp=5 -",
    "#1 GET /two 200 req=0 resp=6 -",
];

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("write test file");
}

#[test]
fn missing_capture_file() {
    let dir = tempdir();
    let p = dir.path().join("no-such.pcap");
    let run = run(replay_args(&[], p.to_str().unwrap()));
    assert_one_line_error(&run, &[p.to_str().unwrap(), "cannot open", "No such file"]);
}

#[test]
fn a_directory_is_not_a_capture() {
    let dir = tempdir();
    let p = dir.path().to_str().unwrap();
    let run = run(replay_args(&[], p));
    assert_one_line_error(&run, &[p, "directory"]);
}

#[test]
fn a_text_file_is_not_a_capture() {
    let dir = tempdir();
    let p = dir.path().join("notes.txt");
    write(
        &p,
        b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\nthis is not a capture\n",
    );
    let run = run(replay_args(&[], p.to_str().unwrap()));
    assert_one_line_error(
        &run,
        &[
            p.to_str().unwrap(),
            "not a pcap or pcapng file",
            "looks like text",
        ],
    );
}

#[test]
fn an_empty_file_is_not_a_capture() {
    let dir = tempdir();
    let p = dir.path().join("empty.pcap");
    write(&p, b"");
    let run = run(replay_args(&[], p.to_str().unwrap()));
    assert_one_line_error(&run, &[p.to_str().unwrap(), "empty"]);
}

#[test]
fn a_bad_file_fails_before_any_output_even_after_good_ones() {
    let dir = tempdir();
    let good = dir.path().join("good.pcap");
    testkit::write_pcap(&good, &sample_frames(), 1).unwrap();
    let bad = dir.path().join("missing.pcap");
    let run = run([
        "replay",
        "--transactions",
        "-",
        good.to_str().unwrap(),
        bad.to_str().unwrap(),
    ]);
    assert_one_line_error(&run, &[bad.to_str().unwrap()]);
}

#[test]
fn unknown_config_key_is_named() {
    let dir = tempdir();
    let cfg = dir.path().join("sensor.toml");
    write(&cfg, b"[flow]\nmax_flow = 1\n");
    let pcap = dir.path().join("ok.pcap");
    testkit::write_pcap(&pcap, &sample_frames(), 1).unwrap();
    let run = run(replay_args(
        &["-c", cfg.to_str().unwrap()],
        pcap.to_str().unwrap(),
    ));
    assert_one_error(
        &run,
        &[
            cfg.to_str().unwrap(),
            "line 2",
            "flow.max_flow: unknown key",
            "did you mean `flow.max_flows`?",
        ],
    );
}

#[test]
fn bad_config_value_is_named_with_the_fix() {
    let dir = tempdir();
    let cfg = dir.path().join("sensor.toml");
    write(&cfg, b"[flow]\nmax_flows = 0\n");
    let pcap = dir.path().join("ok.pcap");
    testkit::write_pcap(&pcap, &sample_frames(), 1).unwrap();
    let run = run(replay_args(
        &["-c", cfg.to_str().unwrap()],
        pcap.to_str().unwrap(),
    ));
    assert_one_line_error(&run, &[cfg.to_str().unwrap()]);
    assert!(
        run.stderr
            .trim_end()
            .ends_with("invalid configuration: flow.max_flows: must be at least 1"),
        "{}",
        run.stderr
    );
    // check-config says the same
    let check = common::run(["check-config", "-c", cfg.to_str().unwrap()]);
    assert_one_line_error(&check, &["flow.max_flows: must be at least 1"]);
}

#[test]
fn missing_config_file() {
    let dir = tempdir();
    let cfg = dir.path().join("nope.toml");
    let run = run(["check-config", "-c", cfg.to_str().unwrap()]);
    assert_one_line_error(
        &run,
        &[cfg.to_str().unwrap(), "cannot read the config file"],
    );
}

#[test]
fn shipped_sensor_toml_is_valid() {
    let cfg = workspace_root().join("sensor.toml");
    let run = run(["check-config", "-c", cfg.to_str().unwrap()]);
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(
        run.stderr.trim_end(),
        format!("{}: configuration is valid", cfg.display())
    );
    // and replay accepts it
    let dir = tempdir();
    let pcap = dir.path().join("ok.pcap");
    testkit::write_pcap(&pcap, &sample_frames(), 1).unwrap();
    assert_eq!(replay_files(Some(&cfg), &[&pcap]).briefs(), SAMPLE_BRIEFS);
}

#[test]
fn truncated_last_packet_is_counted_and_the_rest_processed() {
    let dir = tempdir();
    let p = dir.path().join("cut.pcap");
    testkit::write_pcap(&p, &sample_frames(), 1).unwrap();
    let mut bytes = std::fs::read(&p).unwrap();
    // The last frame is the client's final ACK (54 bytes): keep 20 of them.
    bytes.truncate(bytes.len() - 34);
    write(&p, &bytes);
    let run = replay_files(None, &[&p]);
    assert_eq!(run.briefs(), SAMPLE_BRIEFS);
    assert_eq!(run.counter("capture.truncated_records"), 1);
    assert_eq!(run.counter("capture.corrupt_records"), 0);
    assert_eq!(run.counter("packets"), sample_frames().len() as u64 - 1);
}

#[test]
fn corrupt_record_in_the_middle_is_counted_and_skipped() {
    let frames = sample_frames();
    let dir = tempdir();
    let p = dir.path().join("corrupt.pcap");
    let mut w = PcapWriter::new(Vec::new(), 1, 262_144, false).unwrap();
    let middle = frames.len() / 2;
    for (i, (ts, f)) in frames.iter().enumerate() {
        if i == middle {
            // A record header claiming a 2 GB frame, then 40 bytes of garbage.
            let raw = w.get_mut();
            raw.extend_from_slice(&(ts.secs() as u32).to_le_bytes());
            raw.extend_from_slice(&0u32.to_le_bytes());
            raw.extend_from_slice(&0x7fff_0000u32.to_le_bytes());
            raw.extend_from_slice(&0x7fff_0000u32.to_le_bytes());
            raw.extend_from_slice(&[0xee; 40]);
        }
        w.write(*ts, f).unwrap();
    }
    write(&p, &w.into_inner());
    let run = replay_files(None, &[&p]);
    assert_eq!(run.briefs(), SAMPLE_BRIEFS);
    assert_eq!(run.counter("capture.corrupt_records"), 1);
    assert_eq!(run.counter("capture.resyncs"), 1);
    assert_eq!(run.counter("capture.truncated_records"), 0);
    assert_eq!(run.counter("packets"), frames.len() as u64);
}

#[test]
fn gzip_compressed_capture_reads_like_the_plain_one() {
    let dir = tempdir();
    let plain = dir.path().join("plain.pcap");
    testkit::write_pcap(&plain, &sample_frames(), 1).unwrap();
    let gz = dir.path().join("plain.pcap.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::default(),
    );
    enc.write_all(&std::fs::read(&plain).unwrap()).unwrap();
    enc.finish().unwrap();
    let a = replay_files(None, &[&plain]);
    let b = replay_files(None, &[&gz]);
    assert_eq!(a.briefs(), SAMPLE_BRIEFS);
    assert_eq!(b.stdout, a.stdout);
    assert_eq!(b.counter("packets"), a.counter("packets"));
}

#[test]
fn pcapng_capture_reads_like_the_pcap_one() {
    let dir = tempdir();
    let plain = dir.path().join("plain.pcap");
    let frames = sample_frames();
    testkit::write_pcap(&plain, &frames, 1).unwrap();
    let ng = dir.path().join("plain.pcapng");
    let mut w = testkit::PcapngWriter::new(Vec::new()).unwrap();
    let iface = w.add_interface(1, 0, true).unwrap();
    for (ts, f) in &frames {
        w.write(iface, *ts, f).unwrap();
    }
    write(&ng, &w.into_inner());
    let a = replay_files(None, &[&plain]);
    let b = replay_files(None, &[&ng]);
    assert_eq!(a.briefs(), SAMPLE_BRIEFS);
    assert_eq!(b.stdout, a.stdout);
}

#[test]
fn transactions_to_a_file_and_summary_counts_records() {
    let dir = tempdir();
    let pcap = dir.path().join("ok.pcap");
    testkit::write_pcap(&pcap, &sample_frames(), 1).unwrap();
    let out = dir.path().join("tx.jsonl");
    let run = run([
        "replay",
        "--transactions",
        out.to_str().unwrap(),
        pcap.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", run.stderr);
    assert!(run.stdout.is_empty());
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().count(), 2);
    assert_eq!(run.summary_number("records written", "records written"), 2);
}

/// The OS error is printed twice, e.g.
/// "x.pcap: cannot open: No such file or directory (os error 2); check the path and that the
/// file is readable: No such file or directory (os error 2)". The #[error] text has
/// {source} and the field is also the error's source, so anyhow's {:#} repeats it.
#[test]
fn open_error_repeats_the_os_error() {
    let dir = tempdir();
    let p = dir.path().join("no-such.pcap");
    let run = run(replay_args(&[], p.to_str().unwrap()));
    assert_eq!(
        run.stderr.matches("No such file or directory").count(),
        1,
        "{}",
        run.stderr
    );
    let d = dir.path().to_str().unwrap();
    let run = common::run(replay_args(&[], d));
    assert_eq!(
        run.stderr.matches("it is a directory").count(),
        1,
        "{}",
        run.stderr
    );
}
