//! A blocking HTTP/1.1 keep-alive connection, one per driver thread.
//!
//! The drivers use plain threads and blocking sockets rather than an async runtime on
//! purpose: a thread sleeping in `nanosleep` wakes within tens of microseconds of its
//! deadline, where Tokio's timer wheel rounds every sleep up to the next millisecond.
//! A driver that measures a sub-millisecond p99 cannot add up to a millisecond of its
//! own lateness to every request.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long a driver waits for an answer before it gives the connection up.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The most header lines a response may carry.
const MAX_HEADERS: usize = 32;

/// An answer: its status and its body.
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Where a response's head ends and how long its body is, once the head is complete.
#[derive(Debug, PartialEq)]
pub struct Head {
    pub status: u16,
    pub head_len: usize,
    pub body_len: usize,
}

/// Parses a response head from the start of `buf`: `Ok(None)` while it is incomplete.
/// Only `Content-Length` framing is accepted (aftercart and the baseline both send it);
/// a chunked body is an error rather than a silent misread.
pub fn parse_head(buf: &[u8]) -> io::Result<Option<Head>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(invalid(format!("bad response head: {e}"))),
    };
    let status = response.code.unwrap_or(0);
    let mut body_len = None;
    for h in response.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let text = std::str::from_utf8(h.value).map_err(|e| invalid(e.to_string()))?;
            body_len = Some(
                text.trim()
                    .parse()
                    .map_err(|_| invalid(format!("bad content-length {text:?}")))?,
            );
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(invalid("chunked responses are not supported".into()));
        }
    }
    // 204 and 304 have no body by definition; anything else must say how long it is.
    let body_len = match (status, body_len) {
        (204 | 304, _) => 0,
        (_, Some(n)) => n,
        (_, None) => return Err(invalid(format!("status {status} without content-length"))),
    };
    Ok(Some(Head {
        status,
        head_len,
        body_len,
    }))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// One keep-alive connection to a server.
pub struct Conn {
    addr: SocketAddr,
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        Ok(Conn {
            addr,
            stream,
            buf: Vec::with_capacity(16 * 1024),
        })
    }

    /// Opens a new connection in place of this one (after an error, or a server that
    /// closed it).
    pub fn reopen(&mut self) -> io::Result<()> {
        *self = Conn::open(self.addr)?;
        Ok(())
    }

    /// Sends a whole request (head and body, as built by [`request`]) and reads the answer.
    pub fn exchange(&mut self, request: &[u8]) -> io::Result<Response> {
        self.stream.write_all(request)?;
        self.buf.clear();
        let mut chunk = [0u8; 16 * 1024];
        let head = loop {
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
            if let Some(head) = parse_head(&self.buf)? {
                break head;
            }
        };
        let total = head.head_len + head.body_len;
        while self.buf.len() < total {
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        Ok(Response {
            status: head.status,
            body: self.buf[head.head_len..total].to_vec(),
        })
    }
}

/// The bytes of one request: `target` is a path with its query; `headers` are extra
/// `(name, value)` pairs.
pub fn request(
    method: &str,
    host: SocketAddr,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n").as_bytes());
    for (name, value) in headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// The path and query of a URL the server handed out (`http://host:port/p?q` → `/p?q`):
/// the drivers send tracking URLs over their own connection, whatever host they name.
pub fn path_of(url: &str) -> &str {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .unwrap_or(url);
    match rest.find('/') {
        Some(i) if rest.len() != url.len() => &rest[i..],
        _ if rest.len() != url.len() => "/",
        _ => url,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_is_parsed_once_complete() {
        let full =
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-type: application/json\r\n\r\nhello";
        assert_eq!(parse_head(&full[..20]).unwrap(), None);
        let head = parse_head(full).unwrap().unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(head.body_len, 5);
        assert_eq!(&full[head.head_len..], b"hello");
    }

    #[test]
    fn no_content_needs_no_length_and_chunked_is_refused() {
        let head = parse_head(b"HTTP/1.1 204 No Content\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((head.status, head.body_len), (204, 0));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
    }

    #[test]
    fn requests_carry_their_length() {
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let r = request(
            "POST",
            addr,
            "/v1/x",
            &[("Content-Type", "application/json")],
            b"{}",
        );
        assert_eq!(
            String::from_utf8(r).unwrap(),
            "POST /v1/x HTTP/1.1\r\nHost: 127.0.0.1:9\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        );
        let r = request("GET", addr, "/healthz", &[], b"");
        assert!(!String::from_utf8(r).unwrap().contains("Content-Length"));
    }

    #[test]
    fn tracking_urls_are_reduced_to_their_path() {
        assert_eq!(
            path_of("http://127.0.0.1:0/v1/events/click?t=abc"),
            "/v1/events/click?t=abc"
        );
        assert_eq!(path_of("https://ads.example"), "/");
        assert_eq!(path_of("/already/a/path"), "/already/a/path");
    }
}
