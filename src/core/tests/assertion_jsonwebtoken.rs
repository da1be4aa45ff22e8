//! The `jsonwebtoken` crate (ring underneath, an implementation no one here wrote) must
//! accept the gateway's assertions with the key it finds in the gateway's JWKS, checking
//! signature, `aud`, `iss` and `exp`, and refuse any tampered or stale one.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use identity_core::assertion::{parse_claim_list, sign, AssertionSpec};
use identity_core::assertion_key::{AssertionKey, KeySet};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::Value;

const OLD: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgcJQy2JgoBOf2kW0g
A4wwi59ZNnDQBeXpDNvefY4lghChRANCAASZOum8TmVSjf/htu3nt735csuE22Ur
i8N02ZyhTcbi40HRqtMWz0uT4IeleAjrWVKZRdhqi2v3iCCBughMWF9V
-----END PRIVATE KEY-----
";
const NEW: &str = "-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIH2E4m/9g91z5990r+C8Oplb7xTyOWKfvkeKOG76vSPDoAoGCCqGSM49
AwEHoUQDQgAEknsHAPmEPxa+Z3QXBsUrPCDpscZEfOAUpqiuCq0GsRMfc06QVg6A
6uDi4EbI4WbBqJ3ucqEruL6VF9bKk+sP4A==
-----END EC PRIVATE KEY-----
";
const IDENTITY: &[u8] = br#"{"id":"u-17","roles":["admin","ops"],"level":3,"exp":1}"#;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn keys() -> KeySet {
    let mut set = KeySet::new(AssertionKey::from_pem(NEW.as_bytes()).unwrap());
    set.push(AssertionKey::from_pem(OLD.as_bytes()).unwrap())
        .unwrap();
    set
}

fn spec() -> AssertionSpec {
    AssertionSpec {
        audience: Some("orders".into()),
        claims: Some(parse_claim_list("id,roles,level").unwrap()),
        ..Default::default()
    }
}

/// What a business service does: find the token's kid in the JWKS, verify.
fn verify(jwks: &str, token: &str, audience: &str, issuer: &str) -> Result<Value, ErrorKind> {
    let set: JwkSet = serde_json::from_str(jwks).unwrap();
    let header = decode_header(token).map_err(|e| e.into_kind())?;
    let kid = header.kid.ok_or(ErrorKind::InvalidToken)?;
    let jwk = set.find(&kid).ok_or(ErrorKind::InvalidToken)?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.into_kind())?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    validation.leeway = 0;
    decode::<Value>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|e| e.into_kind())
}

#[test]
fn jsonwebtoken_accepts_assertions_from_every_published_key() {
    let set = keys();
    let jwks = set.jwks();
    for signer in set.keys() {
        let a = sign(signer, &spec(), IDENTITY, now()).unwrap();
        assert_eq!(
            decode_header(&a.token).unwrap().kid.as_deref(),
            Some(signer.kid())
        );
        let claims = verify(&jwks, &a.token, "orders", "ngx-identity").unwrap();
        assert_eq!(claims["sub"], "u-17");
        assert_eq!(claims["roles"], serde_json::json!(["admin", "ops"]));
        assert_eq!(claims["level"], 3);
        assert_eq!(claims["exp"].as_i64().unwrap(), a.exp);
    }
}

#[test]
fn jsonwebtoken_refuses_tampered_and_stale_assertions() {
    let set = keys();
    let jwks = set.jwks();
    let signer = set.signing();
    let token = sign(signer, &spec(), IDENTITY, now()).unwrap().token;
    let parts: Vec<&str> = token.split('.').collect();

    // Another subject in the same signed envelope.
    let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let forged = URL_SAFE_NO_PAD.encode(payload.replace("u-17", "u-18"));
    let forged = format!("{}.{forged}.{}", parts[0], parts[2]);
    assert_eq!(
        verify(&jwks, &forged, "orders", "ngx-identity"),
        Err(ErrorKind::InvalidSignature)
    );

    // One bit of the signature flipped.
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    sig[10] ^= 1;
    let flipped = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(sig));
    assert_eq!(
        verify(&jwks, &flipped, "orders", "ngx-identity"),
        Err(ErrorKind::InvalidSignature)
    );

    // Claimed to come from the other published key.
    let old_kid = set.keys()[1].kid();
    let header = format!(r#"{{"alg":"ES256","typ":"JWT","kid":"{old_kid}"}}"#);
    let rekeyed = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        parts[1],
        parts[2]
    );
    assert_eq!(
        verify(&jwks, &rekeyed, "orders", "ngx-identity"),
        Err(ErrorKind::InvalidSignature)
    );

    // Valid, but for another service, from another issuer, or too old.
    assert_eq!(
        verify(&jwks, &token, "billing", "ngx-identity"),
        Err(ErrorKind::InvalidAudience)
    );
    assert_eq!(
        verify(&jwks, &token, "orders", "someone-else"),
        Err(ErrorKind::InvalidIssuer)
    );
    let stale = sign(signer, &spec(), IDENTITY, now() - 3600).unwrap().token;
    assert_eq!(
        verify(&jwks, &stale, "orders", "ngx-identity"),
        Err(ErrorKind::ExpiredSignature)
    );

    // A verifier that only knows the old key cannot be fooled by the new one.
    let old_only = r#"{"keys":[]}"#.replace("[]", &format!("[{}]", set.keys()[1].public_jwk()));
    assert_eq!(
        verify(&old_only, &token, "orders", "ngx-identity"),
        Err(ErrorKind::InvalidToken)
    );
}
