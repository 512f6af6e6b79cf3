//! The ingest pipeline task: rounds of messages, one data transaction per round, acks
//! after commit. See the [module docs](super) for the invariants.
//!
//! A *round* is up to `max_batch_messages` deliveries, or what arrived within
//! `max_batch_delay` of the first one. Each message is handled in arrival order (a birth
//! is applied before the data behind it); data batches are staged, then committed together;
//! acks and MQTT acks are sent for the whole round afterwards.
//!
//! Database calls go through [`retry`]: transient failures (connection lost, pool timeout,
//! serialization failure, server shutting down, ...) are retried with exponential backoff
//! forever, holding the round; permanent ones are returned so the message can be rejected.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use base::Backoff;
use chrono::{DateTime, Utc};
use rumqttc::v5::AsyncClient;
use rumqttc::v5::mqttbytes::QoS;
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};
use wire::topic::Kind;
use wire::{Ack, Batch, Birth, Command, CommandKind, CommandResult, Death, MessageKey, Rejected};

use super::IngestOptions;
use super::auth::{Keyring, RepeatLog, Verdict};
use super::classify::{self, Address, Payload, Refusal};
use super::detection::Scoring;
use super::mqtt::{Delivery, Epoch};
use super::rows::batch_rows;
use super::sessions::Sessions;
use super::stats::{IngestStats, RejectReason, add, bump};
use super::status::Report;
use store::gateways::GatewayActivity;
use store::{
    AliasMap, BatchRecord, Db, DbError, GatewayId, IngestOutcome, Rejection, TelemetryRow, TenantId,
};

/// Alias maps kept in memory (one per gateway boot); the cache is cleared when full.
const ALIAS_CACHE_LIMIT: usize = 10_000;
/// Most refused batches remembered for de-duplicating their rejection records.
const REFUSED_MEMORY_LIMIT: usize = 100_000;
/// How long a rebirth request stays valid (the agent refuses it afterwards, and remembers
/// its id until then, against replays).
const COMMAND_TTL_MS: i64 = 5 * 60 * 1000;

/// A registered gateway, as resolved from a topic.
#[derive(Debug, Clone, Copy)]
struct Gateway {
    id: GatewayId,
    tenant_id: TenantId,
}

/// Where a data batch came from.
#[derive(Debug)]
struct Source {
    topic: String,
    payload_size: usize,
    address: Address,
    gateway: Gateway,
    /// The key that opened the batch: what goes back to the gateway is sealed with it.
    key: MessageKey,
}

/// A data batch ready for the round's transaction.
#[derive(Debug)]
struct Staged {
    source: Source,
    record: BatchRecord,
    rows: Vec<TelemetryRow>,
    buffer: Option<wire::BufferStatus>,
    /// Gateway clock minus receive time (ms), live batches only.
    skew_ms: Option<i64>,
}

/// The pipeline's state.
pub(crate) struct Pipeline {
    db: Db,
    client: AsyncClient,
    epoch: Arc<Epoch>,
    stats: Arc<IngestStats>,
    options: IngestOptions,
    ack_qos: QoS,
    gateways: HashMap<(String, String), Gateway>,
    keys: Keyring,
    repeats: RepeatLog,
    aliases: HashMap<(GatewayId, u64), Arc<AliasMap>>,
    sessions: Sessions,
    /// Batches refused for good and told to their gateway, so a copy re-sent by an agent
    /// that predates negative acks is counted but not recorded again.
    refused: HashSet<(GatewayId, u64, u64, u64)>,
    status: mpsc::UnboundedSender<Report>,
    /// The queue to the detection worker (none when `[detection] enabled = false`).
    detection: Option<mpsc::Sender<Vec<Scoring>>>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("gateways", &self.gateways.len())
            .field("aliases", &self.aliases.len())
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    pub(crate) fn new(
        db: Db,
        client: AsyncClient,
        epoch: Arc<Epoch>,
        stats: Arc<IngestStats>,
        options: IngestOptions,
        status: mpsc::UnboundedSender<Report>,
        detection: Option<mpsc::Sender<Vec<Scoring>>>,
    ) -> Pipeline {
        let ack_qos = if options.ack_qos == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        };
        Pipeline {
            detection,
            sessions: Sessions::new(options.seq_gap_window, options.rebirth_min_interval),
            db,
            client,
            epoch,
            stats,
            options,
            ack_qos,
            gateways: HashMap::new(),
            keys: Keyring::default(),
            repeats: RepeatLog::default(),
            aliases: HashMap::new(),
            refused: HashSet::new(),
            status,
        }
    }

    /// Processes rounds until the event loop's channel closes.
    pub(crate) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Delivery>) {
        while let Some(first) = rx.recv().await {
            let mut round = vec![first];
            let deadline = tokio::time::Instant::now() + self.options.max_batch_delay;
            while round.len() < self.options.max_batch_messages {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(d)) => round.push(d),
                    Ok(None) | Err(_) => break,
                }
            }
            self.process(round).await;
        }
        info!("MQTT event loop stopped; ingest pipeline ends");
    }

    /// Handles one round: every message, one transaction, acks.
    async fn process(&mut self, round: Vec<Delivery>) {
        let (received_at, started) = (Utc::now(), Instant::now());
        let mut staged = Vec::new();
        for delivery in &round {
            bump(&self.stats.messages_received);
            if let Some(batch) = self.handle(delivery, received_at).await {
                staged.push(batch);
            }
        }
        let handled = started.elapsed();
        let committed = self.commit(staged).await;
        let stored = started.elapsed();
        self.publish_acks(&committed).await;
        self.mqtt_ack(&round).await;
        self.after_commit(&committed, received_at).await;
        debug!(messages = round.len(), batches = committed.len(), ?handled, ?stored,
               total = ?started.elapsed(), "round done");
    }

    /// Steps 1-4 for one message; returns a staged data batch, if it is one.
    async fn handle(&mut self, d: &Delivery, at: DateTime<Utc>) -> Option<Staged> {
        let topic = String::from_utf8_lossy(&d.publish.topic).into_owned();
        let payload = &d.publish.payload;
        let address = match classify::parse_topic(&topic) {
            Ok(a) => a,
            Err(r) => {
                self.reject(&topic, None, None, payload.len(), r).await;
                return None;
            }
        };
        let gateway = match self.resolve(&address).await {
            Ok(g) => g,
            Err((tenant_id, r)) => {
                self.reject(&topic, Some(&address), tenant_id, payload.len(), r)
                    .await;
                return None;
            }
        };
        // Authentication before anything else: nothing of a forged message is decoded.
        let (message, key) = match self.authenticate(gateway, &topic, payload).await {
            Ok(opened) => opened,
            Err(r) => {
                self.reject(
                    &topic,
                    Some(&address),
                    Some(gateway.tenant_id),
                    payload.len(),
                    r,
                )
                .await;
                return None;
            }
        };
        let decoded = match classify::decode_payload(address.kind, message) {
            Ok(p) => p,
            Err(r) => {
                self.reject(
                    &topic,
                    Some(&address),
                    Some(gateway.tenant_id),
                    payload.len(),
                    r,
                )
                .await;
                return None;
            }
        };
        let outcome = match decoded {
            Payload::Birth(b) => self.birth(&address, gateway, &b, at).await.map(|()| None),
            Payload::Death(death) => self
                .death(&address, gateway, death, at)
                .await
                .map(|()| None),
            Payload::CmdResult(r) => {
                self.command_result(&address, &r);
                Ok(None)
            }
            Payload::Data(batch) => {
                let source = Source {
                    topic: topic.clone(),
                    payload_size: payload.len(),
                    address: address.clone(),
                    gateway,
                    key,
                };
                self.stage(source, batch, at).await.map(Some)
            }
        };
        match outcome {
            Ok(staged) => staged,
            Err(r) => {
                self.reject(
                    &topic,
                    Some(&address),
                    Some(gateway.tenant_id),
                    payload.len(),
                    r,
                )
                .await;
                None
            }
        }
    }

    /// Step 2: the topic's tenant and gateway must be registered, the gateway under that
    /// tenant. Found gateways are cached (ids never change).
    async fn resolve(&mut self, a: &Address) -> Result<Gateway, (Option<TenantId>, Refusal)> {
        let key = (a.tenant.clone(), a.gateway.clone());
        if let Some(g) = self.gateways.get(&key) {
            return Ok(*g);
        }
        let db = self.db.clone();
        let found = retry(&self.stats, &self.options, "gateway lookup", || {
            db.lookup_gateway(&a.tenant, &a.gateway)
        })
        .await;
        match found {
            Ok(Some(info)) => {
                let g = Gateway {
                    id: info.id,
                    tenant_id: info.tenant_id,
                };
                self.gateways.insert(key, g);
                Ok(g)
            }
            Ok(None) => {
                let tenant = retry(&self.stats, &self.options, "tenant lookup", || {
                    db.tenant_by_slug(&a.tenant)
                })
                .await
                .ok()
                .flatten();
                let refusal = match tenant {
                    Some(_) => Refusal::new(
                        RejectReason::UnknownGateway,
                        format!("tenant {:?} has no gateway {:?}", a.tenant, a.gateway),
                    ),
                    None => Refusal::new(
                        RejectReason::UnknownTenant,
                        format!("no tenant {:?}", a.tenant),
                    ),
                };
                Err((tenant, refusal))
            }
            Err(e) => Err((
                None,
                Refusal::new(RejectReason::StorageRefused, format!("gateway lookup: {e}")),
            )),
        }
    }

    /// Step 2b: opens the seal with the gateway's keys (read again when they may have
    /// rotated); returns the message and the key that opened it.
    async fn authenticate<'p>(
        &mut self,
        g: Gateway,
        topic: &str,
        payload: &'p [u8],
    ) -> Result<(&'p [u8], MessageKey), Refusal> {
        let now = Instant::now();
        let mut read = false;
        loop {
            match self.keys.open(g.id, topic, payload, now) {
                Verdict::Opened(message, key) => return Ok((message, key)),
                Verdict::Refused { error, stale } if !stale || read => {
                    let detail = if self.keys.is_empty(g.id) {
                        "the gateway has no message key (provisioned before messages were \
                         authenticated): provision it again"
                            .to_owned()
                    } else {
                        error.to_string()
                    };
                    return Err(Refusal::new(RejectReason::Unauthenticated, detail));
                }
                Verdict::Unknown | Verdict::Refused { .. } => {}
            }
            let db = self.db.clone();
            let keys = retry(&self.stats, &self.options, "message keys", || {
                db.gateway_message_keys(g.id)
            })
            .await
            .map_err(|e| permanent_refusal("message keys", e))?;
            self.keys.store(g.id, keys, now);
            read = true;
        }
    }

    async fn birth(
        &mut self,
        a: &Address,
        g: Gateway,
        birth: &Birth,
        at: DateTime<Utc>,
    ) -> Result<(), Refusal> {
        let db = self.db.clone();
        let map = retry(&self.stats, &self.options, "apply birth", || {
            db.apply_birth(g.id, birth, at)
        })
        .await
        .map_err(|e| permanent_refusal("birth", e))?;
        info!(tenant = %a.tenant, gateway = %a.gateway, boot_id = %wire::HexId(birth.boot_id),
              agent_version = %birth.agent_version, series = map.len(), "birth applied");
        self.cache_aliases(g.id, birth.boot_id, Arc::new(map));
        self.sessions.birth(g.id, birth.boot_id);
        bump(&self.stats.births_applied);
        Ok(())
    }

    async fn death(
        &mut self,
        a: &Address,
        g: Gateway,
        death: Death,
        at: DateTime<Utc>,
    ) -> Result<(), Refusal> {
        let db = self.db.clone();
        let ended = retry(&self.stats, &self.options, "mark offline", || {
            db.mark_gateway_offline(g.id, Some(death.boot_id), at)
        })
        .await
        .map_err(|e| permanent_refusal("death", e))?;
        if ended {
            info!(tenant = %a.tenant, gateway = %a.gateway, boot_id = %wire::HexId(death.boot_id), "gateway offline (death)");
        } else {
            info!(tenant = %a.tenant, gateway = %a.gateway, boot_id = %wire::HexId(death.boot_id),
                  "death of an earlier session ignored");
        }
        bump(&self.stats.deaths_processed);
        Ok(())
    }

    fn command_result(&self, a: &Address, r: &CommandResult) {
        bump(&self.stats.command_results);
        if r.ok {
            info!(tenant = %a.tenant, gateway = %a.gateway, command = r.id, message = %r.message, "command succeeded");
        } else {
            warn!(tenant = %a.tenant, gateway = %a.gateway, command = r.id, message = %r.message, "command failed");
        }
    }

    /// Step 4 for data: alias map of the batch's boot, rows with engineering values.
    async fn stage(
        &mut self,
        source: Source,
        batch: Batch,
        at: DateTime<Utc>,
    ) -> Result<Staged, Refusal> {
        let (a, g) = (&source.address, source.gateway);
        let header = batch.header;
        let Some(aliases) = self.aliases_of(g.id, header.boot_id).await? else {
            let key = source.key.clone();
            self.request_rebirth(a, g.id, &key, Some(header.boot_id))
                .await;
            return Err(Refusal::new(
                RejectReason::UnknownBoot,
                format!(
                    "batch seq {} of boot {} whose birth is unknown; rebirth requested",
                    header.seq, header.boot_id
                ),
            ));
        };
        let mapped = batch_rows(&batch, |d, m| aliases.get(d, m).copied());
        if mapped.unmapped > 0 {
            let (d, m) = mapped.first_unmapped.unwrap_or_default();
            let refusal = Refusal::new(
                RejectReason::UnknownAlias,
                format!(
                    "batch seq {}: {} samples with aliases missing from boot {}'s catalog \
                     (first: device {d}, metric {m}); the batch's other samples are stored",
                    header.seq, mapped.unmapped, header.boot_id
                ),
            );
            let (topic, size) = (source.topic.clone(), source.payload_size);
            self.reject(&topic, Some(a), Some(g.tenant_id), size, refusal)
                .await;
        }
        let skew_ms = match (header.historical, mapped.newest_ts_ms) {
            (false, Some(newest)) => Some(self.clock_skew(a, newest, at)),
            _ => None,
        };
        Ok(Staged {
            record: BatchRecord {
                epoch: header.epoch,
                gateway: g.id,
                seq: header.seq,
                boot_id: header.boot_id,
                historical: header.historical,
                received_at: at,
            },
            rows: mapped.rows,
            buffer: header.status,
            skew_ms,
            source,
        })
    }

    /// Records the skew of a live batch; returns gateway clock minus receive time (ms).
    fn clock_skew(&self, a: &Address, newest_ts_ms: i64, at: DateTime<Utc>) -> i64 {
        let skew = at.timestamp_millis().saturating_sub(newest_ts_ms);
        self.stats.last_clock_skew_ms.store(skew, Ordering::Relaxed);
        let threshold =
            i64::try_from(self.options.clock_skew_threshold.as_millis()).unwrap_or(i64::MAX);
        if skew.unsigned_abs() > threshold.unsigned_abs() {
            bump(&self.stats.clock_skew_flags);
            warn!(tenant = %a.tenant, gateway = %a.gateway, skew_ms = skew,
                  "clock skew: receive time minus newest sample time exceeds the threshold");
        }
        -skew
    }

    /// The alias map of a boot: cached, else from the database (`None`: unknown boot).
    async fn aliases_of(
        &mut self,
        gateway: GatewayId,
        boot_id: u64,
    ) -> Result<Option<Arc<AliasMap>>, Refusal> {
        if let Some(map) = self.aliases.get(&(gateway, boot_id)) {
            return Ok(Some(Arc::clone(map)));
        }
        let db = self.db.clone();
        let map = retry(&self.stats, &self.options, "alias map", || {
            db.alias_map(gateway, boot_id)
        })
        .await
        .map_err(|e| permanent_refusal("alias map", e))?;
        Ok(map.map(|m| {
            let m = Arc::new(m);
            self.cache_aliases(gateway, boot_id, Arc::clone(&m));
            m
        }))
    }

    fn cache_aliases(&mut self, gateway: GatewayId, boot_id: u64, map: Arc<AliasMap>) {
        if self.aliases.len() >= ALIAS_CACHE_LIMIT {
            self.aliases.clear();
        }
        self.aliases.insert((gateway, boot_id), map);
    }

    /// Publishes `Rebirth{boot_id}` on the gateway's cmd topic, at most once per
    /// `rebirth_min_interval` per gateway.
    async fn request_rebirth(
        &mut self,
        a: &Address,
        gateway: GatewayId,
        key: &MessageKey,
        boot_id: Option<u64>,
    ) {
        if !self.sessions.allow_rebirth(gateway, Instant::now()) {
            debug!(tenant = %a.tenant, gateway = %a.gateway, "rebirth already requested recently");
            return;
        }
        let command = Command {
            id: rand::random::<u64>() >> 1,
            expires_ms: Utc::now().timestamp_millis() + COMMAND_TTL_MS,
            kind: CommandKind::Rebirth { boot_id },
        };
        let topic = wire::topic::topic(&a.tenant, &a.gateway, Kind::Cmd);
        let payload = wire::seal::seal(key, &topic, &command.encode());
        match self
            .client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
        {
            Ok(()) => {
                bump(&self.stats.rebirths_requested);
                info!(tenant = %a.tenant, gateway = %a.gateway, boot_id = %boot_id.map_or("current".to_owned(), |b| wire::HexId(b).to_string()), command = command.id, "rebirth requested");
            }
            Err(e) => {
                warn!(tenant = %a.tenant, gateway = %a.gateway, error = %e, "could not queue rebirth command")
            }
        }
    }

    /// Counts, logs and records a refused message. Unauthenticated messages come in
    /// floods: each is counted, but recorded and logged as an aggregate ([`RepeatLog`]).
    async fn reject(
        &mut self,
        topic: &str,
        address: Option<&Address>,
        tenant_id: Option<TenantId>,
        payload_size: usize,
        refusal: Refusal,
    ) {
        self.stats.reject(refusal.reason);
        let mut detail = refusal.detail;
        if refusal.reason == RejectReason::Unauthenticated {
            match self
                .repeats
                .note(topic, refusal.reason.as_str(), Instant::now())
            {
                None => {
                    debug!(%topic, reason = refusal.reason.as_str(), "message rejected (aggregated)");
                    return;
                }
                Some(1) => {}
                Some(n) => {
                    detail = format!(
                        "{detail} ({n} messages refused on this topic since the last record)"
                    )
                }
            }
        }
        let (tenant, gateway) =
            address.map_or(("", ""), |a| (a.tenant.as_str(), a.gateway.as_str()));
        warn!(%topic, reason = refusal.reason.as_str(), %detail, "message rejected");
        let reason = format!("{}: {}", refusal.reason.as_str(), detail);
        let row = Rejection {
            tenant_id,
            tenant,
            gateway,
            topic,
            reason: &reason,
            payload_size,
        };
        let db = self.db.clone();
        if let Err(e) = retry(&self.stats, &self.options, "record rejection", || {
            db.record_rejection(&row)
        })
        .await
        {
            error!(%topic, error = %e, "could not record rejection (counted and logged only)");
        }
    }

    /// Step 5: the round's data batches in one transaction. Returns the committed batches
    /// (stored now or before); the others are rejected here. The newly stored ones go to
    /// the detection worker (step 7).
    async fn commit(&mut self, mut staged: Vec<Staged>) -> Vec<Staged> {
        if staged.is_empty() {
            return staged;
        }
        let db = self.db.clone();
        let queue = self.detection.is_some();
        let result = retry(&self.stats, &self.options, "ingest transaction", || {
            ingest_tx(&db, &staged, queue)
        })
        .await;
        match result {
            Ok(outcome) => {
                self.queue_scoring(&mut staged, &outcome).await;
                self.settle(staged, outcome).await
            }
            Err(e) if staged.len() == 1 => {
                let batch = staged.into_iter().next().expect("one staged batch");
                let refusal = permanent_refusal("ingest transaction", e);
                self.reject_staged(&batch, refusal).await;
                Vec::new()
            }
            Err(e) => {
                warn!(error = %e, batches = staged.len(),
                      "ingest transaction refused; committing batches one by one to isolate the cause");
                let mut committed = Vec::new();
                for batch in staged {
                    committed.extend(Box::pin(self.commit(vec![batch])).await);
                }
                committed
            }
        }
    }

    /// Step 7: hands the rows of the batches this transaction stored to the detection
    /// worker (they are in the backlog, committed). Waits while its queue is full: the
    /// ingest does not outrun detection for long.
    async fn queue_scoring(&mut self, staged: &mut [Staged], outcome: &IngestOutcome) {
        let Some(queue) = &self.detection else {
            return;
        };
        let stored: HashSet<_> = outcome.stored.iter().collect();
        let work: Vec<Scoring> = staged
            .iter_mut()
            .filter(|b| !b.rows.is_empty() && stored.contains(&b.record.key()))
            .map(|b| Scoring {
                key: b.record.key(),
                historical: b.record.historical,
                rows: std::mem::take(&mut b.rows),
            })
            .collect();
        if !work.is_empty() && queue.send(work).await.is_err() {
            error!("detection worker stopped; these batches wait in the backlog for a sweep");
        }
    }

    /// Sorts a committed transaction's batches into stored, duplicate and conflicting.
    async fn settle(&mut self, staged: Vec<Staged>, outcome: IngestOutcome) -> Vec<Staged> {
        bump(&self.stats.transactions);
        add(&self.stats.batches_stored, outcome.stored.len() as u64);
        add(
            &self.stats.batches_duplicate,
            outcome.duplicates.len() as u64,
        );
        add(&self.stats.samples_stored, outcome.samples);
        let committed: std::collections::HashSet<_> = outcome.committed().collect();
        let mut acked = Vec::with_capacity(staged.len());
        for batch in staged {
            let key = batch.record.key();
            // A conflict is matched by boot too: in one round the original and a stale
            // copy under another boot can share the key, and only the latter is refused.
            let conflict = outcome.conflicts.iter().find(|c| {
                (c.gateway, c.epoch, c.seq) == key && c.incoming_boot_id == batch.record.boot_id
            });
            if conflict.is_none() && committed.contains(&key) {
                acked.push(batch);
                continue;
            }
            let detail = match conflict {
                Some(c) => format!(
                    "seq {} is already stored for boot {}, this batch is boot {}: the gateway's sequence went backwards",
                    c.seq, c.stored_boot_id, c.incoming_boot_id
                ),
                None => format!(
                    "seq {} was neither stored nor found stored",
                    batch.record.seq
                ),
            };
            self.reject_staged(&batch, Refusal::new(RejectReason::SeqConflict, detail))
                .await;
        }
        acked
    }

    /// Refuses a data batch for good: recorded once, and told to its gateway with a
    /// negative ack so the agent sets the batch aside instead of re-sending it.
    async fn reject_staged(&mut self, batch: &Staged, refusal: Refusal) {
        let source = &batch.source;
        if refusal.reason == RejectReason::StorageRefused {
            // The gateway may have been deleted since it was cached: look it up again.
            self.gateways.remove(&(
                source.address.tenant.clone(),
                source.address.gateway.clone(),
            ));
            self.keys.forget(source.gateway.id);
        }
        let key = (
            source.gateway.id,
            batch.record.epoch,
            batch.record.seq,
            batch.record.boot_id,
        );
        if self.refused.contains(&key) {
            self.stats.reject(refusal.reason);
            debug!(topic = %source.topic, seq = batch.record.seq, "refused batch re-sent; already recorded");
        } else {
            if self.refused.len() >= REFUSED_MEMORY_LIMIT {
                self.refused.clear();
            }
            self.refused.insert(key);
            self.reject(
                &source.topic,
                Some(&source.address),
                Some(source.gateway.tenant_id),
                source.payload_size,
                refusal.clone(),
            )
            .await;
            // The gateway's status shows its data being refused (see `GatewayRow::refusing`).
            let db = self.db.clone();
            let (gateway, reason) = (source.gateway.id, refusal.reason.as_str());
            if let Err(e) = retry(&self.stats, &self.options, "record refusal", || {
                db.record_gateway_refusal(gateway, Utc::now(), reason)
            })
            .await
            {
                error!(error = %e, "could not record the gateway's refused batch");
            }
        }
        self.publish_nack(batch, &refusal).await;
    }

    async fn publish_nack(&mut self, batch: &Staged, refusal: &Refusal) {
        let address = &batch.source.address;
        let rejected = Rejected::permanent(
            [batch.record.seq],
            refusal.reason.as_str(),
            refusal.detail.clone(),
        );
        let nack = Ack::rejecting([], vec![rejected]);
        let topic = wire::topic::topic(&address.tenant, &address.gateway, Kind::Ack);
        let payload = wire::seal::seal(&batch.source.key, &topic, &nack.encode());
        match self
            .client
            .publish(topic, self.ack_qos, false, payload)
            .await
        {
            Ok(()) => {
                bump(&self.stats.nacks_published);
                debug!(tenant = %address.tenant, gateway = %address.gateway, seq = batch.record.seq,
                       reason = refusal.reason.as_str(), "negative ack published");
            }
            // Only if the event loop is gone; the agent re-sends and is refused again.
            Err(e) => warn!(tenant = %address.tenant, gateway = %address.gateway, error = %e,
                            "could not queue negative ack"),
        }
    }

    /// Step 6a: one application ack per gateway with every committed seq of the round.
    async fn publish_acks(&mut self, committed: &[Staged]) {
        let mut by_gateway: BTreeMap<(&str, &str), (Vec<u64>, &MessageKey)> = BTreeMap::new();
        for b in committed {
            let (seqs, key) = by_gateway
                .entry((&b.source.address.tenant, &b.source.address.gateway))
                .or_insert_with(|| (Vec::new(), &b.source.key));
            seqs.push(b.record.seq);
            // The newest batch's key: the one the gateway uses now.
            *key = &b.source.key;
        }
        for ((tenant, gateway), (seqs, key)) in by_gateway {
            let ack = Ack::of(seqs);
            let topic = wire::topic::topic(tenant, gateway, Kind::Ack);
            let payload = wire::seal::seal(key, &topic, &ack.encode());
            match self
                .client
                .publish(topic, self.ack_qos, false, payload)
                .await
            {
                Ok(()) => {
                    bump(&self.stats.acks_published);
                    debug!(%tenant, %gateway, ranges = ?ack.ranges, "ack published");
                }
                // Only if the event loop is gone; the agent re-sends and gets acked then.
                Err(e) => warn!(%tenant, %gateway, error = %e, "could not queue ack"),
            }
        }
    }

    /// Step 6b: MQTT-ack every message of the round on the connection that delivered it.
    async fn mqtt_ack(&self, round: &[Delivery]) {
        let current = self.epoch.current();
        for d in round.iter().filter(|d| d.epoch == current) {
            if let Err(e) = self.client.ack(&d.publish).await {
                warn!(error = %e, "could not queue MQTT ack");
            }
        }
    }

    /// Seq-gap tracking for the committed batches; their gateways' status goes to the
    /// status writer (see [`super::status`]).
    async fn after_commit(&mut self, committed: &[Staged], at: DateTime<Utc>) {
        let mut activity: BTreeMap<GatewayId, GatewayActivity> = BTreeMap::new();
        let mut stored = std::collections::BTreeSet::new();
        let mut gaps = Vec::new();
        for b in committed {
            stored.insert((b.source.gateway.tenant_id, b.source.gateway.id));
            let entry = activity
                .entry(b.source.gateway.id)
                .or_insert(GatewayActivity {
                    gateway: b.source.gateway.id,
                    seen_at: at,
                    buffer: None,
                    clock_skew_ms: None,
                    epoch: None,
                });
            entry.epoch = Some(b.record.epoch);
            entry.buffer = b.buffer.or(entry.buffer);
            entry.clock_skew_ms = b.skew_ms.or(entry.clock_skew_ms);
            if !b.record.historical
                && self
                    .sessions
                    .live_batch(b.source.gateway.id, b.record.boot_id, b.record.seq)
            {
                gaps.push((
                    b.source.address.clone(),
                    b.source.gateway.id,
                    b.source.key.clone(),
                    b.record.seq,
                ));
            }
        }
        for (address, gateway, key, seq) in gaps {
            bump(&self.stats.seq_gaps);
            warn!(tenant = %address.tenant, gateway = %address.gateway, seq,
                  window = self.options.seq_gap_window, "live seq jumped beyond the in-flight window");
            self.request_rebirth(&address, gateway, &key, None).await;
        }
        let report = Report {
            activity: activity.into_values().collect(),
            stored,
        };
        if !report.activity.is_empty() && self.status.send(report).is_err() {
            error!("gateway status writer stopped; status not recorded");
        }
    }
}

/// Opens, fills and commits one ingest transaction (queueing the new batches for
/// detection when `queue`).
async fn ingest_tx(db: &Db, staged: &[Staged], queue: bool) -> Result<IngestOutcome, DbError> {
    let mut tx = db.begin_ingest().await?;
    if queue {
        tx.queue_for_detection();
    }
    for batch in staged {
        if let Some(mut writer) = tx.record_batch(batch.record)? {
            for row in &batch.rows {
                writer.push(row)?;
            }
        }
    }
    tx.commit().await
}

/// Runs `op` until it succeeds or fails permanently; transient failures are retried with
/// exponential backoff, each counted and logged.
pub(crate) async fn retry<T, F, Fut>(
    stats: &IngestStats,
    options: &IngestOptions,
    what: &'static str,
    mut op: F,
) -> Result<T, DbError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, DbError>>,
{
    let mut backoff = Backoff::new(options.retry_initial, options.retry_max);
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if e.transience().is_temporary() => {
                bump(&stats.db_retries);
                let delay = backoff.next_delay();
                warn!(%what, error = %e, retry_in = ?delay, "database unavailable; messages stay un-acked");
                tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The refusal for a database error that retrying cannot fix.
fn permanent_refusal(what: &str, e: DbError) -> Refusal {
    let reason = match e {
        DbError::Invalid { .. } => RejectReason::InvalidContent,
        _ => RejectReason::StorageRefused,
    };
    Refusal::new(reason, format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_content_and_storage_errors_map_to_their_reasons() {
        let invalid = DbError::Invalid {
            what: "birth",
            reason: "device name \"a\" is repeated".into(),
        };
        assert_eq!(
            permanent_refusal("birth", invalid).reason,
            RejectReason::InvalidContent
        );
        assert_eq!(
            permanent_refusal("x", DbError::NotFound("gateway 1".into())).reason,
            RejectReason::StorageRefused
        );
    }
}
