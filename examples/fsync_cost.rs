//! What one small durable write costs on this machine: the floor under every
//! acknowledgement that mqttd's journal (`persistence true`) makes wait for the disk.
//!
//! ```console
//! $ cargo run --release --example fsync_cost -- [DIR] [--count N] [--size BYTES]
//! ```
//!
//! In a fresh file in DIR (default `/tmp`, where `bench/compare.sh` puts the brokers'
//! persistence directories), it times N (1000) rounds of each of:
//!
//! * `append+fdatasync`: write BYTES (100) at the end of the file, then `fdatasync`, as the
//!   journal thread does for each group commit (the file grows, so the file system must
//!   also make the new length durable);
//! * `overwrite+fdatasync`: write BYTES at offset 0, then `fdatasync` (the length does not
//!   change: data only);
//! * `append+fsync`: as the first, with `fsync` (timestamps too).
//!
//! and prints the mean, median, 99th percentile and maximum in microseconds, and what the
//! mean allows: how many commits per second one thread can make. The file is removed at
//! the end.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

const USAGE: &str = "Usage: fsync_cost [DIR] [--count N] [--size BYTES]";

struct Args {
    dir: PathBuf,
    count: usize,
    size: usize,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        dir: PathBuf::from("/tmp"),
        count: 1000,
        size: 100,
    };
    let mut rest = std::env::args().skip(1);
    while let Some(arg) = rest.next() {
        let mut value = |name: &str| -> Result<usize, String> {
            rest.next()
                .and_then(|v| v.parse().ok())
                .filter(|&v| v > 0)
                .ok_or_else(|| format!("{name} needs a positive number"))
        };
        match arg.as_str() {
            "--count" => args.count = value("--count")?,
            "--size" => args.size = value("--size")?,
            "-h" | "--help" => return Err(String::new()),
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
            dir => args.dir = PathBuf::from(dir),
        }
    }
    Ok(args)
}

#[derive(Clone, Copy)]
enum Mode {
    AppendDatasync,
    OverwriteDatasync,
    AppendFsync,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::AppendDatasync => "append+fdatasync",
            Mode::OverwriteDatasync => "overwrite+fdatasync",
            Mode::AppendFsync => "append+fsync",
        }
    }
}

/// Times `count` write + sync rounds on `file`; returns each round in microseconds.
fn time_rounds(
    file: &mut File,
    mode: Mode,
    count: usize,
    size: usize,
) -> std::io::Result<Vec<f64>> {
    let bytes = vec![0x5a_u8; size];
    let mut rounds = Vec::with_capacity(count);
    // One round before timing: the first write allocates the file's first block.
    file.write_all(&bytes)?;
    file.sync_all()?;
    for _ in 0..count {
        let start = Instant::now();
        if let Mode::OverwriteDatasync = mode {
            file.seek(SeekFrom::Start(0))?;
        }
        file.write_all(&bytes)?;
        match mode {
            Mode::AppendFsync => file.sync_all()?,
            _ => file.sync_data()?,
        }
        rounds.push(start.elapsed().as_secs_f64() * 1e6);
    }
    Ok(rounds)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn run(args: &Args) -> std::io::Result<()> {
    println!(
        "dir={} count={} size={} (microseconds per write + sync)",
        args.dir.display(),
        args.count,
        args.size
    );
    for mode in [
        Mode::AppendDatasync,
        Mode::OverwriteDatasync,
        Mode::AppendFsync,
    ] {
        let path = args
            .dir
            .join(format!("fsync-cost-{}.tmp", std::process::id()));
        let mut file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)?;
        let timed = time_rounds(&mut file, mode, args.count, args.size);
        drop(file);
        std::fs::remove_file(&path)?;
        let mut rounds = timed?;
        rounds.sort_by(f64::total_cmp);
        let mean = rounds.iter().sum::<f64>() / rounds.len() as f64;
        println!(
            "FSYNC mode={} mean_us={mean:.1} p50_us={:.1} p99_us={:.1} max_us={:.1} commits_per_s={:.0}",
            mode.name(),
            percentile(&rounds, 0.50),
            percentile(&rounds, 0.99),
            rounds[rounds.len() - 1],
            1e6 / mean
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("fsync_cost: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fsync_cost: {}: {e}", args.dir.display());
            ExitCode::FAILURE
        }
    }
}
