//! The age file format (age-encryption.org/v1) with X25519 recipients, on ring alone: what lets a
//! key share be handed to its custodian encrypted to the custodian's own key, which they open
//! with the standard `age` tool (`age -d -i key.txt share.age`; Debian package `age`).
//!
//! Only what the vault needs is here: encryption to one X25519 recipient (`age1…`, Bech32), the
//! ASCII armor, and decryption with a [`OneTimeIdentity`]: an X25519 key that lives only in this
//! process's memory and opens one file (ring's X25519 private keys are ephemeral by design, so
//! none can be read from a file; the server uses one to receive a rotated root key, see
//! `mediavault-core`'s `keys`). Scrypt (passphrase) stanzas, plugins and identity files are out.
//!
//! The construction, from the specification:
//!
//! - a random 16-byte file key;
//! - per X25519 recipient R: an ephemeral share E = X25519(e, basepoint), the shared secret
//!   S = X25519(e, R), wrap key = HKDF-SHA-256(ikm S, salt E ‖ R, info
//!   "age-encryption.org/v1/X25519"), and the stanza `-> X25519 base64(E)` whose body is the file
//!   key sealed with ChaCha20-Poly1305 under the wrap key and a zero nonce;
//! - the header MAC: HMAC-SHA-256 under HKDF-SHA-256(ikm file key, no salt, info "header"), over
//!   the header up to and including `---`;
//! - the payload: a 16-byte random nonce, then STREAM: the plaintext in 64 KiB chunks, each sealed
//!   with ChaCha20-Poly1305 under HKDF-SHA-256(ikm file key, salt nonce, info "payload"), with the
//!   11-byte big-endian chunk counter and a last-chunk flag byte as its nonce.
//!
//! Base64 in the header is the standard alphabet without padding, canonical; the armor is PEM-like
//! (`-----BEGIN AGE ENCRYPTED FILE-----`, padded base64 in 64-column lines).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use ring::aead::{self, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey, X25519};
use ring::{hkdf, hmac};
use zeroize::Zeroizing;

use super::{SecretBytes, ct_eq, random_bytes};

const VERSION_LINE: &str = "age-encryption.org/v1";
const X25519_INFO: &[u8] = b"age-encryption.org/v1/X25519";
const RECIPIENT_HRP: &str = "age";
const ARMOR_BEGIN: &str = "-----BEGIN AGE ENCRYPTED FILE-----";
const ARMOR_END: &str = "-----END AGE ENCRYPTED FILE-----";
const ARMOR_COLUMNS: usize = 64;
const STANZA_COLUMNS: usize = 64;
const FILE_KEY_LEN: usize = 16;
const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;

/// What can be wrong with a recipient or a file; never carries key or plaintext material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AgeError {
    #[error(
        "not an age recipient: {0} (an X25519 recipient is `age1` and 58 more characters, as `age-keygen` prints it)"
    )]
    BadRecipient(&'static str),
    #[error("not an age file: {0}")]
    Malformed(&'static str),
    #[error("the age file is not for this identity, or it was altered")]
    NoMatch,
    #[error("the age file was altered: {0}")]
    Altered(&'static str),
    #[error("the system random generator or X25519 failed")]
    Crypto,
}

/// An X25519 recipient: the custodian's public key, as `age-keygen` prints it (`age1…`).
#[derive(Clone, PartialEq, Eq)]
pub struct Recipient([u8; 32]);

impl std::fmt::Debug for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Recipient({self})")
    }
}

impl std::fmt::Display for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&bech32::encode(RECIPIENT_HRP, &self.0))
    }
}

impl std::str::FromStr for Recipient {
    type Err = AgeError;

    fn from_str(s: &str) -> Result<Self, AgeError> {
        Self::parse(s)
    }
}

impl Recipient {
    /// Reads `age1…` (Bech32, checksum checked: a mistyped character is caught); surrounding
    /// whitespace allowed.
    pub fn parse(text: &str) -> Result<Self, AgeError> {
        let text = text.trim();
        if text.to_ascii_lowercase().starts_with("age-secret-key-") {
            return Err(AgeError::BadRecipient(
                "that is a secret key (AGE-SECRET-KEY-…): give the public key, never the secret one",
            ));
        }
        if !text.to_ascii_lowercase().starts_with("age1") {
            return Err(AgeError::BadRecipient("it does not start with age1"));
        }
        let (hrp, data) = bech32::decode(text)?;
        if hrp != RECIPIENT_HRP {
            return Err(AgeError::BadRecipient("it does not start with age1"));
        }
        let key: [u8; 32] = data
            .try_into()
            .map_err(|_| AgeError::BadRecipient("wrong length (cut short or padded?)"))?;
        // A low-order point gives an all-zero shared secret, which ring refuses: found here, not
        // when a share is dealt to it.
        let rng = ring::rand::SystemRandom::new();
        let probe = EphemeralPrivateKey::generate(&X25519, &rng).map_err(|_| AgeError::Crypto)?;
        agreement::agree_ephemeral(probe, &UnparsedPublicKey::new(&X25519, key), |_| ())
            .map_err(|_| AgeError::BadRecipient("not a usable X25519 public key"))?;
        Ok(Self(key))
    }

    /// The raw X25519 public key.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Encrypts `plaintext` to `recipient`: the binary age file.
pub fn encrypt(recipient: &Recipient, plaintext: &[u8]) -> Result<Vec<u8>, AgeError> {
    let file_key = SecretBytes::random(FILE_KEY_LEN).map_err(|_| AgeError::Crypto)?;
    let rng = ring::rand::SystemRandom::new();
    let ephemeral = EphemeralPrivateKey::generate(&X25519, &rng).map_err(|_| AgeError::Crypto)?;
    let share = ephemeral
        .compute_public_key()
        .map_err(|_| AgeError::Crypto)?;
    let share: [u8; 32] = share.as_ref().try_into().map_err(|_| AgeError::Crypto)?;
    let wrap_key = agreement::agree_ephemeral(
        ephemeral,
        &UnparsedPublicKey::new(&X25519, recipient.0),
        |shared| x25519_wrap_key(shared, &share, &recipient.0),
    )
    // ring refuses a low-order point (an all-zero shared secret), as the specification asks.
    .map_err(|_| AgeError::BadRecipient("not a usable X25519 public key"))??;
    // Plaintext file key in this buffer only until it is sealed in place.
    let mut body = file_key.expose().to_vec();
    wrap_key
        .seal_in_place_append_tag(zero_nonce(), aead::Aad::empty(), &mut body)
        .map_err(|_| AgeError::Crypto)?;
    let mut header = format!(
        "{VERSION_LINE}\n-> X25519 {}\n",
        STANDARD_NO_PAD.encode(share)
    );
    header.push_str(&wrap_lines(&STANDARD_NO_PAD.encode(&body), STANZA_COLUMNS));
    header.push_str("---");
    let mac = header_mac(&file_key, header.as_bytes())?;
    header.push(' ');
    header.push_str(&STANDARD_NO_PAD.encode(mac.as_ref()));
    header.push('\n');

    let mut nonce = [0u8; 16];
    random_bytes(&mut nonce).map_err(|_| AgeError::Crypto)?;
    let payload_key = payload_key(&file_key, &nonce)?;
    let mut out = header.into_bytes();
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&stream_seal(&payload_key, plaintext)?);
    Ok(out)
}

/// Encrypts `plaintext` to `recipient` as an ASCII-armored age file (what `age -a` writes).
pub fn encrypt_armored(recipient: &Recipient, plaintext: &[u8]) -> Result<String, AgeError> {
    Ok(armor(&encrypt(recipient, plaintext)?))
}

/// The ASCII armor of a binary age file.
pub fn armor(file: &[u8]) -> String {
    let mut out = format!("{ARMOR_BEGIN}\n");
    let encoded = STANDARD.encode(file);
    for line in encoded.as_bytes().chunks(ARMOR_COLUMNS) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(ARMOR_END);
    out.push('\n');
    out
}

/// The binary age file inside an armor; whitespace around the armor is allowed, nothing else.
pub fn dearmor(text: &str) -> Result<Vec<u8>, AgeError> {
    let bad = AgeError::Malformed;
    let mut lines = text.trim().lines();
    if lines.next().map(str::trim_end) != Some(ARMOR_BEGIN) {
        return Err(bad("no -----BEGIN AGE ENCRYPTED FILE----- line"));
    }
    let body: Vec<&str> = lines.map(str::trim_end).collect();
    let Some((last, body)) = body.split_last() else {
        return Err(bad("no -----END AGE ENCRYPTED FILE----- line"));
    };
    if *last != ARMOR_END {
        return Err(bad("no -----END AGE ENCRYPTED FILE----- line"));
    }
    let Some((final_line, full)) = body.split_last() else {
        return Err(bad("an empty armor"));
    };
    if full.iter().any(|l| l.len() != ARMOR_COLUMNS)
        || final_line.is_empty()
        || final_line.len() > ARMOR_COLUMNS
    {
        return Err(bad("armor lines must be 64 columns, the last at most 64"));
    }
    let joined: String = body.concat();
    STANDARD
        .decode(joined)
        .map_err(|_| bad("the armor is not canonical base64"))
}

/// An X25519 identity made in this process's memory that decrypts one file (ring's X25519
/// private keys can be used once, and never leave the process). Its [`OneTimeIdentity::recipient`]
/// is what a sender encrypts to.
pub struct OneTimeIdentity {
    private: EphemeralPrivateKey,
    public: [u8; 32],
}

impl std::fmt::Debug for OneTimeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OneTimeIdentity({})", self.recipient())
    }
}

impl OneTimeIdentity {
    pub fn generate() -> Result<Self, AgeError> {
        let rng = ring::rand::SystemRandom::new();
        let private = EphemeralPrivateKey::generate(&X25519, &rng).map_err(|_| AgeError::Crypto)?;
        let public = private
            .compute_public_key()
            .map_err(|_| AgeError::Crypto)?
            .as_ref()
            .try_into()
            .map_err(|_| AgeError::Crypto)?;
        Ok(Self { private, public })
    }

    pub fn recipient(&self) -> Recipient {
        Recipient(self.public)
    }

    /// Decrypts a binary age file with exactly one X25519 stanza, using up the identity.
    pub fn decrypt(self, file: &[u8]) -> Result<SecretBytes, AgeError> {
        let header = Header::parse(file)?;
        let mut x25519 = header.stanzas.iter().filter(|s| s.kind == "X25519");
        let (Some(stanza), None) = (x25519.next(), x25519.next()) else {
            return Err(AgeError::Malformed(
                "a one-time identity opens a file with exactly one X25519 stanza",
            ));
        };
        let [share] = stanza.args.as_slice() else {
            return Err(AgeError::Malformed("an X25519 stanza takes one argument"));
        };
        let share: [u8; 32] = STANDARD_NO_PAD
            .decode(share)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(AgeError::Malformed("an X25519 share is 32 bytes"))?;
        if stanza.body.len() != FILE_KEY_LEN + TAG {
            return Err(AgeError::Malformed("an X25519 stanza body is 32 bytes"));
        }
        let public = self.public;
        let wrap_key = agreement::agree_ephemeral(
            self.private,
            &UnparsedPublicKey::new(&X25519, share),
            |shared| x25519_wrap_key(shared, &share, &public),
        )
        .map_err(|_| AgeError::NoMatch)??;
        let mut body = SecretBytes::new(stanza.body.clone());
        let file_key = wrap_key
            .open_in_place(zero_nonce(), aead::Aad::empty(), body.expose_mut())
            .map(|k| SecretBytes::new(k.to_vec()))
            .map_err(|_| AgeError::NoMatch)?;
        header.open(&file_key)
    }
}

/// A parsed header: its stanzas, the bytes the MAC covers, the MAC, and where the payload starts.
struct Header<'a> {
    stanzas: Vec<Stanza>,
    mac_input: &'a [u8],
    mac: Vec<u8>,
    payload: &'a [u8],
}

struct Stanza {
    kind: String,
    args: Vec<String>,
    body: Vec<u8>,
}

impl<'a> Header<'a> {
    fn parse(file: &'a [u8]) -> Result<Self, AgeError> {
        let bad = AgeError::Malformed;
        let mut pos = 0;
        // One line (without its LF) and the position after it.
        let next_line = |pos: usize| -> Result<(&'a str, usize), AgeError> {
            let rest = file.get(pos..).ok_or(bad("cut short"))?;
            let end = rest
                .iter()
                .position(|&b| b == b'\n')
                .ok_or(bad("a header line has no end"))?;
            let line =
                std::str::from_utf8(&rest[..end]).map_err(|_| bad("the header is not text"))?;
            Ok((line, pos + end + 1))
        };
        let (version, after) = next_line(pos)?;
        if version != VERSION_LINE {
            return Err(bad("it does not begin with age-encryption.org/v1"));
        }
        pos = after;
        let mut stanzas = Vec::new();
        loop {
            let (line, after) = next_line(pos)?;
            if let Some(mac) = line.strip_prefix("--- ") {
                let mac = STANDARD_NO_PAD
                    .decode(mac)
                    .map_err(|_| bad("the header MAC is not canonical base64"))?;
                if mac.len() != 32 {
                    return Err(bad("the header MAC is 32 bytes"));
                }
                return Ok(Self {
                    stanzas,
                    // Up to and including "---", not the space after it.
                    mac_input: &file[..pos + 3],
                    mac,
                    payload: &file[after..],
                });
            }
            let Some(args) = line.strip_prefix("-> ") else {
                return Err(bad("a header line is neither a stanza nor the MAC"));
            };
            let mut args = args.split(' ');
            let kind = args.next().unwrap_or_default().to_owned();
            let args: Vec<String> = args.map(str::to_owned).collect();
            if kind.is_empty()
                || args.iter().any(|a| a.is_empty())
                || !std::iter::once(kind.as_str())
                    .chain(args.iter().map(String::as_str))
                    .all(|a| a.bytes().all(|b| (33..=126).contains(&b)))
            {
                return Err(bad("a stanza line has an empty or invalid argument"));
            }
            pos = after;
            // The body: full 64-column lines, ended by a shorter (maybe empty) one.
            let mut encoded = String::new();
            loop {
                let (line, after) = next_line(pos)?;
                pos = after;
                if line.len() > STANZA_COLUMNS {
                    return Err(bad("a stanza body line is longer than 64 columns"));
                }
                encoded.push_str(line);
                if line.len() < STANZA_COLUMNS {
                    break;
                }
            }
            let body = STANDARD_NO_PAD
                .decode(&encoded)
                .map_err(|_| bad("a stanza body is not canonical base64"))?;
            stanzas.push(Stanza { kind, args, body });
        }
    }

    /// Checks the header MAC with the file key, then opens the payload.
    fn open(&self, file_key: &SecretBytes) -> Result<SecretBytes, AgeError> {
        let mac = header_mac(file_key, self.mac_input)?;
        if !ct_eq(mac.as_ref(), &self.mac) {
            return Err(AgeError::Altered("the header MAC does not match"));
        }
        let (nonce, stream) = self
            .payload
            .split_at_checked(16)
            .ok_or(AgeError::Malformed("the payload has no nonce"))?;
        let nonce: [u8; 16] = nonce
            .try_into()
            .map_err(|_| AgeError::Malformed("the payload has no nonce"))?;
        stream_open(&payload_key(file_key, &nonce)?, stream)
    }
}

/// HKDF-SHA-256 output of 32 bytes.
struct Len32;
impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

fn hkdf_32(ikm: &[u8], salt: &[u8], info: &[u8]) -> Result<Zeroizing<[u8; 32]>, AgeError> {
    let mut out = Zeroizing::new([0u8; 32]);
    hkdf::Salt::new(hkdf::HKDF_SHA256, salt)
        .extract(ikm)
        .expand(&[info], Len32)
        .and_then(|okm| okm.fill(out.as_mut()))
        .map_err(|_| AgeError::Crypto)?;
    Ok(out)
}

fn chacha_key(key: &[u8; 32]) -> Result<LessSafeKey, AgeError> {
    UnboundKey::new(&CHACHA20_POLY1305, key)
        .map(LessSafeKey::new)
        .map_err(|_| AgeError::Crypto)
}

fn x25519_wrap_key(
    shared: &[u8],
    share: &[u8; 32],
    recipient: &[u8; 32],
) -> Result<LessSafeKey, AgeError> {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(share);
    salt[32..].copy_from_slice(recipient);
    chacha_key(&*hkdf_32(shared, &salt, X25519_INFO)?)
}

fn header_mac(file_key: &SecretBytes, header: &[u8]) -> Result<hmac::Tag, AgeError> {
    let key = hkdf_32(file_key.expose(), &[], b"header")?;
    Ok(hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, key.as_ref()),
        header,
    ))
}

fn payload_key(file_key: &SecretBytes, nonce: &[u8; 16]) -> Result<LessSafeKey, AgeError> {
    chacha_key(&*hkdf_32(file_key.expose(), nonce, b"payload")?)
}

/// A stanza body's lines: full `columns`-wide lines, then a shorter one (empty when the text
/// fills its last line), each ended by LF.
fn wrap_lines(text: &str, columns: usize) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / columns + 2);
    let mut rest = text;
    while rest.len() >= columns {
        let (line, tail) = rest.split_at(columns);
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
    out.push_str(rest);
    out.push('\n');
    out
}

fn zero_nonce() -> Nonce {
    Nonce::assume_unique_for_key([0u8; 12])
}

/// STREAM's nonce: the 11-byte big-endian chunk counter, then 1 for the last chunk.
fn chunk_nonce(counter: u64, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[3..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    Nonce::assume_unique_for_key(n)
}

fn stream_seal(key: &LessSafeKey, plaintext: &[u8]) -> Result<Vec<u8>, AgeError> {
    let mut out = Vec::with_capacity(plaintext.len() + TAG * (plaintext.len() / CHUNK + 1));
    // An empty plaintext is one empty last chunk; a full last chunk is not followed by an empty one.
    let chunks: Vec<&[u8]> = if plaintext.is_empty() {
        vec![&[][..]]
    } else {
        plaintext.chunks(CHUNK).collect()
    };
    let n = chunks.len();
    for (i, chunk) in chunks.into_iter().enumerate() {
        let mut buf = Zeroizing::new(chunk.to_vec());
        key.seal_in_place_append_tag(
            chunk_nonce(i as u64, i + 1 == n),
            aead::Aad::empty(),
            &mut *buf,
        )
        .map_err(|_| AgeError::Crypto)?;
        out.extend_from_slice(&buf);
    }
    Ok(out)
}

fn stream_open(key: &LessSafeKey, stream: &[u8]) -> Result<SecretBytes, AgeError> {
    // Sized once (the plaintext is shorter than the stream), so no growth leaves a copy behind;
    // wiped if a chunk fails to open.
    let mut plain = Zeroizing::new(Vec::with_capacity(stream.len()));
    let mut rest = stream;
    let mut counter = 0u64;
    loop {
        let last = rest.len() <= CHUNK + TAG;
        let take = if last { rest.len() } else { CHUNK + TAG };
        if take < TAG {
            return Err(AgeError::Altered("the payload is cut short"));
        }
        if last && take == TAG && counter > 0 {
            return Err(AgeError::Altered("an empty last chunk after a full one"));
        }
        let mut buf = SecretBytes::new(rest[..take].to_vec());
        let opened = key
            .open_in_place(
                chunk_nonce(counter, last),
                aead::Aad::empty(),
                buf.expose_mut(),
            )
            .map_err(|_| AgeError::Altered("a payload chunk does not open"))?;
        plain.extend_from_slice(opened);
        rest = &rest[take..];
        if last {
            break;
        }
        counter += 1;
    }
    Ok(SecretBytes::new(std::mem::take(&mut *plain)))
}

/// Bech32 (BIP 173), as age spells its recipients: hand-written, as it is 40 lines and the
/// `bech32` crate would be a dependency for exactly these.
mod bech32 {
    use super::AgeError;

    const CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    const GEN: [u32; 5] = [
        0x3b6a_57b2,
        0x2650_8e6d,
        0x1ea1_19fa,
        0x3d42_33dd,
        0x2a14_62b3,
    ];

    fn polymod(values: impl Iterator<Item = u8>) -> u32 {
        let mut chk = 1u32;
        for v in values {
            let top = chk >> 25;
            chk = ((chk & 0x01ff_ffff) << 5) ^ u32::from(v);
            for (i, g) in GEN.iter().enumerate() {
                if (top >> i) & 1 == 1 {
                    chk ^= g;
                }
            }
        }
        chk
    }

    fn hrp_expand(hrp: &str) -> impl Iterator<Item = u8> + '_ {
        hrp.bytes()
            .map(|c| c >> 5)
            .chain(std::iter::once(0))
            .chain(hrp.bytes().map(|c| c & 31))
    }

    /// `hrp` + `1` + `data` in 5-bit groups + checksum, lower case.
    pub fn encode(hrp: &str, data: &[u8]) -> String {
        let mut groups = Vec::with_capacity(data.len() * 8 / 5 + 1);
        let (mut acc, mut bits) = (0u32, 0u32);
        for &b in data {
            acc = (acc << 8) | u32::from(b);
            bits += 8;
            while bits >= 5 {
                bits -= 5;
                groups.push(((acc >> bits) & 31) as u8);
            }
        }
        if bits > 0 {
            groups.push(((acc << (5 - bits)) & 31) as u8);
        }
        let pm = polymod(hrp_expand(hrp).chain(groups.iter().copied()).chain([0; 6])) ^ 1;
        let checksum = (0..6).map(|i| ((pm >> (5 * (5 - i))) & 31) as u8);
        let mut out = format!("{hrp}1");
        for g in groups.iter().copied().chain(checksum) {
            out.push(char::from(CHARSET[usize::from(g)]));
        }
        out
    }

    /// The human-readable part (lower case) and the data; the checksum must hold.
    pub fn decode(text: &str) -> Result<(String, Vec<u8>), AgeError> {
        let bad = AgeError::BadRecipient;
        let has_lower = text.bytes().any(|b| b.is_ascii_lowercase());
        let has_upper = text.bytes().any(|b| b.is_ascii_uppercase());
        if has_lower && has_upper {
            return Err(bad("it mixes upper and lower case"));
        }
        if !text.bytes().all(|b| (33..=126).contains(&b)) {
            return Err(bad(
                "it has a character outside printable ASCII (a space inside it?)",
            ));
        }
        let text = text.to_ascii_lowercase();
        let (hrp, data) = text.rsplit_once('1').ok_or(bad("it has no separator 1"))?;
        if hrp.is_empty() || data.len() < 6 {
            return Err(bad("it is cut short"));
        }
        let groups = data
            .bytes()
            .map(|c| {
                CHARSET
                    .iter()
                    .position(|&x| x == c)
                    .map(|p| p as u8)
                    .ok_or(bad(
                        "it has a character that Bech32 never uses (b, i, o or 1 in the key part)",
                    ))
            })
            .collect::<Result<Vec<u8>, _>>()?;
        if polymod(hrp_expand(hrp).chain(groups.iter().copied())) != 1 {
            return Err(bad(
                "its checksum does not match: a character is mistyped or missing",
            ));
        }
        let groups = &groups[..groups.len() - 6];
        let mut out = Vec::with_capacity(groups.len() * 5 / 8);
        let (mut acc, mut bits) = (0u32, 0u32);
        for &g in groups {
            acc = (acc << 5) | u32::from(g);
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                out.push(((acc >> bits) & 0xff) as u8);
            }
        }
        if bits >= 5 || (acc & ((1 << bits) - 1)) != 0 {
            return Err(bad("it has stray bits at the end"));
        }
        Ok((hrp.to_owned(), out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// age's own test vector `testkit/armor` (file key "YELLOW SUBMARINE", an X25519 stanza to
    /// the testkit's identity): the armor, the header, its MAC and the STREAM payload, checked
    /// with the file key the vector names (ring cannot run X25519 with a given private key, so
    /// the stanza itself is checked by the interop test with the real `age`).
    const ARMOR_VECTOR: &str = "-----BEGIN AGE ENCRYPTED FILE-----
YWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOSBURWlGMHlwcXIrYnB2Y3FY
TnlDVkpwTDdPdXdQZFZ3UEw3S1FFYkZET0NjCkVtRUNBRWNLTituL1ZzOVNiV2lW
K0h1MHIrRThSNzdEZFdZeWQ4M253N1UKLS0tIFZuKzU0anFpaVVDRStXWmNFVlkz
ZjFzcUhqbHUvejFMQ1EvVDdYbTdxSTAK7s9ix86RtDMnTmjU8vkTTLdMW/73vqpS
yPC8DpksHoMx+2Y=
-----END AGE ENCRYPTED FILE-----
";
    const VECTOR_FILE_KEY: &[u8] = b"YELLOW SUBMARINE";
    const VECTOR_PAYLOAD_SHA256: &str =
        "013f54400c82da08037759ada907a8b864e97de81c088a182062c4b5622fd2ab";

    #[test]
    fn ages_armor_vector_opens_with_its_file_key() {
        let file = dearmor(ARMOR_VECTOR).unwrap();
        let header = Header::parse(&file).unwrap();
        assert_eq!(header.stanzas.len(), 1);
        assert_eq!(header.stanzas[0].kind, "X25519");
        assert_eq!(header.stanzas[0].body.len(), 32);
        let key = SecretBytes::new(VECTOR_FILE_KEY.to_vec());
        let plain = header.open(&key).unwrap();
        assert_eq!(
            crate::crypto::sha256_hex(plain.expose()),
            VECTOR_PAYLOAD_SHA256
        );
        // Our armor of the same bytes is the vector's, byte for byte.
        assert_eq!(armor(&file), ARMOR_VECTOR);
        // Another file key fails the header MAC.
        let wrong = SecretBytes::new(b"YELLOW SUBMARINF".to_vec());
        assert_eq!(
            header.open(&wrong).unwrap_err(),
            AgeError::Altered("the header MAC does not match")
        );
    }

    #[test]
    fn a_changed_byte_anywhere_in_the_vector_is_caught() {
        let file = dearmor(ARMOR_VECTOR).unwrap();
        let key = SecretBytes::new(VECTOR_FILE_KEY.to_vec());
        for i in 0..file.len() {
            let mut changed = file.clone();
            changed[i] ^= 0x01;
            let opened = Header::parse(&changed).and_then(|h| h.open(&key));
            // The header is covered by its MAC, the payload by its chunks' tags.
            assert!(
                opened.is_err(),
                "byte {i} changed and the file still opened"
            );
        }
    }

    #[test]
    fn round_trip_through_a_one_time_identity() {
        for len in [0, 1, 75, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK] {
            let plaintext: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let id = OneTimeIdentity::generate().unwrap();
            let file = encrypt(&id.recipient(), &plaintext).unwrap();
            let back = dearmor(&armor(&file)).unwrap();
            assert_eq!(back, file);
            assert_eq!(id.decrypt(&file).unwrap().expose(), &plaintext[..], "{len}");
        }
    }

    #[test]
    fn another_identity_or_a_cut_or_altered_file_does_not_open() {
        let id = OneTimeIdentity::generate().unwrap();
        let file = encrypt(&id.recipient(), b"mvshare1-01-00").unwrap();
        let other = OneTimeIdentity::generate().unwrap();
        assert_eq!(other.decrypt(&file).unwrap_err(), AgeError::NoMatch);
        let mut cut = file.clone();
        cut.truncate(file.len() - 1);
        assert!(OneTimeIdentity::generate().unwrap().decrypt(&cut).is_err());
        // The payload's last byte (the tag) altered.
        let id = OneTimeIdentity::generate().unwrap();
        let mut file = encrypt(&id.recipient(), b"mvshare1-01-00").unwrap();
        let last = file.len() - 1;
        file[last] ^= 0x80;
        assert_eq!(
            id.decrypt(&file).unwrap_err(),
            AgeError::Altered("a payload chunk does not open")
        );
    }

    #[test]
    fn the_file_has_the_shape_the_specification_gives() {
        let id = OneTimeIdentity::generate().unwrap();
        let file = encrypt(&id.recipient(), b"x").unwrap();
        let text = String::from_utf8_lossy(&file);
        let lines: Vec<&str> = text.lines().take(4).collect();
        assert_eq!(lines[0], "age-encryption.org/v1");
        assert!(lines[1].starts_with("-> X25519 ") && lines[1].len() == 10 + 43);
        assert_eq!(lines[2].len(), 43, "a 32-byte body is one short line");
        assert!(lines[3].starts_with("--- ") && lines[3].len() >= 4 + 43);
        let armored = armor(&file);
        assert!(armored.starts_with("-----BEGIN AGE ENCRYPTED FILE-----\n"));
        assert!(armored.ends_with("\n-----END AGE ENCRYPTED FILE-----\n"));
        assert!(armored.lines().all(|l| l.len() <= 64));
    }

    #[test]
    fn recipients_parse_and_print_back_and_mistakes_are_named() {
        // The example recipient of age's README.
        let text = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
        let r = Recipient::parse(text).unwrap();
        assert_eq!(r.to_string(), text);
        assert_eq!(Recipient::parse(&format!("  {text}\n")).unwrap(), r);
        assert_eq!(Recipient::parse(&text.to_ascii_uppercase()).unwrap(), r);
        let mut typo = text.to_owned().into_bytes();
        typo[10] = if typo[10] == b'q' { b'p' } else { b'q' };
        let typo = String::from_utf8(typo).unwrap();
        assert!(matches!(
            Recipient::parse(&typo),
            Err(AgeError::BadRecipient(m)) if m.contains("checksum")
        ));
        for (bad, says) in [
            ("", "age1"),
            ("zhang", "age1"),
            ("age1", "cut short"),
            (&text[..text.len() - 1], "checksum"),
            (
                "age1Ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p",
                "mixes",
            ),
            (
                "age1bl3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p",
                "never uses",
            ),
            (
                "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX",
                "secret key",
            ),
            // A valid Bech32 string of another part and length.
            ("a12uel5l", "age1"),
        ] {
            match Recipient::parse(bad) {
                Err(AgeError::BadRecipient(m)) => assert!(m.contains(says), "{bad}: {m}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        // BIP 173's valid checksums.
        assert_eq!(
            bech32::decode("A12UEL5L").unwrap(),
            ("a".to_owned(), vec![])
        );
        let (hrp, _) = bech32::decode("abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw").unwrap();
        assert_eq!(hrp, "abcdef");
        assert!(bech32::decode("a12uel5m").is_err());
        // A low-order point (here zero): no shared secret can come of it.
        let zero = bech32::encode("age", &[0u8; 32]);
        assert!(matches!(
            Recipient::parse(&zero),
            Err(AgeError::BadRecipient(m)) if m.contains("usable")
        ));
        // A public key with the wrong length under the age prefix.
        let short = bech32::encode("age", &[7u8; 31]);
        assert!(matches!(
            Recipient::parse(&short),
            Err(AgeError::BadRecipient(m)) if m.contains("length")
        ));
    }

    #[test]
    fn dearmor_refuses_what_age_refuses() {
        let good = armor(&[1, 2, 3]);
        assert_eq!(dearmor(&good).unwrap(), vec![1, 2, 3]);
        assert_eq!(dearmor(&format!("\n  {good}\n\n")).unwrap(), vec![1, 2, 3]);
        for bad in [
            good.replace("BEGIN AGE", "BEGIN PGP"),
            good.replace("-----END AGE ENCRYPTED FILE-----\n", ""),
            good.replace("AQID", "AQI"),
            "-----BEGIN AGE ENCRYPTED FILE-----\n-----END AGE ENCRYPTED FILE-----\n".into(),
        ] {
            assert!(dearmor(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_shows_no_private_key() {
        let id = OneTimeIdentity::generate().unwrap();
        let shown = format!("{id:?}");
        assert!(shown.contains(&id.recipient().to_string()));
    }
}
