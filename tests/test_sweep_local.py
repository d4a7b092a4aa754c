"""hdm/sweep/local.py: --jobs N runs each run in its own process, one GPU each (CUDA_VISIBLE_DEVICES)."""
from hdm.sweep import local
from hdm.sweep.record import load_record


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
