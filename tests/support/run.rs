//! Running the `kmsdns` binary as an admin would, and showing what it printed when a test fails.

use std::process::Output;

/// `kmsdns ARGS` on this machine, with no RUST_LOG from the environment.
pub fn kmsdns(args: &[&str]) -> Output {
    assert_cmd::Command::new(assert_cmd::cargo::cargo_bin!("kmsdns"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run kmsdns")
}

/// Exit code, stdout and stderr, for assertion messages.
pub fn show(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
