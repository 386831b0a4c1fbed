//! Two `kmsdns run` instances ("sites") on the same zone, real BIND 9, in-test KMS hosts: a
//! host one site cannot reach is not deleted while the other sees it working (the split view
//! is reported instead), a host dead for both goes, and a stopped site stops counting once its
//! entry in the shared view (`_kmsdns-view.<zone>` TXT) is stale.
//!
//! The partition is real: site A runs as its own uid, and an nftables rule drops that uid's
//! packets to kms2's KMS port (needs root and `nft`, which scripts/install-test-deps installs).

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kmsdns::demo::responder::{Behaviour, KmsResponder};
use support::{BindLab, Daemon, ZoneSpec, loopback_ip};

const INTERVAL: Duration = Duration::from_secs(2);
const PROBE: Duration = Duration::from_secs(1);
const FAIL_AFTER: u32 = 2;
/// The default, 3 × interval.
const STALE_AFTER: Duration = Duration::from_secs(6);

/// An nftables table of this test's own that drops one uid's TCP to one address and port;
/// deleted (the partition healed) on [`Firewall::heal`] or drop.
struct Firewall {
    table: Option<String>,
}

impl Firewall {
    fn drop_traffic(uid: u32, to: SocketAddr) -> Firewall {
        let table = format!("kmsdns_test_{}_{uid}", std::process::id());
        let nft = |args: &[&str]| {
            let out = Command::new("nft").args(args).output().expect("run nft (scripts/install-test-deps)");
            assert!(out.status.success(), "nft {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        nft(&["add", "table", "inet", &table]);
        let fw = Firewall { table: Some(table.clone()) };
        nft(&["add", "chain", "inet", &table, "out", "{ type filter hook output priority 0; }"]);
        let rule = format!("meta skuid {uid} ip daddr {} tcp dport {} drop", to.ip(), to.port());
        nft(&["add", "rule", "inet", &table, "out", &rule]);
        fw
    }

    fn heal(&mut self) {
        if let Some(table) = self.table.take() {
            let _ = Command::new("nft").args(["delete", "table", "inet", &table]).status();
        }
    }
}

impl Drop for Firewall {
    fn drop(&mut self) {
        self.heal();
    }
}

/// corp.test on a primary and a secondary, kms1 and kms2 published and answering, and the
/// config of each site.
struct Sites {
    lab: BindLab,
    kms: Vec<(SocketAddr, Option<KmsResponder>)>,
    dir: tempfile::TempDir,
}

const BOTH: [&str; 2] = ["0 0 1688 kms1.corp.test.", "0 0 1688 kms2.corp.test."];
const ONLY1: [&str; 1] = ["0 0 1688 kms1.corp.test."];
const VIEW: &str = "_kmsdns-view.corp.test";

impl Sites {
    fn new() -> Sites {
        let (ips, ports): (Vec<Ipv4Addr>, Vec<_>) = (0..2).map(|_| loopback_ip()).unzip();
        let kms = ips
            .iter()
            .zip(ports)
            .map(|(ip, port)| {
                let responder = KmsResponder::from_listener(port, Behaviour::Kms).expect("start a KMS responder");
                (SocketAddr::from((*ip, 1688)), Some(responder))
            })
            .collect();
        let zone = ZoneSpec::new("corp.test")
            .record(&format!("kms1 IN A {}", ips[0]))
            .record(&format!("kms2 IN A {}", ips[1]))
            .record("_vlmcs._tcp IN SRV 0 0 1688 kms1.corp.test.")
            .record("_vlmcs._tcp IN SRV 0 0 1688 kms2.corp.test.");
        let lab = BindLab::primary_secondary(&[zone]);
        let dir = tempfile::tempdir().unwrap();
        // Site A runs as another uid: it must reach its own directory.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        Sites { lab, kms, dir }
    }

    /// The config of instance `id`, its state dir, owned by `uid` when given (the key too).
    fn site(&self, id: &str, uid: Option<u32>) -> (PathBuf, PathBuf) {
        let home = self.dir.path().join(id);
        std::fs::create_dir(&home).unwrap();
        let key = home.join("kmsdns-test.key");
        std::fs::copy(&self.lab.key.file, &key).unwrap();
        let state = home.join("state");
        std::fs::create_dir(&state).unwrap();
        if let Some(uid) = uid {
            for p in [&home, &key, &state] {
                chown(p, Some(uid), Some(uid)).unwrap();
            }
        }
        let servers: Vec<String> = self.lab.servers.iter().map(|s| format!("\"{}\"", s.addr)).collect();
        let text = format!(
            r#"[defaults]
timeout = "300ms"
retries = 0
propagation_timeout = "5s"

[daemon]
interval = "{interval}s"
probe_interval = "{probe}s"
fail_after = {FAIL_AFTER}
recover_after = 2

[instance]
id = "{id}"

[[key]]
name = "kmsdns-test"
algorithm = "hmac-sha256"
secret_file = "{key}"

[[zone]]
name = "corp.test"
servers = [{servers}]
primary = "{primary}"
update_key = "kmsdns-test"
policy = "repair"

[[host]]
name = "kms1.corp.test"
zones = ["corp.test"]
state = "active"

[[host]]
name = "kms2.corp.test"
zones = ["corp.test"]
state = "active"
"#,
            interval = INTERVAL.as_secs(),
            probe = PROBE.as_secs(),
            key = key.display(),
            servers = servers.join(", "),
            primary = self.lab.servers[0].addr,
        );
        let config = home.join("kmsdns.toml");
        std::fs::write(&config, text).unwrap();
        (config, state)
    }

    fn targets(&self, idx: usize) -> Vec<String> {
        self.lab.dig(idx, "_vlmcs._tcp.corp.test", "SRV")
    }

    fn wait_all(&self, want: &[&str], limit: Duration) -> Duration {
        let start = Instant::now();
        loop {
            if (0..self.lab.servers.len()).all(|i| self.targets(i) == want) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < limit,
                "servers did not all answer {want:?} within {limit:?}: {:?} / {:?}",
                self.targets(0),
                self.targets(1)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The entry of instance `id` in the primary's view, as dig shows it.
    fn entry(&self, id: &str) -> Option<String> {
        self.lab.dig(0, VIEW, "TXT").into_iter().find(|l| l.contains(&format!(" id={id} ")))
    }

    /// Waits until the primary's entry of `id` satisfies `want`; returns it.
    fn wait_entry(&self, id: &str, want: impl Fn(&str) -> bool, limit: Duration) -> String {
        let start = Instant::now();
        loop {
            if let Some(e) = self.entry(id).filter(|e| want(e)) {
                return e;
            }
            assert!(
                start.elapsed() < limit,
                "no entry of {id} as wanted within {limit:?}: {:?}",
                self.lab.dig(0, VIEW, "TXT")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The `t=` of an entry as dig shows it.
fn entry_time(entry: &str) -> u64 {
    entry.split(['"', ' ']).find_map(|w| w.strip_prefix("t=")?.parse().ok()).unwrap_or_else(|| panic!("{entry}"))
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

fn applied(state: &Path) -> usize {
    std::fs::read_to_string(state.join("journal.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("\"phase\":\"outcome\"") && l.contains("\"result\":\"applied\""))
        .count()
}

/// Watches the primary's `_vlmcs._tcp` RRset for `length`, every 100 ms; returns how many
/// times it changed.
fn srv_changes(sites: &Sites, length: Duration) -> usize {
    let start = Instant::now();
    let mut last = sites.targets(0);
    let mut changes = 0;
    while start.elapsed() < length {
        std::thread::sleep(Duration::from_millis(100));
        let now = sites.targets(0);
        if now != last {
            changes += 1;
            last = now;
        }
    }
    changes
}

/// A uid of its own for site A (no account needed: root sets it on the child).
fn site_a_uid() -> u32 {
    60_000 + std::process::id() % 5_000
}

#[test]
fn a_host_one_site_cannot_reach_is_kept_reported_as_a_split_view_and_removed_once_both_see_it_dead() {
    let mut sites = Sites::new();
    let uid = site_a_uid();
    let (a_config, a_state) = sites.site("site-a", Some(uid));
    let (b_config, b_state) = sites.site("site-b", None);
    let kms2 = sites.kms[1].0;

    // Site B is up first and has said what it sees.
    let b = Daemon::start(&b_config, &b_state);
    b.wait_log("is now alive", 2, Duration::from_secs(15));
    sites.wait_entry("site-b", |e| e.contains("alive=kms1,kms2"), Duration::from_secs(15));

    // Site A cannot reach kms2.
    let mut partition = Firewall::drop_traffic(uid, kms2);
    let a = Daemon::start_as(&a_config, &a_state, Some(uid));
    a.wait_log("is now alive", 1, Duration::from_secs(15));

    // 30 s of partition: kms2 keeps its record; at most one change (none expected).
    let serial = sites.lab.serial(0, "corp.test");
    let changes = srv_changes(&sites, Duration::from_secs(30));
    // The serial moves with each site's heartbeat in the view, not with the SRV records.
    eprintln!(
        "partition, 30 s: {changes} SRV change(s); SOA serial {serial:?} -> {:?}",
        sites.lab.serial(0, "corp.test")
    );
    let logs = || format!("--- site A ---\n{}\n--- site B ---\n{}", a.log(), b.log());
    assert!(changes <= 1, "the RRset changed {changes} times in 30 s:\n{}", logs());
    assert!(applied(&a_state) + applied(&b_state) <= 1, "updates were applied:\n{}", logs());
    assert_eq!(sites.targets(0), BOTH, "{}", logs());
    assert_eq!(sites.targets(1), BOTH, "{}", logs());
    // What the user sees: site A's dead verdict, and the split view on both sides.
    assert!(a.log().contains("is now dead"), "{}", logs());
    assert!(a.log().contains("finding: split-view corp.test"), "{}", logs());
    assert!(a.log().contains("site-b saw it alive"), "{}", logs());
    assert!(b.log().contains("finding: split-view corp.test"), "{}", logs());
    let a_entry = sites.entry("site-a").expect("site A's entry");
    assert!(a_entry.contains("dead=kms2"), "{a_entry}");

    // Healed: site A sees kms2 again, the split view clears, nothing changes.
    let applied_before = applied(&a_state) + applied(&b_state);
    partition.heal();
    a.wait_log("cleared: split-view corp.test", 1, Duration::from_secs(15));
    sites.wait_entry("site-a", |e| e.contains("alive=kms1,kms2"), Duration::from_secs(10));
    assert_eq!(srv_changes(&sites, INTERVAL * 2), 0, "{}", logs());
    assert_eq!(applied(&a_state) + applied(&b_state), applied_before, "{}", logs());
    assert_eq!(sites.targets(0), BOTH);

    // kms2 really dies: both sites see it dead, and it goes within the hysteresis bound plus
    // one cycle (the one in which the sites' views meet), plus a second for the work itself.
    let died = Instant::now();
    sites.kms[1].1 = None;
    sites.wait_all(&ONLY1, Duration::from_secs(20));
    let took = died.elapsed();
    eprintln!("dead for both sites: kms2 gone from every server after {took:?}");
    let bound = PROBE * FAIL_AFTER + INTERVAL + Duration::from_secs(1);
    assert!(took <= bound, "kms2 took {took:?} to go (bound {bound:?}):\n{}", logs());
    assert_eq!(applied(&a_state) + applied(&b_state), applied_before + 1, "one delete:\n{}", logs());
}

#[test]
fn a_stopped_site_blocks_deletes_until_its_entry_is_stale_then_the_other_acts_alone() {
    let mut sites = Sites::new();
    let (a_config, a_state) = sites.site("site-a", None);
    let (b_config, b_state) = sites.site("site-b", None);
    let a = Daemon::start(&a_config, &a_state);
    let mut b = Daemon::start(&b_config, &b_state);
    sites.wait_entry("site-a", |e| e.contains("alive=kms1,kms2"), Duration::from_secs(15));
    sites.wait_entry("site-b", |e| e.contains("alive=kms1,kms2"), Duration::from_secs(15));

    // Site B stops; its last word was that kms2 is alive. Then kms2 dies.
    b.stop(Duration::from_secs(10));
    let last_word = entry_time(&sites.entry("site-b").expect("site B's entry stays"));
    sites.kms[1].1 = None;
    sites.wait_all(&ONLY1, Duration::from_secs(30));
    let gone = unix_now();
    let logs = || format!("--- site A ---\n{}\n--- site B ---\n{}", a.log(), b.log());

    // Not before site B's entry went stale (whole seconds: t= is rounded down) ...
    let stale_at = (last_word + STALE_AFTER.as_secs()) as f64;
    assert!(gone >= stale_at, "kms2 went at {gone}, before site B's entry went stale at {stale_at}:\n{}", logs());
    assert!(a.log().contains("finding: split-view corp.test"), "{}", logs());
    // ... and within a cycle of it (plus a second for t=, written rounded down, and one for
    // the work itself).
    let late = gone - stale_at;
    eprintln!("site B stopped: kms2 deleted {late:.1} s after site B's entry went stale");
    let bound = (INTERVAL + Duration::from_secs(3)).as_secs_f64();
    assert!(late <= bound, "kms2 went {late:.1} s after site B's entry went stale (bound {bound} s):\n{}", logs());
    assert!(a.log().contains("finding: peer-stale corp.test"), "{}", logs());
    assert_eq!(applied(&a_state), 1, "{}", logs());
}

#[test]
fn a_one_shot_repair_does_not_delete_a_host_another_site_sees_alive() {
    let mut sites = Sites::new();
    let (config, _state) = sites.site("site-a", None);
    let config = config.to_str().unwrap();
    sites.kms[1].1 = None;
    // kms2 is dead from here; without another instance's word, a repair would delete it.
    let plan = support::run::kmsdns(&["plan", "--config", config, "--format", "json"]);
    assert!(String::from_utf8_lossy(&plan.stdout).contains("\"action\": \"delete\""), "{}", support::run::show(&plan));

    // A live daemon at site B has just said that it sees kms2 alive.
    let now = unix_now() as u64;
    let entry = format!("update add {VIEW}. 60 TXT \"v=1 id=site-b t={now} alive=kms1,kms2 dead=\"");
    sites.lab.update(0, "corp.test", &[&entry]);
    let out = support::run::kmsdns(&["repair", "--apply", "--config", config, "--format", "json"]);
    let text = support::run::show(&out);
    assert_eq!(sites.targets(0), BOTH, "{text}");
    assert!(text.contains("split-view") && text.contains("instance site-b saw it alive"), "{text}");
    assert!(text.contains("held back"), "{text}");

    // An entry nobody can read holds the delete too.
    sites.lab.update(
        0,
        "corp.test",
        &[&format!("update delete {VIEW}. TXT"), &format!("update add {VIEW}. 60 TXT \"hello\"")],
    );
    let out = support::run::kmsdns(&["repair", "--apply", "--config", config, "--format", "json"]);
    let text = support::run::show(&out);
    assert_eq!(sites.targets(0), BOTH, "{text}");
    assert!(text.contains("peer-view-unreadable"), "{text}");
}
