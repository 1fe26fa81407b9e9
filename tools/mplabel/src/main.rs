//! `mplabel`: write, show and clear the `GEOM::MULTIPATH` label on a disk
//! image (or any seekable file or device), so VM disks can be prepared and
//! disks inspected without a FreeBSD machine.
//!
//! It writes exactly what FreeBSD's `gmultipath label` writes, through the
//! same encoder the kernel core decodes with
//! ([`geom_multipath_rs::metadata`]), so a disk labelled here is tasted by
//! the module as if FreeBSD had labelled it.
//!
//! The argument parser is hand-written: three subcommands and four options
//! do not need a framework, and this way every error is one line starting
//! with `mplabel: `, with exit status 2 for a bad command line and 1 for a
//! failure while doing the work.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::process::ExitCode;

use geom_multipath_rs::metadata::{
    taste_label, validate_sectorsize, LabelFields, Metadata, Mode, Name, Oddity, TasteReject, Uuid,
    MAGIC, MAGIC_LEN, MAGIC_STR, VERSION,
};

const USAGE: &str = "\
usage: mplabel label IMAGE NAME [UUID] [--mode ap|aa|ar] [--sectorsize N]
       mplabel dump IMAGE [--json] [--sectorsize N]
       mplabel clear IMAGE [--sectorsize N]

  label   write a GEOM::MULTIPATH label in the last sector of IMAGE; the size
          recorded is the size of IMAGE, the uuid is random unless given
  dump    show the label in the last sector of IMAGE (exit 1 if there is none)
  clear   zero the last sector of IMAGE, only if it holds a label

  --mode ap|aa|ar   Active/Passive (default), Active/Active, Active/Read
  --sectorsize N    sector size of the disk IMAGE stands for (default 512)
  --json            dump as a JSON object";

/// Why the program stops early; the variant picks the exit status.
#[derive(Debug)]
enum Failure {
    /// The command line is wrong: exit 2.
    Usage(String),
    /// The work failed (file, image geometry, no label): exit 1.
    Runtime(String),
}

type Outcome<T> = Result<T, Failure>;

fn usage<T>(msg: impl Into<String>) -> Outcome<T> {
    Err(Failure::Usage(msg.into()))
}

fn runtime(msg: impl Into<String>) -> Failure {
    Failure::Runtime(msg.into())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(msg)) => {
            eprintln!("mplabel: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(msg)) => {
            eprintln!("mplabel: {msg}");
            ExitCode::from(1)
        }
    }
}

/// What the command line asked for.
#[derive(Debug, Default)]
struct Command {
    positionals: Vec<String>,
    mode: Option<String>,
    sectorsize: Option<String>,
    json: bool,
}

/// Splits `args` into positionals and the options `allowed` for this
/// subcommand. Options take `--opt value` or `--opt=value`; `--` ends them,
/// so a name starting with `-` can still be given.
fn parse(args: &[String], allowed: &[&str]) -> Outcome<Command> {
    let mut cmd = Command::default();
    let mut it = args.iter();
    let mut options_done = false;
    while let Some(arg) = it.next() {
        if options_done || !arg.starts_with('-') || arg == "-" {
            cmd.positionals.push(arg.clone());
            continue;
        }
        if arg == "--" {
            options_done = true;
            continue;
        }
        let (opt, inline) = match arg.split_once('=') {
            Some((o, v)) => (o, Some(v.to_string())),
            None => (arg.as_str(), None),
        };
        if !allowed.contains(&opt) {
            return usage(format!("unknown option '{arg}' (try --help)"));
        }
        if opt == "--json" {
            if inline.is_some() {
                return usage("option '--json' takes no value");
            }
            cmd.json = true;
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => match it.next() {
                Some(v) => v.clone(),
                None => return usage(format!("option '{opt}' needs a value")),
            },
        };
        match opt {
            "--mode" => cmd.mode = Some(value),
            _ => cmd.sectorsize = Some(value),
        }
    }
    Ok(cmd)
}

fn run(args: &[String]) -> Outcome<()> {
    let Some((sub, rest)) = args.split_first() else {
        return usage("missing subcommand: label, dump or clear (try --help)");
    };
    if rest.iter().any(|a| a == "-h" || a == "--help")
        || matches!(sub.as_str(), "-h" | "--help" | "help")
    {
        println!("{USAGE}");
        return Ok(());
    }
    match sub.as_str() {
        "label" => {
            let cmd = parse(rest, &["--mode", "--sectorsize"])?;
            label(&cmd)
        }
        "dump" => {
            let cmd = parse(rest, &["--json", "--sectorsize"])?;
            dump(&cmd)
        }
        "clear" => {
            let cmd = parse(rest, &["--sectorsize"])?;
            clear(&cmd)
        }
        other => usage(format!(
            "unknown subcommand '{other}': expected label, dump or clear"
        )),
    }
}

fn parse_sectorsize(cmd: &Command) -> Outcome<u32> {
    let Some(text) = cmd.sectorsize.as_deref() else {
        return Ok(512);
    };
    let Ok(n) = text.parse::<u32>() else {
        return usage(format!("bad sector size '{text}': not a number"));
    };
    validate_sectorsize(n).or_else(|e| usage(format!("bad sector size: {e}")))?;
    Ok(n)
}

fn parse_mode(text: Option<&str>) -> Outcome<Mode> {
    match text {
        None | Some("ap") => Ok(Mode::ActivePassive),
        Some("aa") => Ok(Mode::ActiveActive),
        Some("ar") => Ok(Mode::ActiveRead),
        Some(other) => usage(format!("bad mode '{other}': expected ap, aa or ar")),
    }
}

/// The positionals, checking there are `min..=max` of them (`what` names
/// them for the message).
fn positionals<'a>(cmd: &'a Command, min: usize, max: usize, what: &str) -> Outcome<&'a [String]> {
    let n = cmd.positionals.len();
    if n < min {
        return usage(format!("missing arguments: expected {what}"));
    }
    if n > max {
        let extra = cmd.positionals.get(max).map_or("", String::as_str);
        return usage(format!("unexpected argument '{extra}': expected {what}"));
    }
    Ok(&cmd.positionals)
}

/// An open image and its geometry, checked the way GEOM would see the disk.
struct Image {
    path: String,
    file: File,
    size: u64,
    sectorsize: u32,
}

impl Image {
    fn open(path: &str, sectorsize: u32, write: bool) -> Outcome<Image> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(write)
            .open(path)
            .map_err(|e| runtime(format!("{path}: cannot open: {e}")))?;
        // Seeking to the end, unlike the file's metadata, also gives the size
        // of a block device, so real disks work too.
        let size = file
            .seek(SeekFrom::End(0))
            .map_err(|e| runtime(format!("{path}: cannot find its size: {e}")))?;
        let ss = u64::from(sectorsize);
        if !size.is_multiple_of(ss) {
            return Err(runtime(format!(
                "{path}: size {size} is not a multiple of the sector size {sectorsize}"
            )));
        }
        if size < 2 * ss {
            return Err(runtime(format!(
                "{path}: size {size} is smaller than two sectors of {sectorsize} bytes"
            )));
        }
        Ok(Image {
            path: path.to_string(),
            file,
            size,
            sectorsize,
        })
    }

    /// Offset of the last sector, where the label lives.
    fn label_offset(&self) -> u64 {
        self.size - u64::from(self.sectorsize)
    }

    fn sector_len(&self) -> usize {
        usize::try_from(self.sectorsize).unwrap_or(usize::MAX)
    }

    fn read_last_sector(&mut self) -> Outcome<Vec<u8>> {
        let mut buf = vec![0u8; self.sector_len()];
        let at = self.label_offset();
        self.file
            .seek(SeekFrom::Start(at))
            .and_then(|_| self.file.read_exact(&mut buf))
            .map_err(|e| runtime(format!("{}: cannot read the last sector: {e}", self.path)))?;
        Ok(buf)
    }

    /// Writes the last sector and waits until it is on stable storage, so a
    /// VM started right after sees the label.
    fn write_last_sector(&mut self, sector: &[u8]) -> Outcome<()> {
        let at = self.label_offset();
        self.file
            .seek(SeekFrom::Start(at))
            .and_then(|_| self.file.write_all(sector))
            .and_then(|()| self.file.sync_all())
            .map_err(|e| runtime(format!("{}: cannot write the last sector: {e}", self.path)))
    }

    fn has_magic(sector: &[u8]) -> bool {
        sector.get(..MAGIC_LEN) == Some(&MAGIC[..])
    }
}

/// A fresh random (version 4) uuid, lowercase as FreeBSD prints them.
fn random_uuid() -> Outcome<Uuid> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| runtime(format!("cannot get random bytes: {e}")))?;
    Ok(Uuid::from_random_bytes(bytes))
}

fn label(cmd: &Command) -> Outcome<()> {
    let args = positionals(cmd, 2, 3, "IMAGE NAME [UUID]")?;
    let (path, name, uuid) = match args {
        [path, name] => (path, name, None),
        [path, name, uuid] => (path, name, Some(uuid)),
        _ => return usage("expected IMAGE NAME [UUID]"),
    };
    let mode = parse_mode(cmd.mode.as_deref())?;
    let sectorsize = parse_sectorsize(cmd)?;
    let name = Name::new(name).or_else(|e| usage(format!("bad name '{name}': {e}")))?;
    let uuid = match uuid {
        // Lowercased so paths labelled from either spelling match in the
        // kernel, which compares the uuid bytes.
        Some(text) => match Uuid::parse(&text.to_ascii_lowercase()) {
            Ok(u) if !u.is_empty() => u,
            _ => {
                return usage(format!(
                    "malformed uuid '{text}': expected 8-4-4-4-12 hex digits"
                ))
            }
        },
        None => random_uuid()?,
    };

    let mut image = Image::open(path, sectorsize, true)?;
    let md = Metadata::new(name, uuid, sectorsize, image.size, mode)
        .map_err(|e| runtime(format!("{path}: {e}")))?;
    let mut sector = vec![0u8; image.sector_len()];
    md.encode_sector(&mut sector)
        .map_err(|e| runtime(format!("{path}: {e}")))?;
    image.write_last_sector(&sector)?;
    println!(
        "{path}: labelled {name} uuid {uuid} ({mode}, {sectorsize}-byte sectors, {} bytes)",
        image.size
    );
    Ok(())
}

/// The IMAGE argument opened (for writing if `write`) and its last sector,
/// which must hold our magic (`else_what` ends the error when it does not).
fn open_labelled<'a>(
    cmd: &'a Command,
    write: bool,
    else_what: &str,
) -> Outcome<(&'a str, u32, Image, Vec<u8>)> {
    let path = match positionals(cmd, 1, 1, "IMAGE")? {
        [path] => path,
        _ => return usage("expected IMAGE"),
    };
    let sectorsize = parse_sectorsize(cmd)?;
    let mut image = Image::open(path, sectorsize, write)?;
    let sector = image.read_last_sector()?;
    if !Image::has_magic(&sector) {
        return Err(runtime(format!(
            "{path}: no {MAGIC_STR} label in the last {sectorsize}-byte sector{else_what}"
        )));
    }
    Ok((path, sectorsize, image, sector))
}

fn dump(cmd: &Command) -> Outcome<()> {
    let (path, sectorsize, image, sector) = open_labelled(cmd, false, "")?;
    // Read as taste reads it: C strings, zeros not compared, any mode byte;
    // what a clean writer would not have left is listed, not refused.
    let label = Metadata::read(&sector)
        .map_err(|e| runtime(format!("{path}: damaged {MAGIC_STR} label: {e}")))?;
    let md = label.metadata;
    let raw = LabelFields::parse(&sector)
        .map_err(|e| runtime(format!("{path}: damaged {MAGIC_STR} label: {e}")))?;
    let verdict = taste_label(&sector, image.size, sectorsize);
    let oddities: Vec<Oddity> = label.oddities.iter().collect();

    if cmd.json {
        let odd: Vec<serde_json::Value> = oddities
            .iter()
            .map(|o| serde_json::json!({ "code": o.code(), "text": o.to_string() }))
            .collect();
        let value = serde_json::json!({
            "magic": MAGIC_STR,
            "name": md.name.as_str(),
            "uuid": md.uuid.as_str(),
            "version": VERSION,
            "sectorsize": md.sectorsize,
            "size": md.size,
            "mode": md.mode.name(),
            "mode_byte": raw.mode,
            "matches_image": !matches!(verdict, Err(TasteReject::OtherProvider(_))),
            "tasted": verdict.is_ok(),
            "oddities": odd,
        });
        let text = serde_json::to_string_pretty(&value)
            .map_err(|e| runtime(format!("cannot format JSON: {e}")))?;
        println!("{text}");
    } else {
        let uuid = if md.uuid.is_empty() {
            "(none)"
        } else {
            md.uuid.as_str()
        };
        println!("magic:      {MAGIC_STR}");
        println!("name:       {}", md.name);
        println!("uuid:       {uuid}");
        println!("version:    {VERSION}");
        println!("sectorsize: {}", md.sectorsize);
        println!("size:       {}", md.size);
        println!("mode:       {}", md.mode);
        for o in &oddities {
            println!("unusual:    {o}");
        }
    }
    // The label was shown, but the kernel would ignore it on this disk: say
    // so and fail, so scripts notice.
    match verdict {
        Ok(_) => Ok(()),
        Err(TasteReject::OtherProvider(e)) => Err(runtime(format!(
            "{path}: label does not fit the image ({e}); FreeBSD will not taste it"
        ))),
        Err(TasteReject::Unusable(e)) => Err(runtime(format!(
            "{path}: label is not taken by this module ({e})"
        ))),
        // Metadata::read has checked magic and version already.
        Err(TasteReject::NotMultipath(e)) => {
            Err(runtime(format!("{path}: damaged {MAGIC_STR} label: {e}")))
        }
        Err(TasteReject::Version(v)) => Err(runtime(format!(
            "{path}: damaged {MAGIC_STR} label: label has version {v}"
        ))),
    }
}

fn clear(cmd: &Command) -> Outcome<()> {
    // Like `gmultipath clear`, only the magic is checked: a damaged label is
    // still ours to clear, anything else is not.
    let (path, _, mut image, _) = open_labelled(cmd, true, ", nothing cleared")?;
    image.write_last_sector(&vec![0u8; image.sector_len()])?;
    println!("{path}: label cleared");
    Ok(())
}
