"""The one way this project writes a file: to a temporary file beside it, flushed and fsynced, then
renamed over the target, so a reader never sees a partial file and a failure (a full disk, a kill)
leaves the previous version. A failed write removes its temporary file and names the target."""
import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_write(path, mode="wb", durable=False):
    """Context manager yielding an open file; on a clean exit it replaces `path`. durable: also fsync
    the folder, so the rename itself survives a power cut (checkpoints)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp_", suffix=os.path.splitext(path)[1], dir=folder)
    except OSError as err:
        raise OSError(f"{path}: cannot write here ({err.strerror or err})") from err
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"newline": "", "encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(err, OSError):
            raise OSError(f"{path}: could not be written ({err.strerror or err}); nothing partial was left") from err
        raise
    if durable:
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
