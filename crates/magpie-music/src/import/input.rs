//! What `magpie import PATH...` is asked to read: plain files, folders (walked recursively) and
//! zip archives as Spotify and ListenBrainz deliver them (`my_spotify_data.zip`,
//! `listenbrainz_USER_TIME.zip`), expanded into a list of inputs, each readable as a stream with
//! its content hashed on the way through.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::error::{ImportError, display_path};

/// One file to import.
#[derive(Debug, Clone)]
pub struct Input {
    /// The file, or the zip holding it.
    pub path: PathBuf,
    /// The member inside the zip.
    pub member: Option<String>,
    /// Found by walking a folder or zip (rather than named by the user): a file there that is
    /// not listening history is passed over, not an error.
    pub discovered: bool,
    pub size: u64,
}

impl Input {
    /// How the input is named in messages: `path` or `archive.zip!member`.
    pub fn display(&self) -> String {
        display_path(&self.path, self.member.as_deref())
    }

    /// The bare file name.
    pub fn file_name(&self) -> String {
        match &self.member {
            Some(m) => m.rsplit('/').next().unwrap_or(m).to_string(),
            None => self
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }
    }

    /// `Streaming_History_Video_*` files hold video podcasts.
    pub fn is_video(&self) -> bool {
        self.file_name().contains("Streaming_History_Video")
    }
}

/// Files in folders and zips that may hold listening history (content decides the format).
/// ListenBrainz's `user.json` (the account's id and name, beside the listens) is not one.
fn is_candidate(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let base = lower.rsplit('/').next().unwrap_or(&lower);
    if base.starts_with('.') || lower.contains("__macosx/") || base == "user.json" {
        return false;
    }
    base.ends_with(".json") || base.ends_with(".jsonl") || base.ends_with(".csv")
}

/// Names that surely are listening history: in a folder or zip these are imported strictly.
pub fn is_history_name(name: &str) -> bool {
    let base = name.rsplit('/').next().unwrap_or(name);
    base.starts_with("Streaming_History_")
        || base.starts_with("endsong_")
        || base.starts_with("StreamingHistory")
        || base.to_ascii_lowercase().contains("scrobbles")
        || base.to_ascii_lowercase().contains("recenttracks")
        || base.to_ascii_lowercase().ends_with(".jsonl")
        || base.to_ascii_lowercase().starts_with("maloja")
        || base.starts_with("Apple Music Play Activity")
}

/// Expand the user's paths. Each error is about one path; the others still expand.
pub fn expand(paths: &[PathBuf]) -> (Vec<Input>, Vec<ImportError>) {
    let mut inputs = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        match std::fs::metadata(path) {
            Err(source) => errors.push(ImportError::Unreadable {
                file: path.display().to_string(),
                source,
            }),
            Ok(meta) if meta.is_dir() => walk(path, &mut inputs, &mut errors),
            Ok(meta) => {
                if is_zip(path) {
                    expand_zip(path, false, &mut inputs, &mut errors);
                } else {
                    inputs.push(Input {
                        path: path.clone(),
                        member: None,
                        discovered: false,
                        size: meta.len(),
                    });
                }
            }
        }
    }
    (inputs, errors)
}

fn walk(dir: &Path, inputs: &mut Vec<Input>, errors: &mut Vec<ImportError>) {
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(source) => {
            errors.push(ImportError::Unreadable {
                file: dir.display().to_string(),
                source,
            });
            return;
        }
    };
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if path.is_dir() {
            if !name.starts_with('.') {
                walk(&path, inputs, errors);
            }
        } else if name.to_ascii_lowercase().ends_with(".zip") {
            expand_zip(&path, true, inputs, errors);
        } else if is_candidate(&name) {
            let size = std::fs::metadata(&path).map_or(0, |m| m.len());
            inputs.push(Input {
                path,
                member: None,
                discovered: true,
                size,
            });
        }
    }
}

fn is_zip(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"PK\x03\x04"
}

fn expand_zip(
    path: &Path,
    discovered: bool,
    inputs: &mut Vec<Input>,
    errors: &mut Vec<ImportError>,
) {
    let file = path.display().to_string();
    let archive = File::open(path)
        .map_err(|source| ImportError::Unreadable {
            file: file.clone(),
            source,
        })
        .and_then(|f| {
            zip::ZipArchive::new(BufReader::new(f)).map_err(|e| ImportError::BadArchive {
                file: file.clone(),
                detail: e.to_string(),
            })
        });
    let mut archive = match archive {
        Ok(a) => a,
        Err(e) => {
            errors.push(e);
            return;
        }
    };
    let mut found = 0;
    let mut names: Vec<(String, u64)> = (0..archive.len())
        .filter_map(|i| {
            archive
                .by_index(i)
                .ok()
                .map(|m| (m.name().to_string(), m.size()))
        })
        .filter(|(name, _)| !name.ends_with('/') && is_candidate(name))
        .collect();
    names.sort();
    for (name, size) in names {
        found += 1;
        inputs.push(Input {
            path: path.to_path_buf(),
            member: Some(name),
            discovered: true,
            size,
        });
    }
    if found == 0 && !discovered {
        errors.push(ImportError::EmptyArchive { file });
    }
}

/// Open an input and hand `read` a stream of its content, hashed as it is read.
pub fn with_reader<T>(
    input: &Input,
    read: impl FnOnce(&mut HashingReader<&mut dyn Read>) -> T,
) -> Result<T, ImportError> {
    let unreadable = |source| ImportError::Unreadable {
        file: input.display(),
        source,
    };
    let file = File::open(&input.path).map_err(unreadable)?;
    match &input.member {
        None => {
            let mut file = file;
            let mut reader = HashingReader::new(&mut file as &mut dyn Read);
            Ok(read(&mut reader))
        }
        Some(member) => {
            let bad = |e: zip::result::ZipError| ImportError::BadArchive {
                file: input.display(),
                detail: e.to_string(),
            };
            let mut archive = zip::ZipArchive::new(BufReader::new(file)).map_err(bad)?;
            let mut entry = archive.by_name(member).map_err(bad)?;
            let mut reader = HashingReader::new(&mut entry as &mut dyn Read);
            Ok(read(&mut reader))
        }
    }
}

/// Passes bytes through while hashing them (SHA-256) and counting them.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// Read whatever is left (so the hash covers the whole content), then return the hex
    /// digest and the byte count.
    pub fn finish(&mut self) -> io::Result<(String, u64)> {
        io::copy(
            &mut self.inner,
            &mut HashSink(&mut self.hasher, &mut self.bytes),
        )?;
        let digest = std::mem::take(&mut self.hasher).finalize();
        Ok((hex::encode(digest), self.bytes))
    }
}

struct HashSink<'a>(&'a mut Sha256, &'a mut u64);

impl io::Write for HashSink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        *self.1 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}
