//! What TLS costs mqttd, and what the lock around a connection's TLS session costs
//! (walkthrough chapter 12). Two measurements:
//!
//! ```console
//! $ cargo run --release --example tls_cost -- lock [--count N]
//! $ cargo run --release --example tls_cost -- pair --port P [--cafile CA] [--secs S]
//!       [--window W] [--broker-pid PID]
//! ```
//!
//! **`lock`**, in memory, no socket: a rustls server session and a client session made
//! with fresh test certificates (`tests/common/certs.rs`), with the ring provider and the
//! versions mqttd uses. It times N (200000) of each of the server's two jobs on a 26-byte
//! QoS 0 PUBLISH (topic `pair/0`, 16 bytes of payload, loadgen's `pair` message):
//!
//! * `encrypt`: the writer's part of `Session::send` (hand the bytes to the session, take
//!   the TLS record out), once on a plain `&mut ServerConnection` and once through a
//!   `parking_lot::Mutex` locked for each record, as `Session::encrypt` does;
//! * `decrypt`: the reader's part of `Session::read` (hand one record to the session,
//!   decrypt, take the plaintext out), the same two ways, on records the client
//!   encrypted beforehand;
//! * `both`: the two at once on one session behind one mutex, from two threads that do
//!   nothing else: the worst case for the lock, since in the broker each thread spends
//!   most of its time in a socket call without it. It counts how many acquisitions found
//!   the lock taken (a `try_lock` that failed) and how long those waited.
//!
//! **`pair`**: one QoS 0 publisher and one subscriber of topic `pair/0`, both on the broker
//! at 127.0.0.1:P, over plain TCP, or over TLS when `--cafile` names the CA that signed
//! the broker's certificate (the server name checked is `localhost`). The publisher stays
//! at most W (`--window`, 400 as in loadgen) messages ahead of the subscriber, for S (5)
//! seconds; it writes what the window allows (at most 256 messages) with one `write`, so
//! with a window of 1 every message is a TLS record of its own both ways.
//! Prints the messages per second that arrived and, with `--broker-pid`, the broker's CPU
//! time per message, from `/proc/PID/stat` (user + system, all threads; 100 ticks a
//! second).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

#[path = "../tests/common/certs.rs"]
#[allow(dead_code)] // this example uses the CA and the server's files only
mod certs;

const USAGE: &str = "Usage: tls_cost lock [--count N]\n       \
                     tls_cost pair --port P [--cafile CA] [--secs S] [--window W] [--broker-pid PID]";

/// A QoS 0 PUBLISH to `pair/0` with 16 bytes of payload: 2 + 2 + 6 + 16 bytes.
fn publish() -> Vec<u8> {
    let mut packet = vec![0x30, 24, 0x00, 0x06];
    packet.extend_from_slice(b"pair/0");
    packet.extend_from_slice(&[0x55; 16]);
    packet
}

#[derive(Default)]
struct Args {
    mode: String,
    count: usize,
    port: u16,
    cafile: Option<PathBuf>,
    secs: u64,
    broker_pid: Option<u32>,
    window: u64,
}

fn parse() -> Result<Args, String> {
    let mut rest = std::env::args().skip(1);
    let mut args = Args {
        mode: rest.next().unwrap_or_default(),
        count: 200_000,
        secs: 5,
        window: 400,
        ..Args::default()
    };
    while let Some(flag) = rest.next() {
        let value = rest.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: not a number"))
        };
        match flag.as_str() {
            "--count" => args.count = number(&value)? as usize,
            "--port" => args.port = number(&value)? as u16,
            "--secs" => args.secs = number(&value)?,
            "--window" => args.window = number(&value)?.max(1),
            "--broker-pid" => args.broker_pid = Some(number(&value)? as u32),
            "--cafile" => args.cafile = Some(PathBuf::from(value)),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    match args.mode.as_str() {
        "lock" => lock(args.count),
        "pair" if args.port != 0 => pair(&args),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

// ---------------------------------------------------------------------------------------
// lock: the session's work with and without the mutex.

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    #[allow(deprecated)] // ring: the provider mqttd uses (see src/transport/tls/setup.rs)
    Arc::new(rustls::crypto::ring::default_provider())
}

fn client_config(ca: &std::path::Path) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("the CA file") {
        roots.add(cert.expect("a certificate")).expect("a root");
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// A server and a client session that have finished their handshake in memory.
fn sessions() -> (ServerConnection, ClientConnection) {
    let dir = std::env::temp_dir().join(format!("mqttd-tls-cost-{}", std::process::id()));
    let files = certs::make_certs(&dir);
    let chain = CertificateDer::pem_file_iter(&files.server_cert)
        .expect("the server certificate")
        .map(|c| c.expect("a certificate"))
        .collect();
    let key = PrivateKeyDer::from_pem_file(&files.server_key).expect("the server key");
    let server_config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("the server's certificate and key");
    let client_config = client_config(&files.ca_cert);
    let _ = std::fs::remove_dir_all(&dir);
    let mut server = ServerConnection::new(Arc::new(server_config)).expect("a server session");
    server.set_buffer_limit(None); // as Acceptor::handshake does
    let name = ServerName::try_from("localhost").expect("a name");
    let mut client = ClientConnection::new(client_config, name).expect("a client session");
    while server.is_handshaking() || client.is_handshaking() {
        let mut bytes = Vec::new();
        while client.wants_write() {
            client
                .write_tls(&mut bytes)
                .expect("client handshake bytes");
        }
        server.read_tls(&mut &bytes[..]).expect("to the server");
        server
            .process_new_packets()
            .expect("the server's handshake");
        bytes.clear();
        while server.wants_write() {
            server
                .write_tls(&mut bytes)
                .expect("server handshake bytes");
        }
        client.read_tls(&mut &bytes[..]).expect("to the client");
        client
            .process_new_packets()
            .expect("the client's handshake");
    }
    (server, client)
}

/// The writer's work for one record: plaintext in, record out (then thrown away).
fn encrypt(server: &mut ServerConnection, packet: &[u8], out: &mut Vec<u8>) {
    server.writer().write_all(packet).expect("plaintext in");
    while server.wants_write() {
        server.write_tls(out).expect("record out");
    }
    out.clear();
}

/// The reader's work for one record: record in, plaintext out.
fn decrypt(server: &mut ServerConnection, record: &[u8], plain: &mut [u8]) {
    server.read_tls(&mut &record[..]).expect("record in");
    server.process_new_packets().expect("a good record");
    let n = server.reader().read(plain).expect("plaintext out");
    assert_eq!(n, 26, "one PUBLISH per record");
}

/// `count` records from the client, one PUBLISH in each, in order.
fn client_records(client: &mut ClientConnection, count: usize) -> Vec<Vec<u8>> {
    let packet = publish();
    (0..count)
        .map(|_| {
            client.writer().write_all(&packet).expect("plaintext in");
            let mut record = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut record).expect("record out");
            }
            record
        })
        .collect()
}

fn per_op(elapsed: Duration, count: usize) -> f64 {
    elapsed.as_nanos() as f64 / count as f64
}

fn lock(count: usize) {
    let packet = publish();
    let (mut out, mut plain) = (Vec::new(), [0u8; 64]);
    println!("{count} operations each, one 26-byte PUBLISH per TLS record");

    let (mut server, mut client) = sessions();
    println!("TLS version {:?}", server.protocol_version());
    let start = Instant::now();
    for _ in 0..count {
        encrypt(&mut server, &packet, &mut out);
    }
    let bare = per_op(start.elapsed(), count);
    let shared = Mutex::new(server);
    let start = Instant::now();
    for _ in 0..count {
        encrypt(&mut shared.lock(), &packet, &mut out);
    }
    let locked = per_op(start.elapsed(), count);
    println!("encrypt: {bare:7.1} ns without the mutex, {locked:7.1} ns with it");

    let records = client_records(&mut client, 2 * count);
    let mut server = shared.into_inner();
    let start = Instant::now();
    for record in &records[..count] {
        decrypt(&mut server, record, &mut plain);
    }
    let bare = per_op(start.elapsed(), count);
    let shared = Mutex::new(server);
    let start = Instant::now();
    for record in &records[count..] {
        decrypt(&mut shared.lock(), record, &mut plain);
    }
    let locked = per_op(start.elapsed(), count);
    println!("decrypt: {bare:7.1} ns without the mutex, {locked:7.1} ns with it");

    longest_holds(&mut shared.into_inner(), &mut client);
    both(count);
}

/// How long the lock is held at most in ordinary traffic: the writer encrypting one full
/// batch (`BATCH_LIMIT`, 64 KiB), the reader decrypting one full read (`READ_CHUNK`, 16
/// KiB, a little under one record of 16 KiB of plaintext).
fn longest_holds(server: &mut ServerConnection, client: &mut ClientConnection) {
    const ROUNDS: usize = 2000;
    let batch: Vec<u8> = publish().repeat(64 * 1024 / 26);
    let mut out = Vec::new();
    let start = Instant::now();
    for _ in 0..ROUNDS {
        encrypt(server, &batch, &mut out);
    }
    let encrypt_batch = per_op(start.elapsed(), ROUNDS) / 1e3;
    let piece = publish().repeat(16 * 1024 / 26);
    let records: Vec<Vec<u8>> = (0..ROUNDS)
        .map(|_| {
            client.writer().write_all(&piece).expect("plaintext in");
            let mut record = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut record).expect("record out");
            }
            record
        })
        .collect();
    let mut plain = vec![0u8; 32 * 1024];
    let start = Instant::now();
    for record in &records {
        // As `feed` does: read_tls takes what its buffer has room for, so loop.
        let mut rest = &record[..];
        while !rest.is_empty() {
            server.read_tls(&mut rest).expect("record in");
            server.process_new_packets().expect("a good record");
        }
        let n = server.reader().read(&mut plain).expect("plaintext out");
        assert_eq!(n, piece.len(), "the whole piece");
    }
    let decrypt_chunk = per_op(start.elapsed(), ROUNDS) / 1e3;
    println!(
        "longest holds: encrypt a {} B batch {encrypt_batch:.1} µs, decrypt a {} B record \
         {decrypt_chunk:.1} µs",
        batch.len(),
        records[0].len()
    );
}

/// How often, and for how long, an acquisition found the lock taken.
#[derive(Default)]
struct Waits {
    taken: u64,
    waited: Duration,
}

fn acquire<'a>(
    session: &'a Mutex<ServerConnection>,
    waits: &mut Waits,
) -> parking_lot::MutexGuard<'a, ServerConnection> {
    if let Some(guard) = session.try_lock() {
        return guard;
    }
    let start = Instant::now();
    let guard = session.lock();
    waits.taken += 1;
    waits.waited += start.elapsed();
    guard
}

/// Encrypting and decrypting at once, on one session, from two threads.
fn both(count: usize) {
    let (server, mut client) = sessions();
    let records = client_records(&mut client, count);
    let session = Arc::new(Mutex::new(server));
    let start = Instant::now();
    let writer = {
        let session = Arc::clone(&session);
        thread::spawn(move || {
            let (packet, mut out, mut waits) = (publish(), Vec::new(), Waits::default());
            for _ in 0..count {
                encrypt(&mut acquire(&session, &mut waits), &packet, &mut out);
            }
            waits
        })
    };
    let mut plain = [0u8; 64];
    let mut reader_waits = Waits::default();
    for record in &records {
        decrypt(
            &mut acquire(&session, &mut reader_waits),
            record,
            &mut plain,
        );
    }
    let writer_waits = writer.join().expect("the writer thread");
    let elapsed = start.elapsed();
    println!(
        "both at once, two threads, one mutex: {:.1} ms for {count} of each",
        elapsed.as_secs_f64() * 1e3
    );
    for (who, waits) in [("reader", reader_waits), ("writer", writer_waits)] {
        let mean = if waits.taken == 0 {
            0.0
        } else {
            per_op(waits.waited, waits.taken as usize)
        };
        println!(
            "  {who}: found the lock taken {} times in {count} ({:.1}%), waiting {mean:.0} ns \
             on average then",
            waits.taken,
            100.0 * waits.taken as f64 / count as f64
        );
    }
}

// ---------------------------------------------------------------------------------------
// pair: a QoS 0 publisher and subscriber through the broker.

/// A connection to the broker, plain or TLS, as one `Read + Write`.
trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

fn open(args: &Args, client_id: &str) -> Box<dyn Stream> {
    let tcp = TcpStream::connect(("127.0.0.1", args.port)).expect("the broker's port");
    tcp.set_nodelay(true).expect("TCP_NODELAY");
    // So that the subscriber's last read ends when the run does.
    tcp.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("a read timeout");
    let mut stream: Box<dyn Stream> = match &args.cafile {
        None => Box::new(tcp),
        Some(ca) => {
            let name = ServerName::try_from("localhost").expect("a name");
            let session = ClientConnection::new(client_config(ca), name).expect("a session");
            Box::new(rustls::StreamOwned::new(session, tcp))
        }
    };
    // CONNECT: MQTT 3.1.1, Clean Session 1, Keep Alive 60.
    let mut connect = vec![0x10, (12 + client_id.len()) as u8, 0x00, 0x04];
    connect.extend_from_slice(b"MQTT");
    connect.extend_from_slice(&[0x04, 0x02, 0x00, 0x3C, 0x00, client_id.len() as u8]);
    connect.extend_from_slice(client_id.as_bytes());
    stream.write_all(&connect).expect("CONNECT");
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack).expect("CONNACK");
    assert_eq!(connack, [0x20, 0x02, 0x00, 0x00], "CONNACK accepted");
    stream
}

/// The utime + stime of process `pid`, all threads, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // The fields after the command's closing parenthesis; utime and stime are the 14th
    // and 15th fields of the line, the 12th and 13th after it.
    let after = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

fn pair(args: &Args) {
    let mut subscriber = open(args, "tls-cost-sub");
    // SUBSCRIBE id 1 to pair/0 at QoS 0, then its SUBACK.
    subscriber
        .write_all(&[
            0x82, 11, 0x00, 0x01, 0x00, 0x06, b'p', b'a', b'i', b'r', b'/', b'0', 0,
        ])
        .expect("SUBSCRIBE");
    let mut suback = [0u8; 5];
    subscriber.read_exact(&mut suback).expect("SUBACK");
    assert_eq!(suback, [0x90, 0x03, 0x00, 0x01, 0x00], "SUBACK granted");
    let mut publisher = open(args, "tls-cost-pub");

    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sender = thread::current();
    let reader = {
        let (received, stop) = (Arc::clone(&received), Arc::clone(&stop));
        thread::spawn(move || count_publishes(&mut *subscriber, &received, &stop, &sender))
    };
    let cpu_before = args.broker_pid.map(cpu_seconds);
    let start = Instant::now();
    let run = Duration::from_secs(args.secs);
    let (packet, mut batch, mut sent) = (publish(), Vec::new(), 0u64);
    while start.elapsed() < run {
        let room = (received.load(Ordering::Acquire) + args.window).saturating_sub(sent);
        if room == 0 {
            thread::park_timeout(Duration::from_millis(1));
            continue;
        }
        for _ in 0..room.min(256) {
            batch.extend_from_slice(&packet);
        }
        publisher.write_all(&batch).expect("PUBLISH");
        sent += room.min(256);
        batch.clear();
    }
    let elapsed = start.elapsed();
    let arrived = received.load(Ordering::Acquire);
    let cpu = args
        .broker_pid
        .map(|pid| cpu_seconds(pid) - cpu_before.unwrap_or(0.0));
    stop.store(true, Ordering::Release);
    publisher.write_all(&[0xE0, 0x00]).expect("DISCONNECT");
    let _ = reader.join();
    let over = if args.cafile.is_some() { "TLS" } else { "TCP" };
    let rate = arrived as f64 / elapsed.as_secs_f64();
    print!(
        "{over}: {arrived} messages in {:.2} s: {rate:.0} msg/s",
        elapsed.as_secs_f64()
    );
    match cpu {
        Some(cpu) => println!(
            "; broker CPU {cpu:.2} s, {:.2} µs per message",
            cpu * 1e6 / arrived as f64
        ),
        None => println!(),
    }
}

/// Counts the PUBLISH packets arriving on `stream` into `received`, waking the publisher
/// after each read, until `stop`.
fn count_publishes(
    stream: &mut dyn Stream,
    received: &AtomicU64,
    stop: &AtomicBool,
    publisher: &thread::Thread,
) {
    let (mut buf, mut filled) = (vec![0u8; 64 * 1024], 0);
    while !stop.load(Ordering::Acquire) {
        let n = match stream.read(&mut buf[filled..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        filled += n;
        let mut at = 0;
        // Every packet here is a PUBLISH of 26 bytes: a 2-byte fixed header and 24.
        while filled - at >= 2 && filled - at >= 2 + buf[at + 1] as usize {
            assert_eq!(buf[at], 0x30, "a QoS 0 PUBLISH");
            at += 2 + buf[at + 1] as usize;
            received.fetch_add(1, Ordering::AcqRel);
        }
        buf.copy_within(at..filled, 0);
        filled -= at;
        publisher.unpark();
    }
}
