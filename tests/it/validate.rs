//! `postcall check` passes exactly when `postcall run` starts: a table of broken
//! configurations (and a valid one), each given to the real binary twice — `check`, and `run`
//! against a fake Blackhole on 127.0.0.1 — from a working directory that is not the
//! configuration's folder (relative paths must resolve against the folder).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::servers::blackhole::Blackhole;
use crate::servers::tls::TestCa;

const ACCT: &str = "3b1f0a9c6e2d4f8a9b7c5d3e1f2a4b6c";
const TOKEN: &str = "validate-token";
const TOKEN_VAR: &str = "POSTCALL_TEST_VALIDATE_TOKEN";

/// A case: its name, what it changes in the valid configuration, and the fragment every
/// error report must contain (`None`: valid).
struct Case {
    name: &'static str,
    setup: fn(&Path, &mut Config),
    expect: &'static [&'static str],
}

/// The parts of a configuration a case may change.
struct Config {
    kazoo: bool,
    kazoo_ca: &'static str,
    receivers_ca: &'static str,
    data_dir: &'static str,
    disk_reserve_kib: u64,
    allow_private: &'static str,
    tenant: &'static str,
    url: &'static str,
    token_env: bool,
    extra: &'static str,
}

impl Config {
    fn text(&self, ws: &str) -> String {
        let mut t = String::from("[cdr]\ngrace_secs = 1\n[enrich]\nlocation = false\n");
        if self.kazoo {
            t.push_str(&format!(
                "[kazoo]\nwebsocket_url = \"{ws}\"\naccounts = [\"{ACCT}\"]\n\
                 auth_token_env = \"{TOKEN_VAR}\"\ndirectory_refresh_secs = 0\nca_file = \"{}\"\n",
                self.kazoo_ca
            ));
        }
        t.push_str(&format!(
            "[triggers]\nfiles = [\"triggers.toml\"]\nallow_http = true\nwatch_ms = 0\n\
             [delivery]\ndata_dir = \"{}\"\ndisk_reserve_kib = {}\nallow_private = [{}]\nca_file = \"{}\"\n{}",
            self.data_dir, self.disk_reserve_kib, self.allow_private, self.receivers_ca, self.extra
        ));
        t
    }

    fn triggers(&self) -> String {
        format!(
            "[[trigger]]\nid = \"t1\"\ntenant = \"{}\"\n[trigger.action]\nurl = \"{}\"\n\n\
             [[trigger]]\nid = \"t2\"\ntenant = \"{ACCT}\"\n[trigger.action]\nurl = \"https://hooks.example.com/calls\"\n",
            self.tenant, self.url
        )
    }
}

fn valid() -> Config {
    Config {
        kazoo: true,
        kazoo_ca: "certs/kazoo-ca.pem",
        receivers_ca: "certs/receivers-ca.pem",
        data_dir: "data",
        disk_reserve_kib: 64,
        allow_private: "\"127.0.0.1/32\"",
        tenant: ACCT,
        url: "http://127.0.0.1:9/calls",
        token_env: true,
        extra: "",
    }
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "valid (relative CA files, loopback receiver allow-listed)",
            setup: |_, _| {},
            expect: &[],
        },
        Case {
            name: "no [kazoo]",
            setup: |_, c| c.kazoo = false,
            expect: &["kazoo: missing: run needs a [kazoo] section"],
        },
        Case {
            name: "kazoo.ca_file missing",
            setup: |_, c| c.kazoo_ca = "certs/nope.pem",
            expect: &["kazoo.ca_file", "certs/nope.pem: cannot read CA file"],
        },
        Case {
            name: "delivery.ca_file is not PEM",
            setup: |dir, c| {
                std::fs::write(dir.join("certs/junk.pem"), "not a certificate").unwrap();
                c.receivers_ca = "certs/junk.pem";
            },
            expect: &["delivery.ca_file", "no valid PEM certificate"],
        },
        Case {
            name: "data_dir is a file",
            setup: |dir, c| {
                std::fs::write(dir.join("afile"), "x").unwrap();
                c.data_dir = "afile";
            },
            expect: &["delivery.data_dir", "afile is not a directory"],
        },
        Case {
            name: "disk reserve larger than the disk",
            setup: |_, c| c.disk_reserve_kib = 1 << 50,
            expect: &["delivery.data_dir", "disk_reserve_kib = 1125899906842624 does not fit"],
        },
        Case {
            name: "trigger tenant not an account id",
            setup: |_, c| c.tenant = "acme",
            expect: &["trigger[0].tenant: \"acme\" is not a Kazoo account id"],
        },
        Case {
            name: "trigger tenant in upper case",
            setup: |_, c| c.tenant = "3B1F0A9C6E2D4F8A9B7C5D3E1F2A4B6C",
            expect: &["trigger[0].tenant", "is not a Kazoo account id"],
        },
        Case {
            name: "trigger URL on loopback, not allow-listed",
            setup: |_, c| c.allow_private = "",
            expect: &["trigger \"t1\": action.url: destination address 127.0.0.1 is not public"],
        },
        Case {
            name: "trigger URL on a private literal",
            setup: |_, c| c.url = "https://10.1.2.3/hook",
            expect: &["trigger \"t1\": action.url: destination address 10.1.2.3 is not public"],
        },
        Case {
            name: "trigger URL on localhost",
            setup: |_, c| {
                c.allow_private = "\"10.0.0.0/8\"";
                c.url = "http://localhost:9/calls";
            },
            expect: &["trigger \"t1\": action.url: destination address 127.0.0.1 is not public"],
        },
        Case {
            name: "secret variable not set",
            setup: |_, c| c.token_env = false,
            expect: &[
                "kazoo.auth_token_env: run will fail: environment variable POSTCALL_TEST_VALIDATE_TOKEN is not set",
            ],
        },
        Case {
            name: "several problems at once, each reported",
            setup: |dir, c| {
                std::fs::write(dir.join("afile"), "x").unwrap();
                c.data_dir = "afile";
                c.kazoo_ca = "certs/nope.pem";
                c.tenant = "acme";
                c.extra = "max_in_flight = 0\n";
            },
            expect: &[
                "delivery.max_in_flight",
                "kazoo.ca_file",
                "delivery.data_dir",
                "trigger[0].tenant",
            ],
        },
    ]
}

fn postcall(args: &[&str], cwd: &Path, token: bool) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_postcall"));
    cmd.args(args).current_dir(cwd).env_remove("RUST_LOG");
    if token {
        cmd.env(TOKEN_VAR, TOKEN);
    } else {
        cmd.env_remove(TOKEN_VAR);
    }
    cmd
}

/// What `run` did: started (reached "postcall running"), or exited with its stderr.
enum RunOutcome {
    Started,
    Exited(std::process::ExitStatus, String),
}

/// Starts `postcall run`; stops it with SIGTERM once it logs that it is running.
fn run(config: &Path, cwd: &Path, token: bool) -> RunOutcome {
    let mut child = postcall(
        &[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--admin",
            "127.0.0.1:0",
        ],
        cwd,
        token,
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("postcall running") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    // Either it says it is running, or it exits (the channel closes with stderr).
    let started = rx.recv_timeout(Duration::from_secs(20)).is_ok();
    if started {
        let pid = rustix::process::Pid::from_child(&child);
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    }
    let status = child.wait().unwrap();
    let err = reader.join().unwrap();
    if started {
        assert!(status.success(), "run stopped badly after SIGTERM: {err}");
        RunOutcome::Started
    } else {
        RunOutcome::Exited(status, err)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_passes_exactly_when_run_starts() {
    let bh = Blackhole::start(&[TOKEN], &[ACCT]).await;
    let ws = bh.url();
    let ca = TestCa::new().ca_pem;
    tokio::task::spawn_blocking(move || {
        let elsewhere = tempfile::tempdir().unwrap();
        let started = std::time::Instant::now();
        for case in cases() {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir(dir.path().join("certs")).unwrap();
            for f in ["kazoo-ca.pem", "receivers-ca.pem"] {
                std::fs::write(dir.path().join("certs").join(f), &ca).unwrap();
            }
            let mut c = valid();
            (case.setup)(dir.path(), &mut c);
            let config = dir.path().join("plugin.toml");
            std::fs::write(&config, c.text(&ws)).unwrap();
            std::fs::write(dir.path().join("triggers.toml"), c.triggers()).unwrap();

            let check = postcall(
                &["check", "--config", config.to_str().unwrap()],
                elsewhere.path(),
                c.token_env,
            )
            .output()
            .unwrap();
            let check_err = String::from_utf8_lossy(&check.stderr).into_owned();
            let outcome = run(&config, elsewhere.path(), c.token_env);
            let name = case.name;
            match outcome {
                RunOutcome::Started => {
                    assert!(
                        check.status.success(),
                        "{name}: run started but check failed:\n{check_err}"
                    );
                    assert!(case.expect.is_empty(), "{name}: run started");
                }
                RunOutcome::Exited(status, run_err) => {
                    assert!(
                        !check.status.success(),
                        "{name}: check passed but run exited ({status}):\n{run_err}"
                    );
                    assert_eq!(status.code(), Some(2), "{name}: {run_err}");
                    for want in case.expect {
                        assert!(
                            check_err.contains(want),
                            "{name}: check lacks {want:?}:\n{check_err}"
                        );
                        assert!(
                            run_err.contains(want),
                            "{name}: run lacks {want:?}:\n{run_err}"
                        );
                    }
                    assert!(
                        !case.expect.is_empty(),
                        "{name}: run did not start:\n{run_err}"
                    );
                    // An OS error is said once per problem, never repeated by its cause.
                    for line in check_err.lines().chain(run_err.lines()) {
                        assert!(line.matches("(os error").count() <= 1, "{name}: {line}");
                    }
                    assert!(!check_err.contains(TOKEN) && !run_err.contains(TOKEN));
                }
            }
        }
        eprintln!("{} cases in {:?}", cases().len(), started.elapsed());
    })
    .await
    .unwrap();
}

/// `check --without-secrets` validates everything else and names the unset variable as a
/// warning; `run` still refuses to start without it.
#[test]
fn check_without_secrets_warns_and_still_checks_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("certs")).unwrap();
    let ca = TestCa::new().ca_pem;
    for f in ["kazoo-ca.pem", "receivers-ca.pem"] {
        std::fs::write(dir.path().join("certs").join(f), &ca).unwrap();
    }
    let c = valid();
    let config = dir.path().join("plugin.toml");
    std::fs::write(&config, c.text("ws://127.0.0.1:9/")).unwrap();
    std::fs::write(dir.path().join("triggers.toml"), c.triggers()).unwrap();
    let cfg = config.to_str().unwrap();
    let out = postcall(
        &["check", "--config", cfg, "--without-secrets"],
        dir.path(),
        false,
    )
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "warning: {cfg}: kazoo.auth_token_env: run will fail: environment variable {TOKEN_VAR} is not set"
        )),
        "{err}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "ok, 2 triggers (without secrets: {TOKEN_VAR} not set)"
        )),
        "{stdout}"
    );

    // The rest is still checked.
    std::fs::write(
        dir.path().join("triggers.toml"),
        c.triggers().replace(ACCT, "acme"),
    )
    .unwrap();
    let out = postcall(
        &["check", "--config", cfg, "--without-secrets"],
        dir.path(),
        false,
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a Kazoo account id"));
}
