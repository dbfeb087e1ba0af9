//! Groups (SPEC.md §17.9): `GroupOp::from_bytes` and `KeyPackage::from_bytes` on arbitrary bytes
//! (what decodes re-encodes to the same value), and a small group (insecure test provider)
//! driven by decoded operations as they are, decoded operations re-addressed to the group's
//! head and re-signed by a chosen identity (so their changes reach the state), proposals, and
//! key packages, intact or mutated.
//!
//! Checked: nothing panics; a refused operation changes nothing (version, head, members,
//! shards); an operation a proposal built is applied; the state's invariants hold after every
//! step (members within capacity, shards within `MAX_SHARDS` and the shard size, every member
//! in the shard it names, the admin count, at least one admin); an intact rekey package opens
//! for every member of its shard registered under its own key and gives the shard's key.
//!
//! Input: `[shard size, op...]`, op % 7:
//! 0 `[len(2), bytes]` an operation applied as decoded; 1 `[signer, flags, len(2), bytes]` an
//! operation re-addressed and re-signed; 2 `[kind, member, role, admin, rotate]` a proposal;
//! 3 `[member, len(2), bytes]` a key package checked and opened as decoded; 4 `[shard, member,
//! off(2), xor]` a rekey package, mutated unless `xor` is 0; 5 `[len(2), bytes]` a founding
//! operation re-signed by identity 1 (replaces the group if it is valid); 6 `[len, plaintext,
//! member]` a message sealed to the group, opened with the shard keys members obtained.
#![no_main]

mod common;

use chacha20::ChaCha8Rng;
use common::Input;
use hearsay_proto::testing::insecure_identity as identity;
use hearsay_proto::crypto::{CryptoProvider, InsecureTestProvider};
use hearsay_proto::privacy::group::{
    self, Change, Group, GroupId, GroupOp, KeyPackage, MAX_SHARDS, OpHash, Role, Shard, ShardKey,
    ShardSecret,
};
use hearsay_proto::{Identity, PeerId};
use libfuzzer_sys::fuzz_target;
use rand_core::SeedableRng;
use std::collections::BTreeMap;
use std::sync::OnceLock;

const P: &dyn CryptoProvider = &InsecureTestProvider;

fn people() -> &'static [Identity] {
    static PEOPLE: OnceLock<Vec<Identity>> = OnceLock::new();
    PEOPLE.get_or_init(|| (1..=7).map(identity).collect())
}

type Snapshot = (u64, OpHash, usize, Vec<(PeerId, group::Member)>, Vec<Shard>);

fn snapshot(g: &Group) -> Snapshot {
    (
        g.version(),
        g.head(),
        g.admins(),
        g.members().map(|(p, m)| (*p, m.clone())).collect(),
        g.shards().to_vec(),
    )
}

fn check(g: &Group) {
    assert!(g.len() <= g.capacity(), "members over capacity");
    assert!(g.shards().len() <= MAX_SHARDS, "shards over bound");
    assert!(g.admins() >= 1, "no admin left");
    let admins = g.members().filter(|(_, m)| m.role == Role::Admin).count();
    assert_eq!(admins, g.admins(), "admin count");
    let placed: usize = g.shards().iter().map(|s| s.members.len()).sum();
    assert_eq!(placed, g.len(), "members placed in shards");
    for s in g.shards() {
        assert!(s.members.len() <= g.shard_size(), "shard over its size");
    }
    for (p, m) in g.members() {
        let shard = g.shard(m.shard).expect("a member's shard exists");
        assert!(shard.members.contains(p), "member missing from its shard");
    }
}

struct Run {
    group: Group,
    rng: ChaCha8Rng,
    /// The current secret of each shard, as the admins who rotated or opened it hold it.
    secrets: BTreeMap<u32, ShardSecret>,
    /// Shard keys members opened from packages.
    keys: Vec<(usize, ShardKey)>,
}

impl Run {
    fn apply(&mut self, op: &GroupOp) -> bool {
        let before = snapshot(&self.group);
        let result = self.group.apply(P, op);
        if result.is_err() {
            assert_eq!(
                before,
                snapshot(&self.group),
                "a refused operation changed the state"
            );
        }
        check(&self.group);
        result.is_ok()
    }

    fn admin(&self, pick: u8) -> &'static Identity {
        let admins: Vec<&Identity> = people()
            .iter()
            .filter(|i| self.group.role(&i.peer_id()) == Some(Role::Admin))
            .collect();
        admins[usize::from(pick) % admins.len()]
    }
}

fn resign(op: &mut GroupOp, signer: &Identity) {
    op.signer = signer.peer_id();
    op.signer_key = signer.verifying_key().clone();
    let signed = op.signed_bytes().expect("encodes");
    op.signature = signer.signer().sign(&signed).expect("signs");
}

fn roundtrip_op(bytes: &[u8]) -> Option<GroupOp> {
    let op = GroupOp::from_bytes(bytes).ok()?;
    if let Ok(again) = op.to_bytes() {
        assert_eq!(GroupOp::from_bytes(&again).expect("re-decodes"), op);
    }
    Some(op)
}

fn roundtrip_package(bytes: &[u8]) -> Option<KeyPackage> {
    let p = KeyPackage::from_bytes(bytes).ok()?;
    if let Ok(again) = p.to_bytes() {
        assert_eq!(KeyPackage::from_bytes(&again).expect("re-decodes"), p);
    }
    Some(p)
}

fuzz_target!(|data: &[u8]| {
    // Both decoders on the whole input first (seeds are encoded operations and packages).
    let _ = roundtrip_op(data);
    let _ = roundtrip_package(data);

    let people = people();
    let mut input = Input::new(data);
    let size = 1 + usize::from(input.u8() % 3);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let (group, _, secret0) = Group::create(P, &people[0], size, &mut rng).expect("founds");
    let mut run = Run {
        group,
        rng,
        secrets: BTreeMap::from([(0, secret0)]),
        keys: Vec::new(),
    };
    check(&run.group);

    let mut steps = 0;
    while !input.is_empty() && steps < 64 {
        steps += 1;
        match input.u8() % 7 {
            0 => {
                if let Some(op) = roundtrip_op(input.chunk()) {
                    run.apply(&op);
                }
            }
            1 => {
                let signer = &people[usize::from(input.u8()) % people.len()];
                let flags = input.u8();
                let Some(mut op) = roundtrip_op(input.chunk()) else {
                    continue;
                };
                if flags & 1 == 0 {
                    op.group = run.group.id();
                }
                if flags & 2 == 0 {
                    op.version = run.group.version().wrapping_add(1);
                }
                if flags & 4 == 0 {
                    op.prev = run.group.head();
                }
                resign(&mut op, signer);
                run.apply(&op);
            }
            2 => {
                let kind = input.u8();
                let member = &people[usize::from(input.u8()) % people.len()];
                let role = match input.u8() % 3 {
                    0 => Role::Viewer,
                    1 => Role::Poster,
                    _ => Role::Admin,
                };
                let admin = run.admin(input.u8());
                let rotate = input.bool();
                let g = &run.group;
                let proposal = match kind % 4 {
                    0 => g.propose_add(
                        P,
                        admin,
                        member.peer_id(),
                        member.encapsulation_key().clone(),
                        role,
                        rotate,
                        &mut run.rng,
                    ),
                    1 => g.propose_remove(P, admin, member.peer_id(), &mut run.rng),
                    2 => g.propose_set_role(P, admin, member.peer_id(), role),
                    _ => {
                        let shard = u32::from(input.u8()) % (g.shards().len() as u32 + 1);
                        g.propose_rotate(P, admin, shard, &mut run.rng)
                    }
                };
                if let Ok(p) = proposal {
                    assert!(run.apply(&p.op), "a proposal the state built was refused");
                    if let Some(r) = p.rekey {
                        run.secrets.insert(r.shard, r.secret);
                    }
                }
            }
            3 => {
                let member = &people[usize::from(input.u8()) % people.len()];
                if let Some(p) = roundtrip_package(input.chunk()) {
                    let _ = run.group.check_package(P, &p);
                    let _ = p.verify(P);
                    let _ = p.open(member.decapsulator());
                    let _ = run.group.open_package(P, &p, member.decapsulator());
                }
            }
            4 => {
                let shard = u32::from(input.u8()) % run.group.shards().len() as u32;
                let who = usize::from(input.u8()) % people.len();
                let off = usize::from(input.u16());
                let xor = input.u8();
                let Some(secret) = run.secrets.get(&shard).cloned() else {
                    continue;
                };
                let admin = run.admin(0);
                let Ok(package) = run
                    .group
                    .rekey_package(P, admin, shard, &secret, &mut run.rng)
                else {
                    continue;
                };
                let mut bytes = package.to_bytes().expect("encodes");
                if let Some(b) = bytes.get_mut(off) {
                    *b ^= xor;
                }
                let Some(package) = roundtrip_package(&bytes) else {
                    continue;
                };
                let member = &people[who];
                let opened = run.group.open_package(P, &package, member.decapsulator());
                // Operations decoded from the input may register a person under a key that is
                // not theirs (a founding `founder_key`, an `Add`'s key): such a member cannot
                // open what is sealed to the registered key, and is not expected to.
                let in_shard = run.group.member(&member.peer_id()).is_some_and(|m| {
                    m.shard == shard && &m.encapsulation_key == member.encapsulation_key()
                });
                if xor == 0 || off >= bytes.len() {
                    assert_eq!(opened.is_ok(), in_shard, "an intact package: {opened:?}");
                }
                if let Ok(key) = opened {
                    let shard = run.group.shard(shard).expect("exists");
                    assert_eq!(
                        key.encapsulation_key(),
                        &shard.key,
                        "package gives the shard key"
                    );
                    if run.keys.len() < 16 {
                        run.keys.push((who, key));
                    }
                }
            }
            5 => {
                let Some(mut op) = roundtrip_op(input.chunk()) else {
                    continue;
                };
                let founder = &people[0];
                if let Change::Create { nonce, .. } = &op.change {
                    let nonce: [u8; 32] = nonce.as_bytes().try_into().expect("32 bytes");
                    op.group = GroupId::derive(&founder.peer_id(), &nonce);
                    op.version = 0;
                    op.prev = OpHash::GENESIS;
                }
                resign(&mut op, founder);
                if let Ok(g) = Group::from_genesis(P, &op) {
                    check(&g);
                    // The founder holds no secret for a key it did not derive: forget them.
                    run.group = g;
                    run.secrets.clear();
                    run.keys.clear();
                }
            }
            _ => {
                let n = usize::from(input.u8());
                let plaintext = input.bytes(n).to_vec();
                let pick = usize::from(input.u8());
                let Ok(sealed) = group::seal_to_group(P, &run.group, &plaintext, &mut run.rng)
                else {
                    continue;
                };
                if let Some((_, key)) = run.keys.get(pick % run.keys.len().max(1)) {
                    let current = run
                        .group
                        .shard(key.shard())
                        .is_some_and(|s| s.epoch == key.epoch() && !s.members.is_empty());
                    let opened = group::open_as_member(&sealed, key);
                    if current && key.group() == run.group.id() {
                        assert_eq!(
                            opened.expect("a current key opens").as_slice(),
                            &plaintext[..]
                        );
                    }
                }
            }
        }
    }
});
