//! Who is connected: the map from Client Identifier to the connection that holds it.
//!
//! The registry is where session takeover happens ([MQTT-3.1.4-2]): when a second
//! connection presents a Client Identifier that is already connected, it replaces the
//! entry, and the old connection's socket is shut down so its threads wake up and leave.

use std::sync::Arc;

use super::{Broker, ConnectionId};
use crate::connection::Socket;

/// One connected client, as the registry sees it.
#[derive(Debug)]
pub struct ClientEntry {
    /// The connection that currently holds this Client Identifier.
    pub connection: ConnectionId,
    /// A handle on that connection's socket, used only to shut it down on takeover.
    pub socket: Socket,
}

impl Broker {
    /// Makes `connection` the holder of `client_id`. If another connection held it, that
    /// connection is closed: the new one takes over ([MQTT-3.1.4-2]). Returns the id of the
    /// connection that was taken over, if any.
    pub fn register_client(
        &self,
        client_id: &Arc<str>,
        connection: ConnectionId,
        socket: Socket,
    ) -> Option<ConnectionId> {
        let entry = ClientEntry { connection, socket };
        let previous = self.clients.lock().insert(Arc::clone(client_id), entry);
        let previous = previous?;
        // [MQTT-3.1.4-2] close the existing connection of this Client Identifier. Its
        // reader wakes up from the shutdown, finds it is no longer registered, and tears
        // itself down as "taken over".
        previous.socket.shutdown();
        Some(previous.connection)
    }

    /// Removes `client_id` from the registry if `connection` still holds it. Returns false
    /// when another connection has taken the Client Identifier over in the meantime.
    pub fn unregister_client(&self, client_id: &str, connection: ConnectionId) -> bool {
        let mut clients = self.clients.lock();
        match clients.get(client_id) {
            Some(entry) if entry.connection == connection => {
                clients.remove(client_id);
                true
            }
            _ => false,
        }
    }

    /// Whether `connection` is the current holder of `client_id`.
    pub fn is_registered(&self, client_id: &str, connection: ConnectionId) -> bool {
        let clients = self.clients.lock();
        clients
            .get(client_id)
            .is_some_and(|entry| entry.connection == connection)
    }

    /// The number of connected clients (connections past their CONNACK).
    pub fn client_count(&self) -> usize {
        self.clients.lock().len()
    }

    /// A Client Identifier for a client that sent an empty one ([MQTT-3.1.3-6]).
    ///
    /// Like Mosquitto's `auto-…` ids: a prefix no sensible client uses plus a number, checked
    /// against the connected clients so that it is unique right now.
    pub fn generate_client_id(&self) -> String {
        loop {
            let candidate = format!("auto-{:016x}", self.next_id());
            if !self.clients.lock().contains_key(candidate.as_str()) {
                return candidate;
            }
        }
    }
}
