//! What the backends are told by the pipeline's options and must show carefully: when a write
//! counts as stored ([`Durability`]), and connection strings without their passwords
//! ([`mask_password`]).

use serde::Serialize;
use strum::{EnumString, VariantNames};

/// When the persist layer considers a message safe: the seed's approaches B and C.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, EnumString, VariantNames)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Durability {
    /// Write-behind: the message is queued for the writer and delivered at once; the store
    /// catches up in batches. Fast; a crash (not a clean stop) loses what was queued.
    #[default]
    Async,
    /// Write-ahead: the message's batch is committed before anybody sees the message, and
    /// before the sender's request is answered.
    Sync,
}

/// `postgres://user:secret@host/db` -> `postgres://user:***@host/db`, and
/// `host=h password=secret` -> `host=h password=***`.
pub fn mask_password(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((userinfo, host)) = rest.split_once('@')
            && let Some((user, _password)) = userinfo.split_once(':')
        {
            return format!("{scheme}://{user}:***@{host}");
        }
        return url.to_string();
    }
    url.split_whitespace()
        .map(|pair| match pair.split_once('=') {
            Some(("password", _)) => "password=***".to_string(),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Serializes a connection string with its password masked, so that `chatd --check` (which
/// prints the options through serde) never shows it.
///
/// # Errors
/// Those of `serializer`.
pub fn masked<S: serde::Serializer>(url: &str, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&mask_password(url))
}

#[cfg(test)]
mod tests {
    use super::mask_password;

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            mask_password("postgres://chatd:s3cret@db:5432/chatd"),
            "postgres://chatd:***@db:5432/chatd"
        );
        assert_eq!(
            mask_password("postgres://chatd@db/chatd"),
            "postgres://chatd@db/chatd"
        );
        assert_eq!(
            mask_password("host=db password=s3cret dbname=chatd"),
            "host=db password=*** dbname=chatd"
        );
    }
}
