//! A `kmsdns run` started by a test: its log in a file, stopped (SIGTERM, then SIGKILL) on drop.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// `kmsdns run --config CONFIG --state-dir STATE`, logging to STATE.log.
    pub fn start(config: &Path, state: &Path) -> Daemon {
        Daemon::start_as(config, state, None)
    }

    /// The same, as `uid` (and its gid) when given: its state dir and key must be its own.
    pub fn start_as(config: &Path, state: &Path, uid: Option<u32>) -> Daemon {
        let log = state.with_extension("log");
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin!("kmsdns"));
        cmd.args(["run", "--config"])
            .arg(config)
            .arg("--state-dir")
            .arg(state)
            .env("RUST_LOG", std::env::var("KMSDNS_TEST_LOG").unwrap_or_else(|_| "kmsdns=info".into()))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file);
        if let Some(uid) = uid {
            // std drops the supplementary groups when root sets a uid.
            cmd.uid(uid).gid(uid);
        }
        Daemon { child: cmd.spawn().expect("start kmsdns run"), log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log holds `n` lines containing `what`; panics with the log after `limit`.
    pub fn wait_log(&self, what: &str, n: usize, limit: Duration) {
        let start = Instant::now();
        while self.log().matches(what).count() < n {
            assert!(start.elapsed() < limit, "no {n}× {what:?} in the log after {limit:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args([&format!("-{sig}"), &self.child.id().to_string()]).status().unwrap();
        assert!(ok.success());
    }

    /// SIGTERM, and the exit status once it exits (panics after `limit`).
    pub fn stop(&mut self, limit: Duration) -> ExitStatus {
        self.signal("TERM");
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(start.elapsed() < limit, "kmsdns did not exit within {limit:?} of SIGTERM:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.running() {
            let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
            std::thread::sleep(Duration::from_millis(500));
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
