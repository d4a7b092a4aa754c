"""Run a set of variants (train + test, optionally several seeds) and write a table; locally or on Slurm.

    # one variant per config file (e.g. the paper's Table 5 rows), on the demo data:
    # doc-test: skip (five training runs; tests/test_ablations.py runs these configs on the demo data)
    python scripts/sweep.py --configs configs/ablations/table5_*.yaml --with configs/sweeps/demo.yaml
    # a grid of overrides over one base config, 3 runs at once, each its own process:
    python scripts/sweep.py --base configs/demo/hdm_demo.yaml --grid model.num_regions=1,3,5 --seeds 0 1 --jobs 3
    # the same as one Slurm job array (a job per run), then its state, then the table:
    # doc-test: skip (a Slurm cluster with a gpu partition; tests/test_slurm.py runs a sweep on the local cluster)
    python scripts/sweep.py --base ... --grid ... --seeds 0 1 --launcher slurm --partition gpu --gpus-per-run 1 --time 8:00:00
    # doc-test: skip (the Slurm sweep above; tests/test_slurm.py asks a sweep's state)
    python scripts/sweep.py --base ... --grid ... --seeds 0 1 --status       # pending/running/done/failed, last log line
    # doc-test: skip (the Slurm sweep above; tests/test_slurm.py collects a sweep's table)
    python scripts/sweep.py --base ... --grid ... --seeds 0 1 --collect      # the table of the finished runs

Each run lives in <out>/<variant>_s<seed>/ and writes result.json when its test is done, with the
digests of its resolved config, of the package's code and of the data. A result is reused only when
all match (a changed --set, --with, config or code runs it again; the old run folder is moved aside,
never deleted, and never while a process holds it), and an interrupted run continues from its newest
checkpoint. <out>/sweep.json records each launched run's job id and digests (docs/cluster.md): the same
command run again launches only what is missing, never a run that is pending or running, never a finished
one, and a failed one only with --retry-failed. One sweep command at a time works in a folder (<out>/.lock).
Each run is evaluated once: on data.test, or, when the config has none, on data.val, which is then not
also validated during training. The table (<out>/table.md, .csv, .tex, and psnr_cost.png/.pdf with
matplotlib) states the sweep's settings and has one row per variant: PSNR and SSIM (mean +- sample std over
seeds), parameters, MACs at --macs-size, wall time per run, and how many runs were reused; a first row
scores the degraded input the same way.

Slurm resources come from the options below or a `launcher:` section of the --with file (partition,
cpus_per_run, gpus_per_run, mem, time, account, qos, signal_before, sbatch: {key: value}); the options win.
"""
import contextlib
import hashlib
import itertools
import os
import shutil

from hdm.cli import Parser, UsageError, console, non_negative_int, positive_int
from hdm.config import parse_value, read_yaml
from hdm.errors import shown
from hdm.files import made_folder
from hdm.identity import name_key, path_key
from hdm.locks import FolderLock
from hdm.results import config_digest
from hdm.sweep import local, report, slurm
from hdm.sweep.record import adopt_submitted, live_state, load_record, logs_dir, note_launch, save_record
from hdm.sweep.runs import read_result, resolve, slug, write_spec


def variants_from_args(args):
    """[(label, config path, overrides)] in table order."""
    if args.configs:
        return [(label, p, list(args.set)) for label, p in zip(config_labels(args.configs), args.configs)]
    axes = []
    for spec in args.grid:
        key, _, values = spec.partition("=")
        if not values:
            raise UsageError(f"--grid {spec!r}: expected key=v1,v2,...")
        axes.append([(key, v) for v in values.split(",")])
    out = []
    for combo in itertools.product(*axes):
        label = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in combo) or "base"
        out.append((label, args.base, list(args.set) + [f"{k}={v}" for k, v in combo]))
    return out


def config_labels(paths):
    """A label per config file: its name, with as many of its parent folders as tell it from the others
    (a/x.yaml and b/x.yaml are a/x and b/x), unique also as run folder names (slug, compared as a
    case-insensitive filesystem would); one file listed twice is a UsageError."""
    seen = {}
    for path in paths:
        if path_key(path) in seen:
            raise UsageError(f"--configs lists {shown(seen[path_key(path)])} twice (also as {shown(path)})")
        seen[path_key(path)] = path
    parts = [os.path.splitext(os.path.normpath(os.path.abspath(p)))[0].split(os.sep) for p in paths]
    for depth in range(1, max(len(p) for p in parts) + 1):
        labels = ["/".join(p[-depth:]) for p in parts]
        if len({name_key(slug(label)) for label in labels}) == len(labels):
            return labels
    raise UsageError(f"--configs: no labels tell {', '.join(map(shown, paths))} apart")


def job_name(out_dir):
    """The Slurm job name of a sweep's jobs: one per sweep folder."""
    return "hdm-sweep-" + hashlib.sha256(os.path.realpath(out_dir).encode()).hexdigest()[:8]


def slurm_queue(record, out_dir):
    """{job id: state} of the sweep's jobs in Slurm's queue ({} when it launched none on Slurm)."""
    if not any(e.get("launcher") == "slurm" for e in record["runs"].values()) and not record.get("submitting"):
        return {}
    if shutil.which("squeue") is None:
        raise UsageError(f"{shown(out_dir)}: its runs are Slurm jobs, but squeue is not on PATH (run this on the cluster)")
    return slurm.queue(job_name(out_dir))


def states(specs, record, out_dir, queue):
    return {s["name"]: live_state(out_dir, s, record["runs"].get(s["name"]), queue) for s in specs}


def print_status(specs, record, now):
    """The live table: one line per run, then the counts."""
    rows = [{"run": s["name"], "variant": s["label"], "seed": s["seed"], "state": now[s["name"]][0],
             "job": (record["runs"].get(s["name"]) or {}).get("job_id") or "-", "last line": now[s["name"]][1]}
            for s in specs]
    widths = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in ("run", "variant", "seed", "state", "job")}
    print("  ".join(k.ljust(w) for k, w in widths.items()) + "  last line")
    for r in rows:
        print("  ".join(str(r[k]).ljust(w) for k, w in widths.items()) + f"  {r['last line']}")
    counts = {state: sum(r["state"] == state for r in rows) for state in ("done", "running", "pending", "failed", "missing")}
    print(", ".join(f"{n} {state}" for state, n in counts.items()))
    return rows


def write_table(specs, variants, out_dir, args, reused=()):
    """The table of the finished runs (read from their result.json); returns its rows."""
    results = []
    for spec in specs:
        result = read_result(out_dir, spec["name"], spec["digests"])
        if result is not None:
            results.append({**result, "reused": spec["name"] in reused})
    if not results:
        raise UsageError(f"{shown(out_dir)}: no finished run of this sweep yet; --status shows where they are")
    rows = report.table(results, [v[0] for v in variants])
    done = len({r["label"] for r in results})
    title = args.title or (f"{done} variants, metric preset {results[0]['preset']}, {results[0]['images']} test image(s)")
    settings = (f"settings: {'--configs ' + ' '.join(args.configs) if args.configs else '--base ' + args.base}"
                f"{''.join(' --grid ' + g for g in args.grid)}{' --with ' + args.with_file if args.with_file else ''}"
                f"{''.join(' --set ' + v for v in args.set)}; seeds {' '.join(map(str, args.seeds))}; code "
                f"{results[0]['code_digest']}")
    text, paths = report.write_all(rows, out_dir, title, settings, args.macs_size)
    print(text)
    print(f"written: {', '.join(map(shown, paths))}")
    missing = len(specs) - len(results)
    if missing:
        print(f"{missing} of {len(specs)} runs missing from the table (not finished); --status shows them")
    return rows


SLURM_OPTIONS = ("partition", "cpus_per_run", "gpus_per_run", "mem", "time", "account", "qos", "signal_before")


def parse_args(argv):
    parser = Parser(__doc__)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--configs", nargs="+", help="one variant per config file")
    what.add_argument("--base", help="a base config for --grid")
    parser.add_argument("--grid", action="append", default=[], help="key=v1,v2,... (repeatable: a cartesian product)")
    parser.add_argument("--with", dest="with_file", default=None,
                        help="YAML of shared settings merged over every variant (e.g. configs/sweeps/demo.yaml); "
                             "its launcher: section sets the Slurm resources")
    parser.add_argument("--set", action="append", default=[], help="an override for every variant (repeatable)")
    parser.add_argument("--seeds", type=non_negative_int, nargs="+", default=[0])
    parser.add_argument("--out", default=None, help="sweep folder (default runs/sweeps/<name of the first config>)")
    parser.add_argument("--title", default=None)
    parser.add_argument("--macs-size", type=positive_int, nargs=2, default=(256, 256), metavar=("H", "W"),
                        help="input size of the MACs column (default 256 256)")
    parser.add_argument("--launcher", choices=("local", "slurm"), default="local",
                        help="local: in this process (or --jobs processes); slurm: one job array, a job per run")
    parser.add_argument("--jobs", type=positive_int, default=1, help="local: runs at once, each its own process (default 1: "
                                                            "one after another in this process)")
    parser.add_argument("--status", action="store_true", help="print each run's state and last log line; launch nothing")
    parser.add_argument("--collect", action="store_true", help="write the table of the finished runs; launch nothing")
    parser.add_argument("--retry-failed", action="store_true", help="launch failed runs again (from their checkpoint)")
    group = parser.add_argument_group("Slurm (--launcher slurm)")
    group.add_argument("--partition", default=None, help="default: the cluster's default partition")
    group.add_argument("--cpus-per-run", type=int, default=None, help="CPUs of each job (default 1)")
    group.add_argument("--gpus-per-run", type=int, default=None, help="GPUs of each job (default 0)")
    group.add_argument("--mem", default=None, help="memory of each job, e.g. 16G (default: the partition's)")
    group.add_argument("--time", default=None, help="time limit of each job: minutes or [D-]HH:MM:SS (default 60)")
    group.add_argument("--account", default=None)
    group.add_argument("--qos", default=None)
    group.add_argument("--signal-before", type=int, default=None,
                       help="seconds before the time limit when a job gets SIGTERM, saves and requeues (default 300)")
    group.add_argument("--sbatch", action="append", default=[], metavar="KEY=VALUE",
                       help="any other sbatch option (repeatable), e.g. constraint=a100")
    args = parser.parse(argv)
    if args.grid and not args.base:
        parser.error("--grid needs --base")
    if len(set(args.seeds)) < len(args.seeds):
        parser.error(f"--seeds {' '.join(map(str, args.seeds))}: a seed given twice would count one run twice")
    if args.status and args.collect:
        parser.error("--status and --collect: expected one of them")
    if args.launcher == "slurm" and args.jobs != 1:
        parser.error("--jobs is the local launcher's; Slurm runs as many jobs at once as it schedules")
    given = [key for key in SLURM_OPTIONS if getattr(args, key) is not None] + (["sbatch"] if args.sbatch else [])
    if args.launcher == "local" and given:
        parser.error(f"--{given[0].replace('_', '-')}: expected with --launcher slurm only")
    for item in args.set:
        if "=" not in item:
            parser.error(f"--set {item!r}: expected key.path=value")
        parse_value(item.split("=", 1)[1])
    return args


def main(argv=None):
    args = parse_args(argv)
    extra = read_yaml(args.with_file) if args.with_file else None
    section = extra.pop("launcher", None) if isinstance(extra, dict) else None
    launching = not (args.status or args.collect)
    if args.launcher == "slurm" and launching:  # what Slurm can refuse, before any config is read
        cli = {key: getattr(args, key) for key in SLURM_OPTIONS}
        options = slurm.launcher_options(section, {**cli, "sbatch": slurm.parse_sbatch(args.sbatch) or None})
        partition = slurm.check(options)
    elif section is not None and not isinstance(section, dict):
        raise UsageError(f"{shown(args.with_file)}: launcher: expected a mapping, got {type(section).__name__}")
    variants = variants_from_args(args)
    first = args.configs[0] if args.configs else args.base
    out_dir = args.out or os.path.join("runs", "sweeps", os.path.splitext(os.path.basename(first))[0])
    if args.collect and not os.path.isdir(out_dir):
        raise UsageError(f"{shown(out_dir)}: no sweep there to collect (launch it first, or give its --out)")
    with contextlib.ExitStack() as claim:
        if not args.status:  # one live sweep command per folder (--status only reads); a folder made here is
            claim.enter_context(made_folder(out_dir))  # removed again when the command fails before any run
            claim.enter_context(FolderLock(out_dir, "wait for it or use another --out"))
        cache = {}  # the data sections read, once each
        specs = [resolve(label, path, overrides, extra, seed, out_dir, args.macs_size, cache, check=launching)  # all first
                 for label, path, overrides in variants for seed in args.seeds]
        names = [name_key(s["name"]) for s in specs]
        shared = [s["name"] for s, key in zip(specs, names) if names.count(key) > 1]
        if shared:
            raise UsageError(f"two variants would share the run folder {shown(shared[0])}; give them labels that differ")
        same = {}
        for spec in specs:  # one config under two labels (3 and 03 are one number) would count one run twice
            other = same.setdefault(config_digest({**spec["config"], "name": None}), spec["label"])
            if other != spec["label"]:
                raise UsageError(f"variants {other!r} and {spec['label']!r} resolve to the same config: one run counted "
                                 f"twice; give each variant a config of its own")
        if args.status:
            record = load_record(out_dir)
            return print_status(specs, record, states(specs, record, out_dir, slurm_queue(record, out_dir)))
        record = load_record(out_dir)
        queue = slurm_queue(record, out_dir)
        if adopt_submitted(record, queue):
            save_record(out_dir, record)
        now = states(specs, record, out_dir, queue)
        if args.collect:
            return write_table(specs, variants, out_dir, args)
        todo = [s for s in specs if now[s["name"]][0] == "missing" or (now[s["name"]][0] == "failed" and args.retry_failed)]
        busy = [s["name"] for s in specs if now[s["name"]][0] in ("pending", "running")]
        failed = [s["name"] for s in specs if now[s["name"]][0] == "failed" and not args.retry_failed]
        done = {s["name"] for s in specs if now[s["name"]][0] == "done"}
        if busy:
            print(f"{len(busy)} run(s) pending or running, not launched again: {', '.join(busy)}")
        if failed:
            print(f"{len(failed)} failed run(s) not launched again (--status shows why; --retry-failed launches "
                  f"them): {', '.join(failed)}")
        if args.launcher == "slurm":
            return submit(todo, record, out_dir, options, partition)
        if args.jobs == 1:
            local.run_here(todo, record, out_dir)
            lost = []
        else:
            lost = local.run_processes(todo, record, out_dir, args.jobs)
    rows = write_table(specs, variants, out_dir, args, reused=done)
    if lost or failed or busy:
        raise RuntimeError(f"{len(lost) + len(failed)} run(s) failed and {len(busy)} still run: the table has the "
                           f"finished ones; --status shows the others")
    return rows


def submit(specs, record, out_dir, options, partition):
    """One job array for `specs` (none: nothing to submit); returns the job ids."""
    if not specs:
        print("nothing to submit: every run is finished, pending or running (--status shows them)")
        return []
    paths = [write_spec(spec) for spec in specs]
    name = job_name(out_dir)
    record["submitting"] = {"job_name": name, "runs": [{"name": s["name"], "label": s["label"], "seed": s["seed"],
                                                        "digests": s["digests"]} for s in specs]}
    save_record(out_dir, record)
    ids = slurm.submit(paths, options, partition, logs_dir(out_dir), name)
    for spec, job_id in zip(specs, ids):
        note_launch(record, spec, "slurm", job_id)
    record["submitting"] = None
    save_record(out_dir, record)
    print(f"submitted {len(ids)} run(s) as Slurm job array {ids[0].split('_')[0]} ({name}, partition {partition}); "
          f"logs in {logs_dir(out_dir)}; follow with --status, write the table with --collect")
    return ids


if __name__ == "__main__":
    console(main)
