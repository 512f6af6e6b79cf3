//! The front listener's Prometheus metrics (`prometheus-client`), registered into the
//! process's one registry by the server.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Why a gateway's PUBLISH was not forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Over `messages_per_second` (after the burst).
    MessageRate,
    /// Over `bytes_per_second` (after the burst).
    ByteRate,
    /// The topic is outside the gateway's own prefix.
    TopicDenied,
}

impl DropReason {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::MessageRate => "message_rate",
            DropReason::ByteRate => "byte_rate",
            DropReason::TopicDenied => "topic_denied",
        }
    }
}

/// Labels of per-gateway drop counters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct GatewayReason {
    /// Tenant id.
    pub tenant: String,
    /// Gateway id.
    pub gateway: String,
    /// Why (`message_rate`, `byte_rate`, `topic_denied`).
    pub reason: String,
}

/// Labels of per-gateway counters without a reason.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct GatewayLabels {
    /// Tenant id.
    pub tenant: String,
    /// Gateway id.
    pub gateway: String,
}

/// A label `reason` or `result`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct Why {
    /// The reason or result.
    pub reason: String,
}

/// Counters of the front listener. Cheap to clone (shared counters).
#[derive(Debug, Clone, Default)]
pub struct BrokerMetrics {
    /// PUBLISH packets of gateways not forwarded, by gateway and reason.
    pub dropped_messages: Family<GatewayReason, Counter>,
    /// Their bytes (whole MQTT frames).
    pub dropped_bytes: Family<GatewayReason, Counter>,
    /// SUBSCRIBE filters refused (outside the gateway's prefix), by gateway.
    pub refused_subscriptions: Family<GatewayLabels, Counter>,
    /// CONNECT outcomes: `accepted`, `bad_credentials`, `client_id`, `certificate`,
    /// `throttled`, `will_denied`, `unavailable`, `malformed`.
    pub logins: Family<Why, Counter>,
    /// Connections the front closed, by reason (`kicked`, `protocol`, `too_large`,
    /// `control_rate`, `qos2_refused`).
    pub disconnects: Family<Why, Counter>,
    /// Open client connections of the front listener.
    pub connections: Gauge,
}

impl BrokerMetrics {
    /// Registers every metric under the `wellpulse_broker_` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("wellpulse_broker");
        r.register(
            "dropped_messages",
            "Gateway PUBLISH packets the front listener did not forward, by reason",
            self.dropped_messages.clone(),
        );
        r.register(
            "dropped_bytes",
            "Bytes of gateway PUBLISH packets the front listener did not forward",
            self.dropped_bytes.clone(),
        );
        r.register(
            "refused_subscriptions",
            "Gateway SUBSCRIBE filters refused (outside the gateway's own prefix)",
            self.refused_subscriptions.clone(),
        );
        r.register(
            "logins",
            "MQTT CONNECT attempts at the front listener, by result",
            self.logins.clone(),
        );
        r.register(
            "disconnects",
            "Client connections closed by the front listener, by reason",
            self.disconnects.clone(),
        );
        r.register(
            "connections",
            "Open client connections of the front listener",
            self.connections.clone(),
        );
    }

    /// Counts one dropped PUBLISH; returns how many this gateway had for this reason.
    pub(crate) fn dropped(
        &self,
        tenant: &str,
        gateway: &str,
        reason: DropReason,
        bytes: usize,
    ) -> u64 {
        let labels = GatewayReason {
            tenant: tenant.to_owned(),
            gateway: gateway.to_owned(),
            reason: reason.as_str().to_owned(),
        };
        self.dropped_bytes
            .get_or_create(&labels)
            .inc_by(bytes as u64);
        self.dropped_messages.get_or_create(&labels).inc() + 1
    }

    pub(crate) fn login(&self, result: &str) {
        self.logins
            .get_or_create(&Why {
                reason: result.to_owned(),
            })
            .inc();
    }

    pub(crate) fn disconnect(&self, reason: &str) {
        self.disconnects
            .get_or_create(&Why {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// How many messages of `tenant/gateway` were dropped for `reason` (tests).
    pub fn dropped_count(&self, tenant: &str, gateway: &str, reason: DropReason) -> u64 {
        self.dropped_messages
            .get_or_create(&GatewayReason {
                tenant: tenant.to_owned(),
                gateway: gateway.to_owned(),
                reason: reason.as_str().to_owned(),
            })
            .get()
    }

    /// How many CONNECTs ended with `result` (tests).
    pub fn login_count(&self, result: &str) -> u64 {
        self.logins
            .get_or_create(&Why {
                reason: result.to_owned(),
            })
            .get()
    }
}
