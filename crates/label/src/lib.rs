//! Labels: the short strings every record repeats (routes, credential names). The first time a
//! text is seen it is interned: kept for the life of the process within a fixed byte budget, so
//! a label is then a pointer that any thread copies and drops for free (no allocation, no
//! reference count for two threads to fight over). Past the budget, a label owns its text.

use std::collections::HashSet;
use std::sync::Mutex;

/// Bytes of text the process keeps for labels: routes are bounded by the inventory's endpoint
/// limit, so this is reached only by a churning catalogue.
pub const INTERN_BUDGET: usize = 4 << 20;
/// Bytes kept for credential names ([`Label::interned_name`]), apart: names matched by a
/// pattern (`*session`) are the client's to vary, and a spray of them must not use up the
/// routes' budget.
pub const NAME_BUDGET: usize = 256 << 10;

/// A string that is usually interned. Compared, hashed and printed as its text.
#[derive(Clone)]
pub enum Label {
    Interned(&'static str),
    /// The budget was spent, or the caller asked for a copy.
    Owned(Box<str>),
}

struct Interner {
    texts: HashSet<&'static str, ahash::RandomState>,
    bytes: usize,
    refused: u64,
}

static INTERNER: Mutex<Option<Interner>> = Mutex::new(None);
static NAMES: Mutex<Option<Interner>> = Mutex::new(None);

impl Label {
    /// The interned copy of `s`, interning it when there is budget; an owned copy otherwise.
    /// Takes a lock: for texts made once and labelled many times, not for every transaction.
    pub fn interned(s: &str) -> Label {
        intern(&INTERNER, INTERN_BUDGET, s)
    }

    /// [`Label::interned`] from the credential names' own budget ([`NAME_BUDGET`]).
    pub fn interned_name(s: &str) -> Label {
        intern(&NAMES, NAME_BUDGET, s)
    }

    /// A copy of `s` that is not interned (texts an attacker can vary at will).
    pub fn owned(s: &str) -> Label {
        Label::Owned(s.into())
    }

    pub fn as_str(&self) -> &str {
        match self {
            Label::Interned(s) => s,
            Label::Owned(s) => s,
        }
    }
}

fn intern(pool: &Mutex<Option<Interner>>, budget: usize, s: &str) -> Label {
    let mut guard = pool.lock().unwrap_or_else(|e| e.into_inner());
    let interner = guard.get_or_insert_with(|| Interner {
        texts: HashSet::default(),
        bytes: 0,
        refused: 0,
    });
    if let Some(&text) = interner.texts.get(s) {
        return Label::Interned(text);
    }
    if interner.bytes + s.len() > budget {
        interner.refused += 1;
        return Label::Owned(s.into());
    }
    // Kept for the life of the process, within the budget.
    let text: &'static str = Box::leak(Box::<str>::from(s));
    interner.texts.insert(text);
    interner.bytes += s.len();
    Label::Interned(text)
}

/// How much of [`INTERN_BUDGET`] is spent, and how many texts were refused for lack of it.
pub fn intern_stats() -> (usize, u64) {
    stats(&INTERNER)
}

/// The same for [`NAME_BUDGET`].
pub fn name_stats() -> (usize, u64) {
    stats(&NAMES)
}

fn stats(pool: &Mutex<Option<Interner>>) -> (usize, u64) {
    let guard = pool.lock().unwrap_or_else(|e| e.into_inner());
    guard.as_ref().map_or((0, 0), |i| (i.bytes, i.refused))
}

impl std::ops::Deref for Label {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Label {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl std::borrow::Borrow<str> for Label {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Label {
    fn eq(&self, other: &Label) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Label {}

impl PartialEq<str> for Label {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Label {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::hash::Hash for Label {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.as_str().hash(h)
    }
}

impl PartialOrd for Label {
    fn partial_cmp(&self, other: &Label) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Label {
    fn cmp(&self, other: &Label) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl std::fmt::Debug for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Interned: `From` is how configuration and tests spell a label.
impl From<&str> for Label {
    fn from(s: &str) -> Label {
        Label::interned(s)
    }
}

impl Default for Label {
    fn default() -> Label {
        Label::Interned("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_text_is_interned_once_and_labels_compare_by_text() {
        let a = Label::interned("GET /users/{id}");
        let b = Label::interned(&String::from("GET /users/{id}"));
        match (&a, &b) {
            (Label::Interned(x), Label::Interned(y)) => assert!(std::ptr::eq(*x, *y)),
            _ => panic!("both should be interned: {a:?} {b:?}"),
        }
        let owned = Label::owned("GET /users/{id}");
        assert!(matches!(owned, Label::Owned(_)));
        assert_eq!(a, owned);
        assert_eq!(&*owned, "GET /users/{id}");
        assert_ne!(a, Label::interned("GET /users"));
    }

    #[test]
    fn a_spray_of_names_uses_up_only_the_names_budget() {
        for i in 0.. {
            let name = format!("x{i:08}session");
            if matches!(Label::interned_name(&name), Label::Owned(_)) {
                break;
            }
            assert!(i < NAME_BUDGET, "the names' budget never ran out");
        }
        let (bytes, refused) = name_stats();
        assert!(bytes <= NAME_BUDGET && refused > 0);
        // Names already interned still are; routes are not affected.
        assert!(matches!(
            Label::interned_name("x00000000session"),
            Label::Interned(_)
        ));
        assert!(matches!(
            Label::interned("GET /after/the/name/spray"),
            Label::Interned(_)
        ));
    }

    #[test]
    fn past_the_budget_a_label_owns_its_text() {
        // One text bigger than the whole budget can never be interned, whatever was before.
        let huge = "x".repeat(INTERN_BUDGET + 1);
        let (_, refused_before) = intern_stats();
        let label = Label::interned(&huge);
        assert!(matches!(label, Label::Owned(_)));
        assert_eq!(label.len(), INTERN_BUDGET + 1);
        let (bytes, refused) = intern_stats();
        assert!(bytes <= INTERN_BUDGET);
        assert!(refused > refused_before);
    }
}
