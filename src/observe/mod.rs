//! Observation: what the world says now. It only reads: every write goes through
//! [`crate::apply`] (repair and failover read through this module too, never beside it).
//!
//! One run asks every authoritative server of every zone for `_vlmcs._tcp` SRV, the SOA
//! serial and the instances' shared view (`_kmsdns-view` TXT, [`peers`]), resolves each
//! distinct SRV target and inventory host once, and probes each distinct (address, port)
//! once, all concurrently under one bound. The result is plain data
//! ([`Observation`]) that the pure audit judges.
//!
//! A read that failed is recorded as failed, never as empty: a timeout is not "no records".

pub mod ad;
pub mod dns;
pub mod peers;
pub mod probe;
mod reply;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::inventory::{HostState, Inventory, ServerAddr};
use crate::model::{Observation, ReadError, Resolution, ServerView, SrvAnswer, ZoneView};
use crate::name::DnsName;
pub use dns::DnsReader;

/// Reads the world for every zone and host of the inventory.
pub async fn observe(inv: &Inventory) -> Observation {
    observe_scoped(inv, None).await
}

/// Reads one zone again (after a prerequisite conflict), with the same eyes as [`observe`]:
/// its SRV targets are looked up where they live, in whichever declared zone holds them. The
/// directory is not read again.
pub async fn observe_zone(inv: &Inventory, zone: &DnsName) -> Observation {
    observe_scoped(inv, Some(zone)).await
}

async fn observe_scoped(inv: &Inventory, only: Option<&DnsName>) -> Observation {
    let in_scope = |z: &&crate::inventory::Zone| only.is_none_or(|n| &z.name == n);
    let limit = Arc::new(Semaphore::new(inv.defaults.concurrency));
    let reader = DnsReader::new(inv.defaults.timeout, inv.defaults.retries);
    // The directory is read alongside the DNS servers.
    let ad_read = inv.ad.clone().filter(|_| only.is_none()).map(|settings| {
        let inv = inv.clone();
        tokio::spawn(async move { ad::observe_ad(&inv, &settings).await })
    });

    // 1. Every server of every zone, at once: the SRV records, the SOA serial and the
    // instances' shared view ([`peers`]) of a zone on one server are one read. Server host
    // names are resolved once each. `concurrency` workers take the reads in turn ([`each`]):
    // no task per read, whose whole future was held from the start (20,000 waiting for a
    // permit were most of an audit's memory).
    let server_addrs = resolve_servers(inv, &reader, &limit).await;
    let in_scope_zones: Vec<&crate::inventory::Zone> = inv.zones.iter().filter(in_scope).collect();
    // What each read found, by zone and server; a read that never ended (it panicked) is none.
    let mut found: Vec<Vec<Option<_>>> =
        in_scope_zones.iter().map(|z| z.servers.iter().map(|_| None).collect()).collect();
    let reads: Vec<(usize, usize, &DnsName, &ServerAddr)> = in_scope_zones
        .iter()
        .enumerate()
        .flat_map(|(zi, zone)| zone.servers.iter().enumerate().map(move |(si, server)| (zi, si, &zone.name, server)))
        .collect();
    let (reader_ref, addrs) = (&reader, &server_addrs);
    let read = each(&reads, inv.defaults.concurrency, |&(zi, si, zone, server)| async move {
        let addr = addrs
            .get(server)
            .cloned()
            .unwrap_or_else(|| Err(ReadError::Network(format!("the server {server} was not resolved"))));
        let view = async {
            match &addr {
                Ok(addr) => reader_ref.zone_view(*addr, zone).await,
                Err(e) => (SrvAnswer::Failed { error: e.clone() }, Err(e.clone()), None),
            }
        };
        let (view, txt) = tokio::join!(view, peers::read_txt(reader_ref, &addr, zone));
        (zi, si, view, txt)
    });
    for (zi, si, view, txt) in read.await {
        found[zi][si] = Some((view, txt));
    }
    let not_read = || ReadError::Network("the read did not complete".into());
    let mut zones = Vec::with_capacity(found.len());
    let mut peers = BTreeMap::new();
    for (zone, found) in in_scope_zones.iter().zip(found) {
        let mut servers = Vec::with_capacity(zone.servers.len());
        let mut txts = Vec::with_capacity(zone.servers.len());
        for (server, found) in zone.servers.iter().zip(found) {
            let ((srv, serial, mname), txt) = found
                .unwrap_or_else(|| ((SrvAnswer::Failed { error: not_read() }, Err(not_read()), None), Err(not_read())));
            servers.push(ServerView { server: server.clone(), srv, serial, mname });
            txts.push(txt);
        }
        // Each server named as the inventory names it.
        peers.insert(zone.name.clone(), peers::view_from(&zone.name, zone.servers.iter().zip(txts)));
        zones.push(ZoneView { zone: zone.name.clone(), servers });
    }

    // 2. Each distinct name once: SRV targets seen anywhere, and inventory hosts that may be published.
    let mut names: BTreeSet<DnsName> = zones
        .iter()
        .flat_map(|z| &z.servers)
        .filter_map(|s| s.srv.known_records())
        .flatten()
        .map(|r| r.target.clone())
        .collect();
    names.extend(
        inv.hosts
            .iter()
            .filter(|h| h.state != HostState::Decommissioned)
            .filter(|h| only.is_none_or(|z| h.zones.contains(z)))
            .map(|h| h.name.clone()),
    );
    // The same workers as the reads ([`each`]): the lookup borrows the inventory, which a
    // spawned task would have had to copy.
    let lookup = AddressLookup { reader: reader.clone(), inv, servers: server_addrs };
    let names: Vec<DnsName> = names.into_iter().collect();
    let lookup = &lookup;
    let resolved: BTreeMap<DnsName, Resolution> =
        each(&names, inv.defaults.concurrency, |name| async move { (name.clone(), lookup.addresses(name).await) })
            .await
            .into_iter()
            .collect();

    // 3. Each distinct (address, port) once: ports from the SRV records and from the inventory.
    let endpoints = endpoints(inv, &zones, &resolved);
    let probes = probe::probe_all(endpoints, inv.defaults.timeout, inv.defaults.retries, limit).await;

    let ad = match ad_read {
        Some(task) => Some(
            task.await
                .unwrap_or(crate::model::ad::AdRead::Failed { error: "the directory read was interrupted".into() }),
        ),
        None => None,
    };
    Observation { zones, names: resolved, probes, ad, observed_at: Some(std::time::SystemTime::now()), peers }
}

/// Runs `read` over every job, `workers` at once, all in this task: a task spawned per read
/// cost a 10,000-zone audit 30,000 spawns of a large future (its allocation and copy, and
/// the allocator's consolidation each large allocation sets off: 11 % of its instructions,
/// callgrind), where a worker holds one read's state at a time in its own. The results come
/// in the order the reads end; a read that panicked gives none.
async fn each<'a, J, T, F, Fut>(jobs: &'a [J], workers: usize, read: F) -> Vec<T>
where
    F: Fn(&'a J) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let next = std::sync::atomic::AtomicUsize::new(0);
    let (next, read) = (&next, &read);
    let worker = || async move {
        use futures_util::FutureExt as _;
        let mut done = Vec::new();
        while let Some(job) = jobs.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) {
            // A read that panics is left out, as a task's that panicked was: what it would
            // have read stays "the read did not complete", and the others go on.
            match std::panic::AssertUnwindSafe(read(job)).catch_unwind().await {
                Ok(t) => done.push(t),
                Err(_) => tracing::error!("a read panicked; what it reads is unknown in this run"),
            }
        }
        done
    };
    let workers = futures_util::future::join_all((0..workers.clamp(1, jobs.len().max(1))).map(|_| worker())).await;
    workers.into_iter().flatten().collect()
}

/// Every (address, port) to probe: each SRV target on its record's port, and each inventory
/// host that may be published on its inventory port, at the addresses they resolved to.
pub fn endpoints(inv: &Inventory, zones: &[ZoneView], names: &BTreeMap<DnsName, Resolution>) -> BTreeSet<SocketAddr> {
    let mut endpoints = BTreeSet::new();
    let mut add = |name: &DnsName, port: u16| {
        if let Some(Resolution::Addresses { addresses, .. }) = names.get(name) {
            endpoints.extend(addresses.iter().map(|a| SocketAddr::new(*a, port)));
        }
    };
    for r in zones.iter().flat_map(|z| &z.servers).filter_map(|s| s.srv.known_records()).flatten() {
        add(&r.target, r.port);
    }
    for h in inv.hosts.iter().filter(|h| h.state != HostState::Decommissioned) {
        add(&h.name, h.port);
    }
    endpoints
}

/// Looks a name's addresses up where they live: from every server of the declared zone that
/// holds the name, else through the system resolver, following an alias into whichever zone
/// holds its target. An alias that cannot be followed is unknown, never "no address".
pub struct AddressLookup<'a> {
    pub reader: DnsReader,
    /// Borrowed: a copy of a 10,000-zone inventory cost an audit 5 to 8 ms.
    pub inv: &'a Inventory,
    /// The inventory's servers, resolved (see [`resolve_servers`]).
    pub servers: BTreeMap<ServerAddr, Result<SocketAddr, ReadError>>,
}

impl<'a> AddressLookup<'a> {
    /// For one-off lookups: the inventory's server names resolved first.
    pub async fn new(inv: &'a Inventory) -> AddressLookup<'a> {
        Self::with_reader(inv, DnsReader::new(inv.defaults.timeout, inv.defaults.retries)).await
    }

    /// The same, asking every question over TCP: what a delete rests on is read again this way
    /// just before it is sent, since an answer over UDP can be forged off-path.
    /// `reader` is a [`DnsReader::tcp_only`], shared with the run's other re-reads.
    pub async fn over_tcp(inv: &'a Inventory, reader: DnsReader) -> AddressLookup<'a> {
        debug_assert!(reader.is_tcp_only());
        Self::with_reader(inv, reader).await
    }

    async fn with_reader(inv: &'a Inventory, reader: DnsReader) -> AddressLookup<'a> {
        let limit = Arc::new(Semaphore::new(inv.defaults.concurrency));
        let servers = resolve_servers(inv, &reader, &limit).await;
        AddressLookup { reader, inv, servers }
    }

    pub async fn addresses(&self, name: &DnsName) -> Resolution {
        let mut current = name.clone();
        for _ in 0..=dns::MAX_ALIASES {
            let Some(zone) = self.inv.zone_containing(&current) else {
                return dns::system_addresses(&current, self.reader.timeout()).await;
            };
            let servers: Vec<Result<SocketAddr, ReadError>> = zone
                .servers
                .iter()
                .map(|s| match self.servers.get(s) {
                    Some(r) => r.clone(),
                    None => Err(ReadError::Network(format!("the server {s} was not resolved"))),
                })
                .collect();
            match self.reader.addresses_from(&servers, &current).await {
                dns::Found::Resolved(r) => return r,
                dns::Found::Alias(next) => current = next,
            }
        }
        let error = format!("{name} is an alias chain longer than {} names", dns::MAX_ALIASES);
        Resolution::Failed { error: ReadError::Malformed(error) }
    }
}

/// Server names in the inventory resolved once each (through the system resolver).
pub async fn resolve_servers(
    inv: &Inventory,
    reader: &DnsReader,
    limit: &Arc<Semaphore>,
) -> BTreeMap<ServerAddr, Result<SocketAddr, ReadError>> {
    let all: BTreeSet<&ServerAddr> = inv.zones.iter().flat_map(|z| &z.servers).collect();
    let mut out = BTreeMap::new();
    let mut jobs = JoinSet::new();
    for s in all {
        let (s, t, limit) = (s.clone(), reader.timeout(), limit.clone());
        jobs.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let r = dns::server_socket_addrs(&s, t).await.and_then(|a| {
                a.first().copied().ok_or_else(|| ReadError::Network(format!("the server name of {s} has no address")))
            });
            (s, r)
        });
    }
    while let Some(done) = jobs.join_next().await {
        if let Ok((s, r)) = done {
            out.insert(s, r);
        }
    }
    out
}

/// The longest one exchange can take with all its retries.
pub fn worst_case(timeout: std::time::Duration, retries: u8) -> std::time::Duration {
    timeout * (u32::from(retries) + 1)
}
