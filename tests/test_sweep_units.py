"""hdm/sweep without a cluster: --jobs N gives each run its own process and GPU (local.py); the record adopts the
jobs of an array whose submitting command was killed before it recorded them, and tells states apart (record.py)."""
import json

from hdm.sweep import local
from hdm.sweep.record import adopt_submitted, live_state, load_record, save_record


class _Done:
    """A process that has ended with 0."""
    pids = iter(range(40000, 40100))

    def __init__(self, command, stdout, stderr, env):
        self.command, self.env, self.pid, self.returncode = command, env, next(self.pids), 0

    def poll(self):
        return 0


def test_each_process_gets_its_own_gpu_and_its_share_of_threads(tmp_path, monkeypatch):
    started = []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(local.subprocess, "Popen", lambda *a, **k: started.append(_Done(*a, **k)) or started[-1])
    monkeypatch.setattr(local.os, "cpu_count", lambda: 8)
    specs = [{"name": f"r{i}", "label": "x", "seed": i, "digests": {}, "out_dir": str(tmp_path), "config": {}} for i in range(3)]
    record = {"runs": {}, "submitting": None}
    assert local.run_processes(specs, record, str(tmp_path), jobs=2) == []
    assert [p.env["CUDA_VISIBLE_DEVICES"] for p in started] == ["3", "5", "3"]  # a freed slot's GPU goes to the next run
    assert {p.env["OMP_NUM_THREADS"] for p in started} == {"4"}
    assert all(p.command[1:3] == ["-m", "hdm.sweep.worker"] for p in started)
    runs = load_record(str(tmp_path))["runs"]  # each run's job id: its process
    assert [runs[f"r{i}"]["job_id"].rsplit(":", 1)[1] for i in range(3)] == [str(p.pid) for p in started]


def _spec(tmp_path, name, digests):
    return {"name": name, "label": "x", "seed": 0, "digests": digests, "out_dir": str(tmp_path)}


def test_a_killed_submission_is_adopted_not_submitted_twice(tmp_path):
    runs = [{"name": f"r{i}", "label": "x", "seed": i, "digests": {"config_digest": "c"}} for i in range(3)]
    record = {"runs": {}, "submitting": {"job_name": "hdm-sweep-x", "runs": runs}}
    save_record(str(tmp_path), record)  # what a command killed right after sbatch leaves
    queue = {"77_0": "running", "77_1": "pending", "77_2": "pending"}
    record = load_record(str(tmp_path))
    assert adopt_submitted(record, queue) and record["submitting"] is None
    assert {n: e["job_id"] for n, e in record["runs"].items()} == {"r0": "77_0", "r1": "77_1", "r2": "77_2"}
    states = [live_state(str(tmp_path), _spec(tmp_path, n, {"config_digest": "c"}), record["runs"][n], queue)[0]
              for n in ("r0", "r1", "r2")]
    assert states == ["running", "pending", "pending"]


def test_states_of_runs_that_left_the_queue(tmp_path):
    spec = _spec(tmp_path, "r0", {"config_digest": "c"})
    entry = {"job_id": "9_0", "launcher": "slurm", "digests": {"config_digest": "c"}}
    (tmp_path / "jobs").mkdir()
    state = tmp_path / "jobs" / "r0.state.json"
    assert live_state(str(tmp_path), spec, None, {}) == ("missing", "")
    assert live_state(str(tmp_path), spec, entry, {})[0] == "failed"  # gone without a word
    state.write_text(json.dumps({"job_id": "9_0", "state": "failed", "line": "data error: x.png: truncated PNG"}))
    assert live_state(str(tmp_path), spec, entry, {}) == ("failed", "data error: x.png: truncated PNG")
    state.write_text(json.dumps({"job_id": "9_0", "state": "stopped", "line": "stopped by SIGTERM at iteration 4"}))
    assert live_state(str(tmp_path), spec, entry, {})[0] == "missing"  # continued by the next launch
    assert live_state(str(tmp_path), {**spec, "digests": {"config_digest": "other"}}, entry, {"9_0": "running"})[0] == "running"
    (tmp_path / "r0").mkdir()
    (tmp_path / "r0" / "result.json").write_text(json.dumps({"config_digest": "c", "psnr": 20.0, "ssim": 0.8}))
    assert live_state(str(tmp_path), spec, entry, {}) == ("done", "PSNR 20.00 dB, SSIM 0.8000")
