//! Drives the delivery crate alone: submits synthetic alerts to the outputs of a JSON file
//! (an array of `[[outputs]]` tables written as JSON), waits for them to drain, and prints
//! one JSON line of figures per output. Used by `bench/delivery.sh` and the fault tests.
//!
//! `delivery-bench OUTPUTS.json COUNT [RATE_PER_SEC] [RUN_TAG]`; COUNT 0 only drains what a
//! previous run left in the spools. After submitting it prints `spooled` once every output
//! holds every alert it took (the fault tests kill it after that).

use std::time::{Duration, Instant};

use delivery::{OutputConfig, Outputs};

fn main() {
    if let Err(e) = run() {
        eprintln!("delivery-bench: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(path), Some(count)) = (args.get(1), args.get(2)) else {
        return Err("usage: delivery-bench OUTPUTS.json COUNT [RATE_PER_SEC] [RUN_TAG]".into());
    };
    let count: u64 = count.parse().map_err(|e| format!("COUNT: {e}"))?;
    let rate: u64 = args
        .get(3)
        .map_or(Ok(0), |r| r.parse())
        .map_err(|e| format!("RATE: {e}"))?;
    let tag = args.get(4).cloned().unwrap_or_else(|| "bench".to_string());
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let cfgs: Vec<OutputConfig> =
        serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    let ctx = sinks::siem::EncodeContext::new("bench-host", "bench-sensor");
    let outputs = Outputs::start(&cfgs, &ctx).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut submit_ns_max = 0u128;
    let mut submit_ns_total = 0u128;
    let chunk = 100u64;
    let mut i = 0;
    while i < count {
        let n = chunk.min(count - i);
        let batch: Vec<_> = (i..i + n)
            .map(|k| delivery::synthetic::alert(&tag, k, "rate.client", 75))
            .collect();
        let t = Instant::now();
        outputs.submit(&batch);
        let took = t.elapsed().as_nanos();
        submit_ns_total += took;
        submit_ns_max = submit_ns_max.max(took);
        i += n;
        if rate > 0 {
            let due = Duration::from_secs_f64(i as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
    let submitted = start.elapsed();
    // Wait until each output's intake has put everything it took into the spool.
    loop {
        let all = outputs.metrics().iter().all(|(_, m)| {
            m.enqueued == 0 || m.pending + m.acked + m.dead_lettered + m.dropped >= m.enqueued
        });
        if all {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    println!("spooled");
    let left = outputs.finish(None);
    let total = start.elapsed();
    for l in &left {
        let m = &l.metrics;
        println!(
            "{}",
            serde_json::json!({
                "output": l.name,
                "submitted": count,
                "enqueued": m.enqueued,
                "acked": m.acked,
                "retried": m.retried,
                "dropped": m.dropped,
                "dead_lettered": m.dead_lettered,
                "corrupt": m.corrupt,
                "left": l.pending,
                "left_on_disk": l.on_disk,
                "seconds": total.as_secs_f64(),
                "submit_seconds": submitted.as_secs_f64(),
                "alerts_per_sec": if total.as_secs_f64() > 0.0 { m.acked as f64 / total.as_secs_f64() } else { 0.0 },
                "latency_p50_ms": m.latency_p50_us as f64 / 1000.0,
                "latency_p99_ms": m.latency_p99_us as f64 / 1000.0,
                "submit_call_max_us": submit_ns_max as f64 / 1000.0,
                "submit_call_mean_us": if count > 0 { submit_ns_total as f64 / 1000.0 / (count.div_ceil(chunk)) as f64 } else { 0.0 },
            })
        );
    }
    Ok(())
}
