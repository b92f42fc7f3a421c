//! A real PostgreSQL server for the tests: `initdb` in a temporary directory and
//! `postgres` on a free loopback port, as the `postgres` user when the tests run as root
//! (PostgreSQL refuses to run as root). A test can kill it (`SIGKILL`, as a crash) and
//! restart it on the same data. `POSTGRES_URL` uses an external server instead (fault tests
//! then skip). Without either the tests print a notice and pass, unless `CI` is set: then
//! they fail.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A PostgreSQL server for a test: one it started (and stops when dropped), or the one at
/// `POSTGRES_URL`.
pub struct Postgres {
    /// Where to connect (the `postgres` superuser, trusted).
    pub url: String,
    port: u16,
    dir: Option<PathBuf>,
    child: Option<Child>,
    user: Option<(u32, u32)>,
}

/// Where Debian's packages put the server's programs (not on `PATH`).
fn program(name: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file());
    on_path.or_else(|| {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin").join(name)))
            .filter(|p| p.is_file())
            .collect();
        versions.sort();
        versions.pop()
    })
}

/// The `postgres` user's uid and gid, when running as root.
fn postgres_user() -> Option<(u32, u32)> {
    let me = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&me.stdout).trim() != "0" {
        return None;
    }
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, "postgres"]).output().ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

impl Postgres {
    /// The server at `POSTGRES_URL`, or a new one; `None` (with a notice) if neither can be
    /// had and `CI` is not set.
    pub fn start() -> Option<Postgres> {
        if let Ok(url) = std::env::var("POSTGRES_URL") {
            return Some(Postgres {
                url,
                port: 0,
                dir: None,
                child: None,
                user: None,
            });
        }
        match Self::init() {
            Ok(postgres) => Some(postgres),
            Err(e) => crate::unavailable("PostgreSQL", "POSTGRES_URL", &e),
        }
    }

    fn init() -> Result<Postgres, String> {
        let initdb = program("initdb").ok_or("initdb not found (install postgresql)")?;
        let port = crate::free_port();
        let dir = std::env::temp_dir().join(format!("countersign-postgres-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let user = postgres_user();
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
        }
        let mut command = Command::new(initdb);
        command
            .args(["-D", dir.join("data").to_str().unwrap()])
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        as_user(&mut command, user);
        let out = command.output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let mut postgres = Postgres {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            port,
            dir: Some(dir),
            child: None,
            user,
        };
        postgres.spawn()?;
        Ok(postgres)
    }

    /// Whether this test owns the server (and may kill or restart it).
    pub fn owned(&self) -> bool {
        self.child.is_some() || self.dir.is_some()
    }

    fn spawn(&mut self) -> Result<(), String> {
        let server = program("postgres").ok_or("postgres not found")?;
        let dir = self.dir.clone().ok_or("no data directory")?;
        let mut command = Command::new(server);
        command
            .args(["-D", dir.join("data").to_str().unwrap()])
            .args(["-p", &self.port.to_string()])
            .args(["-k", dir.to_str().unwrap()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            // A process crash loses nothing without fsync; only the machine's would.
            .args(["-c", "fsync=off", "-c", "max_connections=200"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        as_user(&mut command, self.user);
        self.child = Some(command.spawn().map_err(|e| e.to_string())?);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.ready() {
            // A postmaster that exits at once (after a crash, while the old backends still
            // hold the shared memory) will never be ready: say so now, so `restart` retries.
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(format!("postgres exited on port {}: {status}", self.port));
            }
            if Instant::now() > deadline {
                return Err(format!("postgres did not start on port {}", self.port));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    fn ready(&self) -> bool {
        let Some(isready) = program("pg_isready") else {
            return std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok();
        };
        Command::new(isready)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// `kill -9` of the postmaster: a crash. Its backends exit when they notice.
    pub fn kill(&mut self) {
        crate::kill(&mut self.child);
    }

    /// Starts it again on the same data and port (crash recovery replays the WAL).
    pub fn restart(&mut self) {
        self.kill();
        // The old backends must be gone before a new postmaster may use the directory.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(e) if Instant::now() > deadline => panic!("postgres did not restart: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// A pool for test set-up and inspection.
    pub async fn pool(&self) -> sqlx::PgPool {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .connect(&self.url)
            .await
            .unwrap()
    }

    /// A database of its own for a test (tests may share an external server).
    pub async fn database(&self, name: &str) -> String {
        let pool = self.pool().await;
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&pool)
            .await;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        match self.url.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => self.url.clone(),
        }
    }

    /// The data directory of a server this test started.
    pub fn data_dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }
}

fn as_user(command: &mut Command, user: Option<(u32, u32)>) {
    if let Some((uid, gid)) = user {
        command.uid(uid).gid(gid);
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.kill();
        if let Some(dir) = self.dir.take() {
            // Backends may still be writing for a moment after the postmaster died.
            std::thread::sleep(Duration::from_millis(100));
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
