//! Request body → the uploaded image bytes: multipart/form-data (the tutorial's `-F file=@…`)
//! parsed with multer under explicit limits, or a raw `image/*` body.

use std::convert::Infallible;

use bytes::Bytes;

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

/// Why no image could be taken from the body. Mapped to statuses in `api`.
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
}

/// Extracts the uploaded images from a body, by its `Content-Type`, in the order they were sent.
/// The result is never empty and holds no empty image.
pub async fn images(
    content_type: Option<&str>,
    body: Bytes,
    limits: UploadLimits,
) -> Result<Vec<Bytes>, UploadError> {
    if body.len() > limits.max_body_bytes {
        return Err(UploadError::TooLarge(limits.max_body_bytes));
    }
    let content_type = content_type.map(str::trim).unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let files = if essence == "multipart/form-data" {
        multipart_files(content_type, body, limits).await?
    } else if essence.starts_with("image/") || essence == "application/octet-stream" {
        vec![body]
    } else {
        let shown = if content_type.is_empty() {
            "(none)".to_owned()
        } else {
            format!("{content_type:?}")
        };
        return Err(UploadError::ContentType(shown));
    };
    if files.is_empty() {
        return Err(UploadError::MissingFile);
    }
    if files.iter().any(Bytes::is_empty) {
        return Err(UploadError::EmptyFile);
    }
    Ok(files)
}

/// All `file` parts of a multipart body; other fields are read past and ignored.
async fn multipart_files(
    content_type: &str,
    body: Bytes,
    limits: UploadLimits,
) -> Result<Vec<Bytes>, UploadError> {
    let boundary = multer::parse_boundary(content_type)
        .map_err(|_| UploadError::Malformed("the Content-Type has no boundary parameter".into()))?;
    let stream = futures_util::stream::once(async move { Ok::<Bytes, Infallible>(body) });
    let constraints = multer::Constraints::new()
        .size_limit(multer::SizeLimit::new().whole_stream(limits.max_body_bytes as u64));
    let mut multipart = multer::Multipart::with_constraints(stream, boundary, constraints);
    let mut files = Vec::new();
    let mut parts = 0;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => return Err(multer_error(e)),
        };
        parts += 1;
        if parts > limits.max_parts {
            return Err(UploadError::TooManyParts(limits.max_parts));
        }
        let is_file = field.name() == Some(FIELD);
        let data = field.bytes().await.map_err(multer_error)?;
        if is_file {
            files.push(data);
        }
    }
    Ok(files)
}

/// Maps multer's errors onto ours: size errors are 413, everything else is malformed input.
fn multer_error(e: multer::Error) -> UploadError {
    match e {
        multer::Error::StreamSizeExceeded { limit }
        | multer::Error::FieldSizeExceeded { limit, .. } => UploadError::TooLarge(limit as usize),
        other => UploadError::Malformed(other.to_string()),
    }
}
