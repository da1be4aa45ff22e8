//! Signing keys for identity assertions: EC P-256 private keys read from PEM, their key id
//! (the RFC 7638 JWK thumbprint) and the JWKS document (RFC 7517) that publishes them.
//!
//! Crates: `ring` signs; RustCrypto's `p256` (with `sec1`) reads and checks the key files and
//! derives the public key, at configuration time only. Both are constant-time, so speed
//! decided: on the 2-core build machine (AMD EPYC), ring's ES256 signature cost 21 µs of CPU,
//! p256's 185 µs (100 000 signatures each). ring hedges its nonces (the key, the message
//! and fresh randomness), so a weak random number generator does not leak the key; p256's
//! RFC 6979 nonces would have made whole tokens reproducible, which no test needs (the
//! vectors check header and payload byte for byte and the signature by verification).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::elliptic_curve::zeroize::Zeroizing;
use p256::pkcs8::der::Decode;
use p256::pkcs8::{ObjectIdentifier, PrivateKeyInfo};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use sha2::{Digest, Sha256};

/// id-ecPublicKey (RFC 5480): the PKCS#8 algorithm of every EC key.
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// secp256r1 = P-256 = prime256v1.
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");

/// Why a signing key file is refused (`nginx -t` prints it after the file's name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("holds no PEM block")]
    NoPem,
    #[error("holds a malformed PEM block")]
    Pem,
    #[error("holds an encrypted private key (write it unencrypted: openssl pkey -in FILE)")]
    Encrypted,
    #[error("holds a \"{0}\" block, not an EC P-256 \"PRIVATE KEY\" or \"EC PRIVATE KEY\"")]
    Label(String),
    #[error("holds more than one private key")]
    SeveralKeys,
    #[error("holds a private key that is not an elliptic-curve key")]
    NotEc,
    #[error("holds a key on curve {0}, not P-256 (prime256v1)")]
    WrongCurve(String),
    #[error("holds an EC key that names no curve")]
    NoCurve,
    #[error("holds a malformed or invalid EC private key")]
    Malformed,
}

/// One assertion key: the private key, its kid and its public JWK, computed once.
pub struct AssertionKey {
    key: EcdsaKeyPair,
    kid: String,
    /// The JWS protected header, base64url: `{"alg":"ES256","typ":"JWT","kid":"…"}`.
    header_b64: String,
    /// The public JWK members in the order a JWKS lists them.
    jwk: serde_json::Value,
}

impl AssertionKey {
    /// Reads a PEM file's bytes: one `PRIVATE KEY` (PKCS#8, what `openssl genpkey` writes) or
    /// `EC PRIVATE KEY` (SEC1) block on P-256. `EC PARAMETERS` blocks (`openssl ecparam
    /// -genkey` writes one) and text around the blocks are ignored.
    pub fn from_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let mut key = None;
        let mut found_block = false;
        for block in pem_blocks(pem) {
            found_block = true;
            let (label, der) =
                p256::pkcs8::der::pem::decode_vec(block).map_err(|_| KeyError::Pem)?;
            let der = Zeroizing::new(der);
            let secret = match label {
                "EC PARAMETERS" => continue,
                "PRIVATE KEY" => from_pkcs8(&der)?,
                "EC PRIVATE KEY" => from_sec1(&der)?,
                "ENCRYPTED PRIVATE KEY" => return Err(KeyError::Encrypted),
                other => return Err(KeyError::Label(other.to_string())),
            };
            if key.replace(secret).is_some() {
                return Err(KeyError::SeveralKeys);
            }
        }
        match key {
            Some(secret) => Self::new(&secret),
            None if found_block => Err(KeyError::Label("EC PARAMETERS".into())),
            None => Err(KeyError::NoPem),
        }
    }

    fn new(secret: &p256::SecretKey) -> Result<Self, KeyError> {
        let point = secret.public_key().to_encoded_point(false);
        let scalar = Zeroizing::new(secret.to_bytes());
        let key = EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &scalar,
            point.as_bytes(),
            &SystemRandom::new(),
        )
        .map_err(|_| KeyError::Malformed)?;
        // An uncompressed point always has both coordinates.
        let (Some(x), Some(y)) = (point.x(), point.y()) else {
            return Err(KeyError::Malformed);
        };
        let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
        let kid = thumbprint(&x, &y);
        let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": kid});
        let jwk = serde_json::json!({
            "kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256", "use": "sig",
        });
        Ok(AssertionKey {
            key,
            header_b64: URL_SAFE_NO_PAD.encode(header.to_string()),
            kid,
            jwk,
        })
    }

    /// The key id: the RFC 7638 JWK thumbprint (SHA-256, base64url without padding).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public JWK as compact JSON: kty, crv, x, y, kid, alg, use.
    pub fn public_jwk(&self) -> String {
        self.jwk.to_string()
    }

    /// The base64url JWS protected header every assertion of this key carries.
    pub(crate) fn header_b64(&self) -> &str {
        &self.header_b64
    }

    pub(crate) fn key_pair(&self) -> &EcdsaKeyPair {
        &self.key
    }
}

/// The `identity_assertion_key` list: the first key signs, every key is published.
pub struct KeySet {
    keys: Vec<AssertionKey>,
}

impl KeySet {
    /// Adds a key after the others; the same key twice is refused (returns its kid).
    pub fn push(&mut self, key: AssertionKey) -> Result<(), String> {
        if self.keys.iter().any(|k| k.kid == key.kid) {
            return Err(key.kid);
        }
        self.keys.push(key);
        Ok(())
    }

    pub fn new(first: AssertionKey) -> Self {
        KeySet { keys: vec![first] }
    }

    /// The key that signs: the first configured.
    pub fn signing(&self) -> &AssertionKey {
        &self.keys[0]
    }

    pub fn keys(&self) -> &[AssertionKey] {
        &self.keys
    }

    /// The JWKS document (RFC 7517 section 5), every key in configuration order.
    pub fn jwks(&self) -> String {
        let keys: Vec<&serde_json::Value> = self.keys.iter().map(|k| &k.jwk).collect();
        serde_json::json!({ "keys": keys }).to_string()
    }
}

/// Whether a key file's permission bits are acceptable: nothing for others (the owner and
/// its group may read it), the same rule as the sealed cookie key ring.
pub fn key_file_mode_ok(mode: u32) -> bool {
    mode & 0o007 == 0
}

/// RFC 7638: SHA-256 of the required members in lexicographic order, no whitespace.
fn thumbprint(x_b64: &str, y_b64: &str) -> String {
    // base64url text needs no JSON escaping.
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x_b64}","y":"{y_b64}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// Each `-----BEGIN …-----` … `-----END …-----` span of the text, in order.
fn pem_blocks(pem: &[u8]) -> impl Iterator<Item = &[u8]> {
    const BEGIN: &[u8] = b"-----BEGIN ";
    const END: &[u8] = b"-----END ";
    let mut rest = pem;
    core::iter::from_fn(move || {
        let start = find(rest, BEGIN)?;
        let block = &rest[start..];
        // An unterminated block is handed over whole: the decoder refuses it.
        let len = find(block, END)
            .and_then(|e| {
                let close = find(&block[e + END.len()..], b"-----")?;
                Some(e + END.len() + close + 5)
            })
            .unwrap_or(block.len());
        rest = &block[len..];
        Some(&block[..len])
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn check_curve(curve: Option<ObjectIdentifier>) -> Result<(), KeyError> {
    match curve {
        Some(P256) => Ok(()),
        Some(oid) => Err(KeyError::WrongCurve(curve_name(oid))),
        None => Err(KeyError::NoCurve),
    }
}

fn curve_name(oid: ObjectIdentifier) -> String {
    match oid.to_string().as_str() {
        "1.3.132.0.34" => "P-384".into(),
        "1.3.132.0.35" => "P-521".into(),
        "1.3.132.0.10" => "secp256k1".into(),
        other => other.into(),
    }
}

fn from_pkcs8(der: &[u8]) -> Result<p256::SecretKey, KeyError> {
    let info = PrivateKeyInfo::from_der(der).map_err(|_| KeyError::Malformed)?;
    if info.algorithm.oid != EC_PUBLIC_KEY {
        return Err(KeyError::NotEc);
    }
    check_curve(info.algorithm.parameters_oid().ok())?;
    p256::SecretKey::try_from(info).map_err(|_| KeyError::Malformed)
}

fn from_sec1(der: &[u8]) -> Result<p256::SecretKey, KeyError> {
    let key = sec1::EcPrivateKey::from_der(der).map_err(|_| KeyError::Malformed)?;
    // `p256` does not look at a SEC1 key's curve: a secp256k1 scalar would load as P-256.
    check_curve(key.parameters.and_then(|p| p.named_curve()))?;
    p256::SecretKey::try_from(key).map_err(|_| KeyError::Malformed)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`.
    pub(crate) const PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg35xn1W+ZKfGiGZFA
G4NeB8SgQfuhDN9ZfDlcrdh5Lx+hRANCAATEKJGwCsAIkrCzH4MKy1G/I7ZZ+GMA
0ZFNmzZbVd5q2UbRhCYg+JcsMmKPmAgdf2iMKQwtN21f7fp5DJpnu0hF
-----END PRIVATE KEY-----
";
    /// The same key as SEC1 (`openssl ec -in pkcs8.pem`).
    const SEC1: &str = "-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIN+cZ9VvmSnxohmRQBuDXgfEoEH7oQzfWXw5XK3YeS8foAoGCCqGSM49
AwEHoUQDQgAExCiRsArACJKwsx+DCstRvyO2WfhjANGRTZs2W1XeatlG0YQmIPiX
LDJij5gIHX9ojCkMLTdtX+36eQyaZ7tIRQ==
-----END EC PRIVATE KEY-----
";
    /// Its kid and coordinates, computed by Python's `cryptography` and hashlib.
    pub(crate) const KID: &str = "i02Mp29UD849dE2wlPTmjw7AlSsBUnE4033-BPDNZWU";
    const X: &str = "xCiRsArACJKwsx-DCstRvyO2WfhjANGRTZs2W1Xeatk";
    const Y: &str = "RtGEJiD4lywyYo-YCB1_aIwpDC03bV_t-nkMmme7SEU";

    pub(crate) const PKCS8_B: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg0+pcFTM/rEXdc0Nn
CkR8XveBjI3hB2iSHLAmjbPSvQahRANCAATsdiirQC3Mta4ZkuNdhpKITqG6HfvI
e6fqMqvwsfGQYvdddh2BTCpINN26rF+Mrfhk1yfl0U3mer6ToQh5D4CR
-----END PRIVATE KEY-----
";
    const KID_B: &str = "OxuenIjM5z-X6zix9MHpqffDrjS7N-CbV4JvIf3wF9U";

    pub(crate) fn key(pem: &str) -> AssertionKey {
        AssertionKey::from_pem(pem.as_bytes()).unwrap()
    }

    #[test]
    fn rfc_9449_thumbprint_vector() {
        // RFC 9449 figure 4's P-256 JWK and the jkt its figure 10 gives for it.
        assert_eq!(
            thumbprint(
                "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
                "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA"
            ),
            "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
        );
    }

    #[test]
    fn pkcs8_and_sec1_give_the_same_key() {
        for pem in [PKCS8, SEC1, &SEC1.replace('\n', "\r\n")] {
            let k = key(pem);
            assert_eq!(k.kid(), KID);
            assert_eq!(
                k.public_jwk(),
                format!(
                    r#"{{"kty":"EC","crv":"P-256","x":"{X}","y":"{Y}","kid":"{KID}","alg":"ES256","use":"sig"}}"#
                )
            );
        }
        // `openssl ecparam -genkey` puts the curve in a block of its own first.
        let with_params = format!(
            "some text\n-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n{SEC1}"
        );
        assert_eq!(key(&with_params).kid(), KID);
    }

    #[test]
    fn jwks_lists_every_key_first_first() {
        let mut set = KeySet::new(key(PKCS8_B));
        set.push(key(PKCS8)).unwrap();
        assert_eq!(set.push(key(SEC1)).unwrap_err(), KID);
        assert_eq!(set.signing().kid(), KID_B);
        let jwks: serde_json::Value = serde_json::from_str(&set.jwks()).unwrap();
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(kids, [KID_B, KID]);
        assert!(set
            .jwks()
            .starts_with(r#"{"keys":[{"kty":"EC","crv":"P-256","x":""#));
    }

    #[test]
    fn other_files_are_refused() {
        let err = |pem: &str| AssertionKey::from_pem(pem.as_bytes()).err().unwrap();
        // secp256k1 in both forms: p256 alone would take the SEC1 one as a P-256 scalar.
        let k1_pkcs8 = "-----BEGIN PRIVATE KEY-----
MIGEAgEAMBAGByqGSM49AgEGBSuBBAAKBG0wawIBAQQgNDcLO3EDG91NpC/9hRQt
KhNMvnPS3uuqS7rD/G4XbnahRANCAATFjbgAOyBXZcBtdHGEz94+J/UF8E90st2R
1Plw40yw6lM7/Xlb2MJYYdf99EJJrTs0smIAdpa3fcCKS0i1VIBP
-----END PRIVATE KEY-----";
        let k1_sec1 = "-----BEGIN EC PRIVATE KEY-----
MHQCAQEEIDQ3CztxAxvdTaQv/YUULSoTTL5z0t7rqku6w/xuF252oAcGBSuBBAAK
oUQDQgAExY24ADsgV2XAbXRxhM/ePif1BfBPdLLdkdT5cONMsOpTO/15W9jCWGHX
/fRCSa07NLJiAHaWt33AiktItVSATw==
-----END EC PRIVATE KEY-----";
        let k1 = KeyError::WrongCurve("secp256k1".into());
        assert_eq!(err(k1_pkcs8), k1);
        assert_eq!(err(k1_sec1), k1);
        let p384 = "-----BEGIN PRIVATE KEY-----
MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDABj1K5GVhRQ2NyZM5Q
s+TrHQ7sEu3DhznT+Z4GVxHuNBbhzY20HNqbIgqsHGTIBaqhZANiAAR0QMansNAR
D5uaouxQXYkS7HuS3/WlHTzaorHnNc8wAZDXAGPW3bWPYeQLEQHMQH9Akurk+GNl
5PWn1WMJv4PfdIlbPc8rkWfYFXuiGQPkhBXYA8vs9g2gY6psbubXkK8=
-----END PRIVATE KEY-----";
        assert_eq!(err(p384), KeyError::WrongCurve("P-384".into()));
        let ed25519 = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEILv0y4jQ/pF46lWRjzJsVA0oAtR5ja6hnHLw2nkR6qOS
-----END PRIVATE KEY-----";
        assert_eq!(err(ed25519), KeyError::NotEc);
        // The SEC1 key above without its curve (RFC 5915 lets PKCS#8 carry it instead).
        let no_curve = "-----BEGIN EC PRIVATE KEY-----
MCUCAQEEIN+cZ9VvmSnxohmRQBuDXgfEoEH7oQzfWXw5XK3YeS8f
-----END EC PRIVATE KEY-----";
        assert_eq!(err(no_curve), KeyError::NoCurve);
        let public = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAExCiRsArACJKwsx+DCstRvyO2Wfhj
ANGRTZs2W1XeatlG0YQmIPiXLDJij5gIHX9ojCkMLTdtX+36eQyaZ7tIRQ==
-----END PUBLIC KEY-----";
        assert_eq!(err(public), KeyError::Label("PUBLIC KEY".into()));
        let encrypted =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIHs\n-----END ENCRYPTED PRIVATE KEY-----";
        assert_eq!(err(encrypted), KeyError::Encrypted);
        assert_eq!(err(&format!("{PKCS8}{PKCS8_B}")), KeyError::SeveralKeys);
        assert_eq!(err(""), KeyError::NoPem);
        assert_eq!(err("xCiRsArACJKwsx"), KeyError::NoPem);
        let params_only =
            "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n";
        assert_eq!(err(params_only), KeyError::Label("EC PARAMETERS".into()));
        assert_eq!(err(&PKCS8.replace("MIGH", "MIG!")), KeyError::Pem);
        assert_eq!(err(&PKCS8[..120]), KeyError::Pem);
        // Valid PEM and DER, but the scalar is the curve order n: not a private key.
        let n = "-----BEGIN EC PRIVATE KEY-----
MDECAQEEIP////8AAAAA//////////+85vqtpxeehPO5ysL8YyVRoAoGCCqGSM49
AwEH
-----END EC PRIVATE KEY-----";
        assert_eq!(err(n), KeyError::Malformed);
    }

    #[test]
    fn key_file_modes() {
        assert!(key_file_mode_ok(0o100600));
        assert!(key_file_mode_ok(0o100640));
        assert!(key_file_mode_ok(0o100400));
        assert!(!key_file_mode_ok(0o100644));
        assert!(!key_file_mode_ok(0o100602));
        assert!(!key_file_mode_ok(0o100601));
    }
}
