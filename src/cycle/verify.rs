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

/// Polls every server of the zone until the change is visible on each (what it removed is
/// absent, what it added is present: another writer may have moved the RRset on since), or
/// the propagation timeout passes; returns what each answered last. `primary`, when given, is
/// read too, to tell a change that was never applied from one that is slow to spread.
pub async fn await_propagation(
    inv: &Inventory,
    zone: &Zone,
    update: &RrsetUpdate,
    primary: Option<SocketAddr>,
) -> Propagation {
    let reader = DnsReader::new(inv.defaults.timeout, inv.defaults.retries);
    let deadline = Instant::now() + inv.defaults.propagation_timeout;
    let after = update.after();
    let mut last: Vec<ServerCheck> = Vec::new();
    loop {
        last.clear();
        for s in &zone.servers {
            let answer = match observe::dns::server_socket_addrs(s, inv.defaults.timeout).await {
                Ok(addrs) => match addrs.first() {
                    Some(a) => reader.zone_view(*a, &zone.name).await.0,
                    None => SrvAnswer::Failed {
                        error: crate::model::ReadError::Network("the server has no address".into()),
                    },
                },
                Err(error) => SrvAnswer::Failed { error },
            };
            let converged = answer.known_records().is_some_and(|rs| update.visible_in(rs));
            let moved_on = converged && answer.known_records().is_some_and(|rs| !same_rrset(rs, &after));
            last.push(ServerCheck { server: s.to_string(), converged, moved_on, answer: describe(&answer) });
        }
        if last.iter().all(|s| s.converged) {
            return Propagation { servers: last, primary_unchanged: false };
        }
        if Instant::now() >= deadline {
            // Changed nothing at all on the primary itself: not applied. Unreadable: unknown,
            // and the server's NOERROR stands.
            let primary_unchanged = match primary {
                Some(p) if !same_rrset(&update.expected, &after) => reader
                    .zone_view(p, &zone.name)
                    .await
                    .0
                    .known_records()
                    .is_some_and(|rs| same_rrset(rs, &update.expected)),
                _ => false,
            };
            return Propagation { servers: last, primary_unchanged };
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(super) fn describe(answer: &SrvAnswer) -> String {
    match answer {
        SrvAnswer::Records { records } => records.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(", "),
        SrvAnswer::NoData | SrvAnswer::NxDomain => "no SRV records".into(),
        SrvAnswer::Failed { error } => format!("unreadable: {error}"),
    }
}
