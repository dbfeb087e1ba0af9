use super::*;
use crate::crypto::{CryptoProvider, Decapsulator, EncapsulationKeyBytes};
use crate::id::PeerId;
use crate::identity::Identity;
use crate::wire::codec::FixedBytes;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;
use rand_core::CryptoRng;

/// A member as the group state knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// What it may do.
    pub role: Role,
    /// The shard it was placed in (it stays there until removed).
    pub shard: ShardIndex,
    /// Its encapsulation key: key packages for its shard are sealed to it.
    pub encapsulation_key: EncapsulationKeyBytes,
}

/// One shard of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// 0 when the shard is opened; +1 at every rotation.
    pub epoch: u64,
    /// The shard's encapsulation key at `epoch` (what [`seal_to_group`] seals to).
    pub key: EncapsulationKeyBytes,
    /// Its members in the order they joined (at most the group's shard size).
    pub members: Vec<PeerId>,
}

/// A shard rotated by a proposed operation: its new epoch and secret, which the proposing admin
/// keeps and hands out in key packages once the operation is applied.
#[derive(Debug, Clone)]
pub struct Rekey {
    /// The shard.
    pub shard: ShardIndex,
    /// Its epoch once the operation is applied.
    pub epoch: u64,
    /// Its secret at that epoch.
    pub secret: ShardSecret,
}

/// A signed operation built by an admin, and the new shard secret if it rotates a shard.
#[derive(Debug, Clone)]
pub struct Proposal {
    /// The operation, to be applied (by the admin too) and sent to the members.
    pub op: GroupOp,
    /// The rotated shard, if any.
    pub rekey: Option<Rekey>,
}

/// What [`Group::apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// The group's version now.
    pub version: u64,
    /// The shard whose key changed (rotated or opened), if any: its members need a key package.
    pub rekeyed: Option<ShardIndex>,
}

/// A validated operation, before its signature is checked and it is committed.
pub(super) enum Plan {
    Add {
        member: PeerId,
        key: EncapsulationKeyBytes,
        role: Role,
        shard: usize,
        new_shard: bool,
        shard_key: Option<EncapsulationKeyBytes>,
    },
    Remove {
        member: PeerId,
        shard: usize,
        shard_key: EncapsulationKeyBytes,
    },
    SetRole {
        member: PeerId,
        role: Role,
    },
    Rotate {
        shard: usize,
        shard_key: EncapsulationKeyBytes,
    },
}

/// A group's state: the result of applying its operation log in order. Bounded: at most
/// [`MAX_MEMBERS`] members in at most [`MAX_SHARDS`] shards of at most `shard_size` each.
#[derive(Clone)]
pub struct Group {
    pub(super) id: GroupId,
    pub(super) version: u64,
    pub(super) head: OpHash,
    pub(super) shard_size: usize,
    pub(super) members: BTreeMap<PeerId, Member>,
    pub(super) shards: Vec<Shard>,
    pub(super) admins: usize,
    pub(super) counters: Counters,
}

impl Group {
    /// Founds a group: draws a nonce and shard 0's secret from `rng`, signs the `Create` as
    /// `founder`, and returns the state, the operation (to send to members) and shard 0's secret
    /// at epoch 0 (which the founder keeps, to welcome members into shard 0).
    pub fn create<R: CryptoRng + ?Sized>(
        provider: &dyn CryptoProvider,
        founder: &Identity,
        shard_size: usize,
        rng: &mut R,
    ) -> Result<(Group, GroupOp, ShardSecret), GroupError> {
        check_shard_size(shard_size)?;
        let mut nonce = [0u8; 32];
        rng.fill_bytes(&mut nonce);
        let id = GroupId::derive(&founder.peer_id(), &nonce);
        let secret = ShardSecret::generate(rng);
        let mut op = GroupOp {
            group: id,
            version: 0,
            prev: OpHash::GENESIS,
            signer: founder.peer_id(),
            change: Change::Create {
                nonce: FixedBytes::from_array(nonce),
                shard_size: u32::try_from(shard_size).unwrap_or(u32::MAX),
                founder_key: founder.encapsulation_key().clone(),
                shard_key: secret.encapsulation_key(provider, &id, 0, 0),
            },
            signer_key: founder.verifying_key().clone(),
            signature: placeholder_signature(),
        };
        op.sign(founder)?;
        let group = Group::from_genesis(provider, &op)?;
        Ok((group, op, secret))
    }

    /// Builds the state from the founding operation, checking it: a `Create` at version 0 with
    /// the genesis predecessor, an id that its signer and nonce give, a shard size in range,
    /// the signer's key and signature, valid encapsulation keys.
    pub fn from_genesis(provider: &dyn CryptoProvider, op: &GroupOp) -> Result<Group, GroupError> {
        let Change::Create {
            nonce,
            shard_size,
            founder_key,
            shard_key,
        } = &op.change
        else {
            return Err(GroupError::BadGenesis);
        };
        let nonce = <[u8; 32]>::try_from(nonce.as_bytes()).map_err(|_| GroupError::BadGenesis)?;
        if op.version != 0
            || op.prev != OpHash::GENESIS
            || op.group != GroupId::derive(&op.signer, &nonce)
        {
            return Err(GroupError::BadGenesis);
        }
        let shard_size = usize::try_from(*shard_size).unwrap_or(usize::MAX);
        check_shard_size(shard_size)?;
        let signed = op.signed_bytes()?;
        op.verify_signed(provider, &signed)?;
        check_key(provider, founder_key)?;
        check_key(provider, shard_key)?;
        let mut members = BTreeMap::new();
        members.insert(
            op.signer,
            Member {
                role: Role::Admin,
                shard: 0,
                encapsulation_key: founder_key.clone(),
            },
        );
        Ok(Group {
            id: op.group,
            version: 0,
            head: OpHash::of_signed_bytes(&signed),
            shard_size,
            members,
            shards: alloc::vec![Shard {
                epoch: 0,
                key: shard_key.clone(),
                members: alloc::vec![op.signer],
            }],
            admins: 1,
            counters: Counters::default(),
        })
    }

    /// The group's id.
    pub fn id(&self) -> GroupId {
        self.id
    }

    /// The version of the last operation applied.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The hash of the last operation applied (the next operation's `prev`).
    pub fn head(&self) -> OpHash {
        self.head
    }

    /// The most members per shard.
    pub fn shard_size(&self) -> usize {
        self.shard_size
    }

    /// The most members this group can have: `min(MAX_MEMBERS, MAX_SHARDS × shard_size)`.
    pub fn capacity(&self) -> usize {
        MAX_MEMBERS.min(MAX_SHARDS.saturating_mul(self.shard_size))
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the group has no members (never: it always keeps an admin).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The number of admins (at least one).
    pub fn admins(&self) -> usize {
        self.admins
    }

    /// A member's entry.
    pub fn member(&self, peer: &PeerId) -> Option<&Member> {
        self.members.get(peer)
    }

    /// The members, in `PeerId` order.
    pub fn members(&self) -> impl Iterator<Item = (&PeerId, &Member)> {
        self.members.iter()
    }

    /// A member's role.
    pub fn role(&self, peer: &PeerId) -> Option<Role> {
        self.members.get(peer).map(|m| m.role)
    }

    /// Whether a message authored by `peer` is accepted as a post to the group: it is a member
    /// with role poster or admin. Receivers drop group posts for which this is false.
    pub fn may_post(&self, peer: &PeerId) -> bool {
        self.role(peer).is_some_and(Role::may_post)
    }

    /// The shards, in index order.
    pub fn shards(&self) -> &[Shard] {
        &self.shards
    }

    /// One shard.
    pub fn shard(&self, shard: ShardIndex) -> Option<&Shard> {
        usize::try_from(shard).ok().and_then(|i| self.shards.get(i))
    }

    /// The encapsulation keys a message to the group is sealed to: one per non-empty shard,
    /// in shard order.
    pub fn sealing_keys(&self) -> Vec<EncapsulationKeyBytes> {
        self.shards
            .iter()
            .filter(|s| !s.members.is_empty())
            .map(|s| s.key.clone())
            .collect()
    }

    /// What this state accepted and refused.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Applies `op`, the next operation of the log. Checks, cheapest first: the group, the
    /// version (`Stale`, `Gap`), the predecessor (`Fork`), that the signer is an admin
    /// (`NotMember`, `Forbidden`) whose key is given (`WrongKey`), the change against the state
    /// (`UnknownMember`, `AlreadyMember`, `LastAdmin`, `SelfRemoval`, `TooManyMembers`,
    /// `UnknownShard`, `MissingShardKey`), the signature (`BadSignature`), the keys it carries
    /// (`InvalidKey`). A refused operation changes nothing but the counters.
    pub fn apply(
        &mut self,
        provider: &dyn CryptoProvider,
        op: &GroupOp,
    ) -> Result<Applied, GroupError> {
        let result = self.apply_inner(provider, op);
        match &result {
            Ok(_) => self.counters.applied = self.counters.applied.saturating_add(1),
            Err(e) => self.counters.count(e),
        }
        result
    }

    pub(super) fn apply_inner(
        &mut self,
        provider: &dyn CryptoProvider,
        op: &GroupOp,
    ) -> Result<Applied, GroupError> {
        let plan = self.plan(op)?;
        let signed = op.signed_bytes()?;
        op.verify_signed(provider, &signed)?;
        check_plan_keys(provider, &plan)?;
        let rekeyed = self.commit(plan)?;
        self.version = op.version;
        self.head = OpHash::of_signed_bytes(&signed);
        Ok(Applied {
            version: self.version,
            rekeyed,
        })
    }

    /// The signer must be a member with role admin.
    pub(super) fn check_admin(&self, signer: &PeerId) -> Result<(), GroupError> {
        let member = self.members.get(signer).ok_or(GroupError::NotMember)?;
        if member.role != Role::Admin {
            return Err(GroupError::Forbidden { role: member.role });
        }
        Ok(())
    }

    /// Where the next member goes: the first shard with room, else a new shard.
    pub(super) fn target_shard(&self) -> Option<(usize, bool)> {
        match self
            .shards
            .iter()
            .position(|s| s.members.len() < self.shard_size)
        {
            Some(i) => Some((i, false)),
            None if self.shards.len() < MAX_SHARDS => Some((self.shards.len(), true)),
            None => None,
        }
    }

    pub(super) fn shard_at(&self, shard: ShardIndex) -> Result<(usize, &Shard), GroupError> {
        usize::try_from(shard)
            .ok()
            .and_then(|i| self.shards.get(i).map(|s| (i, s)))
            .ok_or(GroupError::UnknownShard { shard })
    }

    /// Every check of `op` against the state except its signature and key validity.
    pub(super) fn plan(&self, op: &GroupOp) -> Result<Plan, GroupError> {
        if op.group != self.id {
            return Err(GroupError::WrongGroup);
        }
        if op.version <= self.version {
            return Err(GroupError::Stale {
                current: self.version,
                offered: op.version,
            });
        }
        let expected = self.version.saturating_add(1);
        if op.version != expected {
            return Err(GroupError::Gap {
                expected,
                offered: op.version,
            });
        }
        if op.prev != self.head {
            return Err(GroupError::Fork);
        }
        self.check_admin(&op.signer)?;
        if PeerId::from_verifying_key(&op.signer_key) != op.signer {
            return Err(GroupError::WrongKey);
        }
        match &op.change {
            Change::Create { .. } => Err(GroupError::BadGenesis),
            Change::Add {
                member,
                key,
                role,
                shard_key,
            } => {
                if self.members.contains_key(member) {
                    return Err(GroupError::AlreadyMember);
                }
                let full = GroupError::TooManyMembers {
                    max: self.capacity(),
                };
                if self.members.len() >= self.capacity() {
                    return Err(full);
                }
                let (shard, new_shard) = self.target_shard().ok_or(full)?;
                if new_shard && shard_key.is_none() {
                    return Err(GroupError::MissingShardKey);
                }
                Ok(Plan::Add {
                    member: *member,
                    key: key.clone(),
                    role: *role,
                    shard,
                    new_shard,
                    shard_key: shard_key.clone(),
                })
            }
            Change::Remove { member, shard_key } => {
                let entry = self.members.get(member).ok_or(GroupError::UnknownMember)?;
                if entry.role == Role::Admin && self.admins <= 1 {
                    return Err(GroupError::LastAdmin);
                }
                if *member == op.signer {
                    return Err(GroupError::SelfRemoval);
                }
                let (shard, _) = self.shard_at(entry.shard)?;
                Ok(Plan::Remove {
                    member: *member,
                    shard,
                    shard_key: shard_key.clone(),
                })
            }
            Change::SetRole { member, role } => {
                let entry = self.members.get(member).ok_or(GroupError::UnknownMember)?;
                if entry.role == Role::Admin && *role != Role::Admin && self.admins <= 1 {
                    return Err(GroupError::LastAdmin);
                }
                Ok(Plan::SetRole {
                    member: *member,
                    role: *role,
                })
            }
            Change::Rotate { shard, shard_key } => {
                let (shard, _) = self.shard_at(*shard)?;
                Ok(Plan::Rotate {
                    shard,
                    shard_key: shard_key.clone(),
                })
            }
        }
    }

    /// Applies a validated plan. Returns the shard whose key changed.
    pub(super) fn commit(&mut self, plan: Plan) -> Result<Option<ShardIndex>, GroupError> {
        match plan {
            Plan::Add {
                member,
                key,
                role,
                shard,
                new_shard,
                shard_key,
            } => {
                let index = shard_index(shard)?;
                let mut rekeyed = None;
                if new_shard {
                    let key = shard_key.ok_or(GroupError::MissingShardKey)?;
                    self.shards.push(Shard {
                        epoch: 0,
                        key,
                        members: Vec::new(),
                    });
                    rekeyed = Some(index);
                } else if let Some(key) = shard_key {
                    self.rotate(shard, key)?;
                    rekeyed = Some(index);
                }
                let target = self
                    .shards
                    .get_mut(shard)
                    .ok_or(GroupError::UnknownShard { shard: index })?;
                target.members.push(member);
                if role == Role::Admin {
                    self.admins = self.admins.saturating_add(1);
                }
                self.members.insert(
                    member,
                    Member {
                        role,
                        shard: index,
                        encapsulation_key: key,
                    },
                );
                Ok(rekeyed)
            }
            Plan::Remove {
                member,
                shard,
                shard_key,
            } => {
                if let Some(entry) = self.members.remove(&member)
                    && entry.role == Role::Admin
                {
                    self.admins = self.admins.saturating_sub(1);
                }
                if let Some(s) = self.shards.get_mut(shard) {
                    s.members.retain(|m| *m != member);
                }
                self.rotate(shard, shard_key)?;
                Ok(Some(shard_index(shard)?))
            }
            Plan::SetRole { member, role } => {
                if let Some(entry) = self.members.get_mut(&member) {
                    match (entry.role == Role::Admin, role == Role::Admin) {
                        (true, false) => self.admins = self.admins.saturating_sub(1),
                        (false, true) => self.admins = self.admins.saturating_add(1),
                        _ => {}
                    }
                    entry.role = role;
                }
                Ok(None)
            }
            Plan::Rotate { shard, shard_key } => {
                self.rotate(shard, shard_key)?;
                Ok(Some(shard_index(shard)?))
            }
        }
    }

    pub(super) fn rotate(
        &mut self,
        shard: usize,
        key: EncapsulationKeyBytes,
    ) -> Result<(), GroupError> {
        let index = shard_index(shard)?;
        let s = self
            .shards
            .get_mut(shard)
            .ok_or(GroupError::UnknownShard { shard: index })?;
        s.epoch = s.epoch.saturating_add(1);
        s.key = key;
        Ok(())
    }

    /// Builds and signs the next operation with `change` as `admin`, after checking it against
    /// the state exactly as [`Group::apply`] will (so a refused proposal is never signed).
    pub(super) fn propose(
        &self,
        provider: &dyn CryptoProvider,
        admin: &Identity,
        change: Change,
        rekey: Option<Rekey>,
    ) -> Result<Proposal, GroupError> {
        let mut op = GroupOp {
            group: self.id,
            version: self.version.saturating_add(1),
            prev: self.head,
            signer: admin.peer_id(),
            change,
            signer_key: admin.verifying_key().clone(),
            signature: placeholder_signature(),
        };
        let plan = self.plan(&op)?;
        check_plan_keys(provider, &plan)?;
        op.sign(admin)?;
        Ok(Proposal { op, rekey })
    }

    /// A fresh secret for `shard` at `epoch` and the key it gives.
    pub(super) fn fresh_shard_key<R: CryptoRng + ?Sized>(
        &self,
        provider: &dyn CryptoProvider,
        shard: ShardIndex,
        epoch: u64,
        rng: &mut R,
    ) -> (Rekey, EncapsulationKeyBytes) {
        let secret = ShardSecret::generate(rng);
        let key = secret.encapsulation_key(provider, &self.id, shard, epoch);
        (
            Rekey {
                shard,
                epoch,
                secret,
            },
            key,
        )
    }

    /// Proposes adding `member` (with its encapsulation `key`, from its peer record) as `role`.
    /// It goes to the first shard with room; a new shard is opened (with a fresh secret, in the
    /// proposal's `rekey`) when all are full. With `rotate`, an existing target shard is also
    /// rotated, so the newcomer cannot read what was sealed to the shard before it joined.
    /// Without it, the newcomer needs the shard's current secret ([`Group::welcome_package`]).
    #[allow(clippy::too_many_arguments)]
    pub fn propose_add<R: CryptoRng + ?Sized>(
        &self,
        provider: &dyn CryptoProvider,
        admin: &Identity,
        member: PeerId,
        key: EncapsulationKeyBytes,
        role: Role,
        rotate: bool,
        rng: &mut R,
    ) -> Result<Proposal, GroupError> {
        let (mut rekey, mut shard_key) = (None, None);
        if let Some((shard, new_shard)) = self.target_shard()
            && (new_shard || rotate)
        {
            let index = shard_index(shard)?;
            let epoch = match self.shards.get(shard) {
                Some(s) if !new_shard => s.epoch.saturating_add(1),
                _ => 0,
            };
            let (r, k) = self.fresh_shard_key(provider, index, epoch, rng);
            rekey = Some(r);
            shard_key = Some(k);
        }
        let change = Change::Add {
            member,
            key,
            role,
            shard_key,
        };
        self.propose(provider, admin, change, rekey)
    }

    /// Proposes removing `member`; its shard is rotated (the fresh secret is in the proposal's
    /// `rekey`: after applying, send [`Group::rekey_package`] to the shard's remaining members).
    pub fn propose_remove<R: CryptoRng + ?Sized>(
        &self,
        provider: &dyn CryptoProvider,
        admin: &Identity,
        member: PeerId,
        rng: &mut R,
    ) -> Result<Proposal, GroupError> {
        let entry = self.members.get(&member).ok_or(GroupError::UnknownMember)?;
        let (_, shard) = self.shard_at(entry.shard)?;
        let epoch = shard.epoch.saturating_add(1);
        let (rekey, shard_key) = self.fresh_shard_key(provider, entry.shard, epoch, rng);
        self.propose(
            provider,
            admin,
            Change::Remove { member, shard_key },
            Some(rekey),
        )
    }

    /// Proposes giving `member` the role `role`. Demoting an admin does not take back the shard
    /// secrets it held: rotate those shards too.
    pub fn propose_set_role(
        &self,
        provider: &dyn CryptoProvider,
        admin: &Identity,
        member: PeerId,
        role: Role,
    ) -> Result<Proposal, GroupError> {
        self.propose(provider, admin, Change::SetRole { member, role }, None)
    }

    /// Proposes rotating `shard` (new epoch, fresh secret in the proposal's `rekey`).
    pub fn propose_rotate<R: CryptoRng + ?Sized>(
        &self,
        provider: &dyn CryptoProvider,
        admin: &Identity,
        shard: ShardIndex,
        rng: &mut R,
    ) -> Result<Proposal, GroupError> {
        let (_, current) = self.shard_at(shard)?;
        let epoch = current.epoch.saturating_add(1);
        let (rekey, shard_key) = self.fresh_shard_key(provider, shard, epoch, rng);
        self.propose(
            provider,
            admin,
            Change::Rotate { shard, shard_key },
            Some(rekey),
        )
    }

    /// The key package of `shard`'s current epoch for all of its members (a rekey): `secret` is
    /// the shard's current secret, `admin` signs.
    pub fn rekey_package<R: CryptoRng + ?Sized>(
        &self,
        provider: &dyn CryptoProvider,
        admin: &Identity,
        shard: ShardIndex,
        secret: &ShardSecret,
        rng: &mut R,
    ) -> Result<KeyPackage, GroupError> {
        let (_, s) = self.shard_at(shard)?;
        let recipients = self.keys_of(&s.members);
        KeyPackage::issue(provider, admin, self, shard, secret, &recipients, rng)
    }

    /// The key package of `member`'s shard at its current epoch for `member` alone (a
    /// welcome): `secret` is that shard's current secret, `admin` signs.
    pub fn welcome_package<R: CryptoRng + ?Sized>(
        &self,
        provider: &dyn CryptoProvider,
        admin: &Identity,
        member: &PeerId,
        secret: &ShardSecret,
        rng: &mut R,
    ) -> Result<KeyPackage, GroupError> {
        let entry = self.members.get(member).ok_or(GroupError::UnknownMember)?;
        let recipients = [entry.encapsulation_key.clone()];
        KeyPackage::issue(provider, admin, self, entry.shard, secret, &recipients, rng)
    }

    pub(super) fn keys_of(&self, peers: &[PeerId]) -> Vec<EncapsulationKeyBytes> {
        peers
            .iter()
            .filter_map(|p| self.members.get(p))
            .map(|m| m.encapsulation_key.clone())
            .collect()
    }

    /// Checks a key package against the state: the group, the shard (`UnknownShard`), its
    /// current epoch (`EpochMismatch`), that the signer is an admin (`NotMember`, `Forbidden`),
    /// the signer's key and the signature (`WrongKey`, `BadSignature`). Counted.
    pub fn check_package(
        &mut self,
        provider: &dyn CryptoProvider,
        package: &KeyPackage,
    ) -> Result<(), GroupError> {
        let result = self.check_package_inner(provider, package);
        match &result {
            Ok(()) => {
                self.counters.packages_accepted = self.counters.packages_accepted.saturating_add(1)
            }
            Err(e) => self.counters.count(e),
        }
        result
    }

    pub(super) fn check_package_inner(
        &self,
        provider: &dyn CryptoProvider,
        package: &KeyPackage,
    ) -> Result<(), GroupError> {
        if package.group != self.id {
            return Err(GroupError::WrongGroup);
        }
        let (_, shard) = self.shard_at(package.shard)?;
        if package.epoch != shard.epoch {
            return Err(GroupError::EpochMismatch {
                current: shard.epoch,
                offered: package.epoch,
            });
        }
        self.check_admin(&package.signer)?;
        package.verify(provider)
    }

    /// Checks `package` as [`Group::check_package`] does, opens it as the holder of `me` (the
    /// member's own decapsulation key), and checks that the secret gives the shard's current
    /// key (`KeyMismatch`). Returns the shard key to open group messages with. Counted.
    pub fn open_package(
        &mut self,
        provider: &dyn CryptoProvider,
        package: &KeyPackage,
        me: &dyn Decapsulator,
    ) -> Result<ShardKey, GroupError> {
        let result = self.open_package_inner(provider, package, me);
        match &result {
            Ok(_) => {
                self.counters.packages_opened = self.counters.packages_opened.saturating_add(1)
            }
            Err(e) => self.counters.count(e),
        }
        result
    }

    pub(super) fn open_package_inner(
        &self,
        provider: &dyn CryptoProvider,
        package: &KeyPackage,
        me: &dyn Decapsulator,
    ) -> Result<ShardKey, GroupError> {
        self.check_package_inner(provider, package)?;
        let secret = package.open(me)?;
        let key = ShardKey::derive(provider, self.id, package.shard, package.epoch, &secret);
        let (_, shard) = self.shard_at(package.shard)?;
        if *key.encapsulation_key() != shard.key {
            return Err(GroupError::KeyMismatch);
        }
        Ok(key)
    }
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("id", &self.id)
            .field("version", &self.version)
            .field("members", &self.members.len())
            .field("shards", &self.shards.len())
            .field("shard_size", &self.shard_size)
            .finish_non_exhaustive()
    }
}

pub(super) fn check_shard_size(size: usize) -> Result<(), GroupError> {
    if size == 0 || size > MAX_SHARD_SIZE {
        return Err(GroupError::InvalidShardSize {
            size,
            max: MAX_SHARD_SIZE,
        });
    }
    Ok(())
}

pub(super) fn check_plan_keys(
    provider: &dyn CryptoProvider,
    plan: &Plan,
) -> Result<(), GroupError> {
    match plan {
        Plan::Add { key, shard_key, .. } => {
            check_key(provider, key)?;
            if let Some(k) = shard_key {
                check_key(provider, k)?;
            }
            Ok(())
        }
        Plan::Remove { shard_key, .. } | Plan::Rotate { shard_key, .. } => {
            check_key(provider, shard_key)
        }
        Plan::SetRole { .. } => Ok(()),
    }
}
