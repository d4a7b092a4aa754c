"""torchrun with two gloo processes (two nodes on localhost) trains the same weights as one process with the same
global batch, and stops with one line when one of them is killed."""
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
import yaml

from hdm.checkpoint import load_checkpoint
from hdm.data.demo import make_demo
from hdm.data.sampler import EpochSampler

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_sampler_shards_whole_global_batches():
    single = [k for k in EpochSampler(7, 0, batch=2)]
    shards = [list(EpochSampler(7, 0, batch=1, rank=r, world=2)) for r in (0, 1)]
    assert len(single) == 6 and len(shards[0]) == len(shards[1]) == 3  # one sample left over: dropped
    # global batch j of the single process = {rank 0's j-th, rank 1's j-th}
    for j in range(3):
        assert {shards[0][j], shards[1][j]} == set(single[2 * j:2 * j + 2])


def test_two_nodes_of_one_gloo_process_equal_one_process(tmp_path):
    """Multi-node as the README documents it: two torchrun agents (here both on localhost) meet through the c10d
    rendezvous, one process each, and train the same weights as one process with the same global batch."""
    root = make_demo("haze", str(tmp_path / "haze"), samples_per_photo=2)
    cfg = {"work_dir": str(tmp_path / "runs"), "seed": 5,
           "model": {"type": "HDM", "dim": 8, "groups": 1, "blocks_per_group": 1},
           "data": {"train": {"type": "PairedFolder", "lq_dir": f"{root}/train/hazy", "gt_dir": f"{root}/train/clear",
                              "crop": 32, "augment": True}},
           "optim": {"lr": 1e-3},
           "train": {"iterations": 5, "save_every": 5, "log_every": 1}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1", "--rdzv_backend=c10d",
               f"--rdzv_endpoint=127.0.0.1:{port}", "--rdzv_id=hdm-test", os.path.join(ROOT, "train.py"), "-c", str(path),
               "name=ddp", "train.batch_size=2"]
    nodes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
             for _ in range(2)]
    try:
        outputs = [node.communicate(timeout=180)[0] for node in nodes]  # a hang at exit fails here
    finally:
        for node in nodes:
            node.kill()
    assert [node.returncode for node in nodes] == [0, 0], "\n".join(outputs)
    assert any("batch 2 per process x 2 process(es) = 4 global" in out for out in outputs)
    single = subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), "-c", str(path), "name=single",
                             "train.batch_size=4"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert single.returncode == 0, single.stderr
    a = load_checkpoint(str(tmp_path / "runs" / "ddp" / "checkpoints" / "iter_5.pth"))["model"]
    b = load_checkpoint(str(tmp_path / "runs" / "single" / "checkpoints" / "iter_5.pth"))["model"]
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5
    assert any(not torch.equal(a[k], torch.zeros_like(a[k])) for k in a)


def test_when_one_process_is_killed_the_other_stops_with_one_line(tmp_path):
    root = make_demo("haze", str(tmp_path / "haze"), samples_per_photo=2)
    cfg = {"work_dir": str(tmp_path / "runs"), "name": "killed", "model": {"type": "HDM", "dim": 8, "groups": 1,
                                                                           "blocks_per_group": 1},
           "data": {"train": {"type": "PairedFolder", "lq_dir": f"{root}/train/hazy", "gt_dir": f"{root}/train/clear",
                              "crop": 32}},
           "train": {"iterations": 10000, "batch_size": 1, "save_every": 5, "log_every": 1}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # --monitor-interval 30: torchrun's agent would otherwise notice the dead worker within 0.1 s and SIGTERM the
    # survivor before it meets the lost connection itself (what this test is about)
    proc = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             "--monitor-interval=30", os.path.join(ROOT, "train.py"), "-c", str(tmp_path / "c.yaml")],
                            stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
    try:
        log = tmp_path / "runs" / "killed" / "train.log"
        for _ in range(600):  # up to 5 minutes on a loaded machine; seconds otherwise
            if log.is_file() and "saved" in log.read_text() and "iter 7/" in log.read_text():
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"no checkpoint and iteration 7 in 5 minutes: {log.read_text() if log.is_file() else ''}")
        workers = [int(p) for p in os.listdir("/proc") if p.isdigit() and _parent(int(p)) == proc.pid]
        rank1 = next(p for p in workers if b"\0RANK=1\0" in b"\0" + open(f"/proc/{p}/environ", "rb").read())
        os.kill(rank1, signal.SIGKILL)
        out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    ours = [line for line in out.splitlines() if line.startswith("training stopped:")]
    assert len(ours) == 1 and "process 0 of 2 lost its connection to another training process" in ours[0], out
    assert re.search(r"the newest checkpoint is \S+/checkpoints/iter_\d+\.pth; continue with --resume auto$", ours[0])
    assert "Connection reset" not in out and "terminate called" not in out


def _parent(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None
