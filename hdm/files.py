"""The one way this project writes a file: to a temporary file beside it, flushed and fsynced, then
renamed over the target, so a reader never sees a partial file and a failure (a full disk, a kill)
leaves the previous version. A failed write removes its temporary file and names the target.

Temporary files are named `.<target>.<pid>@<host>.<token>.hdm.tmp`, so that whoever writes into the
folder later can tell whose they are: the first write of a process into a folder removes those left there by
processes of this host that are gone (killed with SIGKILL, or on a power cut, before they could clean up).
A process that is alive keeps its own, whichever it is.
"""
import contextlib
import os
import re
import secrets
import socket
import stat

from hdm.errors import UsageError, shown

HOST = re.sub(r"[^\w.-]", "_", socket.gethostname()) or "host"
TEMPORARY = re.compile(r"\.(?P<target>.*)\.(?P<pid>[0-9]+)@(?P<host>[\w.-]+)\.[0-9a-f]{8}\.hdm\.tmp", re.DOTALL)
NAME_MAX = 255  # bytes in a file name (Linux, macOS)
_swept = set()  # folders this process has cleaned of stale temporary files


NOT_REGULAR = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def open_input(path, what="file"):
    """The one way this project opens a file it reads (an image, a config, weights, an ONNX graph and its
    description): open for binary reading, and a regular file. Anything else never blocks or streams
    without end: FileNotFoundError, IsADirectoryError or OSError, each with one line naming the path
    ("a named pipe (FIFO), expected a regular file"; "no such <what>")."""
    try:  # O_NONBLOCK: opening a FIFO would otherwise wait for a writer
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise FileNotFoundError(f"{shown(path)}: no such {what}") from None
    except OSError as err:
        raise OSError(f"{shown(path)}: cannot be read ({err.strerror or err})") from err
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = next((name for test, name in NOT_REGULAR if test(mode)), "not a regular file")
        error = IsADirectoryError if stat.S_ISDIR(mode) else OSError
        raise error(f"{shown(path)}: {kind}, expected a regular file")
    return os.fdopen(fd, "rb")


def process_alive(pid):
    """Whether a process with this id runs on this host (one of another user counts as running; on
    Windows, where signal 0 is not a probe, every process does)."""
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # no such process; an id no process can have
        return False
    except PermissionError:
        return True
    return True


def temporary_name(path):
    """The name of a new temporary file for `path`: `.<target>.<pid>@<host>.<token>.hdm.tmp`, the target's
    name shortened when the whole would exceed NAME_MAX bytes."""
    suffix = f".{os.getpid()}@{HOST}.{secrets.token_hex(4)}.hdm.tmp"
    target = os.fsencode(os.path.basename(path))[: NAME_MAX - 1 - len(suffix.encode())]
    return "." + os.fsdecode(target) + suffix


def remove_stale_temporaries(folder):
    """Remove the temporary files in `folder` whose process is gone on this host; returns their names.
    Only regular files named as this module names them go (a link, a folder or a `.tmp` of another tool
    that looks alike stays). Housekeeping only: what cannot be listed or removed is left."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    removed = []
    for name in names:
        match = TEMPORARY.fullmatch(name)
        path = os.path.join(folder, name)
        if match and match["host"] == HOST and not process_alive(int(match["pid"])):
            with contextlib.suppress(OSError):
                if stat.S_ISREG(os.lstat(path).st_mode):
                    os.remove(path)
                    removed.append(name)
    return removed


@contextlib.contextmanager
def temporary_file(path):
    """The path of a new empty temporary file beside `path` (named as the module doc says), removed when
    the block exits in any way unless it was renamed meanwhile. The first call of a process for a folder
    removes the folder's stale temporary files first."""
    path = os.fsdecode(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        if folder not in _swept:
            remove_stale_temporaries(folder)
            _swept.add(folder)
        tmp = os.path.join(folder, temporary_name(path))
        os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    except OSError as err:
        raise OSError(f"{shown(path)}: cannot write here ({err.strerror or err})") from err
    try:
        yield tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


@contextlib.contextmanager
def atomic_write(path, mode="wb", durable=False):
    """Context manager yielding an open file; on a clean exit it replaces `path`. durable: also fsync
    the folder, so the rename itself survives a power cut (checkpoints). A text mode writes UTF-8, and text
    that UTF-8 cannot hold (a file name's bytes that are not UTF-8, as surrogates) as \\udcNN, never failing."""
    path = os.fsdecode(path)
    with temporary_file(path) as tmp:
        try:
            text = {"newline": "", "encoding": "utf-8", "errors": "backslashreplace"}
            with open(tmp, mode, **({} if "b" in mode else text)) as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as err:
            reason = err.strerror or err
            raise OSError(f"{shown(path)}: could not be written ({reason}); nothing partial was left") from err
    if durable:
        dir_fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


@contextlib.contextmanager
def made_folder(path):
    """`path` created with its missing parents for the block (UsageError when it cannot be: a file where a
    folder should be, a read-only parent). The folders it created that are still empty when the block
    ends (it failed, or wrote nothing) are removed again, deepest first, so no call leaves an empty folder
    behind (what another process or the block wrote into one is kept, and so is the folder)."""
    created, head = [], os.path.abspath(path)
    while not os.path.lexists(head):
        created.append(head)
        head = os.path.dirname(head)
    try:
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as err:
            raise UsageError(f"{shown(path)}: output folder is not writable ({err.strerror or err})") from err
        yield path
    finally:
        for folder in created:
            try:
                os.rmdir(folder)
            except FileNotFoundError:  # not made before a failure
                continue
            except OSError:  # not empty: it and its parents stay
                break
