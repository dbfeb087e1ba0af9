//! # hearsay
//!
//! The logic behind the `hearsay` command: argument definitions ([`Cli`]), home-directory
//! resolution ([`resolve_home`]), the on-disk identity [`Keystore`], the long-running node with
//! its local control API ([`daemon`]), the commands that talk to it ([`client`]) and the demo
//! network ([`demo`]). `main.rs` only wires them to the process's arguments, environment and
//! exit code.
//!
//! ## Keystore format
//!
//! A keystore is the directory `<home>/identities/` (created with mode 0700). Each identity is one
//! file `NAME.key`, created with mode 0600 and never overwritten, holding:
//!
//! ```text
//! hearsay-identity v1\n
//! <192 lower-case hex digits: the 96 bytes of IdentitySeeds::to_bytes>\n
//! ```
//!
//! or, created with a passphrase (`--passphrase-file FILE` or `$HEARSAY_PASSPHRASE`), the seeds
//! sealed with ChaCha20-Poly1305 under an Argon2id key (64 MiB, 3 passes; see [`passphrase`]),
//! with the peer id in clear so that `identity list` and `show` need no passphrase. Without a
//! passphrase, file permissions are the seeds' only protection.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod api;
pub mod client;
pub mod daemon;
pub mod demo;
pub mod http;
pub mod passphrase;
pub mod presence_groups;
pub mod store;

use clap::{Parser, Subcommand};
use hearsay_proto::crypto::{KEM_SEED_LEN, SIG_SEED_LEN};
use hearsay_proto::{CryptoProvider, Identity, IdentitySeeds, PeerId};
use std::ffi::OsString;
use std::fmt;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The first line of every key file; bumped if the format ever changes.
pub const KEY_FILE_MAGIC: &str = "hearsay-identity v1\n";
/// The extension of key files in the keystore directory.
pub const KEY_FILE_EXTENSION: &str = "key";
/// The longest identity name.
pub const MAX_NAME_LEN: usize = 64;

const SEED_LEN: usize = SIG_SEED_LEN + KEM_SEED_LEN;
/// Magic, hex seeds, final newline.
const KEY_FILE_LEN: usize = KEY_FILE_MAGIC.len() + 2 * SEED_LEN + 1;

/// `hearsay`: a post-quantum gossip overlay node.
#[derive(Debug, Parser)]
#[command(name = "hearsay", version, about)]
pub struct Cli {
    /// Directory holding hearsay's state [default: $HEARSAY_HOME, else $HOME/.hearsay]
    #[arg(long, global = true, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage this machine's identities (signing and KEM key pairs).
    Identity {
        /// What to do with identities.
        #[command(subcommand)]
        action: IdentityCommand,
    },
    /// Run a node until interrupted, with a local control API for the commands below.
    Run(daemon::RunArgs),
    /// Publish a message on a topic through the running node.
    Publish(client::PublishArgs),
    /// Print a topic's messages as they arrive, one JSON object per line.
    Subscribe(client::SubscribeArgs),
    /// List the running node's neighbours.
    Peers(client::PeersArgs),
    /// Show the running node's state.
    Status(client::StatusArgs),
    /// Run N real nodes over QUIC on 127.0.0.1 in this process and report how they did.
    Demo(demo::DemoArgs),
    /// Manage presence groups (their shared secrets, kept in the home directory).
    Group {
        /// What to do with groups.
        #[command(subcommand)]
        action: PresenceGroupCommand,
    },
    /// Join, leave or look at a presence group through the running node.
    Presence(client::PresenceArgs),
    /// Send an encrypted message to one peer through the running node.
    Send(client::SendArgs),
    /// Print the encrypted messages the running node opens, one JSON object per line.
    Inbox(client::InboxArgs),
}

/// `hearsay group ...`
#[derive(Debug, Subcommand)]
pub enum PresenceGroupCommand {
    /// Create a group with a new random secret.
    Create {
        /// Letters, digits, '-' and '_'; at most 64 characters.
        name: String,
    },
    /// Store a group someone shared with you (its secret from `group export`).
    Import {
        /// The name to keep it under here.
        name: String,
        /// A file holding the secret (64 hex digits).
        #[arg(long, value_name = "FILE")]
        secret_file: PathBuf,
    },
    /// Print a group's secret, to share with its other members out of band.
    Export {
        /// The group.
        name: String,
    },
    /// Print every stored group as `NAME TOPIC`.
    List,
    /// Delete a stored group.
    Delete {
        /// The group.
        name: String,
    },
}

/// `hearsay identity ...`
#[derive(Debug, Subcommand)]
pub enum IdentityCommand {
    /// Generate a new identity from OS randomness and store it as NAME.
    Create {
        /// Letters, digits, '-' and '_'; at most 64 characters.
        name: String,
        /// Protect the key file with the passphrase on the first line of FILE (at least 8
        /// characters; `$HEARSAY_PASSPHRASE` works too). `run` then needs it as well.
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
    /// Print every stored identity as `NAME PEERID`, sorted by name.
    List,
    /// Print an identity's name and peer id (never its secret).
    Show {
        /// The identity to show.
        name: String,
    },
    /// Delete a stored identity. Its keys are gone for good.
    Delete {
        /// The identity to delete.
        name: String,
    },
}

/// Picks the home directory: `--home` if given, else `$HEARSAY_HOME` if set and non-empty, else
/// `$HOME/.hearsay` if `$HOME` is set and non-empty. `None` if there is nothing to go on.
pub fn resolve_home(
    flag: Option<PathBuf>,
    hearsay_home: Option<OsString>,
    home: Option<OsString>,
) -> Option<PathBuf> {
    let non_empty = |v: Option<OsString>| v.filter(|v| !v.is_empty());
    flag.or_else(|| non_empty(hearsay_home).map(PathBuf::from))
        .or_else(|| non_empty(home).map(|h| PathBuf::from(h).join(".hearsay")))
}

/// Everything that can go wrong in the keystore or the CLI. `Display` is one line for a person.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// No `--home`, `$HEARSAY_HOME` or `$HOME`.
    NoHome,
    /// The name has characters outside `[A-Za-z0-9_-]`, or is empty or too long.
    InvalidName(String),
    /// `create` found an identity of that name.
    AlreadyExists(String),
    /// No identity of that name.
    NotFound(String),
    /// A key file exists but does not hold a valid identity.
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The OS random number generator failed.
    Randomness(getrandom::Error),
    /// A command failed; the text says what is wrong and what to do.
    Failed(String),
    /// A filesystem operation failed.
    Io {
        /// What was being done, e.g. "cannot read /x/y".
        context: String,
        /// The OS error.
        source: io::Error,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoHome => f.write_str(
                "cannot find a home directory: pass --home DIR or set HEARSAY_HOME or HOME",
            ),
            Error::InvalidName(name) => write!(
                f,
                "invalid identity name {name:?}: use 1 to {MAX_NAME_LEN} letters, digits, '-' or '_'"
            ),
            Error::AlreadyExists(name) => write!(f, "an identity named {name:?} already exists"),
            Error::NotFound(name) => write!(f, "no identity named {name:?}"),
            Error::Corrupt { path, reason } => {
                write!(f, "{} is not a valid key file: {reason}", path.display())
            }
            Error::Randomness(e) => write!(f, "cannot read OS randomness: {e}"),
            Error::Failed(text) => f.write_str(text),
            Error::Io { context, source } => write!(f, "{context}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn io_error(context: impl FnOnce() -> String) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Io {
        context: context(),
        source,
    }
}

/// Checks that `name` is 1 to [`MAX_NAME_LEN`] characters from `[A-Za-z0-9_-]`. This keeps names
/// safe as file names: no separators, no `.`/`..`, no hidden files, no surprises in a shell.
pub fn validate_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName(name.to_owned()))
    }
}

/// Encodes seeds in the key-file format.
fn encode_key_file(seeds: &IdentitySeeds) -> Zeroizing<Vec<u8>> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = Zeroizing::new(Vec::with_capacity(KEY_FILE_LEN));
    out.extend_from_slice(KEY_FILE_MAGIC.as_bytes());
    for b in seeds.to_bytes().iter() {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 0x0f)]);
    }
    out.push(b'\n');
    out
}

/// Decodes the key-file format; `Err` carries the reason for [`Error::Corrupt`].
fn decode_key_file(contents: &[u8]) -> Result<IdentitySeeds, &'static str> {
    let body = contents
        .strip_prefix(KEY_FILE_MAGIC.as_bytes())
        .ok_or("missing the \"hearsay-identity v1\" header")?;
    let hex = body.strip_suffix(b"\n").unwrap_or(body);
    if hex.len() != 2 * SEED_LEN {
        return Err("the seeds must be exactly 192 hex digits");
    }
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let mut seeds = Zeroizing::new([0u8; SEED_LEN]);
    for (byte, pair) in seeds.iter_mut().zip(hex.chunks_exact(2)) {
        let [hi, lo] = pair else {
            return Err("the seeds must be exactly 192 hex digits");
        };
        match (nibble(*hi), nibble(*lo)) {
            (Some(hi), Some(lo)) => *byte = (hi << 4) | lo,
            _ => return Err("the seeds must be lower-case hex digits"),
        }
    }
    Ok(IdentitySeeds::from_bytes(&seeds))
}

/// The identities stored under one home directory.
#[derive(Debug, Clone)]
pub struct Keystore {
    dir: PathBuf,
}

impl Keystore {
    /// The keystore of `home`: the directory `<home>/identities/`. Nothing is touched on disk
    /// until an identity is created.
    pub fn new(home: &Path) -> Self {
        Self {
            dir: home.join("identities"),
        }
    }

    /// The keystore directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of identity `name`'s key file (after checking the name).
    pub fn path_of(&self, name: &str) -> Result<PathBuf, Error> {
        validate_name(name)?;
        Ok(self.dir.join(format!("{name}.{KEY_FILE_EXTENSION}")))
    }

    /// Creates identity `name` from OS randomness and returns its peer id. Never overwrites.
    pub fn create(&self, provider: &dyn CryptoProvider, name: &str) -> Result<PeerId, Error> {
        let mut seed_bytes = Zeroizing::new([0u8; SEED_LEN]);
        getrandom::fill(seed_bytes.as_mut()).map_err(Error::Randomness)?;
        self.create_from_seeds(provider, name, IdentitySeeds::from_bytes(&seed_bytes))
    }

    /// Stores `seeds` as identity `name` and returns its peer id. Never overwrites.
    pub fn create_from_seeds(
        &self,
        provider: &dyn CryptoProvider,
        name: &str,
        seeds: IdentitySeeds,
    ) -> Result<PeerId, Error> {
        self.write_new(name, &encode_key_file(&seeds))?;
        Ok(Identity::from_seeds(provider, seeds).peer_id())
    }

    /// Writes a new key file for `name` (mode 0600, never overwriting, synced).
    fn write_new(&self, name: &str, contents: &[u8]) -> Result<(), Error> {
        let path = self.path_of(name)?;
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(io_error(|| format!("cannot create {}", self.dir.display())))?;
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => Error::AlreadyExists(name.to_owned()),
                _ => io_error(|| format!("cannot create {}", path.display()))(e),
            })?;
        let written = file.write_all(contents).and_then(|()| file.sync_all());
        if let Err(e) = written {
            // Leave no half-written key behind: it would block the name and fail to load.
            drop(file);
            let _ = fs::remove_file(&path);
            return Err(io_error(|| format!("cannot write {}", path.display()))(e));
        }
        Ok(())
    }

    /// Creates identity `name` from OS randomness, its key file sealed under `passphrase`
    /// (Argon2id with `cost`). Never overwrites.
    pub fn create_sealed(
        &self,
        provider: &dyn CryptoProvider,
        name: &str,
        passphrase: &[u8],
        cost: passphrase::Cost,
    ) -> Result<PeerId, Error> {
        if passphrase.len() < passphrase::MIN_PASSPHRASE_LEN {
            return Err(failed(format!(
                "the passphrase is too short: use at least {} characters",
                passphrase::MIN_PASSPHRASE_LEN
            )));
        }
        let mut random = Zeroizing::new([0u8; SEED_LEN + 16 + 12]);
        getrandom::fill(random.as_mut()).map_err(Error::Randomness)?;
        let seeds = IdentitySeeds::from_bytes(
            random[..SEED_LEN]
                .try_into()
                .map_err(|_| failed("internal: seed length"))?,
        );
        let salt: [u8; 16] = random[SEED_LEN..SEED_LEN + 16]
            .try_into()
            .map_err(|_| failed("internal: salt length"))?;
        let nonce: [u8; 12] = random[SEED_LEN + 16..]
            .try_into()
            .map_err(|_| failed("internal: nonce length"))?;
        let peer = Identity::from_seeds(provider, seeds.clone()).peer_id();
        let contents = passphrase::seal(&seeds, &peer, passphrase, cost, salt, nonce);
        self.write_new(name, &contents)?;
        Ok(peer)
    }

    /// Loads identity `name`.
    pub fn load(&self, provider: &dyn CryptoProvider, name: &str) -> Result<Identity, Error> {
        self.load_with(provider, name, None)
    }

    fn read(&self, name: &str) -> Result<(PathBuf, Zeroizing<Vec<u8>>), Error> {
        let path = self.path_of(name)?;
        let file = fs::File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::NotFound(name.to_owned()),
            _ => io_error(|| format!("cannot open {}", path.display()))(e),
        })?;
        let max = KEY_FILE_LEN.max(passphrase::SEALED_FILE_LEN);
        let mut contents = Zeroizing::new(Vec::with_capacity(max));
        // One byte more than a valid file, so an oversized file is caught without reading it all.
        file.take(max as u64 + 1)
            .read_to_end(&mut contents)
            .map_err(io_error(|| format!("cannot read {}", path.display())))?;
        Ok((path, contents))
    }

    /// Loads identity `name`, opening a passphrase-protected key file with `passphrase`.
    pub fn load_with(
        &self,
        provider: &dyn CryptoProvider,
        name: &str,
        passphrase: Option<&[u8]>,
    ) -> Result<Identity, Error> {
        let (path, contents) = self.read(name)?;
        if passphrase::is_sealed(&contents) {
            let Some(passphrase) = passphrase else {
                return Err(failed(format!(
                    "identity {name:?} is protected by a passphrase: pass --passphrase-file FILE \
                     or set HEARSAY_PASSPHRASE"
                )));
            };
            let (peer, seeds) = passphrase::open(&contents, passphrase).map_err(|e| match e {
                passphrase::OpenError::WrongPassphrase => {
                    failed(format!("wrong passphrase for identity {name:?}"))
                }
                passphrase::OpenError::Malformed(reason) => Error::Corrupt { path, reason },
            })?;
            let identity = Identity::from_seeds(provider, seeds);
            if identity.peer_id() != peer {
                return Err(failed(format!(
                    "identity {name:?}: the sealed keys do not match the peer id on file"
                )));
            }
            return Ok(identity);
        }
        let seeds = decode_key_file(&contents).map_err(|reason| Error::Corrupt {
            path: path.clone(),
            reason,
        })?;
        Ok(Identity::from_seeds(provider, seeds))
    }

    /// Whether identity `name` is protected by a passphrase.
    pub fn is_sealed(&self, name: &str) -> Result<bool, Error> {
        self.read(name)
            .map(|(_, contents)| passphrase::is_sealed(&contents))
    }

    /// The peer id of identity `name`.
    pub fn peer_id(&self, provider: &dyn CryptoProvider, name: &str) -> Result<PeerId, Error> {
        let (path, contents) = self.read(name)?;
        if passphrase::is_sealed(&contents) {
            return passphrase::peer_id(&contents).map_err(|e| Error::Corrupt {
                path,
                reason: match e {
                    passphrase::OpenError::Malformed(reason) => reason,
                    passphrase::OpenError::WrongPassphrase => "unreadable",
                },
            });
        }
        self.load(provider, name).map(|identity| identity.peer_id())
    }

    /// The names of all stored identities, sorted. Files that are not `NAME.key` with a valid
    /// name are ignored. An absent keystore directory is an empty keystore.
    pub fn names(&self) -> Result<Vec<String>, Error> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(io_error(|| format!("cannot list {}", self.dir.display()))(
                    e,
                ));
            }
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry =
                entry.map_err(io_error(|| format!("cannot list {}", self.dir.display())))?;
            let file_name = entry.file_name();
            let Some(name) = file_name
                .to_str()
                .and_then(|f| f.strip_suffix(KEY_FILE_EXTENSION))
                .and_then(|f| f.strip_suffix('.'))
            else {
                continue;
            };
            if validate_name(name).is_ok() {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Deletes identity `name`.
    pub fn delete(&self, name: &str) -> Result<(), Error> {
        let path = self.path_of(name)?;
        fs::remove_file(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::NotFound(name.to_owned()),
            _ => io_error(|| format!("cannot delete {}", path.display()))(e),
        })
    }
}

/// Runs `command` with state under `home`, writing results to `out` and, for problems that do
/// not stop the command (an unreadable file during `identity list`), warnings to `warn`. Returns
/// `Err` if the command failed, or if `identity list` had to skip a file.
pub fn run(
    provider: &dyn CryptoProvider,
    home: &Path,
    command: &Command,
    out: &mut dyn Write,
    warn: &mut dyn Write,
) -> Result<(), Error> {
    match command {
        Command::Identity { action } => run_identity(provider, home, action, out, warn),
        Command::Run(args) => daemon::run(home, args),
        Command::Publish(args) => client::publish(home, args, out),
        Command::Subscribe(args) => client::subscribe(home, args, out),
        Command::Peers(args) => client::peers(home, args, out),
        Command::Status(args) => client::status(home, args, out),
        Command::Demo(args) => demo::run(args, out),
        Command::Group { action } => run_group(home, action, out),
        Command::Presence(args) => client::presence(home, args, out),
        Command::Send(args) => client::send(home, args, out),
        Command::Inbox(args) => client::inbox(home, args, out),
    }
}

/// `hearsay identity ...` against the keystore of `home`.
fn run_identity(
    provider: &dyn CryptoProvider,
    home: &Path,
    action: &IdentityCommand,
    out: &mut dyn Write,
    warn: &mut dyn Write,
) -> Result<(), Error> {
    let keystore = Keystore::new(home);
    let stdout_error = io_error(|| "cannot write to standard output".to_owned());
    {
        match action {
            IdentityCommand::Create {
                name,
                passphrase_file,
            } => {
                let peer_id = match read_passphrase(passphrase_file.as_deref())? {
                    Some(passphrase) => keystore.create_sealed(
                        provider,
                        name,
                        &passphrase,
                        passphrase::Cost::default(),
                    )?,
                    None => keystore.create(provider, name)?,
                };
                writeln!(out, "{name} {peer_id}").map_err(stdout_error)
            }
            IdentityCommand::List => {
                let mut first_error = None;
                for name in keystore.names()? {
                    match keystore.peer_id(provider, &name) {
                        Ok(peer_id) => writeln!(out, "{name} {peer_id}")
                            .map_err(io_error(|| "cannot write to standard output".to_owned()))?,
                        Err(e) => {
                            // Best effort: the warning is informational, the exit code is not.
                            let _ = writeln!(warn, "hearsay: warning: skipping {name}: {e}");
                            first_error.get_or_insert(e);
                        }
                    }
                }
                first_error.map_or(Ok(()), Err)
            }
            IdentityCommand::Show { name } => {
                let peer_id = keystore.peer_id(provider, name)?;
                let protection = if keystore.is_sealed(name)? {
                    "passphrase (Argon2id, ChaCha20-Poly1305)"
                } else {
                    "file permissions only"
                };
                writeln!(
                    out,
                    "name: {name}\npeer-id: {peer_id}\nprotected-by: {protection}"
                )
                .map_err(stdout_error)
            }
            IdentityCommand::Delete { name } => {
                keystore.delete(name)?;
                writeln!(out, "deleted {name}").map_err(stdout_error)
            }
        }
    }
}

/// `hearsay group ...` against the groups of `home`.
fn run_group(home: &Path, action: &PresenceGroupCommand, out: &mut dyn Write) -> Result<(), Error> {
    let groups = presence_groups::PresenceGroups::new(home);
    let written = match action {
        PresenceGroupCommand::Create { name } => {
            let topic = groups.create(name)?;
            writeln!(
                out,
                "{name} {topic}\nshare it with `hearsay group export {name}`"
            )
        }
        PresenceGroupCommand::Import { name, secret_file } => {
            let text = Zeroizing::new(fs::read(secret_file).map_err(io_error(|| {
                format!("cannot read {}", secret_file.display())
            }))?);
            let topic = groups.import(name, &text)?;
            writeln!(out, "{name} {topic}")
        }
        PresenceGroupCommand::Export { name } => {
            let secret = groups.export(name)?;
            writeln!(out, "{}", secret.as_str())
        }
        PresenceGroupCommand::List => groups.names()?.iter().try_for_each(|name| {
            let topic = groups
                .topic(name)
                .map_or_else(|_| "(unreadable)".to_owned(), |t| t.to_string());
            writeln!(out, "{name} {topic}")
        }),
        PresenceGroupCommand::Delete { name } => {
            groups.delete(name)?;
            writeln!(out, "deleted {name}")
        }
    };
    written.map_err(io_error(|| "cannot write to standard output".to_owned()))
}

/// The environment variable holding a passphrase.
pub const PASSPHRASE_ENV: &str = "HEARSAY_PASSPHRASE";

/// The passphrase from the first line of `file` if given, else from `$HEARSAY_PASSPHRASE` if
/// set and non-empty, else `None`.
pub fn read_passphrase(file: Option<&Path>) -> Result<Option<Zeroizing<Vec<u8>>>, Error> {
    if let Some(path) = file {
        let text = Zeroizing::new(fs::read(path).map_err(io_error(|| {
            format!("cannot read the passphrase file {}", path.display())
        }))?);
        let line = text.split(|b| *b == b'\n').next().unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return Err(failed(format!(
                "the passphrase file {} is empty",
                path.display()
            )));
        }
        return Ok(Some(Zeroizing::new(line.to_vec())));
    }
    Ok(std::env::var_os(PASSPHRASE_ENV)
        .filter(|v| !v.is_empty())
        .map(|v| Zeroizing::new(v.into_encoded_bytes())))
}

/// An [`Error::Failed`] with this text.
pub(crate) fn failed(text: impl Into<String>) -> Error {
    Error::Failed(text.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearsay_proto::PureRustProvider;

    #[test]
    fn names_are_restricted_to_a_safe_alphabet() {
        for ok in ["a", "alice", "Bob-2", "x_y", &"z".repeat(MAX_NAME_LEN)] {
            assert!(validate_name(ok).is_ok(), "{ok:?} should be accepted");
        }
        let too_long = "z".repeat(MAX_NAME_LEN + 1);
        for bad in ["", ".", "..", "a/b", "a.b", "a b", "é", "-\n", &too_long] {
            assert!(
                matches!(validate_name(bad), Err(Error::InvalidName(_))),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn home_comes_from_flag_then_hearsay_home_then_home() {
        let flag = Some(PathBuf::from("/flag"));
        let hh = || Some(OsString::from("/hh"));
        let home = || Some(OsString::from("/home/u"));
        assert_eq!(
            resolve_home(flag, hh(), home()),
            Some(PathBuf::from("/flag"))
        );
        assert_eq!(resolve_home(None, hh(), home()), Some(PathBuf::from("/hh")));
        assert_eq!(
            resolve_home(None, Some(OsString::new()), home()),
            Some(PathBuf::from("/home/u/.hearsay"))
        );
        assert_eq!(resolve_home(None, None, Some(OsString::new())), None);
    }

    #[test]
    fn key_file_round_trips_and_rejects_damage() {
        let seeds = IdentitySeeds::from_bytes(&core::array::from_fn(|i| (i as u8).wrapping_mul(7)));
        let file = encode_key_file(&seeds);
        assert_eq!(file.len(), KEY_FILE_LEN);
        assert!(file.starts_with(b"hearsay-identity v1\n00070e15"));
        let back = decode_key_file(&file).expect("round trip");
        assert_eq!(*back.to_bytes(), *seeds.to_bytes());

        let mut upper = file.to_vec();
        upper[KEY_FILE_MAGIC.len() + 5] = b'E'; // "0e" -> "0E"
        assert!(decode_key_file(&upper).is_err());
        assert!(decode_key_file(&file[..file.len() - 3]).is_err());
        assert!(decode_key_file(&file[1..]).is_err());
        let mut longer = file.to_vec();
        longer.extend_from_slice(b"00");
        assert!(decode_key_file(&longer).is_err());
    }

    #[test]
    fn stored_identity_has_the_peer_id_of_its_seeds() {
        let home = std::env::temp_dir().join(format!("hearsay-lib-{}", std::process::id()));
        let store = Keystore::new(&home);
        let seeds = IdentitySeeds::from_bytes(&[42; SEED_LEN]);
        let expected = Identity::from_seeds(&PureRustProvider, seeds.clone()).peer_id();
        let created = store.create_from_seeds(&PureRustProvider, "k", seeds);
        let loaded = store.peer_id(&PureRustProvider, "k");
        let _ = fs::remove_dir_all(&home);
        assert_eq!(created.expect("create"), expected);
        assert_eq!(loaded.expect("load"), expected);
    }
}
