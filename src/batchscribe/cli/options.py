"""Every option shared by more than one command, defined once: one spelling, one meaning, one default.

A new shared option is one line in one of these groups. Nothing heavy is imported here: `--help`,
`status` and `jobs` must start without CTranslate2, PyTorch or PyAV.
"""

from __future__ import annotations

import argparse
import os

from batchscribe.engine.models.resolve import BUNDLED
from batchscribe.jobs.sql import DEFAULT_BACKOFF_SECONDS, DEFAULT_MAX_ATTEMPTS
from batchscribe.options import BACKENDS, DEFAULT_FORMATS, ENCODERS, FORMATS, OPTIONAL_FORMATS, TranscribeOptions

DEFAULT_STORE = ".batchscribe/jobs.db"
STORE_ENV = "BATCHSCRIBE_STORE"
DEFAULTS = TranscribeOptions()


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows every option's default, except where the help already says it or there is none to show."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" in text or "default" in text or action.default is None or action.default is False:
            return text
        if action.default is argparse.SUPPRESS or isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"


def positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def str2bool(value: str) -> bool:
    """openai-whisper's booleans: `--word_timestamps True`, and also a bare flag."""
    lowered = value.lower()
    if lowered in ("true", "yes", "1", "on"):
        return True
    if lowered in ("false", "no", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {value!r}")


def optional_float(value: str) -> float | None:
    """openai-whisper's thresholds: a number, or None to turn the test off."""
    return None if value.lower() == "none" else float(value)


def formats(value: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(f.strip().lower() for f in value.split(",") if f.strip()))
    if chosen == ("all",):
        return FORMATS
    unknown = [f for f in chosen if f not in FORMATS + OPTIONAL_FORMATS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"choose from {','.join(FORMATS + OPTIONAL_FORMATS)} or all (got {value!r})")
    return chosen


def audio_track(value: str) -> int:
    return 0 if value.strip().lower() == "all" else positive(value)  # 0: every track (options.audio_track)


def _flag(group, name: str, default: bool, text: str) -> None:
    """A boolean written as openai-whisper writes them (`--name True|False`), or bare (`--name`)."""
    group.add_argument(name, type=str2bool, nargs="?", const=True, default=default, metavar="True|False",
                       help=f"{text} (default: {default})")  # fmt: skip


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """How to transcribe: the model, decoding and output formats (transcribe, run, worker, job)."""
    model = parser.add_argument_group("model and output")
    model.add_argument(
        "--model",
        default=os.environ.get("BATCHSCRIBE_MODEL", DEFAULTS.model),
        help=f"offline model ({', '.join(BUNDLED)}), a CTranslate2 or Hugging Face model folder, or a hub id "
        "(default: %(default)s; env BATCHSCRIBE_MODEL, which the container images set to their baked-in model)",
    )
    model.add_argument("--language", default=None, help="language code, e.g. en; default: detected per file")
    model.add_argument("--task", choices=("transcribe", "translate"), default=DEFAULTS.task,
                       help="translate: into English (multilingual models)")
    model.add_argument("-f", "--formats", "--output-format", type=formats, default=DEFAULT_FORMATS,
                       help=f"comma list of {','.join(FORMATS + OPTIONAL_FORMATS)}, or all ({','.join(FORMATS)}) "
                       f"(default: {','.join(DEFAULT_FORMATS)}); rttm: speaker turns, with --diarize or --speakers")
    _flag(model, "--word-timestamps", False, "per-word times and probabilities in the JSON")
    model.add_argument("--max-line-width", type=positive, default=DEFAULTS.max_line_width,
                       help="subtitle characters a line (openai-whisper's)")  # fmt: skip
    model.add_argument("--max-line-count", type=positive, default=DEFAULTS.max_line_count, help="subtitle lines a cue")
    model.add_argument("--max-words-per-line", type=positive, default=None, help="subtitle words a line (default: no "
                       "limit)")  # fmt: skip
    _flag(model, "--highlight-words", False, "SRT/VTT: a cue per word, underlined (<u>), as openai-whisper")
    model.add_argument("--device", choices=("auto", "cpu", "cuda"), default=DEFAULTS.device,
                       help="auto: cuda when a GPU is visible and a backend can use it, else cpu")
    model.add_argument("--compute-type", default=DEFAULTS.compute_type, help="e.g. int8, float16, float32")
    model.add_argument("--threads", type=int, default=DEFAULTS.threads, help="CPU threads (default: 0, one per core)")
    model.add_argument("--audio-workers", type=positive, default=None, metavar="N",
                       help="files decoded (and their speech found) at once, ahead of the model (default: the cores "
                       "the model leaves free, at least 1: 1 on a CPU, more beside a GPU)")  # fmt: skip
    model.add_argument("--batch-size", type=positive, default=None,
                       help="30 s windows per model call (default: the backend's best: 4 on CTranslate2, "
                       "8 on PyTorch, 32 on PyTorch on a GPU)")  # fmt: skip
    model.add_argument("--encoder", choices=ENCODERS, default=DEFAULTS.encoder,
                       help="audio encoder: torch = PyTorch bf16 on CPUs with AMX/AVX-512 BF16 (3x faster there), "
                       "ct2 = CTranslate2; auto picks torch where it is installed and faster")  # fmt: skip
    model.add_argument("--backend", choices=BACKENDS, default=DEFAULTS.backend,
                       help="library that runs the model: ct2 = CTranslate2 (faster-whisper's), torch = PyTorch "
                       "(also runs Hugging Face models and hub ids); auto picks ct2, or torch on a GPU ct2 cannot "
                       "use")  # fmt: skip
    _flag(model, "--packing", True, "pack speech of several files into each 30 s window; False (or --no-packing, "
          "--reproducible): every file gets the transcript it gets alone, slower on short files")  # fmt: skip
    model.add_argument("--no-packing", "--reproducible", dest="packing", action="store_false",
                       help="the same as --packing False (packing is on by default)")  # fmt: skip
    model.add_argument(
        "--audio-track", type=audio_track, default=DEFAULTS.audio_track, metavar="N",
        help="which audio track of a file with several to transcribe, counted from 1 (default: 1); the summary and "
        "the JSON's audio_tracks name the tracks left out; all: every track, each labelled as a speaker by its "
        "title (one microphone per track)",
    )  # fmt: skip
    add_decoding_options(parser)
    add_speaker_options(parser)


def add_speaker_options(parser: argparse.ArgumentParser) -> None:
    """--diarize, --speakers and the counts (also taken by `aws backfill`, which hands them to its jobs)."""
    speakers = parser.add_argument_group("speakers (who spoke when)")
    # Both flags share one destination, whose default argparse takes from the first: so both carry it
    # (with the default on --speakers alone, BATCHSCRIBE_SPEAKERS was ignored, and AWS jobs had no speakers).
    default = os.environ.get("BATCHSCRIBE_SPEAKERS") or DEFAULTS.speakers or None
    speakers.add_argument("--diarize", dest="speakers", action="store_const", const="diarize", default=default,
                          help="label speakers from their voices (same as --speakers diarize)")
    speakers.add_argument("--speakers", choices=("diarize", "channels"), default=default,
                          help="diarize: from voices; channels: transcribe each channel on its own (left/right); "
                          "env BATCHSCRIBE_SPEAKERS, which the AWS stack's Speakers parameter sets for its jobs")
    speakers.add_argument("--num-speakers", type=positive, default=None, help="diarize: the exact count per file")
    speakers.add_argument("--min-speakers", type=positive, default=DEFAULTS.min_speakers)
    speakers.add_argument("--max-speakers", type=positive, default=DEFAULTS.max_speakers)
    speakers.add_argument("--speaker-model", default=DEFAULTS.speaker_model,
                          help="resemblyzer (offline), pyannote[:MODEL] when pyannote.audio is installed, "
                          "or package.module:factory (your own encoder; see README)")


def speaker_args(args: argparse.Namespace) -> list[str]:
    """The speaker options of `args` that differ from the defaults, as command-line arguments."""
    forwarded = ["--speakers", args.speakers] if args.speakers else []
    for flag, value, default in (
        ("--num-speakers", args.num_speakers, DEFAULTS.num_speakers),
        ("--min-speakers", args.min_speakers, DEFAULTS.min_speakers),
        ("--max-speakers", args.max_speakers, DEFAULTS.max_speakers),
        ("--speaker-model", args.speaker_model, DEFAULTS.speaker_model),
    ):
        if value != default:
            forwarded += [flag, str(value)]
    return forwarded


def add_decoding_options(parser: argparse.ArgumentParser) -> None:
    """openai-whisper's decoding controls, same names (with - for _) and meanings."""
    decoding = parser.add_argument_group("decoding (openai-whisper's names and meanings)")
    decoding.add_argument("--beam-size", type=positive, default=DEFAULTS.beam_size,
                          help="beams when the temperature is 0")  # fmt: skip
    decoding.add_argument("--initial-prompt", default=None,
                          help="text given before every window of every file: names, spelling, style")  # fmt: skip
    decoding.add_argument("--hotwords", default=None,
                          help="words to prefer (faster-whisper's hotwords), given before the initial prompt")
    decoding.add_argument("--temperature", type=float, default=DEFAULTS.temperature,
                          help="temperature of the first attempt")  # fmt: skip
    decoding.add_argument("--temperature-increment-on-fallback", type=optional_float,
                          default=DEFAULTS.temperature_increment_on_fallback,
                          help="step up to 1.0 for windows that fail the thresholds below; None: no fallback")
    decoding.add_argument("--compression-ratio-threshold", type=optional_float,
                          default=DEFAULTS.compression_ratio_threshold,
                          help="decode again hotter when the text's gzip ratio is higher (a loop); None: off")
    decoding.add_argument("--logprob-threshold", type=optional_float, default=DEFAULTS.logprob_threshold,
                          help="decode again hotter when the mean token log-probability is lower; None: off")
    decoding.add_argument("--no-speech-threshold", type=optional_float, default=DEFAULTS.no_speech_threshold,
                          help="a window is silence when <|nospeech|> is likelier than this and the logprob "
                          "test failed; None: off")  # fmt: skip
    _flag(decoding, "--condition-on-previous-text", False, "openai-whisper's default is True; only False is "
          "possible here: packed windows are decoded in parallel, so no window has its previous text")  # fmt: skip
    decoding.add_argument("--suppress-tokens", default=DEFAULTS.suppress_tokens,
                          help="comma list of token ids never produced; -1: the model's non-speech symbols")
    _flag(decoding, "--vad-filter", True, "find speech with Silero VAD and decode only that; False: every 28 s "
          "of audio")  # fmt: skip
    decoding.add_argument("--vad-threshold", type=float, default=DEFAULTS.vad_threshold,
                          help="speech probability above which audio is speech")  # fmt: skip
    decoding.add_argument("--vad-min-speech-duration-ms", type=int, default=DEFAULTS.vad_min_speech_duration_ms,
                          help="shorter speech is dropped")  # fmt: skip
    decoding.add_argument("--vad-min-silence-duration-ms", type=int, default=DEFAULTS.vad_min_silence_duration_ms,
                          help="a pause at least this long ends speech")  # fmt: skip
    decoding.add_argument("--vad-speech-pad-ms", type=int, default=DEFAULTS.vad_speech_pad_ms,
                          help="audio kept on either side of speech")  # fmt: skip


def transcribe_options(args: argparse.Namespace, overwrite: bool = False) -> TranscribeOptions:
    """The TranscribeOptions that the options of add_model_options spell."""
    return TranscribeOptions(
        model=args.model, language=args.language, task=args.task, formats=args.formats,
        word_timestamps=args.word_timestamps, beam_size=args.beam_size, batch_size=args.batch_size or 0,
        device=args.device, compute_type=args.compute_type, threads=args.threads, audio_workers=args.audio_workers or 0,
        encoder=args.encoder,
        backend=args.backend, overwrite=overwrite, initial_prompt=args.initial_prompt, hotwords=args.hotwords,
        temperature=args.temperature, temperature_increment_on_fallback=args.temperature_increment_on_fallback,
        compression_ratio_threshold=args.compression_ratio_threshold, logprob_threshold=args.logprob_threshold,
        no_speech_threshold=args.no_speech_threshold, condition_on_previous_text=args.condition_on_previous_text,
        suppress_tokens=args.suppress_tokens, vad_filter=args.vad_filter, vad_threshold=args.vad_threshold,
        vad_min_speech_duration_ms=args.vad_min_speech_duration_ms,
        vad_min_silence_duration_ms=args.vad_min_silence_duration_ms, vad_speech_pad_ms=args.vad_speech_pad_ms,
        highlight_words=args.highlight_words, packing=args.packing, audio_track=args.audio_track,
        max_line_width=args.max_line_width, max_line_count=args.max_line_count,
        max_words_per_line=args.max_words_per_line,
        speakers=args.speakers or "", num_speakers=args.num_speakers, min_speakers=args.min_speakers,
        max_speakers=args.max_speakers, speaker_model=args.speaker_model,
    )  # fmt: skip


def add_output_option(parser: argparse.ArgumentParser, required: bool = True, help: str | None = None) -> None:
    """-o/--output-dir in every command (--output, the older spelling, still works)."""
    parser.add_argument("-o", "--output-dir", "--output", dest="output", required=required, metavar="DIR",
                        help=help or "where transcripts go: a folder or s3://bucket/prefix/")  # fmt: skip


def add_source_argument(parser: argparse.ArgumentParser, help: str, required: bool = True) -> None:
    """The source as a positional argument, with --input (the older spelling) as an alias."""
    parser.add_argument("source", nargs="?", help=help)
    parser.add_argument("--input", dest="input_flag", help=argparse.SUPPRESS)
    parser.set_defaults(source_required=required)


def source_of(args: argparse.Namespace) -> str | None:
    """The source given positionally or with --input; an error if both differ or a required one is missing."""
    from batchscribe.errors import OptionsError

    positional, flag = getattr(args, "source", None), getattr(args, "input_flag", None)
    if positional and flag and positional != flag:
        raise OptionsError(f"two sources given: {positional} and --input {flag}; give one")
    source = positional or flag
    if source is None and getattr(args, "source_required", False):
        raise OptionsError("give the source: a folder or s3://bucket/prefix/")
    return source


def add_store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store", default=None, help=f"the job store: a SQLite file path (or sqlite:///path) or "
        f"postgresql://user:password@host:port/database (default: env {STORE_ENV}, else {DEFAULT_STORE}, or for "
        "`run` into a folder: OUTPUT/.batchscribe/jobs.db)"
    )  # fmt: skip


def add_endpoint_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--endpoint-url", default=None,
                        help="S3/SQS endpoint of an S3-compatible server (default: boto3's configuration)")  # fmt: skip


def add_logging_options(parser: argparse.ArgumentParser) -> None:
    """-v/-q and --log-format, for every command that logs while it works."""
    group = parser.add_argument_group("terminal output")
    group.add_argument("-v", "--verbose", action="count", default=0,
                       help="more: -v a line per file, -vv debugging")  # fmt: skip
    group.add_argument("-q", "--quiet", action="count", default=0, help="less: -q errors and the summary only")
    group.add_argument("--log-format", choices=("text", "json"), default="text",
                       help="json: one JSON object per line, for log collectors")  # fmt: skip


def add_worker_options(parser: argparse.ArgumentParser) -> None:
    """How a worker claims and retries jobs (worker, run)."""
    from batchscribe.jobs.worker import WorkerOptions

    defaults = WorkerOptions()
    add_model_options(parser)
    work = parser.add_argument_group("jobs")
    work.add_argument("--workers", type=positive, default=1, help="worker processes on this machine")
    work.add_argument("--files-per-batch", type=positive, default=defaults.files_per_batch,
                      help="jobs claimed and packed together")  # fmt: skip
    work.add_argument("--lease-seconds", type=float, default=defaults.lease_seconds,
                      help="a claimed job is taken over if its worker is silent this long")  # fmt: skip
    work.add_argument("--max-attempts", type=positive, default=DEFAULT_MAX_ATTEMPTS,
                      help="failed attempts before a job is dead")  # fmt: skip
    work.add_argument("--retry-backoff", type=float, default=DEFAULT_BACKOFF_SECONDS,
                      help="seconds before the first retry (doubles)")  # fmt: skip
    work.add_argument("--metrics-port", type=int, default=None,
                      help="serve Prometheus metrics at http://METRICS_HOST:PORT/metrics (worker process N of "
                      "--workers: PORT+N)")  # fmt: skip
    work.add_argument("--metrics-host", default="127.0.0.1", help="address for --metrics-port")
