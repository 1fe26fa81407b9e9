#!/usr/bin/env python3
"""Drive a FreeBSD guest through its serial console (Python standard library only).

    console.py --log SERIAL.LOG [options] -- VM-COMMAND [ARG...]

VM-COMMAND must connect the guest's first serial port to its own standard
input and output (QEMU: -serial stdio; bhyve: -l com1,stdio). Everything the
guest prints is appended, raw, to SERIAL.LOG.

Steps:
  1. boot: if the boot loader shows its menu on the serial line, escape to
     the loader prompt and boot with boot_serial=YES and boot_multicons=YES,
     so that the kernel console (and the login getty) is on the serial line
     even on images that only enable the video console;
  2. log in as root (password from --password, empty by default), start
     /bin/sh with a prompt of our own;
  3. mount the carrier disk (FAT, label GMPRSVM) and run guest.sh from it;
  4. wait for its last marker, power the guest off, wait for the VM to exit.

Exit status: 0 the guest script ran to its end; 10 the VM command could not
start; 11 the VM stopped before the script ended; 12 no login prompt in time;
13 login failed; 14 the script did not finish in time; 15 kernel panic;
16 the firmware found nothing to boot.
The result lines themselves are judged by parse-results.sh, not here.
"""

import argparse
import os
import re
import select
import signal
import subprocess
import sys
import time

ANSI = re.compile(rb"\x1b(\[[0-9;?]*[A-Za-z]|[()][A-Za-z0-9]|[=>78DEHMc])")
LOADER_MENU = re.compile(r"Autoboot in \d+ second|Hit \[Enter\] to boot|"
                         r"Escape to loader prompt")
LOADER_OK = re.compile(r"(^|\n)OK ?$")
LOGIN = re.compile(r"login: ?$", re.M)
PASSWORD = re.compile(r"Password: ?$")
BAD_LOGIN = re.compile(r"Login incorrect")
SHELL_END = re.compile(r"[#$%>] ?$")
NOBOOT = re.compile(r"Shell> |No bootable device|Boot failed")
PANIC = re.compile(r"panic: |Fatal trap \d+")
# The prompt is assembled by the shell from two pieces, so the echo of the
# command that sets it never matches.
OUR_PROMPT = "GMPRS> "
SET_PROMPT = ('set +o emacs 2>/dev/null; set +o vi 2>/dev/null; '
              'PS1="GMP""RS> "; export PS1\r')
DONE = re.compile(r"==GMPRS-VM-DONE==")
# For selftest.sh's fake console only: no human-speed typing, short pauses.
FAST = os.environ.get("GMPRS_CONSOLE_FAST") == "1"
TYPE_DELAY = 0 if FAST else 0.005
RUN_GUEST = (
    'M=/mnt/gmprs; mkdir -p $M; '
    'for d in /dev/msdosfs/GMPRSVM /dev/vtbd[0-9] /dev/ada[0-9] /dev/da[0-9]; do '
    '[ -e "$d" ] && mount_msdosfs -o ro "$d" $M 2>/dev/null && '
    '{ ls $M | grep -qi "^guest.sh$" && break; umount $M; }; done; '
    'sh $M/[gG][uU][eE][sS][tT].[sS][hH]\r')


class VMExited(Exception):
    pass


class Timeout(Exception):
    pass


class Panic(Exception):
    pass


class LoginFailed(Exception):
    pass


class NoBoot(Exception):
    pass


class Console:
    def __init__(self, proc, log, echo):
        self.proc = proc
        self.log = log
        self.echo = echo
        self.fd = proc.stdout.fileno()
        self.text = ""     # cleaned output not yet consumed by a match

    def _pump(self, timeout):
        """Read what the guest printed within timeout seconds."""
        ready, _, _ = select.select([self.fd], [], [], max(timeout, 0))
        if not ready:
            return
        data = os.read(self.fd, 65536)
        if not data:
            raise VMExited()
        self.log.write(data)
        self.log.flush()
        if self.echo:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        clean = ANSI.sub(b"", data).replace(b"\r", b"").replace(b"\0", b"")
        self.text = (self.text + clean.decode("utf-8", "replace"))[-65536:]

    def expect(self, patterns, timeout, panic_check=True):
        """Wait for the first of patterns; return (index, match)."""
        deadline = time.monotonic() + timeout
        while True:
            if panic_check and PANIC.search(self.text):
                raise Panic()
            for i, pat in enumerate(patterns):
                m = pat.search(self.text)
                if m:
                    self.text = self.text[m.end():]
                    return i, m
            left = deadline - time.monotonic()
            if left <= 0:
                raise Timeout()
            self._pump(min(left, 1.0))

    def drain(self, seconds):
        """Keep logging output for a while (e.g. a panic's backtrace)."""
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                self._pump(deadline - time.monotonic())
        except VMExited:
            pass

    def send(self, text, delay=None):
        """Type text, one character at a time, like a person on a terminal."""
        if delay is None or FAST:
            delay = TYPE_DELAY
        for ch in text.encode():
            try:
                self.proc.stdin.write(bytes([ch]))
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError):
                raise VMExited()
            time.sleep(delay)


def say(msg):
    print("console: " + msg, file=sys.stderr, flush=True)


def boot_and_login(con, args):
    """Steps 1 and 2; return when our own shell prompt is up."""
    escaped = False
    booted_from_prompt = False
    deadline = time.monotonic() + args.boot_timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Timeout()
        idx, _ = con.expect([LOGIN, LOADER_MENU, LOADER_OK, NOBOOT], left)
        if idx == 0:
            break
        if idx == 3:
            raise NoBoot()
        if idx == 1 and args.loader_serial and not escaped:
            say("boot loader menu on the serial line: asking for a serial kernel console")
            escaped = True
            con.send("3")       # leave the menu (any key stops a bare autoboot)
        elif idx == 2 and args.loader_serial and not booted_from_prompt:
            booted_from_prompt = True
            con.send("set boot_serial=YES\r", delay=0.02)
            con.send("set boot_multicons=YES\r", delay=0.02)
            con.send("boot\r", delay=0.02)
    say("login prompt")

    con.send("root\r")
    # A password prompt, a refusal, or (most often) a shell. The shell's own
    # prompt is not recognised reliably (motd, kernel lines), so silence is
    # taken as a shell too: our prompt check below has the last word.
    try:
        idx, _ = con.expect([PASSWORD, BAD_LOGIN, SHELL_END], 30)
    except Timeout:
        idx = 2
    if idx == 0:
        con.send(args.password + "\r")
        try:
            idx, _ = con.expect([BAD_LOGIN, LOGIN, SHELL_END], 30)
        except Timeout:
            idx = 2
        if idx != 2:
            raise LoginFailed("root password refused (set ROOT_PASSWORD)")
    elif idx == 1:
        raise LoginFailed("login refused")
    say("logged in")

    prompt = re.compile(re.escape(OUR_PROMPT))
    con.send("exec /bin/sh\r")
    time.sleep(0.1 if FAST else 1)
    for _ in range(5):
        con.send(SET_PROMPT)
        try:
            con.expect([prompt], 20)
            return prompt
        except Timeout:
            con.send("\r")
    raise LoginFailed("could not set up a shell prompt")


def stop_vm(proc, con, grace):
    """Wait for the VM process to exit by itself, then make it."""
    deadline = time.monotonic() + grace
    eof = False
    while proc.poll() is None and time.monotonic() < deadline:
        if eof:
            time.sleep(0.1)     # output closed: the process is on its way out
            continue
        try:
            con._pump(0.5)
        except VMExited:
            eof = True
    if proc.poll() is None:
        say("VM still running: terminating it")
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--log", required=True)
    ap.add_argument("--boot-timeout", type=float, default=600)
    ap.add_argument("--run-timeout", type=float, default=1800)
    ap.add_argument("--password", default=os.environ.get("ROOT_PASSWORD", ""))
    ap.add_argument("--no-loader-serial", dest="loader_serial", action="store_false")
    ap.add_argument("--echo", action="store_true", help="copy the console to stdout")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        ap.error("no VM command given")

    with open(args.log, "ab") as log:
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, bufsize=0,
                                    start_new_session=True)
        except OSError as e:
            say("cannot start %s: %s" % (cmd[0], e))
            return 10
        con = Console(proc, log, args.echo)
        phase = "boot"
        try:
            prompt = boot_and_login(con, args)
            phase = "run"
            say("running guest.sh from the carrier disk")
            con.send(RUN_GUEST)
            con.expect([DONE], args.run_timeout)
            say("guest script finished")
            phase = "poweroff"
            con.expect([prompt], 60)
            con.send("shutdown -p now\r")
            stop_vm(proc, con, 180)
            return 0
        except Panic:
            say("kernel panic in the guest (see the serial log)")
            con.drain(0.5 if FAST else 5)
            stop_vm(proc, con, 0)
            return 15
        except NoBoot:
            say("the firmware found nothing to boot: is FREEBSD_IMAGE a bootable amd64 disk image?")
            stop_vm(proc, con, 0)
            return 16
        except LoginFailed as e:
            say("login failed: %s" % e)
            stop_vm(proc, con, 0)
            return 13
        except Timeout:
            stop_vm(proc, con, 0)
            if phase == "boot":
                say("no login prompt within %d s" % args.boot_timeout)
                return 12
            if phase == "run":
                say("guest script did not finish within %d s" % args.run_timeout)
                return 14
            say("no prompt after the guest script; VM stopped")
            return 0
        except VMExited:
            proc.wait()
            if phase == "poweroff":
                return 0
            say("VM exited (status %s) during %s" % (proc.returncode, phase))
            return 11
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


if __name__ == "__main__":
    sys.exit(main())
