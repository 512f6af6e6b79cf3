//! Secrets and paths. A secret read from the file (`mqtt.password`) is a [`Secret`]
//! (`base::Secret`: `Debug` prints `***`, the memory is zeroed on drop), so logging a
//! config never leaks it. Every path the file names (`data_dir`, `profile_dir`,
//! `profile_file`, bus ports, TLS CA, certificate and key) is resolved against the
//! directory of the configuration file, here.

use std::path::{Path, PathBuf};

pub use base::Secret;

use super::TlsSection;
use super::validate::Resolver;

impl Resolver<'_> {
    /// A path named in the file, anchored at the file's directory when relative.
    pub(super) fn path(&self, p: &Path) -> PathBuf {
        self.base.join(p)
    }

    pub(super) fn tls(&mut self, t: TlsSection) -> TlsSection {
        if t.client_cert.is_some() != t.client_key.is_some() {
            self.problem(
                "mqtt.tls.client_cert and mqtt.tls.client_key must be set together".to_string(),
            );
        }
        TlsSection {
            ca_file: self.path(&t.ca_file),
            client_cert: t.client_cert.map(|p| self.path(&p)),
            client_key: t.client_key.map(|p| self.path(&p)),
        }
    }
}
