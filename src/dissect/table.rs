//! Printing a [`Dissection`] as a table, one row per field, then the verdict.

use std::fmt::Write;

use super::{Dissection, Outcome, Row};
use crate::codec::{DecodeError, PacketType};

/// The column titles.
const HEADINGS: [&str; 5] = ["offset", "bytes", "field", "value", "spec"];

/// The text `mqttd decode` prints for `packets`, taken from an input of `input_len` bytes.
pub fn render(packets: &[Dissection], input_len: usize) -> String {
    let mut out = String::new();
    for (number, packet) in packets.iter().enumerate() {
        if number > 0 {
            out.push('\n');
        }
        render_packet(&mut out, number + 1, packet);
    }
    let taken: usize = packets.iter().map(|p| p.len).sum();
    if taken < input_len {
        let left = input_len - taken;
        let _ = writeln!(
            out,
            "\n{left} byte(s) from offset {taken} on not taken apart: the connection ends \
             at the packet above."
        );
    }
    out
}

fn render_packet(out: &mut String, number: usize, packet: &Dissection) {
    let name = match PacketType::from_byte1(packet.byte1) {
        Ok(packet_type) => packet_type.name(),
        Err(_) => "reserved packet type",
    };
    let _ = writeln!(
        out,
        "packet {number}: {name}, {} byte(s) from offset {}",
        packet.len, packet.start
    );
    let cells: Vec<[String; 5]> = packet.rows.iter().map(cells).collect();
    let mut widths = HEADINGS.map(str::len);
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    write_line(out, &HEADINGS.map(str::to_owned), &widths);
    for row in &cells {
        write_line(out, row, &widths);
    }
    let _ = writeln!(out, "{}", verdict(&packet.outcome));
}

/// A row's five cells; the offset right-aligned by `write_line`.
fn cells(row: &Row) -> [String; 5] {
    [
        row.offset.map_or_else(String::new, |o| o.to_string()),
        row.bytes.clone(),
        row.field.clone(),
        row.value.clone(),
        row.spec.to_owned(),
    ]
}

fn write_line(out: &mut String, cells: &[String; 5], widths: &[usize; 5]) {
    let mut line = format!("{:>w$}", cells[0], w = widths[0]);
    for (cell, width) in cells.iter().zip(widths).skip(1) {
        let _ = write!(line, "  {cell:<width$}");
    }
    let _ = writeln!(out, "{}", line.trim_end());
}

/// The last line of a packet: what the broker makes of it.
fn verdict(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Decoded(packet) => format!("decoded: {packet}"),
        Outcome::Refused { at, error } => format!(
            "refused at offset {at}: {}\n({})",
            error.as_close_reason(),
            reaction(error)
        ),
        Outcome::Incomplete { message } => format!(
            "incomplete: the input ends inside this packet ({message}); the broker would \
             wait for the rest"
        ),
        Outcome::Disagreement { codec, walk } => format!(
            "BUG in mqttd decode: the broker's decoder says {codec:?} but the dissector \
             says {walk:?}; please report it"
        ),
    }
}

/// What the broker does about `error` (`reaction_to` in the handshake, the reader after it).
fn reaction(error: &DecodeError) -> &'static str {
    match error {
        DecodeError::UnsupportedProtocolLevel { .. } => {
            "the broker answers CONNACK 0x01, unacceptable protocol version, then closes the \
             connection"
        }
        _ => "the broker closes the connection, logging this reason",
    }
}
