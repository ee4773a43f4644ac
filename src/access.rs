//! Who may do what: API keys, their roles, and the advertisers they act for.
//!
//! Roles (see the README's "Keys and roles"): `admin` may do everything; `advertiser`
//! manages its own campaigns; `ingest` posts conversions and inventory; `measurement`
//! reads the log and reports. The first admin key comes from the configuration (or
//! `DATA/admin.key`); every other key is minted here, shown once, and kept only as a
//! SHA-256 digest in `DATA/access.json` (mode 0600, written atomically).
//!
//! A key reads `ack_<id>_<secret>`: the id is public (listings, revocation, the audit
//! trail's `changed_by`), the 192-bit secret is not. Finding the record by id and then
//! comparing digests in constant time means neither timing nor a lookup structure
//! says anything about the secret. A plain SHA-256 suffices because the secret is
//! random: there is no password to brute-force.
//!
//! Reads (every authenticated request) load the current state with one `ArcSwap`
//! load; writes (rare) are serialised by a mutex, persisted, then swapped in, so a
//! revocation takes effect for the very next request.

use crate::secrets;
use arc_swap::ArcSwap;
use http::HeaderMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use subtle::ConstantTimeEq;

/// What a key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Advertiser,
    Ingest,
    Measurement,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "advertiser" => Some(Role::Advertiser),
            "ingest" => Some(Role::Ingest),
            "measurement" => Some(Role::Measurement),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Advertiser => "advertiser",
            Role::Ingest => "ingest",
            Role::Measurement => "measurement",
        }
    }
}

/// The holder of the key a request presented.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// `admin` for the configured admin key, else the key's id.
    pub key_id: Arc<str>,
    pub role: Role,
    /// The advertiser an `advertiser` key acts for.
    pub advertiser: Option<Arc<str>>,
}

impl Principal {
    /// The configured admin key's principal.
    pub fn admin() -> Principal {
        Principal {
            key_id: "admin".into(),
            role: Role::Admin,
            advertiser: None,
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether this principal has one of `roles` (admin has every role).
    pub fn has_role(&self, roles: &[Role]) -> bool {
        self.is_admin() || roles.contains(&self.role)
    }

    /// Whether this principal may manage the campaigns of `advertiser`.
    pub fn manages(&self, advertiser: &str) -> bool {
        self.is_admin()
            || (self.role == Role::Advertiser && self.advertiser.as_deref() == Some(advertiser))
    }
}

/// An advertiser created through the API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Advertiser {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub competitive_category: Option<String>,
    /// RFC 3339.
    pub created: String,
}

/// A key as stored: never the key itself.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoredKey {
    id: String,
    role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    advertiser: Option<String>,
    /// Hex SHA-256 of the secret part.
    sha256: String,
    created: String,
}

/// A key as listed: id, role, owner, creation time.
#[derive(Clone, Debug, Serialize)]
pub struct KeyInfo {
    pub id: String,
    pub role: Role,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertiser: Option<String>,
    pub created: String,
}

/// A freshly minted key: the only time the secret is known outside the client.
#[derive(Clone, Debug, Serialize)]
pub struct NewKey {
    pub id: String,
    pub key: String,
    pub role: Role,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertiser: Option<String>,
}

/// The persisted state: `DATA/access.json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct State {
    #[serde(default)]
    advertisers: BTreeMap<String, Advertiser>,
    #[serde(default)]
    keys: BTreeMap<String, StoredKey>,
}

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("advertiser {0:?} already exists")]
    AdvertiserExists(String),
    #[error("no advertiser {0:?} was created through the API")]
    NoSuchAdvertiser(String),
    #[error("cannot persist {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub struct Access {
    admin_key: String,
    state: ArcSwap<State>,
    path: PathBuf,
    /// Serialises writers: each copies the state, persists the copy, then swaps it in.
    write: Mutex<()>,
}

const KEY_PREFIX: &str = "ack_";

impl Access {
    /// Loads `path` (absent on first start) with the configured admin key.
    pub fn open(path: &Path, admin_key: String) -> std::io::Result<Access> {
        let state = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(e),
        };
        Ok(Access {
            admin_key,
            state: ArcSwap::from_pointee(state),
            path: path.to_path_buf(),
            write: Mutex::new(()),
        })
    }

    /// The principal of the request's `Authorization: Bearer KEY`, if the key is known.
    pub fn authenticate(&self, headers: &HeaderMap) -> Option<Principal> {
        let given = headers
            .get(http::header::AUTHORIZATION)?
            .to_str()
            .ok()?
            .strip_prefix("Bearer ")?
            .trim();
        self.principal_of(given)
    }

    /// The principal holding `key`, if it is known and not revoked.
    pub fn principal_of(&self, key: &str) -> Option<Principal> {
        if let Some(rest) = key.strip_prefix(KEY_PREFIX) {
            let (id, secret) = rest.split_once('_')?;
            let state = self.state.load();
            let stored = state.keys.get(id)?;
            let digest = secrets::hex(&Sha256::digest(secret.as_bytes()));
            if !bool::from(digest.as_bytes().ct_eq(stored.sha256.as_bytes())) {
                return None;
            }
            return Some(Principal {
                key_id: stored.id.as_str().into(),
                role: stored.role,
                advertiser: stored.advertiser.as_deref().map(Arc::from),
            });
        }
        bool::from(key.as_bytes().ct_eq(self.admin_key.as_bytes())).then(Principal::admin)
    }

    pub fn advertiser(&self, id: &str) -> Option<Advertiser> {
        self.state.load().advertisers.get(id).cloned()
    }

    pub fn advertisers(&self) -> Vec<Advertiser> {
        self.state.load().advertisers.values().cloned().collect()
    }

    /// The competitive category of every advertiser that has one.
    pub fn advertiser_categories(&self) -> BTreeMap<String, String> {
        let state = self.state.load();
        (state.advertisers.values())
            .filter_map(|a| Some((a.id.clone(), a.competitive_category.clone()?)))
            .collect()
    }

    pub fn keys(&self) -> Vec<KeyInfo> {
        let state = self.state.load();
        (state.keys.values())
            .map(|k| KeyInfo {
                id: k.id.clone(),
                role: k.role,
                advertiser: k.advertiser.clone(),
                created: k.created.clone(),
            })
            .collect()
    }

    /// Creates an advertiser and its first key.
    pub fn create_advertiser(&self, advertiser: Advertiser) -> Result<NewKey, AccessError> {
        self.change(|state| {
            if state.advertisers.contains_key(&advertiser.id) {
                return Err(AccessError::AdvertiserExists(advertiser.id.clone()));
            }
            let id = advertiser.id.clone();
            state.advertisers.insert(id.clone(), advertiser.clone());
            Ok(mint(state, Role::Advertiser, Some(id)))
        })
    }

    /// Mints a key of `role` (for `advertiser`, which must exist, when the role is
    /// `advertiser`).
    pub fn create_key(
        &self,
        role: Role,
        advertiser: Option<String>,
    ) -> Result<NewKey, AccessError> {
        self.change(|state| {
            if let Some(a) = &advertiser
                && !state.advertisers.contains_key(a)
            {
                return Err(AccessError::NoSuchAdvertiser(a.clone()));
            }
            Ok(mint(state, role, advertiser.clone()))
        })
    }

    /// Revokes a key at once; `false` when no key has this id.
    pub fn revoke(&self, id: &str) -> Result<bool, AccessError> {
        self.change(|state| Ok(state.keys.remove(id).is_some()))
    }

    /// Applies `f` to a copy of the state, persists the copy, then publishes it. A
    /// failed `f` or write leaves everything as it was.
    fn change<T>(
        &self,
        f: impl FnOnce(&mut State) -> Result<T, AccessError>,
    ) -> Result<T, AccessError> {
        let _writer = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let mut state = State::clone(&self.state.load());
        let out = f(&mut state)?;
        let json = serde_json::to_vec_pretty(&state).unwrap_or_default();
        secrets::write_private_atomic(&self.path, &json).map_err(|source| AccessError::Io {
            path: self.path.clone(),
            source,
        })?;
        self.state.store(Arc::new(state));
        Ok(out)
    }
}

/// A new key of `role` stored (hashed) in `state`.
fn mint(state: &mut State, role: Role, advertiser: Option<String>) -> NewKey {
    let id = secrets::hex(&rand::random::<[u8; 8]>());
    let secret = secrets::hex(&rand::random::<[u8; 24]>());
    state.keys.insert(
        id.clone(),
        StoredKey {
            id: id.clone(),
            role,
            advertiser: advertiser.clone(),
            sha256: secrets::hex(&Sha256::digest(secret.as_bytes())),
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        },
    );
    NewKey {
        key: format!("{KEY_PREFIX}{id}_{secret}"),
        id,
        role,
        advertiser,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path) -> Access {
        Access::open(&dir.join("access.json"), "ak_admin".into()).unwrap()
    }

    fn advertiser(id: &str) -> Advertiser {
        Advertiser {
            id: id.into(),
            name: id.to_uppercase(),
            competitive_category: Some("video".into()),
            created: "2026-11-22T00:00:00Z".into(),
        }
    }

    #[test]
    fn keys_authenticate_survive_reopening_and_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let access = open(dir.path());
        let adv = access.create_advertiser(advertiser("streamly")).unwrap();
        let ingest = access.create_key(Role::Ingest, None).unwrap();
        let p = access.principal_of(&adv.key).unwrap();
        assert_eq!(p.role, Role::Advertiser);
        assert!(p.manages("streamly") && !p.manages("other"));
        assert_eq!(access.principal_of("ak_admin"), Some(Principal::admin()));

        let text = std::fs::read_to_string(dir.path().join("access.json")).unwrap();
        assert!(
            !text.contains(&adv.key[KEY_PREFIX.len() + 17..]),
            "the secret is never stored"
        );

        let reopened = open(dir.path());
        assert_eq!(
            reopened.principal_of(&ingest.key).unwrap().role,
            Role::Ingest
        );
        assert!(reopened.revoke(&ingest.id).unwrap());
        assert!(
            reopened.principal_of(&ingest.key).is_none(),
            "revoked at once"
        );
        assert!(!reopened.revoke(&ingest.id).unwrap());
    }

    #[test]
    fn forged_and_mangled_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let access = open(dir.path());
        let k = access.create_key(Role::Measurement, None).unwrap();
        let mut forged = k.key.clone();
        let last = forged.pop().unwrap();
        forged.push(if last == '0' { '1' } else { '0' });
        for bad in [
            forged.as_str(),
            "ack_",
            "ack_x",
            "ack__",
            "",
            "ak_admin2",
            "Bearer",
        ] {
            assert!(access.principal_of(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn duplicates_and_unknown_advertisers_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let access = open(dir.path());
        access.create_advertiser(advertiser("a")).unwrap();
        assert!(matches!(
            access.create_advertiser(advertiser("a")),
            Err(AccessError::AdvertiserExists(_))
        ));
        assert!(matches!(
            access.create_key(Role::Advertiser, Some("ghost".into())),
            Err(AccessError::NoSuchAdvertiser(_))
        ));
        assert_eq!(access.keys().len(), 1, "only the first advertiser's key");
    }
}
