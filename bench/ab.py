#!/usr/bin/env python3
"""Two builds of `serve` side by side: binary size, and warm kitten.jpg latency over HTTP with the
requests interleaved (A, B, A, B, ...) so both see the same machine.

    python3 bench/ab.py --a OLD/densenet-lambda --b target/release/densenet-lambda [--requests 40]

Both serve densenet121_untrained_seed0.onnx with default settings; each answers a few warm-up
requests first. Prints p50/p90 per binary, the ratio B/A, the CPU and the load average.
"""

import argparse
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402  (spawn, kill_group, multipart, post, free_port, pct)
from memory import loadavg  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def start(binary, model):
    port = compare.free_port()
    env = dict(os.environ, MODEL_PATH=str(model), RUST_LOG='warn')
    proc = compare.spawn([binary, 'serve', '--port', str(port)], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f'http://127.0.0.1:{port}/', timeout=1).read()
            return proc, port
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f'{binary} did not start')


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--a', required=True, help='the first binary (e.g. the old build)')
    p.add_argument('--b', required=True, help='the second binary (e.g. the new build)')
    p.add_argument('--shared', default=os.environ.get('SHARED_DIR', str(ROOT.parent / 'shared')))
    p.add_argument('--requests', type=int, default=40, help='kitten requests per binary')
    args = p.parse_args()
    shared = Path(args.shared)
    model = shared / 'model/densenet121_untrained_seed0.onnx'
    kitten = compare.multipart((shared / 'samples/kitten.jpg').read_bytes(), 'kitten.jpg')
    print(f'CPU: {compare.cpu_line()}; load average {loadavg():.2f} at the start')
    for name in ('a', 'b'):
        binary = getattr(args, name)
        print(f'{name}: {binary}, {os.path.getsize(binary):,} bytes')
    servers = {name: start(getattr(args, name), model) for name in ('a', 'b')}
    times = {'a': [], 'b': []}
    try:
        for _ in range(5):  # warm-up: model loaded, allocator warm
            for name, (_, port) in servers.items():
                compare.post(port, kitten)
        for _ in range(args.requests):
            for name, (_, port) in servers.items():
                status, _, seconds = compare.post(port, kitten)
                assert status == 200, (name, status)
                times[name].append(seconds * 1000)
    finally:
        for proc, _ in servers.values():
            compare.kill_group(proc)
    for name in ('a', 'b'):
        t = times[name]
        print(f'{name}: kitten p50 {compare.pct(t, 0.5):.1f} ms, p90 {compare.pct(t, 0.9):.1f} ms '
              f'({len(t)} requests)')
    print(f'b/a p50: {compare.pct(times["b"], 0.5) / compare.pct(times["a"], 0.5):.3f}; '
          f'load average {loadavg():.2f} at the end')


if __name__ == '__main__':
    main()
