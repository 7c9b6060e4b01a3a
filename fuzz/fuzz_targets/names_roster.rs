//! Names (usernames, account ids, roles) and a pasted roster CSV: parsing never panics, a name that
//! parses renders as itself, and a refused roster says why.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mediavault_core::identity::roster::parse_csv;
use mediavault_core::names::{AccountId, Role, Roles, Username};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(u) = Username::parse(text) {
        assert_eq!(u.as_str(), text);
        assert_eq!(Username::parse(&u.to_string()).ok(), Some(u.clone()));
    }
    if let Ok(a) = AccountId::parse(text) {
        assert_eq!(a.as_str(), text);
    }
    if let Ok(r) = text.parse::<Role>() {
        assert_eq!(r.as_str(), text);
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    let _ = Roles::parse(&words);
    if let Err(e) = parse_csv(text) {
        assert!(
            !e.to_string().trim().is_empty(),
            "a refusal without a reason"
        );
    }
});
