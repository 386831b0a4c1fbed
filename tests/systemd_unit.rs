//! The shipped unit file, as systemd judges it: `systemd-analyze verify` is clean and
//! `systemd-analyze security` rates its exposure 2.0 or lower.

use std::path::PathBuf;
use std::process::Command;

/// The unit with ExecStart pointing at the binary under test (verify checks it exists).
fn unit() -> (tempfile::TempDir, PathBuf) {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/kmsdns.service")).unwrap();
    let bin = assert_cmd::cargo::cargo_bin!("kmsdns");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kmsdns.service");
    std::fs::write(&path, text.replace("/usr/bin/kmsdns", bin.to_str().unwrap())).unwrap();
    (dir, path)
}

fn systemd_analyze() -> Command {
    let path = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("systemd-analyze is not installed; run scripts/install-test-deps"));
    Command::new(path)
}

#[test]
fn the_unit_file_verifies_cleanly() {
    let (_dir, unit) = unit();
    let out = systemd_analyze().arg("verify").arg(&unit).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.trim().is_empty(), "systemd-analyze verify:\n{text}");
}

#[test]
fn the_unit_file_exposure_is_at_most_2() {
    let (_dir, unit) = unit();
    let out = systemd_analyze().args(["security", "--offline=true"]).arg(&unit).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let level: f64 = text
        .lines()
        .find_map(|l| l.split("Overall exposure level for kmsdns.service:").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}{}", String::from_utf8_lossy(&out.stderr)));
    assert!(level <= 2.0, "exposure {level} > 2.0:\n{text}");
}
