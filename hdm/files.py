"""The one way this project writes a file: to a temporary file beside it, flushed and fsynced, then
renamed over the target, so a reader never sees a partial file and a failure (a full disk, a kill)
leaves the previous version. A failed write removes its temporary file and names the target.

Temporary files are named `.<target>.<pid>@<host>.<token>.tmp`, so that whoever writes into the folder
later can tell whose they are: the first write of a process into a folder removes those left there by
processes of this host that are gone (killed with SIGKILL, or on a power cut, before they could clean up).
A process that is alive keeps its own, whichever it is.
"""
import contextlib
import os
import re
import secrets
import socket

from hdm.errors import shown

HOST = re.sub(r"[^\w.-]", "_", socket.gethostname()) or "host"
TEMPORARY = re.compile(r"\.(?P<target>.*)\.(?P<pid>[0-9]+)@(?P<host>[\w.-]+)\.[0-9a-f]{8}\.tmp", re.DOTALL)
NAME_MAX = 255  # bytes in a file name (Linux, macOS)
_swept = set()  # folders this process has cleaned of stale temporary files


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
    """The name of a new temporary file for `path`: `.<target>.<pid>@<host>.<token>.tmp`, the target's
    name shortened when the whole would exceed NAME_MAX bytes."""
    suffix = f".{os.getpid()}@{HOST}.{secrets.token_hex(4)}.tmp"
    target = os.fsencode(os.path.basename(path))[: NAME_MAX - 1 - len(suffix.encode())]
    return "." + os.fsdecode(target) + suffix


def remove_stale_temporaries(folder):
    """Remove the temporary files in `folder` whose process is gone on this host; returns their names.
    Housekeeping only: what cannot be listed or removed (another user's file, a folder) is left."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    removed = []
    for name in names:
        match = TEMPORARY.fullmatch(name)
        if match and match["host"] == HOST and not process_alive(int(match["pid"])):
            with contextlib.suppress(OSError):
                os.remove(os.path.join(folder, name))
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
