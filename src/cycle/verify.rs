//! After an UPDATE: is the change visible on every server of the zone, and did the primary
//! apply it at all.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::apply::RrsetUpdate;
use crate::inventory::{Inventory, Zone};
use crate::model::{SrvAnswer, same_rrset};
use crate::observe::{self, DnsReader};
use serde::{Deserialize, Serialize};

/// One server's answer after a change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerCheck {
    pub server: String,
    /// The change is visible there: what it removed is gone, what it added is served.
    pub converged: bool,
    /// Visible, in an RRset that another writer has changed further since.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub moved_on: bool,
    pub answer: String,
}

/// What the zone's servers served after a change.
#[derive(Debug, Clone, PartialEq)]
pub struct Propagation {
    pub servers: Vec<ServerCheck>,
    /// The primary the change went to still serves the RRset exactly as it was before: the
    /// server answered NOERROR but did not apply the change (PowerDNS does so when its
    /// update policy refuses).
    pub primary_unchanged: bool,
}

/// Polls the zone's servers until the change is visible on each (what it removed is absent,
/// what it added is present: another writer may have moved the RRset on since), or the
/// propagation timeout passes; a server that has served the change is not asked again.
/// Returns what each answered last. `primary`, when given, is read too, to tell a change that
/// was never applied from one that is slow to spread.
/// `reader` is the run's, shared by every zone; the servers are asked at once each round.
pub async fn await_propagation(
    inv: &Inventory,
    reader: &DnsReader,
    zone: &Zone,
    update: &RrsetUpdate,
    primary: Option<SocketAddr>,
) -> Propagation {
    let started = Instant::now();
    let deadline = started + inv.defaults.propagation_timeout;
    let after = update.after();
    let mut last: Vec<Option<ServerCheck>> = vec![None; zone.servers.len()];
    let mut round = 0;
    // A server that has served the change once is not asked again.
    let pending = |seen: &Option<ServerCheck>| !seen.as_ref().is_some_and(|c| c.converged);
    loop {
        let asked = zone.servers.iter().zip(&last).filter(|(_, seen)| pending(seen));
        let answers = futures_util::future::join_all(asked.map(|(s, _)| async {
            let answer = match observe::dns::server_socket_addrs(s, inv.defaults.timeout).await {
                Ok(addrs) => match addrs.first() {
                    Some(a) => reader.srv_on(*a, &zone.name).await,
                    None => SrvAnswer::Failed {
                        error: crate::model::ReadError::Network("the server has no address".into()),
                    },
                },
                Err(error) => SrvAnswer::Failed { error },
            };
            let converged = answer.known_records().is_some_and(|rs| update.visible_in(rs));
            let moved_on = converged && answer.known_records().is_some_and(|rs| !same_rrset(rs, &after));
            ServerCheck { server: s.to_string(), converged, moved_on, answer: describe(&answer) }
        }))
        .await;
        let mut answers = answers.into_iter();
        for seen in last.iter_mut().filter(|seen| pending(seen)) {
            *seen = answers.next();
        }
        if !last.iter().any(pending) {
            tracing::debug!(
                "zone {}: the change is on every server after {} ms ({} polls)",
                zone.name,
                started.elapsed().as_millis(),
                round + 1
            );
            return Propagation { servers: last.into_iter().flatten().collect(), primary_unchanged: false };
        }
        if Instant::now() >= deadline {
            // Changed nothing at all on the primary itself: not applied. Unreadable: unknown,
            // and the server's NOERROR stands.
            let primary_unchanged = match primary {
                Some(p) if !same_rrset(&update.expected, &after) => reader
                    .srv_on(p, &zone.name)
                    .await
                    .known_records()
                    .is_some_and(|rs| same_rrset(rs, &update.expected)),
                _ => false,
            };
            return Propagation { servers: last.into_iter().flatten().collect(), primary_unchanged };
        }
        tokio::time::sleep(poll_pause(round)).await;
        round = round.saturating_add(1);
    }
}

/// The pause after poll round `round` of [`await_propagation`]: 25, 50, 100 ms, then 200 ms.
/// A secondary usually has the change within tens of milliseconds of the primary's NOERROR
/// (NOTIFY + IXFR), and each zone holds a concurrency permit while it waits: a fixed 200 ms
/// made that wait, not the primary, the limit of a large repair (bench/README.md).
fn poll_pause(round: u32) -> Duration {
    Duration::from_millis(25 << round.min(3))
}

pub(super) fn describe(answer: &SrvAnswer) -> String {
    match answer {
        SrvAnswer::Records { records } => records.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(", "),
        SrvAnswer::NoData | SrvAnswer::NxDomain => "no SRV records".into(),
        SrvAnswer::Failed { error } => format!("unreadable: {error}"),
    }
}

#[cfg(test)]
mod poll_tests {
    use super::*;

    #[test]
    fn propagation_polls_start_soon_and_settle_at_200_ms() {
        let pauses: Vec<u64> = (0..6).map(|r| poll_pause(r).as_millis() as u64).collect();
        assert_eq!(pauses, [25, 50, 100, 200, 200, 200]);
        assert_eq!(poll_pause(u32::MAX), Duration::from_millis(200));
    }
}
