//! Download torchvision's DenseNet-121 weights into PyTorch's own cache, checked, then import
//! them: `densenet-lambda fetch-model [--out PATH]`.
//!
//! The checkpoint is the one the tutorial's `densenet121(weights=...)` downloads, at the same
//! URL, checked the same way (its sha256 starts with `a639ec97`, the hash in its name) and kept
//! in the same place (`$TORCH_HOME/hub/checkpoints`, as `torch.hub` computes it), so whoever
//! ran the tutorial downloads nothing, and whoever runs this first saves the tutorial the
//! download. A file already there is reused after its checksum is checked; one that fails the
//! check is refused and left alone (it is the user's). A download goes to a temporary file in
//! the cache folder and is renamed into place only once its length and checksum are right, so
//! a broken, truncated or wrong download leaves nothing behind.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::import::{import_weights, ImportError};

/// torchvision's DenseNet-121 ImageNet weights (`DenseNet121_Weights.IMAGENET1K_V1`).
pub const TORCHVISION_URL: &str = "https://download.pytorch.org/models/densenet121-a639ec97.pth";
/// The start of that file's sha256, which torchvision checks (`check_hash=True`).
pub const TORCHVISION_SHA256_PREFIX: &str = "a639ec97";
/// Overrides the download URL (a mirror, or a test's local server).
pub const URL_VAR: &str = "DENSENET121_WEIGHTS_URL";
/// Overrides the expected sha256 (full or a prefix of at least 8 hex digits); required
/// whenever [`URL_VAR`] is set, so a mirror is never trusted unchecked.
pub const SHA256_VAR: &str = "DENSENET121_WEIGHTS_SHA256";

/// Shortest sha256 prefix accepted (torchvision's file names carry 8 hex digits).
const MIN_SHA256_PREFIX: usize = 8;

/// Why the weights could not be fetched or turned into a model. Whatever the failure, nothing
/// is left at the output path and no partial file in the cache.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL is overridden without a checksum to check it against.
    #[error("{URL_VAR} is set ({url}) but {SHA256_VAR} is not: set {SHA256_VAR} to the sha256 of the file at that URL (`sha256sum FILE`; at least its first {MIN_SHA256_PREFIX} hex digits) so the download can be checked")]
    MissingChecksum { url: String },
    /// The checksum setting is not hex, or too short.
    #[error("{SHA256_VAR}={value:?} is not a sha256: give {MIN_SHA256_PREFIX} to 64 hex digits (the start of `sha256sum FILE`)")]
    BadChecksum { value: String },
    /// The URL has no file name to cache the download under.
    #[error("the weights URL {url} does not end in a file name (like …/densenet121-a639ec97.pth); set {URL_VAR} to the checkpoint's own URL")]
    BadUrl { url: String },
    /// No cache folder can be worked out.
    #[error("cannot tell where PyTorch's cache is: none of TORCH_HOME, XDG_CACHE_HOME and HOME is set; set TORCH_HOME (the checkpoint goes to $TORCH_HOME/hub/checkpoints)")]
    NoCacheDir,
    /// The server cannot be reached at all: no network, DNS failure, refused connection.
    #[error("no network: cannot reach {url} ({reason}). Offline routes: copy {file_name} into {cache_dir} and run again; or `densenet-lambda import-weights WEIGHTS.pth OUT`; or set MODEL_PATH to a model file")]
    Offline {
        url: String,
        reason: String,
        file_name: String,
        cache_dir: String,
    },
    /// The server answered with an error status.
    #[error("{url} answered HTTP {status}; check the URL (set {URL_VAR} for a mirror)")]
    Status { url: String, status: u16 },
    /// The request or the body broke off.
    #[error("the download of {url} failed after {received} bytes ({reason}); nothing was kept, run the command again")]
    Broken {
        url: String,
        received: u64,
        reason: String,
    },
    /// Fewer (or more) bytes than the server announced.
    #[error("the download of {url} is truncated: {received} bytes received, {expected} announced (Content-Length); nothing was kept, run the command again")]
    Truncated {
        url: String,
        received: u64,
        expected: u64,
    },
    /// The downloaded file is not the expected one.
    #[error("the file downloaded from {url} has sha256 {actual}, expected one starting with {expected}; nothing was kept. Check {URL_VAR} and {SHA256_VAR}, or the network path (a proxy rewriting downloads?)")]
    Checksum {
        url: String,
        expected: String,
        actual: String,
    },
    /// A file already in the cache does not match: refused, and left where it is.
    #[error("the cached checkpoint {path} has sha256 {actual}, expected one starting with {expected}: it is not the file {url} serves (an incomplete or other download?). It was left alone: delete it to download again, or set {SHA256_VAR} if it is the file you want")]
    CachedChecksum {
        path: String,
        url: String,
        expected: String,
        actual: String,
    },
    /// A local file or folder could not be read or written.
    #[error("cannot {action} {path}: {reason}")]
    Io {
        action: &'static str,
        path: String,
        reason: String,
    },
    /// The checkpoint could not be turned into a model.
    #[error(transparent)]
    Import(#[from] ImportError),
}

impl FetchError {
    /// Whether the failure was reaching the server at all (DNS, refused or unreachable
    /// connection, connect timeout): the caller can then offer the offline routes.
    pub fn is_offline(&self) -> bool {
        matches!(self, FetchError::Offline { .. })
    }
}

/// How download progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Progress {
    /// A progress bar when stderr is a terminal, else [`Progress::Log`].
    #[default]
    Auto,
    /// A progress bar on stderr.
    Bar,
    /// A few `tracing::info!` lines (start, each quarter, done): for a server's log.
    Log,
    /// Nothing.
    Silent,
}

/// A sha256 to check a download against: all 64 hex digits or a prefix of at least 8,
/// lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedSha256(String);

impl ExpectedSha256 {
    /// Checks and normalises a sha256 or prefix (case-insensitive, surrounding space ignored).
    pub fn parse(value: &str) -> Result<ExpectedSha256, FetchError> {
        let hex = value.trim().to_ascii_lowercase();
        let ok = (MIN_SHA256_PREFIX..=64).contains(&hex.len())
            && hex.bytes().all(|b| b.is_ascii_hexdigit());
        if ok {
            Ok(ExpectedSha256(hex))
        } else {
            Err(FetchError::BadChecksum {
                value: value.to_string(),
            })
        }
    }

    /// Whether a full lowercase hex digest matches.
    pub fn matches(&self, digest: &str) -> bool {
        digest.starts_with(&self.0)
    }

    /// The hex digits expected.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where the checkpoint comes from and what its sha256 must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightsSource {
    pub url: String,
    pub sha256: ExpectedSha256,
}

impl WeightsSource {
    /// torchvision's published file, checked as torchvision checks it.
    pub fn torchvision() -> WeightsSource {
        WeightsSource {
            url: TORCHVISION_URL.to_string(),
            sha256: ExpectedSha256(TORCHVISION_SHA256_PREFIX.to_string()),
        }
    }

    /// torchvision's file unless overridden: `url` replaces the URL and then requires
    /// `sha256`; `sha256` alone replaces the expected checksum of torchvision's URL.
    pub fn with_overrides(
        url: Option<&str>,
        sha256: Option<&str>,
    ) -> Result<WeightsSource, FetchError> {
        let url = url.map(str::trim).filter(|u| !u.is_empty());
        let sha256 = sha256.map(str::trim).filter(|s| !s.is_empty());
        match (url, sha256) {
            (None, None) => Ok(WeightsSource::torchvision()),
            (Some(url), None) => Err(FetchError::MissingChecksum {
                url: url.to_string(),
            }),
            (url, Some(sha)) => Ok(WeightsSource {
                url: url.unwrap_or(TORCHVISION_URL).to_string(),
                sha256: ExpectedSha256::parse(sha)?,
            }),
        }
    }

    /// [`WeightsSource::with_overrides`] from `DENSENET121_WEIGHTS_URL` and
    /// `DENSENET121_WEIGHTS_SHA256`.
    pub fn from_env() -> Result<WeightsSource, FetchError> {
        let url = std::env::var(URL_VAR).ok();
        let sha = std::env::var(SHA256_VAR).ok();
        WeightsSource::with_overrides(url.as_deref(), sha.as_deref())
    }

    /// The cache file name: the URL path's last segment, as `torch.hub` names it.
    pub fn file_name(&self) -> Result<String, FetchError> {
        let bad = || FetchError::BadUrl {
            url: self.url.clone(),
        };
        let rest = self.url.split_once("://").ok_or_else(bad)?.1;
        let path = rest.split(['?', '#']).next().unwrap_or_default();
        let (_host, path) = path.split_once('/').ok_or_else(bad)?;
        let name = path.rsplit('/').next().unwrap_or_default();
        if name.is_empty() || name == "." || name == ".." {
            return Err(bad());
        }
        Ok(name.to_string())
    }
}

/// PyTorch's checkpoint cache from the environment: `$TORCH_HOME/hub/checkpoints`, else
/// `$XDG_CACHE_HOME/torch/hub/checkpoints`, else `~/.cache/torch/hub/checkpoints`.
pub fn torch_hub_checkpoints_dir() -> Result<PathBuf, FetchError> {
    checkpoints_dir_from(
        std::env::var_os("TORCH_HOME"),
        std::env::var_os("XDG_CACHE_HOME"),
        std::env::var_os("HOME"),
    )
}

/// [`torch_hub_checkpoints_dir`] from given values: torch.hub's
/// `expanduser(getenv('TORCH_HOME', join(getenv('XDG_CACHE_HOME', '~/.cache'), 'torch')))`,
/// then `hub/checkpoints`. Empty values count as unset.
pub fn checkpoints_dir_from(
    torch_home: Option<OsString>,
    xdg_cache_home: Option<OsString>,
    home: Option<OsString>,
) -> Result<PathBuf, FetchError> {
    let set = |v: Option<OsString>| v.filter(|v| !v.is_empty()).map(PathBuf::from);
    let home = set(home);
    let torch_home = match set(torch_home) {
        Some(dir) => dir,
        None => set(xdg_cache_home)
            .unwrap_or_else(|| PathBuf::from("~/.cache"))
            .join("torch"),
    };
    let torch_home = match torch_home.strip_prefix("~") {
        Ok(rest) => home.ok_or(FetchError::NoCacheDir)?.join(rest),
        Err(_) => torch_home,
    };
    Ok(torch_home.join("hub").join("checkpoints"))
}

/// The checkpoint in `cache_dir`, downloaded from `source` unless already there. A cached file
/// is checked against `source.sha256` and refused (not deleted) if it does not match.
pub fn fetch_checkpoint(
    source: &WeightsSource,
    cache_dir: &Path,
    progress: Progress,
) -> Result<PathBuf, FetchError> {
    let name = source.file_name()?;
    let path = cache_dir.join(&name);
    if path.is_file() {
        let actual = sha256_of_file(&path).map_err(|e| io_error("read", &path, e))?;
        if !source.sha256.matches(&actual) {
            return Err(FetchError::CachedChecksum {
                path: path.display().to_string(),
                url: source.url.clone(),
                expected: source.sha256.as_str().to_string(),
                actual,
            });
        }
        tracing::info!(checkpoint = %path.display(), "using the cached checkpoint");
        return Ok(path);
    }
    download(source, cache_dir, &name, &path, progress)?;
    Ok(path)
}

/// Fetches (or reuses) the checkpoint in `cache_dir`, then [`import_weights`] into `out`:
/// what `densenet-lambda fetch-model [--out PATH]` does, with every input explicit.
pub fn fetch_model_with(
    source: &WeightsSource,
    cache_dir: &Path,
    out: &Path,
    progress: Progress,
) -> Result<PathBuf, FetchError> {
    let checkpoint = fetch_checkpoint(source, cache_dir, progress)?;
    import_weights(&checkpoint, out)?;
    Ok(checkpoint)
}

/// `densenet-lambda fetch-model [--out PATH]`: [`fetch_model_with`] with the source from
/// `DENSENET121_WEIGHTS_URL`/`_SHA256` (default torchvision's file) and PyTorch's cache
/// folder. Returns the checkpoint's path. `out` is normally
/// [`crate::model::DEFAULT_NNEF_PATH`].
pub fn fetch_model(out: &Path, progress: Progress) -> Result<PathBuf, FetchError> {
    let source = WeightsSource::from_env()?;
    let cache_dir = torch_hub_checkpoints_dir()?;
    fetch_model_with(&source, &cache_dir, out, progress)
}

/// Downloads into a temporary file beside `path`, checks length and sha256, renames.
fn download(
    source: &WeightsSource,
    cache_dir: &Path,
    name: &str,
    path: &Path,
    progress: Progress,
) -> Result<(), FetchError> {
    let url = source.url.as_str();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .build()
        .into();
    let response = agent.get(url).call().map_err(|e| {
        if is_unreachable(&e) {
            FetchError::Offline {
                url: url.to_string(),
                reason: e.to_string(),
                file_name: name.to_string(),
                cache_dir: cache_dir.display().to_string(),
            }
        } else {
            FetchError::Broken {
                url: url.to_string(),
                received: 0,
                reason: e.to_string(),
            }
        }
    })?;
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(FetchError::Status {
            url: url.to_string(),
            status,
        });
    }
    let announced = response.body().content_length();
    let temp =
        crate::atomic_file::temp_beside(path).map_err(|e| io_error("write in", cache_dir, e))?;
    let mut reporter = Reporter::start(progress, url, announced);
    let mut body = response.into_body().into_reader();
    let mut hasher = Sha256::new();
    let mut received = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    {
        let mut file = io::BufWriter::new(temp.as_file());
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    reporter.abandon();
                    // The connection closed before the announced length: a truncated download.
                    let truncated = e.kind() == io::ErrorKind::UnexpectedEof;
                    return Err(match announced {
                        Some(expected) if truncated => FetchError::Truncated {
                            url: url.to_string(),
                            received,
                            expected,
                        },
                        _ => FetchError::Broken {
                            url: url.to_string(),
                            received,
                            reason: e.to_string(),
                        },
                    });
                }
            };
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n])
                .map_err(|e| io_error("write", temp.path(), e))?;
            received += n as u64;
            reporter.advance(received);
        }
        file.flush()
            .map_err(|e| io_error("write", temp.path(), e))?;
    }
    if let Some(expected) = announced.filter(|&n| n != received) {
        reporter.abandon();
        return Err(FetchError::Truncated {
            url: url.to_string(),
            received,
            expected,
        });
    }
    let actual = format!("{:x}", hasher.finalize());
    if !source.sha256.matches(&actual) {
        reporter.abandon();
        return Err(FetchError::Checksum {
            url: url.to_string(),
            expected: source.sha256.as_str().to_string(),
            actual,
        });
    }
    crate::atomic_file::persist(temp, path).map_err(|e| io_error("write", path, e))?;
    reporter.finish(path);
    Ok(())
}

/// Whether a request failed before any exchange with the server: name resolution, a refused
/// or unreachable connection, or a connect timeout.
fn is_unreachable(e: &ureq::Error) -> bool {
    use io::ErrorKind::*;
    match e {
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => true,
        ureq::Error::Timeout(t) => matches!(t, ureq::Timeout::Resolve | ureq::Timeout::Connect),
        ureq::Error::ConnectProxyFailed(_) => true,
        ureq::Error::Io(io) => {
            matches!(
                io.kind(),
                ConnectionRefused
                    | NetworkUnreachable
                    | HostUnreachable
                    | NetworkDown
                    | AddrNotAvailable
            )
            // A name that does not resolve (no DNS, as on a machine without internet) comes as
            // std's getaddrinfo error, whose kind is not public: recognised by its text.
            || io.to_string().starts_with("failed to lookup address")
        }
        _ => false,
    }
}

fn sha256_of_file(path: &Path) -> io::Result<String> {
    let mut hasher = Sha256::new();
    io::copy(&mut File::open(path)?, &mut hasher)?;
    Ok(format!("{:x}", hasher.finalize()))
}

fn io_error(action: &'static str, path: &Path, e: io::Error) -> FetchError {
    FetchError::Io {
        action,
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Shows download progress as a bar, as log lines, or not at all.
enum Reporter {
    Bar(indicatif::ProgressBar),
    Log {
        url: String,
        total: Option<u64>,
        next_quarter: u64,
    },
    Silent,
}

impl Reporter {
    fn start(progress: Progress, url: &str, total: Option<u64>) -> Reporter {
        let bar = match progress {
            Progress::Auto => io::stderr().is_terminal(),
            Progress::Bar => true,
            Progress::Log => false,
            Progress::Silent => return Reporter::Silent,
        };
        if bar {
            let pb = match total {
                Some(n) => indicatif::ProgressBar::new(n),
                None => indicatif::ProgressBar::new_spinner(),
            };
            pb.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            let style = indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .map(|s| s.progress_chars("=> "));
            if let (Some(_), Ok(style)) = (total, style) {
                pb.set_style(style);
            }
            pb.set_message(format!("downloading {url}"));
            Reporter::Bar(pb)
        } else {
            tracing::info!(url, bytes = total, "downloading the DenseNet-121 weights");
            Reporter::Log {
                url: url.to_string(),
                total,
                next_quarter: 1,
            }
        }
    }

    fn advance(&mut self, received: u64) {
        match self {
            Reporter::Bar(pb) => pb.set_position(received),
            Reporter::Log {
                url,
                total: Some(total),
                next_quarter,
            } => {
                while *next_quarter < 4 && received * 4 >= *total * *next_quarter {
                    tracing::info!(
                        url = %url,
                        received,
                        total = *total,
                        "download {}% done",
                        *next_quarter * 25
                    );
                    *next_quarter += 1;
                }
            }
            _ => {}
        }
    }

    fn abandon(&mut self) {
        if let Reporter::Bar(pb) = self {
            pb.abandon();
        }
    }

    fn finish(self, path: &Path) {
        match self {
            Reporter::Bar(pb) => pb.finish_and_clear(),
            Reporter::Log { url, .. } => {
                tracing::info!(url, checkpoint = %path.display(), "download done, checksum verified")
            }
            Reporter::Silent => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_is_where_torch_hub_puts_it() {
        let os = |s: &str| Some(OsString::from(s));
        assert_eq!(
            checkpoints_dir_from(os("/t"), os("/x"), os("/h")).unwrap(),
            PathBuf::from("/t/hub/checkpoints")
        );
        assert_eq!(
            checkpoints_dir_from(None, os("/x"), os("/h")).unwrap(),
            PathBuf::from("/x/torch/hub/checkpoints")
        );
        assert_eq!(
            checkpoints_dir_from(None, None, os("/h")).unwrap(),
            PathBuf::from("/h/.cache/torch/hub/checkpoints")
        );
        assert_eq!(
            checkpoints_dir_from(os("~/th"), None, os("/h")).unwrap(),
            PathBuf::from("/h/th/hub/checkpoints")
        );
        assert_eq!(
            checkpoints_dir_from(os(""), os(""), os("/h")).unwrap(),
            PathBuf::from("/h/.cache/torch/hub/checkpoints")
        );
        assert!(matches!(
            checkpoints_dir_from(None, None, None),
            Err(FetchError::NoCacheDir)
        ));
    }

    #[test]
    fn overrides_need_a_checksum() {
        assert_eq!(
            WeightsSource::with_overrides(None, None).unwrap(),
            WeightsSource::torchvision()
        );
        let err =
            WeightsSource::with_overrides(Some("http://127.0.0.1:1/w.pth"), None).unwrap_err();
        assert!(matches!(err, FetchError::MissingChecksum { .. }));
        assert!(err.to_string().contains(SHA256_VAR), "{err}");
        let s =
            WeightsSource::with_overrides(Some("http://m/w.pth"), Some(" ABCDEF0123 ")).unwrap();
        assert_eq!(s.sha256.as_str(), "abcdef0123");
        assert!(s.sha256.matches("abcdef0123ffff"));
        assert!(!s.sha256.matches("abcdef0124ffff"));
        let s = WeightsSource::with_overrides(None, Some("0123456789abcdef")).unwrap();
        assert_eq!(s.url, TORCHVISION_URL);
        for bad in ["a639", "xyz12345", &"a".repeat(65)] {
            assert!(
                matches!(
                    WeightsSource::with_overrides(None, Some(bad)),
                    Err(FetchError::BadChecksum { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_file_name_is_the_urls_last_segment() {
        let name = |url: &str| {
            WeightsSource {
                url: url.into(),
                sha256: ExpectedSha256("a639ec97".into()),
            }
            .file_name()
        };
        assert_eq!(name(TORCHVISION_URL).unwrap(), "densenet121-a639ec97.pth");
        assert_eq!(name("http://h:8/a/b/w.pth?x=1#f").unwrap(), "w.pth");
        assert!(name("http://h/").is_err());
        assert!(name("http://h").is_err());
        assert!(name("w.pth").is_err());
        assert!(name("http://h/a/..").is_err());
    }
}
