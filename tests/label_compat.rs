//! Taste accepts exactly the labels FreeBSD's taste accepts.
//!
//! `freebsd_taste_accepts` follows `g_multipath_taste` check by check, over
//! the bytes `multipath_metadata_decode` copies into its struct: `strcmp` of
//! the magic, the version, a size and a sector size that are either 0 or the
//! provider's. Names and uuids are C strings there, so whatever follows a NUL
//! is ignored, any mode byte is taken and the uuid text is never checked.
//! The only places ours is allowed to differ are the README's deliberate
//! differences, applied in `ours_expected`, one line each.
//!
//! The fast properties compare the decision functions; the slower ones put
//! the same sectors on a simulated two-path LUN and look at what
//! `gmultipath list` shows, so they can run unchanged against the module.

mod common;

use common::{list_all, logged};
use geom_multipath_rs::metadata::{
    taste_label, Metadata, Mode, Name, Oddity, TasteReject, Uuid, LABEL_LEN,
};
use geom_sim::{LunConfig, Mode as SimMode, Sim, SimConfig};
use proptest::prelude::*;

/// The C string starting at `off` in FreeBSD's `struct
/// g_multipath_metadata` (the label's 89 bytes laid out back to back, the
/// same offsets): a field without its NUL runs on into the next one.
fn c_str_at(md: &[u8], off: usize) -> Vec<u8> {
    md.iter()
        .skip(off)
        .take_while(|&&b| b != 0)
        .copied()
        .collect()
}

/// FreeBSD's taste decision for `sector`, the last sector of a provider of
/// `mediasize` bytes and `sectorsize`-byte sectors: `None` when it returns
/// without a geom before looking for one, otherwise the name the geom gets
/// (`g_new_geomf("%s", md_name)`), the uuid that `strncmp(..., 40)` matches
/// paths by, and the mode byte as stored in `sc_active_active`.
fn freebsd_taste_accepts(
    sector: &[u8],
    mediasize: u64,
    sectorsize: u32,
) -> Option<(Vec<u8>, Vec<u8>, u8)> {
    // g_read_data of one sector; the decode copies 89 bytes out of it.
    let md = sector.get(..LABEL_LEN)?;
    let le32 = |o: usize| u32::from_le_bytes(md[o..o + 4].try_into().unwrap());
    let le64 = |o: usize| u64::from_le_bytes(md[o..o + 8].try_into().unwrap());
    let md_version = le32(72);
    let md_sectorsize = le32(76);
    let md_size = le64(80);
    let md_active_active = md[88];
    // if (strcmp(md.md_magic, G_MULTIPATH_MAGIC) != 0) return (NULL);
    if c_str_at(md, 0) != b"GEOM::MULTIPATH" {
        return None;
    }
    // if (md.md_version != G_MULTIPATH_VERSION) { printf(...); return (NULL); }
    if md_version != 1 {
        return None;
    }
    // if (md.md_size != 0 && md.md_size != pp->mediasize) return (NULL);
    if md_size != 0 && md_size != mediasize {
        return None;
    }
    // if (md.md_sectorsize != 0 && md.md_sectorsize != pp->sectorsize) ...
    if md_sectorsize != 0 && md_sectorsize != sectorsize {
        return None;
    }
    let name = c_str_at(md, 56);
    let uuid: Vec<u8> = md[16..56]
        .iter()
        .take_while(|&&b| b != 0)
        .copied()
        .collect();
    Some((name, uuid, md_active_active))
}

/// FreeBSD's decision with the README's deliberate differences applied:
/// what our taste must do with the same sector.
fn ours_expected(fb: Option<(Vec<u8>, Vec<u8>, u8)>) -> Option<(String, String, Mode)> {
    let (mut name, uuid, mode) = fb?;
    // An unterminated name field: the first 15 bytes (what a char[16]
    // holds), cut back to a whole UTF-8 character.
    if name.len() > 15 {
        name.truncate(15);
        if let Err(e) = std::str::from_utf8(&name) {
            if e.error_len().is_none() {
                name.truncate(e.valid_up_to());
            }
        }
    }
    let text = |b: Vec<u8>| {
        String::from_utf8(b)
            .ok()
            .filter(|s| !s.is_empty() && !s.chars().any(char::is_control))
    };
    // Names and uuids must be non-empty text without control characters
    // (an empty uuid would join a manual device in FreeBSD).
    let name = text(name)?;
    let uuid = text(uuid)?;
    // Any byte but 1 and 2 is active/passive.
    let mode = match mode {
        1 => Mode::ActiveActive,
        2 => Mode::ActiveRead,
        _ => Mode::ActivePassive,
    };
    Some((name, uuid, mode))
}

/// Our taste decision, in the same terms.
fn ours(sector: &[u8], mediasize: u64, sectorsize: u32) -> Option<(String, String, Mode)> {
    let label = taste_label(sector, mediasize, sectorsize).ok()?;
    let md = label.metadata;
    assert_eq!(md.size, mediasize, "accepted: sized as the provider");
    assert_eq!(md.sectorsize, sectorsize, "accepted: provider's sectors");
    Some((
        md.name.as_str().to_string(),
        md.uuid.as_str().to_string(),
        md.mode,
    ))
}

const UUID_A: &str = "0b7a3a9e-4c1d-4f0e-9a55-2f6c1d3e8b01";

/// A clean label for `name`/`uuid` on a provider of `size` bytes.
fn clean(name: &str, uuid: &str, sectorsize: u32, size: u64, mode: Mode) -> Vec<u8> {
    let md = Metadata::new(
        Name::new(name).unwrap(),
        Uuid::parse(uuid).unwrap(),
        sectorsize,
        size,
        mode,
    )
    .unwrap();
    let mut s = vec![0u8; sectorsize as usize];
    md.encode_sector(&mut s).unwrap();
    s
}

/// One edit of a label, as FreeBSD's userland (a struct it never zeroes),
/// its kernel (`strlcpy` over stack garbage) or a damaged disk leaves it.
#[derive(Clone, Debug)]
enum Edit {
    /// Random bytes after the NUL of the name (`true`) or uuid (`false`).
    GarbageAfterNul(bool, Vec<u8>),
    /// Overwrite the whole name field.
    Name([u8; 16]),
    /// Overwrite the whole uuid field.
    Uuid(Vec<u8>),
    Mode(u8),
    Size(u64),
    SectorSize(u32),
    Version(u32),
    /// One random byte anywhere in the label.
    Byte(usize, u8),
}

fn apply(sector: &mut [u8], e: &Edit) {
    match e {
        Edit::GarbageAfterNul(is_name, bytes) => {
            let (start, len) = if *is_name { (56, 16) } else { (16, 40) };
            let field = &mut sector[start..start + len];
            if let Some(nul) = field.iter().position(|&b| b == 0) {
                for (d, s) in field[nul + 1..].iter_mut().zip(bytes) {
                    *d = *s;
                }
            }
        }
        Edit::Name(n) => sector[56..72].copy_from_slice(n),
        Edit::Uuid(u) => {
            for (d, s) in sector[16..56]
                .iter_mut()
                .zip(u.iter().chain([0u8; 40].iter()))
            {
                *d = *s;
            }
        }
        Edit::Mode(m) => sector[88] = *m,
        Edit::Size(s) => sector[80..88].copy_from_slice(&s.to_le_bytes()),
        Edit::SectorSize(s) => sector[76..80].copy_from_slice(&s.to_le_bytes()),
        Edit::Version(v) => sector[72..76].copy_from_slice(&v.to_le_bytes()),
        Edit::Byte(at, b) => sector[*at % LABEL_LEN] = *b,
    }
}

fn edit_strategy(size: u64) -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<bool>(), prop::collection::vec(any::<u8>(), 40))
            .prop_map(|(n, b)| Edit::GarbageAfterNul(n, b)),
        2 => any::<[u8; 16]>().prop_map(Edit::Name),
        1 => "[ -~]{0,16}".prop_map(|s| {
            let mut n = [0u8; 16];
            for (d, s) in n.iter_mut().zip(s.bytes()) {
                *d = s;
            }
            Edit::Name(n)
        }),
        2 => prop::collection::vec(any::<u8>(), 0..=40).prop_map(Edit::Uuid),
        1 => "[ -~]{0,40}".prop_map(|s| Edit::Uuid(s.into_bytes())),
        2 => any::<u8>().prop_map(Edit::Mode),
        2 => prop_oneof![Just(0u64), Just(size), Just(size * 2), any::<u64>()].prop_map(Edit::Size),
        2 => prop_oneof![Just(0u32), Just(512), Just(4096), any::<u32>()]
            .prop_map(Edit::SectorSize),
        1 => prop_oneof![Just(1u32), Just(2), Just(0), any::<u32>()].prop_map(Edit::Version),
        2 => (0..LABEL_LEN, any::<u8>()).prop_map(|(a, b)| Edit::Byte(a, b)),
    ]
}

/// A provider geometry and a label for it (or for a neighbour of it) with
/// a few edits.
fn mutated_label() -> impl Strategy<Value = (Vec<u8>, u64, u32)> {
    (
        prop_oneof![Just(512u32), Just(4096)],
        2u64..4096,
        "[a-zA-Z0-9_.-]{1,15}",
        any::<[u8; 16]>(),
        0u8..3,
    )
        .prop_flat_map(|(ss, sectors, name, rb, mode)| {
            let size = sectors * u64::from(ss);
            let uuid = Uuid::from_random_bytes(rb);
            let mode = Mode::from_byte(mode).unwrap();
            let sector = clean(&name, uuid.as_str(), ss, size, mode);
            (
                Just(sector),
                Just(size),
                Just(ss),
                prop::collection::vec(edit_strategy(size), 0..5),
            )
        })
        .prop_map(|(mut sector, size, ss, edits)| {
            for e in &edits {
                apply(&mut sector, e);
            }
            (sector, size, ss)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn random_sectors_agree(
        mut sector in prop::collection::vec(any::<u8>(), 512),
        with_magic in any::<bool>(),
        with_version in any::<bool>(),
        sectors in 2u64..100_000,
    ) {
        let size = sectors * 512;
        if with_magic {
            sector[..16].copy_from_slice(b"GEOM::MULTIPATH\0");
        }
        if with_version {
            sector[72..76].copy_from_slice(&1u32.to_le_bytes());
        }
        prop_assert_eq!(
            ours(&sector, size, 512),
            ours_expected(freebsd_taste_accepts(&sector, size, 512))
        );
    }

    #[test]
    fn mutated_labels_agree((sector, size, ss) in mutated_label()) {
        let fb = freebsd_taste_accepts(&sector, size, ss);
        prop_assert_eq!(ours(&sector, size, ss), ours_expected(fb.clone()));
        // The console line for another version is FreeBSD's whenever
        // FreeBSD would print it.
        let version = u32::from_le_bytes(sector[72..76].try_into().unwrap());
        let magic_ok = c_str_at(&sector[..LABEL_LEN], 0) == b"GEOM::MULTIPATH";
        let verdict = taste_label(&sector, size, ss);
        prop_assert_eq!(
            matches!(verdict, Err(TasteReject::Version(v)) if v == version),
            magic_ok && version != 1
        );
    }

    #[test]
    fn clean_labels_are_taken_and_not_odd(
        name in "[a-zA-Z0-9_.-]{1,15}",
        rb in any::<[u8; 16]>(),
        mode in 0u8..3,
        sectors in 2u64..4096,
    ) {
        let uuid = Uuid::from_random_bytes(rb);
        let size = sectors * 512;
        let s = clean(&name, uuid.as_str(), 512, size, Mode::from_byte(mode).unwrap());
        let label = taste_label(&s, size, 512).expect("clean label");
        prop_assert!(label.oddities.is_empty(), "{:?}", label.oddities);
        prop_assert_eq!(Metadata::decode(&s), Ok(label.metadata));
    }
}

/// Name and uuid with random bytes after their NULs, as the stock
/// `gmultipath label` can write them: they assemble, under the name and
/// uuid before the NUL, and the oddities say what was found.
#[test]
fn garbage_after_the_nul_assembles() {
    let mut s = clean("DATA", UUID_A, 512, 1 << 20, Mode::ActiveActive);
    s[56 + 5..72].fill(0xa5);
    s[16 + 37..56].copy_from_slice(b"xyz");
    let label = taste_label(&s, 1 << 20, 512).expect("FreeBSD takes it");
    assert_eq!(label.metadata.name.as_str(), "DATA");
    assert_eq!(label.metadata.uuid.as_str(), UUID_A);
    assert_eq!(label.metadata.mode, Mode::ActiveActive);
    let odd: Vec<Oddity> = label.oddities.iter().collect();
    assert_eq!(odd, vec![Oddity::NameGarbage, Oddity::UuidGarbage]);
}

/// Zero size and sector size are "not recorded", a mode byte of 7 is
/// active/passive, a uuid of any text is an identity.
#[test]
fn zero_geometry_unknown_mode_and_free_uuid_are_taken() {
    let mut s = clean("DATA", UUID_A, 512, 1 << 20, Mode::ActivePassive);
    s[76..88].fill(0);
    s[88] = 7;
    s[16..56].fill(0);
    s[16..23].copy_from_slice(b"my-disk");
    let label = taste_label(&s, 1 << 20, 512).expect("FreeBSD takes it");
    assert_eq!(label.metadata.uuid.as_str(), "my-disk");
    assert_eq!(label.metadata.mode, Mode::ActivePassive);
    assert_eq!(
        (label.metadata.size, label.metadata.sectorsize),
        (1 << 20, 512)
    );
    let odd: Vec<Oddity> = label.oddities.iter().collect();
    assert_eq!(
        odd,
        vec![
            Oddity::UuidNotCanonical,
            Oddity::SizeZero,
            Oddity::SectorSizeZero,
            Oddity::UnknownMode(7)
        ]
    );
}

/// A 16-byte name without NUL: FreeBSD's string runs into the version
/// field ("ABCDEFGHIJKLMNOP\x01"); ours takes the first 15 bytes.
#[test]
fn unterminated_name_is_cut_to_fifteen_bytes() {
    let mut s = clean("DATA", UUID_A, 512, 1 << 20, Mode::ActivePassive);
    s[56..72].copy_from_slice(b"ABCDEFGHIJKLMNOP");
    let fb = freebsd_taste_accepts(&s, 1 << 20, 512).expect("FreeBSD takes it");
    assert_eq!(fb.0, b"ABCDEFGHIJKLMNOP\x01");
    let label = taste_label(&s, 1 << 20, 512).expect("taken");
    assert_eq!(label.metadata.name.as_str(), "ABCDEFGHIJKLMNO");
    assert!(label.oddities.contains(Oddity::NameUnterminated));
}

// ---- The same sectors through taste on the simulator ----

const SIZE: u64 = 1 << 20;

/// One device as `gmultipath list` shows it: name, uuid, mode, paths.
type Listed = (String, String, String, Vec<String>);

/// Puts `sector` at the end of a two-path LUN, loads the class and returns
/// what `gmultipath list` shows: (name, uuid, mode, paths) per device.
fn assemble(sector: &[u8], seed: u64) -> (Vec<Listed>, Sim) {
    let sim = Sim::new(SimConfig::new(SimMode::Deterministic, seed));
    let lun = sim.add_lun(LunConfig::new(&["da0", "da1"], SIZE)).unwrap();
    lun.write_raw(SIZE - 512, sector).unwrap();
    sim.load_multipath().unwrap();
    sim.run_until_idle();
    let seen = list_all(&sim)
        .into_iter()
        .map(|g| {
            (g.name, g.uuid, g.mode, {
                let mut p: Vec<String> = g.paths.into_iter().map(|(p, _)| p).collect();
                p.sort();
                p
            })
        })
        .collect();
    (seen, sim)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Whatever FreeBSD would assemble from a label, the simulator
    /// assembles under the same name, uuid and mode, over both paths; what
    /// it would not, nothing is made of.
    #[test]
    fn simulator_assembles_what_freebsd_would(
        edits in prop::collection::vec(edit_strategy(SIZE), 0..4),
        seed in any::<u64>(),
    ) {
        let mut sector = clean("mp0", UUID_A, 512, SIZE, Mode::ActivePassive);
        for e in &edits {
            apply(&mut sector, e);
        }
        // libgeom reads the kernel's `&#xNN;` escapes back one byte per
        // character: text above ASCII shows up as Latin-1.
        let listed = |s: String| s.bytes().map(char::from).collect::<String>();
        let expected = ours_expected(freebsd_taste_accepts(&sector, SIZE, 512))
            .map(|(n, u, m)| (listed(n), listed(u), m));
        let (seen, sim) = assemble(&sector, seed);
        match expected {
            Some((name, uuid, mode)) => prop_assert_eq!(
                seen,
                vec![(name, uuid, mode.name().to_string(), vec!["da0".into(), "da1".into()])]
            ),
            None => prop_assert!(seen.is_empty(), "{:?}", seen),
        }
        sim.finish().assert_clean();
    }
}

/// The stock userland's label with stack garbage after both NULs, a zero
/// size and an unknown mode: assembles, and `gmultipath list` shows it as
/// FreeBSD would (Active/Passive, both paths).
#[test]
fn a_freebsd_written_label_with_garbage_assembles_on_the_simulator() {
    let mut s = clean("DATA", UUID_A, 512, SIZE, Mode::ActivePassive);
    s[56 + 5..72].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7]);
    s[16 + 37..56].copy_from_slice(&[0x80, 0xff, 0x7f]);
    s[80..88].fill(0);
    s[88] = 9;
    let (seen, sim) = assemble(&s, 7);
    assert_eq!(
        seen,
        vec![(
            "DATA".to_string(),
            UUID_A.to_string(),
            "Active/Passive".to_string(),
            vec!["da0".to_string(), "da1".to_string()]
        )]
    );
    sim.finish().assert_clean();
}

/// The version reject line, byte for byte as FreeBSD prints it (no
/// GEOM_MULTIPATH prefix, two spaces before the module's version, the
/// version as a signed int).
#[test]
fn version_reject_line_is_freebsds() {
    for (v, shown) in [(2u32, "2"), (u32::MAX, "-1")] {
        let mut s = clean("DATA", UUID_A, 512, SIZE, Mode::ActivePassive);
        s[72..76].copy_from_slice(&v.to_le_bytes());
        let (seen, sim) = assemble(&s, 3);
        assert!(seen.is_empty());
        let want =
            format!("da0 has version {shown} multipath id- this module is version  1: rejecting");
        assert!(
            sim.log_lines().iter().any(|l| l == &want),
            "{:?}",
            sim.log_lines()
        );
        assert!(logged(&sim, "da1 has version"));
        sim.finish().assert_clean();
    }
}

/// A label FreeBSD would take and we do not on purpose (a name that is not
/// text) is not ignored silently: one line says why.
#[test]
fn a_deliberately_refused_label_is_reported() {
    let mut s = clean("DATA", UUID_A, 512, SIZE, Mode::ActivePassive);
    s[56..60].copy_from_slice(&[0xff, 0xfe, b'x', 0]);
    let (seen, sim) = assemble(&s, 4);
    assert!(seen.is_empty());
    assert!(
        logged(&sim, "da0 has a label this module does not take"),
        "{:?}",
        sim.log_lines()
    );
    sim.finish().assert_clean();
}

/// A device assembled from a label with a free-form uuid, garbage after
/// the NULs and a zero size: `configure` rewrites its label (clean, same
/// uuid, the paths' size), and it assembles again from that label.
#[test]
fn configure_rewrites_an_odd_label_cleanly() {
    let mut s = clean("DATA", UUID_A, 512, SIZE, Mode::ActivePassive);
    s[16..56].fill(0);
    s[16..23].copy_from_slice(b"my-disk");
    s[16 + 8..16 + 12].copy_from_slice(b"junk");
    s[56 + 5..72].fill(0x5a);
    s[80..88].fill(0);
    let sim = Sim::new(SimConfig::new(SimMode::Deterministic, 11));
    let lun = sim.add_lun(LunConfig::new(&["da0", "da1"], SIZE)).unwrap();
    lun.write_raw(SIZE - 512, &s).unwrap();
    sim.load_multipath().unwrap();
    sim.run_until_idle();
    assert_eq!(list_all(&sim).len(), 1);
    sim.gmultipath(&["configure", "-A", "DATA"])
        .expect("configure rewrites the label");
    sim.run_until_idle();
    let written = lun.read_raw(SIZE - 512, 512).unwrap();
    let label = taste_label(&written, SIZE, 512).expect("still a label for this LUN");
    // Clean: only the uuid's own text is unusual.
    let odd: Vec<Oddity> = label.oddities.iter().collect();
    assert_eq!(odd, vec![Oddity::UuidNotCanonical]);
    assert_eq!(label.metadata.uuid.as_str(), "my-disk");
    assert_eq!(label.metadata.name.as_str(), "DATA");
    assert_eq!(label.metadata.mode, Mode::ActiveActive);
    assert_eq!(label.metadata.size, SIZE);
    let listed = list_all(&sim);
    assert_eq!(
        (listed.len(), listed[0].mode.as_str()),
        (1, "Active/Active")
    );
    sim.finish().assert_clean();
}

/// An unterminated name whose 15th and 16th bytes are one UTF-8 character:
/// the cut goes back to the last whole character, as `ours_expected` says.
#[test]
fn unterminated_name_is_cut_at_a_character_boundary() {
    let mut s = clean("DATA", UUID_A, 512, 1 << 20, Mode::ActivePassive);
    let mut field = [b'a'; 16];
    field[14..16].copy_from_slice("é".as_bytes());
    s[56..72].copy_from_slice(&field);
    let label = taste_label(&s, 1 << 20, 512).expect("taken");
    assert_eq!(label.metadata.name.as_str(), "aaaaaaaaaaaaaa");
    assert_eq!(
        ours(&s, 1 << 20, 512),
        ours_expected(freebsd_taste_accepts(&s, 1 << 20, 512))
    );
    // A byte that is not UTF-8 inside the first 15 is refused, not cut.
    field[3] = 0xff;
    s[56..72].copy_from_slice(&field);
    assert!(matches!(
        taste_label(&s, 1 << 20, 512),
        Err(TasteReject::Unusable(_))
    ));
}
