//! The two hashes of Mosquitto's password file, computed with RustCrypto's crates: nothing
//! cryptographic is written here, only which functions are fed what, in which order.
//!
//! - `$7$ITERATIONS$SALT$HASH`: PBKDF2 with HMAC-SHA512 as its pseudo-random function,
//!   over the password and the salt, ITERATIONS rounds, 64 bytes out. Each round costs one
//!   HMAC, so guessing passwords against a stolen file costs ITERATIONS times more than
//!   with `$6$`. `mosquitto_passwd` uses 101 rounds by default (cheap, as these things go:
//!   every CONNECT pays it too).
//! - `$6$SALT$HASH`: one SHA-512 over the password's bytes followed by the salt's.
//!
//! SALT is 12 bytes and HASH 64 (SHA-512's size), both in standard base64 with `=`
//! padding. Mosquitto refuses other lengths, and so do we.
//!
//! Compiled only with the `auth` feature; `disabled.rs` stands in without it.

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::Hmac;
use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;

/// Length of a salt in bytes, as `mosquitto_passwd` makes them and Mosquitto requires.
const SALT_LEN: usize = 12;
/// Length of a hash in bytes: SHA-512's output, and what PBKDF2 is asked for.
const HASH_LEN: usize = 64;
/// PBKDF2 rounds for a new password: `mosquitto_passwd`'s default in Mosquitto 2.0.
const DEFAULT_ITERATIONS: u32 = 101;

/// A password as the file stores it: how to hash, the salt, and the expected hash.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct StoredHash {
    method: Method,
    salt: [u8; SALT_LEN],
    hash: [u8; HASH_LEN],
}

/// The hash function, by the number between the first two `$`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    /// `$6$`: SHA-512 of password then salt.
    Sha512,
    /// `$7$`: PBKDF2-HMAC-SHA512 with this many iterations (at least 1).
    Pbkdf2Sha512 { iterations: u32 },
}

impl StoredHash {
    /// Reads `$7$iterations$salt$hash` or `$6$salt$hash`. The error says what is wrong,
    /// in words for the person who edits the file.
    pub(crate) fn parse(secret: &str) -> Result<StoredHash, String> {
        let fields: Vec<&str> = secret.split('$').collect();
        let (method, salt, hash) = match fields.as_slice() {
            ["", "7", iterations, salt, hash] => (parse_iterations(iterations)?, salt, hash),
            ["", "6", salt, hash] => (Method::Sha512, salt, hash),
            ["", "7", ..] => return Err("a $7$ hash has 3 fields after $7$".to_owned()),
            ["", "6", ..] => return Err("a $6$ hash has 2 fields after $6$".to_owned()),
            ["", kind, ..] => return Err(format!("unknown hash type ${kind}$")),
            _ => return Err("a hash starts with $7$ or $6$".to_owned()),
        };
        Ok(StoredHash {
            method,
            salt: decode::<SALT_LEN>("salt", salt)?,
            hash: decode::<HASH_LEN>("hash", hash)?,
        })
    }

    /// A `$7$` hash of `password` with a fresh random salt and 101 iterations, as
    /// `mosquitto_passwd` makes by default. Fails only if the system has no randomness.
    pub(crate) fn new(password: &[u8]) -> Result<StoredHash, getrandom::Error> {
        let mut salt = [0; SALT_LEN];
        getrandom::fill(&mut salt)?;
        let method = Method::Pbkdf2Sha512 {
            iterations: DEFAULT_ITERATIONS,
        };
        let hash = method.hash(password, &salt);
        Ok(StoredHash { method, salt, hash })
    }

    /// Whether `password` hashes, with this salt and method, to the stored hash.
    pub(crate) fn verify(&self, password: &[u8]) -> bool {
        let computed = self.method.hash(password, &self.salt);
        // Constant time: a comparison that stopped at the first differing byte would tell
        // an attacker, by its timing, how many leading bytes of a guess's hash are right.
        computed.ct_eq(&self.hash).into()
    }
}

impl Method {
    /// The hash of `password` with `salt` by this method.
    fn hash(self, password: &[u8], salt: &[u8; SALT_LEN]) -> [u8; HASH_LEN] {
        let mut out = [0; HASH_LEN];
        match self {
            Method::Sha512 => {
                let digest = Sha512::new()
                    .chain_update(password)
                    .chain_update(salt)
                    .finalize();
                out.copy_from_slice(&digest);
            }
            Method::Pbkdf2Sha512 { iterations } => {
                pbkdf2::pbkdf2::<Hmac<Sha512>>(password, salt, iterations, &mut out)
                    .expect("HMAC takes a key of any length, so PBKDF2-HMAC cannot refuse it");
            }
        }
        out
    }
}

/// Reads the iteration count of a `$7$` hash: a decimal number, at least 1.
fn parse_iterations(text: &str) -> Result<Method, String> {
    match text.parse::<u32>() {
        Ok(iterations) if iterations >= 1 => Ok(Method::Pbkdf2Sha512 { iterations }),
        _ => Err(format!(
            "iterations {text:?} is not a number from 1 to {}",
            u32::MAX
        )),
    }
}

/// Decodes one base64 field that must come to exactly `N` bytes.
fn decode<const N: usize>(name: &str, text: &str) -> Result<[u8; N], String> {
    let bytes = BASE64
        .decode(text)
        .map_err(|e| format!("{name} is not base64 ({e})"))?;
    let length = bytes.len();
    bytes
        .try_into()
        .map_err(|_| format!("{name} is {length} bytes, expected {N}"))
}

impl fmt::Display for StoredHash {
    /// The form the file stores, after `user:`; the same text [`StoredHash::parse`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let salt = BASE64.encode(self.salt);
        let hash = BASE64.encode(self.hash);
        match self.method {
            Method::Sha512 => write!(f, "$6${salt}${hash}"),
            Method::Pbkdf2Sha512 { iterations } => write!(f, "$7${iterations}${salt}${hash}"),
        }
    }
}

impl fmt::Debug for StoredHash {
    /// Shows the method only: a hash in a log is as good as the file to an attacker.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoredHash({:?}, ****)", self.method)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One line of `tests/data/pbkdf2.txt`, made by Mosquitto 2.0.11's `mosquitto_passwd`.
    const ALICE: &str = "$7$101$0QYqTNAi1BcMyLDL$Y1GA+f5MhPZLAytUonMi6Dqoolu43euH+YY7U8Jk+\
                         JMoem92G7UlmTWd0bBVT3Y2oyhLl0O6lifiP8x2mF1Azw==";
    /// One line of `tests/data/sha512.txt` (`mosquitto_passwd -H sha512`).
    const CAROL: &str = "$6$vkgBXEw/WOLe0LyS$fs5+95nzHhepqb7z211l/C83vpFXcBfq2LWCL7WQj/\
                         yHRgdx7g1g8yhVb/rYJC88sGOUgbAbKS2FCqpyEl8MsQ==";

    #[test]
    fn verifies_mosquitto_passwd_hashes_of_both_kinds() {
        let alice = StoredHash::parse(ALICE).unwrap();
        assert!(alice.verify(b"wonderland"));
        assert!(!alice.verify(b"Wonderland"));
        let carol = StoredHash::parse(CAROL).unwrap();
        assert!(carol.verify(b"h@rd to guess"));
        assert!(!carol.verify(b""));
    }

    #[test]
    fn prints_what_it_parsed() {
        for text in [ALICE, CAROL] {
            assert_eq!(StoredHash::parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn a_new_hash_is_7_101_with_a_fresh_salt() {
        let first = StoredHash::new(b"secret").unwrap();
        let second = StoredHash::new(b"secret").unwrap();
        assert_ne!(first.salt, second.salt);
        assert!(first.to_string().starts_with("$7$101$"));
        let reread = StoredHash::parse(&first.to_string()).unwrap();
        assert!(reread.verify(b"secret"));
        assert!(!reread.verify(b"secreT"));
    }

    #[test]
    fn refuses_malformed_hashes_with_a_reason() {
        let salt = BASE64.encode([1; SALT_LEN]);
        let hash = BASE64.encode([2; HASH_LEN]);
        let cases = [
            (format!("$5${salt}${hash}"), "unknown hash type $5$"),
            (format!("$7${salt}${hash}"), "3 fields after $7$"),
            (format!("$6$1${salt}${hash}"), "2 fields after $6$"),
            (format!("$7$0${salt}${hash}"), "iterations \"0\""),
            (format!("$7$x${salt}${hash}"), "iterations \"x\""),
            (format!("$7$101$*{salt}${hash}"), "salt is not base64"),
            (
                format!("$7$101$AAAA${hash}"),
                "salt is 3 bytes, expected 12",
            ),
            (format!("$6${salt}${salt}"), "hash is 12 bytes, expected 64"),
            ("7$101".to_owned(), "starts with $7$ or $6$"),
        ];
        for (text, reason) in cases {
            let error = StoredHash::parse(&text).unwrap_err();
            assert!(error.contains(reason), "{text}: {error}");
        }
    }

    #[test]
    fn debug_output_hides_the_hash() {
        let shown = format!("{:?}", StoredHash::parse(CAROL).unwrap());
        assert_eq!(shown, "StoredHash(Sha512, ****)");
    }
}
