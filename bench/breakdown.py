#!/usr/bin/env python3
"""Where the time of one `POST /predict` goes, from the socket to the reply, in one table.

Starts `densenet-lambda serve` (JSON logs, tower-http's request span at debug level), sends
kitten.jpg and a 12-megapixel JPEG one request at a time with a request id each, and joins per
request:
  - the client's wall time, connect -> last byte of the reply (this script);
  - the server's time inside the router, request in -> reply ready (tower-http `latency`);
  - the server's per-stage times from its `prediction` log line (decode, resize+normalise, model
    load wait, inference);
  - in-process figures for what the log does not split: multipart parsing and the reply's JSON
    (`cargo bench --bench pipeline -- --json`, the same functions on the same bytes);
then prints medians per stage, the derived remainders, and the CPU and load average.

    python3 bench/breakdown.py [--binary target/release/densenet-lambda] [--threads 1]
                               [--requests 20] [--python PEERS/bin/python] [--no-cargo-bench]

The model is the NNEF archive `densenet-lambda convert` makes of
SHARED/model/densenet121_untrained_seed0.onnx (what a deployment embeds). Needs a release build
(`cargo build --release --no-default-features`).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402  (helpers: spawn, kill_group, make_big_jpeg, multipart, cpu_line…)

REPO = compare.REPO


def post(port, payload, request_id):
    import http.client
    body, ctype = payload
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=120)
    start = time.perf_counter()
    try:
        conn.request('POST', '/predict', body=body,
                     headers={'Content-Type': ctype, 'Connection': 'close', 'x-request-id': request_id})
        resp = conn.getresponse()
        resp.read()
        return resp.status, (time.perf_counter() - start) * 1000
    finally:
        conn.close()


def server_lines(log_path):
    """request id -> {'latency_ms', 'decode_ms', ...} from the server's JSON log."""
    out = {}
    for line in Path(log_path).read_text(errors='replace').splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        rid = (rec.get('span') or {}).get('request_id')
        if not rid:
            continue
        fields = rec.get('fields', {})
        entry = out.setdefault(rid, {})
        if fields.get('message') == 'prediction':
            for k in ('decode_ms', 'preprocess_ms', 'model_load_ms', 'inference_ms'):
                entry[k] = float(fields[k])
        elif fields.get('message') == 'finished processing request':
            value, unit = str(fields.get('latency', '')).split()
            scale = {'ms': 1.0, 's': 1000.0, 'μs': 0.001, 'us': 0.001, 'ns': 1e-6}[unit]
            entry['latency_ms'] = float(value) * scale
    return out


def pipeline(image, threads, timeout, binary=None):
    """The in-process figures of `cargo bench --bench pipeline` (or of that bench's binary, when
    given) for one image (JSON line)."""
    env = dict(os.environ, SHARED_DIR=str(compare_shared()))
    env.setdefault('EMBED_MODEL_PATH', str(compare_shared() / 'model' / 'densenet121_untrained_seed0.onnx'))
    cmd = ['cargo', 'bench', '--bench', 'pipeline', '--', '--json', '--iters', '10',
           '--threads', str(threads), '--image', str(image)]
    if binary:
        cmd = [str(binary)] + cmd[cmd.index('--') + 1:]
    rc, out, err = compare.run_captured(cmd, timeout, cwd=str(REPO), env=env)
    lines = [l for l in (out or '').splitlines() if l.startswith('{')]
    if rc != 0 or not lines:
        compare.note(f'cargo bench failed (rc={rc}): {(err or "").strip()[-300:]}')
        return None
    return json.loads(lines[-1])


_SHARED = None


def compare_shared():
    return _SHARED


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v):
    return '' if v is None else f'{v:8.2f}'


def main():
    global _SHARED
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--shared', default=None)
    p.add_argument('--binary', default=None)
    p.add_argument('--threads', type=int, default=1, help='MODEL_THREADS of the server')
    p.add_argument('--requests', type=int, default=20, help='kitten requests (12 MP: half as many)')
    p.add_argument('--python', default=os.environ.get('PEERS_PYTHON', 'python3'),
                   help='an interpreter with PIL, to make the 12 MP JPEG')
    p.add_argument('--no-cargo-bench', action='store_true', help='skip the in-process figures')
    p.add_argument('--pipeline-binary', default=None,
                   help='an already-built pipeline bench (target/release/deps/pipeline-*) instead of cargo bench')
    p.add_argument('--cargo-timeout', type=float, default=3600.0)
    p.add_argument('--json-out', default=None)
    args = p.parse_args()
    _SHARED = Path(args.shared).resolve() if args.shared else (REPO / '..' / 'shared').resolve()
    binary = Path(args.binary).resolve() if args.binary else REPO / 'target' / 'release' / 'densenet-lambda'
    onnx = _SHARED / 'model' / 'densenet121_untrained_seed0.onnx'
    kitten_path = _SHARED / 'samples' / 'kitten.jpg'
    tmp = tempfile.mkdtemp(prefix='densenet-breakdown-')
    try:
        print(f'cpu: {compare.cpu_line()}')
        load_start = compare.loadavg()
        print(f'load average at the start {" ".join(load_start or ["?"])}', flush=True)
        big_path = Path(tmp) / 'photo_12mp.jpg'
        compare.make_big_jpeg(big_path, args.python)
        images = {'kitten': kitten_path, '12 MP': big_path}

        inproc = {}
        if not args.no_cargo_bench:
            for name, path in images.items():
                inproc[name] = pipeline(path, args.threads, args.cargo_timeout, args.pipeline_binary)

        archive = Path(tmp) / 'model.nnef.tar'
        subprocess.run([str(binary), 'convert', str(onnx), str(archive)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port = compare.free_port()
        log = Path(tmp) / 'serve.log'
        env = dict(os.environ, MODEL_PATH=str(archive), MODEL_THREADS=str(args.threads),
                   AWS_LAMBDA_LOG_FORMAT='JSON', RUST_LOG='info,tower_http=debug')
        with open(log, 'wb') as logf:
            server = compare.spawn([str(binary), 'serve', '--port', str(port)], env=env,
                                   stdout=logf, stderr=subprocess.STDOUT)
        payloads = {name: compare.multipart(path.read_bytes(), path.name) for name, path in images.items()}
        deadline = time.time() + 60
        while True:
            try:
                if post(port, payloads['kitten'], 'warmup-0')[0] == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline or server.poll() is not None:
                raise SystemExit(f'server did not answer; log:\n{log.read_text()[-2000:]}')
            time.sleep(0.05)
        for i in range(3):
            post(port, payloads['kitten'], f'warmup-k{i}')
            post(port, payloads['12 MP'], f'warmup-b{i}')
        client = {}
        counts = {'kitten': args.requests, '12 MP': max(3, args.requests // 2)}
        for r in range(max(counts.values())):
            for name, payload in payloads.items():
                if r >= counts[name]:
                    continue
                rid = f'{name.replace(" ", "")}-{r}-{uuid.uuid4().hex[:8]}'
                status, wall = post(port, payload, rid)
                if status == 200:
                    client[rid] = (name, wall)
                time.sleep(0.05)
        time.sleep(0.3)
        compare.kill_group(server)
        server_side = server_lines(log)

        rows = {}
        for name in images:
            per = [(wall, server_side.get(rid, {})) for rid, (n, wall) in client.items() if n == name]
            col = {
                'wall': median([w for w, _ in per]),
                'latency': median([s.get('latency_ms') for _, s in per]),
                'decode': median([s.get('decode_ms') for _, s in per]),
                'resize': median([s.get('preprocess_ms') for _, s in per]),
                'wait': median([s.get('model_load_ms') for _, s in per]),
                'inference': median([s.get('inference_ms') for _, s in per]),
                'n': len(per),
            }
            # Per request, then the median: inside the router but in no logged stage, and
            # outside the router (accept, request line and headers, writing the reply, loopback).
            col['rest_in'] = median([
                s['latency_ms'] - s['decode_ms'] - s['preprocess_ms'] - s['model_load_ms'] - s['inference_ms']
                for _, s in per if {'latency_ms', 'decode_ms'} <= s.keys()])
            col['outside'] = median([w - s['latency_ms'] for w, s in per if 'latency_ms' in s])
            bench = inproc.get(name) or {}
            col['multipart'] = bench.get('multipart_ms_p50')
            col['reply'] = bench.get('reply_ms_p50')
            col['bytes'] = images[name].stat().st_size
            rows[name] = col

        print(f'\nserve, MODEL_THREADS={args.threads}, NNEF archive, one request at a time; medians over '
              f'{rows["kitten"]["n"]} kitten ({rows["kitten"]["bytes"]} B) and {rows["12 MP"]["n"]} '
              f'12 MP ({rows["12 MP"]["bytes"]} B) requests, ms\n')
        table = [
            ('client wall time: connect -> last byte of the reply', 'wall', 'client'),
            ('  outside the router: accept, request line + headers, write reply, loopback', 'outside', 'wall - router'),
            ('  inside the router (tower-http latency)', 'latency', 'server log'),
            ('    read body + multipart + hand-over to the worker', 'rest_in', 'router - stages'),
            ('      of which multipart parsing (in-process, from memory)', 'multipart', 'pipeline bench'),
            ('    decode', 'decode', 'server log'),
            ('    resize + crop + normalise', 'resize', 'server log'),
            ('    waiting for the model load', 'wait', 'server log'),
            ('    inference', 'inference', 'server log'),
            ('    reply: argmax + JSON (in-process)', 'reply', 'pipeline bench'),
        ]
        print(f'| stage | kitten | 12 MP | from |\n| --- | ---: | ---: | --- |')
        for label, key, source in table:
            print(f'| {label} | {fmt(rows["kitten"][key]).strip()} | {fmt(rows["12 MP"][key]).strip()} | {source} |')
        load_end = compare.loadavg()
        print(f'\nload average at the start {" ".join(load_start or ["?"])}, at the end {" ".join(load_end or ["?"])}')
        if args.json_out:
            Path(args.json_out).write_text(json.dumps({'cpu': compare.cpu_line(), 'threads': args.threads,
                                                       'rows': rows, 'in_process': inproc,
                                                       'loadavg': [load_start, load_end]}, indent=2))
    finally:
        compare.cleanup()
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
