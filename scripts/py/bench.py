"""The download benchmark of issue 4, item 7: `scripts/bench` (a benchmark run on demand, not a test).

Against the emulator's HTTPS server on loopback (a separate process, so it shares neither this event loop nor
its CPU accounting), in one run:

- the engine's `Downloader` (streamed download, MD5 on the way, resumable) fetching a 64 MiB and a 512 MiB
  image, interleaved with a baseline in the same run: a plain aiohttp streaming GET into a file with
  hashlib.md5, every write and hash on the event loop. Each round times both sides back to back (who goes
  first alternates), and `engine / baseline` is the median over the rounds (at least 5 by default) of the
  round's own ratio, so a machine whose load drifts during the run hits both sides of a round alike (each run
  also shows this process's CPU time, every thread included; the emulator's is its own);
- the peak RSS growth of this process during the 512 MiB engine download, over its RSS just before it;
- the longest event-loop stall during the engine downloads (a task sleeping 5 ms records its lateness);
- with a whole `GatewayEngine` (20 sub-devices bound to a gateway, one small image pushed to all of them, the
  `file` flasher), how many times the image's body was served (the emulator's `/api/stats`).

Every figure is printed beside its target with PASS or MISS (a miss does not fail the run), then one JSON line
with the keys `ratio_64m`, `ratio_512m`, `rss_growth_mib_512m`, `max_loop_stall_ms`, `body_downloads_shared`.
Exit status: 0 when the run completed, 1 when something broke, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
import hashlib
import json
import logging
import os
from pathlib import Path
import shutil
import signal
import ssl
import statistics
import sys
import tempfile
import time
from typing import IO, Any

import aiohttp

from bench_support.monitor import MIB, Monitor
from custom_components.tencent_iot_gateway.engine.engine_config import (
    EngineDevices,
    EngineStorage,
    GatewayLogin,
)
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.gateway_engine import EngineEvent, GatewayEngine, SubDevice
from custom_components.tencent_iot_gateway.engine.mqtt.endpoints import BrokerEndpoint
from custom_components.tencent_iot_gateway.engine.ota.download import Downloader, DownloadProgress
from custom_components.tencent_iot_gateway.engine.ota.firmware import FirmwareSpec
from custom_components.tencent_iot_gateway.engine.ota.firmware_cache import FirmwareCache
from custom_components.tencent_iot_gateway.engine.ota.flashers import FileFlasher, FileFlasherConfig
from custom_components.tencent_iot_gateway.engine.ota.jobs import JobState
from custom_components.tencent_iot_gateway.engine.stores.storage import JsonFileStore
from tencent_iot_emulator.console_client import ConsoleClient
from tencent_iot_emulator.process import EmulatorProcess, EmulatorStartError, Endpoints

TOP = Path(__file__).resolve().parents[2]

GATEWAY = DeviceId("BENCHGW001", "gateway1")
BIG_PRODUCT = "BENCHBIG01"
SHARE_PRODUCT = "BENCHSHR01"
SHARE_VERSION = "S2M"
SHARE_SIZE = 2 * MIB
SHARED_DEVICES = [DeviceId(SHARE_PRODUCT, f"sub{i:02d}") for i in range(1, 21)]
INSTALLED = "0.1"


@dataclass(frozen=True, slots=True)
class BigImage:
    """One image of the timed part: its size, the version it is pushed as, and the probe sub-device."""

    label: str
    size: int
    version: str
    runs: int

    @property
    def probe(self) -> DeviceId:
        """The sub-device the image is pushed to, so the engine receives its signed URL."""
        return DeviceId(BIG_PRODUCT, f"probe{self.label}")


BASELINE_CHUNK = 256 * 1024
RANDOM_BLOCK = MIB
ENGINE_TIMEOUT_S = 120.0

# The targets: issue 4, tightened by issue 18 once shared downloads had a room of their own.
MAX_RATIO_64M = 1.10
MAX_RATIO_512M = 1.00
MAX_RSS_GROWTH_MIB = 32.0
MAX_STALL_MS = 50.0
BODY_DOWNLOADS = 1


class BenchError(Exception):
    """Something the benchmark needs did not work: the run is void."""


@dataclass(frozen=True, slots=True)
class Timing:
    """One timed download."""

    side: str
    seconds: float
    cpu_seconds: float
    size: int
    max_stall_ms: float
    rss_growth_mib: float

    def describe(self) -> str:
        """One line for the report."""
        speed = self.size / self.seconds / MIB
        return (
            f"{self.side:<8} {self.seconds:7.3f} s  {speed:6.1f} MiB/s  CPU {self.cpu_seconds:6.3f} s  "
            f"longest stall {self.max_stall_ms:5.1f} ms  RSS +{self.rss_growth_mib:5.1f} MiB"
        )


async def baseline_download(session: aiohttp.ClientSession, spec: FirmwareSpec, work: Path) -> Timing:
    """The reference: a plain streaming GET into a file, hashed with hashlib.md5, all on the event loop."""
    target = work / "baseline.bin"
    digest = hashlib.md5(usedforsecurity=False)
    async with Monitor() as monitor:
        started, cpu_started = time.perf_counter(), time.process_time()
        async with session.get(spec.url) as response:
            if response.status != 200:
                raise BenchError(f"baseline: HTTP {response.status} from {spec.public_url}")
            # Deliberately naive (plain writes on the loop): this is what the engine is compared with.
            handle = _open_for_writing(target)
            try:
                async for chunk in response.content.iter_chunked(BASELINE_CHUNK):
                    handle.write(chunk)
                    digest.update(chunk)
            finally:
                handle.close()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    await _in_executor(target.unlink)
    if digest.hexdigest() != spec.md5.lower():
        raise BenchError(f"baseline: md5 mismatch for {spec.version}")
    return Timing("baseline", elapsed, cpu, spec.size, monitor.max_stall_ms, monitor.rss_growth_mib)


async def engine_download(session: aiohttp.ClientSession, spec: FirmwareSpec, work: Path) -> Timing:
    """The engine's download and verification into a fresh cache (deleted afterwards)."""
    run_dir = work / "engine-run"
    cache = FirmwareCache(run_dir / "cache")
    downloader = Downloader(session, cache, JsonFileStore(run_dir / "downloads.json"))
    async with Monitor() as monitor:
        started, cpu_started = time.perf_counter(), time.process_time()
        await downloader.fetch(spec, _ignore_progress)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    await _in_executor(shutil.rmtree, run_dir)
    return Timing("engine", elapsed, cpu, spec.size, monitor.max_stall_ms, monitor.rss_growth_mib)


@dataclass(frozen=True, slots=True)
class SizeResult:
    """Every timing of one image size."""

    label: str
    timings: list[Timing]

    def of(self, side: str) -> list[Timing]:
        """The timings of one side, in run order."""
        return [t for t in self.timings if t.side == side]

    @property
    def round_ratios(self) -> list[float]:
        """Engine time over baseline time of each round (the two runs of a round are back to back)."""
        return [e.seconds / b.seconds for e, b in zip(self.of("engine"), self.of("baseline"), strict=True)]

    @property
    def ratio(self) -> float:
        """The median of the rounds' ratios: the figure reported."""
        return statistics.median(self.round_ratios)

    @property
    def best_ratio(self) -> float:
        """Best engine time over best baseline time (shown beside the median)."""
        best_engine = min(t.seconds for t in self.of("engine"))
        best_baseline = min(t.seconds for t in self.of("baseline"))
        return best_engine / best_baseline

    @property
    def median_ratio(self) -> float:
        """Median engine time over median baseline time (shown beside the best-of ratio)."""
        engine = statistics.median(t.seconds for t in self.of("engine"))
        return engine / statistics.median(t.seconds for t in self.of("baseline"))


async def time_size(
    session: aiohttp.ClientSession, image: BigImage, spec: FirmwareSpec, work: Path
) -> SizeResult:
    """Interleaved rounds of one baseline and one engine run (who goes first alternates, so drift hits both)."""
    print(f"\n== {image.label} ({spec.size} bytes), {image.runs} rounds ==", flush=True)
    sides: tuple[Callable[..., Awaitable[Timing]], ...] = (baseline_download, engine_download)
    timings: list[Timing] = []
    for run in range(image.runs):
        for measure in sides if run % 2 == 0 else sides[::-1]:
            # Every run starts with nothing waiting to be written back, so no run pays for the one before.
            await _in_executor(os.sync)
            timing = await measure(session, spec, work)
            timings.append(timing)
            print(f"  run {run + 1}  {timing.describe()}", flush=True)
    result = SizeResult(image.label, timings)
    rounds = " ".join(f"{r:.3f}" for r in result.round_ratios)
    print(
        f"  engine/baseline per round: {rounds}; median {result.ratio:.3f} "
        f"(median times {result.median_ratio:.3f}, best-of {result.best_ratio:.3f}; {_machine()})",
        flush=True,
    )
    return result


# --- the cloud side: devices, images, and the engine that receives the signed URLs -----------------------


async def _random_stream(size: int, digest: Any) -> AsyncIterator[bytes]:
    """`size` random bytes in 1 MiB blocks, hashed on the way (uploaded without ever touching our disk)."""
    remaining = size
    while remaining > 0:
        block = os.urandom(min(RANDOM_BLOCK, remaining))
        digest.update(block)
        remaining -= len(block)
        yield block
        await asyncio.sleep(0)


async def upload_random(console: ConsoleClient, product_id: str, version: str, size: int) -> None:
    """Upload `size` random bytes as `product_id`'s `version`, and check the emulator stored them."""
    digest = hashlib.md5(usedforsecurity=False)
    started = time.perf_counter()
    info = await console.upload_firmware(product_id, version, _random_stream(size, digest))
    if info.size != size or info.md5 != digest.hexdigest():
        raise BenchError(f"the emulator stored {product_id} {version} wrongly ({info.size} bytes)")
    print(
        f"  uploaded {product_id} {version}: {size} bytes in {time.perf_counter() - started:.1f} s",
        flush=True,
    )


async def register_devices(console: ConsoleClient, probes: Sequence[DeviceId]) -> str:
    """The gateway, the probes and the 20 sharing sub-devices, all bound; returns the gateway's secret."""
    gateway = await console.add_device(GATEWAY.product_id, GATEWAY.device_name)
    for device in [*probes, *SHARED_DEVICES]:
        await console.add_device(device.product_id, device.device_name)
        await console.bind(GATEWAY.key, device.key)
    return gateway.device_secret


def trusting_session(ca_file: Path) -> aiohttp.ClientSession:
    """An aiohttp session that verifies the emulator's certificates against its CA."""
    context = ssl.create_default_context(cafile=str(ca_file))
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context))


async def _eventually(probe: Callable[[], Awaitable[bool]], what: str, within: float) -> None:
    deadline = time.monotonic() + within
    while not await probe():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {within:g} s waiting for {what}")
        await asyncio.sleep(0.1)


@dataclass(frozen=True, slots=True)
class Sharing:
    """What the emulator served for the image the 20 sub-devices share."""

    requests: int
    bytes_served: int
    size: int
    done: int
    seconds: float

    @property
    def body_downloads(self) -> float:
        """Bytes served over the image size."""
        return self.bytes_served / self.size


async def engine_phase(
    endpoints: Endpoints, console: ConsoleClient, secret: str, images: Sequence[BigImage], work: Path
) -> tuple[dict[str, FirmwareSpec], Sharing]:
    """Run a gateway engine: collect the signed specs pushed to the probes, then share one image 20 ways."""
    flashed = work / "flashed"
    state = work / "engine"
    async with trusting_session(endpoints.ca_file) as session:
        cache = FirmwareCache(state / "cache")
        flasher = FileFlasher(FileFlasherConfig(str(flashed)))
        endpoint = BrokerEndpoint(
            "127.0.0.1",
            endpoints.mqtts_port,
            tls=True,
            ca_pem=await _in_executor(endpoints.ca_file.read_text),
        )
        engine = GatewayEngine(
            GatewayLogin(endpoint, GATEWAY, secret),
            storage=EngineStorage(
                store=JsonFileStore(state / "ota.json"),
                downloader=Downloader(session, cache, JsonFileStore(state / "downloads.json")),
                cache=cache,
            ),
            devices=EngineDevices(
                flasher_for=lambda _device: flasher,
                # The probes only receive their push; the 20 sharing sub-devices install theirs.
                auto_install=lambda device: device.product_id == SHARE_PRODUCT,
            ),
            on_event=_ignore_event,
        )
        subs = [SubDevice(d, INSTALLED) for d in [*(i.probe for i in images), *SHARED_DEVICES]]
        await engine.start(subs)
        try:
            keys = {sub.device.key for sub in subs}

            async def all_reported() -> bool:
                ready = {d.key for d in await console.list_devices() if d.online and d.version == INSTALLED}
                return keys <= ready

            await _eventually(all_reported, "the sub-devices to come online", ENGINE_TIMEOUT_S)
            specs = {image.label: await _probe_spec(console, engine, image) for image in images}
            sharing = await _share(console, engine)
        finally:
            await engine.stop()
    await _in_executor(shutil.rmtree, flashed, True)
    return specs, sharing


async def _probe_spec(console: ConsoleClient, engine: GatewayEngine, image: BigImage) -> FirmwareSpec:
    """Push `image` to its probe; the engine validates the `update_firmware` and keeps its spec."""
    probe = image.probe
    await console.create_task(BIG_PRODUCT, image.version, "list", devices=[probe.device_name])

    async def received() -> bool:
        return engine.ota.snapshot(probe).target is not None

    await _eventually(received, f"the push of {image.version}", ENGINE_TIMEOUT_S)
    spec = engine.ota.snapshot(probe).target
    assert spec is not None
    return spec


async def _share(console: ConsoleClient, engine: GatewayEngine) -> Sharing:
    """Push one small image to the 20 sharing sub-devices and count what the emulator served."""
    print(f"\n== {len(SHARED_DEVICES)} sub-devices sharing one {SHARE_SIZE // MIB} MiB image ==", flush=True)
    started = time.perf_counter()
    await console.create_task(
        SHARE_PRODUCT, SHARE_VERSION, "list", devices=[d.device_name for d in SHARED_DEVICES]
    )

    async def settled() -> bool:
        states = [engine.ota.snapshot(d).state for d in SHARED_DEVICES]
        return all(s in {JobState.DONE, JobState.FAILED} for s in states)

    await _eventually(settled, "the 20 shared updates", ENGINE_TIMEOUT_S)
    seconds = time.perf_counter() - started
    done = sum(engine.ota.snapshot(d).state is JobState.DONE for d in SHARED_DEVICES)
    stats = await console.stats()
    counters = stats.firmware.get(f"{SHARE_PRODUCT}/{SHARE_VERSION}")
    requests, served = (counters.requests, counters.bytes) if counters is not None else (0, 0)
    sharing = Sharing(requests, served, SHARE_SIZE, done, seconds)
    print(
        f"  {done}/{len(SHARED_DEVICES)} done in {seconds:.1f} s; the emulator served {requests} request(s), "
        f"{served} bytes = {sharing.body_downloads:g} body download(s)",
        flush=True,
    )
    return sharing


# --- the report --------------------------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(sizes: dict[str, SizeResult], sharing: Sharing) -> dict[str, float]:
    """Print the figures beside their targets; return the JSON figures."""
    engine_512 = sizes["512m"].of("engine")
    rss_512 = max(t.rss_growth_mib for t in engine_512)
    stall = max(t.max_stall_ms for result in sizes.values() for t in result.of("engine"))
    baseline_stall = max(t.max_stall_ms for result in sizes.values() for t in result.of("baseline"))
    single = sharing.bytes_served == sharing.size and sharing.requests == BODY_DOWNLOADS
    rows = [
        ("engine/baseline median, 64 MiB", f"{sizes['64m'].ratio:.3f}", f"<= {MAX_RATIO_64M}", sizes["64m"].ratio <= MAX_RATIO_64M),
        ("engine/baseline median, 512 MiB", f"{sizes['512m'].ratio:.3f}", f"<= {MAX_RATIO_512M}", sizes["512m"].ratio <= MAX_RATIO_512M),
        ("peak RSS growth, 512 MiB", f"{rss_512:.1f} MiB", f"<= {MAX_RSS_GROWTH_MIB:g} MiB", rss_512 <= MAX_RSS_GROWTH_MIB),
        ("longest loop stall (engine)", f"{stall:.1f} ms", f"<= {MAX_STALL_MS:g} ms", stall <= MAX_STALL_MS),
        ("body downloads, 20 sharing", f"{sharing.body_downloads:g} ({sharing.requests} req)", f"= {BODY_DOWNLOADS}", single),
    ]  # fmt: skip
    print("\n== Figures against the targets ==")
    for name, value, target, ok in rows:
        print(f"  {name:<31} {value:<16} target {target:<12} {_verdict(ok)}")
    print(f"  (for comparison: the baseline's longest loop stall was {baseline_stall:.1f} ms)")
    return {
        "ratio_64m": round(sizes["64m"].ratio, 3),
        "ratio_512m": round(sizes["512m"].ratio, 3),
        "rss_growth_mib_512m": round(rss_512, 1),
        "max_loop_stall_ms": round(stall, 1),
        "body_downloads_shared": round(sharing.body_downloads, 3),
    }


# --- the run -----------------------------------------------------------------------------------------------


async def bench(images: Sequence[BigImage], work: Path) -> dict[str, float]:
    """The whole benchmark inside `work` (the caller deletes it)."""
    emulator = EmulatorProcess(work / "emulator", work / "emulator.log")
    try:
        print(f"== Setting up the emulator ({_machine()}) ==", flush=True)
        endpoints = await emulator.start()
        print(f"  emulator ready: console {endpoints.http_url}, firmware {endpoints.https_url}", flush=True)
        async with aiohttp.ClientSession() as http:
            console = ConsoleClient(endpoints.http_url, http)
            secret = await register_devices(console, [image.probe for image in images])
            for image in images:
                await upload_random(console, BIG_PRODUCT, image.version, image.size)
            await upload_random(console, SHARE_PRODUCT, SHARE_VERSION, SHARE_SIZE)
            specs, sharing = await engine_phase(endpoints, console, secret, images, work)
        sizes: dict[str, SizeResult] = {}
        async with trusting_session(endpoints.ca_file) as session:
            for image in images:
                if image.label == images[0].label:
                    # Untimed: opens the TLS connection both sides then reuse from the pool.
                    await baseline_download(session, specs[image.label], work)
                sizes[image.label] = await time_size(session, image, specs[image.label], work)
        figures = report(sizes, sharing)
        print(f"  ({_machine()} at the end)")
        return figures
    finally:
        await emulator.stop()


def _parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs-64", type=int, default=9, help="timed rounds for 64 MiB (default 9)")
    parser.add_argument("--runs-512", type=int, default=5, help="timed rounds for 512 MiB (default 5)")
    parser.add_argument(
        "--tmp-dir", type=Path, default=None, help="where the temporary files go (about 1.2 GiB at peak)"
    )
    args = parser.parse_args(list(argv))
    if args.runs_64 < 1 or args.runs_512 < 1:
        parser.error("every size needs at least one round")
    return args


async def _main(args: argparse.Namespace, work: Path) -> dict[str, float]:
    images = [
        BigImage("64m", 64 * MIB, "B64M", args.runs_64),
        BigImage("512m", 512 * MIB, "B512M", args.runs_512),
    ]
    return await bench(images, work)


def run_benchmark(
    args: argparse.Namespace,
    prefix: str,
    body: Callable[[argparse.Namespace, Path], Awaitable[Mapping[str, object]]],
) -> int:
    """Run `body` in a temporary folder (removed whatever happens); print the figures as one JSON line.

    SIGTERM and Ctrl-C end it cleanly (the emulator and the files go too); the exit code says how it ended.
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    async def guarded() -> Mapping[str, object]:
        main_task = asyncio.current_task()
        assert main_task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
        work = Path(tempfile.mkdtemp(prefix=prefix, dir=args.tmp_dir))
        try:
            return await body(args, work)
        finally:
            await _in_executor(shutil.rmtree, work, True)

    try:
        figures = asyncio.run(guarded())
    except KeyboardInterrupt, asyncio.CancelledError:
        print("\ninterrupted; temporary files and the emulator are cleaned up", file=sys.stderr)
        return 130
    except (BenchError, EmulatorStartError) as err:
        print(f"\nbenchmark failed: {err}", file=sys.stderr)
        return 1
    print(json.dumps(figures))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print the figures and the JSON line."""
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    return run_benchmark(args, "tencent-iot-bench-", _main)


def _machine() -> str:
    """CPUs and load: the figures are only comparable on a machine that is otherwise idle."""
    one, five, _fifteen = os.getloadavg()
    return f"{os.cpu_count()} CPUs, load average {one:.2f} (1 min) {five:.2f} (5 min)"


def _ignore_progress(_progress: DownloadProgress) -> None:
    """The benchmark times downloads; progress is not shown."""


def _ignore_event(_event: EngineEvent) -> None:
    """The benchmark reads the engine's snapshots directly."""


def _open_for_writing(path: Path) -> IO[bytes]:
    return path.open("wb")


async def _in_executor[T](func: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, func, *args)


if __name__ == "__main__":
    sys.exit(main())
