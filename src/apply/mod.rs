//! Apply: the only code that changes DNS (and, for `repair --acl`, a dnsNode's ACL).
//!
//! Every UPDATE goes through [`commit`] (every ACL write through [`acl::write_dacl`]), and
//! that is where the rules that hold for every command are enforced, so no caller can forget
//! them (ExternalDNS shipped three dry-run bugs by checking per provider):
//! - the zone's policy: a zone with `policy = "audit"` is never written unless an operator
//!   overrode it for this command ([`Authority::Operator`], `--override-policy`);
//! - the dry run: with [`Mode::DryRun`] it returns before anything is journaled or sent;
//! - the journal: sending needs a [`Journal`], so no change can go out unrecorded;
//! - the bound per primary: at most [`UPDATES_PER_PRIMARY`] UPDATEs in flight to one server,
//!   whatever the command and its concurrency.
//!
//! An instance's entry in a zone's shared view goes out through [`view::publish`], which
//! enforces the policy and the dry run the same way (it is not journaled: see [`view`]).
//!
//! Messages go out through [`transport`], the one way bytes reach a server.

pub mod acl;
pub mod error;
#[cfg(feature = "gss-tsig")]
pub mod gss;
pub mod retry;
pub mod rfc2136;
pub mod transport;
pub mod view;

use std::net::SocketAddr;
use std::time::Duration;

pub use error::UpdateError;
pub use rfc2136::{Auth, RrsetUpdate};

use crate::inventory::Policy;
use crate::journal::{Applied, Journal, JournalError};
use crate::name::DnsName;

/// Whether changes are sent.
#[derive(Debug, Clone, Copy)]
pub enum Mode<'a> {
    /// Plan and show; send nothing, write nothing.
    DryRun,
    /// Send, recording each change in the journal first.
    Apply(&'a Journal),
}

/// By whose word a change is written to its zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authority {
    /// The zone's own policy: only a `policy = "repair"` zone is written.
    Policy(Policy),
    /// The operator asked for this command to write even `policy = "audit"` zones
    /// (`--override-policy` on failover, undo and repair --acl).
    Operator,
}

impl Authority {
    /// The authority a command has over a zone with `policy`.
    pub fn over(policy: Policy, override_policy: bool) -> Authority {
        if override_policy { Authority::Operator } else { Authority::Policy(policy) }
    }

    /// Refuses a write to an audit-only zone the operator did not override.
    pub fn check(self, zone: &DnsName) -> Result<(), CommitError> {
        match self {
            Authority::Policy(Policy::Repair) | Authority::Operator => Ok(()),
            Authority::Policy(Policy::Audit) => Err(CommitError::AuditOnly { zone: zone.clone() }),
        }
    }
}

/// What [`commit`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// Dry run: nothing was sent.
    NotSent,
    /// The server applied the change, recorded as journal entry `id`.
    Applied { id: u64 },
}

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// The server did not apply the change, or nobody knows whether it did (journal entry `id`
    /// says which).
    #[error("{source} (journal entry {id})")]
    Update { id: u64, source: UpdateError },
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// Nothing was sent or journaled.
    #[error(
        "zone {zone} has policy = \"audit\": kmsdns shows its changes and never writes them; set policy = \"repair\", or pass --override-policy to write it this once"
    )]
    AuditOnly { zone: DnsName },
}

/// Sends one zone's UPDATE to `server`, journaled before and after, if `authority` lets it write
/// the zone. Nothing is sent in a dry run.
#[allow(clippy::too_many_arguments)]
pub async fn commit(
    mode: Mode<'_>,
    authority: Authority,
    server: SocketAddr,
    auth: &Auth,
    update: &RrsetUpdate,
    reasons: Vec<String>,
    undo_of: Option<u64>,
    timeout: Duration,
) -> Result<Committed, CommitError> {
    authority.check(&update.zone)?;
    let journal = match mode {
        Mode::DryRun => return Ok(Committed::NotSent),
        Mode::Apply(journal) => journal,
    };
    // A primary takes only so many updates at once: the slot is held from the intent to the
    // answer, and the outcome is written after it is given back.
    let asked = std::time::Instant::now();
    let slot = update_slot(server).acquire_owned().await;
    let waited = asked.elapsed();
    let id = journal.intent(&update.zone, &server.to_string(), &update.expected, &update.after(), reasons, undo_of)?;
    let sent = std::time::Instant::now();
    let result = rfc2136::send(update, server, auth, timeout).await;
    drop(slot);
    let (zone, took, waited) = (&update.zone, sent.elapsed().as_millis(), waited.as_millis());
    match &result {
        Err(UpdateError::Timeout { .. } | UpdateError::Lost { .. }) => tracing::debug!(
            "zone {zone}: journal entry {id}: no answer from {server} after {took} ms, after {waited} ms waiting for an update slot"
        ),
        _ => tracing::debug!(
            "zone {zone}: journal entry {id}: {server} answered in {took} ms, after {waited} ms waiting for an update slot"
        ),
    }
    match result {
        Ok(()) => {
            // The change is made whatever the journal says: a failed write of its outcome
            // leaves the intent open, which the next run settles from what the servers serve.
            if let Err(e) = journal.outcome(id, Applied::Applied, "NOERROR") {
                tracing::error!(
                    "zone {}: journal entry {id} was applied, but its outcome could not be recorded: {e}",
                    update.zone
                );
            }
            Ok(Committed::Applied { id })
        }
        Err(source) => {
            let result = if source.outcome_unknown() { Applied::Unknown } else { Applied::NotApplied };
            journal.outcome(id, result, &source.answer())?;
            Err(CommitError::Update { id, source })
        }
    }
}

/// UPDATEs in flight to one primary at most, whatever the command and its concurrency:
/// bench/README.md found BIND answering 250-800 updates a second however many wait, and
/// dropping them past its `update-quota` (100). Held from the intent to the answer: the
/// outcome is written after the next UPDATE may go.
pub const UPDATES_PER_PRIMARY: usize = 16;

fn update_slot(primary: SocketAddr) -> std::sync::Arc<tokio::sync::Semaphore> {
    use std::sync::{Arc, Mutex, OnceLock};
    static SLOTS: OnceLock<Mutex<std::collections::HashMap<SocketAddr, Arc<tokio::sync::Semaphore>>>> = OnceLock::new();
    let slots = SLOTS.get_or_init(Default::default);
    let mut map = slots.lock().unwrap_or_else(|e| e.into_inner());
    map.entry(primary).or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(UPDATES_PER_PRIMARY))).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_audit_only_zone_is_written_only_on_the_operators_word() {
        let zone = DnsName::parse("corp.test").unwrap();
        assert!(Authority::over(Policy::Repair, false).check(&zone).is_ok());
        let refused = Authority::over(Policy::Audit, false).check(&zone).unwrap_err().to_string();
        assert!(refused.contains("policy = \"audit\"") && refused.contains("--override-policy"), "{refused}");
        assert_eq!(Authority::over(Policy::Audit, true), Authority::Operator);
        assert!(Authority::Operator.check(&zone).is_ok());
    }

    /// An UPDATE nobody answers may still have been applied: it is journaled as unknown, and
    /// the operator is told that, and what makes a primary drop updates, not only "no answer".
    #[tokio::test]
    async fn an_update_nobody_answers_is_unknown_and_the_error_names_what_to_check() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        // Never accepted: the kernel completes the handshake and takes the message; nobody answers.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = silent.local_addr().unwrap();
        let zone = DnsName::parse("corp.test").unwrap();
        let kms = crate::model::SrvRecord {
            target: DnsName::parse("kms1.corp.test").unwrap(),
            port: 1688,
            priority: 0,
            weight: 0,
            ttl: 600,
        };
        let update = RrsetUpdate { zone: zone.clone(), expected: vec![], deletes: vec![], adds: vec![kms] };
        let timeout = Duration::from_millis(300);
        let err =
            commit(Mode::Apply(&journal), Authority::Operator, server, &Auth::Unsigned, &update, vec![], None, timeout)
                .await
                .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("no answer from") && text.contains("journal entry 1"), "{text}");
        assert!(text.contains("may have applied it") && text.contains("\"unknown\""), "{text}");
        assert!(text.contains("update-quota") && text.contains("tcp-listen-queue"), "{text}");
        let entries = journal.entries().unwrap();
        let outcome = entries[0].outcome.as_ref().expect("an outcome line");
        assert_eq!(outcome.result, crate::journal::Applied::Unknown, "{entries:?}");
        drop(silent);
    }
}
