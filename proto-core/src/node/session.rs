use super::*;
use crate::crypto::{SIGNATURE_LEN, SignatureBytes, signing_input};
use crate::frame::{
    Frame, Goodbye, GoodbyeReason, Hello, HelloAgain, PROTOCOL_VERSION, SessionMessage,
};
use crate::id::PeerId;
use crate::identity::record::{Addresses, PeerRecord, RecordError};
use crate::membership::hyparview::{self};
use crate::membership::swim::{self};
use crate::time::{TimeDelta, Timestamp};
use crate::wire::BoundedVec;
use alloc::vec::Vec;
use bytes::Bytes;
use rand_core::Rng;
use records::Offer;

impl Node {
    pub(super) fn on_frame(
        &mut self,
        now: Timestamp,
        from: PeerId,
        bytes: Bytes,
    ) -> Result<(), FrameError> {
        if !self.links.contains_key(&from) {
            // The driver still carries a connection this node let go of (it was told the
            // connection was gone while the peer's end stayed up). Closing it makes the two
            // ends agree: the peer hears a disconnect instead of probing into silence and
            // declaring a live node dead (SPEC.md §8.5). A dial of ours to the peer will bring
            // the connection back instead.
            if !self.dialing.contains_key(&from) {
                self.counters.unlinked_closed += 1;
                self.push_transmit(Transmit::Disconnect { peer: from });
            }
            return Err(FrameError::NotConnected);
        }
        let frame = match &self.config.interner {
            Some(interner) => Frame::decode_interned(&bytes, &**interner),
            None => Frame::decode_shared(&bytes),
        }
        .map_err(FrameError::Decode)?;
        if let Some(n) = self
            .counters
            .frames_in_by_kind
            .get_mut(frame.kind().number() as usize)
        {
            *n += 1;
        }
        let established = self.links.get(&from).is_some_and(|l| l.established);
        if established && !matches!(frame, Frame::Session(_)) {
            self.note_record_holder(now, from);
        }
        match frame {
            Frame::Session(SessionMessage::Hello(hello)) => self.on_hello(now, from, hello),
            Frame::Session(SessionMessage::Goodbye(goodbye)) => {
                self.on_goodbye(now, from, goodbye);
                Ok(())
            }
            Frame::Session(SessionMessage::HelloAgain(again)) => {
                self.on_hello_again(now, from, again)
            }
            Frame::Session(SessionMessage::HelloRequest) => {
                if let Some(link) = self.links.get_mut(&from)
                    && (link.hello_short || now >= link.hello_sent_at + HELLO_RESEND_INTERVAL)
                {
                    // A short Hello that did not match: the peer lacks the record after all.
                    link.hello_short = false;
                    link.hello_sent_at = now;
                    self.record_holders.remove(&from);
                    let hello = self.hello.clone();
                    self.send(from, hello);
                }
                Ok(())
            }
            Frame::Membership(_)
            | Frame::FailureDetection(_)
            | Frame::Topic(_)
            | Frame::Reconcile(_)
            | Frame::Private(_)
            | Frame::Discovery(_)
                if !established =>
            {
                // The peer is past the handshake, so its Hello was lost: ask for it again.
                if let Some(link) = self.links.get_mut(&from)
                    && link
                        .hello_requested_at
                        .is_none_or(|t| now >= t + HELLO_RESEND_INTERVAL)
                {
                    link.hello_requested_at = Some(now);
                    if let Ok(req) = Frame::Session(SessionMessage::HelloRequest).encode() {
                        self.send(from, req);
                    }
                }
                Err(FrameError::NotEstablished)
            }
            Frame::Membership(message) => {
                // A request that may evict a neighbour (JOIN, NEIGHBOR, PROBE) spares those the
                // failure detector suspects: their verdict is due. Only for those: beacons and
                // shuffles, most of these frames, evict nobody.
                if matches!(
                    message,
                    hyparview::Message::Join
                        | hyparview::Message::Neighbor { .. }
                        | hyparview::Message::Probe { .. }
                ) {
                    self.hyparview.spare(self.swim.suspects().copied());
                }
                if let Some(scores) =
                    self.scores_for(from, &message, self.hyparview.active().copied())
                {
                    let admit = self.scores.config().admit_threshold;
                    self.hyparview.note_scores(admit, scores);
                }
                let addresses = self.records.get(&from).map(|r| r.addresses.clone());
                let input = hyparview::Input::Message {
                    from,
                    addresses,
                    message,
                };
                self.hyparview.handle(now, input, &mut self.rng);
                Ok(())
            }
            Frame::FailureDetection(mut message) => {
                self.rtt_from_swim(now, from, &message);
                self.verify_alive_claims(&mut message);
                // The view goes only into the ACK of a PING that asks for it (once a minute per
                // member): not collected for every frame.
                let members: Vec<PeerId> = if matches!(
                    message,
                    swim::Message::Ping {
                        want_view: true,
                        ..
                    }
                ) {
                    self.member_refs.keys().copied().collect()
                } else {
                    Vec::new()
                };
                let input = swim::Input::Message {
                    from,
                    message,
                    active_view: &members,
                };
                self.swim.handle(now, input, &mut self.rng);
                Ok(())
            }
            Frame::Topic(message) => {
                self.on_topic_frame(now, from, message);
                Ok(())
            }
            Frame::Reconcile(message) => {
                self.on_reconcile_frame(now, from, message);
                Ok(())
            }
            Frame::Discovery(message) => {
                self.on_discovery_frame(now, from, message);
                Ok(())
            }
            Frame::Private(message) => {
                self.on_private_frame(now, from, message);
                Ok(())
            }
        }
    }

    pub(super) fn on_hello(
        &mut self,
        now: Timestamp,
        from: PeerId,
        hello: Hello,
    ) -> Result<(), FrameError> {
        speaks(hello.version)?;
        if hello.record.peer_id != from {
            return Err(FrameError::PeerMismatch);
        }
        self.accept_record(hello.record, now)?;
        self.establish(now, from);
        Ok(())
    }

    /// The short Hello: the peer names a record; if it is the one held, the link is up without
    /// another verification; otherwise ask for the full Hello.
    fn on_hello_again(
        &mut self,
        now: Timestamp,
        from: PeerId,
        again: HelloAgain,
    ) -> Result<(), FrameError> {
        speaks(again.version)?;
        let held = self
            .records
            .get(&from)
            .is_some_and(|r| again.names(r) && r.expires_at > now);
        if held {
            self.counters.short_hellos_accepted += 1;
            self.establish(now, from);
        } else if let Some(link) = self.links.get_mut(&from)
            && !link.established
        {
            link.hello_requested_at = Some(now);
            if let Ok(req) = Frame::Session(SessionMessage::HelloRequest).encode() {
                self.send(from, req);
            }
        }
        Ok(())
    }

    /// Sends this node's Hello on a new link: the short form to a peer known to hold the
    /// current record, the full one otherwise.
    pub(super) fn send_hello(&mut self, peer: PeerId) {
        let holds = self
            .record_holders
            .get(&peer)
            .is_some_and(|(issued, _)| *issued == self.record.issued_at);
        let short = holds
            .then(|| {
                Frame::Session(SessionMessage::HelloAgain(HelloAgain::naming(&self.record)))
                    .encode()
                    .ok()
            })
            .flatten();
        if let Some(link) = self.links.get_mut(&peer) {
            link.hello_short = short.is_some();
        }
        let hello = short.unwrap_or_else(|| self.hello.clone());
        self.send(peer, hello);
    }

    /// A protocol frame from `from` on an established link: it holds this node's record.
    fn note_record_holder(&mut self, now: Timestamp, from: PeerId) {
        let Some(link) = self.links.get_mut(&from) else {
            return;
        };
        if link.confirmed {
            return;
        }
        link.confirmed = true;
        let cap = self.config.max_known_records.max(1);
        if !self.record_holders.contains_key(&from)
            && self.record_holders.len() >= cap
            && let Some(oldest) = self
                .record_holders
                .iter()
                .min_by_key(|(p, (_, at))| (*at, **p))
                .map(|(p, _)| *p)
        {
            self.record_holders.remove(&oldest);
        }
        self.record_holders
            .insert(from, (self.record.issued_at, now));
    }

    /// Marks the link to `from` established (its Hello verified) and tells every overlay.
    fn establish(&mut self, now: Timestamp, from: PeerId) {
        if let Some(link) = self.links.get_mut(&from)
            && !link.established
        {
            link.established = true;
            link.last_used = now;
            let group = link.group;
            let close = now + self.config.unused_link_timeout;
            self.note_link_deadline(close);
            if let Some(group) = group {
                self.hyparview.note_group(from, group);
            }
            let input = hyparview::Input::LinkUp { peer: from };
            self.hyparview.handle(now, input, &mut self.rng);
            if let Some(record) = self.records.get(&from) {
                let info = PeerInfo {
                    peer: from,
                    addresses: record.addresses.clone(),
                };
                self.hyparview.offer_passive(info);
            }
            self.topics_link_up(now, from);
            self.private_link_up(now, from);
        }
    }

    pub(super) fn on_goodbye(&mut self, now: Timestamp, from: PeerId, goodbye: Goodbye) {
        match goodbye.reason {
            GoodbyeReason::Leaving => self.peer_left(now, from),
            GoodbyeReason::Replaced => {
                let input = hyparview::Input::Message {
                    from,
                    addresses: None,
                    message: hyparview::Message::Disconnect,
                };
                self.hyparview.handle(now, input, &mut self.rng);
            }
        }
        self.links.remove(&from);
        self.link_down(now, from);
        self.push_transmit(Transmit::Disconnect { peer: from });
    }

    /// Drops ALIVE claims whose signature does not verify under the claimant's known key.
    pub(super) fn verify_alive_claims(&mut self, message: &mut swim::Message) {
        let updates = match message {
            swim::Message::Ping { updates, .. } | swim::Message::Ack { updates, .. } => updates,
            _ => return,
        };
        let mut kept = Vec::with_capacity(updates.len());
        for g in core::mem::take(updates).into_vec() {
            if let swim::Update::Alive {
                peer,
                incarnation,
                signature,
            } = &g.update
            {
                let ok = self.records.get(peer).is_some_and(|r| {
                    let msg =
                        signing_input(swim::ALIVE_DOMAIN, &swim::alive_body(peer, *incarnation));
                    self.config.crypto.verify(&r.verifying_key, &msg, signature)
                });
                if !ok {
                    self.counters.rejected_alive += 1;
                    continue;
                }
            }
            kept.push(g);
        }
        *updates = BoundedVec::new(kept).unwrap_or_default();
    }

    /// An overlay wants a connection to `peer`. Returns true if an established one exists
    /// (another overlay may have kept it up after this one let it go): the caller reports it
    /// up at once, since no dial will. Otherwise asks the driver to dial, unless a connection
    /// is being made; its handshake reaches every overlay.
    pub(super) fn link_ready_or_dial(
        &mut self,
        now: Timestamp,
        peer: PeerId,
        addresses: Addresses,
    ) -> bool {
        if self.links.get(&peer).is_some_and(|l| l.established) {
            return true;
        }
        self.dial(now, peer, addresses);
        false
    }

    /// Asks the driver for a connection to `peer`, unless one exists or is being made, at the
    /// addresses [`Node::dial_addresses`] keeps of `addresses`. When it keeps none of several,
    /// the dial is not made (counted, `dials_refused`): the overlay's attempt times out as a
    /// failed dial would.
    pub(super) fn dial(&mut self, now: Timestamp, peer: PeerId, addresses: Addresses) {
        if !self.links.contains_key(&peer) && !self.dialing.contains_key(&peer) {
            let offered = addresses.len();
            let addresses = self.dial_addresses(now, &peer, addresses);
            if addresses.is_empty() && offered > 0 {
                self.counters.dials_refused += 1;
                return;
            }
            self.dialing.insert(peer, now + self.config.dial_timeout);
            self.push_transmit(Transmit::Connect { peer, addresses });
        }
    }

    /// Sends a protocol frame over an established link (dropped if there is none).
    pub(super) fn send_frame(&mut self, to: PeerId, frame: &Frame) {
        if !self.links.get(&to).is_some_and(|l| l.established) {
            return;
        }
        if let Ok(bytes) = frame.encode() {
            self.send(to, bytes);
        }
    }

    /// Closes established connections no protocol has used for `unused_link_timeout`. A
    /// connection that an overlay still wants counts as used now: it is looked at again a
    /// timeout later, not on every wake-up (a node in many topics holds many such links). So
    /// do the wanted ones that would be due within half a timeout: their next looks then fall
    /// together, one wake-up per timeout for all of them rather than one each (a node with a
    /// dozen wanted links woke 1.2 times a second for them before).
    pub(super) fn close_unused_links(&mut self, now: Timestamp) {
        let unused = self.config.unused_link_timeout;
        let horizon = now + unused.div(2);
        let quiet: Vec<PeerId> = self
            .links
            .iter()
            .filter(|(_, l)| l.established && horizon >= l.last_used + unused)
            .map(|(p, _)| *p)
            .collect();
        let mut idle = Vec::new();
        for peer in quiet {
            if self.link_wanted(&peer) {
                if let Some(l) = self.links.get_mut(&peer) {
                    l.last_used = now;
                }
            } else if self
                .links
                .get(&peer)
                .is_some_and(|l| now >= l.last_used + unused)
            {
                idle.push(peer);
            }
        }
        for peer in idle {
            self.links.remove(&peer);
            self.counters.unused_links_closed += 1;
            self.push_transmit(Transmit::Disconnect { peer });
            self.link_down(now, peer);
        }
        self.drain_protocols(now);
    }

    /// Caches a record the caller already verified (a FOAF answer checked hop by hop, an
    /// announcement's author record checked by the validator): no second signature check.
    pub(super) fn cache_verified_record(&mut self, record: PeerRecord) {
        if matches!(self.records.offer(&record), Offer::New) {
            let links = &self.links;
            self.records.insert(record, |p| links.contains_key(p));
        }
    }

    /// Verifies a record the node has not seen (a byte-identical record already held is not
    /// verified again) and caches it; a stale or expired one is refused.
    pub(super) fn accept_record(
        &mut self,
        record: PeerRecord,
        now: Timestamp,
    ) -> Result<(), FrameError> {
        match self.records.offer(&record) {
            Offer::Stale => Err(FrameError::StaleRecord),
            Offer::Known if record.expires_at > now => Ok(()),
            Offer::Known => Err(FrameError::BadRecord(RecordError::Expired)),
            Offer::New => {
                self.counters.records_verified += 1;
                record
                    .verify(&*self.config.crypto, now)
                    .map_err(FrameError::BadRecord)?;
                let links = &self.links;
                self.records.insert(record, |p| links.contains_key(p));
                Ok(())
            }
        }
    }

    pub(super) fn reissue_record(
        &mut self,
        now: Timestamp,
        addresses: Addresses,
    ) -> Result<(), NodeError> {
        let record = PeerRecord::issue(&self.identity, addresses, now, self.config.record_lifetime)
            .map_err(NodeError::Record)?;
        self.adopt_record(record)?;
        self.presence_record();
        let hello = self.hello.clone();
        let neighbors: Vec<PeerId> = self
            .links
            .iter()
            .filter(|(_, l)| l.established)
            .map(|(p, _)| *p)
            .collect();
        for peer in neighbors {
            self.send(peer, hello.clone());
        }
        Ok(())
    }

    /// Makes `record` the node's own: caches its `Hello` and schedules its refresh at three
    /// quarters of its lifetime, less a random jitter of up to a sixteenth, so that nodes started
    /// together do not all re-sign at once.
    pub(super) fn adopt_record(&mut self, mut record: PeerRecord) -> Result<(), NodeError> {
        let hello = Frame::Session(SessionMessage::Hello(Hello {
            version: PROTOCOL_VERSION,
            record: record.clone(),
        }))
        .encode()
        .map_err(|e| NodeError::Record(RecordError::Encode(e)))?;
        // The signature ends the Hello frame (the record's last field, in the frame's last
        // field): keep one copy of it, the frame's, instead of two.
        let tail = hello
            .len()
            .checked_sub(SIGNATURE_LEN)
            .map(|at| hello.slice(at..));
        if let Some(tail) = tail
            && tail == record.signature.as_bytes()
            && let Ok(signature) = SignatureBytes::new(tail)
        {
            record.signature = signature;
        }
        let lifetime = record.expires_at.saturating_since(record.issued_at);
        let jitter_span = (lifetime.as_micros() / 16).max(1);
        let jitter = TimeDelta::from_micros(self.rng.next_u64() % jitter_span);
        self.refresh_at = record
            .issued_at
            .saturating_add(TimeDelta::from_micros(lifetime.as_micros() / 4 * 3))
            .saturating_sub(jitter);
        self.record = record;
        self.hello = hello;
        Ok(())
    }
}

/// Refuses a Hello (full or short) of a protocol version this build does not speak.
fn speaks(version: u16) -> Result<(), FrameError> {
    if version == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(FrameError::UnsupportedVersion { version })
    }
}
