//! Every JSON request body of the API: the first byte picks the type a handler takes, the rest is
//! the body. Deserializing never panics; a body a handler accepts is also accepted through the
//! generic JSON value (the reading does not depend on how the bytes are fed); a type that also
//! serializes comes back as itself; and a refusal's message, as the client and the audit log see
//! it, keeps no quoted text and no string value of the body (a value may be a secret typed into
//! the wrong field).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mediavault_core::identity::roster::RosterEntry;
use mediavault_http::api::{accounts, auth, checkouts, clients, incidents, users};
use mediavault_http::extract::scrub;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Checks one body against type `T`; returns it when accepted (for the round trip).
fn check<T: DeserializeOwned>(body: &[u8]) -> Option<T> {
    match serde_json::from_slice::<T>(body) {
        Ok(v) => {
            let generic = serde_json::from_slice::<Value>(body);
            assert!(
                generic.is_ok_and(|g| serde_json::from_value::<T>(g).is_ok()),
                "accepted from bytes but not from the same JSON value"
            );
            Some(v)
        }
        Err(e) => {
            let shown = scrub(&e.to_string());
            assert!(!shown.trim().is_empty(), "a refusal without a message");
            assert_quotes_cut(&shown);
            if let Ok(v) = serde_json::from_slice::<Value>(body) {
                let mut keys = Vec::new();
                let mut values = Vec::new();
                strings(&v, &mut keys, &mut values);
                for s in values {
                    // A value shown only because serde echoed it disappears when the value is
                    // replaced; one that is also serde's own text or a field name stays.
                    if s.chars().count() >= 8 && shown.contains(&s) {
                        // Both bodies re-rendered the same way (keys in the same order).
                        let shown_for = |v: &Value| {
                            let b = serde_json::to_vec(v).unwrap_or_default();
                            serde_json::from_slice::<T>(&b)
                                .err()
                                .map(|e| scrub(&e.to_string()))
                        };
                        let other = "Z".repeat(s.chars().count());
                        if let (Some(a), Some(b)) =
                            (shown_for(&v), shown_for(&replaced(&v, &s, &other)))
                        {
                            assert!(
                                !a.contains(&s) || b.contains(&s),
                                "the refusal quotes a value: {a}"
                            );
                        }
                    }
                }
            }
            None
        }
    }
}

/// Every quoted span of a scrubbed message is `"…"`. Backtick spans are left out: those kept
/// name a field, and a field name (input, but not a value) may hold a `"`.
fn assert_quotes_cut(shown: &str) {
    let outside: String = shown.split('`').step_by(2).collect();
    let mut parts = outside.split('"');
    parts.next();
    for (i, part) in parts.enumerate() {
        if i % 2 == 0 {
            assert_eq!(part, "…", "a quoted span survived: {shown}");
        }
    }
}

fn replaced(v: &Value, from: &str, to: &str) -> Value {
    match v {
        Value::String(s) if s == from => Value::String(to.to_owned()),
        Value::Array(a) => Value::Array(a.iter().map(|x| replaced(x, from, to)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), replaced(x, from, to)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn strings(v: &Value, keys: &mut Vec<String>, values: &mut Vec<String>) {
    match v {
        Value::String(s) => values.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, keys, values)),
        Value::Object(m) => {
            for (k, x) in m {
                keys.push(k.clone());
                strings(x, keys, values);
            }
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    match pick % 21 {
        0 => drop(check::<mediavault_core::accounts::service::CreateAccount>(
            body,
        )),
        1 => drop(check::<accounts::RotateBody>(body)),
        2 => drop(check::<accounts::RollbackBody>(body)),
        3 => drop(check::<accounts::FreezeBody>(body)),
        4 => drop(check::<auth::LoginBody>(body)),
        5 => drop(check::<auth::StepUpBody>(body)),
        6 => drop(check::<mediavault_core::checkout::CheckoutRequest>(body)),
        7 => drop(check::<checkouts::Decision>(body)),
        8 => drop(check::<checkouts::ClaimBody>(body)),
        9 => drop(check::<clients::CreateClient>(body)),
        10 => drop(check::<mediavault_core::incidents::OpenIncident>(body)),
        11 => drop(check::<incidents::CompleteBody>(body)),
        12 => drop(check::<incidents::CloseBody>(body)),
        13 => drop(check::<users::CreateUser>(body)),
        14 => drop(check::<users::ImportBody>(body)),
        15 => drop(check::<users::GrantBody>(body)),
        16 => drop(check::<users::ConfirmBody>(body)),
        17 => drop(check::<users::StepUp>(body)),
        18 => drop(check::<users::ResetPassword>(body)),
        19 => drop(check::<mediavault_core::content::ContentInput>(body)),
        _ => {
            // The roster entry (inside `ImportBody`) is the one request type that also
            // serializes: it must come back as itself.
            if let Some(entry) = check::<RosterEntry>(body) {
                let again = serde_json::to_vec(&entry).unwrap_or_default();
                assert_eq!(
                    serde_json::from_slice::<RosterEntry>(&again).ok(),
                    Some(entry)
                );
            }
        }
    }
});
