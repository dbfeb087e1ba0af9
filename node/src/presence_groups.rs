//! Presence-group secrets kept in the home directory: `<home>/groups/NAME.secret` (directory
//! 0700, files 0600, never overwritten), one line of 64 lower-case hex digits. A group is its
//! 32-byte secret (SPEC.md §19): whoever holds it is a member, so it is shared out of band
//! (`hearsay group export`, then `hearsay group import` on the other machine). The running node
//! reads the secrets from the same home; they never cross the control API.
//!
//! These are presence groups (`hearsay_proto::discovery::presence`), not the encrypted groups of
//! `hearsay_proto::privacy::group` (an audience with its own keys and operation log).

use crate::{Error, failed, validate_name};
use hearsay_proto::TopicId;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

const EXTENSION: &str = "secret";

/// The group secrets of one home directory.
#[derive(Debug, Clone)]
pub struct PresenceGroups {
    dir: PathBuf,
}

fn parse_secret(text: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    if text.len() != 64 {
        return None;
    }
    let mut out = Zeroizing::new([0u8; 32]);
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let s = std::str::from_utf8(pair).ok()?;
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            return None;
        }
        *byte = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

fn hex(bytes: &[u8]) -> Zeroizing<String> {
    Zeroizing::new(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl PresenceGroups {
    /// The groups of `home`.
    pub fn new(home: &Path) -> Self {
        Self {
            dir: home.join("groups"),
        }
    }

    fn path_of(&self, name: &str) -> Result<PathBuf, Error> {
        validate_name(name).map_err(|_| {
            failed(format!(
                "invalid group name {name:?}: use 1 to 64 letters, digits, '-' or '_'"
            ))
        })?;
        Ok(self.dir.join(format!("{name}.{EXTENSION}")))
    }

    /// Stores `secret` as group `name`; returns the group's presence topic.
    pub fn add(&self, name: &str, secret: &[u8; 32]) -> Result<TopicId, Error> {
        let path = self.path_of(name)?;
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| failed(format!("cannot create {}: {e}", self.dir.display())))?;
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => {
                    failed(format!("a group named {name:?} already exists"))
                }
                _ => failed(format!("cannot create {}: {e}", path.display())),
            })?;
        let mut line = hex(secret);
        line.push('\n');
        if let Err(e) = file
            .write_all(line.as_bytes())
            .and_then(|()| file.sync_all())
        {
            drop(file);
            let _ = fs::remove_file(&path);
            return Err(failed(format!("cannot write {}: {e}", path.display())));
        }
        Ok(hearsay_proto::discovery::presence::presence_topic(secret))
    }

    /// Creates group `name` with a secret from OS randomness.
    pub fn create(&self, name: &str) -> Result<TopicId, Error> {
        let mut secret = Zeroizing::new([0u8; 32]);
        getrandom::fill(secret.as_mut()).map_err(Error::Randomness)?;
        self.add(name, &secret)
    }

    /// Imports group `name` from its secret as `export` prints it.
    pub fn import(&self, name: &str, text: &[u8]) -> Result<TopicId, Error> {
        let secret = parse_secret(text.trim_ascii()).ok_or_else(|| {
            failed("a group secret is 64 lower-case hex digits (from `hearsay group export`)")
        })?;
        self.add(name, &secret)
    }

    /// The secret of group `name`.
    pub fn secret(&self, name: &str) -> Result<Zeroizing<[u8; 32]>, Error> {
        let path = self.path_of(name)?;
        let file = fs::File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => failed(format!(
                "no group named {name:?}: create it with `hearsay group create {name}` or \
                 import it with `hearsay group import {name} --secret-file FILE`"
            )),
            _ => failed(format!("cannot open {}: {e}", path.display())),
        })?;
        let mut text = Zeroizing::new(Vec::new());
        file.take(66)
            .read_to_end(&mut text)
            .map_err(|e| failed(format!("cannot read {}: {e}", path.display())))?;
        parse_secret(&text)
            .ok_or_else(|| failed(format!("{} is not a valid group secret", path.display())))
    }

    /// The secret as `export` prints it (64 hex digits).
    pub fn export(&self, name: &str) -> Result<Zeroizing<String>, Error> {
        self.secret(name).map(|s| hex(s.as_ref()))
    }

    /// Group `name`'s presence topic.
    pub fn topic(&self, name: &str) -> Result<TopicId, Error> {
        self.secret(name)
            .map(|s| hearsay_proto::discovery::presence::presence_topic(&s))
    }

    /// Every stored group's name, sorted.
    pub fn names(&self) -> Result<Vec<String>, Error> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(failed(format!("cannot list {}: {e}", self.dir.display()))),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let file = e.file_name();
                let name = file.to_str()?.strip_suffix(".secret")?.to_owned();
                validate_name(&name).ok().map(|()| name)
            })
            .collect();
        names.sort();
        Ok(names)
    }

    /// Deletes group `name`.
    pub fn delete(&self, name: &str) -> Result<(), Error> {
        let path = self.path_of(name)?;
        fs::remove_file(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => failed(format!("no group named {name:?}")),
            _ => failed(format!("cannot delete {}: {e}", path.display())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_groups_round_trip_through_export_and_import() {
        let home = std::env::temp_dir().join(format!("hearsay-groups-{}", std::process::id()));
        let a = PresenceGroups::new(&home.join("a"));
        let b = PresenceGroups::new(&home.join("b"));
        let topic = a.create("friends").unwrap();
        assert!(a.create("friends").is_err(), "never overwritten");
        let secret = a.export("friends").unwrap();
        assert_eq!(b.import("pals", secret.as_bytes()).unwrap(), topic);
        assert_eq!(b.topic("pals").unwrap(), topic);
        assert_eq!(a.names().unwrap(), vec!["friends".to_owned()]);
        for bad in [&b"00"[..], &[b'A'; 64][..], &[b'g'; 64][..]] {
            assert!(b.import("bad", bad).is_err());
        }
        assert!(a.secret("nope").is_err());
        assert!(a.create("../x").is_err());
        a.delete("friends").unwrap();
        assert!(a.names().unwrap().is_empty());
        let _ = fs::remove_dir_all(&home);
    }
}
