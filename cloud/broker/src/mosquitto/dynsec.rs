//! Mosquitto's dynamic-security plugin, kept in step with the gateway registry
//! (`wellpulse-cloud mosquitto-dynsec`).
//!
//! # Why
//!
//! Mosquitto's `acl_file` checks a subscription only when a message is delivered, so a
//! gateway may *join the ingesters' shared group* (`$share/ingest/wp/v1/+/+/data`): it
//! then receives nothing it may not read, but every message the broker hands to it is
//! lost to the ingesters until the sender's re-send. The dynamic-security plugin checks
//! `SUBSCRIBE` itself, against the filter as sent (`$share/<group>/…` included), so a
//! gateway's role that grants only its own `ack`, `cmd` and the state topics refuses the
//! shared group and `#` with "not authorized".
//!
//! # Roles
//!
//! * `wellpulse-gateway/<tenant>/<gateway>`, given to the client `<tenant>/<gateway>`:
//!   send its `birth`, `death`, `data`, `cmd/result`; subscribe to and receive its `ack`,
//!   `cmd` and the ingesters' state topics. Nothing else.
//! * `wellpulse-ingester`, given to each ingester username: subscribe to the
//!   edge-to-cloud kinds of every gateway through any shared group
//!   (`$share/+/wp/v1/+/+/<kind>`) and receive them; send `ack` and `cmd` to every
//!   gateway and its own retained state.
//! * The default access denies sending, receiving and subscribing to anything a role does
//!   not grant.
//!
//! Clients (usernames and passwords) stay the operator's: created with
//! `mosquitto_ctrl dynsec createClient <tenant>/<gateway>` (the password is prompted, never
//! an argument), as the cloud issued them. A gateway whose client is missing is reported.
//!
//! # Applying
//!
//! [`plan`] is pure: from the registry and the roles that exist, one list of commands for
//! the plugin's control topic. A role of ours that exists is deleted and created again in
//! the *same* message: the plugin runs a message's commands back to back, so a connected
//! gateway never sees its role missing. Roles of gateways no longer in the registry are
//! deleted (their clients can then do nothing). [`apply`] sends it as the plugin's admin.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};
use wire::topic::{Kind, STATE_FILTER, topic};

use super::{GATEWAY_READS, GATEWAY_WRITES};

/// The plugin's control topic.
pub const CONTROL_TOPIC: &str = "$CONTROL/dynamic-security/v1";
/// Where it answers.
pub const RESPONSE_TOPIC: &str = "$CONTROL/dynamic-security/v1/response";
/// Prefix of the gateways' role names.
pub const GATEWAY_ROLE_PREFIX: &str = "wellpulse-gateway/";
/// The ingesters' role.
pub const INGESTER_ROLE: &str = "wellpulse-ingester";

/// How long to wait for the plugin's answer.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The role name of a gateway.
pub fn gateway_role(tenant: &str, gateway: &str) -> String {
    format!("{GATEWAY_ROLE_PREFIX}{tenant}/{gateway}")
}

fn acl(acltype: &str, topic: &str) -> Value {
    json!({ "acltype": acltype, "topic": topic, "priority": 0, "allow": true })
}

/// The ACLs of a gateway's role: its own topics, by name.
pub fn gateway_acls(tenant: &str, gateway: &str) -> Vec<Value> {
    let mut acls: Vec<Value> = GATEWAY_WRITES
        .iter()
        .map(|k| acl("publishClientSend", &topic(tenant, gateway, *k)))
        .collect();
    let reads = GATEWAY_READS
        .iter()
        .map(|k| topic(tenant, gateway, *k))
        .chain([STATE_FILTER.to_owned()]);
    for t in reads {
        acls.push(acl("subscribeLiteral", &t));
        acls.push(acl("publishClientReceive", &t));
    }
    acls
}

/// The ACLs of the ingesters' role.
pub fn ingester_acls() -> Vec<Value> {
    let mut acls = Vec::new();
    for kind in GATEWAY_WRITES {
        let filter = format!("{}/+/+/{}", wire::topic::PREFIX, kind.as_str());
        acls.push(acl("subscribePattern", &format!("$share/+/{filter}")));
        acls.push(acl("publishClientReceive", &filter));
    }
    for kind in [Kind::Ack, Kind::Cmd] {
        let filter = format!("{}/+/+/{}", wire::topic::PREFIX, kind.as_str());
        acls.push(acl("publishClientSend", &filter));
    }
    acls.push(acl("publishClientSend", STATE_FILTER));
    acls
}

fn create_role(rolename: &str, acls: Vec<Value>, existing: &[String]) -> Vec<Value> {
    let mut out = Vec::new();
    if existing.iter().any(|r| r == rolename) {
        out.push(json!({ "command": "deleteRole", "rolename": rolename }));
    }
    out.push(json!({
        "command": "createRole",
        "rolename": rolename,
        "textdescription": "managed by wellpulse-cloud mosquitto-dynsec",
        "acls": acls,
    }));
    out
}

fn add_client_role(username: &str, rolename: &str) -> Value {
    json!({ "command": "addClientRole", "username": username, "rolename": rolename, "priority": 0 })
}

/// The commands that bring the plugin in step with `gateways` (`(tenant, gateway)`) and
/// the ingester usernames `ingesters`, given the roles that exist (`existing`).
pub fn plan(gateways: &[(String, String)], ingesters: &[String], existing: &[String]) -> Value {
    let deny = |acltype: &str| json!({ "acltype": acltype, "allow": false });
    let mut commands = vec![json!({
        "command": "setDefaultACLAccess",
        "acls": [
            deny("publishClientSend"),
            deny("publishClientReceive"),
            deny("subscribe"),
        ],
    })];
    commands.extend(create_role(INGESTER_ROLE, ingester_acls(), existing));
    for user in ingesters {
        commands.push(add_client_role(user, INGESTER_ROLE));
    }
    let mut wanted = Vec::with_capacity(gateways.len());
    for (tenant, gateway) in gateways {
        let role = gateway_role(tenant, gateway);
        commands.extend(create_role(&role, gateway_acls(tenant, gateway), existing));
        commands.push(add_client_role(&format!("{tenant}/{gateway}"), &role));
        wanted.push(role);
    }
    for stale in existing
        .iter()
        .filter(|r| r.starts_with(GATEWAY_ROLE_PREFIX) && !wanted.contains(r))
    {
        commands.push(json!({ "command": "deleteRole", "rolename": stale }));
    }
    json!({ "commands": commands })
}

/// Where the plugin is and who may command it: Mosquitto's plain loopback listener (run
/// on the broker's host; the admin password never crosses the network).
#[derive(Debug, Clone)]
pub struct Admin {
    /// Mosquitto's host.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The plugin's admin username.
    pub username: String,
    /// Its password.
    pub password: base::Secret,
}

/// What [`apply`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Commands the plugin carried out.
    pub done: usize,
    /// Usernames whose role could not be given: no such client yet (create it with
    /// `mosquitto_ctrl dynsec createClient`).
    pub missing_clients: Vec<String>,
}

/// A failure to command the plugin.
#[derive(Debug, thiserror::Error)]
pub enum DynsecError {
    /// No connection, or it broke.
    #[error("Mosquitto at {0}: {1}")]
    Connection(String, String),
    /// No answer in time (is the plugin loaded? may this user command it?).
    #[error("no answer from the dynamic-security plugin within {0:?}")]
    Timeout(Duration),
    /// The plugin refused commands.
    #[error("the dynamic-security plugin refused: {0}")]
    Refused(String),
}

/// Brings the plugin in step with `gateways` and `ingesters` (see [`plan`]).
pub async fn apply(
    admin: &Admin,
    gateways: &[(String, String)],
    ingesters: &[String],
) -> Result<Applied, DynsecError> {
    let mut session = Session::connect(admin).await?;
    let listed = session
        .send(json!({ "commands": [{ "command": "listRoles", "count": -1, "offset": 0 }] }))
        .await?;
    let existing: Vec<String> = listed
        .first()
        .and_then(|r| r["data"]["roles"].as_array())
        .map(|roles| {
            roles
                .iter()
                .filter_map(|r| r.as_str().or_else(|| r["rolename"].as_str()))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let plan = plan(gateways, ingesters, &existing);
    let commands = plan["commands"].as_array().cloned().unwrap_or_default();
    let responses = session.send(plan).await?;
    session.close().await;
    let mut applied = Applied::default();
    let mut refused = Vec::new();
    for (command, response) in commands.iter().zip(&responses) {
        match response["error"].as_str() {
            None => applied.done += 1,
            Some(error)
                if command["command"] == "addClientRole"
                    && error.to_ascii_lowercase().contains("client not found") =>
            {
                applied
                    .missing_clients
                    .push(command["username"].as_str().unwrap_or_default().to_owned());
            }
            Some(error) => refused.push(format!("{}: {error}", command["command"])),
        }
    }
    if responses.len() < commands.len() {
        refused.push(format!(
            "{} of {} commands answered",
            responses.len(),
            commands.len()
        ));
    }
    if refused.is_empty() {
        Ok(applied)
    } else {
        Err(DynsecError::Refused(refused.join("; ")))
    }
}

/// Sends one message of `commands` (`{"commands": [...]}`) to the plugin as its admin;
/// its responses, in order (each may carry an `error`). For what [`apply`] does not do,
/// e.g. creating clients.
pub async fn command(admin: &Admin, commands: Value) -> Result<Vec<Value>, DynsecError> {
    let mut session = Session::connect(admin).await?;
    let responses = session.send(commands).await;
    session.close().await;
    responses
}

/// An admin connection to the plugin: one request at a time, answered on
/// [`RESPONSE_TOPIC`].
struct Session {
    client: AsyncClient,
    answers: tokio::sync::mpsc::Receiver<Result<Vec<u8>, String>>,
    task: tokio::task::JoinHandle<()>,
    address: String,
}

impl Session {
    async fn connect(admin: &Admin) -> Result<Session, DynsecError> {
        let address = format!("{}:{}", admin.host, admin.port);
        let mut options = MqttOptions::new(
            format!("wellpulse-dynsec-{}", std::process::id()),
            admin.host.clone(),
            admin.port,
        );
        options
            .set_credentials(admin.username.clone(), admin.password.expose().to_owned())
            .set_keep_alive(Duration::from_secs(30))
            .set_max_packet_size(16 << 20, 16 << 20);
        let (client, mut eventloop) = AsyncClient::new(options, 16);
        let (tx, answers) = tokio::sync::mpsc::channel(16);
        let subscriber = client.clone();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = subscriber.subscribe(RESPONSE_TOPIC, QoS::AtLeastOnce).await;
                    }
                    Ok(Event::Incoming(Packet::SubAck(ack))) => {
                        let granted = ack
                            .return_codes
                            .iter()
                            .all(|c| !matches!(c, rumqttc::SubscribeReasonCode::Failure));
                        let signal = if granted {
                            Ok(Vec::new())
                        } else {
                            Err(format!("subscription to {RESPONSE_TOPIC} refused"))
                        };
                        if tx.send(signal).await.is_err() {
                            return;
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) if p.topic == RESPONSE_TOPIC => {
                        if tx.send(Ok(p.payload.to_vec())).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string())).await;
                        return;
                    }
                }
            }
        });
        let mut session = Session {
            client,
            answers,
            task,
            address,
        };
        // The subscription's answer: from then on, responses reach us.
        session.next().await?;
        Ok(session)
    }

    async fn next(&mut self) -> Result<Vec<u8>, DynsecError> {
        match tokio::time::timeout(TIMEOUT, self.answers.recv()).await {
            Ok(Some(Ok(bytes))) => Ok(bytes),
            Ok(Some(Err(e))) => Err(DynsecError::Connection(self.address.clone(), e)),
            Ok(None) => Err(DynsecError::Connection(
                self.address.clone(),
                "connection closed".into(),
            )),
            Err(_) => Err(DynsecError::Timeout(TIMEOUT)),
        }
    }

    /// Sends `commands`; the plugin's `responses`, in order.
    async fn send(&mut self, commands: Value) -> Result<Vec<Value>, DynsecError> {
        let payload = serde_json::to_vec(&commands).unwrap_or_default();
        self.client
            .publish(CONTROL_TOPIC, QoS::AtLeastOnce, false, payload)
            .await
            .map_err(|e| DynsecError::Connection(self.address.clone(), e.to_string()))?;
        let answer = self.next().await?;
        let value: Value = serde_json::from_slice(&answer)
            .map_err(|e| DynsecError::Refused(format!("unreadable answer: {e}")))?;
        Ok(value["responses"].as_array().cloned().unwrap_or_default())
    }

    async fn close(self) {
        let _ = self.client.disconnect().await;
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commands(plan: &Value) -> Vec<(String, String)> {
        plan["commands"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["command"].as_str().unwrap().to_owned(),
                    c["rolename"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn a_gateway_role_grants_its_own_topics_only() {
        let acls = gateway_acls("acme", "gw-1");
        for a in &acls {
            let topic = a["topic"].as_str().unwrap();
            assert!(
                topic.starts_with("wp/v1/acme/gw-1/") || topic == STATE_FILTER,
                "{topic}"
            );
            assert!(!topic.contains('#') && !topic.starts_with("$share"));
            if topic == STATE_FILTER {
                assert_ne!(a["acltype"], "publishClientSend", "never writes the state");
            }
        }
        let sends: Vec<&str> = acls
            .iter()
            .filter(|a| a["acltype"] == "publishClientSend")
            .map(|a| a["topic"].as_str().unwrap())
            .collect();
        assert_eq!(
            sends,
            [
                "wp/v1/acme/gw-1/birth",
                "wp/v1/acme/gw-1/death",
                "wp/v1/acme/gw-1/data",
                "wp/v1/acme/gw-1/cmd/result"
            ]
        );
        assert!(
            acls.iter()
                .any(|a| a["acltype"] == "subscribeLiteral" && a["topic"] == "wp/v1/acme/gw-1/ack")
        );
    }

    #[test]
    fn the_ingester_subscribes_only_through_shared_groups() {
        for a in ingester_acls() {
            if a["acltype"] == "subscribePattern" {
                assert!(
                    a["topic"]
                        .as_str()
                        .unwrap()
                        .starts_with("$share/+/wp/v1/+/+/")
                );
            }
        }
    }

    #[test]
    fn existing_roles_are_replaced_in_one_message_and_stale_ones_deleted() {
        let gateways = [("acme".to_owned(), "gw-1".to_owned())];
        let existing = vec![
            "admin".to_owned(),
            INGESTER_ROLE.to_owned(),
            gateway_role("acme", "gw-1"),
            gateway_role("acme", "gone"),
        ];
        let c = commands(&plan(&gateways, &["wp-ingester".to_owned()], &existing));
        let pos = |cmd: &str, role: &str| {
            c.iter()
                .position(|(a, b)| a == cmd && b == role)
                .unwrap_or_else(|| panic!("{cmd} {role} in {c:?}"))
        };
        assert_eq!(c[0].0, "setDefaultACLAccess");
        let role = gateway_role("acme", "gw-1");
        assert!(pos("deleteRole", &role) < pos("createRole", &role));
        assert!(pos("createRole", INGESTER_ROLE) > pos("deleteRole", INGESTER_ROLE));
        pos("deleteRole", &gateway_role("acme", "gone"));
        assert!(
            !c.iter().any(|(_, r)| r == "admin"),
            "other roles are left alone"
        );
        // Nothing to delete on a fresh plugin.
        let fresh = commands(&plan(&gateways, &[], &[]));
        assert!(!fresh.iter().any(|(a, _)| a == "deleteRole"));
    }
}
