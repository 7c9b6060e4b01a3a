//! An access policy file (operator-written TOML): parsing never panics, and a refusal names a
//! line of the text and says something.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mediavault_core::policy::AccountPolicy;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = AccountPolicy::parse_str(text) {
        assert!(!e.message.trim().is_empty(), "an error without a message");
        if let Some(line) = e.line {
            assert!(
                line >= 1 && line <= text.lines().count() + 1,
                "line {line} outside the text"
            );
        }
        assert!(!e.to_string().is_empty());
    }
});
