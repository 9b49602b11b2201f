//! `postcall record` says what went wrong: a refused token, a refused subscription and a closed
//! port are printed (Kazoo's own reply for the first two) and end with a non-zero exit after
//! `--attempts` failed connections; a working PBX records and exits 0. The real binary against
//! a fake Blackhole on 127.0.0.1.

use std::path::Path;
use std::process::{Command, Output};

use crate::servers::blackhole::Blackhole;

const ACCT: &str = "3b1f0a9c6e2d4f8a9b7c5d3e1f2a4b6c";
const OTHER: &str = "9ed5a7c3b1f04e2d8c6a5b3f1e0d2c4a";
const TOKEN: &str = "record-token";

fn config(dir: &Path, ws: &str, token: &str, account: &str) -> std::path::PathBuf {
    let path = dir.join("plugin.toml");
    std::fs::write(
        &path,
        format!(
            "[kazoo]\nwebsocket_url = \"{ws}\"\naccounts = [\"{account}\"]\nauth_token = \"{token}\"\n\
             directory_refresh_secs = 0\n"
        ),
    )
    .unwrap();
    path
}

/// Runs `postcall record` on a blocking thread (the fake server runs on the test's runtime).
async fn record(config: std::path::PathBuf, out: std::path::PathBuf, extra: &[&str]) -> Output {
    let mut args: Vec<String> = vec![
        "record".into(),
        "--config".into(),
        config.display().to_string(),
        "--out".into(),
        out.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_postcall"))
            .args(&args)
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_printed_with_kazoos_reply_and_exits_non_zero() {
    let bh = Blackhole::start(&[TOKEN], &[ACCT]).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &bh.url(), "wrong-token-71", ACCT);
    let o = record(cfg, dir.path().join("out.jsonl"), &["--attempts", "2"]).await;
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    // Kazoo's refusal, with the token it echoes scrubbed.
    assert!(
        err.contains("failed to authenticate token [redacted]"),
        "{err}"
    );
    assert!(!err.contains("wrong-token-71"), "{err}");
    assert!(err.contains("gave up after 2 connection attempts"), "{err}");
    assert!(err.contains("0 frames written"), "{err}");
    assert_eq!(bh.requests().len(), 2, "one subscribe per attempt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_subscription_is_printed_and_exits_non_zero() {
    let bh = Blackhole::start(&[TOKEN], &[ACCT]).await;
    let dir = tempfile::tempdir().unwrap();
    // A valid token, but an account outside its hierarchy.
    let cfg = config(dir.path(), &bh.url(), TOKEN, OTHER);
    let o = record(cfg, dir.path().join("out.jsonl"), &["--attempts", "2"]).await;
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("subscription refused"), "{err}");
    assert!(err.contains("unauthorized account id"), "{err}");
    assert!(err.contains("every subscription was refused"), "{err}");
    assert!(err.contains("gave up after 2 connection attempts"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_is_printed_and_exits_non_zero() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &format!("ws://127.0.0.1:{port}/"), TOKEN, ACCT);
    let o = record(cfg, dir.path().join("out.jsonl"), &["--attempts", "3"]).await;
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("Connection refused"), "{err}");
    assert!(err.contains("gave up after 3 connection attempts"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribed_without_events_until_the_timeout_exits_non_zero() {
    let mut bh = Blackhole::start(&[TOKEN], &[ACCT]).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &bh.url(), TOKEN, ACCT);
    let o = record(cfg, dir.path().join("out.jsonl"), &["--timeout", "1"]).await;
    bh.wait_subscribed(1).await;
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("subscribed, but no event arrived"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_are_recorded_and_the_exit_is_zero() {
    let mut bh = Blackhole::start(&[TOKEN], &[ACCT]).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &bh.url(), TOKEN, ACCT);
    let out = dir.path().join("out.jsonl");
    let run = tokio::spawn(record(
        cfg,
        out.clone(),
        &["--frames", "2", "--timeout", "30"],
    ));
    bh.wait_subscribed(1).await;
    let frames = [
        r#"{"action":"event","name":"CHANNEL_CREATE","data":{"call_id":"c1"}}"#,
        r#"{"action":"event","name":"CHANNEL_DESTROY","data":{"call_id":"c1"}}"#,
    ];
    for f in frames {
        bh.push(f);
    }
    let o = run.await.unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        format!("{}\n{}\n", frames[0], frames[1])
    );
    assert!(stderr(&o).contains("2 frames written"));
}
