"""The Transcriber: a model loaded once, and the loop that feeds it the audio thread's batches and
finishes each file as its last piece comes back.

The audio thread (producer.py) decodes and packs while the model works on the previous batch; the
model's workers run batches in parallel; a file is handed to its run's bookkeeping (files.py), and
from there to the result sink, the moment it is complete.
"""

from __future__ import annotations

import logging
import queue
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import replace
from pathlib import Path
from typing import Callable, Optional, Union

from batchscribe.arenas import limit_malloc_arenas
from batchscribe.checks import check_inputs, check_language, check_output_dir
from batchscribe.audio.decode import declared_seconds
from batchscribe.engine.backends import load_engine
from batchscribe.engine.batching.batch import PieceWords, transcribe_isolating
from batchscribe.engine.backends.base import DecodeOptions, Engine
from batchscribe.engine.placement import Placement, available_cores, best_batch_size, choose_placement, quick_start
from batchscribe.engine.models.resolve import ResolvedModel, resolve_model
from batchscribe.errors import BatchscribeError, ModelError, OptionsError
from batchscribe.inputs import discover
from batchscribe.options import TranscribeOptions
from batchscribe.outputs.writers import WRITERS
from batchscribe.pipeline.files import FileInFlight, ProgressListener, RunFiles, SourceFile, sources_of
from batchscribe.pipeline.producer import END, FileFailed, FileRead, Producer, Speech
from batchscribe.results import FailureKind, RunSummary
from batchscribe.sinks.base import ResultSink, SettingsKeys
from batchscribe.sinks.folder import FolderSink
from batchscribe.speakers import SpeakerCount, embed_piece, load_encoder_soon

log = logging.getLogger("batchscribe")
MAX_AUDIO_WORKERS = 8  # files read at once by default; more rarely pays (python -m bench frontend)

Destination = Union[ResultSink, Path, str, None]


def sink_for(destination: Destination) -> Optional[ResultSink]:
    """A sink as given, a folder (a path) as a FolderSink, None for none."""
    if destination is None or hasattr(destination, "write"):
        return destination  # type: ignore[return-value]
    return FolderSink(Path(destination))  # type: ignore[arg-type]


class Transcriber:
    """A model loaded once (on first use) that transcribes run after run: what a worker keeps.

    `engine_loader` makes the engine from the resolved model and its placement: the backend's
    (engine/backends/__init__.py) unless a test hands in another, such as a fake that returns scripted words.
    """

    def __init__(
        self,
        options: Optional[TranscribeOptions] = None,
        engine_loader: Callable[[ResolvedModel, Placement], Engine] = load_engine,
        one_shot: bool = False,
    ):
        limit_malloc_arenas()  # before the model's and readers' threads start: a long file's peak memory
        self.options = options or TranscribeOptions()
        self._one_shot = one_shot  # one run, then the process ends: a small run may skip PyTorch (quick_start)
        if self.options.condition_on_previous_text:
            raise OptionsError(
                "--condition-on-previous-text True is not supported: batchscribe decodes a file's windows in "
                "parallel, packed with other files' speech, so a window's previous text is not known when it is "
                "decoded; give the vocabulary with --initial-prompt or --hotwords instead"
            )
        unknown = set(self.options.formats) - set(WRITERS)
        if unknown:
            raise BatchscribeError(
                f"unknown output format(s): {', '.join(sorted(unknown))}; choose from {', '.join(WRITERS)}"
            )
        self._check_speaker_options()
        self.placement = self._placement(self.options.backend)
        self.model = resolve_model(self.options.model, self.options.backend)
        check_language(self.options.language, self.options.task, self.model.multilingual)
        if self.model.layout == "hf" and self.placement.backend != "torch":
            self.placement = self._placement("torch")  # only PyTorch runs a Hugging Face folder
        if not self.options.batch_size:
            self.options = replace(self.options, batch_size=best_batch_size(self.placement))
        if not self.options.audio_workers:  # readers on the cores the model leaves free (a GPU's host)
            spare = available_cores() - self.placement.threads * self.placement.workers
            self.options = replace(self.options, audio_workers=max(1, min(MAX_AUDIO_WORKERS, spare)))
        self.model_load_seconds = 0.0
        self._engine: Optional[Engine] = None
        self._engine_loader = engine_loader

    def _check_speaker_options(self) -> None:
        options = self.options
        if options.audio_track == 0 and options.speakers:
            raise OptionsError(f"--audio-track all labels each track as a speaker: drop --speakers {options.speakers}")
        if options.speakers == "diarize":
            SpeakerCount(options.num_speakers, options.min_speakers, options.max_speakers)  # raises OptionsError
        elif "rttm" in options.formats and not options.speakers and options.audio_track != 0:
            raise OptionsError(
                "--formats rttm holds speaker turns: add --diarize, --speakers channels or --audio-track all"
            )

    def _placement(self, backend: str) -> Placement:
        options = self.options
        return choose_placement(options.device, options.compute_type, options.threads, options.encoder, backend)

    def engine(self) -> Engine:
        if self._engine is None:
            loading = time.perf_counter()
            self._engine = self._engine_loader(self.model, self.placement)
            self.model_load_seconds = time.perf_counter() - loading
            if self.options.language:  # reject impossible options before reading audio
                self._engine.tokenizer(self.options.language, self.options.task)
        return self._engine

    def _engine_soon(self) -> Callable[[], Engine]:
        """Load the model in the background (importing PyTorch alone takes about a second) while
        the audio thread starts reading; the returned call waits for it."""
        if self._engine is not None:
            engine = self._engine
            return lambda: engine
        loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batchscribe-load")
        loading = loader.submit(self.engine)
        loader.shutdown(wait=False)
        return loading.result

    def settings_runtime(self) -> dict:
        """What changes a transcript beyond TranscribeOptions.output_settings(): part of the resume key."""
        return {"backend": self.placement.backend, "batch_size": self.options.batch_size}

    def settings_keys(self) -> SettingsKeys:
        """The resume stamp's settings keys for this Transcriber's options (sinks/base.py)."""
        return SettingsKeys.of(self.options.output_settings(), self.settings_runtime())

    def run(
        self,
        inputs: Union[list[str], list[SourceFile]],
        sink: Destination = None,
        listener: Optional[ProgressListener] = None,
        prompts: Optional[dict[str, str]] = None,
    ) -> RunSummary:
        """Transcribe every source and hand each transcript to `sink` (a ResultSink, or a folder's path;
        None: results only, nothing stored).

        `inputs`: files, folders or globs (named by the one naming scheme, outputs/layout.py), or
        SourceFiles that a front end has named itself (a worker's fetched objects). `prompts` gives
        single files (by path) their own initial prompt instead of the options' one; their pieces are
        packed only with pieces of files with the same prompt."""
        started = time.perf_counter()
        the_sink = sink_for(sink)
        this_run = RunFiles(self.options, the_sink, listener, self.model.multilingual, self.settings_runtime())
        given = [item for item in inputs if isinstance(item, SourceFile)]
        specs = [str(item) for item in inputs if not isinstance(item, SourceFile)]
        files, missing = discover(specs) if specs else ([], [])
        if specs:
            for warning in check_inputs(specs, files, missing):  # raises when there is nothing at all
                log.warning("%s", warning)
        if isinstance(the_sink, FolderSink):
            check_output_dir(the_sink.folder)
        for item in missing:
            this_run.fail(item.spec, item.error, FailureKind.BAD_INPUT)
        pending, skipped = this_run.pending(given + sources_of(files), prompts)
        if listener:
            listener.started(len(given) + len(files) + len(missing), skipped)
        if pending and self._one_shot and self._engine is None:
            durations = (declared_seconds(file.source.path) for file in pending.values())
            self.placement = quick_start(
                self.placement, self.options.encoder, self.model.name, durations, files=len(pending)
            )
        try:
            if pending:
                _feed_model(self._engine_soon(), self.model, pending, self.options, this_run)
        finally:
            this_run.record_failures()
        return RunSummary(
            this_run.results,
            time.perf_counter() - started,
            self.model.name,
            self.placement.device,
            self.placement.compute_type,
            encoder=self.placement.encoder,
            backend=self.placement.backend,
            model_load_seconds=self.model_load_seconds,
        )


def run(
    inputs: list[str],
    sink: Destination,
    options: Optional[TranscribeOptions] = None,
    listener: Optional[ProgressListener] = None,
    prompts: Optional[dict[str, str]] = None,
) -> RunSummary:
    """Transcribe every file named by `inputs` with a freshly loaded model (Transcriber.run)."""
    return Transcriber(options, one_shot=True).run(inputs, sink, listener, prompts)


def decode_options_of(options: TranscribeOptions) -> DecodeOptions:
    """The engine's decoding options for a run's options."""
    return DecodeOptions(
        task=options.task,
        beam_size=options.beam_size,
        temperature=options.temperature,
        temperatures=options.temperatures(),
        compression_ratio_threshold=options.compression_ratio_threshold,
        logprob_threshold=options.logprob_threshold,
        no_speech_threshold=options.no_speech_threshold,
        initial_prompt=options.initial_prompt,
        hotwords=options.hotwords,
        suppress_tokens=options.suppress_token_ids(),
    )


def _batch_words(future: Future) -> tuple[PieceWords, dict[int, str]]:
    """A batch's words, and the files with a piece the model failed on (transcribe_isolating); the
    model failing on the pieces of several files (a missing library) ends the run with an error that
    says so, not a traceback. Transcripts already written stay."""
    try:
        return future.result()
    except BatchscribeError:
        raise
    except Exception as error:
        raise ModelError(
            f"the model failed on a batch: {type(error).__name__}: {error}; finished transcripts are kept, "
            "re-run to resume"
        ) from error


def _take_speaker_windows(file: FileInFlight, future: Future) -> None:
    file.embeddings_pending -= 1
    try:
        file.speaker_windows.extend(future.result())
    except Exception as error:
        file.speaker_error = f"the speaker encoder failed: {type(error).__name__}: {error}"


def _feed_model(
    load_engine: Callable[[], Engine],
    model: ResolvedModel,
    files: dict[int, FileInFlight],
    options: TranscribeOptions,
    this_run: RunFiles,
) -> None:
    """Feed batches to the engine's workers as the producer makes them; finish files as they complete."""
    model_name = model.name
    producer = Producer(load_engine, model, files, options)
    producer.start()
    speaker_encoder = load_encoder_soon(options.speaker_model if options.speakers == "diarize" else None)
    try:
        engine = load_engine()
        encoder = speaker_encoder()
    except BaseException:
        producer.stop.set()
        producer.join(timeout=5)
        raise
    # code-switching (engine/batching/batch.py): a multilingual model with no --language follows a change of language
    follow_language = model.multilingual and not options.language
    decode_options = replace(decode_options_of(options), detect_language=follow_language)
    speaker_files: dict[Future, int] = {}  # embeddings in flight -> their file
    failed: set[int] = set()
    running: set[Future] = set()
    ended = False

    def finish_ready(file_ids: set[int]) -> None:
        for file_id in sorted(file_ids - failed):
            if files[file_id].complete:
                this_run.complete(files.pop(file_id), model_name)

    def fail(file_id: int, error: str, failure: FailureKind) -> None:
        """A file's one failure, from its reader or from the model (whichever says so first)."""
        if file_id in failed:
            return
        failed.add(file_id)
        producer.drop(file_id)  # read no further
        file = files[file_id]
        this_run.fail(file.source.shown, file.source.message(error), failure, file)

    def take(item) -> None:
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, FileFailed):
            fail(item.file_id, item.error, item.failure)
        elif isinstance(item, FileRead):
            file = files[item.file_id]
            file.duration, file.piece_count = item.duration, item.piece_count
            file.language, file.language_probability = item.language, item.language_probability
            file.piece_speakers, file.speaker_turns = item.piece_speakers, item.speaker_turns
            file.audio = item.audio
            finish_ready({item.file_id})
        elif isinstance(item, Speech):
            files[item.file_id].embeddings_pending += 1
            embedding = pool.submit(embed_piece, encoder, item.piece)
            speaker_files[embedding] = item.file_id
            running.add(embedding)
        else:
            producer.batch_taken()
            running.add(pool.submit(transcribe_isolating, engine, item, decode_options, frozenset(failed)))

    with ThreadPoolExecutor(max_workers=engine.workers, thread_name_prefix="batchscribe-model") as pool:
        try:
            while not ended or running:
                if not ended and len(running) < engine.workers:
                    try:
                        item = producer.out.get(timeout=None if not running else 0.05)
                    except queue.Empty:
                        item = None
                    if item is END:
                        ended = True
                    elif item is not None:
                        take(item)
                done, _ = wait(
                    running,
                    timeout=0 if (not ended and len(running) < engine.workers) else None,
                    return_when=FIRST_COMPLETED,
                )
                for future in done:
                    running.discard(future)
                    if future in speaker_files:
                        file_id = speaker_files.pop(future)
                        _take_speaker_windows(files[file_id], future)
                        finish_ready({file_id})
                        continue
                    touched = set()
                    decoded, undecodable = _batch_words(future)
                    for (file_id, index), words in decoded.items():
                        files[file_id].words[index] = words
                        touched.add(file_id)
                    for file_id, error in undecodable.items():
                        message = f"{files[file_id].source.path}: the model failed on its audio: {error}"
                        fail(file_id, message, FailureKind.TRANSIENT)
                    finish_ready(touched)
        finally:
            producer.stop.set()
            for future in running:
                future.cancel()
            producer.join(timeout=5)
            if producer.is_alive():  # a daemon: it stops at its next piece and cannot outlive the process
                log.warning("the audio thread is still finishing a read after the run ended")
