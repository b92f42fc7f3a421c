//! A real redis-server for the tests: a child on a free loopback port (with `DEBUG`
//! enabled, so tests can stall it), that a test can kill (`SIGKILL`) and restart on the same
//! port. `REDIS_URL` uses an external server instead (fault tests then skip). Without either
//! the tests print a notice and pass, unless `CI` is set: then they fail.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// A redis-server for a test: one it started (and kills when dropped), or the one at
/// `REDIS_URL`.
pub struct Redis {
    /// Where to connect.
    pub url: String,
    port: u16,
    child: Option<Child>,
    /// Extra server arguments (e.g. persistence), kept for restarts.
    args: Vec<String>,
}

impl Redis {
    /// A server without persistence.
    pub fn start() -> Option<Redis> {
        Self::start_with(&["--save", "", "--appendonly", "no"])
    }

    /// A server started with `args` (or the one at `REDIS_URL`); `None` (with a notice) if
    /// neither can be had and `CI` is not set.
    pub fn start_with(args: &[&str]) -> Option<Redis> {
        if let Ok(url) = std::env::var("REDIS_URL") {
            return Some(Redis {
                url,
                port: 0,
                child: None,
                args: Vec::new(),
            });
        }
        let port = crate::free_port();
        let mut redis = Redis {
            url: format!("redis://127.0.0.1:{port}/"),
            port,
            child: None,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
        };
        match redis.spawn() {
            Ok(()) => Some(redis),
            Err(e) => crate::unavailable("Redis", "REDIS_URL", &e),
        }
    }

    /// Whether this test owns the server (and may kill, restart or stall it).
    pub fn owned(&self) -> bool {
        self.port != 0
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let dir = std::env::temp_dir().join(format!("countersign-redis-{}", self.port));
        std::fs::create_dir_all(&dir)?;
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--enable-debug-command",
                "yes",
                "--dir",
                dir.to_str().unwrap_or("."),
            ])
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// `kill -9`: the server dies without writing anything.
    pub fn kill(&mut self) {
        crate::kill(&mut self.child);
    }

    /// Starts it again on the same port (with the same persistence settings).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn().unwrap();
    }

    /// A synchronous connection for test set-up and inspection.
    pub fn command(&self, args: &[&str]) -> redis::Value {
        let client = redis::Client::open(self.url.as_str()).unwrap();
        let mut connection = client.get_connection().unwrap();
        let mut command = redis::cmd(args[0]);
        for arg in &args[1..] {
            command.arg(*arg);
        }
        command.query(&mut connection).unwrap()
    }

    /// Stalls the server for `secs` (`DEBUG SLEEP`) without waiting for it.
    pub fn stall(&self, secs: f64) {
        let url = self.url.clone();
        std::thread::spawn(move || {
            let client = redis::Client::open(url.as_str()).unwrap();
            let mut connection = client.get_connection().unwrap();
            let _: redis::RedisResult<redis::Value> = redis::cmd("DEBUG")
                .arg("SLEEP")
                .arg(secs)
                .query(&mut connection);
        });
        // Let the DEBUG SLEEP reach the server first.
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A key prefix of its own for each test (they may share an external server).
pub fn unique_prefix(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("countersign-test:{test}:{nanos}:")
}

/// A replay guard over a Redis store on `redis`, with a key prefix of the test's own.
pub async fn guard(redis: &Redis, test: &str) -> countersign::claim::ReplayGuard {
    let store = countersign::claim::redis::RedisStore::connect(&redis.url)
        .await
        .unwrap()
        .with_prefix(&unique_prefix(test));
    countersign::claim::ReplayGuard::new(store, test).unwrap()
}
