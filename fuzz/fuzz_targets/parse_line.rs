//! Fuzzes the command parser (`chatd::layers::parse::parse_line`) with arbitrary input lines.
//!
//! Beyond "never panics", it checks what the property tests check, on inputs libFuzzer's
//! coverage guidance finds: an error is the user's fault, short, and carries no raw control
//! character (it is printed to a terminal). Run with `cargo +nightly fuzz run parse_line`.

#![no_main]

use chatd::core::ErrorKind;
use chatd::layers::parse::parse_line;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The TCP adapter refuses lines that are not UTF-8 before they reach the parser.
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    match parse_line(line) {
        Ok(None) => assert!(line.trim().is_empty()),
        Ok(Some(_)) => {}
        Err(err) => {
            assert_eq!(err.kind, ErrorKind::Invalid);
            assert!(err.message.len() < 512, "{}", err.message);
            assert!(
                !err.message.chars().any(char::is_control),
                "{:?}",
                err.message
            );
        }
    }
});
