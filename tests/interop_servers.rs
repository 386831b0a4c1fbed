//! The same KMS site on each DNS server a KMS shop runs beside AD: BIND 9 (the baseline), Knot
//! DNS and PowerDNS Authoritative. For each, what an admin runs and what the server then says:
//! the audit finds exactly what is wrong, one repair heals the zone and a second sends nothing,
//! a wrong secret is named as a signature problem, and two daemons on the zone neither flap nor
//! clobber each other.

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use kmsdns::demo::responder::{Behaviour, KmsResponder};
use serde_json::Value;
use support::run::{kmsdns, show};
use support::{BindLab, DnsLab, KnotLab, PdnsLab, ZoneSpec, loopback_ip};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The report wraps long lines; compare words.
fn words(b: &[u8]) -> String {
    text(b).split_whitespace().collect::<Vec<_>>().join(" ")
}

/// corp.test on one server: kms1 healthy, kms2 dead, old decommissioned (and still answering),
/// kms3 healthy but unpublished.
struct Site<L: DnsLab> {
    lab: L,
    kms: Vec<(SocketAddr, Option<KmsResponder>)>,
    state: tempfile::TempDir,
}

const HEALED: [&str; 2] = ["0 0 1688 kms1.corp.test.", "0 0 1688 kms3.corp.test."];
const HOSTS: [(&str, bool); 4] = [("kms1", true), ("kms2", false), ("kms3", true), ("old", true)];

impl<L: DnsLab> Site<L> {
    fn new(start: impl Fn(&[ZoneSpec]) -> L) -> Site<L> {
        let mut zone = ZoneSpec::new("corp.test");
        let mut kms = Vec::new();
        for (label, up) in HOSTS {
            let (ip, listener) = loopback_ip();
            zone = zone.record(&format!("{label} IN A {ip}"));
            let responder = up.then(|| KmsResponder::from_listener(listener, Behaviour::Kms).expect("KMS responder"));
            kms.push((SocketAddr::from((ip, 1688)), responder));
        }
        for target in ["kms1", "kms2", "old"] {
            zone = zone.record(&format!("_vlmcs._tcp IN SRV 0 0 1688 {target}.corp.test."));
        }
        Site { lab: start(&[zone]), kms, state: tempfile::tempdir().expect("state dir") }
    }

    /// Writes an inventory signing with `key` (a BIND key file) and returns its path.
    fn inventory(&self, file: &str, key: &Path, extra: &str) -> PathBuf {
        let path = self.state.path().join(file);
        let text = format!(
            r#"[defaults]
timeout = "1s"
retries = 1
ttl = 600
propagation_timeout = "5s"

[daemon]
state_dir = "{state}"
{extra}

[[key]]
name = "{key_name}"
algorithm = "hmac-sha256"
secret_file = "{key}"

[[zone]]
name = "corp.test"
servers = ["{addr}"]
primary = "{addr}"
update_key = "{key_name}"
policy = "repair"

[[host]]
name = "kms1.corp.test"
zones = ["corp.test"]
state = "active"

[[host]]
name = "kms2.corp.test"
zones = ["corp.test"]
state = "active"

[[host]]
name = "kms3.corp.test"
zones = ["corp.test"]
state = "active"

[[host]]
name = "old.corp.test"
zones = []
state = "decommissioned"
"#,
            state = self.state.path().join("state").display(),
            key_name = key_name(key),
            key = key.display(),
            addr = self.lab.addr(),
        );
        std::fs::write(&path, text).expect("write inventory");
        path
    }

    fn srv(&self) -> Vec<String> {
        self.lab.dig("_vlmcs._tcp.corp.test", "SRV")
    }
}

/// The key name inside a BIND key file.
fn key_name(path: &Path) -> String {
    let t = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    t.split('"').nth(1).unwrap_or_else(|| panic!("no key name in {}", path.display())).to_string()
}

fn secret(path: &Path) -> String {
    let t = std::fs::read_to_string(path).unwrap();
    t.split("secret \"").nth(1).unwrap().split('"').next().unwrap().to_string()
}

/// A key file with `name` and a secret no server has.
fn foreign_key(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("foreign-{name}.key"));
    let secret = "bm90LXRoZS1zZXJ2ZXJzLXNlY3JldC1ub3QtYXQtYWxsLTAxMjM0NTY3ODk=";
    std::fs::write(&path, format!("key \"{name}\" {{ algorithm hmac-sha256; secret \"{secret}\"; }};\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", show(o)))
}

/// (code, target) of every finding.
fn findings(v: &Value) -> BTreeSet<(String, String)> {
    v["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("no findings array: {v}"))
        .iter()
        .map(|f| (f["code"].as_str().unwrap().to_string(), f["target"].as_str().unwrap_or("").to_string()))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    list.iter().map(|(c, t)| (c.to_string(), t.to_string())).collect()
}

fn audit_finds_exactly_what_is_wrong<L: DnsLab>(start: impl Fn(&[ZoneSpec]) -> L) {
    let site = Site::new(start);
    let inv = site.inventory("kmsdns.toml", &site.lab.key().file, "");
    let out = kmsdns(&["audit", "--config", inv.to_str().unwrap(), "--format", "json"]);
    assert_eq!(out.status.code(), Some(2), "{}: {}", site.lab.product(), show(&out));
    let want = pairs(&[
        ("stale-dead", "kms2.corp.test"),
        ("stale-decommissioned", "old.corp.test"),
        ("missing-record", "kms3.corp.test"),
    ]);
    assert_eq!(findings(&json(&out)), want, "{}: {}", site.lab.product(), show(&out));
    // An audit sends no UPDATE.
    assert_eq!(site.lab.updates_logged("corp.test"), 0, "{}", site.lab.log());
}

fn repair_heals_the_zone_and_a_second_repair_sends_nothing<L: DnsLab>(start: impl Fn(&[ZoneSpec]) -> L) {
    let site = Site::new(start);
    let inv = site.inventory("kmsdns.toml", &site.lab.key().file, "");
    let inv = inv.to_str().unwrap();
    let product = site.lab.product();
    let serial = site.lab.serial("corp.test").expect("serial before");

    let out = kmsdns(&["repair", "--apply", "--config", inv]);
    assert_eq!(out.status.code(), Some(0), "{product}: {}\n{}", show(&out), site.lab.log());
    let stdout = text(&out.stdout);
    assert!(stdout.contains("- SRV 0 0 1688 kms2.corp.test.   (stale-dead)"), "{product}: {stdout}");
    assert!(stdout.contains("- SRV 0 0 1688 old.corp.test.   (stale-decommissioned)"), "{product}: {stdout}");
    assert!(stdout.contains("+ SRV 0 0 1688 kms3.corp.test.   (missing-record)"), "{product}: {stdout}");
    assert!(stdout.contains("every server serves the new RRset"), "{product}: {stdout}");
    assert_eq!(site.srv(), HEALED, "{product}");
    // One UPDATE: the serial moved by one, and the server logged it.
    let logged = site.lab.updates_logged("corp.test");
    assert!(logged > 0, "{product}: the log marker for updates must see this one:\n{}", site.lab.log());
    let healed_serial = site.lab.serial("corp.test").expect("serial after");
    assert_eq!(healed_serial, serial + 1, "{product}");

    let out = kmsdns(&["repair", "--apply", "--config", inv, "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{product}: {}", show(&out));
    assert_eq!(json(&out)["zones"][0]["result"]["result"], "nothing-to-do", "{product}: {}", show(&out));
    assert_eq!(site.lab.updates_logged("corp.test"), logged, "{product}: the second repair sent an UPDATE");
    assert_eq!(site.lab.serial("corp.test"), Some(healed_serial), "{product}");
    assert_eq!(site.srv(), HEALED, "{product}");
}

/// `signature`: what the report must say for a wrong secret on this server; `not_allowed`: for a
/// key the server knows and the zone does not allow.
fn a_wrong_secret_names_the_signature<L: DnsLab>(start: impl Fn(&[ZoneSpec]) -> L, signature: &str, not_allowed: &str) {
    let site = Site::new(start);
    let product = site.lab.product();
    let wrong = foreign_key(site.state.path(), &site.lab.key().name);
    let inv = site.inventory("wrong-secret.toml", &wrong, "");
    let out = kmsdns(&["repair", "--apply", "--config", inv.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{product}: {}", show(&out));
    let said = words(&out.stdout);
    assert!(said.contains("FAILED") && said.contains(signature), "{product}: {}\n{}", show(&out), site.lab.log());
    // Not the advice for a key the zone does not allow.
    assert!(!said.contains("update-policy"), "{product}: {}", show(&out));
    assert_eq!(site.srv().len(), 3, "{product}: nothing changed");
    let secret = secret(&wrong);
    assert!(!said.contains(&secret) && !text(&out.stderr).contains(&secret), "{product}: a secret leaked");

    // A key the server knows but the zone does not allow is a policy matter.
    let other = site.lab.unpermitted_key_file();
    let inv = site.inventory("unpermitted.toml", &other, "");
    let out = kmsdns(&["repair", "--apply", "--config", inv.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{product}: {}", show(&out));
    let said = words(&out.stdout);
    assert!(said.contains("FAILED") && said.contains(not_allowed), "{product}: {}", show(&out));
    assert_eq!(site.srv().len(), 3, "{product}: nothing changed");

    // The journal holds both attempts as not applied, and no secret.
    let journal = std::fs::read_to_string(site.state.path().join("state/journal.jsonl")).unwrap();
    assert!(!journal.contains(&secret) && !journal.contains(&self::secret(&other)), "{product}: a secret leaked");
    let outcomes: Vec<Value> = journal
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["phase"] == "outcome")
        .collect();
    assert_eq!(outcomes.len(), 2, "{product}: {journal}");
    assert!(outcomes.iter().all(|o| o["result"] == "not-applied"), "{product}: {journal}");
}

/// A running `kmsdns run`, its log in a file; stopped by PID (SIGTERM, then SIGKILL) on drop.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(config: &Path, state: &Path) -> Daemon {
        let log = state.with_extension("log");
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(assert_cmd::cargo::cargo_bin!("kmsdns"))
            .args(["run", "--config"])
            .arg(config)
            .arg("--state-dir")
            .arg(state)
            .env("RUST_LOG", "kmsdns=info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start kmsdns run");
        Daemon { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_log(&self, what: &str, n: usize, limit: Duration) {
        let start = Instant::now();
        while self.log().matches(what).count() < n {
            assert!(start.elapsed() < limit, "no {n}× {what:?} in the log after {limit:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(3);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn applied(state: &Path) -> usize {
    std::fs::read_to_string(state.join("journal.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("journal line is JSON"))
        .filter(|l| l["phase"] == "outcome" && l["result"] == "applied")
        .count()
}

fn wait_srv<L: DnsLab>(site: &Site<L>, want: &[&str], limit: Duration) {
    let start = Instant::now();
    while site.srv() != want {
        assert!(
            start.elapsed() < limit,
            "{} did not answer {want:?} within {limit:?}: {:?}",
            site.lab.product(),
            site.srv()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn two_daemons_neither_flap_nor_clobber<L: DnsLab>(start: impl Fn(&[ZoneSpec]) -> L) {
    let mut site = Site::new(start);
    let product = site.lab.product();
    // Heal the zone first, so that the daemons start from a clean one: kms1 and kms3.
    let inv = site.inventory("kmsdns.toml", &site.lab.key().file, "");
    let out = kmsdns(&["repair", "--apply", "--config", inv.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{product}: {}", show(&out));
    assert_eq!(site.srv(), HEALED, "{product}");

    let daemon = "interval = \"700ms\"\nprobe_interval = \"150ms\"\nfail_after = 3\nrecover_after = 2";
    let config = site.inventory("daemon.toml", &site.lab.key().file, daemon);
    let (a_state, b_state) = (site.state.path().join("site-a"), site.state.path().join("site-b"));
    let a = Daemon::start(&config, &a_state);
    let b = Daemon::start(&config, &b_state);
    a.wait_log("is now alive", 2, Duration::from_secs(10));
    b.wait_log("is now alive", 2, Duration::from_secs(10));

    // kms3 dies: exactly one daemon removes it.
    let kms3 = site.kms[2].0;
    site.kms[2].1 = None;
    wait_srv(&site, &HEALED[..1], Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(2));
    let deletes = applied(&a_state) + applied(&b_state);
    assert_eq!(deletes, 1, "{product}: exactly one daemon deletes:\n{}\n{}", a.log(), b.log());

    // kms3 comes back: exactly one daemon adds it.
    site.kms[2].1 = Some(KmsResponder::up(kms3).expect("restart a KMS responder"));
    wait_srv(&site, &HEALED, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(2));
    let changes = applied(&a_state) + applied(&b_state);
    assert_eq!(changes, 2, "{product}: exactly one daemon adds:\n{}\n{}\n{}", a.log(), b.log(), site.lab.log());
    assert_eq!(site.srv(), HEALED, "{product}");
}

/// kmsdns saw {kms1, kms2, old} and removes old; meanwhile another writer added kms3. RFC 2136
/// §3.2.3: the value-dependent prerequisite is the whole RRset, so the server answers NXRRSET
/// and nothing is overwritten. (Samba's internal DNS does not: tests/interop_samba_prereq.rs.)
fn a_record_added_after_kmsdns_looked_fails_the_prerequisite<L: DnsLab>(start: impl Fn(&[ZoneSpec]) -> L) {
    use base64::Engine as _;
    use kmsdns::apply::{Auth, CommitError, Mode, RrsetUpdate, UpdateError, commit};
    use kmsdns::model::SrvRecord;
    use kmsdns::name::DnsName;
    let site = Site::new(start);
    let product = site.lab.product();
    site.lab.nsupdate("corp.test", &["update add _vlmcs._tcp.corp.test. 3600 IN SRV 0 0 1688 kms3.corp.test."]);
    let srv = |h: &str| SrvRecord {
        target: DnsName::parse(&format!("{h}.corp.test")).unwrap(),
        port: 1688,
        priority: 0,
        weight: 0,
        ttl: 3600,
    };
    let update = RrsetUpdate {
        zone: DnsName::parse("corp.test").unwrap(),
        expected: vec![srv("kms1"), srv("kms2"), srv("old")],
        deletes: vec![srv("old")],
        adds: vec![],
    };
    let key = site.lab.key();
    let secret = base64::engine::general_purpose::STANDARD.decode(&key.secret_b64).unwrap();
    let key = kmsdns::keys::TsigKey::new(
        DnsName::parse(&key.name).unwrap(),
        kmsdns::inventory::TsigAlgorithmName::HmacSha256,
        secret,
    );
    let journal = kmsdns::journal::Journal::open(&site.state.path().join("state")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let r = rt.block_on(commit(
        Mode::Apply(&journal),
        kmsdns::apply::Authority::Policy(kmsdns::inventory::Policy::Repair),
        site.lab.addr(),
        &Auth::Tsig(key),
        &update,
        vec![],
        None,
        Duration::from_secs(2),
    ));
    assert!(
        matches!(&r, Err(CommitError::Update { source: UpdateError::Conflict { rcode, .. }, .. }) if rcode == "NXRRSET"),
        "{product}: {r:?}\n{}",
        site.lab.log()
    );
    assert_eq!(site.srv().len(), 4, "{product}: nothing was overwritten");
}

/// The scenario, once per server.
macro_rules! on_server {
    ($server:ident, $start:expr, $wrong_secret_says:expr, $not_allowed_says:expr) => {
        mod $server {
            use super::*;

            #[test]
            fn audit_finds_exactly_what_is_wrong() {
                super::audit_finds_exactly_what_is_wrong($start);
            }

            #[test]
            fn repair_heals_the_zone_and_a_second_repair_sends_nothing() {
                super::repair_heals_the_zone_and_a_second_repair_sends_nothing($start);
            }

            #[test]
            fn a_wrong_secret_names_the_signature() {
                super::a_wrong_secret_names_the_signature($start, $wrong_secret_says, $not_allowed_says);
            }

            #[test]
            fn a_record_added_after_kmsdns_looked_fails_the_prerequisite() {
                super::a_record_added_after_kmsdns_looked_fails_the_prerequisite($start);
            }

            #[test]
            fn two_daemons_neither_flap_nor_clobber() {
                super::two_daemons_neither_flap_nor_clobber($start);
            }
        }
    };
}

const SIGNED_REFUSAL: &str = "is not allowed to update this zone";
on_server!(bind, |z: &[ZoneSpec]| BindLab::independent_primaries(z, 1), "NOTAUTH, TSIG error BADSIG", SIGNED_REFUSAL);
// Knot answers BADKEY for a key it knows but no ACL of the zone names.
on_server!(
    knot,
    KnotLab::start,
    "NOTAUTH, TSIG error BADSIG",
    "BADKEY): the server does not know key 'kmsdns-other' with this algorithm, or (Knot) no ACL of the zone lets it update"
);
// PowerDNS answers a wrong secret with an unsigned REFUSED, a key the zone does not allow with a signed one.
on_server!(
    pdns,
    PdnsLab::start,
    "(REFUSED): it did not accept the signature made with key 'kmsdns-test'; check the secret and the algorithm",
    SIGNED_REFUSAL
);

/// PowerDNS with a `lua-dnsupdate-policy-script` that refuses: it logs "Not permitted by
/// policy … 0 changes, rolling back" and still answers NOERROR. The primary then still serves
/// the RRset from before the update, so the change was not applied, and kmsdns must say so.
#[test]
fn pdns_a_noerror_the_primary_did_not_apply_is_journaled_not_applied() {
    use support::UpdatePolicy;
    let site = Site::new(|z: &[ZoneSpec]| PdnsLab::with_policy(z, UpdatePolicy::LuaRefusesAll));
    let before = site.srv();
    let inv = site.inventory("kmsdns.toml", &site.lab.key().file, "");
    let inv = inv.to_str().unwrap();
    let out = kmsdns(&["repair", "--apply", "--config", inv]);
    let log = site.lab.log();
    // What PowerDNS did: refused by policy, rolled back, answered NOERROR.
    assert!(log.contains("Not permitted by policy") && log.contains("0 changes, rolling back"), "{log}");
    assert_eq!(site.srv(), before, "PowerDNS applied nothing");
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let said = words(&out.stdout);
    assert!(!said.contains("LAGGING") && !said.contains("result: applied"), "{}", show(&out));
    let out = kmsdns(&["journal", "--config", inv, "--format", "json"]);
    let entries = json(&out);
    let entries = entries.as_array().unwrap_or_else(|| panic!("{}", show(&out)));
    assert_eq!(entries.len(), 1, "{}", show(&out));
    assert_eq!(entries[0]["outcome"]["result"], "not-applied", "{}", show(&out));
}
