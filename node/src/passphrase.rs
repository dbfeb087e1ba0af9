//! Passphrase-protected key files: the identity seeds sealed with ChaCha20-Poly1305 under a key
//! derived from the passphrase by Argon2id.
//!
//! ```text
//! hearsay-identity v1 argon2id\n
//! peer <64 hex digits: the peer id, so `identity list` needs no passphrase>\n
//! <hex: salt (16) ‖ m_cost KiB (u32 BE) ‖ t_cost (u32 BE) ‖ lanes (u32 BE) ‖ nonce (12) ‖
//!  sealed seeds (96 + 16 tag)>\n
//! ```
//!
//! The associated data is everything before the sealed seeds (the header, the peer id line and
//! the parameters), so none of it can be changed without the open failing. The cost parameters
//! are read from the file (bounded, so a crafted file cannot ask for gigabytes), which lets a
//! later version raise the defaults without breaking older files.

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hearsay_proto::{IdentitySeeds, PeerId};
use zeroize::Zeroizing;

/// The first line of a passphrase-protected key file.
pub const SEALED_MAGIC: &str = "hearsay-identity v1 argon2id\n";
/// Argon2id memory cost of new files, in KiB (64 MiB).
pub const DEFAULT_M_COST: u32 = 64 * 1024;
/// Argon2id passes of new files.
pub const DEFAULT_T_COST: u32 = 3;
/// The largest memory cost a file may ask for (1 GiB).
const MAX_M_COST: u32 = 1024 * 1024;
/// The most passes a file may ask for.
const MAX_T_COST: u32 = 64;
/// The shortest passphrase accepted when creating.
pub const MIN_PASSPHRASE_LEN: usize = 8;

const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 12;
const PARAMS_LEN: usize = SALT_LEN + 12 + NONCE_LEN;
const SEALED_LEN: usize = 96 + 16;

/// Why a sealed key file did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// The layout is wrong (the reason says where).
    Malformed(&'static str),
    /// The passphrase is wrong, or the file was changed.
    WrongPassphrase,
}

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    /// Memory, KiB.
    pub m_cost: u32,
    /// Passes.
    pub t_cost: u32,
}

impl Default for Cost {
    fn default() -> Self {
        Self {
            m_cost: DEFAULT_M_COST,
            t_cost: DEFAULT_T_COST,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &[u8]) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.chunks_exact(2)
        .map(|pair| {
            let s = std::str::from_utf8(pair).ok()?;
            if s.bytes().any(|b| b.is_ascii_uppercase()) {
                return None;
            }
            u8::from_str_radix(s, 16).ok()
        })
        .collect()
}

fn derive_key(
    passphrase: &[u8],
    salt: &[u8],
    cost: Cost,
) -> Result<Zeroizing<[u8; 32]>, OpenError> {
    let params = Params::new(cost.m_cost, cost.t_cost, 1, Some(32))
        .map_err(|_| OpenError::Malformed("Argon2id parameters out of range"))?;
    let mut key = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase, salt, key.as_mut())
        .map_err(|_| OpenError::Malformed("Argon2id refused its input"))?;
    Ok(key)
}

/// Seals `seeds` (whose identity is `peer`) under `passphrase` with fresh `salt` and `nonce`.
pub fn seal(
    seeds: &IdentitySeeds,
    peer: &PeerId,
    passphrase: &[u8],
    cost: Cost,
    salt: [u8; SALT_LEN],
    nonce: [u8; NONCE_LEN],
) -> Zeroizing<Vec<u8>> {
    let mut params = Vec::with_capacity(PARAMS_LEN);
    params.extend_from_slice(&salt);
    params.extend_from_slice(&cost.m_cost.to_be_bytes());
    params.extend_from_slice(&cost.t_cost.to_be_bytes());
    params.extend_from_slice(&1u32.to_be_bytes());
    params.extend_from_slice(&nonce);
    let header = format!("{SEALED_MAGIC}peer {peer}\n");
    let mut aad = header.clone().into_bytes();
    aad.extend_from_slice(&params);
    // Only parameters this module produced reach here; they are in range.
    let key = derive_key(passphrase, &salt, cost).unwrap_or_else(|_| Zeroizing::new([0; 32]));
    let cipher = ChaCha20Poly1305::new(&Key::from(*key));
    let sealed = cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: seeds.to_bytes().as_ref(),
                aad: &aad,
            },
        )
        .unwrap_or_default();
    let mut out = Zeroizing::new(header.into_bytes());
    out.extend_from_slice(hex(&params).as_bytes());
    out.extend_from_slice(hex(&sealed).as_bytes());
    out.push(b'\n');
    out
}

/// The largest sealed file.
pub const SEALED_FILE_LEN: usize =
    SEALED_MAGIC.len() + 5 + 64 + 1 + 2 * (PARAMS_LEN + SEALED_LEN) + 1;

/// Whether `contents` is a sealed key file (by its first line).
pub fn is_sealed(contents: &[u8]) -> bool {
    contents.starts_with(SEALED_MAGIC.as_bytes())
}

/// The peer id line of a sealed file, without the passphrase.
pub fn peer_id(contents: &[u8]) -> Result<PeerId, OpenError> {
    split(contents).map(|(peer, _, _, _)| peer)
}

type Parts<'a> = (PeerId, &'a [u8], Vec<u8>, Vec<u8>);

/// Header bytes (the associated data's first part), peer id, parameters, sealed seeds.
fn split(contents: &[u8]) -> Result<Parts<'_>, OpenError> {
    let rest = contents
        .strip_prefix(SEALED_MAGIC.as_bytes())
        .ok_or(OpenError::Malformed("missing the sealed-identity header"))?;
    let rest = rest
        .strip_prefix(b"peer ")
        .ok_or(OpenError::Malformed("missing the peer line"))?;
    let (peer_hex, rest) = rest
        .split_at_checked(64)
        .ok_or(OpenError::Malformed("truncated peer line"))?;
    let rest = rest
        .strip_prefix(b"\n")
        .ok_or(OpenError::Malformed("bad peer line"))?;
    let peer: PeerId = std::str::from_utf8(peer_hex)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or(OpenError::Malformed("bad peer id"))?;
    let header = &contents[..contents.len() - rest.len()];
    let body = rest.strip_suffix(b"\n").unwrap_or(rest);
    let bytes = unhex(body).ok_or(OpenError::Malformed("the body must be lower-case hex"))?;
    if bytes.len() != PARAMS_LEN + SEALED_LEN {
        return Err(OpenError::Malformed("the body has the wrong length"));
    }
    let (params, sealed) = bytes.split_at(PARAMS_LEN);
    Ok((peer, header, params.to_vec(), sealed.to_vec()))
}

fn be32(bytes: &[u8], at: usize) -> u32 {
    bytes
        .get(at..at + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_be_bytes)
}

/// Opens a sealed key file with `passphrase`; checks that the seeds give the peer id on file
/// is left to the caller (it needs a crypto provider).
pub fn open(contents: &[u8], passphrase: &[u8]) -> Result<(PeerId, IdentitySeeds), OpenError> {
    let (peer, header, params, sealed) = split(contents)?;
    let salt = &params[..SALT_LEN];
    let cost = Cost {
        m_cost: be32(&params, SALT_LEN),
        t_cost: be32(&params, SALT_LEN + 4),
    };
    let lanes = be32(&params, SALT_LEN + 8);
    if lanes != 1
        || cost.m_cost > MAX_M_COST
        || cost.t_cost > MAX_T_COST
        || cost.t_cost == 0
        || cost.m_cost < 8
    {
        return Err(OpenError::Malformed("Argon2id parameters out of range"));
    }
    let nonce = &params[SALT_LEN + 12..];
    let mut aad = header.to_vec();
    aad.extend_from_slice(&params);
    let key = derive_key(passphrase, salt, cost)?;
    let cipher = ChaCha20Poly1305::new(&Key::from(*key));
    let seeds = Zeroizing::new(
        cipher
            .decrypt(
                &Nonce::try_from(nonce).map_err(|_| OpenError::Malformed("nonce length"))?,
                Payload {
                    msg: &sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| OpenError::WrongPassphrase)?,
    );
    let seeds: &[u8; 96] = seeds
        .as_slice()
        .try_into()
        .map_err(|_| OpenError::Malformed("sealed seeds have the wrong length"))?;
    Ok((peer, IdentitySeeds::from_bytes(seeds)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: Cost = Cost {
        m_cost: 64,
        t_cost: 1,
    };

    fn sealed() -> (IdentitySeeds, PeerId, Zeroizing<Vec<u8>>) {
        let seeds = IdentitySeeds::from_bytes(&[9; 96]);
        let peer = PeerId::from_bytes([0xab; 32]);
        let file = seal(&seeds, &peer, b"correct horse", FAST, [1; 16], [2; 12]);
        (seeds, peer, file)
    }

    #[test]
    fn opens_with_the_passphrase_only_and_shows_the_peer_without_it() {
        let (seeds, peer, file) = sealed();
        assert!(is_sealed(&file));
        assert!(file.len() <= SEALED_FILE_LEN);
        assert_eq!(peer_id(&file), Ok(peer));
        let (p, s) = open(&file, b"correct horse").unwrap();
        assert_eq!((p, *s.to_bytes()), (peer, *seeds.to_bytes()));
        assert_eq!(
            open(&file, b"correct horsf").err(),
            Some(OpenError::WrongPassphrase)
        );
        // The seeds appear nowhere in the file.
        assert!(!file.windows(8).any(|w| w == [9; 8]));
        assert!(!String::from_utf8_lossy(&file).contains(&"09".repeat(8)));
    }

    #[test]
    fn any_change_to_the_file_is_refused() {
        let (_, _, file) = sealed();
        for i in 0..file.len() - 1 {
            let mut bad = file.to_vec();
            bad[i] = if bad[i] == b'0' { b'1' } else { b'0' };
            assert!(open(&bad, b"correct horse").is_err(), "byte {i} changed");
        }
        assert!(open(&file[..file.len() - 3], b"correct horse").is_err());
        // A crafted file cannot ask for more than 1 GiB.
        let mut huge = file.to_vec();
        let at = SEALED_MAGIC.len() + 5 + 64 + 1 + 2 * SALT_LEN;
        huge[at..at + 8].copy_from_slice(b"ffffffff");
        assert_eq!(
            open(&huge, b"correct horse").err(),
            Some(OpenError::Malformed("Argon2id parameters out of range"))
        );
    }
}
