"""Benchmark photo ingest against the floor of merely decoding the photo at reduced size.

Run as `python bench/media.py [--reps N]`. It makes a 12-megapixel JPEG (4000x3000, photo-like content,
EXIF with GPS, a camera serial and orientation 6 as a tablet held upright writes it) and measures:

  floor   Pillow opening it and decoding it at reduced size: draft("RGB", (1600, 1600)) + load()
  ingest  tracker.media.ingest: spool and hash, decode once, turn upright, strip, re-encode full size,
          screen and thumbnail copies, store three blobs (LocalStorage, fsync) and their Blob rows
  ingest, upright  for reference: the same photo with orientation 1, so nothing needs turning
  decode+encode  for reference: full-size decode and JPEG re-encode alone, the least any re-encoding
          ingest must do

Every measurement runs in a fresh subprocess (after a warm-up on a tiny JPEG, so plugin imports are not
counted) and reports its wall time, its peak RSS growth (Pillow's pixel buffers are C allocations that
tracemalloc does not see) and tracemalloc's peak for Python allocations. The peak is the kernel's
high-water mark for the process (VmHWM), reset just before the measured call by writing 5 to
/proc/self/clear_refs; getrusage's ru_maxrss is not used because Linux carries it over from the parent
across fork and exec, which would hide a child's peak below the parent's.
"""
import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WIDTH, HEIGHT = 4000, 3000
DECODED = WIDTH * HEIGHT * 3  # the full image's pixels as RGB bytes


def make_photo(path: Path, size: tuple[int, int] = (WIDTH, HEIGHT), orientation: int = 6) -> None:
    """Write a photo-like JPEG: smooth colour fields with fine grain, EXIF with GPS, serial and orientation."""
    from PIL import Image

    width, height = size
    coarse = [Image.effect_noise((max(1, width // 16), max(1, height // 16)), 90).resize(size, Image.Resampling.BICUBIC)
              for _ in range(3)]
    grain = Image.effect_noise(size, 25)
    image = Image.merge("RGB", [Image.blend(channel, grain, 0.25) for channel in coarse])
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "TabletMaker"
    exif.get_ifd(0x8769)[0xA431] = "SN-0001"
    exif.get_ifd(0x8825).update({1: "N", 2: (51.0, 30.0, 12.5), 3: "W", 4: (0.0, 7.0, 40.2)})
    image.save(path, "JPEG", quality=92, exif=exif.tobytes())


def floor(path: Path) -> None:
    """Open and decode at reduced size: the least work that shows the photo at screen size."""
    from PIL import Image

    with Image.open(path) as image:
        image.draft("RGB", (1600, 1600))
        image.load()


def decode_encode(path: Path) -> None:
    """Decode at full size and re-encode as JPEG, nothing else."""
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        image.save(io.BytesIO(), "JPEG", quality=88)


class Ingest:
    """A ready database session and storage, so only ingest itself is measured."""

    def __init__(self) -> None:
        from sqlmodel import Session, SQLModel, create_engine

        import tracker.models  # noqa: F401  (registers the tables)
        from tracker.storage import LocalStorage

        self.engine = create_engine("sqlite://")
        SQLModel.metadata.create_all(self.engine)
        self.folder = tempfile.TemporaryDirectory()
        self.storage = LocalStorage(self.folder.name)
        self.session = Session(self.engine)

    def __call__(self, path: Path) -> None:
        """Ingest the photo and commit its rows."""
        from tracker import media

        with open(path, "rb") as stream:
            media.ingest(self.session, self.storage, stream, path.name, "image/jpeg")
        self.session.commit()


def memory_status() -> dict[str, int]:
    """The process's resident memory now (VmRSS) and its high-water mark (VmHWM), in bytes."""
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status if line.startswith(("VmRSS", "VmHWM")))
    return {name: int(value.split()[0]) * 1024 for name, value in fields.items()}


def reset_peak() -> None:
    """Make the high-water mark the current resident size (Linux 4.0 and later)."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def child(operation: str, path: Path, warm: Path, trace: bool) -> None:
    """Run one measurement in this (fresh) process and print it as JSON."""
    run = {"floor": floor, "ingest": Ingest(), "decode+encode": decode_encode}[operation]
    run(warm)
    if isinstance(run, Ingest):
        run = Ingest()  # a fresh store: the measured photo is new to it
    reset_peak()
    before = memory_status()["VmRSS"]
    if trace:
        tracemalloc.start()
    started, cpu_started = time.perf_counter(), time.process_time()
    run(path)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    python_peak = tracemalloc.get_traced_memory()[1] if trace else 0
    peak = memory_status()["VmHWM"]
    print(json.dumps({"seconds": seconds, "cpu": cpu, "rss_growth": max(0, peak - before),
                      "python_peak": python_peak}))


def measure(operation: str, path: Path, warm: Path, reps: int, trace: bool) -> list[dict]:
    """Run a measurement `reps` times, each in a fresh subprocess."""
    results = []
    for _ in range(reps):
        command = [sys.executable, __file__, "--child", operation, str(path), str(warm)] + (["--trace"] if trace else [])
        answer = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
        results.append(json.loads(answer.stdout.strip().splitlines()[-1]))
    return results


def main() -> None:
    """Make the photo, measure, and print the figures and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--child", nargs=3, metavar=("OPERATION", "PATH", "WARM"), help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        operation, path, warm = args.child
        child(operation, Path(path), Path(warm), args.trace)
        return
    with tempfile.TemporaryDirectory() as folder:
        photo, upright, warm = (Path(folder) / name for name in ("IMG_0001.jpg", "IMG_0002.jpg", "warm.jpg"))
        # Made in a child process, so the children measured later do not start from this one's memory.
        subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); import media; "
                        "from pathlib import Path as P; media.make_photo(P(sys.argv[2])); "
                        "media.make_photo(P(sys.argv[3]), orientation=1); media.make_photo(P(sys.argv[4]), (64, 48))",
                        str(Path(__file__).parent), str(photo), str(upright), str(warm)], check=True)
        print(f"photo: {WIDTH}x{HEIGHT} JPEG, {photo.stat().st_size / 1e6:.1f} MB, EXIF with GPS, orientation 6; "
              f"{args.reps} runs each, every run in a fresh process; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
        from PIL import Image

        with Image.open(photo) as image:
            image.draft("RGB", (1600, 1600))
            print(f"the floor's draft('RGB', (1600, 1600)) decodes this photo at {image.size[0]}x{image.size[1]} "
                  "(libjpeg scales by 1/2 only when both sides stay at least as large as asked)")
        report = {}
        runs = {"floor": ("floor", photo), "ingest": ("ingest", photo), "ingest, upright": ("ingest", upright),
                "decode+encode": ("decode+encode", photo)}
        for label, (operation, path) in runs.items():
            timed = measure(operation, path, warm, args.reps, trace=False)
            traced = measure(operation, path, warm, max(3, args.reps // 2), trace=True)
            report[label] = {
                "median": statistics.median(r["seconds"] for r in timed),
                "fastest": min(r["seconds"] for r in timed),
                "cpu": statistics.median(r["cpu"] for r in timed),
                "rss": max(r["rss_growth"] for r in timed + traced),
                "python": max(r["python_peak"] for r in traced),
            }
        print_report(report)


def print_report(report: dict) -> None:
    """Print the figures plainly."""
    mb = 1024 * 1024
    for name, figures in report.items():
        print(f"{name:>15}: {figures['median']:.3f} s median (fastest {figures['fastest']:.3f} s, "
              f"CPU {figures['cpu']:.3f} s); "
              f"peak RSS growth {figures['rss'] / mb:.0f} MiB; Python allocations peak {figures['python'] / mb:.1f} MiB")
    ingest, bottom, reference = report["ingest"], report["floor"], report["decode+encode"]
    ratio = ingest["median"] / bottom["median"]
    print(f"ingest 12 MP JPEG: {ingest['median']:.2f} s median; floor (draft decode) {bottom['median']:.2f} s; "
          f"ratio {ratio:.1f}x (goal <= 2x: {'met' if ratio <= 2 else 'NOT met'}); "
          f"in CPU time {ingest['cpu'] / bottom['cpu']:.1f}x")
    print(f"   against full decode + re-encode alone ({reference['median']:.2f} s): "
          f"{ingest['median'] / reference['median']:.1f}x; a photo needing no turning: "
          f"{report['ingest, upright']['median'] / bottom['median']:.1f}x the floor")
    memory = ingest['rss'] / DECODED
    print(f"ingest peak memory: {ingest['rss'] / mb:.0f} MiB RSS growth = {memory:.1f}x the decoded image "
          f"({DECODED / 1e6:.0f} MB = {DECODED / mb:.0f} MiB as RGB; goal < 4x: {'met' if memory < 4 else 'NOT met'})")


if __name__ == "__main__":
    main()
