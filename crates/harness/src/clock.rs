//! Times as the `ricochet` command writes them: RFC 3339, UTC.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// `unix_ms` in RFC 3339 (UTC), or `None` if it is out of range.
pub fn rfc3339_ms(unix_ms: i64) -> Option<String> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .ok()?
        .format(&Rfc3339)
        .ok()
}

/// Now, in RFC 3339 (UTC).
pub fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .expect("the current time formats")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_format_as_utc_and_out_of_range_is_none() {
        assert_eq!(rfc3339_ms(0).unwrap(), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_ms(1_795_000_000_123).unwrap(),
            "2026-11-18T11:06:40.123Z"
        );
        assert!(rfc3339_ms(i64::MAX).is_none());
        assert!(now_rfc3339().ends_with('Z'));
    }
}
