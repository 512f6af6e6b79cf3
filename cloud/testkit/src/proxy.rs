//! A TCP proxy between the API and PostgreSQL that a test can cut (connections reset,
//! new ones refused) or stall (connections accepted, nothing forwarded): a database
//! that goes away, without touching the shared server.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

const PASS: u8 = 0;
const CUT: u8 = 1;
const STALL: u8 = 2;

#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    mode: Arc<AtomicU8>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(AtomicU8::new(PASS));
        let connections: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let accept = tokio::spawn({
            let (mode, connections) = (Arc::clone(&mode), Arc::clone(&connections));
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let task = match mode.load(Ordering::SeqCst) {
                        PASS => tokio::spawn(forward(client, target)),
                        STALL => tokio::spawn(async move {
                            let _held = client;
                            std::future::pending::<()>().await;
                        }),
                        _ => continue, // dropped: the client sees a closed connection
                    };
                    connections.lock().unwrap().push(task.abort_handle());
                }
            }
        });
        Proxy {
            addr,
            mode,
            connections,
            accept,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Resets every connection and refuses new ones.
    pub fn cut(&self) {
        self.switch(CUT);
    }

    /// Resets every connection and holds new ones open without forwarding anything.
    pub fn stall(&self) {
        self.switch(STALL);
    }

    /// Forwards again.
    pub fn restore(&self) {
        self.mode.store(PASS, Ordering::SeqCst);
    }

    fn switch(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.switch(CUT);
    }
}

async fn forward(mut client: TcpStream, target: SocketAddr) {
    if let Ok(mut server) = TcpStream::connect(target).await {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    }
}
