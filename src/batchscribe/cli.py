"""The `batchscribe` command."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional

from batchscribe.engine.models import BUNDLED
from batchscribe.errors import BatchscribeError
from batchscribe.options import BACKENDS, ENCODERS, FORMATS, OPTIONAL_FORMATS, TranscribeOptions


def _formats(value: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(f.strip().lower() for f in value.split(",") if f.strip()))
    unknown = [f for f in chosen if f not in FORMATS + OPTIONAL_FORMATS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"choose from {','.join(FORMATS + OPTIONAL_FORMATS)} (got {value!r})")
    return chosen


def _audio_track(value: str) -> int:
    return 0 if value.strip().lower() == "all" else positive(value)  # 0: every track (options.audio_track)


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
        help="comma list of txt,srt,vtt,json,rttm (default: txt,srt,vtt,json)",
    )
    parser.add_argument("--word-timestamps", action="store_true", help="include per-word times in the JSON")
    parser.add_argument(
        "--audio-track",
        type=_audio_track,
        default=defaults.audio_track,
        metavar="N",
        help="which audio track of a file with several to transcribe, counted from 1 (default: 1); "
        "the summary and the JSON's audio_tracks name the tracks left out; all: every track, each "
        "labelled as a speaker by its title (one microphone per track)",
    )
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
    add_speaker_options(parser, defaults)


def add_speaker_options(parser: argparse.ArgumentParser, defaults: Optional[TranscribeOptions] = None) -> None:
    """--diarize, --speakers and the counts (also taken by `aws backfill`, which hands them to its jobs)."""
    defaults = defaults or TranscribeOptions()
    speakers = parser.add_argument_group("speakers (who spoke when)")
    speakers.add_argument("--diarize", dest="speakers", action="store_const", const="diarize",
                          help="label speakers from their voices (same as --speakers diarize)")
    speakers.add_argument("--speakers", choices=("diarize", "channels"),
                          default=os.environ.get("BATCHSCRIBE_SPEAKERS") or defaults.speakers or None,
                          help="diarize: from voices; channels: transcribe each channel on its own (left/right); "
                          "env BATCHSCRIBE_SPEAKERS, which the AWS stack's Speakers parameter sets for its jobs")
    speakers.add_argument("--num-speakers", type=positive, default=None, help="diarize: the exact count per file")
    speakers.add_argument("--min-speakers", type=positive, default=defaults.min_speakers)
    speakers.add_argument("--max-speakers", type=positive, default=defaults.max_speakers)
    speakers.add_argument("--speaker-model", default=defaults.speaker_model,
                          help="resemblyzer (offline, default), or pyannote[:MODEL] when pyannote.audio is installed")


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
        speakers=args.speakers or "",
        num_speakers=args.num_speakers,
        min_speakers=args.min_speakers,
        max_speakers=args.max_speakers,
        speaker_model=args.speaker_model,
        audio_track=args.audio_track,
    )


def speaker_args(args: argparse.Namespace) -> list[str]:
    """The speaker options of `args` that differ from the defaults, as command-line arguments."""
    defaults, forwarded = TranscribeOptions(), []
    if args.speakers:
        forwarded += ["--speakers", args.speakers]
    for flag, value, default in (
        ("--num-speakers", args.num_speakers, defaults.num_speakers),
        ("--min-speakers", args.min_speakers, defaults.min_speakers),
        ("--max-speakers", args.max_speakers, defaults.max_speakers),
        ("--speaker-model", args.speaker_model, defaults.speaker_model),
    ):
        if value != default:
            forwarded += [flag, str(value)]
    return forwarded


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
    from batchscribe.pipeline import FAILURES_FILE, run  # loaded here: `serve` never loads the engine
    from batchscribe.progress import TerminalProgress

    options = transcribe_options(args, overwrite=args.overwrite)
    with TerminalProgress() as progress:
        summary = run(args.inputs, args.output_dir, options, listener=progress)
    print(summary.line())
    if not summary.ok:
        print(f"failures are listed in {args.output_dir / FAILURES_FILE}")
    return 0 if summary.ok else 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except BatchscribeError as error:
        print(f"batchscribe: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("batchscribe: interrupted; finished transcripts are kept, re-run to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
