"""One live process per folder: `<folder>/.lock` is created exclusively and records the process (pid,
host, start). A second process is refused while the first lives; a lock left by a process that is gone
on this host is taken over. Run folders, sweep folders, results folders and hdm-predict's output folder
are all claimed this way (no torch here: hdm-predict --onnx uses it too).
"""
import datetime
import os
import socket

import yaml

from hdm.errors import RunFolderError, shown
from hdm.files import process_alive


class FolderLock:
    """`<folder>/.lock`. hint: what the refusal suggests (e.g. "use another name=...")."""

    def __init__(self, folder, hint="wait for it"):
        self.folder, self.hint = folder, hint
        self.path = os.path.join(folder, ".lock")
        self.held = False

    def acquire(self):
        """Take the lock (the folder must exist); RunFolderError when a live process holds it."""
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "since": datetime.datetime.now().isoformat(timespec="seconds")}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if self.holder() is None:
                    os.remove(self.path)  # stale: its process is gone
                    continue
                raise self.in_use() from None
            with os.fdopen(fd, "w") as f:
                yaml.safe_dump(me, f)
            self.held = True
            return self
        raise RunFolderError(f"{shown(self.path)}: could not take the lock")

    def holder(self):
        """The lock's record ({pid, host, since}) when a live process holds it (or one on another host,
        which cannot be checked from here); None when there is no lock or its process is gone."""
        if not os.path.lexists(self.path):
            return None
        other = self._read()
        pid = other.get("pid")
        if other.get("host") == socket.gethostname() and not (isinstance(pid, int) and process_alive(pid)):
            return None
        return other

    def in_use(self):
        other = self._read()
        return RunFolderError(f"{shown(self.folder)} is in use by process {other.get('pid')} on {other.get('host')} "
                              f"since {other.get('since')}; {self.hint}, or remove {shown(self.path)} if that "
                              f"process is gone")

    def _read(self):
        try:
            with open(self.path) as f:
                record = yaml.safe_load(f)
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            return {}
        return record if isinstance(record, dict) else {}

    def release(self):
        if self.held and os.path.exists(self.path):
            os.remove(self.path)
        self.held = False

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *_):
        self.release()
