//! Round trips and rejections of [`Envelope`] under both acceptances.

use super::*;
use crate::pae;

fn read(text: &str, acceptance: Acceptance) -> Result<Envelope, EnvelopeError> {
    Envelope::from_json(text.as_bytes(), acceptance)
}

fn refusal(text: &str, acceptance: Acceptance) -> String {
    match read(text, acceptance) {
        Ok(e) => panic!("accepted under {acceptance:?}: {e:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn writes_the_compact_form_and_reads_it_back_under_both_acceptances() {
    let env = Envelope::new(
        "application/vnd.in-toto+json",
        b"{\"a\":1}",
        vec![EnvelopeSignature::new("k1", &[1, 2, 3])],
    );
    let text = String::from_utf8(env.to_json().unwrap()).unwrap();
    assert_eq!(
        text,
        r#"{"payloadType":"application/vnd.in-toto+json","payload":"eyJhIjoxfQ==","signatures":[{"keyid":"k1","sig":"AQID"}]}"#
    );
    for acceptance in [Acceptance::Strict, Acceptance::Dsse] {
        let back = read(&text, acceptance).unwrap();
        assert_eq!(back, env);
        assert_eq!(back.decode_payload(acceptance).unwrap(), b"{\"a\":1}");
        assert_eq!(
            back.decode_signatures(acceptance).unwrap(),
            vec![vec![1, 2, 3]]
        );
    }
    // serde's Deserialize is the strict reading.
    let via_serde: Envelope = serde_json::from_str(&text).unwrap();
    assert_eq!(via_serde, env);
    assert_eq!(env.payload_bytes().unwrap(), b"{\"a\":1}");
}

#[test]
fn reads_an_envelope_shaped_like_the_dsse_specification_example() {
    // secure-systems-lab/dsse, protocol.md (v1.0.0), "Test Vectors": the result envelope has
    // `payload`, `payloadType` and `signatures` with a `sig` and no `keyid` (lines 136-160).
    // Written out here in that shape, with a signature of our own.
    let text = r#"{"payload": "aGVsbG8gd29ybGQ=",
 "payloadType": "http://example.com/HelloWorld",
 "signatures": [{"sig": "AAECAw=="}]}"#;
    let env = read(text, Acceptance::Dsse).unwrap();
    let payload = env.decode_payload(Acceptance::Dsse).unwrap();
    assert_eq!(payload, b"hello world");
    assert_eq!(
        pae(&env.payload_type, &payload),
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
    );
    assert_eq!(env.signatures[0].keyid_hint(), None);
    assert_eq!(env.signatures[0].keyid, "");
    assert_eq!(
        env.decode_signatures(Acceptance::Dsse).unwrap(),
        vec![vec![0, 1, 2, 3]]
    );
    // A strict reader requires the key id.
    assert!(refusal(text, Acceptance::Strict).contains("missing field `keyid`"));
}

#[test]
fn dsse_acceptance_takes_what_other_signers_may_write() {
    let text = r#"{"payloadType":"t","payload":"aGk","signatures":[
        {"keyid":null,"sig":"-_8"},{"sig":"+/8=","extension":{"x":1}},{"keyid":"k","sig":""}],
        "comment":"ignored"}"#;
    let env = read(text, Acceptance::Dsse).unwrap();
    assert_eq!(env.decode_payload(Acceptance::Dsse).unwrap(), b"hi");
    assert_eq!(
        env.signatures
            .iter()
            .map(|s| s.keyid_hint())
            .collect::<Vec<_>>(),
        vec![None, None, Some("k")]
    );
    // URL-safe unpadded and standard padded both decode; an empty signature is empty bytes.
    assert_eq!(
        env.decode_signatures(Acceptance::Dsse).unwrap(),
        vec![vec![0xfb, 0xff], vec![0xfb, 0xff], vec![]]
    );
    // The strict acceptance names the first field it does not know.
    let err = refusal(text, Acceptance::Strict);
    assert!(
        err.contains("invalid type: null, expected a string"),
        "{err}"
    );
    // An envelope without signatures is an envelope (an unsigned one).
    let unsigned = read(
        r#"{"payloadType":"t","payload":"","signatures":[]}"#,
        Acceptance::Strict,
    );
    assert!(unsigned.unwrap().signatures.is_empty());
}

#[test]
fn strict_acceptance_names_unknown_and_missing_fields() {
    let err = refusal(
        r#"{"payloadType":"t","payload":"","signatures":[],"extra":1}"#,
        Acceptance::Strict,
    );
    assert!(
        err.starts_with("not a DSSE envelope: unknown field `extra`, expected one of `payloadType`, `payload`, `signatures`"),
        "{err}"
    );
    let err = refusal(
        r#"{"payloadType":"t","payload":"","signatures":[{"keyid":"k","sig":"","x":0}]}"#,
        Acceptance::Strict,
    );
    assert!(
        err.contains("unknown field `x`, expected `keyid` or `sig`"),
        "{err}"
    );
}

#[test]
fn both_acceptances_refuse_what_is_not_an_envelope() {
    let cases = [
        ("not json", "at line 1 column 2"),
        (
            "[]",
            "invalid type: sequence, expected a DSSE envelope (a JSON object)",
        ),
        (r#"["t","",[]]"#, "expected a DSSE envelope"),
        (
            r#"{"payload":"","signatures":[]}"#,
            "missing field `payloadType`",
        ),
        (
            r#"{"payloadType":"t","signatures":[]}"#,
            "missing field `payload`",
        ),
        (
            r#"{"payloadType":"t","payload":""}"#,
            "missing field `signatures`",
        ),
        (
            r#"{"payloadType":"t","payload":"","signatures":[{"keyid":"k"}]}"#,
            "missing field `sig`",
        ),
        (
            r#"{"payloadType":1,"payload":"","signatures":[]}"#,
            "invalid type: integer `1`, expected a string",
        ),
        (
            r#"{"payloadType":"t","payload":"","signatures":{}}"#,
            "expected an array of DSSE signatures",
        ),
        (
            r#"{"payloadType":"t","payload":"","signatures":["x"]}"#,
            "expected a DSSE signature (a JSON object)",
        ),
        (
            r#"{"payloadType":"t","payload":"","payload":"","signatures":[]}"#,
            "duplicate field `payload`",
        ),
        (
            r#"{"payloadType":"t","payload":"","signatures":[{"keyid":"a","keyid":"b","sig":""}]}"#,
            "duplicate field `keyid`",
        ),
        (
            r#"{"payloadType":"t","payload":"","signatures":[]} {}"#,
            "trailing characters",
        ),
    ];
    for (text, want) in cases {
        for acceptance in [Acceptance::Strict, Acceptance::Dsse] {
            let err = read(text, acceptance).unwrap_err();
            assert!(matches!(err, EnvelopeError::Json(_)), "{text}: {err:?}");
            let message = err.to_string();
            assert!(message.starts_with("not a DSSE envelope: "), "{message}");
            assert!(
                message.contains(want),
                "{text} under {acceptance:?}: {message}"
            );
        }
    }
}

#[test]
fn base64_is_canonical_when_strict_and_either_alphabet_under_dsse() {
    let env = |payload: &str, sig: &str| Envelope {
        payload_type: "t".into(),
        payload: payload.into(),
        signatures: vec![EnvelopeSignature {
            keyid: "k".into(),
            sig: sig.into(),
        }],
    };
    // "YWI=" is "ab"; "YWI" (no padding) and "-_8" (URL-safe) are DSSE-only.
    assert_eq!(env("YWI=", "").payload_bytes().unwrap(), b"ab");
    for text in ["YWI", "-_8"] {
        let e = env(text, "");
        assert!(
            matches!(e.payload_bytes(), Err(EnvelopeError::Payload(_))),
            "{text}"
        );
        assert!(e.decode_payload(Acceptance::Dsse).is_ok(), "{text}");
    }
    // Non-zero unused bits ("YWJ=" would also be "ab") and mixed alphabets: refused by both.
    for text in ["YWJ=", "+_8", "not base64!"] {
        for acceptance in [Acceptance::Strict, Acceptance::Dsse] {
            let err = env(text, "").decode_payload(acceptance).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with("the payload is not valid base64: "),
                "{text}: {err}"
            );
        }
    }
    // The signature that does not decode is named by its position.
    let mut two = env("", "AQID");
    two.signatures.push(EnvelopeSignature {
        keyid: "k2".into(),
        sig: "AQI".into(),
    });
    assert!(two.decode_signatures(Acceptance::Dsse).is_ok());
    let err = two.decode_signatures(Acceptance::Strict).unwrap_err();
    assert!(
        matches!(err, EnvelopeError::Signature { number: 2, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("signature 2 is not valid base64: "),
        "{err}"
    );
}
