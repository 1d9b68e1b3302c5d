"""The command line as a whole: every command's --help, one spelling per shared option, --version,
openai-whisper's spellings, and commands that must start without the engine."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import pytest
from conftest import REPO

from batchscribe import __version__
from batchscribe.cli import _hyphenated, build_parser, main
from batchscribe.cli.options import transcribe_options
from batchscribe.options import FORMATS, TranscribeOptions

HEAVY = ("ctranslate2", "torch", "av", "faster_whisper", "transformers")


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> dict[tuple, argparse.ArgumentParser]:
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[prefix + (name,)] = sub
                found.update(_commands(sub, prefix + (name,)))
    return found


COMMANDS = _commands(build_parser())


def test_every_command_is_there():
    names = {" ".join(c) for c in COMMANDS}
    assert {"transcribe", "run", "submit", "worker", "serve", "status", "jobs", "retry", "job", "aws backfill"} <= names


@pytest.mark.parametrize("command", sorted(COMMANDS), ids=" ".join)
def test_help_runs_and_shows_defaults(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: batchscribe " + " ".join(command))
    parser = COMMANDS[command]
    for action in parser._actions:  # an option with a default worth showing shows it
        if action.option_strings and action.default not in (None, False, argparse.SUPPRESS) and action.help:
            assert "default" in parser.formatter_class(parser.prog)._get_help_string(action), action.option_strings


def test_shared_options_are_spelled_alike():
    """An option that several commands take has the same spellings (and default) in each."""
    spellings: dict[str, dict[tuple[str, ...], tuple]] = {}
    for command, parser in COMMANDS.items():
        for action in parser._actions:
            if action.option_strings and action.dest != "help":
                key = (tuple(action.option_strings), repr(action.default) if action.dest != "output" else "")
                spellings.setdefault(action.dest, {})[command] = key
    for dest, by_command in spellings.items():
        if len(by_command) > 1 and dest not in ("packing",):  # --packing / --no-packing share a dest by design
            assert len(set(by_command.values())) == 1, (dest, by_command)
    for command in ("transcribe", "run", "submit", "serve", "worker", "job"):
        output = next(a for a in COMMANDS[(command,)]._actions if a.dest == "output")
        assert output.option_strings == ["-o", "--output-dir", "--output"], command


def test_run_offers_no_events_and_serve_takes_the_source_like_the_others(tmp_path):
    run_options = {s for a in COMMANDS[("run",)]._actions for s in a.option_strings}
    assert "--events" not in run_options
    parser = build_parser()
    positional = parser.parse_args(["serve", str(tmp_path), "-o", "out"])
    flag = parser.parse_args(["serve", "--input", str(tmp_path), "--output", "out"])
    assert (positional.source, positional.output) == (str(tmp_path), "out")
    assert (flag.input_flag, flag.output) == (str(tmp_path), "out")


def test_version(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"batchscribe {__version__}"


def test_openai_whisper_spellings_and_values():
    argv = ["transcribe", "a.wav", "--output_dir", "o", "--initial_prompt", "Helstone and_so", "--word_timestamps",
            "True", "--temperature_increment_on_fallback", "None", "--condition_on_previous_text", "False",
            "--output_format", "all", "--suppress_tokens=-1,50256", "--reproducible"]  # fmt: skip
    options = transcribe_options(build_parser().parse_args(_hyphenated(argv)))
    assert options.initial_prompt == "Helstone and_so" and options.word_timestamps is True
    assert options.temperatures() == (0.0,) and options.condition_on_previous_text is False
    assert options.formats == FORMATS and options.suppress_token_ids() == (-1, 50256) and options.packing is False
    assert TranscribeOptions().temperatures() == (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # openai-whisper's default ladder


def test_new_defaults_keep_old_outputs_up_to_date():
    """Decoding controls left at their defaults do not enter the resume key: folders written before
    they existed are not transcribed again."""
    settings = TranscribeOptions().output_settings()
    assert set(settings) == {"model", "language", "task", "word_timestamps", "beam_size"}
    assert TranscribeOptions(hotwords="Helstone").output_settings()["hotwords"] == "Helstone"


@pytest.mark.parametrize("argv", [["--help"], ["status"], ["jobs"], ["jobs", "--dead-letters"]], ids=" ".join)
def test_reading_commands_and_help_start_without_the_engine(argv, tmp_path):
    store = tmp_path / "jobs.db"
    from batchscribe.jobs.stores import open_job_store

    open_job_store(str(store)).close()
    probe = (
        "import sys, json\nfrom batchscribe.cli import main\n"
        f"try:\n    main({json.dumps(argv)})\nexcept SystemExit:\n    pass\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]), file=sys.stderr)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "BATCHSCRIBE_STORE": str(store)}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, env=env)
    assert json.loads(result.stderr.strip().splitlines()[-1]) == [], result.stderr
    if argv[0] == "jobs" and len(argv) == 1:
        assert result.stdout.splitlines()[0].split("\t")[:3] == ["id", "state", "attempts"]  # a header row


def test_terminal_lines(capsys):
    import logging

    from batchscribe.cli.terminal import JsonFormatter, say, setup_logging, status_line

    counts = {"queued": 44, "running": 4, "retrying": 0, "succeeded": 11, "dead": 1}
    assert status_line(counts, started=0.0).startswith("12/60 done (1 dead) · 4 running · 44 queued · 0 retrying")
    args = argparse.Namespace(verbose=0, quiet=0, log_format="json", interactive=True)
    say(args, "2 succeeded, 0 dead", succeeded=2)
    line = json.loads(capsys.readouterr().err)
    assert line["message"] == "2 succeeded, 0 dead" and line["succeeded"] == 2
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging(args)  # `run`: per-file lines (INFO) only with -v
        assert root.level == logging.WARNING and isinstance(root.handlers[0].formatter, JsonFormatter)
        setup_logging(argparse.Namespace(verbose=0, quiet=1, log_format="text"))  # a daemon with -q
        assert root.level == logging.WARNING
        setup_logging(argparse.Namespace(verbose=0, quiet=0, log_format="text"))  # a daemon logs per file
        assert root.level == logging.INFO
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
