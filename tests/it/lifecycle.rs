//! Stopping and starting: nothing received is dropped, nothing saved is lost to a failed start.

use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use postcall::run::driver::{drive, DriverCounters, DriverOptions};
use postcall::run::state;
use postcall::session::Settings;
use postcall::sim;
use postcall::source::blackhole::SourceMsg;
use tokio::sync::{mpsc, watch};

use crate::run::{demo_blackhole, opts, write_config_with};

/// Frames already in the driver's channel when the stop comes are folded in, not left behind:
/// the stopped driver holds the whole call (before, it stopped at once, mid-call).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_driver_folds_every_frame_already_received() {
    let frames: Vec<String> = sim::scenario("pstn_answered")
        .unwrap()
        .into_iter()
        .map(|f| f.text)
        .collect();
    let expected = postcall::replay::replay_str(&frames.join("\n"), Arc::new(Settings::default()));
    for _ in 0..20 {
        let (tx, rx) = mpsc::channel(frames.len());
        for text in &frames {
            tx.try_send(SourceMsg::Frame {
                text: text.clone(),
                at: postcall::clock::WallTime::now(),
            })
            .unwrap();
        }
        // The source has stopped: the stop is signalled and its sender is gone.
        drop(tx);
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        stop.cancel();
        let (_settings_tx, settings) = watch::channel(Arc::new(Settings::default()));
        let (out_tx, mut out) = mpsc::channel(16);
        let mut asm = drive(
            None,
            settings,
            rx,
            out_tx,
            DriverOptions {
                tick: Duration::from_millis(20),
                tenants: Default::default(),
                channels: None,
                limits: Default::default(),
                backfill: None,
            },
            Arc::new(DriverCounters::default()),
            shutdown,
        )
        .await;
        let mut cdrs = Vec::new();
        while let Ok(c) = out.try_recv() {
            cdrs.push(c);
        }
        asm.flush(&mut cdrs);
        assert_eq!(cdrs.len(), 1);
        assert_eq!(
            serde_json::to_value(&cdrs[0].cdr).unwrap(),
            serde_json::to_value(&expected[0].cdr).unwrap()
        );
    }
}

/// A start that fails after the saved sessions were found (here: the admin port is taken)
/// leaves them on disk for the next start (before, they were read and deleted first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_start_keeps_the_saved_sessions() {
    let bh = demo_blackhole().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config_with(dir.path(), &bh.url(), &["http://127.0.0.1:9/calls"], "");

    // A previous run's saved state: one call in progress.
    let frames: Vec<String> = sim::scenario("pstn_answered")
        .unwrap()
        .into_iter()
        .map(|f| f.text)
        .collect();
    let mut asm = postcall::session::Assembler::new(Arc::new(Settings::default()));
    for f in &frames[..frames.len() / 2] {
        if let Ok(postcall::source::Frame::Event(ev)) = postcall::source::decode_frame(f) {
            asm.apply(&ev, ev.time.unwrap_or_default().as_processing_time());
        }
    }
    let data = dir.path().join("data");
    let path = state::state_path(&data);
    let saved = state::SavedState {
        open: asm.snapshot(),
        closed: Vec::new(),
    };
    assert_eq!(saved.open.sessions(), 1);
    state::save(&path, &saved).unwrap();
    let before = std::fs::read(&path).unwrap();

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut o = opts();
    o.admin = taken.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone();
    let err = postcall::run::sidecar::run(cfg, o, shutdown, None)
        .await
        .expect_err("the admin port is taken");
    assert!(format!("{err:#}").contains("admin listener"), "{err:#}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "saved sessions kept as they were"
    );
}

/// After a reconnect only sessions that could have missed events carry `gap`: a call whose
/// legs were all destroyed before the drop (only waiting out its grace period) does not.
#[test]
fn only_sessions_with_a_leg_up_get_gap() {
    let events = |name: &str| -> Vec<String> {
        sim::scenario(name)
            .unwrap()
            .into_iter()
            .map(|f| f.text)
            .collect()
    };
    let finished = events("pstn_answered");
    let in_progress = events("hold_resume");
    for resync in [false, true] {
        let mut asm = postcall::session::Assembler::new(Arc::new(Settings::default()));
        let mut tenants = std::collections::HashSet::new();
        for f in finished.iter().chain(&in_progress[..in_progress.len() / 2]) {
            if let Ok(postcall::source::Frame::Event(ev)) = postcall::source::decode_frame(f) {
                tenants.extend(ev.account_id.as_deref().map(str::to_owned));
                // Processing time stays at the first event: nothing closes before the drop.
                asm.apply(&ev, postcall::clock::WallTime::from_us(0));
            }
        }
        if resync {
            let lost = asm.stream_time().unwrap();
            asm.resync(&tenants, &Default::default(), lost);
        } else {
            asm.mark_gap();
        }
        let mut cdrs = Vec::new();
        asm.flush(&mut cdrs);
        assert_eq!(cdrs.len(), 2);
        let gap: Vec<bool> = cdrs
            .iter()
            .map(|c| c.cdr.tags.contains_key("gap"))
            .collect();
        let finished_id =
            postcall::replay::replay_str(&finished.join("\n"), Arc::new(Settings::default()))[0]
                .cdr
                .id
                .clone();
        let is_finished: Vec<bool> = cdrs.iter().map(|c| c.cdr.id == finished_id).collect();
        // The finished call has no gap; the one cut short has.
        assert_eq!(
            gap,
            is_finished.iter().map(|f| !f).collect::<Vec<_>>(),
            "resync {resync}: {gap:?}"
        );
        assert_eq!(gap.iter().filter(|g| **g).count(), 1, "resync {resync}");
    }
}
