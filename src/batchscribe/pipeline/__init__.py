"""One run: sources -> audio -> packed batches -> engine -> transcripts handed to a result sink.

- producer.py: the audio thread (decode, speech, language, packing into batches)
- files.py: the run's files (names, resume, per-file state) and how a finished file becomes a transcript
- transcriber.py: the Transcriber (a model loaded once) and the loop that feeds it

The model is loaded once; a file is finished the moment its last piece comes back; bad files fail alone.
"""

from batchscribe.pipeline.files import ProgressListener, SourceFile
from batchscribe.pipeline.transcriber import Transcriber, decode_options_of, run

__all__ = ["ProgressListener", "SourceFile", "Transcriber", "decode_options_of", "run"]
