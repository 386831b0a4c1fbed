//! kmsdns keeps the DNS records of Windows KMS hosts (`_vlmcs._tcp.<zone> SRV`) true.
//!
//! ```text
//! inventory (desired) ────────────────┐
//!                                     ├─► audit ─► findings ─► plan ─► apply ─► verify ─► journal
//! observe (DNS, AD, probes) ─► model ─┘    pure                 pure    I/O: RFC 2136 / LDAP,
//!           I/O                                                         the one send path
//!
//! cycle: the one composition of these steps, used by every command
//! ```
//!
//! **Inventory** ([`inventory`]): the TOML file an admin writes: the KMS hosts, the zones they
//! publish in, the authoritative servers, the keys. Parsed strictly; every problem is reported
//! with file, line, column and key.
//!
//! **Model** ([`model`]): the observed world as plain types (zone views, SRV records, address
//! resolutions, probe states, read errors, the directory's view in [`model::ad`]). Unknown is
//! a variant, never a missing value. Observe fills it; audit and plan read it and import
//! nothing that does I/O.
//!
//! **Observe** ([`observe`], over [`net`]): what the world says now. Every authoritative server
//! of every zone is asked for `_vlmcs._tcp` SRV and the SOA; each target is looked up where it
//! lives (every server of the declared zone that holds it, aliases followed across zones, else
//! the system resolver); each (address, port) gets a DCE/RPC bind to the KMS interface
//! ([`wire::rpc`]); with `[ad]`, the directory's dnsNode objects and ACLs are read over LDAP.
//! An answer is evidence only for the question it answers; a read that failed or does not match
//! is *unknown*, never empty. Observe only reads.
//! Each zone's shared view of the instances that watch it (`_kmsdns-view.<zone>` TXT,
//! [`peers`], read by [`observe::peers`]) is read with it: two sites that see a host
//! differently never flap its record.
//!
//! **Audit** ([`audit`], with the AD access check in [`audit::access`]): a pure function from
//! inventory and observation to findings, each with a code from a fixed list, a severity, a
//! message and a fix. Unknown gives no verdict.
//!
//! **Plan** ([`plan`]): pure: (inventory, observation, findings) → the smallest change per zone,
//! behind every safety rail (another instance that sees a dead host alive, unreadable or
//! disagreeing servers, the blind probe, `max_deletes`,
//! the last live target, the policy). A plan file ([`plan::file`]) is sealed by a digest and
//! re-checked by the same rails when applied. A failover ([`plan::failover`]) is an inventory
//! override planned by the same rails, stating the two it overrides.
//!
//! **Cycle** ([`cycle`]): the one composition of the steps, and every command as steps of it.
//! Its carry-out re-reads the evidence of each delete over TCP and confirms dead hosts with
//! further probes ([`cycle::confirm`]), sends ([`cycle::carry`]), and verifies on every server
//! that the change is visible, a NOERROR the primary does not show being "not applied"
//! ([`cycle::verify`]).
//!
//! **Apply** ([`apply`]): the only code that writes. [`apply::commit`] (DNS UPDATE, HMAC-TSIG
//! or GSS-TSIG via [`apply::gss`]) and [`apply::acl`] (the dnsNode DACL) enforce, for every
//! command, the zone's policy (or the operator's `--override-policy`), the dry run, and the
//! journal; bytes reach servers through [`apply::transport`] alone.
//!
//! **Journal** ([`journal`]): every change before and after it is sent, with its outcome
//! applied | not-applied | unknown; the next observation settles unknown; undo.
//!
//! **Report** ([`report`]): one renderer per command: text for a person, JSON for a program,
//! the monitoring-plugin exit codes and the Nagios line.
//!
//! **Commands beside the cycle**: [`daemon`] (`kmsdns run`: timers, time-based hysteresis in
//! [`daemon::health`], reload, signals, [`daemon::metrics`]); [`failover`] (the runbook after a
//! host dies, on the cycle); [`client_check`] (discovery as a client does it, through its
//! recursive resolver) and [`explain`] (activation error codes → findings); [`demo`] (a small
//! world on loopback, with its KMS stand-ins in [`demo::responder`]). [`keys`] reads TSIG key
//! files, [`name`] is the DNS name type, [`wire`] holds the pure codecs (MS-DNSP dnsRecord,
//! security descriptors, DCE/RPC bind, TKEY).

pub mod apply;
pub mod audit;
pub mod client_check;
pub mod cycle;
pub mod daemon;
pub mod demo;
pub mod explain;
pub mod failover;
pub mod inventory;
pub mod journal;
pub mod keys;
pub mod model;
pub mod name;
pub mod net;
pub mod observe;
pub mod peers;
pub mod plan;
pub mod report;
pub mod wire;

#[cfg(test)]
mod testkit;
