//! Host health with hysteresis, for the daemon. Pure: probe results in, verdicts out.
//!
//! One failed probe is not a dead host: a KMS host that misses a bind during a reboot or a
//! network blip must not lose its record, and a host that flaps must not make the record flap.
//! An endpoint counts as dead after `fail_after` consecutive failed probes, and as alive after
//! `recover_after` consecutive good ones. Until either happens for a new endpoint its health
//! is unknown, and the audit gives no verdict that depends on it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use serde::Serialize;

use crate::observe::ProbeState;

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

#[derive(Debug, Clone)]
struct Track {
    verdict: Verdict,
    good: u32,
    bad: u32,
    last: ProbeState,
}

/// The verdicts of every endpoint the daemon probes.
#[derive(Debug, Clone)]
pub struct Hysteresis {
    fail_after: u32,
    recover_after: u32,
    tracks: BTreeMap<SocketAddr, Track>,
}

impl Hysteresis {
    pub fn new(fail_after: u32, recover_after: u32) -> Hysteresis {
        Hysteresis { fail_after: fail_after.max(1), recover_after: recover_after.max(1), tracks: BTreeMap::new() }
    }

    /// New thresholds (after a reload); counts and verdicts are kept.
    pub fn set_thresholds(&mut self, fail_after: u32, recover_after: u32) {
        self.fail_after = fail_after.max(1);
        self.recover_after = recover_after.max(1);
    }

    /// Records one probe of `endpoint`; returns the transition it caused, if any.
    pub fn record(&mut self, endpoint: SocketAddr, probe: &ProbeState) -> Option<Transition> {
        let t = self.tracks.entry(endpoint).or_insert(Track {
            verdict: Verdict::Unknown,
            good: 0,
            bad: 0,
            last: probe.clone(),
        });
        t.last = probe.clone();
        if *probe == ProbeState::KmsUp {
            t.good = t.good.saturating_add(1);
            t.bad = 0;
        } else {
            t.bad = t.bad.saturating_add(1);
            t.good = 0;
        }
        let next = match t.verdict {
            Verdict::Alive if t.bad >= self.fail_after => Verdict::Dead,
            Verdict::Dead if t.good >= self.recover_after => Verdict::Alive,
            Verdict::Unknown if t.good >= self.recover_after => Verdict::Alive,
            Verdict::Unknown if t.bad >= self.fail_after => Verdict::Dead,
            v => v,
        };
        (next != t.verdict).then(|| {
            let from = std::mem::replace(&mut t.verdict, next);
            Transition { endpoint, from, to: next, last: probe.clone() }
        })
    }

    /// Records a round of probes; returns the transitions, in endpoint order.
    pub fn record_all(&mut self, probes: &BTreeMap<SocketAddr, ProbeState>) -> Vec<Transition> {
        probes.iter().filter_map(|(ep, p)| self.record(*ep, p)).collect()
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

    fn ep() -> SocketAddr {
        "127.0.0.1:1688".parse().unwrap()
    }

    fn down() -> ProbeState {
        ProbeState::Down("refused".into())
    }

    /// Feeds a sequence of probes ('+' up, '-' down) and returns the verdict after each.
    fn run(h: &mut Hysteresis, seq: &str) -> Vec<Verdict> {
        seq.chars()
            .map(|c| {
                h.record(ep(), &if c == '+' { ProbeState::KmsUp } else { down() });
                h.verdict(&ep())
            })
            .collect()
    }

    use Verdict::{Alive as A, Dead as D, Unknown as U};

    #[test]
    fn a_new_endpoint_is_unknown_until_the_thresholds_are_met() {
        assert_eq!(run(&mut Hysteresis::new(3, 2), "++"), [U, A]);
        assert_eq!(run(&mut Hysteresis::new(3, 2), "-+--+---"), [U, U, U, U, U, U, U, D]);
    }

    #[test]
    fn it_takes_fail_after_failures_in_a_row_to_die_and_recover_after_successes_to_live() {
        let mut h = Hysteresis::new(3, 2);
        assert_eq!(run(&mut h, "++---"), [U, A, A, A, D]);
        assert_eq!(run(&mut h, "+-++"), [D, D, D, A]);
    }

    #[test]
    fn a_host_that_flaps_faster_than_fail_after_stays_alive() {
        let mut h = Hysteresis::new(3, 2);
        run(&mut h, "++");
        assert!(run(&mut h, "--+--+-+--+").iter().all(|v| *v == A));
    }

    #[test]
    fn transitions_are_reported_once_and_the_effective_state_follows_the_verdict() {
        let mut h = Hysteresis::new(1, 1);
        let t = h.record(ep(), &ProbeState::KmsUp).unwrap();
        assert_eq!((t.from, t.to), (U, A));
        assert!(h.record(ep(), &ProbeState::KmsUp).is_none());
        assert_eq!(h.effective().get(&ep()), Some(&ProbeState::KmsUp));
        let t = h.record(ep(), &ProbeState::NotKms("bind_nak".into())).unwrap();
        assert_eq!((t.from, t.to), (A, D));
        assert_eq!(h.effective().get(&ep()), Some(&ProbeState::NotKms("bind_nak".into())));
        h.retain(&BTreeSet::new());
        assert!(h.effective().is_empty());
    }

    #[test]
    fn an_unknown_endpoint_is_left_out_of_what_the_audit_sees() {
        let mut h = Hysteresis::new(3, 3);
        h.record(ep(), &ProbeState::KmsUp);
        assert!(h.effective().is_empty());
    }
}
