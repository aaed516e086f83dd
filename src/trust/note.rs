//! Signed notes and their keys, in the C2SP signed-note format of Go's
//! `golang.org/x/mod/sumdb/note`, so that checkpoints can be checked by existing tools.
//!
//! - Signer key: `PRIVATE+KEY+<name>+<hash>+<base64(0x01 ‖ 32-byte Ed25519 seed)>`.
//! - Verifier key: `<name>+<hash>+<base64(0x01 ‖ 32-byte Ed25519 public key)>`, where `<hash>`
//!   is 8 hex digits of the first four bytes of `SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key)`.
//! - Note: the text (ending in LF), a blank line, then one line per signature:
//!   `— <name> <base64(4-byte key hash ‖ 64-byte signature of the text)>`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest, Sha256};

/// The algorithm byte of Ed25519 keys.
const ALG_ED25519: u8 = 1;
/// The start of a signature line: em dash, space.
const SIG_PREFIX: &str = "\u{2014} ";
/// More signatures than this make a note malformed (as in Go's package).
const MAX_SIGNATURES: usize = 100;

/// Why a key or a note was refused. Messages never contain key material.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// The key text is not a well-formed key.
    #[error("malformed key: {0}")]
    MalformedKey(&'static str),
    /// The key's hash does not match its name and public key.
    #[error("the key's hash does not match its name and public key")]
    KeyHash,
    /// The note is not a well-formed signed note.
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    /// A signature by a known key does not verify: the text was changed, or signed by another
    /// key with the same name and hash.
    #[error("the signature by {name}+{hash:08x} does not verify: the note was changed")]
    BadSignature {
        /// The key's name.
        name: String,
        /// The key's hash.
        hash: u32,
    },
    /// No signature is by a known key.
    #[error("no signature is by a known key (signed by {0})")]
    UnknownKey(String),
}

/// A name is non-empty UTF-8 with no whitespace and no `+`.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

/// The key hash: the first four bytes, big-endian, of `SHA-256(name ‖ "\n" ‖ key)`.
#[must_use]
pub fn key_hash(name: &str, key_with_alg: &[u8]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update(key_with_alg);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// Splits at the first `sep`, like Go's `chop`.
fn chop(s: &str, sep: char) -> (&str, &str) {
    s.split_once(sep).unwrap_or((s, ""))
}

/// Decodes `<hash>` and `<base64 key>` and checks the algorithm byte and length.
fn decode_key(hash16: &str, key64: &str) -> Result<(u32, [u8; 32]), NoteError> {
    if hash16.len() != 8 {
        return Err(NoteError::MalformedKey("the hash is not 8 hex digits"));
    }
    let hash = u32::from_str_radix(hash16, 16)
        .map_err(|_| NoteError::MalformedKey("the hash is not 8 hex digits"))?;
    let key = B64
        .decode(key64.trim_end())
        .map_err(|_| NoteError::MalformedKey("the key is not base64"))?;
    match key.split_first() {
        Some((&ALG_ED25519, rest)) => {
            let bytes: [u8; 32] = rest
                .try_into()
                .map_err(|_| NoteError::MalformedKey("an Ed25519 key is 32 bytes"))?;
            Ok((hash, bytes))
        }
        Some(_) => Err(NoteError::MalformedKey("unknown key algorithm")),
        None => Err(NoteError::MalformedKey("empty key")),
    }
}

/// A verifier key: checks signatures by one signer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    hash: u32,
    key: VerifyingKey,
}

impl VerifierKey {
    /// Parses `<name>+<hash>+<base64>`.
    ///
    /// # Errors
    ///
    /// [`NoteError::MalformedKey`] or [`NoteError::KeyHash`].
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let text = text.trim();
        let (name, rest) = chop(text, '+');
        let (hash16, key64) = chop(rest, '+');
        if !valid_name(name) {
            return Err(NoteError::MalformedKey(
                "the name is empty or has a space or '+'",
            ));
        }
        let (hash, bytes) = decode_key(hash16, key64)?;
        let mut with_alg = vec![ALG_ED25519];
        with_alg.extend_from_slice(&bytes);
        if key_hash(name, &with_alg) != hash {
            return Err(NoteError::KeyHash);
        }
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|_| NoteError::MalformedKey("not an Ed25519 public key"))?;
        Ok(VerifierKey {
            name: name.to_owned(),
            hash,
            key,
        })
    }

    /// The signer's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key hash.
    #[must_use]
    pub fn hash(&self) -> u32 {
        self.hash
    }

    /// The key in its text form.
    #[must_use]
    pub fn encode(&self) -> String {
        let mut with_alg = vec![ALG_ED25519];
        with_alg.extend_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}", self.name, self.hash, B64.encode(with_alg))
    }
}

/// A signer key. Its text form is a secret; `Debug` does not show it.
pub struct SignerKey {
    name: String,
    hash: u32,
    key: SigningKey,
}

impl std::fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SignerKey({}+{:08x})", self.name, self.hash)
    }
}

impl SignerKey {
    /// Writes the key to `key_path` (mode 0600) and its verifier key to `pub_path` (mode
    /// 0644), each as a new file written atomically: an existing file is never replaced.
    ///
    /// # Errors
    ///
    /// [`crate::error::Error::Io`], `AlreadyExists` when either path exists.
    pub fn save(
        &self,
        key_path: &std::path::Path,
        pub_path: &std::path::Path,
    ) -> crate::error::Result<()> {
        use crate::fs::{PRIVATE, PUBLIC, write_new};
        write_new(
            key_path,
            format!("{}\n", self.encode_secret()).as_bytes(),
            PRIVATE,
        )?;
        write_new(
            pub_path,
            format!("{}\n", self.verifier().encode()).as_bytes(),
            PUBLIC,
        )
    }

    /// Parses `PRIVATE+KEY+<name>+<hash>+<base64>`.
    ///
    /// # Errors
    ///
    /// [`NoteError::MalformedKey`] or [`NoteError::KeyHash`].
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let text = text.trim();
        let Some(rest) = text.strip_prefix("PRIVATE+KEY+") else {
            return Err(NoteError::MalformedKey(
                "a signer key starts with PRIVATE+KEY+",
            ));
        };
        let (name, rest) = chop(rest, '+');
        let (hash16, key64) = chop(rest, '+');
        if !valid_name(name) {
            return Err(NoteError::MalformedKey(
                "the name is empty or has a space or '+'",
            ));
        }
        let (hash, seed) = decode_key(hash16, key64)?;
        let key = SigningKey::from_bytes(&seed);
        let signer = SignerKey {
            name: name.to_owned(),
            hash,
            key,
        };
        if key_hash(name, &signer.public_with_alg()) != hash {
            return Err(NoteError::KeyHash);
        }
        Ok(signer)
    }

    /// A new random key for `name`.
    ///
    /// # Errors
    ///
    /// [`NoteError::MalformedKey`] for a bad name, or when the system has no randomness.
    pub fn generate(name: &str) -> Result<Self, NoteError> {
        if !valid_name(name) {
            return Err(NoteError::MalformedKey(
                "the name is empty or has a space or '+'",
            ));
        }
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)
            .map_err(|_| NoteError::MalformedKey("the system has no randomness"))?;
        let key = SigningKey::from_bytes(&seed);
        seed.fill(0);
        let mut signer = SignerKey {
            name: name.to_owned(),
            hash: 0,
            key,
        };
        signer.hash = key_hash(name, &signer.public_with_alg());
        Ok(signer)
    }

    fn public_with_alg(&self) -> Vec<u8> {
        let mut v = vec![ALG_ED25519];
        v.extend_from_slice(self.key.verifying_key().as_bytes());
        v
    }

    /// The signer's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The matching verifier key.
    #[must_use]
    pub fn verifier(&self) -> VerifierKey {
        VerifierKey {
            name: self.name.clone(),
            hash: self.hash,
            key: self.key.verifying_key(),
        }
    }

    /// The key in its secret text form, for the key file only.
    #[must_use]
    pub fn encode_secret(&self) -> String {
        let mut with_alg = vec![ALG_ED25519];
        with_alg.extend_from_slice(self.key.as_bytes());
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.hash,
            B64.encode(with_alg)
        )
    }

    /// Signs `text` (which must end in LF) and returns the signed note.
    ///
    /// # Errors
    ///
    /// [`NoteError::Malformed`] when the text does not end in LF, contains a blank line's
    /// separator or control characters other than LF.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        let sig = self.key.sign(text.as_bytes());
        let mut blob = self.hash.to_be_bytes().to_vec();
        blob.extend_from_slice(&sig.to_bytes());
        Ok(format!(
            "{text}\n{SIG_PREFIX}{} {}\n",
            self.name,
            B64.encode(blob)
        ))
    }
}

fn check_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError::Malformed("the text does not end in a newline"));
    }
    if text.contains("\n\n") {
        return Err(NoteError::Malformed("the text contains a blank line"));
    }
    if text.chars().any(|c| c < ' ' && c != '\n') {
        return Err(NoteError::Malformed("the text contains control characters"));
    }
    Ok(())
}

/// A note whose signature by a known key verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// The signed text, ending in LF.
    pub text: String,
    /// `name+hash` of each key whose signature verified.
    pub signed_by: Vec<String>,
}

/// Parses a signed note and checks its signatures against `known` keys, as Go's `note.Open`:
/// a signature by a known key that does not verify fails the whole note; signatures by unknown
/// keys are ignored; at least one must be by a known key.
///
/// # Errors
///
/// [`NoteError::Malformed`], [`NoteError::BadSignature`] or [`NoteError::UnknownKey`].
pub fn open(msg: &[u8], known: &[VerifierKey]) -> Result<Note, NoteError> {
    let msg = std::str::from_utf8(msg).map_err(|_| NoteError::Malformed("not UTF-8"))?;
    if msg.chars().any(|c| c < ' ' && c != '\n') {
        return Err(NoteError::Malformed("control characters"));
    }
    let split = msg
        .rfind("\n\n")
        .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
    let (text, sigs) = (&msg[..=split], &msg[split + 2..]);
    if !sigs.ends_with('\n') {
        return Err(NoteError::Malformed(
            "the signatures do not end in a newline",
        ));
    }
    let mut signed_by = Vec::new();
    let mut unknown = Vec::new();
    let lines: Vec<&str> = sigs[..sigs.len() - 1].split('\n').collect();
    if lines.len() > MAX_SIGNATURES {
        return Err(NoteError::Malformed("too many signatures"));
    }
    for line in lines {
        let rest = line.strip_prefix(SIG_PREFIX).ok_or(NoteError::Malformed(
            "a signature line does not start with '— '",
        ))?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or(NoteError::Malformed("a signature line has no signature"))?;
        if !valid_name(name) || b64.is_empty() || b64.contains(' ') {
            return Err(NoteError::Malformed("a signature line is malformed"));
        }
        let blob = B64
            .decode(b64)
            .map_err(|_| NoteError::Malformed("a signature is not base64"))?;
        if blob.len() < 5 {
            return Err(NoteError::Malformed("a signature is too short"));
        }
        let hash = u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]);
        let Some(key) = known.iter().find(|k| k.name == name && k.hash == hash) else {
            unknown.push(format!("{name}+{hash:08x}"));
            continue;
        };
        let ok = Signature::from_slice(&blob[4..])
            .is_ok_and(|sig| key.key.verify(text.as_bytes(), &sig).is_ok());
        if !ok {
            return Err(NoteError::BadSignature {
                name: name.to_owned(),
                hash,
            });
        }
        let id = format!("{name}+{hash:08x}");
        if !signed_by.contains(&id) {
            signed_by.push(id);
        }
    }
    if signed_by.is_empty() {
        return Err(NoteError::UnknownKey(if unknown.is_empty() {
            "nobody".to_owned()
        } else {
            unknown.join(", ")
        }));
    }
    Ok(Note {
        text: text.to_owned(),
        signed_by,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example of Go's golang.org/x/mod/sumdb/note package documentation.
    const GO_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const GO_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                           then you don't know what your problem is.\n";
    const GO_MSG: &str = "If you think cryptography is the answer to your problem,\n\
                          then you don't know what your problem is.\n\
                          \n\
                          \u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    #[test]
    fn go_example_verifies() {
        let v = VerifierKey::parse(GO_VKEY).expect("Go's verifier key");
        let note = open(GO_MSG.as_bytes(), &[v]).expect("Go's note verifies");
        assert_eq!(note.text, GO_TEXT);
        assert_eq!(note.signed_by, vec!["PeterNeumann+c74f20a3".to_owned()]);
    }

    #[test]
    fn go_signer_key_signs_exactly_like_go() {
        let s = SignerKey::parse(GO_SKEY).expect("Go's signer key");
        assert_eq!(s.verifier().encode(), GO_VKEY);
        assert_eq!(
            s.sign(GO_TEXT).expect("sign"),
            GO_MSG,
            "Ed25519 is deterministic"
        );
        assert_eq!(s.encode_secret(), GO_SKEY);
    }

    #[test]
    fn changed_text_wrong_key_and_unknown_key_are_refused() {
        let v = VerifierKey::parse(GO_VKEY).expect("key");
        let changed = GO_MSG.replace("answer", "Answer");
        assert!(matches!(
            open(changed.as_bytes(), std::slice::from_ref(&v)),
            Err(NoteError::BadSignature { .. })
        ));
        let other = SignerKey::generate("EnochRoot").expect("key").verifier();
        assert!(matches!(
            open(GO_MSG.as_bytes(), &[other]),
            Err(NoteError::UnknownKey(_))
        ));
        // Same name and hash, other key: the hash is checked when the key is parsed.
        let forged = GO_VKEY.replace("ARpc", "ARpd");
        assert!(VerifierKey::parse(&forged).is_err());
        for bad in [
            "",
            "no blank line\n",
            "text\n\nnot a signature\n",
            "text\n\n\u{2014} x\n",
        ] {
            assert!(
                matches!(
                    open(bad.as_bytes(), std::slice::from_ref(&v)),
                    Err(NoteError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn generated_keys_round_trip() {
        let s = SignerKey::generate("audit.example.com/prod").expect("key");
        let again = SignerKey::parse(&s.encode_secret()).expect("parse");
        assert_eq!(again.verifier(), s.verifier());
        let v = VerifierKey::parse(&s.verifier().encode()).expect("parse");
        let note = s.sign("hello\n").expect("sign");
        assert_eq!(open(note.as_bytes(), &[v]).expect("open").text, "hello\n");
        assert!(!format!("{s:?}").contains(&s.encode_secret()[20..]));
    }
}
