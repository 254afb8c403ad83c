//! Learns templates from `METHOD HOST PATH` lines on stdin and prints them with hit counts:
//! a way to try templating on real traffic before the catalogue is wired in.
//!
//! `mirador replay F.pcap --transactions - | jq -r '[.http.request.method, .url.domain, .url.path] | @tsv'
//!   | tr '\t' ' ' | cargo run --release -p features --example templates`

use std::collections::BTreeMap;
use std::io::{self, BufRead, Write};

use features::template::{PathTree, TemplateLimits};

fn main() -> io::Result<()> {
    let mut trees: BTreeMap<(String, String), PathTree> = BTreeMap::new();
    for line in io::stdin().lock().lines() {
        let line = line?;
        let mut fields = line.split_whitespace();
        let (Some(method), Some(host), Some(path)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let path = path.split('?').next().unwrap_or(path);
        trees
            .entry((host.to_string(), method.to_string()))
            .or_insert_with(|| PathTree::new(TemplateLimits::default()))
            .observe(path);
    }
    let mut out = io::stdout().lock();
    for ((host, method), tree) in &trees {
        for (template, hits) in tree.templates() {
            writeln!(out, "{hits:>9} {method} {host}{template}")?;
        }
        if tree.unlearned() > 0 {
            writeln!(
                out,
                "{:>9} {method} {host} paths not learnt (tree full)",
                tree.unlearned()
            )?;
        }
    }
    Ok(())
}
