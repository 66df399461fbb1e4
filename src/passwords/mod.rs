//! # Password files, as `mosquitto_passwd` writes them
//!
//! MQTT itself only carries a user name and a password in CONNECT (§3.1.3.4, §3.1.3.5);
//! what a broker checks them against is its own business. mqttd uses Mosquitto's password
//! file, so a file made by `mosquitto_passwd` works here unchanged, and one made by
//! `mqttd passwd` works in Mosquitto. One user per line:
//!
//! ```text
//! alice:$7$101$0QYqTNAi1BcMyLDL$Y1GA+f5MhPZLAytU…mF1Azw==
//!       │ │   │                └ the hash: 64 bytes, base64
//!       │ │   └ the salt: 12 random bytes, base64
//!       │ └ PBKDF2 iterations (101 is mosquitto_passwd's default)
//!       └ 7: PBKDF2-HMAC-SHA512, Mosquitto 2.0's default
//! carol:$6$vkgBXEw/WOLe0LyS$fs5+95nzHhepqb7z…l8MsQ==
//!       └ 6: SHA-512 of password then salt (Mosquitto 1.6 and earlier), no iterations
//! ```
//!
//! The file never holds a password, only what the password hashes to with a random salt:
//! a stolen file does not give the passwords away, and two users with the same password do
//! not get the same line. To check a password we hash it again with the stored salt and
//! compare the results.
//!
//! As in Mosquitto, a line starting with `#` is a comment and a blank line is skipped.
//! Unlike Mosquitto, which drops a line it cannot read with a log message and carries on,
//! [`PasswordFile::load`] refuses the whole file and names the line: a typo should not
//! lock a user out without anyone noticing.
//!
//! The hashing needs crates beyond mqttd's core four, so it sits behind the `auth` cargo
//! feature (on by default) in `hash.rs`, and this file never names a cryptographic type.
//! Built with `--no-default-features`, `disabled.rs` stands in for it: no hash can exist,
//! and [`PasswordFile::load`] says which feature is missing. The subcommand
//! `mqttd passwd` ([`run`], in `passwd.rs`) writes these files.
//!
//! This module uses nothing else of the crate (it is a leaf in `tests/layers.rs`): the
//! broker asks [`PasswordFile::check`] and reads the answer, nothing more.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

#[cfg(not(feature = "auth"))]
mod disabled;
#[cfg(feature = "auth")]
mod hash;
#[cfg(feature = "auth")]
mod passwd;

#[cfg(not(feature = "auth"))]
use disabled::StoredHash;
#[cfg(feature = "auth")]
use hash::StoredHash;

#[cfg(not(feature = "auth"))]
pub use disabled::run;
#[cfg(feature = "auth")]
pub use passwd::run;

/// What a build without the `auth` feature says when asked for a password file.
const FEATURE_NEEDED: &str = "password files need mqttd built with the `auth` feature \
     (it is on by default: build without --no-default-features)";

/// The users of one password file and their stored hashes.
#[derive(Debug)]
pub struct PasswordFile {
    /// By user name. A name appears at most once: [`PasswordFile::parse`] refuses a second.
    users: HashMap<String, StoredHash>,
}

/// The answer to "may this user connect with this password?". The client is refused with
/// the same CONNACK code (0x05, not authorised) in both refusals, so that it cannot tell
/// which user names exist; the broker's log may say which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The user is in the file and the password hashes to the stored hash.
    Accepted,
    /// No line of the file names this user.
    UnknownUser,
    /// The user is in the file, but the password does not match.
    WrongPassword,
}

/// Why a password file could not be used.
#[derive(Debug)]
pub enum PasswordFileError {
    /// The file could not be read at all (missing, no permission, not UTF-8).
    Read { path: PathBuf, error: io::Error },
    /// One line is not `user:$7$…` or `user:$6$…`; `line` counts from 1.
    Line {
        source_name: String,
        line: usize,
        problem: String,
    },
    /// mqttd was built without the `auth` feature, so it cannot check any hash.
    FeatureDisabled { source_name: String },
}

impl fmt::Display for PasswordFileError {
    /// `passwords.txt:3: expected user:$7$iterations$salt$hash`, the shape compilers use,
    /// so an editor can jump to the line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, error } => write!(f, "{}: {error}", path.display()),
            Self::Line {
                source_name,
                line,
                problem,
            } => write!(f, "{source_name}:{line}: {problem}"),
            Self::FeatureDisabled { source_name } => write!(f, "{source_name}: {FEATURE_NEEDED}"),
        }
    }
}

impl std::error::Error for PasswordFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// One line of a password file, split but not yet understood.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line<'a> {
    /// Blank, or a comment (`#` in the first column, as in Mosquitto): nothing to read.
    Skip,
    /// `user:secret`, both sides trimmed of blanks as Mosquitto trims them. The secret is
    /// a hash in a password file, and a plain password in a file for `mqttd passwd -U`.
    Entry { user: &'a str, secret: &'a str },
    /// Something else: no `:`, or nothing on one side of it.
    Malformed,
}

/// Splits one line (without its `\n`) at its first `:`. User names cannot contain `:`
/// (`mosquitto_passwd` refuses them), and hashes never do.
pub(crate) fn split_line(line: &str) -> Line<'_> {
    if line.trim().is_empty() || line.starts_with('#') {
        return Line::Skip;
    }
    match line.split_once(':') {
        Some((user, secret)) if !user.trim().is_empty() && !secret.trim().is_empty() => {
            Line::Entry {
                user: user.trim(),
                secret: secret.trim(),
            }
        }
        _ => Line::Malformed,
    }
}

impl PasswordFile {
    /// Reads and parses the file at `path`; errors name the file as given.
    pub fn load(path: &Path) -> Result<PasswordFile, PasswordFileError> {
        let source_name = path.display().to_string();
        if !cfg!(feature = "auth") {
            // Said before reading, so that a missing feature is not hidden behind a
            // missing file: either way the broker must not start.
            return Err(PasswordFileError::FeatureDisabled { source_name });
        }
        let text = std::fs::read_to_string(path).map_err(|error| PasswordFileError::Read {
            path: path.to_owned(),
            error,
        })?;
        Self::parse(&text, &source_name)
    }

    /// Parses the text of a password file; `source_name` is the file name its errors give.
    pub fn parse(text: &str, source_name: &str) -> Result<PasswordFile, PasswordFileError> {
        if !cfg!(feature = "auth") {
            let source_name = source_name.to_owned();
            return Err(PasswordFileError::FeatureDisabled { source_name });
        }
        let mut users = HashMap::new();
        let mut first_seen: HashMap<&str, usize> = HashMap::new();
        for (index, text) in text.lines().enumerate() {
            let line = index + 1;
            let error = |problem: String| PasswordFileError::Line {
                source_name: source_name.to_owned(),
                line,
                problem,
            };
            let (user, secret) = match split_line(text) {
                Line::Skip => continue,
                Line::Entry { user, secret } => (user, secret),
                Line::Malformed => return Err(error(EXPECTED.to_owned())),
            };
            if let Some(earlier) = first_seen.insert(user, line) {
                return Err(error(format!("user {user:?} is already on line {earlier}")));
            }
            let hash = parse_secret(secret).map_err(error)?;
            users.insert(user.to_owned(), hash);
        }
        Ok(PasswordFile { users })
    }

    /// Whether `username` may connect with `password`. The password is MQTT's binary data
    /// (§3.1.3.5), hashed as the bytes it is.
    ///
    /// An unknown user is answered at once, without hashing: someone timing the answers
    /// could learn which names exist. Mosquitto answers the same way; a broker that must
    /// hide its user names would hash a dummy password here.
    pub fn check(&self, username: &str, password: &[u8]) -> Check {
        match self.users.get(username) {
            None => Check::UnknownUser,
            Some(hash) if hash.verify(password) => Check::Accepted,
            Some(_) => Check::WrongPassword,
        }
    }

    /// How many users the file names.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether the file names no user at all (then nobody can log in with a password).
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// What a line of a password file should look like, for error messages.
const EXPECTED: &str = "expected user:$7$iterations$salt$hash (or user:$6$salt$hash)";

/// Reads the part after `user:`. A secret that does not start with `$` is a plain-text
/// password, which Mosquitto can read but mqttd refuses: the file would give it away.
fn parse_secret(secret: &str) -> Result<StoredHash, String> {
    if !secret.starts_with('$') {
        return Err(
            "password not hashed; run mqttd passwd -U FILE to hash every \
                    plain-text password in the file"
                .to_owned(),
        );
    }
    StoredHash::parse(secret).map_err(|problem| format!("{problem}; {EXPECTED}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_as_mosquitto_reads_them() {
        assert_eq!(split_line(""), Line::Skip);
        assert_eq!(split_line("   \r"), Line::Skip);
        assert_eq!(split_line("# alice:$7$…"), Line::Skip);
        let entry = Line::Entry {
            user: "alice",
            secret: "$7$1$a$b",
        };
        assert_eq!(split_line("alice:$7$1$a$b"), entry);
        assert_eq!(split_line(" alice : $7$1$a$b\r"), entry);
        assert_eq!(split_line("alice"), Line::Malformed);
        assert_eq!(split_line("alice:"), Line::Malformed);
        assert_eq!(split_line(":$7$1$a$b"), Line::Malformed);
    }

    #[cfg(not(feature = "auth"))]
    #[test]
    fn without_the_auth_feature_no_file_is_accepted() {
        let error = PasswordFile::parse("", "passwords.txt").unwrap_err();
        assert!(matches!(error, PasswordFileError::FeatureDisabled { .. }));
        let message = error.to_string();
        assert!(message.starts_with("passwords.txt: "), "{message}");
        assert!(message.contains("`auth` feature"), "{message}");
        let missing = PasswordFile::load(Path::new("no/such/file")).unwrap_err();
        assert!(matches!(missing, PasswordFileError::FeatureDisabled { .. }));
    }
}
