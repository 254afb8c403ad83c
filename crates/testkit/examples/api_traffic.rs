//! Writes a labelled API capture: `api.pcap`, the reference spec `spec.yaml`, and the labels
//! `labels.txt` (one route or exposure a line) into DIR.
//!
//! `cargo run -p testkit --example api_traffic -- DIR [SEED] [TRANSACTIONS]`

use std::io::Write;
use std::path::PathBuf;

use testkit::api::{generate, ApiScenario};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: api_traffic DIR [SEED] [TRANSACTIONS]");
        std::process::exit(2);
    };
    let mut scenario = ApiScenario::default();
    if let Some(seed) = args.next() {
        scenario.seed = seed.parse().unwrap_or(scenario.seed);
    }
    if let Some(n) = args.next() {
        scenario.transactions = n.parse().unwrap_or(scenario.transactions);
    }
    std::fs::create_dir_all(&dir)?;
    let traffic = generate(&scenario);
    traffic.write_pcap(&dir.join("api.pcap"))?;
    std::fs::write(dir.join("spec.yaml"), &traffic.spec_yaml)?;
    let mut labels = std::fs::File::create(dir.join("labels.txt"))?;
    for r in traffic.labels.routes.iter().chain(&traffic.labels.unused) {
        writeln!(
            labels,
            "route {} {} {} {} calls={}",
            r.status.as_str(),
            r.host,
            r.method,
            r.template,
            r.calls
        )?;
    }
    for e in &traffic.labels.exposures {
        writeln!(
            labels,
            "exposure {} {} {} {} {} {}",
            e.kind, e.host, e.method, e.template, e.location, e.field
        )?;
    }
    eprintln!(
        "{} transactions ({} probes) in {}",
        traffic.labels.transactions,
        traffic.labels.probes,
        dir.display()
    );
    Ok(())
}
