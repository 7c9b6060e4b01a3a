//! Bearer tokens and sealed blobs from outside: the shape checks never panic, a well-formed token
//! has its kind's prefix, reading a blob's term never panics, and opening a blob that this keyring
//! did not seal is an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mediavault_base::crypto::tokens::{TokenKind, well_formed};
use mediavault_base::crypto::{Aad, Keyring, SecretBytes, Suite};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for kind in [TokenKind::Publishing, TokenKind::Client, TokenKind::Session] {
        if well_formed(kind, &text) {
            assert_eq!(TokenKind::of(&text), Some(kind));
            assert_eq!(text.len(), kind.prefix().len() + 43);
        }
    }
    let _ = TokenKind::of(&text);

    let term = Keyring::term_of(data);
    // A keyring of fixed keys in each suite, holding the blob's own term (when it has one) so
    // that opening gets as far as the cipher: the fuzzer cannot forge AES-GCM or SM4-GCM, so
    // every open must fail cleanly.
    for suite in Suite::ALL {
        let terms = vec![(
            term.as_ref().copied().unwrap_or(1),
            SecretBytes::new(vec![0x42; suite.data_key_len()]),
        )];
        let Ok(keyring) = Keyring::new(suite, terms, &SecretBytes::new(vec![0x17; 32])) else {
            return;
        };
        let aad = Aad {
            table: "credentials",
            row: "wechat-main",
            field: "secret",
            version: 1,
        };
        assert!(
            keyring.open(&aad, data).is_err(),
            "a blob nobody sealed opened"
        );
    }
});
