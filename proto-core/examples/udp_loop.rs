//! Embedding hearsay in a hand-written event loop: several `Node`s over plain
//! `std::net::UdpSocket`, one thread each, no async runtime.
//!
//! ```text
//! cargo run --release -p hearsay-proto --example udp_loop -- [NODES] [SECONDS]
//! ```
//!
//! Node 0 starts alone; every other node joins through it. Each loop turn does what any driver
//! does: drain `poll_transmit` (send frames, dial, hang up), drain `poll_event`, sleep on the
//! socket until `poll_timeout`, feed what arrived to `handle_*`. At the end every node leaves
//! gracefully and a table shows what happened. The exit code is non-zero if the overlay did not
//! form.
//!
//! UDP has no connections, so this example adds a four-message shim (CONNECT, ACCEPT, FRAME,
//! CLOSE, each datagram prefixed with the sender's PeerId). It is a demonstration of the
//! embedding surface, not a secure transport: the claimed PeerId is not proven by a handshake
//! here (the tokio/QUIC runtime does that), although the core still refuses a `Hello` whose signed
//! record names another peer. Frames above one datagram are dropped with a message.

use bytes::Bytes;
use hearsay_proto::node::{Command, Contact, Event, Transmit};
use hearsay_proto::{Address, Config, Identity, IdentitySeeds, Node, PeerId, Timestamp, TopicId};
use rand_core::SeedableRng;
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const CONNECT: u8 = 1;
const ACCEPT: u8 = 2;
const FRAME: u8 = 3;
const CLOSE: u8 = 4;
const MAX_DATAGRAM: usize = 65_000;

/// Wall-clock microseconds, never going backwards (the core's time contract).
struct Clock(Timestamp);

impl Clock {
    fn now(&mut self) -> Timestamp {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        self.0 = self.0.max(Timestamp::from_micros(micros));
        self.0
    }
}

#[derive(Default, Clone)]
struct Report {
    peer: String,
    peak_neighbours: usize,
    left_seen: usize,
    ups: usize,
    delivered: usize,
    frames_sent: u64,
    frames_received: u64,
    bytes_sent: u64,
    rejected: u64,
}

struct Driver {
    index: usize,
    node: Node,
    socket: UdpSocket,
    me: PeerId,
    addrs: HashMap<PeerId, SocketAddr>,
    clock: Clock,
    started: Instant,
    ups: usize,
    downs: usize,
    peak: usize,
    left_seen: usize,
    delivered: usize,
    published: bool,
}

impl Driver {
    fn log(&self, what: impl std::fmt::Display) {
        println!(
            "[{:>6.3}s] node {} {}",
            self.started.elapsed().as_secs_f64(),
            self.index,
            what
        );
    }

    fn datagram(&self, kind: u8, body: &[u8]) -> Vec<u8> {
        let mut d = Vec::with_capacity(33 + body.len());
        d.push(kind);
        d.extend_from_slice(self.me.as_bytes());
        d.extend_from_slice(body);
        d
    }

    fn send_to(&self, peer: PeerId, kind: u8, body: &[u8]) {
        let Some(addr) = self.addrs.get(&peer) else {
            return;
        };
        if body.len() + 33 > MAX_DATAGRAM {
            self.log(format_args!(
                "drops a {}-byte frame: larger than one datagram",
                body.len()
            ));
            return;
        }
        let _ = self.socket.send_to(&self.datagram(kind, body), addr);
    }

    /// Carries out everything the node asked for, and reports its events.
    fn drain(&mut self) {
        while let Some(t) = self.node.poll_transmit() {
            match t {
                Transmit::Send { to, frame } => self.send_to(to, FRAME, &frame),
                Transmit::Connect { peer, addresses } => {
                    let parsed = addresses
                        .iter()
                        .find_map(|a| std::str::from_utf8(a).ok()?.parse::<SocketAddr>().ok());
                    match parsed {
                        Some(addr) => {
                            self.addrs.insert(peer, addr);
                            self.send_to(peer, CONNECT, &[]);
                        }
                        None => {
                            let now = self.clock.now();
                            self.node.handle_disconnected(now, peer);
                        }
                    }
                }
                Transmit::Disconnect { peer } => {
                    self.send_to(peer, CLOSE, &[]);
                    let now = self.clock.now();
                    self.node.handle_disconnected(now, peer);
                }
                other => self.log(format_args!("ignores {other:?}")),
            }
        }
        while let Some(e) = self.node.poll_event() {
            match &e {
                Event::NeighborUp { peer } => {
                    self.ups += 1;
                    self.peak = self.peak.max(self.node.inspect().neighbors().count());
                    self.log(format_args!("neighbour up   {}", peer.short()));
                }
                Event::NeighborDown { peer, reason } => {
                    self.downs += 1;
                    if *reason == hearsay_proto::DownReason::Left {
                        self.left_seen += 1;
                    }
                    self.log(format_args!("neighbour down {} ({reason:?})", peer.short()));
                }
                Event::Delivered {
                    payload,
                    author,
                    hops,
                    ..
                } => {
                    self.delivered += 1;
                    self.log(format_args!(
                        "delivered {:?} by {} ({hops} hop{})",
                        String::from_utf8_lossy(payload),
                        author.short(),
                        if *hops == 1 { "" } else { "s" }
                    ));
                }
                other => self.log(format_args!("event {other:?}")),
            }
        }
    }

    /// Waits for one datagram or the next timer, whichever comes first, and feeds the node.
    fn turn(&mut self, buf: &mut [u8]) {
        let now = self.clock.now();
        let wait = match self.node.poll_timeout() {
            Some(t) if t <= now => {
                self.node.handle_timeout(now);
                return;
            }
            Some(t) => Duration::from_micros((t - now).as_micros()).min(Duration::from_millis(50)),
            None => Duration::from_millis(50),
        };
        self.socket
            .set_read_timeout(Some(wait.max(Duration::from_micros(100))))
            .ok();
        let Ok((len, from_addr)) = self.socket.recv_from(buf) else {
            return;
        };
        let Some((&kind, rest)) = buf[..len].split_first() else {
            return;
        };
        if rest.len() < 32 {
            return;
        }
        let (id, body) = rest.split_at(32);
        let from = PeerId::from_bytes(id.try_into().expect("32 bytes"));
        let now = self.clock.now();
        match kind {
            CONNECT => {
                self.addrs.insert(from, from_addr);
                self.send_to(from, ACCEPT, &[]);
                self.node.handle_connected(now, from);
            }
            ACCEPT => self.node.handle_connected(now, from),
            FRAME => {
                if let Err(e) = self
                    .node
                    .handle_frame(now, from, Bytes::copy_from_slice(body))
                {
                    self.log(format_args!("refused a frame from {}: {e}", from.short()));
                }
            }
            CLOSE => self.node.handle_disconnected(now, from),
            _ => {}
        }
    }

    fn run(mut self, bootstrap: Option<Contact>, run_for: Duration, done: Arc<Mutex<Vec<Report>>>) {
        if let Some(contact) = bootstrap {
            let now = self.clock.now();
            self.node
                .handle_command(
                    now,
                    Command::Join {
                        contacts: vec![contact],
                    },
                )
                .expect("join");
        }
        let topic = TopicId::from_name("demo");
        let now = self.clock.now();
        self.node.subscribe(now, topic).expect("subscribe");
        let mut buf = vec![0u8; MAX_DATAGRAM + 64];
        while self.started.elapsed() < run_for {
            // Halfway through, every node publishes one signed message on the topic.
            if !self.published && self.started.elapsed() >= run_for / 2 {
                self.published = true;
                let now = self.clock.now();
                let text = format!("hello from node {}", self.index);
                self.node
                    .publish(now, topic, text.as_bytes())
                    .expect("publish");
            }
            self.drain();
            self.turn(&mut buf);
        }
        let c = self.node.inspect().counters().clone();
        let now = self.clock.now();
        self.node
            .handle_command(now, Command::Leave)
            .expect("leave");
        self.drain();
        done.lock().unwrap().push(Report {
            peer: self.me.short().to_string(),
            peak_neighbours: self.peak,
            left_seen: self.left_seen,
            ups: self.ups,
            delivered: self.delivered,
            frames_sent: c.frames_sent,
            frames_received: c.frames_received,
            bytes_sent: c.bytes_sent,
            rejected: c.frames_rejected(),
        });
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let nodes: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(4)
        .clamp(2, 64);
    let seconds: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2.0);
    let run_for = Duration::from_secs_f64(seconds);
    println!(
        "hearsay udp_loop: {nodes} nodes on 127.0.0.1, {seconds:.1} s, one thread and one UDP socket each\n"
    );

    let started = Instant::now();
    let mut drivers = Vec::new();
    for index in 0..nodes {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let local = socket.local_addr().expect("local addr");
        let config = Config {
            addresses: vec![Address::new(local.to_string().into_bytes()).expect("address fits")],
            ..Config::default()
        };
        // Seeded for a reproducible demo; a real node draws its seeds from the OS.
        let mut rng = chacha20::ChaCha8Rng::seed_from_u64(index as u64);
        let identity = Identity::from_seeds(&*config.crypto, IdentitySeeds::generate(&mut rng));
        let mut clock = Clock(Timestamp::EPOCH);
        let node = Node::new(config, identity, index as u64, clock.now()).expect("node");
        let me = node.peer_id();
        drivers.push(Driver {
            index,
            node,
            socket,
            me,
            addrs: HashMap::new(),
            clock,
            started,
            ups: 0,
            downs: 0,
            peak: 0,
            left_seen: 0,
            delivered: 0,
            published: false,
        });
    }
    let first = Contact {
        peer: drivers[0].me,
        addresses: drivers[0].node.inspect().record().addresses.to_vec(),
    };
    let reports = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = drivers
        .into_iter()
        .map(|d| {
            let contact = (d.index > 0).then(|| first.clone());
            let reports = reports.clone();
            // Stagger the end so that node 0 sees the others leave.
            let run = if d.index == 0 {
                run_for + Duration::from_millis(300)
            } else {
                run_for
            };
            std::thread::spawn(move || d.run(contact, run, reports))
        })
        .collect();
    for h in handles {
        h.join().expect("node thread");
    }
    let mut reports = reports.lock().unwrap().clone();
    reports.sort_by(|a, b| a.peer.cmp(&b.peer));
    println!(
        "\n{:<10} {:>10} {:>4} {:>6} {:>10} {:>8} {:>8} {:>10} {:>9}",
        "peer", "peak nbrs", "up", "left", "delivered", "sent", "received", "bytes out", "refused"
    );
    for r in &reports {
        println!(
            "{:<10} {:>10} {:>4} {:>6} {:>10} {:>8} {:>8} {:>10} {:>9}",
            r.peer,
            r.peak_neighbours,
            r.ups,
            r.left_seen,
            r.delivered,
            r.frames_sent,
            r.frames_received,
            r.bytes_sent,
            r.rejected
        );
    }
    let hub = reports.iter().map(|r| r.peak_neighbours).max().unwrap_or(0);
    let goodbyes = reports.iter().map(|r| r.left_seen).max().unwrap_or(0);
    let formed =
        hub == nodes - 1 && goodbyes == nodes - 1 && reports.iter().all(|r| r.peak_neighbours >= 1);
    let broadcast = reports.iter().all(|r| r.delivered == nodes - 1);
    if formed && broadcast {
        println!(
            "\noverlay formed: every node completed a signed handshake with node 0, received every \
             other node's signed message on topic \"demo\" exactly once, and left gracefully"
        );
    } else {
        println!(
            "\noverlay did NOT form: hub saw {hub} of {} neighbours and {goodbyes} goodbyes; \
             deliveries per node {:?} (want {} each)",
            nodes - 1,
            reports.iter().map(|r| r.delivered).collect::<Vec<_>>(),
            nodes - 1
        );
        std::process::exit(1);
    }
}
