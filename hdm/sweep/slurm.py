"""The Slurm launcher: every (variant, seed) run of a sweep is one task of one Slurm job array, submitted
through submitit (the `cluster` extra). Resources come from the command line or the `launcher:` section of
the sweep's --with file; everything Slurm can tell before a submission is checked first (sbatch on PATH,
submitit installed, the controller answers, the partition exists, a node of it has the CPUs, memory, GPUs
and time asked for, and `sbatch --test-only` accepts the request), so a bad request submits nothing.

Each job gets SIGTERM `signal_before` seconds before its time limit (to the run's process: the engine saves
a checkpoint), requeues itself (hdm.sweep.worker) and continues from that checkpoint; so does a job that
is preempted or requeued. Its stdout and stderr are <out>/logs/<array>_<task>_0_log.out / .err.
"""
import importlib.util
import re
import shlex
import shutil
import subprocess

from hdm.errors import UsageError

# what the launcher: section and the command line set, with the kind of each value
OPTIONS = {"partition": str, "cpus_per_run": int, "gpus_per_run": int, "mem": str, "time": str, "account": str,
           "qos": str, "signal_before": int, "sbatch": dict}
DEFAULTS = {"cpus_per_run": 1, "gpus_per_run": 0, "time": "60", "signal_before": 300, "sbatch": {}}
# sbatch options the launcher writes itself: --sbatch may not set them
MANAGED = ("array", "output", "error", "signal", "job-name", "open-mode", "partition", "time", "cpus-per-task", "mem",
           "gpus-per-node", "account", "qos", "requeue")
QUEUED = ("PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "CONFIGURING", "SUSPENDED")


def launcher_options(section, cli):
    """The launcher's settings: DEFAULTS <- the --with file's `launcher:` section <- the command line (`cli`:
    {key: value or None}). UsageError naming the key for an unknown key or a value of the wrong kind."""
    options = dict(DEFAULTS)
    if section is not None:
        if not isinstance(section, dict):
            raise UsageError(f"launcher: expected a mapping of {', '.join(OPTIONS)}, got {type(section).__name__}")
        for key, value in section.items():
            if key not in OPTIONS:
                raise UsageError(f"launcher.{key}: not a launcher setting (expected one of {', '.join(OPTIONS)})")
            kind = OPTIONS[key]
            if key == "time" and not isinstance(value, str):  # YAML 1.1 reads 12:00:00 as 43200, a number
                raise UsageError(f"launcher.time: expected a quoted Slurm time such as \"90\" or \"12:00:00\" (YAML reads "
                                 f"12:00:00 unquoted as the number {12 * 3600}), got {value!r}")
            if kind is str and isinstance(value, (int, float)) and not isinstance(value, bool):
                value = str(value)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise UsageError(f"launcher.{key}: expected {kind.__name__}, got {value!r}")
            options[key] = value
    options.update({k: v for k, v in cli.items() if v is not None})
    for key in ("cpus_per_run", "signal_before"):
        if options[key] < 1:
            raise UsageError(f"--{key.replace('_', '-')} {options[key]}: expected a whole number >= 1")
    if options["gpus_per_run"] < 0:
        raise UsageError(f"--gpus-per-run {options['gpus_per_run']}: expected a whole number >= 0")
    for key in options["sbatch"]:
        if not re.fullmatch(r"[a-z][a-z0-9-]*", str(key)):
            raise UsageError(f"--sbatch {key}: expected an sbatch long option name (e.g. constraint=a100)")
        if key in MANAGED:
            raise UsageError(f"--sbatch {key}: set by the launcher itself (its own options: --partition, --cpus-per-run, "
                             f"--gpus-per-run, --mem, --time, --account, --qos, --signal-before)")
    minutes = time_minutes(options["time"])
    if options["signal_before"] >= minutes * 60:
        raise UsageError(f"--signal-before {options['signal_before']}: expected fewer seconds than --time "
                         f"{options['time']} ({minutes * 60} s)")
    if options.get("mem") is not None:
        memory_mb(options["mem"])
    return options


def parse_sbatch(items):
    """{key: value} of --sbatch key=value items (a bare key is a flag)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        out[key.strip().lstrip("-")] = value if sep else True
    return out


def time_minutes(text):
    """Minutes of a Slurm time: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S; UsageError otherwise."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", str(text).strip())
    if not match:
        raise UsageError(f"--time {text}: expected minutes or Slurm's [D-]HH:MM:SS")
    days, a, b, c = (int(g) if g else None for g in match.groups())
    if days is not None:  # D-H[:M[:S]]
        total = days * 1440 + a * 60 + (b or 0) + ((c or 0) + 59) // 60
    elif c is not None:  # H:M:S
        total = a * 60 + b + (c + 59) // 60
    elif b is not None:  # M:S
        total = a + (b + 59) // 60
    else:
        total = a
    if total < 1:
        raise UsageError(f"--time {text}: expected at least one minute")
    return total


def memory_mb(text):
    """Megabytes of a Slurm memory size (16G, 16000M, 16000, 1T); UsageError otherwise."""
    match = re.fullmatch(r"(\d+)([KMGT]?)B?", str(text).strip().upper())
    if not match:
        raise UsageError(f"--mem {text}: expected a size such as 16G or 16000M")
    scale = {"K": 1 / 1024, "M": 1, "": 1, "G": 1024, "T": 1024 ** 2}[match[2]]
    return int(int(match[1]) * scale)


def _run(command, what):
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise UsageError(f"--launcher slurm: {what} did not answer ({err})") from err
    return done


def check(options):
    """Everything Slurm can say before a submission (see the module doc); UsageError naming the option."""
    for tool in ("sbatch", "squeue", "sinfo", "scontrol"):
        if shutil.which(tool) is None:
            raise UsageError(f"--launcher slurm: {tool} is not on PATH; expected Slurm's client tools (or use "
                             f"--launcher local)")
    if importlib.util.find_spec("submitit") is None:
        raise UsageError('--launcher slurm: expected the submitit package (pip install -e ".[cluster]")')
    done = _run(["sinfo", "-h", "-e", "-o", "%P|%c|%m|%G|%l"], "sinfo")
    if done.returncode != 0:
        raise UsageError(f"--launcher slurm: the Slurm controller does not answer "
                         f"({(done.stderr.strip().splitlines() or ['sinfo failed'])[-1]})")
    nodes, default = {}, None
    for line in done.stdout.splitlines():
        name, cpus, mem, gres, limit = line.split("|")
        if name.endswith("*"):
            name = default = name[:-1]
        nodes.setdefault(name, []).append((int(cpus.rstrip("+")), int(re.sub(r"\D", "", mem) or 0), _gpus(gres), limit))
    partition = options.get("partition") or default
    if partition not in nodes:
        raise UsageError(f"--partition {partition}: not a partition of this cluster (expected one of "
                         f"{', '.join(sorted(nodes)) or 'none'})")
    groups = nodes[partition]
    asked = [("--cpus-per-run", options["cpus_per_run"], 0, "CPUs"), ("--gpus-per-run", options["gpus_per_run"], 2, "GPUs")]
    if options.get("mem"):
        asked.append(("--mem", memory_mb(options["mem"]), 1, "MB of memory"))
    for flag, value, index, unit in asked:
        most = max(group[index] for group in groups)
        if value > most:
            raise UsageError(f"{flag} {options[_key(flag)]}: the nodes of partition {partition} have at most {most} {unit}")
    limits = [group[3] for group in groups]
    if "infinite" not in limits:
        most = max(time_minutes(limit) for limit in limits)
        if time_minutes(options["time"]) > most:
            raise UsageError(f"--time {options['time']}: partition {partition} allows at most {most} minutes")
    test = _run(["sbatch", "--test-only", *sbatch_flags(options, partition), "--wrap=true"], "sbatch --test-only")
    if test.returncode != 0:
        reason = (test.stderr.strip().splitlines() or ["refused"])[-1].replace("sbatch: error: ", "")
        raise UsageError(f"--launcher slurm: Slurm refuses the request {' '.join(sbatch_flags(options, partition))} "
                         f"({reason})")
    return partition


def _key(flag):
    return flag[2:].replace("-", "_")


def _gpus(gres):
    match = re.search(r"gpu(?::[^:(,]+)?:(\d+)", gres)
    return int(match[1]) if match else 0


def sbatch_flags(options, partition):
    """The request as sbatch options (for --test-only and the record)."""
    flags = [f"--partition={partition}", f"--cpus-per-task={options['cpus_per_run']}", f"--time={time_minutes(options['time'])}"]
    if options["gpus_per_run"]:
        flags.append(f"--gpus-per-node={options['gpus_per_run']}")
    flags += [f"--{key}={options[key]}" for key in ("mem", "account", "qos") if options.get(key)]
    flags += [f"--{k}" if v is True else f"--{k}={v}" for k, v in options["sbatch"].items()]
    return flags


def submit(spec_paths, options, partition, logs_dir, job_name):
    """Submit one job array, a task per spec file; returns the tasks' job ids (<array>_<task>) in order."""
    import submitit

    from hdm.sweep.runs import python_path
    from hdm.sweep.worker import job

    executor = submitit.SlurmExecutor(folder=logs_dir, max_num_timeout=0)
    params = {"job_name": job_name, "partition": partition, "time": time_minutes(options["time"]),
              "cpus_per_task": options["cpus_per_run"],
              "setup": [f"export OMP_NUM_THREADS={options['cpus_per_run']}", f"export PYTHONPATH={shlex.quote(python_path())}"],
              "additional_parameters": {"signal": f"TERM@{options['signal_before']}", "requeue": True,
                                        **options["sbatch"]}}
    if options["gpus_per_run"]:
        params["gpus_per_node"] = options["gpus_per_run"]
    params.update({key: options[key] for key in ("mem", "account", "qos") if options.get(key)})
    executor.update_parameters(**params)
    try:
        jobs = executor.map_array(job, spec_paths)
    except Exception as err:  # noqa: BLE001 - submitit's failure (sbatch's message) in one line, nothing recorded
        raise RuntimeError(f"sbatch failed: {str(err).strip().splitlines()[-1] if str(err).strip() else err}") from err
    return [j.job_id for j in jobs]


def queue(job_name):
    """{job id: 'pending' | 'running'} of the jobs of this name in Slurm's queue (array tasks one by one);
    RuntimeError when squeue fails."""
    done = subprocess.run(["squeue", "-h", "-r", "--name", job_name, "-o", "%i|%T"], capture_output=True, text=True,
                          timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"squeue failed: {(done.stderr.strip().splitlines() or ['no message'])[-1]}")
    out = {}
    for line in done.stdout.splitlines():
        job_id, state = line.strip().split("|")
        out[job_id] = "pending" if state in QUEUED else "running"
    return out
