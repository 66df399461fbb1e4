//! What stands in for `hash.rs` and `passwd.rs` in a build without the `auth` feature
//! (`cargo build --no-default-features`): the same names, so `mod.rs` reads the same either
//! way, but nothing can be hashed. Without a hash function no stored hash can exist, and
//! the type says so: an enum with no variants has no values.

use std::process::ExitCode;

use super::FEATURE_NEEDED;

/// No value of this type can be made: without the `auth` feature, no password is stored.
#[derive(Debug)]
pub(crate) enum StoredHash {}

impl StoredHash {
    /// Refuses every hash. Not reached in practice: `PasswordFile::parse` refuses the
    /// whole file first, so that even a file with no users is refused.
    pub(crate) fn parse(_secret: &str) -> Result<StoredHash, String> {
        Err(FEATURE_NEEDED.to_owned())
    }

    /// Never called, since there is no `StoredHash` to call it on.
    pub(crate) fn verify(&self, _password: &[u8]) -> bool {
        match *self {}
    }
}

/// `mqttd passwd` without the `auth` feature: says what is missing and fails.
pub fn run(_args: &[String]) -> ExitCode {
    eprintln!("mqttd passwd: {FEATURE_NEEDED}");
    ExitCode::FAILURE
}
