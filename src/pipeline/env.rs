//! `${VAR}` substitution in the string values of a pipeline file.
//!
//! A pipeline file is meant to be committed, while addresses, passwords and instance names differ
//! per machine. So any string value may name environment variables, the way a shell or Docker
//! Compose file does:
//!
//! | written            | becomes                                                    |
//! |--------------------|------------------------------------------------------------|
//! | `${VAR}`           | the value of `VAR`; an error when `VAR` is not set          |
//! | `${VAR:-fallback}` | the value of `VAR`, or `fallback` when `VAR` is unset or empty |
//! | `$${`              | a literal `${` (the escape)                                 |
//! | any other `$`      | itself: `"$5"` stays `"$5"`                                 |
//!
//! Only string *values* are substituted, never keys, and the result is not scanned again, so a
//! variable whose value contains `${` cannot inject another lookup. A fallback runs up to the first
//! `}`, so it cannot itself contain `}`. Since only strings are substituted, a number option
//! cannot come from a variable: `capacity = "${CAP}"` is a string, and is refused as one.
//!
//! [`substitute`] takes the lookup as a closure instead of reading the process environment, which
//! keeps it pure: tests pass a map, and only [`super::load::load_file`] hands it the real
//! environment.

use thiserror::Error;

/// Why a string could not be substituted. Each variant says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EnvError {
    /// `${NAME}` names a variable that is not set, and gives no `:-` fallback.
    #[error(
        "environment variable `{name}` is not set and has no default \
         (set it, or write `${{{name}:-default}}`)"
    )]
    Unset {
        /// The variable's name.
        name: String,
    },
    /// A `${` is never closed by `}`.
    #[error("`${{` is never closed by `}}` (write `$${{` for a literal `${{`)")]
    Unterminated,
    /// `${}` or `${:-fallback}`: no variable name at all.
    #[error("`${{}}` names no variable (write `${{NAME}}`)")]
    EmptyName,
    /// The name has characters a variable name cannot have.
    #[error(
        "`{name}` is not a variable name: use letters, digits and `_`, not starting with a \
         digit{hint}"
    )]
    InvalidName {
        /// The name as written.
        name: String,
        /// A suggestion when the mistake looks like a known shell form, otherwise empty.
        hint: String,
    },
}

/// Replaces every `${VAR}` and `${VAR:-fallback}` in `input`, asking `lookup` for each variable.
///
/// `lookup` returns `None` for an unset variable. An empty value counts as set for `${VAR}` but
/// falls back for `${VAR:-fallback}`, as in a POSIX shell.
///
/// # Errors
///
/// The first problem in `input`: an unset variable without fallback, an unterminated `${`, or an
/// empty or invalid variable name.
pub fn substitute(
    input: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, EnvError> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar..];
        if let Some(tail) = after.strip_prefix("$${") {
            // The escape: `$${` is a literal `${`, never a lookup.
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let close = tail.find('}').ok_or(EnvError::Unterminated)?;
            out.push_str(&expand(&tail[..close], lookup)?);
            rest = &tail[close + 1..];
        } else {
            // A `$` not followed by `{` is ordinary text.
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Expands the inside of one `${...}`: `NAME` or `NAME:-fallback`.
fn expand(inner: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, EnvError> {
    let (name, fallback) = match inner.split_once(":-") {
        Some((name, fallback)) => (name, Some(fallback)),
        None => (inner, None),
    };
    check_name(name)?;
    match (lookup(name), fallback) {
        (Some(value), Some(fallback)) if value.is_empty() => Ok(fallback.to_string()),
        (Some(value), _) => Ok(value),
        (None, Some(fallback)) => Ok(fallback.to_string()),
        (None, None) => Err(EnvError::Unset {
            name: name.to_string(),
        }),
    }
}

/// Accepts the portable shell variable names: `[A-Za-z_][A-Za-z0-9_]*`.
fn check_name(name: &str) -> Result<(), EnvError> {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return Err(EnvError::EmptyName);
    };
    let valid = (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        return Ok(());
    }
    // `${VAR-x}` and `${VAR:x}` are near misses of the supported `${VAR:-x}`.
    let hint = match name.split_once(['-', ':']) {
        Some((stem, fallback)) if check_name(stem).is_ok() => {
            format!(" (for a default, write `${{{stem}:-{fallback}}}`)")
        }
        _ => String::new(),
    };
    Err(EnvError::InvalidName {
        name: name.to_string(),
        hint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake environment: `HOST=example.org`, `EMPTY=` and nothing else.
    fn fake(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("example.org".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn sub(input: &str) -> Result<String, EnvError> {
        substitute(input, &fake)
    }

    #[test]
    fn text_without_variables_is_unchanged() {
        assert_eq!(sub("127.0.0.1:9001").unwrap(), "127.0.0.1:9001");
        assert_eq!(sub("").unwrap(), "");
        assert_eq!(sub("héllo wörld").unwrap(), "héllo wörld");
    }

    #[test]
    fn a_set_variable_is_substituted() {
        assert_eq!(sub("${HOST}").unwrap(), "example.org");
        assert_eq!(
            sub("http://${HOST}:80/${HOST}").unwrap(),
            "http://example.org:80/example.org"
        );
    }

    #[test]
    fn the_default_is_used_when_unset_or_empty() {
        assert_eq!(sub("${PORT:-9001}").unwrap(), "9001");
        assert_eq!(sub("${EMPTY:-x}").unwrap(), "x");
        assert_eq!(sub("${PORT:-}").unwrap(), "");
        assert_eq!(sub("${HOST:-other}").unwrap(), "example.org");
    }

    #[test]
    fn an_empty_variable_without_default_is_empty() {
        assert_eq!(sub("[${EMPTY}]").unwrap(), "[]");
    }

    #[test]
    fn an_unset_variable_without_default_is_named() {
        let err = sub("a ${NOPE} b").unwrap_err();
        assert_eq!(
            err,
            EnvError::Unset {
                name: "NOPE".to_string()
            }
        );
        assert!(err.to_string().contains("`NOPE` is not set"), "{err}");
    }

    #[test]
    fn dollar_dollar_brace_is_a_literal() {
        assert_eq!(sub("$${HOST}").unwrap(), "${HOST}");
        assert_eq!(sub("$${").unwrap(), "${");
    }

    #[test]
    fn other_dollars_are_literal() {
        assert_eq!(sub("costs $5, $$ or $").unwrap(), "costs $5, $$ or $");
    }

    #[test]
    fn substituted_values_are_not_scanned_again() {
        let lookup = |_: &str| Some("${HOST}".to_string());
        assert_eq!(substitute("${X}", &lookup).unwrap(), "${HOST}");
    }

    #[test]
    fn an_unterminated_brace_is_an_error() {
        assert_eq!(sub("${HOST").unwrap_err(), EnvError::Unterminated);
        assert_eq!(
            sub("ok ${HOST} then ${").unwrap_err(),
            EnvError::Unterminated
        );
    }

    #[test]
    fn an_empty_name_is_an_error() {
        assert_eq!(sub("${}").unwrap_err(), EnvError::EmptyName);
        assert_eq!(sub("${:-x}").unwrap_err(), EnvError::EmptyName);
    }

    #[test]
    fn an_invalid_name_is_an_error() {
        for bad in ["${1ABC}", "${A B}", "${A.B}", "${É}"] {
            assert!(
                matches!(sub(bad), Err(EnvError::InvalidName { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_shell_near_miss_suggests_the_supported_form() {
        let err = sub("${PORT-9001}").unwrap_err();
        assert!(err.to_string().contains("write `${PORT:-9001}`"), "{err}");
    }
}
