"""Benchmark 2: ``OpenRouterVideoHook.download_output`` vs ``curl`` on the same emulator URL.

    python benchmarks/download.py                      # 64 MiB, 256 MiB, 1 GiB; 3 repetitions
    python benchmarks/download.py --sizes 1024 --variants           # also all prototypes
    python benchmarks/download.py --sizes 1024 --variants hook+writeback,stdlib_readinto_64K
    python benchmarks/download.py --profile --sizes 1024            # cProfile of the hook
    python benchmarks/download.py --from-json OUTPUT.txt            # re-print a run's table

What it does, per output size:

* the emulator runs in its own process (``python -m orvideo_emulator``); one job
  that completes at once with an output of exactly that size is submitted to it;
* each repetition runs, back to back on the same content URL:
  - ``curl -sS --fail -H "Authorization: Bearer ..." -o FILE URL`` (time = curl's ``time_total``;
    then an ``fsync`` of curl's file is timed on its own, for the like-for-like "curl + fsync" row),
  - the hook's ``download_output`` in a *fresh child process* (time = wall time of the call, which
    includes the hook's final ``fsync`` + rename; the fsync share is reported separately). The
    child measures ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` just before and just after the
    call (after a warm-up download of the small sample, so lazy imports and the client's pool are
    already paid), and also samples RSS with psutil every 5 ms during the call;
* files go to a temporary directory on the same disk (``/tmp`` here), deleted after each run.

Throughput is MiB/s; the ratio is hook / curl, per repetition, then the median of the repetitions.
Before starting, the script waits (up to 15 min) until no CI run, pytest or triggerer benchmark runs.

``--variants`` also runs prototypes of alternative download loops in the same child-process
set-up (see ``VARIANTS``), to measure what a change to the hook would buy. They are benchmark
code only; the package is not changed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import PYTHON, REPO, Emulator, machine_line, median, table, wait_quiet

MiB = 1 << 20


# --------------------------------------------------------------------------------- child side


class _RssSampler(threading.Thread):
    """Samples this process's RSS every ``interval`` s; ``peak`` is the highest seen."""

    def __init__(self, interval: float = 0.005) -> None:
        super().__init__(daemon=True)
        import psutil

        self._proc = psutil.Process()
        self.interval = interval
        self.start_rss = self._proc.memory_info().rss
        self.peak = self.start_rss
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            rss = self._proc.memory_info().rss
            if rss > self.peak:
                self.peak = rss
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def _maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _variant_hook(hook: Any, settings: Any, job_id: str, dest: str) -> int:
    return int(hook.download_output(job_id, 0, dest))


def _variant_iter_raw(hook: Any, settings: Any, job_id: str, dest: str) -> int:
    """httpx stream + iter_raw() (no decoder pipeline), plain buffered file write."""
    url = f"{settings.base_url}/videos/{job_id}/content"
    written = 0
    with hook._client.stream("GET", url, params={"index": "0"}, headers=settings.headers()) as r:
        r.raise_for_status()
        with open(dest, "wb") as out:
            for chunk in r.iter_raw():
                out.write(chunk)
                written += len(chunk)
            out.flush()
            os.fsync(out.fileno())
    return written


def _variant_iter_bytes_1mib(hook: Any, settings: Any, job_id: str, dest: str) -> int:
    """httpx stream + iter_bytes(chunk_size=1 MiB): fewer, larger writes (re-chunking copies)."""
    url = f"{settings.base_url}/videos/{job_id}/content"
    written = 0
    with hook._client.stream("GET", url, params={"index": "0"}, headers=settings.headers()) as r:
        r.raise_for_status()
        with open(dest, "wb") as out:
            for chunk in r.iter_bytes(chunk_size=MiB):
                out.write(chunk)
                written += len(chunk)
            out.flush()
            os.fsync(out.fileno())
    return written


def _variant_no_fsync(hook: Any, settings: Any, job_id: str, dest: str) -> int:
    """The hook itself with os.fsync made a no-op: the share of the time that is the final fsync."""
    import airflow_provider_orvideo._internal.atomic_output as storage

    real = storage.os.fsync
    storage.os.fsync = lambda fd: None  # type: ignore[assignment]
    try:
        return int(hook.download_output(job_id, 0, dest))
    finally:
        storage.os.fsync = real  # type: ignore[assignment]


def _read_size_patched(size: int) -> Any:
    """Context: httpcore's sync HTTP/1.1 connection reads ``size`` bytes per recv (default 64 KiB)."""
    import contextlib

    from httpcore._sync.http11 import HTTP11Connection

    @contextlib.contextmanager
    def patched() -> Any:
        old = HTTP11Connection.READ_NUM_BYTES
        HTTP11Connection.READ_NUM_BYTES = size
        try:
            yield
        finally:
            HTTP11Connection.READ_NUM_BYTES = old

    return patched()


def _writeback_patched(every: int) -> Any:
    """Context: AtomicOutput.write also starts kernel writeback of what it wrote, every ``every``
    bytes (``posix_fadvise(POSIX_FADV_DONTNEED)`` on the written range starts asynchronous writeback
    on Linux), so the final fsync has little left to flush: disk I/O overlaps the network."""
    import contextlib

    import airflow_provider_orvideo._internal.atomic_output as storage

    @contextlib.contextmanager
    def patched() -> Any:
        real_write = storage.AtomicOutput.write
        marks: dict[int, int] = {}

        def write(self: Any, chunk: bytes) -> None:
            real_write(self, chunk)
            done = marks.get(id(self), 0)
            if self.bytes_written - done >= every and self._handle is not None:
                self._handle.flush()
                os.posix_fadvise(
                    self._handle.fileno(), done, self.bytes_written - done, os.POSIX_FADV_DONTNEED
                )
                marks[id(self)] = self.bytes_written

        storage.AtomicOutput.write = write  # type: ignore[method-assign]
        try:
            yield
        finally:
            storage.AtomicOutput.write = real_write  # type: ignore[method-assign]

    return patched()


def _variant_hook_read_1mib(hook: Any, settings: Any, job_id: str, dest: str) -> int:
    """The hook unchanged, with httpcore reading 1 MiB per recv instead of 64 KiB."""
    with _read_size_patched(MiB):
        return int(hook.download_output(job_id, 0, dest))


def _variant_hook_writeback(hook: Any, settings: Any, job_id: str, dest: str) -> int:
    """The hook unchanged, plus asynchronous writeback every 32 MiB (see _writeback_patched)."""
    with _writeback_patched(32 * MiB):
        return int(hook.download_output(job_id, 0, dest))


def _stdlib_readinto(settings: Any, job_id: str, dest: str, bufsize: int, writeback: int | None) -> int:
    """Lower bound for Python: http.client + readinto() a reused buffer, unbuffered writes, optional
    overlapped writeback every ``writeback`` bytes, fsync at the end. No per-chunk allocation or
    HTTP parsing in Python."""
    import http.client
    from urllib.parse import urlsplit

    url = urlsplit(f"{settings.base_url}/videos/{job_id}/content?index=0")
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        conn.request("GET", f"{url.path}?{url.query}", headers=settings.headers())
        response = conn.getresponse()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}")
        view = memoryview(bytearray(bufsize))
        written = done = 0
        with open(dest, "wb", buffering=0) as out:
            while n := response.readinto(view):
                out.write(view[:n])
                written += n
                if writeback and written - done >= writeback:
                    os.posix_fadvise(out.fileno(), done, written - done, os.POSIX_FADV_DONTNEED)
                    done = written
            os.fsync(out.fileno())
        return written
    finally:
        conn.close()


def _variant_iter_raw_writeback(hook: Any, settings: Any, job_id: str, dest: str) -> int:
    """httpx stream + iter_raw() + overlapped writeback every 32 MiB + fsync: the cheapest change
    to the hook's loop that keeps httpx (and its retry/Range code) unchanged."""
    url = f"{settings.base_url}/videos/{job_id}/content"
    written = done = 0
    with hook._client.stream("GET", url, params={"index": "0"}, headers=settings.headers()) as r:
        r.raise_for_status()
        with open(dest, "wb", buffering=0) as out:
            for chunk in r.iter_raw():
                out.write(chunk)
                written += len(chunk)
                if written - done >= 32 * MiB:
                    os.posix_fadvise(out.fileno(), done, written - done, os.POSIX_FADV_DONTNEED)
                    done = written
            os.fsync(out.fileno())
    return written


def _variant_iter_bytes_discard(hook: Any, settings: Any, job_id: str, dest: str) -> int:
    """Network + HTTP parsing only: the hook's own loop (httpx stream, iter_bytes) with the bytes
    dropped instead of written. Compare with ``curl -o /dev/null``."""
    url = f"{settings.base_url}/videos/{job_id}/content"
    received = 0
    with hook._client.stream("GET", url, params={"index": "0"}, headers=settings.headers()) as r:
        r.raise_for_status()
        for chunk in r.iter_bytes():
            received += len(chunk)
    return received


def _variant_stdlib_discard(hook: Any, settings: Any, job_id: str, dest: str) -> int:
    """Network only, stdlib: http.client readinto() a reused 64 KiB buffer, bytes dropped."""
    import http.client
    from urllib.parse import urlsplit

    url = urlsplit(f"{settings.base_url}/videos/{job_id}/content?index=0")
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        conn.request("GET", f"{url.path}?{url.query}", headers=settings.headers())
        response = conn.getresponse()
        view = memoryview(bytearray(64 * 1024))
        received = 0
        while n := response.readinto(view):
            received += n
        return received
    finally:
        conn.close()


DISCARDING = {"httpx_iter_bytes_discard", "stdlib_readinto_64K_discard"}

VARIANTS = {
    "hook": _variant_hook,
    "hook_no_fsync": _variant_no_fsync,
    "hook+read_1MiB": _variant_hook_read_1mib,
    "hook+writeback": _variant_hook_writeback,
    "httpx_iter_bytes_1MiB": _variant_iter_bytes_1mib,
    "httpx_iter_raw": _variant_iter_raw,
    "httpx_iter_raw+writeback": _variant_iter_raw_writeback,
    "stdlib_readinto_64K": lambda h, st, j, d: _stdlib_readinto(st, j, d, 64 * 1024, None),
    "stdlib_readinto_64K+writeback": lambda h, st, j, d: _stdlib_readinto(st, j, d, 64 * 1024, 32 * MiB),
    "stdlib_readinto_1MiB+writeback": lambda h, st, j, d: _stdlib_readinto(st, j, d, MiB, 32 * MiB),
    "httpx_iter_bytes_discard": _variant_iter_bytes_discard,
    "stdlib_readinto_64K_discard": _variant_stdlib_discard,
}


def child(args: argparse.Namespace) -> None:
    """Run one download in this (fresh) process and print a JSON result line."""
    os.environ["AIRFLOW_CONN_OPENROUTER_DEFAULT"] = json.dumps(
        {"conn_type": "openrouter", "host": args.base_url, "password": args.api_key}
    )
    import airflow_provider_orvideo._internal.atomic_output as storage
    from airflow_provider_orvideo.hooks.openrouter_video import OpenRouterVideoHook

    fsync_seconds = [0.0]
    real_fsync = os.fsync

    def timed_fsync(fd: int) -> None:
        t = time.perf_counter()
        real_fsync(fd)
        fsync_seconds[0] += time.perf_counter() - t

    storage.os.fsync = timed_fsync  # type: ignore[assignment]  # timing only; same call underneath

    hook = OpenRouterVideoHook()
    settings = hook.get_settings()
    # Warm-up: a full download of the small sample job (lazy imports, client pool, first write).
    warm = os.path.join(os.path.dirname(args.dest), "warmup.mp4")
    hook.download_output(args.warm_job, 0, warm)
    os.unlink(warm)
    fsync_seconds[0] = 0.0

    fn = VARIANTS[args.variant]
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
    before = _maxrss_bytes()
    sampler = _RssSampler()
    sampler.start()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    size = fn(hook, settings, args.job, args.dest)
    if profiler is not None:
        profiler.disable()
    elapsed = time.perf_counter() - t0
    if profiler is not None:
        import pstats

        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(20)
    cpu = time.process_time() - cpu0
    sampler.stop()
    after = _maxrss_bytes()
    hook.close()
    print(
        json.dumps(
            {
                "size": size,
                "seconds": elapsed,
                "cpu_seconds": cpu,
                "fsync_seconds": fsync_seconds[0],
                "maxrss_before": before,
                "maxrss_after": after,
                "sampled_rss_start": sampler.start_rss,
                "sampled_rss_peak": sampler.peak,
            }
        ),
        flush=True,
    )


# --------------------------------------------------------------------------------- parent side


def run_child(
    emulator: Emulator, variant: str, job: str, warm_job: str, dest: Path, profile: bool = False
) -> dict[str, Any]:
    cmd = [
        PYTHON,
        __file__,
        "--child",
        "--variant",
        variant,
        "--base-url",
        emulator.base_url,
        "--api-key",
        emulator.api_key,
        "--job",
        job,
        "--warm-job",
        warm_job,
        "--dest",
        str(dest),
        *(["--profile"] if profile else []),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"child {variant} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    if profile:
        start = out.stderr.find("function calls")
        print(out.stderr[max(0, out.stderr.rfind("\n", 0, start)) :].rstrip())
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def run_curl(emulator: Emulator, job: str, dest: Path | None) -> dict[str, Any]:
    """curl to ``dest``, or to /dev/null (network only) when ``dest`` is None."""
    cmd = [
        "curl",
        "-sS",
        "--fail",
        "-H",
        f"Authorization: Bearer {emulator.api_key}",
        "-o",
        str(dest) if dest is not None else os.devnull,
        "-w",
        "%{time_total} %{size_download}",
        emulator.content_url(job),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"curl failed ({out.returncode}): {out.stderr}")
    total, size = out.stdout.split()
    if dest is None:
        return {"seconds": float(total), "size": int(float(size))}
    # The hook fsyncs before its atomic rename; curl does not. Time an fsync of curl's file right
    # after it exits, for the like-for-like "curl + fsync" row.
    t = time.perf_counter()
    fd = os.open(dest, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync = time.perf_counter() - t
    return {"seconds": float(total), "size": int(float(size)), "fsync_seconds": fsync}


def render(raw: dict[tuple[int, str], list[dict[str, Any]]]) -> None:
    """Print the summary table of ``raw`` ({(size, client): [run, ...]})."""
    sizes = sorted({size for size, _ in raw})
    variants = [n for n in dict.fromkeys(n for _, n in raw) if not n.startswith("curl")]
    rows = []
    for size in sizes:
        curl_runs = raw[(size, "curl")]
        curl_tp = [size / MiB / r["seconds"] for r in curl_runs]
        rows.append([f"{size // MiB}", "curl -o", f"{median(curl_tp):.0f}", "", "", "", "", "", ""])
        curlf_tp = [size / MiB / (r["seconds"] + r["fsync_seconds"]) for r in curl_runs]
        rows.append(
            [
                f"{size // MiB}",
                "curl -o, then fsync",
                f"{median(curlf_tp):.0f}",
                "",
                "",
                "",
                f"{median([r['fsync_seconds'] for r in curl_runs]):.2f}",
                "",
                "",
            ]
        )
        if (size, "curl_devnull") in raw:
            dn = [size / MiB / r["seconds"] for r in raw[(size, "curl_devnull")]]
            rows.append(
                [
                    f"{size // MiB}",
                    "curl -o /dev/null (network only)",
                    f"{median(dn):.0f}",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                ]
            )
        for name in variants:
            runs = raw[(size, name)]
            tp = [size / MiB / r["seconds"] for r in runs]
            ratios = [t / c for t, c in zip(tp, curl_tp, strict=True)]
            ratios_f = [t / c for t, c in zip(tp, curlf_tp, strict=True)]
            growth = [(r["maxrss_after"] - r["maxrss_before"]) / MiB for r in runs]
            sampled = [(r["sampled_rss_peak"] - r["sampled_rss_start"]) / MiB for r in runs]
            rows.append(
                [
                    f"{size // MiB}",
                    name,
                    f"{median(tp):.0f}",
                    f"{median(ratios):.2f} ({', '.join(f'{x:.2f}' for x in ratios)})",
                    f"{median(ratios_f):.2f}",
                    f"{median([r['cpu_seconds'] for r in runs]):.2f}",
                    f"{median([r['fsync_seconds'] for r in runs]):.2f}",
                    f"{median(growth):.1f} (max {max(growth):.1f})",
                    f"{median(sampled):.1f}",
                ]
            )
    print()
    print(
        table(
            [
                "size MiB",
                "client",
                "MiB/s (median)",
                "ratio vs curl: median (each rep)",
                "ratio vs curl+fsync",
                "child CPU s",
                "fsync s",
                "ru_maxrss growth MiB",
                "psutil RSS peak growth MiB",
            ],
            rows,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="64,256,1024", help="output sizes in MiB, comma-separated")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--variants",
        nargs="?",
        const="all",
        help="also run prototype download loops: 'all' or comma-separated names from VARIANTS",
    )
    parser.add_argument("--no-wait", action="store_true", help="do not wait for a quiet machine")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="hook", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--api-key", help=argparse.SUPPRESS)
    parser.add_argument("--job", help=argparse.SUPPRESS)
    parser.add_argument("--warm-job", help=argparse.SUPPRESS)
    parser.add_argument("--dest", help=argparse.SUPPRESS)
    parser.add_argument(
        "--from-json", help="re-print the table from the raw-runs JSON line of an earlier run"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run the hook once under cProfile at the largest size and print where the time goes",
    )
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.from_json:
        text = Path(args.from_json).read_text().strip().splitlines()[-1]
        loaded = json.loads(text)
        render({(int(k.split("MiB/")[0]) * MiB, k.split("MiB/", 1)[1]): v for k, v in loaded.items()})
        return

    quiet, waited = (True, 0.0) if args.no_wait else wait_quiet()
    sizes = [int(s) * MiB for s in args.sizes.split(",")]
    if args.profile:
        workdir = Path(tempfile.mkdtemp(prefix="orvideo-download-bench-"))
        try:
            with Emulator() as emulator:
                warm_job = emulator.submit_completed_job(None)
                job = emulator.submit_completed_job(max(sizes))
                print(f"# cProfile of download_output, {max(sizes) // MiB} MiB -- {machine_line()}")
                result = run_child(emulator, "hook", job, warm_job, workdir / "profiled.mp4", profile=True)
                print(
                    f"# {result['seconds']:.2f} s under the profiler (fsync {result['fsync_seconds']:.2f} s)"
                )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return
    if not args.variants:
        variants = ["hook"]
    elif args.variants == "all":
        variants = list(VARIANTS)
    else:
        variants = ["hook", *(v for v in args.variants.split(",") if v != "hook")]
        unknown = set(variants) - set(VARIANTS)
        if unknown:
            parser.error(f"unknown variants {sorted(unknown)}; known: {list(VARIANTS)}")
    print(f"# download benchmark -- {machine_line()}")
    print(f"# quiet machine: {quiet} (waited {waited:.0f} s)")
    workdir = Path(tempfile.mkdtemp(prefix="orvideo-download-bench-"))
    raw: dict[tuple[int, str], list[dict[str, Any]]] = {}
    try:
        with Emulator() as emulator:
            warm_job = emulator.submit_completed_job(None)
            for size in sizes:
                job = emulator.submit_completed_job(size)
                for rep in range(args.reps):
                    names = ["curl", *variants]
                    if any(v in DISCARDING for v in variants):
                        names.insert(1, "curl_devnull")
                    for name in names:
                        dest = workdir / f"{name}-{rep}.mp4"
                        discard = name == "curl_devnull" or name in DISCARDING
                        if name.startswith("curl"):
                            result = run_curl(emulator, job, None if discard else dest)
                        else:
                            result = run_child(emulator, name, job, warm_job, dest)
                        on_disk = size if discard else dest.stat().st_size
                        if result["size"] != size or on_disk != size:
                            raise RuntimeError(f"{name}: got {result['size']} bytes, wanted {size}")
                        if not discard:
                            dest.unlink()
                        raw.setdefault((size, name), []).append(result)
                        mibs = size / MiB / result["seconds"]
                        extra = ""
                        if "maxrss_before" in result:
                            growth = (result["maxrss_after"] - result["maxrss_before"]) / MiB
                            extra = f", ru_maxrss +{growth:.1f} MiB, fsync {result['fsync_seconds']:.2f} s"
                        print(
                            f"  {size // MiB:>5} MiB rep {rep + 1} {name:<22} {result['seconds']:7.3f} s "
                            f"{mibs:8.1f} MiB/s{extra}",
                            file=sys.stderr,
                            flush=True,
                        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    render(raw)
    print(f"\n# {args.reps} repetitions per cell; medians. Raw runs:")
    print(json.dumps({f"{s // MiB}MiB/{n}": v for (s, n), v in raw.items()}))


if __name__ == "__main__":
    main()
