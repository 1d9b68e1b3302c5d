"""`batchscribe transcribe`: files, folders or globs into a folder, in one run with one model load."""

from __future__ import annotations

import argparse

from batchscribe.cli.options import HelpFormatter, add_model_options, add_output_option, transcribe_options


def add_commands(commands) -> None:
    t = commands.add_parser(
        "transcribe", help="transcribe files, folders (recursively) or globs", formatter_class=HelpFormatter
    )
    t.add_argument("inputs", nargs="+", metavar="INPUT", help="audio/video files, folders or glob patterns")
    add_output_option(t, help="folder for the transcripts")
    add_model_options(t)
    t.add_argument("--overwrite", action="store_true", help="transcribe again even if up-to-date outputs exist")
    t.set_defaults(handler=_transcribe)


def _transcribe(args: argparse.Namespace) -> int:
    from pathlib import Path

    from batchscribe.names import shown
    from batchscribe.pipeline import run  # loaded here: other commands never load the engine
    from batchscribe.sinks.folder import FAILURES_FILE
    from batchscribe.progress import TerminalProgress

    options = transcribe_options(args, overwrite=args.overwrite)
    output_dir = Path(args.output)
    with TerminalProgress() as progress:
        summary = run(args.inputs, output_dir, options, listener=progress)
    print(summary.line())
    if not summary.ok:
        print(f"failures are listed in {shown(output_dir / FAILURES_FILE)}")
    return 0 if summary.ok else 1
