//! Reads each zone's shared view ([`crate::peers`]): `_kmsdns-view.<zone>` TXT on every server
//! of the zone. What every server holds counts (a lagging secondary's older entry of an
//! instance too: it can only hold a delete back, never allow one). A server that could not be
//! read, or a record that is not an entry, makes the view unknown, never empty.

use std::net::SocketAddr;

use super::dns::DnsReader;
use crate::model::ReadError;
use crate::name::DnsName;
use crate::peers::{Entry, PeerViews, owner};

/// One server's TXT records at the view's owner, each as its strings, or why they could not be
/// read.
pub type ServerTxt = Result<Vec<Vec<Vec<u8>>>, ReadError>;

/// The view of `zone` from its servers (as [`super::resolve_servers`] resolved them).
pub async fn read_view(reader: &DnsReader, servers: &[Result<SocketAddr, ReadError>], zone: &DnsName) -> PeerViews {
    let answers = futures_util::future::join_all(servers.iter().map(|s| async move {
        let label = match s {
            Ok(addr) => addr.to_string(),
            Err(_) => "a server of the zone".to_string(),
        };
        (label, read_txt(reader, s, zone).await)
    }))
    .await;
    view_from(zone, answers)
}

/// The view's TXT records on one server of `zone`.
pub async fn read_txt(reader: &DnsReader, server: &Result<SocketAddr, ReadError>, zone: &DnsName) -> ServerTxt {
    match server {
        Ok(addr) => reader.txt_on(*addr, &owner(zone)).await,
        Err(e) => Err(e.clone()),
    }
}

/// The view of `zone` from what each of its servers answered, in the zone's server order, each
/// with the server's name for a report (pure). No server, a server not read, or a record that
/// is not an entry: unknown.
pub fn view_from<S: std::fmt::Display>(zone: &DnsName, answers: impl IntoIterator<Item = (S, ServerTxt)>) -> PeerViews {
    let mut entries: Vec<Entry> = Vec::new();
    let mut any = false;
    for (server, answer) in answers {
        any = true;
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
                        why: format!("{server} holds a record at {} that is not an entry: {why}", owner(zone)),
                    };
                }
            }
        }
    }
    if !any {
        return PeerViews::Unknown { why: "the zone has no server to read".into() };
    }
    entries.sort_by(|a, b| (&a.id, a.at).cmp(&(&b.id, b.at)));
    PeerViews::Read { entries }
}
