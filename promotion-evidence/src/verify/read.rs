//! Reading a pack's files into memory: from a directory or a tar archive, refusing what is not
//! a plain file inside the pack (links, absolute or `..` paths, files over
//! [`MAX_FILE_BYTES`](super::MAX_FILE_BYTES)) as a problem rather than following it.

use std::io::Read as _;
use std::path::{Component, Path};

use super::{Files, PackError, Problem, MAX_FILE_BYTES};

pub(super) fn read_dir(root: &Path) -> Result<(Files, Vec<Problem>), PackError> {
    let mut files = Files::new();
    let mut problems = Vec::new();
    let mut stack = vec![(root.to_owned(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let listing = std::fs::read_dir(&dir).map_err(|source| PackError::Io {
            path: dir.clone(),
            source,
        })?;
        for item in listing {
            let item = item.map_err(|source| PackError::Io {
                path: dir.clone(),
                source,
            })?;
            let name = item.file_name().to_string_lossy().into_owned();
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let path = item.path();
            let meta = std::fs::symlink_metadata(&path).map_err(|source| PackError::Io {
                path: path.clone(),
                source,
            })?;
            if meta.is_dir() {
                stack.push((path, rel));
            } else if meta.is_file() {
                if meta.len() > MAX_FILE_BYTES {
                    problems.push(Problem::new(rel, "larger than 1 GiB"));
                    continue;
                }
                let bytes = std::fs::read(&path).map_err(|source| PackError::Io {
                    path: path.clone(),
                    source,
                })?;
                files.insert(rel, bytes);
            } else {
                problems.push(Problem::new(
                    rel,
                    "not a regular file (a pack holds regular files only)",
                ));
            }
        }
    }
    Ok((files, problems))
}

pub(super) fn read_tar(path: &Path) -> Result<(Files, Vec<Problem>), PackError> {
    let archive_err = |problem: String| PackError::Archive {
        path: path.to_owned(),
        problem,
    };
    let file = std::fs::File::open(path).map_err(|source| PackError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut archive = tar::Archive::new(file);
    let mut files = Files::new();
    let mut problems = Vec::new();
    let entries = archive
        .entries()
        .map_err(|e| archive_err(format!("not a tar archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| archive_err(format!("unreadable entry: {e}")))?;
        let name = entry
            .path()
            .map_err(|e| archive_err(format!("unreadable entry name: {e}")))?
            .into_owned();
        let mut parts = Vec::new();
        let mut safe = true;
        for c in name.components() {
            match c {
                Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
                Component::CurDir => {}
                _ => safe = false,
            }
        }
        let rel = parts.join("/");
        if !safe || rel.is_empty() {
            problems.push(Problem::new(
                name.display().to_string(),
                "archive entry path is absolute or leaves the pack",
            ));
            continue;
        }
        match entry.header().entry_type() {
            tar::EntryType::Directory => continue,
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            other => {
                problems.push(Problem::new(
                    rel,
                    format!("archive entry of type {other:?}; a pack holds regular files only"),
                ));
                continue;
            }
        }
        if entry.size() > MAX_FILE_BYTES {
            problems.push(Problem::new(rel, "larger than 1 GiB"));
            continue;
        }
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| archive_err(format!("{rel}: {e}")))?;
        if files.insert(rel.clone(), bytes).is_some() {
            problems.push(Problem::new(rel, "appears twice in the archive"));
        }
    }
    Ok((files, problems))
}
