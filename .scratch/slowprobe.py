import sys, os; sys.path.insert(0, os.getcwd())
import asyncio, asyncio.events, time, sys, traceback
orig = asyncio.events.Handle._run
slow = []
def _run(self):
    t = time.perf_counter()
    orig(self)
    d = time.perf_counter() - t
    if d > 0.015:
        cb = self._callback
        desc = repr(cb)[:300]
        task = getattr(cb, "__self__", None)
        if isinstance(task, asyncio.Task):
            coro = task.get_coro()
            desc = f"task {task.get_name()} {coro!r}"[:300]
        slow.append((round(d*1000,1), time.strftime("%H:%M:%S"), desc))
asyncio.events.Handle._run = _run
import atexit
def dump():
    for s in sorted(slow, reverse=True)[:40]:
        print("SLOW", s, file=sys.stderr)
atexit.register(dump)
from scripts.py import bench_scale
sys.exit(bench_scale.main(sys.argv[1:]))
