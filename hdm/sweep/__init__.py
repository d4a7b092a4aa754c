"""Sweeps (scripts/sweep.py): many (variant, seed) runs of train + test, each in its own run folder of the
sweep folder, launched in this process, as local processes, or as one Slurm job array, and recorded so
that a sweep command run again continues it.

    runs.py     one run: its resolved config and digests (its spec), train + test, result.json
    record.py   the sweep record (<out>/sweep.json) and each run's live state
    local.py    the local launcher: in this process, or N processes at once (--jobs)
    slurm.py    the Slurm launcher: checks before submission, one job array through submitit, the queue
    worker.py   what one run's process executes (a Slurm job, a local --jobs process)
    report.py   the table: Markdown, CSV, LaTeX, and PSNR against cost as a plot
"""
