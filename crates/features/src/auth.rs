//! The credentials on a request and who they name, without keeping any secret.
//!
//! [`extract`] finds Authorization schemes, API keys in headers or query parameters and session
//! cookies. Each secret is represented by a [`Keyer`] hash (HMAC-SHA256 under a per-deployment
//! key), so one credential can be followed across addresses without being stored. JWTs are
//! decoded, never verified ([`decode_jwt`]); expiry is judged against a time the caller passes.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

/// Credentials appended per request at most: a request carrying more is noise or an attack.
pub const MAX_CREDENTIALS: usize = 8;
/// Longer tokens are not decoded as JWTs (they are still hashed as opaque secrets).
pub const MAX_JWT_LEN: usize = 16 * 1024;
/// Bytes kept of any clear text taken from a request (claims, user names, credential names).
pub const MAX_TEXT_LEN: usize = 256;

/// Names of query parameters longer than this, once decoded, are never credential names.
const MAX_PARAM_NAME_LEN: usize = 128;

const TOLERANT: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(true);
const BASE64URL: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, TOLERANT);
const BASE64: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, TOLERANT);

type HmacSha256 = Hmac<Sha256>;

/// How a request authenticates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    /// `Authorization: Basic`.
    Basic,
    /// `Authorization: Bearer` carrying a decodable JWT.
    BearerJwt,
    /// `Authorization: Bearer` carrying anything else.
    BearerOpaque,
    /// A key in a configured header or query parameter.
    ApiKey,
    /// A configured session cookie.
    SessionCookie,
    /// `Authorization: Digest`.
    Digest,
    /// Any other Authorization scheme, or a bare value without one.
    Other,
}

impl Scheme {
    pub const ALL: [Scheme; 7] = [
        Scheme::Basic,
        Scheme::BearerJwt,
        Scheme::BearerOpaque,
        Scheme::ApiKey,
        Scheme::SessionCookie,
        Scheme::Digest,
        Scheme::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Basic => "basic",
            Scheme::BearerJwt => "bearer_jwt",
            Scheme::BearerOpaque => "bearer",
            Scheme::ApiKey => "api_key",
            Scheme::SessionCookie => "session_cookie",
            Scheme::Digest => "digest",
            Scheme::Other => "other",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where on the request a credential was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    Header,
    Query,
    Cookie,
}

impl Location {
    pub fn as_str(self) -> &'static str {
        match self {
            Location::Header => "header",
            Location::Query => "query",
            Location::Cookie => "cookie",
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// 128-bit keyed hash (HMAC-SHA256 truncated), shown as 32 lowercase hex chars.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdHash(pub [u8; 16]);

impl IdHash {
    pub fn to_hex(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for IdHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut hex = [0u8; 32];
        for (pair, byte) in hex.chunks_exact_mut(2).zip(self.0) {
            pair[0] = DIGITS[usize::from(byte >> 4)];
            pair[1] = DIGITS[usize::from(byte & 0x0f)];
        }
        f.write_str(std::str::from_utf8(&hex).unwrap_or_default())
    }
}

/// Holds the per-deployment key. Same key + same secret → same hash across runs; different key
/// → unrelated hash.
#[derive(Clone)]
pub struct Keyer {
    // Keyed once; each hash clones this state instead of re-deriving the HMAC pads.
    keyed: HmacSha256,
    // The same credential arrives on request after request: remember recent hashes, keyed
    // by a SipHash under a random per-process key (never output, never the secret itself).
    recent: std::cell::RefCell<Recent<IdHash>>,
    recent_key: ahash::RandomState,
    // Whole credentials by the header or parameter value they came from, so a token seen on
    // every request is parsed (and its JWT decoded) once.
    credentials: std::cell::RefCell<Recent<Arc<Credential>>>,
    authorization: label::Label,
    /// Tells this keyer's [`AuthHint`]s from another's (their fingerprints differ).
    id: u64,
}

/// Entries in each generation of a [`Keyer`]'s caches (so at most twice this in all).
const RECENT_HASHES: usize = 4096;

/// A bounded cache of the values of recently seen fingerprints, in two generations: when the
/// current one fills it becomes the previous one, and a hit there moves back to the current.
/// What was used during the last generation survives a turnover (emptying the whole cache when
/// full re-parsed every credential of a busy set at once).
#[derive(Clone, Debug)]
struct Recent<V> {
    current: std::collections::HashMap<u64, V, ahash::RandomState>,
    previous: std::collections::HashMap<u64, V, ahash::RandomState>,
}

impl<V> Default for Recent<V> {
    fn default() -> Self {
        Recent {
            current: Default::default(),
            previous: Default::default(),
        }
    }
}

impl<V: Clone> Recent<V> {
    fn get(&mut self, fingerprint: u64) -> Option<V> {
        self.get_ref(fingerprint).cloned()
    }

    fn get_ref(&mut self, fingerprint: u64) -> Option<&V> {
        if self.current.contains_key(&fingerprint) {
            return self.current.get(&fingerprint);
        }
        let v = self.previous.remove(&fingerprint)?;
        self.insert(fingerprint, v);
        self.current.get(&fingerprint)
    }

    fn insert(&mut self, fingerprint: u64, v: V) {
        if self.current.len() >= RECENT_HASHES {
            std::mem::swap(&mut self.current, &mut self.previous);
            self.current.clear();
        }
        self.current.insert(fingerprint, v);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }
}

impl fmt::Debug for Keyer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Keyer { .. }")
    }
}

impl Keyer {
    pub fn new(key: &[u8]) -> Keyer {
        let keyed = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
        Keyer {
            keyed,
            recent: Default::default(),
            recent_key: Default::default(),
            credentials: Default::default(),
            authorization: label::Label::interned_name("authorization"),
            id: {
                static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
                NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            },
        }
    }

    /// What a flow worker needs to make [`AuthHint`]s this keyer takes: `names` (the ones the
    /// analysis stage scans with) and the key of its fingerprints.
    pub fn hinter(&self, names: &AuthMatcher) -> Hinter {
        Hinter {
            names: names.clone(),
            fingerprint_key: self.recent_key.clone(),
            keyer: self.id,
        }
    }

    /// Plain HMAC-SHA256 of `data` under the key.
    pub fn mac(&self, data: &[u8]) -> [u8; 32] {
        let mut mac = self.keyed.clone();
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    /// `mac(len(domain) as u64 big-endian ‖ domain ‖ secret)` truncated to 16 bytes. The length
    /// prefix keeps every (domain, secret) pair distinct whatever bytes either holds.
    pub fn hash(&self, domain: &str, secret: &[u8]) -> IdHash {
        self.hash_parts(domain, &[secret])
    }

    /// `hash(domain, parts joined by NUL)` without building the joined secret.
    fn fingerprint(&self, tag: u8, name: &[u8], value: &[u8]) -> u64 {
        fingerprint_with(&self.recent_key, tag, name, value)
    }

    /// Hands `sink` the credential remembered under `fingerprint`, if any.
    fn push_known(&self, fingerprint: u64, sink: &mut Sink<'_>) -> bool {
        let mut credentials = self.credentials.borrow_mut();
        match credentials.get_ref(fingerprint) {
            Some(known) => {
                sink.push(known);
                true
            }
            None => false,
        }
    }

    fn remember(&self, fingerprint: u64, credential: &Arc<Credential>) {
        self.credentials
            .borrow_mut()
            .insert(fingerprint, credential.clone());
    }

    fn hash_parts(&self, domain: &str, parts: &[&[u8]]) -> IdHash {
        use std::hash::{BuildHasher, Hash, Hasher};
        let mut h = self.recent_key.build_hasher();
        domain.hash(&mut h);
        parts.hash(&mut h);
        let fingerprint = h.finish();
        if let Some(hit) = self.recent.borrow_mut().get(fingerprint) {
            return hit;
        }
        let hash = self.hash_parts_uncached(domain, parts);
        self.recent.borrow_mut().insert(fingerprint, hash);
        hash
    }

    fn hash_parts_uncached(&self, domain: &str, parts: &[&[u8]]) -> IdHash {
        let mut mac = self.keyed.clone();
        mac.update(&(domain.len() as u64).to_be_bytes());
        mac.update(domain.as_bytes());
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                mac.update(&[0]);
            }
            mac.update(part);
        }
        let full: [u8; 32] = mac.finalize().into_bytes().into();
        let mut id = [0u8; 16];
        id.copy_from_slice(&full[..16]);
        IdHash(id)
    }
}

/// Header and claims of a JWT, unverified. Strings are cut to [`MAX_TEXT_LEN`] bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Jwt {
    pub alg: String,
    pub typ: Option<String>,
    pub kid: Option<String>,
    pub sub: Option<String>,
    pub iss: Option<String>,
    /// The first audience when `aud` is an array.
    pub aud: Option<String>,
    pub exp: Option<i64>,
    pub iat: Option<i64>,
    pub nbf: Option<i64>,
    /// `alg` is `none` (any case) or the signature is empty: anyone could have minted it.
    pub unsigned: bool,
}

impl Jwt {
    /// RFC 7519: the token must not be accepted on or after `exp`.
    pub fn expired_at(&self, unix_secs: i64) -> bool {
        self.exp.is_some_and(|exp| unix_secs >= exp)
    }

    pub fn not_yet_valid_at(&self, unix_secs: i64) -> bool {
        self.nbf.is_some_and(|nbf| unix_secs < nbf)
    }
}

/// Decodes a compact JWS without verifying; None when it is not one (3 dot-separated base64url
/// parts, header JSON object with a string `alg`, payload JSON object).
pub fn decode_jwt(token: &[u8]) -> Option<Jwt> {
    if token.len() > MAX_JWT_LEN {
        return None;
    }
    let first = memchr::memchr(b'.', token)?;
    let (header, rest) = (&token[..first], &token[first + 1..]);
    let second = memchr::memchr(b'.', rest)?;
    let (payload, signature) = (&rest[..second], &rest[second + 1..]);
    if header.is_empty()
        || payload.is_empty()
        || !signature
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'='))
    {
        return None;
    }
    let header = json_object(header)?;
    let alg = match header.get("alg")? {
        Value::String(alg) => clip(alg),
        _ => return None,
    };
    let claims = json_object(payload)?;
    let aud = match claims.get("aud") {
        Some(Value::Array(audiences)) => claim_text(audiences.first()),
        other => claim_text(other),
    };
    Some(Jwt {
        unsigned: alg.eq_ignore_ascii_case("none") || signature.is_empty(),
        alg,
        typ: claim_text(header.get("typ")),
        kid: claim_text(header.get("kid")),
        sub: claim_text(claims.get("sub")),
        iss: claim_text(claims.get("iss")),
        aud,
        exp: claim_time(claims.get("exp")),
        iat: claim_time(claims.get("iat")),
        nbf: claim_time(claims.get("nbf")),
    })
}

fn json_object(base64url: &[u8]) -> Option<Map<String, Value>> {
    let json = BASE64URL.decode(base64url).ok()?;
    serde_json::from_slice(&json).ok()
}

fn claim_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(text) => Some(clip(text)),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

fn claim_time(value: Option<&Value>) -> Option<i64> {
    // Float-to-int `as` saturates, so absurd times clamp instead of wrapping.
    let from_float = |f: f64| f.is_finite().then_some(f as i64);
    match value? {
        Value::Number(number) => number
            .as_i64()
            .or_else(|| number.as_f64().and_then(from_float)),
        Value::String(text) => {
            let text = text.trim();
            text.parse::<i64>()
                .ok()
                .or_else(|| text.parse::<f64>().ok().and_then(from_float))
        }
        _ => None,
    }
}

/// One credential found on a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    pub scheme: Scheme,
    pub location: Location,
    /// Header, parameter or cookie name as seen, lowercased (e.g. "authorization", "x-api-key",
    /// "api_key", "sessionid").
    pub name: label::Label,
    /// Keyed hash of the secret: the whole token, key or cookie value, Basic "user:pass"
    /// (decoded), Digest realm and user, AWS access key id (signatures change per request).
    pub secret: IdHash,
    /// Who it names, in clear, where the credential carries one: Basic or Digest user name, JWT
    /// `sub`, AWS access key id. Not secret; the integrator decides whether to write it.
    pub subject: Option<Arc<str>>,
    /// Keyed hash of the identity that survives token rotation: `hash("jwt-sub", iss ‖ NUL ‖
    /// sub)` of the decoded claims, `hash("basic-user", user)`, `hash("digest-user", user)`,
    /// `hash("aws-key-id", id)`. Present exactly when `subject` is.
    pub subject_hash: Option<IdHash>,
    pub jwt: Option<Arc<Jwt>>,
}

/// What to look for; defaults cover common practice, operators extend via config. Names match
/// case-insensitively; an entry starting with `*` matches any name ending with the rest.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    pub api_key_headers: Vec<String>,
    pub api_key_params: Vec<String>,
    pub session_cookies: Vec<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        let owned = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect();
        AuthConfig {
            api_key_headers: owned(&[
                "x-api-key",
                "api-key",
                "apikey",
                "x-apikey",
                "x-auth-token",
                "x-access-token",
                "x-token",
                "x-functions-key",
                "ocp-apim-subscription-key",
                "x-goog-api-key",
            ]),
            api_key_params: owned(&[
                "api_key",
                "apikey",
                "api-key",
                "key",
                "access_token",
                "token",
                "auth",
                "auth_token",
            ]),
            session_cookies: owned(&[
                "sessionid",
                "session",
                "session_id",
                "sid",
                "jsessionid",
                "phpsessid",
                "connect.sid",
                "asp.net_sessionid",
                "laravel_session",
                "_session_id",
                "*session",
                "*_sess",
                "*sessid",
            ]),
        }
    }
}

/// Finds every credential on a request: `headers` as (name, value) raw byte pairs in wire order,
/// `query` the raw query string (after '?', not decoded; values are percent-decoded before
/// hashing, `+` is kept). Appends at most [`MAX_CREDENTIALS`] to `out`, leaving what it already
/// holds; an identical credential seen twice is appended once. `Proxy-Authorization` is ignored:
/// it authenticates to the proxy, not the API.
pub fn extract<'h>(
    headers: impl Iterator<Item = (&'h [u8], &'h [u8])>,
    query: &[u8],
    names: &AuthMatcher,
    keyer: &Keyer,
    out: &mut Vec<Arc<Credential>>,
) {
    let start = out.len();
    extract_from(headers, query, names, keyer, out, start);
}

fn fingerprint_with(key: &ahash::RandomState, tag: u8, name: &[u8], value: &[u8]) -> u64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    let mut h = key.build_hasher();
    tag.hash(&mut h);
    name.hash(&mut h);
    value.hash(&mut h);
    h.finish()
}

/// A flow worker's look at where a request's credentials are, so the analysis stage need not
/// scan its headers: most requests carry none, or one `Authorization` header seen before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthHint {
    /// The [`Keyer`] whose fingerprint this is (another's takes no hint).
    keyer: u64,
    /// `None`: nothing in the request could hold a credential. `Some`: one `Authorization`
    /// header, and nothing else that could, with this fingerprint of its value.
    authorization: Option<u64>,
}

/// Makes [`AuthHint`]s for one [`Keyer`] ([`Keyer::hinter`]), in a flow worker.
#[derive(Clone, Debug)]
pub struct Hinter {
    names: AuthMatcher,
    fingerprint_key: ahash::RandomState,
    keyer: u64,
}

impl Hinter {
    /// The hint for a request with these headers and raw query; `None` when only a full scan
    /// can tell (cookies, API-key headers or parameters, several `Authorization` headers).
    pub fn hint<'h>(
        &self,
        headers: impl Iterator<Item = (&'h [u8], &'h [u8])>,
        query: &[u8],
    ) -> Option<AuthHint> {
        self.hint_visiting(headers, query, |_, _, _| {})
    }

    /// [`Hinter::hint`], handing `visit` every header with its classification on the way, so
    /// that a caller after other headers too walks them once.
    #[inline]
    pub fn hint_visiting<'h>(
        &self,
        headers: impl Iterator<Item = (&'h [u8], &'h [u8])>,
        query: &[u8],
        mut visit: impl FnMut(&'h [u8], &'h [u8], Option<CredentialHeader>),
    ) -> Option<AuthHint> {
        let mut authorization = None;
        let mut scan = false;
        for (name, value) in headers {
            let kind = credential_header(name, &self.names);
            match kind {
                Some(CredentialHeader::Authorization) if authorization.is_none() => {
                    authorization = Some(value.trim_ascii());
                }
                Some(_) => scan = true,
                None => {}
            }
            visit(name, value, kind);
        }
        if scan {
            return None;
        }
        let mut any_key_param = false;
        for_each_key_param(query, &self.names.params, |_, _| {
            any_key_param = true;
            false
        });
        if any_key_param {
            return None;
        }
        Some(AuthHint {
            keyer: self.keyer,
            authorization: authorization.map(|value| {
                fingerprint_with(&self.fingerprint_key, u8::MAX, b"authorization", value)
            }),
        })
    }
}

/// [`extract_replacing`] by a flow worker's `hint` instead of a scan of the request: true when
/// the hint sufficed (the request's credentials are in `out`), false when it did not (a
/// credential not seen before, another keyer's hint) and the request must be scanned.
pub fn extract_hinted(hint: AuthHint, keyer: &Keyer, out: &mut Vec<Arc<Credential>>) -> bool {
    if hint.keyer != keyer.id {
        return false;
    }
    let Some(fingerprint) = hint.authorization else {
        out.clear();
        return true;
    };
    let mut sink = Sink {
        start: 0,
        end: 0,
        out,
        keyer,
    };
    if !keyer.push_known(fingerprint, &mut sink) {
        return false;
    }
    let end = sink.end;
    out.truncate(end);
    true
}

/// [`extract`] into `out` in place of what it held: the previous request's credentials. A
/// credential in the same place as on that request (a client sends the same one request after
/// request) is kept as it is: neither dropped nor cloned, two locked instructions fewer each.
pub fn extract_replacing<'h>(
    headers: impl Iterator<Item = (&'h [u8], &'h [u8])>,
    query: &[u8],
    names: &AuthMatcher,
    keyer: &Keyer,
    out: &mut Vec<Arc<Credential>>,
) {
    extract_from(headers, query, names, keyer, out, 0);
}

/// The request's credentials into `out[start..]`, over whatever was there.
fn extract_from<'h>(
    headers: impl Iterator<Item = (&'h [u8], &'h [u8])>,
    query: &[u8],
    names: &AuthMatcher,
    keyer: &Keyer,
    out: &mut Vec<Arc<Credential>>,
    start: usize,
) {
    let mut sink = Sink {
        start,
        end: start,
        out,
        keyer,
    };
    scan(headers, query, names, &mut sink);
    let end = sink.end;
    out.truncate(end);
}

fn scan<'h>(
    headers: impl Iterator<Item = (&'h [u8], &'h [u8])>,
    query: &[u8],
    names: &AuthMatcher,
    sink: &mut Sink<'_>,
) {
    for (name, value) in headers {
        if sink.full() {
            return;
        }
        match credential_header(name, names) {
            Some(CredentialHeader::Authorization) => authorization(value.trim_ascii(), sink),
            Some(CredentialHeader::Cookie) => cookies(value, &names.cookies, sink),
            Some(CredentialHeader::ApiKey) => {
                sink.keyed_value(Scheme::ApiKey, Location::Header, name, value.trim_ascii())
            }
            None => {}
        }
    }
    if sink.full() {
        return;
    }
    for_each_key_param(query, &names.params, |name, raw_value| {
        let value = percent_decode(raw_value);
        sink.keyed_value(Scheme::ApiKey, Location::Query, name, &value);
        !sink.full()
    });
}

/// A header that may carry a credential, by its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialHeader {
    Authorization,
    Cookie,
    ApiKey,
}

/// The one classification of header names that both [`scan`] and [`Hinter::hint`] use, so a
/// hint never overlooks what the scan would find.
#[inline]
fn credential_header(name: &[u8], names: &AuthMatcher) -> Option<CredentialHeader> {
    if name.eq_ignore_ascii_case(b"authorization") {
        Some(CredentialHeader::Authorization)
    } else if name.eq_ignore_ascii_case(b"cookie") {
        Some(CredentialHeader::Cookie)
    } else if names.headers.matches(name) {
        Some(CredentialHeader::ApiKey)
    } else {
        None
    }
}

/// Calls `f(decoded name, raw value)` for each query parameter whose percent-decoded name is
/// one of `params` (a name too long to decode is skipped), until `f` returns false.
fn for_each_key_param(query: &[u8], params: &Names, mut f: impl FnMut(&[u8], &[u8]) -> bool) {
    let mut name_buf = [0u8; MAX_PARAM_NAME_LEN];
    for param in query.split(|&b| b == b'&') {
        let Some(eq) = memchr::memchr(b'=', param) else {
            continue;
        };
        let Some(name) = percent_decode_into(&param[..eq], &mut name_buf) else {
            continue;
        };
        if params.matches(name) && !f(name, &param[eq + 1..]) {
            return;
        }
    }
}

struct Sink<'a> {
    out: &'a mut Vec<Arc<Credential>>,
    /// This request's credentials are `out[start..end]`; past `end` lie the previous request's,
    /// overwritten slot by slot and cut off when the request is done.
    start: usize,
    end: usize,
    keyer: &'a Keyer,
}

impl Sink<'_> {
    fn full(&self) -> bool {
        self.end - self.start >= MAX_CREDENTIALS
    }

    fn push(&mut self, credential: &Arc<Credential>) {
        if self.full() || self.out[self.start..self.end].contains(credential) {
            return;
        }
        match self.out.get_mut(self.end) {
            Some(slot) if Arc::ptr_eq(slot, credential) => {}
            Some(slot) => *slot = Arc::clone(credential),
            None => self.out.push(Arc::clone(credential)),
        }
        self.end += 1;
    }

    /// The credential last pushed for this request, if any was.
    fn last(&self) -> Option<&Arc<Credential>> {
        self.out[self.start..self.end].last()
    }

    /// A credential that is just a value under a name: API key or session cookie. Such values
    /// are often JWTs, decoded when they are.
    fn keyed_value(&mut self, scheme: Scheme, location: Location, name: &[u8], value: &[u8]) {
        if value.is_empty() {
            return;
        }
        let fingerprint = self.keyer.fingerprint(scheme as u8, name, value);
        if self.keyer.push_known(fingerprint, self) {
            return;
        }
        let domain = match scheme {
            Scheme::SessionCookie => "session",
            _ => "api-key",
        };
        let jwt = decode_jwt(value).map(Arc::new);
        let (subject, subject_hash) = self.jwt_subject(jwt.as_deref());
        let credential = Credential {
            scheme,
            location,
            name: label::Label::interned_name(&lowercase_name(name)),
            secret: self.keyer.hash(domain, value),
            subject,
            subject_hash,
            jwt,
        };
        let credential = Arc::new(credential);
        self.keyer.remember(fingerprint, &credential);
        self.push(&credential);
    }

    fn jwt_subject(&self, jwt: Option<&Jwt>) -> (Option<Arc<str>>, Option<IdHash>) {
        let Some((sub, jwt)) = jwt.and_then(|jwt| Some((jwt.sub.as_ref()?, jwt))) else {
            return (None, None);
        };
        let iss = jwt.iss.as_deref().unwrap_or_default();
        let hash = self
            .keyer
            .hash_parts("jwt-sub", &[iss.as_bytes(), sub.as_bytes()]);
        (Some(sub.as_str().into()), Some(hash))
    }

    fn authorization(
        &mut self,
        scheme: Scheme,
        secret: IdHash,
        subject: Option<(&[u8], &str)>,
        jwt: Option<Jwt>,
    ) {
        let jwt = jwt.map(Arc::new);
        let (subject, subject_hash) = match subject {
            Some((name, domain)) => (
                Some(clip_bytes(name).into()),
                Some(self.keyer.hash(domain, name)),
            ),
            None => self.jwt_subject(jwt.as_deref()),
        };
        self.push(&Arc::new(Credential {
            scheme,
            location: Location::Header,
            name: self.keyer.authorization.clone(),
            secret,
            subject,
            subject_hash,
            jwt,
        }));
    }
}

/// Scheme names that, alone, carry no credential.
const BARE_SCHEMES: [&[u8]; 8] = [
    b"bearer",
    b"basic",
    b"digest",
    b"negotiate",
    b"ntlm",
    b"token",
    b"apikey",
    b"aws4-hmac-sha256",
];

fn authorization(value: &[u8], sink: &mut Sink<'_>) {
    let keyer = sink.keyer;
    let fingerprint = keyer.fingerprint(u8::MAX, b"authorization", value);
    if keyer.push_known(fingerprint, sink) {
        return;
    }
    let before = sink.end;
    parse_authorization(value, sink);
    if sink.end > before {
        if let Some(added) = sink.last() {
            keyer.remember(fingerprint, added);
        }
    }
}

fn parse_authorization(value: &[u8], sink: &mut Sink<'_>) {
    let keyer = sink.keyer;
    let Some(space) = value.iter().position(|&b| b == b' ' || b == b'\t') else {
        // No scheme: some clients send the bare token or key.
        if value.is_empty() || BARE_SCHEMES.iter().any(|s| value.eq_ignore_ascii_case(s)) {
            return;
        }
        match decode_jwt(value) {
            Some(jwt) => {
                let secret = keyer.hash("bearer", value);
                sink.authorization(Scheme::BearerJwt, secret, None, Some(jwt));
            }
            None => {
                let secret = keyer.hash_parts("other", &[b"", value]);
                sink.authorization(Scheme::Other, secret, None, None);
            }
        }
        return;
    };
    let (scheme, params) = (&value[..space], value[space + 1..].trim_ascii());
    if params.is_empty() {
        return;
    }
    if scheme.eq_ignore_ascii_case(b"bearer") {
        let secret = keyer.hash("bearer", params);
        match decode_jwt(params) {
            Some(jwt) => sink.authorization(Scheme::BearerJwt, secret, None, Some(jwt)),
            None => sink.authorization(Scheme::BearerOpaque, secret, None, None),
        }
    } else if scheme.eq_ignore_ascii_case(b"basic") {
        match BASE64.decode(params) {
            Ok(pair) if !pair.is_empty() => {
                let user = pair.split(|&b| b == b':').next().unwrap_or_default();
                let subject = (!user.is_empty()).then_some((user, "basic-user"));
                let secret = keyer.hash("basic", &pair);
                sink.authorization(Scheme::Basic, secret, subject, None);
            }
            Ok(_) => {}
            Err(_) => {
                let secret = keyer.hash("basic", params);
                sink.authorization(Scheme::Basic, secret, None, None);
            }
        }
    } else if scheme.eq_ignore_ascii_case(b"digest") {
        // The response changes with every nonce; the user in its realm is what stays.
        match auth_param(params, b"username").filter(|user| !user.is_empty()) {
            Some(user) => {
                let realm = auth_param(params, b"realm").unwrap_or_default();
                let secret = keyer.hash_parts("digest", &[&realm, &user]);
                sink.authorization(Scheme::Digest, secret, Some((&user, "digest-user")), None);
            }
            None => {
                let secret = keyer.hash("digest", params);
                sink.authorization(Scheme::Digest, secret, None, None);
            }
        }
    } else {
        // AWS signatures change per request; the access key id names the credential.
        let access_key = scheme
            .eq_ignore_ascii_case(b"aws4-hmac-sha256")
            .then(|| auth_param(params, b"credential"))
            .flatten()
            .map(|scope| {
                let end = memchr::memchr(b'/', &scope).unwrap_or(scope.len());
                scope[..end].to_vec()
            })
            .filter(|id| !id.is_empty());
        match access_key {
            Some(id) => {
                let secret = keyer.hash("aws4", &id);
                sink.authorization(Scheme::Other, secret, Some((&id, "aws-key-id")), None);
            }
            None => {
                let mut buf = [0u8; 32];
                let scheme = ascii_lowercase_into(scheme, &mut buf);
                let secret = keyer.hash_parts("other", &[scheme, params]);
                sink.authorization(Scheme::Other, secret, None, None);
            }
        }
    }
}

/// The value of auth-param `wanted` (RFC 9110 §11.2: `name=token` or `name="quoted"`, comma
/// separated), unescaped.
fn auth_param<'a>(params: &'a [u8], wanted: &[u8]) -> Option<Cow<'a, [u8]>> {
    let is_space = |b: u8| b == b' ' || b == b'\t';
    let mut i = 0;
    while i < params.len() {
        if is_space(params[i]) || params[i] == b',' {
            i += 1;
            continue;
        }
        let name_start = i;
        while i < params.len() && !matches!(params[i], b'=' | b',' | b' ' | b'\t') {
            i += 1;
        }
        let name = &params[name_start..i];
        while i < params.len() && is_space(params[i]) {
            i += 1;
        }
        if i >= params.len() || params[i] != b'=' {
            continue;
        }
        i += 1;
        while i < params.len() && is_space(params[i]) {
            i += 1;
        }
        let value: Cow<'a, [u8]> = if params.get(i) == Some(&b'"') {
            i += 1;
            let start = i;
            let mut escaped = false;
            while i < params.len() && params[i] != b'"' {
                escaped |= params[i] == b'\\';
                i += if params[i] == b'\\' { 2 } else { 1 };
            }
            let raw = &params[start..i.min(params.len())];
            i += 1;
            if escaped {
                Cow::Owned(unescape_quoted(raw))
            } else {
                Cow::Borrowed(raw)
            }
        } else {
            let start = i;
            while i < params.len() && params[i] != b',' && !is_space(params[i]) {
                i += 1;
            }
            Cow::Borrowed(&params[start..i])
        };
        if name.eq_ignore_ascii_case(wanted) {
            return Some(value);
        }
    }
    None
}

fn unescape_quoted(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'\\' => out.extend(bytes.next()),
            _ => out.push(b),
        }
    }
    out
}

fn cookies(header: &[u8], session_cookies: &Names, sink: &mut Sink<'_>) {
    for pair in header.split(|&b| b == b';') {
        if sink.full() {
            return;
        }
        let Some(eq) = memchr::memchr(b'=', pair) else {
            continue;
        };
        let name = pair[..eq].trim_ascii();
        if !session_cookies.matches(name) {
            continue;
        }
        let mut value = pair[eq + 1..].trim_ascii();
        if let [b'"', inner @ .., b'"'] = value {
            value = inner;
        }
        sink.keyed_value(Scheme::SessionCookie, Location::Cookie, name, value);
    }
}

/// An [`AuthConfig`]'s name lists made ready for matching, once per configuration: most
/// names on a request are none of these, and are turned away by their length.
#[derive(Clone, Debug, Default)]
pub struct AuthMatcher {
    headers: Names,
    params: Names,
    cookies: Names,
}

impl AuthMatcher {
    pub fn new(cfg: &AuthConfig) -> AuthMatcher {
        AuthMatcher {
            headers: Names::new(&cfg.api_key_headers),
            params: Names::new(&cfg.api_key_params),
            cookies: Names::new(&cfg.session_cookies),
        }
    }

    /// The header carries an API key (matched as [`extract`] does).
    pub fn is_api_key_header(&self, name: &[u8]) -> bool {
        self.headers.matches(name)
    }
}

/// Names matched case-insensitively; an entry starting with `*` matches any name ending with
/// the rest.
#[derive(Clone, Debug)]
struct Names {
    /// Exact names, shortest first.
    exact: Vec<Box<[u8]>>,
    /// `exact[by_length[n].0..by_length[n].1]` are the names n bytes long (n < 64): a header
    /// is compared only with names of its own length.
    by_length: [(u32, u32); 64],
    /// Where the names of 64 bytes or more start in `exact`.
    long_from: usize,
    suffixes: Vec<Box<[u8]>>,
    /// The length, first and last byte of each exact name, and the last bytes of the suffixes,
    /// in either case: a name with neither matches nothing, and nearly every header name is
    /// rejected by that alone (first bytes alone let `Accept`, `X-Request-ID` through).
    exact_ends: EndFilter,
    lasts: ByteSet,
}

/// A set of (length, first byte, last byte) keys of names, ASCII case folded, as one bit each
/// of a hash's 1024: a key not in it is no name's; a hash collision only costs a comparison.
#[derive(Clone, Copy, Debug)]
struct EndFilter([u64; 16]);

impl EndFilter {
    /// `name`'s bit. `| 0x20` folds ASCII case (and some other bytes together, harmlessly).
    fn bit(name: &[u8]) -> Option<usize> {
        let (&first, &last) = (name.first()?, name.last()?);
        let key = (name.len().min(255) as u32) << 16
            | u32::from(first | 0x20) << 8
            | u32::from(last | 0x20);
        Some((key.wrapping_mul(0x9e37_79b1) >> 22) as usize)
    }

    fn insert(&mut self, name: &[u8]) {
        if let Some(b) = EndFilter::bit(name) {
            self.0[b / 64] |= 1 << (b % 64);
        }
    }

    fn contains_bit(&self, b: usize) -> bool {
        self.0[b / 64] >> (b % 64) & 1 == 1
    }
}

/// A set of bytes, one bit each.
#[derive(Clone, Copy, Debug, Default)]
struct ByteSet([u64; 4]);

impl ByteSet {
    fn insert_either_case(&mut self, b: u8) {
        for b in [b.to_ascii_lowercase(), b.to_ascii_uppercase()] {
            self.0[usize::from(b >> 6)] |= 1 << (b & 63);
        }
    }

    fn contains(&self, b: u8) -> bool {
        self.0[usize::from(b >> 6)] >> (b & 63) & 1 == 1
    }
}

impl Default for Names {
    fn default() -> Self {
        Names {
            exact: Vec::new(),
            by_length: [(0, 0); 64],
            long_from: 0,
            suffixes: Vec::new(),
            exact_ends: EndFilter([0; 16]),
            lasts: ByteSet::default(),
        }
    }
}

impl Names {
    fn new(patterns: &[String]) -> Names {
        let mut names = Names::default();
        for p in patterns {
            match p.strip_prefix('*') {
                Some(suffix) => names.suffixes.push(suffix.as_bytes().into()),
                None => names.exact.push(p.as_bytes().into()),
            }
        }
        names.exact.sort_by_key(|e| e.len());
        for e in &names.exact {
            names.exact_ends.insert(e);
        }
        for s in &names.suffixes {
            match s.last() {
                Some(&b) => names.lasts.insert_either_case(b),
                // "*" alone: every name ends with the empty suffix.
                None => names.lasts = ByteSet([u64::MAX; 4]),
            }
        }
        names.long_from = names.exact.len();
        for (i, e) in names.exact.iter().enumerate().rev() {
            match e.len() {
                n if n < 64 => {
                    let (start, end) = &mut names.by_length[n];
                    if *end == 0 {
                        *end = i as u32 + 1;
                    }
                    *start = i as u32;
                }
                _ => names.long_from = i,
            }
        }
        names
    }

    /// Rejects most names inline; the comparisons are out of line.
    #[inline]
    fn matches(&self, name: &[u8]) -> bool {
        // The empty name is left to the full comparison (an empty exact name matches it).
        if let (Some(bit), Some(&last)) = (EndFilter::bit(name), name.last()) {
            if !self.exact_ends.contains_bit(bit) && !self.lasts.contains(last) {
                return false;
            }
        }
        self.compare(name)
    }

    #[inline(never)]
    fn compare(&self, name: &[u8]) -> bool {
        let n = name.len();
        let same_length = match self.by_length.get(n) {
            Some(&(start, end)) => &self.exact[start as usize..end as usize],
            None => &self.exact[self.long_from..],
        };
        same_length.iter().any(|e| name.eq_ignore_ascii_case(e))
            || self
                .suffixes
                .iter()
                .any(|s| n >= s.len() && name[n - s.len()..].eq_ignore_ascii_case(s))
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decoding that keeps malformed escapes literally, as servers commonly do.
struct PercentDecode<'a>(&'a [u8]);

impl Iterator for PercentDecode<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        match *self.0 {
            [b'%', hi, lo, ref rest @ ..] if hex_value(hi).is_some() && hex_value(lo).is_some() => {
                self.0 = rest;
                Some(hex_value(hi)? << 4 | hex_value(lo)?)
            }
            [b, ref rest @ ..] => {
                self.0 = rest;
                Some(b)
            }
            [] => None,
        }
    }
}

fn percent_decode(raw: &[u8]) -> Cow<'_, [u8]> {
    if memchr::memchr(b'%', raw).is_none() {
        Cow::Borrowed(raw)
    } else {
        Cow::Owned(PercentDecode(raw).collect())
    }
}

/// Decodes into `buf` so that parameter names are matched without allocating; None when the
/// decoded name does not fit.
fn percent_decode_into<'a>(raw: &'a [u8], buf: &'a mut [u8]) -> Option<&'a [u8]> {
    if memchr::memchr(b'%', raw).is_none() {
        return Some(raw);
    }
    let mut len = 0;
    for b in PercentDecode(raw) {
        *buf.get_mut(len)? = b;
        len += 1;
    }
    Some(&buf[..len])
}

fn ascii_lowercase_into<'a>(src: &'a [u8], buf: &'a mut [u8; 32]) -> &'a [u8] {
    match buf.get_mut(..src.len()) {
        Some(dst) => {
            dst.copy_from_slice(src);
            dst.make_ascii_lowercase();
            dst
        }
        None => src,
    }
}

fn lowercase_name(name: &[u8]) -> String {
    let mut name = clip_bytes(name);
    name.make_ascii_lowercase();
    name
}

/// At most [`MAX_TEXT_LEN`] bytes of `text`, cut on a char boundary.
fn clip(text: &str) -> String {
    let mut end = text.len().min(MAX_TEXT_LEN);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// Like [`clip`] for raw bytes; invalid UTF-8 becomes U+FFFD.
fn clip_bytes(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(MAX_TEXT_LEN)];
    match std::str::from_utf8(head) {
        Ok(text) => text.to_owned(),
        // Only the last char was cut by the limit: drop it rather than mark it invalid.
        Err(e) if e.error_len().is_none() => {
            String::from_utf8_lossy(&head[..e.valid_up_to()]).into_owned()
        }
        Err(_) => clip(&String::from_utf8_lossy(head)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recent_cache_keeps_a_busy_set_across_turnovers_and_stays_bounded() {
        let mut recent = Recent::default();
        // A busy set of half a generation, seen between newcomers that turn the cache over
        // again and again: after its first sight, every one of its lookups hits.
        let busy = (RECENT_HASHES / 2) as u64;
        let mut newcomer = 1u64 << 40;
        let mut misses = 0;
        for round in 0..6 {
            for k in 0..busy {
                match recent.get(k) {
                    Some(v) => assert_eq!(v, k * 7),
                    None => {
                        misses += 1;
                        recent.insert(k, k * 7);
                    }
                }
                recent.insert(newcomer, 0);
                newcomer += 1;
                assert!(recent.len() <= 2 * RECENT_HASHES);
            }
            assert!(round > 0 || misses == busy);
        }
        assert_eq!(misses, busy, "only the first sight of each misses");
    }

    #[test]
    fn names_match_exactly_or_by_suffix_whatever_the_case() {
        let long = "x".repeat(70);
        let names = Names::new(&[
            "x-api-key".into(),
            "*-secret".into(),
            long.clone(),
            "apikey".into(),
        ]);
        let check = |names: &Names, yes: &[&str], no: &[&str]| {
            for y in yes {
                assert!(names.matches(y.as_bytes()), "{y}");
            }
            for n in no {
                assert!(!names.matches(n.as_bytes()), "{n}");
            }
        };
        check(
            &names,
            &[
                "X-API-Key",
                "x-client-SECRET",
                "-secret",
                "ApiKey",
                &long.to_uppercase(),
            ],
            &[
                "accept",
                "x-api-keys",
                "secret",
                "",
                &"x".repeat(71),
                "api-key",
            ],
        );
        assert!(!Names::new(&[]).matches(b"x-api-key"));
        // Several names of one length (compared only with each other), a name stored in
        // capitals, near misses of the same length.
        let long = "x".repeat(70);
        let names = Names::new(&[
            "api-key".into(),
            "x-token".into(),
            "apikey".into(),
            long.to_uppercase(),
            "*_sess".into(),
            "x-access-token".into(),
        ]);
        check(
            &names,
            &[
                "API-Key",
                "x-token",
                "X-TOKEN",
                "apikey",
                "x-access-token",
                &long,
                "my_SESS",
                "_sess",
            ],
            &[
                "api-kex",
                "x-toke",
                "apikeys",
                "",
                "sess",
                &long[1..],
                "x-access-tokem",
            ],
        );
        assert!(!Names::new(&[]).matches(b"anything"));
        // "*" alone matches every name but the empty one has no bytes to end with: it matches too.
        let any = Names::new(&["*".into()]);
        assert!(any.matches(b"whatever") && any.matches(b""));
    }

    proptest::proptest! {
        #[test]
        fn names_match_as_a_plain_comparison_does(
            // Bytes that only differ in 0x20 besides letters (`@` and `` ` ``, `[` and `{`):
            // the length-and-ends filter folds them together, the comparison must not.
            patterns in proptest::collection::vec("\\*?[aAbB_@`{\\[-]{0,4}", 0..5),
            name in "[aAbB_@`{\\[-]{0,5}",
        ) {
            let naive = patterns.iter().any(|p| match p.strip_prefix('*') {
                Some(suffix) => name.len() >= suffix.len()
                    && name.as_bytes()[name.len() - suffix.len()..]
                        .eq_ignore_ascii_case(suffix.as_bytes()),
                None => name.as_bytes().eq_ignore_ascii_case(p.as_bytes()),
            });
            proptest::prop_assert_eq!(Names::new(&patterns).matches(name.as_bytes()), naive);
        }
    }
    use proptest::prelude::*;

    const KEY: &[u8] = b"deployment key";

    fn b64url(json: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    fn b64(text: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    fn jwt(header: &str, claims: &str, signature: &str) -> String {
        format!("{}.{}.{signature}", b64url(header), b64url(claims))
    }

    fn run(headers: &[(&str, &str)], query: &str) -> Vec<Credential> {
        run_with(&AuthConfig::default(), headers, query)
    }

    fn run_with(cfg: &AuthConfig, headers: &[(&str, &str)], query: &str) -> Vec<Credential> {
        let keyer = Keyer::new(KEY);
        let mut out = Vec::new();
        let mut iter = headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()));
        extract(
            &mut iter,
            query.as_bytes(),
            &AuthMatcher::new(cfg),
            &keyer,
            &mut out,
        );
        out.into_iter().map(|c| (*c).clone()).collect()
    }

    #[test]
    fn replacing_keeps_the_same_credentials_in_place_and_drops_the_rest() {
        let keyer = Keyer::new(KEY);
        let matcher = AuthMatcher::new(&AuthConfig::default());
        let token = jwt(r#"{"alg":"HS256"}"#, r#"{"sub":"ana"}"#, "sig");
        let bearer = format!("Bearer {token}");
        let requests: [&[(&str, &str)]; 5] = [
            &[("Authorization", &bearer), ("X-API-Key", "k1")],
            &[("Authorization", &bearer), ("X-API-Key", "k1")],
            &[("X-API-Key", "k1"), ("Authorization", &bearer)],
            &[("Authorization", &bearer)],
            &[("Accept", "*/*")],
        ];
        let mut replaced: Vec<Arc<Credential>> = Vec::new();
        let mut before: Vec<Arc<Credential>> = Vec::new();
        let mut first = Vec::new();
        for (i, headers) in requests.iter().enumerate() {
            let headers = || headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()));
            let mut appended = Vec::new();
            extract(headers(), b"", &matcher, &keyer, &mut appended);
            extract_replacing(headers(), b"", &matcher, &keyer, &mut replaced);
            // The same credentials, in the same order, as a fresh extraction finds.
            assert_eq!(replaced, appended, "request {i}");
            if i == 1 {
                // Unchanged from the request before: the very same allocations.
                assert!(replaced.iter().zip(&before).all(|(a, b)| Arc::ptr_eq(a, b)));
            }
            before = replaced.clone();
            if i == 0 {
                first = replaced.clone();
            }
        }
        assert!(replaced.is_empty());
        // Appending after existing entries leaves them alone.
        let mut out = first.clone();
        let headers = [(&b"X-API-Key"[..], &b"k2"[..])];
        extract(headers.into_iter(), b"", &matcher, &keyer, &mut out);
        assert_eq!(out.len(), 3);
        assert!(out.iter().zip(&first).all(|(a, b)| Arc::ptr_eq(a, b)));
    }

    #[test]
    fn a_worker_hint_finds_what_a_scan_finds_or_asks_for_the_scan() {
        let keyer = Keyer::new(KEY);
        let matcher = AuthMatcher::new(&AuthConfig::default());
        let hinter = keyer.hinter(&matcher);
        // It goes to a flow worker's thread; the keyer stays.
        fn send<T: Send + 'static>(_: &T) {}
        send(&hinter);
        let token = jwt(r#"{"alg":"HS256"}"#, r#"{"sub":"ana"}"#, "sig");
        let bearer = format!("Bearer {token}");
        // (headers, query, whether a hint can stand for the scan)
        type Request<'a> = (&'a [(&'a str, &'a str)], &'a str, bool);
        let requests: [Request; 9] = [
            (&[("Accept", "*/*")], "", true),
            (&[("Authorization", &bearer)], "page=2", true),
            (&[("Authorization", " Basic dXNlcjpwdw== ")], "", true),
            (
                &[("Authorization", &bearer), ("Cookie", "theme=dark")],
                "",
                false,
            ),
            (&[("X-API-Key", "k1")], "", false),
            (&[("Accept", "*/*")], "api_key=k2", false),
            (&[("Accept", "*/*")], "api%5Fkey=k2", false),
            (
                &[("Authorization", "Bearer a"), ("authorization", "Bearer b")],
                "",
                false,
            ),
            (&[("Authorization", "Bearer")], "", true),
        ];
        for round in 0..2 {
            for (i, (headers, query, hinted)) in requests.iter().enumerate() {
                let headers = || headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()));
                let hint = hinter.hint(headers(), query.as_bytes());
                assert_eq!(hint.is_some(), *hinted, "request {i}");
                let mut scanned = Vec::new();
                extract(headers(), query.as_bytes(), &matcher, &keyer, &mut scanned);
                let Some(hint) = hint else { continue };
                let mut out = vec![Arc::new(one(&[("X-API-Key", "stale")], ""))];
                if extract_hinted(hint, &keyer, &mut out) {
                    assert_eq!(out, scanned, "request {i}, round {round}");
                } else {
                    // Only a credential the keyer has not parsed yet needs the scan (it is known
                    // after that scan), or a header that holds none (nothing to remember).
                    assert!(
                        scanned.is_empty() || round == 0,
                        "request {i}, round {round}"
                    );
                }
            }
        }
        // Another keyer's hint is not taken.
        let other = Keyer::new(KEY);
        let headers = [(&b"Accept"[..], &b"*/*"[..])];
        let hint = hinter
            .hint(headers.into_iter(), b"")
            .expect("nothing to scan");
        let mut out = Vec::new();
        assert!(!extract_hinted(hint, &other, &mut out));
        assert!(extract_hinted(hint, &keyer, &mut out) && out.is_empty());
    }

    fn one(headers: &[(&str, &str)], query: &str) -> Credential {
        let mut found = run(headers, query);
        assert_eq!(found.len(), 1, "{found:?}");
        found.remove(0)
    }

    fn hash(domain: &str, secret: &str) -> IdHash {
        Keyer::new(KEY).hash(domain, secret.as_bytes())
    }

    #[test]
    fn hs256_claims_are_decoded() {
        let token = jwt(
            r#"{"alg":"HS256","typ":"JWT","kid":"key-1"}"#,
            r#"{"sub":"user-42","iss":"https://id.example","aud":["api","web"],
                "exp":1700000000,"iat":1699990000.9,"nbf":"1699990000"}"#,
            "c2lnbmF0dXJl",
        );
        let decoded = decode_jwt(token.as_bytes()).expect("a JWT");
        assert_eq!(
            decoded,
            Jwt {
                alg: "HS256".into(),
                typ: Some("JWT".into()),
                kid: Some("key-1".into()),
                sub: Some("user-42".into()),
                iss: Some("https://id.example".into()),
                aud: Some("api".into()),
                exp: Some(1_700_000_000),
                iat: Some(1_699_990_000),
                nbf: Some(1_699_990_000),
                unsigned: false,
            }
        );
        assert!(!decoded.expired_at(1_699_999_999));
        assert!(decoded.expired_at(1_700_000_000));
        assert!(decoded.not_yet_valid_at(1_699_989_999));
        assert!(!decoded.not_yet_valid_at(1_699_990_000));
    }

    #[test]
    fn unsigned_tokens_are_marked() {
        let none = jwt(r#"{"alg":"none"}"#, r#"{"sub":"admin"}"#, "");
        let none = decode_jwt(none.as_bytes()).expect("alg none is a JWT");
        assert!(none.unsigned);
        assert_eq!(none.alg, "none");
        assert_eq!(none.exp, None);
        assert!(!none.expired_at(i64::MAX), "no exp never expires");

        let upper = jwt(r#"{"alg":"NONE"}"#, r#"{"sub":"admin"}"#, "c2ln");
        assert!(decode_jwt(upper.as_bytes()).expect("a JWT").unsigned);

        let stripped = jwt(r#"{"alg":"HS256"}"#, r#"{"sub":"admin"}"#, "");
        assert!(decode_jwt(stripped.as_bytes()).expect("a JWT").unsigned);
    }

    #[test]
    fn claim_forms_are_tolerated() {
        let padded_b64url = |json: &str| base64::engine::general_purpose::URL_SAFE.encode(json);
        let padded = format!(
            "{}.{}.sig",
            padded_b64url(r#"{"alg":"RS256"} "#),
            padded_b64url(r#"{"sub":12345,"aud":"solo","exp":1.7e9,"iss":"https://a?b=c&d>e"}"#)
        );
        assert!(padded.contains("==."), "{padded}");
        let decoded = decode_jwt(padded.as_bytes()).expect("padding tolerated");
        assert_eq!(decoded.sub.as_deref(), Some("12345"));
        assert_eq!(decoded.aud.as_deref(), Some("solo"));
        assert_eq!(decoded.exp, Some(1_700_000_000));
        assert_eq!(decoded.iss.as_deref(), Some("https://a?b=c&d>e"));
        assert_eq!(decoded.typ, None);

        let long_sub = format!("{}é", "x".repeat(MAX_TEXT_LEN - 1));
        let claims = format!(r#"{{"sub":"{long_sub}","exp":"soon","aud":[7,"x"]}}"#);
        let decoded = decode_jwt(jwt(r#"{"alg":"HS256"}"#, &claims, "s").as_bytes()).unwrap();
        assert_eq!(decoded.sub, Some("x".repeat(MAX_TEXT_LEN - 1)));
        assert_eq!(decoded.exp, None);
        assert_eq!(decoded.aud.as_deref(), Some("7"));
    }

    #[test]
    fn non_jwts_are_rejected() {
        let header = b64url(r#"{"alg":"HS256"}"#);
        let claims = b64url(r#"{"sub":"a"}"#);
        for token in [
            format!("{header}.{claims}"),
            format!("{header}.{claims}.sig.more"),
            format!("{header}.{claims}.si+g"),
            format!(".{claims}.sig"),
            format!("{header}..sig"),
            format!("{}.{claims}.sig", b64url("[1,2]")),
            format!("{}.{claims}.sig", b64url(r#"{"typ":"JWT"}"#)),
            format!("{}.{claims}.sig", b64url(r#"{"alg":256}"#)),
            format!("{header}.{}.sig", b64url("\"text\"")),
            format!("{header}.{}.sig", b64url("{not json")),
            format!("{header}.!!!.sig"),
            format!(
                "{header}.{}.sig",
                b64url(&format!(r#"{{"p":"{}"}}"#, "a".repeat(MAX_JWT_LEN)))
            ),
            "abc.def.ghi".to_owned(),
            String::new(),
        ] {
            assert_eq!(decode_jwt(token.as_bytes()), None, "{token}");
        }
    }

    #[test]
    fn bearer_tokens() {
        let opaque = one(&[("Authorization", "Bearer  abc123.def ")], "");
        assert_eq!(opaque.scheme, Scheme::BearerOpaque);
        assert_eq!(opaque.location, Location::Header);
        assert_eq!(&*opaque.name, "authorization");
        assert_eq!(opaque.secret, hash("bearer", "abc123.def"));
        assert_eq!(
            (opaque.subject, opaque.subject_hash, opaque.jwt),
            (None, None, None)
        );

        let token = jwt(
            r#"{"alg":"ES256"}"#,
            r#"{"sub":"u1","iss":"https://id"}"#,
            "c2ln",
        );
        let found = one(&[("AUTHORIZATION", &format!("bEaReR {token}"))], "");
        assert_eq!(found.scheme, Scheme::BearerJwt);
        assert_eq!(found.secret, hash("bearer", &token));
        assert_eq!(found.subject.as_deref(), Some("u1"));
        assert_eq!(found.subject_hash, Some(hash("jwt-sub", "https://id\0u1")));
        assert_eq!(found.jwt.expect("decoded").alg, "ES256");

        let bare = one(&[("authorization", &token)], "");
        assert_eq!(
            (bare.scheme, bare.secret),
            (Scheme::BearerJwt, found.secret)
        );

        // Same subject under a rotated token: different secret, same identity.
        let rotated = jwt(
            r#"{"alg":"ES256"}"#,
            r#"{"sub":"u1","iss":"https://id","iat":5}"#,
            "c2ln",
        );
        let rotated = one(&[("authorization", &format!("Bearer {rotated}"))], "");
        assert_ne!(rotated.secret, found.secret);
        assert_eq!(rotated.subject_hash, found.subject_hash);

        assert!(run(&[("authorization", "Bearer   ")], "").is_empty());
        assert!(run(&[("authorization", "Bearer")], "").is_empty());
        assert!(run(&[("proxy-authorization", "Bearer abc")], "").is_empty());
    }

    #[test]
    fn basic_credentials() {
        let found = one(
            &[("Authorization", &format!("Basic {}", b64("alice:s3cr:et")))],
            "",
        );
        assert_eq!(found.scheme, Scheme::Basic);
        assert_eq!(found.secret, hash("basic", "alice:s3cr:et"));
        assert_eq!(found.subject.as_deref(), Some("alice"));
        assert_eq!(found.subject_hash, Some(hash("basic-user", "alice")));

        let unpadded = b64("bob").trim_end_matches('=').to_owned();
        let found = one(&[("authorization", &format!("BASIC {unpadded}"))], "");
        assert_eq!(found.subject.as_deref(), Some("bob"));
        assert_eq!(found.secret, hash("basic", "bob"));

        let no_user = one(&[("authorization", &format!("Basic {}", b64(":key")))], "");
        assert_eq!((no_user.subject, no_user.subject_hash), (None, None));

        let bad = one(&[("authorization", "Basic not*base64")], "");
        assert_eq!(bad.scheme, Scheme::Basic);
        assert_eq!(bad.secret, hash("basic", "not*base64"));
        assert_eq!((bad.subject, bad.subject_hash), (None, None));
    }

    #[test]
    fn digest_aws_and_other_schemes() {
        let digest = r#"Digest username="Mufasa", realm="http-auth@example.org", nonce="7ypf", uri="/dir/index.html", response="8ca5""#;
        let found = one(&[("Authorization", digest)], "");
        assert_eq!(found.scheme, Scheme::Digest);
        assert_eq!(found.subject.as_deref(), Some("Mufasa"));
        assert_eq!(found.subject_hash, Some(hash("digest-user", "Mufasa")));
        let next_nonce = digest.replace("7ypf", "9xqz").replace("8ca5", "1b2c");
        assert_eq!(
            one(&[("Authorization", &next_nonce)], "").secret,
            found.secret
        );

        let escaped = one(
            &[("authorization", r#"digest realm="r",username="a\"b""#)],
            "",
        );
        assert_eq!(escaped.subject.as_deref(), Some("a\"b"));

        let aws = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range, Signature=fe5f80f7";
        let found = one(&[("Authorization", aws)], "");
        assert_eq!(found.scheme, Scheme::Other);
        assert_eq!(found.subject.as_deref(), Some("AKIAIOSFODNN7EXAMPLE"));
        assert_eq!(
            found.subject_hash,
            Some(hash("aws-key-id", "AKIAIOSFODNN7EXAMPLE"))
        );
        let resigned = aws.replace("fe5f80f7", "0000aaaa");
        assert_eq!(
            one(&[("Authorization", &resigned)], "").secret,
            found.secret
        );

        let token = one(&[("Authorization", "Token abc")], "");
        let same = one(&[("Authorization", "TOKEN abc")], "");
        let api_key = one(&[("Authorization", "ApiKey abc")], "");
        assert_eq!(token.scheme, Scheme::Other);
        assert_eq!(token.secret, same.secret);
        assert_ne!(token.secret, api_key.secret);
        assert_eq!((token.subject, token.subject_hash), (None, None));

        let bare_key = one(&[("Authorization", "sk_live_123")], "");
        assert_eq!(bare_key.scheme, Scheme::Other);
    }

    #[test]
    fn api_keys_in_headers_and_query() {
        let header = one(&[("X-API-Key", " k-1+2/3 "), ("Accept", "*/*")], "");
        assert_eq!(header.scheme, Scheme::ApiKey);
        assert_eq!(header.location, Location::Header);
        assert_eq!(&*header.name, "x-api-key");
        assert_eq!(header.secret, hash("api-key", "k-1+2/3"));

        let query = one(&[], "page=2&API_KEY=k-1%2B2%2f3&q=x");
        assert_eq!(query.location, Location::Query);
        assert_eq!(&*query.name, "api_key");
        assert_eq!(
            query.secret, header.secret,
            "decoded value hashes as in a header"
        );
        assert_eq!(one(&[], "api%5Fkey=k-1%2B2%2f3").secret, header.secret);
        assert_ne!(one(&[], "api_key=k-1+2/3x").secret, header.secret);

        let token = jwt(r#"{"alg":"HS256"}"#, r#"{"sub":"svc","iss":"i"}"#, "c2ln");
        let in_query = one(&[], &format!("access_token={token}"));
        assert_eq!(in_query.scheme, Scheme::ApiKey);
        assert_eq!(in_query.subject.as_deref(), Some("svc"));
        assert_eq!(in_query.subject_hash, Some(hash("jwt-sub", "i\0svc")));
        assert!(in_query.jwt.is_some());

        assert!(run(&[("x-api-key", "")], "api_key=&token&q=1&keys=1&%zz=1").is_empty());

        let mut cfg = AuthConfig::default();
        cfg.api_key_headers.push("*-secret".into());
        assert_eq!(run_with(&cfg, &[("X-Client-Secret", "v")], "").len(), 1);
    }

    #[test]
    fn session_cookies() {
        let found = run(
            &[
                ("Cookie", "_ga=GA1.2.3; theme=dark;  JSESSIONID=abc123 ;x=1"),
                (
                    "cookie",
                    "lang=en; myapp_session=\"q1\"; flask_sess=; auth_sess=z",
                ),
            ],
            "",
        );
        let names: Vec<_> = found.iter().map(|c| &*c.name).collect();
        assert_eq!(names, ["jsessionid", "myapp_session", "auth_sess"]);
        assert!(found.iter().all(|c| c.scheme == Scheme::SessionCookie));
        assert!(found.iter().all(|c| c.location == Location::Cookie));
        assert_eq!(found[0].secret, hash("session", "abc123"));
        assert_eq!(found[1].secret, hash("session", "q1"));

        let token = jwt(r#"{"alg":"HS256"}"#, r#"{"sub":"u9"}"#, "c2ln");
        let cookie = one(&[("Cookie", &format!("session={token}"))], "");
        assert_eq!(cookie.subject.as_deref(), Some("u9"));
        assert_eq!(cookie.subject_hash, Some(hash("jwt-sub", "\0u9")));

        assert!(run(&[("Cookie", "theme=dark; _ga=1; sessions_seen=3; sid")], "").is_empty());
    }

    #[test]
    fn no_credential_appends_nothing() {
        let keyer = Keyer::new(KEY);
        let earlier = one(&[("x-api-key", "k")], "");
        let mut out = vec![Arc::new(earlier.clone())];
        let headers = [
            (&b"Host"[..], &b"api.example"[..]),
            (b"User-Agent", b"curl/8"),
            (b"Accept", b"application/json"),
        ];
        let mut iter = headers.iter().copied();
        extract(
            &mut iter,
            b"page=1&sort=name",
            &AuthMatcher::new(&AuthConfig::default()),
            &keyer,
            &mut out,
        );
        assert_eq!(out, [Arc::new(earlier)]);
    }

    #[test]
    fn keyer_separates_keys_and_domains() {
        let keyer = Keyer::new(b"k1");
        let a = keyer.hash("bearer", b"secret-token");
        assert_eq!(a, Keyer::new(b"k1").hash("bearer", b"secret-token"));
        assert_ne!(a, Keyer::new(b"k2").hash("bearer", b"secret-token"));
        assert_ne!(a, keyer.hash("api-key", b"secret-token"));
        assert_ne!(a, keyer.hash("bearer", b"secret-tokeN"));
        assert_ne!(keyer.hash("ab", b"c"), keyer.hash("a", b"bc"));

        let hex = a.to_hex();
        assert_eq!(hex.len(), 32);
        assert!(hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        assert_eq!(format!("{a}"), hex);
        assert!(!hex.contains("secret"));
        assert!(!format!("{keyer:?}").contains("k1"));

        let mut framed = 6u64.to_be_bytes().to_vec();
        framed.extend_from_slice(b"bearer");
        framed.extend_from_slice(b"secret-token");
        assert_eq!(a.0, keyer.mac(&framed)[..16]);
        assert_eq!(
            keyer.hash_parts("jwt-sub", &[b"iss", b"sub"]),
            keyer.hash("jwt-sub", b"iss\0sub")
        );
    }

    #[test]
    fn keyer_mac_matches_rfc4231_case_2() {
        let mac = Keyer::new(b"Jefe").mac(b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let expected = IdHash(mac[..16].try_into().unwrap());
        assert_eq!(expected.to_hex(), hex[..32]);
    }

    #[test]
    fn at_most_eight_credentials_per_request() {
        let cookies: Vec<String> = (0..100).map(|i| format!("sessionid=s{i}")).collect();
        let mut headers: Vec<(&str, &str)> =
            cookies.iter().map(|c| ("Cookie", c.as_str())).collect();
        assert_eq!(run(&headers, "").len(), MAX_CREDENTIALS);

        let keys: Vec<String> = (0..50).map(|i| format!("key-{i}")).collect();
        headers = keys.iter().map(|k| ("x-api-key", k.as_str())).collect();
        let query: String = keys.iter().map(|k| format!("api_key={k}&")).collect();
        let found = run(&headers, &query);
        assert_eq!(found.len(), MAX_CREDENTIALS);
        assert_eq!(found[7].secret, hash("api-key", "key-7"));

        let one_cookie = "sessionid=same; ".repeat(100);
        assert_eq!(
            run(&[("Cookie", &one_cookie), ("Cookie", &one_cookie)], "").len(),
            1
        );
    }

    #[test]
    fn huge_values_are_hashed_not_decoded() {
        let claims = format!(r#"{{"sub":"u","pad":"{}"}}"#, "p".repeat(1 << 20));
        let huge_jwt = jwt(r#"{"alg":"HS256"}"#, &claims, "c2ln");
        let found = one(&[("Authorization", &format!("Bearer {huge_jwt}"))], "");
        assert_eq!(found.scheme, Scheme::BearerOpaque);
        assert_eq!(found.secret, hash("bearer", &huge_jwt));

        let cookie = format!("{}; sid=s1", "a=b; ".repeat(100_000));
        assert_eq!(
            one(&[("Cookie", &cookie)], "").secret,
            hash("session", "s1")
        );
    }

    #[test]
    fn long_names_and_subjects_are_clipped() {
        let cfg = AuthConfig {
            session_cookies: vec!["*session".into()],
            ..AuthConfig::default()
        };
        let name = format!("{}session", "Ä".repeat(200));
        let found = run_with(&cfg, &[("Cookie", &format!("{name}=v"))], "");
        assert_eq!(found.len(), 1);
        assert!(found[0].name.len() <= MAX_TEXT_LEN);
        assert!(
            found[0].name.starts_with("ÄÄ"),
            "non-ASCII kept, not lowercased"
        );

        let user = "u".repeat(1000);
        let basic = one(
            &[(
                "authorization",
                &format!("Basic {}", b64(&format!("{user}:p"))),
            )],
            "",
        );
        assert_eq!(basic.subject.map(|s| s.len()), Some(MAX_TEXT_LEN));
        assert_eq!(basic.subject_hash, Some(hash("basic-user", &user)));
    }

    fn any_headers() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
        let name = prop_oneof![
            Just(b"authorization".to_vec()),
            Just(b"Cookie".to_vec()),
            Just(b"x-api-key".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..16),
        ];
        let value = prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..200),
            "(Bearer|Basic|Digest|AWS4-HMAC-SHA256|Token)? [ -~]{0,120}"
                .prop_map(String::into_bytes),
        ];
        proptest::collection::vec((name, value), 0..12)
    }

    proptest! {
        #[test]
        fn extract_never_panics(headers in any_headers(), query in proptest::collection::vec(any::<u8>(), 0..200)) {
            let keyer = Keyer::new(b"k");
            let mut out = Vec::new();
            let mut iter = headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice()));
            extract(
                &mut iter,
                &query,
                &AuthMatcher::new(&AuthConfig::default()),
                &keyer,
                &mut out,
            );
            prop_assert!(out.len() <= MAX_CREDENTIALS);
            for credential in &out {
                prop_assert_eq!(credential.subject.is_some(), credential.subject_hash.is_some());
                prop_assert!(credential.name.len() <= MAX_TEXT_LEN);
            }
        }

        #[test]
        fn decode_jwt_never_panics_on_bytes(token in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_jwt(&token);
        }

        #[test]
        fn decode_jwt_never_panics_on_encoded_parts(
            header in proptest::collection::vec(any::<u8>(), 0..80),
            claims in "\\{(\"(sub|iss|aud|exp|iat|nbf|alg)\":([0-9eE.+-]{1,12}|\"[^\"]{0,8}\"|\\[[0-9,\"a]{0,8}\\]|null|true),?){0,6}\\}",
            signature in "[A-Za-z0-9_=-]{0,8}",
        ) {
            let token = format!("{}.{}.{signature}", b64url(&String::from_utf8_lossy(&header)), b64url(&claims));
            let _ = decode_jwt(token.as_bytes());
            let with_alg = format!("{}.{}.{signature}", b64url(r#"{"alg":"x"}"#), b64url(&claims));
            if let Some(decoded) = decode_jwt(with_alg.as_bytes()) {
                prop_assert_eq!(decoded.alg, "x");
                prop_assert_eq!(decoded.unsigned, signature.is_empty());
            }
        }
    }
}
