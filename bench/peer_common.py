"""What the two Python peers of `npm run bench` share: their command line, peak-memory reading and the timed loop,
so Keras and PyTorch are measured exactly the same way."""
import argparse, json, platform, statistics, time


def parse_args(extra=None):
    p = argparse.ArgumentParser()
    p.add_argument('--phase', choices=['infer', 'train'], required=True)
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--size', type=int, default=224)
    p.add_argument('--classes', type=int, default=200)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--runs', type=int, default=7)
    if extra:
        extra(p)
    return p.parse_args()


def peak_rss_mib():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024.0
    return None


def measure_and_print(a, step, peer, **fields):
    """--warmup untimed calls, then the median of --runs timed calls of `step`; prints one JSON line."""
    for _ in range(a.warmup):
        step()
    times = []
    cpu0 = time.process_time()
    for _ in range(a.runs):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    cpu_ms = (time.process_time() - cpu0) * 1000 / a.runs
    med = statistics.median(times)
    print(json.dumps({
        'peer': peer, 'model': 'vgg16-gap', 'phase': a.phase, 'batch': a.batch, 'size': a.size,
        'imagesPerSec': a.batch / med, 'medianMs': med * 1000, 'minMs': min(times) * 1000, 'cpuMsPerRun': cpu_ms,
        'runsMs': [t * 1000 for t in times], 'warmup': a.warmup, 'peakRssMiB': peak_rss_mib(),
        'python': platform.python_version(), **fields,
    }))
