//! DNS messages on the wire: the byte pipes, UDP and TCP. Nothing here builds or judges a
//! message; [`crate::observe::dns`] asks questions through these pipes and checks every answer
//! against its question, and [`crate::apply`] sends its UPDATEs and TKEYs through [`tcp_exchange`].
//!
//! Why a UDP multiplexer of our own: hickory-net's hands an answer to whichever question has
//! its ID and silently drops what it cannot parse, so a question answered with garbage waited
//! out its whole timeout (and was reported as one), and an answer to another question with the
//! same ID was taken as this one's. [`ServerSocket`] only routes a datagram to the question in
//! flight with that ID; the question decides what the datagram says, at once.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{Semaphore, oneshot};

/// Why no datagram came back.
#[derive(Debug)]
pub enum ExchangeError {
    /// Nothing arrived for this question within the timeout.
    Timeout,
    /// The socket failed, e.g. the kernel reported ICMP port unreachable.
    Io(io::Error),
    /// The TCP connection could not be made: nothing was sent.
    Connect(io::Error),
}

impl From<io::Error> for ExchangeError {
    fn from(e: io::Error) -> Self {
        ExchangeError::Io(e)
    }
}

/// The questions in flight by ID. An answered question keeps its entry (its sender taken) until
/// it ends, so that its ID is not handed to a new question that its end would then forget.
type Waiting = HashMap<u16, Option<oneshot::Sender<Result<Vec<u8>, io::ErrorKind>>>>;

/// Questions one server's socket may have in flight: a bound on what we ask of one server at
/// once, and a guarantee that a fresh random ID is found in a few draws.
const IN_FLIGHT_PER_SERVER: usize = 32;

/// One UDP socket `connect()`ed to one server (so the kernel drops datagrams from any other
/// address), shared by every question to that server. Dropping it stops its receiver.
pub struct ServerSocket {
    server: SocketAddr,
    socket: Arc<UdpSocket>,
    waiting: Arc<Mutex<Waiting>>,
    in_flight: Semaphore,
    receiver: tokio::task::JoinHandle<()>,
}

impl Drop for ServerSocket {
    fn drop(&mut self) {
        self.receiver.abort();
    }
}

impl ServerSocket {
    pub async fn open(server: SocketAddr) -> io::Result<ServerSocket> {
        let local: SocketAddr = match server {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(local).await?;
        socket.connect(server).await?;
        let socket = Arc::new(socket);
        let waiting: Arc<Mutex<Waiting>> = Arc::default();
        let receiver = tokio::spawn(receive(server, socket.clone(), waiting.clone()));
        Ok(ServerSocket { server, socket, waiting, in_flight: Semaphore::new(IN_FLIGHT_PER_SERVER), receiver })
    }

    /// Sends the message `build` makes for a fresh random ID, and returns the ID and the first
    /// datagram the server sends back with that ID, whatever it holds.
    pub async fn exchange(
        &self,
        build: impl FnOnce(u16) -> Vec<u8>,
        timeout: Duration,
    ) -> Result<(u16, Vec<u8>), ExchangeError> {
        let _slot = self.in_flight.acquire().await.map_err(|_| io::Error::other("the server's socket was closed"))?;
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut waiting = lock(&self.waiting);
            // At most IN_FLIGHT_PER_SERVER of 65,536 IDs are taken: a free one comes at once.
            let id = std::iter::repeat_with(random_id)
                .take(64)
                .find(|id| !waiting.contains_key(id))
                .ok_or_else(|| io::Error::other("no free message ID"))?;
            waiting.insert(id, Some(tx));
            id
        };
        let _forget = Forget { waiting: &self.waiting, id };
        self.socket.send(&build(id)).await?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(Ok(bytes))) => Ok((id, bytes)),
            Ok(Ok(Err(kind))) => Err(ExchangeError::Io(io::Error::from(kind))),
            Ok(Err(_)) => Err(io::Error::other(format!("the socket to {} was closed", self.server)).into()),
            Err(_) => Err(ExchangeError::Timeout),
        }
    }
}

/// Takes a question's ID out of the table when it ends, answered, timed out or cancelled.
struct Forget<'a> {
    waiting: &'a Mutex<Waiting>,
    id: u16,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        lock(self.waiting).remove(&self.id);
    }
}

fn lock(m: &Mutex<Waiting>) -> std::sync::MutexGuard<'_, Waiting> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Hands each datagram to the question in flight with its ID; an error of the socket (ICMP
/// port unreachable, reported on a connected socket) to every question in flight.
async fn receive(server: SocketAddr, socket: Arc<UdpSocket>, waiting: Arc<Mutex<Waiting>>) {
    let mut buf = vec![0u8; 65_535];
    loop {
        match socket.recv(&mut buf).await {
            Ok(n) if n >= 2 => {
                let id = u16::from_be_bytes([buf[0], buf[1]]);
                match lock(&waiting).get_mut(&id).and_then(Option::take) {
                    Some(tx) => {
                        let _ = tx.send(Ok(buf[..n].to_vec()));
                    }
                    None => tracing::debug!("{server}: a datagram with ID {id}, which no question in flight has"),
                }
            }
            Ok(n) => tracing::debug!("{server}: a datagram of {n} byte(s), too short to carry an ID"),
            Err(e) => {
                let kind = e.kind();
                for tx in lock(&waiting).values_mut().filter_map(Option::take) {
                    let _ = tx.send(Err(kind));
                }
                tracing::debug!("{server}: receive failed: {e}");
                // An error that repeats must not spin this task.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Sends one message exactly as given over a new TCP connection (RFC 1035 §4.2.2 framing) and
/// returns the bytes of the first message that comes back.
pub async fn tcp_exchange(server: SocketAddr, bytes: &[u8], timeout: Duration) -> Result<Vec<u8>, ExchangeError> {
    let exchange = async {
        let mut stream = TcpStream::connect(server).await.map_err(ExchangeError::Connect)?;
        let len = u16::try_from(bytes.len()).map_err(|_| io::Error::other("message longer than 65535 bytes"))?;
        let mut framed = Vec::with_capacity(bytes.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(bytes);
        stream.write_all(&framed).await?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await?;
        let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut answer).await?;
        Ok::<Vec<u8>, ExchangeError>(answer)
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(ExchangeError::Timeout),
    }
}

/// A random message ID (RFC 5452 §9.2: IDs must not be guessable), from the kernel's CSPRNG.
/// The bytes are drawn a block at a time (`ID_BLOCK` IDs per `getrandom`): one draw per ID
/// was one system call per question, as many as the sends themselves (40,000 in an audit of
/// 10,000 zones on 2 servers). A block is used once, front to back, and never handed out again.
pub fn random_id() -> u16 {
    let mut pool = ID_POOL.lock().unwrap_or_else(|e| e.into_inner());
    if pool.next + 2 > pool.bytes.len() {
        if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut pool.bytes).is_err() {
            // No block: one ID's worth, as it always was drawn (zero if even that fails).
            let mut b = [0u8; 2];
            let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
            return u16::from_be_bytes(b);
        }
        pool.next = 0;
    }
    let i = pool.next;
    pool.next += 2;
    u16::from_be_bytes([pool.bytes[i], pool.bytes[i + 1]])
}

/// IDs drawn from the kernel at once by [`random_id`].
const ID_BLOCK: usize = 128;

struct IdPool {
    bytes: [u8; 2 * ID_BLOCK],
    /// The first byte not yet handed out; the whole block is used up at the start.
    next: usize,
}

static ID_POOL: Mutex<IdPool> = Mutex::new(IdPool { bytes: [0; 2 * ID_BLOCK], next: 2 * ID_BLOCK });

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_fresh_across_blocks() {
        // Several blocks' worth: a block reused, or a refill that failed silently (all zeros),
        // would repeat IDs far beyond what 65,536 values give by chance.
        let ids: Vec<u16> = (0..4 * ID_BLOCK).map(|_| random_id()).collect();
        let distinct: std::collections::HashSet<u16> = ids.iter().copied().collect();
        assert!(distinct.len() > ids.len() * 9 / 10, "{} distinct IDs of {}", distinct.len(), ids.len());
        let blocks: Vec<&[u16]> = ids.chunks(ID_BLOCK).collect();
        assert!(blocks.windows(2).all(|w| w[0] != w[1]), "a block of IDs was handed out twice");
    }
}
