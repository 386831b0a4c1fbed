//! kmsdns keeps the DNS records of Windows KMS hosts (`_vlmcs._tcp.<zone> SRV`) true.
//!
//! ```text
//! inventory (desired)  ─┐
//!                       ├─► audit ─► findings ─► plan ─► apply (RFC 2136 / LDAP) ─► journal
//! observe (DNS, AD,    ─┘      pure        pure          I/O
//!          probes)  I/O
//! ```
//!
//! **Inventory** ([`inventory`]): the TOML file an admin writes, the KMS hosts, the zones they
//! publish in, the authoritative servers. Parsed strictly; every problem is reported with
//! file, line, column and key.
//!
//! **Observe** ([`observe`]): the only code that reads the world. It asks every authoritative
//! server of every zone for `_vlmcs._tcp` SRV and the SOA serial, resolves each target once,
//! and probes each (address, port) with a DCE/RPC bind to the KMS interface ([`wire::rpc`]).
//! A failed read is recorded as unknown, never as empty.
//!
//! **Audit** ([`audit`]): a pure function from inventory and observation to findings, each
//! with a code from a fixed list, a severity, a message and a fix.
//!
//! **Report** ([`report`]): findings as text for a person or JSON for a program, and the exit
//! code of the monitoring-plugin convention.
//!
//! **Client check** ([`client_check`]): discovery as a KMS client does it, through the
//! client's recursive resolver (RD=1) rather than the authoritative servers, the targets in
//! RFC 2782 order, each probed, and what a client loses on each. [`explain`] maps activation
//! error codes to the findings that detect their cause.
//!
//! Plan, apply and journal come next (RFC 2136 repair); [`demo`] and [`responder`] stage a
//! small world on loopback so the whole pipeline can be seen without a real DNS or AD.

pub mod apply;
pub mod audit;
pub mod client_check;
pub mod daemon;
pub mod demo;
pub mod explain;
pub mod failover;
pub mod health;
pub mod inventory;
pub mod journal;
pub mod keys;
pub mod metrics;
pub mod name;
pub mod net;
pub mod observe;
pub mod plan;
pub mod repair;
pub mod report;
pub mod responder;
pub mod wire;

#[cfg(test)]
mod testkit;
