"""A stdio server's room: what a process the supervisor starts cannot reach (docs/mcp.md, "What a server can
reach").

- The processes holding the proxy's secrets (the Gunicorn master, its workers, the supervisor) are undumpable
  (PR_SET_DUMPABLE 0): a process of the same user cannot read their /proc/PID/environ, mem, maps or fd.
- The supervisor's socket answers only the process that started it and that process's children (the workers):
  a server, a process of the same user, could otherwise call any server in any session (SO_PEERCRED).
- A server's process, between fork and exec, sets no_new_privs and gives up every capability (a proxy running as
  root: without CAP_SYS_PTRACE, root too is refused an undumpable process), then enters a Landlock domain: it can
  reach no process outside it (Landlock's ptrace scope, which holds for root as well), nor read or write the files
  the proxy's secrets are in.

Landlock grants, it never denies: a file is held by granting everything beside it. Each directory above a held
path grants its entries but the ones leading to a held path, as they are when the supervisor starts, so a file
made later directly in such a directory is out of reach too. Every filesystem right the kernel's ABI has is
handled: a server reads (and runs, and lists) what is granted, and changes files and directories only in the
places it writes (its HOME and TMPDIR, the directories its entry names); never a directory above a held path,
so it can neither move nor replace a held file. Of /dev it reaches the devices a program uses (DEVICES), never a
disk. Syscalls through libc (ctypes): Linux only."""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import os
import socket
import stat
import struct
import sys
from typing import Any, Iterable

_libc: Any = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None

PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
CAPABILITY_VERSION_3 = 0x20080522
# Landlock's syscalls have the same numbers on every architecture (added after the tables were unified).
CREATE_RULESET, ADD_RULE, RESTRICT_SELF = 444, 445, 446
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH = 1
# Landlock's filesystem rights (ABI 1: bits 0-12; REFER: ABI 2; TRUNCATE: ABI 3; IOCTL_DEV: ABI 5).
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR, REMOVE_DIR, REMOVE_FILE = (1 << bit for bit in range(6))
MAKE_CHAR, MAKE_DIR, MAKE_REG, MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = (1 << bit for bit in range(6, 13))
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
FS_RIGHTS = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1, 5: (1 << 16) - 1}  # by ABI
ON_FILES = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV  # a rule on a file may grant only these
READS = EXECUTE | READ_FILE | READ_DIR | IOCTL_DEV
DEVICE_RIGHTS = READS | WRITE_FILE | TRUNCATE  # /dev/null, a terminal: written, never made or removed
WRITES = (1 << 16) - 1  # every right: where the server writes
CHANGES = WRITES & ~READS  # what a server's own layer handles (Room.of)
# The devices a program uses, and no other: a disk read whole would hold every file (root owns it, and reads
# it without a capability). /proc is read only: root could write /proc/sys, or the master's oom_score_adj.
DEV = "/dev"
DEVICES = {**{os.path.join(DEV, name): DEVICE_RIGHTS for name in ("null", "zero", "full", "random", "urandom", "tty",
                                                                   "ptmx", "pts")},
           "/dev/shm": WRITES, "/proc": READS}
SCOPED = 1 | 2  # ABI 6: no abstract Unix socket outside the domain, no signal to a process outside it
MAX_GRANTS = 20_000  # entries of the directories above held paths; past it the rest stay out of reach


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1  # struct landlock_path_beneath_attr is packed
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _prctl(option: int, value: int) -> int:
    return int(_libc.prctl(ctypes.c_int(option), ctypes.c_ulong(value), ctypes.c_ulong(0), ctypes.c_ulong(0),
                           ctypes.c_ulong(0)))


def _syscall(number: int, *args: Any) -> int:
    return int(_libc.syscall(ctypes.c_long(number), *args))


def undumpable() -> bool:
    """This process's memory, environment and descriptors out of reach of other processes of its user. Kept by a
    fork (Gunicorn's workers), undone by an exec (the supervisor sets it again)."""
    return _libc is not None and _prctl(PR_SET_DUMPABLE, 0) == 0


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 without it (an older kernel, Landlock off at boot, not Linux)."""
    if _libc is None:
        return 0
    return max(_syscall(CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(CREATE_RULESET_VERSION)), 0)


@dataclasses.dataclass(frozen=True)
class Room:
    """The Landlock ruleset a server's process enters (its descriptor, kept open for every start), or None;
    `missing`: what is not held, said once at start ("" when everything is). `own`: one server's second layer
    (`of`), where it alone changes files; what is held and read, and the rights handled, to build it from."""

    ruleset: int | None
    missing: str = ""
    held: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()
    handled: int = 0
    own: int | None = None

    def of(self, writes: Iterable[str]) -> Room:
        """This room, narrowed for one server to the places it changes files in (the first layer lets every
        server of the supervisor change them in all). Its caller closes it once the server has started."""
        if self.ruleset is None:
            return self
        own = _ruleset(self.handled & CHANGES, 0)
        if own < 0:
            raise OSError(ctypes.get_errno(), "landlock_create_ruleset")
        for path, rights in places(list(self.held), list(self.reads), list(writes)):
            if rights & CHANGES:
                _grant(own, path, rights & self.handled & CHANGES)
        return dataclasses.replace(self, own=own)

    def close(self) -> None:
        if self.own is not None:
            os.close(self.own)

    def enter(self) -> None:
        """In the server's process, before its command runs (Popen's preexec_fn): only syscalls. A step that fails
        raises, and the server does not start."""
        if _libc is None:
            return
        if _prctl(PR_SET_NO_NEW_PRIVS, 1) != 0:
            raise OSError(ctypes.get_errno(), "no_new_privs")
        _drop_capabilities()
        for ruleset in (self.ruleset, self.own):  # a second layer only narrows the first
            if ruleset is not None and _syscall(RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)):
                raise OSError(ctypes.get_errno(), "landlock_restrict_self")


def _drop_capabilities() -> None:
    """The bounding set emptied (so no exec gives any back, root's included), then every capability set."""
    for cap in range(64):
        if _prctl(PR_CAPBSET_DROP, cap) != 0:
            if ctypes.get_errno() == errno.EINVAL:
                break  # past the kernel's last capability
            if os.geteuid() == 0:
                raise OSError(ctypes.get_errno(), "PR_CAPBSET_DROP")
    if _libc.capset(ctypes.byref(_CapHeader(CAPABILITY_VERSION_3, 0)), (_CapData * 2)()) != 0:
        raise OSError(ctypes.get_errno(), "capset")


def build(held: Iterable[str], writes: Iterable[str] = ()) -> Room:
    """The room for this supervisor's servers: the files and directories `held` out of their reach, the directories
    in `writes` (but what is held in them) theirs to change, everything else read only."""
    if _libc is None:
        return Room(None, "not Linux: a server can read the proxy's processes and its secret files")
    abi = landlock_abi()
    if not abi:
        return Room(None, "this kernel has no Landlock: a server can read the files the proxy's secrets are in "
                          "(.env, config.yaml, API_KEY_FILE, KEYS_DB, seal.key, the journals)")
    handled = FS_RIGHTS[min(abi, max(FS_RIGHTS))]  # a newer ABI's rights are not known here: those stay unhandled
    ruleset = _ruleset(handled, SCOPED if abi >= 6 else 0)
    if ruleset < 0:
        return Room(None, f"Landlock refused a ruleset ({os.strerror(ctypes.get_errno())}): a server can read the "
                          "files the proxy's secrets are in")
    kept = [os.path.realpath(path) for path in held if path]
    reads = readable(kept)
    for path, rights in [*((path, READS) for path in reads), *places(kept, reads, list(writes))]:
        _grant(ruleset, path, rights & handled)
    return Room(ruleset, "", tuple(kept), tuple(reads), handled)


def _ruleset(handled: int, scoped: int) -> int:
    attr = _RulesetAttr(handled, 0, scoped)
    size = ctypes.sizeof(attr) if scoped else ctypes.sizeof(ctypes.c_uint64)  # an older kernel knows one field
    return _syscall(CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))


def readable(held: Iterable[str]) -> list[str]:
    """The paths read whole: everything beside the held ones (granted), but /dev, whose devices are named."""
    return [path for path in granted(held)[:MAX_GRANTS] if not _beneath(os.path.realpath(path), DEV)]


def places(kept: list[str], reads: list[str], writes: list[str]) -> list[tuple[str, int]]:
    """The places written and the devices, with their rights (Landlock adds up the rules on a path and the
    directories above it); `kept`: the held paths, resolved."""
    named = [*((path, WRITES) for path in writes), *DEVICES.items()]
    return [(path, rights) for place, rights in named for path in within(kept, reads, place)]


def within(kept: list[str], reads: list[str], place: str) -> list[str]:
    """What is granted of `place`: itself, or, when a held path (`kept`, resolved) is below it, its entries that
    `reads` grants (so not the directories leading to a held path: those no right changes); nothing when it is
    held or inside one."""
    real = os.path.realpath(place)
    if any(_beneath(real, k) for k in kept):
        return []
    if not any(_beneath(k, real) for k in kept):
        return [real]
    return [path for path in reads if _beneath(os.path.realpath(path), real) and os.path.realpath(path) != real]


def _beneath(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def _grant(ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # gone meanwhile, or not ours to open: not granted, so out of reach
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            rights &= ON_FILES  # a directory's rights on a file: the rule would be refused whole
        rule = _PathBeneath(rights, fd)
        _syscall(ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(RULE_PATH_BENEATH), ctypes.byref(rule),
                 ctypes.c_uint32(0))
    finally:
        os.close(fd)


def granted(held: Iterable[str]) -> list[str]:
    """Every path granted whole: the entries of each directory above a held path, but those that are, lead to, or
    point (a symbolic link) into a held path."""
    kept = {os.path.realpath(path) for path in held if path}
    if not kept:
        return [os.sep]  # nothing held: every file, and still no process outside its own
    above = {parent for path in kept for parent in _parents(path)}
    grants = []
    for directory in sorted(above):
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            path = os.path.join(directory, name)
            real = os.path.realpath(path)
            if real not in above and not any(_beneath(real, k) for k in kept):
                grants.append(path)
    return grants


def _parents(path: str) -> list[str]:
    parents = []
    while (parent := os.path.dirname(path)) != path:
        parents.append(parent)
        path = parent
    return parents


def started_by(connection: socket.socket, starter: int) -> bool:
    """Is the process at the other end of a Unix socket `starter` or one of its children? True where the kernel
    does not say (not Linux)."""
    if not hasattr(socket, "SO_PEERCRED"):
        return True
    ucred = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid = struct.unpack("3i", ucred)[0]  # struct ucred: pid, uid, gid
    return pid == starter or parent_of(pid) == starter


def parent_of(pid: int) -> int:
    """A process's parent (0 when it is gone): /proc/PID/stat's fourth field, after the command's parenthesis."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return int(stat.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0
