//! Validating and resolving a parsed file into [`Config`]: every default applied, every
//! profile loaded, every reference (device → bus, device → profile) checked, and device
//! aliases assigned (alias = position of the `[[device]]` in the file, 0-based). All
//! problems found are reported together, one per line, each naming the offending section
//! (`device "pump-1": ...`), so a field engineer fixes a file in one round.
//!
//! Serial parameters of a `[[bus]]` may be left out: they are then taken from the transport
//! defaults of the profiles of the devices on that bus, which must agree (otherwise the bus
//! must set them explicitly).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use firmware_profiles::{DataType, Profile};

use super::endpoints::{parse_host_port, parse_mqtt_url};
use super::file::{
    BufferSection, BusSection, ConfigFile, DeviceSection, GatewaySection, MqttSection,
    ParitySetting,
};
use super::{
    BufferSettings, BusSettings, Config, DeviceSettings, GatewaySettings, MqttSettings, PollGroup,
    Transport,
};
use crate::plan;

/// Validates a device name: 1–64 characters of `[A-Za-z0-9._-]`.
pub fn validate_device_name(name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.len() > 64 || !name.chars().all(ok_char) {
        return Err(format!(
            "device name {name:?} must be 1-64 characters of letters, digits, '.', '_' or '-'"
        ));
    }
    Ok(())
}

/// Collects problems while resolving a [`ConfigFile`].
pub(super) struct Resolver<'a> {
    pub(super) base: &'a Path,
    pub(super) problems: Vec<String>,
    pub(super) profile_cache: HashMap<String, Option<(String, Arc<Profile>)>>,
}

impl Resolver<'_> {
    pub(super) fn problem(&mut self, message: String) {
        self.problems.push(message);
    }

    /// Resolves the whole file. Returns `None` only when resolution could not produce a
    /// value; problems found along the way are recorded either way.
    pub(super) fn resolve(&mut self, file: ConfigFile, hash: String) -> Option<Config> {
        let gateway = self.gateway(&file.gateway);
        let mqtt = self.mqtt(file.mqtt, &gateway);
        let buffer = self.buffer(file.buffer);
        let extra_profiles = self.extra_profiles(file.gateway.profile_dir.as_deref());
        if file.devices.len() > usize::from(u16::MAX) {
            self.problem(format!(
                "{} devices configured; at most {} are supported",
                file.devices.len(),
                u16::MAX
            ));
            return None;
        }
        if file.devices.is_empty() {
            self.problem("no [[device]] configured".to_string());
        }
        let bus_names: Vec<String> = file.buses.iter().map(|b| b.name.clone()).collect();
        let mut names = BTreeSet::new();
        let mut devices = Vec::with_capacity(file.devices.len());
        for (index, section) in file.devices.into_iter().enumerate() {
            if !names.insert(section.name.clone()) {
                self.problem(format!("device {:?}: duplicate device name", section.name));
            }
            let alias = u16::try_from(index).expect("device count checked above");
            if let Some(device) = self.device(alias, section, &bus_names, &extra_profiles) {
                devices.push(device);
            }
        }
        let buses = self.buses(file.buses, &devices);
        Some(Config {
            gateway,
            mqtt: mqtt?,
            buffer,
            metrics_listen: file.metrics.listen,
            buses,
            devices,
            hash,
        })
    }

    fn gateway(&mut self, g: &GatewaySection) -> GatewaySettings {
        for (field, value) in [("tenant", &g.tenant), ("id", &g.id)] {
            if let Err(e) = wire::topic::validate_id(value) {
                self.problem(format!("gateway.{field} {value:?}: {e}"));
            }
        }
        GatewaySettings {
            tenant: g.tenant.clone(),
            id: g.id.clone(),
            data_dir: self.path(&g.data_dir),
        }
    }

    fn mqtt(&mut self, m: MqttSection, gateway: &GatewaySettings) -> Option<MqttSettings> {
        let (host, port, tls_url) = match parse_mqtt_url(&m.url) {
            Ok(parsed) => parsed,
            Err(e) => {
                self.problem(e);
                return None;
            }
        };
        match (&m.tls, tls_url) {
            (None, true) => self.problem(format!(
                "mqtt.url {:?} uses mqtts:// but [mqtt.tls] is missing",
                m.url
            )),
            (Some(_), false) => self.problem(format!(
                "[mqtt.tls] is set but mqtt.url {:?} is not mqtts://",
                m.url
            )),
            _ => {}
        }
        let tls = m.tls.map(|t| self.tls(t));
        // The brokers know a gateway by `{tenant}/{gateway}` (the embedded broker's front
        // listener and the shipped Mosquitto ACL confine it to its own topics by that name).
        let expected_username = format!("{}/{}", gateway.tenant, gateway.id);
        let username = m.username.unwrap_or_else(|| expected_username.clone());
        if username != expected_username {
            self.problem(format!(
                "mqtt.username {username:?} must be {expected_username:?} (tenant/gateway id, \
                 the name the brokers confine to this gateway's topics) or be left out"
            ));
        }
        if m.password.as_ref().is_none_or(base::Secret::is_empty) {
            self.problem(
                "mqtt.password is required: the gateway secret issued by the cloud (acks and \
                 commands are authenticated with a key derived from it)"
                    .to_string(),
            );
        }
        if m.inflight_window == 0 || m.inflight_window > 60_000 {
            self.problem("mqtt.inflight_window must be between 1 and 60000".to_string());
        }
        for (field, value) in [
            ("keep_alive", m.keep_alive),
            ("ack_timeout", m.ack_timeout),
            ("live_window", m.live_window),
        ] {
            if value.is_zero() {
                self.problem(format!("mqtt.{field} must be greater than zero"));
            }
        }
        if m.backlog_pace.is_zero() {
            self.problem("mqtt.backlog_pace must be greater than zero".to_string());
        }
        if m.reconnect_min.is_zero() || m.reconnect_min > m.reconnect_max {
            self.problem(
                "mqtt.reconnect_min must be greater than zero and at most mqtt.reconnect_max"
                    .to_string(),
            );
        }
        if m.keep_alive < Duration::from_secs(1) {
            self.problem("mqtt.keep_alive must be at least 1s".to_string());
        }
        let client_id = m
            .client_id
            .unwrap_or_else(|| format!("wp-{}-{}", gateway.tenant, gateway.id));
        if client_id.is_empty() || client_id.len() > 128 {
            self.problem("mqtt.client_id must be 1-128 characters".to_string());
        }
        Some(MqttSettings {
            host,
            port,
            tls,
            client_id,
            username,
            password: m.password,
            keep_alive: m.keep_alive,
            inflight_window: m.inflight_window,
            ack_timeout: m.ack_timeout,
            backlog_pace: m.backlog_pace,
            live_window: m.live_window,
            reconnect_min: m.reconnect_min,
            reconnect_max: m.reconnect_max,
        })
    }

    fn buffer(&mut self, b: BufferSection) -> BufferSettings {
        if b.max_bytes < 64 * 1024 {
            self.problem(format!(
                "buffer.max_bytes {} is too small (minimum 65536)",
                b.max_bytes
            ));
        }
        if b.max_age < Duration::from_secs(60) {
            self.problem("buffer.max_age must be at least 60s".to_string());
        }
        if b.flush_interval < Duration::from_millis(10)
            || b.flush_interval > Duration::from_secs(3600)
        {
            self.problem("buffer.flush_interval must be between 10ms and 1h".to_string());
        }
        if b.flush_quiet < Duration::from_millis(1) {
            self.problem("buffer.flush_quiet must be at least 1ms".to_string());
        }
        if b.max_samples_per_batch == 0 {
            self.problem("buffer.max_samples_per_batch must be at least 1".to_string());
        }
        if b.flush_min_samples == 0 {
            self.problem("buffer.flush_min_samples must be at least 1".to_string());
        }
        BufferSettings {
            max_bytes: b.max_bytes,
            max_age: b.max_age,
            flush_interval: b.flush_interval,
            flush_quiet: b.flush_quiet.min(b.flush_interval),
            max_samples_per_batch: b.max_samples_per_batch,
            flush_min_samples: b.flush_min_samples,
        }
    }

    /// Profiles from `gateway.profile_dir`, by file stem.
    fn extra_profiles(&mut self, dir: Option<&Path>) -> HashMap<String, Arc<Profile>> {
        let Some(dir) = dir else {
            return HashMap::new();
        };
        let dir = self.path(dir);
        match firmware_profiles::load_dir(&dir) {
            Ok(list) => list
                .into_iter()
                .map(|(id, profile)| (id, Arc::new(profile)))
                .collect(),
            Err(e) => {
                self.problem(format!("gateway.profile_dir {}: {e}", dir.display()));
                HashMap::new()
            }
        }
    }

    /// Finds a device's profile: `profile_file`, else `profile_dir`, else built-in.
    fn profile(
        &mut self,
        section: &DeviceSection,
        extra: &HashMap<String, Arc<Profile>>,
    ) -> Option<(String, Arc<Profile>)> {
        let who = format!("device {:?}", section.name);
        match (&section.profile, &section.profile_file) {
            (Some(id), None) => {
                if let Some(profile) = extra.get(id) {
                    return Some((id.clone(), Arc::clone(profile)));
                }
                if let Some(cached) = self.profile_cache.get(id) {
                    return cached.clone();
                }
                let found =
                    firmware_profiles::builtin_profile(id).map(|p| (id.clone(), Arc::new(p)));
                if found.is_none() {
                    let mut known: Vec<&str> = firmware_profiles::builtin()
                        .iter()
                        .map(|(id, _)| *id)
                        .collect();
                    known.extend(extra.keys().map(String::as_str));
                    known.sort_unstable();
                    self.problem(format!(
                        "{who}: unknown profile {id:?} (known: {})",
                        known.join(", ")
                    ));
                }
                self.profile_cache.insert(id.clone(), found.clone());
                found
            }
            (None, Some(file)) => {
                let path = self.path(file);
                let key = path.display().to_string();
                if let Some(cached) = self.profile_cache.get(&key) {
                    return cached.clone();
                }
                let found = match firmware_profiles::load_profile(&path) {
                    Ok(profile) => {
                        let id = path
                            .file_stem()
                            .map(|s| s.to_string_lossy().into_owned())
                            .unwrap_or_else(|| key.clone());
                        Some((id, Arc::new(profile)))
                    }
                    Err(e) => {
                        self.problem(format!("{who}: {e}"));
                        None
                    }
                };
                self.profile_cache.insert(key, found.clone());
                found
            }
            (Some(_), Some(_)) => {
                self.problem(format!(
                    "{who}: set either profile or profile_file, not both"
                ));
                None
            }
            (None, None) => {
                self.problem(format!("{who}: profile or profile_file is required"));
                None
            }
        }
    }

    fn device(
        &mut self,
        alias: u16,
        section: DeviceSection,
        bus_names: &[String],
        extra: &HashMap<String, Arc<Profile>>,
    ) -> Option<DeviceSettings> {
        let who = format!("device {:?}", section.name);
        if let Err(e) = validate_device_name(&section.name) {
            self.problem(e);
        }
        let transport = self.transport(&who, &section, bus_names);
        let (profile_id, profile) = self.profile(&section, extra)?;
        let poll = self.poll_groups(&who, &section, &profile);
        if section.heartbeat < Duration::from_secs(1) {
            self.problem(format!("{who}: heartbeat must be at least 1s"));
        }
        let timeout = section.timeout.unwrap_or(profile.transport.timeout);
        if timeout < Duration::from_millis(10) || timeout > Duration::from_secs(60) {
            self.problem(format!("{who}: timeout must be between 10ms and 60s"));
        }
        if let Some(stale) = section.stale_after
            && let Some(longest) = poll.iter().map(|g| g.interval).max()
            && stale <= longest
        {
            self.problem(format!(
                "{who}: stale_after ({}) must be longer than the slowest poll interval ({})",
                humantime::format_duration(stale),
                humantime::format_duration(longest)
            ));
        }
        let unit_id = section.unit_id.unwrap_or(profile.transport.unit_id);
        let plan = match plan::plan_device(&profile, &poll) {
            Ok(plan) => plan,
            Err(e) => {
                self.problem(format!("{who}: profile {profile_id:?}: {e}"));
                return None;
            }
        };
        Some(DeviceSettings {
            alias,
            name: section.name,
            profile_id,
            profile,
            transport: transport?,
            unit_id,
            poll,
            timeout,
            heartbeat: section.heartbeat,
            stale_after: section.stale_after,
            well: section.well,
            plan,
        })
    }

    fn transport(
        &mut self,
        who: &str,
        section: &DeviceSection,
        bus_names: &[String],
    ) -> Option<Transport> {
        match (&section.tcp, &section.rtu) {
            (Some(endpoint), None) => match parse_host_port(endpoint) {
                Ok((host, port)) => Some(Transport::Tcp { host, port }),
                Err(e) => {
                    self.problem(format!("{who}: tcp {e}"));
                    None
                }
            },
            (None, Some(bus)) => match bus_names.iter().position(|b| b == bus) {
                Some(index) => Some(Transport::Rtu { bus: index }),
                None => {
                    self.problem(format!(
                        "{who}: unknown bus {bus:?} (configured buses: {})",
                        if bus_names.is_empty() {
                            "none".to_string()
                        } else {
                            bus_names.join(", ")
                        }
                    ));
                    None
                }
            },
            (Some(_), Some(_)) => {
                self.problem(format!("{who}: set either tcp or rtu, not both"));
                None
            }
            (None, None) => {
                self.problem(format!(
                    "{who}: tcp = \"host:port\" or rtu = \"bus\" is required"
                ));
                None
            }
        }
    }

    /// Matches the device's `poll` table against the poll groups its profile uses
    /// (string info tags are read once per session and need no group).
    fn poll_groups(
        &mut self,
        who: &str,
        section: &DeviceSection,
        profile: &Profile,
    ) -> Vec<PollGroup> {
        let used: BTreeSet<&str> = profile
            .tags
            .iter()
            .filter(|t| !matches!(t.data_type, DataType::String { .. }))
            .map(|t| t.poll_group.as_str())
            .collect();
        let mut groups = Vec::with_capacity(used.len());
        for group in &used {
            match section.poll.get(*group) {
                Some(interval) if interval.into_inner() < Duration::from_millis(100) => {
                    self.problem(format!(
                        "{who}: poll.{group} must be at least 100ms"
                    ));
                }
                Some(interval) => groups.push(PollGroup {
                    name: (*group).to_string(),
                    interval: interval.into_inner(),
                }),
                None => self.problem(format!(
                    "{who}: no poll interval for group {group:?} used by profile {:?} (add it to poll = {{ ... }})",
                    profile.model
                )),
            }
        }
        for name in section.poll.keys() {
            if !used.contains(name.as_str()) {
                self.problem(format!(
                    "{who}: poll group {name:?} is not used by its profile (groups: {})",
                    used.iter().copied().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        groups
    }

    /// Resolves buses, filling unset serial parameters from the profiles of their devices.
    fn buses(&mut self, sections: Vec<BusSection>, devices: &[DeviceSettings]) -> Vec<BusSettings> {
        let mut seen = BTreeSet::new();
        let mut buses = Vec::with_capacity(sections.len());
        for (index, b) in sections.into_iter().enumerate() {
            let who = format!("bus {:?}", b.name);
            if b.name.is_empty() || !seen.insert(b.name.clone()) {
                self.problem(format!("{who}: bus names must be unique and non-empty"));
            }
            let on_bus: Vec<&DeviceSettings> = devices
                .iter()
                .filter(|d| d.transport == Transport::Rtu { bus: index })
                .collect();
            let mut units = BTreeMap::new();
            for d in &on_bus {
                if let Some(other) = units.insert(d.unit_id, &d.name) {
                    self.problem(format!(
                        "{who}: devices {other:?} and {:?} share unit id {}",
                        d.name, d.unit_id
                    ));
                }
            }
            let baud = self.bus_param(&who, "baud", b.baud, &on_bus, |p| p.transport.baud_rate);
            let parity = self.bus_param(&who, "parity", b.parity, &on_bus, |p| {
                parity_from_profile(p.transport.parity)
            });
            let data_bits = self.bus_param(&who, "data_bits", b.data_bits, &on_bus, |p| {
                p.transport.data_bits
            });
            let stop_bits = self.bus_param(&who, "stop_bits", b.stop_bits, &on_bus, |p| {
                p.transport.stop_bits
            });
            if !matches!(data_bits, 7 | 8) {
                self.problem(format!("{who}: data_bits must be 7 or 8"));
            }
            if !matches!(stop_bits, 1 | 2) {
                self.problem(format!("{who}: stop_bits must be 1 or 2"));
            }
            if baud == 0 {
                self.problem(format!("{who}: baud must be greater than zero"));
            }
            let gap = frame_gap(baud.max(1), data_bits, parity, stop_bits);
            buses.push(BusSettings {
                name: b.name,
                port: self.path(&b.port),
                baud,
                parity,
                data_bits,
                stop_bits,
                inter_request_delay: b.inter_request_delay + gap,
            });
        }
        buses
    }

    /// An explicit bus parameter, or the value all the bus's device profiles agree on.
    fn bus_param<T: Copy + PartialEq + fmt::Debug + Default>(
        &mut self,
        who: &str,
        field: &str,
        explicit: Option<T>,
        devices: &[&DeviceSettings],
        from_profile: impl Fn(&Profile) -> T,
    ) -> T {
        if let Some(value) = explicit {
            return value;
        }
        let mut values = devices.iter().map(|d| (d, from_profile(&d.profile)));
        let Some((first_device, first)) = values.next() else {
            self.problem(format!(
                "{who}: {field} must be set (no device on this bus)"
            ));
            return T::default();
        };
        if let Some((device, other)) = values.find(|(_, v)| *v != first) {
            self.problem(format!(
                "{who}: profiles of devices {:?} ({first:?}) and {:?} ({other:?}) disagree on {field}; set {field} on the bus",
                first_device.name, device.name
            ));
        }
        first
    }
}

/// The RTU inter-frame silence: 3.5 character times (fixed 1.75 ms above 19200 baud,
/// as the Modbus serial line spec allows).
pub fn frame_gap(baud: u32, data_bits: u8, parity: ParitySetting, stop_bits: u8) -> Duration {
    if baud > 19_200 {
        return Duration::from_micros(1750);
    }
    let parity_bits = u32::from(parity != ParitySetting::None);
    let bits_per_char = 1 + u32::from(data_bits) + parity_bits + u32::from(stop_bits);
    Duration::from_micros(u64::from(bits_per_char) * 3_500_000 / u64::from(baud) + 1)
}

fn parity_from_profile(p: firmware_profiles::Parity) -> ParitySetting {
    match p {
        firmware_profiles::Parity::None => ParitySetting::None,
        firmware_profiles::Parity::Even => ParitySetting::Even,
        firmware_profiles::Parity::Odd => ParitySetting::Odd,
    }
}
