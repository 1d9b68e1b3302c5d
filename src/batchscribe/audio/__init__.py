"""Audio in: decoding any media file to 16 kHz mono, and finding the speech in it."""

from batchscribe.audio.decode import SAMPLE_RATE, AudioStream, open_audio
from batchscribe.audio.vad import SpeechPiece, VadOptions, speech_pieces

__all__ = ["SAMPLE_RATE", "AudioStream", "open_audio", "SpeechPiece", "VadOptions", "speech_pieces"]
