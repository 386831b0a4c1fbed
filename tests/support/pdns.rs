//! A real PowerDNS Authoritative (`pdns_server`, Debian's `pdns-server` with the gsqlite3
//! backend) primary on 127.0.0.1, from a temp dir.
//!
//! The sqlite database is made from the schema the backend package ships; zones are loaded
//! with `pdnsutil load-zone`, the update key is imported and allowed per zone
//! (`TSIG-ALLOW-DNSUPDATE`), and `SOA-EDIT-DNSUPDATE INCREASE` makes an applied update move the
//! serial (interop-labs.md, "PowerDNS"). A second key is imported and allowed nowhere.

use std::fmt::Write as _;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::interop::{DnsLab, ServerProcess, chown, hmac_key, logs, run_as, serial, zone_file};
use super::{TsigKey, ZoneSpec, free_port};

const UPDATE_KEY: &str = "kmsdns-test";
const OTHER_KEY: &str = "kmsdns-other";
const SCHEMA: &str = "/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql";
const START_TRIES: usize = 3;

/// How the server decides on updates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdatePolicy {
    /// `TSIG-ALLOW-DNSUPDATE` per zone: the update key may change anything.
    TsigAllowed,
    /// Also a `lua-dnsupdate-policy-script` whose `updatepolicy` refuses every RR. PowerDNS then
    /// rolls the update back and still answers NOERROR.
    LuaRefusesAll,
}

pub struct PdnsLab {
    pub addr: SocketAddr,
    /// `kmsdns-test`, allowed to update every zone.
    pub key: TsigKey,
    /// `kmsdns-other`, imported, allowed nowhere.
    pub other_key: TsigKey,
    process: ServerProcess,
    pub dir: tempfile::TempDir,
}

impl PdnsLab {
    pub fn start(zones: &[ZoneSpec]) -> PdnsLab {
        PdnsLab::with_policy(zones, UpdatePolicy::TsigAllowed)
    }

    /// Starts pdns_server serving `zones` and returns once it answers SOA for each.
    pub fn with_policy(zones: &[ZoneSpec], policy: UpdatePolicy) -> PdnsLab {
        let dir = tempfile::Builder::new().prefix("kmsdns-pdns-").tempdir().expect("create temp dir for PowerDNS lab");
        let key = hmac_key(dir.path(), UPDATE_KEY);
        let other_key = hmac_key(dir.path(), OTHER_KEY);
        let server = tool("pdns_server");
        let user = run_as("pdns");
        let mut failures = String::new();
        for attempt in 1..=START_TRIES {
            let run = dir.path().join(format!("try{attempt}"));
            fs::create_dir(&run).unwrap_or_else(|e| panic!("create {}: {e}", run.display()));
            let port = free_port();
            prepare(&run, port, zones, policy, &key, &other_key);
            if let Some(u) = &user {
                chown(dir.path(), u);
            }
            let config_dir = format!("--config-dir={}", run.display());
            let mut process = ServerProcess::spawn(&run, user.as_deref(), &server, &[&config_dir]);
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            let ready = || zones.iter().all(|z| serial(addr, &z.name).is_some());
            match process.wait_ready("pdns_server", ready, || logs("pdns_server", &run, &["stderr.log"])) {
                Ok(()) => return PdnsLab { addr, key, other_key, process, dir },
                Err(log) => {
                    let _ = writeln!(failures, "attempt {attempt} on port {port}: {log}");
                }
            }
        }
        panic!("pdns_server failed to start {START_TRIES} times:\n{failures}");
    }
}

impl DnsLab for PdnsLab {
    fn product(&self) -> &'static str {
        "PowerDNS Authoritative 4.7"
    }
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    fn key(&self) -> &TsigKey {
        &self.key
    }
    fn unpermitted_key_file(&self) -> PathBuf {
        self.other_key.file.clone()
    }
    /// pdns_server logs "UPDATE (id) from … for zone: Processing started." for each update it
    /// takes, and "Packet for 'zone' denied" for one whose signature it rejects.
    fn updates_logged(&self, zone: &str) -> usize {
        let zone = zone.trim_end_matches('.');
        let started = format!("for {zone}: Processing started");
        let denied = format!("Packet for '{zone}' denied");
        let log = fs::read_to_string(self.process.dir.join("stderr.log")).unwrap_or_default();
        log.lines().filter(|l| l.contains(&started) || l.contains(&denied)).count()
    }
    fn log(&self) -> String {
        logs(&format!("pdns_server {} (pid {})", self.addr, self.process.pid), &self.process.dir, &["stderr.log"])
    }
}

impl Drop for PdnsLab {
    fn drop(&mut self) {
        self.process.stop();
    }
}

fn tool(name: &str) -> PathBuf {
    ["/usr/sbin", "/usr/bin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("`{name}` (PowerDNS) is not installed; run `scripts/install-test-deps`"))
}

/// Runs `program args` to completion; panics with its output if it fails.
fn run(program: &Path, args: &[&str], stdin: Option<&Path>) {
    let mut cmd = Command::new(program);
    cmd.args(args);
    if let Some(f) = stdin {
        cmd.stdin(Stdio::from(fs::File::open(f).unwrap_or_else(|e| panic!("open {}: {e}", f.display()))));
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed ({}):\n{}{}",
        program.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// pdns.conf, the sqlite database with the zones, the keys and the per-zone metadata.
fn prepare(dir: &Path, port: u16, zones: &[ZoneSpec], policy: UpdatePolicy, key: &TsigKey, other: &TsigKey) {
    let d = dir.display();
    let db = dir.join("pdns.sqlite3");
    let mut conf = format!(
        "launch=gsqlite3\ngsqlite3-database={}\nlocal-address=127.0.0.1\nlocal-port={port}\nsocket-dir={d}\n\
         daemon=no\nguardian=no\nwrite-pid=no\ndisable-syslog=yes\nloglevel=6\n\
         dnsupdate=yes\nallow-dnsupdate-from=127.0.0.0/8\nwebserver=no\napi=no\nsecurity-poll-suffix=\n",
        db.display()
    );
    if policy == UpdatePolicy::LuaRefusesAll {
        let script = dir.join("policy.lua");
        fs::write(&script, "function updatepolicy(input)\n  return false\nend\n").expect("write policy.lua");
        let _ = writeln!(conf, "lua-dnsupdate-policy-script={}", script.display());
    }
    fs::write(dir.join("pdns.conf"), conf).expect("write pdns.conf");
    run(&tool("sqlite3"), &[&db.to_string_lossy()], Some(Path::new(SCHEMA)));
    let pdnsutil = tool("pdnsutil");
    let config_dir = format!("--config-dir={d}");
    let util = |args: &[&str]| run(&pdnsutil, &[&[config_dir.as_str()], args].concat(), None);
    for k in [key, other] {
        util(&["import-tsig-key", &k.name, &k.algorithm, &k.secret_b64]);
    }
    for z in zones {
        let file = dir.join(format!("{}.zone", z.name));
        fs::write(&file, zone_file(z)).unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
        util(&["load-zone", &z.name, &file.to_string_lossy()]);
        util(&["activate-tsig-key", &z.name, &key.name, "primary"]);
        util(&["set-meta", &z.name, "TSIG-ALLOW-DNSUPDATE", &key.name]);
        util(&["set-meta", &z.name, "SOA-EDIT-DNSUPDATE", "INCREASE"]);
    }
}
