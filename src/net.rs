//! DNS messages on the wire: the byte pipes, UDP and TCP. Nothing here builds or judges a
//! message; [`crate::observe::dns`] asks questions through these pipes and checks every answer
//! against its question, and [`crate::apply`] sends its UPDATEs and TKEYs through [`tcp_exchange`].
//!
//! Why a UDP multiplexer of our own: hickory-net's hands an answer to whichever question has
//! its ID and silently drops what it cannot parse, so a question answered with garbage waited
//! out its whole timeout (and was reported as one), and an answer to another question with the
//! same ID was taken as this one's. [`ServerSocket`] only routes a datagram to the question in
//! flight with that ID; the question decides what the datagram says, at once.
//!
//! TCP connections are kept, not made per message: a server (BIND on one thread, say) spends
//! as much on a handshake as on a small answer, and 1,000 connects at once overflow its listen
//! queue. Questions share one pipelined connection per server ([`TcpPipe`]); UPDATEs and
//! TKEYs ride on connections that carry one message at a time, kept a short while between
//! messages ([`tcp_exchange`]).

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
/// once, and a guarantee that a fresh random ID is found in a few draws. 128: all of an
/// audit's questions to one server at the default `concurrency` (64 reads of three questions,
/// half of them on each of two servers), so that a server always has the next question
/// waiting when it answers one and does not sleep between them (at 64, two BIND servers slept
/// 1,600 times in a 10,000-zone audit, at 128 600 to 900, and the audit took a tenth less,
/// 2026-12-04, bench/README.md). 256 lost answers (the audit took 4.3 s instead of 0.6,
/// waiting out timeouts): that many answers at once overflow a socket's receive buffer.
const IN_FLIGHT_PER_SERVER: usize = 128;

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
        let (held, rx) = claim(&self.waiting)?;
        let id = held.id;
        self.socket.send(&build(id)).await?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(Ok(bytes))) => Ok((id, bytes)),
            Ok(Ok(Err(kind))) => Err(ExchangeError::Io(io::Error::from(kind))),
            Ok(Err(_)) => Err(io::Error::other(format!("the socket to {} was closed", self.server)).into()),
            Err(_) => Err(ExchangeError::Timeout),
        }
    }
}

/// The receiving end of a question's answer, or of its connection's error.
type Answer = oneshot::Receiver<Result<Vec<u8>, io::ErrorKind>>;

/// A free random ID in `waiting` for a new question: the guard that holds it (and frees it
/// when the question ends) and the receiver its answer comes to.
fn claim(waiting: &Mutex<Waiting>) -> io::Result<(Forget<'_>, Answer)> {
    let (tx, rx) = oneshot::channel();
    let mut table = lock(waiting);
    // At most IN_FLIGHT_PER_SERVER of 65,536 IDs are taken: a free one comes at once.
    let id = std::iter::repeat_with(random_id)
        .take(64)
        .find(|id| !table.contains_key(id))
        .ok_or_else(|| io::Error::other("no free message ID"))?;
    table.insert(id, Some(tx));
    Ok((Forget { waiting, id }, rx))
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

/// One TCP connection to one server kept open for many questions, pipelined (RFC 7766 §6.2.1:
/// several questions in flight, answers in any order, matched by ID), so that re-reading over
/// TCP costs the server a handshake per run rather than per question. For questions only: an
/// UPDATE goes on a connection that carries one message at a time ([`tcp_exchange`]), so that
/// a server that does not pipeline can never leave several updates' outcomes unknown at once.
///
/// A question whose connection closes before its answer is asked once more over a connection
/// of its own; a server that closes a connection with questions in flight (one that answers
/// one question per connection) is asked one question per connection from then on.
pub struct TcpPipe {
    server: SocketAddr,
    /// The open connection; held while one is made, so concurrent first questions share it.
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
    /// Cleared when the server closed a connection with questions in flight.
    pipelines: std::sync::atomic::AtomicBool,
    in_flight: Semaphore,
}

/// One open connection of a [`TcpPipe`]. Dropping it stops its receiver and closes it.
struct Conn {
    writer: tokio::sync::Mutex<tokio::net::tcp::OwnedWriteHalf>,
    waiting: Arc<Mutex<Waiting>>,
    /// Set when the server closed it, it failed, or a message was left half written.
    closed: Arc<std::sync::atomic::AtomicBool>,
    receiver: tokio::task::JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.receiver.abort();
    }
}

/// Marks a connection closed unless the message was written whole: a write cut short by a
/// cancelled question would leave the stream mid-message.
struct HalfWritten<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for HalfWritten<'_> {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// What became of a question on a pipelined connection.
enum Piped {
    Answer(Vec<u8>),
    /// The connection closed (or could not be written) before the answer came.
    Closed,
}

impl TcpPipe {
    pub fn new(server: SocketAddr) -> TcpPipe {
        TcpPipe {
            server,
            conn: tokio::sync::Mutex::new(None),
            pipelines: std::sync::atomic::AtomicBool::new(true),
            in_flight: Semaphore::new(IN_FLIGHT_PER_SERVER),
        }
    }

    /// Sends the message `build` makes for a fresh random ID, and returns the ID and the first
    /// message the server sends back with that ID, whatever it holds.
    pub async fn exchange(
        &self,
        build: impl Fn(u16) -> Vec<u8>,
        timeout: Duration,
    ) -> Result<(u16, Vec<u8>), ExchangeError> {
        use std::sync::atomic::Ordering;
        let deadline = tokio::time::Instant::now() + timeout;
        let build = &build;
        let alone = |id: u16| async move {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            tcp_exchange(self.server, &build(id), left).await.map(|a| (id, a))
        };
        if !self.pipelines.load(Ordering::Relaxed) {
            return alone(random_id()).await;
        }
        let _slot = self.in_flight.acquire().await.map_err(|_| io::Error::other("the server's pipe was closed"))?;
        let conn = tokio::time::timeout_at(deadline, self.connection()).await.map_err(|_| ExchangeError::Timeout)??;
        let (held, rx) = claim(&conn.waiting)?;
        let id = held.id;
        let piped = tokio::time::timeout_at(deadline, async {
            let message = build(id);
            let len = u16::try_from(message.len()).map_err(|_| io::Error::other("message longer than 65535 bytes"))?;
            {
                let mut writer = conn.writer.lock().await;
                let cut = HalfWritten(&conn.closed);
                let written = async {
                    writer.write_all(&len.to_be_bytes()).await?;
                    writer.write_all(&message).await
                }
                .await;
                std::mem::forget(cut);
                if written.is_err() {
                    conn.closed.store(true, Ordering::SeqCst);
                    return Ok::<Piped, ExchangeError>(Piped::Closed);
                }
            }
            Ok(match rx.await {
                Ok(Ok(bytes)) => Piped::Answer(bytes),
                _ => Piped::Closed,
            })
        })
        .await
        .map_err(|_| ExchangeError::Timeout)??;
        match piped {
            Piped::Answer(bytes) => Ok((id, bytes)),
            Piped::Closed => {
                if self.pipelines.swap(false, Ordering::Relaxed) {
                    tracing::debug!(
                        "{}: closed a TCP connection with a question in flight; one question per connection from now on",
                        self.server
                    );
                }
                alone(random_id()).await
            }
        }
    }

    /// The open connection, or a new one.
    async fn connection(&self) -> Result<Arc<Conn>, ExchangeError> {
        use std::sync::atomic::Ordering;
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref()
            && !c.closed.load(Ordering::SeqCst)
        {
            return Ok(c.clone());
        }
        let stream = TcpStream::connect(self.server).await.map_err(ExchangeError::Connect)?;
        let (read, writer) = stream.into_split();
        let waiting: Arc<Mutex<Waiting>> = Arc::default();
        let closed: Arc<std::sync::atomic::AtomicBool> = Arc::default();
        let receiver = tokio::spawn(receive_tcp(self.server, read, waiting.clone(), closed.clone()));
        let conn = Arc::new(Conn { writer: tokio::sync::Mutex::new(writer), waiting, closed, receiver });
        *slot = Some(conn.clone());
        Ok(conn)
    }
}

/// Hands each message on a pipelined connection to the question in flight with its ID; when
/// the connection ends, tells every question still waiting that it closed.
async fn receive_tcp(
    server: SocketAddr,
    mut read: tokio::net::tcp::OwnedReadHalf,
    waiting: Arc<Mutex<Waiting>>,
    closed: Arc<std::sync::atomic::AtomicBool>,
) {
    let end = loop {
        let mut len = [0u8; 2];
        if let Err(e) = read.read_exact(&mut len).await {
            break e;
        }
        let mut message = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if let Err(e) = read.read_exact(&mut message).await {
            break e;
        }
        if message.len() < 2 {
            tracing::debug!("{server}: a TCP message of {} byte(s), too short to carry an ID", message.len());
            continue;
        }
        let id = u16::from_be_bytes([message[0], message[1]]);
        match lock(&waiting).get_mut(&id).and_then(Option::take) {
            Some(tx) => {
                let _ = tx.send(Ok(message));
            }
            None => tracing::debug!("{server}: a TCP message with ID {id}, which no question in flight has"),
        }
    };
    closed.store(true, std::sync::atomic::Ordering::SeqCst);
    let kind = end.kind();
    for tx in lock(&waiting).values_mut().filter_map(Option::take) {
        let _ = tx.send(Err(kind));
    }
}

/// How long a connection an UPDATE was answered on is kept for the next: far below any
/// server's idle timeout (BIND 30 s, PowerDNS 5 s; RFC 7766 §6.2.3 asks for seconds), so that a
/// server closing it while idle cannot race the next UPDATE.
const KEEP_IDLE: Duration = Duration::from_millis(1000);

/// Connections kept open after an answered exchange, per server, and the servers seen to close
/// them (those get a new connection per message from then on).
#[derive(Default)]
struct Kept {
    idle: HashMap<SocketAddr, Vec<(std::net::TcpStream, std::time::Instant)>>,
    closers: std::collections::HashSet<SocketAddr>,
}

static KEPT: Mutex<Option<Kept>> = Mutex::new(None);

fn kept<T>(f: impl FnOnce(&mut Kept) -> T) -> T {
    let mut k = KEPT.lock().unwrap_or_else(|e| e.into_inner());
    f(k.get_or_insert_with(Kept::default))
}

/// A kept connection to `server` that is still open, idle under [`KEEP_IDLE`], with nothing
/// unread on it; a server that closed one it had answered on is marked a closer.
fn take_kept(server: SocketAddr) -> Option<std::net::TcpStream> {
    kept(|k| {
        while let Some((stream, since)) = k.idle.get_mut(&server).and_then(Vec::pop) {
            if since.elapsed() >= KEEP_IDLE {
                continue;
            }
            let mut byte = [0u8; 1];
            match stream.set_nonblocking(true).and_then(|()| stream.peek(&mut byte)) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Some(stream),
                // Closed (0), or data nobody asked for: never used again.
                Ok(0) | Err(_) => {
                    if k.closers.insert(server) {
                        tracing::debug!(
                            "{server}: closed a TCP connection after its answer; a new connection per message from now on"
                        );
                    }
                }
                Ok(_) => {}
            }
        }
        None
    })
}

/// Sends one message exactly as given (RFC 1035 §4.2.2 framing) and returns the bytes of the
/// first message that comes back, on a connection used for one message at a time: a kept one
/// when there is one (see [`KEEP_IDLE`]), and kept in turn once the answer is read whole. A
/// connection whose answer did not come whole is never used again.
///
/// A kept connection that fails on the write has carried nothing (the kernel knew it closed
/// before the message left), so the message goes again on a new one; once written, a failure
/// is what it is on a new connection: an outcome nobody saw.
pub async fn tcp_exchange(server: SocketAddr, bytes: &[u8], timeout: Duration) -> Result<Vec<u8>, ExchangeError> {
    let len = u16::try_from(bytes.len()).map_err(|_| io::Error::other("message longer than 65535 bytes"))?;
    let mut framed = Vec::with_capacity(bytes.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(bytes);
    let exchange = async {
        let reused = if kept(|k| k.closers.contains(&server)) { None } else { take_kept(server) };
        let mut stream = match reused.map(TcpStream::from_std) {
            Some(Ok(mut stream)) => match stream.write_all(&framed).await {
                Ok(()) => stream,
                Err(_) => fresh(server, &framed).await?,
            },
            Some(Err(_)) | None => fresh(server, &framed).await?,
        };
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await?;
        let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut answer).await?;
        if let Ok(std) = stream.into_std() {
            kept(|k| {
                if !k.closers.contains(&server) {
                    let idle = k.idle.entry(server).or_default();
                    idle.retain(|(_, since)| since.elapsed() < KEEP_IDLE);
                    idle.push((std, std::time::Instant::now()));
                }
            });
        }
        Ok::<Vec<u8>, ExchangeError>(answer)
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(ExchangeError::Timeout),
    }
}

/// A new connection to `server`, with `framed` written on it.
async fn fresh(server: SocketAddr, framed: &[u8]) -> Result<TcpStream, ExchangeError> {
    let mut stream = TcpStream::connect(server).await.map_err(ExchangeError::Connect)?;
    stream.write_all(framed).await?;
    Ok(stream)
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

    /// A TCP server on 127.0.0.1 that answers each message with its own bytes reversed after
    /// the ID; `per_connection` answers, then closes (None: keeps it open); `answer` false
    /// closes without answering. Counts the connections it took.
    async fn echo_server(per_connection: Option<usize>, answer: bool) -> (SocketAddr, Arc<Mutex<usize>>) {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(Mutex::new(0usize));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                *count.lock().unwrap() += 1;
                tokio::spawn(async move {
                    let mut answered = 0;
                    loop {
                        let mut len = [0u8; 2];
                        if conn.read_exact(&mut len).await.is_err() {
                            return;
                        }
                        let mut m = vec![0u8; usize::from(u16::from_be_bytes(len))];
                        if conn.read_exact(&mut m).await.is_err() || !answer {
                            return;
                        }
                        m[2..].reverse();
                        if conn.write_all(&[len.as_slice(), &m].concat()).await.is_err() {
                            return;
                        }
                        answered += 1;
                        if per_connection == Some(answered) {
                            return;
                        }
                    }
                });
            }
        });
        (addr, accepted)
    }

    async fn ask_many(pipe: &TcpPipe, n: u8) -> Vec<Result<(u16, Vec<u8>), ExchangeError>> {
        let asks = (0..n).map(|i| {
            pipe.exchange(move |id| [id.to_be_bytes().as_slice(), &[i, 0, 1]].concat(), Duration::from_secs(2))
        });
        futures_util::future::join_all(asks).await
    }

    #[tokio::test]
    async fn questions_in_flight_together_share_one_connection() {
        let (addr, accepted) = echo_server(None, true).await;
        let pipe = TcpPipe::new(addr);
        for (i, r) in ask_many(&pipe, 20).await.into_iter().enumerate() {
            let (id, answer) = r.expect("answered");
            assert_eq!(
                answer,
                [id.to_be_bytes().as_slice(), &[1, 0, i as u8]].concat(),
                "each answer to its own question"
            );
        }
        assert_eq!(*accepted.lock().unwrap(), 1, "20 questions, one connection");
    }

    #[tokio::test]
    async fn a_server_that_answers_one_question_per_connection_still_answers_each() {
        let (addr, accepted) = echo_server(Some(1), true).await;
        let pipe = TcpPipe::new(addr);
        for (i, r) in ask_many(&pipe, 8).await.into_iter().enumerate() {
            let (id, answer) = r.expect("answered on a connection of its own");
            assert_eq!(answer, [id.to_be_bytes().as_slice(), &[1, 0, i as u8]].concat());
        }
        // And from then on one connection per question, without a failed first try.
        let before = *accepted.lock().unwrap();
        assert!(ask_many(&pipe, 3).await.iter().all(Result::is_ok));
        assert_eq!(*accepted.lock().unwrap(), before + 3);
    }

    #[tokio::test]
    async fn a_connection_closed_without_an_answer_is_no_answer() {
        let (addr, _) = echo_server(None, false).await;
        let pipe = TcpPipe::new(addr);
        for r in ask_many(&pipe, 3).await {
            assert!(matches!(r, Err(ExchangeError::Io(_))), "{r:?}");
        }
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_while_idle_is_made_again() {
        let (addr, accepted) = echo_server(Some(1), true).await;
        let pipe = TcpPipe::new(addr);
        assert!(ask_many(&pipe, 1).await[0].is_ok());
        // The server has closed it; the next question finds that out and connects again.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(ask_many(&pipe, 1).await[0].is_ok());
        assert_eq!(*accepted.lock().unwrap(), 2);
        assert!(
            pipe.pipelines.load(std::sync::atomic::Ordering::Relaxed),
            "an idle close is no reason to stop pipelining"
        );
    }

    async fn one_at_a_time(server: SocketAddr, n: u8) -> Vec<Result<Vec<u8>, ExchangeError>> {
        let mut answers = Vec::new();
        for i in 0..n {
            answers.push(tcp_exchange(server, &[0, 7, i, 0, 1], Duration::from_secs(2)).await);
        }
        answers
    }

    #[tokio::test]
    async fn messages_sent_one_after_another_go_on_one_connection() {
        let (addr, accepted) = echo_server(None, true).await;
        for (i, a) in one_at_a_time(addr, 10).await.into_iter().enumerate() {
            assert_eq!(a.expect("answered"), [0, 7, 1, 0, i as u8]);
        }
        assert_eq!(*accepted.lock().unwrap(), 1, "10 messages, one connection kept between them");
    }

    #[tokio::test]
    async fn a_server_that_closes_after_each_answer_gets_a_new_connection_per_message() {
        let (addr, accepted) = echo_server(Some(1), true).await;
        for (i, a) in one_at_a_time(addr, 5).await.into_iter().enumerate() {
            assert_eq!(a.expect("answered: a closed connection is never written to"), [0, 7, 1, 0, i as u8]);
        }
        assert_eq!(*accepted.lock().unwrap(), 5);
        assert!(kept(|k| k.closers.contains(&addr)), "the server was marked as one that closes");
    }

    #[tokio::test]
    async fn a_connection_idle_past_the_keep_time_is_not_used_again() {
        let (addr, accepted) = echo_server(None, true).await;
        assert!(one_at_a_time(addr, 1).await[0].is_ok());
        tokio::time::sleep(KEEP_IDLE + Duration::from_millis(50)).await;
        assert!(one_at_a_time(addr, 1).await[0].is_ok());
        assert_eq!(*accepted.lock().unwrap(), 2);
    }

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
