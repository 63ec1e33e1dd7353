#!/usr/bin/env python3
"""Lambda's memory size, chosen by measurement: latency and price per memory size and thread count.

Lambda gives a function CPU in proportion to its memory (1,769 MB = one vCPU, enforced as a quota
in 20 ms periods; two vCPUs visible below 3,008 MB but sharing that quota: ../shared/LAMBDA.md).
This script emulates it with a cgroup v1 CPU quota (`cpu.cfs_period_us` 20000, `cpu.cfs_quota_us`
20000 x MB / 1769) and a memory limit of MB MiB, and for every memory size and model thread count
runs, one at a time, inside that group:

  project   `densenet-lambda serve` on the NNEF archive `convert` makes (as deployed),
            MODEL_THREADS set explicitly (available_parallelism would read the quota and round down);
  ort       ../shared/peers/ort_app.py, onnxruntime as a Python Lambda would run it: one process,
            the model loaded at init, ORT_THREADS set explicitly.

For each: cold start (spawn -> first 200 on POST /predict kitten.jpg, which includes loading the
model: INIT plus the first invoke), then warm kitten requests one at a time (p50, p90), the peak RSS,
and from the warm p50 the GB-seconds and the price per million requests (x86_64 $0.0000166667 and
arm64 $0.0000133334 per GB-s, + $0.20 per million requests; each cold start adds its INIT, billed
for provided.al2023, shown apart). The arm64 price assumes the x86 duration: it was not measured.

    python3 bench/lambda_memory.py --python PEERS/bin/python [--sizes 512,1024,1769,2048,3008,3538]
        [--threads 1,2] [--requests 20] [--rounds 3] [--only project,ort] [--markdown-out FILE]
        [--json-out FILE]

The whole sweep runs --rounds times (the systems' order alternating between rounds), and each row
gives the median over the rounds of each figure (peak RSS: the largest), the price from the median
warm p50: one run on a shared machine moves a row by 10-15%.

Needs root (cgroup v1 at /sys/fs/cgroup/{cpu,memory}) and a release build
(`cargo build --release --no-default-features`). The groups it creates are removed at the end.
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402

REPO = compare.REPO
PERIOD_US = 20_000
ONE_VCPU_MB = 1769
PRICE_GBS = {'x86_64': 0.0000166667, 'arm64': 0.0000133334}
PRICE_PER_MILLION_REQUESTS = 0.20
CGROOT = Path('/sys/fs/cgroup')


class Group:
    """A cgroup v1 pair (cpu, memory) emulating a Lambda function of `mb` MB."""

    def __init__(self, mb):
        self.mb = mb
        self.name = f'densenet-lambda-bench-{mb}'
        self.cpu = CGROOT / 'cpu' / self.name
        self.memory = CGROOT / 'memory' / self.name
        for d in (self.cpu, self.memory):
            d.mkdir(exist_ok=True)
        (self.cpu / 'cpu.cfs_period_us').write_text(str(PERIOD_US))
        (self.cpu / 'cpu.cfs_quota_us').write_text(str(PERIOD_US * mb // ONE_VCPU_MB))
        (self.memory / 'memory.limit_in_bytes').write_text(str(mb * 1024 * 1024))
        try:
            (self.memory / 'memory.memsw.limit_in_bytes').write_text(str(mb * 1024 * 1024))
        except OSError:
            pass  # no swap accounting: the plain limit still binds (this machine has no swap)

    def enter(self):
        """For preexec_fn: put the calling (child) process in both groups before exec."""
        pid = str(os.getpid())
        (self.cpu / 'cgroup.procs').write_text(pid)
        (self.memory / 'cgroup.procs').write_text(pid)

    def oom_kills(self):
        try:
            for line in (self.memory / 'memory.oom_control').read_text().splitlines():
                if line.startswith('oom_kill '):
                    return int(line.split()[1])
        except OSError:
            pass
        return None

    def remove(self):
        for d in (self.cpu, self.memory):
            try:
                d.rmdir()
            except OSError:
                pass


def run_one(system, mb, threads, args, kitten, archive, tmp):
    group = Group(mb)
    port = compare.free_port()
    env = dict(os.environ)
    if system == 'project':
        cmd = [str(args.binary), 'serve', '--port', str(port)]
        env.update(MODEL_PATH=str(archive), MODEL_THREADS=str(threads),
                   AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(mb))
        cwd = str(REPO)
    else:
        cmd = [args.python, str(args.shared / 'peers' / 'ort_app.py')]
        env.update(MODEL_PATH=str(args.shared / 'model' / 'densenet121_untrained_seed0.onnx'),
                   ORT_THREADS=str(threads), PORT=str(port),
                   OMP_NUM_THREADS=str(threads))
        cwd = str(args.shared / 'peers')
    log = Path(tmp) / f'{system}-{mb}-{threads}.log'
    result = {'system': system, 'mb': mb, 'threads': threads}
    with open(log, 'wb') as logf:
        t0 = time.perf_counter()
        proc = compare.spawn(cmd, env=env, cwd=cwd, stdout=logf, stderr=subprocess.STDOUT,
                             preexec_fn=group.enter)
    try:
        deadline = t0 + args.start_timeout
        while True:
            if proc.poll() is not None:
                result['error'] = f'exited with {proc.returncode}'
                break
            if time.perf_counter() > deadline:
                result['error'] = 'no answer'
                break
            try:
                status, _, _ = compare.post(port, kitten, timeout=max(1.0, deadline - time.perf_counter()))
            except (OSError, compare.http.client.HTTPException):
                time.sleep(0.01)
                continue
            if status == 200:
                result['cold_start_s'] = time.perf_counter() - t0
                break
            time.sleep(0.05)
        if 'error' not in result:
            for _ in range(3):
                compare.post(port, kitten)
            lat = []
            for _ in range(args.requests):
                status, _, secs = compare.post(port, kitten)
                if status == 200:
                    lat.append(secs * 1000)
                time.sleep(args.gap_ms / 1000)
            result['p50_ms'] = statistics.median(lat) if lat else None
            result['p90_ms'] = compare.pct(lat, 0.9) if lat else None
            result['peak_rss_mib'] = read_peak_rss(proc.pid)
    finally:
        compare.kill_group(proc)
        result['oom_kills'] = group.oom_kills()
        time.sleep(0.2)
        group.remove()
    if result.get('error'):
        tail = log.read_text(errors='replace')[-500:]
        print(f'  {system} {mb} MB {threads}t: {result["error"]}\n{tail}', flush=True)
    return result


def combine(rounds):
    """One row from a configuration's rounds: the median of each figure, the largest peak RSS, the
    rounds' warm p50s kept for the JSON, and the first error if every round failed."""
    ok = [r for r in rounds if not r.get('error')]
    row = dict(rounds[0])
    if not ok:
        return row
    row.pop('error', None)
    for key in ('cold_start_s', 'p50_ms', 'p90_ms'):
        values = [r[key] for r in ok if r.get(key) is not None]
        row[key] = statistics.median(values) if values else None
    rss = [r['peak_rss_mib'] for r in ok if r.get('peak_rss_mib')]
    row['peak_rss_mib'] = max(rss) if rss else None
    row['p50_ms_rounds'] = [r.get('p50_ms') for r in rounds]
    row['oom_kills'] = sum(r.get('oom_kills') or 0 for r in rounds)
    return row


def read_peak_rss(pid):
    total = 0
    for p in [pid] + compare.descendants(pid):
        try:
            for line in Path(f'/proc/{p}/status').read_text().splitlines():
                if line.startswith('VmHWM:'):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024 or None


def price(result):
    """GB-s per warm request (billed duration rounded up to 1 ms) and $ per million requests."""
    if result.get('p50_ms') is None:
        return
    gb = result['mb'] / 1024
    billed_ms = math.ceil(result['p50_ms'])
    gbs = gb * billed_ms / 1000
    result['gb_s'] = gbs
    for arch, p in PRICE_GBS.items():
        result[f'usd_per_million_{arch}'] = gbs * p * 1e6 + PRICE_PER_MILLION_REQUESTS
    if result.get('cold_start_s') is not None:
        result['usd_per_cold_start_x86_64'] = gb * math.ceil(result['cold_start_s'] * 1000) / 1000 \
            * PRICE_GBS['x86_64']


def markdown(results, header):
    lines = [header, '',
             '| system | memory MB | CPU share | threads | cold start s | warm p50 ms | p90 ms | peak RSS MiB '
             '| GB-s / request | $ / million, x86_64 | $ / million, arm64 (x86 duration) | $ per cold start (x86_64) |',
             '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |']
    for r in results:
        def f(key, spec):
            v = r.get(key)
            return '' if v is None else format(v, spec)
        share = r['mb'] / ONE_VCPU_MB
        err = f' ({r["error"]})' if r.get('error') else ''
        lines.append(
            f'| {r["system"]}{err} | {r["mb"]} | {share:.2f} | {r["threads"]} | {f("cold_start_s", ".2f")} '
            f'| {f("p50_ms", ".1f")} | {f("p90_ms", ".1f")} | {f("peak_rss_mib", ".0f")} | {f("gb_s", ".4f")} '
            f'| {f("usd_per_million_x86_64", ".2f")} | {f("usd_per_million_arm64", ".2f")} '
            f'| {f("usd_per_cold_start_x86_64", ".6f")} |')
    return '\n'.join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--shared', default=None)
    p.add_argument('--binary', default=None)
    p.add_argument('--python', default=os.environ.get('PEERS_PYTHON', 'python3'),
                   help='interpreter with flask, pillow, numpy, onnxruntime (the ort peer)')
    p.add_argument('--sizes', default='512,1024,1769,2048,3008,3538')
    p.add_argument('--threads', default='1,2')
    p.add_argument('--requests', type=int, default=20)
    p.add_argument('--rounds', type=int, default=3, help='sweeps; each row is the median over them')
    p.add_argument('--gap-ms', type=float, default=100.0,
                   help='pause between warm requests (lets a quota period refill, as between invocations)')
    p.add_argument('--only', default='project,ort')
    p.add_argument('--start-timeout', type=float, default=120.0)
    p.add_argument('--markdown-out', default=None)
    p.add_argument('--json-out', default=None)
    args = p.parse_args()
    args.shared = Path(args.shared).resolve() if args.shared else (REPO / '..' / 'shared').resolve()
    args.binary = Path(args.binary).resolve() if args.binary else REPO / 'target' / 'release' / 'densenet-lambda'
    sizes = [int(s) for s in args.sizes.split(',')]
    threads = [int(t) for t in args.threads.split(',')]
    systems = [s for s in args.only.split(',') if s]
    if 'ort' in systems:
        why = compare.python_ok(args.python, compare.PEER_IMPORTS['ort'])
        if why:
            compare.note(f'skipping ort: {why}')
            systems.remove('ort')
    if not (CGROOT / 'cpu').is_dir() or not os.access(CGROOT / 'cpu', os.W_OK):
        raise SystemExit('needs root and cgroup v1 at /sys/fs/cgroup/cpu')
    tmp = tempfile.mkdtemp(prefix='densenet-lambda-memory-')
    results = []
    try:
        load_start = compare.loadavg()
        print(f'cpu: {compare.cpu_line()}\nload average at the start {" ".join(load_start or ["?"])}', flush=True)
        archive = Path(tmp) / 'model.nnef.tar'
        subprocess.run([str(args.binary), 'convert',
                        str(args.shared / 'model' / 'densenet121_untrained_seed0.onnx'), str(archive)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        kitten = compare.multipart((args.shared / 'samples' / 'kitten.jpg').read_bytes(), 'kitten.jpg')
        runs = {}
        for round_ in range(args.rounds):
            print(f'round {round_ + 1} of {args.rounds}', flush=True)
            order = systems if round_ % 2 == 0 else systems[::-1]
            for mb in sizes:
                for t in threads:
                    for system in order:
                        r = run_one(system, mb, t, args, kitten, archive, tmp)
                        runs.setdefault((system, mb, t), []).append(r)
                        print(f'  {system:<8} {mb:>5} MB {t}t  cold {r.get("cold_start_s") or 0:6.2f} s  '
                              f'p50 {r.get("p50_ms") or 0:7.1f} ms  p90 {r.get("p90_ms") or 0:7.1f} ms  '
                              f'RSS {r.get("peak_rss_mib") or 0:5.0f} MiB', flush=True)
        for mb in sizes:
            for t in threads:
                for system in systems:
                    r = combine(runs[(system, mb, t)])
                    price(r)
                    results.append(r)
        load_end = compare.loadavg()
        header = (f'CPU: {compare.cpu_line()}; load average {" ".join(load_start or ["?"])} at the start, '
                  f'{" ".join(load_end or ["?"])} at the end; medians of {args.rounds} rounds (peak RSS: the '
                  f'largest); {args.requests} warm kitten requests each, '
                  f'{args.gap_ms:.0f} ms apart; cgroup v1 quota {PERIOD_US} us periods.')
        table = markdown(results, header)
        print('\n' + table)
        if args.markdown_out:
            Path(args.markdown_out).write_text(table + '\n')
        if args.json_out:
            Path(args.json_out).write_text(json.dumps({'cpu': compare.cpu_line(), 'results': results,
                                                       'loadavg': [load_start, load_end]}, indent=2) + '\n')
    finally:
        compare.cleanup()
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
