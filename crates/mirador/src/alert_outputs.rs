//! Where alerts go in `replay` and `run`: the `[[outputs]]` of the config and, first, the one
//! output `--alerts PATH|-` (or `output.alerts`) stands for, in `--alert-format`, running as
//! [`delivery::Outputs`]. Submitting never waits; at exit what could not be delivered is said.

use std::path::Path;
use std::time::Instant;

use ::delivery::{OutputConfig, Outputs};
use anyhow::{Context, Result};

use crate::config::Config;

/// Starts the outputs (none at all: an empty set that drops nothing because it takes
/// nothing).
pub fn start(
    cfg: &Config,
    alerts: Option<&Path>,
    format: sinks::siem::AlertFormat,
) -> Result<Outputs> {
    let mut outs: Vec<OutputConfig> = Vec::with_capacity(cfg.outputs.len() + 1);
    if let Some(p) = alerts {
        outs.push(OutputConfig::cli(&p.display().to_string(), format));
    }
    outs.extend(cfg.outputs.iter().cloned());
    if outs.is_empty() {
        return Ok(Outputs::none());
    }
    Outputs::start(&outs, &crate::output::encode_context()).context("starting the alert outputs")
}

/// Lets every output deliver what it holds (until `deadline`, or each output's
/// `drain_timeout_secs`), then says on stderr what each configured output did and what is
/// left; the `--alerts` output is named only when it lost something.
pub fn finish(outputs: Outputs, deadline: Option<Instant>) -> u64 {
    let left = outputs.finish(deadline);
    let mut lost = 0;
    for l in &left {
        let m = &l.metrics;
        let trouble = l.pending > 0 || m.dropped > 0 || m.dead_lettered > 0;
        if l.name != "alerts" || trouble {
            eprintln!("mirador: {l}");
        }
        if trouble && !l.on_disk {
            lost += l.pending;
        }
        if l.pending > 0 && l.on_disk {
            tracing::warn!(output = %l.name, left = l.pending, "alerts left in the spool for the next start");
        }
    }
    lost
}

/// Before `run` drops root: the spool directories (created by [`start`]) and what is in them
/// are given to `run.user`, so the unprivileged process can add segments and dead letters.
pub fn give_spools_to_run_user(cfg: &Config) -> Result<()> {
    if !nix::unistd::geteuid().is_root() || cfg.run.user.is_empty() {
        return Ok(());
    }
    let Some(user) = nix::unistd::User::from_name(&cfg.run.user).context("looking up run.user")?
    else {
        // drop_privileges names the missing user.
        return Ok(());
    };
    for o in &cfg.outputs {
        let Some(dir) = o.spool_dir() else { continue };
        let own = |p: &Path| {
            nix::unistd::chown(p, Some(user.uid), Some(user.gid))
                .with_context(|| format!("{}: giving the spool to run.user", p.display()))
        };
        own(&dir)?;
        for entry in std::fs::read_dir(&dir)
            .with_context(|| format!("{}: reading the spool", dir.display()))?
            .flatten()
        {
            own(&entry.path())?;
        }
    }
    Ok(())
}
