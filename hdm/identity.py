"""Identity: the one place that decides whether two paths are the same file or folder, whether two
names would be one file on some filesystem, and whether two sets of images share content.

Paths are compared by what they are, not how they are written: `./data`, `data//`, an absolute path,
a symlink and a hard link to one file are the same (device and inode when the path exists, the
resolved path otherwise). Images are compared by content: a byte-identical copy in another folder is
the same image. Names are compared as a case-insensitive filesystem (macOS, Windows) would: `a.png`
and `A.PNG` are one output.
"""
import concurrent.futures
import hashlib
import os
import unicodedata

from hdm.files import open_input

CHUNK = 1 << 20
_DIGESTS = {}  # (device, inode, size, mtime) -> SHA-256: a file is read once per state in a process


def path_key(path):
    """A key equal for two paths exactly when they name the same file or folder."""
    try:
        st = os.stat(path)
    except OSError:
        return ("path", os.path.normcase(os.path.realpath(path)))
    return ("inode", st.st_dev, st.st_ino)


def same_path(a, b):
    """Whether `a` and `b` are the same file or folder (see path_key)."""
    return path_key(a) == path_key(b)


def contains(folder, path):
    """Whether `path` is `folder` or lies inside it (both resolved: symlinks and spellings see through)."""
    folder, path = os.path.realpath(folder), os.path.realpath(path)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def name_key(name):
    """The key under which a case-insensitive, normalising filesystem stores `name`."""
    return unicodedata.normalize("NFC", os.fsdecode(name)).casefold()


def content_digest(path):
    """SHA-256 of a file's bytes (hex)."""
    with open_input(path) as f:
        st = os.fstat(f.fileno())
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        if key in _DIGESTS:
            return _DIGESTS[key]
        digest = hashlib.sha256()
        while block := f.read(CHUNK):
            digest.update(block)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


def shared_images(a, b):
    """[(path in a, path in b)] for the files of two collections that have the same content: the same
    file, or equal size and equal SHA-256. Only files whose size occurs in both are read, so two sets
    of different images cost one stat per file."""
    def by_size(paths):
        out = {}
        for path in dict.fromkeys(paths):
            out.setdefault(os.stat(path).st_size, []).append(path)
        return out

    sizes_a, sizes_b = by_size(a), by_size(b)
    shared = []
    for size in sorted(set(sizes_a) & set(sizes_b)):
        digests = {}
        for path in sizes_a[size]:
            digests.setdefault(content_digest(path), path)
        shared += [(digests[d], path) for path in sizes_b[size] if (d := content_digest(path)) in digests]
    return shared


def set_fingerprint(samples):
    """A digest of an image set's identity that survives moving its folders: the names and byte sizes of
    every file of every sample, in order, and the SHA-256 of every file's content (every byte is read
    once per process, in threads; SHA-256 itself takes 0.75 s per GiB on one core of the development
    machine, so reading the files is the larger cost on most disks). Two sets with equal fingerprints
    read the same images; an image changed in place, even at its size, changes it."""
    files = list(dict.fromkeys(f for sample in samples for f in sample if f))
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        digests = dict(zip(files, pool.map(content_digest, files)))  # hashlib releases the GIL on large reads
    digest = hashlib.sha256()
    for sample in samples:
        for path in dict.fromkeys(f for f in sample if f):
            name = os.path.basename(os.fsdecode(path))
            digest.update(f"{name}\0{os.stat(path).st_size}\0{digests[path]}\0".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:32]
