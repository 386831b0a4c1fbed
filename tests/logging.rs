//! Where `kmsdns run` logs: colour only on a terminal, plain lines in a file or a pipe.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// An empty inventory: the daemon starts, logs that it runs, and waits an hour for its audit.
fn idle_inventory(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("kmsdns.toml");
    std::fs::write(&path, "[daemon]\ninterval = \"1h\"\nprobe_interval = \"1h\"\n").unwrap();
    path
}

/// Runs `kmsdns run` until it has logged that it runs, then stops it with SIGTERM; returns
/// what it wrote to `log` (its stderr, or a terminal's transcript when `tty`).
fn run_until_running(dir: &Path, tty: bool, env: &[(&str, &str)]) -> String {
    let bin = assert_cmd::cargo::cargo_bin!("kmsdns");
    let config = idle_inventory(dir);
    let state = dir.join("state");
    let log = dir.join("log");
    let args = format!("{} run --config {} --state-dir {}", bin.display(), config.display(), state.display());
    let mut cmd = if tty {
        // script(1) gives the daemon a pseudo-terminal as stderr and records it to `log`.
        let mut c = Command::new("script");
        c.args(["-q", "-f", "-e", "-c", &format!("exec {args}")]).arg(&log).stdout(Stdio::null()).stderr(Stdio::null());
        c
    } else {
        let mut c = Command::new(bin);
        c.args(["run", "--config"]).arg(&config).arg("--state-dir").arg(&state);
        c.stderr(std::fs::File::create(&log).unwrap()).stdout(Stdio::null());
        c
    };
    cmd.env_remove("RUST_LOG").env_remove("NO_COLOR").env_remove("JOURNAL_STREAM").stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start kmsdns run");
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("kmsdns running") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // SIGTERM stops the daemon; script(1), given it, ends the daemon it runs in turn.
    // SAFETY: kill(2) on the PID of the child this test started and has not yet reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    assert!(text.contains("kmsdns running"), "the daemon did not start:\n{text}");
    text
}

#[test]
fn a_log_written_to_a_file_has_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let text = run_until_running(dir.path(), false, &[]);
    assert!(!text.contains('\x1b'), "ANSI escapes in a log file:\n{text:?}");
    assert!(text.contains("INFO"), "{text}");
}

#[test]
fn a_log_on_a_terminal_is_coloured_unless_no_color_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let text = run_until_running(dir.path(), true, &[]);
    assert!(text.contains("\x1b["), "no colour on a terminal:\n{text:?}");
    let dir = tempfile::tempdir().unwrap();
    let text = run_until_running(dir.path(), true, &[("NO_COLOR", "1")]);
    assert!(!text.contains("\x1b["), "colour despite NO_COLOR:\n{text:?}");
}

#[test]
fn a_journal_stream_that_is_not_stderr_gets_plain_lines_on_stderr() {
    // systemd sets JOURNAL_STREAM for the service; a child whose stderr was redirected to a
    // file inherits the variable but not the stream, and must still log to its stderr.
    let dir = tempfile::tempdir().unwrap();
    let text = run_until_running(dir.path(), false, &[("JOURNAL_STREAM", "8:12345")]);
    assert!(text.contains("kmsdns running") && !text.contains('\x1b'), "{text:?}");
}
