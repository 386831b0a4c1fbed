//! The idle daemon benchmark: `kmsdns run` on a clean estate of N zones, watched over a window:
//! its RSS (flat?), its CPU between cycles (% of a core), and each cycle's CPU beside one
//! `kmsdns audit` of the same estate. Checked: the daemon stays up, logs no WARN or ERROR,
//! finds nothing, sends no update, journals nothing, and stops with exit 0 on SIGTERM; the
//! audit is clean.
//!
//! ```text
//! cargo bench --bench daemon -- [ZONES] [SECONDS] [INTERVAL]   # default 10000 zones, 300 s, 60s
//! cargo test --bench daemon                                    # the CI smoke size: 100 zones, 5 s, 2s
//! ```
//!
//! The estate is the scale benchmark's (tests/support: two independent BIND primaries, every
//! zone with SRV records for kms1 and kms2 of `hosts.bench`, both in-process KMS responders).
//! The daemon probes every `probe_interval` (10 s) and audits every `INTERVAL`. Its CPU and RSS
//! are read from /proc every 200 ms; a cycle shows as a burst of CPU. Its metrics are read at
//! both ends of the window only (a scrape at 10,000 zones would itself be measured).

#[path = "common.rs"]
mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{kmsdns, proc_cpu, timed};
use kmsdns::demo::responder::{Behaviour, KmsResponder};
use support::{BindLab, ZoneSpec, free_port, loopback_ip};

const HOSTS: [&str; 2] = ["kms1", "kms2"];
const SAMPLE: Duration = Duration::from_millis(200);
/// CPU in one [`SAMPLE`] that makes it part of a cycle: 10 % of a core. A cycle of a small
/// estate (100 zones: about 10 ms) is below it, and counted with the time between cycles.
const BUSY: Duration = Duration::from_millis(20);

fn main() {
    if common::measuring_helper() {
        return;
    }
    let measuring = std::env::args().any(|a| a == "--bench");
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let num = |i: usize, default: u64| args.get(i).map_or(default, |a| a.parse().expect("a number"));
    let (zones, secs, interval) = if measuring { (10_000, 300, "60s") } else { (100, 5, "2s") };
    let (zones, secs) = (num(0, zones) as usize, num(1, secs));
    let interval = args.get(2).map_or(interval, String::as_str);
    let load_before = common::load_average();
    let estate = Estate::build(zones, interval);
    let mut daemon = Daemon::start(&estate);
    let w = daemon.watch(Duration::from_secs(secs));
    daemon.stop_and_check(&estate);
    let audit = estate.audit();

    let secs_f = |d: Duration| d.as_secs_f64();
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "kmsdns run, {} zones, interval {interval}, probe_interval 10s, window {secs} s, load {load_before} → {}:",
        zones + 1,
        common::load_average()
    );
    println!(
        "  RSS: first {:.1} MiB, last {:.1} MiB, max {:.1} MiB ({} samples)",
        mib(w.rss_first),
        mib(w.rss_last),
        mib(w.rss_max),
        w.samples
    );
    let between = secs_f(w.idle_cpu) / secs_f(w.idle_time).max(1e-9) * 100.0;
    println!(
        "  between cycles: {:.3} s CPU over {:.1} s, {between:.2} % of a core",
        secs_f(w.idle_cpu),
        secs_f(w.idle_time)
    );
    let cycles: Vec<String> =
        w.cycles.iter().map(|(wall, cpu)| format!("{:.3} s wall / {:.3} s CPU", secs_f(*wall), secs_f(*cpu))).collect();
    println!(
        "  cycles in the window: {} by the metrics; bursts of CPU: {} [{}]",
        w.cycles_counted,
        cycles.len(),
        cycles.join(", ")
    );
    // The median burst: a probe round or the scrape at the window's start can make a short one.
    let ratio = match w.cycles.is_empty() {
        false => {
            let cpu = common::median(w.cycles.iter().map(|c| c.1).collect());
            format!("; median cycle CPU / audit CPU {:.2}×", secs_f(cpu) / secs_f(audit.1).max(1e-9))
        }
        true => String::new(),
    };
    println!(
        "  one kmsdns audit of the same estate: {:.3} s wall / {:.3} s CPU, peak RSS {:.1} MiB{ratio}",
        secs_f(audit.0),
        secs_f(audit.1),
        mib(audit.2)
    );
}

struct Estate {
    zones: usize,
    _lab: BindLab,
    inventory: PathBuf,
    state: PathBuf,
    metrics: SocketAddr,
    _responders: Vec<KmsResponder>,
}

impl Estate {
    fn build(zones: usize, interval: &str) -> Estate {
        let with_srv = |mut z: ZoneSpec| {
            for t in HOSTS {
                z = z.record(&format!("_vlmcs._tcp 3600 IN SRV 0 0 1688 {t}.hosts.bench."));
            }
            z
        };
        let mut hosts = with_srv(ZoneSpec::new("hosts.bench"));
        let mut responders = Vec::new();
        for t in HOSTS {
            let (ip, listener) = loopback_ip();
            hosts = hosts.record(&format!("{t} 3600 IN A {ip}"));
            responders.push(KmsResponder::from_listener(listener, Behaviour::Kms).expect("start a KMS responder"));
        }
        let mut specs: Vec<ZoneSpec> =
            (1..=zones).map(|i| with_srv(ZoneSpec::new(&format!("zone{i:05}.bench")))).collect();
        specs.push(hosts);
        let lab = BindLab::independent_primaries(&specs, 2);
        let state = lab.dir.path().join("state");
        let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let servers: Vec<String> = lab.servers.iter().map(|s| format!("\"{}\"", s.addr)).collect();
        let servers = servers.join(", ");
        let mut text = format!(
            "[defaults]\ntimeout = \"2s\"\nretries = 1\nconcurrency = 64\n\n[daemon]\nstate_dir = \"{}\"\n\
             interval = \"{interval}\"\nprobe_interval = \"10s\"\nmetrics = \"{metrics}\"\n\n",
            state.display()
        );
        for z in &specs {
            let _ = writeln!(text, "[[zone]]\nname = \"{}\"\nservers = [{servers}]\n", z.name);
        }
        let listed: Vec<String> = specs.iter().map(|z| format!("\"{}\"", z.name)).collect();
        for t in HOSTS {
            let _ = writeln!(
                text,
                "[[host]]\nname = \"{t}.hosts.bench\"\nzones = [{}]\nstate = \"active\"\n",
                listed.join(", ")
            );
        }
        let inventory = lab.dir.path().join("kmsdns.toml");
        std::fs::write(&inventory, text).expect("write the inventory");
        Estate { zones: zones + 1, _lab: lab, inventory, state, metrics, _responders: responders }
    }

    fn config(&self) -> &str {
        self.inventory.to_str().expect("a UTF-8 path")
    }

    /// One `kmsdns audit`, checked clean: (wall, CPU, peak RSS KiB).
    fn audit(&self) -> (Duration, Duration, u64) {
        let a = timed(&kmsdns(), &["audit", "--format", "json", "--config", self.config()]);
        assert!(a.ok(), "the reference audit exited {:?}:\n{}", a.code, a.stderr);
        let report: serde_json::Value = serde_json::from_str(&a.stdout).expect("the audit prints JSON");
        let findings = report["findings"].as_array().expect("findings");
        assert!(findings.is_empty(), "the reference audit: {} finding(s), e.g. {}", findings.len(), findings[0]);
        assert_eq!(report["zones"].as_array().map(Vec::len), Some(self.zones), "the reference audit: zones");
        (a.wall, a.cpu, a.peak_rss_kib.max(0) as u64)
    }
}

struct Daemon {
    child: Child,
    log: PathBuf,
    metrics: SocketAddr,
}

/// What the window showed.
struct Window {
    samples: usize,
    rss_first: u64,
    rss_last: u64,
    rss_max: u64,
    /// CPU and time between cycles (probes included).
    idle_cpu: Duration,
    idle_time: Duration,
    /// Each burst of CPU in the window, a cycle: (wall, CPU).
    cycles: Vec<(Duration, Duration)>,
    /// Cycles the daemon's metrics counted over the window.
    cycles_counted: u64,
}

impl Daemon {
    fn start(estate: &Estate) -> Daemon {
        let log = estate.inventory.with_file_name("daemon.log");
        let file = std::fs::File::create(&log).expect("create the daemon's log");
        let state = estate.state.to_str().expect("a UTF-8 path");
        let child = Command::new(kmsdns())
            .args(["run", "--config", estate.config(), "--state-dir", state])
            .env("RUST_LOG", "kmsdns=info")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("JOURNAL_STREAM")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone the log handle"))
            .stderr(file)
            .spawn()
            .expect("start kmsdns run");
        let mut d = Daemon { child, log, metrics: estate.metrics };
        // Warm-up: the first cycle, and the one the hosts' first verdicts (after two good
        // probes, 10 s apart) start. Bounded: a daemon that never gets there fails the run.
        let deadline = Instant::now() + Duration::from_secs(120 + estate.zones as u64 / 100);
        while d.scrape().map_or(0, |m| m.cycles) < 2 {
            d.assert_running();
            assert!(Instant::now() < deadline, "the daemon did not complete 2 cycles:\n{}", d.log_text());
            // Seldom: each scrape of a large estate's metrics costs the daemon memory it keeps.
            std::thread::sleep(Duration::from_secs(2));
        }
        std::thread::sleep(Duration::from_secs(1));
        d
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("the daemon exited ({status}):\n{}", self.log_text());
        }
    }

    /// The daemon's metrics, or None while it does not answer yet.
    fn scrape(&self) -> Option<Metrics> {
        let mut s = TcpStream::connect_timeout(&self.metrics, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        let value = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
                .and_then(|v| v.trim().parse::<f64>().ok())
        };
        let sum = |family: &str| {
            text.lines()
                .filter(|l| l.starts_with(family) && !l.starts_with('#'))
                .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
                .sum::<f64>()
        };
        Some(Metrics { cycles: value("kmsdns_cycles_total")? as u64, updates: sum("kmsdns_updates_total{") })
    }

    fn watch(&mut self, window: Duration) -> Window {
        let pid = self.child.id();
        let cycles_before = self.metrics_now().cycles;
        let start = Instant::now();
        let mut samples = vec![(Instant::now(), proc_cpu(pid))];
        let mut rss = vec![vm_rss_kib(pid)];
        while start.elapsed() < window {
            std::thread::sleep(SAMPLE);
            self.assert_running();
            samples.push((Instant::now(), proc_cpu(pid)));
            rss.push(vm_rss_kib(pid));
        }
        let cycles_counted = self.metrics_now().cycles - cycles_before;
        // The metrics are read only at both ends: at 10,000 zones one scrape costs the daemon
        // tens of milliseconds of CPU and megabytes of RSS, which would be measured instead.
        // A cycle is a burst of CPU: consecutive samples of at least BUSY each (one quiet
        // sample inside a burst does not split it); the rest is the time between cycles.
        let busy: Vec<bool> = samples.windows(2).map(|w| w[1].1.saturating_sub(w[0].1) >= BUSY).collect();
        let mut bursts: Vec<(usize, usize)> = Vec::new();
        for (i, _) in busy.iter().enumerate().filter(|(_, b)| **b) {
            match bursts.last_mut() {
                Some((_, end)) if i <= *end + 2 => *end = i,
                _ => bursts.push((i, i)),
            }
        }
        let in_burst = |i: usize| bursts.iter().any(|(a, b)| (*a..=*b).contains(&i));
        let (mut idle_cpu, mut idle_time) = (Duration::ZERO, Duration::ZERO);
        for i in (0..busy.len()).filter(|i| !in_burst(*i)) {
            idle_cpu += samples[i + 1].1.saturating_sub(samples[i].1);
            idle_time += samples[i + 1].0 - samples[i].0;
        }
        let cycles = bursts
            .iter()
            .map(|(a, b)| (samples[b + 1].0 - samples[*a].0, samples[b + 1].1.saturating_sub(samples[*a].1)))
            .collect();
        Window {
            samples: rss.len(),
            rss_first: rss[0],
            rss_last: *rss.last().expect("samples"),
            rss_max: rss.iter().copied().max().unwrap_or(0),
            idle_cpu,
            idle_time,
            cycles,
            cycles_counted,
        }
    }

    fn metrics_now(&mut self) -> Metrics {
        self.assert_running();
        self.scrape().unwrap_or_else(|| panic!("the daemon's metrics do not answer:\n{}", self.log_text()))
    }

    /// The idle daemon did nothing it should not have: no update, no journal entry, no WARN or
    /// ERROR line; and it stops with exit 0 on SIGTERM.
    fn stop_and_check(mut self, estate: &Estate) {
        let m = self.scrape().unwrap_or_else(|| panic!("the daemon's metrics do not answer:\n{}", self.log_text()));
        assert_eq!(m.updates, 0.0, "the idle daemon sent updates:\n{}", self.log_text());
        // SAFETY: a plain signal to our own child, which has not been reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for the daemon") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("the daemon did not stop within 30 s of SIGTERM:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let log = self.log_text();
        assert!(status.success(), "the daemon exited {status} on SIGTERM:\n{log}");
        let bad: Vec<&str> =
            log.lines().filter(|l| l.contains(" WARN ") || l.contains(" ERROR ") || l.contains("finding:")).collect();
        assert!(bad.is_empty(), "the idle daemon logged:\n{}", bad.join("\n"));
        let journal = estate.state.join("journal.jsonl");
        let entries = std::fs::read_to_string(&journal).unwrap_or_default();
        assert!(entries.trim().is_empty(), "the idle daemon journaled:\n{entries}");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // A failed check leaves no daemon behind: ours, by its PID.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

struct Metrics {
    cycles: u64,
    updates: f64,
}

fn vm_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
