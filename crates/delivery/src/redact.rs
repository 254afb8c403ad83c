//! What an alert may not carry out of the sensor. Credentials, tokens and cookies are masked
//! always: query parameters and `name=value` / `name: value` pairs whose name says they hold
//! one, `Bearer`/`Basic` values, and what [`features::sensitive`] finds as JWTs, private keys,
//! cloud keys and passwords. With `pii`, the personal data it finds (e-mail, phone, card,
//! IBAN, national ids) is masked by value too. Applied to every free-text field of the alert.

use std::borrow::Cow;

use features::sensitive::{self, Kind};
use sinks::alert::Alert;

/// Parameter and field names whose values are credentials (matched as substrings, any case).
const SECRET_NAMES: &[&str] = &[
    "token",
    "key",
    "secret",
    "password",
    "passwd",
    "pwd",
    "auth",
    "session",
    "sessid",
    "cookie",
    "jwt",
    "signature",
    "sig",
    "credential",
    "bearer",
];

const MASK: &str = "[REDACTED]";

/// Masks the alert's text fields in place.
pub fn redact(a: &mut Alert, pii: bool) {
    let fix = |s: &mut String| {
        if let Cow::Owned(t) = text(s, pii) {
            *s = t;
        }
    };
    fix(&mut a.title);
    fix(&mut a.summary);
    if let Some(x) = a.recommended_action.as_mut() {
        fix(x);
    }
    if let Some(x) = a.client.user_agent.as_mut() {
        fix(x);
    }
    if let Some(x) = a.http.url.as_mut() {
        fix(x);
    }
    if let Some(x) = a.http.route.as_mut() {
        fix(x);
    }
    if let Some(x) = a.server.host.as_mut() {
        fix(x);
    }
    if let Some(e) = a.explanation.as_mut() {
        if let Some(b) = e.baseline.as_mut() {
            fix(&mut b.key);
        }
        for c in &mut e.contributions {
            fix(&mut c.feature);
        }
    }
}

/// One text with its secrets (and, with `pii`, personal data) masked; borrowed when clean.
pub fn text(s: &str, pii: bool) -> Cow<'_, str> {
    let step1 = scheme_values(s);
    let step2 = named_values(&step1);
    let mut findings = Vec::new();
    sensitive::scan_all(step2.as_bytes(), &mut findings);
    findings.retain(|f| pii || is_credential(f.kind));
    if findings.is_empty() {
        let changed = matches!(step1, Cow::Owned(_)) || matches!(step2, Cow::Owned(_));
        return if changed {
            Cow::Owned(step2.into_owned())
        } else {
            Cow::Borrowed(s)
        };
    }
    let out = sensitive::redact_with(step2.as_bytes(), &findings);
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn is_credential(k: Kind) -> bool {
    matches!(
        k,
        Kind::Jwt | Kind::PrivateKey | Kind::CloudKey | Kind::Password
    )
}

fn secret_name(name: &str) -> bool {
    let n = name.trim().trim_matches('"').to_ascii_lowercase();
    !n.is_empty() && SECRET_NAMES.iter().any(|s| n.contains(s))
}

/// `name=value` (query strings, cookies) and `name: value` / `"name":"value"` pairs whose
/// name is a secret's: the value is masked up to the next `&`, `;`, `,`, space or quote.
fn named_values(s: &str) -> Cow<'_, str> {
    let b = s.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' || b[i] == b':' {
            // The name: back to a delimiter.
            let mut j = i;
            while j > 0 && !is_name_end(b[j - 1]) {
                j -= 1;
            }
            let name = &s[j..i];
            // The value: skip spaces and a quote after ':'.
            let mut v = i + 1;
            while v < b.len() && (b[v] == b' ' || b[v] == b'"') && b[i] == b':' {
                v += 1;
            }
            let mut e = v;
            while e < b.len() && !is_value_end(b[e]) {
                e += 1;
            }
            let is_url_scheme = b[i] == b':' && b.get(i + 1) == Some(&b'/');
            // `name: word` after a colon and a space is prose ("authentication: reject ...")
            // unless the word looks like a secret.
            let prose = b[i] == b':' && v > i + 1 && !looks_secret(&s[v..e]);
            if e > v && !is_url_scheme && !prose && secret_name(name) && &s[v..e] != MASK {
                let o = out.get_or_insert_with(|| String::with_capacity(s.len()));
                o.push_str(&s[copied..v]);
                o.push_str(MASK);
                copied = e;
            }
            i = e.max(i + 1);
            continue;
        }
        i += 1;
    }
    match out {
        None => Cow::Borrowed(s),
        Some(mut o) => {
            o.push_str(&s[copied..]);
            Cow::Owned(o)
        }
    }
}

/// Long enough and with digits, mixed case or token punctuation: not an English word.
fn looks_secret(v: &str) -> bool {
    let b = v.as_bytes();
    let digits = b.iter().any(u8::is_ascii_digit);
    let upper = b.iter().any(u8::is_ascii_uppercase);
    let lower = b.iter().any(u8::is_ascii_lowercase);
    let marks = b
        .iter()
        .any(|c| matches!(c, b'-' | b'_' | b'.' | b'+' | b'/' | b'='));
    b.len() >= 8 && (digits || (upper && lower) || marks)
}

fn is_name_end(c: u8) -> bool {
    matches!(
        c,
        b'?' | b'&' | b';' | b',' | b' ' | b'{' | b'\t' | b'/' | b'(' | b'['
    )
}

fn is_value_end(c: u8) -> bool {
    matches!(
        c,
        b'&' | b';' | b',' | b' ' | b'"' | b'\t' | b'}' | b')' | b']'
    )
}

/// `Bearer <v>`, `Basic <v>`, `Digest <v>` (any case): the value is masked.
fn scheme_values(s: &str) -> Cow<'_, str> {
    let mut cur = Cow::Borrowed(s);
    for scheme in ["bearer ", "basic ", "digest "] {
        if let Cow::Owned(o) = one_scheme(&cur, scheme) {
            cur = Cow::Owned(o);
        }
    }
    cur
}

fn one_scheme<'a>(s: &'a str, scheme: &str) -> Cow<'a, str> {
    let lower = s.to_ascii_lowercase();
    let b = s.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut from = 0;
    while let Some(p) = lower.get(from..).and_then(|l| l.find(scheme)) {
        let v = from + p + scheme.len();
        let mut e = v;
        while e < b.len() && !b[e].is_ascii_whitespace() && !matches!(b[e], b'"' | b',') {
            e += 1;
        }
        if e > v && &s[v..e] != MASK {
            let o = out.get_or_insert_with(|| String::with_capacity(s.len()));
            o.push_str(&s[copied..v]);
            o.push_str(MASK);
            copied = e;
        }
        from = e;
    }
    match out {
        None => Cow::Borrowed(s),
        Some(mut o) => {
            o.push_str(&s[copied..]);
            Cow::Owned(o)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_tokens_cookies_and_bearer_are_masked() {
        let t = text(
            "/api/v1/users?id=7&access_token=abc123&sig=zz Authorization: Bearer eyJhbGciOi.x.y Cookie: sessionid=s3cr3t; theme=dark",
            false,
        );
        assert!(!t.contains("abc123"), "{t}");
        assert!(!t.contains("zz "), "{t}");
        assert!(!t.contains("eyJhbGciOi"), "{t}");
        assert!(!t.contains("s3cr3t"), "{t}");
        assert!(t.contains("id=7"), "{t}");
        assert!(t.contains("theme=dark"), "{t}");
    }

    #[test]
    fn json_secret_fields_are_masked() {
        let t = text(r#"body {"password": "hunter2", "user": "bob"}"#, false);
        assert!(!t.contains("hunter2"), "{t}");
        assert!(t.contains("bob"), "{t}");
    }

    #[test]
    fn pii_is_masked_only_when_asked() {
        let s = "contact alice@example.com or card 4111 1111 1111 1111";
        let kept = text(s, false);
        assert!(kept.contains("alice@example.com"));
        let masked = text(s, true);
        assert!(!masked.contains("alice@example.com"), "{masked}");
        assert!(!masked.contains("4111 1111 1111 1111"), "{masked}");
    }

    #[test]
    fn clean_text_is_borrowed_and_urls_survive() {
        let s = "Shadow endpoint GET /api/v1/orders/{id} on https://shop.example:8443/x";
        assert!(matches!(text(s, true), Cow::Borrowed(_)));
    }

    #[test]
    fn odd_inputs_never_panic() {
        for s in [
            "=",
            ":",
            "token=",
            "a:\"",
            "bearer ",
            "Bearer",
            "é=é&token=é",
            "key:\u{1F600}x",
            "\"password\":\"",
        ] {
            let _ = text(s, true);
        }
    }

    #[test]
    fn prose_after_a_colon_is_not_a_secret() {
        let action =
            "Fix the endpoint's authentication: reject missing, unsigned and expired tokens.";
        assert_eq!(text(action, true), action);
        assert!(!text("Authorization: Bearer eyJhbGciOi.x.y", false).contains("eyJhbGciOi"));
        assert!(!text("session: 9f8e7d6c5b4a", false).contains("9f8e7d6c5b4a"));
        assert!(!text("password=hunter", false).contains("hunter"));
    }
}
