//! A throwaway PostgreSQL cluster for the tests that need one: `initdb` on a temp dir, the
//! server on a free loopback port (and a unix socket in the temp dir), stopped on drop.
//!
//! The binaries come from the directory named by `POSTCALL_TEST_PG_BIN` (`initdb`, `pg_ctl`,
//! `postgres`; `scripts/test` sets it). Without it a test calling [`Postgres::start`] gets
//! `None` and says so on the terminal (past libtest's capture), then passes — unless
//! `POSTCALL_TEST_REQUIRE=1` (set by `scripts/test`), which makes it fail. Run as root, the
//! cluster belongs to the `postgres` OS user (PostgreSQL refuses to run as root).
//!
//! [`Proxy`] is a TCP hop between one instance and the cluster that a test can cut (every
//! connection closed, new ones refused) and heal: a network partition.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The variable naming the directory of PostgreSQL's server binaries.
pub const PG_BIN: &str = "POSTCALL_TEST_PG_BIN";

/// Says loudly, past the test harness's output capture, that `test` did not run.
pub fn skipped(test: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: needs PostgreSQL (set {PG_BIN}, or run scripts/test)"
    );
}

/// A running cluster.
pub struct Postgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    owner: Option<(u32, u32)>,
}

/// uid and gid of the `postgres` OS user, when running as root.
fn postgres_user() -> Option<(u32, u32)> {
    if !running_as_root() {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 4 || f[0] != "postgres" {
            return None;
        }
        Some((f[2].parse().ok()?, f[3].parse().ok()?))
    })
}

fn running_as_root() -> bool {
    // The tests run as the user who owns the target dir; root is the case that needs care.
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

impl Postgres {
    /// Starts a fresh cluster, or returns `None` (after saying so) when `POSTCALL_TEST_PG_BIN`
    /// is not set.
    pub fn start(test: &str) -> Option<Self> {
        let Some(bin) = std::env::var_os(PG_BIN).map(PathBuf::from) else {
            // `scripts/test` sets POSTCALL_TEST_REQUIRE=1: there, a missing part fails.
            assert!(
                std::env::var("POSTCALL_TEST_REQUIRE").as_deref() != Ok("1"),
                "{test}: {PG_BIN} is not set and POSTCALL_TEST_REQUIRE=1"
            );
            skipped(test);
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("postcall-pg")
            .tempdir()
            .unwrap();
        let owner = postgres_user();
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = Self {
            bin,
            dir,
            port,
            owner,
        };
        let data = pg.data();
        pg.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        pg.start_server();
        Some(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let mut cmd = Command::new(self.bin.join(tool));
        cmd.args(args).current_dir(self.dir.path());
        if let Some((uid, gid)) = self.owner {
            use std::os::unix::process::CommandExt;
            cmd.uid(uid).gid(gid);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the server (again, after [`Postgres::stop`]).
    pub fn start_server(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let data = self.data();
        let log = self.dir.path().join("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &opts,
                "-w",
                "start",
            ],
        );
    }

    /// Stops the server (`fast`: open transactions are rolled back, clients disconnected).
    pub fn stop(&self) {
        let data = self.data();
        self.run(
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-m", "fast", "-w", "stop"],
        );
    }

    /// Serves TLS only from now on: the certificate chain and key given (PEM), `ssl = on`, and
    /// `pg_hba.conf` accepting TCP clients over TLS alone (a plaintext connection is refused),
    /// then restarts the server.
    pub fn require_tls(&self, chain_pem: &str, key_pem: &str) {
        use std::os::unix::fs::PermissionsExt;
        let data = self.data();
        for (file, text, mode) in [
            ("server.crt", chain_pem, 0o644),
            ("server.key", key_pem, 0o600),
        ] {
            let path = data.join(file);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            if let Some((uid, gid)) = self.owner {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
            }
        }
        let conf = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text.push_str("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        std::fs::write(&conf, text).unwrap();
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
        )
        .unwrap();
        self.stop();
        self.start_server();
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A URL for database `db` on the cluster.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{db}?sslmode=disable",
            self.port
        )
    }

    /// Creates database `name` and returns its URL.
    pub async fn database(&self, name: &str) -> String {
        let (client, conn) = tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls)
            .await
            .unwrap();
        let task = tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        drop(client);
        let _ = task.await;
        self.url(name)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data();
        let mut cmd = Command::new(self.bin.join("pg_ctl"));
        cmd.args(["-D", data.to_str().unwrap(), "-m", "fast", "-w", "stop"]);
        if let Some((uid, gid)) = self.owner {
            use std::os::unix::process::CommandExt;
            cmd.uid(uid).gid(gid);
        }
        let _ = cmd.output();
    }
}

/// A TCP hop to `127.0.0.1:target` that can be cut (a network partition) and healed.
pub struct Proxy {
    port: u16,
    cut: Arc<AtomicBool>,
    live: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port.
    pub async fn start(target: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let live: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (c, l) = (cut.clone(), live.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if c.load(Ordering::SeqCst) {
                    drop(inbound); // refused: closed at once
                    continue;
                }
                let pipe = tokio::spawn(async move {
                    if let Ok(mut out) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                l.lock().unwrap().push(pipe.abort_handle());
            }
        });
        Self {
            port,
            cut,
            live,
            task,
        }
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Closes every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for h in self.live.lock().unwrap().drain(..) {
            h.abort();
        }
    }

    /// Lets connections through again.
    pub fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut();
    }
}
