"""From speech pieces to words: pack pieces of many files into 30 s windows (packing.py), decode a
batch of windows with the quality fallbacks (batch.py), lay words on the speech regions (regions.py)."""
