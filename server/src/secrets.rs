//! Secrets the embedded server makes for itself and keeps in its data directory, readable by
//! its owner only: the development signing secret, the link secret, the admin password; and
//! the modes of the rest of what it keeps there.

use std::path::Path;

use anyhow::Context;
use base64::Engine;
use rand::RngCore;

/// A random secret made once and kept in the data directory, readable by its owner only.
pub fn kept_secret(data_dir: &Path, name: &str) -> anyhow::Result<String> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let path = data_dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(secret) => Ok(secret.trim().to_owned()),
        Err(_) => {
            let mut bytes = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            let secret = base64::engine::general_purpose::STANDARD.encode(bytes);
            write_private(&path, &secret)?;
            Ok(secret)
        }
    }
}

fn write_private(path: &Path, content: &str) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        file.write_all(content.as_bytes())?;
        Ok(())
    }
    #[cfg(not(unix))]
    {
        std::fs::write(path, content).with_context(|| format!("creating {}", path.display()))
    }
}

/// Files this process creates from now on are readable by their owner and group only: the
/// process's umask becomes 027 (SQLite databases 0640, folders 0750).
pub fn restrict_new_files() {
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o027));
}

/// Narrows the embedded databases in the data directory (log, read models, their WAL and
/// shared-memory files) to 0640, for files an earlier release or another umask left readable
/// by everyone.
pub fn restrict_databases(data_dir: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let Ok(entries) = std::fs::read_dir(data_dir) else {
            return Ok(());
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let database = [".db", ".db-wal", ".db-shm"]
                .iter()
                .any(|suffix| name.ends_with(suffix));
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            if database && metadata.is_file() && metadata.permissions().mode() & 0o037 != 0 {
                let mode = metadata.permissions().mode() & 0o740;
                std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(mode))
                    .with_context(|| format!("narrowing the mode of {}", entry.path().display()))?;
            }
        }
    }
    Ok(())
}
