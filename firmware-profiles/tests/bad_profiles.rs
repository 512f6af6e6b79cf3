//! Data-driven rejection tests: every `tests/data/bad/*.toml` must fail to load with an
//! error that names the file and contains the substring given on its first line as
//! `# expect: <substring>`.

use std::path::{Path, PathBuf};

use firmware_profiles::load_profile;

fn bad_files() -> Vec<PathBuf> {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/bad"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("tests/data/bad exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

fn expectation(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("readable test file");
    let first = text.lines().next().unwrap_or_default();
    let expect = first
        .strip_prefix("# expect: ")
        .unwrap_or_else(|| panic!("{}: first line must be `# expect: ...`", path.display()));
    assert!(
        !expect.trim().is_empty(),
        "{}: empty expectation",
        path.display()
    );
    expect.to_owned()
}

#[test]
fn every_bad_profile_is_rejected_with_its_expected_message() {
    let files = bad_files();
    assert!(files.len() >= 40, "only {} bad profiles found", files.len());
    let mut failures = Vec::new();
    for path in &files {
        let expect = expectation(path);
        let file_name = path.file_name().unwrap().to_string_lossy().into_owned();
        match load_profile(path) {
            Ok(_) => failures.push(format!("{file_name}: loaded, expected error {expect:?}")),
            Err(err) => {
                let message = err.to_string();
                let prefix = format!("firmware profile {file_name}: ");
                if !message.starts_with(&prefix) || !message.contains(&expect) {
                    failures.push(format!(
                        "{file_name}:\n  expected {expect:?}\n  got      {message:?}"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
