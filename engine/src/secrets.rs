//! Bucket credentials at rest: sealed with ChaCha20-Poly1305 under the
//! server's key and bound to their source's id, so a database dump or backup
//! alone does not hand out a studio's bucket keys (and a sealed value copied
//! onto another source does not open).
//!
//! The key is `SECRETS_KEY` (32 random bytes, base64); to rotate it, start
//! with the new one there and the old one in `SECRETS_KEY_PREVIOUS`: values
//! are sealed again with the new key at migration. An embedded SQLite
//! database without one gets a key file beside it, made on first start;
//! PostgreSQL deployments, whose api and worker processes must share the
//! key, have to set it to store credentials.

use std::{io::Write, path::Path, sync::Arc};

use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use ring::{
    aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey},
    hmac,
    rand::{SecureRandom, SystemRandom},
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{Error, Result};

/// The one field of a sealed value: base64 of nonce ‖ ciphertext ‖ tag.
const SEALED_FIELD: &str = "sealed_v1";
const KEY_LEN: usize = 32;

/// The key values are sealed with, and the one they were sealed with before
/// a rotation (`SECRETS_KEY_PREVIOUS`), which only opens.
#[derive(Clone)]
pub struct SecretsKey {
    current: Arc<Key>,
    previous: Option<Arc<Key>>,
}

/// One `SECRETS_KEY`: the AEAD key, and an HMAC key derived from it for
/// audit fingerprints (one key, two purposes, never the same bytes).
struct Key {
    aead: LessSafeKey,
    audit: hmac::Key,
}

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretsKey(…)")
    }
}

impl SecretsKey {
    /// Parses `SECRETS_KEY`: 32 bytes, base64.
    pub fn from_base64(text: &str) -> Result<SecretsKey> {
        Ok(SecretsKey {
            current: parse_key("SECRETS_KEY", text)?,
            previous: None,
        })
    }

    /// Also opens values sealed with `previous` (a rotation in progress:
    /// they are sealed again with the current key at migration).
    pub fn with_previous(mut self, previous: &str) -> Result<SecretsKey> {
        self.previous = Some(parse_key("SECRETS_KEY_PREVIOUS", previous)?);
        Ok(self)
    }

    /// A new random key, in the base64 form `from_base64` reads.
    pub fn generate() -> Result<String> {
        Ok(BASE64.encode(random::<KEY_LEN>()?))
    }

    /// The current key, then the previous one during a rotation.
    fn keys(&self) -> impl Iterator<Item = &Key> {
        std::iter::once(&*self.current).chain(self.previous.as_deref())
    }

    /// Seals `plain` for `owner` (a random nonce per value).
    pub fn seal(&self, owner: Uuid, plain: &Value) -> Result<Value> {
        let nonce = random::<NONCE_LEN>()?;
        let mut data = serde_json::to_vec(plain).map_err(Error::internal)?;
        self.current
            .aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(owner.as_bytes()),
                &mut data,
            )
            .map_err(|_| Error::internal("sealing failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(json!({ SEALED_FIELD: BASE64.encode(out) }))
    }

    /// Opens a value sealed for `owner` (with the current key, or else the
    /// previous one); values stored before sealing existed come back as they are.
    pub fn open(&self, owner: Uuid, stored: &Value) -> Result<Value> {
        let Some(sealed) = sealed_text(stored) else {
            return Ok(stored.clone());
        };
        self.keys()
            .find_map(|key| open_with(key, owner, sealed))
            .ok_or_else(|| {
                Error::Unavailable(
                    "stored credentials do not open with this server's SECRETS_KEY \
                     (was the key changed? keep the old one as SECRETS_KEY_PREVIOUS)"
                        .into(),
                )
            })
    }

    /// Whether `stored` must be sealed (again) with the current key: it is in
    /// clear, or sealed with the previous key.
    pub fn needs_sealing(&self, owner: Uuid, stored: &Value) -> bool {
        sealed_text(stored).is_none_or(|sealed| open_with(&self.current, owner, sealed).is_none())
    }

    /// Keyed fingerprints of `value` within `scope` (HMAC-SHA-256, hex): with
    /// the current key first, then the previous one. Unlike a plain hash, no
    /// one holding only the database can test guesses against them.
    pub fn fingerprints(&self, scope: Uuid, value: &str) -> Vec<String> {
        self.keys()
            .map(|key| {
                let mut ctx = hmac::Context::with_key(&key.audit);
                ctx.update(scope.as_bytes());
                ctx.update(value.as_bytes());
                hex::encode(ctx.sign().as_ref())
            })
            .collect()
    }
}

fn random<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::internal("no system randomness"))?;
    Ok(bytes)
}

fn parse_key(setting: &str, text: &str) -> Result<Arc<Key>> {
    let bad = || {
        Error::invalid(
            setting,
            "must be 32 random bytes in base64 (e.g. `openssl rand -base64 32`)",
        )
    };
    let bytes = BASE64.decode(text.trim()).map_err(|_| bad())?;
    if bytes.len() != KEY_LEN {
        return Err(bad());
    }
    let aead = UnboundKey::new(&CHACHA20_POLY1305, &bytes).map_err(|_| bad())?;
    let root = hmac::Key::new(hmac::HMAC_SHA256, &bytes);
    let audit = hmac::sign(&root, b"traitforge/audit-fingerprint/v1");
    Ok(Arc::new(Key {
        aead: LessSafeKey::new(aead),
        audit: hmac::Key::new(hmac::HMAC_SHA256, audit.as_ref()),
    }))
}

fn open_with(key: &Key, owner: Uuid, sealed: &str) -> Option<Value> {
    let mut bytes = BASE64.decode(sealed).ok()?;
    if bytes.len() < NONCE_LEN {
        return None;
    }
    let nonce = Nonce::try_assume_unique_for_key(&bytes[..NONCE_LEN]).ok()?;
    let plain = key
        .aead
        .open_within(nonce, Aad::from(owner.as_bytes()), &mut bytes, NONCE_LEN..)
        .ok()?;
    serde_json::from_slice(plain).ok()
}

/// Whether a stored value is sealed (else it predates sealing).
pub fn is_sealed(stored: &Value) -> bool {
    sealed_text(stored).is_some()
}

fn sealed_text(stored: &Value) -> Option<&str> {
    let fields = stored.as_object()?;
    (fields.len() == 1)
        .then(|| fields.get(SEALED_FIELD)?.as_str())
        .flatten()
}

/// The key of an engine: `SECRETS_KEY` when given; for an SQLite file, the
/// key file beside it (made with mode 0600 when missing); for an in-memory
/// SQLite database a new key; else (PostgreSQL without a key) none.
pub fn engine_key(
    configured: Option<&str>,
    previous: Option<&str>,
    database_url: &str,
) -> Result<Option<SecretsKey>> {
    let given = |t: &&str| !t.trim().is_empty();
    if let Some(text) = configured.filter(given) {
        let key = SecretsKey::from_base64(text)?;
        return match previous.filter(given) {
            Some(previous) => key.with_previous(previous).map(Some),
            None => Ok(Some(key)),
        };
    }
    if previous.is_some_and(|t| given(&t)) {
        return Err(Error::invalid(
            "SECRETS_KEY_PREVIOUS",
            "is only read with SECRETS_KEY (the key that replaces it)",
        ));
    }
    if !database_url.starts_with("sqlite:") {
        return Ok(None);
    }
    let file = database_url
        .strip_prefix("sqlite://")
        .map(|rest| rest.split('?').next().unwrap_or(rest))
        .filter(|f| !f.is_empty() && !f.starts_with(':'));
    match file {
        Some(file) => key_file(Path::new(&format!("{file}.secrets-key"))).map(Some),
        // In memory: the data dies with the process, and so may the key.
        None => SecretsKey::from_base64(&SecretsKey::generate()?).map(Some),
    }
}

fn key_file(path: &Path) -> Result<SecretsKey> {
    let failed =
        |e: std::io::Error| Error::Unavailable(format!("secrets key file {}: {e}", path.display()));
    match std::fs::read_to_string(path) {
        Ok(text) => return SecretsKey::from_base64(&text),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(failed(e)),
        Err(_) => {}
    }
    let text = SecretsKey::generate()?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut f) => f.write_all(text.as_bytes()).map_err(failed)?,
        // Another process made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return SecretsKey::from_base64(&std::fs::read_to_string(path).map_err(failed)?);
        }
        Err(e) => return Err(failed(e)),
    }
    SecretsKey::from_base64(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretsKey {
        SecretsKey::from_base64(&SecretsKey::generate().unwrap()).unwrap()
    }

    #[test]
    fn sealed_credentials_open_only_for_their_source_and_key() {
        let (k, owner) = (key(), Uuid::now_v7());
        let plain = json!({ "access_key_id": "AKIA", "secret_access_key": "s3cr3t" });
        let sealed = k.seal(owner, &plain).unwrap();
        assert!(is_sealed(&sealed));
        assert!(!sealed.to_string().contains("s3cr3t"));
        assert_eq!(k.open(owner, &sealed).unwrap(), plain);
        // Each seal has its own nonce.
        assert_ne!(k.seal(owner, &plain).unwrap(), sealed);
        assert!(
            k.open(Uuid::now_v7(), &sealed).is_err(),
            "moved to another source"
        );
        assert!(key().open(owner, &sealed).is_err(), "another key");
        let mut tampered = BASE64
            .decode(sealed[SEALED_FIELD].as_str().unwrap())
            .unwrap();
        *tampered.last_mut().unwrap() ^= 1;
        let tampered = json!({ SEALED_FIELD: BASE64.encode(tampered) });
        assert!(k.open(owner, &tampered).is_err(), "tampered");
        // Stored before sealing: read as it is.
        assert_eq!(k.open(owner, &plain).unwrap(), plain);
    }

    #[test]
    fn a_rotated_key_opens_what_the_previous_one_sealed_until_sealed_again() {
        let (old, new, owner) = (
            SecretsKey::generate().unwrap(),
            SecretsKey::generate().unwrap(),
            Uuid::now_v7(),
        );
        let plain = json!({ "sas_token": "s3cr3t" });
        let before = SecretsKey::from_base64(&old)
            .unwrap()
            .seal(owner, &plain)
            .unwrap();
        let rotating = engine_key(Some(&new), Some(&old), "postgres://db/x")
            .unwrap()
            .unwrap();
        assert_eq!(rotating.open(owner, &before).unwrap(), plain);
        assert!(rotating.needs_sealing(owner, &before));
        let after = rotating.seal(owner, &plain).unwrap();
        assert!(!rotating.needs_sealing(owner, &after));
        assert!(rotating.needs_sealing(owner, &plain), "clear values too");
        let new_only = SecretsKey::from_base64(&new).unwrap();
        assert_eq!(new_only.open(owner, &after).unwrap(), plain);
        let e = new_only.open(owner, &before).unwrap_err();
        assert!(e.to_string().contains("SECRETS_KEY_PREVIOUS"), "{e}");
        let e = engine_key(None, Some(&old), "postgres://db/x").unwrap_err();
        assert!(e.to_string().contains("SECRETS_KEY_PREVIOUS"), "{e}");
    }

    #[test]
    fn fingerprints_are_keyed_scoped_and_survive_a_rotation() {
        let (old, new) = (
            SecretsKey::generate().unwrap(),
            SecretsKey::generate().unwrap(),
        );
        let (ws, other_ws) = (Uuid::now_v7(), Uuid::now_v7());
        let k = SecretsKey::from_base64(&old).unwrap();
        let print = &k.fingerprints(ws, "player-1")[0];
        assert_eq!(print.len(), 64);
        assert_eq!(&k.fingerprints(ws, "player-1")[0], print, "stable");
        assert_ne!(&k.fingerprints(ws, "player-2")[0], print);
        assert_ne!(&k.fingerprints(other_ws, "player-1")[0], print);
        let other_key = SecretsKey::from_base64(&new).unwrap();
        assert_ne!(&other_key.fingerprints(ws, "player-1")[0], print);
        let rotating = other_key.with_previous(&old).unwrap();
        assert_eq!(&rotating.fingerprints(ws, "player-1")[1], print);
    }

    #[test]
    fn bad_keys_are_refused_naming_the_setting() {
        for bad in ["", "not base64!", &BASE64.encode([0u8; 16])] {
            let e = SecretsKey::from_base64(bad).unwrap_err();
            assert!(e.to_string().contains("SECRETS_KEY"), "{e}");
        }
    }

    #[test]
    fn an_sqlite_database_gets_a_private_key_file_kept_across_starts() {
        let dir = std::env::temp_dir().join(format!("tf-keys-{}", Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}/t.db?mode=rwc", dir.display());
        let owner = Uuid::now_v7();
        let first = engine_key(None, None, &url).unwrap().unwrap();
        let sealed = first.seal(owner, &json!({ "k": "v" })).unwrap();
        let again = engine_key(None, None, &url).unwrap().unwrap();
        assert_eq!(again.open(owner, &sealed).unwrap(), json!({ "k": "v" }));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("t.db.secrets-key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(engine_key(None, None, "postgres://db/x").unwrap().is_none());
        assert!(engine_key(None, None, "sqlite::memory:").unwrap().is_some());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
