//! Finding Claude Code transcripts on disk.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use super::{TranscriptError, TranscriptFile, UnreadableFile};

/// Folders deeper than this under `projects/` are not searched (a guard against symlink loops).
const MAX_DEPTH: usize = 16;

/// The Claude Code config dirs to read by default.
///
/// When `CLAUDE_CONFIG_DIR` is set and not empty: every path it lists (separated by commas, `~/` expanded),
/// whether it exists or not, so that a caller can report a wrong one. Otherwise whichever of
/// `$XDG_CONFIG_HOME/claude` (default `~/.config/claude`) and `~/.claude` have a `projects/` folder, in that
/// order (a config dir without one holds no transcripts, and walking the rest of it, plugins and caches, is
/// slow).
pub fn default_claude_code_dirs() -> Vec<PathBuf> {
    let home = std::env::home_dir();
    if let Some(raw) = std::env::var_os("CLAUDE_CONFIG_DIR").filter(|v| !v.is_empty()) {
        return config_dirs(&raw, home.as_deref());
    }
    standard_claude_code_dirs().into_iter().flatten().filter(|p| p.join("projects").is_dir()).collect()
}

/// The paths a `CLAUDE_CONFIG_DIR` value lists: split at commas, trimmed, `~/` expanded. On Unix the bytes are
/// kept as they are (a path that is not UTF-8 made lossy named a folder that does not exist).
fn config_dirs(raw: &OsStr, home: Option<&Path>) -> Vec<PathBuf> {
    #[cfg(unix)]
    let listed: Vec<PathBuf> = {
        use std::os::unix::ffi::OsStrExt;
        raw.as_bytes()
            .split(|&b| b == b',')
            .map(<[u8]>::trim_ascii)
            .filter(|p| !p.is_empty())
            .map(|p| match (p.strip_prefix(b"~/"), home) {
                (Some(rest), Some(home)) => home.join(OsStr::from_bytes(rest)),
                _ => PathBuf::from(OsStr::from_bytes(p)),
            })
            .collect()
    };
    #[cfg(not(unix))]
    let listed: Vec<PathBuf> = raw
        .to_string_lossy()
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match (p.strip_prefix("~/"), home) {
            (Some(rest), Some(home)) => home.join(rest),
            _ => PathBuf::from(p),
        })
        .collect();
    listed
}

/// The two config dirs Claude Code uses when `CLAUDE_CONFIG_DIR` is not set, whether they exist or not:
/// `$XDG_CONFIG_HOME/claude` (default `~/.config/claude`) and `~/.claude`; `None` without a home directory.
pub fn standard_claude_code_dirs() -> Option<[PathBuf; 2]> {
    let home = std::env::home_dir()?;
    let xdg = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".config"));
    Some([xdg.join("claude"), home.join(".claude")])
}

/// Lists the transcripts under `path`, sorted by path.
///
/// `path` may be a Claude Code config dir (it has a `projects/` folder), a `projects/` folder, one project's
/// folder (it holds `.jsonl` files), one session's folder (it holds `subagents/`; the session's own
/// `<session>.jsonl` beside it is listed too) or its `subagents/` folder, or a single `.jsonl` file (a
/// session's `<session>.jsonl`: the `<session>/subagents/` beside it is listed too). Every `.jsonl` file below
/// is found, nested folders and `subagents/` included.
/// Projects and sessions are named from `path`'s real location (`.` from inside a project's folder is that
/// project; a session's folder belongs to the project folder above it); files keep the path they were found at.
pub fn discover(path: &Path) -> Result<Vec<TranscriptFile>, TranscriptError> {
    strict(discover_reporting(path)?)
}

/// The files, or the first folder left out as the error.
fn strict(
    (files, skipped): (Vec<TranscriptFile>, Vec<UnreadableFile>),
) -> Result<Vec<TranscriptFile>, TranscriptError> {
    match skipped.into_iter().next() {
        Some(u) => Err(TranscriptError::Io { path: u.path, source: std::io::Error::other(u.error) }),
        None => Ok(files),
    }
}

/// [`discover`], going on past a folder below `path` that cannot be read (one root-owned project folder, a
/// folder deleted while it is walked): the files found, and the folders left out with the reason. Only `path`
/// itself not being readable is an error.
pub fn discover_reporting(path: &Path) -> Result<(Vec<TranscriptFile>, Vec<UnreadableFile>), TranscriptError> {
    let meta = std::fs::metadata(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => TranscriptError::NotFound(path.to_owned()),
        _ => TranscriptError::Io { path: path.to_owned(), source },
    })?;
    // Names come from the real path: `.` (the project folder one is in), `./s.jsonl` or a symbolic link name no
    // project, and a session's folder is named by the project folder above it. Files are still read (and shown)
    // at `path`.
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let folders: Vec<String> = real.iter().map(lossy).collect();
    if meta.is_file() {
        let stem = real.file_stem().map_or("unknown".into(), lossy);
        let parents = &folders[..folders.len().saturating_sub(1)];
        // Under a `projects/` folder, placed as the walk from there places it (a nested file belongs to its
        // session); a sub-agent's file by the session and project folders above its `subagents/`; otherwise the
        // folder holding it is the project.
        let (project, session, subagent) = match parents.iter().rposition(|f| f == "projects") {
            Some(i) if i + 1 < parents.len() => place(&parents[i + 1..], stem),
            _ => match subagents_parts(parents) {
                Some(parts) => place(parts, stem),
                None => (real.parent().and_then(Path::file_name).map_or("unknown".into(), lossy), stem, false),
            },
        };
        // A session's transcript: its sub-agents' files, in `<session>/subagents/` beside it, are the rest of the
        // session (as a session's folder lists the transcript beside it).
        // Beside the real file: a link to a session's transcript (`latest.jsonl`) has no folder beside it.
        let folder = real.with_extension("");
        let parts = (!subagent && folder.join("subagents").is_dir()).then(|| vec![project.clone(), session.clone()]);
        let mut files = vec![TranscriptFile {
            path: path.to_owned(),
            project: project.into(),
            session: session.into(),
            subagent,
            len: meta.len(),
        }];
        let mut skipped = Vec::new();
        if let Some(mut parts) = parts {
            // Depth 1: a sub-agent folder that cannot be read is left out, as below any folder.
            walk(&folder, &mut parts, &mut files, &mut skipped, &mut HashSet::new(), 1)?;
            files.sort_by(|a, b| a.path.as_os_str().cmp(b.path.as_os_str()));
        }
        return Ok((unique(files), skipped));
    }

    let projects = path.join("projects");
    let (root, prefix) = if projects.is_dir() {
        (projects, Vec::new())
    } else if real.file_name() == Some(OsStr::new("projects")) {
        (path.to_owned(), Vec::new())
    } else if let Some(parts) = subagents_parts(&folders) {
        // A session's `subagents/` folder: its project and session are the two folders above it.
        (path.to_owned(), parts.to_vec())
    } else if folders.len() >= 2 && folders[folders.len() - 2] == "projects" && holds_session_folders(path) {
        // A project's folder holding only session folders (its main transcripts cleaned up): its first session
        // folder was taken for the project. (Only then: a folder under a `projects` folder of one's own, such as
        // `~/projects/claude-backup`, may hold project folders.)
        (path.to_owned(), vec![folders[folders.len() - 1].clone()])
    } else if has_jsonl_file(path)? {
        // One project's folder: the project is its own name.
        let name = folders.last().cloned().unwrap_or_else(|| lossy(path.as_os_str()));
        (path.to_owned(), vec![name])
    } else if path.join("subagents").is_dir() && folders.len() >= 2 {
        // A session's folder (`<project>/<session>/subagents/…`): the project is the folder above it.
        (path.to_owned(), folders[folders.len() - 2..].to_vec())
    } else {
        (path.to_owned(), Vec::new())
    };

    let mut files = Vec::new();
    let mut skipped = Vec::new();
    let mut seen = HashSet::new();
    // A session's folder holds its sub-agents; the session's own transcript is `<project>/<session>.jsonl`,
    // beside the folder. Without it the session is half read, and a sub-agent's copy of a main-thread call
    // cannot be told from a call of its own (the loader recognizes such replays from the main lines).
    if let [project, session] = prefix.as_slice()
        && let Some(main) = real.parent().map(|p| p.join(format!("{session}.jsonl")))
        && let Ok(meta) = std::fs::metadata(&main)
        && meta.is_file()
    {
        files.push(TranscriptFile {
            path: main,
            project: project.as_str().into(),
            session: session.as_str().into(),
            subagent: false,
            len: meta.len(),
        });
    }
    walk(&root, &mut prefix.clone(), &mut files, &mut skipped, &mut seen, 0)?;
    // By the path as a string (as ccusage does): which copy of a repeated response is kept depends on it.
    files.sort_by(|a, b| a.path.as_os_str().cmp(b.path.as_os_str()));
    Ok((unique(files), skipped))
}

/// `[project, session, "subagents"]` when `folders` (a real path's components) ends in a `subagents` folder with
/// a session and a project folder above it.
fn subagents_parts(folders: &[String]) -> Option<&[String]> {
    match folders {
        [.., _, _, last] if last == "subagents" => Some(&folders[folders.len() - 3..]),
        _ => None,
    }
}

/// [`discover`] over several folders (the default ones, say): a file reached from two of them (one folder
/// linked to the other) is listed once.
pub fn discover_all(paths: &[PathBuf]) -> Result<Vec<TranscriptFile>, TranscriptError> {
    strict(discover_all_reporting(paths)?)
}

/// [`discover_all`] with [`discover_reporting`]'s leniency: folders below the given ones that cannot be read
/// (and entries that cannot be stat'ed) are left out and returned with the reason. So is one of the given
/// paths that cannot be read (a root-owned `~/.config/claude/projects` beside a readable `~/.claude`), as long
/// as another can; when none can, the first one's error. A given path that does not exist is an error.
pub fn discover_all_reporting(
    paths: &[PathBuf],
) -> Result<(Vec<TranscriptFile>, Vec<UnreadableFile>), TranscriptError> {
    let (mut files, mut skipped) = (Vec::new(), Vec::new());
    let mut first_error = None;
    let mut read_any = false;
    for p in paths {
        match discover_reporting(p) {
            Ok((f, s)) => {
                read_any = true;
                files.extend(f);
                skipped.extend(s);
            }
            // A path that is not there is the caller's to fix (the CLI leaves out a listed config dir that does
            // not exist before it gets here), as with one path.
            Err(e @ TranscriptError::NotFound(_)) => return Err(e),
            Err(e) => {
                if let TranscriptError::Io { path, source } = &e {
                    skipped.push(UnreadableFile { path: path.clone(), error: source.to_string() });
                }
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) if !read_any => Err(e),
        _ => Ok((unique(files), skipped)),
    }
}

/// The files without second names for one file (a symlinked transcript, or one folder reached two ways: the
/// same file is read once), in their order.
fn unique(mut files: Vec<TranscriptFile>) -> Vec<TranscriptFile> {
    let mut seen = HashSet::new();
    files.retain(|f| seen.insert(std::fs::canonicalize(&f.path).unwrap_or_else(|_| f.path.clone())));
    files
}

fn has_jsonl_file(dir: &Path) -> Result<bool, TranscriptError> {
    let entries = std::fs::read_dir(dir).map_err(|source| TranscriptError::Io { path: dir.to_owned(), source })?;
    Ok(entries.flatten().any(|e| is_jsonl(&e.path()) && e.path().is_file()))
}

/// Whether `dir` holds a session's folder (one with a `subagents/` folder) and no transcript of its own.
fn holds_session_folders(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    let mut sessions = false;
    for entry in entries.flatten() {
        let path = entry.path();
        if is_jsonl(&path) {
            return false;
        }
        sessions |= path.join("subagents").is_dir();
    }
    sessions
}

fn is_jsonl(path: &Path) -> bool {
    path.extension() == Some(OsStr::new("jsonl"))
}

/// A folder's or file's name as a project or session name: as it is when it is UTF-8; else each byte that is not
/// written as its escape (`\xff`), so that two names that differ only there stay two projects (with U+FFFD for
/// every such byte, `p\xff` and `p\xfe` were one).
fn lossy(s: &OsStr) -> String {
    #[cfg(unix)]
    {
        use std::fmt::Write as _;
        use std::os::unix::ffi::OsStrExt;
        let mut out = String::with_capacity(s.len());
        for chunk in s.as_bytes().utf8_chunks() {
            out.push_str(chunk.valid());
            for b in chunk.invalid() {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
        out
    }
    #[cfg(not(unix))]
    s.to_string_lossy().into_owned()
}

/// Collects the `.jsonl` files under `dir`; `parts` are the folder names from the projects root down to it. A
/// folder below the root that cannot be read, or an entry that cannot be stat'ed (a link loop), goes to
/// `skipped`; only the root itself is an error.
fn walk(
    dir: &Path,
    parts: &mut Vec<String>,
    out: &mut Vec<TranscriptFile>,
    skipped: &mut Vec<UnreadableFile>,
    seen: &mut HashSet<PathBuf>,
    depth: usize,
) -> Result<(), TranscriptError> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    // Symlinks are followed, so each folder is read once: a link back up (`loop -> .`) or a second name for a
    // folder (`~/.config/claude` linked to `~/.claude`) would read its files again, and a few such links
    // multiply the walk past any patience.
    if let Ok(real) = std::fs::canonicalize(dir)
        && !seen.insert(real)
    {
        return Ok(());
    }
    let listed = std::fs::read_dir(dir).and_then(|entries| entries.collect::<std::io::Result<Vec<_>>>());
    let mut entries = match listed {
        Ok(entries) => entries,
        Err(source) if depth == 0 => return Err(TranscriptError::Io { path: dir.to_owned(), source }),
        Err(e) => {
            skipped.push(UnreadableFile { path: dir.to_owned(), error: e.to_string() });
            return Ok(());
        }
    };
    // In name order: of two names for one folder (a symlink beside its target), which one names the project
    // must not depend on the order the directory lists them in.
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        // Follows symlinks. An entry that vanished (or a link whose target did) is skipped; one that cannot be
        // stat'ed for another reason (a link loop, a folder it may not enter) is reported, as an unlistable
        // folder is.
        let meta = match std::fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                skipped.push(UnreadableFile { path, error: e.to_string() });
                continue;
            }
        };
        let name = lossy(&entry.file_name());
        if meta.is_dir() {
            parts.push(name);
            walk(&path, parts, out, skipped, seen, depth + 1)?;
            parts.pop();
        } else if meta.is_file() && is_jsonl(&path) {
            let stem = path.file_stem().map_or_else(String::new, lossy);
            let (project, session, subagent) = place(parts, stem);
            out.push(TranscriptFile {
                path,
                project: project.into(),
                session: session.into(),
                subagent,
                len: meta.len(),
            });
        }
    }
    Ok(())
}

/// Project, session and sub-agent flag of a file from the folders above it (`parts`, from the projects root)
/// and its stem. Sub-agents are the files under a `subagents/` folder, and the `agent-<id>.jsonl` files beside
/// the sessions (Claude Code before 2.1.2 wrote them there); their calls belong to the session their lines
/// name (see the loader).
fn place(parts: &[String], stem: String) -> (String, String, bool) {
    // Claude Code names a project's folder after its working directory, separators made `-` (`-home-u-web`,
    // `C--Users-u-web`): folders above the innermost such one are not the project's (a copy kept in a
    // `projects` folder of one's own: `~/projects/claude-backup/-home-u-web/s1.jsonl` is `-home-u-web`'s, not a
    // `claude-backup` project's session `-home-u-web`). A session's folder is its id, never so named.
    let parts = match parts.iter().rposition(|p| is_project_folder_name(p)) {
        Some(i) => &parts[i..],
        None => parts,
    };
    let subagent = parts.iter().any(|p| p == "subagents") || (parts.len() == 1 && stem.starts_with("agent-"));
    let Some(project) = parts.first() else { return ("unknown".to_owned(), stem, subagent) };
    let session = match parts.len() {
        1 => stem,
        n if parts[n - 1] == "subagents" && n >= 3 => parts[n - 2].clone(),
        n => parts[n - 1].clone(),
    };
    (project.clone(), session, subagent)
}

/// A folder name as Claude Code makes one for a working directory: `-home-u-web`, or `C--Users-u-web` on Windows.
fn is_project_folder_name(name: &str) -> bool {
    let b = name.as_bytes();
    (b.len() > 1 && b[0] == b'-') || (b.len() > 3 && b[0].is_ascii_alphabetic() && &b[1..3] == b"--")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(parts: &[&str], stem: &str) -> (String, String, bool) {
        let parts: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
        place(&parts, stem.to_owned())
    }

    #[cfg(unix)]
    #[test]
    fn config_dirs_keep_bytes_that_are_not_utf8() {
        use std::os::unix::ffi::OsStrExt;
        let raw = OsStr::from_bytes(b" /data/cl\xffaude , ~/b,,");
        let home = Path::new("/home/u");
        let want = [PathBuf::from(OsStr::from_bytes(b"/data/cl\xffaude")), PathBuf::from("/home/u/b")];
        assert_eq!(config_dirs(raw, Some(home)), want);
        assert_eq!(config_dirs(OsStr::new("~/b"), None), [PathBuf::from("~/b")]);
    }

    #[cfg(unix)]
    #[test]
    fn names_that_are_not_utf8_stay_apart() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        for (project, session) in
            [(&b"p\xff"[..], &b"s\xff.jsonl"[..]), (b"p\xfe", b"s\xfe.jsonl"), (b"\xe5\xb1\xb1", b"ok.jsonl")]
        {
            let folder = dir.path().join("projects").join(OsStr::from_bytes(project));
            std::fs::create_dir_all(&folder).unwrap();
            std::fs::write(folder.join(OsStr::from_bytes(session)), "{}\n").unwrap();
        }
        let mut found: Vec<(String, String)> =
            discover(dir.path()).unwrap().into_iter().map(|f| (f.project.to_string(), f.session.to_string())).collect();
        found.sort();
        let want =
            [("p\\xfe", "s\\xfe"), ("p\\xff", "s\\xff"), ("山", "ok")].map(|(p, s)| (p.to_owned(), s.to_owned()));
        assert_eq!(found, want);
    }

    #[test]
    fn project_and_session_from_the_path() {
        assert_eq!(p(&["proj"], "s1"), ("proj".into(), "s1".into(), false));
        assert_eq!(p(&["proj", "s1"], "chat"), ("proj".into(), "s1".into(), false));
        assert_eq!(p(&["proj", "s1", "subagents"], "agent-a"), ("proj".into(), "s1".into(), true));
        assert_eq!(p(&[], "loose"), ("unknown".into(), "loose".into(), false));
        // Folders above a project's (named as Claude Code names them) are not part of the place.
        assert_eq!(p(&["claude-backup", "-home-u-web"], "s1"), ("-home-u-web".into(), "s1".into(), false));
        assert_eq!(
            p(&["bak", "C--Users-u-web", "s1", "subagents"], "agent-a"),
            ("C--Users-u-web".into(), "s1".into(), true)
        );
        assert_eq!(p(&["-home-u-web", "s1"], "chat"), ("-home-u-web".into(), "s1".into(), false));
        assert_eq!(p(&["proj", "subagents"], "agent-a"), ("proj".into(), "subagents".into(), true));
    }

    #[test]
    fn a_folder_below_the_root_that_cannot_be_read_is_left_out_and_reported() {
        // A folder that vanished mid-walk (or cannot be listed): one such folder aborted the whole run.
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("projects").join("-root-private");
        let (mut out, mut skipped, mut seen) = (Vec::new(), Vec::new(), HashSet::new());
        walk(&gone, &mut vec!["-root-private".into()], &mut out, &mut skipped, &mut seen, 1).unwrap();
        assert!(out.is_empty());
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].path, gone);
        // The root itself is still an error.
        let mut seen = HashSet::new();
        assert!(walk(&gone, &mut Vec::new(), &mut out, &mut skipped, &mut seen, 0).is_err());
    }
}
