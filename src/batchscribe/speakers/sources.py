"""Speakers that need no model: each channel (`--speakers channels`) or each audio track
(`--audio-track all`) of a file transcribed on its own and labelled by its name.

Both give the pipeline the same thing: speech pieces one source after another, the source's
name for each piece (`labels`), every source's speech regions (`turns`, for the RTTM), and where
the audio ends (`end`, seconds on the media's timeline).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterator, Optional, Union

from batchscribe.audio import SAMPLE_RATE, AudioStream, SpeechPiece, VadOptions, open_audio, speech_pieces
from batchscribe.results import SourceAudio
from batchscribe.errors import InputError
from batchscribe.speakers.channels import channel_blocks, channel_names, channels_apart


class _Sources:
    def __init__(self, stream: AudioStream):
        self.stream = stream
        self.path = stream.path
        self.labels: list[str] = []
        self.turns: list[tuple[float, float, str]] = []
        self.end = 0.0

    def _take(self, name: str, piece: SpeechPiece) -> SpeechPiece:
        self.labels.append(name)
        self.turns.extend((start, end, name) for start, end in piece.regions)
        return replace(piece, source=name)

    def source_audio(self) -> SourceAudio:
        return self.stream.source_audio()


class ChannelSpeech(_Sources):
    """Each channel of the opened track, decoded on its own (decoding costs little next to
    transcription; holding one channel while reading the other would cost memory on a 3-hour file)."""

    def __init__(self, stream: AudioStream):
        super().__init__(stream)
        stream._container.close()  # opened by open_audio for its checks; each channel is decoded anew
        self.names = channel_names(self.path, stream.track)

    def pieces(self, vad_options: VadOptions) -> Iterator[SpeechPiece]:
        for channel, name in enumerate(self.names):
            for piece in speech_pieces(self._counted(channel), vad_options):
                yield self._take(name, piece)

    def _counted(self, channel: int) -> Iterator:
        samples = 0
        for block in channel_blocks(self.path, channel, self.stream.track):
            samples += block.size
            yield block
        self.end = max(self.end, samples / SAMPLE_RATE)


class TrackSpeech(_Sources):
    """Every audio track of the file (one microphone each, as podcast recorders write them),
    labelled by the track's title, else `track N`; each on the media's timeline."""

    def pieces(self, vad_options: VadOptions) -> Iterator[SpeechPiece]:
        for track in self.stream.tracks:
            stream = self.stream if track.index == self.stream.track else open_audio(self.path, track.index)
            name = track.title or f"track {track.index}"
            for piece in speech_pieces(stream.blocks(), vad_options):
                yield self._take(name, piece.shifted(stream.start))
            self.end = max(self.end, stream.end)

    def source_audio(self) -> SourceAudio:
        audio = self.stream.source_audio()
        return replace(audio, tracks=tuple(replace(t, transcribed=True) for t in audio.tracks))


def speaker_sources(stream: AudioStream, options) -> Optional[Union[ChannelSpeech, TrackSpeech]]:
    """The model-free speaker sources the options ask for (TranscribeOptions), or None."""
    if options.audio_track == 0:
        return TrackSpeech(stream)
    if options.speakers == "channels":
        return ChannelSpeech(stream)
    if options.speakers == "diarize" and stream.channels >= 2 and _apart(stream):
        return ChannelSpeech(stream)  # a voice per channel: each heard on its own, voices still clustered
    return None


def _apart(stream: AudioStream) -> bool:
    try:
        return channels_apart(stream.path, stream.track)
    except (InputError, ValueError):  # the main decode reports a damaged file with its own message
        return False
