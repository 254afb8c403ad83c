//! The shape of one URL path segment, by its value alone.
//!
//! Shape is half of templating: a value that looks like an identifier (an integer, a UUID, a
//! hash, a date, an e-mail address) is a parameter wherever it appears, even when it is seen
//! once. Words and short codes are only weak evidence; whether their position is a parameter is
//! decided by how many distinct values it takes across traffic, which is the catalogue's job.

/// What a segment value looks like, most specific first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Shape {
    /// Decimal digits only (`123`, `0042`, any length), possibly signed.
    Integer,
    /// RFC 4122 layout, any version, either case (`3f2504e0-4f89-11d3-9a0c-0305e82c3301`).
    Uuid,
    /// Hex of a digest's length: 32 (MD5), 40 (SHA-1), 56, 64 (SHA-256), 96, 128 (SHA-512).
    Hash,
    /// Other hex of 8 characters or more with at least one digit and one letter (`5f3e9a01`,
    /// a MongoDB ObjectId is 24).
    Hex,
    /// A calendar date: `2024-03-01`, `20240301`, `2024_03_01`.
    Date,
    /// `local@domain.tld`, percent-encoded `@` included.
    Email,
    /// A long token of mixed letters and digits, base64 or base64url alphabet (API keys, opaque
    /// ids, JWT pieces): 16 characters or more.
    Token,
    /// A product-code-like value: letters and digits mixed, optionally with `-`/`_`, containing
    /// at least 2 digits (`SKU-00123`, `AB12345`, `x86-64`). Weak: `v2` or `ipv6` are codes too.
    Code,
    /// Letters, possibly joined by `-`, `_` or `.` (`users`, `order-items`, `v`): literal unless
    /// cardinality says otherwise.
    Word,
    /// Anything else (punctuation, mixed scripts, empty).
    Other,
}

/// How strongly a shape alone says "this is a parameter".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Evidence {
    /// Only traffic can tell (words, API versions, odd values).
    Weak,
    /// Usually a parameter; a template needs a few distinct values to confirm it.
    Likely,
    /// A parameter on sight: no API names a route `1234` or a UUID.
    Strong,
}

impl Shape {
    /// Every shape, most specific first; `shape as usize` is its index here.
    pub const ALL: [Shape; 10] = [
        Shape::Integer,
        Shape::Uuid,
        Shape::Hash,
        Shape::Hex,
        Shape::Date,
        Shape::Email,
        Shape::Token,
        Shape::Code,
        Shape::Word,
        Shape::Other,
    ];

    /// The placeholder name a template uses for this shape, without braces.
    pub fn placeholder(self) -> &'static str {
        match self {
            Shape::Integer => "id",
            Shape::Uuid => "uuid",
            Shape::Hash => "hash",
            Shape::Hex => "hex",
            Shape::Date => "date",
            Shape::Email => "email",
            Shape::Token => "token",
            Shape::Code => "sku",
            Shape::Word => "name",
            Shape::Other => "param",
        }
    }

    pub fn evidence(self) -> Evidence {
        match self {
            Shape::Integer | Shape::Uuid | Shape::Hash | Shape::Date | Shape::Email => {
                Evidence::Strong
            }
            Shape::Hex | Shape::Token => Evidence::Likely,
            Shape::Code | Shape::Word | Shape::Other => Evidence::Weak,
        }
    }
}

/// Splits a file-like extension off a segment (`123.json` → (`123`, `json`)), so that the stem is
/// templated and the extension stays literal, as in `/users/{id}.json`. An extension is 1–5 ASCII
/// letters or digits starting with a letter, after a non-empty stem; an e-mail's domain is not one.
pub fn split_extension(segment: &str) -> (&str, Option<&str>) {
    let Some(dot) = segment.rfind('.') else {
        return (segment, None);
    };
    let (stem, ext) = (&segment[..dot], &segment[dot + 1..]);
    let ext_ok = (1..=5).contains(&ext.len())
        && ext.as_bytes()[0].is_ascii_alphabetic()
        && ext.bytes().all(|b| b.is_ascii_alphanumeric());
    if stem.is_empty() || !ext_ok || is_email(segment) {
        return (segment, None);
    }
    (stem, Some(ext))
}

/// The shape of a segment value as it appears in the path (not percent-decoded, except that
/// `%40` counts as `@` for e-mail addresses).
pub fn classify(value: &str) -> Shape {
    let bytes = value.as_bytes();
    if bytes.is_empty() {
        return Shape::Other;
    }
    // Before integers: `20240301` is a date more usefully than a number.
    if is_date(bytes) {
        return Shape::Date;
    }
    if is_integer(bytes) {
        return Shape::Integer;
    }
    if is_uuid(bytes) {
        return Shape::Uuid;
    }
    if bytes.iter().all(u8::is_ascii_hexdigit) {
        let has_digit = bytes.iter().any(u8::is_ascii_digit);
        let has_letter = bytes.iter().any(u8::is_ascii_alphabetic);
        if matches!(bytes.len(), 32 | 40 | 56 | 64 | 96 | 128) && has_digit {
            return Shape::Hash;
        }
        if bytes.len() >= 8 && has_digit && has_letter {
            return Shape::Hex;
        }
    }
    if is_email(value) {
        return Shape::Email;
    }
    if is_word(bytes) {
        return Shape::Word;
    }
    if is_token(bytes) {
        return Shape::Token;
    }
    if is_code(bytes) {
        return Shape::Code;
    }
    Shape::Other
}

fn is_integer(bytes: &[u8]) -> bool {
    let digits = match bytes {
        [b'-' | b'+', rest @ ..] => rest,
        _ => bytes,
    };
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
}

fn is_date(bytes: &[u8]) -> bool {
    let (y, m, d) = match bytes {
        [y0, y1, y2, y3, sep1, m0, m1, sep2, d0, d1]
            if sep1 == sep2 && matches!(sep1, b'-' | b'_' | b'.') =>
        {
            ([*y0, *y1, *y2, *y3], [*m0, *m1], [*d0, *d1])
        }
        [y0, y1, y2, y3, m0, m1, d0, d1] => ([*y0, *y1, *y2, *y3], [*m0, *m1], [*d0, *d1]),
        _ => return false,
    };
    let number = |digits: &[u8]| -> Option<u32> {
        digits.iter().try_fold(0u32, |n, &b| {
            b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
        })
    };
    match (number(&y), number(&m), number(&d)) {
        (Some(y), Some(m), Some(d)) => {
            (1900..=2199).contains(&y) && (1..=12).contains(&m) && (1..=31).contains(&d)
        }
        _ => false,
    }
}

fn is_uuid(bytes: &[u8]) -> bool {
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

fn is_email(value: &str) -> bool {
    let (local, domain) = if let Some(at) = value.find('@') {
        (&value[..at], &value[at + 1..])
    } else if let Some(at) = value
        .as_bytes()
        .windows(3)
        .position(|w| w[0] == b'%' && w[1] == b'4' && w[2] == b'0')
    {
        (&value[..at], &value[at + 3..])
    } else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._%+-".contains(&b));
    let Some(last_dot) = domain.rfind('.') else {
        return false;
    };
    let tld = &domain[last_dot + 1..];
    local_ok
        && last_dot > 0
        && tld.len() >= 2
        && tld.bytes().all(|b| b.is_ascii_alphabetic())
        && domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

fn is_word(bytes: &[u8]) -> bool {
    bytes[0].is_ascii_alphabetic()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphabetic() || matches!(b, b'-' | b'_' | b'.'))
        && bytes
            .windows(2)
            .all(|w| w[0].is_ascii_alphabetic() || w[1].is_ascii_alphabetic())
}

fn is_token(bytes: &[u8]) -> bool {
    let alphabet = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'=');
    let digits = bytes.iter().filter(|b| b.is_ascii_digit()).count();
    let upper = bytes.iter().filter(|b| b.is_ascii_uppercase()).count();
    let lower = bytes.iter().filter(|b| b.is_ascii_lowercase()).count();
    // Separators are allowed but a token is not hyphenated prose: most of it is alphanumeric.
    let separators = bytes.len() - digits - upper - lower;
    bytes.len() >= 16
        && bytes.iter().all(alphabet)
        && separators * 8 <= bytes.len()
        && digits > 0
        && (upper > 0 || lower > 0)
}

fn is_code(bytes: &[u8]) -> bool {
    let digits = bytes.iter().filter(|b| b.is_ascii_digit()).count();
    bytes.len() <= 40
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
        && digits >= 2
        && bytes.iter().any(u8::is_ascii_alphabetic)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn identifiers_are_strong_parameters() {
        for (value, shape) in [
            ("123", Shape::Integer),
            ("0042", Shape::Integer),
            ("-7", Shape::Integer),
            ("3f2504e0-4f89-11d3-9a0c-0305e82c3301", Shape::Uuid),
            ("3F2504E0-4F89-11D3-9A0C-0305E82C3301", Shape::Uuid),
            ("d41d8cd98f00b204e9800998ecf8427e", Shape::Hash),
            (
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                Shape::Hash,
            ),
            ("2024-03-01", Shape::Date),
            ("20240301", Shape::Date),
            ("jane.doe+api@example.co.uk", Shape::Email),
            ("jane%40example.com", Shape::Email),
        ] {
            assert_eq!(classify(value), shape, "{value}");
            assert_eq!(shape.evidence(), Evidence::Strong, "{value}");
        }
    }

    #[test]
    fn likely_and_weak_shapes() {
        for (value, shape, evidence) in [
            ("507f1f77bcf86cd799439011", Shape::Hex, Evidence::Likely),
            ("5f3e9a01", Shape::Hex, Evidence::Likely),
            (
                "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
                Shape::Token,
                Evidence::Likely,
            ),
            ("aGVsbG8gd29ybGQgMTIzNDU2", Shape::Token, Evidence::Likely),
            ("SKU-00123", Shape::Code, Evidence::Weak),
            ("AB12345", Shape::Code, Evidence::Weak),
            ("users", Shape::Word, Evidence::Weak),
            ("order-items", Shape::Word, Evidence::Weak),
            ("v2", Shape::Other, Evidence::Weak),
            ("a,b", Shape::Other, Evidence::Weak),
            ("", Shape::Other, Evidence::Weak),
        ] {
            assert_eq!(classify(value), shape, "{value}");
            assert_eq!(shape.evidence(), evidence, "{value}");
        }
    }

    #[test]
    fn near_misses_are_not_identifiers() {
        // Words made of hex letters, impossible dates, hyphenated prose and digit-free hex.
        assert_eq!(classify("deadbeef"), Shape::Word);
        assert_eq!(classify("facade"), Shape::Word);
        assert_eq!(classify("2024-13-01"), Shape::Other);
        assert_ne!(classify("2024-02-01x"), Shape::Date);
        assert_eq!(classify("123456789012345678901234567890"), Shape::Integer);
        assert_eq!(classify("user@localhost"), Shape::Other);
        assert_eq!(classify("this-is-a-long-slug-about-apis"), Shape::Word);
        assert_ne!(classify("3f2504e0-4f89-11d3-9a0c-0305e82c330"), Shape::Uuid);
        assert_ne!(classify("12345678"), Shape::Hex);
    }

    #[test]
    fn extensions_split_from_the_stem() {
        assert_eq!(split_extension("123.json"), ("123", Some("json")));
        assert_eq!(split_extension("SKU-001.xml"), ("SKU-001", Some("xml")));
        assert_eq!(split_extension("orders.json"), ("orders", Some("json")));
        assert_eq!(split_extension("users"), ("users", None));
        assert_eq!(split_extension(".htaccess"), (".htaccess", None));
        assert_eq!(split_extension("v1.2"), ("v1.2", None));
        assert_eq!(
            split_extension("archive.tar.gz"),
            ("archive.tar", Some("gz"))
        );
        assert_eq!(split_extension("a@example.com"), ("a@example.com", None));
        assert_eq!(
            split_extension("file.verylongext"),
            ("file.verylongext", None)
        );
    }

    #[test]
    fn placeholders_are_distinct_per_shape() {
        let shapes = Shape::ALL;
        assert!(shapes.iter().enumerate().all(|(i, s)| *s as usize == i));
        let mut names: Vec<_> = shapes.iter().map(|s| s.placeholder()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), shapes.len());
    }

    proptest! {
        #[test]
        fn any_input_classifies_without_panicking(value in ".{0,80}") {
            let shape = classify(&value);
            let (stem, ext) = split_extension(&value);
            prop_assert!(value.starts_with(stem));
            if let Some(ext) = ext {
                prop_assert_eq!(value.len(), stem.len() + 1 + ext.len());
            }
            if shape == Shape::Integer {
                prop_assert!(value.trim_start_matches(['-', '+']).bytes().all(|b| b.is_ascii_digit()));
            }
        }

        #[test]
        fn every_decimal_number_is_an_integer(n in any::<u64>()) {
            prop_assert_eq!(classify(&n.to_string()), Shape::Integer);
        }
    }
}
