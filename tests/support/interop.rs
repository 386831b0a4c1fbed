//! What the Knot and PowerDNS labs share: a TSIG key, the zone file of a [`ZoneSpec`], `dig`,
//! a server process stopped by PID, and the [`DnsLab`] face the interop scenario drives.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::{BindLab, TsigKey, ZoneSpec, bind_tool};

/// One authoritative server holding the test zones, as the interop scenario sees it.
pub trait DnsLab {
    /// Which server this is, for messages ("Knot DNS 3.2").
    fn product(&self) -> &'static str;
    fn addr(&self) -> SocketAddr;
    /// The key the zones accept updates with.
    fn key(&self) -> &TsigKey;
    /// The key file of a key the server knows, but that no zone lets update.
    fn unpermitted_key_file(&self) -> PathBuf;
    /// `dig +short` answer lines, sorted; panics if the server gives no response.
    fn dig(&self, name: &str, rtype: &str) -> Vec<String> {
        dig(self.addr(), name, rtype).unwrap_or_else(|e| panic!("dig {name} {rtype} failed: {e}\n{}", self.log()))
    }
    fn serial(&self, zone: &str) -> Option<u32> {
        serial(self.addr(), zone)
    }
    /// Lines the server logged about UPDATEs of `zone` (applied or not); grows with each one.
    fn updates_logged(&self, zone: &str) -> usize;
    /// `nsupdate -k` with the permitted key; panics if it fails.
    fn nsupdate(&self, zone: &str, lines: &[&str]) {
        nsupdate(self.addr(), &self.key().file, zone, lines).unwrap_or_else(|e| panic!("{e}\n{}", self.log()));
    }
    fn log(&self) -> String;
}

/// BIND as the baseline the other servers are compared with: one primary.
impl DnsLab for BindLab {
    fn product(&self) -> &'static str {
        "BIND 9.18"
    }
    fn addr(&self) -> SocketAddr {
        self.servers[0].addr
    }
    fn key(&self) -> &TsigKey {
        &self.key
    }
    fn unpermitted_key_file(&self) -> PathBuf {
        // Known to every server of the lab, allowed to transfer, not to update.
        self.dir.path().join("kmsdns-xfer.key")
    }
    fn updates_logged(&self, zone: &str) -> usize {
        self.servers[0].log().lines().filter(|l| l.contains("updat") && l.contains(zone)).count()
    }
    fn log(&self) -> String {
        self.servers[0].log()
    }
}

fn secret_of(key_file_text: &str) -> String {
    key_file_text
        .lines()
        .find_map(|l| l.trim().strip_prefix("secret \""))
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no secret in key file:\n{key_file_text}"))
        .to_string()
}

/// A new HMAC-SHA256 key from `tsig-keygen`, written as a BIND key file (mode 0600) in `dir`.
pub fn hmac_key(dir: &Path, name: &str) -> TsigKey {
    let out =
        Command::new(bind_tool("tsig-keygen")).args(["-a", "hmac-sha256", name]).output().expect("run tsig-keygen");
    assert!(out.status.success(), "tsig-keygen {name} failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let secret_b64 = secret_of(&text);
    let file = dir.join(format!("{name}.key"));
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&file)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .unwrap_or_else(|e| panic!("write key file {}: {e}", file.display()));
    TsigKey { name: name.to_string(), algorithm: "hmac-sha256".to_string(), secret_b64, file }
}

/// The zone file BindLab writes for `z`: SOA serial 1, refresh 2 s, retry 1 s, one NS.
pub fn zone_file(z: &ZoneSpec) -> String {
    let n = &z.name;
    let mut s = format!(
        "$ORIGIN {n}.\n$TTL 3600\n@ IN SOA ns1.{n}. hostmaster.{n}. ( 1 2 1 86400 60 )\n@ IN NS ns1.{n}.\nns1 IN A 127.0.0.1\n"
    );
    for r in &z.records {
        let _ = writeln!(s, "{r}");
    }
    s
}

/// `dig +short +norecurse` at `server`, answer lines sorted; Err when dig gets no response.
pub fn dig(server: SocketAddr, name: &str, rtype: &str) -> Result<Vec<String>, String> {
    let out = Command::new(bind_tool("dig"))
        .args(["+short", "+norecurse", "+time=2", "+tries=1", "-p", &server.port().to_string()])
        .arg(format!("@{}", server.ip()))
        .args([name, rtype])
        .output()
        .map_err(|e| format!("cannot run dig: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("{}: {stdout}{}", out.status, String::from_utf8_lossy(&out.stderr)));
    }
    let mut lines: Vec<String> =
        stdout.lines().filter(|l| !l.is_empty() && !l.starts_with(';')).map(str::to_string).collect();
    lines.sort();
    Ok(lines)
}

pub fn serial(server: SocketAddr, zone: &str) -> Option<u32> {
    let lines = dig(server, zone, "SOA").ok()?;
    lines.first()?.split_whitespace().nth(2)?.parse().ok()
}

/// `nsupdate -k key` of `lines` to `server`.
pub fn nsupdate(server: SocketAddr, key: &Path, zone: &str, lines: &[&str]) -> Result<(), String> {
    let mut script = format!("server {} {}\nzone {zone}\n", server.ip(), server.port());
    for l in lines {
        let _ = writeln!(script, "{l}");
    }
    script.push_str("send\n");
    let mut child = Command::new(bind_tool("nsupdate"))
        .args(["-t", "10", "-k"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn nsupdate");
    child.stdin.take().expect("nsupdate stdin").write_all(script.as_bytes()).expect("write nsupdate script");
    let out = child.wait_with_output().expect("wait for nsupdate");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nsupdate to {server} failed ({}):\n{script}stderr: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        ))
    }
}

/// Root runs a packaged server as its own user (`knot`, `pdns`), as the package would.
pub fn run_as(user: &str) -> Option<String> {
    let root = fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    let known = fs::read_to_string("/etc/passwd").is_ok_and(|p| p.lines().any(|l| l.starts_with(&format!("{user}:"))));
    (root && known).then(|| user.to_string())
}

/// Gives `dir` (recursively) to `user`, so the server can write its journal and database there.
pub fn chown(dir: &Path, user: &str) {
    let st = Command::new("chown").arg("-R").arg(format!("{user}:{user}")).arg(dir).status();
    assert!(st.is_ok_and(|s| s.success()), "chown -R {user} {} failed", dir.display());
}

/// A server process of a lab, its stdout and stderr in `dir/stderr.log`. Stopped by PID
/// (SIGTERM, 5 s grace, SIGKILL) on drop, also when a test panics.
pub struct ServerProcess {
    pub pid: u32,
    pub dir: PathBuf,
    child: Option<Child>,
}

impl ServerProcess {
    /// Spawns `program args`, as `user` when given (through `setpriv`, groups cleared).
    pub fn spawn(dir: &Path, user: Option<&str>, program: &Path, args: &[&str]) -> ServerProcess {
        let stderr = fs::File::create(dir.join("stderr.log")).expect("create stderr.log");
        let mut cmd = match user {
            Some(u) => {
                let mut c = Command::new("setpriv");
                c.args([&format!("--reuid={u}"), &format!("--regid={u}"), "--clear-groups"]).arg(program);
                c
            }
            None => Command::new(program),
        };
        let child = cmd
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(stderr.try_clone().expect("clone stderr.log handle"))
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
        ServerProcess { pid: child.id(), dir: dir.to_path_buf(), child: Some(child) }
    }

    /// The exit status, if the process has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().expect("poll server process"))
    }

    /// Polls `ready` until it holds; Err with the log if the process exits first, panics after 10 s.
    pub fn wait_ready(&mut self, what: &str, ready: impl Fn() -> bool, log: impl Fn() -> String) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if ready() {
                return Ok(());
            }
            if let Some(status) = self.exited() {
                return Err(format!("{what} exited during startup ({status})\n{}", log()));
            }
            assert!(Instant::now() < deadline, "{what} was not ready within 10 s\n{}", log());
            sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, up to 5 s grace, then SIGKILL; reaps the child so its PID cannot be reused. Idempotent.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
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

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Files of `dir` named in `names`, concatenated under headers, for failure messages.
pub fn logs(title: &str, dir: &Path, names: &[&str]) -> String {
    let mut s = format!("--- {title} ({}) ---\n", dir.display());
    for f in names {
        let text = fs::read_to_string(dir.join(f)).unwrap_or_else(|e| format!("({e})\n"));
        let _ = write!(s, "[{f}]\n{text}");
    }
    s
}
