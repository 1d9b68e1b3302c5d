"""Write the results as JSON, a Markdown table and a PNG chart (RTFx against WER)."""

from __future__ import annotations

import json
from itertools import product
from pathlib import Path


def measured(report: dict) -> list[dict]:
    return [r for r in report["rows"] if "failed" not in r]


def markdown(report: dict) -> str:
    lines = [
        f"Measured on {report['machine']}, {report['date']}, {report['threads']} threads for every system, "
        f"median of {report['reps']} runs (model load included).",
        "",
        "| model | corpus | system | RTFx | error % | peak RSS MiB | model load s | batchscribe speed-up |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in measured(report):
        load = "" if r["load_seconds"] is None else f"{r['load_seconds']:.2f}"
        speedup = "" if r["batchscribe_speedup"] is None else f"{r['batchscribe_speedup']}x"
        lines.append(
            f"| {r['model']} | {r['corpus']} | {r['system']} | {r['rtfx']} | {r['error']} {r['metric']} "
            f"| {r['peak_rss_mib']} | {load} | {speedup} |"
        )
    failed = [r for r in report["rows"] if "failed" in r]
    if failed:
        lines += ["", "Left out (failed):", ""]
        lines += [f"- {r['model']} {r['system']}: `{' '.join(r['failed'].split())[-300:]}`" for r in failed]
    if report.get("scaling"):
        lines += ["", "Scaling (batchscribe):", "", "| run | audio s | RTFx | peak RSS MiB |", "|---|---|---|---|"]
        lines += [
            f"| {s['label']} | {s['audio_seconds']} | {s['rtfx']} | {s['peak_rss_mib']} |" for s in report["scaling"]
        ]
    return "\n".join(lines) + "\n"


def chart(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = measured(report)
    models = list(dict.fromkeys(r["model"] for r in rows))  # one row of panels per model
    corpora = list(dict.fromkeys(r["corpus"] for r in rows))
    figure, axes = plt.subplots(len(models), len(corpora), figsize=(4.2 * len(corpora), 3.8 * len(models)),
                                squeeze=False)  # fmt: skip
    colours = {"batchscribe": "tab:red", "batchscribe-torch": "tab:orange", "seed": "tab:gray"}
    for (row, model), (column, corpus) in product(enumerate(models), enumerate(corpora)):
        axis = axes[row][column]
        if not any((r["model"], r["corpus"]) == (model, corpus) for r in rows):
            axis.set_visible(False)  # e.g. an English-only model on the multilingual corpus
            continue
        panel = [r for r in rows if (r["model"], r["corpus"]) == (model, corpus)]
        for i, r in enumerate(panel):
            axis.scatter(r["rtfx"], r["error"], s=60, color=colours.get(r["system"], "tab:blue"))
            offset = (5, 4 - 11 * (i % 2))  # alternate above/below: close points stay legible
            axis.annotate(r["system"], (r["rtfx"], r["error"]), textcoords="offset points", xytext=offset, fontsize=8)
        axis.set_title(f"{corpus} ({model})", fontsize=10)
        axis.set_xlabel("RTFx (audio s per wall s, higher is better)")
        axis.set_ylabel(f"{panel[0]['metric']} % (lower is better)")
        axis.set_xlim(left=0)
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
    figure.suptitle(f"Speed against accuracy - {report['machine']}", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def save(report: dict, folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "latest.json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    (folder / "latest.md").write_text(table)
    chart(report, folder / "latest.png")
    return table
