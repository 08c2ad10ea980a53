//! The JSON decoder of a /play body: no panic, no unbounded allocation.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    guess_game::server::fuzzing::decode_play_json(bytes);
});
