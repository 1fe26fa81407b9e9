#!/usr/bin/env python3
"""Stand-ins for the FreeBSD commands the ATF suite runs, for a dry run on Linux.

This is NOT the kernel module and proves nothing about it. It is a small
model of gmultipath as tests/vm/atf expects it to behave (as specified in
shared/SPEC-gmultipath.md), so that the ATF programs, their helpers and
their cleanup can be executed on a host without FreeBSD: a typo, a wrong
awk, an assertion that cannot pass, or a cleanup that leaves disks behind
shows up here instead of in a VM. Mutations (FAKEBSD_MUTATE) make the model
misbehave on purpose, to prove that the assertions catch it.

Invoked through wrappers named after the command (mdconfig, gnop, gmultipath,
kldstat, kldload, kldunload, sysctl, diskinfo, dmesg, dtrace, geom, dd, sha256,
freebsd-version). State lives in the JSON file $FAKEBSD_STATE; device nodes
are plain files under $FAKEBSD_DEV (the suite's dev_root), and the data of
each disk is a file $FAKEBSD_DEV/.data-<disk>.

With FAKEBSD_LUN=IDENT the machine also has the disks of a VM made by
run.sh: vtbd0 (system), vtbd1 and vtbd2 (two paths to one 64 MiB LUN, both
with ident IDENT, sharing data and label), vtbd3 (carrier). A disk node whose
modification time changes (it was opened for writing, as `true > /dev/vtbd2`
does) is retasted before the next gmultipath command.

Mutations: rotate-forward (rotate walks oldest to newest), getactive-oldest
(A/A getactive lists oldest first), no-auto-restore (no automatic restore when
the last path fails), unbounded-retry (failing I/O is retried 20 times),
failback (restore makes the path active again).
"""

import fcntl
import json
import os
import sys

MD_SIZE = 1 << 20
SECTOR = 512
MODE_NAMES = {0: "Active/Passive", 1: "Active/Active", 2: "Active/Read"}
MUTATE = set(filter(None, os.environ.get("FAKEBSD_MUTATE", "").split(",")))


def new_uuid():
    h = os.urandom(16).hex()
    return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])


def dev_root():
    return os.environ["FAKEBSD_DEV"]


def err(msg, code=1):
    sys.stderr.write(msg + "\n")
    sys.exit(code)


class State:
    def __init__(self):
        self.path = os.environ["FAKEBSD_STATE"]
        self.lockf = open(self.path + ".lock", "w")
        fcntl.flock(self.lockf, fcntl.LOCK_EX)
        try:
            with open(self.path) as f:
                self.s = json.load(f)
        except FileNotFoundError:
            self.s = {"mds": {}, "nops": {}, "labels": {}, "geoms": {}, "msgs": [],
                      "loaded": [], "notaste": 0, "next_md": 0, "mtimes": {}}
            ident = os.environ.get("FAKEBSD_LUN")
            if ident:
                self.s["mds"]["vtbd0"] = {"size": 5 << 30}
                for d in ("vtbd1", "vtbd2"):
                    self.s["mds"][d] = {"size": 64 << 20, "backing": "lun0", "ident": ident}
                self.s["mds"]["vtbd3"] = {"size": 8 << 20}
                for d in self.s["mds"]:
                    self.node(d, True)
                    self.s["mtimes"][d] = os.stat(self.devpath(d)).st_mtime_ns
                with open(self.datafile("lun0"), "wb") as f:
                    f.truncate(64 << 20)

    def save(self):
        with open(self.path, "w") as f:
            json.dump(self.s, f)

    # ---- providers
    def devpath(self, name):
        return os.path.join(dev_root(), name)

    def datafile(self, backing):
        return os.path.join(dev_root(), ".data-" + backing)

    def prov_size(self, p):
        if p in self.s["mds"]:
            return self.s["mds"][p].get("size", MD_SIZE)
        if p in self.s["nops"]:
            return self.prov_size(self.s["nops"][p]["md"]) - self.s["nops"][p]["offset"]
        return None

    def prov_md(self, p):
        """The storage under provider p (a LUN's paths share one)."""
        if p in self.s["nops"]:
            p = self.s["nops"][p]["md"]
        return self.s["mds"][p].get("backing", p)

    def retaste_touched(self):
        """Disks opened for writing since last time are tasted again."""
        for d in self.s["mds"]:
            try:
                m = os.stat(self.devpath(d)).st_mtime_ns
            except FileNotFoundError:
                continue
            if self.s["mtimes"].get(d) != m:
                self.s["mtimes"][d] = m
                self.taste(d)

    def log(self, msg):
        self.s["msgs"].append("GEOM_MULTIPATH: " + msg)

    def node(self, name, present):
        path = os.path.join(dev_root(), name)
        if present:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            open(path, "a").close()
        elif os.path.exists(path):
            os.unlink(path)

    # ---- multipath model
    def good(self, g):
        return [p for p in g["paths"] if p["state"] == "ok"]

    def kernel_order(self, g):
        return list(reversed(g["paths"]))      # newest first

    def new_geom(self, name, uuid, mode):
        self.s["geoms"][name] = {"uuid": uuid, "mode": mode, "paths": [],
                                 "active": None, "ndisks": 0}
        self.node("multipath/" + name, True)
        self.log("%s created" % name)
        return self.s["geoms"][name]

    def add_path(self, gname, prov):
        g = self.s["geoms"][gname]
        if any(p["prov"] == prov for p in g["paths"]):
            return "provider %s is already there" % prov
        g["paths"].append({"prov": prov, "state": "ok"})
        g["ndisks"] += 1
        self.log("%s added to %s" % (prov, gname))
        if g["active"] is None:
            g["active"] = prov
        return None

    def fault(self, gname, prov):
        g = self.s["geoms"][gname]
        path = next(p for p in g["paths"] if p["prov"] == prov)
        path["state"] = "fail"
        if not self.good(g) and g["ndisks"] > 0 and "no-auto-restore" not in MUTATE:
            for p in g["paths"]:
                if p is path and g["ndisks"] > 1:
                    continue
                if p["state"] == "fail":
                    p["state"] = "ok"
                    self.log("all paths in %s were marked FAIL, restore %s" % (gname, p["prov"]))
        if g["active"] == prov:
            good = [p for p in self.kernel_order(g) if p["state"] == "ok"]
            g["active"] = good[0]["prov"] if good else None

    def lose(self, prov):
        """A provider went away: drop it from every geom that uses it."""
        for gname in list(self.s["geoms"]):
            g = self.s["geoms"][gname]
            if not any(p["prov"] == prov for p in g["paths"]):
                continue
            self.log("%s in %s was disconnected" % (prov, gname))
            g["paths"] = [p for p in g["paths"] if p["prov"] != prov]
            g["ndisks"] -= 1
            if g["active"] == prov:
                good = [p for p in self.kernel_order(g) if p["state"] == "ok"]
                g["active"] = good[0]["prov"] if good else None
            if not g["paths"]:
                self.drop_geom(gname)

    def drop_geom(self, gname):
        del self.s["geoms"][gname]
        self.node("multipath/" + gname, False)
        self.log("%s destroyed" % gname)

    def taste(self, prov):
        if "multipath" not in self.s["loaded"] or self.s["notaste"]:
            return
        lab = self.s["labels"].get(self.prov_md(prov))
        if not lab or lab["size"] != self.prov_size(prov):
            return
        if any(p["prov"] == prov for g in self.s["geoms"].values() for p in g["paths"]):
            return
        same = [n for n, g in self.s["geoms"].items() if g["uuid"] == lab["uuid"]]
        gname = same[0] if same else lab["name"]
        if not same:
            self.new_geom(gname, lab["uuid"], lab["mode"])
        self.add_path(gname, prov)

    def io(self, gname, write):
        """One bio through the multipath device: True on success."""
        g = self.s["geoms"][gname]
        budget = 20 if "unbounded-retry" in MUTATE else g["ndisks"]
        tries = 0
        while True:
            prov = g["active"]
            if prov is None:
                return False
            tries += 1
            nop = self.s["nops"].get(prov)
            rate = (nop["wfail"] if write else nop["rfail"]) if nop else 0
            if rate < 100:
                return True
            if next(p for p in g["paths"] if p["prov"] == prov)["state"] == "ok":
                self.log("Error 5, %s in %s marked FAIL" % (prov, gname))
                self.fault(gname, prov)
            if tries >= budget:
                return False


# ------------------------------------------------------------------ commands

def strip_dev(p):
    root = dev_root().rstrip("/") + "/"
    for prefix in (root, "/dev/"):
        if p.startswith(prefix):
            return p[len(prefix):]
    return p


def cmd_mdconfig(st, args):
    if args[:1] == ["-a"]:
        n = "md%d" % st.s["next_md"]
        st.s["next_md"] += 1
        st.s["mds"][n] = {}
        st.node(n, True)
        st.s["mtimes"][n] = os.stat(st.devpath(n)).st_mtime_ns
        with open(st.datafile(n), "wb") as f:
            f.truncate(MD_SIZE)
        print(n)
        return 0
    if args[:1] == ["-d"]:
        u = args[args.index("-u") + 1]
        if u not in st.s["mds"]:
            err("mdconfig: %s: no such unit" % u)
        if any(n["md"] == u for n in st.s["nops"].values()) and "force" not in args:
            err("mdconfig: %s: Device busy" % u)
        st.lose(u)
        del st.s["mds"][u]
        st.s["labels"].pop(u, None)
        st.node(u, False)
        if os.path.exists(st.datafile(u)):
            os.unlink(st.datafile(u))
        return 0
    err("mdconfig: unsupported: %s" % args, 2)


def cmd_gnop(st, args):
    verb, rest = args[0], args[1:]
    if verb == "create":
        opts = {"-o": "0", "-z": ""}
        while rest and rest[0] in opts:
            opts[rest[0]] = rest[1]
            rest = rest[2:]
        md = strip_dev(rest[0])
        if md not in st.s["mds"]:
            err("gnop: Provider %s is invalid." % md)
        name = md + ".nop"
        if name in st.s["nops"]:
            err("gnop: Provider %s already exists." % name)
        st.s["nops"][name] = {"md": md, "offset": int(opts["-o"]), "physpath": opts["-z"],
                              "rfail": 0, "wfail": 0}
        st.node(name, True)
        st.taste(name)
        return 0
    if verb == "configure":
        probs = {"-r": 0, "-w": 0}
        while rest and rest[0] in probs:
            probs[rest[0]] = int(rest[1])
            rest = rest[2:]
        nop = st.s["nops"][rest[0]]
        nop["rfail"], nop["wfail"] = probs["-r"], probs["-w"]
        return 0
    if verb == "destroy":
        name = [a for a in rest if a != "-f"][0]
        if name not in st.s["nops"]:
            err("gnop: Provider %s is invalid." % name)
        st.lose(name)
        del st.s["nops"][name]
        st.node(name, False)
        return 0
    err("gnop: unsupported: %s" % args, 2)


def cmd_gmultipath(st, args):
    if "multipath" not in st.s["loaded"]:
        err("gmultipath: Class 'MULTIPATH' not found.")
    st.retaste_touched()
    verb, rest = args[0], args[1:]
    flags = [a for a in rest if a.startswith("-")]
    rest = [a for a in rest if not a.startswith("-")]
    geoms = st.s["geoms"]

    def geom(name):
        if name not in geoms:
            err("gmultipath: Device %s not found." % name)
        return geoms[name]

    def find_path(g, prov):
        for p in g["paths"]:
            if p["prov"] == prov:
                return p
        err("gmultipath: Provider %s not found." % prov)

    if verb in ("create", "label"):
        name, provs = rest[0], [strip_dev(p) for p in rest[1:]]
        mode = 2 if "-R" in flags else 1 if "-A" in flags else 0
        for p in provs:
            if st.prov_size(p) is None:
                err("gmultipath: Provider %s is invalid." % p)
        if verb == "label":
            st.s["labels"][st.prov_md(provs[0])] = {
                "uuid": new_uuid(), "name": name, "mode": mode,
                "size": st.prov_size(provs[0])}
            st.taste(provs[0])
            if provs[0] in st.s["nops"]:
                st.taste(st.s["nops"][provs[0]]["md"])
            return 0
        if name in geoms:
            err("gmultipath: Device %s already exist" % name)
        st.new_geom(name, "", mode)
        for p in provs:
            st.add_path(name, p)
        return 0
    if verb == "add":
        geom(rest[0])
        msg = st.add_path(rest[0], strip_dev(rest[1]))
        if msg:
            err("gmultipath: " + msg)
        return 0
    if verb in ("fail", "restore"):
        g = geom(rest[0])
        p = find_path(g, rest[1])
        if verb == "fail" and p["state"] == "ok":
            st.log("%s in %s is marked FAIL." % (p["prov"], rest[0]))
            st.fault(rest[0], p["prov"])
        elif verb == "restore" and p["state"] == "fail":
            st.log("%s in %s is marked OK." % (p["prov"], rest[0]))
            p["state"] = "ok"
            if "failback" in MUTATE:
                g["active"] = p["prov"]
        return 0
    if verb == "prefer":
        g = geom(rest[0])
        p = find_path(g, strip_dev(rest[1]))
        if p["state"] != "ok":
            err("gmultipath: Consumer %s is invalid" % p["prov"])
        g["active"] = p["prov"]
        return 0
    if verb == "rotate":
        g = geom(rest[0])
        order = g["paths"] if "rotate-forward" in MUTATE else st.kernel_order(g)
        good = [p["prov"] for p in order if p["state"] == "ok"]
        if good:
            names = [p["prov"] for p in order]
            after = names[names.index(g["active"]) + 1:] if g["active"] in names else []
            nxt = [n for n in after if n in good]
            g["active"] = nxt[0] if nxt else good[0]
        return 0
    if verb == "getactive":
        g = geom(rest[0])
        if g["mode"] == 1:
            order = g["paths"] if "getactive-oldest" in MUTATE else st.kernel_order(g)
            good = [p["prov"] for p in order if p["state"] == "ok"]
            print(" ".join(good) if good else "none")
        else:
            print(g["active"] or "none")
        return 0
    if verb in ("list", "status"):
        for name in (rest or sorted(geoms)):
            g = geom(name)
            ngood = len(st.good(g))
            state = ("BROKEN" if ngood == 0 else
                     "DEGRADED" if ngood != g["ndisks"] or g["ndisks"] == 1 else "OPTIMAL")
            if verb == "status":
                print("%s %s" % (name, state))
                continue
            print("Geom name: %s" % name)
            print("Type: %s" % ("AUTOMATIC" if g["uuid"] else "MANUAL"))
            print("Mode: %s" % MODE_NAMES[g["mode"]])
            print("UUID: %s" % g["uuid"])
            print("State: %s" % state)
            print("Providers:")
            print("1. Name: multipath/%s" % name)
            print("   Mediasize: %d" % MD_SIZE)
            print("   Mode: r0w0e0")
            print("   State: %s" % state)
            print("Consumers:")
            for i, p in enumerate(g["paths"], 1):
                if p["state"] == "fail":
                    cs = "FAIL"
                elif g["mode"] == 1 or g["active"] == p["prov"]:
                    cs = "ACTIVE"
                elif g["mode"] == 2:
                    cs = "READ"
                else:
                    cs = "PASSIVE"
                print("%d. Name: %s" % (i, p["prov"]))
                print("   Mediasize: %d" % st.prov_size(p["prov"]))
                print("   Sectorsize: %d" % SECTOR)
                print("   Mode: r1w1e1")
                print("   State: %s" % cs)
            print("")
        return 0
    if verb in ("destroy", "stop"):
        g = geom(rest[0])
        if verb == "destroy" and g["uuid"] and g["active"]:
            st.s["labels"].pop(st.prov_md(g["active"]), None)
        st.drop_geom(rest[0])
        return 0
    err("gmultipath: Unknown command: %s." % verb)


def cmd_kldstat(st, args):
    loaded = st.s["loaded"]
    if "-n" in args:
        f = args[args.index("-n") + 1]
        return 0 if (f == "geom_multipath_rs.ko" and "multipath" in loaded) else 1
    if "-q" in args and "-m" not in args:
        return 0
    if "-m" in args:
        m = args[args.index("-m") + 1]
        return 0 if (m == "g_nop" and "g_nop" in loaded) or \
            (m == "g_multipath" and "multipath" in loaded) else 1
    print("Id Refs Address                Size Name")
    print(" 1   10 0xffffffff80200000  1f3e2d0 kernel (/boot/kernel/kernel)")
    if "multipath" in loaded:
        print(" 5    1 0xffffffff82e00000     9000 geom_multipath_rs.ko "
              "(/var/tmp/gmprs/geom_multipath_rs.ko)")
        if "-v" in args:
            print("\tContains modules:\n\t\t Id Name\n\t\t530 g_multipath")
    return 0


def cmd_kldload(st, args):
    target = args[-1]
    if target.endswith("geom_multipath_rs.ko"):
        if not os.path.exists(target):
            err("kldload: can't load %s: No such file or directory" % target)
        st.s["loaded"].append("multipath")
        return 0
    if target == "geom_nop":
        st.s["loaded"].append("g_nop")
        return 0
    err("kldload: can't load %s: No such file or directory" % target)


def cmd_kldunload(st, args):
    err("kldunload: can't find file %s" % args[-1])


def cmd_sha256(st, args):
    import subprocess       # here only: it is slow to import, and rarely needed
    digest = subprocess.run(["sha256sum", args[-1]], capture_output=True,
                            text=True, check=True).stdout.split()[0]
    print(digest if "-q" in args else "SHA256 (%s) = %s" % (args[-1], digest))
    return 0


def cmd_freebsd_version(st, args):
    print("14.1-RELEASE")
    return 0


def cmd_geom(st, args):
    if args[:2] == ["nop", "load"]:
        st.s["loaded"].append("g_nop")
        return 0
    err("geom: unsupported: %s" % args, 2)


def cmd_sysctl(st, args):
    args = [a for a in args if a != "-n"]
    for a in args:
        if a == "kern.geom.confxml":
            print("<mesh><class id=\"0x1\"><name>DEV</name></class>" +
                  ("<class id=\"0x2\"><name>MULTIPATH</name></class>"
                   if "multipath" in st.s["loaded"] else "") + "</mesh>")
        elif a == "kern.disks":
            print(" ".join(sorted(st.s["mds"], reverse=True)))
        elif a == "kern.geom.notaste":
            print(st.s["notaste"])
        elif a.startswith("kern.geom.notaste="):
            old = st.s["notaste"]
            st.s["notaste"] = int(a.split("=", 1)[1])
            print("kern.geom.notaste: %d -> %d" % (old, st.s["notaste"]))
        else:
            err("sysctl: unknown oid '%s'" % a)
    return 0


def cmd_diskinfo(st, args):
    name = strip_dev(args[-1])
    if "-s" in args:
        ident = st.s["mds"].get(name, {}).get("ident")
        if ident is None:
            err("diskinfo: %s: no ident" % name)
        print(ident)
        return 0
    if name.startswith("multipath/"):
        g = st.s["geoms"].get(name.split("/", 1)[1])
        if g and g["active"] and g["active"] in st.s["nops"]:
            phys = st.s["nops"][g["active"]]["physpath"]
            if phys:
                print(phys + "/mp")
                return 0
    err("diskinfo: %s: no physical path" % name)


def cmd_dmesg(st, args):
    for m in st.s["msgs"]:
        print(m)
    return 0


def cmd_dtrace(st, args):
    err("dtrace: invalid probe specifier: probe description not found")


def cmd_dd(st, args):
    ops = dict(a.split("=", 1) for a in args if "=" in a)
    root = os.path.join(dev_root(), "multipath") + "/"
    for key, write in (("of", True), ("if", False)):
        target = ops.get(key, "")
        if target.startswith(root):
            name = target[len(root):]
            if name not in st.s["geoms"]:
                err("dd: %s: No such file or directory" % target)
            if not st.io(name, write):
                err("dd: %s: Input/output error" % target)
            # The bytes go to (come from) the storage behind the active path.
            g = st.s["geoms"][name]
            data = st.datafile(st.prov_md(g["active"]))
            args = [a if not a.startswith(key + "=") else key + "=" + data for a in args]
            if write:
                args.append("conv=notrunc")
            st.save()
            os.execvp("/bin/dd", ["dd"] + args)
    st.save()
    os.execvp("/bin/dd", ["dd"] + args)


COMMANDS = {"kldunload": cmd_kldunload, "sha256": cmd_sha256,
            "freebsd-version": cmd_freebsd_version, "mdconfig": cmd_mdconfig, "gnop": cmd_gnop, "gmultipath": cmd_gmultipath,
            "kldstat": cmd_kldstat, "kldload": cmd_kldload, "geom": cmd_geom,
            "sysctl": cmd_sysctl, "diskinfo": cmd_diskinfo, "dmesg": cmd_dmesg,
            "dtrace": cmd_dtrace, "dd": cmd_dd}


def main():
    name = os.path.basename(sys.argv[0])
    if name == "fakebsd.py":
        name, args = sys.argv[1], sys.argv[2:]
    else:
        args = sys.argv[1:]
    st = State()
    try:
        rc = COMMANDS[name](st, args)
    except SystemExit as e:
        st.save()
        raise e
    st.save()
    return rc


if __name__ == "__main__":
    sys.exit(main())
