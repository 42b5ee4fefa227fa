"""The firmware cache: names from the image key only, reference counting, free space and removal."""

from __future__ import annotations

from pathlib import Path

import pytest

from custom_components.tencent_iot_gateway.engine.ota.firmware import FirmwareSpec
from custom_components.tencent_iot_gateway.engine.ota.firmware_cache import FirmwareCache, image_file_stem

MD5 = "0123456789abcdef0123456789ABCDEF"
SPEC = FirmwareSpec("https://cos.example/ota/fw.bin?sign=secret", MD5, 4096, "V100R0001")


def put_image(cache: FirmwareCache, spec: FirmwareSpec = SPEC) -> Path:
    """Pretend a verified download finished."""
    path = cache.path_for(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * spec.size)
    return path


def test_names_come_from_md5_and_size_only(tmp_path: Path) -> None:
    cache = FirmwareCache(tmp_path)
    other_url_and_version = FirmwareSpec("http://elsewhere/x/../y.bin?a=b", MD5.lower(), 4096, "9.9")

    path = cache.path_for(SPEC)

    assert path == tmp_path / f"{MD5.lower()}-4096.bin"
    assert cache.partial_path_for(SPEC) == tmp_path / f"{MD5.lower()}-4096.part"
    assert cache.path_for(other_url_and_version) == path
    assert cache.path_for((MD5, 4096)) == path
    assert "V100R0001" not in str(path)
    assert "secret" not in str(path)


@pytest.mark.parametrize(
    "key", [("../../etc/passwd" + "0" * 16, 1), ("g" * 32, 1), (MD5, 0), (MD5, -5), ("0" * 31, 1)]
)
def test_keys_that_cannot_be_file_names_are_refused(tmp_path: Path, key: tuple[str, int]) -> None:
    with pytest.raises(ValueError, match="image key"):
        FirmwareCache(tmp_path).path_for(key)


async def test_last_release_deletes_the_image(tmp_path: Path) -> None:
    cache = FirmwareCache(tmp_path)
    path = put_image(cache)
    cache.acquire(SPEC)
    cache.acquire((MD5, 4096))
    assert cache.refcount(SPEC) == 2

    await cache.release(SPEC)
    assert path.exists()
    assert cache.refcount(SPEC) == 1

    await cache.release(SPEC)
    assert not path.exists()
    assert cache.refcount(SPEC) == 0


async def test_release_keeps_the_partial_file_unless_asked(tmp_path: Path) -> None:
    cache = FirmwareCache(tmp_path)
    partial = cache.partial_path_for(SPEC)
    partial.write_bytes(b"half")
    put_image(cache)

    await cache.release(SPEC)
    assert partial.exists()
    assert not cache.path_for(SPEC).exists()

    await cache.release(SPEC, discard_partial=True)
    assert not partial.exists()


async def test_images_are_counted_separately(tmp_path: Path) -> None:
    cache = FirmwareCache(tmp_path)
    other = FirmwareSpec(SPEC.url, "f" * 32, 10, "2.0")
    first, second = put_image(cache), put_image(cache, other)
    cache.acquire(SPEC)
    cache.acquire(other)

    await cache.release(other)

    assert first.exists()
    assert not second.exists()


async def test_hold_releases_on_exit_even_after_an_error(tmp_path: Path) -> None:
    cache = FirmwareCache(tmp_path)
    path = put_image(cache)

    async def flash_that_fails() -> None:
        async with cache.hold(SPEC) as held:
            assert held == path
            assert cache.refcount(SPEC) == 1
            raise RuntimeError("flash failed")

    with pytest.raises(RuntimeError, match="flash failed"):
        await flash_that_fails()

    assert cache.refcount(SPEC) == 0
    assert not path.exists()


async def test_free_space_uses_the_injected_probe_on_the_cache_directory(tmp_path: Path) -> None:
    directory = tmp_path / "not" / "yet"
    asked: list[Path] = []

    def probe(path: Path) -> int:
        asked.append(path)
        return 1234

    assert await FirmwareCache(directory, disk_usage=probe).free_space() == 1234
    assert asked == [directory]
    assert directory.is_dir()


async def test_free_space_defaults_to_the_file_system(tmp_path: Path) -> None:
    free = await FirmwareCache(tmp_path / "cache").free_space()
    assert free > 0


async def test_remove_all_deletes_the_directory(tmp_path: Path) -> None:
    cache = FirmwareCache(tmp_path / "cache")
    put_image(cache)
    cache.partial_path_for(FirmwareSpec(SPEC.url, "e" * 32, 5, "1")).write_bytes(b"12")
    cache.acquire(SPEC)

    await cache.remove_all()

    assert not (tmp_path / "cache").exists()
    assert cache.refcount(SPEC) == 0


def test_stem_is_lowercase(tmp_path: Path) -> None:
    assert image_file_stem(SPEC) == f"{MD5.lower()}-4096"


async def test_keep_idle_keeps_the_last_image_for_jobs_that_start_later(tmp_path: Path) -> None:
    """A push reaches sub-devices over time: the first jobs may all end before the next ones start. The last
    image let go stays (one at most) until another is let go or the cache closes; a failure's does not."""
    cache = FirmwareCache(tmp_path, keep_idle=True)
    path = put_image(cache)
    cache.acquire(SPEC)
    await cache.release(SPEC)
    assert path.exists()  # kept for the jobs still to come
    cache.acquire(SPEC)  # a later job of the same push finds it
    await cache.release(SPEC)
    assert path.exists()

    other = FirmwareSpec("https://cos.example/ota/other.bin", "f" * 32, 10, "V2")
    other_path = put_image(cache, other)
    cache.acquire(other)
    await cache.release(other)
    assert not path.exists()  # one idle image at most: the newer one stays
    assert other_path.exists()

    await cache.async_close()
    assert not other_path.exists()

    failed = put_image(cache)
    cache.acquire(SPEC)
    await cache.release(SPEC, discard_partial=True)  # a failed or cancelled job: nothing worth keeping
    assert not failed.exists()
