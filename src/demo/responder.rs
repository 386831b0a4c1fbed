//! In-process stand-ins for KMS hosts, for `kmsdns demo` and the tests.
//!
//! A responder listens on a loopback address and answers the probe's bind as a KMS host
//! would (kms-dns-ad.md §6.3), as an RPC server without the KMS interface, or as a service
//! that does not speak DCE/RPC at all. Each runs on its own thread with blocking sockets, so
//! it works the same under a test's runtime, a demo's, or none. Dropping it stops it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::wire::rpc;

/// How a responder answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Accepts the bind to the KMS interface.
    Kms,
    /// Answers the bind with a rejected context: an RPC server, but not KMS.
    OtherRpc,
    /// Answers with text that is not DCE/RPC, as a web server on the port would.
    NotRpc,
}

/// How often an idle responder looks for a connection or a stop.
const POLL: Duration = Duration::from_millis(10);

/// A listening stand-in; stops when dropped.
pub struct KmsResponder {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl KmsResponder {
    /// Starts a responder on `addr` (port 0 picks a free one).
    pub fn start(addr: SocketAddr, behaviour: Behaviour) -> std::io::Result<KmsResponder> {
        Self::from_listener(TcpListener::bind(addr)?, behaviour)
    }

    /// Starts a responder on a listener the caller already bound. Whoever reserved an address by
    /// binding it hands the socket over instead of closing and binding it again: in between, a
    /// process forked by another thread may still hold a copy of the closed socket (until it
    /// execs), and the second bind fails with `AddrInUse`.
    pub fn from_listener(listener: TcpListener, behaviour: Behaviour) -> std::io::Result<KmsResponder> {
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        // The accept loop polls, so that a stop is seen without a connection to wake it: the
        // listener may live in another network namespace than the thread that stops it.
        listener.set_nonblocking(true)?;
        let thread = std::thread::Builder::new().name(format!("kms-responder-{addr}")).spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    // One short exchange per connection; a slow client cannot hold it long.
                    Ok((conn, _)) => {
                        let _ = conn.set_nonblocking(false).and_then(|()| answer(conn, behaviour));
                    }
                    Err(_) => std::thread::sleep(POLL),
                }
            }
        })?;
        Ok(KmsResponder { addr, stop, thread: Some(thread) })
    }

    /// A KMS host on `addr`.
    pub fn up(addr: SocketAddr) -> std::io::Result<KmsResponder> {
        Self::start(addr, Behaviour::Kms)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for KmsResponder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn answer(mut conn: TcpStream, behaviour: Behaviour) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    conn.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut header = [0u8; 16];
    conn.read_exact(&mut header)?;
    if behaviour == Behaviour::NotRpc {
        return conn.write_all(b"HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    }
    let len = rpc::frag_length(&header).map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut rest = vec![0u8; len.saturating_sub(16).min(rpc::MAX_REPLY_LEN)];
    conn.read_exact(&mut rest)?;
    let call_id = u32::from_le_bytes([header[12], header[13], header[14], header[15]]);
    conn.write_all(&rpc::encode_bind_ack(call_id, behaviour == Behaviour::Kms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ProbeState;
    use crate::observe::probe::probe;

    #[tokio::test]
    async fn the_probe_tells_each_behaviour_apart() {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let t = Duration::from_secs(2);
        let kms = KmsResponder::up(any).unwrap();
        assert_eq!(probe(kms.addr(), t, 0).await, ProbeState::KmsUp);
        let other = KmsResponder::start(any, Behaviour::OtherRpc).unwrap();
        assert!(
            matches!(probe(other.addr(), t, 0).await, ProbeState::NotKms(m) if m.contains("without the KMS interface"))
        );
        let web = KmsResponder::start(any, Behaviour::NotRpc).unwrap();
        assert!(matches!(probe(web.addr(), t, 0).await, ProbeState::NotKms(m) if m.contains("not DCE/RPC")));
        let gone = kms.addr();
        drop(kms);
        assert!(matches!(probe(gone, t, 0).await, ProbeState::Down(m) if m.contains("connect")));
    }

    #[tokio::test]
    async fn a_silent_listener_is_down_after_the_timeout() {
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let state = probe(silent.local_addr().unwrap(), Duration::from_millis(100), 1).await;
        assert!(matches!(state, ProbeState::Down(ref m) if m.contains("no answer")), "{state:?}");
    }
}
