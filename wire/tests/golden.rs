//! Golden files pin the wire format: each message below must encode to exactly the bytes in
//! `tests/data/<name>.cbor`, decode back to itself, and be read by Python's `cbor2` as the
//! pinned JSON view in `tests/data/<name>.json`.
//!
//! After a deliberate format change, regenerate with `WIRE_BLESS=1 cargo test -p wire --test golden`
//! and review the JSON diff: it is the human-readable record of the change.

use std::path::{Path, PathBuf};
use std::process::Command as Process;

use wire::seal::{self, MessageKey};
use wire::{
    Ack, Batch, BatchHeader, Birth, BirthStatus, BufferStatus, CloudState, Command, CommandKind,
    CommandResult, Death, DeviceEntry, Frame, FramesBlock, MetricEntry, MetricKind, Quality,
    Rejected, Sample, Value, encode_batch,
};

/// The message key of the sealed goldens (a gateway whose MQTT password is this).
fn golden_key() -> MessageKey {
    MessageKey::derive(b"gw-01-secret-0123456789")
}

fn setpoint_command() -> Command {
    Command {
        id: 8,
        expires_ms: 1_763_800_300_000,
        kind: CommandKind::WriteSetpoint {
            device: 0,
            metric: 5,
            value: 7.5,
            expected_current: Some(8.0),
        },
    }
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn blessing() -> bool {
    std::env::var_os("WIRE_BLESS").is_some()
}

fn good(metric: u16, value: Value) -> Sample {
    Sample {
        metric,
        value: Some(value),
        quality: Quality::Good,
    }
}

fn ack_rejecting() -> Ack {
    Ack::rejecting(
        [1000, 1001, 1003],
        vec![
            Rejected::permanent(
                [1002],
                Rejected::SEQ_CONFLICT,
                "seq 1002 is stored with different samples",
            ),
            Rejected::permanent([1004, 1005], Rejected::TIME_OUT_OF_RANGE, ""),
            Rejected::retryable([1006], "storage_busy", "database failover in progress"),
        ],
    )
}

fn birth_status() -> BirthStatus {
    BirthStatus {
        set_aside_batches: 2,
        set_aside_bytes: 1824,
        set_aside_dropped: 0,
        ..BirthStatus::default()
    }
}

/// A batch of a buffer epoch (key 6), whose buffer lost batches: what a salvaged or
/// recreated buffer sends.
fn epoch_batch() -> Batch {
    let mut batch = typical_batch();
    batch.header.epoch = 0x0123_4567_89ab_cdef;
    batch.header.seq = 1;
    batch.header.status = Some(BufferStatus {
        pending_batches: 1,
        pending_bytes: 120,
        oldest_age_ms: 0,
        dropped_samples: 4800,
        dropped_batches: 12,
    });
    batch
}

fn birth_status_with_epoch() -> BirthStatus {
    BirthStatus {
        epoch: 0x0123_4567_89ab_cdef,
        dropped_batches: 12,
        dropped_samples: 4800,
        ..birth_status()
    }
}

fn typical_batch() -> Batch {
    let t0 = 1_763_800_000_000;
    Batch {
        header: BatchHeader {
            epoch: 0,
            seq: 1042,
            boot_id: 0x5eed_cafe,
            historical: false,
            status: Some(BufferStatus {
                pending_batches: 3,
                pending_bytes: 4096,
                oldest_age_ms: 2500,
                dropped_samples: 0,
                dropped_batches: 0,
            }),
        },
        frames: vec![
            Frame {
                device: 0,
                ts_ms: t0,
                samples: vec![
                    good(0, Value::Int(1525)),  // tubing pressure x10 psi
                    good(1, Value::Int(2210)),  // casing pressure x10 psi
                    good(2, Value::Int(87)),    // fillage %
                    good(5, Value::Bool(true)), // running
                ],
            },
            Frame {
                device: 1,
                ts_ms: t0 + 12,
                samples: vec![
                    good(0, Value::Float(412.5)),
                    good(1, Value::Float(f64::from(88.123_f32))),
                ],
            },
            Frame {
                device: 0,
                ts_ms: t0 + 1000,
                samples: vec![
                    good(0, Value::Int(1526)),
                    Sample {
                        metric: 1,
                        value: None,
                        quality: Quality::Bad,
                    },
                    Sample {
                        metric: 2,
                        value: Some(Value::Int(87)),
                        quality: Quality::Stale,
                    },
                    Sample {
                        metric: 3,
                        value: Some(Value::Int(-40)),
                        quality: Quality::Uncertain,
                    },
                ],
            },
        ],
    }
}

/// The typical batch as a version-1 agent sent it: version 1 header, version-1 block.
fn typical_batch_v1() -> Vec<u8> {
    let batch = typical_batch();
    let mut bytes = encode_batch(
        &batch.header,
        &FramesBlock::encode_v1(&batch.frames).expect("encodes"),
    );
    assert_eq!(bytes[..3], [0xa6, 0x00, 0x02], "map, key 0, version 2");
    bytes[2] = 0x01;
    bytes
}

/// A deadbanded small site over 4 s: a rod-pump controller (state and motor current every
/// poll, a heartbeat of its last tag), a gas detector (its state every poll).
fn small_site_batch() -> Batch {
    let t0 = 1_763_800_000_490;
    let mut frames = Vec::new();
    for (k, jitter) in [0i64, 1, -1, 0].into_iter().enumerate() {
        let ts = t0 + k as i64 * 1000 + jitter;
        frames.push(Frame {
            device: 0,
            ts_ms: ts,
            samples: vec![good(0, Value::Int(3)), good(14, Value::Int(251 + k as i64))],
        });
        frames.push(Frame {
            device: 3,
            ts_ms: ts + 1,
            samples: vec![good(6, Value::Int(1))],
        });
    }
    frames.push(Frame {
        device: 0,
        ts_ms: t0 + 3_500,
        samples: vec![good(36, Value::Bool(true))],
    });
    Batch {
        header: BatchHeader {
            seq: 1043,
            boot_id: 0x5eed_cafe,
            historical: false,
            status: None,
            epoch: 0,
        },
        frames,
    }
}

/// Frames as a version-2 block returns them: grouped by device in order of appearance.
fn grouped(frames: &[Frame]) -> Vec<Frame> {
    let mut devices: Vec<u16> = Vec::new();
    for f in frames {
        if !devices.contains(&f.device) {
            devices.push(f.device);
        }
    }
    devices
        .iter()
        .flat_map(|d| frames.iter().filter(move |f| f.device == *d).cloned())
        .collect()
}

fn birth() -> Birth {
    Birth {
        boot_id: 0x5eed_cafe,
        ts_ms: 1_763_800_000_000,
        agent_version: "0.1.0".into(),
        config_hash: "9f2c1e7a".into(),
        devices: vec![DeviceEntry {
            alias: 0,
            name: "well-7-rpc".into(),
            profile: "rod-pump-controller".into(),
            info: vec![("serial_number".into(), "RPC-00417".into())],
            metrics: vec![
                MetricEntry {
                    alias: 0,
                    canonical: "tubing_pressure_psi".into(),
                    tag: "tubing_pressure".into(),
                    unit: "psi".into(),
                    scale: 0.1,
                    offset: 0.0,
                    writable: false,
                    kind: Some(MetricKind::Gauge),
                },
                // As an agent that predates metric kinds wrote it (no key 7).
                MetricEntry {
                    alias: 5,
                    canonical: "strokes_per_minute".into(),
                    tag: "spm_setpoint".into(),
                    unit: "spm".into(),
                    scale: 0.01,
                    offset: 0.0,
                    writable: true,
                    kind: None,
                },
                // A custom metric: its own name, unit and kind.
                MetricEntry {
                    alias: 41,
                    canonical: "custom.separator_level".into(),
                    tag: "hr_41".into(),
                    unit: "in".into(),
                    scale: 0.1,
                    offset: 0.0,
                    writable: false,
                    kind: Some(MetricKind::Gauge),
                },
            ],
        }],
    }
}

/// Every golden message, by file name, with its encoding.
fn goldens() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("batch_typical", typical_batch().encode().expect("encodes")),
        ("batch_typical_v1", typical_batch_v1()),
        (
            "batch_small_site",
            small_site_batch().encode().expect("encodes"),
        ),
        ("batch_epoch", epoch_batch().encode().expect("encodes")),
        (
            "birth_with_epoch",
            birth().encode_with_status(Some(&birth_status_with_epoch())),
        ),
        ("birth", birth().encode()),
        (
            "death",
            Death {
                boot_id: 0x5eed_cafe,
                ts_ms: 1_763_800_000_000,
            }
            .encode(),
        ),
        (
            "ack",
            Ack {
                ranges: vec![(1000, 1041), (1043, 1043)],
                rejected: Vec::new(),
            }
            .encode(),
        ),
        ("ack_rejecting", ack_rejecting().encode()),
        (
            "birth_with_status",
            birth().encode_with_status(Some(&birth_status())),
        ),
        (
            "command_rebirth",
            Command {
                id: 7,
                expires_ms: 1_763_800_300_000,
                kind: CommandKind::Rebirth {
                    boot_id: Some(0x5eed_cafe),
                },
            }
            .encode(),
        ),
        ("command_setpoint", setpoint_command().encode()),
        (
            "command_result",
            CommandResult {
                id: 8,
                ok: true,
                message: "written and read back".into(),
            }
            .encode(),
        ),
        // Sealed as they travel on MQTT: [1, message, 16-byte tag].
        (
            "sealed_ack",
            seal::seal(
                &golden_key(),
                "wp/v1/acme/gw-01/ack",
                &Ack::of((1000..=1041).chain([1043])).encode(),
            ),
        ),
        (
            "sealed_command_setpoint",
            seal::seal(
                &golden_key(),
                "wp/v1/acme/gw-01/cmd",
                &setpoint_command().encode(),
            ),
        ),
        // The cloud's readiness: not sealed (see wire::state).
        ("cloud_state_online", cloud_state().encode()),
    ]
}

fn cloud_state() -> CloudState {
    CloudState {
        online: true,
        session_ms: 1_763_800_000_000,
    }
}

#[test]
fn messages_encode_to_the_golden_bytes() {
    let dir = data_dir();
    for (name, bytes) in goldens() {
        let path = dir.join(format!("{name}.cbor"));
        if blessing() {
            std::fs::write(&path, &bytes).expect("write golden");
            continue;
        }
        let golden = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            bytes,
            golden,
            "{name} no longer encodes to {}",
            path.display()
        );
    }
}

#[test]
fn golden_bytes_decode_to_the_messages() {
    let dir = data_dir();
    let read = |name: &str| std::fs::read(dir.join(format!("{name}.cbor"))).expect("golden file");
    let typical = typical_batch();
    let v2 = Batch::decode(&read("batch_typical")).unwrap();
    assert_eq!(v2.header, typical.header);
    assert_eq!(v2.frames, grouped(&typical.frames));
    // What agents before batch version 2 sent still decodes, in its frame order.
    assert_eq!(Batch::decode(&read("batch_typical_v1")).unwrap(), typical);
    let small = small_site_batch();
    let decoded = Batch::decode(&read("batch_small_site")).unwrap();
    assert_eq!(decoded.frames, grouped(&small.frames));
    assert_eq!(decoded.header, small.header);
    let epoch = epoch_batch();
    let decoded = Batch::decode(&read("batch_epoch")).unwrap();
    assert_eq!(decoded.header, epoch.header);
    assert_eq!(decoded.frames, grouped(&epoch.frames));
    assert_eq!(
        Birth::decode_with_status(&read("birth_with_epoch")).unwrap(),
        (birth(), Some(birth_status_with_epoch()))
    );
    assert_eq!(Birth::decode(&read("birth")).unwrap(), birth());
    assert_eq!(Death::decode(&read("death")).unwrap().boot_id, 0x5eed_cafe);
    assert_eq!(
        Ack::decode(&read("ack")).unwrap(),
        Ack::of((1000..=1041).chain([1043]))
    );
    assert_eq!(
        Ack::decode(&read("ack_rejecting")).unwrap(),
        ack_rejecting()
    );
    assert_eq!(
        Birth::decode_with_status(&read("birth_with_status")).unwrap(),
        (birth(), Some(birth_status()))
    );
    assert!(matches!(
        Command::decode(&read("command_setpoint")).unwrap().kind,
        CommandKind::WriteSetpoint { value: 7.5, .. }
    ));
    assert!(CommandResult::decode(&read("command_result")).unwrap().ok);
    let key = golden_key();
    let sealed = read("sealed_ack");
    let opened = seal::open([&key], "wp/v1/acme/gw-01/ack", &sealed).unwrap();
    assert_eq!(
        Ack::decode(opened.message).unwrap(),
        Ack::of((1000..=1041).chain([1043]))
    );
    let sealed = read("sealed_command_setpoint");
    let opened = seal::open([&key], "wp/v1/acme/gw-01/cmd", &sealed).unwrap();
    assert_eq!(Command::decode(opened.message).unwrap(), setpoint_command());
    // Sealed for gw-01's cmd topic: not valid on another gateway's, nor as an ack.
    for topic in ["wp/v1/acme/gw-02/cmd", "wp/v1/acme/gw-01/ack"] {
        assert!(seal::open([&key], topic, &sealed).is_err(), "{topic}");
    }
    assert_eq!(
        CloudState::decode(&read("cloud_state_online")).unwrap(),
        cloud_state()
    );
}

#[test]
fn python_cbor2_reads_every_golden_file() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cbor2_check.py");
    let mut cmd = Process::new("python3");
    cmd.arg(&script).arg(data_dir());
    if blessing() {
        cmd.arg("--bless");
    }
    let out = cmd
        .output()
        .expect("python3 must be installed to run the cbor2 interoperability test");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'cbor2'"),
        "Python's cbor2 is missing: `pip install cbor2` (.ci/run installs it)"
    );
    assert!(
        out.status.success(),
        "cbor2 check failed:\n{}\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 failed"));
}
