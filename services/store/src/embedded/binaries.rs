//! Where the PostgreSQL server binaries are: `pg_config --bindir`, then PATH, then the Debian
//! layout `/usr/lib/postgresql/<major>/bin` (newest major first).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::EmbeddedError;

const REQUIRED: [&str; 3] = ["initdb", "pg_ctl", "postgres"];

pub(crate) fn find_bindir(explicit: Option<&Path>) -> Result<PathBuf, EmbeddedError> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = explicit {
        candidates.push(dir.to_owned());
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !dir.is_empty() {
            candidates.push(PathBuf::from(dir));
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    candidates.extend(debian_bindirs());
    let found = candidates
        .iter()
        .find(|d| REQUIRED.iter().all(|b| is_executable(&d.join(b))));
    match found {
        Some(dir) => Ok(dir.clone()),
        None => Err(EmbeddedError::BinariesNotFound {
            searched: candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

fn debian_bindirs() -> Vec<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((major, e.path().join("bin")))
        })
        .collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.0));
    dirs.into_iter().map(|(_, d)| d).collect()
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
