//! Feeds arbitrary bytes to every wire decoder: they may reject the input, never panic.
//! Run: `cd wire/fuzz && cargo +nightly fuzz run decode -- -max_total_time=300`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = wire::Batch::decode(data) {
        // Whatever decodes must re-encode, and the re-encoding must be a fixed point
        // (compared as bytes, since NaN values never compare equal).
        let again = batch.encode().expect("a decoded batch re-encodes");
        let twice = wire::Batch::decode(&again).expect("re-encoded batch decodes").encode().expect("re-encodes");
        assert_eq!(again, twice);
    }
    let _ = wire::FramesBlock::from_bytes(data.to_vec());
    let _ = wire::Birth::decode(data);
    let _ = wire::Birth::decode_with_status(data);
    let _ = wire::Death::decode(data);
    if let Ok(ack) = wire::Ack::decode(data) {
        // A decoded ack (with or without rejections) re-encodes to bytes that decode to it.
        assert_eq!(wire::Ack::decode(&ack.encode()).expect("re-encoded ack decodes"), ack);
    }
    let _ = wire::Command::decode(data);
    let _ = wire::Command::recover_id(data);
    let _ = wire::CommandResult::decode(data);
    if let Ok(state) = wire::CloudState::decode(data) {
        assert_eq!(wire::CloudState::decode(&state.encode()).expect("re-encoded state decodes"), state);
    }
    // Opening never panics, and what a key opens is a message the decoders may read.
    let key = wire::MessageKey::derive(b"fuzz-gateway-secret-0123456789");
    match wire::seal::open([&key], "wp/v1/acme/gw-01/ack", data) {
        Ok(opened) => {
            let _ = wire::Ack::decode(opened.message);
        }
        Err(_) => {
            // A payload sealed here always opens: seal the input and check it round-trips.
            let sealed = wire::seal::seal(&key, "wp/v1/acme/gw-01/ack", data);
            let opened = wire::seal::open([&key], "wp/v1/acme/gw-01/ack", &sealed)
                .expect("a sealed payload opens");
            assert_eq!(opened.message, data);
        }
    }
});
