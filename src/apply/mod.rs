//! Apply: the only code that changes DNS.
//!
//! Every UPDATE goes through [`commit`], and [`commit`] is where a dry run stops: with
//! [`Mode::DryRun`] it returns before anything is journaled or sent. Callers do not check for
//! dry runs themselves (ExternalDNS shipped three dry-run bugs by checking per provider), and
//! sending needs a [`Journal`], so no change can go out unrecorded.

pub mod acl;
#[cfg(feature = "gss-tsig")]
pub mod gss;
pub mod retry;
pub mod rfc2136;
pub mod transport;

use std::net::SocketAddr;
use std::time::Duration;

pub use rfc2136::{Auth, RrsetUpdate, UpdateError};

use crate::journal::{Applied, Journal, JournalError};

/// Whether changes are sent.
#[derive(Debug, Clone, Copy)]
pub enum Mode<'a> {
    /// Plan and show; send nothing, write nothing.
    DryRun,
    /// Send, recording each change in the journal first.
    Apply(&'a Journal),
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
}

/// Sends one zone's UPDATE to `server`, journaled before and after. Nothing is sent in a dry run.
pub async fn commit(
    mode: Mode<'_>,
    server: SocketAddr,
    auth: &Auth,
    update: &RrsetUpdate,
    reasons: Vec<String>,
    undo_of: Option<u64>,
    timeout: Duration,
) -> Result<Committed, CommitError> {
    let journal = match mode {
        Mode::DryRun => return Ok(Committed::NotSent),
        Mode::Apply(journal) => journal,
    };
    let id = journal.intent(&update.zone, &server.to_string(), &update.expected, &update.after(), reasons, undo_of)?;
    let result = rfc2136::send(update, server, auth, timeout).await;
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
