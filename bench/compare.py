#!/usr/bin/env python3
"""Side-by-side figures for densenet-lambda and the peers in ../shared/peers, in one run.

Systems (same ONNX model for all but the tutorial, which builds the same network in PyTorch):
  project-1t, project-2t   `densenet-lambda serve` with MODEL_THREADS=1 / 2, serving the NNEF archive
                           `densenet-lambda convert` makes from the same ONNX file (--project-format)
  project-2t-onnx          the same serving the ONNX file itself: cold start only
  ort-1t, ort-2t           ort_app.py (Flask + onnxruntime) with ORT_THREADS=1 / 2
  tutorial                 tutorial_app.py (Flask + PyTorch, torch's default threads)

What it measures, in this order (so a compiler or a spinning thread pool never overlaps a figure):
  1. inference alone on ONE thread: tract (`cargo bench --bench pipeline -- --json`, if that bench
     exists) and onnxruntime (InferenceSession, 1 intra/1 inter thread, 5 warm-ups, 30 timed), same
     input tensor (../shared/reference/kitten.jpg.input.npy);
  2. cold start: process spawn -> first `POST /predict` (kitten.jpg) answered 200, one system at a time;
  3. warm latency: 3 kitten + 1 12-megapixel warm-ups each, then N kitten and N/3 12 MP requests per
     system, round-robin across all (running) systems, one request at a time: p50 / p90;
  4. throughput at concurrency 2: per system in turn, 2 client threads sending kitten.jpg;
  5. peak RSS (VmHWM) of each server process and its children, read at the end.

Then a table, the project / peer ratios against the goals (PASS/MISS), and optionally JSON.

The client side is the standard library only (http.client, hand-built multipart). PIL is needed only
to generate the 12 MP JPEG; when this interpreter lacks it, the peers' interpreter (--python) does it.
Every server is started in its own session and killed by its own process group at the end, also on
Ctrl-C or an error.
"""

import argparse
import http.client
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FAMILIES = ('project', 'ort', 'tutorial')
PEER_IMPORTS = {
    'ort': 'import flask, numpy, onnxruntime, PIL',
    'tutorial': 'import flask, PIL, torch, torchvision',
}

# (what, figure key, numerator system, denominator system, goal: ratio <= goal): issues 14 and 22.
RATIOS = [
    ('warm kitten p50', 'kitten_p50_ms', 'project-2t', 'ort-2t', 1.0),
    ('warm kitten p50', 'kitten_p50_ms', 'project-1t', 'ort-1t', 1.0),
    ('warm kitten p50', 'kitten_p50_ms', 'project-2t', 'tutorial', 0.6),
    ('cold start', 'cold_start_s', 'project-2t', 'tutorial', 0.04),
    ('cold start', 'cold_start_s', 'project-1t', 'tutorial', 0.04),
    ('cold start', 'cold_start_s', 'project-2t-onnx', 'tutorial', 0.04),
    ('peak RSS', 'peak_rss_mib', 'project-2t', 'tutorial', 0.06),
    ('peak RSS', 'peak_rss_mib', 'project-1t', 'tutorial', 0.06),
    ('12 MP p50', 'big_p50_ms', 'project-2t', 'ort-2t', 0.5),
    ('12 MP p50', 'big_p50_ms', 'project-1t', 'ort-1t', 0.5),
    # Throughput the other way up (peer / project <= 1: the project serves at least as many).
    ('req/s c2, peer / project', 'throughput_rps_c2', 'ort-1t', 'project-1t', 1.0),
    ('req/s c2, peer / project', 'throughput_rps_c2', 'ort-2t', 'project-2t', 1.0),
]
INFERENCE_GOAL = 1.0  # tract (with the project's own operators) / onnxruntime, one thread

# Process groups we started (servers, cargo, helper interpreters): the only ones we ever signal.
_groups = {}
_groups_lock = threading.Lock()


def cpu_line():
    """The CPU every figure was measured on: model name, vendor, family/model, and the instruction
    sets tract chooses its kernels from (tuning holds only where it was measured)."""
    info = {}
    flags = set()
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            key, _, value = line.partition(':')
            key, value = key.strip(), value.strip()
            if key == 'flags' or key == 'Features':
                flags = set(value.split())
            elif key and key not in info:
                info[key] = value
    except OSError:
        pass
    name = info.get('model name') or info.get('CPU part') or platform.machine()
    isa = ', '.join(f'{f} {"yes" if f in flags else "no"}' for f in ('avx2', 'fma', 'avx512f')) \
        if platform.machine() in ('x86_64', 'AMD64') else f'features: {" ".join(sorted(flags)[:12])}'
    return (f'{name} ({info.get("vendor_id", platform.machine())} family {info.get("cpu family", "?")} '
            f'model {info.get("model", "?")}; {isa})')


def loadavg():
    try:
        return Path('/proc/loadavg').read_text().split()[:3]
    except OSError:
        return None


def note(msg):
    print(f'note: {msg}', flush=True)


def spawn(cmd, **kw):
    """Popen in a new session, remembered so cleanup() can kill its whole process group."""
    proc = subprocess.Popen(cmd, start_new_session=True, stdin=subprocess.DEVNULL, **kw)
    with _groups_lock:
        _groups[proc.pid] = proc
    return proc


def kill_group(proc, grace=5.0):
    """SIGTERM then SIGKILL to the process group led by proc (its pgid is its pid: new session)."""
    pgid = proc.pid
    if pgid <= 1 or pgid == os.getpgrp() or pgid == os.getpid():
        return  # never signal our own group, init, 0 or -1
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            break
        try:
            proc.wait(timeout=wait)
            # The leader is gone; make sure nothing else of its group survives.
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            break
        except subprocess.TimeoutExpired:
            continue
    with _groups_lock:
        _groups.pop(pgid, None)


def cleanup():
    with _groups_lock:
        procs = list(_groups.values())
    for proc in procs:
        kill_group(proc)


def _raise_exit(signum, _frame):
    raise SystemExit(128 + signum)


# ---------------------------------------------------------------------------------------------
# HTTP client (standard library only)

def multipart(data, filename, field='file', ctype='image/jpeg'):
    boundary = 'compare-' + uuid.uuid4().hex
    body = b''.join([
        f'--{boundary}\r\n'.encode(),
        f'Content-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'.encode(),
        f'Content-Type: {ctype}\r\n\r\n'.encode(),
        data,
        f'\r\n--{boundary}--\r\n'.encode(),
    ])
    return body, f'multipart/form-data; boundary={boundary}'


def post(port, payload, timeout=120.0):
    """One POST /predict on a fresh connection. Returns (status, body bytes, seconds)."""
    body, ctype = payload
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=timeout)
    start = time.perf_counter()
    try:
        conn.request('POST', '/predict', body=body,
                     headers={'Content-Type': ctype, 'Connection': 'close'})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, data, time.perf_counter() - start
    finally:
        conn.close()


def class_id(data):
    try:
        return json.loads(data).get('class_id')
    except (ValueError, AttributeError):
        return None


def free_port():
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def pct(samples, q):
    if not samples:
        return None
    s = sorted(samples)
    k = (len(s) - 1) * q
    f = math.floor(k)
    c = min(f + 1, len(s) - 1)
    return s[f] + (s[c] - s[f]) * (k - f)


# ---------------------------------------------------------------------------------------------
# Systems

class System:
    def __init__(self, name, family, cmd, env, cwd):
        self.name, self.family, self.cmd, self.env, self.cwd = name, family, cmd, env, cwd
        self.proc = None
        self.port = None
        self.log = None
        self.error = None
        self.cold_start_s = None
        self.first_class_id = None
        self.lat = {'kitten': [], 'big': []}
        self.errors = {'warmup': 0, 'kitten': 0, 'big': 0, 'throughput': 0}
        self.first_error = None
        self.throughput_rps = None
        self.peak_rss_mib = None
        self.cold_only = False  # started for its cold start, then stopped

    @property
    def alive(self):
        return self.proc is not None and self.error is None and self.proc.poll() is None

    def log_tail(self, n=15):
        try:
            lines = Path(self.log).read_text(errors='replace').splitlines()
            return '\n'.join('    | ' + l for l in lines[-n:])
        except OSError:
            return '    | (no log)'

    def start(self, kitten, tmp, timeout):
        """Spawn and poll POST /predict until 200; cold start = spawn -> that answer."""
        self.port = free_port()
        env = dict(self.env)
        cmd = list(self.cmd)
        if self.family == 'project':
            cmd += ['--port', str(self.port)]
        else:
            env['PORT'] = str(self.port)
        self.log = os.path.join(tmp, f'{self.name}.log')
        logf = open(self.log, 'wb')
        try:
            t0 = time.perf_counter()
            self.proc = spawn(cmd, env=env, cwd=self.cwd, stdout=logf, stderr=subprocess.STDOUT)
        finally:
            logf.close()
        deadline = t0 + timeout
        last = None
        while True:
            if self.proc.poll() is not None:
                self.error = f'exited with code {self.proc.returncode} before answering'
                break
            if time.perf_counter() > deadline:
                self.error = f'no 200 from POST /predict within {timeout:.0f} s (last: {last})'
                break
            try:
                status, data, _ = post(self.port, kitten, timeout=max(1.0, deadline - time.perf_counter()))
            except (ConnectionError, OSError, http.client.HTTPException) as e:
                last = type(e).__name__
                time.sleep(0.01)
                continue
            if status == 200:
                self.cold_start_s = time.perf_counter() - t0
                self.first_class_id = class_id(data)
                return True
            last = f'HTTP {status}: {data[:200]!r}'
            time.sleep(0.05)
        print(f'  {self.name}: FAILED to start: {self.error}\n{self.log_tail()}', flush=True)
        return False

    def request(self, which, payload):
        try:
            status, data, secs = post(self.port, payload)
        except (ConnectionError, OSError, http.client.HTTPException) as e:
            status, data, secs = None, repr(e).encode(), None
        if status == 200:
            return secs
        self.errors[which] += 1
        if self.first_error is None:
            self.first_error = f'{which}: HTTP {status}: {data[:300]!r}'
        return None

    def peak_rss(self):
        """VmHWM of the server process plus every descendant, MiB."""
        pids = [self.proc.pid] + descendants(self.proc.pid)
        total_kb = 0
        for pid in pids:
            try:
                for line in Path(f'/proc/{pid}/status').read_text().splitlines():
                    if line.startswith('VmHWM:'):
                        total_kb += int(line.split()[1])
            except (OSError, ValueError):
                pass
        return total_kb / 1024 if total_kb else None


def descendants(root):
    children = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f'/proc/{entry}/stat').read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(')', 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def python_ok(python, imports):
    """None if `python -c imports` works, else a one-line reason."""
    try:
        r = subprocess.run([python, '-c', imports], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=300)
    except FileNotFoundError:
        return f'interpreter {python!r} not found'
    except subprocess.TimeoutExpired:
        return f'{python} -c "{imports}" timed out'
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ['?'])[-1]
        return f'{python} -c "{imports}" failed: {last}'
    return None


def build_systems(args, model, peers):
    systems = []
    base = dict(os.environ)
    if 'project' in args.only:
        binary = args.binary
        if not (binary.is_file() and os.access(binary, os.X_OK)):
            note(f'skipping project: no executable {binary}; build it with '
                 f'`EMBED_MODEL_PATH={model} cargo build --release` (or pass --binary)')
        else:
            newest = max((p.stat().st_mtime for p in (REPO / 'src').rglob('*') if p.is_file()), default=0)
            if newest > binary.stat().st_mtime:
                note(f'{binary} is older than the newest file in src/: figures are for the old build')
            for t in (1, 2):
                env = dict(base, MODEL_PATH=str(args.project_model), MODEL_THREADS=str(t))
                systems.append(System(f'project-{t}t', 'project', [str(binary), 'serve'], env, str(REPO)))
            if args.project_model != model:
                # Cold start only: the same build loading the ONNX file itself, for comparison.
                env = dict(base, MODEL_PATH=str(model), MODEL_THREADS='2')
                onnx = System('project-2t-onnx', 'project', [str(binary), 'serve'], env, str(REPO))
                onnx.cold_only = True
                systems.append(onnx)
    for family, script in (('ort', 'ort_app.py'), ('tutorial', 'tutorial_app.py')):
        if family not in args.only:
            continue
        if not (peers / script).is_file():
            note(f'skipping {family}: {peers / script} not found')
            continue
        why = python_ok(args.python, PEER_IMPORTS[family])
        if why:
            note(f'skipping {family}: {why}  (pass --python PEERS/bin/python; see bench/README.md)')
            continue
        cmd = [args.python, str(peers / script)]
        if family == 'ort':
            for t in (1, 2):
                env = dict(base, MODEL_PATH=str(model), ORT_THREADS=str(t))
                systems.append(System(f'ort-{t}t', 'ort', cmd, env, str(peers)))
        else:
            systems.append(System('tutorial', 'tutorial', cmd, dict(base), str(peers)))
    return systems


# ---------------------------------------------------------------------------------------------
# Inputs and inference-alone figures

MAKE_BIG_JPEG = r'''
import sys
from PIL import Image, ImageChops
out, w, h = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
# Smooth gradients (one per channel) plus per-channel Gaussian noise: compresses like a photo.
r = Image.linear_gradient('L').resize((w, h))
g = Image.linear_gradient('L').rotate(90).resize((w, h))
b = Image.radial_gradient('L').resize((w, h))
noise = Image.merge('RGB', [Image.effect_noise((w, h), 10).convert('L') for _ in range(3)])
ImageChops.add(Image.merge('RGB', (r, g, b)), noise, 1.0, -128).save(out, quality=90)
'''


def make_big_jpeg(path, python, size=(4000, 3000)):
    try:
        import PIL  # noqa: F401
        interp = sys.executable
    except ImportError:
        interp = python
    r = subprocess.run([interp, '-c', MAKE_BIG_JPEG, str(path), str(size[0]), str(size[1])],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise SystemExit(f'could not generate the 12 MP JPEG with {interp} (needs PIL): {r.stderr.strip()}')


ORT_ALONE = r'''
import json, statistics, sys, time
import numpy as np, onnxruntime as ort
model, tensor, warm, iters = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
opts = ort.SessionOptions()
opts.intra_op_num_threads = 1
opts.inter_op_num_threads = 1
session = ort.InferenceSession(model, opts, providers=['CPUExecutionProvider'])
x = np.load(tensor)
feed = {session.get_inputs()[0].name: x}
for _ in range(warm):
    session.run(None, feed)
times = []
for _ in range(iters):
    t = time.perf_counter()
    session.run(None, feed)
    times.append((time.perf_counter() - t) * 1000)
print(json.dumps({'inference_ms_p50': statistics.median(times), 'min_ms': min(times),
                  'iters': iters, 'onnxruntime': ort.__version__}))
'''


def project_model(args, tmp):
    """The model file the project serves: by default the NNEF archive `densenet-lambda convert`
    makes from the same ONNX file (the build-time step the README's deployment uses)."""
    if args.project_format == 'onnx' or not args.binary.is_file():
        return args.model
    archive = Path(tmp) / 'model.nnef.tar'
    t = time.perf_counter()
    rc, _, err = run_captured([str(args.binary), 'convert', str(args.model), str(archive)], 600)
    if rc != 0:
        note(f'convert failed (rc={rc}), the project serves the ONNX file: {(err or "").strip()[-300:]}')
        return args.model
    print(f'\nproject model: {archive.name}, converted from {args.model.name} by `densenet-lambda convert` '
          f'(a build-time step) in {time.perf_counter() - t:.1f} s', flush=True)
    return archive


def run_captured(cmd, timeout, **kw):
    """Run to completion in its own process group (killed on timeout/interrupt): (rc, out, err)."""
    proc = spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        return None, out, err
    finally:
        if proc.poll() is None:
            kill_group(proc)
    with _groups_lock:
        _groups.pop(proc.pid, None)
    return proc.returncode, out, err


def inference_alone(args, model, tensor):
    """tract and onnxruntime alone, one thread, alternating for --inference-rounds rounds (the
    machine's load drifts; each round's p50 is printed, the median of them reported)."""
    result = {'onnxruntime': None, 'tract': None}
    print(f'inference alone, 1 thread, {args.inference_rounds} alternating rounds:', flush=True)
    tract_cmd = None
    # tract, through the project's own bench (someone else's file: skip quietly if absent).
    if args.no_cargo_bench:
        note('tract: --no-cargo-bench given, skipped')
    elif not (REPO / 'benches' / 'pipeline.rs').is_file():
        note('tract: benches/pipeline.rs does not exist yet, skipped')
    else:
        tract_cmd = ['cargo', 'bench', '--bench', 'pipeline', '--', '--json',
                     '--threads', '1', '--model', str(model)]
        if args.pipeline_binary:
            tract_cmd = [str(args.pipeline_binary)] + tract_cmd[tract_cmd.index('--') + 1:]
        print(f'  tract: `{" ".join(tract_cmd)}` (may compile for minutes)', flush=True)
    env = dict(os.environ)
    env.setdefault('EMBED_MODEL_PATH', str(model))  # a release-profile build needs a model to embed
    env['SHARED_DIR'] = str(args.shared)
    why = python_ok(args.python, 'import numpy, onnxruntime')
    if why:
        note(f'onnxruntime alone: {why}, skipped')
    rounds = {'tract': [], 'onnxruntime': []}
    for r in range(args.inference_rounds):
        if tract_cmd:
            t = time.perf_counter()
            rc, out, err = run_captured(tract_cmd, args.cargo_timeout, cwd=str(REPO), env=env)
            lines = [l for l in (out or '').splitlines() if l.startswith('{')]
            try:
                rounds['tract'].append(json.loads(lines[-1]))
            except (ValueError, IndexError):
                tail = '\n'.join('    | ' + l for l in (err or '').strip().splitlines()[-10:])
                note(f'tract: the bench failed (rc={rc}, {time.perf_counter() - t:.0f} s), skipped\n{tail}')
                tract_cmd = None
        if not why:
            rc, out, err = run_captured([args.python, '-c', ORT_ALONE, str(model), str(tensor), '5', '30'], 600)
            lines = [l for l in (out or '').splitlines() if l.startswith('{')]
            if rc != 0 or not lines:
                note(f'onnxruntime alone failed (rc={rc}): {(err or "").strip()[-300:]}')
                why = 'failed'
            else:
                rounds['onnxruntime'].append(json.loads(lines[-1]))
        got = '  '.join(f'{name} {runs[-1]["inference_ms_p50"]:.2f} ms' for name, runs in rounds.items()
                        if len(runs) == r + 1)
        print(f'  round {r + 1}: {got}', flush=True)
    for name, runs in rounds.items():
        if runs:
            p50s = [run['inference_ms_p50'] for run in runs]
            result[name] = {'inference_ms_p50': statistics.median(p50s), 'rounds_p50': p50s}
            print(f'  {name:<12} p50 {result[name]["inference_ms_p50"]:7.2f} ms (median of {len(p50s)} rounds)',
                  flush=True)
    return result


# ---------------------------------------------------------------------------------------------
# Phases

def warm_latency(systems, kitten, big, n, gap):
    live = [s for s in systems if s.alive]
    for s in live:
        for _ in range(3):
            s.request('warmup', kitten)
        s.request('warmup', big)
    n_big = n // 3
    for r in range(n):
        k = r % len(live) if live else 0
        order = live[k:] + live[:k]  # rotate who goes first, so no system always follows another
        rounds = [('kitten', kitten)] + ([('big', big)] if r % 3 == 2 and r // 3 < n_big else [])
        for which, payload in rounds:
            for s in order:
                if not s.alive:
                    continue
                secs = s.request(which, payload)
                if secs is not None:
                    s.lat[which].append(secs * 1000)
                time.sleep(gap)  # let the previous server's thread pool stop spinning


def throughput(system, kitten, per_thread, threads=2):
    ok = [0] * threads
    barrier = threading.Barrier(threads + 1)

    def client(i):
        barrier.wait()
        for _ in range(per_thread):
            if system.request('throughput', kitten) is not None:
                ok[i] += 1

    workers = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(threads)]
    for w in workers:
        w.start()
    barrier.wait()
    start = time.perf_counter()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - start
    return sum(ok) / elapsed if sum(ok) else None


# ---------------------------------------------------------------------------------------------
# Report

def fmt(v, spec):
    return format(v, spec) if isinstance(v, (int, float)) else 'n/a'


def figures(s):
    return {
        'cold_start_s': s.cold_start_s,
        'kitten_p50_ms': pct(s.lat['kitten'], 0.5), 'kitten_p90_ms': pct(s.lat['kitten'], 0.9),
        'kitten_n': len(s.lat['kitten']),
        'big_p50_ms': pct(s.lat['big'], 0.5), 'big_p90_ms': pct(s.lat['big'], 0.9),
        'big_n': len(s.lat['big']),
        'throughput_rps_c2': s.throughput_rps,
        'peak_rss_mib': s.peak_rss_mib,
        'class_id_kitten': s.first_class_id,
        'errors': dict(s.errors), 'first_error': s.first_error, 'failed': s.error,
    }


def report(systems, alone, big_info, args):
    figs = {s.name: figures(s) for s in systems}
    print()
    hdr = (f'{"system":<15} {"cold s":>7} {"kitten p50":>10} {"p90":>7} {"12MP p50":>9} {"p90":>7} '
           f'{"req/s c2":>8} {"peak RSS":>9} {"class":>5}  errors')
    print(hdr)
    print('-' * len(hdr))
    for s in systems:
        f = figs[s.name]
        if s.error and s.cold_start_s is None:
            print(f'{s.name:<15} failed to start: {s.error}')
            continue
        errs = sum(s.errors.values())
        if s.cold_only:
            print(f'{s.name:<15} {fmt(f["cold_start_s"], "7.2f")}  (cold start only)')
            continue
        print(f'{s.name:<15} {fmt(f["cold_start_s"], "7.2f")} {fmt(f["kitten_p50_ms"], "10.1f")} '
              f'{fmt(f["kitten_p90_ms"], "7.1f")} {fmt(f["big_p50_ms"], "9.1f")} {fmt(f["big_p90_ms"], "7.1f")} '
              f'{fmt(f["throughput_rps_c2"], "8.2f")} {fmt(f["peak_rss_mib"], "6.0f")} MiB '
              f'{str(f["class_id_kitten"]):>5}  {errs}' + (f'  ({s.first_error})' if s.first_error else ''))
    print(f'(latencies in ms over {args.requests} kitten / {args.requests // 3} 12 MP requests each; '
          f'12 MP = {big_info["width"]}x{big_info["height"]} JPEG, {big_info["bytes"] / 1e6:.2f} MB; '
          f'req/s c2 = 2 clients x {args.throughput_requests} kitten)')

    print('\nratios project / peer (lower is better for the project; req/s the other way up)')
    ratios = []
    for what, key, num, den, goal in RATIOS:
        if num not in figs:
            continue  # e.g. project-2t-onnx with --project-format onnx
        a, b = figs.get(num, {}).get(key), figs.get(den, {}).get(key)
        ratios.append(ratio_line(what, num, den, a, b, goal))
    t = (alone.get('tract') or {}).get('inference_ms_p50')
    o = (alone.get('onnxruntime') or {}).get('inference_ms_p50')
    ratios.append(ratio_line('inference alone 1 thread', 'tract', 'onnxruntime', t, o, INFERENCE_GOAL))
    return figs, ratios


def ratio_line(what, num, den, a, b, goal):
    label = f'{what:<25} {num + " / " + den:<25}'
    if a is None or b is None or not b:
        missing = ', '.join(n for n, v in ((num, a), (den, b)) if v is None) or den
        print(f'{label} {"n/a (" + missing + " not run)":<32} goal <= {goal:<5} SKIP')
        return {'what': what, 'num': num, 'den': den, 'ratio': None, 'goal': goal, 'status': 'SKIP'}
    r = a / b
    status = 'PASS' if r <= goal else 'MISS'
    print(f'{label} {f"{a:9.2f} / {b:9.2f} = {r:5.2f}":<32} goal <= {goal:<5} {status}')
    return {'what': what, 'num': num, 'den': den, 'a': a, 'b': b, 'ratio': r, 'goal': goal, 'status': status}


# ---------------------------------------------------------------------------------------------

def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--shared', default=None, help='the shared folder (default: ../shared next to the repo)')
    p.add_argument('--binary', default=None,
                   help='densenet-lambda binary (default: target/release/densenet-lambda in the repo)')
    p.add_argument('--python', default=os.environ.get('PEERS_PYTHON', 'python3'),
                   help='interpreter for the peers, with flask pillow numpy onnxruntime [torch torchvision] '
                        '(default: $PEERS_PYTHON, else python3)')
    p.add_argument('--model', default=None,
                   help='ONNX model for all (default: SHARED/model/densenet121_untrained_seed0.onnx)')
    p.add_argument('--requests', type=int, default=30, help='warm kitten requests per system (12 MP: a third)')
    p.add_argument('--throughput-requests', type=int, default=20, help='kitten requests per client thread')
    p.add_argument('--only', default='project,ort,tutorial', help='comma list of: project, ort, tutorial')
    p.add_argument('--json-out', default=None, help='also write every figure to this JSON file')
    p.add_argument('--start-timeout', type=float, default=180.0, help='seconds to wait for a first 200')
    p.add_argument('--gap-ms', type=float, default=50.0, help='pause between warm-latency requests')
    p.add_argument('--project-format', choices=('nnef', 'onnx'), default='nnef',
                   help='what the project serves: the NNEF archive converted from --model (default, as deployed) '
                        'or the ONNX file itself; with nnef, project-2t-onnx is also started for its cold start')
    p.add_argument('--no-cargo-bench', action='store_true', help='skip the tract inference-alone figure')
    p.add_argument('--inference-rounds', type=int, default=3,
                   help='alternating tract / onnxruntime rounds for the inference-alone figure')
    p.add_argument('--pipeline-binary', default=None,
                   help='run this already-built pipeline bench (target/release/deps/pipeline-*) instead of cargo bench')
    p.add_argument('--cargo-timeout', type=float, default=3600.0, help='seconds allowed for cargo bench')
    p.add_argument('--keep-temp', action='store_true', help='keep the temp dir (12 MP JPEG, server logs)')
    args = p.parse_args()
    args.shared = Path(args.shared).resolve() if args.shared else (REPO / '..' / 'shared').resolve()
    args.binary = Path(args.binary).resolve() if args.binary else REPO / 'target' / 'release' / 'densenet-lambda'
    args.model = Path(args.model).resolve() if args.model else args.shared / 'model' / 'densenet121_untrained_seed0.onnx'
    args.only = {x.strip() for x in args.only.split(',') if x.strip()}
    unknown = args.only - set(FAMILIES)
    if unknown:
        p.error(f'--only: unknown {", ".join(sorted(unknown))} (choose from {", ".join(FAMILIES)})')
    if args.requests < 3:
        p.error('--requests must be at least 3')
    return args


def main():
    args = parse_args()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C even if started ignoring it
    signal.signal(signal.SIGTERM, _raise_exit)
    signal.signal(signal.SIGHUP, _raise_exit)
    kitten_path = args.shared / 'samples' / 'kitten.jpg'
    tensor = args.shared / 'reference' / 'kitten.jpg.input.npy'
    peers = args.shared / 'peers'
    for path in (kitten_path, args.model):
        if not path.is_file():
            raise SystemExit(f'missing {path} (set --shared or --model)')

    tmp = tempfile.mkdtemp(prefix='densenet-compare-')
    systems = []
    try:
        load_start = loadavg()
        print(f'machine: {os.cpu_count()} CPUs, {platform.platform()}, python {platform.python_version()}, '
              f'load average {" ".join(load_start or ["?"])}')
        print(f'cpu: {cpu_line()}')
        print(f'model: {args.model}\npeers python: {args.python}\ntemp: {tmp}\n', flush=True)
        big_path = Path(tmp) / 'photo_12mp.jpg'
        make_big_jpeg(big_path, args.python)
        big_info = {'width': 4000, 'height': 3000, 'bytes': big_path.stat().st_size}
        kitten = multipart(kitten_path.read_bytes(), 'kitten.jpg')
        big = multipart(big_path.read_bytes(), 'photo_12mp.jpg')

        alone = inference_alone(args, args.model, tensor)
        args.project_model = project_model(args, tmp)

        systems = build_systems(args, args.model, peers)
        if not systems:
            raise SystemExit('nothing to run (see the notes above)')

        print('\ncold start (spawn -> first 200 on POST /predict kitten.jpg), one at a time:', flush=True)
        for s in systems:
            if s.start(kitten, tmp, args.start_timeout):
                print(f'  {s.name:<15} {s.cold_start_s:6.2f} s   (port {s.port}, pid {s.proc.pid})', flush=True)
            if s.cold_only and s.proc is not None:
                kill_group(s.proc)

        live = [s for s in systems if s.alive]
        print(f'\nwarm latency: {args.requests} kitten + {args.requests // 3} 12 MP each, round-robin over '
              f'{", ".join(s.name for s in live)}...', flush=True)
        t = time.perf_counter()
        warm_latency(systems, kitten, big, args.requests, args.gap_ms / 1000)
        print(f'  done in {time.perf_counter() - t:.0f} s', flush=True)

        print(f'\nthroughput, 2 client threads x {args.throughput_requests} kitten, one system at a time:', flush=True)
        for s in systems:
            if s.alive:
                s.throughput_rps = throughput(s, kitten, args.throughput_requests)
                print(f'  {s.name:<11} {fmt(s.throughput_rps, "6.2f")} req/s', flush=True)

        for s in systems:
            if s.alive:
                s.peak_rss_mib = s.peak_rss()
            elif s.proc is not None and s.error is None and not s.cold_only:
                s.error = f'died during the run (code {s.proc.poll()})'
                print(f'  {s.name}: {s.error}\n{s.log_tail()}')

        figs, ratios = report(systems, alone, big_info, args)
        load_end = loadavg()
        print(f'\nload average at the start {" ".join(load_start or ["?"])}, at the end {" ".join(load_end or ["?"])} '
              f'({os.cpu_count()} CPUs; other work on the machine slows every system, torch the most)')

        if args.json_out:
            doc = {
                'when': time.strftime('%Y-%m-%dT%H:%M:%S%z'),
                'machine': {'cpus': os.cpu_count(), 'platform': platform.platform(), 'cpu': cpu_line(),
                            'loadavg_start': load_start, 'loadavg_end': load_end},
                'model': str(args.model), 'requests': args.requests,
                'big_requests': args.requests // 3, 'throughput_requests_per_thread': args.throughput_requests,
                'big_image': big_info, 'systems': figs, 'inference_alone_1_thread': alone, 'ratios': ratios,
            }
            Path(args.json_out).write_text(json.dumps(doc, indent=2) + '\n')
            print(f'\nJSON written to {args.json_out}')
    finally:
        cleanup()
        if args.keep_temp:
            print(f'temp dir kept: {tmp}')
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    try:
        main()
    except KeyboardInterrupt:
        print('\ninterrupted; servers stopped', file=sys.stderr)
        sys.exit(130)
