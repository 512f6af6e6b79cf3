//! `wellpulse-cloud detect`: the live detectors over a CSV file the test writes — one
//! output row per input row, the injected anomaly flagged and named, and clear errors for
//! a bad cell (its line and column) and a missing column (its name).

use std::path::Path;
use std::process::{Command, Output};

fn detect(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wellpulse-cloud"))
        .arg("detect")
        .args(args)
        .output()
        .expect("run wellpulse-cloud detect")
}

/// 400 rows every 10 s of two noisy steady columns; `pressure` jumps at row 300.
fn write_csv(path: &Path, bad_row: Option<usize>) {
    let mut text = String::from("timestamp,temperature,pressure\n");
    for i in 0..400usize {
        let t = chrono::DateTime::from_timestamp(1_767_225_600 + 10 * i as i64, 0).unwrap();
        let temperature = 60.0 + ((i * 37) % 11) as f64 * 0.1;
        let pressure = if (300..306).contains(&i) {
            900.0
        } else {
            120.0 + ((i * 13) % 7) as f64 * 0.3
        };
        match bad_row {
            Some(b) if b == i => text.push_str(&format!("{},{temperature},n/a\n", t.to_rfc3339())),
            _ => text.push_str(&format!("{},{temperature},{pressure}\n", t.to_rfc3339())),
        }
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn scores_every_row_and_flags_the_anomaly() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.csv"), dir.path().join("out.csv"));
    write_csv(&input, None);
    let run = detect(&[
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let text = std::fs::read_to_string(&output).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "timestamp,score,flag,column");
    assert_eq!(lines.len(), 401, "one output row per input row");
    let row = |i: usize| lines[i + 1].split(',').collect::<Vec<_>>();
    assert_eq!(row(300)[2], "1", "the jump is flagged: {:?}", row(300));
    assert_eq!(row(300)[3], "pressure");
    let flagged_before = (50..300).filter(|&i| row(i)[2] == "1").count();
    assert!(
        flagged_before <= 2,
        "{flagged_before} false flags on steady data"
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("400 rows scored"), "{stderr}");
}

#[test]
fn a_bad_cell_names_its_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bad.csv");
    write_csv(&input, Some(41));
    let run = detect(&["--input", input.to_str().unwrap()]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    // Row 41 is line 43 (the header is line 1).
    assert!(
        stderr.contains("line 43") && stderr.contains("\"pressure\"") && stderr.contains("n/a"),
        "{stderr}"
    );
}

#[test]
fn a_missing_column_is_named_with_the_ones_there_are() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    write_csv(&input, None);
    let run = detect(&[
        "--input",
        input.to_str().unwrap(),
        "--columns",
        "pressure,flow",
    ]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("\"flow\"") && stderr.contains("temperature, pressure"),
        "{stderr}"
    );
    let run = detect(&["--input", input.to_str().unwrap(), "--time-column", "ts"]);
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("\"ts\""));
}
