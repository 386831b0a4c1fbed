//! Many instances, one truth: what each `kmsdns` instance sees of a zone's KMS hosts, shared
//! through the zone itself, so that a host one site cannot reach is not deleted while another
//! site sees it working. Pure: the codec and the judgement; the read is in
//! [`crate::observe::peers`], the write in [`crate::apply::view`].
//!
//! **The record.** One TXT RRset per zone at `_kmsdns-view.<zone>` ([`owner`]), a name nothing
//! else uses (not under `_vlmcs._tcp`, so neither KMS clients nor the SRV audit see it). Each
//! instance owns exactly one record of it, and only ever replaces its own (the exact rdata it
//! saw or wrote deleted, the new one added, in one UPDATE signed with the zone's key). The
//! record's strings, concatenated, read
//!
//! ```text
//! v=1 id=<instance id> t=<unix seconds> alive=<name>,<name> dead=<name>
//! ```
//!
//! with names relative to the zone (`kms1`) or absolute with a trailing dot (`kms.other.`).
//! `alive` lists the hosts (SRV targets, and the inventory's hosts of the zone) the instance
//! sees answer as KMS hosts, `dead` those it sees dead; a host it has no verdict on is in
//! neither.
//!
//! **Size bound.** A TXT string holds at most 255 octets; an entry is written as at most
//! [`MAX_STRINGS`] of them, so its value is at most 2,040 octets (a few hundred host names).
//! An instance whose view does not fit writes `v=1 id=<id> t=<t> overflow` instead, which
//! counts as "sees every host alive": it blocks every delete for a dead host. A view is never
//! cut short into something that would allow a delete.
//!
//! **The rule.** "Dead only when every instance that can judge agrees": a delete because a
//! host is dead (`stale-dead`, from one-shot probes or the daemon's hysteresis) is held while
//! any *fresh* entry of another instance (younger than `[instance] stale_after`) lists the
//! host alive or overflows, and while the view could not be read or does not parse (unknown
//! is never "no other instance"). An entry older than the bound no longer counts and is
//! reported (`peer-stale`), so a site that is gone does not block deletes forever. An entry
//! dated in the future counts as fresh: TSIG already keeps every writer's clock within 300 s
//! of the primary's. Deletes for other reasons (a host decommissioned in the inventory, an
//! address that is gone, a port that answers as something else, an unknown host with
//! `remove_unknown`) rest on evidence every instance shares and do not depend on the view.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::name::DnsName;

/// The first label of the view's owner name.
pub const OWNER_LABEL: &str = "_kmsdns-view";
/// The most character-strings an entry is written as.
pub const MAX_STRINGS: usize = 8;
/// RFC 1035 §3.3: a character-string is one length octet and at most 255 octets.
pub const MAX_STRING: usize = 255;
/// The version this codec writes and reads.
const VERSION: &str = "1";

/// `_kmsdns-view.<zone>`.
pub fn owner(zone: &DnsName) -> DnsName {
    // A valid zone name with one more short label: still a valid name (or the zone is within
    // 14 octets of the 253 limit, and its view cannot be named: then it has none).
    DnsName::parse(&format!("{OWNER_LABEL}.{zone}")).unwrap_or_else(|_| zone.clone())
}

/// An instance's name: one DNS label (letters, digits, hyphens; 1 to 63; no hyphen at either
/// end), lower case. Stable across restarts: the config's `[instance] id`, else the host name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct InstanceId(String);

impl InstanceId {
    pub fn parse(text: &str) -> Result<InstanceId, String> {
        let ok = !text.is_empty()
            && text.len() <= 63
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !text.starts_with('-')
            && !text.ends_with('-');
        if ok {
            Ok(InstanceId(text.to_ascii_lowercase()))
        } else {
            Err(format!("'{text}' is not a DNS label (1 to 63 letters, digits and hyphens, no hyphen at either end)"))
        }
    }

    /// The default id: the host name's first label (`/proc/sys/kernel/hostname`), or "kmsdns".
    pub fn from_hostname() -> InstanceId {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .and_then(|h| h.trim().split('.').next().and_then(|l| InstanceId::parse(l).ok()))
            .unwrap_or_else(|| InstanceId("kmsdns".into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What one instance says it sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sight {
    Hosts {
        alive: BTreeSet<DnsName>,
        dead: BTreeSet<DnsName>,
    },
    /// Its view did not fit the record: it counts as seeing every host alive.
    Overflow,
}

/// One instance's record in a zone's view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: InstanceId,
    /// When it was written, in Unix seconds.
    pub at: u64,
    pub sight: Sight,
}

impl Entry {
    /// True when this entry says `host` is alive (an overflowing one says so of every host).
    pub fn sees_alive(&self, host: &DnsName) -> bool {
        match &self.sight {
            Sight::Hosts { alive, .. } => alive.contains(host),
            Sight::Overflow => true,
        }
    }

    pub fn sees_dead(&self, host: &DnsName) -> bool {
        matches!(&self.sight, Sight::Hosts { dead, .. } if dead.contains(host))
    }

    /// The entry as the strings of one TXT record: at most [`MAX_STRINGS`] of at most
    /// [`MAX_STRING`] octets. A view that does not fit is written as `overflow`.
    pub fn encode(&self, zone: &DnsName) -> Vec<Vec<u8>> {
        let head = format!("v={VERSION} id={} t={}", self.id, self.at);
        let value = match &self.sight {
            Sight::Hosts { alive, dead } => {
                let list = |names: &BTreeSet<DnsName>| -> String {
                    names.iter().map(|n| relative(n, zone)).collect::<Vec<_>>().join(",")
                };
                format!("{head} alive={} dead={}", list(alive), list(dead))
            }
            Sight::Overflow => format!("{head} overflow"),
        };
        let value = if value.len() > MAX_STRINGS * MAX_STRING { format!("{head} overflow") } else { value };
        value.as_bytes().chunks(MAX_STRING).map(<[u8]>::to_vec).collect()
    }

    /// Reads one TXT record's strings. Anything that is not exactly an entry of this version is
    /// an error: a view with an entry nobody can read is unknown, never "no other instance".
    pub fn decode(strings: &[Vec<u8>], zone: &DnsName) -> Result<Entry, String> {
        let bytes: Vec<u8> = strings.concat();
        let value = std::str::from_utf8(&bytes).map_err(|_| "it is not ASCII text".to_string())?;
        let shown = || {
            let mut s: String = value.chars().take(80).collect();
            if value.len() > 80 {
                s.push('…');
            }
            s
        };
        let bad = |why: &str| format!("'{}': {why}", shown());
        let mut words = value.split(' ');
        let mut field = |key: &str| -> Result<&str, String> {
            words
                .next()
                .and_then(|w| w.strip_prefix(key)?.strip_prefix('='))
                .ok_or_else(|| bad(&format!("expected {key}=")))
        };
        match field("v")? {
            VERSION => {}
            v => return Err(bad(&format!("version {v} is not one this kmsdns reads (it reads {VERSION})"))),
        }
        let id = InstanceId::parse(field("id")?).map_err(|e| bad(&e))?;
        let at = field("t")?.parse::<u64>().map_err(|_| bad("t= is not a number of seconds"))?;
        let rest: Vec<&str> = words.collect();
        let sight = match rest.as_slice() {
            ["overflow"] => Sight::Overflow,
            [alive, dead] => {
                let list = |word: &str, key: &str| -> Result<BTreeSet<DnsName>, String> {
                    let names = word
                        .strip_prefix(key)
                        .and_then(|w| w.strip_prefix('='))
                        .ok_or_else(|| bad(&format!("expected {key}=")))?;
                    names
                        .split(',')
                        .filter(|n| !n.is_empty())
                        .map(|n| absolute(n, zone).ok_or_else(|| bad(&format!("'{n}' is not a host name"))))
                        .collect()
                };
                Sight::Hosts { alive: list(alive, "alive")?, dead: list(dead, "dead")? }
            }
            _ => return Err(bad("expected alive= and dead=, or overflow")),
        };
        Ok(Entry { id, at, sight })
    }
}

/// `kms1` for kms1.corp.test in corp.test; `kms.other.test.` outside it.
fn relative(name: &DnsName, zone: &DnsName) -> String {
    match name.as_str().strip_suffix(zone.as_str()).and_then(|n| n.strip_suffix('.')) {
        Some(label) if !label.is_empty() => label.to_string(),
        _ => name.fqdn(),
    }
}

fn absolute(text: &str, zone: &DnsName) -> Option<DnsName> {
    if text.ends_with('.') { DnsName::parse(text).ok() } else { DnsName::parse(&format!("{text}.{zone}")).ok() }
}

/// A zone's view as read from its servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerViews {
    /// Every entry every server holds (an instance's entry may be there twice while a
    /// secondary lags: both count).
    Read { entries: Vec<Entry> },
    /// A server could not be read, or holds a record that is not an entry.
    Unknown { why: String },
}

/// How an instance judges with the others' views, and what it writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSettings {
    pub id: InstanceId,
    /// Publish this instance's view (the daemon); when false it writes none but still
    /// respects the others'.
    pub share_view: bool,
    /// An entry older than this no longer counts.
    pub stale_after: Duration,
}

/// The others' views of one zone as they bear on deletes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peers<'a> {
    Known {
        /// Entries of other instances younger than the bound.
        fresh: Vec<&'a Entry>,
        /// Entries of other instances older than it, which no longer count.
        stale: Vec<&'a Entry>,
    },
    /// The view could not be read: no delete for a dead host may rest on it.
    Unknown(&'a str),
}

impl<'a> Peers<'a> {
    /// The others' entries of `views` as seen by instance `me` at `now` (Unix seconds).
    /// No view at all (`None`: not observed) is unknown.
    pub fn of(views: Option<&'a PeerViews>, me: &InstanceId, now: u64, stale_after: Duration) -> Peers<'a> {
        match views {
            None => Peers::Unknown("the instances' shared view was not read"),
            Some(PeerViews::Unknown { why }) => Peers::Unknown(why),
            Some(PeerViews::Read { entries }) => {
                let others = entries.iter().filter(|e| &e.id != me);
                let (fresh, stale) = others.partition(|e| now.saturating_sub(e.at) < stale_after.as_secs().max(1));
                Peers::Known { fresh, stale }
            }
        }
    }

    /// Why a delete of `host` for being dead must wait, if it must.
    pub fn hold_delete(&self, host: &DnsName, now: u64) -> Option<String> {
        match self {
            Peers::Unknown(why) => Some(format!(
                "held back: the instances' shared view could not be read ({why}); a host is dead only when every instance that can judge agrees"
            )),
            Peers::Known { fresh, .. } => {
                let alive: Vec<String> = fresh.iter().filter(|e| e.sees_alive(host)).map(|e| seen(e, now)).collect();
                (!alive.is_empty()).then(|| {
                    format!(
                        "held back: {} (split view); a host is dead only when every instance that can judge agrees",
                        alive.join(", ")
                    )
                })
            }
        }
    }

    /// The fresh entries that see `host` alive, and those that see it dead.
    pub fn split(&self, host: &DnsName) -> (Vec<&'a Entry>, Vec<&'a Entry>) {
        match self {
            Peers::Known { fresh, .. } => (
                fresh.iter().copied().filter(|e| e.sees_alive(host)).collect(),
                fresh.iter().copied().filter(|e| e.sees_dead(host)).collect(),
            ),
            Peers::Unknown(_) => (vec![], vec![]),
        }
    }
}

/// A moment in Unix seconds; none (an observation made without a clock, in tests) is 0,
/// which makes every entry count as fresh.
pub fn unix_secs(at: Option<std::time::SystemTime>) -> u64 {
    at.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs())
}

/// "site-b saw it alive 3 s ago" (or "… overflows its record …").
pub fn seen(e: &Entry, now: u64) -> String {
    let what = match e.sight {
        Sight::Overflow => "lists too many hosts for its record, which counts as seeing them all alive",
        Sight::Hosts { .. } => "saw it alive",
    };
    format!("instance {} {what} {}", e.id, ago(e.at, now))
}

/// "3 s ago (t=1733100000)".
pub fn ago(at: u64, now: u64) -> String {
    match now.checked_sub(at) {
        Some(s) => format!("{s} s ago (t={at})"),
        None => format!("just now (t={at}, ahead of this host's clock)"),
    }
}

#[cfg(test)]
mod tests;
