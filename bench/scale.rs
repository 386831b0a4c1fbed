//! The scale benchmark: `kmsdns check-config` and `kmsdns audit` on a BIND estate of N zones,
//! against dnsperf sending exactly the questions kmsdns sends, byte for byte. Whole processes, medians of
//! alternating runs, peak RSS from the kernel (wait4). Every audit is checked, so a broken run
//! fails instead of giving a figure.
//!
//! ```text
//! cargo bench --bench scale -- audit [ZONES] [RUNS]   # one size (default 1000 zones, 5 runs)
//! cargo bench --bench scale -- growth [RUNS]          # 1k, 3k, 10k, 30k: the README's table
//! cargo test --bench scale                            # the CI smoke size: 100 zones, 1 run
//! ```
//!
//! The estate is built with the integration tests' harness (tests/support): two independent
//! BIND primaries on 127.0.0.1 serving `zoneNNNNN.bench` (three SRV records each: kms1..3 of
//! `hosts.bench`) and `hosts.bench` (their A records and the same three SRV records, so the
//! audit is clean), and three in-process KMS responders on loopback addresses of this
//! process's own. dnsperf is optional: without it only kmsdns is measured.

#[path = "common.rs"]
mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Timed, kmsdns, median, support_tool, timed};

use hickory_proto::rr::RecordType;
use kmsdns::demo::responder::{Behaviour, KmsResponder};
use kmsdns::name::DnsName;
use kmsdns::observe::dns::authoritative_query;
use support::{BindLab, ZoneSpec, loopback_ip};

const HOSTS: usize = 3;

fn main() {
    if common::measuring_helper() {
        return;
    }
    // `cargo bench` adds `--bench`; without it (`cargo test`, CI) the default is the smoke
    // size: 100 zones, one run, so that the benchmark is exercised on every landing.
    let measuring = std::env::args().any(|a| a == "--bench");
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let num = |i: usize, default: usize| args.get(i).map_or(default, |a| a.parse().expect("a number"));
    let (zones, runs) = if measuring { (1000, 5) } else { (100, 1) };
    match args.first().map(String::as_str) {
        None | Some("audit") => {
            let estate = Estate::build(num(1, zones));
            if let Some(secs) = std::env::var("SCALE_HOLD").ok().and_then(|s| s.parse().ok()) {
                // For profiling by hand: the estate stays up, its inventory named, this long.
                eprintln!("scale: holding the estate for {secs} s: {}", estate.inventory.display());
                std::thread::sleep(Duration::from_secs(secs));
            }
            let row = estate.measure(num(2, runs));
            println!("{}", Row::HEADER);
            println!("{row}");
        }
        Some("growth") => {
            let runs = num(1, 3);
            println!("{}", Row::HEADER);
            for zones in [1000, 3000, 10_000, 30_000] {
                println!("{}", Estate::build(zones).measure(runs));
            }
        }
        Some(other) => panic!("unknown benchmark '{other}': audit [ZONES] [RUNS] or growth [RUNS]"),
    }
}

struct Estate {
    zones: usize,
    lab: BindLab,
    inventory: PathBuf,
    /// dnsperf query files, one per server: what kmsdns asks that server.
    queries: Vec<PathBuf>,
    _responders: Vec<KmsResponder>,
}

fn zone_name(i: usize) -> String {
    format!("zone{i:05}.bench")
}

impl Estate {
    fn build(zones: usize) -> Estate {
        let started = Instant::now();
        let targets: Vec<String> = (1..=HOSTS).map(|k| format!("kms{k}.hosts.bench")).collect();
        let with_srv = |mut z: ZoneSpec| {
            for t in &targets {
                z = z.record(&format!("_vlmcs._tcp 3600 IN SRV 0 0 1688 {t}."));
            }
            z
        };
        let mut hosts = with_srv(ZoneSpec::new("hosts.bench"));
        let mut responders = Vec::new();
        for k in 1..=HOSTS {
            let (ip, listener) = loopback_ip();
            hosts = hosts.record(&format!("kms{k} 3600 IN A {ip}"));
            responders.push(KmsResponder::from_listener(listener, Behaviour::Kms).expect("start a KMS responder"));
        }
        let mut specs: Vec<ZoneSpec> = (1..=zones).map(|i| with_srv(ZoneSpec::new(&zone_name(i)))).collect();
        specs.push(hosts);
        let lab = BindLab::independent_primaries(&specs, 2);

        let servers: Vec<String> = lab.servers.iter().map(|s| format!("\"{}\"", s.addr)).collect();
        let servers = servers.join(", ");
        let mut text = String::from("[defaults]\ntimeout = \"2s\"\nretries = 1\nconcurrency = 64\n\n");
        for z in &specs {
            let _ = writeln!(text, "[[zone]]\nname = \"{}\"\nservers = [{servers}]\n", z.name);
        }
        let listed: Vec<String> = specs.iter().map(|z| format!("\"{}\"", z.name)).collect();
        for t in &targets {
            let _ = writeln!(text, "[[host]]\nname = \"{t}\"\nzones = [{}]\nstate = \"active\"\n", listed.join(", "));
        }
        let inventory = lab.dir.path().join("kmsdns.toml");
        std::fs::write(&inventory, text).expect("write the inventory");

        // The same questions: SRV, SOA and the instances' shared view (TXT) of every zone on
        // each server; A and AAAA of each target once, on the first server. The very bytes
        // kmsdns sends (its own encoder: RD=0, EDNS), in dnsperf's binary input format (`-B`:
        // each message after its 2-octet length); dnsperf sets the IDs.
        let queries = (0..lab.servers.len())
            .map(|i| {
                let mut asked: Vec<(String, RecordType)> = Vec::new();
                for z in &specs {
                    asked.push((format!("_vlmcs._tcp.{}", z.name), RecordType::SRV));
                    asked.push((z.name.clone(), RecordType::SOA));
                    asked.push((format!("_kmsdns-view.{}", z.name), RecordType::TXT));
                }
                if i == 0 {
                    for t in &targets {
                        asked.push((t.clone(), RecordType::A));
                        asked.push((t.clone(), RecordType::AAAA));
                    }
                }
                let mut q = Vec::new();
                for (name, rtype) in asked {
                    let name = DnsName::parse(&name).expect("a benchmark name");
                    let bytes = authoritative_query(&name, rtype);
                    q.extend_from_slice(&u16::try_from(bytes.len()).expect("a short question").to_be_bytes());
                    q.extend_from_slice(&bytes);
                }
                let path = lab.dir.path().join(format!("queries{i}.bin"));
                std::fs::write(&path, q).expect("write a dnsperf query file");
                path
            })
            .collect();
        eprintln!("scale: {} zones on 2 BIND servers ready in {:.1?}", zones + 1, started.elapsed());
        Estate { zones: zones + 1, lab, inventory, queries, _responders: responders }
    }

    /// The queries kmsdns must send: SRV + SOA + the shared view's TXT per zone and server,
    /// A + AAAA per target.
    fn questions(&self) -> usize {
        self.zones * 3 * self.lab.servers.len() + HOSTS * 2
    }

    fn measure(&self, runs: usize) -> Row {
        let config = self.inventory.to_str().expect("a UTF-8 path");
        let dnsperf = support_tool("dnsperf");
        let (mut check, mut audit, mut perf, mut rss) = (vec![], vec![], vec![], vec![]);
        let (mut audit_cpu, mut perf_cpu) = (vec![], vec![]);
        for run in 0..runs.max(1) {
            let c = timed(&kmsdns(), &["check-config", "--config", config]);
            assert!(c.ok(), "check-config refused the estate:\n{}", c.stderr);
            check.push(c.wall);
            let a = timed(&kmsdns(), &["audit", "--config", config, "--format", "json"]);
            self.check_audit(run, &a);
            audit.push(a.wall);
            audit_cpu.push(a.cpu);
            rss.push(a.peak_rss_kib);
            if let Some(dnsperf) = &dnsperf {
                let (wall, cpu) = self.dnsperf(dnsperf);
                perf.push(wall);
                perf_cpu.push(cpu);
            }
        }
        Row {
            zones: self.zones,
            queries: self.questions(),
            check_config: median(check),
            audit: median(audit),
            audit_cpu: median(audit_cpu),
            dnsperf: (!perf.is_empty()).then(|| (median(perf), median(perf_cpu))),
            peak_rss_mib: rss.iter().copied().max().unwrap_or(0) as f64 / 1024.0,
            runs: runs.max(1),
        }
    }

    /// A clean audit of the whole estate, or the benchmark stops: exit 0, no finding, every zone
    /// on both servers with its 3 records and a serial, every target up.
    fn check_audit(&self, run: usize, a: &Timed) {
        assert!(a.ok(), "audit run {run} exited {:?}:\n{}", a.code, a.stderr);
        let report: serde_json::Value = serde_json::from_str(&a.stdout).expect("the audit prints JSON");
        let findings = report["findings"].as_array().expect("findings");
        assert!(findings.is_empty(), "audit run {run}: {} finding(s), e.g. {}", findings.len(), findings[0]);
        let zones = report["zones"].as_array().expect("zones");
        assert_eq!(zones.len(), self.zones, "audit run {run}: zones reported");
        for z in zones {
            let servers = z["servers"].as_array().expect("servers");
            let clean = servers.len() == 2
                && servers.iter().all(|s| {
                    s["outcome"] == "records"
                        && s["records"].as_array().is_some_and(|r| r.len() == HOSTS)
                        && s["serial"].is_u64()
                });
            assert!(clean, "audit run {run}: {z}");
        }
        let targets = report["targets"].as_array().expect("targets");
        assert_eq!(targets.len(), HOSTS, "audit run {run}: targets");
    }

    /// dnsperf on both servers at once, 128 in flight each, kmsdns's own query bytes (`-B`):
    /// the wall time from the first start to the last end, and the CPU of both. Every query
    /// must complete.
    fn dnsperf(&self, dnsperf: &Path) -> (Duration, Duration) {
        let started = Instant::now();
        let runs: Vec<Timed> = std::thread::scope(|s| {
            let handles: Vec<_> = self
                .lab
                .servers
                .iter()
                .zip(&self.queries)
                .map(|(server, q)| {
                    let port = server.addr.port().to_string();
                    let q = q.to_str().expect("a UTF-8 path").to_string();
                    s.spawn(move || {
                        let args = ["-B", "-s", "127.0.0.1", "-p", &port, "-c", "4", "-q", "128", "-n", "1", "-d", &q];
                        timed(dnsperf, &args)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("a dnsperf thread")).collect()
        });
        let wall = started.elapsed();
        for out in &runs {
            let lost = out
                .stdout
                .lines()
                .find_map(|l| l.trim().strip_prefix("Queries lost:"))
                .and_then(|l| l.split_whitespace().next());
            assert!(out.ok() && lost == Some("0"), "dnsperf:\n{}{}", out.stdout, out.stderr);
        }
        (wall, runs.iter().map(|r| r.cpu).sum())
    }
}

/// One size's figures, a row of the README's growth table.
struct Row {
    zones: usize,
    queries: usize,
    check_config: Duration,
    audit: Duration,
    audit_cpu: Duration,
    /// Wall and CPU (both processes).
    dnsperf: Option<(Duration, Duration)>,
    peak_rss_mib: f64,
    runs: usize,
}

impl Row {
    const HEADER: &str = "| zones | queries | `check-config` | `kmsdns audit` (CPU) | dnsperf, same queries (CPU) | audit / dnsperf: wall, CPU | audit peak RSS | runs |\n|---|---|---|---|---|---|---|---|";
}

impl std::fmt::Display for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = |d: Duration| d.as_secs_f64();
        let (perf, ratio) = match self.dnsperf {
            Some((wall, cpu)) => (
                format!("{:.3} s ({:.3} s)", secs(wall), secs(cpu)),
                format!("{:.2}×, {:.2}×", secs(self.audit) / secs(wall), secs(self.audit_cpu) / secs(cpu).max(1e-6)),
            ),
            None => ("(no dnsperf)".into(), "".into()),
        };
        write!(
            f,
            "| {} | {} | {:.3} s | {:.3} s ({:.3} s) | {perf} | {ratio} | {:.1} MiB | {} |",
            self.zones,
            self.queries,
            secs(self.check_config),
            secs(self.audit),
            secs(self.audit_cpu),
            self.peak_rss_mib,
            self.runs
        )
    }
}
