//! The repair benchmark: `kmsdns repair --apply` of N broken zones (2 deletes + 1 add each) on
//! a BIND primary and secondary, against `dnsperf -u` sending the same UPDATEs (same
//! prerequisites, same TSIG key) to the primary: what the primary can take. kmsdns's figure
//! includes everything it does besides: observing every zone on both servers, probing the
//! targets, journaling each change and verifying it on every server. Whole processes, medians
//! of alternating runs, each on a fresh estate. Every run is checked, kmsdns's and dnsperf's,
//! so a broken run fails instead of giving a figure.
//!
//! ```text
//! cargo bench --bench repair -- [ZONES] [RUNS]   # default 1000 zones, 3 runs
//! cargo test --bench repair                      # the CI smoke size: 50 zones, 1 run
//! REPAIR_STEPS=1 cargo bench --bench repair -- 1000 3   # and when each step of each run ended
//! ```
//!
//! The estate is built with the integration tests' harness (tests/support): `zoneNNNNN.bench`
//! with `_vlmcs._tcp` SRV records for kms1, dead1 and dead2 of `hosts.bench`. kms1 and kms2
//! are in-process KMS responders; dead1 and dead2 are loopback addresses of this process's own
//! where nothing listens. All four are active in every zone, so each zone needs `delete dead1`,
//! `delete dead2` (stale-dead) and `add kms2` (missing-record): one UPDATE.

#[path = "common.rs"]
mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Timed, kmsdns, median, support_tool, timed, timed_env};
use kmsdns::demo::responder::{Behaviour, KmsResponder};
use support::{BindLab, ZoneSpec, loopback_ip};

/// BIND's defaults (20 NOTIFYs and 20 SOA queries a second) would make every zone wait its
/// turn to propagate, and its listen queue of 10 drops the secondary's transfer connections
/// (each retried after a second or more): the benchmark measures kmsdns, not those throttles
/// (bench/README.md).
const BIND_OPTIONS: &str = "notify-rate 1000; startup-notify-rate 1000; serial-query-rate 1000; \
     transfers-in 50; transfers-out 50; transfers-per-ns 50; tcp-listen-queue 128;";

fn main() {
    if common::measuring_helper() {
        return;
    }
    let measuring = std::env::args().any(|a| a == "--bench");
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let num = |i: usize, default: usize| args.get(i).map_or(default, |a| a.parse().expect("a number"));
    let (zones, runs) = if measuring { (num(0, 1000), num(1, 3)) } else { (num(0, 50), num(1, 1)) };
    let dnsperf = support_tool("dnsperf");
    let load_before = common::load_average();
    let (mut repair, mut repair_cpu, mut rss, mut perf, mut named_cpu) = (vec![], vec![], vec![], vec![], vec![]);
    let mut healed = vec![];
    for run in 0..runs.max(1) {
        let estate = Estate::build(zones);
        if let Some(secs) = std::env::var("REPAIR_HOLD").ok().and_then(|s| s.parse().ok()) {
            // For profiling by hand: the broken estate stays up, its inventory named, this long.
            eprintln!("repair: holding the estate for {secs} s: {}", estate.config());
            std::thread::sleep(Duration::from_secs(secs));
        }
        let r = estate.repair(run);
        repair.push(r.wall);
        repair_cpu.push(r.cpu);
        rss.push(r.peak_rss_kib);
        named_cpu.push(r.named_cpu);
        drop(estate);
        if let Some(dnsperf) = &dnsperf {
            let estate = Estate::build(zones);
            let r = estate.dnsperf(dnsperf, run);
            perf.push(r.dnsperf);
            healed.push(r.healed);
        }
    }
    let secs = |d: Duration| d.as_secs_f64();
    let list = |v: &[Duration]| v.iter().map(|d| format!("{:.3}", secs(*d))).collect::<Vec<_>>().join(" ");
    let (walls, perfs, heals) = (list(&repair), list(&perf), list(&healed));
    let (wall, cpu) = (median(repair), median(repair_cpu));
    println!(
        "repair --apply, {zones} zones (2 deletes + 1 add each), {} run(s), load {load_before} → {}:",
        runs.max(1),
        common::load_average()
    );
    println!(
        "  kmsdns:  {:.3} s wall, {:.3} s CPU, peak RSS {:.1} MiB, {:.0} UPDATEs/s; the primary's CPU {:.2} s",
        secs(wall),
        secs(cpu),
        rss.iter().copied().max().unwrap_or(0) as f64 / 1024.0,
        zones as f64 / secs(wall),
        secs(median(named_cpu))
    );
    println!("  kmsdns runs: {walls} s; dnsperf runs: {perfs} s; until healed on both servers: {heals} s");
    if !perf.is_empty() {
        let (p, h) = (median(perf), median(healed));
        println!(
            "  dnsperf -u, the same UPDATEs to the primary: {:.3} s, {:.0} UPDATEs/s; kmsdns / dnsperf {:.2}×",
            secs(p),
            zones as f64 / secs(p),
            secs(wall) / secs(p)
        );
        println!(
            "  dnsperf, then until every zone is healed on both servers: {:.3} s; kmsdns / that {:.2}×",
            secs(h),
            secs(wall) / secs(h)
        );
    }
}

struct Estate {
    zones: usize,
    lab: BindLab,
    inventory: PathBuf,
    state: PathBuf,
    _responders: Vec<KmsResponder>,
}

fn zone_name(i: usize) -> String {
    format!("zone{i:05}.bench")
}

/// What dnsperf took for the same UPDATEs, and until the secondary served them all.
struct Reference {
    dnsperf: Duration,
    /// From dnsperf's start until every zone was healed on both servers.
    healed: Duration,
}

/// What one `kmsdns repair --apply` cost.
struct Run {
    wall: Duration,
    cpu: Duration,
    peak_rss_kib: i64,
    /// The primary's CPU over the repair.
    named_cpu: Duration,
}

impl Estate {
    fn build(zones: usize) -> Estate {
        let mut hosts = ZoneSpec::new("hosts.bench");
        let mut responders = Vec::new();
        for name in ["kms1", "kms2", "dead1", "dead2"] {
            let (ip, listener) = loopback_ip();
            hosts = hosts.record(&format!("{name} 3600 IN A {ip}"));
            if name.starts_with("kms") {
                responders.push(KmsResponder::from_listener(listener, Behaviour::Kms).expect("start a KMS responder"));
            } else {
                // Dropped: nothing listens there, and no other process can take the address.
                drop(listener);
                assert!(
                    std::net::TcpStream::connect((ip, support::KMS_PORT)).is_err(),
                    "{ip}:1688 must refuse connections: it stands for a dead KMS host"
                );
            }
        }
        let mut specs: Vec<ZoneSpec> = (1..=zones)
            .map(|i| {
                let mut z = ZoneSpec::new(&zone_name(i));
                for t in ["kms1", "dead1", "dead2"] {
                    z = z.record(&format!("_vlmcs._tcp 3600 IN SRV 0 0 1688 {t}.hosts.bench."));
                }
                z
            })
            .collect();
        specs.push(hosts);
        let lab = BindLab::primary_secondary_with(&specs, BIND_OPTIONS);
        let state = lab.dir.path().join("state");
        let primary = lab.servers[0].addr;
        let servers: Vec<String> = lab.servers.iter().map(|s| format!("\"{}\"", s.addr)).collect();
        let servers = servers.join(", ");
        // REPAIR_CONFIRM_WINDOW: the delete confirmation's window instead of the default 2 s,
        // to see what the rest of the repair costs (bench/README.md).
        let window = match std::env::var("REPAIR_CONFIRM_WINDOW") {
            Ok(w) => format!("confirm_window = \"{w}\"\n"),
            Err(_) => String::new(),
        };
        // REPAIR_CONCURRENCY: the inventory's `concurrency` instead of the default 64.
        let concurrency = std::env::var("REPAIR_CONCURRENCY").unwrap_or_else(|_| "64".into());
        let mut text = format!(
            "[defaults]\ntimeout = \"2s\"\nretries = 1\nconcurrency = {concurrency}\npropagation_timeout = \"30s\"\n{window}\n\
             [daemon]\nstate_dir = \"{}\"\n\n[[key]]\nname = \"{}\"\nalgorithm = \"hmac-sha256\"\nsecret_file = \"{}\"\n\n",
            state.display(),
            lab.key.name,
            lab.key.file.display()
        );
        for z in &specs[..zones] {
            let _ = writeln!(
                text,
                "[[zone]]\nname = \"{}\"\nservers = [{servers}]\nprimary = \"{primary}\"\nupdate_key = \"{}\"\n\
                 policy = \"repair\"\nmax_deletes = 2\n",
                z.name, lab.key.name
            );
        }
        let _ = writeln!(text, "[[zone]]\nname = \"hosts.bench\"\nservers = [{servers}]\n");
        let listed: Vec<String> = specs[..zones].iter().map(|z| format!("\"{}\"", z.name)).collect();
        for t in ["kms1", "kms2", "dead1", "dead2"] {
            let _ = writeln!(
                text,
                "[[host]]\nname = \"{t}.hosts.bench\"\nzones = [{}]\nstate = \"active\"\n",
                listed.join(", ")
            );
        }
        let inventory = lab.dir.path().join("kmsdns.toml");
        std::fs::write(&inventory, text).expect("write the inventory");
        let c = timed(&kmsdns(), &["check-config", "--config", inventory.to_str().expect("a UTF-8 path")]);
        assert!(c.ok(), "check-config refused the estate:\n{}", c.stderr);
        Estate { zones, lab, inventory, state, _responders: responders }
    }

    fn config(&self) -> &str {
        self.inventory.to_str().expect("a UTF-8 path")
    }

    /// `kmsdns repair --apply`, checked: every zone applied in one attempt with exactly the 3
    /// changes and both servers converged, one journal entry per zone, all applied, and then a
    /// clean audit with kms1 + kms2 and nothing else on both servers.
    fn repair(&self, run: usize) -> Run {
        let state = self.state.to_str().expect("a UTF-8 path");
        let primary_pid = self.lab.servers[0].pid();
        let named_before = common::proc_cpu(primary_pid);
        let args = ["repair", "--apply", "--format", "json", "--config", self.config(), "--state-dir", state];
        let steps = std::env::var_os("REPAIR_STEPS").is_some();
        let started = std::time::SystemTime::now();
        let r = match steps {
            true => timed_env(&kmsdns(), &args, &[("RUST_LOG", "kmsdns=debug")]),
            false => timed(&kmsdns(), &args),
        };
        if steps {
            println!("  run {run}: {}", Steps::of(started, &r.stderr, r.wall));
        }
        let named_cpu = common::proc_cpu(primary_pid).saturating_sub(named_before);
        self.check_repair(run, &r);
        let journal =
            timed(&kmsdns(), &["journal", "--format", "json", "--config", self.config(), "--state-dir", state]);
        assert!(journal.ok(), "kmsdns journal failed:\n{}", journal.stderr);
        let entries: serde_json::Value = serde_json::from_str(&journal.stdout).expect("the journal prints JSON");
        let entries = entries.as_array().expect("journal entries");
        let applied = entries.iter().filter(|e| e["outcome"]["result"] == "applied").count();
        assert!(
            entries.len() == self.zones && applied == self.zones,
            "run {run}: the journal holds {} entries, {applied} applied, for {} zones",
            entries.len(),
            self.zones
        );
        // kmsdns verified every zone on both servers before it answered: no waiting here.
        self.check_healed(&format!("kmsdns run {run}"));
        Run { wall: r.wall, cpu: r.cpu, peak_rss_kib: r.peak_rss_kib, named_cpu }
    }

    fn check_repair(&self, run: usize, r: &Timed) {
        let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_default();
        if !r.ok() {
            // The zones that went wrong first: the tail of a report of 1,000 is the last zones'.
            let unwell: Vec<String> = report["zones"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|z| {
                    let result = &z["result"];
                    (result["result"] != "applied" && result["result"] != "nothing-to-do")
                        || result["lagging"].as_array().is_some_and(|l| !l.is_empty())
                })
                .take(5)
                .map(|z| format!("{} {} {}", z["zone"], z["result"], z["servers"]))
                .collect();
            let stderr = r.stderr.lines().filter(|l| !l.contains(" DEBUG ")).collect::<Vec<_>>().join("\n");
            panic!(
                "repair run {run} exited {:?}:\n{stderr}\nzones that went wrong (of the first):\n{}\n{}",
                r.code,
                unwell.join("\n"),
                self.troubles(&unwell.join("\n"))
            );
        }
        assert!(report["exit_code"] == 0 && report["applied"] == true, "repair run {run}: {}", tail(&r.stdout));
        let zones = report["zones"].as_array().expect("zones");
        assert_eq!(zones.len(), self.zones + 1, "repair run {run}: zones reported");
        let target =
            |c: &serde_json::Value| c["record"]["target"].as_str().unwrap_or("").trim_end_matches('.').to_string();
        let expected = [
            ("add", "kms2.hosts.bench", "missing-record"),
            ("delete", "dead1.hosts.bench", "stale-dead"),
            ("delete", "dead2.hosts.bench", "stale-dead"),
        ];
        for z in zones {
            let name = z["zone"].as_str().unwrap_or("").trim_end_matches('.');
            let result = &z["result"];
            if name == "hosts.bench" {
                assert_eq!(result["result"], "nothing-to-do", "repair run {run}: {z}");
                continue;
            }
            let mut changes: Vec<(String, String, String)> = z["plan"]["changes"]
                .as_array()
                .expect("changes")
                .iter()
                .map(|c| {
                    (c["action"].as_str().unwrap_or("").into(), target(c), c["code"].as_str().unwrap_or("").into())
                })
                .collect();
            changes.sort();
            let want: Vec<(String, String, String)> =
                expected.iter().map(|(a, t, c)| (a.to_string(), t.to_string(), c.to_string())).collect();
            assert_eq!(changes, want, "repair run {run}: {name}");
            let servers = z["servers"].as_array().expect("servers");
            let converged = servers.len() == 2 && servers.iter().all(|s| s["converged"] == true);
            assert!(
                result["result"] == "applied"
                    && result["attempts"] == 1
                    && result["lagging"].as_array().is_none_or(|l| l.is_empty())
                    && converged,
                "repair run {run}: {z}"
            );
        }
    }

    /// The zones healed ([`Estate::healed`]), or a panic saying why not.
    fn check_healed(&self, what: &str) {
        if let Err(why) = self.healed() {
            panic!("{what}: the zones are not healed: {why}\n{}", self.troubles(&why));
        }
    }

    /// What the servers' logs say went wrong, for a run that failed: a few lines of each kind,
    /// and every line about the first zone `why` names.
    fn troubles(&self, why: &str) -> String {
        let zone = why.match_indices("zone").map(|(i, _)| &why[i..]).find_map(|w| {
            let name = w.get(..15)?;
            (name.as_bytes()[4..9].iter().all(u8::is_ascii_digit) && name.ends_with(".bench")).then_some(name)
        });
        let mut out = String::new();
        for s in &self.lab.servers {
            let log = s.log();
            let words = ["fail", "error", "quota", "refused", "timed out", "retry", "denied"];
            let bad: Vec<&str> = log.lines().filter(|l| words.iter().any(|w| l.to_lowercase().contains(w))).collect();
            let _ = writeln!(out, "named {}: {} troubled log line(s)", s.addr, bad.len());
            for l in bad.iter().take(8).chain(bad.iter().rev().take(4).rev()) {
                let _ = writeln!(out, "  {l}");
            }
            if let Some(zone) = zone {
                let _ = writeln!(out, "named {}, of {zone}:", s.addr);
                for l in log.lines().filter(|l| l.contains(zone)) {
                    let _ = writeln!(out, "  {l}");
                }
            }
        }
        out
    }

    /// The zones healed: an audit is clean, with exactly kms1 + kms2 on both servers of every
    /// zone, and dig on both servers says so for the last zone.
    fn healed(&self) -> Result<(), String> {
        let a = timed(&kmsdns(), &["audit", "--format", "json", "--config", self.config()]);
        let report: serde_json::Value =
            serde_json::from_str(&a.stdout).map_err(|e| format!("the audit's JSON: {e}\n{}", a.stderr))?;
        // What is left is only what no repair can fix: dead1 and dead2 are active in the
        // inventory but down (a warning, exit 1), in every zone.
        let findings = report["findings"].as_array().ok_or("no findings in the audit")?;
        let expected = |f: &serde_json::Value| {
            f["code"] == "active-host-down"
                && f["target"].as_str().is_some_and(|t| t.starts_with("dead1.") || t.starts_with("dead2."))
        };
        if let Some(f) = findings.iter().find(|f| !expected(f)) {
            let mut by_server = std::collections::BTreeMap::<&str, usize>::new();
            for f in findings.iter().filter(|f| !expected(f)) {
                *by_server.entry(f["server"].as_str().unwrap_or("no server")).or_default() += 1;
            }
            return Err(format!("{} finding(s), by server {by_server:?}, e.g. {f}", findings.len()));
        }
        if findings.len() != 2 * self.zones || a.code != Some(1) {
            let (n, code) = (findings.len(), a.code);
            return Err(format!(
                "{n} active-host-down findings (want {}), exit {code:?}:\n{}",
                2 * self.zones,
                a.stderr
            ));
        }
        for z in report["zones"].as_array().ok_or("no zones in the audit")? {
            if z["zone"].as_str().is_some_and(|n| n.trim_end_matches('.') == "hosts.bench") {
                continue;
            }
            for s in z["servers"].as_array().ok_or("no servers")? {
                let mut targets: Vec<&str> = s["records"]
                    .as_array()
                    .map(|r| r.iter().filter_map(|r| r["target"].as_str()).map(|t| t.trim_end_matches('.')).collect())
                    .unwrap_or_default();
                targets.sort();
                if targets != ["kms1.hosts.bench", "kms2.hosts.bench"] {
                    return Err(format!("{z}"));
                }
            }
        }
        // As a client sees it, through dig, on both servers of the last zone.
        let last = format!("_vlmcs._tcp.{}", zone_name(self.zones));
        for i in 0..2 {
            let got = self.lab.dig(i, &last, "SRV");
            if got != ["0 0 1688 kms1.hosts.bench.", "0 0 1688 kms2.hosts.bench."] {
                return Err(format!("dig {last} SRV on server {i}: {got:?}"));
            }
        }
        Ok(())
    }

    /// The same UPDATEs (the same value-dependent prerequisite, 2 deletes, 1 add, the same
    /// key) sent by dnsperf to the primary over TCP, 64 in flight (kmsdns: concurrency 64).
    /// Every one must be answered NOERROR, and the zones must then be healed on both servers.
    fn dnsperf(&self, dnsperf: &Path, run: usize) -> Reference {
        let mut updates = String::new();
        for i in 1..=self.zones {
            let _ = writeln!(updates, "{}", zone_name(i));
            for t in ["kms1", "dead1", "dead2"] {
                let _ = writeln!(updates, "require _vlmcs._tcp SRV 0 0 1688 {t}.hosts.bench.");
            }
            let _ = writeln!(
                updates,
                "delete _vlmcs._tcp SRV 0 0 1688 dead1.hosts.bench.\ndelete _vlmcs._tcp SRV 0 0 1688 dead2.hosts.bench.\n\
                 add _vlmcs._tcp 3600 SRV 0 0 1688 kms2.hosts.bench.\nsend"
            );
        }
        let file = self.lab.dir.path().join("updates.txt");
        std::fs::write(&file, updates).expect("write the dnsperf update file");
        let key = format!("hmac-sha256:{}:{}", self.lab.key.name, self.lab.key.secret_b64);
        let port = self.lab.servers[0].addr.port().to_string();
        let file = file.to_str().expect("a UTF-8 path");
        // DNSPERF_QUEUE: UPDATEs in flight on its one connection (64 unless set).
        let queue = std::env::var("DNSPERF_QUEUE").unwrap_or_else(|_| "64".into());
        let args = [
            "-u",
            "-m",
            "tcp",
            "-s",
            "127.0.0.1",
            "-p",
            &port,
            "-y",
            &key,
            "-c",
            "1",
            "-q",
            &queue,
            "-n",
            "1",
            "-d",
            file,
        ];
        let start = std::time::Instant::now();
        let out = timed(dnsperf, &args);
        let field = |label: &str| {
            out.stdout.lines().find_map(|l| l.trim().strip_prefix(label)).and_then(|l| l.split_whitespace().next())
        };
        let all = self.zones.to_string();
        // dnsperf echoes its command line, the key's secret with it: never in a message.
        let shown = || out.stdout.replace(&self.lab.key.secret_b64, "(secret)");
        let complete = field("Updates lost:") == Some("0") && field("Updates completed:") == Some(&all);
        assert!(out.ok() && complete, "dnsperf run {run}:\n{}{}", shown(), out.stderr);
        assert!(out.stdout.contains(&format!("NOERROR {all} ")), "dnsperf run {run}: not all NOERROR:\n{}", shown());
        // The secondary follows by NOTIFY + IXFR; kmsdns waited for it, dnsperf does not: how
        // long until every zone is healed on both servers, asked again every 50 ms (each ask is
        // an audit, about 0.15 s at 1,000 zones, so this is late by up to that much).
        let mut why = String::new();
        while start.elapsed() < Duration::from_secs(30) {
            match self.healed() {
                Ok(()) => return Reference { dnsperf: out.wall, healed: start.elapsed() },
                Err(e) => why = e,
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "dnsperf run {run}: the zones are not healed 30 s after dnsperf started: {why}\n{}",
            self.troubles(&why)
        );
    }
}

/// The end of a long output, for a failure message.
fn tail(s: &str) -> &str {
    let start = s.len().saturating_sub(2000);
    &s[(start..s.len()).find(|&i| s.is_char_boundary(i)).unwrap_or(s.len())..]
}

/// When the steps of one kmsdns run ended, from its debug log (`REPAIR_STEPS=1`): each UPDATE's
/// answer (`apply::commit`) and each zone's propagation (`verify::await_propagation`), timed
/// from the process's start.
struct Steps {
    /// When each UPDATE was answered, and how long it took.
    answers: Vec<(Duration, Duration)>,
    /// Each zone's wait from the NOERROR until every server served the change, and its polls.
    propagation: Vec<(Duration, u32)>,
    wall: Duration,
}

impl Steps {
    fn of(started: std::time::SystemTime, log: &str, wall: Duration) -> Steps {
        let ms = |s: &str| Duration::from_millis(s.parse().expect("a number of milliseconds"));
        let mut steps = Steps { answers: vec![], propagation: vec![], wall };
        for line in log.lines() {
            let Some((stamp, rest)) = line.split_once(' ') else { continue };
            if let Some((_, took)) = rest.split_once(" answered in ") {
                let at = humantime::parse_rfc3339(stamp).expect("a timestamped log line");
                let at = at.duration_since(started).unwrap_or_default();
                let took = took.split(" ms").next().expect("\"N ms\"");
                steps.answers.push((at, ms(took)));
            } else if let Some((_, after)) = rest.split_once("the change is on every server after ") {
                let (took, polls) = after.split_once(" ms (").expect("\"N ms (P polls)\"");
                let polls = polls.trim_end_matches(" polls)").parse().expect("a number of polls");
                steps.propagation.push((ms(took), polls));
            }
        }
        steps
    }
}

impl std::fmt::Display for Steps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.answers.is_empty() || self.propagation.is_empty() {
            return write!(f, "no UPDATE or propagation in the log (was it built before the debug lines?)");
        }
        let secs = |d: Duration| d.as_secs_f64();
        let millis = |v: Vec<Duration>| median(v).as_secs_f64() * 1e3;
        let first = self.answers.iter().map(|a| a.0.saturating_sub(a.1)).min().unwrap_or_default();
        let last = self.answers.iter().map(|a| a.0).max().unwrap_or_default();
        let mut polls: Vec<u32> = self.propagation.iter().map(|p| p.1).collect();
        polls.sort_unstable();
        write!(
            f,
            "first UPDATE sent at {:.2} s, last answered at {:.2} s ({} UPDATEs, {:.1} ms each, median); \
             propagation {:.0} ms ({} polls, median); the run ends at {:.2} s",
            secs(first),
            secs(last),
            self.answers.len(),
            millis(self.answers.iter().map(|a| a.1).collect()),
            millis(self.propagation.iter().map(|p| p.0).collect()),
            polls[polls.len() / 2],
            secs(self.wall),
        )
    }
}
