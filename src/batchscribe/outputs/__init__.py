"""Outputs: transcripts as txt/srt/vtt/json, laid out next to each other, written atomically."""
