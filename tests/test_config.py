import os

import pytest
import yaml

from hdm.config import ConfigError, load_config, merge, parse_value


def write(path, text):
    path.write_text(text)
    return str(path)


BASE = """
name: base_run
model: {type: HDM, dim: 16, blocks_per_group: 1}
data:
  train: {type: PairedFolder, lq_dir: a, gt_dir: b, crop: 64}
losses:
  - {type: L1, weight: 1.0}
optim: {lr: 1e-4}
"""


def test_numbers_like_2e_4_are_floats():
    assert parse_value("2e-4") == 2e-4 and isinstance(parse_value("2e-4"), float)
    assert parse_value("1E5") == 1e5
    assert parse_value("10") == 10 and isinstance(parse_value("10"), int)
    assert parse_value("true") is True and parse_value("[1, 2]") == [1, 2] and parse_value("abc") == "abc"


def test_base_merge_is_deep_and_lists_are_replaced(tmp_path):
    write(tmp_path / "base.yaml", BASE)
    child = write(tmp_path / "child.yaml", "base: base.yaml\nmodel: {blocks_per_group: 7}\nlosses: [{type: MSE}]\n")
    cfg = load_config(child)
    assert cfg["model"] == {"type": "HDM", "dim": 16, "blocks_per_group": 7}
    assert cfg["losses"] == [{"type": "MSE"}]
    assert cfg["optim"]["lr"] == 1e-4 and cfg["optim"]["betas"] == [0.9, 0.999]  # file over defaults


def test_only_one_base_level(tmp_path):
    write(tmp_path / "a.yaml", BASE)
    write(tmp_path / "b.yaml", "base: a.yaml\n")
    c = write(tmp_path / "c.yaml", "base: b.yaml\n")
    with pytest.raises(ConfigError, match="one level"):
        load_config(c)


def test_dotted_overrides_with_list_indices(tmp_path):
    path = write(tmp_path / "c.yaml", BASE)
    cfg = load_config(path, ["model.blocks_per_group=7", "optim.lr=2e-4", "losses.0.weight=0.5", "name=x"])
    assert cfg["model"]["blocks_per_group"] == 7 and cfg["optim"]["lr"] == 2e-4
    assert cfg["losses"][0]["weight"] == 0.5 and cfg["name"] == "x"
    # a valid argument the file does not mention can be set
    assert load_config(path, ["model.num_regions=3"])["model"]["num_regions"] == 3


@pytest.mark.parametrize("override,match", [
    ("model.blocks_per_grup=7", "blocks_per_group"),
    ("optim.lrr=1", "lr"),
    ("trian.iterations=3", "train"),
    ("losses.3.weight=1", "out of range"),
    ("model.type=HDMX", "HDM"),
    ("optim.lr=fast", "expected a number"),
    ("train.batch_size=2.5", "expected an integer"),
    ("novalue", "key.path=value"),
])
def test_unknown_keys_and_bad_values_name_the_key(tmp_path, override, match):
    path = write(tmp_path / "c.yaml", BASE)
    with pytest.raises(ConfigError, match=match):
        load_config(path, [override])


def test_unknown_key_in_file_suggests(tmp_path):
    path = write(tmp_path / "c.yaml", BASE + "schedul: {eta_min: 0}\n")
    with pytest.raises(ConfigError, match="schedule"):
        load_config(path)


def test_merge_does_not_mutate_inputs():
    a, b = {"x": {"y": 1}, "l": [1]}, {"x": {"z": 2}, "l": [2]}
    assert merge(a, b) == {"x": {"y": 1, "z": 2}, "l": [2]}
    assert a == {"x": {"y": 1}, "l": [1]}


def test_shipped_configs_load():
    import glob
    paths = sorted(glob.glob("configs/**/*.yaml", recursive=True))
    assert paths
    for path in paths:
        cfg = load_config(path)
        assert yaml.safe_load(yaml.safe_dump(cfg)) == cfg


def test_a_section_whose_type_changes_is_replaced():
    base = {"data": {"train": {"type": "RESIDE", "root": "x", "trans": True}}}
    assert merge(base, {"data": {"train": {"type": "PairedFolder", "lq_dir": "a"}}}) == \
        {"data": {"train": {"type": "PairedFolder", "lq_dir": "a"}}}
    assert merge(base, {"data": {"train": {"root": "y"}}})["data"]["train"] == {"type": "RESIDE", "root": "y", "trans": True}


def test_extra_layer_sits_between_file_and_overrides(tmp_path):
    path = write(tmp_path / "c.yaml", BASE)
    cfg = load_config(path, ["train.iterations=7"], extra={"train": {"iterations": 3, "batch_size": 2}})
    assert cfg["train"]["iterations"] == 7 and cfg["train"]["batch_size"] == 2


@pytest.mark.parametrize("override,match", [
    ("train.batch_size=-2", "train.batch_size: expected an integer >= 1, got -2"),
    ("optim.lr=0", r"optim.lr: expected a number in \(0, 1\], got 0"),
    ("train.iterations=0", "train.iterations: expected an integer >= 1"),
    ("optim.lr=2e-4x", "optim.lr: expected a number"),
])
def test_value_ranges(tmp_path, override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(write(tmp_path / "c.yaml", BASE), [override])


def test_missing_dataset_folder_fails_fast_with_the_key(tmp_path):
    import time

    from hdm.config import check_data_paths
    cfg = load_config(write(tmp_path / "c.yaml", BASE))
    t0 = time.time()
    with pytest.raises(ConfigError, match="data.train.lq_dir: no such folder 'a'"):
        check_data_paths(cfg)
    assert time.time() - t0 < 1.0


def test_train_cli_reports_config_errors_in_one_line(tmp_path):
    import subprocess
    import sys
    path = write(tmp_path / "c.yaml", BASE)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, os.path.join(root, "train.py"), "-c", path, "optim.lr=fast"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["config error: optim.lr: expected a number in (0, 1], got 'fast'"]
