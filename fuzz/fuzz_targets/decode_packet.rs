//! Feeds arbitrary bytes to the packet reader and decoder, as a connection's reader thread
//! would: frame after frame until the input ends or is refused. It checks that nothing
//! panics, that every frame consumes input, and that whatever decodes survives an
//! encode → decode round trip unchanged.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mqttd::codec::{read_frame, Packet};

fuzz_target!(|data: &[u8]| {
    let mut input = data;
    while !input.is_empty() {
        let before = input.len();
        let Ok(frame) = read_frame(&mut input, 1 << 20) else {
            break;
        };
        assert!(input.len() < before, "a frame must consume input");
        let Ok(packet) = frame.decode() else {
            continue;
        };
        let _ = packet.to_string();
        let bytes = packet.to_bytes();
        let mut again: &[u8] = &bytes;
        let reframed = read_frame(&mut again, usize::MAX).expect("our own encoding frames");
        assert!(again.is_empty(), "encoding is exactly one frame");
        let decoded: Packet = reframed.decode().expect("our own encoding decodes");
        assert_eq!(decoded, packet);
    }
});
