//! The scale benchmark: `kmsdns check-config` and `kmsdns audit` on a BIND estate of N zones,
//! against dnsperf sending exactly the questions kmsdns sends. Whole processes, medians of
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

#[path = "../tests/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kmsdns::demo::responder::{Behaviour, KmsResponder};
use support::{BindLab, ZoneSpec, loopback_ip};

const HOSTS: usize = 3;

fn main() {
    if let Some(report) = std::env::args().nth(1).filter(|a| a == MEASURE).and(std::env::args().nth(2)) {
        measure_child(Path::new(&report), std::env::args().skip(3));
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

        // The same questions: SRV and SOA of every zone on each server; A and AAAA of each
        // target once, on the first server.
        let queries = (0..lab.servers.len())
            .map(|i| {
                let mut q = String::new();
                for z in &specs {
                    let _ = writeln!(q, "_vlmcs._tcp.{} SRV\n{} SOA", z.name, z.name);
                }
                if i == 0 {
                    for t in &targets {
                        let _ = writeln!(q, "{t} A\n{t} AAAA");
                    }
                }
                let path = lab.dir.path().join(format!("queries{i}.txt"));
                std::fs::write(&path, q).expect("write a dnsperf query file");
                path
            })
            .collect();
        eprintln!("scale: {} zones on 2 BIND servers ready in {:.1?}", zones + 1, started.elapsed());
        Estate { zones: zones + 1, lab, inventory, queries, _responders: responders }
    }

    /// The queries kmsdns must send: SRV + SOA per zone and server, A + AAAA per target.
    fn questions(&self) -> usize {
        self.zones * 2 * self.lab.servers.len() + HOSTS * 2
    }

    fn measure(&self, runs: usize) -> Row {
        let config = self.inventory.to_str().expect("a UTF-8 path");
        let dnsperf = support_tool("dnsperf");
        let (mut check, mut audit, mut perf, mut rss) = (vec![], vec![], vec![], vec![]);
        for run in 0..runs.max(1) {
            let c = timed(&kmsdns(), &["check-config", "--config", config]);
            assert!(c.ok(), "check-config refused the estate:\n{}", c.stderr);
            check.push(c.wall);
            let a = timed(&kmsdns(), &["audit", "--config", config, "--format", "json"]);
            self.check_audit(run, &a);
            audit.push(a.wall);
            rss.push(a.peak_rss_kib);
            if let Some(dnsperf) = &dnsperf {
                perf.push(self.dnsperf(dnsperf));
            }
        }
        Row {
            zones: self.zones,
            queries: self.questions(),
            check_config: median(check),
            audit: median(audit),
            dnsperf: (!perf.is_empty()).then(|| median(perf)),
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

    /// dnsperf on both servers at once, 128 in flight each (kmsdns: concurrency 64 × SRV + SOA);
    /// the wall time from the first start to the last end. Every query must complete.
    fn dnsperf(&self, dnsperf: &Path) -> Duration {
        let started = Instant::now();
        let children: Vec<_> = self
            .lab
            .servers
            .iter()
            .zip(&self.queries)
            .map(|(s, q)| {
                Command::new(dnsperf)
                    .args(["-s", "127.0.0.1", "-p", &s.addr.port().to_string(), "-c", "4", "-q", "128", "-n", "1"])
                    .arg("-d")
                    .arg(q)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("start dnsperf")
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().expect("wait for dnsperf");
            let text = String::from_utf8_lossy(&out.stdout);
            let lost = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("Queries lost:"))
                .and_then(|l| l.split_whitespace().next());
            assert!(out.status.success() && lost == Some("0"), "dnsperf:\n{text}");
        }
        started.elapsed()
    }
}

/// One size's figures, a row of the README's growth table.
struct Row {
    zones: usize,
    queries: usize,
    check_config: Duration,
    audit: Duration,
    dnsperf: Option<Duration>,
    peak_rss_mib: f64,
    runs: usize,
}

impl Row {
    const HEADER: &str = "| zones | queries | `check-config` | `kmsdns audit` | dnsperf, same queries | audit / dnsperf | audit peak RSS | runs |\n|---|---|---|---|---|---|---|---|";
}

impl std::fmt::Display for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (perf, ratio) = match self.dnsperf {
            Some(d) => {
                (format!("{:.3} s", d.as_secs_f64()), format!("{:.2}×", self.audit.as_secs_f64() / d.as_secs_f64()))
            }
            None => ("(no dnsperf)".into(), "".into()),
        };
        write!(
            f,
            "| {} | {} | {:.3} s | {:.3} s | {perf} | {ratio} | {:.1} MiB | {} |",
            self.zones,
            self.queries,
            self.check_config.as_secs_f64(),
            self.audit.as_secs_f64(),
            self.peak_rss_mib,
            self.runs
        )
    }
}

/// The kmsdns that cargo built for this benchmark (the bench profile: release), or `$KMSDNS`
/// (another build, to compare).
fn kmsdns() -> PathBuf {
    std::env::var_os("KMSDNS").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_kmsdns")), PathBuf::from)
}

fn support_tool(name: &str) -> Option<PathBuf> {
    let found =
        ["/usr/bin", "/usr/sbin", "/usr/local/bin"].iter().map(|d| Path::new(d).join(name)).find(|p| p.is_file());
    if found.is_none() {
        eprintln!("scale: {name} is not installed (apt-get install {name}): kmsdns alone is measured");
    }
    found
}

/// A whole process: wall time, peak RSS (the kernel's, from wait4), exit code, output.
struct Timed {
    wall: Duration,
    peak_rss_kib: i64,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Timed {
    fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

/// The argument that makes this binary [`measure_child`] instead of benchmarking.
const MEASURE: &str = "__measure";

/// A process, run through a fresh copy of this binary that waits for it: Linux carries the
/// peak RSS of the process that spawns across exec, so a child of the benchmark itself (which
/// holds the estate and a parsed report) would report the benchmark's peak, not its own.
fn timed(program: &Path, args: &[&str]) -> Timed {
    let dir = tempfile::tempdir().expect("a temp dir for the output");
    let (out, err, usage) = (dir.path().join("out"), dir.path().join("err"), dir.path().join("usage"));
    let file = |p: &Path| std::fs::File::create(p).expect("create an output file");
    let me = std::env::current_exe().expect("this benchmark's path");
    let mut cmd = Command::new(me);
    cmd.arg(MEASURE).arg(&usage).arg(program).args(args);
    cmd.env_remove("RUST_LOG").stdin(Stdio::null()).stdout(file(&out)).stderr(file(&err));
    let started = Instant::now();
    let status = cmd.status().expect("start the measured process");
    let wall = started.elapsed();
    assert!(status.success(), "the measuring helper failed: {}", std::fs::read_to_string(&err).unwrap_or_default());
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let usage = read(&usage);
    let mut fields = usage.split_whitespace().map(|f| f.parse::<i64>().expect("a number"));
    let (peak_rss_kib, code) = (fields.next().unwrap_or(0), fields.next().filter(|c| *c >= 0).map(|c| c as i32));
    Timed { wall, peak_rss_kib, code, stdout: read(&out), stderr: read(&err) }
}

/// Runs `command` with this process's stdio and writes "PEAK_RSS_KIB EXIT_CODE" (-1: killed by
/// a signal) to `report`, from wait4: what `/usr/bin/time -f '%M'` gives.
fn measure_child(report: &Path, mut command: impl Iterator<Item = String>) {
    let program = command.next().expect("a program to measure");
    // Reaped by wait4 below, which also gives the peak RSS that Child::wait does not.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(program).args(command).spawn().expect("start the measured program");
    let (mut status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
    // SAFETY: the pid is our own child's, not yet reaped; status and usage are valid pointers.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert!(pid > 0, "wait4: {}", std::io::Error::last_os_error());
    let code = std::process::ExitStatus::from_raw(status).code().unwrap_or(-1);
    std::fs::write(report, format!("{} {code}", usage.ru_maxrss)).expect("write the measurement");
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}
