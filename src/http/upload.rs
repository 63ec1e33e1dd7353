//! Request body → the uploaded image bytes: multipart/form-data (the tutorial's `-F file=@…`)
//! parsed with multer under explicit limits, or a raw `image/*` body.
//!
//! The body arrives as a stream of chunks (from the socket under `serve`, or one chunk under
//! Lambda) and is read once: multer parses a multipart body as it streams in, so the only copy of
//! an upload is the part it hands back; a raw body is collected into one buffer. Nothing here
//! knows which edge the body came from.

use std::error::Error as StdError;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

/// The multipart field that carries the image, as in the tutorial's `request.files['file']`.
pub const FIELD: &str = "file";

/// Bounds on what a request may make us read or hold.
#[derive(Debug, Clone, Copy)]
pub struct UploadLimits {
    /// Largest request body accepted, in bytes (413 above).
    pub max_body_bytes: usize,
    /// Most multipart parts read before giving up (400 above).
    pub max_parts: usize,
}

impl Default for UploadLimits {
    /// 6 MiB: Lambda's synchronous payload cap is 6 MB, so no larger body can reach the function;
    /// 16 parts: room for a few images and form fields, not for a part-count flood.
    fn default() -> Self {
        UploadLimits {
            max_body_bytes: 6 * 1024 * 1024,
            max_parts: 16,
        }
    }
}

/// Why no image could be taken from the body. Mapped to statuses in `error.rs`.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// No `Content-Type`, or one we do not accept.
    #[error("unsupported Content-Type {0}; send multipart/form-data with the image in a field named \"file\" (curl -F file=@image.jpg), or the raw image with Content-Type image/*")]
    ContentType(String),
    /// The multipart body is malformed.
    #[error("malformed multipart body ({0}); send multipart/form-data with the image in a field named \"file\" (curl -F file=@image.jpg)")]
    Malformed(String),
    /// The body has no `file` part.
    #[error("no \"file\" field in the form; send the image in a field named \"file\" (curl -F file=@image.jpg)")]
    MissingFile,
    /// The image part (or the raw body) is empty.
    #[error(
        "the uploaded file is empty; send a non-empty JPEG, PNG, GIF, WebP, BMP or TIFF image"
    )]
    EmptyFile,
    /// Too many parts.
    #[error("the form has more than {0} parts; send the image in a field named \"file\" and little else")]
    TooManyParts(usize),
    /// The body is larger than allowed.
    #[error("the request body is larger than {0} bytes; send a smaller image (Lambda accepts at most 6 MB per request, about 4.5 MB of image once base64-encoded)")]
    TooLarge(usize),
    /// The connection failed while the body was being read.
    #[error("the request body could not be read ({0}); send the request again")]
    Read(String),
}

/// The shape of a body, from its `Content-Type`: decided before a byte of it is read.
#[derive(Debug, Clone, PartialEq)]
pub enum BodyKind {
    /// multipart/form-data with this boundary.
    Multipart(String),
    /// The image itself (`image/*` or `application/octet-stream`).
    Raw,
}

impl BodyKind {
    /// Reads the `Content-Type` header; anything but a form or an image is refused.
    pub fn from_content_type(content_type: Option<&str>) -> Result<BodyKind, UploadError> {
        let content_type = content_type.map(str::trim).unwrap_or("");
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if essence == "multipart/form-data" {
            let boundary = multer::parse_boundary(content_type).map_err(|_| {
                UploadError::Malformed("the Content-Type has no boundary parameter".into())
            })?;
            Ok(BodyKind::Multipart(boundary))
        } else if essence.starts_with("image/") || essence == "application/octet-stream" {
            Ok(BodyKind::Raw)
        } else if content_type.is_empty() {
            Err(UploadError::ContentType("(none)".into()))
        } else {
            Err(UploadError::ContentType(format!("{content_type:?}")))
        }
    }
}

/// Extracts the uploaded images from a body stream, in the order they were sent. The result is
/// never empty and holds no empty image.
pub async fn images<S, E>(
    kind: BodyKind,
    body: S,
    limits: UploadLimits,
) -> Result<Vec<Bytes>, UploadError>
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
    E: Into<Box<dyn StdError + Send + Sync>> + 'static,
{
    let files = match kind {
        BodyKind::Multipart(boundary) => multipart_files(boundary, body, limits).await?,
        BodyKind::Raw => vec![collect(body, limits.max_body_bytes).await?],
    };
    if files.is_empty() {
        return Err(UploadError::MissingFile);
    }
    if files.iter().any(Bytes::is_empty) {
        return Err(UploadError::EmptyFile);
    }
    Ok(files)
}

/// Reads a whole raw body, refusing it once it passes `max` bytes.
async fn collect<S, E>(mut body: S, max: usize) -> Result<Bytes, UploadError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<Box<dyn StdError + Send + Sync>>,
{
    let mut buffer = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| read_error(e.into(), max))?;
        if buffer.len() + chunk.len() > max {
            return Err(UploadError::TooLarge(max));
        }
        if buffer.is_empty() {
            // One chunk (the Lambda case, or a small upload): no copy at all.
            buffer = BytesMut::from(chunk);
        } else {
            buffer.extend_from_slice(&chunk);
        }
    }
    Ok(buffer.freeze())
}

/// All `file` parts of a multipart body; other fields are read past and ignored.
async fn multipart_files<S, E>(
    boundary: String,
    body: S,
    limits: UploadLimits,
) -> Result<Vec<Bytes>, UploadError>
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Into<Box<dyn StdError + Send + Sync>> + 'static,
{
    let constraints = multer::Constraints::new()
        .size_limit(multer::SizeLimit::new().whole_stream(limits.max_body_bytes as u64));
    let mut multipart = multer::Multipart::with_constraints(body, boundary, constraints);
    let max = limits.max_body_bytes;
    let mut files = Vec::new();
    let mut parts = 0;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => return Err(multer_error(e, max)),
        };
        parts += 1;
        if parts > limits.max_parts {
            return Err(UploadError::TooManyParts(limits.max_parts));
        }
        let is_file = field.name() == Some(FIELD);
        let data = field.bytes().await.map_err(|e| multer_error(e, max))?;
        if is_file {
            files.push(data);
        }
    }
    Ok(files)
}

/// Maps multer's errors onto ours: size errors are 413, a failed read is a read error, and
/// everything else is malformed input.
fn multer_error(e: multer::Error, max: usize) -> UploadError {
    match e {
        multer::Error::StreamSizeExceeded { limit }
        | multer::Error::FieldSizeExceeded { limit, .. } => UploadError::TooLarge(limit as usize),
        multer::Error::StreamReadFailed(source) => read_error(source, max),
        other => UploadError::Malformed(other.to_string()),
    }
}

/// A failed body read: the body-size layer's limit (413), or a broken connection.
fn read_error(error: Box<dyn StdError + Send + Sync>, max: usize) -> UploadError {
    let mut source: Option<&(dyn StdError + 'static)> = Some(error.as_ref());
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return UploadError::TooLarge(max);
        }
        source = e.source();
    }
    UploadError::Read(error.to_string())
}
