//! Detection's I/O edge: builds the detector from the config, reads the feedback file and
//! model snapshots, writes snapshots atomically. The detector itself does no I/O.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::config::Config;

/// What `--learn-only` and `--no-learn` leave switched on.
#[derive(Clone, Copy, Debug)]
pub struct Mode {
    pub learn: bool,
    pub alert: bool,
}

/// A detector, and the inventory templates its snapshot carried.
pub struct Opened {
    pub detect: detect::Detect,
    pub catalogue: Option<serde_json::Value>,
}

/// The detector the config asks for (`None` when `detect.enabled` is off), restored from
/// `model_in` when given.
pub fn open(
    cfg: &Config,
    mode: Mode,
    model_in: Option<&Path>,
    model_out: Option<&Path>,
) -> Result<Option<Opened>> {
    if !mode.learn && !mode.alert {
        bail!("--learn-only and --no-learn together would neither learn nor alert; drop one");
    }
    let enabled = cfg.detect.enabled && cfg.inventory.enabled;
    if !enabled {
        if model_in.is_some() || model_out.is_some() || !mode.learn || !mode.alert {
            bail!(
                "detection is off ({}); set it to true to use --model-in, --model-out, --learn-only or --no-learn",
                if cfg.detect.enabled {
                    "inventory.enabled = false, and detection needs the inventory"
                } else {
                    "detect.enabled = false"
                }
            );
        }
        return Ok(None);
    }
    if let Some(p) = model_out {
        check_writable(p).with_context(|| format!("--model-out {}", p.display()))?;
    }
    let mut dc = cfg.detect.to_config(false_positives(cfg)?);
    dc.learn = mode.learn;
    dc.alert = mode.alert;
    let opened = match model_in {
        Some(p) => {
            let bytes = std::fs::read(p)
                .with_context(|| format!("--model-in {}: cannot read the model", p.display()))?;
            let (detect, catalogue) = detect::Detect::restore(dc, &bytes)
                .with_context(|| format!("--model-in {}", p.display()))?;
            Opened {
                detect,
                catalogue: Some(catalogue),
            }
        }
        None => Opened {
            detect: detect::Detect::new(dc),
            catalogue: None,
        },
    };
    Ok(Some(opened))
}

/// The analysis stage for a detector: templates from its snapshot, frozen when not learning.
pub fn analyzer(
    cfg: &Config,
    opened: Option<&mut Opened>,
    learn: bool,
) -> Result<inventory::Analyzer> {
    let mut inv = cfg.inventory();
    inv.learn_templates = learn;
    let mut analyzer = inventory::Analyzer::new(inv, inventory::profile::ProfileLimits::default());
    if let Some(cat) = opened.and_then(|o| o.catalogue.take()) {
        if !cat.is_null() {
            analyzer
                .inventory
                .restore_catalogue(cat)
                .map_err(|e| anyhow::anyhow!("the model's templates do not load: {e}"))?;
        }
    }
    Ok(analyzer)
}

/// A snapshot of the detector with the inventory's templates.
pub fn snapshot(
    detect: &std::sync::Mutex<detect::Detect>,
    analyzer: Option<&std::sync::Mutex<inventory::Analyzer>>,
) -> Vec<u8> {
    let catalogue = analyzer
        .map(|a| {
            a.lock()
                .unwrap_or_else(|e| e.into_inner())
                .inventory
                .catalogue()
                .snapshot()
        })
        .unwrap_or(serde_json::Value::Null);
    detect
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .snapshot(&catalogue)
}

/// The dedup keys of `detect.feedback_file`.
pub fn false_positives(cfg: &Config) -> Result<Vec<String>> {
    let path = &cfg.detect.feedback_file;
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("detect.feedback_file {path}: cannot read it"))?;
    crate::config::detection::read_false_positives(&text)
        .map_err(|e| anyhow::anyhow!("detect.feedback_file {path}: {e}"))
}

fn check_writable(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        bail!(
            "the folder {} does not exist; create it first",
            dir.display()
        );
    }
    Ok(())
}

/// Writes a snapshot so that a reader never sees half of one (a temporary file renamed).
pub fn save_snapshot(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("{}: cannot write the model", path.display()))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("{}: cannot write the model", path.display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("{}: cannot write the model", path.display()))?;
    Ok(())
}
