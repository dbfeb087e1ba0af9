//! Connection tasks: the handshake (QUIC, then identity proofs) for dials and for incoming
//! connections, and, once the node task has registered a connection, its frame reader and
//! writer (SPEC.md §20.4).

use crate::clock::DriverClock;
use crate::config::TransportConfig;
use crate::counters::Live;
use crate::error::{CloseCode, DialError, Refusal, close};
use crate::proof::{self, Expectations, Role};
use crate::tls::SERVER_NAME;
use bytes::Bytes;
use hearsay_proto::crypto::Signer;
use hearsay_proto::{CryptoProvider, MAX_FRAME_LEN, PeerId, PeerRecord};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Identifies one registered connection inside the node task (events from connections that are
/// no longer registered are recognised by it and ignored).
pub(crate) type ConnId = u64;

/// What handshake tasks need, shared.
pub(crate) struct HandshakeCtx {
    pub endpoint: quinn::Endpoint,
    pub signer: Box<dyn Signer>,
    pub crypto: Arc<dyn CryptoProvider>,
    pub me: PeerId,
    /// The node's current record (the node task publishes each re-issue).
    pub record: watch::Receiver<Arc<PeerRecord>>,
    pub clock: Arc<DriverClock>,
    pub cfg: TransportConfig,
    pub counters: Arc<Live>,
}

/// A connection whose peer proved its identity.
pub(crate) struct Proven {
    pub conn: quinn::Connection,
    pub send: quinn::SendStream,
    pub recv: quinn::RecvStream,
    pub peer: PeerId,
    /// This side's role: who dialled.
    pub role: Role,
    /// The address the peer sees this node at, if it is a reflector and said.
    pub observed: Option<SocketAddr>,
}

/// Where a connection attempt came from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Origin {
    /// The peer dialled us.
    Inbound,
    /// The core asked us to dial `peer`.
    Dial { peer: PeerId },
    /// A bootstrap peer given by the application.
    Bootstrap { addr: SocketAddr },
}

/// What connection tasks tell the node task.
pub(crate) enum NetEvent {
    Proven { proven: Proven, origin: Origin },
    DialFailed { origin: Origin, error: DialError },
    Frame { id: ConnId, frame: Bytes },
    Closed { id: ConnId },
}

fn count(counter: &std::sync::atomic::AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Counts a refusal under its reason.
pub(crate) fn count_refusal(counters: &Live, refusal: &Refusal) {
    count(match refusal {
        Refusal::Tls(_) | Refusal::Lost(_) => &counters.refused_tls,
        Refusal::Timeout => &counters.refused_proof_timeout,
        Refusal::MalformedProof(_) => &counters.refused_malformed_proof,
        Refusal::BadRecord(_) => &counters.refused_bad_record,
        Refusal::BadSignature => &counters.refused_bad_signature,
        Refusal::WrongPeer { .. } => &counters.refused_wrong_peer,
        Refusal::SelfConnection => &counters.refused_self,
        Refusal::Limit => &counters.refused_limit,
    });
}

/// Sends this side's proof and checks the peer's, on a fresh QUIC connection. On refusal the
/// connection is closed with the matching code.
pub(crate) async fn exchange_proofs(
    ctx: &HandshakeCtx,
    conn: quinn::Connection,
    role: Role,
    expected: Option<PeerId>,
) -> Result<Proven, Refusal> {
    let mut send = None;
    match exchange(ctx, &conn, role, expected, &mut send).await {
        Ok((recv, peer, observed)) => match send {
            Some(send) => Ok(Proven {
                conn,
                send,
                recv,
                peer,
                role,
                observed,
            }),
            None => Err(Refusal::Lost("no stream".into())),
        },
        Err(refusal) => {
            abort(&conn, send.as_mut(), refusal.code()).await;
            Err(refusal)
        }
    }
}

/// How long a closing connection waits for its sent stream data to be acknowledged.
const CLOSE_DRAIN: Duration = Duration::from_secs(1);

/// Closes `conn` with `code` once what `send` holds is acknowledged (at most [`CLOSE_DRAIN`]).
///
/// quinn holds a CONNECTION_CLOSE back while unsent stream data waits for congestion window, and
/// a closed connection processes no more acknowledgements: closing at once could mean the close
/// is never sent and the peer only sees the connection vanish. Finishing the stream and waiting
/// for its acknowledgement first lets the close, and its code, through.
pub(crate) async fn abort(
    conn: &quinn::Connection,
    send: Option<&mut quinn::SendStream>,
    code: CloseCode,
) {
    if let Some(send) = send
        && send.finish().is_ok()
    {
        let _ = tokio::time::timeout(CLOSE_DRAIN, send.stopped()).await;
    }
    close(conn, code);
}

async fn exchange(
    ctx: &HandshakeCtx,
    conn: &quinn::Connection,
    role: Role,
    expected: Option<PeerId>,
    send_slot: &mut Option<quinn::SendStream>,
) -> Result<(quinn::RecvStream, PeerId, Option<SocketAddr>), Refusal> {
    let binding = proof::channel_binding(conn)?;
    let lost = |e: &dyn std::fmt::Display| Refusal::Lost(e.to_string());
    let record = ctx.record.borrow().clone();
    let mut ours = proof::encode(&record, &*ctx.signer, &binding, role).map_err(|e| lost(&e))?;
    // The session info follows the proof: a reflector says where it sees the peer.
    ours.extend(proof::encode_info(
        ctx.cfg.reflector.then(|| conn.remote_address()),
    ));
    let exp = Expectations {
        crypto: &*ctx.crypto,
        now: ctx.clock.now(),
        me: ctx.me,
        expected,
    };
    let verify_theirs = |body: Vec<u8>| proof::verify(&body, &binding, role.other(), &exp);
    // The dialer proves itself first; the listener answers once the dialer's proof verified.
    // It costs no round trip (the dialer's proof travels with its TLS Finished), spares the
    // listener a signature for every refused connection, and leaves nothing unsent behind a
    // refusal, so the peer reliably learns its close code.
    let (recv, peer_record, observed) = match role {
        Role::Dialer => {
            let send = send_slot.insert(conn.open_uni().await.map_err(|e| lost(&e))?);
            send.write_all(&ours).await.map_err(|e| lost(&e))?;
            let mut recv = conn.accept_uni().await.map_err(|e| lost(&e))?;
            let record = verify_theirs(proof::read(&mut recv).await?)?;
            let observed = proof::read_info(&mut recv).await?;
            (recv, record, observed)
        }
        Role::Listener => {
            let mut recv = conn.accept_uni().await.map_err(|e| lost(&e))?;
            let record = verify_theirs(proof::read(&mut recv).await?)?;
            let observed = proof::read_info(&mut recv).await?;
            let send = send_slot.insert(conn.open_uni().await.map_err(|e| lost(&e))?);
            send.write_all(&ours).await.map_err(|e| lost(&e))?;
            (recv, record, observed)
        }
    };
    Ok((recv, peer_record.peer_id, observed))
}

/// Handles one incoming connection up to its verified proof.
pub(crate) async fn accept(
    ctx: Arc<HandshakeCtx>,
    incoming: quinn::Incoming,
    inbox: mpsc::Sender<NetEvent>,
) {
    let handshake = async {
        let connecting = incoming.accept().map_err(|e| Refusal::Tls(e.to_string()))?;
        let conn = connecting.await.map_err(|e| Refusal::Tls(e.to_string()))?;
        exchange_proofs(&ctx, conn, Role::Listener, None).await
    };
    match tokio::time::timeout(ctx.cfg.handshake_timeout, handshake).await {
        Ok(Ok(proven)) => {
            count(&ctx.counters.connections_accepted);
            let conn = proven.conn.clone();
            let event = NetEvent::Proven {
                proven,
                origin: Origin::Inbound,
            };
            if inbox.send(event).await.is_err() {
                close(&conn, CloseCode::Shutdown);
            }
        }
        Ok(Err(refusal)) => count_refusal(&ctx.counters, &refusal),
        // Dropping the half-made connection closes it.
        Err(_) => count_refusal(&ctx.counters, &Refusal::Timeout),
    }
}

/// Dials `addrs` in order until one proves the expected identity (any identity if `expected` is
/// `None`), each within the dial timeout, and reports the outcome to the node task.
pub(crate) async fn dial(
    ctx: Arc<HandshakeCtx>,
    addrs: Vec<SocketAddr>,
    expected: Option<PeerId>,
    origin: Origin,
    inbox: mpsc::Sender<NetEvent>,
) {
    let mut error = DialError::NoAddress;
    for addr in addrs {
        count(&ctx.counters.dial_attempts);
        match tokio::time::timeout(ctx.cfg.dial_timeout, dial_one(&ctx, addr, expected)).await {
            Ok(Ok(proven)) => {
                count(&ctx.counters.connections_dialled);
                let conn = proven.conn.clone();
                if inbox
                    .send(NetEvent::Proven { proven, origin })
                    .await
                    .is_err()
                {
                    close(&conn, CloseCode::Shutdown);
                }
                return;
            }
            Ok(Err(e)) => {
                if let DialError::Refused { refusal, .. } = &e {
                    count_refusal(&ctx.counters, refusal);
                }
                error = e;
            }
            Err(_) => error = DialError::Timeout { addr },
        }
    }
    let _ = inbox.send(NetEvent::DialFailed { origin, error }).await;
}

async fn dial_one(
    ctx: &HandshakeCtx,
    addr: SocketAddr,
    expected: Option<PeerId>,
) -> Result<Proven, DialError> {
    let connect_err = |e: &dyn std::fmt::Display| DialError::Connect {
        addr,
        error: e.to_string(),
    };
    let connecting = ctx
        .endpoint
        .connect(addr, SERVER_NAME)
        .map_err(|e| connect_err(&e))?;
    let conn = connecting.await.map_err(|e| match e {
        quinn::ConnectionError::TimedOut => DialError::Timeout { addr },
        e => connect_err(&e),
    })?;
    exchange_proofs(ctx, conn, Role::Dialer, expected)
        .await
        .map_err(|refusal| DialError::Refused { addr, refusal })
}

/// How much is queued for one peer; shared by the node task (which adds) and the writer (which
/// subtracts once a frame is handed to QUIC).
#[derive(Debug, Default)]
pub(crate) struct QueueGauge {
    frames: AtomicUsize,
    bytes: AtomicUsize,
}

/// The node task's end of a peer's send queue. Dropping it closes the connection gracefully
/// (what is queued is sent first); [`SendQueue::abort`] closes it at once.
pub(crate) struct SendQueue {
    tx: mpsc::UnboundedSender<Bytes>,
    gauge: Arc<QueueGauge>,
    max_frames: usize,
    max_bytes: usize,
    closer: mpsc::Sender<CloseCode>,
    conn: quinn::Connection,
}

impl SendQueue {
    /// Queues `frame`, or returns false if the queue is full (by frames or bytes).
    pub(crate) fn push(&self, frame: Bytes) -> bool {
        let frames = self.gauge.frames.load(Ordering::Acquire);
        let bytes = self.gauge.bytes.load(Ordering::Acquire);
        if frames >= self.max_frames || bytes.saturating_add(frame.len()) > self.max_bytes {
            return false;
        }
        self.gauge.frames.fetch_add(1, Ordering::AcqRel);
        self.gauge.bytes.fetch_add(frame.len(), Ordering::AcqRel);
        // If the writer is gone the connection is closing; its reader reports that.
        let _ = self.tx.send(frame);
        true
    }

    /// Whether the queue is at least half full (by frames or bytes): new publishes wait until it
    /// is not, rather than overflow it (SPEC.md §20.6).
    pub(crate) fn is_backlogged(&self) -> bool {
        let frames = self.gauge.frames.load(Ordering::Acquire);
        let bytes = self.gauge.bytes.load(Ordering::Acquire);
        frames.saturating_mul(2) >= self.max_frames || bytes.saturating_mul(2) >= self.max_bytes
    }

    /// Closes the connection at once with `code`, dropping what is queued.
    pub(crate) fn abort(&self, code: CloseCode) {
        request_abort(&self.closer, &self.conn, code);
    }
}

/// Asks the writer to reset its stream and close with `code` (or closes directly if the writer
/// has ended).
fn request_abort(closer: &mpsc::Sender<CloseCode>, conn: &quinn::Connection, code: CloseCode) {
    if closer.try_send(code).is_err() {
        close(conn, code);
    }
}

/// Starts the reader and writer of a registered connection.
pub(crate) fn start(
    id: ConnId,
    proven: Proven,
    cfg: &TransportConfig,
    counters: Arc<Live>,
    inbox: mpsc::Sender<NetEvent>,
    writers: &mut tokio::task::JoinSet<()>,
) -> SendQueue {
    let (tx, rx) = mpsc::unbounded_channel();
    let (closer, close_rx) = mpsc::channel(1);
    let gauge = Arc::new(QueueGauge::default());
    let queue = SendQueue {
        tx,
        gauge: gauge.clone(),
        max_frames: cfg.send_queue_frames,
        max_bytes: cfg.send_queue_bytes,
        closer: closer.clone(),
        conn: proven.conn.clone(),
    };
    tokio::spawn(read_frames(
        id,
        proven.conn.clone(),
        proven.recv,
        closer,
        cfg.frame_read_timeout,
        counters.clone(),
        inbox,
    ));
    writers.spawn(write_frames(
        proven.conn,
        proven.send,
        rx,
        close_rx,
        gauge,
        WriterTimeouts {
            stall: cfg.write_stall_timeout,
            flush: cfg.flush_timeout,
        },
        counters,
    ));
    queue
}

/// Why reading a frame stopped.
enum ReadStop {
    /// The peer finished its stream at a frame boundary: a graceful close.
    Finished,
    TooLarge,
    Timeout,
    /// The stream was reset or truncated mid-frame.
    Protocol,
    /// The connection is gone.
    Lost,
}

fn read_stop(e: quinn::ReadError) -> ReadStop {
    match e {
        quinn::ReadError::ConnectionLost(_) | quinn::ReadError::ClosedStream => ReadStop::Lost,
        _ => ReadStop::Protocol,
    }
}

fn read_exact_stop(e: quinn::ReadExactError) -> ReadStop {
    match e {
        quinn::ReadExactError::FinishedEarly(_) => ReadStop::Protocol,
        quinn::ReadExactError::ReadError(e) => read_stop(e),
    }
}

/// Reads one length-prefixed frame. The wait for its first byte is unbounded (an idle peer is
/// fine); the rest must arrive within `timeout`.
async fn read_frame(recv: &mut quinn::RecvStream, timeout: Duration) -> Result<Bytes, ReadStop> {
    let mut prefix = [0u8; 4];
    let first = match recv.read(&mut prefix).await {
        Ok(Some(n)) => n,
        Ok(None) => return Err(ReadStop::Finished),
        Err(e) => return Err(read_stop(e)),
    };
    let rest = async {
        if let Some(remaining) = prefix.get_mut(first..) {
            recv.read_exact(remaining).await.map_err(read_exact_stop)?;
        }
        let len = u32::from_be_bytes(prefix) as usize;
        if len > MAX_FRAME_LEN {
            return Err(ReadStop::TooLarge);
        }
        let mut frame = vec![0u8; len];
        recv.read_exact(&mut frame).await.map_err(read_exact_stop)?;
        Ok(Bytes::from(frame))
    };
    tokio::time::timeout(timeout, rest)
        .await
        .unwrap_or(Err(ReadStop::Timeout))
}

async fn read_frames(
    id: ConnId,
    conn: quinn::Connection,
    mut recv: quinn::RecvStream,
    closer: mpsc::Sender<CloseCode>,
    timeout: Duration,
    counters: Arc<Live>,
    inbox: mpsc::Sender<NetEvent>,
) {
    loop {
        match read_frame(&mut recv, timeout).await {
            Ok(frame) => {
                count(&counters.frames_in);
                counters
                    .bytes_in
                    .fetch_add(frame.len() as u64, Ordering::Relaxed);
                if inbox.send(NetEvent::Frame { id, frame }).await.is_err() {
                    close(&conn, CloseCode::Shutdown);
                    return;
                }
            }
            Err(stop) => {
                let code = match stop {
                    ReadStop::Finished => Some(CloseCode::Normal),
                    ReadStop::TooLarge => {
                        count(&counters.oversize_frames);
                        Some(CloseCode::FrameTooLarge)
                    }
                    ReadStop::Timeout => {
                        count(&counters.read_timeouts);
                        Some(CloseCode::ReadTimeout)
                    }
                    ReadStop::Protocol => {
                        count(&counters.protocol_violations);
                        Some(CloseCode::Protocol)
                    }
                    ReadStop::Lost => None,
                };
                if let Some(code) = code {
                    request_abort(&closer, &conn, code);
                }
                break;
            }
        }
    }
    let _ = inbox.send(NetEvent::Closed { id }).await;
}

struct WriterTimeouts {
    stall: Duration,
    flush: Duration,
}

async fn write_frames(
    conn: quinn::Connection,
    mut send: quinn::SendStream,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    mut close_rx: mpsc::Receiver<CloseCode>,
    gauge: Arc<QueueGauge>,
    timeouts: WriterTimeouts,
    counters: Arc<Live>,
) {
    loop {
        let frame = tokio::select! {
            biased;
            Some(code) = close_rx.recv() => return abort(&conn, Some(&mut send), code).await,
            frame = rx.recv() => frame,
        };
        // The node task dropped the queue: close gracefully, below.
        let Some(frame) = frame else { break };
        let len = frame.len();
        let mut chunks = [Bytes::copy_from_slice(&(len as u32).to_be_bytes()), frame];
        let written = tokio::select! {
            biased;
            Some(code) = close_rx.recv() => return abort(&conn, Some(&mut send), code).await,
            w = tokio::time::timeout(timeouts.stall, send.write_all_chunks(&mut chunks)) => w,
        };
        match written {
            Ok(Ok(())) => {
                gauge.frames.fetch_sub(1, Ordering::AcqRel);
                gauge.bytes.fetch_sub(len, Ordering::AcqRel);
                count(&counters.frames_out);
                counters.bytes_out.fetch_add(len as u64, Ordering::Relaxed);
            }
            // The connection is gone: its reader reports it.
            Ok(Err(_)) => return,
            Err(_) => {
                count(&counters.write_stalls);
                return abort(&conn, Some(&mut send), CloseCode::SlowPeer).await;
            }
        }
    }
    // Finish the stream; the peer closes the connection once it has read everything (or the
    // flush timeout ends the wait).
    if send.finish().is_ok() {
        let _ = tokio::time::timeout(timeouts.flush, conn.closed()).await;
    }
    close(&conn, CloseCode::Normal);
}
