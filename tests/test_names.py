"""Any file name in every text the tools write: result files, figures' captions, logs, the config a run
records, and dotted overrides. Names hold bytes that are not UTF-8 (surrogates in Python), newlines and
other scripts; messages and files show them escaped on one line (hdm.errors.shown), OpenCV's drawing
functions get printable ASCII, and a config holds such a path as the string it is."""
import csv
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from hdm.config import dump_config, load_config, parse_value, read_yaml
from hdm.errors import shown
from hdm.files import atomic_write
from hdm.image_io import write_image
from hdm.results import drawable, write_results
from hdm.runtime import logger, setup_logging
from tests.helpers import run_cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOSTILE = os.fsdecode(b"new\nline\xff")  # the name a tester gave: a newline and a byte that is not UTF-8
# names as the OS gives them: any character, control characters included, and any bytes that are not UTF-8
# (os.fsdecode makes them surrogates)
NAMES = st.lists(st.one_of(st.binary(min_size=1, max_size=4).map(os.fsdecode),
                           st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=4)),
                 min_size=1, max_size=5).map("".join).filter(lambda name: "\0" not in name)


def run(args, cwd=ROOT, **kwargs):
    return subprocess.run([sys.executable, *args], capture_output=True, cwd=cwd, env={**os.environ, "PYTHONPATH": ROOT},
                          **kwargs)


# what OpenCV draws

@settings(max_examples=200, deadline=None)
@given(text=NAMES)
def test_text_for_opencv_is_printable_ascii_and_shows_the_name(text):
    drawn = drawable(text)
    assert drawn.isascii() and drawn.isprintable()
    if text.isascii() and text.isprintable():
        assert drawn == text  # only what OpenCV cannot draw is escaped


def test_a_comparison_grid_captions_names_that_opencv_cannot_draw(tmp_path):
    names = [HOSTILE, "café 日本", "tab\there", "\udcfe\udcff"]
    code = ("import sys, numpy as np; from hdm.results import caption, comparison_grid; from hdm.image_io import "
            "write_image; names = sys.argv[2:]; images = [np.full((8, 10, 3), 0.5, np.float32)] * 3; "
            "figure = comparison_grid([images] * len(names), [caption({'name': n, 'psnr': 20.0}) for n in names], 16); "
            "write_image(sys.argv[1], figure)")
    proc = run(["-c", code, str(tmp_path / "grid.png"), *names])  # in a child: text OpenCV cannot take crashes it
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    assert (tmp_path / "grid.png").exists()


# text files

@settings(max_examples=40, deadline=None)
@given(names=st.lists(NAMES, min_size=1, max_size=4), label=NAMES)
def test_result_files_hold_any_name_shown_on_one_line(tmp_path_factory, names, label):
    out = tmp_path_factory.mktemp("results")
    rows = [{"name": name, "psnr": 20.0 + i} for i, name in enumerate(names)]
    meta = {"preset": "p", "options": {}, "torch": "t", "hdm": "h", "names": names}
    write_results(str(out), rows, label, meta)
    with open(out / "per_image.csv", encoding="utf-8", newline="") as f:
        assert [row["name"] for row in csv.DictReader(f)] == [shown(name) for name in names]
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert f"| {shown(label)} |" in summary and len(summary.splitlines()) == 5


def test_a_text_file_takes_text_utf8_cannot_hold(tmp_path):
    with atomic_write(tmp_path / "t.txt", "w") as f:
        f.write(f"{HOSTILE}\n")
    assert (tmp_path / "t.txt").read_bytes() == b"new\nline\\udcff\n"


@settings(max_examples=30, deadline=None)
@given(name=NAMES)
def test_a_log_record_naming_any_file_is_one_line_in_train_log(tmp_path_factory, name):
    run_dir = tmp_path_factory.mktemp("run")
    setup_logging(str(run_dir))
    try:
        logger.warning("iteration %d: non-finite loss, step not applied; batch: %s", 3, name)
        logger.info(f"saved {name}")
    finally:
        for handler in list(logger.handlers):
            handler.close()
            logger.removeHandler(handler)
    lines = (run_dir / "train.log").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2 and lines[0].endswith(f"batch: {shown(name)}") and lines[1].endswith(f"saved {shown(name)}")


def test_training_on_such_names_logs_them_escaped(tmp_path, capfd):
    setup_logging(str(tmp_path))
    try:
        logger.warning("batch: %s", HOSTILE)
    finally:
        for handler in list(logger.handlers):
            handler.close()
            logger.removeHandler(handler)
    out, err = capfd.readouterr()
    assert out.endswith(" batch: new\\nline\\xff\n") and err == ""
    assert (tmp_path / "train.log").read_text(encoding="utf-8").endswith(" batch: new\\nline\\xff\n")


# configs: dotted overrides and the config a run records

@settings(max_examples=200, deadline=None)
@given(text=NAMES)
def test_an_override_that_is_not_printable_text_is_the_string_it_is(text):
    if not text.isprintable():
        assert parse_value(text) == text
    elif text.strip() in ("a", "true", "12"):
        assert parse_value(text) == {"a": "a", "true": True, "12": 12}[text.strip()]


@settings(max_examples=60, deadline=None)
@given(path=NAMES)
def test_config_yaml_records_any_path_and_reads_it_back(tmp_path_factory, path):
    folder = tmp_path_factory.mktemp("cfg")
    cfg = {"name": "a", "data": {"train": {"type": "PairedFolder", "lq_dir": path, "gt_dir": [path, "x"]}}}
    dump_config(cfg, str(folder / "config.yaml"))
    assert read_yaml(str(folder / "config.yaml")) == cfg


def test_a_folder_named_with_bytes_that_are_not_utf8_is_taken_by_an_override(tmp_path):
    root = os.path.join(os.fsencode(tmp_path), b"x\xff")
    rng = np.random.default_rng(0)
    for side in (b"lq", b"gt"):
        for name in (b"a.png", b"new\nline\xff.png"):
            write_image(os.path.join(root, side, name), rng.random((40, 40, 3)))
    cfg = {"name": "bytes", "work_dir": str(tmp_path / "runs"),
           "model": {"type": "HDM", "dim": 8, "groups": 1, "blocks_per_group": 1},
           "data": {"train": {"type": "PairedFolder", "lq_dir": "missing", "gt_dir": "missing", "crop": 32}},
           "train": {"iterations": 2, "batch_size": 1, "save_every": 2, "log_every": 1}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    overrides = [b"data.train.lq_dir=" + os.path.join(root, b"lq"), b"data.train.gt_dir=" + os.path.join(root, b"gt")]
    proc = run(["train.py", "-c", str(tmp_path / "c.yaml"), *overrides, "--check"])
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    cfg = load_config(str(tmp_path / "c.yaml"), [os.fsdecode(text) for text in overrides])
    assert cfg["data"]["train"]["lq_dir"] == os.fsdecode(os.path.join(root, b"lq"))
    dump_config(cfg, str(tmp_path / "config.yaml"))  # what the run records, read back as it is
    assert load_config(str(tmp_path / "config.yaml")) == cfg


def test_a_newline_in_an_override_stays_in_the_path():
    cfg = load_config(os.path.join(ROOT, "configs", "demo", "dcp_demo.yaml"), ["data.val.lq_dir=/data/a\nb"])
    assert cfg["data"]["val"]["lq_dir"] == "/data/a\nb"  # YAML would have folded it into "/data/a b"


@pytest.mark.parametrize("name", ["-x.png", "--debug", "--overwrite.png", "-c", "a=b.png"])
def test_names_that_look_like_options_are_files_after_the_double_dash(tmp_path, monkeypatch, capsys, name):
    """After `--` a word is an argument whatever it looks like (an option, --debug, an override)."""
    from hdm.cli import evaluate, predict

    write_image(tmp_path / "in" / name, np.full((8, 8, 3), 0.5))
    (tmp_path / "c.yaml").write_text("model:\n  type: DCP\n")
    monkeypatch.chdir(tmp_path / "in")
    code, err = run_cli(predict.main, ["-c", str(tmp_path / "c.yaml"), "--", name, "../out"], capsys)
    assert code == 0 and not err and os.listdir(tmp_path / "out") == [os.path.splitext(name)[0] + ".png"]
    monkeypatch.chdir(tmp_path)
    os.rename("out", name)  # a folder of results named so
    code, err = run_cli(evaluate.main, ["--out", "ev", "--", name, name], capsys)
    assert code == 0 and not err and os.path.isfile(tmp_path / "ev" / "summary.md")
    if "." not in name:  # the input itself, named without an extension, is no image of a folder
        code, err = run_cli(evaluate.main, ["--out", "ev2", "--", "in", name], capsys)
        assert code == 2 and err == ["error: in: no images (files named .png, .jpg, .bmp, .tif, ...) in this folder"]
