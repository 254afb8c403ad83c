//! Writes a labelled abuse capture into DIR: `abuse.pcap`, the reference spec `spec.yaml`
//! (for `inventory.spec`), and `labels.json` (the episodes and transaction counts).
//!
//! `cargo run --release -p testkit --example abuse_traffic -- DIR [--benign-only] [--seed N]
//! [--hours H] [--learning-hours H] [--per-day N] [--identities N] [--anonymous N]
//! [--rounds N]`

use std::path::PathBuf;
use std::time::Instant;

use testkit::abuse::{generate, AbuseScenario};

fn usage() -> ! {
    eprintln!(
        "usage: abuse_traffic DIR [--benign-only] [--seed N] [--hours H] [--learning-hours H] \
         [--per-day N] [--identities N] [--anonymous N] [--rounds N]"
    );
    std::process::exit(2);
}

fn number(v: Option<String>) -> u64 {
    v.and_then(|v| v.parse().ok()).unwrap_or_else(|| usage())
}

fn main() -> std::io::Result<()> {
    let mut s = AbuseScenario::default();
    let mut dir = None;
    let mut args = std::env::args().skip(1);
    let mut learning = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--benign-only" => s.episodes = false,
            "--seed" => s.seed = number(args.next()),
            "--hours" => s.hours = number(args.next()).max(1),
            "--learning-hours" => learning = Some(number(args.next())),
            "--per-day" => s.transactions_per_day = number(args.next()),
            "--identities" => s.identities = number(args.next()) as usize,
            "--anonymous" => s.anonymous_clients = number(args.next()) as usize,
            "--rounds" => s.rounds = number(args.next()).max(1) as usize,
            "-h" | "--help" => usage(),
            _ if dir.is_none() && !a.starts_with("--") => dir = Some(PathBuf::from(a)),
            _ => usage(),
        }
    }
    let Some(dir) = dir else { usage() };
    // Learning keeps its default share of the span: half of it, at most a day.
    s.learning_hours = learning.unwrap_or((s.hours / 2).min(24));
    let t = Instant::now();
    let traffic = generate(&s);
    let generated = t.elapsed();
    traffic.write_dir(&dir)?;
    let l = &traffic.labels;
    let bytes = std::fs::metadata(dir.join("abuse.pcap"))?.len();
    eprintln!(
        "{} transactions ({} benign, {} episodes), {} frames, {:.1} MB pcap, generated in {:.2} s, written to {}",
        l.transactions,
        l.benign_transactions,
        l.episodes.len(),
        traffic.frames.len(),
        bytes as f64 / 1e6,
        generated.as_secs_f64(),
        dir.display()
    );
    for e in &l.episodes {
        eprintln!(
            "  {:<42} {:>6} tx  {:>7.1} s  {} client(s)",
            e.id,
            e.transactions,
            (e.end_ns - e.start_ns) as f64 / 1e9,
            e.clients.len()
        );
    }
    Ok(())
}
