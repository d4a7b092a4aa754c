"""A sweep's table from its results: one row per variant (mean +- sample std over seeds), after a row that
scores the degraded input the same way; written as Markdown and CSV, as a LaTeX table (booktabs, best
values bold) and, when matplotlib is installed, as a plot of PSNR against GMACs and against parameters
(PNG and PDF)."""
import csv
import os
import statistics

from hdm.files import atomic_write

INPUT = "input (degraded)"


def mean_std(values):
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def table(results, labels):
    """Rows (dicts) aggregated over seeds, in the order of `labels` (a label without results has no row),
    after a row for the degraded input."""
    (ip, ips), (iss, isss) = mean_std([r["input_psnr"] for r in results]), mean_std([r["input_ssim"] for r in results])
    rows = [{"variant": INPUT, "psnr_mean": ip, "psnr_std": ips, "ssim_mean": iss, "ssim_std": isss,
             "params": 0, "macs": 0, "seeds": len({r["seed"] for r in results}), "wall_s_per_run": 0.0, "reused": ""}]
    for label in labels:
        runs = [r for r in results if r["label"] == label]
        if not runs:
            continue
        (p, ps), (s, ss) = mean_std([r["psnr"] for r in runs]), mean_std([r["ssim"] for r in runs])
        rows.append({"variant": label, "psnr_mean": p, "psnr_std": ps, "ssim_mean": s, "ssim_std": ss,
                     "params": runs[0]["params"], "macs": runs[0]["macs"], "seeds": len(runs),
                     "wall_s_per_run": statistics.mean(r["train_s"] + r["test_s"] for r in runs),
                     "reused": f"{sum(r['reused'] for r in runs)} of {len(runs)}"})
    return rows


def markdown(rows, title, settings, macs_size):
    lines = [f"### {title}", "", settings, "",
             f"| variant | PSNR (dB) | SSIM | params | GMACs at {macs_size[0]}x{macs_size[1]} | seeds | wall time per run "
             f"| reused |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["variant"] == INPUT:
            lines.append(f"| {r['variant']} | {r['psnr_mean']:.2f} | {r['ssim_mean']:.4f} | - | - | - | - | - |")
            continue
        lines.append(f"| {r['variant']} | {r['psnr_mean']:.2f} ± {r['psnr_std']:.2f} | {r['ssim_mean']:.4f} ± "
                     f"{r['ssim_std']:.4f} | {r['params']:,} | {r['macs'] / 1e9:.3f} | {r['seeds']} | "
                     f"{r['wall_s_per_run']:.0f} s | {r['reused']} |")
    return "\n".join(lines) + "\n"


LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
                 "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_text(text):
    return "".join(LATEX_SPECIAL.get(c, c) for c in text)


def latex(rows, caption, macs_size):
    """A booktabs table: PSNR and SSIM as mean $\\pm$ std over seeds, the best variant's value bold in each
    (ties: all of them, compared as printed), parameters in millions, GMACs."""
    variants = [r for r in rows if r["variant"] != INPUT]
    best_psnr = max((f"{r['psnr_mean']:.2f}" for r in variants), key=float, default=None)
    best_ssim = max((f"{r['ssim_mean']:.4f}" for r in variants), key=float, default=None)

    def cell(mean, std, digits, best):
        text = f"{mean:.{digits}f} \\pm {std:.{digits}f}"
        return f"$\\mathbf{{{text}}}$" if f"{mean:.{digits}f}" == best else f"${text}$"

    lines = [r"\begin{table}[t]", r"\centering", f"\\caption{{{latex_text(caption)}}}", r"\begin{tabular}{lrrrr}",
             r"\toprule", f"Variant & PSNR (dB) & SSIM & Params (M) & GMACs ({macs_size[0]}$\\times${macs_size[1]}) \\\\",
             r"\midrule"]
    for r in rows:
        if r["variant"] == INPUT:
            lines.append(f"Input & ${r['psnr_mean']:.2f}$ & ${r['ssim_mean']:.4f}$ & -- & -- \\\\")
            lines.append(r"\midrule")
            continue
        lines.append(f"{latex_text(r['variant'])} & {cell(r['psnr_mean'], r['psnr_std'], 2, best_psnr)} & "
                     f"{cell(r['ssim_mean'], r['ssim_std'], 4, best_ssim)} & {r['params'] / 1e6:.3f} & "
                     f"{r['macs'] / 1e9:.3f} \\\\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def plot(rows, base, macs_size):
    """<base>.png and <base>.pdf: PSNR (mean, std as error bars) against GMACs and against parameters, a
    point per variant; returns the paths written, or [] without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    variants = [r for r in rows if r["variant"] != INPUT]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, key, scale, label in ((axes[0], "macs", 1e9, f"GMACs at {macs_size[0]}x{macs_size[1]}"),
                                  (axes[1], "params", 1e6, "parameters (M)")):
        for r in variants:
            ax.errorbar(r[key] / scale, r["psnr_mean"], yerr=r["psnr_std"], fmt="o", capsize=3)
            ax.annotate(r["variant"], (r[key] / scale, r["psnr_mean"]), textcoords="offset points", xytext=(4, 4),
                        fontsize=8)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("PSNR (dB)")
    fig.tight_layout()
    paths = []
    for ext in ("png", "pdf"):
        with atomic_write(f"{base}.{ext}") as f:
            fig.savefig(f, format=ext, dpi=150)
        paths.append(f"{base}.{ext}")
    plt.close(fig)
    return paths


def write_all(rows, out_dir, title, settings, macs_size):
    """table.md, table.csv, table.tex and (with matplotlib) psnr_cost.png/.pdf in out_dir; returns
    (the Markdown text, the paths written)."""
    text = markdown(rows, title, settings, macs_size)
    paths = [os.path.join(out_dir, name) for name in ("table.md", "table.csv", "table.tex")]
    with atomic_write(paths[0], "w") as f:
        f.write(text)
    with atomic_write(paths[1], "w") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with atomic_write(paths[2], "w") as f:
        f.write(latex(rows, title, macs_size))
    return text, paths + plot(rows, os.path.join(out_dir, "psnr_cost"), macs_size)
