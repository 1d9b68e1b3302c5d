"""How often a file's words change with the files it is packed with.

    python -m bench.packing [--model tiny.en] [--reproducible] [--alone FILE.json] [--out FILE.json]

Transcribes the 60 LibriSpeech test-other files (short60) each alone (one run per file, the
model loaded once), then all together in one run, and counts the files whose normalised words
differ. `--alone` reuses the per-file transcripts of an earlier measurement; `--reproducible`
runs the together pass with packing off (every file in windows and batches of its own).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from whisper_normalizer.english import EnglishTextNormalizer

from bench.corpora import corpora

normalize = EnglishTextNormalizer()


def _texts(summary) -> dict[str, str]:
    return {Path(r.source).name: r.transcript.text for r in summary.results if r.transcript}


def main() -> None:
    from batchscribe.options import TranscribeOptions
    from batchscribe.pipeline import Transcriber

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--reproducible", action="store_true")
    parser.add_argument("--alone", type=Path, help="per-file transcripts from an earlier run")
    parser.add_argument("--out", type=Path, default=Path("bench/results/packing/packed.json"))
    args = parser.parse_args()
    files = [str(f) for f in corpora()["short60"].files]
    options = {"model": args.model, "formats": ("txt",)}
    if args.reproducible:
        options["packing"] = False
    together_transcriber = Transcriber(TranscribeOptions(**options))
    started = time.perf_counter()
    together = _texts(together_transcriber.run(files, None))
    together_seconds = time.perf_counter() - started
    if args.alone:
        alone = json.loads(args.alone.read_text())["alone"]
    else:
        transcriber = Transcriber(TranscribeOptions(model=args.model, formats=("txt",)))
        alone = {}
        for path in files:
            alone.update(_texts(transcriber.run([path], None)))
    changed = sorted(name for name in alone if normalize(alone[name]) != normalize(together.get(name, "")))
    report = {
        "model": args.model,
        "reproducible": args.reproducible,
        "files": len(files),
        "changed": len(changed),
        "changed_files": {name: {"alone": alone[name], "together": together.get(name)} for name in changed},
        "together_seconds": round(together_seconds, 2),
        "alone": alone,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{len(changed)} of {len(files)} files change words when packed with the others "
          f"({'packing off' if args.reproducible else 'packed'}; together in {together_seconds:.1f} s)")


if __name__ == "__main__":
    main()
