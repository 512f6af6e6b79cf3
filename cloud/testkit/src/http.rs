//! A minimal HTTP/1.1 client over a real socket: one request per connection
//! (`Connection: close`), enough to call the API and read JSON, text or HTML back.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response: status, headers (names lower-cased) and the de-chunked body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (panics with the body when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response is not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// `error.code` of an error body.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// `error.message` of an error body.
    pub fn error_message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// `GET target` (path and query, already percent-encoded where needed).
pub async fn get(addr: SocketAddr, target: &str) -> Response {
    request(addr, "GET", target, &[]).await
}

/// Sends one request without a body and reads the whole response.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Response {
    send(addr, method, target, headers, None).await
}

/// Sends a request as the holder of `token` (`Authorization: Bearer`), with a JSON body
/// when one is given.
pub async fn send_as(
    addr: SocketAddr,
    token: &str,
    method: &str,
    target: &str,
    body: Option<&serde_json::Value>,
) -> Response {
    let auth = format!("Bearer {token}");
    let body = body.map(|b| b.to_string().into_bytes());
    let mut headers = vec![("authorization", auth.as_str())];
    match &body {
        Some(_) => headers.push(("content-type", "application/json")),
        None => headers.push(("content-length", "0")),
    }
    send(addr, method, target, &headers, body.as_deref()).await
}

/// `POST target` with a JSON body (or none).
pub async fn post_json(
    addr: SocketAddr,
    target: &str,
    body: Option<&serde_json::Value>,
) -> Response {
    let body = body.map(|b| b.to_string().into_bytes());
    let headers = [("content-type", "application/json")];
    send(addr, "POST", target, &headers, body.as_deref()).await
}

/// Sends one request and reads the whole response (generous timeout: heavy report
/// requests on a loaded CI machine).
pub async fn send(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Response {
    tokio::time::timeout(
        Duration::from_secs(180),
        exchange(addr, method, target, headers, body),
    )
    .await
    .unwrap_or_else(|_| panic!("{method} {target}: no response within 180 s"))
    .unwrap_or_else(|e| panic!("{method} {target}: {e}"))
}

async fn exchange(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    if let Some(body) = body {
        stream.write_all(body).await?;
    }
    // Read to the end; a server-sent-events stream never ends, so it is read up to its
    // first event (the answer a test checks) and the connection dropped.
    let mut raw = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&chunk[..n]);
        if first_event_read(&raw) {
            break;
        }
    }
    parse(&raw).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Whether `raw` is an event stream's head and its first complete event.
fn first_event_read(raw: &[u8]) -> bool {
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    head.contains("content-type: text/event-stream")
        && raw[split + 4..].windows(2).any(|w| w == b"\n\n")
}

fn parse(raw: &[u8]) -> Result<Response, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|e| e.to_string())?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or("empty response")?;
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let body = &raw[split + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let stream = headers
        .iter()
        .any(|(n, v)| n == "content-type" && v.starts_with("text/event-stream"));
    let body = if chunked {
        // An event stream was not read to its end: the chunks read so far.
        dechunk(body, stream)?
    } else {
        body.to_vec()
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut body: &[u8], partial: bool) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") else {
            return if partial {
                Ok(out)
            } else {
                Err("bad chunk".into())
            };
        };
        let size_text = std::str::from_utf8(&body[..line_end]).map_err(|e| e.to_string())?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|e| format!("bad chunk size {size_text:?}: {e}"))?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        match (body.get(..size), body.get(size + 2..)) {
            (Some(data), Some(rest)) => {
                out.extend_from_slice(data);
                body = rest;
            }
            _ if partial => {
                out.extend_from_slice(&body[..size.min(body.len())]);
                return Ok(out);
            }
            _ => return Err("truncated chunk".into()),
        }
    }
}
