//! Reads each zone's shared view ([`crate::peers`]): `_kmsdns-view.<zone>` TXT on every server
//! of the zone. What every server holds counts (a lagging secondary's older entry of an
//! instance too: it can only hold a delete back, never allow one). A server that could not be
//! read, or a record that is not an entry, makes the view unknown, never empty.

use std::net::SocketAddr;

use super::dns::DnsReader;
use crate::model::ReadError;
use crate::name::DnsName;
use crate::peers::{Entry, PeerViews, owner};

/// The view of `zone` from its servers (as [`super::resolve_servers`] resolved them).
pub async fn read_view(reader: &DnsReader, servers: &[Result<SocketAddr, ReadError>], zone: &DnsName) -> PeerViews {
    let name = owner(zone);
    let answers = futures_util::future::join_all(servers.iter().map(|s| {
        let name = &name;
        async move {
            match s {
                Ok(addr) => (addr.to_string(), reader.txt_on(*addr, name).await),
                Err(e) => ("a server of the zone".to_string(), Err(e.clone())),
            }
        }
    }))
    .await;
    if answers.is_empty() {
        return PeerViews::Unknown { why: "the zone has no server to read".into() };
    }
    let mut entries: Vec<Entry> = Vec::new();
    for (server, answer) in answers {
        let records = match answer {
            Ok(records) => records,
            Err(e) => return PeerViews::Unknown { why: format!("{server}: {e}") },
        };
        for strings in records {
            match Entry::decode(&strings, zone) {
                Ok(e) if !entries.contains(&e) => entries.push(e),
                Ok(_) => {}
                Err(why) => {
                    return PeerViews::Unknown {
                        why: format!("{server} holds a record at {name} that is not an entry: {why}"),
                    };
                }
            }
        }
    }
    entries.sort_by(|a, b| (&a.id, a.at).cmp(&(&b.id, b.at)));
    PeerViews::Read { entries }
}
