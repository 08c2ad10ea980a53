//! Replays every committed fuzz input (fuzz/corpus/<target>/ and the regressions in
//! fuzz/regressions/<target>/) through the checks the fuzz targets run, so CI guards what
//! fuzzing found without running a fuzzer. See fuzz/README.md for running the fuzzers.

use std::path::Path;

use guess_game::server::fuzzing;

fn replay(target: &str, check: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    for folder in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(folder).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| check(&bytes));
            assert!(outcome.is_ok(), "{target}: {} fails", path.display());
            replayed += 1;
        }
    }
    assert!(
        replayed >= 5,
        "{target}: only {replayed} inputs in the corpus"
    );
}

#[test]
fn the_http1_differential_corpus_frames_alike_on_both_engines() {
    replay("http1_differential", fuzzing::differential_http1);
}

#[test]
fn the_json_decoder_corpus_decodes_without_panicking() {
    replay("decode_json", fuzzing::decode_play_json);
}

#[test]
fn the_msgpack_decoder_corpus_decodes_without_panicking() {
    replay("decode_msgpack", fuzzing::decode_play_msgpack);
}

#[test]
fn the_differential_check_catches_a_native_engine_that_frames_differently() {
    // The check itself must be able to fail: hyper serves this pipeline as two requests, and
    // a framing that read only one, or a different body, is not a prefix of hyper's.
    let bytes = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhiGET /b HTTP/1.1\r\nHost: x\r\n\r\n";
    let hyper = fuzzing::hyper_requests(bytes);
    let native = fuzzing::native_requests(bytes);
    assert_eq!(hyper.len(), 2);
    assert_eq!(native, hyper);
    let mut wrong = native.clone();
    wrong[0].body = b"h".to_vec();
    assert_ne!(wrong[..], hyper[..wrong.len()]);
}
