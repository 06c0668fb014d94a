//! Paths as JSON strings, lossily: serde refuses a path that is not valid UTF-8 (a file or folder name with a
//! `\xff` byte), which failed the whole document a path is in. Such a path is written with U+FFFD in place of
//! the bytes that are not UTF-8; any other path is written as serde writes it.

use std::path::Path;

use serde::Serializer;

/// Serializes `path` as a string, lossily (`#[serde(serialize_with = "crate::lossy_path::serialize")]`).
pub(crate) fn serialize<S: Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&path.to_string_lossy())
}

/// [`serialize`] for a list of paths (`#[serde(serialize_with = "crate::lossy_path::serialize_each")]`).
pub(crate) fn serialize_each<S: Serializer>(paths: &[std::path::PathBuf], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(paths.iter().map(|p| p.to_string_lossy()))
}

#[cfg(all(test, unix))]
mod tests {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::path::PathBuf;

    use crate::journal::{SkipReason, SkippedLine};
    use crate::transcripts::{BadLine, UnreadableFile};

    #[test]
    fn paths_that_are_not_utf8_are_written_lossily() {
        let bad = PathBuf::from(OsStr::from_bytes(b"/tmp/p\xff/r.jsonl"));
        let line = BadLine { path: bad.clone(), line: 3, reason: "not a JSON object".into() };
        assert_eq!(serde_json::to_value(&line).unwrap()["path"], "/tmp/p\u{fffd}/r.jsonl");
        let file = UnreadableFile { path: bad.clone(), error: "denied".into() };
        assert_eq!(serde_json::to_value(&file).unwrap()["path"], "/tmp/p\u{fffd}/r.jsonl");
        let skipped = SkippedLine { path: bad, line: 1, reason: SkipReason::TornTail };
        assert_eq!(serde_json::to_value(&skipped).unwrap()["path"], "/tmp/p\u{fffd}/r.jsonl");
        // A UTF-8 path is written as before, and read back.
        let line = BadLine { path: PathBuf::from("/tmp/é/r.jsonl"), line: 3, reason: String::new() };
        let json = serde_json::to_string(&line).unwrap();
        assert!(json.contains(r#""path":"/tmp/é/r.jsonl""#), "{json}");
        assert_eq!(serde_json::from_str::<BadLine>(&json).unwrap(), line);
    }
}
