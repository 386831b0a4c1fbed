//! A real Knot DNS (`knotd`, Debian's `knot`) primary on 127.0.0.1, from a temp dir.
//!
//! Updates are allowed by an ACL to one HMAC-SHA256 key; a second key is known but in no ACL.
//! The journal, KASP and timer databases and the control socket all live in the temp dir, and
//! `zonefile-sync: 0` writes the zone file after each update (interop-labs.md, "Knot DNS").

use std::fmt::Write as _;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::interop::{DnsLab, ServerProcess, chown, hmac_key, logs, run_as, serial, zone_file};
use super::{TsigKey, ZoneSpec, free_port};

const UPDATE_KEY: &str = "kmsdns-test";
const OTHER_KEY: &str = "kmsdns-other";
/// `free_port()` can race with other processes; a knotd that lost the race exits at startup.
const START_TRIES: usize = 3;

pub struct KnotLab {
    pub addr: SocketAddr,
    /// `kmsdns-test`, allowed to update every zone.
    pub key: TsigKey,
    /// `kmsdns-other`, known to knotd, in no ACL.
    pub other_key: TsigKey,
    process: ServerProcess,
    pub dir: tempfile::TempDir,
}

impl KnotLab {
    /// Starts knotd serving `zones` and returns once it answers SOA for each.
    pub fn start(zones: &[ZoneSpec]) -> KnotLab {
        let dir = tempfile::Builder::new().prefix("kmsdns-knot-").tempdir().expect("create temp dir for Knot lab");
        let key = hmac_key(dir.path(), UPDATE_KEY);
        let other_key = hmac_key(dir.path(), OTHER_KEY);
        let knotd = tool("knotd");
        let user = run_as("knot");
        let mut failures = String::new();
        for attempt in 1..=START_TRIES {
            let run = dir.path().join(format!("try{attempt}"));
            fs::create_dir(&run).unwrap_or_else(|e| panic!("create {}: {e}", run.display()));
            let port = free_port();
            let conf = write_config(&run, port, zones, &[&key, &other_key]);
            if let Some(u) = &user {
                chown(dir.path(), u);
            }
            let mut process = ServerProcess::spawn(&run, user.as_deref(), &knotd, &["-c", &conf.to_string_lossy()]);
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            let ready = || zones.iter().all(|z| serial(addr, &z.name).is_some());
            match process.wait_ready("knotd", ready, || logs("knotd", &run, &["knot.log", "stderr.log"])) {
                Ok(()) => return KnotLab { addr, key, other_key, process, dir },
                Err(log) => {
                    let _ = writeln!(failures, "attempt {attempt} on port {port}: {log}");
                }
            }
        }
        panic!("knotd failed to start {START_TRIES} times:\n{failures}");
    }
}

impl DnsLab for KnotLab {
    fn product(&self) -> &'static str {
        "Knot DNS 3.2"
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
    /// knotd logs "[zone.] DDNS, processing N updates" for every batch it takes, and
    /// "ACL, denied" or "TSIG, ..." for one it refuses.
    fn updates_logged(&self, zone: &str) -> usize {
        let marker = format!("[{}.]", zone.trim_end_matches('.'));
        let log = fs::read_to_string(self.process.dir.join("knot.log")).unwrap_or_default();
        log.lines().filter(|l| l.contains(&marker) && (l.contains("DDNS, processing") || l.contains("denied"))).count()
    }
    fn log(&self) -> String {
        logs(&format!("knotd {} (pid {})", self.addr, self.process.pid), &self.process.dir, &["knot.log", "stderr.log"])
    }
}

impl Drop for KnotLab {
    /// Stops knotd before the temp dir goes.
    fn drop(&mut self) {
        self.process.stop();
    }
}

/// knotd and knotc live in /usr/sbin, often not on a non-root `$PATH`.
fn tool(name: &str) -> PathBuf {
    ["/usr/sbin", "/usr/bin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("`{name}` (Knot DNS) is not installed; run `scripts/install-test-deps`"))
}

/// Writes knot.conf and the zone files into `dir`, checks it with `knotc conf-check`, and
/// returns its path.
fn write_config(dir: &Path, port: u16, zones: &[ZoneSpec], keys: &[&TsigKey]) -> PathBuf {
    let d = dir.display();
    let mut conf = format!(
        "server:\n    rundir: \"{d}\"\n    listen: 127.0.0.1@{port}\n\
         database:\n    storage: \"{d}\"\n    journal-db: \"{d}/journal\"\n    kasp-db: \"{d}/kasp\"\n    \
         timer-db: \"{d}/timer\"\n\
         log:\n  - target: \"{d}/knot.log\"\n    any: info\n\
         key:\n"
    );
    for k in keys {
        let _ = write!(conf, "  - id: {}\n    algorithm: {}\n    secret: {}\n", k.name, k.algorithm, k.secret_b64);
    }
    let _ = write!(
        conf,
        "acl:\n  - id: update\n    address: 127.0.0.0/8\n    key: {UPDATE_KEY}\n    action: update\n\
         template:\n  - id: default\n    storage: \"{d}\"\n    zonefile-sync: 0\n    journal-content: changes\n\
         zone:\n"
    );
    for z in zones {
        let file = dir.join(format!("{}.zone", z.name));
        fs::write(&file, zone_file(z)).unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
        let _ = write!(conf, "  - domain: {}\n    file: \"{}\"\n    acl: update\n", z.name, file.display());
    }
    let path = dir.join("knot.conf");
    fs::write(&path, &conf).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    let out =
        Command::new(tool("knotc")).arg("-c").arg(&path).arg("conf-check").output().expect("run knotc conf-check");
    assert!(
        out.status.success(),
        "knotc conf-check rejected {}:\n{}{}\n{conf}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    path
}
