"""The sweep record, <out>/sweep.json: one entry per launched run (label, seed, digests, launcher, job id,
when), written atomically after every change, so a sweep command killed at any moment (kill -9) leaves it
as it was before or after a change, never half of one. Before an array is submitted the record names its
runs in order ("submitting"); a command killed between sbatch and the record's update leaves the jobs
in Slurm's queue under the sweep's job name, and the next command adopts them instead of submitting again.

A run's live state comes from its result, Slurm's queue, its process and its own state file:
    done     result.json computed with the run's digests
    pending  waiting in Slurm's queue (also after a requeue)
    running  a Slurm job that runs, or a live local process (other than this one)
    failed   ended with its one-line error, or a Slurm job that left the queue without a result
    missing  never launched, launched with another config, stopped by a signal or Ctrl-C, or a local run
             whose process is gone without a word (continued from its checkpoint when launched)
"""
import json
import os
import re
import time

from hdm.errors import RunFolderError, shown
from hdm.files import HOST, atomic_write, process_alive
from hdm.sweep.runs import read_result, read_state

RECORD = "sweep.json"


def load_record(out_dir):
    path = os.path.join(out_dir, RECORD)
    if not os.path.isfile(path):
        return {"runs": {}, "submitting": None}
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError) as err:
        raise RunFolderError(f"{shown(path)}: not a readable sweep record ({type(err).__name__}); move it aside") from err
    if not isinstance(record, dict) or not isinstance(record.get("runs"), dict):
        raise RunFolderError(f"{shown(path)}: not a sweep record (expected a mapping with 'runs'); move it aside")
    record.setdefault("submitting", None)
    return record


def save_record(out_dir, record):
    with atomic_write(os.path.join(out_dir, RECORD), "w") as f:
        json.dump(record, f, indent=1)


def note_launch(record, spec, launcher, job_id):
    record["runs"][spec["name"]] = {"label": spec["label"], "seed": spec["seed"], "digests": spec["digests"],
                                    "launcher": launcher, "job_id": job_id, "since": time.strftime("%Y-%m-%d %H:%M:%S")}


def adopt_submitted(record, queue):
    """Job ids for the runs of an array submitted by a command killed before it recorded them: the tasks of
    an array in Slurm's queue that the record does not know, by task index. Returns whether it changed."""
    pending = record.get("submitting")
    if not pending:
        return False
    known = {entry.get("job_id") for entry in record["runs"].values()}
    arrays = {job.split("_")[0] for job in queue if "_" in job and job not in known}
    if len(arrays) == 1:
        array = arrays.pop()
        for job in queue:
            head, _, task = job.partition("_")
            if head == array and task.isdigit() and int(task) < len(pending["runs"]):
                spec = pending["runs"][int(task)]
                record["runs"][spec["name"]] = {**spec, "job_id": job, "launcher": "slurm"}
    record["submitting"] = None
    return True


def live_state(out_dir, spec, entry, queue):
    """(state, line) of a run (see the module doc): `spec` as resolved now, `entry` its record (None: never
    launched); a failure of a run launched with other digests does not count for this one."""
    name = spec["name"]
    result = read_result(out_dir, name, spec["digests"])
    if result is not None:
        return "done", f"PSNR {result['psnr']:.2f} dB, SSIM {result['ssim']:.4f}"
    if entry is None:
        return "missing", ""
    job = entry.get("job_id")
    other = "" if entry.get("digests") == spec["digests"] else " (launched with another config, code or data)"
    if job in queue:
        return queue[job], log_tail(out_dir, name, job) + other
    local = re.fullmatch(r"local:(?P<host>.+):(?P<pid>\d+)", job or "")
    if local and local["host"] == HOST and int(local["pid"]) != os.getpid() and process_alive(int(local["pid"])):
        return "running", log_tail(out_dir, name, job) + other
    own = read_state(out_dir, name)
    own = own if own is not None and own.get("job_id") == job else None
    if other or (own is not None and own.get("state") == "stopped"):
        return "missing", (own or {}).get("line", "")
    if own is not None and own.get("state") == "failed":
        return "failed", own.get("line", "")
    if local:  # its process is gone with the sweep command (killed, or the machine went down): continued
        return "missing", "interrupted"
    tail = log_tail(out_dir, name, job)
    return "failed", f"job {job} ended without a result{': ' + tail if tail else ''}"


def logs_dir(out_dir):
    return os.path.join(out_dir, "logs")


def log_files(out_dir, name, job):
    """The run's logs: its Slurm job's stdout and stderr (submitit's names), a local process's, train.log."""
    logs = logs_dir(out_dir)
    files = [os.path.join(logs, f"{name}.out"), os.path.join(logs, f"{name}.err"),
             os.path.join(out_dir, name, "train.log")]
    if job and not job.startswith("local:"):
        files += [os.path.join(logs, f"{job}_0_log.out"), os.path.join(logs, f"{job}_0_log.err")]
    return [f for f in files if os.path.isfile(f)]


def log_tail(out_dir, name, job):
    """The last non-empty line of the run's most recently written log ('' without one)."""
    files = sorted(log_files(out_dir, name, job), key=os.path.getmtime)
    for path in reversed(files):
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 4096))
            lines = [line.strip() for line in f.read().decode("utf-8", "replace").replace("\r", "\n").splitlines()]
        lines = [line for line in lines if line]
        if lines:
            return lines[-1][:160]
    return ""
