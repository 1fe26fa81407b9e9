//! The label's two strings as types: [`Name`] and [`Uuid`], both a
//! [`FixedStr`] (text stored inline, no allocation) with their own rules,
//! and the checks behind those rules.

use core::fmt;

use super::{MetadataError, NAME_MAX, UUID_FIELD_LEN, UUID_LEN};

/// The traits every text type here shares, by way of its `as_str`:
/// `Display` and `AsRef<str>` show the text, and it compares equal to a
/// `str` with the same text.
macro_rules! text_traits {
    ([$($generics:tt)*] $ty:ty) => {
        impl<$($generics)*> fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl<$($generics)*> AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl<$($generics)*> PartialEq<str> for $ty {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl<$($generics)*> PartialEq<&str> for $ty {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}

text_traits!([const N: usize] FixedStr<N>);
text_traits!([] Name);
text_traits!([] Uuid);

/// A string of at most `N` bytes stored inline, without allocation.
///
/// The kernel core cannot allocate in every context it handles names in
/// (taste runs with the topology lock held), and both label strings have a
/// small fixed bound, so an inline buffer is the natural type. It never holds
/// a NUL, because every such string ends up NUL-terminated on disk or in a
/// C `char[]`. Unused bytes are kept zero, so derived equality, hashing and
/// ordering are those of the text.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FixedStr<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> FixedStr<N> {
    /// How many bytes fit.
    pub const CAPACITY: usize = N;
    /// The empty string.
    pub const EMPTY: Self = Self {
        bytes: [0; N],
        len: 0,
    };

    /// `s` as a fixed string, or `None` if it is longer than `N` bytes or
    /// contains a NUL.
    pub fn new(s: &str) -> Option<Self> {
        let src = s.as_bytes();
        if src.len() > N || src.contains(&0) {
            return None;
        }
        let mut bytes = [0u8; N];
        bytes.get_mut(..src.len())?.copy_from_slice(src);
        Some(Self {
            bytes,
            len: src.len(),
        })
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Only ever built from a `&str`, so this cannot fail; the fallback
        // merely keeps the function total without `unwrap`.
        core::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    /// The text as bytes, without terminator or padding.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }

    /// Length in bytes.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether the string is empty.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<const N: usize> Default for FixedStr<N> {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl<const N: usize> fmt::Debug for FixedStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Checks that `name` can be a multipath device name: non-empty, at most
/// [`NAME_MAX`] bytes, no NUL or control characters. Control characters are
/// refused because the name ends up in `/dev/multipath/<name>`, in console
/// messages and in the `kern.geom.confxml` XML, where they do harm.
pub fn validate_name(name: &str) -> Result<(), MetadataError> {
    if name.is_empty() {
        return Err(MetadataError::NameEmpty);
    }
    if name.len() > NAME_MAX {
        return Err(MetadataError::NameTooLong(name.len()));
    }
    if name.chars().any(char::is_control) {
        return Err(MetadataError::NameInvalid);
    }
    Ok(())
}

/// Checks that `uuid` is a canonical textual uuid: 36 characters, hex digits
/// (either case) in groups of 8-4-4-4-12 separated by hyphens. The version
/// and variant bits are not checked: any uuid FreeBSD's `uuidgen` could give
/// is accepted, and the label only uses it as an identity to compare.
pub fn validate_uuid(uuid: &str) -> Result<(), MetadataError> {
    let b = uuid.as_bytes();
    if b.len() != UUID_LEN {
        return Err(MetadataError::UuidMalformed);
    }
    let well_formed = b.iter().enumerate().all(|(i, &c)| match i {
        8 | 13 | 18 | 23 => c == b'-',
        _ => c.is_ascii_hexdigit(),
    });
    if well_formed {
        Ok(())
    } else {
        Err(MetadataError::UuidMalformed)
    }
}

/// A valid multipath device name (see [`validate_name`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Name(FixedStr<NAME_MAX>);

impl Name {
    /// `name`, if it is valid.
    pub fn new(name: &str) -> Result<Name, MetadataError> {
        validate_name(name)?;
        FixedStr::new(name)
            .map(Name)
            .ok_or(MetadataError::NameInvalid)
    }

    /// `name` cut to at most [`NAME_MAX`] bytes (at a character boundary),
    /// as FreeBSD does for `gctl create` and for the names it makes up on a
    /// collision; the result must still be a valid name.
    pub fn new_truncated(name: &str) -> Result<Name, MetadataError> {
        let mut end = name.len().min(NAME_MAX);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        Name::new(name.get(..end).unwrap_or_default())
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// A device uuid: empty (a manual device, created by `gctl create` without
/// a label), a canonical textual uuid (see [`validate_uuid`]; what
/// [`Uuid::parse`] takes from a command line), or, read from a label, any
/// text of up to [`UUID_FIELD_LEN`] bytes (see [`Uuid::from_label`]). The
/// text is kept exactly as found, case included, because the kernel
/// matches paths to devices by comparing the uuid bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct Uuid(FixedStr<UUID_FIELD_LEN>);

impl Uuid {
    /// No uuid: the mark of a manual device.
    pub const NONE: Uuid = Uuid(FixedStr::EMPTY);

    /// `uuid`, if it is empty or canonical.
    pub fn parse(uuid: &str) -> Result<Uuid, MetadataError> {
        if !uuid.is_empty() {
            validate_uuid(uuid)?;
        }
        FixedStr::new(uuid)
            .map(Uuid)
            .ok_or(MetadataError::UuidMalformed)
    }

    /// A random (version 4) uuid in lowercase, made from 16 random bytes the
    /// caller supplies: the library has no entropy source of its own.
    pub fn from_random_bytes(mut bytes: [u8; 16]) -> Uuid {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        // RFC 9562: version 4 in the high nibble of byte 6, variant 0b10 in
        // the top bits of byte 8.
        if let Some(b) = bytes.get_mut(6) {
            *b = (*b & 0x0f) | 0x40;
        }
        if let Some(b) = bytes.get_mut(8) {
            *b = (*b & 0x3f) | 0x80;
        }
        let mut text = [0u8; UUID_LEN];
        let mut out = text.iter_mut();
        for (i, b) in bytes.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                if let Some(c) = out.next() {
                    *c = b'-';
                }
            }
            for nibble in [b >> 4, b & 0x0f] {
                if let (Some(c), Some(h)) = (out.next(), HEX.get(usize::from(nibble))) {
                    *c = *h;
                }
            }
        }
        let s = core::str::from_utf8(&text).unwrap_or_default();
        Uuid(FixedStr::new(s).unwrap_or_default())
    }

    /// A uuid as a label holds it, taken as FreeBSD's taste takes it: any
    /// text of up to [`UUID_FIELD_LEN`] bytes (a field without a NUL is a
    /// 40-byte uuid), canonical or not. Only text that cannot be shown
    /// (not UTF-8, or with control characters) is refused.
    pub fn from_label(text: &str) -> Result<Uuid, MetadataError> {
        if text.chars().any(char::is_control) {
            return Err(MetadataError::UuidInvalid);
        }
        FixedStr::new(text)
            .map(Uuid)
            .ok_or(MetadataError::UuidInvalid)
    }

    /// Whether there is no uuid (a manual device).
    pub const fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the uuid is in canonical `8-4-4-4-12` form (what FreeBSD's
    /// `gmultipath label` writes).
    pub fn is_canonical(&self) -> bool {
        validate_uuid(self.as_str()).is_ok()
    }

    /// The uuid as text; empty for a manual device.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}
