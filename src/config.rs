//! How one table of a pipeline file becomes a typed config: the [`Reader`] every config type
//! reads its own table with.
//!
//! Each config type (`RouteConfig` in `layers/route/config.rs`, `ServerConfig` in
//! `pipeline/config.rs`, ...) has a `read` function that asks the reader for each option in one
//! call that holds everything known about it: its name, its type, its range and its default,
//! `r.int("capacity", 1..=10_000, 10)`. The reader turns every problem into a sentence on the
//! option's span and carries on, so a table with three mistakes gets three messages in one run;
//! at the end, the keys nobody asked for are reported as unknown options, with the list of the
//! ones the table takes. The names a string option may take come from its enum (`strum`'s
//! `VariantNames`), never from a hand-kept list.
//!
//! Why not serde's `Deserialize`: serde stops at the first problem of a table and words its
//! problems for programmers ("invalid value: integer `-1`, expected usize"). Collecting every
//! problem meant deleting the key serde named and trying again, and rewording meant parsing its
//! English; a reader of a few dozen lines asks for each option once and says what it means.
//! `Serialize` stays derived: `chatd --check` prints a config through it.
//!
//! This module sits below `pipeline` and the layers alike, so that each layer can own its config
//! type and its reading without importing the pipeline that composes it.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt::Display;
use std::net::SocketAddr;
use std::ops::{Range, RangeInclusive};
use std::str::FromStr;

use strum::VariantNames;
use toml::de::{DeTable, DeValue};

/// One problem in a table: where (a span of the file's text; `None` when no key of the file
/// holds it) and what, in words a pipeline author uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The span of the key (or the table) the problem is about.
    pub at: Option<Range<usize>>,
    /// The sentence.
    pub text: String,
}

/// Substitutes `${VAR}`s in a string value, or says why it cannot (see `pipeline::env`).
pub type Expand<'a> = &'a dyn Fn(&str) -> Result<String, String>;

/// Reads one table option by option, collecting every [`Problem`] (see the module docs).
pub struct Reader<'a, 't> {
    table: DeTable<'t>,
    header: Range<usize>,
    subject: String,
    expand: Expand<'a>,
    asked: Vec<&'static str>,
    /// Options with a problem already told: no second message about them (missing, or a rule
    /// between two options that compares a placeholder).
    failed: Vec<&'static str>,
    spans: Vec<(&'static str, Range<usize>)>,
    /// Sentences told instead of the range's for one value of an option (see [`Reader::warn`]).
    special: Vec<(&'static str, i128, &'static str)>,
    gave_up: bool,
    problems: Vec<Problem>,
}

impl<'a, 't> Reader<'a, 't> {
    /// A reader of `table`, whose header is at `header`; `subject` names it in messages
    /// (`` `[server]` ``, `` `history` ``).
    pub fn new(
        table: DeTable<'t>,
        header: Range<usize>,
        subject: &str,
        expand: Expand<'a>,
    ) -> Self {
        Reader {
            table,
            header,
            subject: subject.to_string(),
            expand,
            asked: Vec::new(),
            failed: Vec::new(),
            spans: Vec::new(),
            special: Vec::new(),
            gave_up: false,
            problems: Vec::new(),
        }
    }

    /// What `read` gives for an empty table: every option's default, for `Default` impls.
    pub fn defaults<T>(read: impl FnOnce(&mut Reader<'_, '_>) -> T) -> T {
        read(&mut Reader::new(DeTable::new(), 0..0, "", &|text| {
            Ok(text.to_string())
        }))
    }

    /// A whole number in `range`, `default` when absent (`None`: the option is required).
    pub fn int<T>(
        &mut self,
        key: &'static str,
        range: RangeInclusive<T>,
        default: impl Into<Option<T>>,
    ) -> T
    where
        T: TryFrom<i128> + Copy + PartialOrd + Display,
    {
        let default = default.into();
        let special = std::mem::take(&mut self.special);
        let value = self.get(key, default, |value| {
            let DeValue::Integer(int) = value else {
                return Err(invalid_type(key, value, "a whole number"));
            };
            let n = i128::from_str_radix(int.as_str(), int.radix()).ok();
            if let Some((_, _, text)) = special.iter().find(|(k, v, _)| *k == key && Some(*v) == n)
            {
                return Err(text.to_string());
            }
            n.and_then(|n| T::try_from(n).ok())
                .filter(|n| range.contains(n))
                .ok_or_else(|| {
                    let (low, high) = (range.start(), range.end());
                    format!(
                        "option `{key}` = {int} is out of range; it must be from {low} to {high}"
                    )
                })
        });
        value.or(default).unwrap_or(*range.start())
    }

    /// Tells `text` instead of the range's sentence when the next [`Reader::int`] of `key`
    /// finds `value`: for a value that is a likely mistake with a meaning of its own.
    pub fn warn(&mut self, key: &'static str, value: i128, text: &'static str) {
        self.special.push((key, value, text));
    }

    /// A string, `default` when absent (`None`: the option is required).
    pub fn string(&mut self, key: &'static str, default: Option<&str>) -> String {
        let value = self.get(key, default.map(str::to_string), |value| text(key, value));
        value.unwrap_or_default()
    }

    /// A string that may be absent.
    pub fn optional_string(&mut self, key: &'static str) -> Option<String> {
        self.get(key, Some(None), |value| text(key, value).map(Some))
            .flatten()
    }

    /// An IP address and port, `default` when absent.
    pub fn addr(&mut self, key: &'static str, default: SocketAddr) -> SocketAddr {
        self.get(key, Some(Some(default)), |value| addr(key, value).map(Some))
            .flatten()
            .unwrap_or(default)
    }

    /// An IP address and port that may be absent.
    pub fn optional_addr(&mut self, key: &'static str) -> Option<SocketAddr> {
        self.get(key, Some(None), |value| addr(key, value).map(Some))
            .flatten()
    }

    /// A list, empty when absent; `item` converts one entry (numbered from 1), with `${VAR}`s
    /// substituted in the strings it asks for, or says what is wrong with it.
    pub fn list<T>(
        &mut self,
        key: &'static str,
        item: impl Fn(usize, &DeValue<'_>, Expand<'_>) -> Result<T, String>,
    ) -> Vec<T> {
        let expand = self.expand;
        self.get(key, Some(Vec::new()), |value| {
            let DeValue::Array(items) = value else {
                return Err(invalid_type(key, value, "a list"));
            };
            items
                .iter()
                .enumerate()
                .map(|(i, entry)| item(i + 1, entry.get_ref(), expand))
                .collect()
        })
        .unwrap_or_default()
    }

    /// One of the names of `E`'s variants, `default` when absent.
    pub fn choice<E: FromStr + VariantNames + Copy>(&mut self, key: &'static str, default: E) -> E {
        let value = self.get(key, Some(default), |value| {
            let name = text(key, value)?;
            name.parse().map_err(|_| {
                let expected = match E::VARIANTS {
                    [one] => format!("`{one}`"),
                    [a, b] => format!("`{a}` or `{b}`"),
                    all => format!("one of `{}`", all.join("`, `")),
                };
                format!("option `{key}`: unknown variant `{name}`, expected {expected}")
            })
        });
        value.unwrap_or(default)
    }

    /// The key that selects what the rest of the table means (a layer's `kind`, a persist
    /// layer's `store`): one of `E`'s names; `noun` names it in messages. Options asked for
    /// afterwards are named after it (`` `persist` with `store = "sqlite"` ``). `None` after a
    /// problem, and the table's other keys are then left unread and unreported.
    pub fn tag<E: FromStr + VariantNames>(&mut self, key: &'static str, noun: &str) -> Option<E> {
        let expected = E::VARIANTS.join(", ");
        let Some((at, value)) = self.take(key) else {
            if !self.failed.contains(&key) {
                let problem = format!(
                    "this layer has no `{key}`; add `{key} = \"...\"` with one of: {expected}"
                );
                self.problem(Some(self.header.clone()), problem);
            }
            self.gave_up = true;
            return None;
        };
        let problem = match &value {
            DeValue::String(name) => match name.parse() {
                Ok(tag) if key == "kind" => {
                    self.subject = format!("`{name}`");
                    return Some(tag);
                }
                Ok(tag) => {
                    self.subject = format!("{} with `{key} = \"{name}\"`", self.subject);
                    return Some(tag);
                }
                Err(_) => format!("unknown {noun} `{name}`; expected one of: {expected}"),
            },
            other => format!(
                "`{key}` must be a string, not {}; expected one of: {expected}",
                other.type_str()
            ),
        };
        self.problem(Some(at), problem);
        self.gave_up = true;
        None
    }

    /// A rule between options already read: when `ok` is false, `problem` is told at the line of
    /// `keys[0]`, unless one of `keys` has a problem already (its value is a placeholder then).
    pub fn check(&mut self, keys: &[&'static str], ok: bool, problem: impl FnOnce() -> String) {
        if !ok && !keys.iter().any(|key| self.failed.contains(key)) {
            let at = self
                .spans
                .iter()
                .find(|(key, _)| *key == keys[0])
                .map(|(_, at)| at.clone());
            self.problem(at, problem());
            self.failed.push(keys[0]);
        }
    }

    /// A rule between two options read already: `a` is never `side` of `b` (`Greater`: never
    /// more, `Less`: never less); otherwise, at `a`'s line, "option `a` = 9 is more than `b` =
    /// 5; " and `why`.
    pub fn never<T: PartialOrd + Display>(
        &mut self,
        a: (&'static str, T),
        side: Ordering,
        b: (&'static str, T),
        why: &str,
    ) {
        let ((a, x), (b, y)) = (a, b);
        let word = if side == Ordering::Less {
            "less"
        } else {
            "more"
        };
        let ok = x.partial_cmp(&y) != Some(side);
        self.check(&[a, b], ok, || {
            format!("option `{a}` = {x} is {word} than `{b}` = {y}; {why}")
        });
    }

    /// Every problem found, with the keys nobody asked for reported as unknown options.
    pub fn finish(mut self) -> Vec<Problem> {
        if self.gave_up {
            return self.problems;
        }
        let takes = match self.asked.join(", ") {
            none if none.is_empty() => format!("{} takes no options", self.subject),
            list => format!("{} takes: {list}", self.subject),
        };
        for (key, _) in std::mem::take(&mut self.table) {
            let problem = format!("unknown option `{}`; {takes}", key.get_ref());
            self.problem(Some(key.span()), problem);
        }
        self.problems
    }

    /// Reads `key` with `convert`: `default` when absent (`None`: missing is a problem), `None`
    /// after a problem, which is told.
    fn get<T>(
        &mut self,
        key: &'static str,
        default: Option<T>,
        convert: impl FnOnce(&DeValue<'_>) -> Result<T, String>,
    ) -> Option<T> {
        self.asked.push(key);
        let Some((at, value)) = self.take(key) else {
            if default.is_none() && !self.failed.contains(&key) {
                let problem = format!("missing option `{key}`, which {} requires", self.subject);
                self.problem(Some(self.header.clone()), problem);
                self.failed.push(key);
            }
            return default;
        };
        convert(&value)
            .map_err(|problem| {
                self.problem(Some(at), problem);
                self.failed.push(key);
            })
            .ok()
    }

    /// Removes `key` from the table, its `${VAR}`s substituted; `None` when absent or when the
    /// substitution failed (told, and `key` marked failed).
    fn take(&mut self, key: &'static str) -> Option<(Range<usize>, DeValue<'t>)> {
        let (name, value) = self.table.remove_entry(key)?;
        let at = name.span();
        self.spans.push((key, at.clone()));
        let mut value = value.into_inner();
        if let DeValue::String(text) = &mut value {
            match (self.expand)(text) {
                Ok(done) => *text = Cow::Owned(done),
                Err(e) => {
                    self.problem(Some(at), format!("option `{key}`: {e}"));
                    self.failed.push(key);
                    return None;
                }
            }
        }
        Some((at, value))
    }

    fn problem(&mut self, at: Option<Range<usize>>, text: String) {
        self.problems.push(Problem { at, text });
    }
}

fn text(key: &str, value: &DeValue<'_>) -> Result<String, String> {
    match value {
        DeValue::String(text) => Ok(text.to_string()),
        other => Err(invalid_type(key, other, "a string")),
    }
}

fn addr(key: &str, value: &DeValue<'_>) -> Result<SocketAddr, String> {
    match value {
        // What `SocketAddr` says for "localhost:9001" as much as for "nonsense".
        DeValue::String(text) => text.parse().map_err(|_| {
            format!("option `{key}`: not an address; write an IP address and a port, such as \"127.0.0.1:9001\"")
        }),
        other => Err(invalid_type(key, other, "socket address")),
    }
}

/// `option `k`: invalid type: string "many", expected a whole number`, with the value shown the
/// way serde shows it, which pipeline authors have been reading in messages.
fn invalid_type(key: &str, value: &DeValue<'_>, expected: &str) -> String {
    let found = match value {
        DeValue::String(text) => format!("string {text:?}"),
        DeValue::Integer(int) => format!("integer `{int}`"),
        DeValue::Float(float) => format!("floating point `{float}`"),
        DeValue::Boolean(b) => format!("boolean `{b}`"),
        DeValue::Datetime(when) => format!("datetime `{when}`"),
        DeValue::Array(_) => "sequence".to_string(),
        DeValue::Table(_) => "map".to_string(),
    };
    format!("option `{key}`: invalid type: {found}, expected {expected}")
}
