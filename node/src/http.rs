//! A tiny HTTP/1.1 client over [`std::net::TcpStream`], enough for the local control API: one
//! request per connection, `Content-Length` or chunked responses, read line by line for streams.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The longest status line or header line accepted.
const MAX_LINE: usize = 8 * 1024;
/// The largest non-streamed response body accepted.
const MAX_BODY: usize = 16 << 20;

/// A response whose head has been read; the body is read with [`Response::body`] or, for a
/// stream, [`Response::next_line`].
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    chunked: bool,
    length: Option<usize>,
    /// Bytes left in the current chunk.
    chunk_left: usize,
    done: bool,
    /// A line begun before a read timed out.
    pending: Vec<u8>,
    reader: BufReader<TcpStream>,
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

fn read_line(reader: &mut BufReader<TcpStream>) -> io::Result<String> {
    let mut line = Vec::new();
    let n = reader
        .by_ref()
        .take(MAX_LINE as u64)
        .read_until(b'\n', &mut line)?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the connection closed early",
        ));
    }
    if !line.ends_with(b"\n") {
        return Err(bad("a response line is too long"));
    }
    String::from_utf8(line)
        .map(|l| l.trim_end_matches(['\r', '\n']).to_owned())
        .map_err(|_| bad("a response line is not UTF-8"))
}

/// Sends `method path` with `body` to `addr`, with `Authorization: Bearer token` if a token is
/// given, and reads the response head. `timeout` bounds the connect and each read (`None`: reads
/// wait for ever, for streams).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
    timeout: Option<Duration>,
) -> io::Result<Response> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(timeout)?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    head.push_str("\r\n");
    let mut writer = &stream;
    writer.write_all(head.as_bytes())?;
    writer.write_all(body)?;
    writer.flush()?;

    let mut reader = BufReader::new(stream);
    let status_line = read_line(&mut reader)?;
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("not an HTTP response"))?;
    let (mut chunked, mut length) = (false, None);
    for _ in 0..100 {
        let line = read_line(&mut reader)?;
        if line.is_empty() {
            return Ok(Response {
                status,
                chunked,
                length,
                chunk_left: 0,
                done: false,
                pending: Vec::new(),
                reader,
            });
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(bad("a malformed header"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse().map_err(|_| bad("a bad Content-Length"))?);
        }
    }
    Err(bad("too many headers"))
}

impl Response {
    /// Reads up to `buf.len()` body bytes; 0 at the end of the body.
    fn read_body(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if !self.chunked {
            let want = match self.length {
                Some(0) => {
                    self.done = true;
                    return Ok(0);
                }
                Some(left) => buf.len().min(left),
                None => buf.len(),
            };
            let n = self.reader.read(&mut buf[..want])?;
            if n == 0 {
                self.done = true;
                if self.length.is_some() {
                    return Err(bad("the body ended early"));
                }
            }
            if let Some(left) = &mut self.length {
                *left -= n;
            }
            return Ok(n);
        }
        if self.chunk_left == 0 {
            let line = read_line(&mut self.reader)?;
            let size = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size, 16).map_err(|_| bad("a bad chunk size"))?;
            if size == 0 {
                self.done = true;
                return Ok(0);
            }
            self.chunk_left = size;
        }
        let want = buf.len().min(self.chunk_left);
        let n = self.reader.read(&mut buf[..want])?;
        if n == 0 {
            return Err(bad("the body ended early"));
        }
        self.chunk_left -= n;
        if self.chunk_left == 0 {
            let crlf = read_line(&mut self.reader)?;
            if !crlf.is_empty() {
                return Err(bad("a chunk is longer than its size"));
            }
        }
        Ok(n)
    }

    /// Changes the read timeout for what follows (`None`: wait for ever).
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.reader.get_ref().set_read_timeout(timeout)
    }

    /// The whole body (at most 16 MiB).
    pub fn body(mut self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let n = self.read_body(&mut buf)?;
            if n == 0 {
                return Ok(out);
            }
            out.extend_from_slice(&buf[..n]);
            if out.len() > MAX_BODY {
                return Err(bad("the response is too large"));
            }
        }
    }

    /// The next line of a streamed body, without its newline; `None` at the end. After a read
    /// timeout (an error of kind `WouldBlock` or `TimedOut`), call again: nothing is lost.
    pub fn next_line(&mut self) -> io::Result<Option<String>> {
        let mut byte = [0u8; 1];
        loop {
            if self.read_body(&mut byte)? == 0 {
                if self.pending.is_empty() {
                    return Ok(None);
                }
                let line = std::mem::take(&mut self.pending);
                return String::from_utf8(line)
                    .map(Some)
                    .map_err(|_| bad("not UTF-8"));
            }
            if byte[0] == b'\n' {
                let line = std::mem::take(&mut self.pending);
                return String::from_utf8(line)
                    .map(Some)
                    .map_err(|_| bad("not UTF-8"));
            }
            self.pending.push(byte[0]);
            if self.pending.len() > MAX_BODY {
                return Err(bad("a line is too long"));
            }
        }
    }
}

/// Parses a duration: `250ms`, `10s`, `5m`, `1h`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: use e.g. 500ms, 10s, 5m or 1h"))?;
    let secs = match unit {
        "ms" => number / 1000.0,
        "" | "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => {
            return Err(format!(
                "invalid duration {text:?}: use e.g. 500ms, 10s, 5m or 1h"
            ));
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("invalid duration {text:?}"))
}

/// Percent-encodes a query value (everything but unreserved characters).
pub fn encode_query(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes a percent-encoded query value (`+` is a space).
pub fn decode_query(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_queries() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5y").is_err());
        let raw = "a b/ç?&=";
        assert_eq!(decode_query(&encode_query(raw)).as_deref(), Some(raw));
    }
}
