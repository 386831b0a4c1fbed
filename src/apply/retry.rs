//! SERVFAIL to an UPDATE is a server that could not apply it now, not one that refused: Knot
//! answers part of a burst of updates so (stalwartlabs/dns-update#83). Such an UPDATE is sent
//! again after a pause that doubles each time, a few times, and only then reported.
//!
//! Resending is safe because every UPDATE carries its prerequisite: if a SERVFAIL'd attempt did
//! take effect after all, the next one fails its prerequisite and the repair re-plans from what
//! the server serves. A SERVFAIL is never taken for a conflict, and a GSS-TSIG SERVFAIL (Samba's
//! answer to a write AD denies) is a denial, not a SERVFAIL, so it is not retried.

use std::time::Duration;

use super::error::UpdateError;

/// How often, and after what pauses, a SERVFAIL'd UPDATE is sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// The pause before the second attempt; each later pause doubles.
    pub first_pause: Duration,
}

impl Backoff {
    /// Four attempts over 1.4 s of pauses: long enough for Knot to work through a burst,
    /// short enough for a daemon's cycle.
    pub const SERVFAIL: Backoff = Backoff { attempts: 4, first_pause: Duration::from_millis(200) };

    /// The pauses between attempts, in order.
    pub fn pauses(&self) -> impl Iterator<Item = Duration> + use<> {
        let first = self.first_pause;
        (0..self.attempts.saturating_sub(1)).map(move |i| first.saturating_mul(1 << i.min(16)))
    }
}

/// Runs `send` until it gives anything but SERVFAIL, or `backoff` is spent. The last SERVFAIL
/// carries the number of attempts made.
pub(super) async fn on_servfail<F, Fut>(backoff: Backoff, mut send: F) -> Result<(), UpdateError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), UpdateError>>,
{
    let mut pauses = backoff.pauses();
    let mut attempts = 1;
    loop {
        match send().await {
            Err(UpdateError::ServFail { zone, server, .. }) => match pauses.next() {
                Some(pause) => {
                    tracing::warn!(
                        %server,
                        "zone {zone}: SERVFAIL to the update (attempt {attempts}); sending it again in {}",
                        humantime::format_duration(pause)
                    );
                    tokio::time::sleep(pause).await;
                    attempts += 1;
                }
                None => return Err(UpdateError::ServFail { zone, server, attempts }),
            },
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name::DnsName;
    use std::cell::Cell;

    #[test]
    fn the_pauses_double() {
        let b = Backoff::SERVFAIL;
        let pauses: Vec<u64> = b.pauses().map(|d| d.as_millis() as u64).collect();
        assert_eq!(pauses, [200, 400, 800]);
        assert_eq!(Backoff { attempts: 1, first_pause: Duration::from_secs(1) }.pauses().count(), 0);
        assert_eq!(Backoff { attempts: 0, first_pause: Duration::from_secs(1) }.pauses().count(), 0);
    }

    fn servfail() -> UpdateError {
        UpdateError::ServFail {
            zone: DnsName::parse("corp.test").unwrap(),
            server: "127.0.0.1:53".parse().unwrap(),
            attempts: 1,
        }
    }

    #[tokio::test]
    async fn servfail_is_retried_and_other_answers_are_not() {
        let quick = Backoff { attempts: 3, first_pause: Duration::from_millis(1) };
        let sent = Cell::new(0);
        let r = on_servfail(quick, || {
            sent.set(sent.get() + 1);
            let n = sent.get();
            async move { if n < 3 { Err(servfail()) } else { Ok(()) } }
        })
        .await;
        assert_eq!((r, sent.get()), (Ok(()), 3));

        sent.set(0);
        let r = on_servfail(quick, || {
            sent.set(sent.get() + 1);
            async { Err(servfail()) }
        })
        .await;
        assert!(matches!(r, Err(UpdateError::ServFail { attempts: 3, .. })), "{r:?}");
        assert!(!r.unwrap_err().is_conflict());
        assert_eq!(sent.get(), 3);

        sent.set(0);
        let conflict = || UpdateError::Conflict {
            zone: DnsName::parse("corp.test").unwrap(),
            server: "127.0.0.1:53".parse().unwrap(),
            rcode: "NXRRSET".into(),
        };
        let r = on_servfail(quick, || {
            sent.set(sent.get() + 1);
            async { Err(conflict()) }
        })
        .await;
        assert_eq!((r, sent.get()), (Err(conflict()), 1));
    }
}
