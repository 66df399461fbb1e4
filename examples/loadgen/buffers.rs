//! A non-blocking connection and its two buffers.
//!
//! mio reports readiness *edge-triggered*: "this socket became readable" is said once,
//! and only said again after a read has returned `WouldBlock`. So every read here loops
//! until `WouldBlock`, and every write either empties its buffer or stops at `WouldBlock`
//! and waits for the next "writable" edge. Forgetting either rule makes a connection go
//! silent for good, which is the classic bug of event-loop code.
//!
//! Writes are batched: packets are appended to an [`OutBuf`] and the socket is written once
//! per loop turn, so a hundred messages cost one `write` call instead of a hundred. Over a
//! WebSocket that one `write` is one frame (see `transport`).

use std::io::{self, Read, Write};

use mio::net::TcpStream;

use crate::fail::Fail;
use crate::transport::MioStream;
use crate::wire::{self, RawFrame};

/// Bytes read from a socket and not yet taken as packets.
#[derive(Debug)]
pub struct InBuf {
    bytes: Box<[u8]>,
    /// Bytes before `start` are packets already handled.
    start: usize,
    /// Bytes from `end` on are free space.
    end: usize,
}

/// What a read pass saw.
#[derive(Debug, Clone, Copy)]
pub struct Received {
    pub bytes: usize,
    /// The peer closed the connection (a read returned 0 bytes).
    pub closed: bool,
}

impl InBuf {
    /// A buffer that can hold one packet of `capacity` bytes, fixed header included.
    pub fn new(capacity: usize) -> InBuf {
        InBuf {
            bytes: vec![0; capacity].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// Reads until the socket would block, handing each complete packet to `on_packet`.
    pub fn read_packets<R, F>(&mut self, socket: &mut R, mut on_packet: F) -> Result<Received, Fail>
    where
        R: Read,
        F: FnMut(RawFrame<'_>) -> Result<(), Fail>,
    {
        let mut received = Received {
            bytes: 0,
            closed: false,
        };
        loop {
            self.make_room()?;
            match socket.read(&mut self.bytes[self.end..]) {
                Ok(0) => {
                    received.closed = true;
                    return Ok(received);
                }
                Ok(n) => {
                    self.end += n;
                    received.bytes += n;
                    self.take_packets(&mut on_packet)?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(received),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Fail::io("read")(e)),
            }
        }
    }

    /// Hands over every complete packet in the buffer, in order.
    fn take_packets<F>(&mut self, on_packet: &mut F) -> Result<(), Fail>
    where
        F: FnMut(RawFrame<'_>) -> Result<(), Fail>,
    {
        while let Some(frame) = wire::split_frame(&self.bytes[self.start..self.end])? {
            let len = frame.bytes.len();
            on_packet(frame)?;
            self.start += len;
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        Ok(())
    }

    /// Moves a partial packet to the front when the buffer is full.
    fn make_room(&mut self) -> Result<(), Fail> {
        if self.end < self.bytes.len() {
            return Ok(());
        }
        if self.start == 0 {
            return Err(Fail::Protocol(format!(
                "a packet does not fit in the {}-byte read buffer",
                self.bytes.len()
            )));
        }
        self.bytes.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        Ok(())
    }
}

/// Packets waiting to be written.
#[derive(Debug, Default)]
pub struct OutBuf {
    bytes: Vec<u8>,
    /// Bytes before `written` have gone to the socket.
    written: usize,
    /// The last write returned `WouldBlock`: wait for a "writable" event before trying again.
    blocked: bool,
}

impl OutBuf {
    /// Where to append packets.
    pub fn bytes_mut(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }

    pub fn pending(&self) -> usize {
        self.bytes.len() - self.written
    }

    /// Called on a "writable" event.
    pub fn unblock(&mut self) {
        self.blocked = false;
    }

    /// Writes as much as the socket takes; returns how many bytes went out.
    ///
    /// Once the buffer is empty it also flushes `socket`: a transport (TLS, WebSocket) may
    /// hold bytes it accepted but could not write yet, and says `WouldBlock` if they still
    /// do not go, which blocks this buffer like a full socket would.
    pub fn write_to<W: Write>(&mut self, socket: &mut W) -> Result<usize, Fail> {
        let mut total = 0;
        while !self.blocked && self.written < self.bytes.len() {
            match socket.write(&self.bytes[self.written..]) {
                Ok(0) => return Err(Fail::io("write")(io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    self.written += n;
                    total += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.blocked = true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Fail::io("write")(e)),
            }
        }
        if !self.blocked {
            match socket.flush() {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.blocked = true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Fail::io("write")(e)),
            }
        }
        if self.written == self.bytes.len() {
            // Everything went out: reuse the allocation from the start.
            self.bytes.clear();
            self.written = 0;
        }
        Ok(total)
    }
}

/// One non-blocking MQTT connection: the socket, what came in, what goes out.
///
/// The fields are public so that a caller can borrow them separately: read packets from
/// `input` while its handler appends answers to `output`. `S` is the socket: a plain
/// `TcpStream` (`conns`, `relay`) or a [`MioStream`] with its transport's layers (the
/// publishers and subscribers of the throughput scenarios).
#[derive(Debug)]
pub struct Link<S = TcpStream> {
    pub stream: S,
    pub input: InBuf,
    pub output: OutBuf,
    /// mio said "readable" and we have not read until `WouldBlock` since.
    pub readable: bool,
}

impl<S: Read + Write> Link<S> {
    pub fn new(stream: S, read_capacity: usize) -> Link<S> {
        Link {
            stream,
            input: InBuf::new(read_capacity),
            output: OutBuf::default(),
            // Bytes may have arrived before the socket was registered: look once.
            readable: true,
        }
    }

    /// Writes what is pending unless the socket said it is full.
    pub fn flush(&mut self) -> Result<usize, Fail> {
        self.output.write_to(&mut self.stream)
    }

    /// Records what a mio event says about this connection.
    pub fn on_event(&mut self, event: &mio::event::Event) {
        if event.is_writable() {
            self.output.unblock();
        }
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            self.readable = true;
        }
    }
}

impl Link<MioStream> {
    /// Bytes queued here or held by the transport that have not reached the socket.
    pub fn unsent(&self) -> bool {
        self.output.pending() > 0 || self.stream.pending()
    }
}
