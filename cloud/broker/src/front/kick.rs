//! Disconnect on demand: every live gateway connection of the front listener is registered
//! here under its `(tenant, gateway)`, so a revoked credential or a suspended tenant can
//! be cut off at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

type Connections = HashMap<(String, String), HashMap<u64, oneshot::Sender<()>>>;

/// A handle that disconnects gateway connections of the embedded broker's front
/// listener. Cheap to clone; all clones act on the same connections.
///
/// Disconnecting does not refuse the next login by itself: the login check consults the
/// store every time, so revoke the credential or suspend the tenant first, then kick.
#[derive(Debug, Clone, Default)]
pub struct Kicker {
    inner: Arc<KickerInner>,
}

#[derive(Debug, Default)]
struct KickerInner {
    next_id: AtomicU64,
    connections: Mutex<Connections>,
}

/// A registered connection; unregisters itself when dropped.
#[derive(Debug)]
pub(crate) struct Registration {
    kicker: Kicker,
    key: (String, String),
    id: u64,
}

impl Kicker {
    fn connections(&self) -> std::sync::MutexGuard<'_, Connections> {
        self.inner
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a live connection of `tenant/gateway`; the receiver fires when it is
    /// kicked.
    pub(crate) fn register(
        &self,
        tenant: &str,
        gateway: &str,
    ) -> (Registration, oneshot::Receiver<()>) {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let key = (tenant.to_owned(), gateway.to_owned());
        let (tx, rx) = oneshot::channel();
        self.connections()
            .entry(key.clone())
            .or_default()
            .insert(id, tx);
        let registration = Registration {
            kicker: self.clone(),
            key,
            id,
        };
        (registration, rx)
    }

    /// Disconnects every connection of gateway `gateway` of tenant `tenant`; returns how
    /// many there were.
    pub fn disconnect_gateway(&self, tenant: &str, gateway: &str) -> usize {
        let removed = self
            .connections()
            .remove(&(tenant.to_owned(), gateway.to_owned()));
        fire(removed.into_iter().flat_map(|c| c.into_values()))
    }

    /// Disconnects every gateway connection of tenant `tenant`; returns how many there
    /// were.
    pub fn disconnect_tenant(&self, tenant: &str) -> usize {
        let mut connections = self.connections();
        let keys: Vec<_> = connections
            .keys()
            .filter(|(t, _)| t == tenant)
            .cloned()
            .collect();
        let senders: Vec<_> = keys
            .iter()
            .filter_map(|k| connections.remove(k))
            .flat_map(|c| c.into_values())
            .collect();
        drop(connections);
        fire(senders)
    }

    /// Applies a kick request as carried by the `wp_broker_kick` notification: `tenant`
    /// or `tenant/gateway`. Returns `None` for a malformed target.
    pub fn apply(&self, target: &str) -> Option<usize> {
        match target.split_once('/') {
            Some((tenant, gateway)) => {
                crate::gateway_identity(target).map(|_| self.disconnect_gateway(tenant, gateway))
            }
            None => wire::topic::validate_id(target)
                .is_ok()
                .then(|| self.disconnect_tenant(target)),
        }
    }

    /// Live gateway connections (for tests and diagnostics).
    pub fn connected(&self, tenant: &str, gateway: &str) -> usize {
        self.connections()
            .get(&(tenant.to_owned(), gateway.to_owned()))
            .map_or(0, HashMap::len)
    }
}

fn fire(senders: impl IntoIterator<Item = oneshot::Sender<()>>) -> usize {
    // A connection that already ended dropped its receiver; it counts as disconnected.
    senders
        .into_iter()
        .map(|tx| tx.send(()).map_or(0, |()| 1))
        .sum()
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut connections = self.kicker.connections();
        if let Some(ids) = connections.get_mut(&self.key) {
            ids.remove(&self.id);
            if ids.is_empty() {
                connections.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kicks_reach_exactly_the_named_gateway_or_tenant() {
        let k = Kicker::default();
        let (_a1, mut a1) = k.register("acme", "gw-1");
        let (_a1b, mut a1b) = k.register("acme", "gw-1");
        let (_a2, mut a2) = k.register("acme", "gw-2");
        let (_g1, mut g1) = k.register("globex", "gw-1");
        assert_eq!(k.connected("acme", "gw-1"), 2);
        assert_eq!(k.apply("acme/gw-1"), Some(2));
        assert!(a1.try_recv().is_ok() && a1b.try_recv().is_ok());
        assert!(a2.try_recv().is_err() && g1.try_recv().is_err());
        assert_eq!(k.apply("acme"), Some(1));
        assert!(a2.try_recv().is_ok());
        assert!(g1.try_recv().is_err());
        assert_eq!(k.apply("acme/GW"), None);
        assert_eq!(k.apply("a b"), None);
        assert_eq!(k.connected("globex", "gw-1"), 1);
    }

    #[test]
    fn a_dropped_registration_unregisters() {
        let k = Kicker::default();
        let (reg, _rx) = k.register("acme", "gw-1");
        drop(reg);
        assert_eq!(k.connected("acme", "gw-1"), 0);
        assert_eq!(k.disconnect_gateway("acme", "gw-1"), 0);
    }
}
