//! Which topics a gateway may use: its own `wp/v1/{tenant}/{gateway}/` prefix, and the
//! cloud's state topics (`wp/v1/_state/+`, see `wire::state`) to read, never to publish.
//!
//! Pure functions of (identity, topic), so every rule is unit-tested without sockets.

/// A gateway's topic prefix, `wp/v1/{tenant}/{gateway}/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Prefix(String);

impl Prefix {
    pub(crate) fn new(tenant: &str, gateway: &str) -> Prefix {
        Prefix(format!("{}/{tenant}/{gateway}/", wire::topic::PREFIX))
    }

    /// A PUBLISH topic name (or CONNECT will topic) is allowed: a concrete topic strictly
    /// below the prefix, without wildcards (which a topic name may not hold anyway).
    pub(crate) fn allows_topic(&self, topic: &str) -> bool {
        match topic.strip_prefix(self.0.as_str()) {
            Some(rest) => !rest.is_empty() && !rest.contains(['+', '#', '\0']),
            None => false,
        }
    }

    /// A SUBSCRIBE filter is allowed: it starts with the literal prefix (so no wildcard can
    /// reach another gateway) and the rest is a well-formed filter. `$share/...`, `$SYS/...`,
    /// `#` and `wp/v1/+/...` all fail the prefix test.
    ///
    /// The one filter outside the prefix a gateway may subscribe to is the cloud's state:
    /// [`wire::topic::STATE_FILTER`] or one ingester's state topic. Only ingesters publish
    /// there (the will and PUBLISH checks above allow nothing outside the prefix).
    pub(crate) fn allows_filter(&self, filter: &str) -> bool {
        if filter == wire::topic::STATE_FILTER || wire::topic::parse_state(filter).is_some() {
            return true;
        }
        let Some(rest) = filter.strip_prefix(self.0.as_str()) else {
            return false;
        };
        if rest.is_empty() || rest.contains('\0') {
            return false;
        }
        let levels: Vec<&str> = rest.split('/').collect();
        levels.iter().enumerate().all(|(i, level)| match *level {
            "#" => i == levels.len() - 1,
            "+" => true,
            l => !l.contains(['+', '#']),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gateway_publishes_only_below_its_own_prefix() {
        let p = Prefix::new("acme", "gw-1");
        for ok in [
            "wp/v1/acme/gw-1/data",
            "wp/v1/acme/gw-1/birth",
            "wp/v1/acme/gw-1/cmd/result",
        ] {
            assert!(p.allows_topic(ok), "{ok}");
        }
        for bad in [
            "wp/v1/acme/gw-2/data",
            "wp/v1/acme/gw-10/data",
            "wp/v1/acme/gw-1",
            "wp/v1/acme/gw-1/",
            "wp/v1/globex/gw-1/data",
            "wp/v1/acme/gw-1x/data",
            "wp/v1/acme/gw-1/+",
            "wp/v1/acme/gw-1/#",
            "$SYS/broker",
            "wp/v2/acme/gw-1/data",
            "",
            "wp/v1/_state/wp-ingester-1",
            "wp/v1/_state/+",
        ] {
            assert!(!p.allows_topic(bad), "{bad}");
        }
    }

    #[test]
    fn a_gateway_subscribes_only_below_its_own_prefix() {
        let p = Prefix::new("acme", "gw-1");
        for ok in [
            "wp/v1/acme/gw-1/ack",
            "wp/v1/acme/gw-1/cmd",
            "wp/v1/acme/gw-1/#",
            "wp/v1/acme/gw-1/+",
            "wp/v1/acme/gw-1/cmd/+",
            "wp/v1/_state/+",
            "wp/v1/_state/wp-ingester-1",
        ] {
            assert!(p.allows_filter(ok), "{ok}");
        }
        for bad in [
            "#",
            "+/#",
            "wp/#",
            "wp/v1/+/+/data",
            "wp/v1/acme/+/ack",
            "wp/v1/acme/#",
            "wp/v1/acme/gw-2/ack",
            "wp/v1/acme/gw-1",
            "wp/v1/acme/gw-1/",
            "wp/v1/acme/gw-1/#/x",
            "wp/v1/acme/gw-1/a+",
            "$share/ingest/wp/v1/+/+/data",
            "$share/ingest/wp/v1/acme/gw-1/ack",
            "$SYS/#",
            "wp/v1/_state/#",
            "wp/v1/_state/+/x",
            "wp/v1/+/+",
            "wp/v1/_state",
            "$share/x/wp/v1/_state/+",
        ] {
            assert!(!p.allows_filter(bad), "{bad}");
        }
    }
}
