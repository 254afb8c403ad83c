//! `mirador inventory`: the API seen in capture files, as OpenAPI 3.1.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use clap::Args;

use crate::config::{Config, ExportFormat};

#[derive(Args, Debug)]
pub struct InventoryArgs {
    /// Configuration file (defaults apply when omitted); its [inventory] section applies.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Reference OpenAPI spec (YAML or JSON): mark each operation documented, shadow, zombie
    /// or unused (`x-mirador-status`). Overrides inventory.spec.
    #[arg(long, value_name = "SPEC")]
    pub spec: Option<PathBuf>,
    /// Output encoding.
    #[arg(long, value_enum, default_value = "openapi-yaml")]
    pub format: ExportFormat,
    /// Write the document to PATH instead of stdout.
    #[arg(short = 'o', long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Flow workers (default: pipeline.workers from the config).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Never show a progress bar, even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
    /// Capture files, processed in the order given as one continuous capture.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}

/// Reads and parses a reference spec; the error names the file and what is wrong.
pub fn load_spec(path: &Path) -> Result<inventory::spec::Spec> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read the reference spec", path.display()))?;
    inventory::spec::Spec::parse(&text).map_err(|e| {
        anyhow::anyhow!(
            "{}: not a usable OpenAPI spec: {e}; pass an OpenAPI 3.x or Swagger 2.0 document (YAML or JSON)",
            path.display()
        )
    })
}

/// The document in the requested encoding, ending with a newline.
pub fn encode(doc: &serde_json::Value, format: ExportFormat) -> Result<Vec<u8>> {
    let mut out = match format {
        ExportFormat::OpenapiJson => serde_json::to_vec_pretty(doc)?,
        ExportFormat::OpenapiYaml => serde_norway::to_string(doc)?.into_bytes(),
    };
    if out.last() != Some(&b'\n') {
        out.push(b'\n');
    }
    Ok(out)
}

/// Writes `bytes` to `path` through a temporary file and a rename, so readers never see half.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let mut tmp = tempfile::NamedTempFile::new_in(dir.unwrap_or(Path::new(".")))
        .with_context(|| format!("{}: cannot create a file beside it", path.display()))?;
    tmp.write_all(bytes)?;
    // The inventory holds no secret: readable like any report (a temporary file is 0600).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(())
}

pub fn run(args: InventoryArgs) -> Result<()> {
    let cfg = match &args.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    let spec_path = args
        .spec
        .clone()
        .or_else(|| (!cfg.inventory.spec.is_empty()).then(|| PathBuf::from(&cfg.inventory.spec)));
    let spec = spec_path.as_deref().map(load_spec).transpose()?;
    let readers = crate::replay::open_all(&args.files)?;
    let inv = Arc::new(Mutex::new(cfg.analyzer()));
    crate::replay::process(
        &cfg,
        readers,
        args.workers,
        args.no_progress,
        None,
        crate::replay::Analysis {
            inventory: Some(inv.clone()),
            ..Default::default()
        },
        None,
    )?;
    let mut analyzer = inv.lock().unwrap_or_else(|e| e.into_inner());
    let doc = inventory::openapi::render(&mut analyzer.inventory, spec.as_ref());
    let bytes = encode(&doc, args.format)?;
    match &args.output {
        Some(p) => write_atomically(p, &bytes),
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)?;
            out.flush()?;
            Ok(())
        }
    }
}
