#!/usr/bin/env python3
"""Peak memory and 12 MP latency of `serve`, before and after streaming decode, in one run.

    python3 bench/memory.py --before OLD/densenet-lambda --after target/release/densenet-lambda \
        --python /path/with/PIL/bin/python [--rounds 3] [--requests 15] [--cgroup-mb 512]

For each binary and image, a fresh `serve` (MODEL_PATH=densenet121_untrained_seed0.onnx, default
settings) answers kitten.jpg once (model loaded, allocator warm), then the image once; the peak
resident set (VmHWM in /proc/PID/status) is read after each. Rounds alternate the binaries, and
every figure printed is the median over the rounds, next to the CPU model and load average.

Images (generated in a temp dir, deleted afterwards):
  - ../shared/samples/kitten.jpg
  - a 4000x3000 JPEG, quality 90 (bench/compare.py's generator, which needs PIL: --python)
  - PNG RGBA 8-bit 11585x11585, 537 MB decoded: the largest square PNG the old limits accept
    (MAX_DECODE_BYTES 512 MiB); ~1 MB on disk
  - PNG RGBA 16-bit 16384x16384, 2.1 GB decoded: the largest PNG the dimension limit allows
    (the old code refuses it with 413)

Then the latency of the 12 MP request: both servers up, requests alternating between them one at
a time, --requests each; p50 and p90.

With --cgroup-mb N (root, cgroup v1), each binary also runs inside an N MB memory cgroup with
AWS_LAMBDA_FUNCTION_MEMORY_SIZE=N and gets the 537 MB PNG: whether it survives, and the group's
peak.
"""

import argparse
import os
import platform
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402  (multipart, post, free_port, make_big_jpeg, spawn, kill_group)

ROOT = Path(__file__).resolve().parent.parent


def cpu_model():
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip() + f', {os.cpu_count()} CPUs'
    except OSError:
        pass
    return platform.processor() or 'unknown CPU'


def loadavg():
    return os.getloadavg()[0]


def png_chunk(kind, data):
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))


def write_png(path, width, height, channels, sixteen):
    """A non-interlaced PNG of diagonal 64-px bands; rows repeat within a band, so with the Up
    filter the data is mostly zeros and compresses ~1000:1."""
    color = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    depth = 16 if sixteen else 8

    def row(y):
        out = bytearray()
        for x in range(width):
            for c in range(channels):
                v = ((x // 64 + y // 64) * (c + 3) * 17) % 256
                out.append(v)
                if sixteen:
                    out.append(v ^ 0x33)
        return bytes(out)

    z = zlib.compressobj(6)
    idat = []
    previous = bytes(len(row(0)))
    current = None
    for y in range(height):
        if y % 64 == 0:
            current = row(y)
            filtered = b'\x02' + bytes((a - b) & 0xFF for a, b in zip(current, previous))
            same = b'\x02' + bytes(len(current))
        idat.append(z.compress(filtered if y % 64 == 0 else same))
        previous = current
    idat.append(z.flush())
    ihdr = struct.pack('>IIBBBBB', width, height, depth, color, 0, 0, 0)
    Path(path).write_bytes(b'\x89PNG\r\n\x1a\n' + png_chunk(b'IHDR', ihdr)
                           + png_chunk(b'IDAT', b''.join(idat)) + png_chunk(b'IEND', b''))


def vm_hwm(pid):
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) * 1024
    return 0


class Server:
    def __init__(self, binary, model, env=None, prefix=None):
        self.port = compare.free_port()
        cmd = [str(binary), 'serve', '--port', str(self.port)]
        full_env = dict(os.environ, MODEL_PATH=str(model))
        full_env.pop('MAX_DECODE_BYTES', None)
        full_env.pop('AWS_LAMBDA_FUNCTION_MEMORY_SIZE', None)
        full_env.update(env or {})
        self.proc = compare.spawn((prefix or []) + cmd, env=full_env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        import http.client
        while True:
            try:
                conn = http.client.HTTPConnection('127.0.0.1', self.port, timeout=2)
                conn.request('GET', '/')
                conn.getresponse().read()
                conn.close()
                break
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise SystemExit(f'{binary} serve did not start')
                time.sleep(0.05)
        # The process to read /proc of (under a cgroup wrapper, the shell exec'd into it).
        self.pid = self.proc.pid

    def post(self, data, name):
        return compare.post(self.port, compare.multipart(data, name), timeout=300)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        compare.kill_group(self.proc)


def vm_rss(pid):
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) * 1024
    return 0


def peak_rss(binary, model, kitten, image, name):
    """Of a fresh server: VmHWM after loading the model and answering kitten.jpg; VmHWM after
    the image; the peak during the image's request alone (VmHWM reset to the current RSS by
    writing 5 to /proc/PID/clear_refs just before it); status; seconds."""
    server = Server(binary, model)
    try:
        status, _, _ = server.post(kitten, 'kitten.jpg')
        assert status == 200, f'kitten: {status}'
        warm = vm_hwm(server.pid)
        Path(f'/proc/{server.pid}/clear_refs').write_text('5')
        before = vm_rss(server.pid)
        status, body, seconds = server.post(image, name)
        peak = vm_hwm(server.pid)
        return warm, max(warm, peak), status, seconds, before, peak
    finally:
        server.stop()


def cgroup_run(binary, model, png, mb, label):
    root = Path('/sys/fs/cgroup/memory')
    if os.geteuid() != 0 or not (root / 'memory.limit_in_bytes').exists():
        print('  cgroup run skipped: needs root and cgroup v1 memory')
        return
    group = root / f'densenet-bench-{os.getpid()}-{label}'
    group.mkdir()
    try:
        (group / 'memory.limit_in_bytes').write_text(str(mb << 20))
        if (group / 'memory.memsw.limit_in_bytes').exists():
            (group / 'memory.memsw.limit_in_bytes').write_text(str(mb << 20))
        prefix = ['/bin/sh', '-c', 'echo $$ > "$0" && exec "$@"', str(group / 'cgroup.procs')]
        server = Server(binary, model, env={'AWS_LAMBDA_FUNCTION_MEMORY_SIZE': str(mb)},
                        prefix=prefix)
        try:
            try:
                status, body, seconds = server.post(png, 'big.png')
                outcome = f'{status} in {seconds:.2f} s: {body[:90].decode(errors="replace")}'
            except OSError as e:
                outcome = f'no reply ({e.__class__.__name__})'
            time.sleep(0.5)
            alive = server.alive()
        finally:
            server.stop()
        oom = [line for line in (group / 'memory.oom_control').read_text().splitlines()
               if line.startswith('oom_kill ')]
        peak = int((group / 'memory.max_usage_in_bytes').read_text())
        print(f'  {label:<7} {"alive" if alive else "KILLED"}; {outcome.strip()}; '
              f'group peak {peak / 1e6:.0f} MB; {oom[0] if oom else ""}  [{cpu_model()}]')
    finally:
        for _ in range(50):
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.1)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--before', required=True, help='densenet-lambda built from the old commit')
    p.add_argument('--after', default=str(ROOT / 'target/release/densenet-lambda'))
    p.add_argument('--shared', default=os.environ.get('SHARED_DIR', str(ROOT.parent / 'shared')))
    p.add_argument('--python', default=sys.executable, help='an interpreter with PIL (12 MP JPEG)')
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--requests', type=int, default=15, help='12 MP requests per binary')
    p.add_argument('--cgroup-mb', type=int, default=0)
    args = p.parse_args()
    shared = Path(args.shared)
    model = shared / 'model/densenet121_untrained_seed0.onnx'
    kitten = (shared / 'samples/kitten.jpg').read_bytes()
    binaries = {'before': Path(args.before), 'after': Path(args.after)}
    cpu = cpu_model()
    print(f'CPU: {cpu}; load {loadavg():.2f}; model {model.name}; '
          f'before {binaries["before"]}, after {binaries["after"]}')
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.time()
        compare.make_big_jpeg(tmp / 'big.jpg', args.python)
        write_png(tmp / 'rgba8.png', 11585, 11585, 4, False)
        write_png(tmp / 'rgba16.png', 16384, 16384, 4, True)
        images = {
            'kitten.jpg': kitten,
            '12 MP JPEG 4000x3000': (tmp / 'big.jpg').read_bytes(),
            'PNG RGBA8 11585x11585': (tmp / 'rgba8.png').read_bytes(),
            'PNG RGBA16 16384x16384': (tmp / 'rgba16.png').read_bytes(),
        }
        print(f'images generated in {time.time() - t:.1f} s: '
              + ', '.join(f'{k} {len(v) / 1e6:.2f} MB' for k, v in images.items()))

        print('\npeak RSS (VmHWM) of a fresh serve: after loading the model and one kitten.jpg, '
              'after the image, and during the image request alone (RSS before it -> peak); '
              f'median of {args.rounds} rounds, binaries alternating')
        results = {}
        for r in range(args.rounds):
            for name, data in images.items():
                order = list(binaries.items())
                if r % 2:
                    order.reverse()
                for label, binary in order:
                    results.setdefault((name, label), []).append(
                        peak_rss(binary, model, kitten, data, name))
        for name in images:
            for label in binaries:
                runs = results[(name, label)]
                warm = statistics.median(x[0] for x in runs) / 2**20
                peak = statistics.median(x[1] for x in runs) / 2**20
                statuses = sorted({x[2] for x in runs})
                seconds = statistics.median(x[3] for x in runs)
                rss = statistics.median(x[4] for x in runs) / 2**20
                request_peak = statistics.median(x[5] for x in runs) / 2**20
                print(f'  {name:<24} {label:<7} load+kitten {warm:6.1f}  after image {peak:6.1f}  '
                      f'request alone {rss:6.1f} -> {request_peak:6.1f} MiB  status {statuses}  '
                      f'{seconds:5.2f} s  [{cpu}, load {loadavg():.2f}]')

        print(f'\n12 MP JPEG latency: both servers up, {args.requests} requests each, alternating')
        big = images['12 MP JPEG 4000x3000']
        servers = {label: Server(binary, model) for label, binary in binaries.items()}
        times = {label: [] for label in binaries}
        try:
            for s in servers.values():
                s.post(kitten, 'kitten.jpg')
                s.post(big, 'big.jpg')
            for i in range(args.requests):
                order = list(servers.items())
                if i % 2:
                    order.reverse()
                for label, s in order:
                    status, _, seconds = s.post(big, 'big.jpg')
                    assert status == 200, status
                    times[label].append(seconds * 1000)
                    time.sleep(0.05)
        finally:
            for s in servers.values():
                s.stop()
        for label, ms in times.items():
            ms.sort()
            p90 = ms[min(len(ms) - 1, int(round(0.9 * (len(ms) - 1))))]
            print(f'  {label:<7} p50 {statistics.median(ms):7.1f} ms  p90 {p90:7.1f} ms  '
                  f'[{cpu}, load {loadavg():.2f}]')

        if args.cgroup_mb:
            print(f'\nin a {args.cgroup_mb} MB memory cgroup with AWS_LAMBDA_FUNCTION_MEMORY_SIZE='
                  f'{args.cgroup_mb}, the {len(images["PNG RGBA8 11585x11585"]) / 1e6:.1f} MB PNG '
                  'RGBA8 11585x11585:')
            for label, binary in binaries.items():
                cgroup_run(binary, model, images['PNG RGBA8 11585x11585'], args.cgroup_mb, label)


if __name__ == '__main__':
    main()
