"""The engine: Whisper inference on windows packed with speech from many files."""
