import json
import os

from .helpers import load_script


def test_benchmark_tiny_run_writes_every_section(tmp_path):
    out = str(tmp_path / "bench")
    rows = load_script("scripts/benchmark").main(["--tiny", "--out", out])
    sections = {"conv", "dcn", "masks", "region_conv", "hdm_infer", "hdm_train", "svrnn", "tiled", "tiled_trained", "onnx",
                "onnx profile", "onnx options"}
    assert {r["section"] for r in rows} == sections
    assert not [r for r in rows if "note" in r], "a case failed"
    saved = json.load(open(out + ".json"))
    assert saved["rows"] == json.loads(json.dumps(rows)) and saved["level"] == "tiny"
    table = open(out + ".md").read()
    assert all(f"### {s}" in table for s in sections)
    infer = {r["impl"]: r for r in rows if r["section"] == "hdm_infer"}
    assert set(infer) == {"release", "eager", "channels_last", "bf16"}
    for mode in ("eager", "channels_last"):  # exact fast paths: within 1e-4 of the release computation
        assert infer[mode]["max |diff|"] < 1e-4
    assert all(r["peak MB"] > 0 and r["ms"] > 0 for r in rows if r["section"] in ("hdm_infer", "hdm_train"))
    region = [r for r in rows if r["section"] == "region_conv"]
    assert region[1]["max |diff|"] < 1e-5
    tiled = [r for r in rows if r["section"] == "tiled"]
    assert tiled[1]["PSNR vs whole (dB)"] > 40
    default = [r for r in rows if r["section"] == "tiled_trained" and r["impl"] == "default" and "overlap 48" in r["case"]]
    assert default and all(r["max diff vs whole (/255)"] < 0.05 for r in default)  # the whole image's output
    onnx = [r for r in rows if r["section"] == "onnx"]  # every route in its own process, against ONNX Runtime's output
    assert [r["impl"] for r in onnx[:3]] == ["onnxruntime", "torch eager (NCHW)", "torch CPU defaults (channels_last)"]
    assert all(r["ms"] > 0 and r["peak MB"] > 0 for r in onnx)
    assert all(r["onnxruntime speed-up"] > 0 and r["max |diff|"] < 1e-4 for r in onnx if r["impl"].startswith("torch"))
    int8 = [r for r in onnx if r["impl"] == "onnxruntime int8"]  # the networks' quantised graphs (HDM here, not DCP)
    assert [r["case"].split()[0] for r in int8] == ["HDM"]
    assert all(r["speed-up over the CPU defaults"] > 0 and r["PSNR vs float32 (dB)"] > 20 for r in int8)
    for case in {r["case"] for r in onnx}:  # where ONNX Runtime's time goes: shares of the whole, HDM's masks apart
        shares = [r for r in rows if r["section"] == "onnx profile" and r["case"] == case]
        assert abs(sum(r["% of the run"] for r in shares) - 100) < 1e-6
        assert any("NumPy masks" in r["impl"] for r in shares) == case.startswith("HDM")
    options = [r for r in rows if r["section"] == "onnx options"]
    assert {r["impl"] for r in options} >= {"defaults (OnnxModel)", "enable_cpu_mem_arena off"}
    masks = [r for r in rows if r["section"] == "masks"]
    assert masks[1]["speed-up"] > 0 and masks[0]["ms/image"] > 0


def test_a_run_of_some_sections_writes_the_table_the_docs_name_never_the_full_one():
    import re

    from .helpers import ROOT
    table_name = load_script("scripts/benchmark").table_name
    sections = load_script("scripts/benchmark").SECTIONS
    assert table_name("full", sections) == "full" and table_name("quick", sections) == "quick"
    for section in ("onnx", "tiled_trained", "masks", "tiled"):
        assert table_name("full", [section]) == section.replace("_", "-") != "full"
    # every `--sections S` the docs show beside a benchmarks/cpu-*.md they cite names that file
    import glob
    cited = set()
    for doc in [os.path.join(ROOT, "README.md"), *glob.glob(os.path.join(ROOT, "docs", "*.md"))]:
        text = open(doc).read()
        for match in re.finditer(r"benchmark\.py --sections ([a-z_ ]+?)(?:\s--|`|;|\)).{0,400}?`benchmarks/cpu-([a-z-]+)\.md`",
                                 text, re.S):
            assert table_name("full", match.group(1).split()) == match.group(2), (doc, match.group(0))
            assert os.path.isfile(os.path.join(ROOT, "benchmarks", f"cpu-{match.group(2)}.md"))
            cited.add(match.group(2))
    assert {"onnx", "tiled", "tiled-trained"} <= cited
