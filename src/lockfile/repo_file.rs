//! Reading the clone's files as the worker does outside the sandbox: never through a symbolic
//! link. A repository can commit a lock file as a link to `/proc/self/environ` or
//! `../../etc/passwd`; the worker must not read the worker's own files for it. Every component
//! of the path is checked with `lstat`, and the file is opened with `O_NOFOLLOW`; the sandboxed
//! tools, which may create links, have ended before the worker reads.

use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path};

/// A file bigger than this is not read (a lock file is a few MiB at most).
const MAX_BYTES: u64 = 64 * 1024 * 1024;

/// The text of `relative` under `root` (`O_NOFOLLOW`: the kernel checks the last component
/// again at the open), refused when any part of the path is a symbolic link,
/// leaves `root`, or is not a regular file.
pub fn read(root: &Path, relative: impl AsRef<Path>) -> io::Result<String> {
    let relative = relative.as_ref();
    check_no_link(root, relative)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(root.join(relative))?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", relative.display()),
        ));
    }
    let mut text = String::new();
    file.take(MAX_BYTES).read_to_string(&mut text)?;
    Ok(text)
}

/// Whether `relative` is a regular file reached through no symbolic link.
pub fn is_file(root: &Path, relative: impl AsRef<Path>) -> bool {
    let relative = relative.as_ref();
    check_no_link(root, relative).is_ok()
        && std::fs::symlink_metadata(root.join(relative)).is_ok_and(|m| m.is_file())
}

/// Refuses a path with a symbolic link in it, or one that is not a plain relative path.
fn check_no_link(root: &Path, relative: &Path) -> io::Result<()> {
    let mut here = root.to_path_buf();
    for component in relative.components() {
        let Component::Normal(name) = component else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a path inside the clone", relative.display()),
            ));
        };
        here.push(name);
        if std::fs::symlink_metadata(&here)?.file_type().is_symlink() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} is a symbolic link: the worker never reads a repository file through one",
                    relative.display()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_anywhere_on_the_path_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "worker secret").unwrap();
        std::fs::create_dir(root.path().join("app")).unwrap();
        std::fs::write(root.path().join("app/package-lock.json"), "{}").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), root.path().join("yarn.lock"))
            .unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("linked")).unwrap();
        assert_eq!(read(root.path(), "app/package-lock.json").unwrap(), "{}");
        assert!(is_file(root.path(), "app/package-lock.json"));
        for linked in ["yarn.lock", "linked/secret"] {
            let error = read(root.path(), linked).unwrap_err();
            assert!(error.to_string().contains("symbolic link"), "{error}");
            assert!(!is_file(root.path(), linked));
        }
        assert!(read(root.path(), "../secret").is_err());
        assert!(read(root.path(), "app").is_err());
    }
}
