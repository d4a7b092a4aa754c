"""The local launcher: the runs one after another in the sweep's own process (--jobs 1, the default), or N
at once, each its own process (`python -m hdm.sweep.worker SPEC`, stdout and stderr in <out>/logs/<name>.out
and .err). With several GPUs each process gets its own CUDA_VISIBLE_DEVICES (its slot among the N, over the
GPUs in turn); each gets an equal share of the CPU threads unless OMP_NUM_THREADS is set."""
import os
import subprocess
import sys
import time

from hdm.sweep.record import logs_dir, note_launch, save_record
from hdm.sweep.runs import local_job_id, python_path, read_state, run_one, write_end, write_spec, write_state


def visible_gpus():
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES names them."""
    if os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
        return [g for g in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if g.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def run_here(specs, record, out_dir):
    """Each run in this process, in order; a failure is recorded and ends the sweep (today's behaviour)."""
    job_id = local_job_id()
    for spec in specs:
        print(f"== {spec['label']} (seed {spec['seed']})", flush=True)
        note_launch(record, spec, "local", job_id)
        save_record(out_dir, record)
        write_state(out_dir, spec["name"], job_id, "running")
        try:
            run_one(spec)
        except BaseException as err:
            write_end(out_dir, spec["name"], job_id, err)
            raise
        write_state(out_dir, spec["name"], job_id, "done")


def run_processes(specs, record, out_dir, jobs):
    """Up to `jobs` runs at once, each its own process; returns the names of the runs that failed."""
    gpus, waiting, running, failed = visible_gpus(), list(specs), {}, []
    slots = list(range(jobs))
    os.makedirs(logs_dir(out_dir), exist_ok=True)
    while waiting or running:
        while waiting and slots:
            spec, slot = waiting.pop(0), slots.pop(0)
            env = {**os.environ, "PYTHONPATH": python_path()}
            if gpus:
                env["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
            env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // jobs)))
            base = os.path.join(logs_dir(out_dir), spec["name"])
            with open(base + ".out", "ab") as out, open(base + ".err", "ab") as err:
                proc = subprocess.Popen([sys.executable, "-m", "hdm.sweep.worker", write_spec(spec)], stdout=out,
                                        stderr=err, env=env)
            note_launch(record, spec, "local", local_job_id(proc.pid))
            save_record(out_dir, record)
            running[proc] = (spec, slot)
            print(f"== {spec['label']} (seed {spec['seed']}): process {proc.pid}"
                  f"{', GPU ' + env['CUDA_VISIBLE_DEVICES'] if gpus else ''}", flush=True)
        time.sleep(0.2)
        for proc in [p for p in running if p.poll() is not None]:
            spec, slot = running.pop(proc)
            slots.append(slot)
            if proc.returncode == 0:
                print(f"   {spec['name']}: done", flush=True)
                continue
            failed.append(spec["name"])
            own = read_state(out_dir, spec["name"]) or {}
            print(f"   {spec['name']}: failed (exit code {proc.returncode}): {own.get('line', '')}", flush=True)
    return failed
