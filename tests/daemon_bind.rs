//! `kmsdns run` against real BIND 9 and in-test KMS responders, with short intervals set in
//! the config: failover, flapping, reloads, stops, two daemons at once, metrics.

mod support;

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kmsdns::demo::responder::{Behaviour, KmsResponder};
use support::{BindLab, Daemon, ZoneSpec, free_port, loopback_ip};

/// corp.test on a primary and a secondary, with kms1 and kms2 published and answering.
struct Site {
    lab: BindLab,
    kms: Vec<(SocketAddr, Option<KmsResponder>)>,
    dir: tempfile::TempDir,
}

const FAST: &str = r#"[defaults]
timeout = "300ms"
retries = 0
propagation_timeout = "5s"
"#;

impl Site {
    fn new() -> Site {
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
        Site { lab, kms, dir: tempfile::tempdir().unwrap() }
    }

    /// Writes the config (with `daemon` settings and extra text) as `name`, returns its path.
    fn config(&self, name: &str, daemon: &str, extra: &str) -> PathBuf {
        let servers: Vec<String> = self.lab.servers.iter().map(|s| format!("\"{}\"", s.addr)).collect();
        let text = format!(
            r#"{FAST}
[daemon]
{daemon}

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
{extra}"#,
            key = self.lab.key.file.display(),
            servers = servers.join(", "),
            primary = self.lab.servers[0].addr,
        );
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn state(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn kill(&mut self, i: usize) {
        self.kms[i].1 = None;
    }

    fn revive(&mut self, i: usize) {
        self.kms[i].1 = Some(KmsResponder::up(self.kms[i].0).expect("restart a KMS responder"));
    }

    fn targets(&self, idx: usize) -> Vec<String> {
        self.lab.dig(idx, "_vlmcs._tcp.corp.test", "SRV")
    }

    /// Waits until every server answers `want`; returns how long it took.
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
}

const BOTH: [&str; 2] = ["0 0 1688 kms1.corp.test.", "0 0 1688 kms2.corp.test."];
const ONLY1: [&str; 1] = ["0 0 1688 kms1.corp.test."];

/// Journal entries (intent + outcome lines) as JSON values.
fn journal(state: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(state.join("journal.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("journal line is JSON"))
        .collect()
}

fn applied(state: &Path) -> usize {
    journal(state).iter().filter(|l| l["phase"] == "outcome" && l["result"] == "applied").count()
}

#[test]
fn a_dead_host_leaves_every_server_within_the_bound_and_comes_back_when_it_answers() {
    let mut site = Site::new();
    let (probe, fail_after) = (Duration::from_millis(200), 3u32);
    let config = site.config(
        "kmsdns.toml",
        "interval = \"30s\"\nprobe_interval = \"200ms\"\nfail_after = 3\nrecover_after = 2",
        "",
    );
    let state = site.state("state");
    let d = Daemon::start(&config, &state);
    d.wait_log("is now alive", 2, Duration::from_secs(10));

    site.kill(1);
    let took = site.wait_all(&ONLY1, Duration::from_secs(20));
    let bound = probe * fail_after + Duration::from_secs(3);
    assert!(took <= bound, "kms2's record took {took:?} to go from every server (bound {bound:?}):\n{}", d.log());
    assert!(d.log().contains("is now dead"), "{}", d.log());
    // The daemon logs the change once it has seen every server serve it.
    d.wait_log("applied journal entry 1: -SRV 0 0 1688 kms2.corp.test. (stale-dead)", 1, Duration::from_secs(5));

    site.revive(1);
    site.wait_all(&BOTH, Duration::from_secs(10));
    d.wait_log("+SRV 0 0 1688 kms2.corp.test. (missing-record)", 1, Duration::from_secs(5));
    assert_eq!(applied(&state), 2);
}

#[test]
fn a_host_that_flaps_faster_than_fail_after_causes_no_update() {
    let mut site = Site::new();
    let config = site.config(
        "kmsdns.toml",
        "interval = \"1s\"\nprobe_interval = \"200ms\"\nfail_after = 4\nrecover_after = 2",
        "",
    );
    let state = site.state("state");
    let d = Daemon::start(&config, &state);
    d.wait_log("is now alive", 2, Duration::from_secs(10));
    // Down for about one probe, up for about two, for six seconds.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(6) {
        site.kill(1);
        std::thread::sleep(Duration::from_millis(230));
        site.revive(1);
        std::thread::sleep(Duration::from_millis(450));
    }
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(journal(&state).len(), 0, "no update may be sent:\n{}", d.log());
    assert!(!d.log().contains("is now dead"), "{}", d.log());
    assert_eq!(site.targets(0), BOTH);
    assert_eq!(site.targets(1), BOTH);
}

/// The daemon's `/metrics` text.
fn scrape(port: u16) -> String {
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    std::io::Write::write_all(&mut conn, b"GET /metrics HTTP/1.1\r\nHost: kmsdns\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    conn.read_to_string(&mut body).unwrap();
    body
}

/// One unlabelled sample of `/metrics`.
fn sample(body: &str, name: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing:\n{body}"))
}

/// The next start of the audit timer that is at least `ahead` away, as seconds from now:
/// the last cycle's start (its end less its duration, from `/metrics`) plus whole intervals.
fn next_audit_in(port: u16, interval: f64, ahead: f64) -> f64 {
    let body = scrape(port);
    let start = sample(&body, "kmsdns_last_cycle_timestamp_seconds") - sample(&body, "kmsdns_cycle_duration_seconds");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let mut next = start + interval;
    while next - now < ahead {
        next += interval;
    }
    next - now
}

#[test]
fn outages_shorter_than_the_bound_cause_no_update_wherever_they_fall_on_the_audit_timer() {
    // The audit and a probe tick both fire every even second: the audit's own probe and the
    // tick's a moment later must not count as the two failures fail_after = 2 asks for.
    let mut site = Site::new();
    let port = free_port();
    let (interval, probe, fail_after) = (2.0, Duration::from_secs(1), 2u32);
    let config = site.config(
        "kmsdns.toml",
        &format!(
            "interval = \"2s\"\nprobe_interval = \"1s\"\nfail_after = {fail_after}\nrecover_after = 2\nmetrics = \"127.0.0.1:{port}\""
        ),
        // One instance alone: its view of the hosts is not shared, so the SOA serial changes
        // only with an update of the SRV records.
        "\n[instance]\nshare_view = false\n",
    );
    let state = site.state("state");
    let d = Daemon::start(&config, &state);
    d.wait_log("is now alive", 2, Duration::from_secs(10));
    let serial = site.lab.serial(0, "corp.test").expect("the primary's serial");

    // Outages of 0.6 s (the bound is about a second of failures; the margin is for a loaded
    // machine's sleeps), each starting at another point of the audit timer: before it, so
    // that the audit's probe and the tick right after it both fail, on it, after it. Each is
    // at least 1.3 s after the last, so a good probe comes in between.
    let blip = Duration::from_millis(600);
    for phase in [-0.5, -0.3, -0.1, 0.0, 0.5, 0.8] {
        let wait = next_audit_in(port, interval, 1.3 - phase) + phase;
        std::thread::sleep(Duration::from_secs_f64(wait));
        let down = Instant::now();
        site.kill(1);
        std::thread::sleep(blip);
        site.revive(1);
        let lasted = down.elapsed();
        assert!(lasted < Duration::from_millis(900), "the test's outage lasted {lasted:?}: the machine is too slow");
    }
    // Long enough for a verdict the last outage might have caused to reach the servers.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(site.lab.serial(0, "corp.test"), Some(serial), "no UPDATE may be sent:\n{}", d.log());
    assert_eq!(journal(&state).len(), 0, "no update may be journaled:\n{}", d.log());
    assert!(!d.log().contains("is now dead"), "{}", d.log());
    assert_eq!(site.targets(1), BOTH);

    // A real outage: the record goes once the failures span (fail_after - 1) probe intervals,
    // and within fail_after intervals plus one audit cycle of the host dying.
    // (The earliest allows the slack and a probe round that started just before the stop.)
    let died = Instant::now();
    site.kill(1);
    site.wait_all(&ONLY1, Duration::from_secs(15));
    let took = died.elapsed();
    let earliest = probe * (fail_after - 1) - Duration::from_millis(100);
    let bound = probe * fail_after + Duration::from_secs_f64(interval);
    assert!(took >= earliest, "kms2's record went {took:?} after it died, before {earliest:?}:\n{}", d.log());
    assert!(took <= bound, "kms2's record took {took:?} to go from every server (bound {bound:?}):\n{}", d.log());
    d.wait_log("applied journal entry 1: -SRV 0 0 1688 kms2.corp.test. (stale-dead)", 1, Duration::from_secs(5));
    assert_eq!(site.lab.serial(0, "corp.test"), Some(serial + 1), "one UPDATE:\n{}", d.log());
}

#[test]
fn a_broken_config_is_rejected_and_a_fixed_one_is_taken() {
    let site = Site::new();
    let daemon = "interval = \"500ms\"\nprobe_interval = \"200ms\"\nfail_after = 2\nrecover_after = 1";
    let config = site.config("kmsdns.toml", daemon, "");
    let state = site.state("state");
    let mut d = Daemon::start(&config, &state);
    d.wait_log("is now alive", 2, Duration::from_secs(10));

    // An editor replaces the file by renaming a new one over it: the watch must see it.
    let broken = site.dir.path().join("kmsdns.toml.new");
    std::fs::write(&broken, "[[zone]]\nname = \"corp.test\"\nservers = []\n").unwrap();
    std::fs::rename(&broken, &config).unwrap();
    d.wait_log("configuration not reloaded", 1, Duration::from_secs(5));
    assert!(d.log().contains("the server list is empty"), "{}", d.log());
    std::thread::sleep(Duration::from_millis(800));
    assert!(d.running(), "the daemon must keep running on the last good config:\n{}", d.log());

    // The fixed config decommissions kms2: the daemon reloads and removes its record.
    let fixed = site.config("kmsdns.toml.fixed", daemon, "");
    let text = std::fs::read_to_string(&fixed).unwrap().replace(
        "name = \"kms2.corp.test\"\nzones = [\"corp.test\"]\nstate = \"active\"",
        "name = \"kms2.corp.test\"\nzones = []\nstate = \"decommissioned\"",
    );
    std::fs::write(&config, text).unwrap();
    d.wait_log("(the config file changed): 1 zone(s)", 1, Duration::from_secs(5));
    site.wait_all(&ONLY1, Duration::from_secs(10));

    // SIGHUP reloads too.
    d.signal("HUP");
    d.wait_log("(SIGHUP): 1 zone(s)", 1, Duration::from_secs(5));
}

#[test]
fn sigterm_in_the_middle_of_a_cycle_exits_cleanly_with_a_consistent_journal() {
    let mut site = Site::new();
    // A second zone whose only server never answers makes every cycle last about a second.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let extra =
        format!("\n[[zone]]\nname = \"slow.test\"\nservers = [\"{}\"]\n\n[defaults.x]\n", silent.local_addr().unwrap())
            .replace("\n[defaults.x]\n", "");
    let config = site.config(
        "kmsdns.toml",
        "interval = \"300ms\"\nprobe_interval = \"100ms\"\nfail_after = 1\nrecover_after = 1",
        &extra,
    );
    let text = std::fs::read_to_string(&config).unwrap().replace("timeout = \"300ms\"", "timeout = \"1s\"");
    std::fs::write(&config, text).unwrap();
    let state = site.state("state");
    let mut d = Daemon::start(&config, &state);
    d.wait_log("is now alive", 2, Duration::from_secs(10));
    site.kill(1);
    d.wait_log("is now dead", 1, Duration::from_secs(10));
    // A cycle is now running (it waits on the silent server); stop in the middle of it.
    std::thread::sleep(Duration::from_millis(300));
    let status = d.stop(Duration::from_secs(5));
    assert!(status.success(), "exit status {status}:\n{}", d.log());
    let lines = journal(&state);
    for intent in lines.iter().filter(|l| l["phase"] == "intent") {
        assert!(
            lines.iter().any(|o| o["phase"] == "outcome" && o["id"] == intent["id"]),
            "intent {} has no outcome:\n{lines:#?}",
            intent["id"]
        );
    }
}

#[test]
fn two_daemons_on_the_same_zones_neither_flap_nor_clobber() {
    let mut site = Site::new();
    let daemon = "interval = \"700ms\"\nprobe_interval = \"150ms\"\nfail_after = 3\nrecover_after = 2";
    let config = site.config("kmsdns.toml", daemon, "");
    let (a_state, b_state) = (site.state("site-a"), site.state("site-b"));
    let a = Daemon::start(&config, &a_state);
    let b = Daemon::start(&config, &b_state);
    a.wait_log("is now alive", 2, Duration::from_secs(10));
    b.wait_log("is now alive", 2, Duration::from_secs(10));

    site.kill(1);
    site.wait_all(&ONLY1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(applied(&a_state) + applied(&b_state), 1, "exactly one daemon deletes:\n{}\n{}", a.log(), b.log());

    site.revive(1);
    site.wait_all(&BOTH, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(applied(&a_state) + applied(&b_state), 2, "exactly one daemon adds:\n{}\n{}", a.log(), b.log());
    assert_eq!(site.targets(0), BOTH);
    assert_eq!(site.targets(1), BOTH);
}

#[test]
fn metrics_are_served_when_configured() {
    let site = Site::new();
    let port = free_port();
    let config = site.config(
        "kmsdns.toml",
        &format!("interval = \"300ms\"\nprobe_interval = \"100ms\"\nfail_after = 2\nrecover_after = 1\nmetrics = \"127.0.0.1:{port}\""),
        "",
    );
    let d = Daemon::start(&config, &site.state("state"));
    d.wait_log("is now alive", 2, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(700));
    let body = scrape(port);
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    for want in
        ["kmsdns_cycles_total", "kmsdns_last_cycle_timestamp_seconds", "kmsdns_updates_total{result=\"applied\"} 0"]
    {
        assert!(body.contains(want), "{want} missing:\n{body}");
    }
    let alive = format!("kmsdns_probe_state{{endpoint=\"{}\",state=\"alive\"}} 1", site.kms[0].0);
    assert!(body.contains(&alive), "{alive} missing:\n{body}");
}

#[test]
fn a_bad_config_at_start_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kmsdns.toml");
    std::fs::write(&config, "[daemon]\nfail_after = 0\n").unwrap();
    let out = Command::new(assert_cmd::cargo::cargo_bin!("kmsdns"))
        .args(["run", "--config"])
        .arg(&config)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("daemon.fail_after"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn systemd_is_told_ready_status_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let site = Site::new();
    let config = site.config("kmsdns.toml", "interval = \"300ms\"\nprobe_interval = \"100ms\"", "");
    let socket_path = site.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut child = Command::new(assert_cmd::cargo::cargo_bin!("kmsdns"))
        .args(["run", "--config"])
        .arg(&config)
        .arg("--state-dir")
        .arg(site.state("state"))
        .env("NOTIFY_SOCKET", &socket_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(seen.contains("READY=1") && seen.contains("STATUS=last audit")) && Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
    assert!(seen.contains("READY=1"), "{seen}");
    assert!(seen.contains("STATUS=last audit"), "{seen}");
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !seen.contains("STOPPING=1") && Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
    assert!(seen.contains("STOPPING=1"), "{seen}");
    assert!(child.wait().unwrap().success());
}
