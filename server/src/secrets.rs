//! Secrets the embedded server makes for itself and keeps in its data directory, readable by
//! its owner only: the development signing secret, the link secret, the admin password.

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
