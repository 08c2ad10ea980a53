//! The same bytes to the native engine's framing and to hyper's: the native engine must serve
//! a prefix of the requests hyper serves, with the same methods, paths and bodies.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    guess_game::server::fuzzing::differential_http1(bytes);
});
