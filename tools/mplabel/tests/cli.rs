//! End-to-end tests of the `mplabel` binary on temporary image files: what
//! it writes must be what the kernel core decodes, and every bad input must
//! end in one `mplabel: ` line and the documented exit status.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

use geom_multipath_rs::metadata::{validate_uuid, Metadata, Mode, LABEL_LEN, MAGIC};
use tempfile::NamedTempFile;

const UUID: &str = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f1";

fn mplabel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mplabel"))
        .args(args)
        .output()
        .expect("run mplabel")
}

/// An image of `size` bytes filled with a recognisable non-zero pattern, so
/// tests can see which bytes were written.
fn image(size: usize) -> NamedTempFile {
    let mut f = NamedTempFile::new().expect("temp file");
    let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8 + 1).collect();
    f.write_all(&data).expect("fill image");
    f.flush().expect("flush image");
    f
}

fn path(f: &NamedTempFile) -> &str {
    f.path().to_str().expect("utf-8 temp path")
}

/// The command line `VERB IMAGE EXTRA...`.
fn on_image<'a>(verb: &'a str, img: &'a NamedTempFile, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![verb, path(img)];
    args.extend_from_slice(extra);
    args
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a failure with `code` and a single `mplabel: ` line containing
/// `needle`; `case` names the run in every failure message.
#[track_caller]
fn assert_fails_in(case: &str, o: &Output, code: i32, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "{case}: stderr: {err}");
    assert_eq!(err.lines().count(), 1, "{case}: one line expected: {err:?}");
    assert!(err.starts_with("mplabel: "), "{case}: prefix: {err:?}");
    assert!(err.contains(needle), "{case}: {needle:?} not in {err:?}");
}

#[track_caller]
fn assert_fails(o: &Output, code: i32, needle: &str) {
    assert_fails_in("mplabel", o, code, needle);
}

/// Runs `mplabel ARGS...` and asserts it fails as [`assert_fails`] says.
#[track_caller]
fn refused(args: &[&str], code: i32, needle: &str) {
    assert_fails_in(&format!("mplabel {args:?}"), &mplabel(args), code, needle);
}

#[track_caller]
fn assert_ok(o: &Output) {
    assert!(o.status.success(), "failed: {}", stderr(o));
}

fn last_sector(p: &Path, sectorsize: usize) -> Vec<u8> {
    let data = fs::read(p).expect("read image");
    data[data.len() - sectorsize..].to_vec()
}

/// Overwrites the last `sector.len()` bytes of the image at `p`.
fn write_last_sector(p: &Path, sector: &[u8]) {
    let mut data = fs::read(p).expect("read image");
    let at = data.len() - sector.len();
    data[at..].copy_from_slice(sector);
    fs::write(p, data).expect("write image");
}

fn dump_fields(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[test]
fn label_then_dump_text() {
    let img = image(1 << 20);
    let o = mplabel(&["label", path(&img), "disk0", UUID, "--mode", "aa"]);
    assert_ok(&o);
    assert!(stdout(&o).contains(UUID));
    let o = mplabel(&["dump", path(&img)]);
    assert_ok(&o);
    let f = dump_fields(&stdout(&o));
    assert_eq!(f["magic"], "GEOM::MULTIPATH");
    assert_eq!(f["name"], "disk0");
    assert_eq!(f["uuid"], UUID);
    assert_eq!(f["version"], "1");
    assert_eq!(f["sectorsize"], "512");
    assert_eq!(f["size"], (1 << 20).to_string());
    assert_eq!(f["mode"], "Active/Active");
}

#[test]
fn label_then_dump_json_with_generated_uuid() {
    let img = image(64 * 4096);
    assert_ok(&mplabel(&[
        "label",
        path(&img),
        "vmdisk",
        "--mode=ar",
        "--sectorsize=4096",
    ]));
    let o = mplabel(&["dump", path(&img), "--json", "--sectorsize", "4096"]);
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("valid JSON");
    assert_eq!(v["magic"], "GEOM::MULTIPATH");
    assert_eq!(v["name"], "vmdisk");
    assert_eq!(v["version"], 1);
    assert_eq!(v["sectorsize"], 4096);
    assert_eq!(v["size"], 64 * 4096);
    assert_eq!(v["mode"], "Active/Read");
    assert_eq!(v["matches_image"], true);
    let uuid = v["uuid"].as_str().expect("uuid string");
    assert!(validate_uuid(uuid).is_ok(), "{uuid}");
    assert_eq!(uuid, uuid.to_ascii_lowercase());
    assert_eq!(uuid.as_bytes()[14], b'4', "version 4: {uuid}");
    assert!(matches!(uuid.as_bytes()[19], b'8' | b'9' | b'a' | b'b'));

    // A second label gets another random uuid.
    let img2 = image(64 * 4096);
    assert_ok(&mplabel(&[
        "label",
        path(&img2),
        "vmdisk",
        "--sectorsize",
        "4096",
    ]));
    let o = mplabel(&["dump", path(&img2), "--json", "--sectorsize", "4096"]);
    let v2: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("valid JSON");
    assert_ne!(v2["uuid"], v["uuid"]);
}

#[test]
fn label_decodes_with_the_library() {
    let img = image(1 << 20);
    let before = fs::read(img.path()).expect("read image");
    assert_ok(&mplabel(&["label", path(&img), "mp7", UUID]));
    let after = fs::read(img.path()).expect("read image");
    assert_eq!(after.len(), before.len(), "image size unchanged");
    assert_eq!(
        after[..after.len() - 512],
        before[..before.len() - 512],
        "only the last sector is written"
    );
    let sector = last_sector(img.path(), 512);
    assert!(sector[LABEL_LEN..].iter().all(|&b| b == 0), "rest zeroed");
    let md = Metadata::decode(&sector).expect("decodes");
    assert_eq!(md.name, "mp7");
    assert_eq!(md.uuid, UUID);
    assert_eq!(md.sectorsize, 512);
    assert_eq!(md.size, 1 << 20);
    assert_eq!(md.mode, Mode::ActivePassive);
    assert_eq!(md.check_provider(1 << 20, 512), Ok(()));
}

#[test]
fn upper_case_uuid_is_written_lower_case() {
    let img = image(8192);
    let upper = UUID.to_ascii_uppercase();
    assert_ok(&mplabel(&["label", path(&img), "d", &upper]));
    let md = Metadata::decode(&last_sector(img.path(), 512)).expect("decodes");
    assert_eq!(md.uuid, UUID);
}

#[test]
fn double_dash_allows_a_name_starting_with_a_dash() {
    let img = image(8192);
    assert_ok(&mplabel(&[
        "label",
        "--mode",
        "aa",
        "--",
        path(&img),
        "-odd",
    ]));
    let md = Metadata::decode(&last_sector(img.path(), 512)).expect("decodes");
    assert_eq!(md.name, "-odd");
    assert_eq!(md.mode, Mode::ActiveActive);
}

#[test]
fn clear_then_dump_fails() {
    let img = image(1 << 16);
    assert_ok(&mplabel(&["label", path(&img), "gone", UUID]));
    assert_ok(&mplabel(&["clear", path(&img)]));
    assert!(last_sector(img.path(), 512).iter().all(|&b| b == 0));
    refused(&["dump", path(&img)], 1, "no GEOM::MULTIPATH label");
    // Nothing left to clear: refused, like `gmultipath clear`.
    refused(&["clear", path(&img)], 1, "no GEOM::MULTIPATH label");
}

#[test]
fn clear_refuses_a_sector_without_magic() {
    let img = image(1 << 16);
    let before = fs::read(img.path()).expect("read image");
    refused(&["clear", path(&img)], 1, "nothing cleared");
    assert_eq!(fs::read(img.path()).expect("read image"), before);
}

#[test]
fn clear_removes_a_damaged_label() {
    let img = image(1 << 16);
    assert_ok(&mplabel(&["label", path(&img), "bad", UUID]));
    let mut data = fs::read(img.path()).expect("read image");
    let at = data.len() - 512 + 72;
    data[at] = 9; // version 9
    fs::write(img.path(), &data).expect("write image");
    refused(&["dump", path(&img)], 1, "version 9");
    assert_ok(&mplabel(&["clear", path(&img)]));
    assert!(last_sector(img.path(), 512).iter().all(|&b| b == 0));
}

#[test]
fn dump_with_other_sector_size_finds_no_label() {
    let img = image(1 << 16);
    assert_ok(&mplabel(&["label", path(&img), "s512", UUID]));
    refused(
        &["dump", path(&img), "--sectorsize", "4096"],
        1,
        "last 4096-byte sector",
    );
}

#[test]
fn dump_flags_a_label_that_no_longer_fits() {
    let img = image(1 << 16);
    assert_ok(&mplabel(&["label", path(&img), "moved", UUID]));
    // Move the label sector to the end of a larger image, as if the disk had
    // been grown without relabelling.
    let sector = last_sector(img.path(), 512);
    let mut data = fs::read(img.path()).expect("read image");
    data.extend_from_slice(&sector);
    fs::write(img.path(), &data).expect("write image");
    let o = mplabel(&["dump", path(&img)]);
    assert_fails(&o, 1, "does not fit");
    assert_eq!(dump_fields(&stdout(&o))["name"], "moved");
    let o = mplabel(&["dump", path(&img), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("valid JSON");
    assert_eq!(v["matches_image"], false);
}

#[test]
fn missing_file_is_a_runtime_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("nope.img");
    let missing = missing.to_str().expect("utf-8");
    refused(&["label", missing, "x"], 1, "cannot open");
    refused(&["dump", missing], 1, "cannot open");
    refused(&["clear", missing], 1, "cannot open");
    assert!(!Path::new(missing).exists(), "label must not create files");
}

/// Runs `mplabel VERB IMAGE EXTRA...` on a fresh image of `size` bytes and
/// asserts it fails with status 1 and `needle` (as [`refused`], which names
/// the command line in its messages).
#[track_caller]
fn refused_on_image(size: usize, verb: &str, extra: &[&str], needle: &str) {
    let img = image(size);
    refused(&on_image(verb, &img, extra), 1, needle);
}

#[test]
fn image_smaller_than_two_sectors() {
    for (size, verb, extra) in [
        (512, "label", &["x"][..]),
        (0, "dump", &[]),
        (4096, "clear", &["--sectorsize", "4096"]),
    ] {
        refused_on_image(size, verb, extra, "smaller than two sectors");
    }
}

#[test]
fn image_size_not_a_multiple_of_the_sector_size() {
    for (size, verb, extra) in [
        (1000, "label", &["x"][..]),
        (3 * 512, "label", &["x", "--sectorsize", "1024"]),
        (3 * 512, "dump", &["--sectorsize", "1024"]),
    ] {
        refused_on_image(size, verb, extra, "not a multiple");
    }
}

#[test]
fn name_over_fifteen_bytes() {
    let img = image(8192);
    let before = fs::read(img.path()).expect("read image");
    refused(
        &["label", path(&img), "0123456789abcdef"],
        2,
        "at most 15 bytes",
    );
    refused(&["label", path(&img), ""], 2, "name is empty");
    assert_eq!(
        fs::read(img.path()).expect("read image"),
        before,
        "untouched"
    );
    assert_ok(&mplabel(&["label", path(&img), "0123456789abcde"]));
}

#[test]
fn malformed_uuid() {
    let img = image(8192);
    for bad in [
        "not-a-uuid",
        "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f",
        "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0fg",
        "0f1e2d3c04b5a-4978-8695-a4b3c2d1e0f1",
        "",
    ] {
        refused(&["label", path(&img), "x", bad], 2, "malformed uuid");
    }
    let sector = last_sector(img.path(), 512);
    assert_ne!(sector[..16], MAGIC, "nothing written");
}

#[test]
fn bad_mode() {
    let img = image(8192);
    refused(
        &["label", path(&img), "x", "--mode", "rw"],
        2,
        "bad mode 'rw'",
    );
    refused(&["label", path(&img), "x", "--mode"], 2, "needs a value");
}

#[test]
fn bad_sector_size() {
    let img = image(8192);
    for (bad, needle) in [
        ("abc", "not a number"),
        ("0", "sector size is 0"),
        ("1000", "not a power of two"),
        ("64", "too small"),
        ("-512", "not a number"),
    ] {
        refused(
            &["label", path(&img), "x", &format!("--sectorsize={bad}")],
            2,
            needle,
        );
    }
}

#[test]
fn unknown_option() {
    let img = image(8192);
    for (verb, extra, option) in [
        ("label", &["x", "--force"][..], "--force"),
        ("dump", &["--mode", "aa"], "--mode"),
        ("clear", &["--json"], "--json"),
    ] {
        refused(
            &on_image(verb, &img, extra),
            2,
            &format!("unknown option '{option}'"),
        );
    }
    refused(&["dump", path(&img), "--json=yes"], 2, "takes no value");
}

#[test]
fn bad_command_lines() {
    let img = image(8192);
    refused(&[], 2, "missing subcommand");
    refused(&["relabel", path(&img)], 2, "unknown subcommand 'relabel'");
    refused(&["label", path(&img)], 2, "missing arguments");
    refused(&["dump"], 2, "missing arguments");
    refused(
        &["clear", path(&img), "extra"],
        2,
        "unexpected argument 'extra'",
    );
    refused(
        &["label", path(&img), "x", UUID, "more"],
        2,
        "unexpected argument 'more'",
    );
}

#[test]
fn help_succeeds() {
    for args in [&["--help"][..], &["label", "-h"][..], &["help"][..]] {
        let o = mplabel(args);
        assert_ok(&o);
        assert!(stdout(&o).contains("usage: mplabel label"));
    }
}

/// A label as the stock userland can leave it (garbage after both NULs, a
/// zero size, an unknown mode byte): dump shows it, lists what is unusual,
/// and succeeds, because FreeBSD's taste (and ours) takes it.
fn odd_label_image() -> NamedTempFile {
    let img = image(1 << 20);
    assert_ok(&mplabel(&[
        "label",
        path(&img),
        "DATA",
        "0b7a3a9e-4c1d-4f0e-9a55-2f6c1d3e8b01",
    ]));
    let mut s = last_sector(img.path(), 512);
    s[56 + 5..72].fill(0xa5);
    s[16 + 37..56].copy_from_slice(b"xyz");
    s[80..88].fill(0);
    s[88] = 9;
    write_last_sector(img.path(), &s);
    img
}

#[test]
fn dump_reads_an_odd_label_and_says_what_is_odd() {
    let img = odd_label_image();
    let o = mplabel(&["dump", path(&img)]);
    assert_ok(&o);
    let out = stdout(&o);
    let f = dump_fields(&out);
    assert_eq!(f["name"], "DATA");
    assert_eq!(f["uuid"], "0b7a3a9e-4c1d-4f0e-9a55-2f6c1d3e8b01");
    assert_eq!(f["mode"], "Active/Passive");
    let unusual: Vec<&str> = out.lines().filter(|l| l.starts_with("unusual:")).collect();
    assert_eq!(unusual.len(), 4, "{out}");
    assert!(
        out.contains("bytes after the name's NUL are not zero"),
        "{out}"
    );
    assert!(out.contains("unknown mode byte 9"), "{out}");

    let o = mplabel(&["dump", path(&img), "--json"]);
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let codes: Vec<&str> = v["oddities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "name-garbage-after-nul",
            "uuid-garbage-after-nul",
            "size-zero",
            "unknown-mode"
        ]
    );
    assert_eq!(v["mode_byte"], 9);
    assert_eq!(v["tasted"], true);
}

#[test]
fn label_writes_a_clean_label_with_no_oddities() {
    let img = image(1 << 20);
    assert_ok(&mplabel(&["label", path(&img), "DATA", "--mode", "ar"]));
    let s = last_sector(img.path(), 512);
    assert!(
        s[56 + 4..72].iter().all(|&b| b == 0),
        "name padded with NULs"
    );
    assert!(
        s[16 + 36..56].iter().all(|&b| b == 0),
        "uuid padded with NULs"
    );
    assert!(s[89..].iter().all(|&b| b == 0), "rest of the sector zero");
    let o = mplabel(&["dump", path(&img), "--json"]);
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["oddities"].as_array().map(Vec::len), Some(0));
    assert_eq!(v["mode_byte"], 2);
}

#[test]
fn dump_fails_on_a_label_this_module_does_not_take() {
    let img = odd_label_image();
    let mut s = last_sector(img.path(), 512);
    s[16..56].fill(0);
    write_last_sector(img.path(), &s);
    let o = mplabel(&["dump", path(&img)]);
    assert_fails(&o, 1, "not taken by this module (label has no uuid)");
    assert!(stdout(&o).contains("uuid:       (none)"));
}
