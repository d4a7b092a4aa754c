"""Identity: the one place that decides whether two paths are the same file or folder, whether two
names would be one file on some filesystem, and whether two sets of images share content.

Paths are compared by what they are, not how they are written: `./data`, `data//`, an absolute path,
a symlink and a hard link to one file are the same (device and inode when the path exists, the
resolved path otherwise). Images are compared by content: a byte-identical copy in another folder is
the same image. Names are compared as a case-insensitive filesystem (macOS, Windows) would: `a.png`
and `A.PNG` are one output.
"""
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


SAMPLE = 4096  # bytes read from the middle of an input for the fingerprint


def set_fingerprint(samples):
    """A digest of an image set's identity that survives moving its folders: the names and byte sizes of
    every file of every sample, in order, the content of every target (the second file of a sample; the
    first when there is none) and SAMPLE bytes from the middle of every other file (two inputs of one
    size swapped, or an input replaced, change it; reading every input whole would cost minutes on OTS).
    Two sets with equal fingerprints read the same images."""
    digest = hashlib.sha256()
    for sample in samples:
        target = sample[1] if len(sample) > 1 and sample[1] else sample[0]
        for path in dict.fromkeys(f for f in sample if f):
            size = os.stat(path).st_size
            digest.update(f"{os.path.basename(os.fsdecode(path))}\0{size}\0".encode("utf-8", "surrogateescape"))
            if path != target:
                with open_input(path) as f:
                    f.seek(max(0, size // 2 - SAMPLE // 2))
                    digest.update(f.read(SAMPLE))
        digest.update(content_digest(target).encode())
    return digest.hexdigest()[:32]
