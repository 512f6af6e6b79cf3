//! An HTTP receiver on loopback for outgoing deliveries (webhooks, Alertmanager,
//! PagerDuty): records every request with its arrival time and answers from a script of
//! statuses (then 200), so a test can make a destination fail and recover. Arrivals are
//! awaited through a channel, never by sleeping.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use tokio::sync::mpsc;

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    /// Path and query.
    pub path: String,
    /// Headers, lower-case names.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// When it arrived (wall clock, to compare with sample times).
    pub at: SystemTime,
    /// The status it was answered with.
    pub status: u16,
}

impl Received {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (panics when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

struct Shared {
    script: Mutex<VecDeque<u16>>,
    log: Mutex<Vec<Received>>,
    tx: mpsc::UnboundedSender<Received>,
}

/// The receiver; dropped, it stops.
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Received>>,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let status = shared
        .script
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .pop_front()
        .unwrap_or(200);
    let received = Received {
        path: uri.to_string(),
        headers: headers
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: body.to_vec(),
        at: SystemTime::now(),
        status,
    };
    shared
        .log
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(received.clone());
    let _ = shared.tx.send(received);
    StatusCode::from_u16(status).unwrap_or(StatusCode::OK)
}

impl Receiver {
    /// Starts a receiver answering `script` in order, then 200 to everything.
    pub async fn start(script: &[u16]) -> Receiver {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            script: Mutex::new(script.iter().copied().collect()),
            log: Mutex::new(Vec::new()),
            tx,
        });
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the receiver");
        let addr = listener.local_addr().expect("receiver address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            addr,
            shared,
            rx: tokio::sync::Mutex::new(rx),
            server,
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The next request (in arrival order), or `None` after `within`.
    pub async fn next(&self, within: Duration) -> Option<Received> {
        tokio::time::timeout(within, self.rx.lock().await.recv())
            .await
            .ok()
            .flatten()
    }

    /// The next request `accept` takes, skipping others; `None` after `within`.
    pub async fn next_matching(
        &self,
        within: Duration,
        accept: impl Fn(&Received) -> bool,
    ) -> Option<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let r = self.next(left).await?;
            if accept(&r) {
                return Some(r);
            }
        }
    }

    /// Everything received so far.
    pub fn all(&self) -> Vec<Received> {
        self.shared
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
