use super::*;
use crate::Identity;
use crate::broadcast::message::MESSAGE_OVERHEAD;
use crate::crypto::Decapsulator;
use crate::crypto::KEM_SEED_LEN;
use crate::crypto::PureRustProvider;
use crate::crypto::signing_input;
use crate::wire::FixedBytes;
use crate::wire::codec;
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::vec;
use alloc::vec::Vec;
use chacha20::ChaCha8Rng;
use proptest::prelude::*;
use rand_core::SeedableRng;

const P: &PureRustProvider = &PureRustProvider;

fn identity(n: u32) -> Identity {
    crate::testing::identity_with(P, u64::from(n))
}

/// A member that never signs: a peer id and a decapsulation key, cheaper than an identity.
struct Reader {
    peer: PeerId,
    decapsulator: Box<dyn Decapsulator>,
}

impl Reader {
    fn new(tag: u8, n: u32) -> Self {
        let mut seed = [tag; KEM_SEED_LEN];
        seed[..4].copy_from_slice(&n.to_le_bytes());
        let decapsulator = P.decapsulator_from_seed(&seed);
        let peer = PeerId::from_verifying_key(&seed);
        Self { peer, decapsulator }
    }

    fn key(&self) -> EncapsulationKeyBytes {
        self.decapsulator.encapsulation_key().clone()
    }
}

/// The founder's side: the group state and every shard secret the founder generated.
struct Fixture {
    group: Group,
    founder: Identity,
    secrets: BTreeMap<ShardIndex, ShardSecret>,
    rng: ChaCha8Rng,
}

impl Fixture {
    fn new(shard_size: usize, seed: u8) -> Self {
        let founder = identity(0);
        let mut rng = ChaCha8Rng::from_seed([seed; 32]);
        let (group, _, secret) = Group::create(P, &founder, shard_size, &mut rng).unwrap();
        let mut secrets = BTreeMap::new();
        secrets.insert(0, secret);
        Self {
            group,
            founder,
            secrets,
            rng,
        }
    }

    fn commit(&mut self, proposal: Proposal) -> Applied {
        let applied = self.group.apply(P, &proposal.op).unwrap();
        if let Some(rekey) = proposal.rekey {
            assert_eq!(applied.rekeyed, Some(rekey.shard));
            assert_eq!(self.group.shard(rekey.shard).unwrap().epoch, rekey.epoch);
            self.secrets.insert(rekey.shard, rekey.secret);
        }
        applied
    }

    fn add(&mut self, peer: PeerId, key: EncapsulationKeyBytes, role: Role) -> Applied {
        let proposal = self
            .group
            .propose_add(P, &self.founder, peer, key, role, false, &mut self.rng)
            .unwrap();
        self.commit(proposal)
    }

    fn remove(&mut self, peer: PeerId) -> Applied {
        let proposal = self
            .group
            .propose_remove(P, &self.founder, peer, &mut self.rng)
            .unwrap();
        self.commit(proposal)
    }

    fn package(&mut self, shard: ShardIndex) -> KeyPackage {
        let secret = self.secrets.get(&shard).unwrap().clone();
        self.group
            .rekey_package(P, &self.founder, shard, &secret, &mut self.rng)
            .unwrap()
    }

    /// `peer`'s shard key, delivered in a welcome package and opened as `me`.
    fn shard_key(&mut self, peer: &PeerId, me: &dyn Decapsulator) -> ShardKey {
        let shard = self.group.member(peer).unwrap().shard;
        let secret = self.secrets.get(&shard).unwrap().clone();
        let package = self
            .group
            .welcome_package(P, &self.founder, peer, &secret, &mut self.rng)
            .unwrap();
        self.group.open_package(P, &package, me).unwrap()
    }
}

/// The next operation of `group` with `change`, signed by anyone (for refusal tests).
fn signed_by(group: &Group, signer: &Identity, change: Change) -> GroupOp {
    let mut op = GroupOp {
        group: group.id(),
        version: group.version() + 1,
        prev: group.head(),
        signer: signer.peer_id(),
        change,
        signer_key: signer.verifying_key().clone(),
        signature: placeholder_signature(),
    };
    op.sign(signer).unwrap();
    op
}

fn not_recipient<T: fmt::Debug>(result: Result<T, GroupError>) {
    assert!(
        matches!(
            result,
            Err(GroupError::Envelope(EnvelopeError::NotARecipient))
        ),
        "{result:?}"
    );
}

#[test]
fn limits_are_consistent_with_the_frame() {
    assert_eq!(PACKAGE_FIXED_LEN, 5400);
    assert_eq!(package_len(DEFAULT_SHARD_SIZE), 233_802);
    assert_eq!(MAX_SHARD_SIZE, 217);
    assert_eq!(package_len(217), 253_216);
    assert_eq!(package_len(218), 254_358);
    assert!(package_len(MAX_SHARD_SIZE) <= MAX_PACKAGE_LEN);
    assert!(package_len(MAX_SHARD_SIZE + 1) > MAX_PACKAGE_LEN);
    // A package is a message payload: with the message's overhead it is one frame.
    assert_eq!(MAX_PACKAGE_LEN + MESSAGE_OVERHEAD, MAX_FRAME_LEN);
    assert!(package_len(DEFAULT_SHARD_SIZE) + MESSAGE_OVERHEAD <= MAX_FRAME_LEN);
    // A message to a group of MAX_SHARDS shards still leaves room for a payload.
    assert_eq!(envelope::max_recipients(180_840), MAX_SHARDS);
    assert_eq!(envelope::max_recipients(180_841), MAX_SHARDS - 1);
    assert_eq!(MAX_SHARDS * DEFAULT_SHARD_SIZE, 12_800);
}

#[test]
fn founding_checks_the_genesis_operation() {
    let founder = identity(0);
    let mut rng = ChaCha8Rng::from_seed([1; 32]);
    let (group, op, secret) = Group::create(P, &founder, 4, &mut rng).unwrap();
    assert_eq!(group.version(), 0);
    assert_eq!(group.head(), op.hash().unwrap());
    assert_eq!(group.role(&founder.peer_id()), Some(Role::Admin));
    assert_eq!(group.shards().len(), 1);
    assert_eq!(
        group.shard(0).unwrap().key,
        secret.encapsulation_key(P, &group.id(), 0, 0)
    );
    let Change::Create { nonce, .. } = &op.change else {
        panic!("not a create")
    };
    let nonce = <[u8; 32]>::try_from(nonce.as_bytes()).unwrap();
    assert_eq!(group.id(), GroupId::derive(&founder.peer_id(), &nonce));

    // The encoded operation rebuilds the same state; a second copy is stale.
    let decoded = GroupOp::from_bytes(&op.to_bytes().unwrap()).unwrap();
    let mut again = Group::from_genesis(P, &decoded).unwrap();
    assert_eq!(again.head(), group.head());
    assert!(matches!(
        again.apply(P, &decoded),
        Err(GroupError::Stale { .. })
    ));

    // Version, predecessor, id and signer are all checked.
    let mut bad = op.clone();
    bad.version = 1;
    assert_eq!(
        Group::from_genesis(P, &bad).unwrap_err(),
        GroupError::BadGenesis
    );
    let mut bad = op.clone();
    bad.prev = OpHash::from_bytes([1; 32]);
    assert_eq!(
        Group::from_genesis(P, &bad).unwrap_err(),
        GroupError::BadGenesis
    );
    let mut bad = op.clone();
    bad.group = GroupId::from_bytes([2; 32]);
    assert_eq!(
        Group::from_genesis(P, &bad).unwrap_err(),
        GroupError::BadGenesis
    );
    let other = identity(1);
    let mut bad = op.clone();
    bad.signer_key = other.verifying_key().clone();
    assert_eq!(
        Group::from_genesis(P, &bad).unwrap_err(),
        GroupError::WrongKey
    );
    let mut bad = op.clone();
    if let Change::Create { shard_size, .. } = &mut bad.change {
        *shard_size = 5;
    }
    assert_eq!(
        Group::from_genesis(P, &bad).unwrap_err(),
        GroupError::BadSignature
    );
    for size in [0usize, MAX_SHARD_SIZE + 1] {
        assert_eq!(
            Group::create(P, &founder, size, &mut rng).unwrap_err(),
            GroupError::InvalidShardSize {
                size,
                max: MAX_SHARD_SIZE
            }
        );
    }
    let not_create = signed_by(
        &group,
        &founder,
        Change::SetRole {
            member: founder.peer_id(),
            role: Role::Admin,
        },
    );
    assert_eq!(
        Group::from_genesis(P, &not_create).unwrap_err(),
        GroupError::BadGenesis
    );
}

#[test]
fn signed_bytes_follow_the_spec_layout() {
    let mut fx = Fixture::new(2, 2);
    let reader = Reader::new(1, 1);
    let proposal = fx
        .group
        .propose_set_role(P, &fx.founder, fx.founder.peer_id(), Role::Admin)
        .unwrap();
    let op = proposal.op;
    let mut body = Vec::new();
    body.push(0x85); // [group, version, prev, signer, change]
    body.extend_from_slice(&[0x58, 0x20]);
    body.extend_from_slice(fx.group.id().as_bytes());
    body.push(0x01);
    body.extend_from_slice(&[0x58, 0x20]);
    body.extend_from_slice(fx.group.head().as_bytes());
    body.extend_from_slice(&[0x58, 0x20]);
    body.extend_from_slice(fx.founder.peer_id().as_bytes());
    body.extend_from_slice(&[0x82, 0x03, 0x82, 0x58, 0x20]); // [3, [member, role]]
    body.extend_from_slice(fx.founder.peer_id().as_bytes());
    body.push(0x02); // Admin
    assert_eq!(
        op.signed_bytes().unwrap(),
        signing_input(GROUP_OP_DOMAIN, &body)
    );
    fx.group.apply(P, &op).unwrap();
    assert_eq!(
        fx.group.head(),
        OpHash(blake3::derive_key(
            OP_HASH_CONTEXT,
            &signing_input(GROUP_OP_DOMAIN, &body)
        ))
    );

    // An add into a shard with room carries no shard key: a 3-element field array.
    let add = fx
        .group
        .propose_add(
            P,
            &fx.founder,
            reader.peer,
            reader.key(),
            Role::Viewer,
            false,
            &mut fx.rng,
        )
        .unwrap();
    assert!(add.rekey.is_none());
    let encoded = codec::to_vec(&add.op.change).unwrap();
    assert_eq!(&encoded[..5], &[0x82, 0x01, 0x83, 0x58, 0x20]);
    fx.commit(add);

    let package = fx.package(0);
    let mut body = Vec::new();
    body.extend_from_slice(fx.group.id().as_bytes());
    body.extend_from_slice(&0u32.to_be_bytes());
    body.extend_from_slice(&0u64.to_be_bytes());
    body.extend_from_slice(fx.founder.peer_id().as_bytes());
    body.extend_from_slice(blake3::hash(&package.content).as_bytes());
    body.extend_from_slice(blake3::hash(&codec::to_vec(&package.slots).unwrap()).as_bytes());
    assert_eq!(
        package.signed_bytes().unwrap(),
        signing_input(GROUP_KEY_DOMAIN, &body)
    );
    // Exact encoded length: package_len less the narrow shard and epoch (4 + 8 bytes).
    assert_eq!(package.to_bytes().unwrap().len(), package_len(2) - 12);

    // The two domains do not mix: an op signature never verifies as a package's.
    let mut forged = package.clone();
    forged.signature = op.signature.clone();
    assert_eq!(forged.verify(P), Err(GroupError::BadSignature));
}

#[test]
fn members_open_group_messages_and_outsiders_cannot() {
    let mut fx = Fixture::new(2, 3);
    let readers: Vec<Reader> = (0..4).map(|i| Reader::new(3, i)).collect();
    for r in &readers {
        fx.add(r.peer, r.key(), Role::Viewer);
    }
    // Founder and readers[0] in shard 0, then [1, 2] in shard 1, [3] in shard 2.
    let shards: Vec<Vec<PeerId>> = fx
        .group
        .shards()
        .iter()
        .map(|s| s.members.clone())
        .collect();
    assert_eq!(
        shards,
        vec![
            vec![fx.founder.peer_id(), readers[0].peer],
            vec![readers[1].peer, readers[2].peer],
            vec![readers[3].peer],
        ]
    );
    let keys: Vec<ShardKey> = readers
        .iter()
        .map(|r| fx.shard_key(&r.peer, &*r.decapsulator))
        .collect();
    let founder_key = {
        let founder = identity(0);
        fx.shard_key(&founder.peer_id(), founder.decapsulator())
    };
    let sealed = seal_to_group(P, &fx.group, b"to the group", &mut fx.rng).unwrap();
    assert_eq!(sealed.slots.len(), 3);
    for key in keys.iter().chain([&founder_key]) {
        assert_eq!(&**open_as_member(&sealed, key).unwrap(), b"to the group");
    }
    // An outsider has no slot, in the message or in any package.
    let outsider = Reader::new(4, 0);
    assert_eq!(
        envelope::open(&sealed, &*outsider.decapsulator),
        Err(EnvelopeError::NotARecipient)
    );
    for shard in 0..3 {
        let package = fx.package(shard);
        not_recipient(package.open(&*outsider.decapsulator));
        not_recipient(fx.group.open_package(P, &package, &*outsider.decapsulator));
    }
    // Nor does a member open another shard's package.
    let package = fx.package(2);
    not_recipient(package.open(&*readers[0].decapsulator));
    assert_eq!(fx.group.counters().not_recipient, 3);
}

#[test]
fn removal_rekeys_only_the_affected_shard_and_locks_the_removed_member_out() {
    let mut fx = Fixture::new(2, 4);
    let readers: Vec<Reader> = (0..4).map(|i| Reader::new(5, i)).collect();
    for r in &readers {
        fx.add(r.peer, r.key(), Role::Viewer);
    }
    let mut keys: Vec<ShardKey> = readers
        .iter()
        .map(|r| fx.shard_key(&r.peer, &*r.decapsulator))
        .collect();
    let before_sealed = seal_to_group(P, &fx.group, b"before", &mut fx.rng).unwrap();
    let old_package = fx.package(1);
    let before: Vec<Shard> = fx.group.shards().to_vec();

    // readers[1] is in shard 1 with readers[2].
    let applied = fx.remove(readers[1].peer);
    assert_eq!(applied.rekeyed, Some(1));
    assert!(fx.group.member(&readers[1].peer).is_none());
    let after = fx.group.shards();
    assert_eq!(after[0], before[0]);
    assert_eq!(after[2], before[2]);
    assert_eq!(after[1].epoch, before[1].epoch + 1);
    assert_ne!(after[1].key, before[1].key);
    assert_eq!(after[1].members, vec![readers[2].peer]);

    // The rekey reaches the remaining member of the shard only.
    let package = fx.package(1);
    assert_eq!(package.slots.len(), 1);
    not_recipient(package.open(&*readers[1].decapsulator));
    not_recipient(
        fx.group
            .open_package(P, &package, &*readers[1].decapsulator),
    );
    keys[2] = fx
        .group
        .open_package(P, &package, &*readers[2].decapsulator)
        .unwrap();
    assert_eq!(keys[2].epoch(), 1);

    let sealed = seal_to_group(P, &fx.group, b"after", &mut fx.rng).unwrap();
    for i in [0, 2, 3] {
        assert_eq!(&**open_as_member(&sealed, &keys[i]).unwrap(), b"after");
    }
    // The removed member's old shard key and its own key open nothing sealed afterwards.
    not_recipient(open_as_member(&sealed, &keys[1]));
    assert_eq!(
        envelope::open(&sealed, &*readers[1].decapsulator),
        Err(EnvelopeError::NotARecipient)
    );
    // What was sealed before stays readable with the key it held (it cannot be taken back).
    assert_eq!(
        &**open_as_member(&before_sealed, &keys[1]).unwrap(),
        b"before"
    );
    // The package of the old epoch is refused now.
    assert_eq!(
        fx.group.check_package(P, &old_package),
        Err(GroupError::EpochMismatch {
            current: 1,
            offered: 0
        })
    );
    // A removal leaves a hole; the next add fills the first shard with room.
    let newcomer = Reader::new(6, 0);
    let applied = fx.add(newcomer.peer, newcomer.key(), Role::Viewer);
    assert_eq!(applied.rekeyed, None);
    assert_eq!(fx.group.member(&newcomer.peer).unwrap().shard, 1);
    assert_eq!(fx.group.shards().len(), 3);
}

#[test]
fn rotating_on_add_keeps_earlier_messages_from_the_newcomer() {
    let mut fx = Fixture::new(4, 5);
    let a = Reader::new(7, 0);
    fx.add(a.peer, a.key(), Role::Viewer);
    let sealed = seal_to_group(P, &fx.group, b"early", &mut fx.rng).unwrap();

    // Without rotation the newcomer gets the current secret and reads earlier messages.
    let b = Reader::new(7, 1);
    fx.add(b.peer, b.key(), Role::Viewer);
    let key_b = fx.shard_key(&b.peer, &*b.decapsulator);
    assert_eq!(&**open_as_member(&sealed, &key_b).unwrap(), b"early");

    // With rotation it does not.
    let secret0 = fx.secrets.get(&0).unwrap().clone();
    let c = Reader::new(7, 2);
    let proposal = fx
        .group
        .propose_add(
            P,
            &fx.founder,
            c.peer,
            c.key(),
            Role::Viewer,
            true,
            &mut fx.rng,
        )
        .unwrap();
    assert_eq!(
        proposal.rekey.as_ref().map(|r| (r.shard, r.epoch)),
        Some((0, 1))
    );
    fx.commit(proposal);
    let package = fx.package(0);
    assert_eq!(package.slots.len(), 4);
    let key_c = fx
        .group
        .open_package(P, &package, &*c.decapsulator)
        .unwrap();
    not_recipient(open_as_member(&sealed, &key_c));
    let key_a = fx
        .group
        .open_package(P, &package, &*a.decapsulator)
        .unwrap();
    let later = seal_to_group(P, &fx.group, b"later", &mut fx.rng).unwrap();
    for key in [&key_a, &key_c] {
        assert_eq!(&**open_as_member(&later, key).unwrap(), b"later");
    }

    // A keyring opens messages of both epochs with the right key.
    let mut ring = Keyring::new(2);
    ring.insert(ShardKey::derive(P, fx.group.id(), 0, 0, &secret0));
    ring.insert(key_a);
    assert_eq!(&**ring.open(&sealed).unwrap(), b"early");
    assert_eq!(&**ring.open(&later).unwrap(), b"later");
    // A key of the same shard and epoch replaces; a third key evicts the oldest.
    ring.insert(key_c);
    assert_eq!(ring.len(), 2);
    assert_eq!(&**ring.open(&later).unwrap(), b"later");
    ring.insert(ShardKey::derive(
        P,
        fx.group.id(),
        1,
        0,
        &ShardSecret::from_bytes([9; 32]),
    ));
    assert_eq!(ring.len(), 2);
    not_recipient(ring.open(&sealed));
    assert_eq!(&**ring.open(&later).unwrap(), b"later");
}

#[test]
fn roles_are_enforced_and_refusals_counted() {
    let mut fx = Fixture::new(8, 6);
    let (poster, viewer, outsider) = (identity(10), identity(11), identity(12));
    fx.add(
        poster.peer_id(),
        poster.encapsulation_key().clone(),
        Role::Poster,
    );
    fx.add(
        viewer.peer_id(),
        viewer.encapsulation_key().clone(),
        Role::Viewer,
    );
    let target = Reader::new(8, 0);
    fx.add(target.peer, target.key(), Role::Viewer);
    let newcomer = Reader::new(8, 1);
    let version = fx.group.version();
    let add = Change::Add {
        member: newcomer.peer,
        key: newcomer.key(),
        role: Role::Viewer,
        shard_key: None,
    };
    let remove = Change::Remove {
        member: target.peer,
        shard_key: fx.group.shard(0).unwrap().key.clone(),
    };
    let rotate = Change::Rotate {
        shard: 0,
        shard_key: fx.group.shard(0).unwrap().key.clone(),
    };
    for change in [add.clone(), remove.clone(), rotate.clone()] {
        let op = signed_by(&fx.group, &viewer, change);
        assert_eq!(
            fx.group.apply(P, &op),
            Err(GroupError::Forbidden { role: Role::Viewer })
        );
    }
    let op = signed_by(&fx.group, &poster, add.clone());
    assert_eq!(
        fx.group.apply(P, &op),
        Err(GroupError::Forbidden { role: Role::Poster })
    );
    let op = signed_by(&fx.group, &outsider, add.clone());
    assert_eq!(fx.group.apply(P, &op), Err(GroupError::NotMember));
    // The proposal helpers refuse the same way, before signing.
    assert_eq!(
        fx.group
            .propose_add(
                P,
                &viewer,
                newcomer.peer,
                newcomer.key(),
                Role::Viewer,
                false,
                &mut fx.rng
            )
            .unwrap_err(),
        GroupError::Forbidden { role: Role::Viewer }
    );
    assert_eq!(
        fx.group
            .propose_rotate(P, &poster, 0, &mut fx.rng)
            .unwrap_err(),
        GroupError::Forbidden { role: Role::Poster }
    );

    // Versions: a replay is stale, a skipped version is a gap, a wrong predecessor a fork.
    let mut op = signed_by(&fx.group, &fx.founder, add.clone());
    op.version = version;
    op.sign(&fx.founder).unwrap();
    assert_eq!(
        fx.group.apply(P, &op),
        Err(GroupError::Stale {
            current: version,
            offered: version
        })
    );
    op.version = version + 2;
    op.sign(&fx.founder).unwrap();
    assert_eq!(
        fx.group.apply(P, &op),
        Err(GroupError::Gap {
            expected: version + 1,
            offered: version + 2
        })
    );
    let mut op = signed_by(&fx.group, &fx.founder, add.clone());
    op.prev = OpHash::from_bytes([7; 32]);
    op.sign(&fx.founder).unwrap();
    assert_eq!(fx.group.apply(P, &op), Err(GroupError::Fork));
    let mut op = signed_by(&fx.group, &fx.founder, add.clone());
    op.group = GroupId::from_bytes([7; 32]);
    assert_eq!(fx.group.apply(P, &op), Err(GroupError::WrongGroup));
    let mut op = signed_by(&fx.group, &fx.founder, add.clone());
    op.signer_key = poster.verifying_key().clone();
    assert_eq!(fx.group.apply(P, &op), Err(GroupError::WrongKey));
    let mut op = signed_by(&fx.group, &fx.founder, add.clone());
    op.signature = signed_by(&fx.group, &fx.founder, rotate.clone()).signature;
    assert_eq!(fx.group.apply(P, &op), Err(GroupError::BadSignature));
    assert_eq!(fx.group.version(), version);

    // The admin's own operation goes through, and a replay of it is stale.
    let op = signed_by(&fx.group, &fx.founder, add);
    fx.group.apply(P, &op).unwrap();
    assert!(matches!(
        fx.group.apply(P, &op),
        Err(GroupError::Stale { .. })
    ));

    let c = fx.group.counters();
    assert_eq!(c.forbidden, 4);
    assert_eq!(c.not_member, 1);
    assert_eq!(c.stale, 2);
    assert_eq!((c.gap, c.fork, c.wrong_group), (1, 1, 1));
    assert_eq!((c.wrong_key, c.bad_signature), (1, 1));
    assert_eq!(c.applied, 4);

    // Posting: posters and admins yes, viewers and outsiders no.
    assert!(fx.group.may_post(&fx.founder.peer_id()));
    assert!(fx.group.may_post(&poster.peer_id()));
    assert!(!fx.group.may_post(&viewer.peer_id()));
    assert!(!fx.group.may_post(&outsider.peer_id()));
    let op = fx
        .group
        .propose_set_role(P, &fx.founder, viewer.peer_id(), Role::Poster)
        .unwrap();
    fx.commit(op);
    assert!(fx.group.may_post(&viewer.peer_id()));
}

#[test]
fn membership_rules_are_typed_and_counted() {
    let mut fx = Fixture::new(1, 7);
    let founder = fx.founder.peer_id();
    // The founder alone: it can be neither removed nor demoted.
    let second = identity(20);
    assert_eq!(
        fx.group
            .propose_set_role(P, &fx.founder, founder, Role::Poster)
            .unwrap_err(),
        GroupError::LastAdmin
    );
    let op = signed_by(
        &fx.group,
        &fx.founder,
        Change::Remove {
            member: founder,
            shard_key: fx.group.shard(0).unwrap().key.clone(),
        },
    );
    assert_eq!(fx.group.apply(P, &op), Err(GroupError::LastAdmin));
    // With a second admin, an admin still may not remove itself, but may remove the other.
    fx.add(
        second.peer_id(),
        second.encapsulation_key().clone(),
        Role::Admin,
    );
    assert_eq!(fx.group.admins(), 2);
    assert_eq!(
        fx.group
            .propose_remove(P, &fx.founder, founder, &mut fx.rng)
            .unwrap_err(),
        GroupError::SelfRemoval
    );
    let op = signed_by(
        &fx.group,
        &fx.founder,
        Change::Remove {
            member: founder,
            shard_key: fx.group.shard(0).unwrap().key.clone(),
        },
    );
    assert_eq!(fx.group.apply(P, &op), Err(GroupError::SelfRemoval));
    assert_eq!(
        fx.group
            .propose_add(
                P,
                &fx.founder,
                second.peer_id(),
                second.encapsulation_key().clone(),
                Role::Viewer,
                false,
                &mut fx.rng
            )
            .unwrap_err(),
        GroupError::AlreadyMember
    );
    let stranger = Reader::new(9, 0);
    let op = signed_by(
        &fx.group,
        &fx.founder,
        Change::SetRole {
            member: stranger.peer,
            role: Role::Poster,
        },
    );
    assert_eq!(fx.group.apply(P, &op), Err(GroupError::UnknownMember));
    let op = signed_by(
        &fx.group,
        &fx.founder,
        Change::Rotate {
            shard: 9,
            shard_key: stranger.key(),
        },
    );
    assert_eq!(
        fx.group.apply(P, &op),
        Err(GroupError::UnknownShard { shard: 9 })
    );
    // Shard size 1: every add opens a shard, and must carry its key.
    let op = signed_by(
        &fx.group,
        &fx.founder,
        Change::Add {
            member: stranger.peer,
            key: stranger.key(),
            role: Role::Viewer,
            shard_key: None,
        },
    );
    assert_eq!(fx.group.apply(P, &op), Err(GroupError::MissingShardKey));
    // Keys that are not ML-KEM-768 keys (coefficients ≥ q) are refused.
    let junk = EncapsulationKeyBytes::from_array([0xff; crate::crypto::KEM_ENCAPSULATION_KEY_LEN]);
    let op = signed_by(
        &fx.group,
        &fx.founder,
        Change::Add {
            member: stranger.peer,
            key: junk.clone(),
            role: Role::Viewer,
            shard_key: Some(stranger.key()),
        },
    );
    assert_eq!(fx.group.apply(P, &op), Err(GroupError::InvalidKey));
    assert_eq!(
        fx.group
            .propose_add(
                P,
                &fx.founder,
                stranger.peer,
                junk,
                Role::Viewer,
                false,
                &mut fx.rng
            )
            .unwrap_err(),
        GroupError::InvalidKey
    );
    // The second admin removes the founder (demoting first is not needed).
    let proposal = fx
        .group
        .propose_remove(P, &second, founder, &mut fx.rng)
        .unwrap();
    fx.group.apply(P, &proposal.op).unwrap();
    assert_eq!(fx.group.admins(), 1);
    assert_eq!(fx.group.shard(0).unwrap().members, Vec::<PeerId>::new());
    // An empty shard gets no slot.
    let sealed = seal_to_group(P, &fx.group, b"x", &mut fx.rng).unwrap();
    assert_eq!(sealed.slots.len(), 1);
    let c = fx.group.counters();
    assert_eq!(
        (
            c.last_admin,
            c.self_removal,
            c.unknown_member,
            c.unknown_shard
        ),
        (1, 1, 1, 1)
    );
    assert_eq!((c.missing_shard_key, c.invalid_key), (1, 1));
}

#[test]
fn a_full_group_refuses_members() {
    // Shard size 1: the capacity is MAX_SHARDS members.
    let mut fx = Fixture::new(1, 8);
    assert_eq!(fx.group.capacity(), MAX_SHARDS);
    for i in 1..MAX_SHARDS as u32 {
        let r = Reader::new(10, i);
        fx.add(r.peer, r.key(), Role::Viewer);
    }
    assert_eq!(fx.group.len(), MAX_SHARDS);
    assert_eq!(fx.group.shards().len(), MAX_SHARDS);
    let r = Reader::new(10, 0);
    assert_eq!(
        fx.group
            .propose_add(
                P,
                &fx.founder,
                r.peer,
                r.key(),
                Role::Viewer,
                false,
                &mut fx.rng
            )
            .unwrap_err(),
        GroupError::TooManyMembers { max: MAX_SHARDS }
    );
    let op = signed_by(
        &fx.group,
        &fx.founder,
        Change::Add {
            member: r.peer,
            key: r.key(),
            role: Role::Viewer,
            shard_key: Some(r.key()),
        },
    );
    assert_eq!(
        fx.group.apply(P, &op),
        Err(GroupError::TooManyMembers { max: MAX_SHARDS })
    );
    assert_eq!(fx.group.counters().too_many_members, 1);
    // A message to the full group: one slot per shard.
    let sealed = seal_to_group(P, &fx.group, b"all", &mut fx.rng).unwrap();
    assert_eq!(sealed.slots.len(), MAX_SHARDS);
}

#[test]
fn shards_split_at_the_limit_and_a_full_rekey_fits_a_frame() {
    let mut fx = Fixture::new(DEFAULT_SHARD_SIZE, 9);
    let readers: Vec<Reader> = (0..DEFAULT_SHARD_SIZE as u32)
        .map(|i| Reader::new(11, i))
        .collect();
    for r in &readers[..DEFAULT_SHARD_SIZE - 1] {
        fx.add(r.peer, r.key(), Role::Viewer);
    }
    assert_eq!(fx.group.len(), 200);
    assert_eq!(fx.group.shards().len(), 1);
    assert_eq!(
        seal_to_group(P, &fx.group, b"", &mut fx.rng)
            .unwrap()
            .slots
            .len(),
        1
    );

    // The rekey of a full shard: 200 slots, within a message payload and a frame.
    let package = fx.package(0);
    assert_eq!(package.slots.len(), 200);
    let bytes = package.to_bytes().unwrap();
    assert_eq!(bytes.len(), package_len(200) - 12);
    assert!(bytes.len() + MESSAGE_OVERHEAD <= MAX_FRAME_LEN);
    assert_eq!(KeyPackage::from_bytes(&bytes).unwrap(), package);
    let last = &readers[DEFAULT_SHARD_SIZE - 2];
    let key_last = fx
        .group
        .open_package(P, &package, &*last.decapsulator)
        .unwrap();

    // The 201st member opens shard 1; a group message now carries two slots.
    let extra = &readers[DEFAULT_SHARD_SIZE - 1];
    let applied = fx.add(extra.peer, extra.key(), Role::Viewer);
    assert_eq!(applied.rekeyed, Some(1));
    assert_eq!(fx.group.len(), 201);
    assert_eq!(fx.group.shards().len(), 2);
    assert_eq!(fx.group.shard(0).unwrap().members.len(), 200);
    assert_eq!(fx.group.shard(1).unwrap().members, vec![extra.peer]);
    let key_extra = fx.shard_key(&extra.peer, &*extra.decapsulator);
    let sealed = seal_to_group(P, &fx.group, b"two shards", &mut fx.rng).unwrap();
    assert_eq!(sealed.slots.len(), 2);
    for key in [&key_last, &key_extra] {
        assert_eq!(&**open_as_member(&sealed, key).unwrap(), b"two shards");
    }
    // Removing the newcomer rekeys shard 1 only.
    let epoch0 = fx.group.shard(0).unwrap().epoch;
    fx.remove(extra.peer);
    assert_eq!(fx.group.shard(0).unwrap().epoch, epoch0);
    assert_eq!(fx.group.shard(1).unwrap().epoch, 1);
}

#[test]
fn package_checks_are_typed_and_counted() {
    let mut fx = Fixture::new(3, 10);
    let viewer = identity(30);
    fx.add(
        viewer.peer_id(),
        viewer.encapsulation_key().clone(),
        Role::Viewer,
    );
    let secret = fx.secrets.get(&0).unwrap().clone();
    // Only admins issue, and only with the secret that gives the shard's key.
    assert_eq!(
        fx.group
            .rekey_package(P, &viewer, 0, &secret, &mut fx.rng)
            .unwrap_err(),
        GroupError::Forbidden { role: Role::Viewer }
    );
    assert_eq!(
        fx.group
            .rekey_package(
                P,
                &fx.founder,
                0,
                &ShardSecret::from_bytes([1; 32]),
                &mut fx.rng
            )
            .unwrap_err(),
        GroupError::KeyMismatch
    );
    assert_eq!(
        fx.group
            .rekey_package(P, &fx.founder, 5, &secret, &mut fx.rng)
            .unwrap_err(),
        GroupError::UnknownShard { shard: 5 }
    );

    // A package forged with the wrong secret (by an admin, bypassing `issue`'s check).
    let good = fx.package(0);
    let wrong = envelope::seal(
        P,
        &[viewer.encapsulation_key().clone()],
        &[3; 32],
        &mut fx.rng,
    )
    .unwrap();
    let mut forged = good.clone();
    forged.content = FixedBytes::new(wrong.content.to_bytes()).unwrap();
    forged.slots = PackageSlots::new(wrong.slots.into_vec()).unwrap();
    forged.signature = fx
        .founder
        .signer()
        .sign(&forged.signed_bytes().unwrap())
        .unwrap();
    assert_eq!(fx.group.check_package(P, &forged), Ok(()));
    assert_eq!(
        fx.group
            .open_package(P, &forged, viewer.decapsulator())
            .unwrap_err(),
        GroupError::KeyMismatch
    );
    // Signed by a viewer, or by a non-member.
    let mut by_viewer = good.clone();
    by_viewer.signer = viewer.peer_id();
    by_viewer.signer_key = viewer.verifying_key().clone();
    by_viewer.signature = viewer
        .signer()
        .sign(&by_viewer.signed_bytes().unwrap())
        .unwrap();
    assert_eq!(
        fx.group.check_package(P, &by_viewer),
        Err(GroupError::Forbidden { role: Role::Viewer })
    );
    let outsider = identity(31);
    let mut by_outsider = by_viewer.clone();
    by_outsider.signer = outsider.peer_id();
    assert_eq!(
        fx.group.check_package(P, &by_outsider),
        Err(GroupError::NotMember)
    );
    let mut other_group = good.clone();
    other_group.group = GroupId::from_bytes([1; 32]);
    assert_eq!(
        fx.group.check_package(P, &other_group),
        Err(GroupError::WrongGroup)
    );
    let mut future = good.clone();
    future.epoch = 3;
    assert_eq!(
        fx.group.check_package(P, &future),
        Err(GroupError::EpochMismatch {
            current: 0,
            offered: 3
        })
    );
    let c = fx.group.counters();
    assert_eq!(c.packages_accepted, 1);
    assert_eq!((c.key_mismatch, c.forbidden, c.not_member), (1, 1, 1));
    assert_eq!((c.wrong_group, c.epoch_mismatch), (1, 1));
}

/// Byte positions to flip: every byte of the first 160 and every 7th after that.
fn flip_positions(len: usize) -> impl Iterator<Item = usize> {
    (0..len).filter(|i| *i < 160 || i % 7 == 0)
}

#[test]
fn any_flipped_bit_in_an_op_or_a_package_is_refused() {
    let mut fx = Fixture::new(2, 11);
    let (a, b) = (Reader::new(12, 0), Reader::new(12, 1));
    fx.add(a.peer, a.key(), Role::Poster);
    fx.add(b.peer, b.key(), Role::Viewer);
    let proposal = fx
        .group
        .propose_remove(P, &fx.founder, a.peer, &mut fx.rng)
        .unwrap();
    let bytes = proposal.op.to_bytes().unwrap();
    let mut tried = 0;
    for i in flip_positions(bytes.len()) {
        let mut flipped = bytes.clone();
        flipped[i] ^= 1 << (i % 8);
        if let Ok(op) = GroupOp::from_bytes(&flipped) {
            let mut group = fx.group.clone();
            assert!(group.apply(P, &op).is_err(), "flip at byte {i} was applied");
            assert_eq!(group.version(), fx.group.version());
            tried += 1;
        }
    }
    assert!(tried > 500, "{tried}");
    fx.commit(proposal);

    // Shard 0 now holds the founder alone; shard 1 holds b. Package shard 1.
    let package = fx.package(1);
    let bytes = package.to_bytes().unwrap();
    let mut group = fx.group.clone();
    group.open_package(P, &package, &*b.decapsulator).unwrap();
    let mut tried = 0;
    for i in flip_positions(bytes.len()) {
        let mut flipped = bytes.clone();
        flipped[i] ^= 1 << (i % 8);
        if let Ok(p) = KeyPackage::from_bytes(&flipped) {
            assert!(
                group.check_package(P, &p).is_err(),
                "flip at byte {i} accepted"
            );
            assert!(group.open_package(P, &p, &*b.decapsulator).is_err());
            tried += 1;
        }
    }
    assert!(tried > 500, "{tried}");
}

#[test]
fn decoders_refuse_oversized_and_malformed_input() {
    let mut fx = Fixture::new(2, 12);
    let a = Reader::new(13, 0);
    fx.add(a.peer, a.key(), Role::Viewer);
    let op = fx
        .group
        .propose_rotate(P, &fx.founder, 0, &mut fx.rng)
        .unwrap()
        .op;
    let bytes = op.to_bytes().unwrap();
    assert_eq!(bytes.len(), 6562);
    assert_eq!(GroupOp::from_bytes(&bytes).unwrap(), op);
    // The largest operation: an add carrying a shard key, at the widest version.
    let mut largest = signed_by(
        &fx.group,
        &fx.founder,
        Change::Add {
            member: a.peer,
            key: a.key(),
            role: Role::Admin,
            shard_key: Some(a.key()),
        },
    );
    assert_eq!(largest.to_bytes().unwrap().len(), 7783);
    largest.version = u64::MAX;
    assert_eq!(largest.to_bytes().unwrap().len(), 7791);
    assert!(largest.to_bytes().unwrap().len() <= MAX_OP_LEN);
    assert_eq!(
        GroupOp::from_bytes(&vec![0; MAX_OP_LEN + 1]).unwrap_err(),
        GroupError::TooLarge {
            len: MAX_OP_LEN + 1,
            max: MAX_OP_LEN
        }
    );
    for cut in [0, 1, 40, bytes.len() / 2, bytes.len() - 1] {
        assert!(matches!(
            GroupOp::from_bytes(&bytes[..cut]),
            Err(GroupError::Decode(_))
        ));
    }
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert_eq!(
        GroupOp::from_bytes(&trailing).unwrap_err(),
        GroupError::Decode(DecodeError::TrailingBytes { extra: 1 })
    );
    // An unknown role or change variant is malformed.
    let set_role = signed_by(
        &fx.group,
        &fx.founder,
        Change::SetRole {
            member: a.peer,
            role: Role::Poster,
        },
    );
    let mut bytes = set_role.to_bytes().unwrap();
    let role_at = bytes
        .windows(33)
        .position(|w| w[..32] == *a.peer.as_bytes() && w[32] == 0x01)
        .unwrap()
        + 32;
    bytes[role_at] = 0x07;
    assert!(matches!(
        GroupOp::from_bytes(&bytes),
        Err(GroupError::Decode(DecodeError::Malformed { .. }))
    ));

    // Packages: over-long input, a slot list over MAX_SHARD_SIZE on its header.
    assert!(matches!(
        KeyPackage::from_bytes(&vec![0; MAX_PACKAGE_LEN + 1]),
        Err(GroupError::TooLarge { .. })
    ));
    let package = fx.package(0);
    let bytes = package.to_bytes().unwrap();
    // The slot list header follows the 48-byte content: 0x82 (2 slots) → 0x98 0xda (218).
    let at = bytes.iter().position(|b| *b == 0x58).unwrap(); // group
    let content_at = at + 34 + 2; // shard 0, epoch 0
    assert_eq!(&bytes[content_at..content_at + 2], &[0x58, 0x30]);
    let slots_at = content_at + 2 + PACKAGE_CONTENT_LEN;
    assert_eq!(bytes[slots_at], 0x82);
    let mut long = bytes[..slots_at].to_vec();
    long.extend_from_slice(&[0x98, 218]);
    long.extend_from_slice(&bytes[slots_at + 1..]);
    assert_eq!(
        KeyPackage::from_bytes(&long).unwrap_err(),
        GroupError::Decode(DecodeError::ListTooLong {
            max: MAX_SHARD_SIZE
        })
    );
    for cut in [0, 10, bytes.len() / 3, bytes.len() - 1] {
        assert!(matches!(
            KeyPackage::from_bytes(&bytes[..cut]),
            Err(GroupError::Decode(_))
        ));
    }
    assert!(fx.group.counters().malformed == 0);
    assert!(!format!("{}", GroupError::LastAdmin).is_empty());
    assert!(format!("{:?}", ShardSecret::from_bytes([0xab; 32])).contains("<secret>"));
}

#[test]
fn same_seeds_give_the_same_bytes() {
    let run = || {
        let mut fx = Fixture::new(2, 13);
        let a = Reader::new(14, 0);
        let op = fx
            .group
            .propose_add(
                P,
                &fx.founder,
                a.peer,
                a.key(),
                Role::Viewer,
                true,
                &mut fx.rng,
            )
            .unwrap();
        let op_bytes = op.op.to_bytes().unwrap();
        fx.commit(op);
        let package = fx.package(0).to_bytes().unwrap();
        let sealed = seal_to_group(P, &fx.group, b"m", &mut fx.rng)
            .unwrap()
            .to_bytes()
            .unwrap();
        (op_bytes, package, sealed, fx.group.head())
    };
    assert_eq!(run(), run());
}

/// Members of `shard` and the decapsulation key of each.
fn decapsulator_of<'a>(
    peer: &PeerId,
    founder: &'a Identity,
    readers: &'a [Reader],
) -> &'a dyn Decapsulator {
    if *peer == founder.peer_id() {
        return founder.decapsulator();
    }
    &*readers
        .iter()
        .find(|r| r.peer == *peer)
        .unwrap()
        .decapsulator
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    #[test]
    fn removals_rekey_only_their_shard_and_lock_out_the_removed(
        seed in any::<u8>(),
        shard_size in 1usize..=3,
        n in 1u32..=7,
        removals in proptest::collection::vec(any::<proptest::sample::Index>(), 0..4),
    ) {
        let mut fx = Fixture::new(shard_size, seed);
        let readers: Vec<Reader> = (0..n).map(|i| Reader::new(seed ^ 0x5a, i)).collect();
        for r in &readers {
            fx.add(r.peer, r.key(), Role::Viewer);
        }
        // First fit in join order: full shards, then the rest.
        let total = n as usize + 1;
        prop_assert_eq!(fx.group.shards().len(), total.div_ceil(shard_size));
        for s in fx.group.shards() {
            prop_assert!(s.members.len() <= shard_size);
        }
        let founder = identity(0);
        let mut keys: BTreeMap<PeerId, ShardKey> = BTreeMap::new();
        for shard in 0..fx.group.shards().len() as ShardIndex {
            let package = fx.package(shard);
            for peer in fx.group.shard(shard).unwrap().members.clone() {
                let me = decapsulator_of(&peer, &founder, &readers);
                keys.insert(peer, fx.group.open_package(P, &package, me).unwrap());
            }
        }
        let mut present: Vec<usize> = (0..readers.len()).collect();
        let mut removed: Vec<usize> = Vec::new();
        for index in removals {
            if present.is_empty() {
                break;
            }
            let gone = present.remove(index.index(present.len()));
            let before = fx.group.shards().to_vec();
            let applied = fx.remove(readers[gone].peer);
            let shard = applied.rekeyed.unwrap();
            for (i, (old, new)) in before.iter().zip(fx.group.shards()).enumerate() {
                if i == shard as usize {
                    prop_assert_eq!(new.epoch, old.epoch + 1);
                    prop_assert_ne!(&new.key, &old.key);
                } else {
                    prop_assert_eq!(old, new);
                }
            }
            removed.push(gone);
            let members = fx.group.shard(shard).unwrap().members.clone();
            if !members.is_empty() {
                let package = fx.package(shard);
                for peer in members {
                    let me = decapsulator_of(&peer, &founder, &readers);
                    keys.insert(peer, fx.group.open_package(P, &package, me).unwrap());
                }
                for r in &removed {
                    prop_assert!(package.open(&*readers[*r].decapsulator).is_err());
                }
            }
        }
        let sealed = seal_to_group(P, &fx.group, b"proptest", &mut fx.rng).unwrap();
        let non_empty = fx.group.shards().iter().filter(|s| !s.members.is_empty()).count();
        prop_assert_eq!(sealed.slots.len(), non_empty);
        prop_assert_eq!(&**open_as_member(&sealed, &keys[&founder.peer_id()]).unwrap(), b"proptest");
        for i in &present {
            let key = &keys[&readers[*i].peer];
            prop_assert_eq!(&**open_as_member(&sealed, key).unwrap(), b"proptest");
        }
        for i in &removed {
            prop_assert!(open_as_member(&sealed, &keys[&readers[*i].peer]).is_err());
            prop_assert!(envelope::open(&sealed, &*readers[*i].decapsulator).is_err());
        }
    }
}
