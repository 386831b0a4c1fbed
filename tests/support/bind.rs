//! Real BIND 9 servers (primary/secondary or independent primaries) on 127.0.0.1, one port each.
//!
//! named cannot listen on 127.x addresses that are not configured on `lo` (and adding them needs root), so every
//! server shares 127.0.0.1 and gets its own port.

use super::{bind_tool, free_port};
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

const UPDATE_KEY: &str = "kmsdns-test";
const XFER_KEY: &str = "kmsdns-xfer";
const TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);
/// `free_port()` can race with other processes; a named that lost the race exits at startup.
const START_TRIES: usize = 3;

pub struct ZoneSpec {
    pub name: String,
    pub records: Vec<String>,
}

impl ZoneSpec {
    pub fn new(name: &str) -> Self {
        ZoneSpec { name: name.trim_end_matches('.').to_string(), records: Vec::new() }
    }

    pub fn record(mut self, line: &str) -> Self {
        self.records.push(line.to_string());
        self
    }

    /// Refresh 2 s / retry 1 s so a secondary also catches up by polling if a NOTIFY is lost.
    fn zone_file(&self) -> String {
        let z = &self.name;
        let mut s = format!(
            "$ORIGIN {z}.\n$TTL 3600\n@ IN SOA ns1.{z}. hostmaster.{z}. ( 1 2 1 86400 60 )\n@ IN NS ns1.{z}.\nns1 IN A 127.0.0.1\n"
        );
        for r in &self.records {
            s.push_str(r);
            s.push('\n');
        }
        s
    }
}

pub struct TsigKey {
    pub name: String,
    /// Always "hmac-sha256".
    pub algorithm: String,
    pub secret_b64: String,
    /// BIND `key { ... };` file, mode 0600, usable with `nsupdate -k` and `include`.
    pub file: PathBuf,
}

impl TsigKey {
    fn generate(dir: &Path, name: &str) -> TsigKey {
        let out =
            Command::new(bind_tool("tsig-keygen")).args(["-a", "hmac-sha256", name]).output().expect("run tsig-keygen");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "tsig-keygen {name} failed: {}", String::from_utf8_lossy(&out.stderr));
        let secret_b64 = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("secret \""))
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("no secret in tsig-keygen output:\n{text}"))
            .to_string();
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
}

/// One running named. Owns the process: it is stopped on drop, also when a test panics.
pub struct Named {
    pub addr: SocketAddr,
    pid: u32,
    dir: PathBuf,
    child: Option<Child>,
}

impl Named {
    /// Starts named and waits until it answers SOA for every zone. `Err` (with the log) means named exited during
    /// startup: config errors are caught earlier by named-checkconf, so that is nearly always a port lost to a race.
    /// named -f writes pre-config errors (such as "address in use") to syslog, not to named.log, hence the port probe.
    fn start(dir: &Path, port: u16, zones: &[ZoneSpec]) -> Result<Named, String> {
        let conf = dir.join("named.conf");
        let stderr = fs::File::create(dir.join("stderr.log")).expect("create stderr.log for named");
        let mut cmd = Command::new(bind_tool("named"));
        cmd.arg("-f").arg("-c").arg(&conf).args(["-n", "1"]);
        if run_as_bind() {
            cmd.args(["-u", "bind"]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(stderr.try_clone().expect("clone stderr.log handle"))
            .stderr(stderr)
            .spawn()
            .expect("spawn named");
        let mut named = Named {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            pid: child.id(),
            dir: dir.to_path_buf(),
            child: Some(child),
        };
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if serves_every_zone(dir, port, zones) {
                return Ok(named);
            }
            let exited = named.child.as_mut().and_then(|c| c.try_wait().expect("poll named process"));
            if let Some(status) = exited {
                let udp_taken = std::net::UdpSocket::bind(named.addr).is_err();
                let taken = udp_taken || std::net::TcpListener::bind(named.addr).is_err();
                let hint = if taken { "; the port is in use by another process" } else { "" };
                return Err(format!("named on port {port} exited during startup ({status}{hint})\n{}", named.log()));
            }
            if Instant::now() > deadline {
                let names: Vec<&str> = zones.iter().map(|z| z.name.as_str()).collect();
                panic!("named on {} did not serve {names:?} within {TIMEOUT:?}\n{}", named.addr, named.log());
            }
            sleep(POLL);
        }
    }

    /// The process id, e.g. for a benchmark to read named's CPU time.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// named.log plus stderr, for failure messages.
    pub fn log(&self) -> String {
        let mut s = format!("--- named {} (pid {}, {}) ---\n", self.addr, self.pid, self.dir.display());
        for f in ["named.log", "stderr.log"] {
            let text = fs::read_to_string(self.dir.join(f)).unwrap_or_else(|e| format!("({e})\n"));
            let _ = write!(s, "[{f}]\n{text}");
        }
        s
    }

    /// SIGTERM, up to 5 s grace, then SIGKILL; reaps the child so the PID cannot be reused under us. Idempotent.
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

impl Drop for Named {
    fn drop(&mut self) {
        self.stop();
    }
}

pub struct BindLab {
    pub dir: tempfile::TempDir,
    /// `kmsdns-test`, allowed to update every name in every zone.
    pub key: TsigKey,
    pub servers: Vec<Named>,
}

enum Role {
    Primary {
        notify_port: Option<u16>,
    },
    /// `polls`: the zones' 2 s refresh is honoured, so the secondary catches up by itself.
    Secondary {
        primary_port: u16,
        polls: bool,
    },
}

impl BindLab {
    /// servers[0] is the primary, servers[1] a secondary that transfers with its own TSIG key and gets NOTIFYs.
    /// Returns once the secondary serves every zone at the primary's serial.
    pub fn primary_secondary(zones: &[ZoneSpec]) -> BindLab {
        let lab = BindLab::launch(zones, 2, "", |i, ports| match i {
            0 => Role::Primary { notify_port: Some(ports[1]) },
            _ => Role::Secondary { primary_port: ports[0], polls: true },
        });
        for z in zones {
            lab.wait_converged(&z.name);
        }
        lab
    }

    /// A primary and a secondary as [`BindLab::primary_secondary`], with `options` (statements
    /// such as `notify-rate 1000;`) added to both servers' options, for the benchmarks' estates
    /// of thousands of zones. The secondary follows NOTIFYs only, as in production (BIND's
    /// refresh floor of 300 s; a failed refresh is retried after 1 s), and asks its SOA queries
    /// over TCP (see `write_server`): polling every zone each 2 s, 1,000 zones are 500 SOA
    /// queries a second, and a NOTIFY that finds such a refresh under way waits for it
    /// ("refresh in progress, refresh check queued"), seconds at times (bench/README.md). It returns once
    /// the secondary serves every zone, which for fresh zones (all at serial 1) is once it has
    /// transferred them all: no poll per zone.
    pub fn primary_secondary_with(zones: &[ZoneSpec], options: &str) -> BindLab {
        BindLab::launch(zones, 2, options, |i, ports| match i {
            0 => Role::Primary { notify_port: Some(ports[1]) },
            _ => Role::Secondary { primary_port: ports[0], polls: false },
        })
    }

    /// n primaries with identical zones and `notify no`: updates to one stay there, so tests can create divergence.
    pub fn independent_primaries(zones: &[ZoneSpec], n: usize) -> BindLab {
        BindLab::launch(zones, n, "", |_, _| Role::Primary { notify_port: None })
    }

    /// Starts n servers on fresh ports. If any exits at startup, all are stopped and the lot is retried on new ports,
    /// because configs refer to each other's ports.
    fn launch(zones: &[ZoneSpec], n: usize, options: &str, role: impl Fn(usize, &[u16]) -> Role) -> BindLab {
        let dir = tempfile::Builder::new().prefix("kmsdns-bind-").tempdir().expect("create temp dir for BIND lab");
        let key = TsigKey::generate(dir.path(), UPDATE_KEY);
        let xfer = TsigKey::generate(dir.path(), XFER_KEY);
        let mut failures = String::new();
        for attempt in 1..=START_TRIES {
            let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
            let dirs: Vec<PathBuf> = (0..n).map(|i| dir.path().join(format!("try{attempt}-ns{i}"))).collect();
            for (i, d) in dirs.iter().enumerate() {
                fs::create_dir(d).unwrap_or_else(|e| panic!("create {}: {e}", d.display()));
                write_server(d, ports[i], zones, &role(i, &ports), &[&key, &xfer], options);
            }
            if run_as_bind() {
                let st = Command::new("chown").args(["-R", "bind:bind"]).arg(dir.path()).status();
                assert!(st.is_ok_and(|s| s.success()), "chown -R bind:bind {} failed", dir.path().display());
            }
            let mut servers = Vec::new();
            for (d, &port) in dirs.iter().zip(&ports) {
                match Named::start(d, port, zones) {
                    Ok(named) => servers.push(named),
                    Err(log) => {
                        let _ = writeln!(failures, "attempt {attempt}: {log}");
                        break;
                    }
                }
            }
            if servers.len() == n {
                return BindLab { dir, key, servers };
            }
        }
        panic!("named failed to start {START_TRIES} times (named -f logs bind errors to syslog only):\n{failures}");
    }

    /// `nsupdate -k <key>` against servers[idx]; panics with stderr and the server log if it fails.
    pub fn update(&self, idx: usize, zone: &str, lines: &[&str]) {
        if let Err(e) = nsupdate(self.servers[idx].addr, &self.key.file, zone, lines) {
            panic!("nsupdate to server {idx} failed: {e}\n{}", self.servers[idx].log());
        }
    }

    /// `dig +short` answer lines, sorted. Panics if dig gets no response, so "no records" is never a dead server.
    pub fn dig(&self, idx: usize, name: &str, rtype: &str) -> Vec<String> {
        dig_raw(self.servers[idx].addr.port(), name, rtype, 2)
            .unwrap_or_else(|e| panic!("dig {name} {rtype} on server {idx} failed: {e}\n{}", self.servers[idx].log()))
    }

    /// SOA serial of `zone` on servers[idx]; None if the server gives no answer (down, SERVFAIL, not loaded).
    pub fn serial(&self, idx: usize, zone: &str) -> Option<u32> {
        let lines = dig_raw(self.servers[idx].addr.port(), zone, "SOA", 2).ok()?;
        lines.first()?.split_whitespace().nth(2)?.parse().ok()
    }

    /// Polls until every server reports the same serial for `zone`; panics with all logs after 10 s.
    pub fn wait_converged(&self, zone: &str) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let serials: Vec<Option<u32>> = (0..self.servers.len()).map(|i| self.serial(i, zone)).collect();
            if serials[0].is_some() && serials.iter().all(|s| *s == serials[0]) {
                return;
            }
            if Instant::now() > deadline {
                let logs: String = self.servers.iter().map(Named::log).collect();
                panic!("zone {zone} did not converge within {TIMEOUT:?}: serials {serials:?}\n{logs}");
            }
            sleep(POLL);
        }
    }
}

impl Drop for BindLab {
    /// Stops servers before `dir` is deleted (fields drop in declaration order, `dir` first).
    fn drop(&mut self) {
        for s in &mut self.servers {
            s.stop();
        }
    }
}

/// `dig +short`, answer lines sorted; Err when dig gets no response at all.
fn dig_raw(port: u16, name: &str, rtype: &str, time_s: u32) -> Result<Vec<String>, String> {
    let out = Command::new(bind_tool("dig"))
        .args(["+short", "+norecurse", &format!("+time={time_s}"), "+tries=1", "-p", &port.to_string()])
        .args(["@127.0.0.1", name, rtype])
        .output()
        .map_err(|e| format!("cannot run dig: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("{}: {stdout}{}", out.status, String::from_utf8_lossy(&out.stderr)));
    }
    // dig prints warnings as ";;" comments even with +short; rdata never starts with ';'.
    let mut lines: Vec<String> =
        stdout.lines().filter(|l| !l.is_empty() && !l.starts_with(';')).map(str::to_string).collect();
    lines.sort();
    Ok(lines)
}

/// True when named on `port` answers SOA for every zone: one `dig -f` for them all, so that a
/// benchmark estate of 10,000 zones does not start 10,000 digs.
fn serves_every_zone(dir: &Path, port: u16, zones: &[ZoneSpec]) -> bool {
    if let [one] = zones {
        return dig_raw(port, &one.name, "SOA", 1).is_ok_and(|l| !l.is_empty());
    }
    let batch = dir.join("soa-queries");
    let lines: String = zones.iter().map(|z| format!("{} SOA\n", z.name)).collect();
    fs::write(&batch, lines).unwrap_or_else(|e| panic!("write {}: {e}", batch.display()));
    let out = Command::new(bind_tool("dig"))
        .args(["+short", "+norecurse", "+time=1", "+tries=1", "-p", &port.to_string(), "@127.0.0.1", "-f"])
        .arg(&batch)
        .output();
    out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).lines().filter(|l| !l.starts_with(';')).count() == zones.len())
}

/// named's `use-v4-udp-ports` for a lab: ports the kernel never hands out. named picks the
/// source port of each NOTIFY and SOA query at random in the kernel's ephemeral range and binds
/// it with SO_REUSEPORT, so it can pick the port another lab server listens on (which
/// [`super::free_port`] took from that range): a primary's NOTIFY from 127.0.0.1:P to the
/// secondary on 127.0.0.1:P came back to the primary's own socket, every retry too, and the
/// secondary never heard of the change (tcpdump; about one repair of 1,000 zones in 12).
pub(super) fn outgoing_udp_ports() -> String {
    let range = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let mut bounds = range.split_whitespace().filter_map(|p| p.parse::<u32>().ok());
    let (low, high) = (bounds.next().unwrap_or(32768), bounds.next().unwrap_or(60999));
    if high <= 64535 {
        format!("use-v4-udp-ports {{ range {} 65535; }};", high + 1)
    } else if low >= 2024 {
        format!("use-v4-udp-ports {{ range 1024 {}; }};", low - 1)
    } else {
        String::new()
    }
}

/// Root drops to `bind` like a packaged named would; anyone else runs named as themselves.
fn run_as_bind() -> bool {
    let root = fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    root && fs::read_to_string("/etc/passwd").is_ok_and(|p| p.lines().any(|l| l.starts_with("bind:")))
}

fn write_server(dir: &Path, port: u16, zones: &[ZoneSpec], role: &Role, keys: &[&TsigKey], options: &str) {
    let d = dir.display();
    let ports = outgoing_udp_ports();
    let mut conf = String::new();
    for k in keys {
        let _ = writeln!(conf, "include \"{}\";", k.file.display());
    }
    let _ = write!(
        conf,
        r#"options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    session-keyfile "{d}/session.key";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify-source 127.0.0.1;
    transfer-source 127.0.0.1;
    {ports}
    {options}
}};
controls {{ }};
logging {{
    channel log {{ file "{d}/named.log"; print-time yes; severity info; }};
    category default {{ log; }};
}};
"#
    );
    if let Role::Secondary { polls, .. } = role {
        // tcp-only (the benchmarks' estates): BIND 9.18's secondary at times sends two SOA
        // queries at once from one UDP port to the primary and misses the answer to the first
        // (tcpdump: answered in 0.4 ms, asked again 5 s later), so a refresh after a NOTIFY took
        // 5 s. Over TCP each query has its own connection.
        let tcp = if *polls { "" } else { " tcp-only yes;" };
        let _ = writeln!(conf, "server 127.0.0.1 {{ keys {{ {XFER_KEY}; }};{tcp} }};");
    }
    for z in zones {
        let name = &z.name;
        let body = match role {
            Role::Primary { notify_port } => {
                let file = dir.join(format!("{name}.db"));
                fs::write(&file, z.zone_file()).unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
                let notify = match notify_port {
                    Some(p) => {
                        format!("notify explicit;\n    also-notify {{ 127.0.0.1 port {p}; }};\n    notify-delay 0;")
                    }
                    None => "notify no;".to_string(),
                };
                format!(
                    "type primary;\n    file \"{}\";\n    update-policy {{ grant {UPDATE_KEY} zonesub ANY; }};\n    \
                     allow-transfer {{ key {XFER_KEY}; }};\n    {notify}",
                    file.display()
                )
            }
            Role::Secondary { primary_port, polls } => format!(
                "type secondary;\n    file \"{d}/{name}.bak\";\n    primaries {{ 127.0.0.1 port {primary_port}; }};\n    \
                 allow-notify {{ 127.0.0.1; }};\n    notify no;{}",
                // min-*-time: BIND otherwise clamps the SOA's 2 s refresh / 1 s retry to 300 s / 500 s;
                // a refresh that failed is retried after 1 s either way.
                if *polls { "\n    min-refresh-time 1;\n    min-retry-time 1;" } else { "\n    min-retry-time 1;" }
            ),
        };
        let _ = writeln!(conf, "zone \"{name}\" {{\n    {body}\n}};");
    }
    let conf_path = dir.join("named.conf");
    fs::write(&conf_path, &conf).unwrap_or_else(|e| panic!("write {}: {e}", conf_path.display()));
    // -z also test-loads the primary zone files, so a bad record line fails here rather than as a 10 s timeout.
    let out =
        Command::new(bind_tool("named-checkconf")).arg("-z").arg(&conf_path).output().expect("run named-checkconf");
    assert!(
        out.status.success(),
        "named-checkconf rejected {}:\n{}{}\n{conf}",
        conf_path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sends `lines` as one TSIG-signed UPDATE of `zone` to `server` with nsupdate.
pub fn nsupdate(server: SocketAddr, key_file: &Path, zone: &str, lines: &[&str]) -> Result<(), String> {
    let mut script = format!("server {} {}\nzone {zone}\n", server.ip(), server.port());
    for l in lines {
        script.push_str(l);
        script.push('\n');
    }
    script.push_str("send\n");
    let mut child = Command::new(bind_tool("nsupdate"))
        .args(["-t", "10", "-k"])
        .arg(key_file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn nsupdate: {e}"))?;
    child.stdin.take().expect("nsupdate stdin").write_all(script.as_bytes()).map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}:\n{script}stderr: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        ))
    }
}
