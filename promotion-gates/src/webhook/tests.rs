//! Unit tests of the webhook gate.

use super::*;
use hmac::Mac;
use serde_json::json;
use std::time::UNIX_EPOCH;
use std::time::{Duration, SystemTime};
use url::Url;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn the_signature_is_hmac_sha256_over_timestamp_dot_body() {
    // Independent computation of the documented scheme.
    let mut m = HmacSha256::new_from_slice(b"key").unwrap();
    m.update(b"1700000000.{\"a\":1}");
    let expected = hex::encode(m.finalize().into_bytes());
    assert_eq!(
        sign(b"key", 1_700_000_000, b"{\"a\":1}"),
        format!("t=1700000000,v1={expected}")
    );
    // The primitive itself, against RFC 4231 test case 2.
    let mut m = HmacSha256::new_from_slice(b"Jefe").unwrap();
    m.update(b"what do ya want for nothing?");
    assert_eq!(
        hex::encode(m.finalize().into_bytes()),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[test]
fn verify_accepts_the_signature_within_tolerance_in_both_directions() {
    let h = sign(b"k", 1000, b"body");
    let tol = Duration::from_secs(300);
    assert_eq!(verify_signature(b"k", &h, b"body", at(1000), tol), Ok(1000));
    assert_eq!(verify_signature(b"k", &h, b"body", at(1300), tol), Ok(1000));
    assert_eq!(verify_signature(b"k", &h, b"body", at(700), tol), Ok(1000));
    assert_eq!(
        verify_signature(b"k", &h, b"body", at(1301), tol),
        Err(SignatureError::OutsideTolerance {
            timestamp: 1000,
            now: 1301,
            distance_secs: 301,
            tolerance_secs: 300
        })
    );
    assert!(matches!(
        verify_signature(b"k", &h, b"body", at(699), tol),
        Err(SignatureError::OutsideTolerance { .. })
    ));
}

#[test]
fn verify_rejects_changed_body_secret_or_timestamp() {
    let h = sign(b"k", 1000, b"body");
    let tol = Duration::from_secs(300);
    let now = at(1000);
    assert_eq!(
        verify_signature(b"k", &h, b"bodY", now, tol),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify_signature(b"K", &h, b"body", now, tol),
        Err(SignatureError::Mismatch)
    );
    // The same MAC under another timestamp: the timestamp is signed.
    let moved = h.replace("t=1000", "t=1001");
    assert_eq!(
        verify_signature(b"k", &moved, b"body", now, tol),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn verify_parses_the_header_strictly_but_ignores_unknown_keys() {
    let tol = Duration::from_secs(300);
    let now = at(1000);
    let good = sign(b"k", 1000, b"x");
    let v1 = good.split_once(",v1=").unwrap().1;
    // Unknown keys and several v1 values (one of them right) are fine, in any order.
    let header = format!("v0=abc, v1={}, t=1000 ,v1={v1}", "00".repeat(32));
    assert_eq!(verify_signature(b"k", &header, b"x", now, tol), Ok(1000));
    assert_eq!(
        verify_signature(b"k", &format!("v1={v1}"), b"x", now, tol),
        Err(SignatureError::MissingTimestamp)
    );
    assert_eq!(
        verify_signature(b"k", "t=1000", b"x", now, tol),
        Err(SignatureError::MissingSignature)
    );
    assert!(matches!(
        verify_signature(b"k", &format!("t=1000,t=1000,v1={v1}"), b"x", now, tol),
        Err(SignatureError::Malformed(m)) if m.contains("twice")
    ));
    assert!(matches!(
        verify_signature(b"k", &format!("t=-5,v1={v1}"), b"x", now, tol),
        Err(SignatureError::Malformed(m)) if m.contains("`-5`")
    ));
    assert!(matches!(
        verify_signature(b"k", "t=1000,v1=zz", b"x", now, tol),
        Err(SignatureError::Malformed(m)) if m.contains("not hex")
    ));
    assert!(matches!(
        verify_signature(b"k", "garbage", b"x", now, tol),
        Err(SignatureError::Malformed(m)) if m.contains("`garbage`")
    ));
    // A truncated MAC does not match.
    let short = format!("t=1000,v1={}", v1.get(..32).unwrap());
    assert_eq!(
        verify_signature(b"k", &short, b"x", now, tol),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn json_numbers_compare_by_value() {
    assert!(json_equal(&json!(1), &json!(1.0)));
    assert!(json_equal(&json!({"a": [1, 2.0]}), &json!({"a": [1.0, 2]})));
    assert!(!json_equal(&json!(1), &json!(2)));
    assert!(!json_equal(&json!(true), &json!("true")));
    assert!(!json_equal(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
    assert!(json_equal(&json!(-3), &json!(-3)));
    assert!(json_equal(&json!(u64::MAX), &json!(u64::MAX)));
    assert!(!json_equal(&json!(u64::MAX), &json!(u64::MAX - 1)));
}

#[test]
fn pointers_are_checked() {
    assert!(check_pointer("").is_ok());
    assert!(check_pointer("/a/b~0c~1d").is_ok());
    assert!(matches!(
        check_pointer("approved"),
        Err(WebhookConfigError::InvalidJsonPointer { problem, .. }) if problem.contains("start with")
    ));
    assert!(matches!(
        check_pointer("/a~2"),
        Err(WebhookConfigError::InvalidJsonPointer { .. })
    ));
    assert!(matches!(
        check_pointer("/a~"),
        Err(WebhookConfigError::InvalidJsonPointer { .. })
    ));
}

#[test]
fn passwords_in_urls_are_hidden() {
    let url = Url::parse("https://bot:hunter2@example.com/x").unwrap();
    assert_eq!(redact_url(&url), "https://bot:***@example.com/x");
    assert_eq!(
        redact_url_text("https://bot:hunter2@exa mple.com/x"),
        "https://***@exa mple.com/x"
    );
    let err = WebhookGate::builder("https://bot:hunter2@exa mple.com/x")
        .build()
        .unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    let gate = WebhookGate::builder("https://bot:hunter2@example.com/x")
        .build()
        .unwrap();
    assert_eq!(gate.url(), "https://bot:***@example.com/x");
    assert!(!format!("{gate:?}").contains("hunter2"));
}

#[test]
fn excerpts_are_cut_on_characters() {
    assert_eq!(excerpt("héllo", 2), "hé…");
    assert_eq!(excerpt("hé", 2), "hé");
}
