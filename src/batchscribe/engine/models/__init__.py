"""Getting a model: resolve a --model name to a local folder (resolve.py), read and check
CTranslate2 weights (ct2_weights.py), convert them for the PyTorch backend (hf_weights.py)."""
