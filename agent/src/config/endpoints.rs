//! Where things are: the broker URL (`mqtt://host[:port]` or `mqtts://...`, parsed with
//! the `url` crate) and device addresses (`host:port`).

use url::{Host, Url};

/// Default MQTT port for `mqtt://` URLs.
const MQTT_PORT: u16 = 1883;
/// Default MQTT port for `mqtts://` URLs.
const MQTTS_PORT: u16 = 8883;

/// Parses `host:port` (IPv6 hosts in brackets: `[::1]:502`).
pub fn parse_host_port(text: &str) -> Result<(String, u16), String> {
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("{text:?} is not host:port"))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || host.contains(['/', ' ']) {
        return Err(format!("{text:?} has no valid host"));
    }
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{text:?} has no valid port"))?;
    if port == 0 {
        return Err(format!("{text:?}: port 0 is not a valid device port"));
    }
    Ok((host.to_string(), port))
}

/// Parses an MQTT broker URL into (host, port, tls). Only `scheme://host[:port]` with an
/// optional trailing `/` is accepted: credentials belong in `mqtt.username` /
/// `mqtt.password` (a secret), never in a URL that ends up in logs.
pub fn parse_mqtt_url(text: &str) -> Result<(String, u16, bool), String> {
    let scheme_ok = text.starts_with("mqtt://") || text.starts_with("mqtts://");
    if !scheme_ok {
        return Err(format!(
            "mqtt.url {text:?} must start with mqtt:// or mqtts://"
        ));
    }
    let url = Url::parse(text).map_err(|e| format!("mqtt.url {text:?}: {e}"))?;
    let tls = url.scheme() == "mqtts";
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "mqtt.url {text:?} must be scheme://host[:port] (credentials go in mqtt.username/password)"
        ));
    }
    if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
        return Err(format!("mqtt.url {text:?} must be scheme://host[:port]"));
    }
    let host = match url.host() {
        Some(Host::Domain(d)) if !d.is_empty() => d.to_owned(),
        Some(Host::Ipv4(ip)) => ip.to_string(),
        Some(Host::Ipv6(ip)) => ip.to_string(),
        _ => return Err(format!("mqtt.url {text:?} has no host")),
    };
    let port = match url.port() {
        Some(0) => return Err(format!("mqtt.url {text:?}: port 0 is not valid")),
        Some(port) => port,
        None if tls => MQTTS_PORT,
        None => MQTT_PORT,
    };
    Ok((host, port, tls))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls_parse_into_host_port_and_tls() {
        let ok = |s: &str| parse_mqtt_url(s).expect(s);
        assert_eq!(
            ok("mqtt://127.0.0.1:1884"),
            ("127.0.0.1".into(), 1884, false)
        );
        assert_eq!(
            ok("mqtt://broker.example"),
            ("broker.example".into(), 1883, false)
        );
        assert_eq!(
            ok("mqtts://broker.example/"),
            ("broker.example".into(), 8883, true)
        );
        assert_eq!(ok("mqtts://[::1]:9000"), ("::1".into(), 9000, true));
        assert_eq!(ok("mqtt://[::1]"), ("::1".into(), 1883, false));
        for (bad, why) in [
            ("http://broker", "must start with"),
            ("mqtt://user:pw@broker", "credentials"),
            ("mqtt://broker/topic", "scheme://host[:port]"),
            ("mqtt://broker:0", "port 0"),
            ("mqtt://broker:99999", "mqtt.url"),
            ("mqtt://", "mqtt.url"),
        ] {
            let err = parse_mqtt_url(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
