"""hdm.files: atomic writes, temporary files that say whose they are, and what a full disk leaves."""
import json
import os
import signal
import subprocess
import sys
import tempfile

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hdm.files import HOST, NAME_MAX, TEMPORARY, atomic_write, temporary_name
from tests.helpers import ROOT

SETTINGS = settings(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
# file names as a folder can hold them: 1 to NAME_MAX bytes, any but '/' and NUL, not '.' or '..'
NAMES = st.binary(min_size=1, max_size=NAME_MAX).map(lambda b: b.replace(b"/", b"_").replace(b"\0", b"_")) \
    .filter(lambda b: b not in (b".", b"..")).map(os.fsdecode)


def pid_max():
    with open("/proc/sys/kernel/pid_max") as f:
        return int(f.read())


def temporaries(folder):
    return sorted(n for n in os.listdir(folder) if n.endswith(".tmp"))


@SETTINGS
@given(name=NAMES, data=st.binary(max_size=300))
@example(name="n" * NAME_MAX, data=b"longest")
@example(name="\u00e9" * (NAME_MAX // 2), data=b"")  # cut inside a two-byte character
def test_any_file_name_is_written_whole_and_its_temporary_says_whose(name, data):
    with tempfile.TemporaryDirectory() as folder:
        temp = temporary_name(os.path.join(folder, name))
        match = TEMPORARY.fullmatch(temp)
        assert match and match["host"] == HOST and int(match["pid"]) == os.getpid()
        assert len(os.fsencode(temp)) <= NAME_MAX
        with atomic_write(os.path.join(folder, name)) as f:
            f.write(data)
            assert len(temporaries(folder)) == 1  # the write goes to its temporary file
        assert os.listdir(folder) == [name]
        with open(os.path.join(folder, name), "rb") as f:
            assert f.read() == data


@SETTINGS
@given(targets=st.lists(NAMES.filter(lambda n: len(os.fsencode(n)) < 150), min_size=1, max_size=6),
       kinds=st.lists(st.sampled_from(["dead", "alive", "other host", "not ours", "another tool's", "a link", "a folder"]),
                      min_size=1, max_size=6),
       offset=st.integers(1, 10**6))
def test_a_first_write_into_a_folder_removes_the_temporaries_of_gone_processes_only(targets, kinds, offset):
    """Temporary files of processes that are gone on this host (ids above pid_max: no process has them)
    are removed; those of live processes, of other hosts, and files that only look alike stay."""
    dead = pid_max() + offset
    ours = {"dead", "a link", "a folder"}  # named as ours, by a dead process
    names = {"alive": lambda t, i: f".{t}.{os.getpid() if i % 2 else 1}@{HOST}.0123abcd.hdm.tmp",
             "other host": lambda t, i: f".{t}.{dead + i}@{HOST}x.0123abcd.hdm.tmp",
             "not ours": lambda t, i: f".{t}.{dead + i}@{HOST}.0123abc.hdm.tmp",
             "another tool's": lambda t, i: f".{t}.{dead + i}@{HOST}.0123abcd.tmp"}
    with tempfile.TemporaryDirectory() as folder:
        made = {}
        for i, (target, kind) in enumerate(zip(targets, kinds)):
            name = f".{target}.{dead + i}@{HOST}.0123abcd.hdm.tmp" if kind in ours else names[kind](target, i)
            path = os.path.join(folder, name)
            if kind == "a link":
                os.symlink(os.path.join(folder, "new.png"), path)
            elif kind == "a folder":
                os.mkdir(path)
            else:
                open(path, "wb").close()
            made[name] = kind
        with atomic_write(os.path.join(folder, "new.png")) as f:
            f.write(b"x")
        assert sorted(os.listdir(folder)) == sorted(["new.png"] + [n for n, k in made.items() if k != "dead"])


def test_a_write_killed_with_sigkill_is_cleaned_up_by_a_later_write(tmp_path):
    """A real process killed inside atomic_write leaves its temporary file and the previous version of the
    target; the next process that writes into the folder removes the temporary file."""
    (tmp_path / "a.png").write_bytes(b"previous")
    code = ("import sys; from hdm.files import atomic_write\n"
            f"with atomic_write({str(tmp_path / 'a.png')!r}) as f:\n"
            "    f.write(b'partial'); f.flush(); print('inside', flush=True); sys.stdin.read()\n")
    writer = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    assert writer.stdout.readline() == "inside\n"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    writer.stdin.close()
    writer.stdout.close()
    left = temporaries(tmp_path)
    assert len(left) == 1 and TEMPORARY.fullmatch(left[0])["pid"] == str(writer.pid)
    assert (tmp_path / "a.png").read_bytes() == b"previous"
    later = subprocess.run([sys.executable, "-c", "import sys; from hdm.files import atomic_write\n"
                            f"with atomic_write({str(tmp_path / 'b.png')!r}) as f: f.write(b'b')"], cwd=ROOT)
    assert later.returncode == 0
    assert sorted(os.listdir(tmp_path)) == ["a.png", "b.png"]


FULL_DISK = """
import json, os, random, resource, signal, sys
from hdm.files import atomic_write
limit, folder, seed = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
rng, results = random.Random(seed), []
for i in range(40):
    size, text = rng.randrange(2 * limit), rng.random() < 0.5
    name = os.path.join(folder, f"f{i}" + ("\\nline.txt" if i % 7 == 0 else ".bin"))
    try:
        with atomic_write(name, "w" if text else "wb") as f:
            f.write("x" * size if text else bytes(size))
        results.append([name, size, None])
    except OSError as err:
        results.append([name, size, str(err)])
print(json.dumps(results))
"""


def test_a_full_disk_names_the_file_and_leaves_nothing_partial(tmp_path):
    """Files beyond RLIMIT_FSIZE (writes fail with EFBIG, as on a full disk) fail with one line naming the
    file, and leave no file and no temporary file; the others are written whole."""
    limit = 5000
    result = subprocess.run([sys.executable, "-c", FULL_DISK, str(limit), str(tmp_path), "7"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    results = json.loads(result.stdout)
    assert {error is None for _, _, error in results} == {True, False}
    for name, size, error in results:
        shown = os.path.basename(name).replace("\n", "\\n")
        if size <= limit:
            assert error is None and os.path.getsize(name) == size
        else:
            assert error is not None and "\n" not in error and shown in error and "File too large" in error, error
            assert not os.path.exists(name)
    assert temporaries(tmp_path) == []


def _fifo(path):
    os.mkfifo(path)
    return path


NOT_REGULAR = {"a named pipe (FIFO)": _fifo, "a character device": lambda p: os.symlink(os.devnull, p) or p,
               "a folder": lambda p: os.mkdir(p) or p}


@pytest.fixture
def no_hang():
    """A read that blocks fails the test after 20 s instead of hanging the suite."""
    def alarm(*_):
        raise TimeoutError("blocked reading a file that is not a regular file")
    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("kind", sorted(NOT_REGULAR))
@pytest.mark.parametrize("reader,ext", [
    ("hdm.image_io:read_image", ".png"), ("hdm.image_io:image_header", ".jpg"), ("hdm.config:read_yaml", ".yaml"),
    ("hdm.checkpoint:load_checkpoint", ".pth"), ("hdm.identity:content_digest", ".png"),
    ("hdm.deploy.onnx_model:OnnxModel", ".onnx"), ("hdm.deploy.description:read_description", ".onnx"),
    ("hdm.run_folder:stored_config", ""), ("hdm.losses.vgg:resolve_weights", ".pth")])
def test_every_reader_refuses_what_is_not_a_regular_file_by_name_without_blocking(tmp_path, no_hang, kind, reader, ext):
    import importlib

    module, name = reader.split(":")
    function = getattr(importlib.import_module(module), name)
    if name == "stored_config":  # reads <run>/config.yaml
        target, args = NOT_REGULAR[kind](str(tmp_path / "config.yaml")), (str(tmp_path),)
    elif name == "read_description":  # reads the .json beside the .onnx
        target, args = NOT_REGULAR[kind](str(tmp_path / "m.json")), (str(tmp_path / "m.onnx"),)
    elif name == "resolve_weights":
        target = NOT_REGULAR[kind](str(tmp_path / f"vgg{ext}"))
        args = ("vgg19", target)
    else:
        target = NOT_REGULAR[kind](str(tmp_path / f"x{ext}"))
        args = (target,)
    with pytest.raises(Exception) as caught:  # each reader's own error type (OSError, ConfigError, ...)
        function(*args)
    message = str(caught.value)
    assert "\n" not in message and os.path.basename(target) in message, message
    assert kind in message or "no such" in message, message  # what it is, or (isfile checks) not a file


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_files_are_written_with_the_users_umask(tmp_path, umask):
    """A results file a lab shares is readable as the umask says (never 0600 whatever the umask)."""
    import torch

    from hdm.checkpoint import atomic_save
    from hdm.image_io import write_image
    old = os.umask(umask)
    try:
        with atomic_write(tmp_path / "a.json", "w") as f:
            f.write("{}")
        atomic_save({"model": {}}, tmp_path / "w.pth")
        write_image(tmp_path / "i.png", torch.zeros(4, 4, 3).numpy())
    finally:
        os.umask(old)
    for name in ("a.json", "w.pth", "i.png"):
        assert os.stat(tmp_path / name).st_mode & 0o777 == 0o666 & ~umask, name
