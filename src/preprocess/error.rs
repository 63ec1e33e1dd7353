//! Why bytes could not become a tensor: the client's image, never our fault.

/// Why bytes could not become a tensor. Each variant maps to one HTTP status in the HTTP room.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The bytes are not in a format we decode (sniffed from content, never from names).
    #[error("the upload is not a recognised image; send a JPEG, PNG, GIF, WebP, BMP or TIFF file")]
    UnknownFormat,
    /// The format was recognised but the data is corrupt or truncated.
    #[error("the image could not be decoded ({0}); send an intact JPEG, PNG, GIF, WebP, BMP or TIFF file")]
    Corrupt(String),
    /// The image has no pixels.
    #[error("the image is empty ({width}x{height} pixels); send an image at least 1x1")]
    ZeroSized { width: u32, height: u32 },
    /// The image is larger than the decode limits allow: too many pixels a side, or more memory
    /// to decode than the budget. Refused from the header, before the allocation.
    #[error("the image is too large to decode ({reason}); send {instead}")]
    TooLarge {
        /// What was too large.
        reason: String,
        /// What would be accepted instead.
        instead: String,
    },
    /// The request was given up (it timed out, or its client went away) while its image was
    /// being decoded: the decode stopped there.
    #[error("the request was given up before its image was decoded")]
    Abandoned,
}

/// The advice of a refusal for size: what fits.
pub(super) fn dimension_advice(max_dimension: u32) -> String {
    format!("an image of at most {max_dimension} pixels a side")
}

/// An `image` crate error as ours: limits → 413, anything else → 415.
pub(super) fn convert_image_error(error: image::ImageError, max_dimension: u32) -> ImageError {
    match error {
        image::ImageError::Limits(l) => ImageError::TooLarge {
            reason: l.to_string(),
            instead: dimension_advice(max_dimension),
        },
        image::ImageError::Unsupported(u) => ImageError::Corrupt(u.to_string()),
        other => ImageError::Corrupt(other.to_string()),
    }
}
