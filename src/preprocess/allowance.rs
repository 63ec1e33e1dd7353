//! What one request may still spend decoding, and whether anyone still waits for it.
//!
//! Memory is bounded per image by the decode budget ([`super::budget`]); time needs a bound too,
//! because the work of a decode can grow with what a small file declares: a progressive JPEG of
//! a thousand tiny scans makes the decoder walk every block a thousand times, a few kilobytes of
//! deflate inflate to gigabytes. Before decoding, each image's work is estimated from its header
//! and stream ([`Cost::work`]) and taken from the request's allowance, which all its images
//! share; what does not fit is refused with a 413 that says why. While decoding, the decoders
//! ask [`Allowance::check`] once per row or scan, so that a request whose client has gone
//! (or timed out) stops within milliseconds instead of holding the worker.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use super::budget::Cost;
use super::error::ImageError;

/// The estimated decode work one request may spend by default, in nanoseconds of the reference
/// core (AMD EPYC Zen 3 at ~3 GHz): 0.6 s there, under a second on one of Lambda's vCPUs.
pub const DEFAULT_MAX_WORK_NS: u64 = 600_000_000;

/// One request's decode allowance and its cancellation, shared by its images (and, cloned, by
/// whoever may cancel it).
#[derive(Debug, Clone)]
pub struct Allowance {
    left: Arc<AtomicU64>,
    limit: u64,
    cancelled: Arc<AtomicBool>,
}

impl Allowance {
    /// An allowance of `max_work_ns` nanoseconds of estimated decode work, not cancelled.
    pub fn new(max_work_ns: u64) -> Allowance {
        Allowance {
            left: Arc::new(AtomicU64::new(max_work_ns)),
            limit: max_work_ns,
            cancelled: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Gives up: every later [`Allowance::check`] fails, so the decodes of this request stop.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    /// Whether the request was given up.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// `Err(Abandoned)` once the request was given up: decoders call it per row or scan.
    #[inline]
    pub fn check(&self) -> Result<(), ImageError> {
        if self.is_cancelled() {
            Err(ImageError::Abandoned)
        } else {
            Ok(())
        }
    }

    /// Takes the estimated work of a decode from the allowance, or refuses it (413) when it
    /// does not fit in what is left.
    pub fn spend(&self, cost: &Cost) -> Result<(), ImageError> {
        self.check()?;
        let mut left = self.left.load(Ordering::Relaxed);
        loop {
            if cost.work > left {
                return Err(cost.too_much_work(self.limit, left));
            }
            match self.left.compare_exchange_weak(
                left,
                left - cost.work,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(now) => left = now,
            }
        }
    }
}

/// Cancels an allowance when dropped: held by the request's handler, whose future tower's
/// timeout or the server drops when the request is given up.
#[derive(Debug)]
pub struct CancelOnDrop(pub Allowance);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}
