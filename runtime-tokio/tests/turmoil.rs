//! The same driver in turmoil's simulated network: quinn runs over an `AsyncUdpSocket` built on
//! `turmoil::net::UdpSocket`, each node reads turmoil's virtual clock, and the simulation's
//! seed and epoch are pinned. Six hosts form an overlay; a partition splits it in two halves
//! that each keep broadcasting among themselves; after the heal, the halves merge again and
//! every node ends with every message.

mod common;

use bytes::Bytes;
use common::*;
use hearsay_proto::TopicId;
use hearsay_tokio::quinn::udp::{RecvMeta, Transmit};
use hearsay_tokio::quinn::{AsyncUdpSocket, UdpPoller};
use hearsay_tokio::{BootstrapPeer, NodeHandle, Received};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

type Readable = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

/// quinn's socket interface over a turmoil UDP socket.
struct TurmoilSocket {
    inner: Arc<turmoil::net::UdpSocket>,
    /// A pending wait for the next datagram (it owns the socket's receive lock while pending).
    readable: Mutex<Option<Readable>>,
}

impl std::fmt::Debug for TurmoilSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurmoilSocket")
            .field("local_addr", &self.inner.local_addr().ok())
            .finish()
    }
}

/// turmoil's UDP sockets have no send back-pressure: always writable.
#[derive(Debug)]
struct AlwaysWritable;

impl UdpPoller for AlwaysWritable {
    fn poll_writable(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl AsyncUdpSocket for TurmoilSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(AlwaysWritable)
    }

    fn try_send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        self.inner
            .try_send_to(transmit.contents, transmit.destination)
            .map(|_| ())
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let (Some(buf), Some(m)) = (bufs.first_mut(), meta.first_mut()) else {
            return Poll::Ready(Ok(0));
        };
        let mut readable = self.readable.lock().unwrap();
        loop {
            if readable.is_none() {
                match self.inner.try_recv_from(buf) {
                    Ok((len, addr)) => {
                        m.addr = addr;
                        m.len = len;
                        m.stride = len;
                        m.ecn = None;
                        m.dst_ip = None;
                        return Poll::Ready(Ok(1));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            let wait = readable.get_or_insert_with(|| {
                let socket = self.inner.clone();
                Box::pin(async move { socket.readable().await })
            });
            match wait.as_mut().poll(cx) {
                Poll::Ready(result) => {
                    *readable = None;
                    result?;
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn may_fragment(&self) -> bool {
        false
    }
}

const HOSTS: usize = 6;
const PORT: u16 = 4433;

fn name(i: usize) -> String {
    format!("n{i}")
}

type Seen = Arc<Mutex<HashMap<usize, HashSet<Bytes>>>>;

/// Every message in `payloads` has reached every host in `hosts` but its publisher.
fn delivered(seen: &Seen, hosts: &[usize], payloads: &[(Bytes, usize)]) -> bool {
    let seen = seen.lock().unwrap();
    hosts.iter().all(|h| {
        payloads
            .iter()
            .filter(|(_, from)| from != h)
            .all(|(p, _)| seen.get(h).is_some_and(|s| s.contains(p)))
    })
}

fn count_seen(seen: &Seen, hosts: &[usize], payloads: &[(Bytes, usize)]) -> usize {
    let seen = seen.lock().unwrap();
    hosts
        .iter()
        .map(|h| {
            payloads
                .iter()
                .filter(|(p, _)| seen.get(h).is_some_and(|s| s.contains(p)))
                .count()
        })
        .sum()
}

async fn publish(
    handles: &HashMap<usize, NodeHandle>,
    topic: TopicId,
    from: usize,
    tag: &str,
    n: usize,
) -> Vec<(Bytes, usize)> {
    let mut out = Vec::new();
    for k in 0..n {
        let p = Bytes::from(format!("{tag} {k} from n{from}"));
        handles[&from].publish(topic, p.clone()).await.unwrap();
        out.push((p, from));
    }
    out
}

async fn sim_wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = turmoil::elapsed();
    while !cond() {
        assert!(turmoil::elapsed() - start < limit, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn partition_and_heal_under_turmoil() {
    let mut sim = turmoil::Builder::new()
        .rng_seed(2026)
        .epoch(UNIX_EPOCH + Duration::from_secs(1_800_000_000))
        .simulation_duration(Duration::from_secs(240))
        .tick_duration(Duration::from_millis(1))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(5))
        .udp_capacity(4096)
        .build();

    let topic = TopicId::from_name("turmoil");
    let handles: Arc<Mutex<HashMap<usize, NodeHandle>>> = Arc::default();
    let seen: Seen = Arc::default();
    for i in 0..HOSTS {
        let (handles, seen) = (handles.clone(), seen.clone());
        sim.host(name(i), move || {
            let (handles, seen) = (handles.clone(), seen.clone());
            async move {
                let socket = turmoil::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, PORT)).await?;
                let socket = Arc::new(TurmoilSocket {
                    inner: Arc::new(socket),
                    readable: Mutex::new(None),
                });
                let me = SocketAddr::new(turmoil::lookup(name(i)), PORT);
                let mut b = builder(i as u64 + 1)
                    .socket(socket)
                    .advertise([me])
                    .clock(|| {
                        turmoil::since_epoch()
                            .map(|d| UNIX_EPOCH + d)
                            .unwrap_or(SystemTime::UNIX_EPOCH)
                    });
                if i > 0 {
                    let first = SocketAddr::new(turmoil::lookup(name(0)), PORT);
                    b = b.bootstrap([BootstrapPeer::pinned(identity(1).peer_id(), first)]);
                }
                let node = b.spawn()?;
                let mut sub = node.subscribe(topic).await?;
                handles.lock().unwrap().insert(i, node);
                while let Some(item) = sub.recv().await {
                    if let Received::Message(m) = item {
                        let fresh = seen.lock().unwrap().entry(i).or_default().insert(m.payload);
                        assert!(fresh, "n{i} got a message twice");
                    }
                }
                Ok(())
            }
        });
    }

    sim.client("test", async move {
        let all: Vec<usize> = (0..HOSTS).collect();
        let (left, right) = ([0usize, 1, 2], [3usize, 4, 5]);
        sim_wait_until(Duration::from_secs(10), "all nodes up", || {
            handles.lock().unwrap().len() == HOSTS
        })
        .await;
        let h = handles.lock().unwrap().clone();
        for i in &all {
            let n = h[i].clone();
            let start = turmoil::elapsed();
            while n
                .inspect(move |v| v.topic_neighbors(&topic).is_empty())
                .await
                .unwrap()
            {
                assert!(turmoil::elapsed() - start < Duration::from_secs(30));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        tokio::time::sleep(Duration::from_secs(3)).await;

        // Connected: everyone gets everything.
        let first = publish(&h, topic, 0, "before", 10).await;
        sim_wait_until(Duration::from_secs(20), "first round delivered", || {
            delivered(&seen, &all, &first)
        })
        .await;

        // Partition into halves; each half keeps broadcasting within itself.
        let ip = |i: &usize| turmoil::lookup(name(*i));
        for l in &left {
            for r in &right {
                turmoil::partition(ip(l), ip(r));
            }
        }
        let during_left = publish(&h, topic, 1, "during", 10).await;
        let during_right = publish(&h, topic, 4, "during", 10).await;
        sim_wait_until(
            Duration::from_secs(30),
            "each half delivers its own",
            || delivered(&seen, &left, &during_left) && delivered(&seen, &right, &during_right),
        )
        .await;
        // Long enough for the failure detector to give up on the far half.
        tokio::time::sleep(Duration::from_secs(15)).await;
        assert_eq!(count_seen(&seen, &right, &during_left), 0, "leaked across");
        assert_eq!(count_seen(&seen, &left, &during_right), 0, "leaked across");
        for l in &left {
            let peers = h[l].peers().await.unwrap();
            assert!(
                peers
                    .iter()
                    .all(|p| right.iter().all(|r| h[r].peer_id() != p.peer)),
                "n{l} still has a neighbour across the partition"
            );
        }

        println!(
            "partition checked at {:?}; n0 counters {:?}",
            turmoil::elapsed(),
            h[&0].counters()
        );
        // Heal: the halves find each other again and repair what they missed.
        for l in &left {
            for r in &right {
                turmoil::repair(ip(l), ip(r));
            }
        }
        let mut everything = first.clone();
        everything.extend(during_left.iter().cloned());
        everything.extend(during_right.iter().cloned());
        sim_wait_until(
            Duration::from_secs(120),
            "healed overlay delivers all",
            || delivered(&seen, &all, &everything),
        )
        .await;
        let after = publish(&h, topic, 5, "after", 10).await;
        sim_wait_until(Duration::from_secs(20), "after the heal", || {
            delivered(&seen, &all, &after)
        })
        .await;
        println!(
            "healed and complete at {:?} of simulated time",
            turmoil::elapsed()
        );
        Ok(())
    });

    sim.run().unwrap();
}
