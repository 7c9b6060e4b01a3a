//! Client certificates as identities (mutual TLS for publishing tools): the SHA-256 fingerprint
//! of a certificate's DER, which is what a tool is bound to, and its subject, for people to read.
//!
//! The fingerprint names one exact certificate, not a subject: a CA that issues a second
//! certificate with the same subject does not thereby pass as the bound tool, and reissuing a
//! tool's certificate means binding it again (on purpose: someone decides).

use std::fmt;

use super::{ct_eq, sha256};

/// Subjects longer than this are cut: they end up in audit entries and views.
const SUBJECT_MAX: usize = 256;

/// SHA-256 of a certificate's DER encoding.
///
/// No `PartialEq`: whether a presented certificate is the bound one is decided by
/// [`CertFingerprint::matches`], in constant time, and nowhere else.
#[derive(Clone, Copy)]
pub struct CertFingerprint([u8; 32]);

impl CertFingerprint {
    pub fn of_der(der: &[u8]) -> Self {
        Self(sha256(der))
    }

    /// From stored bytes; None unless exactly 32.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex, as `openssl x509 -noout -fingerprint -sha256` prints it without colons.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Constant-time: a caller probing with certificates of their own learns nothing from timing.
    pub fn matches(&self, other: &CertFingerprint) -> bool {
        ct_eq(&self.0, &other.0)
    }
}

/// A fingerprint is public (it is printed by every TLS tool); `Debug` shows it for diagnosis.
impl fmt::Debug for CertFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertFingerprint({})", self.to_hex())
    }
}

/// A certificate as the vault names it: fingerprint and subject.
#[derive(Debug, Clone)]
pub struct CertIdentity {
    pub fingerprint: CertFingerprint,
    /// The subject distinguished name (`CN=…, O=…`), cut at 256 characters; empty if it could
    /// not be read.
    pub subject: String,
}

/// Why a certificate given by an admin was refused. Never quotes the input: a private key pasted
/// by mistake must not travel on in an error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("no PEM certificate (-----BEGIN CERTIFICATE-----) found")]
    NoCertificate,
    #[error("more than one certificate given: give only the tool's own certificate, not a chain")]
    SeveralCertificates,
    #[error(
        "the PEM text contains a private key: give only the tool's certificate, and treat that key as disclosed"
    )]
    PrivateKey,
    #[error("the certificate is not a valid X.509 certificate")]
    Malformed,
}

impl CertIdentity {
    /// The certificate a TLS connection presented. rustls has already verified it against the
    /// configured CA, so it parses; should its subject not, the fingerprint still identifies it.
    pub fn of_peer(der: &[u8]) -> Self {
        Self {
            fingerprint: CertFingerprint::of_der(der),
            subject: subject_of(der).unwrap_or_default(),
        }
    }

    /// One certificate in PEM, as an admin gives it when binding a tool.
    pub fn from_pem(pem: &str) -> Result<Self, CertError> {
        let mut found = None;
        for block in x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes()) {
            let block = block.map_err(|_| CertError::Malformed)?;
            if block.label.contains("PRIVATE KEY") {
                return Err(CertError::PrivateKey);
            }
            if block.label != "CERTIFICATE" {
                continue;
            }
            if found.is_some() {
                return Err(CertError::SeveralCertificates);
            }
            found = Some(block.contents);
        }
        let der = found.ok_or(CertError::NoCertificate)?;
        let subject = subject_of(&der).ok_or(CertError::Malformed)?;
        Ok(Self {
            fingerprint: CertFingerprint::of_der(&der),
            subject,
        })
    }
}

impl CertIdentity {
    /// A certificate in DER that a trusted party (the TLS gateway) verified and passed on: it
    /// must parse as one whole X.509 certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, CertError> {
        let subject = subject_of(der).ok_or(CertError::Malformed)?;
        Ok(Self {
            fingerprint: CertFingerprint::of_der(der),
            subject,
        })
    }
}

/// The subject of a DER certificate, or None if it does not parse as one (trailing bytes included).
fn subject_of(der: &[u8]) -> Option<String> {
    match x509_parser::parse_x509_certificate(der) {
        Ok(([], cert)) => Some(
            cert.subject()
                .to_string()
                .chars()
                .take(SUBJECT_MAX)
                .collect(),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_match_only_themselves() {
        let a = CertFingerprint::of_der(b"a");
        let b = CertFingerprint::of_der(b"b");
        assert!(a.matches(&CertFingerprint::of_der(b"a")));
        assert!(!a.matches(&b));
        assert!(CertFingerprint::from_bytes(&[0; 31]).is_none());
        let back = CertFingerprint::from_bytes(a.as_bytes()).map(|f| f.to_hex());
        assert_eq!(back, Some(a.to_hex()));
    }

    #[test]
    fn pem_refusals_never_panic() {
        assert_eq!(
            CertIdentity::from_pem("").map(|_| ()),
            Err(CertError::NoCertificate)
        );
        let key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert_eq!(
            CertIdentity::from_pem(key).map(|_| ()),
            Err(CertError::PrivateKey)
        );
        let junk = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert_eq!(
            CertIdentity::from_pem(junk).map(|_| ()),
            Err(CertError::Malformed)
        );
        assert_eq!(CertIdentity::of_peer(b"junk").subject, "");
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Whatever an admin pastes (inside PEM armour or not) is refused or read, never a
            /// panic; a refusal never carries the text.
            #[test]
            fn any_text_is_read_or_refused_without_panic(
                body in "\\PC{0,200}",
                armoured in any::<bool>(),
                label in prop::sample::select(vec!["CERTIFICATE", "PRIVATE KEY", "X"]),
            ) {
                let text = if armoured {
                    format!("-----BEGIN {label}-----\n{body}\n-----END {label}-----\n")
                } else {
                    body.clone()
                };
                if let Err(e) = CertIdentity::from_pem(&text) {
                    prop_assert!(body.len() < 8 || !e.to_string().contains(&body));
                }
                let _ = CertIdentity::of_peer(body.as_bytes());
            }
        }
    }
}
