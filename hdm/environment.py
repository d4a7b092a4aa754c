"""The environment variables the project reads, each parsed here and nowhere else.

Every tool checks them all when it starts (`check`, from hdm.cli.console), before any work: a bad
value is one line naming the variable and what it takes (exit code 2). Numbers are written in ASCII
digits (0-9; never another script's digits); an unset or empty variable takes its default.

| variable | takes | default |
|---|---|---|
| HDM_MAX_PIXELS | pixels, a whole number >= 1; a K, M or G suffix multiplies by 1024 each | 400,000,000 |
| HDM_MEMORY_LIMIT | bytes, a whole number >= 1; K, M, G or T (also KiB, KB, ...) multiply by 1024 each | no cap |
| HDM_CPU_BF16 | 1 (bf16 on this CPU) or 0 (fp32) | detected from the CPU |
| HDM_KEEP_FREED_MEMORY | 1 (keep freed memory for reuse) or 0 (glibc's default) | 1 |
| WORLD_SIZE | processes (torchrun sets it), a whole number >= 1 | 1 |
| RANK, LOCAL_RANK | this process's index (torchrun sets them), a whole number >= 0 | 0 |
| LOCAL_WORLD_SIZE | processes on this node (torchrun sets it), a whole number >= 1 | WORLD_SIZE |
| MASTER_ADDR, MASTER_PORT | where rank 0 listens (torchrun sets them); needed when WORLD_SIZE > 1 | - |

With WORLD_SIZE > 1, `distributed()` also checks that the variables agree (RANK below WORLD_SIZE,
LOCAL_RANK below LOCAL_WORLD_SIZE, MASTER_ADDR and a port set) before any process waits for another.
"""
import os
import re
import socket

from hdm.errors import UsageError, shown

DEFAULT_MAX_PIXELS = 400_000_000  # a 69-byte PNG can claim 65535 x 65535; 8K is 33 M
UNITS = {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4}
PIXELS = re.compile(r"([0-9]+) *([KMG]?)", re.IGNORECASE | re.ASCII)
BYTES = re.compile(r"([0-9]+) *(?:([KMGT])I?)?B?", re.IGNORECASE | re.ASCII)
WHOLE = re.compile(r"([0-9]+)()", re.ASCII)


def _whole(pattern, least):
    """A parser of whole numbers of `pattern` (digits, then an optional unit suffix), at least `least`."""
    def parse(text):
        found = pattern.fullmatch(text)
        if found is None:
            return None
        number = int(found.group(1)) * UNITS[(found.group(2) or "").upper()]
        return number if number >= least else None
    return parse


def _switch(text):
    return {"0": False, "1": True}.get(text)


# name: (parser of the stripped text: the value, or None when the text is not one; what it takes; default)
VARIABLES = {
    "HDM_MAX_PIXELS": (_whole(PIXELS, 1), "a whole number of pixels >= 1, e.g. 400000000 or 400M",
                       DEFAULT_MAX_PIXELS),
    "HDM_MEMORY_LIMIT": (_whole(BYTES, 1), "a whole number of bytes >= 1, e.g. 8589934592 or 8G", None),
    "HDM_CPU_BF16": (_switch, "1 (use bf16 on this CPU) or 0 (do not)", None),
    "HDM_KEEP_FREED_MEMORY": (_switch, "1 (keep freed memory for reuse) or 0 (do not)", True),
    "WORLD_SIZE": (_whole(WHOLE, 1), "a whole number of processes >= 1", 1),
    "RANK": (_whole(WHOLE, 0), "a whole number >= 0 (the process's rank)", 0),
    "LOCAL_RANK": (_whole(WHOLE, 0), "a whole number >= 0 (the process's rank on its node)", 0),
    "LOCAL_WORLD_SIZE": (_whole(WHOLE, 1), "a whole number of processes on this node >= 1", None),
    "MASTER_ADDR": (lambda text: text, "a host name or address", None),
    "MASTER_PORT": (lambda text: (port if 1 <= (port := _whole(WHOLE, 1)(text) or 0) <= 65535 else None),
                    "a port number, 1 to 65535", None),
}


def value(name):
    """The value environment variable `name` gives (its default when unset or empty); ValueError of one
    line naming the variable and what it takes when its text is not one."""
    parse, takes, default = VARIABLES[name]
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    parsed = parse(text)
    if parsed is None:
        raise ValueError(f"{name}='{shown(text)}': expected {takes}")
    return parsed


def distributed():
    """(rank, world size, local rank) that torchrun's variables give, checked against one another when
    there are several processes: UsageError (one line) when they cannot describe a process of a group."""
    world, rank, local = value("WORLD_SIZE"), value("RANK"), value("LOCAL_RANK")
    if world == 1:
        return 0, 1, 0
    local_world = value("LOCAL_WORLD_SIZE") or world
    problems = [f"RANK={rank} is not below WORLD_SIZE={world}" if rank >= world else None,
                f"LOCAL_RANK={local} is not below LOCAL_WORLD_SIZE={local_world}" if local >= local_world else None,
                f"LOCAL_WORLD_SIZE={local_world} is above WORLD_SIZE={world}" if local_world > world else None,
                "RANK is not set" if not os.environ.get("RANK", "").strip() else None,
                "MASTER_ADDR is not set" if value("MASTER_ADDR") is None else _unresolved(value("MASTER_ADDR")),
                "MASTER_PORT is not set" if value("MASTER_PORT") is None else None]
    problems = [p for p in problems if p]
    if problems:
        raise UsageError(f"environment: WORLD_SIZE={world} asks for a process group, but {'; '.join(problems)} "
                         f"(torchrun sets these; README: Several GPUs or nodes)")
    return rank, world, local


def _unresolved(host):
    """None when `host` resolves to an address, else what is wrong (waiting on it would hang)."""
    try:
        socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return f"MASTER_ADDR='{shown(host)}' does not resolve to an address"
    return None


def check():
    """Every variable of VARIABLES parsed: UsageError (one line) for the first bad one."""
    for name in VARIABLES:
        try:
            value(name)
        except ValueError as err:
            raise UsageError(f"environment: {err}") from None
