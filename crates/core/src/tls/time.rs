//! The one clock and the one calendar of the TLS layer: seconds since the epoch now
//! ([`now_unix`]), what certificate dates, session ages, staple ages and the status page count
//! in; and UTC dates to and from those seconds ([`Civil`]), for the dates certificates and OCSP
//! responses carry and the dates the `SSL_*` variables show.

/// Seconds since the epoch now (0 if the system clock is set before 1970).
pub fn now_unix() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// A UTC date and time of the proleptic Gregorian calendar (month and day from 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: i64,
    pub day: i64,
    pub hour: i64,
    pub minute: i64,
    pub second: i64,
}

impl Civil {
    /// The date and time `unix` seconds after the epoch (before it, when negative).
    pub fn from_unix(unix: i64) -> Civil {
        let days = unix.div_euclid(86_400);
        let secs = unix.rem_euclid(86_400);
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        Civil { year, month, day, hour: secs / 3600, minute: secs / 60 % 60, second: secs % 60 }
    }

    /// Seconds since the epoch (the days from Howard Hinnant's algorithm).
    pub fn to_unix(self) -> i64 {
        let Civil { year, month, day, hour, minute, second } = self;
        let y = if month <= 2 { year - 1 } else { year };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        days * 86_400 + hour * 3600 + minute * 60 + second
    }
}

/// Seconds since the epoch of a UTC date and time.
pub fn unix_time(year: i64, month: i64, day: i64, hour: i64, minute: i64, second: i64) -> i64 {
    Civil { year, month, day, hour, minute, second }.to_unix()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_to_unix_time() {
        assert_eq!(unix_time(1970, 1, 1, 0, 0, 0), 0);
        assert_eq!(unix_time(2026, 12, 6, 5, 57, 21), 1_796_536_641);
        assert_eq!(unix_time(2000, 2, 29, 12, 0, 0), 951_825_600);
    }

    #[test]
    fn unix_time_to_dates_and_back() {
        let leap = Civil { year: 2000, month: 2, day: 29, hour: 0, minute: 0, second: 0 };
        assert_eq!(Civil::from_unix(951_782_400), leap);
        assert_eq!(Civil::from_unix(-1), Civil { year: 1969, month: 12, day: 31, hour: 23, minute: 59, second: 59 });
        for t in [-86_400 * 400 * 366, -1, 0, 951_782_400, 1_796_536_641, 4_102_444_800, 253_402_300_799] {
            assert_eq!(Civil::from_unix(t).to_unix(), t, "{t}");
        }
    }

    #[test]
    fn now_is_after_this_code_was_written() {
        assert!(now_unix() > unix_time(2025, 1, 1, 0, 0, 0));
    }
}
