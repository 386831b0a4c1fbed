//! Shared integration-test harness: throwaway BIND 9 servers and loopback addresses.
//!
//! Everything here is loopback-only (127.0.0.0/8) and lives in temp dirs.

// Each test binary pulls this in with `mod support;` and uses only a subset of it.
#![allow(dead_code, unused_imports)]

mod bind;
mod estate;
mod rogue;
pub mod run;
mod samba;

pub use bind::{BindLab, Named, TsigKey, ZoneSpec};
pub use estate::Estate;
pub use rogue::{LostAnswerRelay, Reply, RogueDns, Zone as RogueZone};
pub use samba::SambaLab;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

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

/// A fresh loopback address 127.A.B.C on which nothing listens on port 1688 (KMS) at the time of the call.
///
/// Linux routes all of 127/8 to `lo`, so Rust sockets can bind these without `ip addr add`. A (100..=199) and B
/// come from the process id, C from a per-process counter (carrying into B), so concurrent test processes and
/// threads get distinct addresses; the bind probe catches leftovers that still listen.
pub fn loopback_ip() -> Ipv4Addr {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let pid = std::process::id();
    for _ in 0..1000 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let a = 100 + (pid % 100) as u8;
        let b = ((pid / 100 + n / 254) % 256) as u8;
        let c = (1 + n % 254) as u8;
        let ip = Ipv4Addr::new(127, a, b, c);
        if TcpListener::bind((ip, 1688)).is_ok() {
            return ip;
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
