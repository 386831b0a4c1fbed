//! The journal: every change kmsdns sends, written before it is sent and again when the
//! answer comes, so that it can be listed, undone, and noticed after a crash.
//!
//! One JSON object per line in `<state_dir>/journal.jsonl`, each line written with one
//! `write` under an exclusive lock and fsynced before the change goes out. An `intent` line
//! without its `outcome` means kmsdns stopped between the two; the next command that opens the
//! journal reports it and records the outcome as unknown, so it is reported once.
//!
//! An outcome is one of three ([`Applied`]), never a bool: a change whose answer nobody saw (a
//! timeout, a connection lost after sending, an answer that could not be verified, a crash) may
//! have been applied. The next observation of the zone settles it ([`Journal::settle_unknown`]):
//! the servers serve the change's "after", so it was applied; its "before", so it was not. The
//! settlement is a further outcome line; the last one for an id is the one that counts.
//!
//! No secret is ever written here: entries hold zones, servers, records and answers.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::SrvRecord;
use crate::name::DnsName;

pub const FILE_NAME: &str = "journal.jsonl";

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "lowercase")]
// Lines are read and written one at a time: the size of the larger one costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Line {
    /// Written and fsynced before the UPDATE is sent.
    Intent(Intent),
    /// Written when the answer came (or it is known that none will).
    Outcome(Outcome),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    pub id: u64,
    pub time: String,
    pub zone: DnsName,
    /// Where the UPDATE goes.
    pub server: String,
    /// The RRset before (the prerequisite) and after the change.
    pub before: Vec<SrvRecord>,
    pub after: Vec<SrvRecord>,
    /// Why: the findings behind each change, or "undo of N".
    pub reasons: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undo_of: Option<u64>,
    /// For a change of a dnsNode's ACL (`repair --acl`) instead of its records: the node and
    /// its DACL-only descriptor before and after, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<AclChange>,
    /// The process that sent it, so a stopping daemon settles only its own changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The instance that sent it (`[instance] id`), where several share the zones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

/// A descriptor change, as written with SD_FLAGS = DACL only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AclChange {
    pub dn: String,
    pub before: String,
    pub after: String,
}

/// What became of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Applied {
    /// The server said NOERROR (or the servers were later seen serving its "after").
    Applied,
    /// The server refused it, or it was never sent (or the servers still serve its "before").
    NotApplied,
    /// Nobody saw the answer: it may have been applied.
    Unknown,
}

impl Applied {
    pub fn as_str(self) -> &'static str {
        match self {
            Applied::Applied => "applied",
            Applied::NotApplied => "not applied",
            Applied::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "RawOutcome")]
pub struct Outcome {
    pub id: u64,
    pub time: String,
    pub result: Applied,
    /// The server's answer ("NOERROR", "REFUSED", ...) or what went wrong.
    pub answer: String,
}

/// An outcome line as written now (`result`) or by kmsdns before 0.2 (`applied: bool`, where
/// false also stood for "unknown", which those journals said in the answer).
#[derive(Deserialize)]
struct RawOutcome {
    id: u64,
    time: String,
    #[serde(default)]
    result: Option<Applied>,
    #[serde(default)]
    applied: Option<bool>,
    answer: String,
}

impl From<RawOutcome> for Outcome {
    fn from(r: RawOutcome) -> Outcome {
        // Old journals wrote false for every change without a NOERROR; those whose answer
        // nobody saw are told apart by the answer they recorded.
        let unseen = ["timeout", "network", "unverified", "unknown", "abandoned"];
        let result = match (r.result, r.applied) {
            (Some(result), _) => result,
            (None, Some(true)) => Applied::Applied,
            (None, Some(false)) if !unseen.iter().any(|u| r.answer.starts_with(u)) => Applied::NotApplied,
            _ => Applied::Unknown,
        };
        Outcome { id: r.id, time: r.time, result, answer: r.answer }
    }
}

/// An unknown outcome the servers have since shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    pub id: u64,
    pub zone: DnsName,
    pub result: Applied,
}

/// An intent with its outcome, if one was recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    #[serde(flatten)]
    pub intent: Intent,
    pub outcome: Option<Outcome>,
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("journal {path}, line {line}: not a journal entry ({why}); the file was edited or damaged")]
    Corrupt { path: PathBuf, line: usize, why: String },
    #[error("journal {path}: the intent {from_end} line(s) from the end is damaged; the file was edited or damaged")]
    CorruptTail { path: PathBuf, from_end: usize },
    #[error("journal {path}: no change with id {id}")]
    NoSuchEntry { path: PathBuf, id: u64 },
}

/// The journal of one state directory.
#[derive(Debug, Clone)]
pub struct Journal {
    path: PathBuf,
    /// A shared lock on `writers.lock`, held while this process may send changes.
    writer: Option<std::sync::Arc<File>>,
    /// The instance whose changes these are, written with each intent.
    instance: Option<String>,
}

/// Every process that sends changes holds a shared lock on this file while it runs; changes
/// without an outcome are settled only under the exclusive lock, so a change another process
/// is still sending is never marked as interrupted.
const WRITERS_LOCK: &str = "writers.lock";

impl Journal {
    /// Opens (creating when needed, mode 0700 for the directory) the journal in `state_dir`.
    pub fn open(state_dir: &Path) -> Result<Journal, JournalError> {
        let io = |source| JournalError::Io { path: state_dir.to_path_buf(), source };
        if !state_dir.exists() {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(state_dir).map_err(io)?;
        }
        let journal = Journal { path: state_dir.join(FILE_NAME), writer: None, instance: None };
        journal.file()?;
        Ok(journal)
    }

    /// Records `instance` as the sender of every change from now on.
    pub fn for_instance(mut self, instance: &crate::peers::InstanceId) -> Journal {
        self.instance = Some(instance.to_string());
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self) -> impl Fn(std::io::Error) -> JournalError + '_ {
        |source| JournalError::Io { path: self.path.clone(), source }
    }

    fn file(&self) -> Result<File, JournalError> {
        OpenOptions::new().create(true).append(true).read(true).mode(0o600).open(&self.path).map_err(self.io())
    }

    /// Records that a change is about to be sent, and returns its id.
    pub fn intent(
        &self,
        zone: &DnsName,
        server: &str,
        before: &[SrvRecord],
        after: &[SrvRecord],
        reasons: Vec<String>,
        undo_of: Option<u64>,
    ) -> Result<u64, JournalError> {
        self.record_intent(Intent {
            id: 0,
            time: String::new(),
            zone: zone.clone(),
            server: server.to_string(),
            before: before.to_vec(),
            after: after.to_vec(),
            reasons,
            undo_of,
            acl: None,
            pid: None,
            instance: None,
        })
    }

    /// Records an intent (its id and time are assigned here), and returns its id.
    pub fn record_intent(&self, mut intent: Intent) -> Result<u64, JournalError> {
        let file = self.file()?;
        file.lock().map_err(self.io())?;
        intent.id = self
            .last_intent_id(&file)?
            .checked_add(1)
            .ok_or_else(|| JournalError::CorruptTail { path: self.path.clone(), from_end: 1 })?;
        intent.time = now();
        intent.pid = Some(std::process::id());
        intent.instance = self.instance.clone();
        let id = intent.id;
        self.append(&file, &Line::Intent(intent))?;
        Ok(id)
    }

    /// Records the answer to change `id`.
    pub fn outcome(&self, id: u64, result: Applied, answer: &str) -> Result<(), JournalError> {
        let file = self.file()?;
        file.lock().map_err(self.io())?;
        self.append(&file, &Line::Outcome(Outcome { id, time: now(), result, answer: answer.to_string() }))
    }

    /// Settles every record change whose outcome is unknown by what `obs` shows its zone's
    /// servers serving now: every server readable and serving the change's "after", applied;
    /// its "before", not applied. Anything else (a server unreadable, the RRset moved on since,
    /// a change that changed nothing) stays unknown. Returns what was settled.
    pub fn settle_unknown(&self, obs: &crate::model::Observation) -> Result<Vec<Settled>, JournalError> {
        use crate::model::same_rrset;
        let mut settled = Vec::new();
        for e in self.entries()? {
            let unknown = e.outcome.as_ref().is_some_and(|o| o.result == Applied::Unknown);
            if !unknown || e.intent.acl.is_some() || same_rrset(&e.intent.before, &e.intent.after) {
                continue;
            }
            let Some(view) = obs.zones.iter().find(|z| z.zone == e.intent.zone) else { continue };
            let served: Option<Vec<&[SrvRecord]>> = view.servers.iter().map(|s| s.srv.known_records()).collect();
            let Some(served) = served.filter(|s| !s.is_empty()) else { continue };
            let result = if served.iter().all(|rs| same_rrset(rs, &e.intent.after)) {
                Applied::Applied
            } else if served.iter().all(|rs| same_rrset(rs, &e.intent.before)) {
                Applied::NotApplied
            } else {
                continue;
            };
            let answer = match result {
                Applied::Applied => "settled: every server was later seen serving the change's after RRset",
                _ => "settled: every server was later seen still serving the change's before RRset",
            };
            self.outcome(e.intent.id, result, answer)?;
            settled.push(Settled { id: e.intent.id, zone: e.intent.zone.clone(), result });
        }
        Ok(settled)
    }

    fn append(&self, mut file: &File, line: &Line) -> Result<(), JournalError> {
        let mut text = serde_json::to_string(line).map_err(|e| self.io()(std::io::Error::other(e)))?;
        text.push('\n');
        self.trim_torn_tail(file)?;
        let before = file.metadata().map_err(self.io())?.len();
        if let Err(e) = file.write_all(text.as_bytes()) {
            // A full disk can leave half a line: take it back, so the journal stays readable.
            let _ = file.set_len(before);
            return Err(self.io()(e));
        }
        file.sync_all().map_err(self.io())
    }

    /// Cuts off a last line that a crash left without its newline, so the next line starts
    /// clean. Called under the lock.
    fn trim_torn_tail(&self, mut file: &File) -> Result<(), JournalError> {
        use std::io::{Read, Seek, SeekFrom};
        let len = file.metadata().map_err(self.io())?.len();
        if len == 0 {
            return Ok(());
        }
        let start = len.saturating_sub(64 * 1024);
        file.seek(SeekFrom::Start(start)).map_err(self.io())?;
        let mut tail = Vec::new();
        file.take(len - start).read_to_end(&mut tail).map_err(self.io())?;
        if tail.last() == Some(&b'\n') {
            return Ok(());
        }
        let keep = match tail.iter().rposition(|b| *b == b'\n') {
            Some(i) => start + i as u64 + 1,
            None if start == 0 => 0,
            // A line longer than the chunk: leave it for the reader to report.
            None => return Ok(()),
        };
        file.set_len(keep).map_err(self.io())
    }

    /// The id of the newest intent. Appends happen under the lock, so ids grow down the file
    /// and the newest intent is the last intent line; it is found by reading backwards from
    /// the end, so a long journal costs nothing per change.
    fn last_intent_id(&self, mut file: &File) -> Result<u64, JournalError> {
        use std::io::{Read, Seek, SeekFrom};
        let len = file.metadata().map_err(self.io())?.len();
        let mut chunk: u64 = 64 * 1024;
        loop {
            let start = len.saturating_sub(chunk);
            file.seek(SeekFrom::Start(start)).map_err(self.io())?;
            let mut buf = Vec::new();
            file.take(len - start).read_to_end(&mut buf).map_err(self.io())?;
            let text = String::from_utf8_lossy(&buf);
            // The first line of a chunk that does not start the file may be cut: skip it.
            let whole = if start == 0 { &text[..] } else { text.split_once('\n').map(|(_, r)| r).unwrap_or("") };
            // A last line without its newline is one a crash cut short: not an entry.
            let whole =
                if whole.ends_with('\n') { whole } else { whole.rsplit_once('\n').map(|(w, _)| w).unwrap_or("") };
            for (n, line) in whole.lines().rev().enumerate() {
                if let Ok(Line::Intent(i)) = serde_json::from_str::<Line>(line) {
                    return Ok(i.id);
                }
                if line.contains("\"phase\":\"intent\"") {
                    return Err(JournalError::CorruptTail { path: self.path.clone(), from_end: n + 1 });
                }
            }
            if start == 0 {
                return Ok(0);
            }
            chunk = chunk.saturating_mul(4);
        }
    }

    fn read_lines(&self) -> Result<Vec<Line>, JournalError> {
        let all = std::fs::read_to_string(&self.path).map_err(self.io())?;
        // A last line without its newline is one a crash cut short: not an entry.
        let complete = if all.ends_with('\n') { &all[..] } else { all.rsplit_once('\n').map(|(w, _)| w).unwrap_or("") };
        let mut lines = Vec::new();
        for (i, text) in complete.lines().enumerate() {
            if text.trim().is_empty() {
                continue;
            }
            let line = serde_json::from_str(text).map_err(|e| JournalError::Corrupt {
                path: self.path.clone(),
                line: i + 1,
                why: e.to_string(),
            })?;
            lines.push(line);
        }
        Ok(lines)
    }

    /// Every change, oldest first, each with its outcome when one was recorded.
    pub fn entries(&self) -> Result<Vec<Entry>, JournalError> {
        let mut entries: Vec<Entry> = Vec::new();
        for line in self.read_lines()? {
            match line {
                Line::Intent(intent) => entries.push(Entry { intent, outcome: None }),
                Line::Outcome(o) => {
                    if let Some(e) = entries.iter_mut().rev().find(|e| e.intent.id == o.id) {
                        e.outcome = Some(o);
                    }
                }
            }
        }
        Ok(entries)
    }

    pub fn entry(&self, id: u64) -> Result<Entry, JournalError> {
        self.entries()?
            .into_iter()
            .find(|e| e.intent.id == id)
            .ok_or(JournalError::NoSuchEntry { path: self.path.clone(), id })
    }

    fn writers_lock(&self) -> Result<File, JournalError> {
        let path = self.path.with_file_name(WRITERS_LOCK);
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|source| JournalError::Io { path, source })
    }

    /// Changes that were sent (or about to be) when a kmsdns stopped: their outcome is recorded
    /// as unknown now, and they are returned so the caller can say so. Done only when no other
    /// process that sends changes is running; otherwise nothing is settled.
    pub fn settle_interrupted(&self) -> Result<Vec<Intent>, JournalError> {
        let lock = self.writers_lock()?;
        match lock.try_lock() {
            Ok(()) => {
                let open = self.settle_open(
                    "unknown: kmsdns stopped before the answer was recorded; audit the zone to see what the server holds",
                );
                let _ = lock.unlock();
                open
            }
            Err(std::fs::TryLockError::WouldBlock) => Ok(vec![]),
            Err(std::fs::TryLockError::Error(source)) => Err(JournalError::Io { path: self.path.clone(), source }),
        }
    }

    /// Marks this process as one that sends changes, until the journal is dropped.
    pub fn hold_writer(&mut self) -> Result<(), JournalError> {
        let lock = self.writers_lock()?;
        lock.lock_shared().map_err(self.io())?;
        self.writer = Some(std::sync::Arc::new(lock));
        Ok(())
    }

    /// Records `answer` as the outcome of every change that has none, and returns them.
    pub fn settle_open(&self, answer: &str) -> Result<Vec<Intent>, JournalError> {
        self.settle_where(answer, |_| true)
    }

    /// Records `answer` as the outcome of this process's changes that have none: what a
    /// stopping daemon abandons, leaving alone what another kmsdns is sending.
    pub fn settle_own(&self, answer: &str) -> Result<Vec<Intent>, JournalError> {
        let me = std::process::id();
        self.settle_where(answer, |i| i.pid == Some(me))
    }

    fn settle_where(&self, answer: &str, pick: impl Fn(&Intent) -> bool) -> Result<Vec<Intent>, JournalError> {
        let open: Vec<Intent> =
            self.entries()?.into_iter().filter(|e| e.outcome.is_none() && pick(&e.intent)).map(|e| e.intent).collect();
        for i in &open {
            self.outcome(i.id, Applied::Unknown, answer)?;
        }
        Ok(open)
    }
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(t: &str) -> SrvRecord {
        SrvRecord { target: DnsName::parse(t).unwrap(), port: 1688, priority: 0, weight: 0, ttl: 3600 }
    }

    #[test]
    fn intents_and_outcomes_pair_up_with_increasing_ids() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("state")).unwrap();
        let zone = DnsName::parse("corp.test").unwrap();
        let a = j.intent(&zone, "127.0.0.1:53", &[rec("a.test")], &[], vec!["stale-dead".into()], None).unwrap();
        j.outcome(a, Applied::Applied, "NOERROR").unwrap();
        let b = j.intent(&zone, "127.0.0.1:53", &[], &[rec("a.test")], vec!["undo of 1".into()], Some(a)).unwrap();
        assert_eq!((a, b), (1, 2));
        let entries = j.entries().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].outcome.as_ref().unwrap().result, Applied::Applied);
        assert_eq!(entries[1].intent.undo_of, Some(1));
        assert!(entries[1].outcome.is_none());
    }

    #[test]
    fn ids_keep_growing_in_a_long_journal() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let zone = DnsName::parse("corp.test").unwrap();
        let long = vec!["x".repeat(1000)];
        for n in 1..=150 {
            let id = j.intent(&zone, "s", &[], &[rec("a.test")], long.clone(), None).unwrap();
            assert_eq!(id, n);
            j.outcome(id, Applied::Applied, "NOERROR").unwrap();
        }
        assert!(std::fs::metadata(j.path()).unwrap().len() > 64 * 1024);
        assert_eq!(j.entries().unwrap().len(), 150);
    }

    #[test]
    fn an_interrupted_change_is_reported_once() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let zone = DnsName::parse("corp.test").unwrap();
        j.intent(&zone, "s", &[], &[rec("a.test")], vec![], None).unwrap();
        let open = j.settle_interrupted().unwrap();
        assert_eq!(open.len(), 1);
        assert!(j.settle_interrupted().unwrap().is_empty());
        let e = j.entry(1).unwrap();
        let o = e.outcome.unwrap();
        assert!(o.answer.starts_with("unknown"));
        assert_eq!(o.result, Applied::Unknown, "a change interrupted after its intent may have been applied");
    }

    #[test]
    fn a_line_a_crash_cut_short_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let zone = DnsName::parse("corp.test").unwrap();
        let id = j.intent(&zone, "s", &[], &[rec("a.test")], vec![], None).unwrap();
        j.outcome(id, Applied::Applied, "NOERROR").unwrap();
        let mut f = OpenOptions::new().append(true).open(j.path()).unwrap();
        f.write_all(b"{\"phase\":\"intent\",\"id\":2,\"ti").unwrap();
        assert_eq!(j.entries().unwrap().len(), 1);
        assert_eq!(j.intent(&zone, "s", &[], &[], vec![], None).unwrap(), 2);
        assert_eq!(j.entries().unwrap().len(), 2, "the torn line is gone and the new one readable");
    }

    #[test]
    fn a_damaged_journal_is_an_error_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        std::fs::write(j.path(), "{\"phase\":\"intent\"}\nnot json\n").unwrap();
        let e = j.entries().unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
    }
}
