//! The Splunk HEC destination: a placeholder in this branch (the destinations branch replaces it).

use super::{Destination, DestinationOptions};
use crate::error::{Error, Result};

/// Opens the Splunk HEC destination at `url` (the whole `--to` value).
///
/// # Errors
///
/// Always, in this branch: the Splunk HEC destination is not built here.
pub(crate) fn open(url: &str, opts: &DestinationOptions) -> Result<Box<dyn Destination>> {
    let _ = opts;
    Err(Error::InvalidConfig(format!(
        "--to {}: the Splunk HEC destination is not built in this branch",
        super::mask_url(url)
    )))
}
