//! The front listener: the MQTT door gateways knock on. See the crate docs for the design;
//! this module is its code.
//!
//! One task per client connection. After the CONNECT (read, checked and rewritten here),
//! two futures run in that task: `upstream` reads client frames, checks each one and
//! forwards the original bytes to rumqttd on loopback; `downstream` copies rumqttd's frames
//! back and is the only writer to the client, so answers the front makes itself (PUBACK
//! for a dropped message, SUBACK for a refused filter, DISCONNECT) never split a frame.

pub(crate) mod acl;
pub(crate) mod certs;
pub(crate) mod kick;
pub(crate) mod limit;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rumqttc::mqttbytes::{self as m4, v4};
use rumqttc::v5::mqttbytes::{self as m5, v5};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::metrics::BrokerMetrics;
use crate::{BrokerAuth, ClientCertificates, FrontOptions, Identity, LoginRefusal, Protocol};
use base::Secret;

use crate::metrics::DropReason;
pub use kick::Kicker;

/// What every connection of every front listener shares.
#[derive(Debug)]
pub(crate) struct Front {
    pub(crate) auth: Arc<BrokerAuth>,
    /// The password the front puts in every CONNECT it forwards; rumqttd accepts nothing
    /// else (see `EmbeddedBroker::start_with`).
    pub(crate) internal_password: Secret,
    pub(crate) options: FrontOptions,
    pub(crate) throttle: Mutex<limit::LoginThrottle>,
    pub(crate) kicker: Kicker,
    pub(crate) metrics: BrokerMetrics,
    /// Each gateway's rate limiter, kept across its connections: reconnecting does not
    /// refill the buckets. One entry per gateway that ever logged in.
    pub(crate) limiters: Mutex<HashMap<(String, String), SharedLimiter>>,
}

/// One gateway's limiter, shared by its connections.
pub(crate) type SharedLimiter = Arc<Mutex<limit::Limiter>>;

impl Front {
    fn limiter(&self, tenant: &str, gateway: &str) -> SharedLimiter {
        let mut limiters = lock(&self.limiters);
        let limiter = limiters
            .entry((tenant.to_owned(), gateway.to_owned()))
            .or_insert_with(|| {
                Arc::new(Mutex::new(limit::Limiter::new(
                    &self.options,
                    Instant::now(),
                )))
            });
        Arc::clone(limiter)
    }
}

/// One front listener and the rumqttd listener behind it.
pub(crate) struct Door {
    pub(crate) name: String,
    pub(crate) protocol: Protocol,
    pub(crate) backend: SocketAddr,
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
    /// Whether gateways are asked for a client certificate (TLS listeners only).
    pub(crate) client_certificates: ClientCertificates,
    /// Time a new connection has for its TLS handshake and its CONNECT.
    pub(crate) connect_timeout: Duration,
    /// Largest accepted remaining length of a client packet.
    pub(crate) max_packet: usize,
}

impl std::fmt::Debug for Door {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Door")
            .field("name", &self.name)
            .field("protocol", &self.protocol)
            .field("backend", &self.backend)
            .field("tls", &self.tls.is_some())
            .field("client_certificates", &self.client_certificates)
            .finish_non_exhaustive()
    }
}

/// Accepts connections on `listener` until the process ends.
pub(crate) async fn serve(listener: tokio::net::TcpListener, door: Arc<Door>, front: Arc<Front>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let (door, front) = (Arc::clone(&door), Arc::clone(&front));
                tokio::spawn(async move { connection(stream, peer, door, front).await });
            }
            Err(e) => {
                // Out of file descriptors and the like: pause instead of spinning.
                warn!(listener = %door.name, error = %e, "front listener cannot accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

struct OpenGauge(BrokerMetrics);
impl Drop for OpenGauge {
    fn drop(&mut self) {
        self.0.connections.dec();
    }
}

async fn connection(stream: TcpStream, peer: SocketAddr, door: Arc<Door>, front: Arc<Front>) {
    let _ = stream.set_nodelay(true);
    front.metrics.connections.inc();
    let _open = OpenGauge(front.metrics.clone());
    match &door.tls {
        None => session(stream, peer, None, &door, &front).await,
        Some(acceptor) => {
            match tokio::time::timeout(door.connect_timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    // The client's certificate, if it presented one (the handshake proved
                    // it holds the key; the rest is checked at CONNECT).
                    let certificate = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .map(|c| c.as_ref().to_vec());
                    session(tls, peer, certificate, &door, &front).await
                }
                Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => debug!(%peer, "TLS handshake timed out"),
            }
        }
    }
}

/// Why a frame could not be read.
#[derive(Debug)]
enum FrameError {
    Closed,
    TooLarge,
    Malformed,
    Io,
}

/// Splits a byte stream into whole MQTT packets.
struct Frames {
    buf: BytesMut,
    max: usize,
}

impl Frames {
    fn new(max: usize) -> Frames {
        Frames {
            buf: BytesMut::with_capacity(8 * 1024),
            max,
        }
    }

    /// The next whole packet (fixed header included). Cancel-safe: bytes read before a
    /// cancellation stay in the buffer.
    async fn next<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> Result<BytesMut, FrameError> {
        loop {
            if let Some(len) = frame_len(&self.buf, self.max)? {
                return Ok(self.buf.split_to(len));
            }
            match r.read_buf(&mut self.buf).await {
                Ok(0) => return Err(FrameError::Closed),
                Ok(_) => {}
                Err(_) => return Err(FrameError::Io),
            }
        }
    }
}

/// The length of the packet at the start of `buf`, once its header is complete.
fn frame_len(buf: &[u8], max: usize) -> Result<Option<usize>, FrameError> {
    let mut remaining = 0usize;
    for i in 1..5 {
        let Some(&b) = buf.get(i) else {
            return Ok(None);
        };
        remaining |= usize::from(b & 0x7f) << (7 * (i - 1));
        if b & 0x80 == 0 {
            if remaining > max {
                return Err(FrameError::TooLarge);
            }
            let total = 1 + i + remaining;
            return Ok((buf.len() >= total).then_some(total));
        }
    }
    Err(FrameError::Malformed)
}

/// A CONNECT as the front sees it, whatever the protocol version.
enum Hello {
    V4(Box<v4::Connect>),
    V5(Box<(v5::Connect, Option<v5::LastWill>, Option<v5::Login>)>),
}

impl Hello {
    fn client_id(&self) -> &str {
        match self {
            Hello::V4(c) => &c.client_id,
            Hello::V5(c) => &c.0.client_id,
        }
    }

    fn login(&self) -> Option<(&str, &str)> {
        match self {
            Hello::V4(c) => c
                .login
                .as_ref()
                .map(|l| (l.username.as_str(), l.password.as_str())),
            Hello::V5(c) => {
                c.2.as_ref()
                    .map(|l| (l.username.as_str(), l.password.as_str()))
            }
        }
    }

    /// The will topic; `Some(None)` when it is not UTF-8.
    fn will_topic(&self) -> Option<Option<&str>> {
        match self {
            Hello::V4(c) => c.last_will.as_ref().map(|w| Some(w.topic.as_str())),
            Hello::V5(c) => c.1.as_ref().map(|w| std::str::from_utf8(&w.topic).ok()),
        }
    }

    fn enhanced_auth(&self) -> bool {
        matches!(self, Hello::V5(c) if c.0.properties.as_ref().is_some_and(|p| p.authentication_method.is_some()))
    }

    /// The CONNECT to forward: the same, with the internal password.
    fn rewritten(mut self, password: &str) -> Result<BytesMut, ()> {
        let mut out = BytesMut::new();
        match &mut self {
            Hello::V4(c) => {
                if let Some(l) = c.login.as_mut() {
                    l.password = password.to_owned();
                }
                c.write(&mut out).map_err(|_| ())?;
            }
            Hello::V5(c) => {
                let (connect, will, login) = &mut **c;
                if let Some(l) = login.as_mut() {
                    l.password = password.to_owned();
                }
                connect.write(will, login, &mut out).map_err(|_| ())?;
            }
        }
        Ok(out)
    }
}

/// Why a CONNECT is refused, mapped onto each protocol's CONNACK code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Login(LoginRefusal),
    Throttled,
    WillDenied,
    EnhancedAuth,
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Refusal::Login(r) => r.as_str(),
            Refusal::Throttled => "throttled",
            Refusal::WillDenied => "will_denied",
            Refusal::EnhancedAuth => "bad_auth_method",
        }
    }

    fn connack(self, protocol: Protocol) -> BytesMut {
        let mut out = BytesMut::new();
        match protocol {
            Protocol::V4 => {
                use v4::ConnectReturnCode as C;
                let code = match self {
                    Refusal::Login(LoginRefusal::BadCredentials) => C::BadUserNamePassword,
                    Refusal::Login(LoginRefusal::ClientId) => C::BadClientId,
                    Refusal::Login(LoginRefusal::Unavailable) => C::ServiceUnavailable,
                    Refusal::Login(LoginRefusal::NoCredentials | LoginRefusal::Certificate)
                    | Refusal::Throttled
                    | Refusal::WillDenied
                    | Refusal::EnhancedAuth => C::NotAuthorized,
                };
                let _ = v4::ConnAck::new(code, false).write(&mut out);
            }
            Protocol::V5 => {
                use v5::ConnectReturnCode as C;
                let code = match self {
                    Refusal::Login(LoginRefusal::BadCredentials) => C::BadUserNamePassword,
                    Refusal::Login(LoginRefusal::ClientId) => C::ClientIdentifierNotValid,
                    Refusal::Login(LoginRefusal::Unavailable) => C::ServerUnavailable,
                    Refusal::Login(LoginRefusal::NoCredentials | LoginRefusal::Certificate)
                    | Refusal::WillDenied => C::NotAuthorized,
                    Refusal::Throttled => C::ConnectionRateExceeded,
                    Refusal::EnhancedAuth => C::BadAuthenticationMethod,
                };
                let _ = v5::ConnAck {
                    session_present: false,
                    code,
                    properties: None,
                }
                .write(&mut out);
            }
        }
        out
    }
}

/// Reads and decodes the CONNECT; `None` after answering or dropping a bad one.
async fn hello<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut S,
    frames: &mut Frames,
    door: &Door,
    front: &Front,
) -> Option<Hello> {
    let frame = match tokio::time::timeout(door.connect_timeout, frames.next(client)).await {
        Ok(Ok(frame)) => frame,
        Ok(Err(_)) | Err(_) => {
            front.metrics.login("malformed");
            return None;
        }
    };
    let mut buf = frame;
    let decoded = match door.protocol {
        Protocol::V4 => match v4::Packet::read(&mut buf, door.max_packet) {
            Ok(v4::Packet::Connect(c)) if c.protocol == m4::Protocol::V4 => {
                Some(Hello::V4(Box::new(c)))
            }
            Ok(v4::Packet::Connect(_)) | Err(m4::Error::InvalidProtocolLevel(_)) => {
                let mut out = BytesMut::new();
                let _ = v4::ConnAck::new(v4::ConnectReturnCode::RefusedProtocolVersion, false)
                    .write(&mut out);
                let _ = client.write_all(&out).await;
                None
            }
            _ => None,
        },
        Protocol::V5 => match v5::Packet::read(&mut buf, Some(door.max_packet as u32)) {
            Ok(v5::Packet::Connect(c, will, login)) => Some(Hello::V5(Box::new((c, will, login)))),
            Err(m5::Error::InvalidProtocolLevel(_)) => {
                // An older client: answer in the 3.1.1 form it can read (0x01).
                let _ = client.write_all(&[0x20, 0x02, 0x00, 0x01]).await;
                None
            }
            _ => None,
        },
    };
    if decoded.is_none() {
        front.metrics.login("malformed");
    }
    decoded
}

/// Decides a CONNECT: who it is, or why not. `certificate` is the client certificate the
/// TLS handshake received (listeners asking for one only).
async fn admit(
    hello: &Hello,
    peer: IpAddr,
    certificate: Option<&[u8]>,
    door: &Door,
    front: &Front,
) -> Result<Identity, Refusal> {
    if hello.enhanced_auth() {
        return Err(Refusal::EnhancedAuth);
    }
    let Some((username, password)) = hello.login() else {
        return Err(Refusal::Login(LoginRefusal::NoCredentials));
    };
    // The ingester is throttled per (username, address) and never by address alone, so
    // failures elsewhere (or a gateway behind the same address) cannot lock it out.
    let ingester = front.auth.is_ingester(username);
    let key = if ingester {
        format!("{username}@{peer}")
    } else {
        username.to_owned()
    };
    let blocked = {
        let throttle = front.throttle.lock().unwrap_or_else(|p| p.into_inner());
        if ingester {
            throttle.blocked_user(&key, Instant::now())
        } else {
            throttle.blocked(peer, &key, Instant::now())
        }
    };
    if let Some(wait) = blocked {
        debug!(%peer, %username, retry_in = ?wait, "MQTT login throttled");
        return Err(Refusal::Throttled);
    }
    let mut verdict = front
        .auth
        .login(hello.client_id(), username, password)
        .await;
    // The certificate is a second factor, checked after the password.
    if let Ok(Identity::Gateway { tenant, gateway }) = &verdict {
        match (door.client_certificates, certificate) {
            (ClientCertificates::Off, _) => {}
            (_, Some(der)) => {
                if let Err(refusal) = front.auth.check_certificate(tenant, gateway, der).await {
                    verdict = Err(refusal);
                }
            }
            (ClientCertificates::Required, None) => {
                warn!(%peer, %username, listener = %door.name, "MQTT login refused: this listener requires a client certificate");
                verdict = Err(LoginRefusal::Certificate);
            }
            (ClientCertificates::Optional, None) => {}
        }
    }
    {
        let mut throttle = front.throttle.lock().unwrap_or_else(|p| p.into_inner());
        match &verdict {
            Ok(_) => throttle.succeeded(&key),
            // A store outage is not the client's fault.
            Err(LoginRefusal::Unavailable) => {}
            Err(_) => throttle.failed(peer, &key, Instant::now()),
        }
    }
    let identity = verdict.map_err(Refusal::Login)?;
    if let (Identity::Gateway { tenant, gateway }, Some(topic)) = (&identity, hello.will_topic())
        && !topic.is_some_and(|t| acl::Prefix::new(tenant, gateway).allows_topic(t))
    {
        return Err(Refusal::WillDenied);
    }
    Ok(identity)
}

async fn session<S>(
    mut client: S,
    peer: SocketAddr,
    certificate: Option<Vec<u8>>,
    door: &Door,
    front: &Front,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut frames = Frames::new(door.max_packet);
    let Some(hello) = hello(&mut client, &mut frames, door, front).await else {
        return;
    };
    let identity = match admit(&hello, peer.ip(), certificate.as_deref(), door, front).await {
        Ok(identity) => identity,
        Err(refusal) => {
            front.metrics.login(refusal.label());
            let username = hello.login().map_or("", |l| l.0);
            debug!(%peer, %username, client_id = %hello.client_id(), reason = refusal.label(), "MQTT login refused");
            let _ = client.write_all(&refusal.connack(door.protocol)).await;
            let _ = client.flush().await;
            return;
        }
    };
    front.metrics.login("accepted");
    let Ok(connect) = hello.rewritten(front.internal_password.expose()) else {
        return;
    };
    let backend = match TcpStream::connect(door.backend).await {
        Ok(s) => s,
        Err(e) => {
            warn!(listener = %door.name, error = %e, "front listener cannot reach rumqttd");
            let refusal = Refusal::Login(LoginRefusal::Unavailable);
            let _ = client.write_all(&refusal.connack(door.protocol)).await;
            return;
        }
    };
    let _ = backend.set_nodelay(true);
    let mut backend = backend;
    if backend.write_all(&connect).await.is_err() {
        return;
    }
    match identity {
        Identity::Ingester => {
            // Trusted: bytes pass both ways unexamined.
            let mut client = client;
            if !frames.buf.is_empty() && backend.write_all(&frames.buf).await.is_err() {
                return;
            }
            let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
        }
        Identity::Gateway { tenant, gateway } => {
            let (registration, kicked) = front.kicker.register(&tenant, &gateway);
            let limiter = front.limiter(&tenant, &gateway);
            let gw = Gateway {
                prefix: acl::Prefix::new(&tenant, &gateway),
                tenant,
                gateway,
                protocol: door.protocol,
                metrics: front.metrics.clone(),
            };
            let end = pump(client, backend, frames, &gw, limiter, kicked).await;
            drop(registration);
            if let Some(reason) = end.metric() {
                front.metrics.disconnect(reason);
            }
            match end {
                End::Kicked => {
                    info!(tenant = %gw.tenant, gateway = %gw.gateway, "gateway disconnected on demand")
                }
                End::Closed => {}
                other => {
                    warn!(tenant = %gw.tenant, gateway = %gw.gateway, %peer, reason = ?other, "gateway disconnected by the front listener")
                }
            }
        }
    }
}

/// A logged-in gateway connection.
struct Gateway {
    tenant: String,
    gateway: String,
    prefix: acl::Prefix,
    protocol: Protocol,
    metrics: BrokerMetrics,
}

/// How a gateway session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Either side closed.
    Closed,
    /// Disconnected on demand ([`Kicker`]).
    Kicked,
    /// A packet that does not decode, or one out of order.
    Protocol,
    /// A packet above the listener's size limit.
    TooLarge,
    /// Control packets over their budget.
    ControlRate,
    /// A QoS 2 PUBLISH that could not be forwarded (no way to refuse it and go on).
    Qos2Refused,
}

impl End {
    fn metric(self) -> Option<&'static str> {
        match self {
            End::Closed => None,
            End::Kicked => Some("kicked"),
            End::Protocol => Some("protocol"),
            End::TooLarge => Some("too_large"),
            End::ControlRate => Some("control_rate"),
            End::Qos2Refused => Some("qos2_refused"),
        }
    }

    /// The MQTT 5 DISCONNECT reason sent to the client before closing.
    fn reason(self) -> Option<v5::DisconnectReasonCode> {
        use v5::DisconnectReasonCode as D;
        match self {
            End::Closed => None,
            End::Kicked => Some(D::AdministrativeAction),
            End::Protocol => Some(D::ProtocolError),
            End::TooLarge => Some(D::PacketTooLarge),
            End::ControlRate => Some(D::MessageRateTooHigh),
            End::Qos2Refused => Some(D::NotAuthorized),
        }
    }
}

/// What `upstream` asks `downstream` to write to the client.
enum ToClient {
    Packet(BytesMut),
    Close(End),
}

/// SUBSCRIBEs forwarded with some filters removed: packet id → (filter count, refused
/// positions), so the broker's SUBACK can be completed.
type Pending = Arc<Mutex<HashMap<u16, (usize, Vec<usize>)>>>;

async fn pump<S>(
    client: S,
    backend: TcpStream,
    client_frames: Frames,
    gw: &Gateway,
    limiter: SharedLimiter,
    kicked: oneshot::Receiver<()>,
) -> End
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (client_r, client_w) = tokio::io::split(client);
    let (backend_r, backend_w) = backend.into_split();
    let (to_client, from_up) = mpsc::channel(64);
    let pending: Pending = Arc::default();
    let up = upstream(
        client_r,
        client_frames,
        backend_w,
        to_client,
        gw,
        limiter,
        Arc::clone(&pending),
    );
    let down = downstream(backend_r, client_w, from_up, gw, kicked, pending);
    tokio::pin!(up, down);
    tokio::select! {
        end = &mut down => end,
        end = &mut up => match end {
            // Let downstream write the DISCONNECT (or what is queued) first.
            Some(end) => {
                let _ = tokio::time::timeout(Duration::from_secs(5), &mut down).await;
                end
            }
            None => End::Closed,
        },
    }
}

/// Client → broker. Returns `Some(end)` after handing a close to `downstream`, `None`
/// when the client or broker went away.
async fn upstream<R>(
    mut client: R,
    mut frames: Frames,
    mut backend: tokio::net::tcp::OwnedWriteHalf,
    to_client: mpsc::Sender<ToClient>,
    gw: &Gateway,
    limiter: SharedLimiter,
    pending: Pending,
) -> Option<End>
where
    R: AsyncRead + Unpin,
{
    // MQTT 5 topic aliases set by this client, only ever for topics it may use.
    let mut aliases: HashMap<u16, ()> = HashMap::new();
    let close = |end: End| {
        let to_client = to_client.clone();
        async move {
            let _ = to_client.send(ToClient::Close(end)).await;
            Some(end)
        }
    };
    loop {
        let frame = match frames.next(&mut client).await {
            Ok(frame) => frame,
            Err(FrameError::Closed | FrameError::Io) => return None,
            Err(FrameError::TooLarge) => return close(End::TooLarge).await,
            Err(FrameError::Malformed) => return close(End::Protocol).await,
        };
        let verdict = {
            let mut limiter = lock(&limiter);
            match gw.protocol {
                Protocol::V4 => check_v4(frame, gw, &mut limiter, &pending),
                Protocol::V5 => check_v5(frame, gw, &mut limiter, &pending, &mut aliases),
            }
        };
        match verdict {
            Verdict::Forward(bytes) => {
                if backend.write_all(&bytes).await.is_err() {
                    return None;
                }
            }
            Verdict::Answer(bytes) => {
                if to_client.send(ToClient::Packet(bytes)).await.is_err() {
                    return None;
                }
            }
            Verdict::Drop => {}
            Verdict::Close(end) => return close(end).await,
        }
    }
}

/// What to do with one client packet.
enum Verdict {
    Forward(BytesMut),
    Answer(BytesMut),
    Drop,
    Close(End),
}

/// Counts a dropped PUBLISH and logs at powers of two (quiet under a storm).
fn count_drop(gw: &Gateway, reason: DropReason, bytes: usize) {
    let n = gw.metrics.dropped(&gw.tenant, &gw.gateway, reason, bytes);
    if n.is_power_of_two() {
        warn!(tenant = %gw.tenant, gateway = %gw.gateway, reason = reason.as_str(), dropped = n, "gateway message dropped by the front listener");
    }
}

/// Checks a PUBLISH's topic and rate; `Ok` to forward, `Err` why not.
fn publish_verdict(
    topic_ok: bool,
    limiter: &mut limit::Limiter,
    len: usize,
) -> Result<(), DropReason> {
    if !topic_ok {
        return Err(DropReason::TopicDenied);
    }
    limiter.admit(len, Instant::now())
}

fn check_v4(
    frame: BytesMut,
    gw: &Gateway,
    limiter: &mut limit::Limiter,
    pending: &Pending,
) -> Verdict {
    let len = frame.len();
    let mut buf = frame.clone();
    let packet = match v4::Packet::read(&mut buf, usize::MAX) {
        Ok(p) => p,
        Err(_) => return Verdict::Close(End::Protocol),
    };
    match packet {
        v4::Packet::Publish(p) => {
            match publish_verdict(gw.prefix.allows_topic(&p.topic), limiter, len) {
                Ok(()) => Verdict::Forward(frame),
                Err(reason) => {
                    count_drop(gw, reason, len);
                    match p.qos {
                        m4::QoS::AtMostOnce => Verdict::Drop,
                        // 3.1.1 has no negative PUBACK: acknowledge and drop, as Mosquitto
                        // does (MQTT-3.3.5-2); the agent re-sends until the cloud's own ack.
                        m4::QoS::AtLeastOnce => {
                            let mut out = BytesMut::new();
                            let _ = v4::PubAck::new(p.pkid).write(&mut out);
                            Verdict::Answer(out)
                        }
                        m4::QoS::ExactlyOnce => Verdict::Close(End::Qos2Refused),
                    }
                }
            }
        }
        v4::Packet::Subscribe(s) => {
            if !limiter.admit_control(Instant::now()) {
                return Verdict::Close(End::ControlRate);
            }
            let refused: Vec<usize> = s
                .filters
                .iter()
                .enumerate()
                .filter(|(_, f)| !gw.prefix.allows_filter(&f.path))
                .map(|(i, _)| i)
                .collect();
            count_refused_filters(gw, &refused);
            if refused.is_empty() {
                return Verdict::Forward(frame);
            }
            if refused.len() == s.filters.len() {
                let codes = vec![v4::SubscribeReasonCode::Failure; refused.len()];
                let mut out = BytesMut::new();
                let _ = v4::SubAck::new(s.pkid, codes).write(&mut out);
                return Verdict::Answer(out);
            }
            let total = s.filters.len();
            let kept = v4::Subscribe {
                pkid: s.pkid,
                filters: s
                    .filters
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| !refused.contains(i))
                    .map(|(_, f)| f)
                    .collect(),
            };
            lock(pending).insert(kept.pkid, (total, refused));
            let mut out = BytesMut::new();
            match kept.write(&mut out) {
                Ok(_) => Verdict::Forward(out),
                Err(_) => Verdict::Close(End::Protocol),
            }
        }
        v4::Packet::Unsubscribe(_) | v4::Packet::PingReq => {
            if limiter.admit_control(Instant::now()) {
                Verdict::Forward(frame)
            } else {
                Verdict::Close(End::ControlRate)
            }
        }
        v4::Packet::PubAck(_)
        | v4::Packet::PubRec(_)
        | v4::Packet::PubRel(_)
        | v4::Packet::PubComp(_)
        | v4::Packet::Disconnect => Verdict::Forward(frame),
        v4::Packet::Connect(_)
        | v4::Packet::ConnAck(_)
        | v4::Packet::SubAck(_)
        | v4::Packet::UnsubAck(_)
        | v4::Packet::PingResp => Verdict::Close(End::Protocol),
    }
}

fn check_v5(
    frame: BytesMut,
    gw: &Gateway,
    limiter: &mut limit::Limiter,
    pending: &Pending,
    aliases: &mut HashMap<u16, ()>,
) -> Verdict {
    let len = frame.len();
    let mut buf = frame.clone();
    let packet = match v5::Packet::read(&mut buf, None) {
        Ok(p) => p,
        Err(_) => return Verdict::Close(End::Protocol),
    };
    match packet {
        v5::Packet::Publish(p) => {
            let alias = p.properties.as_ref().and_then(|pr| pr.topic_alias);
            let topic_ok = if p.topic.is_empty() {
                // Alias only: it stands for a topic checked when the alias was set.
                match alias {
                    Some(a) if aliases.contains_key(&a) => true,
                    _ => return Verdict::Close(End::Protocol),
                }
            } else {
                std::str::from_utf8(&p.topic).is_ok_and(|t| gw.prefix.allows_topic(t))
            };
            match publish_verdict(topic_ok, limiter, len) {
                Ok(()) => {
                    if let (Some(a), false) = (alias, p.topic.is_empty()) {
                        aliases.insert(a, ());
                    }
                    Verdict::Forward(frame)
                }
                Err(reason) => {
                    count_drop(gw, reason, len);
                    let code = match reason {
                        DropReason::TopicDenied => v5::PubAckReason::NotAuthorized,
                        DropReason::MessageRate | DropReason::ByteRate => {
                            v5::PubAckReason::QuotaExceeded
                        }
                    };
                    match p.qos {
                        m5::QoS::AtMostOnce => Verdict::Drop,
                        m5::QoS::AtLeastOnce => {
                            let mut out = BytesMut::new();
                            let _ = v5::PubAck {
                                pkid: p.pkid,
                                reason: code,
                                properties: None,
                            }
                            .write(&mut out);
                            Verdict::Answer(out)
                        }
                        m5::QoS::ExactlyOnce => Verdict::Close(End::Qos2Refused),
                    }
                }
            }
        }
        v5::Packet::Subscribe(s) => {
            if !limiter.admit_control(Instant::now()) {
                return Verdict::Close(End::ControlRate);
            }
            let refused: Vec<usize> = s
                .filters
                .iter()
                .enumerate()
                .filter(|(_, f)| !gw.prefix.allows_filter(&f.path))
                .map(|(i, _)| i)
                .collect();
            count_refused_filters(gw, &refused);
            if refused.is_empty() {
                return Verdict::Forward(frame);
            }
            if refused.len() == s.filters.len() {
                let mut out = BytesMut::new();
                let _ = v5::SubAck {
                    pkid: s.pkid,
                    return_codes: vec![v5::SubscribeReasonCode::NotAuthorized; refused.len()],
                    properties: None,
                }
                .write(&mut out);
                return Verdict::Answer(out);
            }
            let total = s.filters.len();
            let kept = v5::Subscribe {
                pkid: s.pkid,
                filters: s
                    .filters
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| !refused.contains(i))
                    .map(|(_, f)| f)
                    .collect(),
                properties: s.properties,
            };
            lock(pending).insert(kept.pkid, (total, refused));
            let mut out = BytesMut::new();
            match kept.write(&mut out) {
                Ok(_) => Verdict::Forward(out),
                Err(_) => Verdict::Close(End::Protocol),
            }
        }
        v5::Packet::Unsubscribe(_) | v5::Packet::PingReq(_) => {
            if limiter.admit_control(Instant::now()) {
                Verdict::Forward(frame)
            } else {
                Verdict::Close(End::ControlRate)
            }
        }
        v5::Packet::PubAck(_)
        | v5::Packet::PubRec(_)
        | v5::Packet::PubRel(_)
        | v5::Packet::PubComp(_)
        | v5::Packet::Disconnect(_) => Verdict::Forward(frame),
        v5::Packet::Auth(_)
        | v5::Packet::Connect(..)
        | v5::Packet::ConnAck(_)
        | v5::Packet::SubAck(_)
        | v5::Packet::UnsubAck(_)
        | v5::Packet::PingResp(_) => Verdict::Close(End::Protocol),
    }
}

fn count_refused_filters(gw: &Gateway, refused: &[usize]) {
    if refused.is_empty() {
        return;
    }
    let n = gw
        .metrics
        .refused_subscriptions
        .get_or_create(&crate::metrics::GatewayLabels {
            tenant: gw.tenant.clone(),
            gateway: gw.gateway.clone(),
        })
        .inc_by(refused.len() as u64)
        + refused.len() as u64;
    if n.is_power_of_two() || refused.len() as u64 >= n {
        warn!(tenant = %gw.tenant, gateway = %gw.gateway, refused = n, "gateway subscription outside its own prefix refused");
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Broker → client, plus what upstream and the kicker ask for. Returns how it ended.
async fn downstream<W>(
    mut backend: tokio::net::tcp::OwnedReadHalf,
    mut client: W,
    mut from_up: mpsc::Receiver<ToClient>,
    gw: &Gateway,
    kicked: oneshot::Receiver<()>,
    pending: Pending,
) -> End
where
    W: AsyncWrite + Unpin,
{
    let mut frames = Frames::new(usize::MAX);
    let kicked = async {
        // A dropped sender means the registration is gone with the session: never fires.
        if kicked.await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(kicked);
    loop {
        let (bytes, end) = tokio::select! {
            biased;
            () = &mut kicked => (None, Some(End::Kicked)),
            msg = from_up.recv() => match msg {
                Some(ToClient::Packet(bytes)) => (Some(bytes), None),
                Some(ToClient::Close(end)) => (None, Some(end)),
                None => (None, Some(End::Closed)),
            },
            frame = frames.next(&mut backend) => match frame {
                Ok(frame) => (Some(complete_suback(frame, gw.protocol, &pending)), None),
                Err(_) => (None, Some(End::Closed)),
            },
        };
        if let Some(bytes) = bytes
            && client.write_all(&bytes).await.is_err()
        {
            return End::Closed;
        }
        if let Some(end) = end {
            if let (Protocol::V5, Some(code)) = (gw.protocol, end.reason()) {
                // Reason code and an empty property list. Not `v5::Disconnect::write`
                // (rumqttc 0.25 appends a property length its remaining length does not
                // count), and not the shorter form without properties, which the spec
                // allows but rumqttc's reader waits on forever.
                let _ = client.write_all(&[0xE0, 0x02, code as u8, 0x00]).await;
            }
            let _ = client.flush().await;
            let _ = client.shutdown().await;
            return end;
        }
    }
}

/// A broker SUBACK for a SUBSCRIBE forwarded with filters removed gets the refusals back
/// in their places; every other frame passes unchanged.
fn complete_suback(frame: BytesMut, protocol: Protocol, pending: &Pending) -> BytesMut {
    const SUBACK: u8 = 9;
    if frame.first().map(|b| b >> 4) != Some(SUBACK) {
        return frame;
    }
    let mut map = lock(pending);
    if map.is_empty() {
        return frame;
    }
    let mut buf = frame.clone();
    let mut out = BytesMut::new();
    match protocol {
        Protocol::V4 => {
            let Ok(v4::Packet::SubAck(mut ack)) = v4::Packet::read(&mut buf, usize::MAX) else {
                return frame;
            };
            let Some((total, refused)) = map.remove(&ack.pkid) else {
                return frame;
            };
            ack.return_codes = merge(
                total,
                &refused,
                ack.return_codes,
                v4::SubscribeReasonCode::Failure,
            );
            let _ = ack.write(&mut out);
        }
        Protocol::V5 => {
            let Ok(v5::Packet::SubAck(mut ack)) = v5::Packet::read(&mut buf, None) else {
                return frame;
            };
            let Some((total, refused)) = map.remove(&ack.pkid) else {
                return frame;
            };
            ack.return_codes = merge(
                total,
                &refused,
                ack.return_codes,
                v5::SubscribeReasonCode::NotAuthorized,
            );
            let _ = ack.write(&mut out);
        }
    }
    out
}

/// `total` codes: `refusal` at the `refused` positions, the broker's codes in order elsewhere.
fn merge<T: Copy>(total: usize, refused: &[usize], broker: Vec<T>, refusal: T) -> Vec<T> {
    let mut broker = broker.into_iter();
    (0..total)
        .map(|i| {
            if refused.contains(&i) {
                refusal
            } else {
                broker.next().unwrap_or(refusal)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lengths_follow_the_remaining_length_encoding() {
        assert!(matches!(frame_len(&[0x30], 100), Ok(None)));
        assert!(matches!(frame_len(&[0x30, 0x02, 0, 0], 100), Ok(Some(4))));
        assert!(matches!(frame_len(&[0x30, 0x02, 0], 100), Ok(None)));
        // 200 = 0xC8 0x01
        let mut big = vec![0x30, 0xC8, 0x01];
        big.extend(std::iter::repeat_n(0, 200));
        assert!(matches!(frame_len(&big, 1000), Ok(Some(203))));
        assert!(matches!(frame_len(&big, 100), Err(FrameError::TooLarge)));
        assert!(matches!(
            frame_len(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01], usize::MAX),
            Err(FrameError::Malformed)
        ));
    }

    #[test]
    fn refusals_are_merged_into_the_broker_suback_in_place() {
        assert_eq!(merge(4, &[0, 2], vec![1, 2], 0x80), vec![0x80, 1, 0x80, 2]);
        assert_eq!(merge(1, &[], vec![7], 0x80), vec![7]);
    }
}
