//! A backup file's plaintext part, read before anything is decrypted (`mediavault restore` takes a
//! file from wherever it was kept): splitting it never panics; what it accepts is the magic line,
//! one JSON header line and the rest, exactly the file again; the header renders and parses to the
//! same value; the fuzzer's body never opens (it cannot forge AES-GCM); and a body sealed under
//! the accepted header, with the header as AAD, parses and opens back to itself.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mediavault_core::crypto::RootKey;
use mediavault_core::vault::backup::{BackupHeader, parse};

const MAGIC: &[u8] = b"mediavault-backup v1\n";

/// One root key for the whole run (creating it writes a key file, too slow per input).
fn root() -> Option<&'static RootKey> {
    static ROOT: OnceLock<Option<RootKey>> = OnceLock::new();
    ROOT.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("mv-fuzz-root-{}.key", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let key = RootKey::create_file(&path).ok();
        let _ = std::fs::remove_file(&path);
        key
    })
    .as_ref()
}

fn json(h: &BackupHeader) -> Vec<u8> {
    serde_json::to_vec(h).unwrap_or_default()
}

fuzz_target!(|data: &[u8]| {
    let Ok((header, aad, sealed)) = parse(data) else {
        return;
    };
    assert_eq!(
        [aad, sealed].concat(),
        data,
        "the split lost or added bytes"
    );
    assert!(aad.starts_with(MAGIC) && aad.ends_with(b"\n"));
    assert_eq!(
        aad[MAGIC.len()..].iter().filter(|&&b| b == b'\n').count(),
        1,
        "the header is not one line"
    );
    let rendered = json(&header);
    let again = serde_json::from_slice::<BackupHeader>(&rendered);
    assert!(
        again.is_ok_and(|h| json(&h) == rendered),
        "the header does not round-trip"
    );

    let Some(root) = root() else {
        return;
    };
    assert!(
        root.open_backup(header.crypto_suite, aad, sealed).is_err(),
        "a body nobody sealed opened"
    );
    // The way `backup` writes a file, around this header and this body.
    let mut file = MAGIC.to_vec();
    file.extend_from_slice(&rendered);
    file.push(b'\n');
    let Ok(body) = root.seal_backup(header.crypto_suite, &file, sealed) else {
        return;
    };
    let header_len = file.len();
    file.extend_from_slice(&body);
    let Ok((h2, aad2, sealed2)) = parse(&file) else {
        panic!("a file as `backup` writes it does not parse");
    };
    assert_eq!(json(&h2), rendered);
    assert_eq!(aad2.len(), header_len);
    let opened = root.open_backup(h2.crypto_suite, aad2, sealed2);
    assert!(
        opened.is_ok_and(|b| b.expose() == sealed),
        "a sealed body did not open to itself"
    );
});
