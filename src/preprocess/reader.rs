//! The upload's bytes as every decoder reads them: from memory, at most [`CHUNK`] bytes a read,
//! each read first asking whether the request was given up.
//!
//! Some decoders do long work without handing over a row: libjpeg consumes every scan of a
//! progressive JPEG inside `jpeg_start_decompress`, and the `image` crate decodes WebP, TIFF and
//! BMP whole. What they all do, throughout, is read their input, so that is where they are
//! stopped: a read of an abandoned request fails, the decoder gives up with an I/O error, and
//! [`super::preprocess_within`] reports [`ImageError::Abandoned`](super::ImageError::Abandoned).
//! Small reads bound the work between two checks (a kilobyte of a progressive JPEG is at most a
//! few dozen tiny scans).

use std::io::{self, BufRead, Cursor, Read, Seek, SeekFrom};

use super::allowance::Allowance;

/// Most bytes handed over per read.
pub const CHUNK: usize = 1024;

/// An upload's bytes, read through its request's allowance.
#[derive(Debug)]
pub struct UploadReader<'a> {
    cursor: Cursor<&'a [u8]>,
    allowance: Allowance,
}

impl<'a> UploadReader<'a> {
    /// Reads `bytes` while `allowance` is not cancelled.
    pub fn new(bytes: &'a [u8], allowance: &Allowance) -> UploadReader<'a> {
        UploadReader {
            cursor: Cursor::new(bytes),
            allowance: allowance.clone(),
        }
    }

    fn go_on(&self) -> io::Result<()> {
        if self.allowance.is_cancelled() {
            Err(io::Error::other("the request was given up"))
        } else {
            Ok(())
        }
    }
}

impl Read for UploadReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.go_on()?;
        let n = buf.len().min(CHUNK);
        self.cursor.read(&mut buf[..n])
    }
}

impl BufRead for UploadReader<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.go_on()?;
        let buf = self.cursor.fill_buf()?;
        Ok(&buf[..buf.len().min(CHUNK)])
    }

    fn consume(&mut self, amount: usize) {
        self.cursor.consume(amount);
    }
}

impl Seek for UploadReader<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.cursor.seek(to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stop_once_the_request_is_given_up() {
        let bytes = vec![7u8; 3000];
        let allowance = Allowance::new(1);
        let mut reader = UploadReader::new(&bytes, &allowance);
        let mut buf = [0u8; 4096];
        assert_eq!(reader.read(&mut buf).unwrap(), CHUNK);
        assert_eq!(reader.fill_buf().unwrap().len(), CHUNK);
        allowance.cancel();
        assert!(reader.read(&mut buf).is_err());
        assert!(reader.fill_buf().is_err());
    }
}
