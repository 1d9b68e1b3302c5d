"""The `batchscribe` command: the parser and main(). Each command group lives in its own module
(transcribe.py, jobs.py, run.py, aws.py), the options they share in options.py; the engine, the
pipeline and the service are imported inside the commands that use them."""

from __future__ import annotations

import argparse
import sys

from batchscribe import __version__
from batchscribe.cli.options import HelpFormatter
from batchscribe.errors import BatchscribeError
from batchscribe.names import shown


def build_parser() -> argparse.ArgumentParser:
    from batchscribe.cli import aws, jobs, run, transcribe

    parser = argparse.ArgumentParser(
        prog="batchscribe", description="Batch transcription with Whisper.", formatter_class=HelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"batchscribe {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    transcribe.add_commands(commands)
    run.add_commands(commands)
    jobs.add_commands(commands)
    aws.add_commands(commands)
    return parser


def _hyphenated(argv: list[str]) -> list[str]:
    """openai-whisper's spellings (`--initial_prompt`, `--output_dir`) as ours (`--initial-prompt`)."""
    spelled = []
    for arg in argv:
        if arg == "--":
            spelled.extend(argv[len(spelled) :])
            break
        if arg.startswith("--") and "_" in arg.split("=", 1)[0]:
            name, equals, value = arg.partition("=")
            arg = name.replace("_", "-") + equals + value
        spelled.append(arg)
    return spelled


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a file name's undecodable bytes must never end a run
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(_hyphenated(sys.argv[1:] if argv is None else argv))
    try:
        return args.handler(args)
    except BatchscribeError as error:
        print(f"batchscribe: error: {shown(error)}", file=sys.stderr)
        return 2
    except Exception as error:
        from batchscribe.checks import disk_full

        if not disk_full(error):
            raise
        print(
            "batchscribe: error: the disk is full; stopped taking new work. Complete transcript sets are kept "
            "and no partial set is left; free space and run the same command again to resume",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("batchscribe: interrupted; finished transcripts are kept, re-run to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
