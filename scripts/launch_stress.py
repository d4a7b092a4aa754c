"""Launch many two-process (gloo) trainings in a row and count the launches that hang or exit non-zero.

    # doc-test: skip (40 two-process launches take about 20 minutes; tests/test_distributed.py launches two)
    python scripts/launch_stress.py                       # 40 launches of a tiny HDM, 2 processes each
    # doc-test: skip (10 two-process launches take minutes)
    python scripts/launch_stress.py --launches 10 --timeout 60

Launches alternate between a new run (a few iterations) and the same run resumed with --resume auto and
more iterations, so the starts and ends of both are exercised. A launch that has not ended after --timeout
seconds counts as a hang (it is killed, with its process group); one that ends with a code other than 0
counts as a failure. Each problem is listed with the last line of its output; the exit code is 1 when
there was any. Data and runs live in a temporary folder, removed at the end unless --keep.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from hdm.cli import Parser, console, positive_float, positive_int  # noqa: E402
from hdm.data.demo import make_demo  # noqa: E402


def tiny_config(folder):
    """A config file for a tiny HDM on demo data, written into `folder` (tests/test_distributed.py's settings)."""
    root = make_demo("haze", os.path.join(folder, "haze"), samples_per_photo=2)
    cfg = {"work_dir": os.path.join(folder, "runs"), "seed": 5,
           "model": {"type": "HDM", "dim": 8, "groups": 1, "blocks_per_group": 1},
           "data": {"train": {"type": "PairedFolder", "lq_dir": f"{root}/train/hazy", "gt_dir": f"{root}/train/clear",
                              "crop": 32, "augment": True}},
           "optim": {"lr": 1e-3},
           "train": {"iterations": 5, "batch_size": 2, "save_every": 5, "log_every": 1, "num_workers": 0}}
    path = os.path.join(folder, "tiny.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f)
    return path


def launch(config, name, iterations, resume, timeout):
    """(outcome, seconds, last line): outcome 'ok', 'exit <code>' or 'hang'."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               os.path.join(ROOT, "train.py"), "-c", config, f"name={name}", f"train.iterations={iterations}"]
    command += ["--resume", "auto"] if resume else []
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.time()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        outcome = "hang"
    else:
        outcome = "ok" if proc.returncode == 0 else f"exit {proc.returncode}"
    lines = [line for line in (out or "").splitlines() if line.strip()]
    return outcome, time.time() - t0, lines[-1] if lines else ""


def main(argv=None):
    parser = Parser(__doc__)
    parser.add_argument("--launches", type=positive_int, default=40)
    parser.add_argument("--timeout", type=positive_float, default=90, help="seconds after which a launch counts as a hang")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (data, runs)")
    args = parser.parse(argv)
    folder = tempfile.mkdtemp(prefix="hdm-launch-stress-")
    try:
        config = tiny_config(folder)
        counts, problems, times = {"ok": 0, "hang": 0, "failed": 0}, [], []
        for i in range(args.launches):
            resume = i % 2 == 1  # the previous launch's run, continued for two more iterations
            outcome, seconds, last = launch(config, f"run{i // 2}", 7 if resume else 5, resume, args.timeout)
            times.append(seconds)
            key = outcome if outcome in ("ok", "hang") else "failed"
            counts[key] += 1
            if key != "ok":
                problems.append(f"launch {i + 1} ({'resumed' if resume else 'new'}): {outcome}: {last}")
            print(f"launch {i + 1}/{args.launches} ({'resumed' if resume else 'new'}): {outcome} in {seconds:.1f} s",
                  flush=True)
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"{args.launches} launches: {counts['ok']} ok, {counts['hang']} hung (> {args.timeout:g} s), {counts['failed']} "
          f"exited non-zero; median {sorted(times)[len(times) // 2]:.1f} s per launch")
    for line in problems:
        print("  " + line)
    return 1 if problems else 0


if __name__ == "__main__":
    console(main)
