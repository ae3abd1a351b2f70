//! The caches' keys: SHA-256 digests, 32 bytes whatever the token or user, so that neither cache holds a client's
//! bytes (a token may be 16 KiB) and no token is kept in memory after its request. A collision would let one token
//! pass for another; SHA-256 makes that infeasible, where a fast non-cryptographic hash would not.

use ring::digest::{Context, SHA256};

/// A cache key.
pub type Key = [u8; 32];

/// The key of a token's review for one Service: the review's audiences are the Service's, so the same token is
/// reviewed (and may be refused) for each Service it is sent to.
pub fn token_key(token: &str, namespace: &str, service: &str) -> Key {
    digest(b"token", &[token.as_bytes(), namespace.as_bytes(), service.as_bytes()])
}

/// The key of an access review: who asks (an identity's digest) to invoke which Service.
pub fn access_key(identity: &Key, namespace: &str, service: &str) -> Key {
    digest(b"access", &[identity, namespace.as_bytes(), service.as_bytes()])
}

/// The digest of what RBAC reads of a user (name, uid, groups) in one unambiguous encoding, so that two tokens of
/// the same ServiceAccount share their access reviews, and users RBAC could tell apart do not.
pub fn identity_key(encoded: &[u8]) -> Key {
    digest(b"identity", &[encoded])
}

/// SHA-256 of `kind` and the fields, each preceded by its length, so that no two lists of fields share an encoding
/// ("ab" + "c" differs from "a" + "bc").
fn digest(kind: &[u8], fields: &[&[u8]]) -> Key {
    let mut context = Context::new(&SHA256);
    for field in std::iter::once(kind).chain(fields.iter().copied()) {
        context.update(&(field.len() as u64).to_le_bytes());
        context.update(field);
    }
    let mut key = [0; 32];
    key.copy_from_slice(context.finish().as_ref());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_by_every_field_and_by_where_fields_split() {
        let base = token_key("t", "default", "hello");
        assert_eq!(base, token_key("t", "default", "hello"));
        assert_ne!(base, token_key("u", "default", "hello"));
        assert_ne!(base, token_key("t", "other", "hello"));
        assert_ne!(base, token_key("t", "default", "world"));
        assert_ne!(token_key("ab", "c", "d"), token_key("a", "bc", "d"));
        assert_ne!(
            access_key(&base, "default", "hello"),
            token_key("t", "default", "hello")
        );
        assert_ne!(identity_key(b"a"), identity_key(b"b"));
    }
}
