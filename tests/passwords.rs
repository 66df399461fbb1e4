//! Password files as `mosquitto_passwd` writes them (src/passwords/): the fixtures in
//! `tests/data/` were made by Mosquitto 2.0.11's own `mosquitto_passwd` (see the README
//! there), so these tests check compatibility without Mosquitto installed.
//!
//! With the `auth` feature (the default) the files are read and checked, and the
//! `mqttd passwd` subcommand of the built binary edits them. Without it
//! (`cargo test --no-default-features`) both must refuse, naming the feature.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mqttd::passwords::{PasswordFile, PasswordFileError};

/// A fixture file under `tests/data/`.
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Runs the built `mqttd passwd` with `args`.
fn passwd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mqttd"))
        .arg("passwd")
        .args(args)
        .output()
        .expect("the mqttd binary runs")
}

#[cfg(feature = "auth")]
mod with_auth {
    use super::*;
    use mqttd::passwords::Check;

    #[test]
    fn mosquitto_passwd_pbkdf2_file_accepts_its_users_and_only_them() {
        let file = PasswordFile::load(&fixture("pbkdf2.txt")).unwrap();
        assert_eq!(file.len(), 2);
        assert_eq!(file.check("alice", b"wonderland"), Check::Accepted);
        let bob = b"correct horse battery staple";
        assert_eq!(file.check("bob", bob), Check::Accepted);
        assert_eq!(file.check("alice", bob), Check::WrongPassword);
        assert_eq!(file.check("bob", b"wonderland"), Check::WrongPassword);
        assert_eq!(file.check("alice", b""), Check::WrongPassword);
        assert_eq!(file.check("Alice", b"wonderland"), Check::UnknownUser);
        assert_eq!(file.check("mallory", b"wonderland"), Check::UnknownUser);
    }

    #[test]
    fn mosquitto_passwd_sha512_file_still_works() {
        let file = PasswordFile::load(&fixture("sha512.txt")).unwrap();
        assert_eq!(file.check("carol", b"h@rd to guess"), Check::Accepted);
        assert_eq!(file.check("carol", b"h@rd to guess "), Check::WrongPassword);
    }

    #[test]
    fn iterations_other_than_101_are_read_from_the_line() {
        let file = PasswordFile::load(&fixture("iterations.txt")).unwrap();
        assert_eq!(file.check("dave", b"thousand rounds"), Check::Accepted);
        assert_eq!(file.check("dave", b"hundred rounds"), Check::WrongPassword);
    }

    #[test]
    fn comments_and_blank_lines_are_skipped() {
        let alice = std::fs::read_to_string(fixture("pbkdf2.txt")).unwrap();
        let text = format!("# lab users\n\n   \n{alice}\n# the end\n");
        let file = PasswordFile::parse(&text, "passwords.txt").unwrap();
        assert_eq!(file.len(), 2);
        assert_eq!(file.check("alice", b"wonderland"), Check::Accepted);
    }

    /// The error for `text`, as the broker would print it.
    fn error_for(text: &str) -> String {
        PasswordFile::parse(text, "passwords.txt")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_line_that_cannot_be_read_is_named_with_its_number() {
        let alice = std::fs::read_to_string(fixture("pbkdf2.txt")).unwrap();
        let message = error_for(&format!("# users\n{alice}just a name\n"));
        assert_eq!(
            message,
            "passwords.txt:4: expected user:$7$iterations$salt$hash (or user:$6$salt$hash)"
        );
        let error = PasswordFile::parse("\nx:$7$", "p.txt").unwrap_err();
        assert!(matches!(error, PasswordFileError::Line { line: 2, .. }));
        let message = error_for("carol:$6$c2FsdA==$aGFzaA==\n");
        assert!(message.starts_with("passwords.txt:1: salt is 4 bytes, expected 12"));
    }

    #[test]
    fn a_plain_text_password_is_refused_with_the_command_that_hashes_it() {
        let message = error_for("alice:wonderland\n");
        assert!(message.starts_with("passwords.txt:1: password not hashed"));
        assert!(message.contains("run mqttd passwd -U FILE"), "{message}");
    }

    #[test]
    fn a_user_named_twice_is_refused() {
        let alice = std::fs::read_to_string(fixture("pbkdf2.txt")).unwrap();
        let first = alice.lines().next().unwrap();
        let message = error_for(&format!("{first}\n{first}\n"));
        assert_eq!(
            message,
            "passwords.txt:2: user \"alice\" is already on line 1"
        );
    }

    #[test]
    fn a_missing_file_is_named() {
        let path = fixture("no-such-file.txt");
        let error = PasswordFile::load(&path).unwrap_err();
        assert!(matches!(error, PasswordFileError::Read { .. }));
        assert!(error.to_string().starts_with(&path.display().to_string()));
    }

    /// A fresh directory under the system's temporary directory, removed when dropped
    /// (also when a test fails), named after the test and this process.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(test: &str) -> TempDir {
            let name = format!("mqttd-passwd-{}-{test}", std::process::id());
            let dir = std::env::temp_dir().join(name);
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn file(&self, name: &str) -> String {
            self.0.join(name).display().to_string()
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Runs `mqttd passwd` and insists that it succeeded.
    fn passwd_ok(args: &[&str]) {
        let out = passwd(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "mqttd passwd {args:?}: {stderr}");
    }

    fn load(path: &str) -> PasswordFile {
        PasswordFile::load(Path::new(path)).unwrap()
    }

    #[test]
    fn passwd_creates_adds_changes_and_deletes_users() {
        let dir = TempDir::new("round-trip");
        let pw = dir.file("passwords.txt");
        passwd_ok(&["-c", "-b", &pw, "alice", "first"]);
        assert_eq!(load(&pw).check("alice", b"first"), Check::Accepted);
        passwd_ok(&["-b", &pw, "bob", "builder"]);
        passwd_ok(&["-b", &pw, "alice", "second"]);
        let file = load(&pw);
        assert_eq!(file.len(), 2);
        assert_eq!(file.check("alice", b"first"), Check::WrongPassword);
        assert_eq!(file.check("alice", b"second"), Check::Accepted);
        assert_eq!(file.check("bob", b"builder"), Check::Accepted);
        passwd_ok(&["-D", &pw, "bob"]);
        assert_eq!(load(&pw).check("bob", b"builder"), Check::UnknownUser);
        let again = passwd(&["-D", &pw, "bob"]);
        assert!(!again.status.success());
        let stderr = String::from_utf8_lossy(&again.stderr);
        assert!(stderr.contains("user bob not found"), "{stderr}");
        let text = std::fs::read_to_string(&pw).unwrap();
        assert!(text.starts_with("alice:$7$101$"), "{text}");
    }

    #[cfg(unix)]
    #[test]
    fn passwd_creates_a_file_only_its_owner_can_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new("mode");
        let pw = dir.file("passwords.txt");
        passwd_ok(&["-c", "-b", &pw, "alice", "first"]);
        let mode = std::fs::metadata(&pw).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn passwd_u_hashes_the_plain_text_lines_of_a_file_in_place() {
        let dir = TempDir::new("convert");
        let pw = dir.file("plain.txt");
        std::fs::write(&pw, "# lab\nalice:wonderland\nbob : builder \n").unwrap();
        let refused = PasswordFile::load(Path::new(&pw)).unwrap_err().to_string();
        assert!(
            refused.contains("plain.txt:2: password not hashed"),
            "{refused}"
        );
        passwd_ok(&["-U", &pw]);
        let file = load(&pw);
        assert_eq!(file.check("alice", b"wonderland"), Check::Accepted);
        assert_eq!(file.check("bob", b"builder"), Check::Accepted);
        let text = std::fs::read_to_string(&pw).unwrap();
        assert!(text.starts_with("# lab\nalice:$7$101$"), "{text}");
        passwd_ok(&["-U", &pw]);
        let again = std::fs::read_to_string(&pw).unwrap();
        assert_eq!(again, text, "a hash is not hashed again");
        std::fs::write(&pw, format!("{text}carol:plain\n")).unwrap();
        passwd_ok(&["-U", &pw]);
        let file = load(&pw);
        assert_eq!(file.check("alice", b"wonderland"), Check::Accepted);
        assert_eq!(file.check("carol", b"plain"), Check::Accepted);
    }

    #[test]
    fn passwd_leaves_a_damaged_file_alone_and_names_the_line() {
        let dir = TempDir::new("damaged");
        let pw = dir.file("passwords.txt");
        let text = std::fs::read_to_string(fixture("pbkdf2.txt")).unwrap() + "oops\n";
        std::fs::write(&pw, &text).unwrap();
        let out = passwd(&["-b", &pw, "carol", "secret"]);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("passwords.txt:3: expected user:password"),
            "{stderr}"
        );
        assert_eq!(std::fs::read_to_string(&pw).unwrap(), text);
    }

    #[test]
    fn passwd_adds_to_a_mosquitto_passwd_file_without_touching_its_users() {
        let dir = TempDir::new("mixed");
        let pw = dir.file("passwords.txt");
        std::fs::copy(fixture("pbkdf2.txt"), &pw).unwrap();
        passwd_ok(&["-b", &pw, "carol", "secret"]);
        let file = load(&pw);
        assert_eq!(file.check("alice", b"wonderland"), Check::Accepted);
        assert_eq!(file.check("carol", b"secret"), Check::Accepted);
    }

    #[test]
    fn passwd_help_has_mosquitto_passwd_shape() {
        let out = passwd(&["-h"]);
        assert!(out.status.success());
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("Usage: mqttd passwd [-c | -D] passwordfile username"));
        assert!(help.contains(" -U : update a plain text password file"));
    }
}

#[cfg(not(feature = "auth"))]
mod without_auth {
    use super::*;

    #[test]
    fn a_password_file_is_refused_naming_the_auth_feature() {
        let error = PasswordFile::load(&fixture("pbkdf2.txt")).unwrap_err();
        assert!(matches!(error, PasswordFileError::FeatureDisabled { .. }));
        let message = error.to_string();
        assert!(message.contains("pbkdf2.txt: "), "{message}");
        assert!(message.contains("`auth` feature"), "{message}");
    }

    #[test]
    fn passwd_says_it_needs_the_auth_feature() {
        let out = passwd(&["-c", "-b", "never-written.txt", "alice", "secret"]);
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("`auth` feature"), "{stderr}");
        assert!(!Path::new("never-written.txt").exists());
    }
}
