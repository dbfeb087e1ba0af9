//! The commands that talk to a running node through its control API: `publish`, `subscribe`,
//! `peers`, `status`. They find it through the home directory (`control.addr`,
//! `control.token`), or through `--control ADDR --token-file FILE`.

use crate::daemon::{CONTROL_ADDR_FILE, PeerInfo, StatusInfo, TOKEN_FILE};
use crate::http::{Response, encode_query, parse_duration, request};
use crate::{Error, failed};
use clap::Args;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How to reach the node: through the home directory unless given.
#[derive(Debug, Clone, Default, Args)]
pub struct Target {
    /// The control API's address [default: from the home directory's control.addr]
    #[arg(long, value_name = "ADDR")]
    pub control: Option<SocketAddr>,
    /// The file holding the control token [default: the home directory's control.token]
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

/// `hearsay publish`
#[derive(Debug, Clone, Args)]
pub struct PublishArgs {
    /// The topic's name.
    #[arg(long, value_name = "TOPIC")]
    pub topic: String,
    /// The message text.
    #[arg(
        long,
        value_name = "TEXT",
        conflicts_with = "file",
        required_unless_present = "file"
    )]
    pub message: Option<String>,
    /// A file whose bytes are the message.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// How to reach the node.
    #[command(flatten)]
    pub target: Target,
}

/// `hearsay subscribe`
#[derive(Debug, Clone, Args)]
pub struct SubscribeArgs {
    /// The topic's name.
    #[arg(long, value_name = "TOPIC")]
    pub topic: String,
    /// Stop after this many messages (fails if fewer arrive before --timeout).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Stop after this long, e.g. 30s, 500ms, 5m.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// First print the node's latest messages of the topic (up to 1,024 it received since it
    /// started, including those an anchor repaired after a restart), then new ones.
    #[arg(long)]
    pub replay: bool,
    /// How to reach the node.
    #[command(flatten)]
    pub target: Target,
}

/// `hearsay peers`
#[derive(Debug, Clone, Args)]
pub struct PeersArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// How to reach the node.
    #[command(flatten)]
    pub target: Target,
}

/// `hearsay status`
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// How to reach the node.
    #[command(flatten)]
    pub target: Target,
}

struct Control {
    addr: SocketAddr,
    token: String,
}

fn not_running(home: &Path) -> Error {
    failed(format!(
        "no node is running for {}: start one with `hearsay --home {} run --identity NAME`, or \
         pass --control ADDR --token-file FILE",
        home.display(),
        home.display()
    ))
}

fn locate(home: &Path, target: &Target) -> Result<Control, Error> {
    let addr = match target.control {
        Some(addr) => addr,
        None => {
            let path = home.join(CONTROL_ADDR_FILE);
            let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => not_running(home),
                _ => failed(format!("cannot read {}: {e}", path.display())),
            })?;
            text.trim()
                .parse()
                .map_err(|_| failed(format!("{} does not hold an address", path.display())))?
        }
    };
    let token_path = target
        .token_file
        .clone()
        .unwrap_or_else(|| home.join(TOKEN_FILE));
    let token = std::fs::read_to_string(&token_path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound if target.token_file.is_none() => not_running(home),
        _ => failed(format!(
            "cannot read the token file {}: {e}",
            token_path.display()
        )),
    })?;
    Ok(Control {
        addr,
        token: token.trim().to_owned(),
    })
}

/// Sends a request and checks its status; the error says what went wrong in one line.
fn call(
    control: &Control,
    method: &str,
    path: &str,
    body: &[u8],
    timeout: Option<Duration>,
) -> Result<Response, Error> {
    let response = request(
        control.addr,
        method,
        path,
        Some(&control.token),
        body,
        timeout,
    )
    .map_err(|e| match e.kind() {
        io::ErrorKind::ConnectionRefused | io::ErrorKind::TimedOut => failed(format!(
            "no node answers at {}: is `hearsay run` running for this home?",
            control.addr
        )),
        _ => failed(format!("talking to the node at {}: {e}", control.addr)),
    })?;
    if response.status == 200 {
        return Ok(response);
    }
    let status = response.status;
    let body = response.body().unwrap_or_default();
    let text = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str().map(str::to_owned)))
        .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_owned());
    Err(failed(format!("the node refused (HTTP {status}): {text}")))
}

/// [`call`], then the answer's body as JSON.
fn call_json<T: serde::de::DeserializeOwned>(
    control: &Control,
    method: &str,
    path: &str,
    body: &[u8],
    timeout: Duration,
) -> Result<T, Error> {
    let body = call(control, method, path, body, Some(timeout))?
        .body()
        .map_err(|e| failed(format!("reading the node's answer: {e}")))?;
    serde_json::from_slice(&body)
        .map_err(|e| failed(format!("the node's answer is not valid: {e}")))
}

fn get_json<T: serde::de::DeserializeOwned>(control: &Control, path: &str) -> Result<T, Error> {
    call_json(control, "GET", path, &[], Duration::from_secs(30))
}

/// What to publish or send: `--message TEXT` or the contents of `--file FILE`.
fn payload_of(
    message: &Option<String>,
    file: &Option<PathBuf>,
    verb: &str,
) -> Result<Vec<u8>, Error> {
    match (message, file) {
        (Some(m), _) => Ok(m.clone().into_bytes()),
        (None, Some(path)) => {
            std::fs::read(path).map_err(|e| failed(format!("cannot read {}: {e}", path.display())))
        }
        (None, None) => Err(failed(format!(
            "say what to {verb}: --message TEXT or --file FILE"
        ))),
    }
}

fn out_error(e: io::Error) -> Error {
    failed(format!("cannot write to standard output: {e}"))
}

/// `hearsay publish`
pub fn publish(home: &Path, args: &PublishArgs, out: &mut dyn Write) -> Result<(), Error> {
    let payload = payload_of(&args.message, &args.file, "publish")?;
    let control = locate(home, &args.target)?;
    let path = format!("/v1/publish?topic={}", encode_query(&args.topic));
    let answer: serde_json::Value =
        call_json(&control, "POST", &path, &payload, Duration::from_secs(30))?;
    let id = answer.get("id").and_then(|v| v.as_str()).unwrap_or("?");
    writeln!(out, "published {id} on {}", args.topic).map_err(out_error)
}

/// `hearsay subscribe`
pub fn subscribe(home: &Path, args: &SubscribeArgs, out: &mut dyn Write) -> Result<(), Error> {
    let control = locate(home, &args.target)?;
    let mut path = format!("/v1/subscribe?topic={}", encode_query(&args.topic));
    if args.replay {
        path.push_str("&replay=1");
    }
    stream_lines(&control, &path, args.count, args.timeout, "messages", out)
}

/// Prints the JSON lines a streaming request sends until `count` arrived (`lagged` notes do
/// not count) or `timeout` passed (an error if `count` was not reached).
fn stream_lines(
    control: &Control,
    path: &str,
    count: Option<u64>,
    timeout: Option<Duration>,
    what: &str,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let started = Instant::now();
    let mut stream = call(control, "GET", path, &[], Some(Duration::from_secs(30)))?;
    // From now on reads wake up at least every 200 ms so the timeout is checked.
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(|e| failed(format!("talking to the node at {}: {e}", control.addr)))?;
    let mut seen = 0u64;
    loop {
        if count.is_some_and(|n| seen >= n) {
            return Ok(());
        }
        if let Some(limit) = timeout
            && started.elapsed() >= limit
        {
            return match count {
                Some(n) => Err(failed(format!(
                    "only {seen} of {n} {what} arrived within {limit:?}"
                ))),
                None => Ok(()),
            };
        }
        match stream.next_line() {
            Ok(Some(line)) => {
                if line.trim().is_empty() {
                    continue;
                }
                if !line.contains("\"lagged\"") {
                    seen += 1;
                }
                writeln!(out, "{line}").map_err(out_error)?;
                out.flush().map_err(out_error)?;
            }
            Ok(None) => return Err(failed("the node closed the stream (shutting down?)")),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(failed(format!("the stream broke: {e}"))),
        }
    }
}

/// `hearsay peers`
pub fn peers(home: &Path, args: &PeersArgs, out: &mut dyn Write) -> Result<(), Error> {
    let control = locate(home, &args.target)?;
    let list: Vec<PeerInfo> = get_json(&control, "/v1/peers")?;
    if args.json {
        let text = serde_json::to_string_pretty(&list).unwrap_or_default();
        return writeln!(out, "{text}").map_err(out_error);
    }
    if list.is_empty() {
        return writeln!(out, "no neighbours yet").map_err(out_error);
    }
    for p in &list {
        writeln!(out, "{}  {}", p.peer_id, p.address).map_err(out_error)?;
    }
    Ok(())
}

/// `hearsay status`
pub fn status(home: &Path, args: &StatusArgs, out: &mut dyn Write) -> Result<(), Error> {
    let control = locate(home, &args.target)?;
    let s: StatusInfo = get_json(&control, "/v1/status")?;
    if args.json {
        let text = serde_json::to_string_pretty(&s).unwrap_or_default();
        return writeln!(out, "{text}").map_err(out_error);
    }
    let mut roles = if s.roles_active.is_empty() {
        "none".to_owned()
    } else {
        s.roles_active.join(", ")
    };
    if let Some(stored) = s.mailbox_messages {
        roles.push_str(&format!(
            " (mailbox: {stored} stored, {} restored at start, {} lost)",
            s.mailbox_restored, s.mailbox_lost
        ));
    }
    if !s.observed_addresses.is_empty() {
        roles.push_str(&format!(
            "\nseen at:    {}",
            s.observed_addresses.join(", ")
        ));
    }
    let text = format!(
        "identity:   {} ({})\n\
         listening:  {} (bootstrap others with {})\n\
         control:    {}{}\n\
         roles:      {roles}\n\
         topics:     {}\n\
         neighbours: {} (records known: {})\n\
         traffic:    {} frames / {} bytes in, {} frames / {} bytes out\n\
         messages:   {} delivered, {} published\n\
         uptime:     {} s",
        s.identity,
        s.peer_id,
        s.listen,
        s.bootstrap,
        s.control,
        s.metrics
            .map(|m| format!(", metrics at http://{m}/metrics"))
            .unwrap_or_default(),
        if s.topics.is_empty() {
            "none".to_owned()
        } else {
            s.topics.join(", ")
        },
        s.neighbors,
        s.known_records,
        s.frames_in,
        s.bytes_in,
        s.frames_out,
        s.bytes_out,
        s.delivered,
        s.published,
        s.uptime_secs,
    );
    writeln!(out, "{text}").map_err(out_error)
}

/// `hearsay presence start|stop|online`
#[derive(Debug, Clone, Args)]
pub struct PresenceArgs {
    /// What to do: start (join the group and beacon), stop (say offline), online (list who is).
    #[arg(value_parser = ["start", "stop", "online"])]
    pub action: String,
    /// The group (see `hearsay group`).
    #[arg(long, value_name = "GROUP")]
    pub group: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// How to reach the node.
    #[command(flatten)]
    pub target: Target,
}

/// `hearsay presence ...`
pub fn presence(home: &Path, args: &PresenceArgs, out: &mut dyn Write) -> Result<(), Error> {
    // A clear error for an unknown group before anything else.
    crate::presence_groups::PresenceGroups::new(home).secret(&args.group)?;
    let control = locate(home, &args.target)?;
    let path = format!(
        "/v1/presence/{}?group={}",
        args.action,
        encode_query(&args.group)
    );
    let method = if args.action == "online" {
        "GET"
    } else {
        "POST"
    };
    let answer: serde_json::Value =
        call_json(&control, method, &path, &[], Duration::from_secs(30))?;
    if args.json {
        return writeln!(out, "{answer}").map_err(out_error);
    }
    match args.action.as_str() {
        "start" => writeln!(out, "present in {}", args.group),
        "stop" => writeln!(out, "left {} (offline)", args.group),
        _ => {
            let online = answer["online"].as_array().cloned().unwrap_or_default();
            if online.is_empty() {
                writeln!(out, "nobody else in {} is online", args.group)
            } else {
                online
                    .iter()
                    .try_for_each(|p| writeln!(out, "{}", p.as_str().unwrap_or("?")))
            }
        }
    }
    .map_err(out_error)
}

/// `hearsay send`
#[derive(Debug, Clone, Args)]
pub struct SendArgs {
    /// The recipient's peer id.
    #[arg(long, value_name = "PEERID")]
    pub to: String,
    /// The message text.
    #[arg(
        long,
        value_name = "TEXT",
        conflicts_with = "file",
        required_unless_present = "file"
    )]
    pub message: Option<String>,
    /// A file whose bytes are the message.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// How to reach the node.
    #[command(flatten)]
    pub target: Target,
}

/// `hearsay send`: an encrypted direct message.
pub fn send(home: &Path, args: &SendArgs, out: &mut dyn Write) -> Result<(), Error> {
    let payload = payload_of(&args.message, &args.file, "send")?;
    let control = locate(home, &args.target)?;
    let path = format!("/v1/send?to={}", encode_query(&args.to));
    let answer: serde_json::Value =
        call_json(&control, "POST", &path, &payload, Duration::from_secs(60))?;
    let id = answer.get("id").and_then(|v| v.as_str()).unwrap_or("?");
    writeln!(out, "sent {id} to {} (encrypted for it alone)", args.to).map_err(out_error)
}

/// `hearsay inbox`
#[derive(Debug, Clone, Args)]
pub struct InboxArgs {
    /// Stop after this many messages (fails if fewer arrive before --timeout).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Stop after this long, e.g. 30s, 500ms, 5m.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// First print what the node opened before (up to 1,024 since it started).
    #[arg(long)]
    pub replay: bool,
    /// How to reach the node.
    #[command(flatten)]
    pub target: Target,
}

/// `hearsay inbox`: the encrypted messages the node opens (letters from `send`, and encrypted
/// messages on its topics that name it), one JSON object per line.
pub fn inbox(home: &Path, args: &InboxArgs, out: &mut dyn Write) -> Result<(), Error> {
    let control = locate(home, &args.target)?;
    let path = if args.replay {
        "/v1/inbox?replay=1"
    } else {
        "/v1/inbox"
    };
    stream_lines(&control, path, args.count, args.timeout, "messages", out)
}
