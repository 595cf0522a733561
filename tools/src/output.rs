//! Where every command's outputs go: one policy, checked before any work starts.
//!
//! - `-` is standard output (CSV outputs only).
//! - A character device (`/dev/null`, `/dev/full`, a terminal) or a named pipe is written straight
//!   to, never through a temporary file: a rename would replace the device with a regular file. A
//!   write error there (`/dev/full`: no space left) is an error.
//! - A regular file, or a path where nothing exists yet, is written atomically: a temporary file in
//!   the same folder, synced, then renamed over the path, so a crash leaves the old file or the new
//!   one, whole.
//! - Anything else at the path is refused, not replaced: a symbolic link (give the target's path),
//!   a directory, a block device, a socket.
//! - An output may not be one of the command's inputs (same file, by device and inode), and two
//!   outputs of one command may not be the same file (`--out x.png --plot x.png`).
//! - Extensions are checked where they mean something: `.png` for plots, `.tsm` for model files,
//!   `.safetensors` for checkpoints; a CSV output may not carry one of those.
//!
//! [`plan`] checks all of this, and that the folder exists and takes a new file (by creating and
//! removing the temporary file), before the command does any work; [`Output::write`] then writes.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};

/// What an output holds, for its extension rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// CSV text; `-` is standard output.
    Csv,
    /// A PNG plot (`.png`).
    Png,
    /// A training checkpoint (`.safetensors`).
    Checkpoint,
    /// A model file (`.tsm`).
    Model,
}

impl Kind {
    fn extension(self) -> Option<&'static str> {
        match self {
            Kind::Csv => None,
            Kind::Png => Some("png"),
            Kind::Checkpoint => Some("safetensors"),
            Kind::Model => Some("tsm"),
        }
    }

    fn what(self) -> &'static str {
        match self {
            Kind::Csv => "a CSV file",
            Kind::Png => "a PNG plot",
            Kind::Checkpoint => "a checkpoint",
            Kind::Model => "a model file",
        }
    }
}

/// Where a checked output goes.
#[derive(Debug)]
enum Target {
    /// Standard output.
    Stdout,
    /// A character device or a pipe, opened for writing at planning time.
    Stream(File),
    /// A regular file (or nothing yet): written through a temporary file and a rename.
    File,
}

/// One checked output; write it with [`Output::write`].
#[derive(Debug)]
pub struct Output {
    /// The flag that named it, for messages (`--out`, `--plot`).
    pub flag: &'static str,
    /// The path as given.
    pub path: PathBuf,
    kind: Kind,
    target: Target,
}

/// An output the command will write: (flag, path, kind).
pub type Wanted<'a> = (&'static str, &'a Path, Kind);

/// Checks every output of a command against the policy (module doc) and against its `inputs`,
/// before any work. Paths of inputs that do not exist are ignored (their own errors come later).
pub fn plan(outputs: &[Wanted<'_>], inputs: &[&Path]) -> Result<Vec<Output>> {
    // Aliasing first: "this is your input" says more than "wrong extension".
    let mut seen: Vec<(&'static str, Identity)> = Vec::new();
    let stdout: Vec<&str> = outputs.iter().filter(|o| o.1.as_os_str() == "-").map(|o| o.0).collect();
    if let [first, second, ..] = stdout[..] {
        bail!("{first} and {second} both go to standard output (-); give one of them a file name");
    }
    for &(flag, path, _) in outputs {
        let Some(id) = identity(path) else { continue };
        if is_stream_path(path) {
            continue; // /dev/null twice, or as input and output, replaces nothing
        }
        if inputs.iter().any(|input| identity(input).as_ref() == Some(&id)) {
            bail!("{}: {flag} is also an input of this command; refusing to overwrite it", path.display());
        }
        if let Some((other, _)) = seen.iter().find(|(_, s)| *s == id) {
            bail!("{}: {other} and {flag} name the same file", path.display());
        }
        seen.push((flag, id));
    }
    outputs.iter().map(|&(flag, path, kind)| check_one(flag, path, kind)).collect()
}

fn is_stream_path(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| is_stream(&m.file_type()))
}

/// Checks one output (see [`plan`]).
pub fn check(flag: &'static str, path: &Path, kind: Kind) -> Result<Output> {
    Ok(plan(&[(flag, path, kind)], &[])?.remove(0))
}

fn check_one(flag: &'static str, path: &Path, kind: Kind) -> Result<Output> {
    let shown = path.display();
    if path.as_os_str() == "-" {
        if kind != Kind::Csv {
            bail!("{flag} -: {} cannot go to standard output; give a file name", kind.what());
        }
        return Ok(Output { flag, path: path.into(), kind, target: Target::Stdout });
    }
    let target = match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            let ft = meta.file_type();
            if ft.is_symlink() {
                bail!("{shown}: is a symbolic link; refusing to replace it (give the path it points to)");
            }
            if ft.is_dir() {
                bail!("{shown}: is a directory; {flag} needs a file name");
            }
            if ft.is_file() {
                if meta.permissions().readonly() {
                    bail!("{shown}: is read-only; refusing to replace it");
                }
                Target::File
            } else if is_stream(&ft) {
                let f = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|e| anyhow!("{shown}: {}", reason(&e)))?;
                Target::Stream(f)
            } else {
                bail!(
                    "{shown}: is not a regular file, a character device or a pipe; refusing to write to it"
                );
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Target::File,
        Err(e) => bail!("{shown}: {}", reason(&e)),
    };
    if let Target::File = target {
        probe_folder(path)?;
        if let Some(ext) = kind.extension() {
            if !has_extension(path, ext) {
                bail!("{shown}: {flag} must name {} ending in .{ext}", kind.what());
            }
        } else {
            for ext in ["png", "tsm", "safetensors", "npy", "gz"] {
                if has_extension(path, ext) {
                    bail!("{shown}: {flag} writes CSV text; refusing to write it under a .{ext} name");
                }
            }
        }
    }
    Ok(Output { flag, path: path.into(), kind, target })
}

#[cfg(unix)]
fn is_stream(ft: &std::fs::FileType) -> bool {
    use std::os::unix::fs::FileTypeExt;
    ft.is_char_device() || ft.is_fifo()
}

#[cfg(not(unix))]
fn is_stream(_: &std::fs::FileType) -> bool {
    false
}

fn has_extension(path: &Path, ext: &str) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

/// The folder of `path` ("." for a bare name).
fn folder(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    folder(path).join(format!(".{name}.tmp{}", std::process::id()))
}

/// Proves that the folder exists and takes a new file: creates the temporary file and removes it.
fn probe_folder(path: &Path) -> Result<()> {
    let dir = folder(path);
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => bail!("{}: {} is not a folder", path.display(), dir.display()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            bail!("{}: folder {} does not exist", path.display(), dir.display())
        }
        Err(e) => bail!("{}: folder {}: {}", path.display(), dir.display(), reason(&e)),
    }
    let tmp = temp_path(path);
    match OpenOptions::new().write(true).create_new(true).open(&tmp) {
        Ok(_) => {
            let _ = std::fs::remove_file(&tmp);
            Ok(())
        }
        // The folder exists, so "not found" here means the file system takes no new files
        // (/proc, /sys); say that rather than the OS's misleading "No such file or directory".
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            bail!("{}: folder {} does not take new files", path.display(), dir.display())
        }
        Err(e) => bail!("{}: cannot create a file in {}: {}", path.display(), dir.display(), reason(&e)),
    }
}

/// The OS reason of an I/O error, without Rust's " (os error N)" suffix.
pub fn reason(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// A file's identity (device, inode), or its canonical path where there is no inode.
#[derive(Debug, PartialEq, Eq)]
enum Identity {
    #[cfg(unix)]
    Inode(u64, u64),
    Path(PathBuf),
}

fn identity(path: &Path) -> Option<Identity> {
    if path.as_os_str() == "-" {
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Ok(m) = std::fs::metadata(path) {
            return Some(Identity::Inode(m.dev(), m.ino()));
        }
    }
    // Not there yet: the same (canonical folder, name) is the same file to be.
    let dir = std::fs::canonicalize(folder(path)).ok()?;
    Some(Identity::Path(dir.join(path.file_name()?)))
}

impl Output {
    /// Whether this output is a regular file (written atomically), not a device, pipe or stdout.
    pub fn is_file(&self) -> bool {
        matches!(self.target, Target::File)
    }

    /// What this output holds.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Writes the output with `fill`: to standard output, straight to a device or pipe, or to a
    /// temporary file that is synced and renamed over the path. Errors name the path once and the
    /// OS reason once.
    pub fn write(&mut self, fill: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> Result<()> {
        let fail = |e: io::Error| anyhow!("{}: cannot write: {}", self.path.display(), reason(&e));
        match &mut self.target {
            Target::Stdout => {
                let mut w = BufWriter::new(io::stdout().lock());
                fill(&mut w).and_then(|_| w.flush()).map_err(|e| {
                    // A closed pipe is the reader's choice; main exits 0 on it.
                    if e.kind() == io::ErrorKind::BrokenPipe {
                        anyhow::Error::new(e)
                    } else {
                        fail(e)
                    }
                })
            }
            Target::Stream(f) => {
                let mut w = BufWriter::new(f);
                fill(&mut w).and_then(|_| w.flush()).map_err(fail)
            }
            Target::File => {
                let tmp = temp_path(&self.path);
                let result = (|| -> io::Result<()> {
                    let f = File::create(&tmp)?;
                    let mut w = BufWriter::new(f);
                    fill(&mut w)?;
                    let f = w.into_inner().map_err(|e| e.into_error())?;
                    f.sync_all()?;
                    std::fs::rename(&tmp, &self.path)?;
                    // Make the rename durable too (the directory entry); best effort.
                    if let Ok(d) = File::open(folder(&self.path)) {
                        let _ = d.sync_all();
                    }
                    Ok(())
                })();
                if result.is_err() {
                    let _ = std::fs::remove_file(&tmp);
                }
                result.map_err(fail)
            }
        }
    }

    /// Writes `bytes` (see [`Output::write`]).
    pub fn write_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        self.write(|w| w.write_all(bytes))
    }
}
