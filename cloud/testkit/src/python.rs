//! The local servers the tests run with Python (the SMTP sink, localstripe): a script of
//! this crate that listens on a free loopback port and prints `READY <port>` when it does.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// A started helper: the process (killed on drop), its port and the rest of its output.
pub struct Helper {
    /// The process.
    pub child: Child,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    /// What it prints after `READY`.
    pub lines: Lines<BufReader<ChildStdout>>,
}

/// Runs `python3 <script>` (a file beside this crate's manifest) and waits, at most 30 s,
/// for its `READY <port>` line; `what` and `install` name it and its installer in a
/// failure.
pub async fn start(script: &str, what: &str, install: &str) -> Helper {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(script);
    let mut child = Command::new("python3")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("python3 runs {what} ({install}): {e}"));
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let ready = async {
        loop {
            let line = lines
                .next_line()
                .await
                .unwrap_or_else(|e| panic!("reading {what}'s output: {e}"))
                .unwrap_or_else(|| {
                    panic!("{what} exited before listening (is it installed? {install})")
                });
            if let Some(port) = line.strip_prefix("READY ") {
                return port
                    .trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{what} printed a bad port: {line:?}"));
            }
        }
    };
    let port = tokio::time::timeout(Duration::from_secs(30), ready)
        .await
        .unwrap_or_else(|_| panic!("{what} starts within 30 s"));
    Helper { child, port, lines }
}
