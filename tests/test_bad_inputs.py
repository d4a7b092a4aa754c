"""The catalogue of bad inputs: each works correctly or fails with one line naming the file."""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from hdm import environment
from hdm.cli import console
from hdm.data import ImageFolder, PairedFolder
from hdm.image_format import TIFF_READ
from hdm.image_io import ensure_writable, read_image, write_image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RNG = np.random.default_rng(0)
RGB = (RNG.random((40, 60, 3)) * 255).astype(np.uint8)


def test_corrupt_png(tmp_path):
    (tmp_path / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(OSError, match="x.png: not a readable image"):
        read_image(tmp_path / "x.png")


def test_truncated_png_and_jpeg(tmp_path):
    for ext in ("png", "jpg"):
        Image.fromarray(RGB).save(tmp_path / f"full.{ext}")
        data = (tmp_path / f"full.{ext}").read_bytes()
        (tmp_path / f"cut.{ext}").write_bytes(data[: len(data) // 2])
        with pytest.raises(OSError, match=f"cut.{ext}: truncated (PNG|JPEG)"):
            read_image(tmp_path / f"cut.{ext}")
        assert read_image(tmp_path / f"full.{ext}").shape == (40, 60, 3)


def test_non_image_files_in_a_folder_are_ignored(tmp_path):
    Image.fromarray(RGB).save(tmp_path / "a.png")
    (tmp_path / "readme.txt").write_text("not an image")
    (tmp_path / "Thumbs.db").write_bytes(b"\x00\x01")
    assert [os.path.basename(f) for f in ImageFolder(str(tmp_path)).files] == ["a.png"]


def test_grayscale_rgba_and_16_bit(tmp_path):
    grey = RGB[..., 0]
    Image.fromarray(grey).save(tmp_path / "g.png")
    g = read_image(tmp_path / "g.png")
    assert g.shape == (40, 60, 3) and np.allclose(g[..., 0], grey / 255) and np.allclose(g[..., 2], grey / 255)
    Image.fromarray(np.dstack([RGB, np.full((40, 60), 9, np.uint8)])).save(tmp_path / "a.png")
    assert np.allclose(read_image(tmp_path / "a.png"), RGB / 255)  # alpha dropped, colour kept
    deep = (RNG.random((10, 12, 3)) * 65535).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "d.png"), deep[..., ::-1])
    assert np.allclose(read_image(tmp_path / "d.png"), deep / 65535, atol=1e-6)  # scaled by 65535, not 255


def test_cmyk_jpeg_is_converted(tmp_path):
    Image.fromarray(RGB).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    got = read_image(tmp_path / "c.jpg")
    assert got.shape == (40, 60, 3) and np.abs(got * 255 - RGB).mean() < 4


def test_exif_orientation_is_applied_to_inputs_and_targets_alike(tmp_path):
    for sub in ("lq", "gt"):
        img = Image.fromarray(RGB)
        exif = img.getexif()
        exif[0x0112] = 6  # rotate 90 degrees clockwise on display
        (tmp_path / sub).mkdir()
        img.save(tmp_path / sub / "p.jpg", exif=exif, quality=95)
    s = PairedFolder(str(tmp_path / "lq"), str(tmp_path / "gt"))[0]
    assert s["lq"].shape == s["gt"].shape == (3, 60, 40)


def test_tiny_images_work_or_fail_clearly(tmp_path):
    from hdm.models import HDM
    write_image(tmp_path / "lq" / "t.png", RNG.random((2, 3, 3)))
    write_image(tmp_path / "gt" / "t.png", RNG.random((2, 3, 3)))
    s = PairedFolder(str(tmp_path / "lq"), str(tmp_path / "gt"))[0]
    with torch.no_grad():
        assert HDM(dim=8, groups=1, blocks_per_group=1)(s["lq"][None]).shape == (1, 3, 2, 3)
    with pytest.raises(ValueError, match="t.png: image 2x3 is smaller than the crop size 16"):
        PairedFolder(str(tmp_path / "lq"), str(tmp_path / "gt"), crop=16)[0]


def test_pair_sizes_differ_and_missing_gt_and_empty_folder(tmp_path):
    write_image(tmp_path / "lq" / "a.png", RNG.random((8, 8, 3)))
    write_image(tmp_path / "gt" / "a.png", RNG.random((8, 9, 3)))
    with pytest.raises(ValueError, match=r"lq/a.png \(8x8\) and its target .*gt/a.png \(8x9\) differ in size"):
        PairedFolder(str(tmp_path / "lq"), str(tmp_path / "gt"))[0]
    write_image(tmp_path / "lq" / "b.png", RNG.random((8, 8, 3)))
    with pytest.raises(ValueError, match="unpaired: \\['b'\\]"):
        PairedFolder(str(tmp_path / "lq"), str(tmp_path / "gt"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="found none"):
        ImageFolder(str(tmp_path / "empty"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(OSError, match="not writable"):
        ensure_writable(str(ro / "out"))


def test_unwritable_output_folder_in_predict(tmp_path):
    (tmp_path / "file").write_text("a file where a folder should be")
    with pytest.raises(OSError, match="file/out: output folder is not writable"):
        ensure_writable(str(tmp_path / "file" / "out"))
    write_image(tmp_path / "in" / "a.png", RNG.random((8, 8, 3)))
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"model": {"type": "DCP"}}))
    from hdm.cli import UsageError
    from hdm.cli.predict import main as predict
    with pytest.raises(UsageError, match="not writable"):
        predict([str(tmp_path / "in"), str(tmp_path / "file" / "out"), "-c", str(tmp_path / "c.yaml")])


def test_out_of_memory_suggests_tiling(tmp_path, monkeypatch, capsys):
    from hdm.cli import predict as predict_module
    write_image(tmp_path / "in" / "big.png", RNG.random((16, 16, 3)))
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"model": {"type": "DCP"}}))

    def no_memory(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")
    monkeypatch.setattr("hdm.inference.restore", no_memory)
    code = predict_module.main([str(tmp_path / "in"), str(tmp_path / "out"), "-c", str(tmp_path / "c.yaml")])
    assert code == 1
    err = capsys.readouterr().err
    assert "big.png: too large to restore in memory" in err and "use --tile 512" in err
    assert not (tmp_path / "out").exists()  # nothing partial, and no empty folder


def _bad_file_run(tmp_path, damage):
    for i in range(4):
        write_image(tmp_path / "lq" / f"{i}.png", RNG.random((40, 40, 3)))
        write_image(tmp_path / "gt" / f"{i}.png", RNG.random((40, 40, 3)))
    damage(tmp_path / "lq" / "3.png")
    cfg = {"name": "bad", "work_dir": str(tmp_path / "runs"),
           "model": {"type": "HDM", "dim": 8, "groups": 1, "blocks_per_group": 1},
           "data": {"train": {"type": "PairedFolder", "lq_dir": str(tmp_path / "lq"), "gt_dir": str(tmp_path / "gt"),
                              "crop": 32}},
           "train": {"iterations": 10, "batch_size": 1}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    return subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), "-c", str(tmp_path / "bad.yaml")],
                          capture_output=True, text=True)


def test_a_bad_file_is_found_before_work(tmp_path):
    proc = _bad_file_run(tmp_path, lambda p: p.write_bytes(b"broken"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [f"data error: data.train: {tmp_path / 'lq' / '3.png'}: not a readable "
                                                f"image (its bytes are not PNG, JPEG, BMP, TIFF or WebP)"]
    assert not (tmp_path / "runs").exists()  # nothing written


def test_a_bad_file_mid_epoch_stops_training_with_one_line(tmp_path):
    def corrupt_pixels(path):  # header and end intact, so only decoding finds it
        data = bytearray(path.read_bytes())
        start = data.index(b"IDAT") + 8
        data[start:start + 200] = bytes(200)
        path.write_bytes(bytes(data))
    proc = _bad_file_run(tmp_path, corrupt_pixels)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("training stopped: ")
    assert "3.png: not a readable image" in proc.stderr and "Traceback" not in proc.stderr


def test_a_tiff_of_samples_no_rule_converts_is_found_before_work(tmp_path):
    proc = _bad_file_run(tmp_path, lambda p: p.write_bytes(cv2.imencode(".tif", RGB.astype(np.int16))[1].tobytes()))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"data error: data.train: {tmp_path / 'lq' / '3.png'}: a TIFF of int16 samples (3 a pixel, RGB), which is not "
        f"read here (it reads {TIFF_READ})"]
    assert not (tmp_path / "runs").exists()  # nothing written


# environment variables: parsed in one place (hdm.environment), checked by every tool before work

def _parsed(name, text):
    """The value of environment variable `name` set to `text`, or the ValueError's message."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv(name, text)
        try:
            return environment.value(name)
        except ValueError as err:
            return str(err)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 10 ** 12), suffix=st.sampled_from(["", "K", "m", "G", " G", "GiB", "gb", "T", "B"]),
       name=st.sampled_from(["HDM_MAX_PIXELS", "HDM_MEMORY_LIMIT"]))
def test_sizes_take_ascii_whole_numbers_at_least_one(n, suffix, name):
    got = _parsed(name, f"{n}{suffix}")
    pixels_suffix = suffix.strip().upper() in ("", "K", "M", "G")
    if n >= 1 and (name == "HDM_MEMORY_LIMIT" or pixels_suffix):
        assert got == n * 1024 ** " KMGT".index(suffix.strip()[:1].upper() or " ") if suffix.strip() != "B" else n
    else:
        assert got.startswith(f"{name}='{n}{suffix}': expected a whole number of")


@settings(max_examples=80, deadline=None)
@given(name=st.sampled_from(sorted(environment.VARIABLES)), text=st.text(min_size=1, max_size=12))
def test_any_text_is_a_value_or_one_line_naming_the_variable(name, text):
    if "\0" in text or not text.strip():
        return  # an environment cannot hold NUL; blank is unset
    got = _parsed(name, text)
    if name == "MASTER_ADDR":  # a host name or address: any text; checked when a process group is formed
        return
    digits = text.strip().rstrip("KMGTBkmgtbIi ")
    if not (digits.isascii() and digits.isdigit()):  # other scripts' digits (٤٠٠٠٠), signs, words: refused
        assert isinstance(got, str) and got.startswith(f"{name}='") and "\n" not in got and got.isprintable()


@pytest.mark.parametrize("name, text", [("HDM_MAX_PIXELS", "abc"), ("HDM_MAX_PIXELS", "٤٠٠٠٠"), ("HDM_MAX_PIXELS", "0"),
                                        ("HDM_MEMORY_LIMIT", "-1"), ("HDM_MEMORY_LIMIT", "0"), ("HDM_CPU_BF16", "yes"),
                                        ("HDM_KEEP_FREED_MEMORY", "off"), ("WORLD_SIZE", "0"), ("RANK", "-1"),
                                        ("LOCAL_RANK", "x")])
def test_every_tool_refuses_a_bad_variable_before_work(name, text, monkeypatch, capsys):
    monkeypatch.setenv(name, text)
    work = []
    with pytest.raises(SystemExit) as stop:
        console(work.append, ["--anything"])
    assert stop.value.code == 2 and not work
    assert capsys.readouterr().err.splitlines() == [f"error: environment: {name}='{text}': expected "
                                                    f"{environment.VARIABLES[name][1]}"]


def test_a_bad_variable_stops_hdm_predict_and_training_before_work(tmp_path):
    write_image(tmp_path / "in" / "a.png", RGB)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"model": {"type": "DCP"}}))
    runs = [("HDM_MAX_PIXELS", "abc", [sys.executable, "-m", "hdm.cli.predict", str(tmp_path / "in"),
                                       str(tmp_path / "out"), "-c", str(tmp_path / "c.yaml")]),
            ("HDM_MEMORY_LIMIT", "-1", [sys.executable, os.path.join(ROOT, "train.py"), "-c",
                                        os.path.join(ROOT, "configs", "demo", "hdm_demo.yaml"),
                                        f"work_dir={tmp_path / 'runs'}"])]
    for name, text, command in runs:
        proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": ROOT, name: text})
        assert proc.returncode == 2 and proc.stderr.splitlines() == [
            f"error: environment: {name}='{text}': expected {environment.VARIABLES[name][1]}"], proc.stderr
    assert sorted(os.listdir(tmp_path)) == ["c.yaml", "in"]  # no output folder, no run folder


@pytest.mark.parametrize("env,expected", [
    ({"WORLD_SIZE": "2", "RANK": "0"}, "MASTER_ADDR is not set"),
    ({"WORLD_SIZE": "2", "RANK": "5", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29533"}, "RANK=5 is not below WORLD_SIZE=2"),
    ({"WORLD_SIZE": "2", "LOCAL_RANK": "3", "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "1"},
     "LOCAL_RANK=3 is not below LOCAL_WORLD_SIZE=2"),
    ({"WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "70000"}, "MASTER_PORT='70000': expected a port number"),
    ({"WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29533"}, "RANK is not set"),
    ({"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "no.such.host.invalid", "MASTER_PORT": "29533"},
     "MASTER_ADDR='no.such.host.invalid' does not resolve to an address"),
])
def test_a_process_group_the_environment_cannot_form_is_refused_before_any_wait(tmp_path, demo_root, monkeypatch,
                                                                              capsys, env, expected):
    """Distributed variables that do not agree: exit 2 in one line, before joining (which would wait)."""
    from hdm.cli import train

    from .helpers import run_cli
    from .test_run_safety import write_config

    cfg = write_config(tmp_path, demo_root)
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    for name, text in env.items():
        monkeypatch.setenv(name, text)
    for extra in ([], ["--check"]):
        code, err = run_cli(train.main, ["-c", cfg, *extra], capsys)
        assert code == 2 and len(err) == 1 and expected in err[0], err
    assert not os.path.exists(tmp_path / "runs")


def test_check_with_a_process_group_in_the_environment_joins_none(tmp_path, demo_root, monkeypatch, capsys):
    """hdm-train --check under torchrun's variables checks and exits without waiting for the other ranks."""
    from hdm.cli import train

    from .test_run_safety import write_config

    cfg = write_config(tmp_path, demo_root, batch_size=1)  # 2 processes x 1 <= 3 samples
    for name, text in {"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29533"}.items():
        monkeypatch.setenv(name, text)
    train.main(["-c", cfg, "--check"])  # returns: no group joined, nothing waited for
    assert "check passed; nothing was written" in capsys.readouterr().out
