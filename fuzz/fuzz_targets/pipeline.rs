//! Fuzzes the pipeline loader (`chatd::pipeline::load::parse`): any text gives a config or a
//! list of problems, never a panic. Run with `cargo +nightly fuzz run pipeline`.

#![no_main]

use chatd::pipeline::load;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(errors) = load::parse("fuzz.toml", text, &|_| None) {
        assert!(!errors.errors.is_empty());
    }
});
