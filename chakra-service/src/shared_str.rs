//! `SharedStr`: text that many requests carry, such as SQL and table names.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

/// Text that many requests share. A model's fixed statements live as long as the program,
/// and cloning them as [`SharedStr::Static`] touches nothing. Text built at run time is
/// reference-counted, as an `Arc<str>`. (An `Arc` shared by every request is a counter
/// that every thread writes; on the 2,000 concurrent gets, two fewer such counters per
/// request cut the client's CPU by a few percent.)
///
/// Equality and hashing go by the text; [`SharedStr::same`] tells whether two are the
/// very same text in memory.
#[derive(Clone)]
pub enum SharedStr {
    Static(&'static str),
    Counted(Arc<str>),
}

impl SharedStr {
    pub const fn from_static(text: &'static str) -> Self {
        SharedStr::Static(text)
    }

    pub fn as_str(&self) -> &str {
        match self {
            SharedStr::Static(text) => text,
            SharedStr::Counted(text) => text,
        }
    }

    /// Whether `self` and `other` are the same text in memory (not merely equal text):
    /// the identity the batch layer merges lookups by.
    pub fn same(&self, other: &SharedStr) -> bool {
        std::ptr::eq(self.as_str(), other.as_str())
    }
}

impl Deref for SharedStr {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for SharedStr {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for SharedStr {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for SharedStr {
    fn eq(&self, other: &SharedStr) -> bool {
        self.same(other) || self.as_str() == other.as_str()
    }
}

impl Eq for SharedStr {}

impl PartialEq<str> for SharedStr {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for SharedStr {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Hash for SharedStr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl fmt::Debug for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Copies the text: a `&str` may not live long enough to be shared as it is (use
/// [`SharedStr::from_static`] for text that does).
impl From<&str> for SharedStr {
    fn from(text: &str) -> Self {
        SharedStr::Counted(text.into())
    }
}

impl From<String> for SharedStr {
    fn from(text: String) -> Self {
        SharedStr::Counted(text.into())
    }
}

impl From<&String> for SharedStr {
    fn from(text: &String) -> Self {
        SharedStr::Counted(text.as_str().into())
    }
}

impl From<Arc<str>> for SharedStr {
    fn from(text: Arc<str>) -> Self {
        SharedStr::Counted(text)
    }
}

impl From<&Arc<str>> for SharedStr {
    fn from(text: &Arc<str>) -> Self {
        SharedStr::Counted(text.clone())
    }
}

impl From<Box<str>> for SharedStr {
    fn from(text: Box<str>) -> Self {
        SharedStr::Counted(text.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_by_text_same_by_address() {
        static SQL: &str = "SELECT 1";
        let (a, b) = (SharedStr::from_static(SQL), SharedStr::from_static(SQL));
        let counted = SharedStr::from("SELECT 1");
        assert!(a.same(&b) && a == b);
        assert!(!a.same(&counted) && a == counted);
        assert!(counted.same(&counted.clone()));
        assert_eq!(&*counted, "SELECT 1");
    }
}
