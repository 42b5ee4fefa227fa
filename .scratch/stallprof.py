"""Throwaway: run bench_scale with slow-callback and GC-pause tracing."""
import asyncio, asyncio.events, gc, sys, time, traceback
from collections import Counter

SLOW = 0.015
slow: list[tuple[float, str]] = []
orig = asyncio.events.Handle._run

def _run(self):
    t = time.perf_counter()
    orig(self)
    d = time.perf_counter() - t
    if d > SLOW:
        cb = self._callback
        desc = repr(cb)
        owner = getattr(cb, "__self__", None)
        if isinstance(owner, asyncio.Task):
            coro = owner.get_coro()
            desc = f"task {getattr(coro, '__qualname__', coro)}"
        slow.append((d, desc[:200]))

asyncio.events.Handle._run = _run
gcs: list[float] = []
_gc_t = [0.0]
def gccb(phase, info):
    if phase == "start":
        _gc_t[0] = time.perf_counter()
    else:
        d = time.perf_counter() - _gc_t[0]
        if d > 0.005:
            gcs.append((d, info.get("generation"), info.get("collected")))
gc.callbacks.append(gccb)

sys.path.insert(0, ".")
from scripts.py import bench_scale
_orig_wait_online = bench_scale._wait_online
_orig_wait_pushed = bench_scale._wait_pushed
def histo(tag):
    objs = gc.get_objects()
    c = Counter(type(o).__qualname__ for o in objs)
    t = time.perf_counter(); n = gc.collect(); d = time.perf_counter() - t
    print(f"MANUAL FULL GC {tag}: {d*1000:.1f} ms, {n} collected", flush=True)
    t = time.perf_counter(); n = gc.collect(); d = time.perf_counter() - t
    print(f"MANUAL FULL GC again {tag}: {d*1000:.1f} ms, {n} collected", flush=True)
    big = sorted(((len(gc.get_referents(o)), type(o).__qualname__, repr(o)[:100]) for o in objs if isinstance(o, (list, dict, set, tuple, frozenset)) or hasattr(o, "__dict__")), reverse=True)[:8]
    print("BIGGEST:", *big, sep="\n   ")
    print("TOTAL REFS:", sum(len(gc.get_referents(o)) for o in objs))
    print(f"HEAP {tag}: {len(objs)} tracked objects; top: {c.most_common(12)}", flush=True)
async def wait_online(*a, **k):
    r = await _orig_wait_online(*a, **k)
    histo("after online")
    return r
async def wait_pushed(*a, **k):
    r = await _orig_wait_pushed(*a, **k)
    histo("after push")
    return r
bench_scale._wait_online = wait_online
bench_scale._wait_pushed = wait_pushed
rc = bench_scale.main(sys.argv[1:])
print("SLOW CALLBACKS:")
for d, desc in sorted(slow, reverse=True)[:25]:
    print(f"  {d*1000:7.1f} ms  {desc}")
print("GC PAUSES > 5ms:", sorted(gcs, reverse=True)[:15])
