//! The state every route shares: the classifier, the request limits, the opt-in features, the
//! timeout, the classification threads and the metrics sink. Built once at start-up (the binary's
//! settings, or a test) and cloned into each request as cheap `Arc`s.

use std::sync::Arc;
use std::time::Duration;

use crate::classifier::Classifier;

use super::metrics::Metrics;
use super::model_info::ChecksumCache;
use super::upload::UploadLimits;
use super::workers::Workers;

/// Opt-in additions beyond the tutorial; all off by default.
#[derive(Debug, Clone, Default)]
pub struct Features {
    /// Browser origins allowed to call the API (`CORS_ALLOW_ORIGINS`): empty is off, `*` any.
    pub cors_origins: Vec<String>,
    /// The upload page at `GET /ui` (`UI_ENABLED=1`).
    pub ui: bool,
    /// The API documentation page at `GET /docs` (`DOCS_ENABLED=1`).
    pub docs: bool,
}

impl Features {
    /// Whether cross-origin access is on (then the CORS layer answers preflights on every path).
    pub fn cors(&self) -> bool {
        !self.cors_origins.is_empty()
    }
}

/// The service: shared, immutable state behind every route.
#[derive(Debug, Clone)]
pub struct App {
    pub(super) classifier: Arc<Classifier>,
    limits: UploadLimits,
    features: Features,
    timeout: Duration,
    pub(super) checksums: Arc<ChecksumCache>,
    /// The threads that decode and infer (CPUs ÷ model threads); requests beyond them wait.
    pub(super) workers: Arc<Workers>,
    /// CloudWatch metrics (EMF records), off unless asked for.
    pub(super) metrics: Arc<Metrics>,
}

/// How long a request may take before it is answered with a 503 (`REQUEST_TIMEOUT_SECS`):
/// under API Gateway's 29-second integration limit, so the client gets our JSON, not a gateway
/// error page.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(25);

impl App {
    /// Wraps a classifier with the request limits and starts its classification threads: as
    /// many as the CPUs hold at the model's thread count (at least one); no opt-in features.
    pub fn new(classifier: Arc<Classifier>, limits: UploadLimits) -> std::io::Result<App> {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = (cpus / classifier.model().options().threads.max(1)).max(1);
        Ok(App {
            classifier,
            limits,
            features: Features::default(),
            timeout: DEFAULT_TIMEOUT,
            checksums: Arc::default(),
            workers: Arc::new(Workers::new(workers)?),
            metrics: Arc::new(Metrics::off()),
        })
    }

    /// Starts loading the model on a classification thread and returns at once, so the first
    /// `/predict` finds it loaded or loading while `GET /` never waits. A failed load is logged
    /// and retried by the next `/predict`, as without a preload.
    pub fn preload(&self) {
        let classifier = Arc::clone(&self.classifier);
        let queued = self.workers.submit(move || {
            let _ = classifier.model().get();
        });
        if let Err(e) = queued {
            tracing::warn!(error = %e, "model preload not started");
        }
    }

    /// Turns on opt-in features.
    pub fn with_features(mut self, features: Features) -> App {
        self.features = features;
        self
    }

    /// Writes an EMF record per prediction (CloudWatch metrics).
    pub fn with_metrics(mut self, metrics: Metrics) -> App {
        self.metrics = Arc::new(metrics);
        self
    }

    /// Sets how long a request may take before it is answered with a 503.
    pub fn with_timeout(mut self, timeout: Duration) -> App {
        self.timeout = timeout;
        self
    }

    /// The request limits in force.
    pub fn limits(&self) -> UploadLimits {
        self.limits
    }

    /// The opt-in features in force.
    pub fn features(&self) -> &Features {
        &self.features
    }

    /// The request timeout in force.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}
