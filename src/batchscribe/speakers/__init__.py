"""Who spoke when: speaker labels from diarization (embeddings + clustering) or from channels."""

from batchscribe.speakers.assign import (
    Turn,
    channel_segments,
    diarize,
    diarize_sources,
    joined_turns,
    speaker_segments,
)
from batchscribe.speakers.channels import channel_blocks, channel_names
from batchscribe.speakers.cluster import SpeakerCount, cluster_speakers
from batchscribe.speakers.embed import DEFAULT_ENCODER, SpeakerEncoder, load_encoder, load_encoder_soon
from batchscribe.speakers.windows import SpeakerWindow, embed_piece

SPEAKER_MODES = ("diarize", "channels")

__all__ = [
    "DEFAULT_ENCODER",
    "SPEAKER_MODES",
    "SpeakerCount",
    "SpeakerEncoder",
    "SpeakerWindow",
    "channel_blocks",
    "channel_names",
    "channel_segments",
    "cluster_speakers",
    "Turn",
    "diarize",
    "diarize_sources",
    "joined_turns",
    "embed_piece",
    "load_encoder",
    "load_encoder_soon",
    "speaker_segments",
]
