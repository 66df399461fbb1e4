//! The WebSocket opening handshake (RFC 6455 §4): an HTTP/1.1 request that asks to turn the
//! connection into a WebSocket, and the server's answer.
//!
//! What MQTT.js sends, and what mqttd answers (the key is RFC 6455 §1.3's example):
//!
//! ```text
//! GET /mqtt HTTP/1.1                              method GET, any path, HTTP/1.1 or later
//! Host: broker.example:8080                       required by HTTP/1.1 and §4.1
//! Upgrade: websocket                              a token list that must hold `websocket`
//! Connection: Upgrade                             a token list that must hold `Upgrade`
//! Sec-WebSocket-Version: 13                       the only version RFC 6455 defines
//! Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==     16 random bytes in base64
//! Sec-WebSocket-Protocol: mqtt                    the subprotocols offered
//!                                                 (an empty line ends the request)
//!
//! HTTP/1.1 101 Switching Protocols
//! Upgrade: websocket
//! Connection: Upgrade
//! Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=   base64(SHA-1(key + GUID))
//! Sec-WebSocket-Protocol: mqtt                    the one subprotocol chosen
//! ```
//!
//! After the empty line of the response, both sides speak in frames (see `frame.rs`).
//!
//! ## What the code around the parser must do
//!
//! Read into a buffer and call [`parse_request`] after each read. `Ok(None)`: read more
//! (never more than `limit` bytes in all, since the parser refuses the request when
//! `limit` bytes hold no complete one). `Ok(Some((upgrade, used)))`: write
//! [`accept_response`]; the bytes after `used` are already WebSocket frames (a client may
//! send its first frame right behind the request) and go to the frame decoder. `Err`:
//! write [`Refusal::response`], log [`Refusal::reason`], close the connection.
//!
//! Where we simplify: the request must end its lines with CRLF, as every WebSocket client
//! does (HTTP would let a server accept a bare LF); headers we do not need are not checked
//! beyond their syntax; `Origin` is not checked (it protects the visitors of a web site
//! from other sites' scripts, while a broker authenticates its clients in MQTT's own
//! CONNECT); no extension is negotiated.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha1::{Digest, Sha1};

/// The GUID that RFC 6455 §1.3 appends to the client's key before hashing it, so that only
/// a server that knows WebSocket can compute the answer.
pub const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// The subprotocol MQTT 3.1.1 names ([MQTT-6.0.0-3], [MQTT-6.0.0-4]).
pub const PROTOCOL_MQTT: &str = "mqtt";
/// The subprotocol some older clients offer instead (Paho JavaScript set to MQTT 3.1, and
/// its early versions whatever the setting).
pub const PROTOCOL_MQTT_V31: &str = "mqttv3.1";
/// The one WebSocket version there is (RFC 6455 §4.1).
const WEBSOCKET_VERSION: &str = "13";
/// How many random bytes the client's key holds (RFC 6455 §4.1).
const KEY_NONCE_LEN: usize = 16;

/// 400: the request is malformed or lacks what a WebSocket handshake needs.
pub const BAD_REQUEST: u16 = 400;
/// 405: a method other than GET (RFC 6455 §4.1).
pub const METHOD_NOT_ALLOWED: u16 = 405;
/// 426: not a WebSocket handshake, or a WebSocket version other than 13 (RFC 6455
/// §4.2.2).
pub const UPGRADE_REQUIRED: u16 = 426;
/// 431: the header block does not fit in the limit the caller set (RFC 6585 §5).
pub const HEADER_FIELDS_TOO_LARGE: u16 = 431;

/// What a valid upgrade request asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade {
    /// The request target, as sent (`/mqtt` for most clients). Every path is accepted, as
    /// Mosquitto does: the broker has one endpoint.
    pub path: String,
    /// The client's `Sec-WebSocket-Key`, without surrounding whitespace.
    pub key: String,
    /// The subprotocol the server answers with: [`PROTOCOL_MQTT`], or
    /// [`PROTOCOL_MQTT_V31`] when the client offered only that.
    pub protocol: &'static str,
}

/// Why a request was refused: the HTTP status to answer with, and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    /// What was wrong, for the broker's log and the response's body.
    pub reason: String,
}

impl Refusal {
    fn new(status: u16, reason: impl Into<String>) -> Refusal {
        Refusal {
            status,
            reason: reason.into(),
        }
    }

    fn bad_request(reason: impl Into<String>) -> Refusal {
        Refusal::new(BAD_REQUEST, reason)
    }

    /// The whole HTTP/1.1 response to send before closing the connection: the status, the
    /// headers its status calls for, and a short plain-text body saying what was wrong.
    pub fn response(&self) -> Vec<u8> {
        let body = self.body();
        let mut head = format!("HTTP/1.1 {} {}\r\n", self.status, status_text(self.status));
        match self.status {
            // RFC 9110 §15.5.6: a 405 lists the methods that are allowed.
            METHOD_NOT_ALLOWED => head.push_str("Allow: GET\r\nConnection: close\r\n"),
            // RFC 6455 §4.2.2: a 426 says which protocol and which WebSocket version to use.
            // RFC 9110 §7.8: whoever sends Upgrade also lists "Upgrade" in Connection.
            UPGRADE_REQUIRED => head.push_str(
                "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nConnection: Upgrade, close\r\n",
            ),
            _ => head.push_str("Connection: close\r\n"),
        }
        head.push_str("Content-Type: text/plain; charset=utf-8\r\n");
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut response = head.into_bytes();
        response.extend_from_slice(body.as_bytes());
        response
    }

    /// The body: what was wrong, and for a 426 (what a browser opening the URL gets) what
    /// this endpoint is.
    fn body(&self) -> String {
        let mut body = String::new();
        if self.status == UPGRADE_REQUIRED {
            body.push_str(
                "This is an MQTT over WebSocket endpoint: connect with an MQTT client \
                 using the WebSocket subprotocol \"mqtt\".\n",
            );
        }
        body.push_str(&self.reason);
        body.push('\n');
        body
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = status_text(self.status);
        write!(f, "{} {}: {}", self.status, text, self.reason)
    }
}

impl std::error::Error for Refusal {}

/// The reason phrase of each status this module sends.
fn status_text(status: u16) -> &'static str {
    match status {
        BAD_REQUEST => "Bad Request",
        METHOD_NOT_ALLOWED => "Method Not Allowed",
        UPGRADE_REQUIRED => "Upgrade Required",
        HEADER_FIELDS_TOO_LARGE => "Request Header Fields Too Large",
        _ => "Error",
    }
}

// ---------------------------------------------------------------------------------------
// Reading the request.

/// Parses the upgrade request at the start of `bytes`, what has arrived so far.
///
/// - `Ok(None)`: the header block is not complete yet (no empty line): read more.
/// - `Ok(Some((upgrade, used)))`: the first `used` bytes were the request; any bytes after
///   them belong to the WebSocket stream.
/// - `Err`: answer with [`Refusal::response`] and close. A header block that has not
///   ended within `limit` bytes is refused (431) as soon as `bytes.len()` reaches `limit`,
///   so the caller never needs to buffer more; bytes that cannot start an HTTP request
///   (an MQTT client that forgot the WebSocket, say) are refused as soon as they arrive.
pub fn parse_request(bytes: &[u8], limit: usize) -> Result<Option<(Upgrade, usize)>, Refusal> {
    let window = &bytes[..bytes.len().min(limit)];
    let Some(end) = find(window, b"\r\n\r\n") else {
        refuse_early(window)?;
        if bytes.len() >= limit {
            return Err(Refusal::new(
                HEADER_FIELDS_TOO_LARGE,
                format!("the request's header block is longer than {limit} bytes"),
            ));
        }
        return Ok(None);
    };
    let upgrade = read_request(&window[..end])?;
    Ok(Some((upgrade, end + 4)))
}

/// Judges the start of a request that has not ended yet, by its method: bytes that are
/// not a method followed by a space are no HTTP request (400), a whole method other than
/// GET is refused (405). A method still arriving is given the benefit of the doubt.
fn refuse_early(start: &[u8]) -> Result<(), Refusal> {
    let Some(method_len) = start.iter().position(|&b| !is_tchar(b)) else {
        return Ok(());
    };
    if method_len == 0 || start[method_len] != b' ' {
        return Err(Refusal::bad_request(
            "this is not an HTTP request line (an MQTT client that is not using WebSocket?)",
        ));
    }
    check_method(&start[..method_len])
}

/// Reads a complete header block, `head` (without the empty line that ends it).
fn read_request(head: &[u8]) -> Result<Upgrade, Refusal> {
    let lines = split_lines(head);
    let Some((request_line, header_lines)) = lines.split_first() else {
        return Err(Refusal::bad_request("the request is empty"));
    };
    let path = read_request_line(request_line)?;
    let headers = Headers::read(header_lines)?;
    check_host(&headers)?;
    check_upgrade(&headers)?;
    check_version(&headers)?;
    let key = read_key(&headers)?;
    let protocol = choose_protocol(&headers)?;
    Ok(Upgrade {
        path,
        key,
        protocol,
    })
}

/// `GET /path HTTP/1.1`: checks the method and the version, returns the path.
fn read_request_line(line: &[u8]) -> Result<String, Refusal> {
    let parts: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    let [method, target, version] = parts[..] else {
        return Err(Refusal::bad_request(
            "the request line is not `METHOD target HTTP/version`",
        ));
    };
    check_method(method)?;
    check_http_version(version)?;
    // Any path is accepted, as Mosquitto does; it only has to be one (visible ASCII).
    if target.is_empty() || !target.iter().all(u8::is_ascii_graphic) {
        return Err(Refusal::bad_request(
            "the request target is empty or not ASCII",
        ));
    }
    Ok(String::from_utf8_lossy(target).into_owned())
}

/// RFC 6455 §4.1: the handshake is a GET. Methods are case-sensitive: `get` is not GET.
fn check_method(method: &[u8]) -> Result<(), Refusal> {
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(Refusal::bad_request("the request's method is not a token"));
    }
    if method != b"GET" {
        return Err(Refusal::new(
            METHOD_NOT_ALLOWED,
            format!(
                "method {} is not allowed: a WebSocket handshake is a GET (RFC 6455 §4.1)",
                String::from_utf8_lossy(method)
            ),
        ));
    }
    Ok(())
}

/// RFC 6455 §4.1: the request is HTTP/1.1 or later (`HTTP/` digit `.` digit).
fn check_http_version(version: &[u8]) -> Result<(), Refusal> {
    let Some(&[major, b'.', minor]) = version.strip_prefix(b"HTTP/") else {
        return Err(Refusal::bad_request(
            "the request line ends without an HTTP version",
        ));
    };
    if !major.is_ascii_digit() || !minor.is_ascii_digit() {
        return Err(Refusal::bad_request(
            "the request line ends without an HTTP version",
        ));
    }
    if (major, minor) < (b'1', b'1') {
        return Err(Refusal::bad_request(format!(
            "HTTP/{}.{} cannot upgrade: a WebSocket handshake needs HTTP/1.1 (RFC 6455 §4.1)",
            char::from(major),
            char::from(minor)
        )));
    }
    Ok(())
}

/// RFC 9110 §7.2 and RFC 6455 §4.1: an HTTP/1.1 request names its host. Its value is not
/// compared with anything: the broker does not know under which names it is reached.
fn check_host(headers: &Headers<'_>) -> Result<(), Refusal> {
    if headers.values("Host").next().is_none() {
        return Err(Refusal::bad_request("no Host header (RFC 6455 §4.1)"));
    }
    Ok(())
}

/// RFC 6455 §4.2.1: `Upgrade` holds the token `websocket` and `Connection` the token
/// `Upgrade`, both case-insensitive and among others (a browser sends
/// `Connection: keep-alive, Upgrade`). A request without them is a plain HTTP request,
/// such as a browser opening the URL: 426 tells it what this endpoint is.
fn check_upgrade(headers: &Headers<'_>) -> Result<(), Refusal> {
    if !headers.has_token("Upgrade", "websocket") {
        return Err(Refusal::new(
            UPGRADE_REQUIRED,
            "the request has no `Upgrade: websocket` header (RFC 6455 §4.2.1)",
        ));
    }
    if !headers.has_token("Connection", "Upgrade") {
        return Err(Refusal::new(
            UPGRADE_REQUIRED,
            "the request's Connection header does not list `Upgrade` (RFC 6455 §4.2.1)",
        ));
    }
    Ok(())
}

/// RFC 6455 §4.2.2: a version other than 13 is answered with 426 and the version this
/// server speaks. A missing version gets the same answer, which tells the client more
/// than a bare 400 would.
fn check_version(headers: &Headers<'_>) -> Result<(), Refusal> {
    match headers.single("Sec-WebSocket-Version")? {
        Some(version) if version == WEBSOCKET_VERSION.as_bytes() => Ok(()),
        Some(other) => Err(Refusal::new(
            UPGRADE_REQUIRED,
            format!(
                "Sec-WebSocket-Version {} is not supported: this server speaks 13 \
                 (RFC 6455 §4.2.2)",
                String::from_utf8_lossy(other)
            ),
        )),
        None => Err(Refusal::new(
            UPGRADE_REQUIRED,
            "the request has no Sec-WebSocket-Version: this server speaks 13 (RFC 6455 §4.2.2)",
        )),
    }
}

/// RFC 6455 §4.1 and §4.2.1: the key is the base64 of 16 random bytes.
fn read_key(headers: &Headers<'_>) -> Result<String, Refusal> {
    let Some(key) = headers.single("Sec-WebSocket-Key")? else {
        return Err(Refusal::bad_request(
            "the request has no Sec-WebSocket-Key (RFC 6455 §4.1)",
        ));
    };
    match STANDARD.decode(key) {
        // Base64 is ASCII, so the text is the bytes as they came.
        Ok(nonce) if nonce.len() == KEY_NONCE_LEN => Ok(String::from_utf8_lossy(key).into_owned()),
        _ => Err(Refusal::bad_request(format!(
            "Sec-WebSocket-Key {:?} is not the base64 of 16 bytes (RFC 6455 §4.1)",
            String::from_utf8_lossy(key)
        ))),
    }
}

/// Chooses the subprotocol from those the client offered, in any number of
/// `Sec-WebSocket-Protocol` headers, each a comma-separated list (RFC 6455 §4.1).
///
/// The names are compared exactly: the client checks that the server answers one of the
/// names it sent, as it sent it (RFC 6455 §4.1), so `MQTT` cannot be answered with `mqtt`.
fn choose_protocol(headers: &Headers<'_>) -> Result<&'static str, Refusal> {
    let offered: Vec<&[u8]> = headers.tokens("Sec-WebSocket-Protocol").collect();
    let offers = |name: &str| offered.contains(&name.as_bytes());
    // [MQTT-6.0.0-4] the server selects `mqtt`, whenever the client offers it.
    if offers(PROTOCOL_MQTT) {
        return Ok(PROTOCOL_MQTT);
    }
    // Where we depart from [MQTT-6.0.0-4]: some old Paho JavaScript clients offer only
    // `mqttv3.1`, and Mosquitto answers them with it; so do we, to serve them too.
    if offers(PROTOCOL_MQTT_V31) {
        return Ok(PROTOCOL_MQTT_V31);
    }
    // [MQTT-6.0.0-3] is the client's rule: it offers `mqtt`. Without it there would be no
    // agreement that MQTT is spoken on this WebSocket at all.
    if offered.is_empty() {
        return Err(Refusal::bad_request(
            "the request offers no Sec-WebSocket-Protocol; an MQTT client offers `mqtt` \
             [MQTT-6.0.0-3]",
        ));
    }
    let names: Vec<String> = offered
        .iter()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    Err(Refusal::bad_request(format!(
        "Sec-WebSocket-Protocol offers {}, not `mqtt` [MQTT-6.0.0-3]",
        names.join(", ")
    )))
}

/// The header fields of a request, in order, as `(name, value)` byte slices of the
/// request itself. Values are kept as bytes: HTTP allows bytes above 0x7F in them, and
/// only the few we read need to be text.
struct Headers<'a> {
    fields: Vec<(&'a [u8], &'a [u8])>,
}

impl<'a> Headers<'a> {
    /// Reads the header lines; any line that is not `name: value` refuses the request.
    fn read(lines: &[&'a [u8]]) -> Result<Headers<'a>, Refusal> {
        let mut fields = Vec::with_capacity(lines.len());
        for (index, line) in lines.iter().enumerate() {
            let field = read_header_line(line).ok_or_else(|| {
                // Line 1 is the request line; header lines count from 2.
                Refusal::bad_request(format!("line {} is not a `Name: value` header", index + 2))
            })?;
            fields.push(field);
        }
        Ok(Headers { fields })
    }

    /// The values of every field called `name`, compared without case (RFC 9110 §5.1).
    fn values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a [u8]> + 's {
        self.fields
            .iter()
            .filter(move |(field, _)| field.eq_ignore_ascii_case(name.as_bytes()))
            .map(|&(_, value)| value)
    }

    /// The value of a field that may appear at most once (RFC 6455 §11.3.1, §11.3.5).
    fn single(&self, name: &str) -> Result<Option<&'a [u8]>, Refusal> {
        let mut values = self.values(name);
        let first = values.next();
        if values.next().is_some() {
            return Err(Refusal::bad_request(format!(
                "{name} appears more than once"
            )));
        }
        Ok(first)
    }

    /// The elements of the comma-separated lists in every field called `name`, trimmed,
    /// empty ones skipped (RFC 9110 §5.6.1).
    fn tokens<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a [u8]> + 's {
        self.values(name)
            .flat_map(|value| value.split(|&b| b == b','))
            .map(trim_whitespace)
            .filter(|token| !token.is_empty())
    }

    /// Whether a list field called `name` holds `token`, compared without case.
    fn has_token(&self, name: &str, token: &str) -> bool {
        self.tokens(name)
            .any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
    }
}

/// One header line, `name: value`, or `None` if it is not one.
///
/// The name is a token directly followed by the colon: RFC 9112 §5.1 forbids whitespace
/// there, and a line that starts with whitespace (the obsolete line folding, RFC 9112
/// §5.2) fails the same test. The value, trimmed, may hold no control character but tab.
fn read_header_line(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = line.iter().position(|&b| b == b':')?;
    let (name, value) = (&line[..colon], trim_whitespace(&line[colon + 1..]));
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return None;
    }
    if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7F) {
        return None;
    }
    Some((name, value))
}

/// A character allowed in a method or a header name (RFC 9110 §5.6.2 `tchar`).
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// `bytes` without leading and trailing spaces and tabs (RFC 9110 §5.6.3 `OWS`).
fn trim_whitespace(bytes: &[u8]) -> &[u8] {
    let is_space = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes
        .iter()
        .position(|b| !is_space(b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_space(b))
        .map_or(start, |last| last + 1);
    &bytes[start..end]
}

/// The lines of a header block, split at each CRLF.
fn split_lines(block: &[u8]) -> Vec<&[u8]> {
    let mut lines = Vec::new();
    let mut rest = block;
    while let Some(at) = find(rest, b"\r\n") {
        lines.push(&rest[..at]);
        rest = &rest[at + 2..];
    }
    lines.push(rest);
    lines
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

// ---------------------------------------------------------------------------------------
// Answering.

/// The 101 response that accepts `upgrade` (RFC 6455 §4.2.2). After it, frames.
pub fn accept_response(upgrade: &Upgrade) -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\n\
         Upgrade: websocket\r\n\
         Connection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\
         Sec-WebSocket-Protocol: {}\r\n\
         \r\n",
        accept_key(&upgrade.key),
        upgrade.protocol
    )
    .into_bytes()
}

/// The `Sec-WebSocket-Accept` value for a client's key (RFC 6455 §4.2.2, step 5.4): the
/// base64 of the SHA-1 of the key followed by [`WEBSOCKET_GUID`]. The client computes the
/// same and so knows a WebSocket server read its request.
pub fn accept_key(key: &str) -> String {
    let mut hasher = Sha1::new();
    hasher.update(key.as_bytes());
    hasher.update(WEBSOCKET_GUID.as_bytes());
    STANDARD.encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The limit the tests give the parser.
    const LIMIT: usize = 4096;

    /// A request as MQTT.js sends it (through the `ws` package), with RFC 6455 §1.3's key.
    const MQTT_JS_REQUEST: &[u8] = b"GET /mqtt HTTP/1.1\r\n\
        Sec-WebSocket-Version: 13\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Connection: Upgrade\r\n\
        Upgrade: websocket\r\n\
        Sec-WebSocket-Protocol: mqtt\r\n\
        Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
        Host: localhost:8080\r\n\
        \r\n";

    /// A request as a browser sends it (MQTT.js in a page), with the headers a browser adds.
    const BROWSER_REQUEST: &[u8] = b"GET /mqtt HTTP/1.1\r\n\
        Host: localhost:8080\r\n\
        User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
        Accept: */*\r\n\
        Accept-Language: en-US,en;q=0.5\r\n\
        Accept-Encoding: gzip, deflate, br, zstd\r\n\
        Sec-WebSocket-Version: 13\r\n\
        Origin: http://localhost:3000\r\n\
        Sec-WebSocket-Protocol: mqtt\r\n\
        Sec-WebSocket-Extensions: permessage-deflate\r\n\
        Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n\
        Connection: keep-alive, Upgrade\r\n\
        Sec-Fetch-Dest: empty\r\n\
        Sec-Fetch-Mode: websocket\r\n\
        Sec-Fetch-Site: same-site\r\n\
        Pragma: no-cache\r\n\
        Cache-Control: no-cache\r\n\
        Upgrade: websocket\r\n\
        \r\n";

    /// MQTT.js's request with the line starting `name` replaced by `line` (or removed,
    /// when `line` is empty).
    fn with_header(name: &str, line: &str) -> Vec<u8> {
        let text = std::str::from_utf8(MQTT_JS_REQUEST).unwrap();
        let mut out = String::new();
        for l in text.split_inclusive("\r\n") {
            if l.starts_with(name) {
                if !line.is_empty() {
                    out.push_str(line);
                    out.push_str("\r\n");
                }
            } else {
                out.push_str(l);
            }
        }
        out.into_bytes()
    }

    /// Parses a complete request that must be refused; returns the refusal.
    fn refused(request: &[u8]) -> Refusal {
        match parse_request(request, LIMIT) {
            Err(refusal) => refusal,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    /// Parses a request that must be accepted; returns the upgrade and the bytes used.
    fn accepted(request: &[u8]) -> (Upgrade, usize) {
        match parse_request(request, LIMIT) {
            Ok(Some(accepted)) => accepted,
            other => panic!("expected an upgrade, got {other:?}"),
        }
    }

    /// RFC 6455 §1.3's worked example.
    #[test]
    fn the_accept_key_of_the_rfc_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    /// [MQTT-6.0.0-4] MQTT.js offers `mqtt` and is answered with `mqtt`.
    #[test]
    fn an_mqtt_js_request_is_accepted_with_protocol_mqtt_mqtt_6_0_0_4() {
        let (upgrade, used) = accepted(MQTT_JS_REQUEST);
        let expected = Upgrade {
            path: "/mqtt".into(),
            key: "dGhlIHNhbXBsZSBub25jZQ==".into(),
            protocol: "mqtt",
        };
        assert_eq!((upgrade.clone(), used), (expected, MQTT_JS_REQUEST.len()));
        let response = b"HTTP/1.1 101 Switching Protocols\r\n\
            Upgrade: websocket\r\n\
            Connection: Upgrade\r\n\
            Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
            Sec-WebSocket-Protocol: mqtt\r\n\
            \r\n";
        assert_eq!(accept_response(&upgrade), response);
    }

    /// A browser lists `Upgrade` after `keep-alive` in Connection.
    #[test]
    fn a_browser_request_is_accepted() {
        let (upgrade, used) = accepted(BROWSER_REQUEST);
        assert_eq!((upgrade.protocol, used), ("mqtt", BROWSER_REQUEST.len()));
        assert_eq!(upgrade.key, "x3JJHMbDL1EzLkh9GBhXDw==");
    }

    #[test]
    fn header_names_and_upgrade_tokens_ignore_case_and_surrounding_space() {
        let request = b"GET / HTTP/1.1\r\n\
            HOST: x\r\n\
            upgrade:WebSocket\r\n\
            CONNECTION:  Keep-Alive ,  upgrade \t\r\n\
            sec-websocket-version: 13\r\n\
            SEC-WEBSOCKET-KEY:   dGhlIHNhbXBsZSBub25jZQ==  \r\n\
            Sec-Websocket-Protocol: mqtt\r\n\
            \r\n";
        let (upgrade, _) = accepted(request);
        assert_eq!(
            (upgrade.path.as_str(), upgrade.key.as_str()),
            ("/", "dGhlIHNhbXBsZSBub25jZQ==")
        );
    }

    /// [MQTT-6.0.0-4] `mqtt` is chosen wherever it stands among the offers; `mqttv3.1`
    /// alone, as old Paho clients send it, is answered with `mqttv3.1`.
    #[test]
    fn mqtt_is_preferred_and_mqttv3_1_alone_is_accepted_mqtt_6_0_0_4() {
        let table = [
            ("Sec-WebSocket-Protocol: mqttv3.1", "mqttv3.1"),
            ("Sec-WebSocket-Protocol: mqttv3.1, mqtt", "mqtt"),
            ("Sec-WebSocket-Protocol:chat ,mqtt,", "mqtt"),
            (
                "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: mqttv3.1",
                "mqttv3.1",
            ),
            (
                "Sec-WebSocket-Protocol: mqttv3.1\r\nSec-WebSocket-Protocol: mqtt",
                "mqtt",
            ),
        ];
        for (line, protocol) in table {
            let (upgrade, _) = accepted(&with_header("Sec-WebSocket-Protocol", line));
            assert_eq!(upgrade.protocol, protocol, "{line}");
            let response = String::from_utf8(accept_response(&upgrade)).unwrap();
            assert!(response.contains(&format!("\r\nSec-WebSocket-Protocol: {protocol}\r\n")));
        }
    }

    /// [MQTT-6.0.0-3] A client that does not offer `mqtt` (or `mqttv3.1`) is refused, and
    /// told what it offered.
    #[test]
    fn a_request_not_offering_mqtt_is_refused_mqtt_6_0_0_3() {
        let none = refused(&with_header("Sec-WebSocket-Protocol", ""));
        assert_eq!(none.status, 400);
        assert!(none.reason.contains("no Sec-WebSocket-Protocol"), "{none}");
        let other = refused(&with_header(
            "Sec-WebSocket-Protocol",
            "Sec-WebSocket-Protocol: chat, MQTT",
        ));
        assert_eq!(other.status, 400);
        assert!(other.reason.contains("offers chat, MQTT"), "{other}");
    }

    #[test]
    fn every_prefix_of_a_request_asks_for_more() {
        for request in [MQTT_JS_REQUEST, BROWSER_REQUEST] {
            for end in 0..request.len() {
                assert_eq!(
                    parse_request(&request[..end], LIMIT),
                    Ok(None),
                    "prefix of {end}"
                );
            }
        }
    }

    /// A client may send its first frame right behind the request: it is not the request's.
    #[test]
    fn a_frame_glued_behind_the_request_is_left_for_the_decoder() {
        let mut bytes = MQTT_JS_REQUEST.to_vec();
        // A masked binary frame holding PINGREQ (C0 00), key 37 FA 21 3D.
        bytes.extend([0x82, 0x82, 0x37, 0xFA, 0x21, 0x3D, 0xF7, 0xFA]);
        let (_, used) = accepted(&bytes);
        assert_eq!(used, MQTT_JS_REQUEST.len());
        let decoded = super::super::frame::Decoder::new().decode(&mut bytes[used..]);
        assert_eq!((decoded.payload, decoded.error), (2, None));
        assert_eq!(bytes[used..used + 2], [0xC0, 0x00]);
    }

    #[test]
    fn a_method_other_than_get_is_refused_with_405_and_allow_get() {
        for request in [
            &b"POST /mqtt HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"get / HTTP/1.1\r\n\r\n",
        ] {
            let refusal = refused(request);
            assert_eq!(refusal.status, 405);
            let response = String::from_utf8(refusal.response()).unwrap();
            assert!(
                response.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
                "{response}"
            );
            assert!(response.contains("\r\nAllow: GET\r\n"), "{response}");
        }
    }

    /// Judged early: the method is refused as soon as it has arrived whole, and bytes that
    /// cannot start a request (an MQTT CONNECT, `10 ..`) on their first byte.
    #[test]
    fn what_cannot_become_a_websocket_request_is_refused_before_it_ends() {
        assert_eq!(
            parse_request(b"PUT", LIMIT),
            Ok(None),
            "may still be PUTX..."
        );
        assert_eq!(refused(b"PUT ").status, 405);
        assert_eq!(parse_request(b"G", LIMIT), Ok(None));
        let connect = refused(&[0x10, 0x0C, 0x00, 0x04]);
        assert_eq!(connect.status, 400);
        assert!(connect.reason.contains("not an HTTP request"), "{connect}");
        assert_eq!(refused(b"GET\t/").status, 400);
    }

    #[test]
    fn http_before_1_1_or_no_version_is_refused_with_400() {
        for (line, words) in [
            ("GET /mqtt HTTP/1.0", "HTTP/1.0 cannot upgrade"),
            ("GET /mqtt HTTP/0.9", "HTTP/0.9 cannot upgrade"),
            ("GET /mqtt HTTP/x.1", "without an HTTP version"),
            ("GET /mqtt", "is not `METHOD target"),
            ("GET  /mqtt HTTP/1.1", "is not `METHOD target"),
        ] {
            let request = with_header("GET ", line);
            let refusal = refused(&request);
            assert_eq!(refusal.status, 400, "{line}");
            assert!(refusal.reason.contains(words), "{refusal}");
        }
        assert_eq!(
            accepted(&with_header("GET ", "GET /mqtt HTTP/2.0")).0.path,
            "/mqtt"
        );
    }

    /// What a browser opening the URL sends: a plain GET. It learns what the endpoint is.
    #[test]
    fn a_plain_get_is_told_426_upgrade_required() {
        let request = b"GET /mqtt HTTP/1.1\r\nHost: localhost:8080\r\nAccept: text/html\r\n\r\n";
        let refusal = refused(request);
        assert_eq!(refusal.status, 426);
        let response = String::from_utf8(refusal.response()).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
            "{head}"
        );
        for line in [
            "Upgrade: websocket",
            "Sec-WebSocket-Version: 13",
            "Connection: Upgrade, close",
        ] {
            assert!(head.contains(&format!("\r\n{line}")), "{line} in {head}");
        }
        assert!(head.contains(&format!("\r\nContent-Length: {}", body.len())));
        assert!(body.contains("MQTT over WebSocket endpoint"), "{body}");
    }

    #[test]
    fn missing_upgrade_or_connection_tokens_get_426() {
        for (name, line) in [
            ("Upgrade", ""),
            ("Upgrade", "Upgrade: h2c"),
            ("Connection", ""),
            ("Connection", "Connection: keep-alive"),
            ("Connection", "Connection: Upgraded"),
        ] {
            assert_eq!(
                refused(&with_header(name, line)).status,
                426,
                "{name}: {line:?}"
            );
        }
    }

    /// RFC 6455 §4.2.2: another version is answered with the one this server speaks.
    #[test]
    fn a_version_other_than_13_gets_426_naming_13() {
        for line in ["Sec-WebSocket-Version: 8", ""] {
            let refusal = refused(&with_header("Sec-WebSocket-Version", line));
            assert_eq!(refusal.status, 426, "{line:?}");
            let response = String::from_utf8(refusal.response()).unwrap();
            assert!(
                response.contains("\r\nSec-WebSocket-Version: 13\r\n"),
                "{response}"
            );
        }
    }

    #[test]
    fn a_key_that_is_not_16_bytes_of_base64_is_refused_with_400() {
        for line in [
            "",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ", // padding missing
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZXg=", // 17 bytes
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j",   // 15 bytes
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==!", // not base64
            // twice
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        ] {
            assert_eq!(
                refused(&with_header("Sec-WebSocket-Key", line)).status,
                400,
                "{line:?}"
            );
        }
    }

    #[test]
    fn a_request_without_host_is_refused_with_400() {
        let refusal = refused(&with_header("Host", ""));
        assert_eq!(refusal.status, 400);
        assert!(refusal.reason.contains("Host"), "{refusal}");
    }

    #[test]
    fn lines_that_are_not_headers_are_refused_with_400() {
        for line in [
            "No colon here",
            "Space before colon : x",
            ": no name",
            " Folded: continuation", // obsolete line folding
            "Bad\x01Name: x",
            "Bare-Cr: a\rb",
        ] {
            let request = with_header("Host", &format!("Host: x\r\n{line}"));
            let refusal = refused(&request);
            assert_eq!(refusal.status, 400, "{line:?}");
            assert!(
                refusal.reason.contains("is not a `Name: value` header"),
                "{refusal}"
            );
        }
    }

    /// The header block must end within the limit; the refusal comes as soon as `limit`
    /// bytes hold no end, so the caller never buffers more.
    #[test]
    fn a_header_block_over_the_limit_gets_431_as_soon_as_the_limit_is_reached() {
        let limit = MQTT_JS_REQUEST.len();
        assert!(
            matches!(parse_request(MQTT_JS_REQUEST, limit), Ok(Some(_))),
            "exactly fits"
        );
        let too_small = limit - 1;
        assert_eq!(
            parse_request(&MQTT_JS_REQUEST[..too_small - 1], too_small),
            Ok(None)
        );
        let refusal = parse_request(&MQTT_JS_REQUEST[..too_small], too_small).unwrap_err();
        assert_eq!(refusal.status, 431);
        let response = String::from_utf8(refusal.response()).unwrap();
        assert!(response.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert_eq!(
            parse_request(MQTT_JS_REQUEST, too_small)
                .unwrap_err()
                .status,
            431
        );
    }

    #[test]
    fn every_refusal_is_a_complete_response_that_closes() {
        let refusals = [
            refused(b"POST / HTTP/1.1\r\n\r\n"),
            refused(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            refused(&with_header("Host", "")),
            parse_request(b"GET / HTTP/1.1\r\n", 10).unwrap_err(),
        ];
        for refusal in refusals {
            let response = String::from_utf8(refusal.response()).unwrap();
            let (head, body) = response.split_once("\r\n\r\n").unwrap();
            assert!(
                head.contains("\r\nConnection: ") && head.contains("close"),
                "{head}"
            );
            assert!(
                head.contains("\r\nContent-Type: text/plain; charset=utf-8"),
                "{head}"
            );
            assert!(
                head.contains(&format!("\r\nContent-Length: {}", body.len())),
                "{head}"
            );
            assert!(body.contains(&refusal.reason), "{body}");
            assert!(refusal.to_string().starts_with(&refusal.status.to_string()));
        }
    }
}
