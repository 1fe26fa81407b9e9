#!/usr/bin/env python3
"""Thin client of mpsim-serve, for the VM harness's dry run on Linux.

The dry run (run-atf.sh, run-guest.sh) puts wrappers named after FreeBSD
commands on PATH: gmultipath, geom, mdconfig, gnop, diskinfo, dd, sysctl,
kldload, kldunload, kldstat, dmesg, dtrace. Each runs this script, which
sends the command line to the mpsim-serve process at $MPSIM_SOCK and prints
its answer: the simulated GEOM running the multipath core decides every
result. Nothing about gmultipath is modelled here.

Two commands never reach the simulator because they are about the host's
files, not about GEOM: sha256 (of a file) and freebsd-version.

Usage: bsdsim.py COMMAND [ARGS...]
"""

import json
import os
import socket
import sys


def local(name, args):
    """Host-only commands; None when NAME is not one of them."""
    if name == "sha256":
        import hashlib
        with open(args[-1], "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        print(digest if "-q" in args else "SHA256 (%s) = %s" % (args[-1], digest))
        return 0
    if name == "freebsd-version":
        print("simulated (mpsim-serve)")
        return 0
    return None


def main():
    name, args = sys.argv[1], sys.argv[2:]
    rc = local(name, args)
    if rc is not None:
        return rc
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(os.environ["MPSIM_SOCK"])
    except (KeyError, OSError) as e:
        sys.stderr.write("%s: mpsim-serve is not reachable (MPSIM_SOCK): %s\n" % (name, e))
        return 1
    s.sendall((json.dumps({"argv": [name] + args, "cwd": os.getcwd()}) + "\n").encode())
    chunks = []
    while True:
        b = s.recv(65536)
        if not b:
            break
        chunks.append(b)
    s.close()
    try:
        r = json.loads(b"".join(chunks))
    except ValueError:
        sys.stderr.write("%s: no answer from mpsim-serve\n" % name)
        return 1
    sys.stdout.write(r["out"])
    sys.stderr.write(r["err"])
    return r["rc"]


if __name__ == "__main__":
    sys.exit(main())
