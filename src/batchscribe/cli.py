"""The `batchscribe` command."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from batchscribe.checks import disk_full
from batchscribe.engine.device import BACKENDS, ENCODERS
from batchscribe.engine.models import BUNDLED
from batchscribe.errors import BatchscribeError
from batchscribe.names import shown
from batchscribe.options import FORMATS, TranscribeOptions
from batchscribe.pipeline import FAILURES_FILE, run
from batchscribe.progress import TerminalProgress


def _formats(value: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(f.strip().lower() for f in value.split(",") if f.strip()))
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"choose from {','.join(FORMATS)} (got {value!r})")
    return chosen


def positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """The options that say how to transcribe: shared by `transcribe`, `worker` and `run`."""
    defaults = TranscribeOptions()
    parser.add_argument(
        "--model",
        default=os.environ.get("BATCHSCRIBE_MODEL", defaults.model),
        help=f"offline model ({', '.join(BUNDLED)}), a CTranslate2 model folder, or a hub id "
        "(default: %(default)s; env BATCHSCRIBE_MODEL, which the container images set to their baked-in model)",
    )
    parser.add_argument("--language", default=None, help="language code, e.g. en; default: detect per file")
    parser.add_argument("--task", choices=("transcribe", "translate"), default=defaults.task)
    parser.add_argument(
        "--formats",
        "--output-format",
        type=_formats,
        default=defaults.formats,
        help="comma list of txt,srt,vtt,json (default: all)",
    )
    parser.add_argument("--word-timestamps", action="store_true", help="include per-word times in the JSON")
    parser.add_argument(
        "--max-line-width", type=positive, default=defaults.max_line_width, help="subtitle characters a line (42)"
    )
    parser.add_argument("--max-line-count", type=positive, default=defaults.max_line_count, help="lines a cue (2)")
    parser.add_argument("--max-words-per-line", type=positive, default=None, help="words a line (default: no limit)")
    parser.add_argument("--beam-size", type=positive, default=defaults.beam_size)
    parser.add_argument(
        "--batch-size",
        type=positive,
        default=defaults.batch_size,
        help="30 s windows per model call "
        "(default: the backend's best: 4 on CTranslate2, 8 on PyTorch, 32 on PyTorch on a GPU)",
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default=defaults.device)
    parser.add_argument(
        "--compute-type", default=defaults.compute_type, help="e.g. int8, float16, float32 (default: auto)"
    )
    parser.add_argument("--threads", type=int, default=defaults.threads, help="CPU threads (default: one per core)")
    parser.add_argument(
        "--encoder",
        choices=ENCODERS,
        default=defaults.encoder,
        help="audio encoder: torch = PyTorch bf16 on CPUs with AMX/AVX-512 BF16 (3x faster there), "
        "ct2 = CTranslate2; auto picks torch where it is installed and faster (default: auto)",
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=defaults.backend,
        help="library that runs the model: ct2 = CTranslate2 (faster-whisper's), torch = PyTorch + transformers "
        "(Hugging Face models and hub ids); auto picks ct2, or torch on a GPU ct2 cannot use (default: auto)",
    )


def transcribe_options(args: argparse.Namespace, overwrite: bool = False) -> TranscribeOptions:
    return TranscribeOptions(
        model=args.model,
        language=args.language,
        task=args.task,
        formats=args.formats,
        word_timestamps=args.word_timestamps,
        beam_size=args.beam_size,
        batch_size=args.batch_size,
        device=args.device,
        compute_type=args.compute_type,
        threads=args.threads,
        encoder=args.encoder,
        backend=args.backend,
        overwrite=overwrite,
        max_line_width=args.max_line_width,
        max_line_count=args.max_line_count,
        max_words_per_line=args.max_words_per_line,
    )


def build_parser() -> argparse.ArgumentParser:
    from batchscribe import cli_aws, cli_jobs

    parser = argparse.ArgumentParser(prog="batchscribe", description="Batch transcription with Whisper.")
    commands = parser.add_subparsers(dest="command", required=True)
    t = commands.add_parser("transcribe", help="transcribe files, folders (recursively) or globs")
    t.add_argument("inputs", nargs="+", metavar="INPUT", help="audio/video files, folders or glob patterns")
    t.add_argument("-o", "--output-dir", required=True, type=Path, help="folder for the transcripts")
    add_model_options(t)
    t.add_argument("--overwrite", action="store_true", help="transcribe again even if up-to-date outputs exist")
    t.set_defaults(handler=_transcribe)
    cli_jobs.add_commands(commands)
    cli_aws.add_commands(commands)
    return parser


def _transcribe(args: argparse.Namespace) -> int:
    options = transcribe_options(args, overwrite=args.overwrite)
    with TerminalProgress() as progress:
        summary = run(args.inputs, args.output_dir, options, listener=progress)
    print(summary.line())
    if not summary.ok:
        print(f"failures are listed in {shown(args.output_dir / FAILURES_FILE)}")
    return 0 if summary.ok else 1


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a file name's undecodable bytes must never end a run
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except BatchscribeError as error:
        print(f"batchscribe: error: {shown(error)}", file=sys.stderr)
        return 2
    except Exception as error:
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
