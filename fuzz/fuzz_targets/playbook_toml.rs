//! A playbook file (operator-written TOML): parsing never panics, a refusal names a line and says
//! something, and a playbook that parses renders to TOML that parses to the same playbook.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mediavault_core::policy::Playbook;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Playbook::parse_str(text) {
        Ok(playbook) => {
            let rendered = toml::to_string(&playbook).unwrap_or_default();
            let again = Playbook::parse_str(&rendered);
            assert_eq!(again.as_ref(), Ok(&playbook), "rendered as:\n{rendered}");
        }
        Err(e) => {
            assert!(!e.message.trim().is_empty(), "an error without a message");
            if let Some(line) = e.line {
                assert!(
                    line >= 1 && line <= text.lines().count() + 1,
                    "line {line} outside the text"
                );
            }
        }
    }
});
