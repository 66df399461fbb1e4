//! The protocol handler: what each packet from a connected client *does* (spec §3, §4.3,
//! §4.8), in plain functions over plain data.
//!
//! This is mqttd's counterpart of Mosquitto's `handle_*.c` files and mini-redis's `cmd/`:
//! it sits above the broker (which it calls to route, subscribe and store sessions) and
//! below the connection (whose threads do the I/O around it). No socket, no thread: the
//! unit tests drive it directly with packets and a [`Broker`](crate::broker::Broker).
//!
//! | file         | step                                                                  |
//! |--------------|-----------------------------------------------------------------------|
//! | `connect.rs` | open: Keep Alive limit, login, Client Identifier, CleanSession, refusals |
//! | `handler.rs` | handle: one packet at a time ([`Handler::handle`]), the Will, close    |
//! | `close.rs`   | why a connection ended ([`CloseReason`]), and how that is logged       |
//!
//! | packet from the client | what happens                                    | to the writer |
//! |------------------------|-------------------------------------------------|---------------|
//! | PUBLISH QoS 0          | routed to matching subscribers (if `Handler::may_route`: not into `$SYS`, within `message_size_limit`, allowed by the acl_file) | – |
//! | PUBLISH QoS 1          | routed (the same checks)                        | PUBACK        |
//! | PUBLISH QoS 2          | routed once; identifier kept until PUBREL       | PUBREC        |
//! | PUBREL                 | identifier released                             | PUBCOMP       |
//! | PUBACK, PUBREC, PUBCOMP| acknowledge *our* messages; the wrong kind closes the connection | the ack itself |
//! | SUBSCRIBE              | each filter the acl_file lets it read added to the trie (0x80 otherwise) | SUBACK, then retained messages |
//! | UNSUBSCRIBE            | each filter removed                             | UNSUBACK      |
//! | PINGREQ                | –                                               | PINGRESP      |
//! | DISCONNECT             | the connection ends cleanly, Will discarded     | –             |
//! | CONNECT (again)        | protocol violation, close                       | –             |
//! | CONNACK, SUBACK, UNSUBACK, PINGRESP | server-only packets: violation, close | –       |

mod close;
mod connect;
mod handler;

use std::sync::Arc;

use crate::acl::ClientAcl;
use crate::broker::Cutoff;
use crate::codec::{Packet, QoS};
use crate::persistence::Ticket;
use crate::session::ClientAck;

pub(crate) use close::{is_timeout, CloseReason};
pub(crate) use connect::{
    assign_client_id, authenticate, check_keep_alive, keep_alive_timeout, open_session,
    reaction_to, user_from_certificate, Refusal,
};
pub(crate) use handler::{Handler, Opened};

/// What the reader thread asks of the writer thread (over the control channel).
#[derive(Debug)]
pub(crate) enum ToWriter {
    /// Send this packet (an answer: CONNACK, PUBACK, SUBACK, PINGRESP, …).
    Send(Packet),
    /// Send the retained messages matching `filter`, at most at QoS `granted`, to a new
    /// subscription ([MQTT-3.3.1-6]). The writer looks them up itself, just before sending:
    /// a retained message read any earlier could be older than a live RETAIN=1 message on
    /// the same topic that the writer sends first, and the client would end up with stale
    /// state.
    ///
    /// `reading` carries the client's access rules when the filter is only partly readable
    /// for it: each retained message is checked before it is sent. `cutoff` leaves out the
    /// retained messages stored after the subscription was added: routing delivered those
    /// live, and sending them again would be a duplicate.
    SendRetained {
        filter: String,
        granted: QoS,
        reading: Option<Arc<ClientAcl>>,
        cutoff: Cutoff,
    },
    /// The client acknowledged one of our messages.
    Ack(ClientAck),
    /// With persistence: the requests that follow confirm state recorded up to this ticket,
    /// so the writer sends nothing more until the journal has committed that far.
    AfterDisk(Ticket),
}

impl ToWriter {
    /// Whether this answers the client's own publishing: the PUBACK or PUBREC of its
    /// PUBLISH, the PUBCOMP of its PUBREL. A client that publishes at QoS 1 or 2 keeps
    /// sending, and these go through its writer thread (`Reader::hand_over`).
    pub fn answers_a_publish(&self) -> bool {
        matches!(
            self,
            ToWriter::Send(Packet::Puback(_) | Packet::Pubrec(_) | Packet::Pubcomp(_))
        )
    }
}
