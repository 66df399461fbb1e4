//! `mqttd passwd`: makes and edits password files, with `mosquitto_passwd`'s options, so
//! its files work in Mosquitto and Mosquitto's in mqttd.
//!
//! Every change is worked out on the file's text in memory first (the functions
//! [`set_user`], [`delete_user`] and [`hash_plain_text`], which tests drive without files);
//! only then is the file written, in place, so it keeps its owner and permissions. A line
//! that cannot be read stops the command before anything is written. (Mosquitto 2.0.11's
//! `mosquitto_passwd` says "Corrupt password file" there, but then writes the file anyway,
//! without the lines after that one.) Comments and blank lines are kept.
//!
//! New passwords are always hashed as `$7$` with 101 iterations, `mosquitto_passwd`'s
//! default; its `-H sha512` (the old `$6$`) and `-I` (iterations) are not offered.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::hash::StoredHash;
use super::{split_line, Line};

/// The help text, in the shape of `mosquitto_passwd`'s.
const USAGE: &str = "\
mqttd passwd is a tool for managing password files for mqttd and mosquitto.

Usage: mqttd passwd [-c | -D] passwordfile username
       mqttd passwd [-c] -b passwordfile username password
       mqttd passwd -U passwordfile
 -b : run in batch mode to allow passing passwords on the command line.
 -c : create a new password file. This will overwrite existing files.
 -D : delete the username rather than adding/updating its password.
 -U : update a plain text password file to use hashed passwords.

Passwords are hashed as mosquitto_passwd 2.0 does by default:
PBKDF2-HMAC-SHA512 with 101 iterations and a 12-byte random salt ($7$).";

/// Longest user name or password accepted: an MQTT string's limit (§1.5.3), as in Mosquitto.
const MAX_LEN: usize = 65_535;

/// What the command line asked for. A `password` of `None` is asked for at the terminal.
#[derive(Debug, PartialEq, Eq)]
enum Action {
    /// `-c`: a new file with one user, replacing any file of that name.
    Create {
        file: PathBuf,
        user: String,
        password: Option<String>,
    },
    /// No mode flag: add the user to an existing file, or change their password.
    Set {
        file: PathBuf,
        user: String,
        password: Option<String>,
    },
    /// `-D`: remove the user from the file.
    Delete { file: PathBuf, user: String },
    /// `-U`: replace every plain-text `user:password` line by its hashed form.
    Convert { file: PathBuf },
}

/// The mode flags, as given.
#[derive(Debug, Default, Clone, Copy)]
struct Flags {
    batch: bool,
    create: bool,
    delete: bool,
    update: bool,
}

/// Runs `mqttd passwd` with the arguments after `passwd`; prints what went wrong.
pub fn run(args: &[String]) -> ExitCode {
    let action = match parse_args(args) {
        Ok(Some(action)) => action,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("Error: {message}\n\n{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    match execute(action) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("Error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Reads the flags, then the file name, user name and password the mode needs.
/// `Ok(None)` asks for the help text.
fn parse_args(args: &[String]) -> Result<Option<Action>, String> {
    let mut flags = Flags::default();
    let mut rest = args;
    while let Some((first, tail)) = rest.split_first() {
        match first.as_str() {
            "-h" | "--help" => return Ok(None),
            "-b" => flags.batch = true,
            "-c" => flags.create = true,
            "-D" => flags.delete = true,
            "-U" => flags.update = true,
            "-H" | "-I" => {
                return Err(format!(
                    "{first} is not supported: mqttd passwd writes $7$ with 101 iterations"
                ))
            }
            other if other.starts_with('-') && other.len() > 1 => {
                return Err(format!("unknown option {other}"))
            }
            _ => break,
        }
        rest = tail;
    }
    refuse_conflicts(flags)?;
    action(flags, rest).map(Some)
}

/// The flag pairs `mosquitto_passwd` refuses, refused the same way.
fn refuse_conflicts(flags: Flags) -> Result<(), String> {
    let pairs = [
        (flags.create && flags.delete, "-c and -D"),
        (flags.create && flags.update, "-c and -U"),
        (flags.delete && flags.update, "-D and -U"),
        (flags.delete && flags.batch, "-b and -D"),
        (flags.update && flags.batch, "-b and -U"),
    ];
    match pairs.iter().find(|(conflict, _)| *conflict) {
        Some((_, which)) => Err(format!("{which} cannot be used together")),
        None => Ok(()),
    }
}

/// Builds the action from the arguments after the flags, checking their number.
fn action(flags: Flags, rest: &[String]) -> Result<Action, String> {
    let expected = match (flags.update, flags.batch) {
        (true, _) => "passwordfile",
        (false, true) => "passwordfile username password",
        (false, false) => "passwordfile username",
    };
    let wanted = expected.split(' ').count();
    if rest.len() != wanted {
        return Err(format!("expected {expected} after the options"));
    }
    let file = PathBuf::from(&rest[0]);
    if flags.update {
        return Ok(Action::Convert { file });
    }
    let user = valid_user(&rest[1])?.to_owned();
    let password = rest.get(2).cloned();
    Ok(match (flags.create, flags.delete) {
        (true, _) => Action::Create {
            file,
            user,
            password,
        },
        (false, true) => Action::Delete { file, user },
        (false, false) => Action::Set {
            file,
            user,
            password,
        },
    })
}

/// A user name the file can hold and an MQTT client can send: not empty, no `:` (the
/// separator), no control characters (a newline would start a new line), not too long.
fn valid_user(user: &str) -> Result<&str, String> {
    if user.is_empty() || user.trim() != user {
        return Err("the username must not be empty or start or end with a space".to_owned());
    }
    if user.contains(':') {
        return Err("the username must not contain the ':' character".to_owned());
    }
    if user.chars().any(char::is_control) {
        return Err("the username must not contain control characters".to_owned());
    }
    if user.len() > MAX_LEN {
        return Err(format!("the username must be at most {MAX_LEN} bytes long"));
    }
    Ok(user)
}

/// Carries out the action on the file. The file is read and checked before any password
/// is asked for, so that a damaged file is reported before anyone types.
fn execute(action: Action) -> Result<(), String> {
    match action {
        Action::Create {
            file,
            user,
            password,
        } => {
            let line = hashed_line(&user, &obtain(password)?)?;
            create(&file, &format!("{line}\n"))
        }
        Action::Set {
            file,
            user,
            password,
        } => {
            let text = read(&file)?;
            check_lines(&text).map_err(|e| e.at(&file))?;
            let line = hashed_line(&user, &obtain(password)?)?;
            let new_text = set_user(&text, &user, &line).map_err(|e| e.at(&file))?;
            write_back(&file, &new_text)
        }
        Action::Delete { file, user } => {
            match delete_user(&read(&file)?, &user).map_err(|e| e.at(&file))? {
                Some(new_text) => write_back(&file, &new_text),
                None => Err(format!("user {user} not found in {}", file.display())),
            }
        }
        Action::Convert { file } => {
            let new_text = hash_plain_text(&read(&file)?).map_err(|e| e.at(&file))?;
            write_back(&file, &new_text)
        }
    }
}

/// The password from the command line (`-b`), or typed twice at the terminal, unechoed.
fn obtain(given: Option<String>) -> Result<String, String> {
    let password = match given {
        Some(password) => password,
        None => prompt_twice()?,
    };
    if password.is_empty() {
        return Err("Empty password.".to_owned());
    }
    if password.len() > MAX_LEN {
        return Err(format!("the password must be at most {MAX_LEN} bytes long"));
    }
    Ok(password)
}

/// Asks for the password twice, without echo, as `mosquitto_passwd` does.
fn prompt_twice() -> Result<String, String> {
    let ask = |prompt: &str| {
        rpassword::prompt_password(prompt).map_err(|e| format!("cannot read the password: {e}"))
    };
    let first = ask("Password: ")?;
    if first.is_empty() {
        return Err("Empty password.".to_owned());
    }
    if ask("Reenter password: ")? != first {
        return Err("Passwords do not match.".to_owned());
    }
    Ok(first)
}

/// `user:$7$101$salt$hash` for a new password.
fn hashed_line(user: &str, password: &str) -> Result<String, String> {
    let hash = StoredHash::new(password.as_bytes())
        .map_err(|e| format!("no random bytes for a salt: {e}"))?;
    Ok(format!("{user}:{hash}"))
}

/// A problem on one line of the file being edited; [`LineError::at`] adds the file name.
#[derive(Debug, PartialEq, Eq)]
struct LineError {
    line: usize,
    problem: String,
}

impl LineError {
    /// `passwords.txt:3: …`, the shape of `PasswordFileError`'s messages.
    fn at(self, file: &Path) -> String {
        format!("{}:{}: {}", file.display(), self.line, self.problem)
    }
}

/// What to do with one entry line when rewriting a file.
enum Edit {
    Keep,
    Replace(String),
    Drop,
}

/// Rewrites `text` line by line: `edit` gets each entry's line number, user and secret and
/// says what becomes of the line. Comments and blank lines are kept as they are; a
/// malformed line stops everything.
fn rewrite(
    text: &str,
    mut edit: impl FnMut(usize, &str, &str) -> Result<Edit, String>,
) -> Result<String, LineError> {
    let mut out = String::with_capacity(text.len());
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let fail = |problem: String| LineError { line, problem };
        let edit = match split_line(raw) {
            Line::Skip => Edit::Keep,
            Line::Entry { user, secret } => edit(line, user, secret).map_err(fail)?,
            Line::Malformed => return Err(fail("expected user:password".to_owned())),
        };
        match edit {
            Edit::Keep => out.push_str(raw),
            Edit::Replace(new_line) => out.push_str(&new_line),
            Edit::Drop => continue,
        }
        out.push('\n');
    }
    Ok(out)
}

/// Checks that every line of `text` can be read, changing nothing.
fn check_lines(text: &str) -> Result<(), LineError> {
    rewrite(text, |_, _, _| Ok(Edit::Keep)).map(drop)
}

/// `text` with `user`'s line replaced by `new_line`, or `new_line` added at the end.
/// Later lines for the same user are dropped: a file names each user once.
fn set_user(text: &str, user: &str, new_line: &str) -> Result<String, LineError> {
    let mut found = false;
    let mut out = rewrite(text, |_, name, _| {
        Ok(match (name == user, found) {
            (false, _) => Edit::Keep,
            (true, false) => {
                found = true;
                Edit::Replace(new_line.to_owned())
            }
            (true, true) => Edit::Drop,
        })
    })?;
    if !found {
        out.push_str(new_line);
        out.push('\n');
    }
    Ok(out)
}

/// `text` without `user`'s line, or `None` if no line names `user`.
fn delete_user(text: &str, user: &str) -> Result<Option<String>, LineError> {
    let mut found = false;
    let out = rewrite(text, |_, name, _| {
        found |= name == user;
        Ok(if name == user { Edit::Drop } else { Edit::Keep })
    })?;
    Ok(found.then_some(out))
}

/// `text` with every `user:password` line replaced by `user:$7$…`. A line that already
/// holds a hash is kept as it is, so a file with both kinds can be converted, and running
/// `-U` twice changes nothing. (`mosquitto_passwd -U` hashes every line, hashes included,
/// which makes the hash text the password; its manual warns against running it twice.)
fn hash_plain_text(text: &str) -> Result<String, LineError> {
    rewrite(text, |_, user, secret| {
        if StoredHash::parse(secret).is_ok() {
            return Ok(Edit::Keep);
        }
        hashed_line(user, secret).map(Edit::Replace)
    })
}

/// The file's text; a file that does not exist is an error (only `-c` makes one).
fn read(file: &Path) -> Result<String, String> {
    fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))
}

/// Writes a new file (or replaces one) readable by its owner only: it holds hashes that a
/// thief could try passwords against. The broker must run as that owner to read it.
fn create(file: &Path, text: &str) -> Result<(), String> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut out = options
        .open(file)
        .map_err(|e| format!("cannot create {}: {e}", file.display()))?;
    out.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", file.display()))
}

/// Writes the new text over the existing file, which keeps its owner and permissions.
fn write_back(file: &Path, text: &str) -> Result<(), String> {
    fs::write(file, text).map_err(|e| format!("cannot write {}: {e}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    fn parse(line: &str) -> Result<Option<Action>, String> {
        parse_args(&args(line))
    }

    #[test]
    fn reads_mosquitto_passwd_command_lines() {
        let file = PathBuf::from("pw.txt");
        let (user, password) = ("alice".to_owned(), Some("secret".to_owned()));
        assert_eq!(
            parse("-c -b pw.txt alice secret"),
            Ok(Some(Action::Create {
                file: file.clone(),
                user: user.clone(),
                password: password.clone()
            }))
        );
        assert_eq!(
            parse("-b pw.txt alice secret"),
            Ok(Some(Action::Set {
                file: file.clone(),
                user: user.clone(),
                password
            }))
        );
        assert_eq!(
            parse("pw.txt alice"),
            Ok(Some(Action::Set {
                file: file.clone(),
                user: user.clone(),
                password: None
            }))
        );
        let delete = Action::Delete {
            file: file.clone(),
            user,
        };
        assert_eq!(parse("-D pw.txt alice"), Ok(Some(delete)));
        assert_eq!(parse("-U pw.txt"), Ok(Some(Action::Convert { file })));
        assert_eq!(parse("-h"), Ok(None));
    }

    #[test]
    fn refuses_what_mosquitto_passwd_refuses() {
        let refused = [
            ("-c -D pw.txt alice", "-c and -D cannot be used together"),
            ("-c -U pw.txt", "-c and -U cannot be used together"),
            ("-D -U pw.txt", "-D and -U cannot be used together"),
            ("-b -D pw.txt alice", "-b and -D cannot be used together"),
            ("-b pw.txt alice", "expected passwordfile username password"),
            ("-U", "expected passwordfile after"),
            ("", "expected passwordfile username"),
            ("pw.txt a:b", "':'"),
            ("-H sha512 pw.txt alice", "-H is not supported"),
            ("-x pw.txt alice", "unknown option -x"),
        ];
        for (line, message) in refused {
            let error = parse(line).unwrap_err();
            assert!(error.contains(message), "{line:?}: {error}");
        }
        assert!(valid_user("tab\there").is_err());
        assert!(valid_user(" alice").is_err());
    }

    const FILE: &str = "# users of the lab\nalice:$7$old\n\nbob:$7$bob\n";

    #[test]
    fn set_replaces_a_user_or_adds_one_keeping_comments() {
        let replaced = set_user(FILE, "alice", "alice:$7$new").unwrap();
        assert_eq!(replaced, "# users of the lab\nalice:$7$new\n\nbob:$7$bob\n");
        let added = set_user(FILE, "carol", "carol:$7$c").unwrap();
        assert_eq!(added, format!("{FILE}carol:$7$c\n"));
        let twice = set_user("a:1\na:2\n", "a", "a:3").unwrap();
        assert_eq!(twice, "a:3\n");
    }

    #[test]
    fn delete_removes_a_user_and_says_when_there_is_none() {
        let deleted = delete_user(FILE, "alice").unwrap();
        assert_eq!(
            deleted.as_deref(),
            Some("# users of the lab\n\nbob:$7$bob\n")
        );
        assert_eq!(delete_user(FILE, "carol").unwrap(), None);
    }

    #[test]
    fn a_malformed_line_stops_an_edit_and_is_named() {
        let text = "alice:$7$a\nbob\ncarol:$7$c\n";
        let expected = LineError {
            line: 2,
            problem: "expected user:password".to_owned(),
        };
        assert_eq!(set_user(text, "dave", "dave:x"), Err(expected));
        let message = delete_user(text, "alice")
            .unwrap_err()
            .at(Path::new("pw.txt"));
        assert_eq!(message, "pw.txt:2: expected user:password");
    }

    #[test]
    fn convert_hashes_plain_text_and_keeps_hashes() {
        let converted = hash_plain_text("# plain\nalice:wonderland\n").unwrap();
        let lines: Vec<&str> = converted.lines().collect();
        assert_eq!(lines[0], "# plain");
        let hash = lines[1].strip_prefix("alice:$7$101$").unwrap();
        let stored = StoredHash::parse(&format!("$7$101${hash}")).unwrap();
        assert!(stored.verify(b"wonderland"));
        assert_eq!(hash_plain_text(&converted).unwrap(), converted);
        let mixed = format!("{converted}bob:builder\n");
        let both = hash_plain_text(&mixed).unwrap();
        assert!(both.starts_with(&converted), "{both}");
        assert!(both.lines().nth(2).unwrap().starts_with("bob:$7$101$"));
    }
}
