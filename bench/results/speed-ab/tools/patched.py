"""python patched.py KEY=VAL... -- batchscribe args : patch packing/vad defaults, then run the CLI."""
import sys, runpy
args = sys.argv[1:]
i = args.index("--")
patches, rest = args[:i], args[i+1:]
import batchscribe.engine.packing as packing, batchscribe.audio.vad as vad, dataclasses
for p in patches:
    k, v = p.split("="); v = float(v)
    if k in ("gap", "limit"):
        init = packing.WindowPacker.__init__
        d = list(init.__defaults__)
        names = ["gap", "limit", "open_windows", "initial_prompt"]
        d[names.index(k)] = v
        init.__defaults__ = tuple(d)
    else:
        f = {x.name: x for x in dataclasses.fields(vad.VadOptions)}[k]
        vad.VadOptions.__init__.__defaults__  # frozen dataclass: patch the default via field default
        defaults = list(vad.VadOptions.__init__.__defaults__)
        names = [x.name for x in dataclasses.fields(vad.VadOptions)]
        defaults[names.index(k)] = v
        vad.VadOptions.__init__.__defaults__ = tuple(defaults)
sys.argv = ["batchscribe", *rest]
runpy.run_module("batchscribe", run_name="__main__")
