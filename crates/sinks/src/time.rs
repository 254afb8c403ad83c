//! RFC 3339 rendering of packet time without a date library.

use wire::Timestamp;

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `2024-05-01T12:34:56.123456Z`: microsecond precision, UTC. Composed on the stack and
/// appended at once (every record carries one).
pub fn rfc3339_micros(out: &mut Vec<u8>, ts: Timestamp) {
    let secs = ts.secs() as i64;
    let micros = ts.subsec_nanos() / 1000;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let (h, mi, s) = (sod / 3600, (sod % 3600) / 60, sod % 60);
    let mut text = *b"0000-00-00T00:00:00.000000Z";
    let mut two = |at: usize, v: i64| {
        text[at] = b'0' + (v / 10) as u8;
        text[at + 1] = b'0' + (v % 10) as u8;
    };
    let y = y.clamp(0, 9999);
    two(0, y / 100);
    two(2, y % 100);
    two(5, i64::from(mo));
    two(8, i64::from(d));
    two(11, h);
    two(14, mi);
    two(17, s);
    let mut m = micros;
    for i in (20..26).rev() {
        text[i] = b'0' + (m % 10) as u8;
        m /= 10;
    }
    out.extend_from_slice(&text);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(ts: Timestamp) -> String {
        let mut v = Vec::new();
        rfc3339_micros(&mut v, ts);
        String::from_utf8(v).expect("ascii")
    }

    #[test]
    fn known_instants() {
        assert_eq!(fmt(Timestamp::ZERO), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            fmt(Timestamp::from_secs_nanos(951_782_400, 1_000)),
            "2000-02-29T00:00:00.000001Z"
        );
        assert_eq!(
            fmt(Timestamp::from_secs_nanos(1_700_000_000, 123_456_789)),
            "2023-11-14T22:13:20.123456Z"
        );
        assert_eq!(
            fmt(Timestamp::from_secs(4_102_444_799)),
            "2099-12-31T23:59:59.000000Z"
        );
    }
}
