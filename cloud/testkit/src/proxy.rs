//! The one TCP proxy of the tests: put in front of a server the tests share (PostgreSQL),
//! it makes that server "go away" for the clients behind it without touching the server.
//!
//! - [`Proxy::cut`]: every open connection is closed and new ones are accepted and closed
//!   at once, which is what a client sees of a restarting server;
//! - [`Proxy::stall`]: open connections are closed and new ones are held open without
//!   forwarding anything (a server that hangs);
//! - [`Proxy::restore`]: forwards again.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const PASS: u8 = 0;
const CUT: u8 = 1;
const STALL: u8 = 2;

/// A running proxy; dropped, it stops accepting and closes what it forwards.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    mode: Arc<AtomicU8>,
    /// Bumped to close every open connection.
    generation: watch::Sender<u64>,
    connections: Arc<AtomicU64>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Listens on an ephemeral loopback port and forwards to `target`.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let mode = Arc::new(AtomicU8::new(PASS));
        let (generation, _) = watch::channel(0u64);
        let connections = Arc::new(AtomicU64::new(0));
        let accept = tokio::spawn(accept_loop(
            listener,
            target,
            Arc::clone(&mode),
            generation.clone(),
            Arc::clone(&connections),
        ));
        Proxy {
            addr,
            mode,
            generation,
            connections,
            accept,
        }
    }

    /// A proxy in front of the server of database `url` (`postgres://user@host:port/db`).
    pub async fn in_front_of(url: &str) -> Proxy {
        let host_port = UrlParts::of(url)
            .host_port
            .replace("localhost", "127.0.0.1");
        let target = if host_port.contains(':') {
            host_port
        } else {
            format!("{host_port}:5432")
        };
        let target = target
            .parse()
            .unwrap_or_else(|e| panic!("database server {target:?} is not an IP:port: {e}"));
        Proxy::start(target).await
    }

    /// `url` with its host:port replaced by the proxy's.
    pub fn url_for(&self, url: &str) -> String {
        let UrlParts {
            scheme,
            userinfo,
            path,
            ..
        } = UrlParts::of(url);
        let userinfo = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
        format!("{scheme}://{userinfo}{}/{path}", self.addr)
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every connection and refuses new ones until [`Proxy::restore`].
    pub fn cut(&self) {
        self.switch(CUT);
    }

    /// Closes every connection and holds new ones open without forwarding anything.
    pub fn stall(&self) {
        self.switch(STALL);
    }

    /// Forwards again.
    pub fn restore(&self) {
        self.mode.store(PASS, Ordering::SeqCst);
    }

    /// Connections forwarded so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }

    fn switch(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.switch(CUT);
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    mode: Arc<AtomicU8>,
    generation: watch::Sender<u64>,
    connections: Arc<AtomicU64>,
) {
    while let Ok((mut client, _)) = listener.accept().await {
        let mut closed = generation.subscribe();
        match mode.load(Ordering::SeqCst) {
            PASS => {
                connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = closed.changed() => {}
                    }
                });
            }
            STALL => {
                tokio::spawn(async move {
                    let _held = client;
                    let _ = closed.changed().await;
                });
            }
            _ => drop(client),
        }
    }
}

/// The parts of a `scheme://[userinfo@]host[:port]/path` URL the proxy rewrites.
struct UrlParts<'a> {
    scheme: &'a str,
    userinfo: Option<&'a str>,
    host_port: &'a str,
    path: &'a str,
}

impl<'a> UrlParts<'a> {
    fn of(url: &'a str) -> UrlParts<'a> {
        let (scheme, rest) = url.split_once("://").expect("database URL has a scheme");
        let (authority, path) = rest.split_once('/').expect("database URL has a path");
        let (userinfo, host_port) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        UrlParts {
            scheme,
            userinfo,
            host_port,
            path,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn urls_are_rewritten_to_the_proxy() {
        let proxy = Proxy::in_front_of("postgres://postgres@127.0.0.1:5432/wp").await;
        let url = proxy.url_for("postgres://postgres@127.0.0.1:5432/wp?x=1");
        assert_eq!(url, format!("postgres://postgres@{}/wp?x=1", proxy.addr()));
    }
}
