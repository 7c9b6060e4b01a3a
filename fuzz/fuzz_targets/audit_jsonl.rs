//! An audit export brought back for offline verification (untrusted JSONL), and a checkpoint line:
//! verifying never panics, a failed verification says why, and a checkpoint that parses renders to
//! the same line.
//!
//! Input: the export, optionally after a first line `cp:<seq>` that pins a checkpoint at that seq
//! (the fuzzer cannot forge a checkpoint's signature, so the target makes one itself).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mediavault_core::audit::Checkpoint;
use mediavault_core::audit::export::{parse_jsonl_line, verify_jsonl};
use mediavault_core::crypto::{Keyring, MacKey, SecretBytes, Suite};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let key = MacKey::new(Suite::Standard, &[7u8; 32]);
    // The checkpoint keys of both suites (HMAC-SHA256, SM2), as a keyring derives them.
    let checkpoint_keys: Vec<_> = Suite::ALL
        .into_iter()
        .filter_map(|suite| {
            let keyring = Keyring::new(suite, vec![], &SecretBytes::new(vec![7; 32])).ok()?;
            Some(keyring.mac().checkpoint.clone())
        })
        .collect();

    // A checkpoint line as typed by an operator: parses or is refused, and round-trips.
    for cp_key in &checkpoint_keys {
        if let Ok(cp) = Checkpoint::parse(text, cp_key) {
            assert_eq!(Checkpoint::parse(&cp.to_line(cp_key), cp_key).as_ref(), Ok(&cp));
        }
    }

    let (checkpoint, export) = match text.split_once('\n') {
        Some((first, rest)) if first.starts_with("cp:") => match first[3..].trim().parse::<i64>() {
            Ok(seq) => (
                Some(Checkpoint {
                    seq,
                    hash: [0; 32],
                    unix: 0,
                }),
                rest,
            ),
            Err(_) => (None, text),
        },
        _ => (None, text),
    };
    if let Some(cp) = &checkpoint {
        for cp_key in &checkpoint_keys {
            let line = cp.to_line(cp_key);
            assert_eq!(Checkpoint::parse(&line, cp_key).as_ref(), Ok(cp));
        }
    }
    for line in export.lines() {
        let _ = parse_jsonl_line(line);
    }
    let report = verify_jsonl(export, &key, checkpoint.as_ref());
    if !report.ok {
        assert!(
            report
                .problem
                .as_deref()
                .is_some_and(|p| !p.trim().is_empty()),
            "a failed verification without a reason"
        );
    }
});
