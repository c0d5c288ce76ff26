//! API keys: where a request carries one, whether it is one of ours (in
//! constant time), and the short fingerprint logs show instead of the key.

use axum::http::{HeaderMap, header};
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::secret::Secret;

/// The header that carries a key as it is, as Anthropic's and others' clients send it.
pub const X_API_KEY: &str = "x-api-key";

/// A configured key, by its position in `server.api_keys`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(pub usize);

/// The configured keys, held as SHA-256 digests.
///
/// Comparing digests of equal length with `subtle` takes the same time
/// whether the first or the last byte differs, and every configured key is
/// compared, so timing tells an attacker neither how much of a key is right
/// nor which key almost matched.
#[derive(Clone)]
pub struct Keys {
    /// The digest of each configured key, in configuration order.
    digests: Vec<[u8; 32]>,
}

impl Keys {
    /// Holds the digests of `keys`.
    pub fn new(keys: &[Secret]) -> Self {
        Self {
            digests: keys.iter().map(|key| digest(key.expose())).collect(),
        }
    }

    /// Whether any key is configured.
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// Which configured key `presented` is, if any.
    pub fn find(&self, presented: &str) -> Option<KeyId> {
        let presented = digest(presented);
        let mut found = subtle::Choice::from(0);
        let mut index = 0u64;
        for (n, digest) in self.digests.iter().enumerate() {
            let equal = digest.ct_eq(&presented);
            index.conditional_assign(&(n as u64), equal);
            found |= equal;
        }
        bool::from(found).then(|| KeyId(usize::try_from(index).unwrap_or(usize::MAX)))
    }

    /// The fingerprint of a configured key, for logs.
    pub fn fingerprint(&self, id: KeyId) -> String {
        self.digests.get(id.0).map_or_else(String::new, hex8)
    }
}

/// The key a request presents: `Authorization: Bearer <key>` (the scheme in
/// any case), else `x-api-key: <key>`. `None` when it sends neither.
pub fn presented(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    bearer
        .or_else(|| {
            headers
                .get(X_API_KEY)
                .and_then(|value| value.to_str().ok())
                .map(str::trim)
        })
        .filter(|key| !key.is_empty())
}

/// The first 8 hex digits of the key's SHA-256, as logs show it: an operator
/// finds a key's fingerprint with `printf %s "$KEY" | sha256sum | cut -c1-8`.
pub fn fingerprint(key: &str) -> String {
    hex8(&digest(key))
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

fn hex8(digest: &[u8; 32]) -> String {
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn a_key_is_found_by_its_position() {
        let keys = Keys::new(&[
            Secret::new("first-key-0123456789"),
            Secret::new("second-key-0123456789"),
        ]);
        assert_eq!(keys.find("second-key-0123456789"), Some(KeyId(1)));
        assert_eq!(keys.find("first-key-0123456789"), Some(KeyId(0)));
        assert_eq!(keys.find("first-key-012345678"), None);
        assert_eq!(keys.find(""), None);
        assert_eq!(Keys::new(&[]).find("anything"), None);
    }

    #[test]
    fn bearer_comes_first_then_x_api_key() {
        assert_eq!(
            presented(&headers(&[
                ("authorization", "Bearer abc"),
                ("x-api-key", "xyz")
            ])),
            Some("abc")
        );
        assert_eq!(
            presented(&headers(&[("authorization", "bearer  abc ")])),
            Some("abc")
        );
        assert_eq!(presented(&headers(&[("x-api-key", "xyz")])), Some("xyz"));
        assert_eq!(
            presented(&headers(&[("authorization", "Basic dXNlcjpwdw==")])),
            None
        );
        assert_eq!(presented(&headers(&[("x-api-key", "  ")])), None);
        assert_eq!(presented(&HeaderMap::new()), None);
    }

    #[test]
    fn the_fingerprint_is_the_start_of_the_sha256() {
        // printf %s abc | sha256sum
        assert_eq!(fingerprint("abc"), "ba7816bf");
        let keys = Keys::new(&[Secret::new("abc")]);
        assert_eq!(keys.fingerprint(KeyId(0)), "ba7816bf");
    }
}
