"""One live process per folder: `<folder>/.lock` is held with an exclusive advisory lock (flock) while the
process works, and records the process (pid, host, start) for messages. The operating system releases
the lock when its process ends in any way (a crash, SIGKILL, a power cut), so a lock file left behind
is simply taken by the next process: nothing is stale, and two processes can never both hold it. Run
folders, sweep folders, results folders and hdm-predict's output folder are all claimed this way (no
torch here: hdm-predict --onnx uses it too).
"""
import datetime
import fcntl
import os
import socket

import yaml

from hdm.errors import RunFolderError, shown


class FolderLock:
    """`<folder>/.lock`. hint: what the refusal suggests (e.g. "use another name=...")."""

    def __init__(self, folder, hint="wait for it"):
        self.folder, self.hint = folder, hint
        self.path = os.path.join(folder, ".lock")
        self.fd = None

    @property
    def held(self):
        return self.fd is not None

    def acquire(self):
        """Take the lock (the folder must exist); RunFolderError when another process holds it."""
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
            except OSError as err:  # a read-only or full file system, a folder that is not one
                raise RunFolderError(f"{shown(self.folder)}: cannot take its lock ({err.strerror or err})") from err
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise self.in_use() from None
            if _same_file(fd, self.path):  # not removed by a releasing holder meanwhile
                break
            os.close(fd)
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "since": datetime.datetime.now().isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.write(fd, yaml.safe_dump(record).encode())
        self.fd = fd
        return self

    def holder(self):
        """The lock's record ({pid, host, since}) while a process holds it; None when none does."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return self._read() or {"pid": "?", "host": "?", "since": "?"}
        finally:
            os.close(fd)
        return None

    def in_use(self):
        other = self._read()
        return RunFolderError(f"{shown(self.folder)} is in use by process {other.get('pid')} on {other.get('host')} "
                              f"since {other.get('since')}; {self.hint}")

    def _read(self):
        try:
            with open(self.path) as f:
                record = yaml.safe_load(f)
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            return {}
        return record if isinstance(record, dict) else {}

    def release(self):
        if self.fd is not None:
            if _same_file(self.fd, self.path):
                os.remove(self.path)  # before unlocking: a waiting process then sees another file and retries
            os.close(self.fd)
        self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *_):
        self.release()


def _same_file(fd, path):
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
