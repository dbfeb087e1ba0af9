//! `hearsay run`'s settings: the flags ([`RunArgs`]), the `--config` file, and the checked
//! merge of the two (flags win).

use crate::{Error, failed};
use clap::Args;
use hearsay_tokio::BootstrapPeer;
use serde::Deserialize;
use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Roles a node may be asked for.
const KNOWN_ROLES: &[&str] = &["anchor", "reflector"];
/// An anchor's default mailbox size per topic.
const DEFAULT_MAILBOX: usize = 4096;
/// The largest mailbox per topic (the core remembers 65,536 ids as seen per topic).
const MAX_MAILBOX: usize = 32_768;

/// `hearsay run` flags; every one may also come from `--config FILE` (flags win).
#[derive(Debug, Clone, Default, Args)]
pub struct RunArgs {
    /// The identity to run as (see `hearsay identity create`).
    #[arg(long, value_name = "NAME")]
    pub identity: Option<String>,
    /// The UDP address to listen on for QUIC, e.g. 0.0.0.0:4433 [default: 127.0.0.1:0]
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<SocketAddr>,
    /// A peer to join through: ADDR or PEERID@ADDR (repeatable).
    #[arg(long, value_name = "ADDR|PEERID@ADDR")]
    pub bootstrap: Vec<BootstrapPeer>,
    /// Roles to take on: `anchor` (keeps a durable mailbox of its topics' recent messages and
    /// serves them to nodes that return), `reflector` (tells connecting peers the address it
    /// sees them at).
    #[arg(long, value_delimiter = ',', value_name = "ROLE,...")]
    pub roles: Vec<String>,
    /// An anchor's mailbox: most messages kept per topic [default: 4096]
    #[arg(long, value_name = "N")]
    pub mailbox: Option<usize>,
    /// How long messages are kept, served and accepted on every topic, e.g. 10m, 2h
    /// [default: 10m]. Nodes of one topic should agree on it.
    #[arg(long, value_name = "DURATION")]
    pub retention: Option<String>,
    /// An address to advertise in this node's record instead of the bound one (repeatable),
    /// e.g. the public address of a port forward.
    #[arg(long, value_name = "ADDR")]
    pub advertise: Vec<SocketAddr>,
    /// A topic to subscribe to from the start (repeatable).
    #[arg(long, value_name = "TOPIC")]
    pub subscribe: Vec<String>,
    /// The control API's TCP address, loopback only [default: 127.0.0.1:0]
    #[arg(long, value_name = "ADDR")]
    pub control: Option<SocketAddr>,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// A TOML file with any of these settings (keys as the flags, e.g. `bind = "0.0.0.0:4433"`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The identity's passphrase, on the first line of FILE (for a protected identity;
    /// `$HEARSAY_PASSPHRASE` works too).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Log format on standard error.
    #[arg(long, value_name = "FORMAT", value_parser = ["human", "json"])]
    pub log_format: Option<String>,
}

/// The `--config` file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    identity: Option<String>,
    bind: Option<SocketAddr>,
    #[serde(default)]
    bootstrap: Vec<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    subscribe: Vec<String>,
    control: Option<SocketAddr>,
    metrics: Option<SocketAddr>,
    log_format: Option<String>,
    mailbox: Option<usize>,
    retention: Option<String>,
    #[serde(default)]
    advertise: Vec<SocketAddr>,
    passphrase_file: Option<PathBuf>,
}

/// The settings after merging flags and the file.
#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub(super) identity: String,
    pub(super) bind: SocketAddr,
    pub(super) bootstrap: Vec<BootstrapPeer>,
    pub(super) roles: Vec<String>,
    pub(super) subscribe: Vec<String>,
    pub(super) control: SocketAddr,
    pub(super) metrics: Option<SocketAddr>,
    pub(super) log_json: bool,
    pub(super) mailbox: usize,
    pub(super) retention: Duration,
    pub(super) advertise: Vec<SocketAddr>,
    pub(super) passphrase_file: Option<PathBuf>,
}

impl Settings {
    pub(super) fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

pub(super) fn merge(args: &RunArgs) -> Result<Settings, Error> {
    let file = match &args.config {
        None => FileConfig::default(),
        Some(path) => {
            let text = fs::read_to_string(path)
                .map_err(|e| failed(format!("cannot read config file {}: {e}", path.display())))?;
            toml::from_str(&text).map_err(|e| {
                let msg = e.message().to_owned();
                failed(format!(
                    "config file {} is not valid: {msg} (keys: identity, bind, bootstrap, roles, \
                     subscribe, control, metrics, log-format, mailbox, retention, advertise, \
                     passphrase-file)",
                    path.display()
                ))
            })?
        }
    };
    let identity = args.identity.clone().or(file.identity).ok_or_else(|| {
        failed("which identity? pass --identity NAME (see `hearsay identity list`)")
    })?;
    let mut bootstrap = args.bootstrap.clone();
    for text in &file.bootstrap {
        bootstrap.push(text.parse().map_err(|e| {
            failed(format!(
                "bad bootstrap {text:?} in the config file: {e}; use ADDR or PEERID@ADDR"
            ))
        })?);
    }
    let pick = |flag: &Vec<String>, file: Vec<String>| {
        if flag.is_empty() { file } else { flag.clone() }
    };
    let roles = pick(&args.roles, file.roles);
    for role in &roles {
        if !KNOWN_ROLES.contains(&role.as_str()) {
            return Err(failed(format!(
                "unknown role {role:?}: the roles are {}",
                KNOWN_ROLES.join(", ")
            )));
        }
    }
    let log_format = args
        .log_format
        .clone()
        .or(file.log_format)
        .unwrap_or_else(|| "human".into());
    if log_format != "human" && log_format != "json" {
        return Err(failed(format!(
            "unknown log format {log_format:?}: use human or json"
        )));
    }
    let control = args
        .control
        .or(file.control)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    if !control.ip().is_loopback() {
        return Err(failed(format!(
            "the control API must listen on a loopback address, not {control}: use e.g. \
             --control 127.0.0.1:{}",
            control.port()
        )));
    }
    let retention = match args.retention.clone().or(file.retention) {
        None => Duration::from_secs(600),
        Some(text) => crate::http::parse_duration(&text)
            .map_err(|e| failed(format!("bad --retention: {e}")))?,
    };
    if retention < Duration::from_secs(10) || retention > Duration::from_secs(7 * 24 * 3600) {
        return Err(failed(format!(
            "--retention {retention:?} is out of range: use 10s to 7d"
        )));
    }
    let mailbox = args.mailbox.or(file.mailbox).unwrap_or(DEFAULT_MAILBOX);
    if !(1..=MAX_MAILBOX).contains(&mailbox) {
        return Err(failed(format!(
            "--mailbox {mailbox} is out of range: use 1 to {MAX_MAILBOX} messages per topic"
        )));
    }
    let advertise = if args.advertise.is_empty() {
        file.advertise
    } else {
        args.advertise.clone()
    };
    Ok(Settings {
        passphrase_file: args.passphrase_file.clone().or(file.passphrase_file),
        mailbox,
        retention,
        advertise,
        identity,
        bind: args
            .bind
            .or(file.bind)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))),
        bootstrap,
        roles,
        subscribe: pick(&args.subscribe, file.subscribe),
        control,
        metrics: args.metrics.or(file.metrics),
        log_json: log_format == "json",
    })
}
