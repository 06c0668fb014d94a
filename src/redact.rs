//! Error messages without the values they quote: a parser's error for a field of the wrong type quotes the
//! field's value (`invalid type: string "Patient John Doe, …", expected u64`), and such messages reach warnings,
//! logs and the CLI's output. What kind of value it was, and where, is what a reader needs.

/// A name or value (a budget's scope, a model id) as a log line or message may show it: control characters and
/// bidirectional overrides written as `\u{1b}`, so that an id taken from a request header cannot put an escape
/// sequence on the terminal that shows the application's logs, nor reorder the line around it. Every other
/// character as it is.
pub(crate) struct Printable<'a>(pub(crate) &'a str);

/// Whether `c` is written escaped by [`Printable`].
fn unprintable(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

impl std::fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(unprintable) {
            f.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            write!(f, "{}", c.escape_unicode())?;
            rest = &rest[at + c.len_utf8()..];
        }
        f.write_str(rest)
    }
}

/// `message` with each quoted string value (`string "…"`, as serde writes an unexpected one) replaced by its
/// length, and each unknown variant's name (`` unknown variant `…` ``) likewise.
pub(crate) fn without_quoted_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    loop {
        let string = rest.find("string \"").map(|at| (at, "string \"", '"'));
        let variant = rest.find("unknown variant `").map(|at| (at, "unknown variant `", '`'));
        let Some((at, opening, close)) = [string, variant].into_iter().flatten().min_by_key(|(at, ..)| *at) else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..at]);
        let value = &rest[at + opening.len()..];
        // The value ends at its closing quote; a `\\` escape (a quote inside the value) does not end it.
        let mut chars = 0usize;
        let mut end = None;
        let mut escaped = false;
        for (i, c) in value.char_indices() {
            match c {
                _ if escaped => {
                    escaped = false;
                    chars += 1;
                }
                '\\' if close == '"' => escaped = true,
                c if c == close => {
                    end = Some(i);
                    break;
                }
                _ => chars += 1,
            }
        }
        let Some(end) = end else {
            // Cut short (a message truncated inside the value): nothing of it is kept.
            out.push_str(opening.trim_end_matches(['"', '`']));
            out.push_str("(cut)");
            return out;
        };
        let noun = if close == '"' { "string" } else { "unknown variant" };
        let plural = if chars == 1 { "" } else { "s" };
        out.push_str(&format!("{noun} of {chars} character{plural}"));
        rest = &value[end + close.len_utf8()..];
    }
}

#[cfg(test)]
mod tests {
    use super::{Printable, without_quoted_values};

    #[test]
    fn printable_escapes_control_and_direction_characters_only() {
        let shown = |s: &str| Printable(s).to_string();
        assert_eq!(shown("evil\u{1b}[31mRED\u{7}"), "evil\\u{1b}[31mRED\\u{7}");
        assert_eq!(shown("sess\u{202e}gnp.exe\n"), "sess\\u{202e}gnp.exe\\u{a}");
        assert_eq!(shown("山田 José 👨‍👩‍👧 plain"), "山田 José 👨‍👩‍👧 plain");
        assert_eq!(shown(""), "");
    }

    #[test]
    fn quoted_values_are_replaced_by_their_length() {
        let serde = serde_json::from_str::<u64>("\"Patient John Doe, SSN 123-45-6789\"").unwrap_err().to_string();
        assert!(serde.contains("John Doe"), "{serde}");
        assert_eq!(
            without_quoted_values(&serde),
            "invalid type: string of 33 characters, expected u64 at line 1 column 35"
        );
        assert_eq!(
            without_quoted_values(r#"invalid value: string "a \"quoted\" name", expected x; string "b""#),
            "invalid value: string of 15 characters, expected x; string of 1 character"
        );
        assert_eq!(
            without_quoted_values("unknown variant `Jane Roe`, expected `ok` or `error`"),
            "unknown variant of 8 characters, expected `ok` or `error`"
        );
        assert_eq!(without_quoted_values("invalid type: string \"cut sho"), "invalid type: string (cut)");
        assert_eq!(without_quoted_values("expected value at line 1 column 1"), "expected value at line 1 column 1");
    }
}
