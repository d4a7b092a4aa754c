"""scripts/compare_results.py: paired statistics of two result folders, and its refusals."""
import csv
import json

import numpy as np
import pytest

from .helpers import load_script, run_cli


def _folder(path, values, preset="ffa_rgb"):
    path.mkdir()
    with open(path / "per_image.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["name", "psnr", "ssim"])
        writer.writerows([(name, psnr, 0.5) for name, psnr in values.items()])
    (path / "meta.json").write_text(json.dumps({"preset": preset, "options": {}}))
    return str(path)


def test_paired_statistics(tmp_path):
    compare = load_script("scripts/compare_results")
    rng = np.random.default_rng(1)
    a = {f"im{i}.png": 20 + rng.normal() for i in range(30)}
    b = {name: value + 0.5 + 0.1 * rng.normal() for name, value in a.items()}
    b["im0.png"] = a["im0.png"] - 1  # one loss
    stats = compare.main([_folder(tmp_path / "a", a), _folder(tmp_path / "b", b), "--out", str(tmp_path / "cmp")])
    diff = np.array([b[n] - a[n] for n in sorted(a)])
    assert stats["mean_diff"] == pytest.approx(diff.mean())
    assert stats["ci_low"] < diff.mean() < stats["ci_high"] and stats["ci_low"] > 0
    assert stats["wilcoxon_p"] < 1e-4 and (stats["wins"], stats["losses"], stats["ties"]) == (29, 1, 0)
    assert "| B wins |" in (tmp_path / "cmp" / "comparison.md").read_text()
    assert len((tmp_path / "cmp" / "per_image_diff.csv").read_text().splitlines()) == 31


@pytest.mark.parametrize("case,expected", [
    ("names", "hold other images: 'x.png' only in"),
    ("preset", "were scored with other metric presets"),
    ("metric", "--metric lpips: not a column of"),
])
def test_refusals(tmp_path, capsys, case, expected):
    compare = load_script("scripts/compare_results")
    a = _folder(tmp_path / "a", {"x.png": 20.0, "y.png": 21.0})
    b = _folder(tmp_path / "b", {"y.png": 21.0, "z.png": 22.0} if case == "names" else {"x.png": 20.5, "y.png": 21.0},
                preset="matlab_y_uint8" if case == "preset" else "ffa_rgb")
    code, err = run_cli(compare.main, [a, b] + (["--metric", "lpips"] if case == "metric" else []), capsys)
    assert code == 2 and len(err) == 1 and expected in err[0], err
