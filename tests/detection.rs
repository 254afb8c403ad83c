//! Detection end to end: `testkit::abuse` generates API traffic with labelled abuse episodes of
//! every kind (and the same background without them); `mirador replay --alerts` must detect
//! every kind, soon, with few false alerts; `--learn-only --model-out` then `--model-in
//! --no-learn` must carry what was learnt over; feedback must silence an alert; and, when
//! `../shared` is there, the CSIC 2010 evaluation must meet its targets.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{bin, run, tempdir, workspace_root};
use serde_json::Value;
use testkit::abuse::{generate, score, AbuseScenario, AbuseTraffic, Labels, Score};

/// Median time to detect, packet time (issue 5's target).
const TTD_TARGET_S: f64 = 30.0;
/// False alerts per 10k transactions on benign traffic (issue 5's target).
const FALSE_ALERTS_TARGET: f64 = 1.0;

fn traffic() -> &'static (AbuseTraffic, AbuseTraffic) {
    static T: OnceLock<(AbuseTraffic, AbuseTraffic)> = OnceLock::new();
    T.get_or_init(|| {
        let s = AbuseScenario {
            hours: 30,
            learning_hours: 24,
            transactions_per_day: 12_000,
            identities: 60,
            anonymous_clients: 20,
            ..AbuseScenario::default()
        };
        (generate(&s), generate(&s.clone().benign_only()))
    })
}

/// Writes the capture, its spec and a config pointing at the spec into `dir`.
fn write(t: &AbuseTraffic, dir: &Path) -> (PathBuf, PathBuf) {
    t.write_dir(dir).expect("write the scenario");
    let cfg = dir.join("sensor.toml");
    std::fs::write(
        &cfg,
        format!(
            "[inventory]\nspec = \"{}\"\n",
            dir.join("spec.yaml").display()
        ),
    )
    .expect("write config");
    (dir.join("abuse.pcap"), cfg)
}

fn alerts_of(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("alerts written")
        .lines()
        .map(|l| serde_json::from_str(l).expect("an alert is JSON"))
        .collect()
}

fn replay_and_score(t: &AbuseTraffic, extra: &[&str]) -> (Score, Vec<Value>, String) {
    let dir = tempdir();
    let (pcap, cfg) = write(t, dir.path());
    let alerts = dir.path().join("alerts.jsonl");
    let mut args = vec![
        "replay".to_string(),
        "-c".into(),
        cfg.display().to_string(),
        "--alerts".into(),
        alerts.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(pcap.display().to_string());
    let r = run(&args);
    assert!(r.status.success(), "replay failed:\n{}", r.stderr);
    let all = alerts_of(&alerts);
    let labels = Labels::from_json(&t.labels.to_json()).expect("labels");
    (score(&labels, &all), all, r.stderr)
}

#[test]
fn every_kind_of_abuse_is_detected_soon_and_explained() {
    let (attacks, _) = traffic();
    let (s, alerts, stderr) = replay_and_score(attacks, &[]);
    eprintln!("{}", s.table());
    for k in &s.kinds {
        assert!(k.detected > 0, "{:?} not detected:\n{}", k.kind, s.table());
    }
    let ttd = s.ttd_median_s.expect("something detected");
    assert!(ttd <= TTD_TARGET_S, "median time to detect {ttd} s");
    assert!(
        s.false_alerts_per_10k <= FALSE_ALERTS_TARGET,
        "{} false alerts per 10k:\n{}",
        s.false_alerts_per_10k,
        s.table()
    );
    // Every alert is explained and carries what RECORDS.md §2 asks for.
    for a in &alerts {
        let id = a["detector"]["id"].as_str().unwrap_or_default();
        assert!(a["alert_id"].as_str().is_some_and(|s| s.len() == 32), "{a}");
        assert!(
            ["create", "update", "close"].contains(&a["lifecycle"].as_str().unwrap_or("")),
            "{a}"
        );
        assert!(
            a["attack"]["owasp"]
                .as_str()
                .is_some_and(|o| o.starts_with("API") || o.starts_with("A0")),
            "{a}"
        );
        assert!(
            a["recommended_action"]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "{a}"
        );
        assert!(
            !a["evidence"].as_array().expect("evidence").is_empty(),
            "{a}"
        );
        if id != "detect.injection" && id != "detect.protocol_evasion" {
            let e = &a["explanation"];
            assert!(e["baseline"]["scope"].is_string(), "{id}: {a}");
            let shares: f64 = e["contributions"]
                .as_array()
                .expect("contributions")
                .iter()
                .map(|c| c["share"].as_f64().unwrap_or(0.0))
                .sum();
            assert!(shares > 0.0 && shares <= 1.01, "{id}: shares {shares}");
        }
        // Secrets never leave: no credential of the scenario appears in an alert.
        let text = a.to_string();
        for e in &attacks.labels.episodes {
            if let Some(secret) = &e.identity_secret {
                assert!(!text.contains(secret.as_str()), "{id} leaks a credential");
            }
        }
    }
    // One alert per episode: revisions of a key share its first_seen; a close ends each.
    let creates = alerts.iter().filter(|a| a["lifecycle"] == "create").count();
    let closes = alerts.iter().filter(|a| a["lifecycle"] == "close").count();
    assert_eq!(creates, closes, "every episode ends with a close");
    assert!(stderr.contains("detection          scored"), "{stderr}");
}

#[test]
fn benign_traffic_raises_almost_nothing() {
    let (_, benign) = traffic();
    let (s, _, _) = replay_and_score(benign, &[]);
    eprintln!("{}", s.table());
    assert!(s.transactions > 5_000);
    assert!(
        s.false_alerts_per_10k <= FALSE_ALERTS_TARGET,
        "{} false alerts per 10k on benign traffic:\n{}",
        s.false_alerts_per_10k,
        s.table()
    );
}

#[test]
fn records_carry_a_score_and_alerted_transactions_are_marked() {
    let (attacks, _) = traffic();
    let dir = tempdir();
    let (pcap, cfg) = write(attacks, dir.path());
    let r = run([
        "replay",
        "-c",
        cfg.to_str().expect("utf-8"),
        "--transactions",
        "-",
        pcap.to_str().expect("utf-8"),
    ]);
    assert!(r.status.success(), "{}", r.stderr);
    let records = r.records();
    assert_eq!(records.len() as u64, attacks.labels.transactions);
    let mut alerted = 0;
    for rec in &records {
        let a = &rec["mirador"]["anomaly"];
        let s = a["score"].as_f64().expect("every record has a score");
        assert!(s.is_finite() && s >= 0.0);
        alerted += usize::from(a["alerted"] == true);
    }
    assert!(alerted > 0 && alerted < records.len() / 4, "{alerted}");
    // Injection payloads score above the median of everything.
    let mut scores: Vec<f64> = records
        .iter()
        .map(|r| r["mirador"]["anomaly"]["score"].as_f64().unwrap_or(0.0))
        .collect();
    scores.sort_by(f64::total_cmp);
    let median = scores[scores.len() / 2];
    let injected = records
        .iter()
        .filter(|r| {
            r["url"]["original"].as_str().is_some_and(|u| {
                u.contains("%27") || u.contains("%3Cscript") || u.contains("..%2F")
            })
        })
        .map(|r| r["mirador"]["anomaly"]["score"].as_f64().unwrap_or(0.0))
        .collect::<Vec<_>>();
    assert!(!injected.is_empty());
    assert!(
        injected.iter().all(|&s| s > median),
        "{injected:?} vs median {median}"
    );
}

#[test]
fn a_saved_model_is_restored_frozen_and_scores_alike() {
    let (attacks, benign) = traffic();
    let dir = tempdir();
    let (benign_pcap, cfg) = write(benign, dir.path());
    let attack_dir = tempdir();
    let (attack_pcap, _) = write(attacks, attack_dir.path());
    let model = dir.path().join("model.bin");
    let cfg = cfg.to_str().expect("utf-8");
    let r = run([
        "replay",
        "-c",
        cfg,
        "--learn-only",
        "--model-out",
        model.to_str().expect("utf-8"),
        benign_pcap.to_str().expect("utf-8"),
    ]);
    assert!(r.status.success(), "{}", r.stderr);
    assert!(model.metadata().expect("model written").len() > 1000);
    let score_with_model = || {
        let r = run([
            "replay",
            "-c",
            cfg,
            "--model-in",
            model.to_str().expect("utf-8"),
            "--no-learn",
            "--transactions",
            "-",
            attack_pcap.to_str().expect("utf-8"),
        ]);
        assert!(r.status.success(), "{}", r.stderr);
        assert!(r.stderr.contains(" learnt 0 "), "frozen: {}", r.stderr);
        r.records()
            .iter()
            .map(|rec| rec["mirador"]["anomaly"]["score"].as_f64().expect("score"))
            .collect::<Vec<f64>>()
    };
    let first = score_with_model();
    assert_eq!(
        first,
        score_with_model(),
        "a frozen model scores the same twice"
    );
    // Restored, the model is past its learning period at once: its threshold is finite.
    let r = run([
        "replay",
        "-c",
        cfg,
        "--model-in",
        model.to_str().expect("utf-8"),
        "--no-learn",
        attack_pcap.to_str().expect("utf-8"),
    ]);
    assert!(!r.stderr.contains("threshold inf"), "{}", r.stderr);
    // Learn-only raised nothing, and a corrupt model is refused with the path named.
    std::fs::write(dir.path().join("bad.bin"), b"not a model").expect("write");
    let bad = dir.path().join("bad.bin");
    let r = run([
        "replay",
        "--model-in",
        bad.to_str().expect("utf-8"),
        attack_pcap.to_str().expect("utf-8"),
    ]);
    assert!(!r.status.success());
    assert!(
        r.stderr.contains("bad.bin") && r.stderr.contains("model"),
        "{}",
        r.stderr
    );
    let r = run([
        "replay",
        "--learn-only",
        "--no-learn",
        attack_pcap.to_str().expect("utf-8"),
    ]);
    assert!(!r.status.success(), "conflicting switches are refused");
}

#[test]
fn a_false_positive_mark_silences_its_alert() {
    let (attacks, _) = traffic();
    let (_, alerts, _) = replay_and_score(attacks, &[]);
    let target = alerts
        .iter()
        .find(|a| a["detector"]["id"] == "detect.scraping")
        .expect("a scraping alert");
    let key = target["dedup_key"].as_str().expect("dedup key").to_string();
    let dir = tempdir();
    let (pcap, cfg) = write(attacks, dir.path());
    let feedback = dir.path().join("feedback.jsonl");
    std::fs::write(
        &feedback,
        format!(
            "{{\"dedup_key\":{},\"verdict\":\"false_positive\"}}\n",
            Value::from(key.clone())
        ),
    )
    .expect("write feedback");
    let mut text = std::fs::read_to_string(&cfg).expect("config");
    text.push_str(&format!(
        "[detect]\nfeedback_file = \"{}\"\nsuppress = [\"detector=detect.protocol_evasion\"]\n",
        feedback.display()
    ));
    std::fs::write(&cfg, text).expect("config");
    let out = dir.path().join("alerts.jsonl");
    let r = run([
        "replay",
        "-c",
        cfg.to_str().expect("utf-8"),
        "--alerts",
        out.to_str().expect("utf-8"),
        pcap.to_str().expect("utf-8"),
    ]);
    assert!(r.status.success(), "{}", r.stderr);
    let after = alerts_of(&out);
    assert!(
        !after.iter().any(|a| a["dedup_key"] == key.as_str()),
        "{key} raised again"
    );
    assert!(!after
        .iter()
        .any(|a| a["detector"]["id"] == "detect.protocol_evasion"));
    // Other alerts still come.
    assert!(after
        .iter()
        .any(|a| a["detector"]["id"] == "detect.injection"));
}

/// CSIC 2010 (needs `../shared`): trained on normal traffic only, then scored frozen.
#[test]
fn csic_2010_targets() {
    let root = workspace_root();
    let tool = root.join("../shared/tools/csic_eval.py");
    if !tool.exists() {
        eprintln!("skipping: ../shared is absent");
        return;
    }
    let work = tempdir();
    let out = std::process::Command::new("python3")
        .arg(&tool)
        .arg("--work")
        .arg(work.path())
        .arg("--train-cmd")
        .arg(format!(
            "{} replay --learn-only --model-out {{model}} {{train}}",
            bin()
        ))
        .arg("--test-cmd")
        .arg(format!(
            "{} replay --model-in {{model}} --no-learn --transactions - {{test}}",
            bin()
        ))
        .current_dir(&root)
        .output()
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("csic:"))
        .expect("a csic line");
    let number = |label: &str| -> f64 {
        let at = line.find(label).expect(label) + label.len();
        line[at..]
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .expect("a number")
    };
    assert!(number("auc ") >= 0.97, "{line}");
    assert!(number("tpr@fpr1% ") >= 0.93, "{line}");
}
