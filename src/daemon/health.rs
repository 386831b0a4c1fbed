//! Host health with hysteresis, for the daemon. Pure: probe results and their times in,
//! verdicts out; the clock is never read here, so tests turn it by hand.
//!
//! One failed probe is not a dead host: a KMS host that misses a bind during a reboot or a
//! network blip must not lose its record, and a host that flaps must not make the record flap.
//! The rule is about time, not about how many probes happened to run: the daemon probes on
//! its probe timer *and* in every audit cycle, and the two often land a few milliseconds
//! apart, which a count of failures would take for two probe intervals of failure.
//!
//! An endpoint is **dead** once it has failed `fail_after` probes in a row (no good probe in
//! between) and those failures span at least `(fail_after − 1) × probe_interval` from the
//! first to the last: what `fail_after` probes on the probe timer reach, and so within
//! `fail_after × probe_interval` of the host dying (its first failed probe comes within one
//! interval). An outage shorter than `(fail_after − 1) × probe_interval` (less the slack
//! below) therefore never makes a host dead, wherever it falls on either timer, however many
//! probes it catches. It is **alive** again, likewise, after `recover_after` good probes in a
//! row spanning `(recover_after − 1) × probe_interval`. A new endpoint is unknown until one of
//! the two happens, and the audit gives no verdict that depends on it.
//!
//! The span is measured with a slack of a twentieth of `probe_interval` (at most 50 ms): the
//! timer fires each tick a little after its deadline, by an amount that varies, and without
//! the slack `fail_after` ticks would miss the span by microseconds half of the time.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::model::ProbeState;

/// The most the span of a run may fall short of its bound for timer jitter.
const MAX_SLACK: Duration = Duration::from_millis(50);

/// What the daemon believes about an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Unknown,
    Alive,
    Dead,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Unknown => "unknown",
            Verdict::Alive => "alive",
            Verdict::Dead => "dead",
        }
    }
}

/// An endpoint whose verdict changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub endpoint: SocketAddr,
    pub from: Verdict,
    pub to: Verdict,
    /// The probe that tipped it.
    pub last: ProbeState,
}

/// When a probe asked an endpoint: at one instant (a round of probes goes out at once), or
/// at some moment within a window (the audit cycle's probes go out after its DNS reads).
/// A window counts against a run only where it is certain: as the first probe of a run from
/// its end, as the latest from its start, so a slow audit never lengthens a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asked {
    earliest: Instant,
    latest: Instant,
}

impl Asked {
    pub fn at(at: Instant) -> Asked {
        Asked { earliest: at, latest: at }
    }

    pub fn between(start: Instant, end: Instant) -> Asked {
        Asked { earliest: start.min(end), latest: start.max(end) }
    }
}

/// Probes in a row that agree (all good or all failed), since the last one that did not.
#[derive(Debug, Clone)]
struct Run {
    up: bool,
    probes: u32,
    /// The latest moment the run's first probe may have asked.
    first: Instant,
    /// The earliest moment its latest probe may have asked.
    last: Instant,
}

impl Run {
    fn start(up: bool, asked: Asked) -> Run {
        Run { up, probes: 1, first: asked.latest, last: asked.earliest }
    }

    fn extend(&mut self, asked: Asked) {
        self.probes = self.probes.saturating_add(1);
        self.last = self.last.max(asked.earliest);
    }

    /// True when the run holds `needed` probes spanning `needed − 1` probe intervals.
    fn reaches(&self, needed: u32, probe_interval: Duration) -> bool {
        let span = self.last.saturating_duration_since(self.first);
        let slack = (probe_interval / 20).min(MAX_SLACK);
        self.probes >= needed && span + slack >= probe_interval.saturating_mul(needed - 1)
    }
}

#[derive(Debug, Clone)]
struct Track {
    verdict: Verdict,
    run: Run,
    last: ProbeState,
}

/// The verdicts of every endpoint the daemon probes.
#[derive(Debug, Clone)]
pub struct Hysteresis {
    fail_after: u32,
    recover_after: u32,
    probe_interval: Duration,
    tracks: BTreeMap<SocketAddr, Track>,
}

impl Hysteresis {
    pub fn new(fail_after: u32, recover_after: u32, probe_interval: Duration) -> Hysteresis {
        Hysteresis {
            fail_after: fail_after.max(1),
            recover_after: recover_after.max(1),
            probe_interval,
            tracks: BTreeMap::new(),
        }
    }

    /// New thresholds (after a reload); the runs under way and the verdicts are kept, and
    /// judged by the new thresholds from the next probe on.
    pub fn set_thresholds(&mut self, fail_after: u32, recover_after: u32, probe_interval: Duration) {
        self.fail_after = fail_after.max(1);
        self.recover_after = recover_after.max(1);
        self.probe_interval = probe_interval;
    }

    /// Records one probe of `endpoint`, asked at `asked`; returns the transition it caused,
    /// if any.
    pub fn record(&mut self, endpoint: SocketAddr, probe: &ProbeState, asked: Asked) -> Option<Transition> {
        let up = *probe == ProbeState::KmsUp;
        let t = match self.tracks.entry(endpoint) {
            Entry::Vacant(new) => {
                new.insert(Track { verdict: Verdict::Unknown, run: Run::start(up, asked), last: probe.clone() })
            }
            Entry::Occupied(known) => {
                let t = known.into_mut();
                t.last = probe.clone();
                if t.run.up == up {
                    t.run.extend(asked);
                } else {
                    t.run = Run::start(up, asked);
                }
                t
            }
        };
        let (dies, recovers) = (
            !up && t.run.reaches(self.fail_after, self.probe_interval),
            up && t.run.reaches(self.recover_after, self.probe_interval),
        );
        let next = match t.verdict {
            Verdict::Alive | Verdict::Unknown if dies => Verdict::Dead,
            Verdict::Dead | Verdict::Unknown if recovers => Verdict::Alive,
            v => v,
        };
        (next != t.verdict).then(|| {
            let from = std::mem::replace(&mut t.verdict, next);
            Transition { endpoint, from, to: next, last: probe.clone() }
        })
    }

    /// Records a round of probes, all asked at `asked`; returns the transitions, in endpoint
    /// order.
    pub fn record_all(&mut self, probes: &BTreeMap<SocketAddr, ProbeState>, asked: Asked) -> Vec<Transition> {
        probes.iter().filter_map(|(ep, p)| self.record(*ep, p, asked)).collect()
    }

    pub fn verdict(&self, endpoint: &SocketAddr) -> Verdict {
        self.tracks.get(endpoint).map(|t| t.verdict).unwrap_or(Verdict::Unknown)
    }

    /// Every tracked endpoint and its verdict.
    pub fn verdicts(&self) -> impl Iterator<Item = (SocketAddr, Verdict)> + '_ {
        self.tracks.iter().map(|(ep, t)| (*ep, t.verdict))
    }

    /// The probe states the audit should judge by: an alive endpoint answers as KMS, a dead
    /// one as its last failed probe did, and one still unknown is left out (so no verdict).
    pub fn effective(&self) -> BTreeMap<SocketAddr, ProbeState> {
        self.tracks
            .iter()
            .filter_map(|(ep, t)| match t.verdict {
                Verdict::Alive => Some((*ep, ProbeState::KmsUp)),
                Verdict::Dead if t.last != ProbeState::KmsUp => Some((*ep, t.last.clone())),
                Verdict::Dead => Some((*ep, ProbeState::Down("dead until it answers again".into()))),
                Verdict::Unknown => None,
            })
            .collect()
    }

    /// Forgets endpoints no longer probed (a record removed, a host gone from the inventory).
    pub fn retain(&mut self, keep: &BTreeSet<SocketAddr>) {
        self.tracks.retain(|ep, _| keep.contains(ep));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use Verdict::{Alive as A, Dead as D, Unknown as U};

    const SECOND: Duration = Duration::from_secs(1);

    fn ep() -> SocketAddr {
        "127.0.0.1:1688".parse().unwrap()
    }

    fn down() -> ProbeState {
        ProbeState::Down("refused".into())
    }

    /// A clock the tests turn by hand: `at(2.5)` is 2.5 s after its start.
    struct Clock(Instant);

    impl Clock {
        fn new() -> Clock {
            Clock(Instant::now())
        }
        fn t(&self, secs: f64) -> Instant {
            self.0 + Duration::from_secs_f64(secs)
        }
        fn at(&self, secs: f64) -> Asked {
            Asked::at(self.t(secs))
        }
    }

    /// Feeds probes (time in seconds, '+' up or '-' down) and returns the verdict after each.
    fn feed(h: &mut Hysteresis, clock: &Clock, probes: &[(f64, char)]) -> Vec<Verdict> {
        probes
            .iter()
            .map(|&(secs, c)| {
                h.record(ep(), &if c == '+' { ProbeState::KmsUp } else { down() }, clock.at(secs));
                h.verdict(&ep())
            })
            .collect()
    }

    /// Feeds a sequence ('+' up, '-' down) one probe interval apart, from `from` seconds on.
    fn run(h: &mut Hysteresis, clock: &Clock, from: u32, seq: &str) -> Vec<Verdict> {
        let probes: Vec<(f64, char)> = seq.chars().zip(from..).map(|(c, i)| (f64::from(i), c)).collect();
        feed(h, clock, &probes)
    }

    /// What `kmsdns run` does with interval 2 s and probe_interval 1 s: a probe tick every
    /// second and an audit every two, whose probes go out somewhere in its first 40 ms; the
    /// tick that is due with an audit runs right after it. The host is down during
    /// `outages` (start, length in seconds). Returns every verdict, with the time it was
    /// reached.
    fn daemon_timeline(h: &mut Hysteresis, clock: &Clock, outages: &[(f64, f64)], until: f64) -> Vec<(f64, Verdict)> {
        let state = |t: f64| {
            if outages.iter().any(|&(start, len)| t >= start && t < start + len) { down() } else { ProbeState::KmsUp }
        };
        let mut verdicts = Vec::new();
        for second in 0..=(until as u32) {
            let tick = f64::from(second);
            if second % 2 == 0 {
                let asked = Asked::between(clock.t(tick), clock.t(tick + 0.04));
                h.record(ep(), &state(tick + 0.02), asked);
                verdicts.push((tick + 0.04, h.verdict(&ep())));
            }
            let tick = if second % 2 == 0 { tick + 0.06 } else { tick };
            h.record(ep(), &state(tick), clock.at(tick));
            verdicts.push((tick, h.verdict(&ep())));
        }
        verdicts
    }

    #[test]
    fn a_new_endpoint_is_unknown_until_the_thresholds_are_met() {
        let clock = Clock::new();
        assert_eq!(run(&mut Hysteresis::new(3, 2, SECOND), &clock, 0, "++"), [U, A]);
        assert_eq!(run(&mut Hysteresis::new(3, 2, SECOND), &clock, 0, "-+--+---"), [U, U, U, U, U, U, U, D]);
    }

    #[test]
    fn it_takes_fail_after_failures_in_a_row_to_die_and_recover_after_successes_to_live() {
        let clock = Clock::new();
        let mut h = Hysteresis::new(3, 2, SECOND);
        assert_eq!(run(&mut h, &clock, 0, "++---"), [U, A, A, A, D]);
        assert_eq!(run(&mut h, &clock, 5, "+-++"), [D, D, D, A]);
    }

    #[test]
    fn a_host_that_flaps_faster_than_fail_after_stays_alive() {
        let clock = Clock::new();
        let mut h = Hysteresis::new(3, 2, SECOND);
        run(&mut h, &clock, 0, "++");
        assert!(run(&mut h, &clock, 2, "--+--+-+--+").iter().all(|v| *v == A));
    }

    #[test]
    fn two_failed_probes_a_tenth_of_a_second_apart_are_not_two_probe_intervals_of_failure() {
        let clock = Clock::new();
        let mut h = Hysteresis::new(2, 1, SECOND);
        // The audit's probe and the probe tick right after it.
        assert_eq!(feed(&mut h, &clock, &[(0.0, '+'), (2.0, '-'), (2.1, '-')]), [A, A, A]);
        // Dead once the failures span one probe interval: fail_after probes, probe_interval apart.
        assert_eq!(feed(&mut h, &clock, &[(2.9, '-'), (3.0, '-')]), [A, D]);
    }

    #[test]
    fn the_failures_must_span_fail_after_less_one_probe_intervals_and_number_fail_after() {
        let clock = Clock::new();
        let alive = || {
            let mut h = Hysteresis::new(3, 1, SECOND);
            feed(&mut h, &clock, &[(0.0, '+')]);
            h
        };
        // Three probes one interval apart: dead at the third.
        assert_eq!(feed(&mut alive(), &clock, &[(1.0, '-'), (2.0, '-'), (3.0, '-')]), [A, A, D]);
        // The same with the timer's jitter (each tick fires a few milliseconds late).
        assert_eq!(feed(&mut alive(), &clock, &[(1.004, '-'), (2.001, '-'), (3.0, '-')]), [A, A, D]);
        // Three failures that span less than two intervals are not enough ...
        assert_eq!(feed(&mut alive(), &clock, &[(1.0, '-'), (2.0, '-'), (2.9, '-')]), [A, A, A]);
        // ... nor are two that span them.
        assert_eq!(feed(&mut alive(), &clock, &[(1.0, '-'), (3.5, '-')]), [A, A]);
        // A good probe in between starts the count and the clock again.
        assert_eq!(
            feed(&mut alive(), &clock, &[(1.0, '-'), (2.0, '-'), (2.5, '+'), (3.0, '-'), (4.0, '-'), (5.0, '-')]),
            [A, A, A, A, A, D]
        );
    }

    #[test]
    fn recovery_also_takes_recover_after_good_probes_over_that_much_time() {
        let clock = Clock::new();
        let mut h = Hysteresis::new(1, 2, SECOND);
        assert_eq!(feed(&mut h, &clock, &[(0.0, '+'), (1.0, '+'), (2.0, '-')]), [U, A, D]);
        assert_eq!(feed(&mut h, &clock, &[(4.0, '+'), (4.1, '+'), (4.9, '+'), (5.0, '+')]), [D, D, D, A]);
        // A new endpoint likewise.
        let mut h = Hysteresis::new(1, 2, SECOND);
        assert_eq!(feed(&mut h, &clock, &[(0.0, '+'), (0.05, '+'), (1.0, '+')]), [U, U, A]);
    }

    #[test]
    fn a_probe_sent_somewhere_within_a_window_counts_only_the_part_of_it_that_is_certain() {
        let clock = Clock::new();
        let mut h = Hysteresis::new(2, 1, SECOND);
        feed(&mut h, &clock, &[(0.0, '+')]);
        // The audit's probes went out between 1.0 s and 1.9 s (its DNS reads took a while): as
        // the first failure it counts from 1.9 s ...
        h.record(ep(), &down(), Asked::between(clock.t(1.0), clock.t(1.9)));
        assert_eq!(feed(&mut h, &clock, &[(2.0, '-'), (2.8, '-'), (2.9, '-')]), [A, A, D]);
        // ... and as the last one, from 1.0 s.
        let mut h = Hysteresis::new(2, 1, SECOND);
        feed(&mut h, &clock, &[(0.0, '+'), (0.5, '-')]);
        h.record(ep(), &down(), Asked::between(clock.t(1.0), clock.t(1.8)));
        assert_eq!(h.verdict(&ep()), A);
        h.record(ep(), &down(), Asked::between(clock.t(1.5), clock.t(1.8)));
        assert_eq!(h.verdict(&ep()), D);
    }

    #[test]
    fn outages_shorter_than_the_bound_leave_the_host_alive_wherever_they_fall_on_the_audit_timer() {
        // The measurements of the issue: fail_after 2 with outages of 0.8 s, fail_after 3
        // with outages of 1.6 s, probe_interval 1 s, an audit every 2 s.
        for (fail_after, outage) in [(2, 0.8), (3, 1.6)] {
            for phase in [-0.75, -0.5, -0.25, -0.04, 0.0, 0.02, 0.25, 0.5, 0.75, 0.97, 1.0, 1.25] {
                let clock = Clock::new();
                let mut h = Hysteresis::new(fail_after, 2, SECOND);
                let timeline = daemon_timeline(&mut h, &clock, &[(10.0 + phase, outage)], 16.0);
                let after_start: Vec<_> = timeline.iter().filter(|(t, _)| *t >= 2.0).collect();
                assert!(
                    after_start.iter().all(|(_, v)| *v == A),
                    "fail_after {fail_after}, outage of {outage} s at 10 s {phase:+}: {timeline:?}"
                );
            }
        }
    }

    #[test]
    fn a_longer_outage_is_dead_within_fail_after_probe_intervals() {
        let clock = Clock::new();
        let mut h = Hysteresis::new(2, 2, SECOND);
        // Down from 11.5 s: the audit at 12 s fails first (counted from the end of its
        // window, 12.04 s), the tick right after it adds nothing, the tick at 13 s makes it dead.
        let timeline = daemon_timeline(&mut h, &clock, &[(11.5, 5.0)], 16.0);
        let dead = timeline.iter().find(|(_, v)| *v == D).map(|(t, _)| *t);
        assert_eq!(dead, Some(13.0), "{timeline:?}");
    }

    #[test]
    fn new_thresholds_apply_to_the_runs_already_under_way() {
        let clock = Clock::new();
        let mut h = Hysteresis::new(2, 1, SECOND);
        feed(&mut h, &clock, &[(0.0, '+'), (1.0, '-')]);
        h.set_thresholds(2, 1, 3 * SECOND);
        assert_eq!(feed(&mut h, &clock, &[(2.0, '-'), (3.0, '-'), (4.0, '-')]), [A, A, D]);
    }

    #[test]
    fn transitions_are_reported_once_and_the_effective_state_follows_the_verdict() {
        let clock = Clock::new();
        let mut h = Hysteresis::new(1, 1, SECOND);
        let t = h.record(ep(), &ProbeState::KmsUp, clock.at(0.0)).unwrap();
        assert_eq!((t.from, t.to), (U, A));
        assert!(h.record(ep(), &ProbeState::KmsUp, clock.at(1.0)).is_none());
        assert_eq!(h.effective().get(&ep()), Some(&ProbeState::KmsUp));
        let t = h.record(ep(), &ProbeState::NotKms("bind_nak".into()), clock.at(2.0)).unwrap();
        assert_eq!((t.from, t.to), (A, D));
        assert_eq!(h.effective().get(&ep()), Some(&ProbeState::NotKms("bind_nak".into())));
        h.retain(&BTreeSet::new());
        assert!(h.effective().is_empty());
    }

    #[test]
    fn an_unknown_endpoint_is_left_out_of_what_the_audit_sees() {
        let clock = Clock::new();
        let mut h = Hysteresis::new(3, 3, SECOND);
        h.record(ep(), &ProbeState::KmsUp, clock.at(0.0));
        assert!(h.effective().is_empty());
    }
}
