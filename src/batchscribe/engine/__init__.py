"""The engine: Whisper inference on windows packed with speech from many files.

    models/     which model runs: resolve a --model name, verify and convert its files
    placement   where it runs: device, backend, precision, workers, batch size
    windows     the 30 s window and how speech pieces are laid in it
    batching/   what is decoded together: packing, a batch's fallbacks, words on speech regions
    backends/   how a library runs it: the Engine base class, CTranslate2, PyTorch
"""
