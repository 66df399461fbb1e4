//! Reading a Mosquitto configuration file (`mqttd -c FILE`), so that one file works with
//! both brokers.
//!
//! The grammar is Mosquitto's: one `key value…` per line, words separated by spaces; a line
//! that starts with `#` is a comment (a `#` later in a line is part of the value, as in
//! Mosquitto); blank lines are skipped. Paths are used as written, so a relative path is
//! relative to the directory the broker was started in.
//!
//! Every key Mosquitto 2.0 knows falls in one of four groups, decided in [`apply_line`]:
//!
//! | group | what happens | examples |
//! |-------|--------------|----------|
//! | supported | read into [`Config`], with Mosquitto's meaning | `listener`, `allow_anonymous`, `password_file` |
//! | not supported *yet* | refused with an error naming the key: a feature another issue brings | `crlfile`, `psk_hint`, `connection` |
//! | refused for safety | refused: ignoring it would change who may do what | `plugin`, `mount_point`, `clientid_prefixes` |
//! | ignored | a warning naming file, line and key, then on | `log_dest`, `set_tcp_nodelay`, `memory_limit` |
//!
//! A key neither broker knows is an error, `FILE:LINE: unknown option 'xyz'`, and so is a bad
//! value, which says what was expected.
//!
//! **Listeners and anonymous access.** The keys after `listener PORT [ADDRESS]` belong to it
//! (`max_connections`, `protocol`, and the TLS keys `certfile`, `keyfile`, `cafile`,
//! `capath`, `require_certificate`, `use_identity_as_username`, `use_subject_as_username`,
//! `tls_version`, checked together when the file ends); `port` and `bind_address` set up
//! the default listener, which also takes listener keys met before any `listener`. As in
//! Mosquitto 2.0, a file that sets up any listener makes `allow_anonymous` false unless
//! it says `allow_anonymous true`: a broker opened to the network asks who is connecting.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Config, Listener, Protocol, TlsSettings, TlsVersion, MAX_INFLIGHT_MESSAGES};

/// What a configuration file produced: the settings, and the warnings to log.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    /// One line per ignored key: `FILE:LINE: …`.
    pub warnings: Vec<String>,
}

/// Why a configuration file cannot be used: which file, which line, what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFileError {
    pub file: String,
    /// 1-based; 0 when the file itself could not be read.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ConfigFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            0 => write!(f, "{}: {}", self.file, self.message),
            line => write!(f, "{}:{line}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for ConfigFileError {}

/// Reads `path` as a Mosquitto configuration file.
pub fn load_file(path: &Path) -> Result<Loaded, ConfigFileError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigFileError {
        file: name.clone(),
        line: 0,
        message: format!("cannot read the configuration file: {e}"),
    })?;
    parse(&text, &name)
}

/// What the lines read so far have said, beyond the plain settings.
#[derive(Debug, Default)]
struct Reading {
    /// The listener `port` and `bind_address` describe, once either appears (or any key of
    /// a listener, before the first `listener` line).
    default_listener: Option<ListenerReading>,
    /// `listener` blocks, in file order.
    listeners: Vec<ListenerReading>,
    /// Whether the file said `allow_anonymous` itself.
    anonymous_said: bool,
    warnings: Vec<String>,
}

/// Parses configuration text; `file` names it in errors and warnings.
pub(super) fn parse(text: &str, file: &str) -> Result<Loaded, ConfigFileError> {
    let mut config = Config::default();
    let mut reading = Reading::default();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        if line.starts_with('#') {
            continue;
        }
        let mut words = line.split(' ').filter(|word| !word.is_empty());
        let Some(key) = words.next() else {
            continue;
        };
        let values: Vec<&str> = words.collect();
        let at = Place {
            file,
            line: index + 1,
            key,
        };
        apply_line(&mut config, &mut reading, &at, &values)?;
    }
    finish(config, reading)
}

/// Where a line is, for its error or warning.
struct Place<'a> {
    file: &'a str,
    line: usize,
    key: &'a str,
}

impl Place<'_> {
    fn error(&self, message: impl Into<String>) -> ConfigFileError {
        ConfigFileError {
            file: self.file.to_owned(),
            line: self.line,
            message: message.into(),
        }
    }

    /// An error for a key whose feature mqttd does not have yet.
    fn not_yet(&self, what: &str) -> ConfigFileError {
        self.error(format!(
            "'{}' is not supported yet ({what}); remove it to run mqttd",
            self.key
        ))
    }
}

/// Applies one `key value…` line.
fn apply_line(
    config: &mut Config,
    reading: &mut Reading,
    at: &Place,
    values: &[&str],
) -> Result<(), ConfigFileError> {
    if apply_supported(config, reading, at, values)? || is_settled(at, values)? {
        return Ok(());
    }
    if let Some(error) = refusal(at) {
        return Err(error);
    }
    if is_ignored(at.key) {
        reading.warnings.push(format!(
            "{}:{}: '{}' is a Mosquitto option mqttd does not use; ignored",
            at.file, at.line, at.key
        ));
        return Ok(());
    }
    Err(at.error(format!("unknown option '{}'", at.key)))
}

/// The keys mqttd reads. Returns false for any other key.
fn apply_supported(
    config: &mut Config,
    reading: &mut Reading,
    at: &Place,
    values: &[&str],
) -> Result<bool, ConfigFileError> {
    match at.key {
        "listener" => reading
            .listeners
            .push(ListenerReading::new(listener(at, values)?)),
        "port" => default_listener(reading)
            .listener
            .bind
            .set_port(port(at, one(at, values)?)?),
        "bind_address" => default_listener(reading)
            .listener
            .bind
            .set_ip(address(at, one(at, values)?)?),
        "max_connections" => {
            let limit = connection_limit(at, one(at, values)?)?;
            current_listener(reading).listener.max_connections = limit;
        }
        "websockets_headers_size" => {
            // Mosquitto: 0 means its default.
            config.websockets_headers_size = match number(at, one(at, values)?, 0, 65_535)? {
                0 => super::DEFAULT_WEBSOCKETS_HEADERS_SIZE,
                n => n,
            }
        }
        _ if apply_listener_key(reading, at, values)? => {}
        "allow_anonymous" => {
            config.allow_anonymous = boolean(at, one(at, values)?)?;
            reading.anonymous_said = true;
        }
        "password_file" => config.password_file = Some(path(at, values)?),
        "acl_file" => config.acl_file = Some(path(at, values)?),
        "allow_zero_length_clientid" => {
            config.allow_zero_length_clientid = boolean(at, one(at, values)?)?
        }
        // `retained_persistence` is Mosquitto's older name for the same switch.
        "persistence" | "retained_persistence" => {
            config.persistence = boolean(at, one(at, values)?)?
        }
        "persistence_location" => config.persistence_location = path(at, values)?,
        "persistence_file" => {
            let name = one(at, values)?;
            if name.contains('/') {
                return Err(at.error(format!(
                    "persistence_file: expected a file name, found the path {name:?} \
                     (the directory is persistence_location)"
                )));
            }
            config.persistence_file = name.to_owned();
        }
        _ => return apply_limit(config, at, values),
    }
    Ok(true)
}

/// The numeric limits. Returns false for any other key.
fn apply_limit(config: &mut Config, at: &Place, values: &[&str]) -> Result<bool, ConfigFileError> {
    match at.key {
        // Mosquitto: 0 means no limit.
        "max_queued_messages" => {
            config.max_queued_messages = match number(at, one(at, values)?, 0, i32::MAX as usize)? {
                0 => usize::MAX,
                n => n,
            }
        }
        "max_inflight_messages" => {
            let n = number(at, one(at, values)?, 0, MAX_INFLIGHT_MESSAGES)?;
            config.max_inflight_messages = if n == 0 { MAX_INFLIGHT_MESSAGES } else { n };
        }
        "message_size_limit" => {
            config.message_size_limit = number(at, one(at, values)?, 0, 268_435_455)?
        }
        "max_packet_size" => {
            config.max_packet_size = number(at, one(at, values)?, 20, 268_435_455)?
        }
        "max_keepalive" => {
            let seconds = number(at, one(at, values)?, 0, u16::MAX.into())?;
            config.max_keepalive = u16::try_from(seconds).unwrap_or(u16::MAX);
        }
        "persistent_client_expiration" => {
            config.persistent_client_expiration = Some(expiration(at, one(at, values)?)?)
        }
        "sys_interval" => {
            let seconds = number(at, one(at, values)?, 0, i32::MAX as usize)?;
            config.sys_interval = Duration::from_secs(u64::try_from(seconds).unwrap_or(u64::MAX));
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// Keys whose only value mqttd can honour is the one that changes nothing:
/// `per_listener_settings false`, `protocol mqtt`, TLS switches set to false, and
/// Mosquitto's autosave timing, which a journal that writes every change before it is
/// acknowledged has no use for. True if the line is one of those; other values of these
/// keys are left to [`refusal`].
fn is_settled(at: &Place, values: &[&str]) -> Result<bool, ConfigFileError> {
    let settled = match at.key {
        "autosave_interval" | "autosave_on_changes" => true,
        "per_listener_settings" => !boolean(at, one(at, values)?)?,
        _ => false,
    };
    Ok(settled)
}

/// The error for a key mqttd does not support yet, or refuses because ignoring it would
/// change who may do what; `None` for any other key.
fn refusal(at: &Place) -> Option<ConfigFileError> {
    let key = at.key;
    let error = match key {
        "per_listener_settings" => at.not_yet("mqttd has one set of security settings"),
        "include_dir" => at.not_yet("put the settings in this file"),
        "crlfile" => at
            .not_yet("certificate revocation lists; ignoring it would let revoked certificates in"),
        "psk_file" | "psk_hint" => at.not_yet("TLS with pre-shared keys"),
        "tls_engine" | "tls_engine_kpass_sha1" | "tls_keyform" => {
            at.not_yet("OpenSSL engines; mqttd's TLS is rustls, with keys in PEM files")
        }
        _ if is_bridge_key(key) => at.not_yet("bridges come with the bridges issue"),
        "plugin"
        | "auth_plugin"
        | "global_plugin"
        | "mount_point"
        | "clientid_prefixes"
        | "use_username_as_clientid"
        | "auth_plugin_deny_special_chars" => at.error(format!(
            "'{key}' is not supported by mqttd, and ignoring it would change who may \
             connect or what topics mean; remove it to run mqttd"
        )),
        _ if key.starts_with("plugin_opt_") || key.starts_with("auth_opt_") => at.error(format!(
            "'{key}' configures a plugin, which mqttd does not load"
        )),
        _ => return None,
    };
    Some(error)
}

fn is_bridge_key(key: &str) -> bool {
    key.starts_with("bridge_")
        || matches!(
            key,
            "connection"
                | "address"
                | "addresses"
                | "topic"
                | "cleansession"
                | "local_cleansession"
                | "clientid"
                | "local_clientid"
                | "remote_clientid"
                | "local_username"
                | "local_password"
                | "remote_username"
                | "remote_password"
                | "notifications"
                | "notifications_local_only"
                | "notification_topic"
                | "keepalive_interval"
                | "restart_timeout"
                | "idle_timeout"
                | "start_type"
                | "threshold"
                | "try_private"
                | "round_robin"
        )
}

/// Mosquitto options that change nothing a client can observe about the protocol here:
/// logging, process management, tuning mqttd does its own way.
fn is_ignored(key: &str) -> bool {
    matches!(
        key,
        "log_dest"
            | "log_type"
            | "log_facility"
            | "log_timestamp"
            | "log_timestamp_format"
            | "connection_messages"
            | "set_tcp_nodelay"
            | "pid_file"
            | "user"
            | "websockets_log_level"
            | "http_dir"
            | "ciphers"
            | "ciphers_tls1.3"
            | "dhparamfile"
            | "socket_domain"
            | "bind_interface"
            | "max_inflight_bytes"
            | "max_queued_bytes"
            | "memory_limit"
            | "queue_qos0_messages"
            | "retain_available"
            | "upgrade_outgoing_qos"
            | "check_retain_source"
            | "auto_id_prefix"
            | "allow_duplicate_messages"
            | "retry_interval"
            | "max_qos"
            | "maximum_qos"
            | "max_topic_alias"
            | "enable_control_api"
    )
}

/// One listener as the file describes it so far: its settings, and its TLS keys, which
/// make sense only together (see [`ListenerReading::finish`]).
#[derive(Debug)]
struct ListenerReading {
    listener: Listener,
    tls: TlsKeys,
}

/// A listener's TLS keys as read, each with the line that set it.
#[derive(Debug, Default)]
struct TlsKeys {
    certfile: Option<PathBuf>,
    keyfile: Option<PathBuf>,
    cafile: Option<PathBuf>,
    capath: Option<PathBuf>,
    require_certificate: bool,
    use_identity_as_username: bool,
    use_subject_as_username: bool,
    tls_version: Option<TlsVersion>,
    /// The file and line of the first TLS key, for the error if the set is incomplete.
    first: Option<(String, usize)>,
}

impl ListenerReading {
    fn new(bind: SocketAddr) -> ListenerReading {
        ListenerReading {
            listener: Listener::new(bind),
            tls: TlsKeys::default(),
        }
    }

    /// The listener, its TLS settings checked as a whole: TLS needs both `certfile` and
    /// `keyfile`; the other TLS keys mean nothing without them, and are refused rather than
    /// leave a listener in plain text that its file meant to encrypt.
    fn finish(self) -> Result<Listener, ConfigFileError> {
        let ListenerReading { mut listener, tls } = self;
        let Some((file, line)) = tls.first else {
            return Ok(listener);
        };
        let refuse = |problem: String| ConfigFileError {
            file: file.clone(),
            line,
            message: format!("listener {}: {problem}", listener.bind),
        };
        let (certfile, keyfile) = match (tls.certfile, tls.keyfile) {
            (Some(certfile), Some(keyfile)) => (certfile, keyfile),
            (Some(_), None) => return Err(refuse("certfile is set but keyfile is not".into())),
            (None, Some(_)) => return Err(refuse("keyfile is set but certfile is not".into())),
            (None, None) => {
                return Err(refuse(
                    "TLS keys are set but certfile and keyfile are not: a TLS listener \
                     needs both"
                        .into(),
                ))
            }
        };
        if tls.require_certificate && tls.cafile.is_none() && tls.capath.is_none() {
            return Err(refuse(
                "require_certificate true needs cafile or capath: the authorities that \
                 sign the client certificates"
                    .into(),
            ));
        }
        if (tls.use_identity_as_username || tls.use_subject_as_username) && !tls.require_certificate
        {
            return Err(refuse(
                "use_identity_as_username and use_subject_as_username need \
                 require_certificate true: the user name comes from a certificate"
                    .into(),
            ));
        }
        listener.tls = Some(TlsSettings {
            certfile,
            keyfile,
            cafile: tls.cafile,
            capath: tls.capath,
            require_certificate: tls.require_certificate,
            use_identity_as_username: tls.use_identity_as_username,
            use_subject_as_username: tls.use_subject_as_username,
            tls_version: tls.tls_version,
        });
        Ok(listener)
    }
}

/// The default listener, created on first use on all interfaces, port 1883 (Mosquitto's
/// defaults for `port` without `bind_address` and the other way round).
fn default_listener(reading: &mut Reading) -> &mut ListenerReading {
    reading
        .default_listener
        .get_or_insert_with(|| ListenerReading::new(SocketAddr::from(([0, 0, 0, 0], 1883))))
}

/// The listener the keys of a listener apply to: the last `listener` line's, or before the
/// first one, the default listener's (as in Mosquitto).
fn current_listener(reading: &mut Reading) -> &mut ListenerReading {
    if reading.listeners.is_empty() {
        return default_listener(reading);
    }
    let last = reading.listeners.len() - 1;
    &mut reading.listeners[last]
}

/// The keys that belong to one listener (beyond `max_connections`): its protocol and its
/// TLS. Returns false for any other key.
fn apply_listener_key(
    reading: &mut Reading,
    at: &Place,
    values: &[&str],
) -> Result<bool, ConfigFileError> {
    let key = at.key;
    if !matches!(
        key,
        "protocol"
            | "certfile"
            | "keyfile"
            | "cafile"
            | "capath"
            | "require_certificate"
            | "use_identity_as_username"
            | "use_subject_as_username"
            | "tls_version"
    ) {
        return Ok(false);
    }
    let value = one(at, values)?;
    let current = current_listener(reading);
    let tls = &mut current.tls;
    match key {
        "protocol" => {
            current.listener.protocol = match value {
                "mqtt" => Protocol::Mqtt,
                "websockets" => Protocol::WebSockets,
                other => {
                    return Err(at.error(format!(
                        "protocol: expected 'mqtt' or 'websockets', found {other:?}"
                    )))
                }
            };
            return Ok(true);
        }
        "certfile" => tls.certfile = Some(path(at, values)?),
        "keyfile" => tls.keyfile = Some(path(at, values)?),
        "cafile" => tls.cafile = Some(path(at, values)?),
        "capath" => tls.capath = Some(path(at, values)?),
        "require_certificate" => tls.require_certificate = boolean(at, value)?,
        "use_identity_as_username" => tls.use_identity_as_username = boolean(at, value)?,
        "use_subject_as_username" => tls.use_subject_as_username = boolean(at, value)?,
        _ => {
            tls.tls_version = Some(match value {
                "tlsv1.3" => TlsVersion::V1_3,
                "tlsv1.2" => TlsVersion::V1_2,
                "tlsv1.1" => TlsVersion::V1_1,
                other => {
                    return Err(at.error(format!(
                        "tls_version: expected tlsv1.3, tlsv1.2 or tlsv1.1, found {other:?}"
                    )))
                }
            })
        }
    }
    tls.first
        .get_or_insert_with(|| (at.file.to_owned(), at.line));
    Ok(true)
}

/// Puts the listeners in place and settles anonymous access.
fn finish(mut config: Config, reading: Reading) -> Result<Loaded, ConfigFileError> {
    let configured: Vec<Listener> = reading
        .default_listener
        .into_iter()
        .chain(reading.listeners)
        .map(ListenerReading::finish)
        .collect::<Result<_, _>>()?;
    if !configured.is_empty() {
        config.listeners = configured;
        // Mosquitto 2.0: once a listener is configured, anonymous access must be asked for.
        if !reading.anonymous_said {
            config.allow_anonymous = false;
        }
    }
    Ok(Loaded {
        config,
        warnings: reading.warnings,
    })
}

/// `listener PORT [ADDRESS]`. Without an address, all IPv4 interfaces (Mosquitto also
/// listens on IPv6 there; mqttd does not yet).
fn listener(at: &Place, values: &[&str]) -> Result<SocketAddr, ConfigFileError> {
    let (port_text, address_text) = match values {
        [port] => (*port, None),
        [port, address] => (*port, Some(*address)),
        _ => return Err(at.error("listener: expected a port and an optional address")),
    };
    let ip = match address_text {
        Some(text) => address(at, text)?,
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    };
    Ok(SocketAddr::new(ip, port(at, port_text)?))
}

/// Exactly one value.
fn one<'a>(at: &Place, values: &[&'a str]) -> Result<&'a str, ConfigFileError> {
    match values {
        [value] => Ok(value),
        [] => Err(at.error(format!("{}: a value is missing", at.key))),
        _ => Err(at.error(format!(
            "{}: expected one value, found {}",
            at.key,
            values.len()
        ))),
    }
}

/// A path: the rest of the line, spaces included, as Mosquitto reads it.
fn path(at: &Place, values: &[&str]) -> Result<PathBuf, ConfigFileError> {
    if values.is_empty() {
        return Err(at.error(format!("{}: a path is missing", at.key)));
    }
    Ok(PathBuf::from(values.join(" ")))
}

fn boolean(at: &Place, value: &str) -> Result<bool, ConfigFileError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(at.error(format!(
            "{}: expected true or false, found '{other}'",
            at.key
        ))),
    }
}

fn number(at: &Place, value: &str, min: usize, max: usize) -> Result<usize, ConfigFileError> {
    match value.parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(at.error(format!(
            "{}: expected a number from {min} to {max}, found '{value}'",
            at.key
        ))),
    }
}

fn port(at: &Place, value: &str) -> Result<u16, ConfigFileError> {
    let n = number(at, value, 0, u16::MAX.into())?;
    Ok(u16::try_from(n).unwrap_or(u16::MAX))
}

fn address(at: &Place, value: &str) -> Result<IpAddr, ConfigFileError> {
    match value {
        "localhost" => Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        text => text.parse().map_err(|_| {
            at.error(format!(
                "{}: expected an IP address (host names other than localhost are not \
                 resolved), found '{text}'",
                at.key
            ))
        }),
    }
}

/// Mosquitto's duration for `persistent_client_expiration`: a whole number and a unit, `h`
/// hours, `d` days, `w` weeks, `m` months of 30 days, `y` years of 365 days (`2w`).
fn expiration(at: &Place, value: &str) -> Result<Duration, ConfigFileError> {
    let unit_seconds = match value.chars().last() {
        Some('h') => 3_600,
        Some('d') => 86_400,
        Some('w') => 7 * 86_400,
        Some('m') => 30 * 86_400,
        Some('y') => 365 * 86_400,
        _ => 0,
    };
    let count = value[..value.len().saturating_sub(1)]
        .parse::<u64>()
        .unwrap_or(0);
    match count.checked_mul(unit_seconds) {
        Some(seconds) if seconds > 0 => Ok(Duration::from_secs(seconds)),
        _ => Err(at.error(format!(
            "{}: expected a duration such as 12h, 3d, 2w, 1m or 1y, found '{value}'",
            at.key
        ))),
    }
}

/// Mosquitto's `max_connections`: a count, or -1 for no limit.
fn connection_limit(at: &Place, value: &str) -> Result<Option<usize>, ConfigFileError> {
    match value {
        "-1" => Ok(None),
        text => number(at, text, 0, usize::MAX).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Loaded, ConfigFileError> {
        parse(text, "test.conf")
    }

    fn error(text: &str) -> String {
        read(text).expect_err("refused").to_string()
    }

    #[test]
    fn comments_blank_lines_and_settings_are_read() {
        let loaded = read(
            "# a comment\n\nmax_queued_messages 50\nmax_inflight_messages 0\n\
             message_size_limit 1000\nmax_keepalive 120\nsys_interval 0\n",
        )
        .unwrap();
        let config = loaded.config;
        assert_eq!(config.max_queued_messages, 50);
        assert_eq!(
            config.max_inflight_messages, MAX_INFLIGHT_MESSAGES,
            "0 is no limit"
        );
        assert_eq!(config.message_size_limit, 1000);
        assert_eq!(config.max_keepalive, 120);
        assert_eq!(config.sys_interval, Duration::ZERO);
        assert!(
            config.allow_anonymous,
            "no listener set up: local-only defaults"
        );
        assert!(loaded.warnings.is_empty());
    }

    #[test]
    fn listeners_take_the_keys_after_them_and_close_anonymous_access() {
        let loaded = read(
            "max_connections 5\nlistener 1883\nmax_connections 10\nlistener 8883 127.0.0.1\n\
             max_connections -1\nport 1884\n",
        )
        .unwrap();
        let listeners = loaded.config.listeners;
        assert_eq!(
            listeners,
            [
                Listener {
                    max_connections: Some(5),
                    ..Listener::new("0.0.0.0:1884".parse().unwrap())
                },
                Listener {
                    max_connections: Some(10),
                    ..Listener::new("0.0.0.0:1883".parse().unwrap())
                },
                Listener::new("127.0.0.1:8883".parse().unwrap()),
            ]
        );
        assert!(!loaded.config.allow_anonymous, "Mosquitto 2.0's rule");
        let open = read("listener 1883\nallow_anonymous true\n").unwrap();
        assert!(open.config.allow_anonymous);
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_file_and_line() {
        assert_eq!(
            error("port 1883\nxyz 1\n"),
            "test.conf:2: unknown option 'xyz'"
        );
    }

    #[test]
    fn a_bad_value_says_what_was_expected() {
        assert_eq!(
            error("allow_anonymous yes\n"),
            "test.conf:1: allow_anonymous: expected true or false, found 'yes'"
        );
        assert_eq!(
            error("listener 70000\n"),
            "test.conf:1: listener: expected a number from 0 to 65535, found '70000'"
        );
        assert!(error("max_packet_size 10\n").contains("from 20 to"));
        assert!(error("password_file\n").contains("a path is missing"));
    }

    #[test]
    fn features_not_built_yet_are_refused_by_name() {
        for line in [
            "connection edge",
            "per_listener_settings true",
            "listener 8883\ncrlfile /etc/crl.pem",
            "listener 8883\npsk_hint hint",
        ] {
            let message = error(line);
            assert!(message.contains("not supported yet"), "{line}: {message}");
        }
        let fine = read("protocol mqtt\nautosave_interval 60\n");
        assert!(fine.is_ok());
    }

    #[test]
    fn each_listener_takes_its_own_protocol_and_tls_keys() {
        let loaded = read(
            "listener 1883 127.0.0.1\n\
             listener 8883\ncertfile /etc/mqttd/server.pem\nkeyfile /etc/mqttd/server.key\n\
             cafile /etc/mqttd/ca.pem\nrequire_certificate true\nuse_identity_as_username true\n\
             tls_version tlsv1.3\n\
             listener 8080\nprotocol websockets\n\
             listener 8081\nprotocol websockets\ncertfile s.pem\nkeyfile s.key\n\
             websockets_headers_size 0\n",
        )
        .unwrap();
        let listeners = loaded.config.listeners;
        assert_eq!(
            listeners[0],
            Listener::new("127.0.0.1:1883".parse().unwrap())
        );
        let tls = listeners[1].tls.as_ref().expect("TLS on 8883");
        assert_eq!(listeners[1].protocol, Protocol::Mqtt);
        assert_eq!(tls.certfile, PathBuf::from("/etc/mqttd/server.pem"));
        assert_eq!(tls.cafile, Some(PathBuf::from("/etc/mqttd/ca.pem")));
        assert!(tls.require_certificate && tls.use_identity_as_username);
        assert_eq!(tls.tls_version, Some(TlsVersion::V1_3));
        assert_eq!(listeners[2].protocol, Protocol::WebSockets);
        assert_eq!(listeners[2].tls, None, "ws, not wss");
        assert_eq!(listeners[3].protocol, Protocol::WebSockets);
        assert_eq!(
            listeners[3].tls,
            Some(TlsSettings::new("s.pem", "s.key")),
            "wss"
        );
        assert_eq!(
            loaded.config.websockets_headers_size,
            crate::config::DEFAULT_WEBSOCKETS_HEADERS_SIZE
        );
    }

    #[test]
    fn an_incomplete_tls_listener_is_refused_not_left_in_plain_text() {
        for (text, expected) in [
            (
                "listener 8883\ncertfile c.pem\n",
                "certfile is set but keyfile is not",
            ),
            (
                "listener 8883\nkeyfile k.pem\n",
                "keyfile is set but certfile is not",
            ),
            (
                "listener 8883\ncafile ca.pem\n",
                "certfile and keyfile are not",
            ),
            (
                "listener 8883\ncertfile c\nkeyfile k\nrequire_certificate true\n",
                "needs cafile or capath",
            ),
            (
                "listener 8883\ncertfile c\nkeyfile k\ncafile a\nuse_identity_as_username true\n",
                "need require_certificate true",
            ),
            (
                "listener 8883\ntls_version tlsv1.0\n",
                "expected tlsv1.3, tlsv1.2 or tlsv1.1",
            ),
            (
                "listener 8080\nprotocol http\n",
                "expected 'mqtt' or 'websockets'",
            ),
        ] {
            let message = error(text);
            assert!(message.contains(expected), "{text:?}: {message}");
            assert!(
                message.starts_with("test.conf:2: "),
                "names the line: {message}"
            );
        }
    }

    #[test]
    fn persistence_reads_mosquittos_keys() {
        let on =
            read("persistence true\npersistence_location /var/lib/mqttd/\npersistence_file j.db\n")
                .unwrap()
                .config;
        assert!(on.persistence);
        assert_eq!(on.persistence_location, PathBuf::from("/var/lib/mqttd/"));
        assert_eq!(on.persistence_file, "j.db");
        assert!(
            read("retained_persistence true\n")
                .unwrap()
                .config
                .persistence
        );
        let off = read("persistence false\nautosave_interval 1800\n")
            .unwrap()
            .config;
        assert!(!off.persistence);
        assert_eq!(off.persistence_file, "mqttd.journal");
        assert!(error("persistence_file a/b.db\n").contains("expected a file name"));
    }

    #[test]
    fn persistent_client_expiration_reads_mosquittos_units() {
        let two_weeks = read("persistent_client_expiration 2w\n").unwrap();
        assert_eq!(
            two_weeks.config.persistent_client_expiration,
            Some(Duration::from_secs(14 * 86_400))
        );
        assert!(error("persistent_client_expiration 5s\n").contains("such as 12h"));
        assert!(error("persistent_client_expiration 0d\n").contains("such as 12h"));
    }

    #[test]
    fn options_that_would_change_access_are_refused_not_ignored() {
        assert!(error("plugin /usr/lib/auth.so\n").contains("who may connect"));
        assert!(error("auth_opt_backend x\n").contains("plugin"));
    }

    #[test]
    fn other_mosquitto_options_are_warned_about_and_skipped() {
        let loaded = read("log_dest stdout\nset_tcp_nodelay true\n").unwrap();
        assert_eq!(
            loaded.warnings,
            [
                "test.conf:1: 'log_dest' is a Mosquitto option mqttd does not use; ignored",
                "test.conf:2: 'set_tcp_nodelay' is a Mosquitto option mqttd does not use; ignored",
            ]
        );
    }

    #[test]
    fn paths_keep_their_spaces_and_windows_line_ends_are_tolerated() {
        let loaded = read("password_file /etc/my passwords\r\nacl_file acl.txt\r\n").unwrap();
        assert_eq!(
            loaded.config.password_file,
            Some(PathBuf::from("/etc/my passwords"))
        );
        assert_eq!(loaded.config.acl_file, Some(PathBuf::from("acl.txt")));
    }
}
