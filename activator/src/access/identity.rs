//! Who a token belongs to, as the TokenReview said: what the SubjectAccessReview is asked about.

use std::collections::BTreeMap;

use crate::access::keys::{Key, identity_key};

/// An authenticated user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// For a ServiceAccount, `system:serviceaccount:{namespace}:{name}`.
    pub username: String,
    pub uid: Option<String>,
    pub groups: Vec<String>,
    /// For a bound ServiceAccount token, the pod and node it was issued to and the token's own id
    /// (`authentication.kubernetes.io/credential-id`), among others.
    pub extra: BTreeMap<String, Vec<String>>,
    /// The name, uid and groups as one digest: the access reviews' cache key.
    key: Key,
}

impl Identity {
    pub fn new(
        username: String,
        uid: Option<String>,
        groups: Vec<String>,
        extra: BTreeMap<String, Vec<String>>,
    ) -> Self {
        // What RBAC decides by: the name and the groups (and the uid, the same for every token of a ServiceAccount).
        // Not `extra`: it differs for every token (its credential id), which would make every token of one
        // ServiceAccount a user of its own, reviewed anew; it is still sent with the review. JSON keeps the parts
        // apart (a missing uid is not an empty one).
        let encoded = serde_json::to_vec(&(&username, &uid, &groups)).expect("strings always encode");
        let key = identity_key(&encoded);
        Identity {
            username,
            uid,
            groups,
            extra,
            key,
        }
    }

    pub fn key(&self) -> &Key {
        &self.key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(uid: Option<&str>, groups: &[&str], extra: &[(&str, &[&str])]) -> Identity {
        Identity::new(
            "system:serviceaccount:client:caller".into(),
            uid.map(str::to_owned),
            groups.iter().map(|g| (*g).to_owned()).collect(),
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.iter().map(|s| (*s).to_owned()).collect()))
                .collect(),
        )
    }

    #[test]
    fn identities_that_rbac_could_tell_apart_have_different_keys() {
        let base = identity(Some("u1"), &["a", "b"], &[("k", &["v"])]);
        assert_eq!(base.key(), identity(Some("u1"), &["a", "b"], &[("k", &["v"])]).key());
        for other in [
            identity(None, &["a", "b"], &[("k", &["v"])]),
            identity(Some(""), &["a", "b"], &[("k", &["v"])]),
            identity(Some("u2"), &["a", "b"], &[("k", &["v"])]),
            identity(Some("u1"), &["a"], &[("k", &["v"])]),
            identity(Some("u1"), &["a,b"], &[("k", &["v"])]),
        ] {
            assert_ne!(base.key(), other.key(), "{other:?}");
        }
    }

    #[test]
    fn two_tokens_of_one_service_account_are_one_user() {
        let credential = "authentication.kubernetes.io/credential-id";
        let one = identity(Some("u1"), &["a"], &[(credential, &["JTI=1"])]);
        let other = identity(Some("u1"), &["a"], &[(credential, &["JTI=2"])]);
        assert_eq!(one.key(), other.key());
    }
}
