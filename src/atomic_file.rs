//! Writing a file so that it appears whole or not at all.
//!
//! Model files and downloaded checkpoints are tens of megabytes, written by commands that can
//! fail half-way (a bad checkpoint, a full disk, Ctrl-C). A half-written model at
//! `model/densenet121.nnef.tar` would then be found by `serve` and the build as if it were
//! good, so every such file is written to a temporary file in the same folder and renamed over
//! the destination only once complete; on failure the temporary file is removed.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use tempfile::NamedTempFile;

/// A temporary file beside `out` (same folder, so the final rename cannot cross file systems),
/// named `.NAME.XXXXXX.part`, readable like an ordinary file (0644 before the umask) once
/// renamed. Dropping it unpersisted deletes it. Creates `out`'s folder if missing.
pub fn temp_beside(out: &Path) -> io::Result<NamedTempFile> {
    let dir = match out.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut builder = tempfile::Builder::new();
    let prefix = format!(".{name}.");
    builder.prefix(&prefix).suffix(".part");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o644));
    }
    builder.tempfile_in(dir)
}

/// Flushes the temporary file to disk and renames it to `out`.
pub fn persist(temp: NamedTempFile, out: &Path) -> io::Result<()> {
    temp.as_file().sync_all()?;
    temp.persist(out).map(drop).map_err(|e| e.error)
}

/// Writes `out` through `write`, atomically: nothing is left at `out` (nor beside it) unless
/// `write` succeeded and the file was renamed into place.
pub fn write_atomically<E: From<io::Error>>(
    out: &Path,
    write: impl FnOnce(&mut BufWriter<&File>) -> Result<(), E>,
) -> Result<(), E> {
    let temp = temp_beside(out)?;
    {
        let mut writer = BufWriter::new(temp.as_file());
        write(&mut writer)?;
        writer.flush()?;
    }
    persist(temp, out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("model.onnx");
        let result: io::Result<()> = write_atomically(&out, |w| {
            w.write_all(b"half")?;
            Err(io::Error::other("broke"))
        });
        assert!(result.is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_good_write_replaces_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("sub/model.onnx");
        write_atomically::<io::Error>(&out, |w| w.write_all(b"one")).unwrap();
        write_atomically::<io::Error>(&out, |w| w.write_all(b"two")).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"two");
        assert_eq!(
            std::fs::read_dir(dir.path().join("sub")).unwrap().count(),
            1
        );
    }
}
