"""The structure of a JPEG file without decoding it (hdm.image_format's JPEG parts): the walk over its
markers and segments, skipping entropy-coded scans and stray bytes as libjpeg does, and whether a
progressive file's scans complete every coefficient."""
import re

from hdm.errors import ImageDataError

EOI, SOS = 0xD9, 0xDA
PROGRESSIVE = (0xC2, 0xC6, 0xCA, 0xCE)  # SOF markers of progressive frames
SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7]")  # in entropy-coded data, FF is followed by 00 or a restart marker
MARKER = re.compile(rb"\xff[^\x00\xff]")
BLOCK = 1 << 16  # bytes searched at a time


def markers(read):
    """(position, marker, segment length) of each marker after SOI, in order, skipping the entropy-coded
    data after each SOS; stops after EOI or where the data end."""
    pos = 2
    while True:
        head = read(pos, 4)
        if len(head) < 2:
            return
        marker = head[1]
        if head[0] != 0xFF or marker == 0:  # stray bytes: skipped to the next marker, as libjpeg does
            pos = find(read, pos, MARKER)
            if pos is None:
                return
            continue
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == EOI or marker == 0x01 or 0xD0 <= marker <= 0xD7:  # no segment follows
            yield pos, marker, 0
            if marker == EOI:
                return
            pos += 2
            continue
        if len(head) < 4:
            return
        length = int.from_bytes(head[2:4], "big")
        if length < 2:
            raise ImageDataError(f"not a readable image (a JPEG segment at byte {pos:,} has length {length})")
        yield pos, marker, length
        pos += 2 + length
        if marker == SOS:
            pos = find(read, pos, SCAN_END)
            if pos is None:
                return


def find(read, pos, pattern):
    """Position of the first match of a two-byte `pattern` at or after `pos` (a marker after entropy-coded
    data or stray bytes), None if the data end first."""
    while True:
        block = read(pos, BLOCK)
        if len(block) < 2:
            return None
        found = pattern.search(block)
        if found:
            return pos + found.start()
        pos += len(block) - 1  # a final FF is searched again together with the byte after it


def judge_progression(read, markers):
    """ImageDataError when a progressive JPEG's scans end before every coefficient of every component is
    complete (coded to its last bit): a file cut between scans and given an end marker, which libjpeg
    decodes at a lower quality without a warning."""
    sof = next(((pos, length) for pos, marker, length in markers if marker in PROGRESSIVE), None)
    if sof is None:
        return
    frame = read(sof[0] + 4, sof[1] - 2)
    components = {frame[6 + 3 * i] for i in range(frame[5])} if len(frame) >= 6 else set()
    done = {c: set() for c in components}
    for pos, marker, length in markers:
        if marker != SOS:
            continue
        scan = read(pos + 4, length - 2)
        count = scan[0] if scan else 0
        if len(scan) < 4 + 2 * count:
            continue
        first, last, approximation = scan[1 + 2 * count], scan[2 + 2 * count], scan[3 + 2 * count]
        if approximation & 0x0F == 0:  # this scan sends the last bit of coefficients first..last
            for c in (scan[1 + 2 * i] for i in range(count)):
                done.setdefault(c, set()).update(range(first, last + 1))
    short = sorted(c for c in components if len(done[c]) < 64)
    if short:
        raise ImageDataError(f"truncated progressive JPEG (its scans end before component {short[0]} is complete: "
                             f"{64 - len(done[short[0]])} of 64 coefficients unfinished)")
