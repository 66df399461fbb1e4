//! Opening a connection: what the broker decides about a CONNECT (§3.1, §3.1.3, §3.2.2),
//! apart from the reading and writing, which the handshake thread does.
//!
//! - [`reaction_to`]: a CONNECT that fails to decode is refused with a CONNACK code or
//!   closed without a word: the one place that decides which.
//! - [`check_keep_alive`], [`authenticate`], [`assign_client_id`]: Keep Alive within
//!   `max_keepalive`, a user let in, a Client Identifier; [`keep_alive_timeout`]: 1.5 × it.
//! - [`open_session`]: take the Client Identifier over, then `Handler::open` (in
//!   `handler.rs`) resumes or starts the session.

use std::sync::Arc;
use std::time::Duration;

use crate::broker::{Broker, ConnectionId};
use crate::codec::{Connect, ConnectReturnCode, DecodeError, ProtocolVersion};
use crate::passwords::Check;
use crate::transport::{Identity, Socket};

use super::{CloseReason, Handler, Opened};

/// Why a connection is refused during the handshake.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// Close without sending anything.
    Close(CloseReason),
    /// Send CONNACK with this non-zero code, then close ([MQTT-3.2.2-5]).
    Connack {
        code: ConnectReturnCode,
        rule: &'static str,
        what: String,
    },
    /// Send CONNACK 0x05, "not authorized", then close: the client is not let in. Logged at
    /// info, not as a protocol fault, with who it claimed to be; never the password.
    NotAuthorized {
        client_id: String,
        username: Option<String>,
        why: &'static str,
    },
}

/// Decides what a CONNECT that fails to decode gets: the one place for that decision.
pub(crate) fn reaction_to(error: DecodeError) -> Refusal {
    match error {
        // [MQTT-3.1.2-2] an unsupported protocol level gets CONNACK 0x01, then close.
        DecodeError::UnsupportedProtocolLevel { .. } => Refusal::Connack {
            code: ConnectReturnCode::UnacceptableProtocolVersion,
            rule: error.rule(),
            what: error.to_string(),
        },
        // [MQTT-3.1.4-1] anything else wrong with a CONNECT: close, no CONNACK.
        other => Refusal::Close(CloseReason::Malformed(other)),
    }
}

/// The Client Identifier this connection will use (§3.1.3.1).
///
/// Any non-empty identifier is accepted: [MQTT-3.1.3-5] requires 1 to 23 letters and
/// digits to be accepted and allows more, and like Mosquitto we accept any valid UTF-8.
pub(crate) fn assign_client_id(connect: &Connect, broker: &Broker) -> Result<Arc<str>, Refusal> {
    if !connect.client_id.is_empty() {
        return Ok(Arc::from(connect.client_id.as_str()));
    }
    let refuse = |rule, what: &str| Refusal::Connack {
        code: ConnectReturnCode::IdentifierRejected,
        rule,
        what: what.to_owned(),
    };
    // [MQTT-3.1.3-9] an empty identifier from an MQTT 3.1 client is refused: 3.1 has none.
    if connect.protocol == ProtocolVersion::V3_1 {
        return Err(refuse(
            "MQTT 3.1 §3.1",
            "MQTT 3.1 has no empty Client Identifier",
        ));
    }
    // [MQTT-3.1.3-6] accepting an empty identifier is the server's choice; [MQTT-3.1.3-9] a
    // refused one gets 0x02. `allow_zero_length_clientid false` refuses them all.
    if !broker.config.allow_zero_length_clientid {
        return Err(refuse(
            "[MQTT-3.1.3-9]",
            "empty Client Identifier, and allow_zero_length_clientid is false",
        ));
    }
    if !connect.clean_session {
        // [MQTT-3.1.3-8] an empty Client Identifier cannot name a session to keep.
        return Err(refuse(
            "[MQTT-3.1.3-8]",
            "empty Client Identifier with Clean Session 0",
        ));
    }
    // [MQTT-3.1.3-6] empty with Clean Session 1: assign a unique one.
    Ok(Arc::from(broker.sessions().generate_client_id()))
}

/// Refuses a Keep Alive longer than `max_keepalive`, or 0 (no keepalive at all) while a
/// maximum is set, with 0x02 as Mosquitto documents for MQTT 3.1 and 3.1.1 clients, which
/// have no way to be told another value (§3.1.2.10 lets the server choose to refuse).
pub(crate) fn check_keep_alive(connect: &Connect, broker: &Broker) -> Result<(), Refusal> {
    let max = broker.config.max_keepalive;
    if max == 0 || (1..=max).contains(&connect.keep_alive) {
        return Ok(());
    }
    Err(Refusal::Connack {
        code: ConnectReturnCode::IdentifierRejected,
        rule: "§3.1.2.10",
        what: format!(
            "Keep Alive {} s is not within 1 to max_keepalive ({max} s)",
            connect.keep_alive
        ),
    })
}

/// On a listener with `use_identity_as_username` or `use_subject_as_username`, makes the
/// name in the client's certificate its user name, as Mosquitto does: the CONNECT's user
/// name and password are set aside, and the certificate, which TLS has verified against
/// the listener's `cafile`, stands for the password (§5.4.1 lets the server authenticate
/// a client by what TLS proved). Returns whether the client is authenticated that way.
pub(crate) fn user_from_certificate(
    connect: &mut Connect,
    identity: Identity,
) -> Result<bool, Refusal> {
    match identity {
        Identity::NotUsed => Ok(false),
        Identity::Named(name) => {
            connect.username = Some(name);
            connect.password = None;
            Ok(true)
        }
        // As Mosquitto: 0x04, the user name (which was to come from the certificate) is bad.
        Identity::Missing => Err(Refusal::Connack {
            code: ConnectReturnCode::BadUserNameOrPassword,
            rule: "§3.2.2.3",
            what: "this listener takes the user name from the client certificate \
                   (use_identity_as_username), and the certificate names nobody"
                .into(),
        }),
    }
}

/// Decides whether the client may connect with the user name and password it sent
/// (§3.1.2.8, §3.1.2.9 leave the check to the server; §5.4.1), as Mosquitto 2.0 does:
///
/// | password file | user name sent | decision |
/// |---------------|----------------|----------|
/// | none          | any            | `allow_anonymous` decides for everyone |
/// | set           | none           | `allow_anonymous` decides |
/// | set           | some           | the file decides: known user and right password |
///
/// Every refusal is [`Refusal::NotAuthorized`]: CONNACK 0x05 (Mosquitto 2.0 sends it in all
/// three cases, measured), logged by the handshake at info with the Client Identifier, user
/// name and address; the password is never logged.
pub(crate) fn authenticate(connect: &Connect, broker: &Broker) -> Result<(), Refusal> {
    let config = &broker.config;
    let why = match (&config.password_file, &connect.username) {
        (None, _) | (Some(_), None) if config.allow_anonymous => return Ok(()),
        (None, _) => "allow_anonymous is false and there is no password_file",
        (Some(_), None) => "no user name, and allow_anonymous is false",
        (Some(_), Some(username)) => {
            let password = connect.password.as_deref().unwrap_or_default();
            match broker.check_password(username, password) {
                Check::Accepted => return Ok(()),
                Check::UnknownUser => "unknown user",
                Check::WrongPassword => "wrong password",
            }
        }
    };
    Err(Refusal::NotAuthorized {
        client_id: connect.client_id.clone(),
        username: connect.username.clone(),
        why,
    })
}

/// 1.5 × Keep Alive, or no timeout at all when Keep Alive is 0 (§3.1.2.10).
pub(crate) fn keep_alive_timeout(keep_alive: u16) -> Option<Duration> {
    match keep_alive {
        0 => None,
        seconds => Some(Duration::from_millis(u64::from(seconds) * 1500)),
    }
}

/// Makes `connection` the holder of `client_id` and opens its session: the steps of
/// §3.1.4 after the CONNECT has been read and its Client Identifier settled.
pub(crate) fn open_session(
    broker: &Broker,
    connection: ConnectionId,
    socket: &Socket,
    client_id: Arc<str>,
    connect: Connect,
) -> Result<Opened, Refusal> {
    // [MQTT-3.1.4-2] an existing connection with this Client Identifier is closed, and
    // its session handed over.
    let claim = broker
        .sessions()
        .claim(&client_id, connection, socket.clone())
        .ok_or_else(|| Refusal::Connack {
            code: ConnectReturnCode::ServerUnavailable,
            rule: "[MQTT-3.1.4-2]",
            what: "the connection being taken over did not hand its session back".into(),
        })?;
    if claim.took_over {
        log::info!("client {client_id:?} took over an existing connection");
    }
    // [MQTT-3.1.4-3] the Clean Session processing of §3.1.2.4.
    let mut opened = Handler::open(
        broker,
        client_id,
        connect.clean_session,
        connect.will,
        claim.previous,
    );
    // MQTT 3.1 has no Session Present flag: its CONNACK byte stays 0 even on resumption.
    opened.session_present &= connect.protocol == ProtocolVersion::V3_1_1;
    opened.handler.identify(connect.username.as_deref(), broker);
    opened.handler.claim_subscriptions(broker);
    Ok(opened)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_alive_timeout_is_one_and_a_half_times_keep_alive_mqtt_3_1_2_24() {
        assert_eq!(keep_alive_timeout(0), None);
        assert_eq!(keep_alive_timeout(10), Some(Duration::from_secs(15)));
        assert_eq!(keep_alive_timeout(1), Some(Duration::from_millis(1500)));
        assert_eq!(
            keep_alive_timeout(u16::MAX),
            Some(Duration::from_millis(65_535 * 1500))
        );
    }

    #[test]
    fn only_an_unsupported_level_is_answered_with_a_connack_mqtt_3_1_4_1() {
        let level = DecodeError::UnsupportedProtocolLevel {
            name: "MQTT".into(),
            level: 5,
        };
        assert!(matches!(
            reaction_to(level),
            Refusal::Connack {
                code: ConnectReturnCode::UnacceptableProtocolVersion,
                ..
            }
        ));
        assert!(matches!(
            reaction_to(DecodeError::ReservedConnectFlag),
            Refusal::Close(CloseReason::Malformed(_))
        ));
    }

    fn connect(client_id: &str, clean_session: bool) -> Connect {
        Connect {
            protocol: ProtocolVersion::V3_1_1,
            clean_session,
            keep_alive: 60,
            client_id: client_id.into(),
            will: None,
            username: None,
            password: None,
        }
    }

    #[test]
    fn an_empty_client_id_with_clean_session_gets_a_unique_one_mqtt_3_1_3_6() {
        let broker = Broker::new(crate::Config::default());
        let a = assign_client_id(&connect("", true), &broker).unwrap();
        let b = assign_client_id(&connect("", true), &broker).unwrap();
        assert!(a.starts_with("auto-"));
        assert_ne!(a, b);
    }

    #[test]
    fn an_empty_client_id_without_clean_session_is_rejected_mqtt_3_1_3_8() {
        let broker = Broker::new(crate::Config::default());
        assert!(matches!(
            assign_client_id(&connect("", false), &broker),
            Err(Refusal::Connack {
                code: ConnectReturnCode::IdentifierRejected,
                ..
            })
        ));
    }

    #[test]
    fn a_client_id_of_letters_and_digits_is_accepted_mqtt_3_1_3_5() {
        let broker = Broker::new(crate::Config::default());
        let id = "abcdefghijklmnopqrstuvw";
        assert_eq!(
            &*assign_client_id(&connect(id, false), &broker).unwrap(),
            id
        );
    }
}
