"""Executable documentation: every command in a code block of README.md, docs/*.md, datasets/README.md and
checkpoints/README.md, and every example in a tool's docstring, runs here on CPU at tiny scale and exits 0;
every tool's --help works. A doc that drifts from the code fails this test.

The fixture (`sandbox`) is one folder, the working directory of every command, in doc order:
- configs/: a copy of the repository's configs with TINY applied to each (2 iterations, small crops and
  batches; the models keep their documented sizes);
- datasets/demo/: the demo data (hdm/data/demo.py) synthesised from the photos downsized to 64 x 64;
- the files the docs' placeholders name (PLACEHOLDERS: W.pth, CONFIG, photos/, ...), small and made here.
Each command is read as a shell would (comments, `\\` continuations), its optional `[...]` parts dropped,
the documented iteration counts mapped to the tiny ones (SCALE), and run in-process through the tool's
`main` under hdm.cli.console. A block (or, in a docstring, an example line) preceded by
`<!-- doc-test: skip (reason) -->` / `# doc-test: skip (reason)` is not run and is reported skipped with
its reason (CUDA, several nodes, Slurm, a server, the full benchmark, data that is not here).
"""
import glob
import os
import re
import shlex
import shutil

import cv2
import numpy as np
import pytest
import torch
import yaml

from hdm.cli import console

from .helpers import ROOT, load_script

DOCS = ["README.md", *sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md"))),
        "datasets/README.md", "checkpoints/README.md"]
TOOLS = {"train.py": "hdm.cli.train", "hdm-train": "hdm.cli.train", "test.py": "hdm.cli.test", "hdm-test": "hdm.cli.test",
         "hdm-predict": "hdm.cli.predict", "hdm-evaluate": "hdm.cli.evaluate", "hdm-export": "hdm.cli.export",
         "hdm-serve": "hdm.cli.serve"}
SCRIPTS = sorted(os.path.relpath(p, ROOT)[:-3] for p in glob.glob(os.path.join(ROOT, "scripts", "*.py")))
SKIP = re.compile(r"(?:<!--|#) doc-test: skip \((.+)\)(?: -->)?\s*$")
# the tiny scale: keys set in every config that has them
TINY = {"train.iterations": 2, "train.save_every": 2, "train.val_every": 2, "train.log_every": 1, "train.batch_size": 2,
        "data.train.crop": 32}
SCALE = {r"iter_600\b": "iter_2", r"train\.iterations=400\b": "train.iterations=1"}  # documented counts -> tiny ones


def commands_of_docs():
    """[(where, command or None, skip reason or None)] of every documented command, in doc order."""
    found = []
    for doc in DOCS:
        lines = open(os.path.join(ROOT, doc), encoding="utf-8").read().splitlines()
        i, reason = 0, None
        while i < len(lines):
            marker = SKIP.search(lines[i])
            if marker:
                reason = marker.group(1)
            elif lines[i].startswith("```"):
                end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
                found += [(f"{doc}:{i + 2 + k}", cmd, reason) for k, cmd in block_commands(lines[i + 1:end])]
                i, reason = end, None
            elif lines[i].strip():
                reason = None
            i += 1
    return found


def block_commands(lines):
    """[(line offset, command)] of a code block: lines that start with a tool (a `$ ` prompt dropped), joined
    over `\\` continuations; the other lines (output, YAML, Python, layouts) are not commands."""
    out, k = [], 0
    while k < len(lines):
        start, text = k, lines[k].removeprefix("$ ")
        while text.rstrip().endswith("\\") and k + 1 < len(lines):
            k += 1
            text = text.rstrip()[:-1] + " " + lines[k].strip()
        if re.match(r"(python|hdm-|make |torchrun |srun |#!)", text):
            out.append((start, text))
        k += 1
    return out


def commands_of_docstrings():
    """[(where, command, skip reason)] of the examples in the tools' docstrings (lines that start with
    `python ` or `hdm-`, indented)."""
    found = []
    for rel in [*SCRIPTS, "test.py", "train.py", *sorted(f"hdm/cli/{m}" for m in ("train", "test", "predict", "evaluate",
                                                                                     "export", "serve"))]:
        path = os.path.join(ROOT, rel if rel.endswith(".py") else rel + ".py")
        text = open(path, encoding="utf-8").read()
        doc = re.match(r'\s*(?:#.*\n)*\s*"""(.*?)"""', text, re.S)
        reason = None
        lines = (doc.group(1) if doc else "").splitlines()
        for n, line in enumerate(lines):
            marker = SKIP.search(line)
            if marker:
                reason = marker.group(1)
            elif re.match(r"\s{2,}(python |hdm-)", line):
                k = n
                while line.rstrip().endswith("\\") and k + 1 < len(lines):
                    k += 1
                    line = line.rstrip()[:-1] + " " + lines[k].strip()
                found.append((f"{rel}:{n + 1}", line.strip(), reason))
                reason = None
    return found


COMMANDS = commands_of_docs() + commands_of_docstrings()


def shell_words(command):
    """The words of one command as the shell gives them: the comment dropped, `[...]` optional parts dropped,
    SCALE applied."""
    for pattern, tiny in SCALE.items():
        command = re.sub(pattern, tiny, command)
    words = shlex.split(command, comments=True)
    out, depth = [], 0
    for word in words:
        depth += word.startswith("[")
        if not depth:
            out.append(word)
        depth -= word.endswith("]")
    return out


def main_of(words):
    """(main function, argv) of a command's words."""
    if words[0] == "python" and words[1] == "-c":
        return (lambda argv: exec(compile(argv[0], "<doc>", "exec"), {})), words[2:]
    if words[0] == "python":
        words = words[1:]
    name = words[0]
    if name in TOOLS:
        import importlib
        return importlib.import_module(TOOLS[name]).main, words[1:]
    if name.startswith("scripts/"):
        module = load_script(name[:-3])
        if hasattr(module, "ROOT"):  # a script that works in the repository (demo.py) works in the sandbox
            module.ROOT = os.getcwd()
        return module.main, words[1:]
    raise AssertionError(f"{name}: not a tool the doc test knows")


def small_photo(name, size=(64, 64)):
    from skimage import data
    img = getattr(data, name)()
    img = img if img.ndim == 3 else np.stack([img] * 3, -1)
    return cv2.resize(img[..., :3], size[::-1], interpolation=cv2.INTER_AREA).astype(np.float32) / 255


def tiny_config(path):
    cfg = yaml.safe_load(open(path)) or {}
    for key, value in TINY.items():
        *parents, last = key.split(".")
        node = cfg
        for p in parents:
            node = node.get(p) if isinstance(node, dict) else None
        if isinstance(node, dict) and last in node:
            node[last] = value
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)


def tiny_weights(path, cfg):
    from hdm.checkpoint import atomic_save
    from hdm.models import build_model
    torch.manual_seed(0)
    model = build_model(cfg["model"])
    atomic_save({"model": model.state_dict(), "config": cfg}, path)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    from hdm.data import demo
    from hdm.image_io import write_image
    root = tmp_path_factory.mktemp("docs")
    shutil.copytree(os.path.join(ROOT, "configs"), root / "configs")
    for path in glob.glob(str(root / "configs" / "**" / "*.yaml"), recursive=True):
        tiny_config(path)
    os.symlink(os.path.join(ROOT, "hubconf.py"), root / "hubconf.py")
    os.symlink(os.path.join(ROOT, "hdm"), root / "hdm")
    mp = pytest.MonkeyPatch()
    mp.setattr(demo, "photo", small_photo)
    mp.chdir(root)
    for task in ("haze", "rain", "lowlight"):
        demo.make_demo(task, os.path.join("datasets", "demo", task))
    # PLACEHOLDERS: the files the docs name as examples
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        for folder in ("photos", "rainy", "hazy", "results", "DIR/hazy", "INPUT", "PRED_DIR", "DIR"):
            write_image(root / folder / f"{name}.png", small_photo("chelsea", (40, 48)) * rng.uniform(0.6, 1.0))
        for folder in ("gt", "DIR/GT", "GT_DIR", "CLEAN_DIR"):
            write_image(root / folder / f"{name}.png", small_photo("chelsea", (40, 48)))
    for n in (1, 2):
        write_image(root / "derained" / f"norain-{n}x2.png", small_photo("coffee", (40, 48)) * 0.9)
        write_image(root / "Rain200H/test/norain" / f"norain-{n}.png", small_photo("coffee", (40, 48)))
        write_image(root / "datasets/Rain200H/train" / f"rain-{n}.png", small_photo("coffee", (40, 48)) * 0.9)
        write_image(root / "datasets/Rain200H/train" / f"norain-{n}.png", small_photo("coffee", (40, 48)))
        for part in ("hazy", "GT"):
            write_image(root / "datasets/RESIDE-IN/test" / part / f"{n}.png", small_photo("rocket", (40, 48)))
    write_image(root / "results/sots/1400_1.png", small_photo("rocket", (40, 48)) * 0.8)
    for folder in ("gt", "hazy", "results"):
        write_image(root / folder / "1400.png", small_photo("rocket", (40, 48)))
    for n in (1, 2):
        write_image(root / "results/rain200h" / f"norain-{n}x2.png", small_photo("coffee", (40, 48)) * 0.9)
        write_image(root / "norain" / f"norain-{n}.png", small_photo("coffee", (40, 48)))
    for folder in ("results/dicm", "DICM"):  # NIQE needs at least 96 x 96
        write_image(root / folder / "a.png", small_photo("astronaut", (100, 100)))
    write_image(root / "big.png", small_photo("astronaut", (72, 96)))
    cfg = {"model": {"type": "HDM", "dim": 8, "groups": 1, "blocks_per_group": 1},
           "data": {"test": {"type": "PairedFolder", "lq_dir": "hazy", "gt_dir": "gt"}}}
    for name in ("CONFIG", "derain.yaml", "dehaze.yaml"):
        (root / name).write_text(yaml.safe_dump(cfg))
    for name in ("W.pth", "W", "derain.pth", "dehaze.pth", "runs/hdm_its/checkpoints/best.pth",
                 "runs/hdm_its/checkpoints/iter_100000.pth"):
        os.makedirs(os.path.dirname(root / name), exist_ok=True)
        tiny_weights(root / name, cfg)
    os.symlink("datasets", root / "data")
    hybrid = yaml.safe_load(open(root / "configs/lowlight/hybrid_lol.yaml"))
    os.makedirs(root / "runs/hybrid_lol/checkpoints")
    tiny_weights(root / "runs/hybrid_lol/checkpoints/best.pth", hybrid)
    yield root
    mp.undo()


def run_command(words, capsys):
    main, argv = main_of(words)
    if words[0] == "hdm-predict":  # each example writes into a folder of its own: an earlier example's output goes
        shutil.rmtree(argv[1], ignore_errors=True)
    with pytest.raises(SystemExit) as exit_info:
        console(main, argv)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


@pytest.mark.parametrize("where, command, reason", COMMANDS, ids=[w for w, _, _ in COMMANDS])
def test_documented_command_runs(sandbox, capsys, where, command, reason):
    if reason:
        pytest.skip(reason)
    code, out, err = run_command(shell_words(command), capsys)
    assert code == 0, f"{where}: `{command}` exited {code}: {err.strip()[-600:]}"
    if "model_report.py -c configs/dehaze/hdm_its.yaml --size 460 620" in command and where.startswith("docs/"):
        check_model_report_figures(out)


def check_model_report_figures(out):
    """docs/ablations.md's figures for the released HDM at 620x460 are those the command prints."""
    text = " ".join(open(os.path.join(ROOT, "docs", "ablations.md"), encoding="utf-8").read().split())
    stated = re.search(r"\): ([\d.]+) GMACs, ([\d.]+) % in the three full-resolution 5x5 output convs, ([\d.]+) % in the FA "
                       r"groups, ([\d.]+) % in the two region-conv passes", text)
    assert stated, "docs/ablations.md no longer states the figures this test checks"
    rows = {m.group(1): (float(m.group(2)), m.group(3))
            for m in re.finditer(r"\| (\S+) \| [\d,]+ \| ([\d.]+) \| ([\d.]+) %", out)}
    assert f"{rows['total'][0]:.1f}" == stated.group(1)
    assert (rows["output"][1], rows["FAB"][1], rows["drconv_phy"][1]) == stated.groups()[1:]


HELP = [*TOOLS.values(), *SCRIPTS]


@pytest.mark.parametrize("tool", sorted(set(HELP)))
def test_every_tool_has_a_working_help(tool, capsys):
    import importlib
    main = load_script(tool).main if tool.startswith("scripts/") else importlib.import_module(tool).main
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0 and "usage:" in capsys.readouterr().out
