//! A small tmpfs per test (the tests run as root), so a full disk is real.
#![allow(dead_code)] // each user takes a subset

use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted for one test, unmounted (and its directory removed) on drop, also when
/// the test fails.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    pub fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "cannot mount a {size} tmpfs on {} (these tests need root): {}",
            dir.path().display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // A test that failed may leave a file open on it: detach lazily then.
        for args in [&[][..], &["-l"][..]] {
            let out = Command::new("umount")
                .args(args)
                .arg(self.dir.path())
                .output();
            if matches!(&out, Ok(o) if o.status.success()) {
                return;
            }
            eprintln!(
                "cannot unmount {} {args:?}: {out:?}",
                self.dir.path().display()
            );
        }
    }
}

/// Fills the rest of the file system with a file; returns its path.
pub fn fill(dir: &Path) -> PathBuf {
    use std::io::Write as _;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).expect("filler");
    let chunk = vec![0xa5u8; 4096];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
    path
}
