//! kmsdns's own GSS-TSIG UPDATE, sent from inside a Samba lab, for tests that need a second
//! writer or an exact "expected" RRset (the prerequisite tests). The Kerberos settings come from
//! the process environment (`KRB5_CONFIG`, `KRB5CCNAME`), which such a test binary sets for its
//! one test.

use std::time::Duration;

use kmsdns::apply::{Auth, Authority, CommitError, Committed, Mode, RrsetUpdate, commit};
use kmsdns::inventory::Policy;
use kmsdns::journal::Journal;
use kmsdns::name::DnsName;

use super::SambaLab;

/// Commits `update` to the lab's DC (127.0.0.10:53, signed for DNS/dc1.corp.test as the
/// ccache's principal), journaling under `state`.
pub fn gss_commit(lab: &SambaLab, update: RrsetUpdate, state: &std::path::Path) -> Result<Committed, CommitError> {
    let state = state.to_path_buf();
    lab.in_netns(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let journal = Journal::open(&state).unwrap();
            let auth = Auth::Gss { server_name: DnsName::parse("dc1.corp.test").unwrap(), principal: None };
            let server = "127.0.0.10:53".parse().unwrap();
            commit(
                Mode::Apply(&journal),
                Authority::Policy(Policy::Repair),
                server,
                &auth,
                &update,
                vec![],
                None,
                Duration::from_secs(5),
            )
            .await
        })
    })
}
