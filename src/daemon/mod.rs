//! `kmsdns run`: the audit and the probes on their timers, repairs where the inventory allows
//! them, and the service manners systemd expects.
//!
//! The loop waits for the first of: a stop signal, a reload (the config file changed, or
//! SIGHUP), the watchdog's tick, the probe timer, the audit timer. A probe round feeds the
//! hysteresis ([`crate::daemon::health`]); when a host's verdict changes, a cycle runs at once, so a
//! dead host's record goes within `fail_after × probe_interval` plus one cycle. A cycle is the
//! same pipeline as `kmsdns repair --apply` (observe, audit, plan, apply, journal), with the
//! probes replaced by the hysteresis verdicts. The cycle's own probes feed the hysteresis
//! too, with the time they were asked: the hysteresis judges by how long a host has failed,
//! not by how many probes ran, so an audit and a probe tick that land together count as one
//! moment, and an outage shorter than `(fail_after − 1) × probe_interval` never changes a
//! verdict and so never causes an update.
//!
//! Logging is for changes only: one line per update applied, per verdict change, per finding
//! that appears or clears, per reload; a quiet cycle logs nothing.
//!
//! Several daemons may watch the same zones (two sites): every update asserts the RRset it
//! observed, so the primary serialises the writers and the loser re-plans from what the
//! winner wrote. No leader is needed. Each also publishes what it sees in the zone's shared
//! view ([`view`], [`crate::peers`]) after judging and before planning, and no instance
//! deletes a host for being dead while another's fresh entry sees it alive: two sites that
//! see a host differently report a `split-view` instead of taking turns deleting and adding
//! it.

pub mod health;
pub mod metrics;
pub mod view;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use notify::{RecursiveMode, Watcher};
use sd_notify::NotifyState;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::apply::Mode;
use crate::audit::{Finding, Severity};
use crate::cycle::{self, Carry, ZoneResult};
use crate::daemon::health::{Asked, Hysteresis, Transition};
use crate::daemon::metrics::Metrics;
use crate::inventory::{ConfigError, Inventory};
use crate::journal::{Journal, JournalError};
use crate::model::Observation;
use crate::observe::{self};

/// How long a stop waits for the update in flight before abandoning it.
const STOP_GRACE: Duration = Duration::from_secs(4);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("invalid configuration\n{0}")]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
}

/// What `kmsdns run` was started with.
pub struct Options {
    pub config: PathBuf,
    /// `--state-dir`, which wins over the inventory's.
    pub state_dir: Option<PathBuf>,
}

/// Everything the loop keeps between cycles.
struct Daemon {
    config: PathBuf,
    inv: Inventory,
    journal: Journal,
    health: Hysteresis,
    /// What the last cycle judged: the endpoints to probe and the findings to diff against.
    endpoints: BTreeSet<SocketAddr>,
    findings: BTreeMap<FindingKey, Finding>,
    metrics: Arc<Mutex<Metrics>>,
    /// This instance's entries in the zones' shared views.
    view: view::Publisher,
}

/// A finding's identity across cycles.
type FindingKey = (String, &'static str, Option<String>, Option<String>);

fn key(f: &Finding) -> FindingKey {
    (f.zone.to_string(), f.code.as_str(), f.server.clone(), f.target.as_ref().map(|t| t.to_string()))
}

fn sd(states: &[NotifyState]) {
    // Outside systemd there is no NOTIFY_SOCKET and this does nothing.
    if let Err(e) = sd_notify::notify(states) {
        warn!("cannot notify systemd: {e}");
    }
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

fn signal_stream(kind: SignalKind, name: &str) -> Result<Signal, DaemonError> {
    signal(kind).map_err(|source| DaemonError::Io { what: format!("cannot handle {name}"), source })
}

/// Runs until SIGTERM or SIGINT.
pub async fn run(opts: Options) -> Result<(), DaemonError> {
    let inv = Inventory::load(&opts.config)?;
    let state_dir = opts.state_dir.clone().unwrap_or_else(|| inv.state_dir.clone());
    let mut journal = Journal::open(&state_dir)?.for_instance(&inv.instance.id);
    for i in journal.settle_interrupted()? {
        warn!(
            "journal entry {} (zone {}, to {}) has no outcome: kmsdns stopped while sending it; the next audit shows what the server holds",
            i.id, i.zone, i.server
        );
    }
    journal.hold_writer()?;
    let mut d = Daemon {
        config: opts.config.clone(),
        health: Hysteresis::new(inv.daemon.fail_after, inv.daemon.recover_after, inv.daemon.probe_interval),
        inv,
        journal,
        endpoints: BTreeSet::new(),
        findings: BTreeMap::new(),
        metrics: Arc::new(Mutex::new(Metrics::default())),
        view: view::Publisher::default(),
    };
    if let Ok(mut m) = d.metrics.lock() {
        m.instance = d.inv.instance.id.to_string();
    }

    let (reload_tx, mut reload_rx) = mpsc::channel::<()>(8);
    let _watcher = watch_config(&opts.config, reload_tx);
    let mut hup = signal_stream(SignalKind::hangup(), "SIGHUP")?;
    let mut stop = Stops {
        term: signal_stream(SignalKind::terminate(), "SIGTERM")?,
        int: signal_stream(SignalKind::interrupt(), "SIGINT")?,
    };
    let metrics_task = match d.inv.daemon.metrics {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| DaemonError::Io { what: format!("cannot serve metrics on {addr}"), source })?;
            info!("metrics on http://{addr}/metrics");
            Some(tokio::spawn(crate::daemon::metrics::serve(listener, d.metrics.clone())))
        }
        None => None,
    };

    let mut timers = Timers::new(&d.inv);
    let mut watchdog = sd_notify::watchdog_enabled().filter(|w| !w.is_zero()).map(|w| tokio::time::interval(w / 2));
    info!(
        instance = %d.inv.instance.id,
        "kmsdns running as instance {} ({}): {} zone(s), audit every {}, probes every {}, journal {}",
        d.inv.instance.id,
        if d.inv.instance.share_view {
            format!("its view shared in _kmsdns-view.<zone>, others' entries count for {}", humantime::format_duration(d.inv.instance.stale_after))
        } else {
            "its view not shared; others' entries still count".to_string()
        },
        d.inv.zones.len(),
        humantime::format_duration(d.inv.daemon.interval),
        humantime::format_duration(d.inv.daemon.probe_interval),
        d.journal.path().display()
    );
    sd(&[NotifyState::Ready, NotifyState::Status("started; first audit running")]);

    loop {
        let step = tokio::select! {
            biased;
            _ = stop.next() => Step::Stop,
            _ = hup.recv() => Step::Reload("SIGHUP"),
            Some(()) = reload_rx.recv() => Step::Reload("the config file changed"),
            _ = tick(&mut watchdog) => Step::Watchdog,
            _ = timers.audit.tick() => Step::Cycle,
            _ = timers.probe.tick() => Step::Probe,
        };
        match step {
            Step::Stop => break,
            Step::Watchdog => sd(&[NotifyState::Watchdog]),
            Step::Reload(why) => {
                // Editors write a file in several steps: let them finish, and take one reload.
                tokio::time::sleep(Duration::from_millis(200)).await;
                while reload_rx.try_recv().is_ok() {}
                if d.reload(why) {
                    timers = Timers::new(&d.inv);
                }
            }
            Step::Probe => {
                if !d.probe_round().await.is_empty() && d.cycle_or_stop(&mut stop, &mut watchdog).await {
                    break;
                }
            }
            Step::Cycle => {
                if d.cycle_or_stop(&mut stop, &mut watchdog).await {
                    break;
                }
            }
        }
    }
    sd(&[NotifyState::Stopping]);
    if let Some(t) = metrics_task {
        t.abort();
    }
    info!("kmsdns stopped");
    Ok(())
}

enum Step {
    Stop,
    Reload(&'static str),
    Watchdog,
    Probe,
    Cycle,
}

struct Stops {
    term: Signal,
    int: Signal,
}

impl Stops {
    async fn next(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {},
            _ = self.int.recv() => {},
        }
    }
}

struct Timers {
    audit: tokio::time::Interval,
    probe: tokio::time::Interval,
}

impl Timers {
    fn new(inv: &Inventory) -> Timers {
        let mut audit = tokio::time::interval(inv.daemon.interval);
        let mut probe = tokio::time::interval_at(
            tokio::time::Instant::now() + inv.daemon.probe_interval,
            inv.daemon.probe_interval,
        );
        audit.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Timers { audit, probe }
    }
}

async fn tick(watchdog: &mut Option<tokio::time::Interval>) {
    match watchdog {
        Some(w) => {
            w.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Sends a reload request whenever the config file is created, written, renamed or removed.
/// The parent directory is watched: editors and config tools replace a file by renaming a new
/// one over it, which ends a watch placed on the file itself.
fn watch_config(path: &Path, tx: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
    let name = path.file_name()?.to_os_string();
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res
            && !ev.kind.is_access()
            && ev.paths.iter().any(|p| p.file_name() == Some(name.as_os_str()))
        {
            let _ = tx.try_send(());
        }
    })
    .map_err(|e| warn!("cannot watch {} for changes ({e}); reload with SIGHUP", dir.display()))
    .ok()?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|e| warn!("cannot watch {} for changes ({e}); reload with SIGHUP", dir.display()))
        .ok()?;
    Some(watcher)
}

impl Daemon {
    /// Reads the config again; a bad one is logged and the last good one kept. Returns true
    /// when the new one was taken.
    fn reload(&mut self, why: &str) -> bool {
        sd(&[NotifyState::Reloading, NotifyState::monotonic_usec_now().unwrap_or(NotifyState::Status("reloading"))]);
        let taken = match Inventory::load(&self.config) {
            Ok(new) => {
                if new.state_dir != self.inv.state_dir {
                    warn!(
                        "state_dir changed to {}: that takes a restart; the journal stays where it is",
                        new.state_dir.display()
                    );
                }
                if new.daemon.metrics != self.inv.daemon.metrics {
                    warn!("the metrics address changed: that takes a restart");
                }
                if new.instance.id != self.inv.instance.id {
                    warn!(
                        "[instance] id changed from {} to {}: that takes a restart (the entries in the shared views stay {}'s)",
                        self.inv.instance.id, new.instance.id, self.inv.instance.id
                    );
                }
                let mut new = new;
                new.instance.id = self.inv.instance.id.clone();
                self.view.retain(&new);
                self.health.set_thresholds(new.daemon.fail_after, new.daemon.recover_after, new.daemon.probe_interval);
                info!(
                    "reloaded {} ({why}): {} zone(s), {} host(s)",
                    self.config.display(),
                    new.zones.len(),
                    new.hosts.len()
                );
                self.inv = new;
                true
            }
            Err(e) => {
                error!("configuration not reloaded ({why}); still running on the last good one:\n{e}");
                false
            }
        };
        sd(&[NotifyState::Ready]);
        taken
    }

    /// Probes every endpoint once; returns the verdict changes (each logged).
    async fn probe_round(&mut self) -> Vec<Transition> {
        let limit = Arc::new(tokio::sync::Semaphore::new(self.inv.defaults.concurrency));
        let started = Instant::now();
        let probes = observe::probe::probe_all(
            self.endpoints.clone(),
            self.inv.defaults.timeout,
            self.inv.defaults.retries,
            limit,
        )
        .await;
        // Up to `concurrency` probes go out at once, as the round starts; more go out in
        // batches, each at a moment within the round that is not known here.
        let asked = if self.endpoints.len() <= self.inv.defaults.concurrency {
            Asked::at(started)
        } else {
            Asked::between(started, Instant::now())
        };
        let transitions = self.health.record_all(&probes, asked);
        self.log_transitions(&transitions);
        transitions
    }

    fn log_transitions(&self, transitions: &[Transition]) {
        for t in transitions {
            info!(
                endpoint = %t.endpoint,
                instance = %self.inv.instance.id,
                "KMS endpoint {} is now {} (was {}): last probe {} {}",
                t.endpoint,
                t.to.as_str(),
                t.from.as_str(),
                t.last.code(),
                match &t.last {
                    crate::model::ProbeState::KmsUp => "",
                    crate::model::ProbeState::NotKms(d) | crate::model::ProbeState::Down(d) => d,
                }
            );
        }
    }

    /// Runs one cycle, unless a stop signal comes first: then no further update is started,
    /// the one in flight gets a few seconds to finish, and one that does not is journaled as
    /// abandoned. Returns true when the daemon must stop.
    async fn cycle_or_stop(&mut self, stop: &mut Stops, watchdog: &mut Option<tokio::time::Interval>) -> bool {
        let halt = std::sync::atomic::AtomicBool::new(false);
        let stopped = {
            let cycle = self.cycle(&halt);
            tokio::pin!(cycle);
            loop {
                tokio::select! {
                    _ = &mut cycle => break false,
                    _ = tick(watchdog) => sd(&[NotifyState::Watchdog]),
                    _ = stop.next() => {
                        info!("stopping: finishing the update in flight");
                        halt.store(true, Ordering::SeqCst);
                        if tokio::time::timeout(STOP_GRACE, &mut cycle).await.is_err() {
                            warn!("the update in flight did not finish in {}; abandoned", humantime::format_duration(STOP_GRACE));
                        }
                        break true;
                    }
                }
            }
        };
        if stopped {
            match self.journal.settle_own("abandoned: kmsdns was stopped before the server answered; audit the zone") {
                Ok(open) => {
                    for i in open {
                        warn!("journal entry {} (zone {}) abandoned at shutdown", i.id, i.zone);
                    }
                }
                Err(e) => error!("{e}"),
            }
        }
        stopped
    }

    /// Observe, judge with the hysteresis verdicts, plan, repair, log what changed.
    async fn cycle(&mut self, halt: &std::sync::atomic::AtomicBool) {
        let started = Instant::now();
        let inv = &self.inv;
        let mut obs: Observation = observe::observe(inv).await;
        // The probes go out after the DNS reads, at a moment within the observation that is
        // not known here: the hysteresis takes whichever end is the safer one.
        let transitions = self.health.record_all(&obs.probes, Asked::between(started, Instant::now()));
        self.log_transitions(&transitions);
        let current: BTreeSet<SocketAddr> = observe::endpoints(inv, &obs.zones, &obs.names);
        self.health.retain(&current);
        self.endpoints = current;
        obs.probes = self.health.effective();

        let mut seen = cycle::judge(inv, obs);
        seen.findings.extend(crate::audit::ttl_findings(inv, &seen.obs));
        log_findings(&inv.instance.id, &mut self.findings, &seen.findings);
        // Tell the other instances what this one sees before acting on it.
        self.view.publish_all(inv, &seen.obs, Mode::Apply(&self.journal)).await;
        let plan = cycle::plan(inv, &seen);
        let steer = crate::cycle::Steer {
            halt,
            health: Some(&self.health),
            replan: crate::cycle::Replan::Inventory,
            override_policy: false,
        };
        let outcomes = cycle::carry_out(inv, &seen, plan, Mode::Apply(&self.journal), Carry::Daemon(&steer)).await;
        let (obs, findings) = (&seen.obs, &seen.findings);
        let (mut applied, mut failed) = (0u64, 0u64);
        for o in &outcomes {
            match &o.result {
                ZoneResult::Applied { id, lagging, .. } => {
                    applied += 1;
                    let changes: Vec<String> = o
                        .plan
                        .changes
                        .iter()
                        .map(|c| {
                            format!(
                                "{}{} ({})",
                                if c.action == crate::plan::Action::Add { "+" } else { "-" },
                                c.record,
                                c.code.as_str()
                            )
                        })
                        .collect();
                    info!(zone = %o.zone, journal = id, instance = %inv.instance.id, "zone {}: applied journal entry {id}: {}", o.zone, changes.join(", "));
                    if !lagging.is_empty() {
                        warn!(zone = %o.zone, "zone {}: {} did not serve the new RRset in time", o.zone, lagging.join(", "));
                    }
                }
                ZoneResult::Failed { error } | ZoneResult::Conflict { error, .. } => {
                    failed += 1;
                    error!(zone = %o.zone, "zone {}: {error}", o.zone);
                }
                ZoneResult::SettledByOther { .. } => {
                    info!(zone = %o.zone, "zone {}: another writer made the change first; nothing left to do", o.zone)
                }
                _ => {}
            }
        }

        let elapsed = started.elapsed();
        let critical = findings.iter().filter(|f| f.severity == Severity::Critical).count();
        let warnings = findings.iter().filter(|f| f.severity == Severity::Warning).count();
        if let Ok(mut m) = self.metrics.lock() {
            m.findings.clear();
            for f in findings {
                *m.findings.entry((f.zone.to_string(), f.code.as_str().to_string(), f.severity)).or_default() += 1;
            }
            m.probes = self.health.verdicts().collect();
            m.observe(inv, obs);
            m.audit_interval_seconds = inv.daemon.interval.as_secs_f64();
            m.last_cycle_end = unix_now();
            m.cycle_seconds = elapsed.as_secs_f64();
            m.cycles += 1;
            m.updates_applied += applied;
            m.updates_failed += failed;
        }
        let status = format!(
            "last audit {}: {critical} critical, {warnings} warning(s), {applied} update(s) applied, {failed} failed, in {} ms",
            humantime::format_rfc3339_seconds(SystemTime::now()),
            elapsed.as_millis()
        );
        sd(&[NotifyState::Status(&status)]);
    }
}

/// Logs the findings that appeared or cleared since the last cycle, and remembers these.
fn log_findings(
    instance: &crate::peers::InstanceId,
    previous: &mut BTreeMap<FindingKey, Finding>,
    findings: &[Finding],
) {
    let now: BTreeMap<FindingKey, Finding> = findings.iter().map(|f| (key(f), f.clone())).collect();
    for (k, f) in &now {
        if !previous.contains_key(k) {
            let server = f.server.as_ref().map(|s| format!(" [{s}]")).unwrap_or_default();
            // Recorded only when present (tracing skips a None field).
            let field = f.server.as_deref();
            match f.severity {
                Severity::Critical => {
                    warn!(zone = %f.zone, server = field, code = f.code.as_str(), %instance, "finding: {} {}{server}: {}", f.code.as_str(), f.zone, f.message)
                }
                _ => {
                    info!(zone = %f.zone, server = field, code = f.code.as_str(), %instance, "finding: {} {}{server}: {}", f.code.as_str(), f.zone, f.message)
                }
            }
        }
    }
    for (k, f) in previous.iter() {
        if !now.contains_key(k) {
            let target = f.target.as_ref().map(|t| format!(" {t}")).unwrap_or_default();
            info!(zone = %f.zone, code = f.code.as_str(), %instance, "cleared: {} {}{target}", f.code.as_str(), f.zone);
        }
    }
    *previous = now;
}
