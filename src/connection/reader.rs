//! The reader thread, `rx:<client id>`: reads packets, lets the session act on them, sends
//! the replies to the writer, and tears the connection down when it ends.

use std::io::BufReader;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::Sender;

use crate::broker::{Broker, ConnectionId};
use crate::codec::{read_frame, Packet};

use super::{log_received, trace_frame, CloseReason, Session, Socket};

/// Everything the reader thread owns.
pub(super) struct Reader {
    /// The socket's read side, buffered. It may already hold bytes read during the handshake.
    pub input: BufReader<Socket>,
    /// The same socket, to shut it down at the end.
    pub socket: Socket,
    pub connection: ConnectionId,
    /// The Keep Alive of the CONNECT, for the log line when it expires.
    pub keep_alive: u16,
    pub session: Session,
    /// Replies for the writer thread. Dropping it tells the writer to finish.
    pub control: Sender<Packet>,
    pub writer: JoinHandle<()>,
    pub broker: Arc<Broker>,
}

impl Reader {
    pub fn run(mut self) {
        let reason = self.read_loop();
        self.teardown(reason);
    }

    /// Reads and handles packets until the connection must end, and says why.
    fn read_loop(&mut self) -> CloseReason {
        let max_packet_size = self.broker.config.max_packet_size;
        loop {
            // The socket's read timeout is 1.5 × Keep Alive ([MQTT-3.1.2-24]): a timeout
            // here means the client went silent.
            let frame = match read_frame(&mut self.input, max_packet_size) {
                Ok(frame) => frame,
                Err(e) => return CloseReason::from_frame_error(e, self.keep_alive),
            };
            let who = &self.session.client_id;
            trace_frame(who, &frame);
            let packet = match frame.decode() {
                Ok(packet) => packet,
                Err(e) => return CloseReason::Malformed(e),
            };
            log_received(who, &packet);
            match self.session.handle(packet, &self.broker) {
                Ok(None) => {}
                Ok(Some(reply)) => {
                    // Fails only if the writer has exited, because the socket failed.
                    if self.control.send(reply).is_err() {
                        return CloseReason::PeerClosed;
                    }
                }
                Err(reason) => return reason,
            }
        }
    }

    /// Ends the connection: log why, give up the Client Identifier, end the session, stop
    /// the writer.
    fn teardown(self, reason: CloseReason) {
        let Reader {
            socket,
            connection,
            session,
            control,
            writer,
            broker,
            ..
        } = self;
        // Nothing more is read or written on this connection.
        socket.shutdown();
        let still_registered = broker.unregister_client(&session.client_id, connection);
        // A socket that failed because someone else shut it down was not the client's doing.
        let reason = match reason {
            CloseReason::PeerClosed | CloseReason::Io(_) if broker.is_stopping() => {
                CloseReason::ServerStopping
            }
            CloseReason::PeerClosed | CloseReason::Io(_) if !still_registered => {
                CloseReason::TakenOver
            }
            other => other,
        };
        reason.log(&session.client_id);
        // Every session ends with its connection for now (Clean Session 1 behaviour).
        session.end(&broker);
        // The writer exits when its control channel is disconnected.
        drop(control);
        if writer.join().is_err() {
            log::error!("writer thread of connection {connection} panicked");
        }
        broker.untrack_connection(connection);
    }
}
