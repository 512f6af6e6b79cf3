//! The Mosquitto topic ACL, generated from the gateway registry
//! (`wellpulse-cloud mosquitto-acl`).
//!
//! One `user` block per registered gateway grants exactly its own topics, by name, no
//! wildcard: publish `birth`, `death`, `data`, `cmd/result`; receive `ack`, `cmd`. One
//! block per ingester username grants the edge-to-cloud kinds of every gateway (read) and
//! `ack`/`cmd` (write), and the ingesters' state topics `wp/v1/_state/+` (write: its
//! retained "online" and its last will, see `wire::state`); every gateway may read those
//! state topics and never write them. Mosquitto denies everything else, so a user without a block (a
//! gateway removed from the registry whose password line lingers) can do nothing.
//!
//! Why not `pattern readwrite wp/v1/%u/#`? It does confine a `tenant/gateway` user to its
//! prefix (the tests check it), but it grants a single-level username such as `acme` the
//! whole tenant (`wp/v1/acme/#`), and it lets gateways publish acks and commands to
//! themselves. Exact per-gateway lines fail closed.

use wire::topic::Kind;

pub mod dynsec;

/// What a gateway publishes.
const GATEWAY_WRITES: [Kind; 4] = [Kind::Birth, Kind::Death, Kind::Data, Kind::CmdResult];
/// What a gateway receives.
const GATEWAY_READS: [Kind; 2] = [Kind::Ack, Kind::Cmd];

/// The ACL file for `gateways` (`(tenant, gateway)`, e.g. from
/// `store::Db::gateway_logins`) and the ingester usernames `ingesters`.
pub fn acl(gateways: &[(String, String)], ingesters: &[String]) -> String {
    let mut out = String::from(
        "# WellPulse topic ACL for Eclipse Mosquitto 2.0 (acl_file in mosquitto.conf).\n\
         # Generated from the gateway registry by `wellpulse-cloud mosquitto-acl`; regenerate\n\
         # after provisioning or removing a gateway, then `kill -HUP` Mosquitto.\n\
         # Topics: wp/v1/{tenant}/{gateway}/{birth|death|data|ack|cmd|cmd/result}.\n\
         # Mosquitto denies everything not granted here.\n",
    );
    out.push_str(
        "\n# --- ingesters: all gateways' edge-to-cloud kinds (through $share/<group>/...,\n\
         # which Mosquitto checks without the $share/<group>/ prefix); acks and commands out.\n",
    );
    for user in ingesters {
        out.push_str(&format!("user {user}\n"));
        for kind in GATEWAY_WRITES {
            out.push_str(&format!("topic read wp/v1/+/+/{}\n", kind.as_str()));
        }
        for kind in GATEWAY_READS {
            out.push_str(&format!("topic write wp/v1/+/+/{}\n", kind.as_str()));
        }
        out.push_str(&format!("topic write {}\n", wire::topic::STATE_FILTER));
        out.push('\n');
    }
    out.push_str("# --- gateways: user {tenant}/{gateway}, its own topics only ---\n");
    for (tenant, gateway) in gateways {
        out.push_str(&format!("user {tenant}/{gateway}\n"));
        for kind in GATEWAY_WRITES {
            let topic = wire::topic::topic(tenant, gateway, kind);
            out.push_str(&format!("topic write {topic}\n"));
        }
        for kind in GATEWAY_READS {
            let topic = wire::topic::topic(tenant, gateway, kind);
            out.push_str(&format!("topic read {topic}\n"));
        }
        out.push_str(&format!("topic read {}\n", wire::topic::STATE_FILTER));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_gateway_gets_exactly_its_own_topics() {
        let text = acl(
            &[
                ("acme".into(), "gw-1".into()),
                ("globex".into(), "gw-9".into()),
            ],
            &["wp-ingester-1".into()],
        );
        let block = |user: &str| -> Vec<String> {
            let head = format!("user {user}");
            text.split("\n\n")
                .find(|b| b.lines().any(|l| l == head))
                .unwrap()
                .lines()
                .skip_while(|l| *l != head)
                .skip(1)
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(
            block("acme/gw-1"),
            [
                "topic write wp/v1/acme/gw-1/birth",
                "topic write wp/v1/acme/gw-1/death",
                "topic write wp/v1/acme/gw-1/data",
                "topic write wp/v1/acme/gw-1/cmd/result",
                "topic read wp/v1/acme/gw-1/ack",
                "topic read wp/v1/acme/gw-1/cmd",
                "topic read wp/v1/_state/+",
            ]
        );
        assert!(
            block("globex/gw-9")
                .iter()
                .all(|l| l.contains("wp/v1/globex/gw-9/") || l == "topic read wp/v1/_state/+")
        );
        assert!(block("wp-ingester-1").contains(&"topic read wp/v1/+/+/data".to_owned()));
        assert!(block("wp-ingester-1").contains(&"topic write wp/v1/_state/+".to_owned()));
        for gateway in ["acme/gw-1", "globex/gw-9"] {
            assert!(
                block(gateway)
                    .iter()
                    .all(|l| !l.contains("_state") || l.starts_with("topic read ")),
                "{gateway} never writes the state"
            );
        }
        assert!(!text.contains("pattern"), "no pattern lines");
    }
}
