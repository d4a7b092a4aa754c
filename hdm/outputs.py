"""Where the tools put what they write, by one rule: an output never replaces an input, never shares
a name with another output of the same call (compared as a case-insensitive filesystem compares
names, hdm.identity.name_key), and never silently replaces an earlier result: an existing result is
replaced only with --overwrite, and a default results folder that already holds results gives way to a
new one (`<folder>_2`, `_3`, ...). No torch here: hdm-predict --onnx uses it too.
"""
import contextlib
import datetime
import os

from hdm.errors import RunFolderError, UsageError, shown
from hdm.files import NAME_MAX, made_folder
from hdm.identity import contains, name_key, path_key
from hdm.image_io import ensure_writable
from hdm.locks import FolderLock

# the files a results folder of test.py or hdm-evaluate holds (results_folder decides by them)
RESULT_FILES = ("per_image.csv", "summary.md", "meta.json", "comparison.png", "images")


def model_inputs(pairs):
    """The files that make models, which a tool's outputs never replace: for each (config, weights) pair,
    the config, the base config it names, and the weights."""
    from hdm.config import config_files  # only when a config is given: the ONNX route has none

    return [f for config, weights in pairs for f in [*(config_files(config) if config else []), weights] if f]


def unique_stems(paths):
    """{path: output stem}: the file's stem, or `<stem>_<ext>` when two inputs share a stem (a.png and
    a.jpg), with `_2`, `_3`, ... until no two stems are equal by name_key (a.png and A.PNG)."""
    stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    counts = {}
    for stem in stems:
        counts[name_key(stem)] = counts.get(name_key(stem), 0) + 1
    taken, out = set(), {}
    for path, stem in zip(paths, stems):
        base = stem if counts[name_key(stem)] == 1 else f"{stem}_{os.path.splitext(path)[1].lstrip('.').lower()}"
        candidate, n = base, 1
        while name_key(candidate) in taken:
            n += 1
            candidate = f"{base}_{n}"
        taken.add(name_key(candidate))
        out[path] = candidate
    return out


def plan_outputs(inputs, folder, extras=(), ext=".png"):
    """{input: {"": main output path, extra: path, ...}} for every input: the main output is
    `<unique stem><ext>`; each extra (e.g. a map) is `<stem>_<extra><ext>`, followed by `_2`, `_3`, ...
    when that name is another output's. Returns (plan, notes): notes say which extras were renamed."""
    stems = unique_stems(inputs)
    taken = {name_key(stem + ext) for stem in stems.values()}
    plan, notes = {}, []
    for path in inputs:
        names = {"": stems[path] + ext}
        for extra in extras:
            wanted = name = f"{stems[path]}_{extra}{ext}"
            n = 1
            while name_key(name) in taken:
                n += 1
                name = f"{stems[path]}_{extra}_{n}{ext}"
            if name != wanted:
                notes.append(f"note: the {extra} of {shown(path)} is written as {shown(name)} ({shown(wanted)} is "
                             f"another output's name)")
            taken.add(name_key(name))
            names[extra] = name
        plan[path] = {key: os.path.join(folder, name) for key, name in names.items()}
    return plan, notes


def check_writable_outputs(outputs, inputs=(), overwrite=False):
    """UsageError when an output's name is longer than a file name may be, when it would replace an input
    (always refused), or is an existing file and not `overwrite`. `outputs`, `inputs`: paths."""
    sources = {path_key(p) for p in inputs}
    existing = []
    for out in outputs:
        size = len(os.fsencode(os.path.basename(out)))
        if size > NAME_MAX:
            raise UsageError(f"{shown(out)}: an output name of {size} bytes, more than the {NAME_MAX} a file name may "
                             f"have; rename the input")
        if path_key(out) in sources:
            raise UsageError(f"{shown(out)}: an output would replace an input; write to another folder")
        if os.path.lexists(out):
            existing.append(out)
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more outputs)" if len(existing) > 1 else ""
        raise UsageError(f"{shown(existing[0])}: exists{more}; give --overwrite to replace, or write to another folder")


def holds_results(folder):
    return any(os.path.lexists(os.path.join(folder, name)) for name in RESULT_FILES)


@contextlib.contextmanager
def claimed_results(explicit, default, overwrite=False, inputs=()):
    """Yields (folder, where earlier results went or None): the folder a tool writes its results into,
    created, writable and claimed for the block (hdm.locks.FolderLock: a second process never writes
    into it at the same time). `explicit` (--out) when given: when it holds results they are refused
    (UsageError) unless `overwrite`, which moves them aside to `<folder>.old-<time>/` (nothing is
    deleted, and nothing of an earlier result mixes with the new one); a live process's folder is
    refused; when the block fails, they are put back. Without --out, `default`, or `default_2`,
    `default_3`, ... when it holds results or another process has claimed it. The results folder and
    the folders of `inputs` (what the tool reads) are apart: neither lies in the other (UsageError), so
    a result never replaces, moves or mixes with an input."""
    check_apart(explicit if explicit is not None else default, inputs, "--out")
    if explicit is not None:
        with _claimed(explicit, "wait for it or choose another --out"):
            moved = None
            if holds_results(explicit):
                if not overwrite:
                    raise UsageError(f"{shown(explicit)}: holds results already; give --overwrite to move them "
                                     f"aside, or another --out")
                moved = set_aside(explicit)
            try:
                yield explicit, moved
            except BaseException:
                if moved is not None:
                    put_back(moved, explicit)
                raise
        return
    with contextlib.ExitStack() as stack:
        n = 1
        while True:
            folder = default if n == 1 else f"{default}_{n}"
            n += 1
            taken = os.path.lexists(folder) and not os.path.isdir(folder)  # a file of that name
            if taken or holds_results(folder) or FolderLock(folder).holder() is not None:
                continue
            try:
                stack.enter_context(_claimed(folder))
            except RunFolderError:  # claimed by another process meanwhile
                continue
            break
        yield folder, None


def check_folder(folder, option):
    """UsageError when `folder`, or the nearest of its parents that exists, is not a folder (a file, a
    dangling link): the outputs could not be written there."""
    head = os.path.abspath(folder)
    while not os.path.lexists(head):
        head = os.path.dirname(head)
    if not os.path.isdir(head):
        raise UsageError(f"{option} {shown(folder)}: {shown(head)} is not a folder; expected a folder to write into")


def check_apart(folder, inputs, option):
    """UsageError when the output folder and an input (a folder read, or a file: images, configs, weights)
    lie in one another: outputs would then be read as inputs, or moved aside with them."""
    clash = next((p for p in inputs if contains(folder, p) or contains(p, folder)), None)
    if clash is not None:
        raise UsageError(f"{shown(folder)}: the outputs would lie among the inputs ({shown(clash)}); choose "
                         f"another {option}")


@contextlib.contextmanager
def _claimed(folder, hint="wait for it"):
    """The folder created (UsageError when it cannot be written) and locked (RunFolderError when a live
    process holds it) for the block; the folders this claim created (the folder and its parents) are
    removed again when the block fails before writing anything into them (hdm.files.made_folder)."""
    with made_folder(folder):
        try:
            ensure_writable(folder)
        except OSError as err:
            raise UsageError(str(err)) from err
        with FolderLock(folder, hint):
            yield


def results_line(folder, moved=None):
    """The line a tool ends with: its results folder, the result files in it, and where --overwrite moved
    the earlier results (said only once the new ones are written: a failed call puts them back)."""
    written = [name for name in RESULT_FILES if os.path.lexists(os.path.join(folder, name))]
    return f"results: {shown(folder)} ({', '.join(written)})" + \
        (f"; the earlier results there were moved to {shown(moved)}" if moved else "")


def set_aside(folder):
    """Move the result files of `folder` (RESULT_FILES) into a new `<folder>.old-<time>` beside it."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    target, n = f"{folder.rstrip(os.sep)}.old-{stamp}", 1
    while os.path.lexists(target):
        n += 1
        target = f"{folder.rstrip(os.sep)}.old-{stamp}-{n}"
    os.makedirs(target)
    for name in RESULT_FILES:
        if os.path.lexists(os.path.join(folder, name)):
            os.replace(os.path.join(folder, name), os.path.join(target, name))
    return target


def put_back(moved, folder):
    """Undo set_aside after a failure: the earlier results return from `moved` into `folder` when the failed
    call left no result file there (else they stay in `moved`, which the tool named)."""
    if holds_results(folder):
        return
    for name in os.listdir(moved):
        os.replace(os.path.join(moved, name), os.path.join(folder, name))
    os.rmdir(moved)
