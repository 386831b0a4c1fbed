//! Shared integration-test harness: throwaway BIND 9, Knot and PowerDNS servers and loopback addresses.
//!
//! Everything here is loopback-only (127.0.0.0/8) and lives in temp dirs.

// Each test binary pulls this in with `mod support;` and uses only a subset of it.
#![allow(dead_code, unused_imports)]

mod bind;
mod daemon;
mod estate;
#[cfg(feature = "gss-tsig")]
pub mod gss_commit;
pub mod interop;
mod knot;
mod pdns;
mod resolver;
mod rogue;
pub mod run;
mod samba;
#[cfg(feature = "gss-tsig")]
pub mod windows_dc;

pub use bind::{BindLab, Named, TsigKey, ZoneSpec, nsupdate};
pub use daemon::Daemon;
pub use estate::Estate;
pub use interop::DnsLab;
pub use knot::KnotLab;
pub use pdns::{PdnsLab, UpdatePolicy};
pub use resolver::Resolver;
pub use rogue::{LostAnswerRelay, Reply, RogueDns, Zone as RogueZone};
pub use samba::{DnsBackend, KMS_HOSTS, SambaLab};

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::sync::Mutex;

/// A port free on 127.0.0.1 for both UDP and TCP at the time of the call.
///
/// DNS servers need the same port on both protocols, so a port is only handed out when both binds succeed.
/// Ports are never handed out twice by one process: parallel tests in one binary would otherwise race for a port
/// that the OS reports free until the first named binds it. Another process can still take it; callers retry.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    for _ in 0..100 {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a UDP probe socket on 127.0.0.1:0");
        let port = udp.local_addr().expect("local address of the UDP probe socket").port();
        let tcp_free = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok();
        if tcp_free && HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            return port;
        }
    }
    panic!("found no port free for both UDP and TCP on 127.0.0.1 in 100 tries");
}

/// The KMS port, on which every address [`loopback_ip`] hands out is bound.
pub const KMS_PORT: u16 = 1688;

/// Loopback blocks 127.A.B.0/24 with A in 100..=199: 25,600 of them. (`kmsdns demo` uses 127.77/16.)
const BLOCKS: u32 = 100 * 256;

fn block_ip(block: u32, host: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, (100 + block / 256) as u8, (block % 256) as u8, host)
}

/// Claims the first free block at or after `from`, for as long as the returned socket lives.
///
/// A block is claimed by binding its `.0` address on the KMS port, so the kernel, not a guess from
/// the process id, keeps two test processes out of each other's addresses, and the claim ends with
/// the process however it ends. Hosts `.1` to `.254` are then this process's to hand out.
pub fn claim_block(from: u32) -> Option<(u32, TcpListener)> {
    (0..BLOCKS)
        .map(|i| (from + i) % BLOCKS)
        .find_map(|block| TcpListener::bind((block_ip(block, 0), KMS_PORT)).ok().map(|claim| (block, claim)))
}

/// This process's addresses: the blocks it claimed (held for its lifetime) and the next host.
struct OwnAddresses {
    claims: Vec<TcpListener>,
    block: u32,
    next_host: u8,
}

/// A fresh loopback address 127.A.B.C of this process's own, and a listener already bound to it on
/// port 1688 (KMS).
///
/// Linux routes all of 127/8 to `lo`, so Rust sockets can bind these without `ip addr add`. The
/// address comes from a block no other test process holds (see [`claim_block`]), and the socket is
/// handed over rather than closed: pass it to `KmsResponder::from_listener`, so nothing is released
/// and bound again (issue 18). Drop it for a host on which nothing listens; no other test process
/// can take the address meanwhile.
pub fn loopback_ip() -> (Ipv4Addr, TcpListener) {
    static OWN: Mutex<Option<OwnAddresses>> = Mutex::new(None);
    let mut guard = OWN.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..1000 {
        let mut own = match guard.take() {
            Some(own) if own.next_host < 255 => own,
            previous => {
                // The process id spreads processes over the blocks, so that claims rarely contend.
                let from = previous.as_ref().map_or(std::process::id() % BLOCKS, |own| own.block + 1);
                let (block, claim) = claim_block(from).expect("claim a free block of loopback addresses");
                let mut claims = previous.map(|own| own.claims).unwrap_or_default();
                claims.push(claim);
                OwnAddresses { claims, block, next_host: 1 }
            }
        };
        let ip = block_ip(own.block, own.next_host);
        own.next_host += 1;
        *guard = Some(own);
        // A leftover of a harness that did not claim blocks may still listen here: skip it.
        if let Ok(listener) = TcpListener::bind((ip, KMS_PORT)) {
            return (ip, listener);
        }
    }
    panic!("found no loopback address with port 1688 free in 1000 tries");
}

/// Path of a BIND tool. Looks beyond `$PATH` because `/usr/sbin` is often missing from it for non-root users.
pub(crate) fn bind_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` (BIND 9) is not installed; run `scripts/install-test-deps` to install the test dependencies"
            )
        })
}
