"""usage: one.py SRC CORPUS MODEL [extra args...] -> wall, cpu, WER"""
import os, sys, subprocess, tempfile, time
from pathlib import Path
sys.path.insert(0, "/work/wt/speed")
from bench.corpora import corpora, error_rate, audio_seconds
src, name, model, *extra = sys.argv[1:]
base, _, n = name.partition(':')
corpus = corpora()[base]
files = corpus.files[:int(n)] if n else corpus.files
with tempfile.TemporaryDirectory() as tmp:
    pre = [a for a in extra if "=" in a and not a.startswith("-")]
    extra = [a for a in extra if a not in pre]
    argv = [sys.executable, *( ["/tmp/sp/patched.py", *pre, "--"] if pre else ["-m", "batchscribe"]), "transcribe", *map(str, files), "-o", tmp, "--model", model,
            "--formats", "txt", "--overwrite", "--threads", "2", *extra]
    t = time.perf_counter()
    p = subprocess.Popen(argv, env={**os.environ, "PYTHONPATH": src}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, st, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(st) not in (0, 1):
        print(p.stderr.read().decode()[-2000:]); sys.exit(1)
    err = error_rate(Path(tmp), files)[0]
print(f"{name} {audio_seconds(files):.0f}s {model} {' '.join(sys.argv[4:])} wall {wall:.1f} cpu {ru.ru_utime+ru.ru_stime:.1f} rss {ru.ru_maxrss/1024:.0f}MiB WER {100*err:.2f}", flush=True)
