//! The one date formatter: RFC 5322 section 3.3 `date-time` in UTC, as
//! `Tue, 14 Nov 2023 22:13:20 +0000`. The Received header, the bounces
//! and delay warnings (`Date`, `Arrival-Date`, `Will-Retry-Until`) and the
//! queue admin's listing all write it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `t` as an RFC 5322 date-time, UTC (`+0000`).
pub fn rfc5322(t: SystemTime) -> String {
    // The IMF-fixdate of RFC 9110 is an RFC 5322 date-time with the zone
    // written `GMT` (obsolete in RFC 5322); we write the numeric zone.
    let http = httpdate::fmt_http_date(t);
    match http.strip_suffix(" GMT") {
        Some(s) => format!("{s} +0000"),
        None => http,
    }
}

/// [`rfc5322`] of a time given in seconds since the Unix epoch.
pub fn rfc5322_secs(unix_secs: u64) -> String {
    rfc5322(UNIX_EPOCH + Duration::from_secs(unix_secs))
}

/// [`rfc5322`] of a time given in milliseconds since the Unix epoch.
pub fn rfc5322_millis(unix_millis: u64) -> String {
    rfc5322(UNIX_EPOCH + Duration::from_millis(unix_millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_zone() {
        assert_eq!(
            rfc5322_secs(1_700_000_000),
            "Tue, 14 Nov 2023 22:13:20 +0000"
        );
        assert_eq!(
            rfc5322_millis(86_400_000),
            "Fri, 02 Jan 1970 00:00:00 +0000"
        );
        assert_eq!(rfc5322(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 +0000");
    }
}
