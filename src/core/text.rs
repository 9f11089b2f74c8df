//! Characters no chat text may carry: controls, and the invisible or direction-changing ones.
//!
//! **Why refuse them.** A control character can repaint a terminal (an ANSI escape) or break a
//! store (NUL). The others are subtler, and as dangerous: they change what a reader *sees*
//! without showing themselves.
//!
//! * *Direction-changing* characters (the Unicode bidi controls: U+202A..U+202E, U+2066..U+2069,
//!   U+200E, U+200F, U+061C) reorder what follows: `x`, U+202E, `gnp.exe` reads `xexe.png` on
//!   screen (the "Trojan Source" trick), in every terminal and page that renders Unicode.
//! * *Invisible* characters (zero-width spaces and joiners, the word joiner, the byte-order mark,
//!   the soft hyphen, Hangul fillers, invisible operators, other format characters) and the *tag*
//!   characters U+E0000..U+E007F hide text in plain sight: two lines that look the same differ,
//!   or a message carries a hidden payload that a program (a bot, a language model) reads and a
//!   person does not.
//!
//! They are refused, not stripped, so that the sender learns why, with the code point and its
//! name: `found U+202E RIGHT-TO-LEFT OVERRIDE`.
//!
//! **Two exceptions keep ordinary text working.** The zero-width joiner and non-joiner (U+200D,
//! U+200C) are part of how emoji sequences (a family: man ZWJ woman ZWJ girl) and several scripts
//! (Persian, the Indic scripts) are written. They are allowed *between two visible characters
//! that are not ASCII*, where they join or separate what they sit between, and refused anywhere
//! else (at an edge, next to a space, inside a Latin word where they would only hide a seam). And
//! tag characters are allowed only as an emoji flag's tag sequence (a black flag U+1F3F4, 1 to 6
//! tag letters or digits, the cancel tag U+E007F: the flag of England or Scotland), which bounds
//! what could hide in one to six characters per flag.

/// What is wrong with a character: `found U+202E RIGHT-TO-LEFT OVERRIDE` follows the kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A control character (C0, DEL, C1), tab excepted.
    Control(char),
    /// A bidi control.
    Direction(char),
    /// An invisible or tag character out of place.
    Invisible(char),
}

impl Refusal {
    /// The refused character.
    pub fn char(&self) -> char {
        match *self {
            Refusal::Control(c) | Refusal::Direction(c) | Refusal::Invisible(c) => c,
        }
    }

    /// `control characters`, `direction-changing characters` or `invisible characters`: what a
    /// rule refuses, for "... are not allowed in messages".
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::Control(_) => "control characters",
            Refusal::Direction(_) => "direction-changing characters",
            Refusal::Invisible(_) => "invisible characters",
        }
    }

    /// `U+202E RIGHT-TO-LEFT OVERRIDE`: the code point, and for a character the sender cannot
    /// see, its name when it has a short one (a control keeps the bare code point, `U+001B`).
    pub fn code_point(&self) -> String {
        let c = self.char();
        let name = match self {
            Refusal::Control(_) => None,
            Refusal::Direction(_) | Refusal::Invisible(_) => name(c),
        };
        match name {
            Some(name) => format!("U+{:04X} {name}", c as u32),
            None => format!("U+{:04X}", c as u32),
        }
    }
}

/// The first character of `text` that chat text may not carry, if any (see the module docs).
pub fn find_refused(text: &str) -> Option<Refusal> {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if let Some(flag_end) = emoji_tag_sequence(&chars, i) {
            i = flag_end;
            continue;
        }
        if c.is_control() && c != '\t' {
            return Some(Refusal::Control(c));
        }
        if is_bidi_control(c) {
            return Some(Refusal::Direction(c));
        }
        if is_joiner(c) {
            let visible_non_ascii = |n: Option<&char>| {
                n.is_some_and(|n| !n.is_ascii() && !n.is_whitespace() && !is_invisible(*n))
            };
            let before = i.checked_sub(1).and_then(|b| chars.get(b));
            if !(visible_non_ascii(before) && visible_non_ascii(chars.get(i + 1))) {
                return Some(Refusal::Invisible(c));
            }
        } else if is_invisible(c) {
            return Some(Refusal::Invisible(c));
        }
        i += 1;
    }
    None
}

/// Whether `c` must be shown escaped (`\u{202e}`) when a server message quotes what a client
/// sent: a control, direction-changing or invisible character would act on the reader's screen
/// (or hide) instead of being read.
pub fn quoted_escaped(c: char) -> bool {
    c.is_control() || is_bidi_control(c) || is_invisible(c)
}

/// The bidi controls: embeddings, overrides, isolates and the implicit marks.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The zero-width joiner and non-joiner, allowed between two visible non-ASCII characters.
fn is_joiner(c: char) -> bool {
    matches!(c, '\u{200C}' | '\u{200D}')
}

/// Characters that occupy no visible space (Unicode's default-ignorable code points, less the
/// variation selectors that emoji need, plus the blank fillers that render as nothing).
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}'                      // soft hyphen
        | '\u{034F}'                    // combining grapheme joiner
        | '\u{115F}' | '\u{1160}'       // Hangul choseong and jungseong fillers
        | '\u{17B4}' | '\u{17B5}'       // Khmer inherent vowels
        | '\u{180B}'..='\u{180F}'       // Mongolian free variation selectors, vowel separator
        | '\u{200B}'..='\u{200D}'       // zero width space, non-joiner, joiner
        | '\u{2060}'..='\u{2065}'       // word joiner, invisible operators
        | '\u{206A}'..='\u{206F}'       // deprecated format characters
        | '\u{2800}'                    // braille pattern blank
        | '\u{3164}'                    // Hangul filler
        | '\u{FEFF}'                    // zero width no-break space (byte-order mark)
        | '\u{FFA0}'                    // halfwidth Hangul filler
        | '\u{FFF0}'..='\u{FFFB}'       // interlinear annotation controls
        | '\u{1BCA0}'..='\u{1BCA3}'     // shorthand format controls
        | '\u{1D173}'..='\u{1D17A}'     // musical symbol format controls
        | '\u{E0000}'..='\u{E007F}'     // tag characters (except in a flag, see above)
        | '\u{E0080}'..='\u{E00FF}'     // unassigned, default-ignorable
        | '\u{E01F0}'..='\u{E0FFF}'     // unassigned, default-ignorable
    )
}

/// If `chars[i]` is a black flag starting an emoji tag sequence (1 to 6 tag letters or digits,
/// then the cancel tag), the index just past the sequence.
fn emoji_tag_sequence(chars: &[char], i: usize) -> Option<usize> {
    if chars.get(i) != Some(&'\u{1F3F4}') {
        return None;
    }
    let tags = chars[i + 1..]
        .iter()
        .take_while(|c| matches!(c, '\u{E0030}'..='\u{E0039}' | '\u{E0061}'..='\u{E007A}'))
        .count();
    let cancel = i + 1 + tags;
    ((1..=6).contains(&tags) && chars.get(cancel) == Some(&'\u{E007F}')).then_some(cancel + 1)
}

/// The names of the characters a sender is most likely to meet in an error.
fn name(c: char) -> Option<&'static str> {
    Some(match c {
        '\u{00AD}' => "SOFT HYPHEN",
        '\u{061C}' => "ARABIC LETTER MARK",
        '\u{200B}' => "ZERO WIDTH SPACE",
        '\u{200C}' => "ZERO WIDTH NON-JOINER",
        '\u{200D}' => "ZERO WIDTH JOINER",
        '\u{200E}' => "LEFT-TO-RIGHT MARK",
        '\u{200F}' => "RIGHT-TO-LEFT MARK",
        '\u{202A}' => "LEFT-TO-RIGHT EMBEDDING",
        '\u{202B}' => "RIGHT-TO-LEFT EMBEDDING",
        '\u{202C}' => "POP DIRECTIONAL FORMATTING",
        '\u{202D}' => "LEFT-TO-RIGHT OVERRIDE",
        '\u{202E}' => "RIGHT-TO-LEFT OVERRIDE",
        '\u{2060}' => "WORD JOINER",
        '\u{2066}' => "LEFT-TO-RIGHT ISOLATE",
        '\u{2067}' => "RIGHT-TO-LEFT ISOLATE",
        '\u{2068}' => "FIRST STRONG ISOLATE",
        '\u{2069}' => "POP DIRECTIONAL ISOLATE",
        '\u{3164}' => "HANGUL FILLER",
        '\u{FEFF}' => "ZERO WIDTH NO-BREAK SPACE",
        '\u{E0000}'..='\u{E007F}' => "TAG CHARACTER",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> Option<String> {
        find_refused(text).map(|r| format!("{}: {}", r.kind(), r.code_point()))
    }

    #[test]
    fn plain_text_of_any_script_passes() {
        for text in [
            "hello",
            "tab\tok",
            "héllo wörld",
            "日本語のテキスト",
            "שלום עולם",
            "مرحبا بالعالم",
            "emoji 🎉 ❤️ 👍🏽",
        ] {
            assert_eq!(refused(text), None, "{text}");
        }
    }

    #[test]
    fn controls_are_refused_with_their_code_point() {
        assert_eq!(
            refused("a\u{1b}[2J").as_deref(),
            Some("control characters: U+001B")
        );
        assert_eq!(
            refused("\u{85}").as_deref(),
            Some("control characters: U+0085")
        );
    }

    #[test]
    fn direction_changing_characters_are_refused() {
        assert_eq!(
            refused("x\u{202E}gnp.exe").as_deref(),
            Some("direction-changing characters: U+202E RIGHT-TO-LEFT OVERRIDE")
        );
        for c in [
            '\u{061C}', '\u{200E}', '\u{200F}', '\u{202A}', '\u{2066}', '\u{2069}',
        ] {
            let refusal = find_refused(&format!("a{c}b")).unwrap();
            assert_eq!(refusal, Refusal::Direction(c));
        }
    }

    #[test]
    fn invisible_and_tag_characters_are_refused() {
        assert_eq!(
            refused("pay\u{200B}pal").as_deref(),
            Some("invisible characters: U+200B ZERO WIDTH SPACE")
        );
        assert_eq!(
            refused("hi\u{E0041}\u{E0042}").as_deref(),
            Some("invisible characters: U+E0041 TAG CHARACTER")
        );
        for c in [
            '\u{00AD}', '\u{2060}', '\u{FEFF}', '\u{3164}', '\u{180E}', '\u{2064}',
        ] {
            assert_eq!(find_refused(&format!("a{c}b")), Some(Refusal::Invisible(c)));
        }
    }

    #[test]
    fn joiners_are_allowed_only_between_visible_non_ascii_characters() {
        let family = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}";
        assert_eq!(refused(family), None, "an emoji family");
        assert_eq!(refused("می\u{200C}خواهم"), None, "a Persian word");
        for text in [
            "a\u{200D}b",
            "\u{200D}x",
            "\u{1F468}\u{200D}",
            "\u{1F468}\u{200D} x",
        ] {
            assert_eq!(
                find_refused(text),
                Some(Refusal::Invisible('\u{200D}')),
                "{text:?}"
            );
        }
        assert_eq!(
            find_refused("\u{1F468}\u{200D}\u{200B}\u{1F469}"),
            Some(Refusal::Invisible('\u{200D}'))
        );
    }

    #[test]
    fn tag_characters_are_allowed_in_an_emoji_flag_only() {
        let england = "\u{1F3F4}\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}";
        assert_eq!(refused(&format!("go {england}!")), None);
        // Longer than a subdivision code, or without its cancel tag: a hiding place.
        let long =
            "\u{1F3F4}\u{E0061}\u{E0061}\u{E0061}\u{E0061}\u{E0061}\u{E0061}\u{E0061}\u{E007F}";
        assert!(find_refused(long).is_some());
        assert!(find_refused("\u{1F3F4}\u{E0067}\u{E0062}").is_some());
        assert_eq!(refused("\u{1F3F4} plain black flag"), None);
    }
}
