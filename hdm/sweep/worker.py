"""What one run's process executes: a Slurm job of a sweep (through submitit) or a local --jobs process.

    python -m hdm.sweep.worker <out>/jobs/<name>.spec.json

It records its state beside its spec (running, then done, failed with its one-line error, or stopped by a
signal), trains and tests the run (continuing from its newest checkpoint), and writes result.json. A Slurm
job stopped by SIGTERM (preemption, `scancel --signal=TERM`, the signal before its time limit) saves a
checkpoint and requeues itself, so it continues where it stopped. Failures are one line on stderr with the
tools' exit codes (hdm.cli.console).
"""
import json
import os
import sys

from hdm.cli import console
from hdm.sweep.runs import local_job_id, run_one, write_end, write_state


def slurm_job_id():
    """This job's id as squeue shows it (<array>_<task> for an array task), None outside Slurm."""
    if "SLURM_ARRAY_JOB_ID" in os.environ:
        return f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_JOB_ID")


def main(argv=None):
    from hdm.engine import StoppedBySignal

    (path,) = argv if argv is not None else sys.argv[1:]
    with open(path, encoding="utf-8") as f:
        spec = json.load(f)
    out_dir, name = spec["out_dir"], spec["name"]
    job_id = slurm_job_id() or local_job_id()
    write_state(out_dir, name, job_id, "running")
    try:
        result = run_one(spec)
    except BaseException as err:  # recorded, then reported by console() as one line
        write_end(out_dir, name, job_id, err)
        if isinstance(err, StoppedBySignal) and "SLURM_JOB_ID" in os.environ:
            _requeue(os.environ["SLURM_JOB_ID"])
        raise
    write_state(out_dir, name, job_id, "done", f"PSNR {result['psnr']:.2f} dB, SSIM {result['ssim']:.4f}")
    return 0


def _requeue(job_id):
    """Put this Slurm job back in the queue (it was stopped by a signal, with a checkpoint saved). Slurm
    refuses a job cancelled for good or one already requeued (`scontrol requeue`): nothing to do then."""
    import subprocess

    try:
        subprocess.run(["scontrol", "requeue", job_id], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        pass


def job(path):
    """The callable submitit runs in a Slurm job: the worker as a command (one line and an exit code)."""
    console(main, [path])


if __name__ == "__main__":
    console(main)
