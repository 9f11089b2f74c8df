//! Room modes as IRC writes them: parsing `+nt-k key`, rendering the changes made, matching
//! ban masks.
//!
//! The letters are IRC's because IRC is where people learnt them, and the line protocol takes
//! them as they are (`/mode +o bob`, `/mode +k secret`): one grammar for every protocol. What
//! each mode *does* is in `core::channel`; this file only reads and writes them.

use super::error::ChatError;
use super::refusal::Refusal;

/// The longest room key.
pub const KEY_LEN: usize = 32;

/// A room mode (its IRC letter in brackets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelMode {
    /// `i`: only invited people may join.
    InviteOnly,
    /// `m`: only operators and voiced members may talk.
    Moderated,
    /// `n`: only members may talk (off: anybody may send to the room).
    NoExternal,
    /// `s`: left out of room lists for non-members.
    Secret,
    /// `t`: only operators may set the topic.
    TopicLocked,
    /// `k KEY`: a key is needed to join.
    Key,
    /// `l N`: at most N members.
    Limit,
    /// `b MASK`: people matching MASK may not join nor talk.
    Ban,
    /// `e MASK`: exceptions to the bans.
    Except,
    /// `I MASK`: people matching MASK may join an invite-only room.
    InviteException,
    /// `o NICK`: a room operator.
    Op,
    /// `v NICK`: may talk in a moderated room.
    Voice,
}

/// Every mode, with its letter.
const LETTERS: [(ChannelMode, char); 12] = [
    (ChannelMode::InviteOnly, 'i'),
    (ChannelMode::Moderated, 'm'),
    (ChannelMode::NoExternal, 'n'),
    (ChannelMode::Secret, 's'),
    (ChannelMode::TopicLocked, 't'),
    (ChannelMode::Key, 'k'),
    (ChannelMode::Limit, 'l'),
    (ChannelMode::Ban, 'b'),
    (ChannelMode::Except, 'e'),
    (ChannelMode::InviteException, 'I'),
    (ChannelMode::Op, 'o'),
    (ChannelMode::Voice, 'v'),
];

impl ChannelMode {
    /// The mode with IRC letter `letter`.
    pub fn from_letter(letter: char) -> Option<ChannelMode> {
        LETTERS.iter().find(|(_, l)| *l == letter).map(|(m, _)| *m)
    }

    /// Its IRC letter.
    pub fn letter(self) -> char {
        LETTERS
            .iter()
            .find(|(m, _)| *m == self)
            .map_or('?', |(_, l)| *l)
    }

    /// A list of masks (`b`, `e`, `I`): without a parameter, it is a request to see the list.
    pub fn is_list(self) -> bool {
        matches!(
            self,
            ChannelMode::Ban | ChannelMode::Except | ChannelMode::InviteException
        )
    }

    /// Whether setting (`on`) or unsetting it takes a parameter.
    fn takes_param(self, on: bool) -> bool {
        match self {
            ChannelMode::Key | ChannelMode::Op | ChannelMode::Voice => true,
            ChannelMode::Limit => on,
            mode => mode.is_list(),
        }
    }
}

/// One change of a room's modes: `+k secret`, `-o bob`, `+b` (a list request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeChange {
    /// Set (`+`) or unset (`-`).
    pub on: bool,
    /// Which mode.
    pub mode: ChannelMode,
    /// Its parameter, if it has one.
    pub param: Option<String>,
}

/// Reads IRC mode arguments (`["+nt-k", "key"]`): the changes they ask for, and a refusal for
/// each letter rooms do not have or each parameter that is not valid. A mode that needs a
/// parameter and has none is left out, as IRC servers do.
pub fn parse(args: &[&str]) -> (Vec<ModeChange>, Vec<ChatError>) {
    let mut params = args.iter().skip(1).copied();
    let (mut changes, mut refused) = (Vec::new(), Vec::new());
    let mut on = true;
    for letter in args.first().copied().unwrap_or("").chars() {
        match letter {
            '+' => on = true,
            '-' => on = false,
            letter => {
                let Some(mode) = ChannelMode::from_letter(letter) else {
                    let why = format!("{letter} is not a room mode chatd has");
                    refused.push(ChatError::invalid(why).because(Refusal::UnknownMode(letter)));
                    continue;
                };
                let param = match mode.takes_param(on) {
                    true => params.next().map(str::to_string),
                    false => None,
                };
                match checked(on, mode, param) {
                    Ok(Some(change)) => changes.push(change),
                    Ok(None) => {}
                    Err(e) => refused.push(e),
                }
            }
        }
    }
    (changes, refused)
}

/// A change with its parameter checked (and a mask completed: `bob` bans `bob!*@*`); `None`
/// for a change that cannot be made and needs no answer.
fn checked(
    on: bool,
    mode: ChannelMode,
    param: Option<String>,
) -> Result<Option<ModeChange>, ChatError> {
    let invalid = |param: &str, why: &str| {
        ChatError::invalid(format!("invalid +{} parameter: {why}", mode.letter())).because(
            Refusal::InvalidModeParam {
                mode: mode.letter(),
                param: param.to_string(),
            },
        )
    };
    let param = match (mode, param) {
        (ChannelMode::Key, Some(key)) if on => {
            let ok = (1..=KEY_LEN).contains(&key.len())
                && key.bytes().all(|b| b.is_ascii_graphic() && b != b',');
            if !ok {
                let why = format!("use 1 to {KEY_LEN} characters, no spaces or commas");
                return Err(invalid("*", &why));
            }
            Some(key)
        }
        (ChannelMode::Limit, Some(n)) => match n.parse::<u32>() {
            Ok(limit) if limit > 0 => Some(limit.to_string()),
            _ => return Err(invalid(&n, "a limit is a number above 0")),
        },
        (mode, Some(mask)) if mode.is_list() => Some(full_mask(&mask)),
        (ChannelMode::Key, None) if !on => None, // `-k` alone: whatever the key was
        (mode, None) if mode.takes_param(on) && !mode.is_list() => return Ok(None),
        (_, param) => param,
    };
    Ok(Some(ModeChange { on, mode, param }))
}

/// `mask` as a full `nick!user@host` mask: a bare nick is `nick!*@*`, `nick!user` is
/// `nick!user@*`.
fn full_mask(mask: &str) -> String {
    match (mask.contains('!'), mask.contains('@')) {
        (false, false) => format!("{mask}!*@*"),
        (true, false) => format!("{mask}@*"),
        (false, true) => format!("*!{mask}"),
        (true, true) => mask.to_string(),
    }
}

/// Changes as one IRC mode string and its parameters: `["+ov-k", "bob", "ann", "*"]`.
pub fn render(changes: &[ModeChange]) -> Vec<String> {
    let mut letters = String::new();
    let mut params = Vec::new();
    let mut sign = None;
    for change in changes {
        if sign != Some(change.on) {
            letters.push(if change.on { '+' } else { '-' });
            sign = Some(change.on);
        }
        letters.push(change.mode.letter());
        if let Some(param) = &change.param {
            params.push(param.clone());
        }
    }
    std::iter::once(letters).chain(params).collect()
}

/// Whether `text` matches the glob `mask` (`*` any run, `?` one character), ignoring ASCII
/// case, as IRC masks match.
pub fn glob(mask: &str, text: &str) -> bool {
    let (mask, text) = (mask.as_bytes(), text.as_bytes());
    let (mut m, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if m < mask.len() && (mask[m] == b'?' || mask[m].eq_ignore_ascii_case(&text[t])) {
            m += 1;
            t += 1;
        } else if m < mask.len() && mask[m] == b'*' {
            star = Some((m, t));
            m += 1;
        } else if let Some((sm, st)) = star {
            m = sm + 1;
            t = st + 1;
            star = Some((sm, st + 1));
        } else {
            return false;
        }
    }
    mask[m..].iter().all(|b| *b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(on: bool, mode: ChannelMode, param: Option<&str>) -> ModeChange {
        let param = param.map(str::to_string);
        ModeChange { on, mode, param }
    }

    #[test]
    fn mode_arguments_pair_letters_with_their_parameters() {
        let (changes, refused) = parse(&["+nt-k+o", "old", "bob"]);
        assert!(refused.is_empty());
        assert_eq!(
            changes,
            vec![
                change(true, ChannelMode::NoExternal, None),
                change(true, ChannelMode::TopicLocked, None),
                change(false, ChannelMode::Key, Some("old")),
                change(true, ChannelMode::Op, Some("bob")),
            ]
        );
        assert_eq!(render(&changes), ["+nt-k+o", "old", "bob"]);
    }

    #[test]
    fn bad_letters_and_parameters_are_refused_one_by_one() {
        let (changes, refused) = parse(&["+lzk", "many", "has space"]);
        assert!(changes.is_empty());
        let reasons: Vec<_> = refused.into_iter().filter_map(|e| e.refusal).collect();
        assert_eq!(reasons.len(), 3);
        assert_eq!(reasons[1], Refusal::UnknownMode('z'));
        let (_, refused) = parse(&["+l", "0"]);
        assert!(matches!(
            refused[0].refusal,
            Some(Refusal::InvalidModeParam { mode: 'l', .. })
        ));
    }

    #[test]
    fn a_list_mode_without_parameter_is_a_request_to_see_the_list() {
        let (changes, _) = parse(&["+b"]);
        assert_eq!(changes, vec![change(true, ChannelMode::Ban, None)]);
        let (changes, _) = parse(&["+b", "bar"]);
        assert_eq!(changes[0].param.as_deref(), Some("bar!*@*"));
        let (changes, _) = parse(&["+o"]);
        assert!(changes.is_empty(), "an operator change needs a nick");
    }

    #[test]
    fn masks_match_as_globs_ignoring_case() {
        assert!(glob("bar!*@*", "Bar!bar@chatd"));
        assert!(glob("*ar!*@*", "bar!u@chatd"));
        assert!(glob("b?r!*", "bor!x@y"));
        assert!(!glob("bar!*@*", "barbara!b@chatd"));
        assert!(glob("*", ""));
        assert!(!glob("a", ""));
    }
}
