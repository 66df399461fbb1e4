//! What `mqttd decode` reads: hex, with or without spaces, or the broker's own trace lines.
//!
//! `RUST_LOG=trace` logs every packet's bytes as `client "a" <- [10 0c 00 04 …]`
//! (`trace_bytes` in `src/connection/mod.rs`, `<-` in, `->` out). When the text holds such
//! dumps, only the bytes between their brackets are read, in order, and the rest of each
//! line (timestamp, level, thread, client) is skipped; otherwise the whole text is hex.

/// The marks that open a trace dump: the arrow and the bracket `trace_bytes` writes.
const DUMP_OPENERS: [&str; 2] = ["<- [", "-> ["];

/// The bytes `text` spells: the trace dumps it holds, or else all of it as hex.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let dumps = trace_dumps(text);
    let mut bytes = Vec::new();
    if dumps.is_empty() {
        push_hex(text, &mut bytes)?;
    }
    for (number, dump) in dumps.iter().enumerate() {
        push_hex(dump, &mut bytes).map_err(|e| format!("trace dump {}: {e}", number + 1))?;
    }
    Ok(bytes)
}

/// The text between the brackets of every trace dump in `text`, in order.
fn trace_dumps(text: &str) -> Vec<&str> {
    let mut dumps = Vec::new();
    let mut rest = text;
    while let Some((open, opener)) = DUMP_OPENERS
        .iter()
        .filter_map(|opener| rest.find(opener).map(|at| (at, opener)))
        .min()
    {
        let inside = &rest[open + opener.len()..];
        let close = inside.find(']').unwrap_or(inside.len());
        dumps.push(&inside[..close]);
        rest = &inside[close..];
    }
    dumps
}

/// Appends the bytes of `hex`: pairs of hex digits, with any white space between them and
/// an optional `0x` before each group.
fn push_hex(hex: &str, out: &mut Vec<u8>) -> Result<(), String> {
    let mut digits = Vec::new();
    for word in hex.split_whitespace() {
        let word = word.strip_prefix("0x").unwrap_or(word);
        for c in word.chars() {
            let digit = c
                .to_digit(16)
                .ok_or_else(|| format!("{c:?} is not a hex digit (in {word:?})"))?;
            // A hex digit is below 16: the conversion cannot fail.
            digits.push(u8::try_from(digit).unwrap_or_default());
        }
        if digits.len() % 2 != 0 {
            return Err(format!("{word:?} ends in the middle of a byte"));
        }
    }
    // Every word had an even number of digits, so every chunk is a pair.
    out.extend(digits.chunks(2).map(|pair| pair[0] << 4 | pair[1]));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_with_or_without_spaces_and_0x() {
        let want = vec![0x10, 0x0c, 0x00, 0x04];
        assert_eq!(parse_hex("10 0c 00 04").unwrap(), want);
        assert_eq!(parse_hex("100c0004").unwrap(), want);
        assert_eq!(parse_hex("10 0C\n00 04\n").unwrap(), want);
        assert_eq!(parse_hex("0x10 0x0c 0x0004").unwrap(), want);
        assert_eq!(parse_hex("").unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn bad_hex_is_explained() {
        assert_eq!(
            parse_hex("10 0g").unwrap_err(),
            "'g' is not a hex digit (in \"0g\")"
        );
        assert_eq!(
            parse_hex("10 0").unwrap_err(),
            "\"0\" ends in the middle of a byte"
        );
    }

    #[test]
    fn trace_lines_give_the_bytes_between_their_brackets() {
        let log = "\
2026-12-06T04:58:01.771Z TRACE [rx:learner-sub] client \"learner-sub\" <- [82 0b 00 01]
2026-12-06T04:58:01.835Z DEBUG [rx:learner-sub] client \"learner-sub\" <- SUBSCRIBE id=1
2026-12-06T04:58:01.835Z TRACE [tx:learner-sub] client \"learner-sub\" -> [90 03 00 01 00]";
        assert_eq!(
            parse_hex(log).unwrap(),
            vec![0x82, 0x0b, 0x00, 0x01, 0x90, 0x03, 0x00, 0x01, 0x00]
        );
    }
}
