//! The configuration file (operator-written TOML): loading never panics, and a refusal says
//! something.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mediavault_core::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = Config::from_toml_str(text) {
        assert!(
            !e.to_string().trim().is_empty(),
            "an error without a message"
        );
    }
});
