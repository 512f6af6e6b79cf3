//! Crash safety: a child process appends (and acks) in a tight loop and reports every call
//! that returned; the parent kills it with SIGKILL at a random moment, reopens the buffer
//! and checks that every acknowledged append is present, every acknowledged ack is
//! applied, and seqs continue after the highest one ever handed out. Three rounds run on
//! the same file.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use agent::buffer::{Buffer, BufferLimits};

/// Set in the child: the database path it appends to.
const CHILD_ENV: &str = "WP_BUFFER_CRASH_CHILD";

fn limits() -> BufferLimits {
    BufferLimits {
        max_bytes: 1 << 30,
        max_age: Duration::from_secs(365 * 24 * 3600),
    }
}

fn block(salt: u64) -> wire::FramesBlock {
    let frame = wire::Frame {
        device: 3,
        ts_ms: 1_700_000_000_000 + salt as i64,
        samples: (0..40)
            .map(|metric| wire::Sample {
                metric,
                value: Some(wire::Value::Int(salt as i64 + i64::from(metric))),
                quality: wire::Quality::Good,
            })
            .collect(),
    };
    wire::FramesBlock::encode(&[frame]).expect("encodable frame")
}

/// Child entry point: appends forever, acking every fifth batch, and prints each call
/// once it returned (an ack also before it starts: the kill may land between its commit
/// and its report). Does nothing unless started by the parent test.
#[test]
#[ignore = "child process entry point, started by kill_9_loses_no_acknowledged_write"]
fn crash_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let buffer = Buffer::open(Path::new(&path), limits()).expect("child opens buffer");
    let boot = u64::from(std::process::id());
    buffer
        .store_birth(&wire::Birth {
            boot_id: boot,
            ts_ms: 0,
            agent_version: "crash".into(),
            config_hash: String::new(),
            devices: Vec::new(),
        })
        .expect("child stores birth");
    let mut out = std::io::stdout().lock();
    for i in 0u64.. {
        let seq = buffer
            .append(i as i64, boot, &block(i))
            .expect("child append");
        writeln!(out, "APPENDED {seq}").expect("stdout");
        out.flush().expect("stdout");
        if i % 5 == 4 {
            writeln!(out, "ACKING {}", seq - 2).expect("stdout");
            out.flush().expect("stdout");
            buffer.ack(&[(seq - 2, seq - 2)]).expect("child ack");
            writeln!(out, "ACKED {}", seq - 2).expect("stdout");
            out.flush().expect("stdout");
        }
    }
}

struct Round {
    appended: BTreeSet<u64>,
    /// Acks that returned.
    acked: BTreeSet<u64>,
    /// Acks started: applied or not, depending on where the kill landed.
    acking: BTreeSet<u64>,
}

/// Runs the child until it reported `kill_after` appends, then kills it with SIGKILL.
fn crash_round(path: &Path, kill_after: usize) -> Round {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "crash_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut round = Round {
        appended: BTreeSet::new(),
        acked: BTreeSet::new(),
        acking: BTreeSet::new(),
    };
    let record = |line: &str, round: &mut Round| {
        if let Some(seq) = line.strip_prefix("APPENDED ") {
            round.appended.insert(seq.parse().expect("seq"));
        } else if let Some(seq) = line.strip_prefix("ACKED ") {
            round.acked.insert(seq.parse().expect("seq"));
        } else if let Some(seq) = line.strip_prefix("ACKING ") {
            round.acking.insert(seq.parse().expect("seq"));
        }
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while round.appended.len() < kill_after {
        assert!(Instant::now() < deadline, "child made no progress");
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => record(&line, &mut round),
            Err(e) => panic!("child stopped reporting: {e}"),
        }
    }
    child.kill().expect("SIGKILL child");
    let status = child.wait().expect("reap child");
    assert!(!status.success(), "child was killed, not finished");
    reader.join().expect("reader thread");
    // Lines written before the kill are still in the pipe: they were acknowledged too.
    while let Ok(line) = rx.try_recv() {
        record(&line, &mut round);
    }
    round
}

#[test]
fn kill_9_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("crash.redb");
    let mut highest_seen = 0u64;
    for (n, kill_after) in [37usize, 80, 53].into_iter().enumerate() {
        let round = crash_round(&path, kill_after);
        let first = *round.appended.first().expect("appends");
        assert!(
            first > highest_seen,
            "round {n}: seq {first} reused (highest before {highest_seen})"
        );
        let buffer = Buffer::open(&path, limits()).expect("reopen after SIGKILL");
        let present: BTreeSet<u64> = buffer
            .pending(None, usize::MAX)
            .expect("pending")
            .iter()
            .map(|r| r.seq)
            .collect();
        for seq in round.appended.difference(&round.acking) {
            assert!(
                present.contains(seq),
                "round {n}: acknowledged append {seq} lost"
            );
        }
        for seq in &round.acked {
            assert!(
                !present.contains(seq),
                "round {n}: acknowledged ack of {seq} undone"
            );
        }
        let last = *round.appended.last().expect("appends");
        highest_seen = last;
        let next = buffer.stats().next_seq;
        assert!(next > last, "round {n}: next seq {next} would reuse {last}");
        assert_eq!(buffer.stats().pending_batches, present.len() as u64);
        for record in buffer.pending(None, usize::MAX).expect("pending") {
            assert_eq!(
                record.block,
                block(record.created_ms as u64),
                "seq {}",
                record.seq
            );
            assert!(buffer.birth(record.boot_id).expect("birth").is_some());
        }
    }
}
