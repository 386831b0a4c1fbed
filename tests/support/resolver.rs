//! A second BIND 9 as the recursive resolver a KMS client asks: `recursion yes`, one forward
//! zone (`forward only`) per test zone pointing at the authoritative server that serves it,
//! on 127.0.0.1 with a port of its own. It caches, so the TTLs it hands out count down, as a
//! client's resolver's do.
//!
//! Names outside the forward zones go to a root hint on 127.0.0.1 (nothing leaves loopback).
//! Started and stopped by PID, as `bind.rs` does for the authoritative servers.

use super::{bind_tool, free_port};
use std::fmt::Write as _;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(10);
const START_TRIES: usize = 3;

/// A running recursive named. Stopped on drop, also when a test panics.
pub struct Resolver {
    pub addr: SocketAddr,
    child: Option<Child>,
    pid: u32,
    /// Removed after the process is stopped (`Drop` stops it before the fields drop).
    dir: Option<tempfile::TempDir>,
}

impl Resolver {
    /// A resolver that forwards each of `zones` (name, authoritative server) there. Returns once
    /// it answers, through recursion, the SOA of the first zone.
    pub fn forwarding(zones: &[(&str, SocketAddr)]) -> Resolver {
        let dir =
            tempfile::Builder::new().prefix("kmsdns-resolver-").tempdir().expect("create temp dir for the resolver");
        let mut failures = String::new();
        for attempt in 1..=START_TRIES {
            let port = free_port();
            let d = dir.path().join(format!("try{attempt}"));
            fs::create_dir(&d).unwrap_or_else(|e| panic!("create {}: {e}", d.display()));
            write_config(&d, port, zones);
            if run_as_bind() {
                let st = Command::new("chown").args(["-R", "bind:bind"]).arg(dir.path()).status();
                assert!(st.is_ok_and(|s| s.success()), "chown -R bind:bind {} failed", dir.path().display());
            }
            let stderr = fs::File::create(d.join("stderr.log")).expect("create stderr.log for named");
            let mut cmd = Command::new(bind_tool("named"));
            cmd.arg("-f").arg("-c").arg(d.join("named.conf")).args(["-n", "1"]);
            if run_as_bind() {
                cmd.args(["-u", "bind"]);
            }
            let child = cmd
                .stdin(Stdio::null())
                .stdout(stderr.try_clone().expect("clone stderr.log handle"))
                .stderr(stderr)
                .spawn()
                .expect("spawn named as a resolver");
            let pid = child.id();
            let mut r =
                Resolver { addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)), child: Some(child), pid, dir: None };
            match r.wait_ready(zones.first().map(|z| z.0), &d) {
                Ok(()) => {
                    r.dir = Some(dir);
                    return r;
                }
                Err(log) => {
                    let _ = writeln!(failures, "attempt {attempt}: {log}");
                    r.stop();
                }
            }
        }
        panic!("the resolver named failed to start {START_TRIES} times:\n{failures}");
    }

    fn wait_ready(&mut self, zone: Option<&str>, d: &std::path::Path) -> Result<(), String> {
        let deadline = Instant::now() + TIMEOUT;
        let port = self.addr.port().to_string();
        loop {
            let answered = Command::new(bind_tool("dig"))
                .args(["+short", "+time=1", "+tries=1", "-p", &port, "@127.0.0.1", zone.unwrap_or("."), "SOA"])
                .output()
                .is_ok_and(|o| o.status.success() && !o.stdout.is_empty());
            if answered {
                return Ok(());
            }
            let log = || {
                ["named.log", "stderr.log"]
                    .iter()
                    .map(|f| format!("[{f}]\n{}", fs::read_to_string(d.join(f)).unwrap_or_default()))
                    .collect::<String>()
            };
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().expect("poll named")) {
                return Err(format!("named on port {port} exited during startup ({status})\n{}", log()));
            }
            if Instant::now() > deadline {
                panic!("the resolver on {} did not answer within {TIMEOUT:?}\n{}", self.addr, log());
            }
            sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, up to 5 s grace, then SIGKILL; reaps the child. Idempotent.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let running = |c: &mut Child| matches!(c.try_wait(), Ok(None));
        if running(&mut child) {
            let _ = Command::new("kill").args(["-TERM", &self.pid.to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while running(&mut child) && Instant::now() < deadline {
                sleep(Duration::from_millis(10));
            }
            if running(&mut child) {
                let _ = child.kill();
            }
        }
        let _ = child.wait();
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        self.stop();
    }
}

fn write_config(dir: &std::path::Path, port: u16, zones: &[(&str, SocketAddr)]) {
    let d = dir.display();
    let ports = super::bind::outgoing_udp_ports();
    // A root of our own, on loopback: the resolver never asks the real root servers.
    fs::write(dir.join("root.hint"), ". 3600000 IN NS root.invalid.\nroot.invalid. 3600000 IN A 127.0.0.1\n")
        .expect("write root.hint");
    let mut conf = format!(
        r#"options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    session-keyfile "{d}/session.key";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion yes;
    allow-recursion {{ 127.0.0.1; }};
    allow-query-cache {{ 127.0.0.1; }};
    dnssec-validation no;
    querylog yes;
    {ports}
}};
controls {{ }};
logging {{
    channel log {{ file "{d}/named.log"; print-time yes; severity info; }};
    category default {{ log; }};
    category queries {{ log; }};
}};
zone "." {{ type hint; file "{d}/root.hint"; }};
"#
    );
    for (zone, server) in zones {
        let _ = writeln!(
            conf,
            "zone \"{zone}\" {{ type forward; forward only; forwarders {{ {} port {}; }}; }};",
            server.ip(),
            server.port()
        );
    }
    let path = dir.join("named.conf");
    fs::write(&path, &conf).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    let out = Command::new(bind_tool("named-checkconf")).arg(&path).output().expect("run named-checkconf");
    assert!(
        out.status.success(),
        "named-checkconf rejected {}:\n{}{}\n{conf}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Root drops to `bind` like a packaged named would; anyone else runs named as themselves.
fn run_as_bind() -> bool {
    let root = fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    root && fs::read_to_string("/etc/passwd").is_ok_and(|p| p.lines().any(|l| l.starts_with("bind:")))
}
