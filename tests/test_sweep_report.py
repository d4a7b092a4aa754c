"""hdm/sweep/report.py: the sweep table as LaTeX (booktabs, best bold) and as a plot."""
import importlib.util

import pytest

from hdm.sweep import report


def _results():
    out = []
    for label, psnr, params in (("B", 20.0, 1e6), ("B+FA_x", 21.0, 2e6)):
        for seed, delta in ((0, -0.1), (1, 0.1)):
            ssim = 0.7 + (psnr - 20) / 10 + delta / 10
            out.append({"label": label, "seed": seed, "psnr": psnr + delta, "ssim": ssim, "input_psnr": 12.0,
                        "input_ssim": 0.6, "params": params, "macs": params * 1e3, "train_s": 1.0, "test_s": 1.0,
                        "reused": False})
    return out


def test_latex_marks_the_best_and_escapes_labels():
    rows = report.table(_results(), ["B", "B+FA_x", "never ran"])
    assert [r["variant"] for r in rows] == [report.INPUT, "B", "B+FA_x"]
    tex = report.latex(rows, "Table 5 (demo)", (256, 256))
    assert tex.count(r"\toprule") == tex.count(r"\bottomrule") == 1
    best = next(line for line in tex.splitlines() if line.startswith(r"B+FA\_x"))
    assert r"$\mathbf{21.00 \pm 0.14}$" in best and r"$\mathbf{0.8000 \pm 0.0141}$" in best
    assert r"\mathbf" not in next(line for line in tex.splitlines() if line.startswith("B &"))


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="matplotlib is not installed (optional)")
def test_plot_writes_png_and_pdf(tmp_path):
    paths = report.plot(report.table(_results(), ["B", "B+FA_x"]), str(tmp_path / "psnr_cost"), (256, 256))
    assert [p.rsplit(".", 1)[1] for p in paths] == ["png", "pdf"]
    assert (tmp_path / "psnr_cost.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "psnr_cost.pdf").read_bytes()[:4] == b"%PDF"
