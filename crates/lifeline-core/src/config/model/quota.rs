//! A provider's validated quotas (`rpm`, `tpm`) and how they are watched
//! (`quota_horizon_ms`, `quota_bucket_ms`): the quota forecast of
//! [`crate::health::quota`] reads them.

use std::time::Duration;

/// `quota_horizon_ms` when unset: 15 minutes.
pub const DEFAULT_QUOTA_HORIZON: Duration = Duration::from_secs(15 * 60);
/// `quota_bucket_ms` when unset: 10 seconds.
pub const DEFAULT_QUOTA_BUCKET: Duration = Duration::from_secs(10);

/// A provider's request and token quotas; present when it has either.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaConfig {
    /// Requests per minute the provider allows (`rpm`).
    pub rpm: Option<u64>,
    /// Tokens per minute the provider allows (`tpm`).
    pub tpm: Option<u64>,
    /// A forecast of the quota being reached sooner than this warns
    /// (`quota_horizon_ms`, default 15 minutes).
    pub horizon: Duration,
    /// The length of one bucket of the trend (`quota_bucket_ms`, default
    /// 10 s, 100 ms to 60 s).
    pub bucket: Duration,
}
