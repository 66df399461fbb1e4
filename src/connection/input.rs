//! The reader's input buffer, sized by the traffic: small while the client is quiet, big
//! while it sends bursts.
//!
//! A buffer lets one `read` system call bring many packets: at full speed one 8 KiB read
//! carries a few hundred small PUBLISHes, and the reader routes them all before it wakes
//! anybody (see `reader.rs`), so a bigger read also means fewer wake-ups downstream. But
//! every connection keeps its buffer for its whole life, and most connections are quiet
//! most of the time. So the buffer starts at [`SMALL`], enough for a CONNECT or a few
//! small packets, becomes [`LARGE`] after a read that filled it, and goes back to
//! [`SMALL`] after a read that brought no more than that. It is only ever resized when it
//! is empty, so no byte is moved or lost.
//!
//! This is `std::io::BufReader` with one addition, and it is written out because
//! `BufReader` cannot change its capacity. Measured with 2 000 idle connections: an 8 KiB
//! `BufReader` cost 8 KiB of memory per connection (it is zeroed, so every page is
//! touched); a fixed 2 KiB one cost a fifth of the messages/s with 256 subscribers.

use std::io::{self, Read};

use crate::transport::Incoming;

/// The size of a quiet connection's buffer.
pub const SMALL: usize = 512;

/// The size of a busy connection's buffer.
pub const LARGE: usize = 8 * 1024;

/// A buffered reader on a connection's incoming bytes whose buffer follows the traffic.
#[derive(Debug)]
pub struct Input {
    incoming: Incoming,
    buffer: Box<[u8]>,
    /// `buffer[start..end]` holds bytes read from the socket and not taken yet.
    start: usize,
    end: usize,
}

impl Input {
    pub fn new(incoming: Incoming) -> Input {
        Input {
            incoming,
            buffer: vec![0; SMALL].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// The bytes read from the socket and not taken yet.
    pub fn buffer(&self) -> &[u8] {
        &self.buffer[self.start..self.end]
    }

    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.buffer.len()
    }

    /// Reads from the socket into the empty buffer, after resizing it for the traffic the
    /// last read showed.
    fn refill(&mut self) -> io::Result<()> {
        debug_assert_eq!(self.start, self.end, "refill only an empty buffer");
        let last_read = self.end;
        let wanted = if last_read == self.buffer.len() {
            LARGE
        } else if last_read <= SMALL {
            SMALL
        } else {
            self.buffer.len()
        };
        if wanted != self.buffer.len() {
            self.buffer = vec![0; wanted].into_boxed_slice();
        }
        self.start = 0;
        self.end = 0;
        self.end = self.incoming.read(&mut self.buffer)?;
        Ok(())
    }
}

impl Read for Input {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.start == self.end {
            // Nothing buffered, and the caller wants at least a buffer's worth (a big
            // packet's body): read straight into its memory, as BufReader does.
            if out.len() >= self.buffer.len() {
                return self.incoming.read(out);
            }
            self.refill()?;
        }
        let available = &self.buffer[self.start..self.end];
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.start += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};

    use crate::transport::Socket;

    /// A connected pair on loopback: what the test writes, `Input` reads.
    fn pair() -> (TcpStream, Input) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, Input::new(Socket::new(server).incoming()))
    }

    /// Reads exactly `n` bytes, the way the frame reader does.
    fn take(input: &mut Input, n: usize) -> Vec<u8> {
        let mut bytes = vec![0; n];
        input.read_exact(&mut bytes).unwrap();
        bytes
    }

    #[test]
    fn grows_after_a_read_that_fills_it_and_shrinks_after_a_small_one() {
        let (mut client, mut input) = pair();
        assert_eq!(input.capacity(), SMALL);
        // More than SMALL bytes, already waiting: the first read fills the buffer.
        let burst: Vec<u8> = (0..3 * SMALL).map(|i| i as u8).collect();
        client.write_all(&burst).unwrap();
        assert_eq!(take(&mut input, 1), burst[..1]);
        assert_eq!(input.buffer().len(), SMALL - 1);
        // Taking the rest needs another read, which gets the big buffer.
        assert_eq!(take(&mut input, SMALL - 1 + 10), burst[1..SMALL + 10]);
        assert_eq!(input.capacity(), LARGE);
        assert_eq!(take(&mut input, 2 * SMALL - 10), burst[SMALL + 10..]);
        // A quiet moment: the next read brings a few bytes, the one after shrinks back.
        client.write_all(b"abc").unwrap();
        assert_eq!(take(&mut input, 3), b"abc");
        assert_eq!(input.capacity(), LARGE);
        client.write_all(b"de").unwrap();
        assert_eq!(take(&mut input, 2), b"de");
        assert_eq!(input.capacity(), SMALL);
    }

    #[test]
    fn a_read_bigger_than_the_buffer_bypasses_it() {
        let (mut client, mut input) = pair();
        let big = vec![7u8; 4 * SMALL];
        client.write_all(&big).unwrap();
        drop(client);
        assert_eq!(take(&mut input, big.len()), big);
        assert_eq!(
            input.capacity(),
            SMALL,
            "a big read does not grow the buffer"
        );
        assert_eq!(input.read(&mut [0; 8]).unwrap(), 0, "end of stream");
    }
}
