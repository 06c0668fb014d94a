//! Helpers shared by the TOML files tokenmeter reads (price overrides, budgets): turning the parser's byte spans
//! into the 1-based lines and columns that error messages name, and dotted field paths.

use std::borrow::Cow;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let line_start = before.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
    let column = String::from_utf8_lossy(&before[line_start..]).chars().count() + 1;
    (line, column)
}

/// A key as it appears in a dotted path: bare when TOML allows, quoted otherwise.
pub(crate) fn path_key(key: &str) -> String {
    if !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}

/// A table's entries in source order (the map itself is ordered by key).
pub(crate) fn entries<'t, 'i>(table: &'t DeTable<'i>) -> Vec<(&'t Spanned<Cow<'i, str>>, &'t Spanned<DeValue<'i>>)> {
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    entries
}
