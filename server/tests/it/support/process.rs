//! The server as a real process, for faults that only a process shows: kill -9, SIGTERM,
//! restarts, and a data directory on a small tmpfs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http_edge::auth::{AuthSettings, Issuer, TokenKind};

/// The secret every process of these tests signs and verifies tokens with.
pub const SECRET: &str = "process test secret";

pub struct ServerProcess {
    child: Option<Child>,
    pub base: String,
    pub data_dir: PathBuf,
    log: PathBuf,
    environment: Vec<(String, String)>,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl ServerProcess {
    /// Starts `deployments` on `data_dir` with these extra `DEPLOYMENTS_*` variables, and
    /// waits until it answers.
    pub async fn start(data_dir: &Path, environment: &[(&str, &str)]) -> Self {
        let mut process = Self {
            child: None,
            base: String::new(),
            data_dir: data_dir.to_owned(),
            log: tempfile::NamedTempFile::new()
                .unwrap()
                .into_temp_path()
                .keep()
                .unwrap(),
            environment: environment
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect(),
        };
        process.spawn();
        process.wait_until_alive().await;
        process
    }

    fn spawn(&mut self) {
        let port = free_port();
        self.base = format!("http://127.0.0.1:{port}");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_deployments"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("DEPLOYMENTS_LISTEN", format!("127.0.0.1:{port}"))
            .env("DEPLOYMENTS_DATA_DIR", &self.data_dir)
            .env("DEPLOYMENTS_AUTH__HS256_SECRET", SECRET)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        for (key, value) in &self.environment {
            command.env(key, value);
        }
        self.child = Some(command.spawn().expect("the deployments binary starts"));
    }

    /// Waits until `/alive` answers; fails the test with the server's log if it exits.
    pub async fn wait_until_alive(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let client = reqwest::Client::new();
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("the server exited with {status}:\n{}", self.log_text());
            }
            let alive = client
                .get(self.url("/api/internal/v1/deployments/alive"))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if alive.is_ok_and(|response| response.status() == 204) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the server did not answer:\n{}", self.log_text());
    }

    /// Starts the process again on the same data directory (a new port).
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the process first");
        self.spawn();
        self.wait_until_alive().await;
    }

    /// Runs a subcommand of the binary (`rebuild`, `backup ...`) on the same data directory
    /// and settings, the server stopped or not: whether it succeeded, and what it said.
    pub fn run(&self, arguments: &[&str]) -> (bool, String) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_deployments"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DEPLOYMENTS_DATA_DIR", &self.data_dir)
            .env("DEPLOYMENTS_AUTH__HS256_SECRET", SECRET)
            .args(arguments);
        for (key, value) in &self.environment {
            command.env(key, value);
        }
        let output = command.output().unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// Starts the process again without waiting for it to answer.
    pub fn restart_in_background(&mut self) {
        assert!(self.child.is_none(), "stop the process first");
        self.spawn();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// kill -9: no shutdown, no flush, no cleanup.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Sends SIGTERM and waits (at most `limit`) for the process to exit; returns how long
    /// it took, or `None` if it was still running (it is then killed).
    pub fn terminate(&mut self, limit: Duration) -> Option<Duration> {
        let mut child = self.child.take()?;
        let started = Instant::now();
        let signalled = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(signalled.success());
        while started.elapsed() < limit {
            if child.try_wait().unwrap().is_some() {
                return Some(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        None
    }

    /// Everything the process (every start of it) wrote to stderr.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn token(&self, subject: &str, kind: TokenKind) -> String {
        let issuer = Issuer::from_settings(&AuthSettings {
            hs256_secret: Some(SECRET.into()),
            ..AuthSettings::default()
        })
        .unwrap();
        issuer.issue(&Issuer::claims(
            subject,
            &events::TenantId::default(),
            kind,
            chrono::Duration::hours(1),
        ))
    }

    /// A GET as the administrator: the status and the body.
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let response = reqwest::Client::new()
            .get(self.url(path))
            .bearer_auth(self.admin())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }

    /// Uploads an artifact file as the administrator: the status and the body.
    pub async fn upload(&self, file: &Path) -> (u16, serde_json::Value) {
        let response = reqwest::Client::new()
            .post(self.url("/api/management/v1/deployments/artifacts"))
            .bearer_auth(self.admin())
            .multipart(super::artifact_form(file))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }

    pub fn admin(&self) -> String {
        self.token("admin", TokenKind::User)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A tmpfs of its own, unmounted when dropped: a disk that can really fill up.
pub struct Tmpfs {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `megabytes`. Needs root (CI runs as root); anything else fails the
    /// test rather than skipping it.
    pub fn mount(megabytes: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "cannot mount a tmpfs at {} (the disk-full tests need root)",
            dir.path().display()
        );
        Self {
            path: dir.path().to_owned(),
            _dir: dir,
        }
    }

    /// Writes a file until the disk is full; returns its path (remove it to free the space).
    pub fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.path.join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        loop {
            match file.write(&chunk) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        // A page or so may still be free; take it with small writes.
        while file.write(&[0u8; 512]).is_ok_and(|written| written > 0) {}
        let _ = file.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
