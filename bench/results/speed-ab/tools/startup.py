"""Time from process start to the first batch on the model (first engine decode call)."""
import os, sys, time
def proc_start():
    ticks = os.sysconf("SC_CLK_TCK")
    with open("/proc/self/stat") as f: start = int(f.read().rsplit(")",1)[1].split()[19])
    with open("/proc/uptime") as f: up = float(f.read().split()[0])
    return time.time() - (up - start / ticks)
T0 = proc_start()
import importlib
def hook():
    from batchscribe.engine import whisper_ct2
    orig = whisper_ct2.WhisperCT2.decode
    done = []
    def decode(self, *a, **k):
        if not done:
            done.append(1); print(f"FIRST BATCH at {time.time()-T0:.2f} s", file=sys.stderr, flush=True)
        return orig(self, *a, **k)
    whisper_ct2.WhisperCT2.decode = decode
import threading
sys.argv = ["batchscribe", *sys.argv[1:]]
import runpy
# patch lazily once the module is imported by the loader thread: import it now is cheating on time, so patch via import hook
class Finder:
    def find_spec(self, name, path, target=None):
        if name == "batchscribe.engine.whisper_ct2":
            sys.meta_path.remove(self)
            spec = importlib.util.find_spec(name)
            loader = spec.loader
            orig_exec = loader.exec_module
            def exec_module(m):
                orig_exec(m); 
                o = m.WhisperCT2.decode; done=[]
                def decode(self, *a, **k):
                    if not done:
                        done.append(1); print(f"FIRST BATCH at {time.time()-T0:.2f} s", file=sys.stderr, flush=True)
                    return o(self, *a, **k)
                m.WhisperCT2.decode = decode
            loader.exec_module = exec_module
            return spec
        return None
import importlib.util
sys.meta_path.insert(0, Finder())
runpy.run_module("batchscribe", run_name="__main__")
