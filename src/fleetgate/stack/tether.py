"""Run a program that the kernel stops when the process that started it dies.

``python -I -S tether.py PARENT SIGNAL USER -- PROGRAM [ARG …]``, as
:func:`fleetgate.stack.processes.tethered` builds it. In this order:

1. take USER's account (supplementary groups, group, user) unless USER is ``-``: changing
   credentials clears the parent-death signal, so this must come first (and a server that
   drops root by itself after we set it, as mosquitto does, loses it);
2. set the parent-death signal to SIGNAL (``prctl(PR_SET_PDEATHSIG)``);
3. exit with status 3 when PARENT is not our parent any more: it died before step 2, and
   nothing would ever stop us;
4. exec PROGRAM, which keeps the pid and the signal.

Standard library only, and run without site-packages: it must start fast and depend on
nothing but the interpreter. Everything is looked up before the account changes: the
interpreter's own library may not be readable by USER (a Python under /root).
"""

from __future__ import annotations

import ctypes
import os
import pwd
import shutil
import sys

PR_SET_PDEATHSIG = 1
ORPHANED = 3


def main(argv: list[str]) -> int:
    if len(argv) < 5 or argv[3] != "--":
        print("usage: tether.py PARENT SIGNAL USER|- -- PROGRAM [ARG …]", file=sys.stderr)
        return 2
    parent, death_signal, user, command = int(argv[0]), int(argv[1]), argv[2], argv[4:]
    program = shutil.which(command[0])
    if program is None:
        print(f"tether: {command[0]} not found", file=sys.stderr)
        return 127
    libc = ctypes.CDLL(None, use_errno=True)
    if user != "-":
        account = pwd.getpwnam(user)
        os.initgroups(user, account.pw_gid)
        os.setgid(account.pw_gid)
        os.setuid(account.pw_uid)
    if libc.prctl(PR_SET_PDEATHSIG, death_signal, 0, 0, 0) != 0:
        error = ctypes.get_errno()
        print(f"tether: prctl(PR_SET_PDEATHSIG): {os.strerror(error)}", file=sys.stderr)
        return 1
    if os.getppid() != parent:
        print(f"tether: process {parent} died before {command[0]} started", file=sys.stderr)
        return ORPHANED
    os.execv(program, command)  # noqa: S606 — exec is the point: same pid, no shell
    return 1  # not reached: exec replaces this process or raises


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
