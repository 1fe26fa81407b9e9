//! The on-disk `GEOM::MULTIPATH` label, version 1, byte for byte as FreeBSD
//! writes and reads it.
//!
//! # Where and what
//!
//! An *automatic* multipath device is recognised by a label in the **last
//! sector** of each of its path providers (byte offset
//! `mediasize - sectorsize`, see [`label_offset`]). Only the first
//! [`LABEL_LEN`] (89) bytes carry meaning; every writer zero-fills the rest of
//! the sector. The fields are packed, with no padding, in this order:
//!
//! | offset | size | field | encoding |
//! | ---: | ---: | --- | --- |
//! | 0 | 16 | magic | `GEOM::MULTIPATH` and a NUL |
//! | 16 | 40 | uuid | NUL-terminated ASCII, NUL padded; empty = no uuid |
//! | 56 | 16 | name | NUL-terminated, at most 15 bytes, NUL padded |
//! | 72 | 4 | version | `u32` little-endian, always 1 |
//! | 76 | 4 | sectorsize | `u32` little-endian |
//! | 80 | 8 | size | `u64` little-endian, raw path mediasize incl. the label |
//! | 88 | 1 | mode | 0 active/passive, 1 active/active, 2 active/read |
//!
//! The layout is fixed by the disks already in the field, not by any Rust or C
//! struct layout, so encoding and decoding walk the fields one by one instead
//! of transmuting a struct: this keeps the code free of `unsafe` and
//! independent of the target's alignment and endianness.
//!
//! # Two readers: taste's and the strict one
//!
//! [`Metadata::read`] (and [`taste_label`], taste's whole decision) reads a
//! label exactly as FreeBSD's taste does: the magic and the version are
//! checked, names and uuids are C strings (bytes after the NUL are ignored;
//! FreeBSD's userland and kernel write them from structs they never zero),
//! a zero size or sector size is "not recorded", any mode byte is taken
//! (unknown ones as active/passive) and the uuid text is not validated.
//! What is unusual is returned alongside as [`Oddities`], for `mplabel
//! dump`. The few labels FreeBSD takes and this module refuses on purpose
//! (an empty name or uuid, a name or uuid that is not text) are the
//! README's deliberate differences; every check reports a typed
//! [`MetadataError`] instead of panicking.
//!
//! [`Metadata::decode`] is the strict reader: it accepts only what
//! [`Metadata::encode_sector`] writes (canonical uuid, zero padding,
//! plausible geometry, a known mode), so anything it accepts re-encodes to
//! the same 89 bytes. The encoder always writes clean labels, as FreeBSD's
//! writers do from a zeroed struct.
//!
//! Whether a well-formed label belongs to the provider it was read from is a
//! separate question, answered by [`Metadata::check_provider`].

use core::fmt;

mod text;
pub use text::{validate_name, validate_uuid, FixedStr, Name, Uuid};

/// The magic string at offset 0, with its terminating NUL: 16 bytes.
pub const MAGIC: [u8; MAGIC_LEN] = *b"GEOM::MULTIPATH\0";
/// The magic as text, for messages.
pub const MAGIC_STR: &str = "GEOM::MULTIPATH";
/// Length of the magic field, NUL included.
pub const MAGIC_LEN: usize = 16;
/// The only label version there is. The mode byte was added later without
/// raising it, which is why a zero mode byte must read as active/passive.
pub const VERSION: u32 = 1;
/// Number of meaningful bytes at the start of the label sector.
pub const LABEL_LEN: usize = 89;
/// Size of the uuid field, terminator and padding included.
pub const UUID_FIELD_LEN: usize = 40;
/// Length of a canonical textual uuid (`8-4-4-4-12` hex digits).
pub const UUID_LEN: usize = 36;
/// Size of the name field, terminator included.
pub const NAME_FIELD_LEN: usize = 16;
/// Longest name that fits, in bytes: the field keeps one byte for the NUL.
pub const NAME_MAX: usize = NAME_FIELD_LEN - 1;
/// Smallest sector size that can hold a label: the first power of two that
/// is at least [`LABEL_LEN`].
pub const MIN_SECTORSIZE: u32 = 128;

/// Byte offset of each field, for readers of hex dumps and for the tests.
pub mod offset {
    /// Magic, 16 bytes.
    pub const MAGIC: usize = 0;
    /// Uuid, 40 bytes.
    pub const UUID: usize = 16;
    /// Name, 16 bytes.
    pub const NAME: usize = 56;
    /// Version, `u32` LE.
    pub const VERSION: usize = 72;
    /// Sector size, `u32` LE.
    pub const SECTORSIZE: usize = 76;
    /// Raw path size, `u64` LE.
    pub const SIZE: usize = 80;
    /// Mode, one byte.
    pub const MODE: usize = 88;
}

/// Everything that can be wrong with a label or with the values meant for
/// one. Each variant says what an administrator needs to know to fix the
/// disk or the command line; see its [`Display`](fmt::Display) text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetadataError {
    /// The buffer cannot hold the label, or is shorter than the sector the
    /// label says it lives in.
    BufferTooShort {
        /// Length of the buffer given.
        len: usize,
        /// Length that was needed.
        need: usize,
    },
    /// The first 16 bytes are not `GEOM::MULTIPATH\0`: not a multipath label.
    BadMagic,
    /// A multipath label of a version this code does not understand.
    BadVersion(u32),
    /// The 16-byte name field has no NUL terminator.
    NameUnterminated,
    /// The name is empty.
    NameEmpty,
    /// The name is longer than [`NAME_MAX`] bytes (the length is carried).
    NameTooLong(usize),
    /// The name is not UTF-8 or contains a NUL or control character.
    NameInvalid,
    /// Bytes after the name's terminator are not zero.
    NameNotPadded,
    /// The 40-byte uuid field has no NUL terminator.
    UuidUnterminated,
    /// The uuid is neither empty nor in canonical `8-4-4-4-12` hex form.
    UuidMalformed,
    /// Bytes after the uuid's terminator are not zero.
    UuidNotPadded,
    /// A uuid read from a label is not UTF-8 text without control
    /// characters, so it cannot be shown in `gmultipath list` or the XML.
    UuidInvalid,
    /// A label without a uuid: FreeBSD would add the disk to a manual
    /// device; this module does not take it.
    UuidEmpty,
    /// The sector size is zero.
    SectorSizeZero,
    /// The sector size is not a power of two.
    SectorSizeNotPowerOfTwo(u32),
    /// The sector size is a power of two too small to hold a label.
    SectorSizeTooSmall(u32),
    /// The recorded size is zero.
    SizeZero,
    /// The recorded size is not a whole number of sectors.
    SizeNotMultiple {
        /// Recorded size in bytes.
        size: u64,
        /// Recorded sector size.
        sectorsize: u32,
    },
    /// The recorded size is less than two sectors: no room for data and label.
    SizeTooSmall {
        /// Recorded size in bytes.
        size: u64,
        /// Recorded sector size.
        sectorsize: u32,
    },
    /// The mode byte is not 0, 1 or 2.
    BadMode(u8),
    /// The label was written for a provider of another size.
    SizeMismatch {
        /// Size recorded in the label.
        label: u64,
        /// Mediasize of the provider the label was read from.
        provider: u64,
    },
    /// The label was written for a provider of another sector size.
    SectorSizeMismatch {
        /// Sector size recorded in the label.
        label: u32,
        /// Sector size of the provider the label was read from.
        provider: u32,
    },
}

impl fmt::Display for MetadataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BufferTooShort { len, need } => write!(
                f,
                "metadata buffer is {len} bytes, at least {need} bytes are needed"
            ),
            Self::BadMagic => write!(f, "no {MAGIC_STR} label (magic not found)"),
            Self::BadVersion(v) => write!(
                f,
                "label has version {v}, only version {VERSION} is supported"
            ),
            Self::NameUnterminated => write!(f, "label name is not NUL-terminated"),
            Self::NameEmpty => write!(f, "name is empty"),
            Self::NameTooLong(len) => write!(
                f,
                "name is {len} bytes long, at most {NAME_MAX} bytes fit in the label"
            ),
            Self::NameInvalid => write!(
                f,
                "name must be UTF-8 text without NUL or control characters"
            ),
            Self::NameNotPadded => write!(f, "label name field has garbage after the name"),
            Self::UuidUnterminated => write!(f, "label uuid is not NUL-terminated"),
            Self::UuidMalformed => write!(
                f,
                "malformed uuid (expected 36 characters: 8-4-4-4-12 hex digits)"
            ),
            Self::UuidNotPadded => write!(f, "label uuid field has garbage after the uuid"),
            Self::UuidEmpty => write!(f, "label has no uuid"),
            Self::UuidInvalid => write!(
                f,
                "label uuid must be UTF-8 text without control characters"
            ),
            Self::SectorSizeZero => write!(f, "sector size is 0"),
            Self::SectorSizeNotPowerOfTwo(s) => {
                write!(f, "sector size {s} is not a power of two")
            }
            Self::SectorSizeTooSmall(s) => write!(
                f,
                "sector size {s} is too small to hold a label (minimum {MIN_SECTORSIZE})"
            ),
            Self::SizeZero => write!(f, "size is 0"),
            Self::SizeNotMultiple { size, sectorsize } => write!(
                f,
                "size {size} is not a multiple of the sector size {sectorsize}"
            ),
            Self::SizeTooSmall { size, sectorsize } => write!(
                f,
                "size {size} is smaller than two sectors of {sectorsize} bytes"
            ),
            Self::BadMode(b) => write!(
                f,
                "unknown mode byte {b} (0 active/passive, 1 active/active, 2 active/read)"
            ),
            Self::SizeMismatch { label, provider } => write!(
                f,
                "label records size {label} but the provider has {provider} bytes"
            ),
            Self::SectorSizeMismatch { label, provider } => write!(
                f,
                "label records sector size {label} but the provider has {provider}"
            ),
        }
    }
}

impl core::error::Error for MetadataError {}

/// How the paths of one device are used. Stored in the label's last byte.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Mode {
    /// One path carries all I/O; the others wait as spares. Byte 0, which is
    /// also what labels written before the mode byte existed hold.
    #[default]
    ActivePassive,
    /// I/O is spread over all good paths. Byte 1.
    ActiveActive,
    /// Reads are spread over all good paths, writes go to the active one.
    /// Byte 2.
    ActiveRead,
}

impl Mode {
    /// The mode stored as `b`, or `None` for a byte no FreeBSD writes.
    pub const fn from_byte(b: u8) -> Option<Mode> {
        match b {
            0 => Some(Mode::ActivePassive),
            1 => Some(Mode::ActiveActive),
            2 => Some(Mode::ActiveRead),
            _ => None,
        }
    }

    /// The byte stored for this mode.
    pub const fn as_byte(self) -> u8 {
        match self {
            Mode::ActivePassive => 0,
            Mode::ActiveActive => 1,
            Mode::ActiveRead => 2,
        }
    }

    /// The mode chosen by gctl's `active_active` and `active_read` flags.
    /// Read wins when both are set, as in FreeBSD.
    pub const fn from_flags(active_active: bool, active_read: bool) -> Mode {
        if active_read {
            Mode::ActiveRead
        } else if active_active {
            Mode::ActiveActive
        } else {
            Mode::ActivePassive
        }
    }

    /// The name FreeBSD shows in `gmultipath list` and the XML config
    /// (`Active/Passive`, `Active/Active`, `Active/Read`).
    pub const fn name(self) -> &'static str {
        match self {
            Mode::ActivePassive => "Active/Passive",
            Mode::ActiveActive => "Active/Active",
            Mode::ActiveRead => "Active/Read",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The geometry check both label readers share: a recorded size or sector
/// size (`label`: size, sector size) must be the provider's; a zero is not
/// compared.
fn check_geometry(label: (u64, u32), mediasize: u64, sectorsize: u32) -> Result<(), MetadataError> {
    let (size, secsize) = label;
    if size != 0 && size != mediasize {
        return Err(MetadataError::SizeMismatch {
            label: size,
            provider: mediasize,
        });
    }
    if secsize != 0 && secsize != sectorsize {
        return Err(MetadataError::SectorSizeMismatch {
            label: secsize,
            provider: sectorsize,
        });
    }
    Ok(())
}

/// Byte offset of the label on a provider of `mediasize` bytes with
/// `sectorsize`-byte sectors: the start of the last sector. `None` when the
/// sector size is 0 or the provider is smaller than one sector.
pub const fn label_offset(mediasize: u64, sectorsize: u32) -> Option<u64> {
    if sectorsize == 0 {
        return None;
    }
    mediasize.checked_sub(sectorsize as u64)
}

/// Checks a sector size: non-zero, a power of two, big enough for a label.
pub fn validate_sectorsize(sectorsize: u32) -> Result<(), MetadataError> {
    if sectorsize == 0 {
        Err(MetadataError::SectorSizeZero)
    } else if !sectorsize.is_power_of_two() {
        Err(MetadataError::SectorSizeNotPowerOfTwo(sectorsize))
    } else if sectorsize < MIN_SECTORSIZE {
        Err(MetadataError::SectorSizeTooSmall(sectorsize))
    } else {
        Ok(())
    }
}

/// Checks a raw path size against a (valid) sector size: a whole number of
/// sectors, and at least two of them, one for data and one for the label.
pub fn validate_size(size: u64, sectorsize: u32) -> Result<(), MetadataError> {
    validate_sectorsize(sectorsize)?;
    let ss = u64::from(sectorsize);
    if size == 0 {
        Err(MetadataError::SizeZero)
    } else if !size.is_multiple_of(ss) {
        Err(MetadataError::SizeNotMultiple { size, sectorsize })
    } else if size < 2 * ss {
        Err(MetadataError::SizeTooSmall { size, sectorsize })
    } else {
        Ok(())
    }
}

/// The contents of a multipath label (the version is implied: always
/// [`VERSION`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Metadata {
    /// Identity shared by all paths of the device; empty for a manual device.
    pub uuid: Uuid,
    /// Device name: the provider is `multipath/<name>`.
    pub name: Name,
    /// Sector size of the path provider when it was labelled.
    pub sectorsize: u32,
    /// Raw mediasize of the path provider, label sector included.
    pub size: u64,
    /// How the paths are used.
    pub mode: Mode,
}

impl Metadata {
    /// A label for an automatic device, checked for a plausible geometry.
    pub fn new(
        name: Name,
        uuid: Uuid,
        sectorsize: u32,
        size: u64,
        mode: Mode,
    ) -> Result<Metadata, MetadataError> {
        validate_size(size, sectorsize)?;
        Ok(Metadata {
            uuid,
            name,
            sectorsize,
            size,
            mode,
        })
    }

    /// The in-memory metadata of a manual device (`gctl create`): no uuid,
    /// size and sector size 0, meaning "take them from the paths". It is
    /// never written to disk, so [`encode_sector`](Self::encode_sector)
    /// refuses it.
    pub const fn new_manual(name: Name, mode: Mode) -> Metadata {
        Metadata {
            uuid: Uuid::NONE,
            name,
            sectorsize: 0,
            size: 0,
            mode,
        }
    }

    /// Whether this describes a manual device (no uuid).
    pub const fn is_manual(&self) -> bool {
        self.uuid.is_empty()
    }

    /// Mediasize of the multipath provider built from this metadata: one
    /// sector less than the path for a labelled device, so the label is
    /// never reachable through `/dev/multipath/<name>`. `None` when the
    /// metadata records no size (a manual device sizes itself from its
    /// first path).
    pub const fn provider_mediasize(&self) -> Option<u64> {
        if self.size == 0 {
            return None;
        }
        if self.uuid.is_empty() {
            Some(self.size)
        } else {
            self.size.checked_sub(self.sectorsize as u64)
        }
    }

    /// FreeBSD's taste rule: a label belongs to a provider only if it was
    /// written for a provider of exactly that mediasize and sector size.
    /// This is what keeps `da0`, `da0p1` and `da0s1`, which can share a last
    /// sector, from all being taken as paths. A zero in the label means "not
    /// recorded" and is not compared, as in FreeBSD (only in-memory manual
    /// metadata has zeros; [`decode`](Self::decode) rejects them).
    pub fn check_provider(&self, mediasize: u64, sectorsize: u32) -> Result<(), MetadataError> {
        check_geometry((self.size, self.sectorsize), mediasize, sectorsize)
    }

    /// Writes the label into `sector`, the whole last sector of the path,
    /// and zero-fills the rest of it. The buffer must be at least
    /// [`LABEL_LEN`] bytes and at least `sectorsize` bytes long; the metadata
    /// is checked first, and `sector` is left untouched on error.
    pub fn encode_sector(&self, sector: &mut [u8]) -> Result<(), MetadataError> {
        self.validate()?;
        let need = LABEL_LEN.max(usize::try_from(self.sectorsize).unwrap_or(usize::MAX));
        if sector.len() < need {
            return Err(MetadataError::BufferTooShort {
                len: sector.len(),
                need,
            });
        }
        sector.fill(0);
        self.write_fields(sector);
        Ok(())
    }

    /// The label alone, as its [`LABEL_LEN`] meaningful bytes, checked like
    /// [`encode_sector`](Self::encode_sector) does.
    pub fn encode_label(&self) -> Result<[u8; LABEL_LEN], MetadataError> {
        self.validate()?;
        let mut label = [0u8; LABEL_LEN];
        self.write_fields(&mut label);
        Ok(label)
    }

    /// Checks that this metadata may be written to disk: a valid name and a
    /// plausible geometry (the uuid is valid by construction).
    pub fn validate(&self) -> Result<(), MetadataError> {
        validate_size(self.size, self.sectorsize)?;
        validate_name(self.name.as_str())
    }

    /// Writes the fields, in order, into a zeroed buffer of at least
    /// [`LABEL_LEN`] bytes.
    fn write_fields(&self, buf: &mut [u8]) {
        let mut w = Writer(buf);
        w.put(&MAGIC);
        w.put_padded::<UUID_FIELD_LEN>(self.uuid.as_str().as_bytes());
        w.put_padded::<NAME_FIELD_LEN>(self.name.as_str().as_bytes());
        w.put(&VERSION.to_le_bytes());
        w.put(&self.sectorsize.to_le_bytes());
        w.put(&self.size.to_le_bytes());
        w.put(&[self.mode.as_byte()]);
    }

    /// Reads a label from `sector`, the whole last sector of a path, and
    /// checks every field (see the module documentation for why strictly).
    /// Bytes past [`LABEL_LEN`] are ignored, as FreeBSD ignores them.
    pub fn decode(sector: &[u8]) -> Result<Metadata, MetadataError> {
        // The same bytes as taste's reader, and the same first checks.
        let LabelFields {
            uuid,
            name,
            sectorsize,
            size,
            mode,
        } = LabelFields::parse(sector)?;
        validate_sectorsize(sectorsize)?;
        let need = usize::try_from(sectorsize).unwrap_or(usize::MAX);
        if sector.len() < need {
            return Err(MetadataError::BufferTooShort {
                len: sector.len(),
                need,
            });
        }
        validate_size(size, sectorsize)?;

        let name = c_string(&name).ok_or(MetadataError::NameUnterminated)?;
        if !name.padded {
            return Err(MetadataError::NameNotPadded);
        }
        let name = core::str::from_utf8(name.text).map_err(|_| MetadataError::NameInvalid)?;
        let name = Name::new(name)?;

        let uuid = c_string(&uuid).ok_or(MetadataError::UuidUnterminated)?;
        if !uuid.padded {
            return Err(MetadataError::UuidNotPadded);
        }
        let uuid = core::str::from_utf8(uuid.text).map_err(|_| MetadataError::UuidMalformed)?;
        let uuid = Uuid::parse(uuid)?;

        let mode = Mode::from_byte(mode).ok_or(MetadataError::BadMode(mode))?;
        // The geometry was checked above, before the text fields, so that
        // errors come in the order of the fields; new() checks it again.
        Metadata::new(name, uuid, sectorsize, size, mode)
    }
}

/// The label's fields as raw bytes, before any interpretation: what FreeBSD's
/// `multipath_metadata_decode` copies into its struct.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LabelFields {
    /// The 40-byte uuid field, terminator and whatever follows it included.
    pub uuid: [u8; UUID_FIELD_LEN],
    /// The 16-byte name field, terminator and whatever follows it included.
    pub name: [u8; NAME_FIELD_LEN],
    /// The recorded sector size; 0 means "not recorded".
    pub sectorsize: u32,
    /// The recorded raw path size; 0 means "not recorded".
    pub size: u64,
    /// The mode byte as stored.
    pub mode: u8,
}

/// Something unusual about a label that taste nevertheless accepts, because
/// FreeBSD's taste accepts it. `mplabel dump` lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Oddity {
    /// Non-zero bytes after the name's NUL (ignored, as C strings are).
    NameGarbage,
    /// The name field has no NUL: its first 15 bytes are the name.
    NameUnterminated,
    /// Non-zero bytes after the uuid's NUL (ignored, as C strings are).
    UuidGarbage,
    /// The uuid field has no NUL: all 40 bytes are the uuid.
    UuidUnterminated,
    /// The uuid is empty: FreeBSD would take the disk as a path of a
    /// manual device; this module does not take it at all.
    UuidEmpty,
    /// The uuid is not in the `8-4-4-4-12` hex form `gmultipath label`
    /// writes (it is used as it is, only as an identity).
    UuidNotCanonical,
    /// The size is 0: not checked against the provider.
    SizeZero,
    /// The sector size is 0: not checked against the provider.
    SectorSizeZero,
    /// A mode byte other than 0, 1 and 2: read as active/passive.
    UnknownMode(u8),
}

impl Oddity {
    const ALL: [Oddity; 9] = [
        Oddity::NameGarbage,
        Oddity::NameUnterminated,
        Oddity::UuidGarbage,
        Oddity::UuidUnterminated,
        Oddity::UuidEmpty,
        Oddity::UuidNotCanonical,
        Oddity::SizeZero,
        Oddity::SectorSizeZero,
        Oddity::UnknownMode(0),
    ];

    fn bit(self) -> u16 {
        match self {
            Oddity::NameGarbage => 1,
            Oddity::NameUnterminated => 1 << 1,
            Oddity::UuidGarbage => 1 << 2,
            Oddity::UuidUnterminated => 1 << 3,
            Oddity::UuidEmpty => 1 << 4,
            Oddity::UuidNotCanonical => 1 << 5,
            Oddity::SizeZero => 1 << 6,
            Oddity::SectorSizeZero => 1 << 7,
            Oddity::UnknownMode(_) => 1 << 8,
        }
    }

    /// A short stable identifier, for JSON and scripts.
    pub const fn code(self) -> &'static str {
        match self {
            Oddity::NameGarbage => "name-garbage-after-nul",
            Oddity::NameUnterminated => "name-unterminated",
            Oddity::UuidGarbage => "uuid-garbage-after-nul",
            Oddity::UuidUnterminated => "uuid-unterminated",
            Oddity::UuidEmpty => "uuid-empty",
            Oddity::UuidNotCanonical => "uuid-not-canonical",
            Oddity::SizeZero => "size-zero",
            Oddity::SectorSizeZero => "sectorsize-zero",
            Oddity::UnknownMode(_) => "unknown-mode",
        }
    }
}

impl fmt::Display for Oddity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Oddity::NameGarbage => f.write_str("bytes after the name's NUL are not zero (ignored)"),
            Oddity::NameUnterminated => {
                f.write_str("the name field has no NUL (the first 15 bytes are taken as the name)")
            }
            Oddity::UuidGarbage => f.write_str("bytes after the uuid's NUL are not zero (ignored)"),
            Oddity::UuidUnterminated => {
                f.write_str("the uuid field has no NUL (all 40 bytes are the uuid)")
            }
            Oddity::UuidEmpty => f.write_str(
                "the uuid is empty (FreeBSD joins such a disk to a manual device; ignored here)",
            ),
            Oddity::UuidNotCanonical => {
                f.write_str("the uuid is not in 8-4-4-4-12 hex form (used as it is)")
            }
            Oddity::SizeZero => f.write_str("size is 0 (not checked against the provider)"),
            Oddity::SectorSizeZero => {
                f.write_str("sector size is 0 (not checked against the provider)")
            }
            Oddity::UnknownMode(b) => write!(f, "unknown mode byte {b} (read as Active/Passive)"),
        }
    }
}

/// The set of [`Oddity`]s of one label (no allocation: taste runs with the
/// topology lock held).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Oddities {
    bits: u16,
    mode: u8,
}

impl Oddities {
    /// Adds `o`.
    pub fn insert(&mut self, o: Oddity) {
        self.bits |= o.bit();
        if let Oddity::UnknownMode(b) = o {
            self.mode = b;
        }
    }

    /// Whether `o` is in the set (for [`Oddity::UnknownMode`], any byte).
    pub fn contains(&self, o: Oddity) -> bool {
        self.bits & o.bit() != 0
    }

    /// Whether the label is clean: exactly what FreeBSD's writers produce
    /// from a zeroed struct.
    pub fn is_empty(&self) -> bool {
        self.bits == 0
    }

    /// The oddities, in a fixed order.
    pub fn iter(&self) -> impl Iterator<Item = Oddity> + '_ {
        Oddity::ALL
            .into_iter()
            .filter(|o| self.contains(*o))
            .map(|o| match o {
                Oddity::UnknownMode(_) => Oddity::UnknownMode(self.mode),
                o => o,
            })
    }
}

/// A label read the way taste reads it: the metadata it stands for and what
/// is unusual about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Label {
    /// The metadata. Size and sector size are as recorded (0 when not
    /// recorded); an unknown mode byte reads as [`Mode::ActivePassive`].
    pub metadata: Metadata,
    /// What is unusual; empty for a label FreeBSD's writers produce.
    pub oddities: Oddities,
}

/// Why taste does not take a provider (see [`taste_label`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TasteReject {
    /// No multipath label (too short, or no magic): silent, or one line
    /// with the debug sysctl.
    NotMultipath(MetadataError),
    /// A label of another version: always one console line.
    Version(u32),
    /// A label written for a provider of another size or sector size
    /// (da0's label seen through da0p1): silent.
    OtherProvider(MetadataError),
    /// A label FreeBSD would take that this module does not (empty name,
    /// a name or uuid that is not text, no uuid): see the README's
    /// deliberate differences. One console line.
    Unusable(MetadataError),
}

impl LabelFields {
    /// The fields of the label at the start of `sector`, once the magic and
    /// the version are right (FreeBSD's first two taste checks). Bytes past
    /// [`LABEL_LEN`] are ignored.
    pub fn parse(sector: &[u8]) -> Result<LabelFields, MetadataError> {
        let short = MetadataError::BufferTooShort {
            len: sector.len(),
            need: LABEL_LEN,
        };
        let mut r = Reader(sector);
        let magic = r.take::<MAGIC_LEN>().ok_or(short)?;
        let uuid = r.take::<UUID_FIELD_LEN>().ok_or(short)?;
        let name = r.take::<NAME_FIELD_LEN>().ok_or(short)?;
        let version = r.take::<4>().ok_or(short)?;
        let sectorsize = r.take::<4>().ok_or(short)?;
        let size = r.take::<8>().ok_or(short)?;
        let [mode] = r.take::<1>().ok_or(short)?;
        if magic != MAGIC {
            return Err(MetadataError::BadMagic);
        }
        let version = u32::from_le_bytes(version);
        if version != VERSION {
            return Err(MetadataError::BadVersion(version));
        }
        Ok(LabelFields {
            uuid,
            name,
            sectorsize: u32::from_le_bytes(sectorsize),
            size: u64::from_le_bytes(size),
            mode,
        })
    }

    /// FreeBSD's geometry check: a recorded size or sector size must be the
    /// provider's; a zero is not compared.
    pub fn check_provider(&self, mediasize: u64, sectorsize: u32) -> Result<(), MetadataError> {
        check_geometry((self.size, self.sectorsize), mediasize, sectorsize)
    }

    /// What the fields stand for, as FreeBSD's taste reads them: name and
    /// uuid are C strings (whatever follows the NUL is ignored), size and
    /// sector size may be 0, any mode byte is taken. Refused, unlike
    /// FreeBSD: an empty name, and a name or uuid that is not UTF-8 text
    /// without control characters.
    pub fn interpret(&self) -> Result<Label, MetadataError> {
        let mut odd = Oddities::default();
        let name = match c_string(&self.name) {
            Some(c) => {
                if !c.padded {
                    odd.insert(Oddity::NameGarbage);
                }
                core::str::from_utf8(c.text).map_err(|_| MetadataError::NameInvalid)?
            }
            None => {
                // FreeBSD's string runs on into the version field; the name
                // a `char[16]` can hold is the first 15 bytes, cut back to
                // a whole character.
                odd.insert(Oddity::NameUnterminated);
                let head = self.name.get(..NAME_MAX).unwrap_or_default();
                match core::str::from_utf8(head) {
                    Ok(s) => s,
                    Err(e) if e.error_len().is_none() => {
                        let ok = head.get(..e.valid_up_to()).unwrap_or_default();
                        core::str::from_utf8(ok).map_err(|_| MetadataError::NameInvalid)?
                    }
                    Err(_) => return Err(MetadataError::NameInvalid),
                }
            }
        };
        let name = Name::new(name)?;

        let uuid_text = match c_string(&self.uuid) {
            Some(c) => {
                if !c.padded {
                    odd.insert(Oddity::UuidGarbage);
                }
                c.text
            }
            None => {
                odd.insert(Oddity::UuidUnterminated);
                &self.uuid[..]
            }
        };
        let uuid = core::str::from_utf8(uuid_text).map_err(|_| MetadataError::UuidInvalid)?;
        let uuid = Uuid::from_label(uuid)?;
        if uuid.is_empty() {
            odd.insert(Oddity::UuidEmpty);
        } else if !uuid.is_canonical() {
            odd.insert(Oddity::UuidNotCanonical);
        }
        if self.size == 0 {
            odd.insert(Oddity::SizeZero);
        }
        if self.sectorsize == 0 {
            odd.insert(Oddity::SectorSizeZero);
        }
        let mode = Mode::from_byte(self.mode).unwrap_or_else(|| {
            odd.insert(Oddity::UnknownMode(self.mode));
            Mode::ActivePassive
        });
        Ok(Label {
            metadata: Metadata {
                uuid,
                name,
                sectorsize: self.sectorsize,
                size: self.size,
                mode,
            },
            oddities: odd,
        })
    }
}

impl Metadata {
    /// Reads a label as taste and `mplabel dump` do: magic and version
    /// checked, everything else taken as FreeBSD takes it (see
    /// [`LabelFields::interpret`]), with the [`Oddities`] found. For a
    /// label that must be exactly what a writer produces, use
    /// [`decode`](Self::decode).
    pub fn read(sector: &[u8]) -> Result<Label, MetadataError> {
        LabelFields::parse(sector)?.interpret()
    }
}

/// Taste's decision for the last sector of a provider of `mediasize` bytes
/// with `sectorsize`-byte sectors, in FreeBSD's order: magic, version,
/// size, sector size; then what this module refuses on purpose. On success
/// a zero size or sector size in the metadata is replaced by the
/// provider's (the device is sized from its path, as FreeBSD does for a
/// zero size); the oddities still say they were zero.
pub fn taste_label(sector: &[u8], mediasize: u64, sectorsize: u32) -> Result<Label, TasteReject> {
    let fields = LabelFields::parse(sector).map_err(|e| match e {
        MetadataError::BadVersion(v) => TasteReject::Version(v),
        e => TasteReject::NotMultipath(e),
    })?;
    fields
        .check_provider(mediasize, sectorsize)
        .map_err(TasteReject::OtherProvider)?;
    let mut label = fields.interpret().map_err(TasteReject::Unusable)?;
    if label.metadata.is_manual() {
        return Err(TasteReject::Unusable(MetadataError::UuidEmpty));
    }
    if label.metadata.size == 0 {
        label.metadata.size = mediasize;
    }
    if label.metadata.sectorsize == 0 {
        label.metadata.sectorsize = sectorsize;
    }
    Ok(label)
}

/// Walks a byte slice front to back, handing out fixed-size fields. Using
/// `split_first_chunk` keeps every access checked without any indexing.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (field, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*field)
    }
}

/// The writing twin of [`Reader`]. Callers check the buffer length first;
/// a field that does not fit is dropped rather than panicking.
struct Writer<'a>(&'a mut [u8]);

impl Writer<'_> {
    fn put(&mut self, field: &[u8]) {
        let buf = core::mem::take(&mut self.0);
        let at = field.len().min(buf.len());
        let (head, rest) = buf.split_at_mut(at);
        head.copy_from_slice(field.get(..at).unwrap_or_default());
        self.0 = rest;
    }

    fn put_padded<const N: usize>(&mut self, text: &[u8]) {
        let mut field = [0u8; N];
        for (dst, src) in field.iter_mut().zip(text) {
            *dst = *src;
        }
        self.put(&field);
    }
}

/// A NUL-terminated string found in a fixed field.
struct CString<'a> {
    text: &'a [u8],
    /// Whether everything after the terminator is zero.
    padded: bool,
}

/// The string in `field` up to its first NUL, or `None` if there is none.
fn c_string(field: &[u8]) -> Option<CString<'_>> {
    let end = field.iter().position(|&b| b == 0)?;
    let (text, rest) = field.split_at(end);
    Some(CString {
        text,
        padded: rest.iter().all(|&b| b == 0),
    })
}

#[cfg(test)]
mod tests;
