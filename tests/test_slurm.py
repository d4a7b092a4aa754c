"""Sweeps and training against a real Slurm: the one-node cluster `make slurm` starts on this machine
(.ci/slurm_cluster.sh). Skipped, with the reason, where sbatch is absent or the cluster does not answer.
Tiny runs (an 8-channel HDM, a few iterations); every process uses one thread, so runs compare bitwise."""
import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest
import torch
import yaml

from hdm.checkpoint import load_checkpoint
from hdm.data.demo import make_demo

from .helpers import ROOT, load_script, run_cli


def _cluster_problem():
    if shutil.which("sbatch") is None:
        return "sbatch is not on PATH (make slurm installs Slurm and starts a local cluster)"
    try:
        import submitit  # noqa: F401
    except ImportError:
        return 'submitit is not installed (pip install -e ".[cluster]")'
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=10)
        nodes = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"the Slurm cluster does not answer ({err})"
    if "UP" not in ping.stdout or not re.search(r"^(idle|mix|alloc)", nodes.stdout, re.M):
        return f"the Slurm cluster does not answer (scontrol ping: {ping.stdout.strip() or ping.stderr.strip()})"
    return None


PROBLEM = _cluster_problem()
needs_cluster = pytest.mark.skipif(PROBLEM is not None, reason=str(PROBLEM))


@pytest.fixture()
def tiny(tmp_path, monkeypatch):
    """A --with file for tiny runs on demo data; the environment jobs inherit (sbatch exports it)."""
    threads = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("PYTHONPATH", ROOT)
    demo = make_demo("haze", str(tmp_path / "haze"), samples_per_photo=1)
    shared = {"model": {"type": "HDM", "dim": 8, "groups": 1, "blocks_per_group": 1}, "losses": [{"type": "L1"}],
              "data": {"train": {"type": "PairedFolder", "lq_dir": f"{demo}/train/hazy", "gt_dir": f"{demo}/train/clear",
                                 "crop": 32, "augment": True},
                       "val": {"type": "PairedFolder", "lq_dir": f"{demo}/val/hazy", "gt_dir": f"{demo}/val/clear"},
                       "test": None},
              "train": {"iterations": 3, "batch_size": 2, "num_workers": 0, "val_every": 1000, "save_every": 1000,
                        "log_every": 1}}
    (tmp_path / "with.yaml").write_text(yaml.safe_dump(shared))
    yield tmp_path
    torch.set_num_threads(threads)


def _wait(predicate, seconds, what):
    end = time.time() + seconds
    while time.time() < end:
        if predicate():
            return
        time.sleep(0.5)
    pytest.fail(f"waited {seconds} s for {what}")


def _in_queue(job):
    return bool(subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True).stdout.strip())


def _queued(sweep, out):
    return subprocess.run(["squeue", "-h", "-r", "--name", sweep.job_name(str(out)), "-o", "%i"], capture_output=True,
                          text=True).stdout.split()


@needs_cluster
def test_sweep_through_slurm_equals_local_survives_sigterm_and_a_failing_run_fails_alone(tiny, capsys):
    """2 variants x 2 seeds and a third variant whose runs fail: the table equals the local launcher's, a job
    sent SIGTERM mid-run requeues and ends bitwise equal to the uninterrupted run, the failures are one line
    each in --status, and a second submission submits only what failed, and only when asked."""
    sweep = load_script("scripts/sweep")
    base, data = os.path.join(ROOT, "configs", "demo", "hdm_demo.yaml"), yaml.safe_load((tiny / "with.yaml").read_text())
    shutil.copytree(data["data"]["train"]["lq_dir"], tiny / "hazy_copy")
    sections = data.pop("data")
    # 'bad' reads a copy of the data that breaks after submission, which no check before it can see
    broken = {**sections, "train": {**sections["train"], "lq_dir": str(tiny / "hazy_copy")}}
    for name, lr, read in (("a", 1e-3, sections), ("b", 2e-3, sections), ("bad", 1e-3, broken)):
        (tiny / f"{name}.yaml").write_text(yaml.safe_dump({"base": base, "optim": {"lr": lr}, "data": read}))
    (tiny / "with.yaml").write_text(yaml.safe_dump(data))  # model and training only: each variant names its data
    common = ["--with", str(tiny / "with.yaml"), "--seeds", "0", "1", "--set", "train.iterations=30"]
    configs = ["--configs", str(tiny / "a.yaml"), str(tiny / "b.yaml"), str(tiny / "bad.yaml")]
    slurm_args = configs + common + ["--out", str(tiny / "slurm")]
    ids = sweep.main(slurm_args + ["--launcher", "slurm"])
    assert len(ids) == 6 and len({i.split("_")[0] for i in ids}) == 1  # one job array
    victim = next((tiny / "hazy_copy").iterdir())
    whole = victim.read_bytes()
    with open(victim, "r+b") as f:  # long before a job has imported torch
        f.truncate(100)
    log = tiny / "slurm" / "a_s0" / "train.log"
    _wait(lambda: log.is_file() and "iter 3/30" in log.read_text(), 120, "a_s0's third iteration")
    # scancel --signal retries while the job is being requeued, and would signal the requeued job too: stopped
    # once the first one is delivered
    signal = subprocess.Popen(["scancel", "--signal=TERM", ids[0]], stderr=subprocess.DEVNULL)
    _wait(lambda: "stopped by SIGTERM" in log.read_text(), 60, "a_s0 to stop")
    signal.kill()
    signal.wait()
    _wait(lambda: not _queued(sweep, tiny / "slurm"), 240, "the sweep's jobs to end")
    victim.write_bytes(whole)  # the data as launched again: the sweep judges the runs by the data they ran on
    text = log.read_text()
    stopped = int(re.search(r"stopped by SIGTERM at iteration (\d+)", text)[1])
    assert 3 <= stopped < 30 and f"resumed from {tiny}/slurm/a_s0/checkpoints/iter_{stopped}.pth" in text
    status = {row["run"]: row for row in sweep.main(slurm_args + ["--status"])}
    assert [status[n]["state"] for n in ("a_s0", "a_s1", "b_s0", "b_s1")] == ["done"] * 4
    assert status["bad_s0"]["state"] == status["bad_s1"]["state"] == "failed"
    assert "truncated PNG" in status["bad_s0"]["last line"]
    capsys.readouterr()
    on_slurm = sweep.main(slurm_args + ["--collect"])
    assert "2 of 6 runs missing" in capsys.readouterr().out
    torch.set_num_threads(1)  # one thread, as each job (bitwise equal weights)
    local = sweep.main(configs[:3] + common + ["--out", str(tiny / "local")])
    numbers = ("variant", "psnr_mean", "psnr_std", "ssim_mean", "ssim_std", "params", "macs")
    assert [[r[k] for k in numbers] for r in on_slurm] == [[r[k] for k in numbers] for r in local]
    weights = [load_checkpoint(str(tiny / where / "a_s0" / "checkpoints" / "iter_30.pth"))["model"]
               for where in ("slurm", "local")]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert (tiny / "slurm" / "table.tex").read_text().count(r"\pm") == 4
    # each job's stdout and stderr in the sweep folder; the failed one's holds its one line
    err = (tiny / "slurm" / "logs" / f"{ids[4]}_0_log.err").read_text().strip().splitlines()
    assert any(line.startswith("data error: ") and "truncated PNG" in line for line in err)
    assert "Traceback" not in "".join(err)
    # again: finished runs are not repeated, the failed ones are submitted only with --retry-failed
    assert sweep.main(slurm_args + ["--launcher", "slurm"]) == []
    again = sweep.main(slurm_args + ["--launcher", "slurm", "--retry-failed"])
    subprocess.run(["scancel", *again])
    assert len(again) == 2


@needs_cluster
def test_a_sweep_whose_jobs_are_pending_submits_nothing_again(tiny, capsys):
    sweep = load_script("scripts/sweep")
    args = ["--base", os.path.join(ROOT, "configs", "demo", "hdm_demo.yaml"), "--with", str(tiny / "with.yaml"),
            "--grid", "optim.lr=1e-3,2e-3", "--out", str(tiny / "sweep")]
    ids = sweep.main(args + ["--launcher", "slurm", "--sbatch", "begin=now+1hour"])
    try:
        record = json.loads((tiny / "sweep" / "sweep.json").read_text())
        assert sorted(e["job_id"] for e in record["runs"].values()) == sorted(ids)
        assert sweep.main(args + ["--launcher", "slurm"]) == []
        assert "2 run(s) pending or running, not launched again" in capsys.readouterr().out
        assert sorted(_queued(sweep, tiny / "sweep")) == sorted(ids)
        assert [row["state"] for row in sweep.main(args + ["--status"])] == ["pending", "pending"]
    finally:
        subprocess.run(["scancel", *ids])


@needs_cluster
@pytest.mark.parametrize("option,expected", [
    (["--partition", "nosuch"], "--partition nosuch: not a partition of this cluster"),
    (["--cpus-per-run", "4096"], "--cpus-per-run 4096: the nodes of partition"),
    (["--mem", "64T"], "--mem 64T: the nodes of partition"),
    (["--gpus-per-run", "8"], "--gpus-per-run 8: the nodes of partition"),
    (["--time", "soon"], "--time soon: expected minutes"),
    (["--sbatch", "array=0-3"], "--sbatch array: set by the launcher itself"),
])
def test_impossible_requests_submit_nothing(tiny, capsys, option, expected):
    sweep = load_script("scripts/sweep")
    args = ["--base", os.path.join(ROOT, "configs", "demo", "hdm_demo.yaml"), "--with", str(tiny / "with.yaml"),
            "--out", str(tiny / "sweep"), "--launcher", "slurm", *option]
    code, err = run_cli(sweep.main, args, capsys)
    assert code == 2 and len(err) == 1 and expected in err[0], err
    assert not (tiny / "sweep").exists()


def test_without_sbatch_on_path_nothing_is_submitted(tiny, capsys, monkeypatch):
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable))
    sweep = load_script("scripts/sweep")
    code, err = run_cli(sweep.main, ["--base", os.path.join(ROOT, "configs", "demo", "hdm_demo.yaml"), "--with",
                                     str(tiny / "with.yaml"), "--out", str(tiny / "sweep"), "--launcher", "slurm"], capsys)
    assert code == 2 and err == ["error: --launcher slurm: sbatch is not on PATH; expected Slurm's client tools (or use "
                                 "--launcher local)"]
    assert not (tiny / "sweep").exists()


@needs_cluster
def test_the_readme_sbatch_script_trains_stops_before_its_limit_and_resumes(tiny):
    """The README's script, on one node with 2 CPU processes instead of 2 nodes x 4 GPUs: USR1 to the batch
    script (what --signal=B:USR1@300 sends) stops training with a checkpoint, the job requeues itself and
    continues from that checkpoint to the end."""
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    script = re.search(r"```bash\n(#!/bin/bash\n#SBATCH --nodes=2.*?)```", readme, re.S)[1]
    cfg = yaml.safe_load((tiny / "with.yaml").read_text())
    cfg["train"].update(iterations=40, save_every=1000, batch_size=1)  # 3 samples: one global batch of 2
    cfg.update(work_dir=str(tiny / "runs"), name="readme")
    (tiny / "train.yaml").write_text(yaml.safe_dump(cfg))
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    for old, new in (("--nodes=2", "--nodes=1"), ("--cpus-per-task=32", "--cpus-per-task=2"),
                     ("#SBATCH --gpus-per-node=4\n", ""), ("--nproc_per_node=4", "--nproc_per_node=2"),
                     ("configs/dehaze/hdm_its_paper.yaml", str(tiny / "train.yaml")), (".venv/bin/torchrun", torchrun)):
        assert old in script
        script = script.replace(old, new)
    (tiny / "job.sh").write_text(script)
    submitted = subprocess.run(["sbatch", "--parsable", f"--chdir={ROOT}", f"--output={tiny}/slurm-%j.out", str(tiny / "job.sh")],
                               capture_output=True, text=True, check=True)
    job = submitted.stdout.strip().split(";")[0]
    log = tiny / "runs" / "readme" / "train.log"
    try:
        _wait(lambda: log.is_file() and "iter 3/40" in log.read_text(), 120, "the job's third iteration")
        subprocess.run(["scancel", "--signal=USR1", "--batch", job], check=True)
        _wait(lambda: "resumed from" in log.read_text() and not _in_queue(job), 180, "the requeued job to end")
    finally:
        subprocess.run(["scancel", job])  # (a job that ended: nothing to do)
    text = log.read_text()
    stopped = int(re.search(r"stopped by SIGTERM at iteration (\d+)", text)[1])
    assert 3 <= stopped < 40 and f"resumed from {tiny}/runs/readme/checkpoints/iter_{stopped}.pth" in text
    assert "batch 1 per process x 2 process(es)" in text
    assert (tiny / "runs" / "readme" / "checkpoints" / "iter_40.pth").is_file()


@needs_cluster
def test_without_submitit_nothing_is_submitted(tiny, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # as if not installed
    sweep = load_script("scripts/sweep")
    code, err = run_cli(sweep.main, ["--base", os.path.join(ROOT, "configs", "demo", "hdm_demo.yaml"), "--with",
                                     str(tiny / "with.yaml"), "--out", str(tiny / "sweep"), "--launcher", "slurm"], capsys)
    assert code == 2 and err == ['error: --launcher slurm: expected the submitit package (pip install -e ".[cluster]")']
    assert not (tiny / "sweep").exists()


@pytest.mark.parametrize("launcher,expected", [
    ("{time: 12:00:00}", "launcher.time: expected a quoted Slurm time"),
    ("{partitions: gpu}", "launcher.partitions: not a launcher setting"),
    ("{cpus_per_run: two}", "launcher.cpus_per_run: expected int, got 'two'"),
])
def test_a_bad_launcher_section_submits_nothing(tiny, capsys, launcher, expected):
    with_file = tiny / "with.yaml"
    with_file.write_text(with_file.read_text() + f"launcher: {launcher}\n")
    sweep = load_script("scripts/sweep")
    code, err = run_cli(sweep.main, ["--base", os.path.join(ROOT, "configs", "demo", "hdm_demo.yaml"), "--with",
                                     str(with_file), "--out", str(tiny / "sweep"), "--launcher", "slurm"], capsys)
    assert code == 2 and len(err) == 1 and expected in err[0], err
    assert not (tiny / "sweep").exists()
