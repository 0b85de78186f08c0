"""`pixelforge browse` on Fashion-MNIST (70,000 PNGs): start-up, the first grid page, one page of
thumbnails, filtered pages, memory; with a run, how long its predictions take and the pages that use them.

    python -m bench.browse [--data /tmp/ds/fashion-mnist] [--run RUN] [--audit DIR]

The real command runs in a subprocess (as a user starts it) and is read over HTTP; thumbnails are
fetched over 6 connections, as a browser does. Writes bench/results/browse.json and browse.md.
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import json
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="/tmp/ds/fashion-mnist")
    parser.add_argument("--run", help="a run folder (pixelforge train) for the prediction pages")
    parser.add_argument("--audit", help="an audit folder (pixelforge audit) for the finding pages")
    args = parser.parse_args(argv)
    extra = (["--run", args.run] if args.run else []) + (["--audit", args.audit] if args.audit else [])
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pixelforge.cli", "browse", args.data, "--port", "0",
                   "--curation", str(Path(tmp) / "c.jsonl"), *extra]
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        try:
            url = re.search(r"http://[^/\s]+/", process.stdout.readline()).group(0)
            rows.append(("start-up (command → URL printed)", f"{time.perf_counter() - start:.2f} s"))

            def get(path: str) -> bytes:
                with urllib.request.urlopen(url + path, timeout=120) as response:
                    return response.read()

            def timed(label: str, path: str) -> bytes:
                t = time.perf_counter()
                body = get(path)
                rows.append((label, f"{(time.perf_counter() - t) * 1000:.0f} ms"))
                return body

            def memory() -> str:
                def mb(pid, key):
                    status = Path(f"/proc/{pid}/status").read_text()
                    return int(re.search(rf"{key}:\s+(\d+)", status).group(1)) // 1024

                # the prediction worker (and multiprocessing's helper) are the server's children
                children = subprocess.run(["ps", "--ppid", str(process.pid), "-o", "pid="], capture_output=True,
                                          text=True).stdout.split()
                workers = sum(mb(pid, "VmHWM") for pid in children if Path(f"/proc/{pid}").exists())
                text = f"server {mb(process.pid, 'VmRSS')} MB (peak {mb(process.pid, 'VmHWM')} MB)"
                return text + (f", prediction worker peak {workers} MB" if workers else "")

            page = timed("first grid page (120 tiles)", "").decode()
            thumbs = re.findall(r'src="/thumb/(\d+)"', page)
            for label in ("its 120 thumbnails, cold (6 connections)", "the same, from the cache"):
                t = time.perf_counter()
                with futures.ThreadPoolExecutor(6) as pool:
                    list(pool.map(lambda r: get(f"thumb/{r}"), thumbs))
                rows.append((label, f"{(time.perf_counter() - t) * 1000:.0f} ms"))
            timed("page 500", "?page=500")
            timed("class 6 of the test split, page 3", "?label=6&split=test&page=3")
            timed("file names containing 0042", "?q=0042")
            timed("an image page", "image/65000")
            rows.append(("memory", memory()))
            if args.run:
                while True:
                    state = json.loads(get("api/status"))["predictions"]
                    if state["ready"] or state["error"]:
                        break
                    time.sleep(0.5)
                rows.append(("predictions for every image ready (from the command)",
                             f"{time.perf_counter() - start:.1f} s" + (f" ({state['error']})" if state["error"] else "")))
                timed("the model's mistakes, most confident first", "?outcome=wrong&sort=confidence")
                timed("confusion matrix of the test split", "confusion?split=test")
                rows.append(("memory with predictions", memory()))
            if args.audit:
                timed("audit summary", "summary")
                timed("first finding's images", "?finding=0")
            process.send_signal(signal.SIGINT)
            rows.append(("exit code after Ctrl-C", str(process.wait(timeout=30))))
        finally:
            if process.poll() is None:
                process.kill()
    result = {"data": args.data, "run": args.run, "audit": args.audit, "rows": dict(rows)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "browse.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["# pixelforge browse on Fashion-MNIST", "",
             f"`python -m bench.browse --data {args.data}" + "".join(f" {a}" for a in extra) + "`, on the 2-core "
             "development machine shared with other jobs. Not asserted by the tests (they never time anything).", "",
             "| what | measured |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows], ""]
    (RESULTS / "browse.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return result


if __name__ == "__main__":
    main()
