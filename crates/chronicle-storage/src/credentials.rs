//! Secrets: generated here, stored only as hashes.
//!
//! Device secrets and bearer tokens are long random strings, so a fast SHA-256 is enough to
//! store them safely; user passwords are chosen by people and get argon2id.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::distr::{Alphanumeric, SampleString};
use sha2::{Digest, Sha256, Sha512};

/// A random secret of `len` alphanumeric characters (about 5.95 bits each).
pub fn random_secret(len: usize) -> String {
    Alphanumeric.sample_string(&mut rand::rng(), len)
}

/// Crockford's base32 alphabet: no I, L, O or U, so a code read aloud or copied from paper
/// is not misread.
const CODE_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Characters of an invitation code: 12 × 5 = 60 bits, beyond guessing at any request rate
/// the API allows, and short enough to type from a printed card.
const CODE_CHARACTERS: usize = 12;

/// Characters of an e-mail confirmation code: 8 × 5 = 40 bits. It lives a day, allows a few
/// wrong tries, and the messages carrying new codes are rate limited, so at most some hundreds
/// of guesses reach it: a chance below 10⁻⁹.
const CONFIRMATION_CODE_CHARACTERS: usize = 8;

/// A random code of `characters` from [`CODE_ALPHABET`], in groups of four: `7K2Q-MX9D`.
fn grouped_code(characters: usize) -> String {
    let mut rng = rand::rng();
    let chars: Vec<char> = (0..characters)
        .map(|_| char::from(CODE_ALPHABET[rand::Rng::random_range(&mut rng, 0..32)]))
        .collect();
    chars
        .chunks(4)
        .map(|group| group.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// A code as typed (any case, dashes or spaces, O for 0, I or L for 1) in its one canonical
/// spelling, the one that is hashed; `None` if it cannot be a code of `characters`.
fn canonical_code(typed: &str, characters: usize) -> Option<String> {
    let canonical: String = typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            other => other,
        })
        .collect();
    (canonical.len() == characters && canonical.bytes().all(|b| CODE_ALPHABET.contains(&b)))
        .then_some(canonical)
}

/// A new invitation code, grouped for reading: `7K2Q-MX9D-40TZ`.
pub fn invitation_code() -> String {
    grouped_code(CODE_CHARACTERS)
}

/// An invitation code as typed in its canonical spelling (see [`canonical_code`]).
pub fn canonical_invitation_code(typed: &str) -> Option<String> {
    canonical_code(typed, CODE_CHARACTERS)
}

/// A new e-mail confirmation code: `7K2Q-MX9D`.
pub fn email_confirmation_code() -> String {
    grouped_code(CONFIRMATION_CODE_CHARACTERS)
}

/// An e-mail confirmation code as typed in its canonical spelling.
pub fn canonical_email_confirmation_code(typed: &str) -> Option<String> {
    canonical_code(typed, CONFIRMATION_CODE_CHARACTERS)
}

/// A new MQTT identity's credentials (a device's or a gateway's), shown once: only hashes of
/// the secret are stored.
#[derive(Clone)]
pub struct NewCredentials<Id> {
    /// Also the MQTT username, and the client id (a gateway's, or its prefix before a `.`).
    pub id: Id,
    /// The MQTT password.
    pub secret: String,
}

impl<Id> NewCredentials<Id> {
    /// `id` with a fresh random secret.
    pub fn generate(id: Id) -> Self {
        NewCredentials {
            id,
            secret: random_secret(32),
        }
    }
}

/// Never prints the secret.
impl<Id: std::fmt::Debug> std::fmt::Debug for NewCredentials<Id> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewCredentials")
            .field("id", &self.id)
            .field("secret", &"***")
            .finish()
    }
}

/// SHA-256 of a high-entropy secret (device secret, bearer token).
pub fn secret_hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// PBKDF2 rounds of a broker password hash: Mosquitto's own default, so hashes Chronicle writes
/// look like the ones `mosquitto_passwd` writes.
const BROKER_HASH_ITERATIONS: u32 = 101;

/// A secret in the form Mosquitto's `password_file` checks itself:
/// `$7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512>` with a 12-byte salt, as
/// `mosquitto_passwd` writes it. Kept beside the SHA-256 so Chronicle can write an external
/// Mosquitto's password file from the registry alone, never holding a secret.
pub fn broker_password_hash(secret: &str) -> String {
    let mut salt = [0u8; 12];
    rand::Rng::fill(&mut rand::rng(), &mut salt);
    let mut hash = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<Sha512>(secret.as_bytes(), &salt, BROKER_HASH_ITERATIONS, &mut hash);
    format!(
        "$7${BROKER_HASH_ITERATIONS}${}${}",
        BASE64.encode(salt),
        BASE64.encode(hash)
    )
}

/// An argon2id PHC string for a password.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let mut salt_bytes = [0u8; 16];
    rand::Rng::fill(&mut rand::rng(), &mut salt_bytes);
    let salt = SaltString::encode_b64(&salt_bytes)?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Whether `password` matches a stored PHC string; a malformed hash never matches.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invitation_codes_read_back_however_they_are_typed() {
        let code = invitation_code();
        assert_eq!(code.len(), 14, "{code}");
        let canonical = canonical_invitation_code(&code).expect("a code");
        assert_eq!(canonical, code.replace('-', ""));
        let sloppy = format!(" {} ", code.to_lowercase().replace('-', " "));
        assert_eq!(canonical_invitation_code(&sloppy), Some(canonical.clone()));
        // Misread letters become the digits they look like.
        assert_eq!(
            canonical_invitation_code("o0il-1111-2222"),
            Some("001111112222".into())
        );
        assert_eq!(
            canonical_invitation_code("7K2Q-MX9D-40T"),
            None,
            "too short"
        );
        assert_eq!(
            canonical_invitation_code("7K2Q-MX9D-40TU"),
            None,
            "U is not in it"
        );
        assert_ne!(invitation_code(), invitation_code());
    }

    #[test]
    fn confirmation_codes_are_eight_characters_and_not_invitation_codes() {
        let code = email_confirmation_code();
        assert_eq!(code.len(), 9, "{code}");
        assert_eq!(
            canonical_email_confirmation_code(&code.to_lowercase()),
            Some(code.replace('-', ""))
        );
        assert_eq!(canonical_email_confirmation_code(&invitation_code()), None);
        assert_eq!(canonical_invitation_code(&code), None);
        assert_eq!(canonical_email_confirmation_code("nope"), None);
    }

    #[test]
    fn passwords_round_trip_and_salts_differ() {
        let a = hash_password("correct horse battery staple").expect("hash");
        let b = hash_password("correct horse battery staple").expect("hash");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(a.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery staple", &a));
        assert!(!verify_password("Correct horse battery staple", &a));
        assert!(!verify_password("anything", "not a hash"));
    }

    #[test]
    fn broker_password_hashes_are_pbkdf2_sha512_in_mosquitto_form() {
        let stored = broker_password_hash("s3cret");
        let parts: Vec<&str> = stored.split('$').collect();
        assert_eq!(parts[..3], ["", "7", "101"]);
        let salt = BASE64.decode(parts[3]).expect("salt");
        let hash = BASE64.decode(parts[4]).expect("hash");
        assert_eq!((salt.len(), hash.len()), (12, 64));
        let mut expected = [0u8; 64];
        pbkdf2::pbkdf2_hmac::<Sha512>(b"s3cret", &salt, 101, &mut expected);
        assert_eq!(hash, expected);
        assert_ne!(
            broker_password_hash("s3cret"),
            stored,
            "each hash has its own salt"
        );
    }

    #[test]
    fn secrets() {
        assert_eq!(random_secret(32).len(), 32);
        assert_ne!(random_secret(32), random_secret(32));
        assert_eq!(secret_hash("x").len(), 32);
    }
}
