"""What `[model] trusted_keys` costs at start-up: verifying a 5 MB model's signature (issue 24; target <= 100 ms).

`python -m benchmarks.signature_verify [--mb 5] [--runs 20]`. A key pair (deploy.signing.keygen) and a 5 MB file
signed with it (`edge-deploy sign`; the content does not matter: verification is sha256 of the bytes plus one
Ed25519 check) in a temporary folder; then, in a fresh interpreter each run (as a daemon starts), the time of
what `open_model` adds with trusted_keys: importing `cryptography`, parsing the key, reading the file and verifying
it (`edge.inference.signature.load_trusted_keys` + `read_verified`). Prints the first, median and worst run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from deploy.signing import keygen, private_key, sign_model

ONE_RUN = """
import time
t0 = time.perf_counter()
from edge.inference.signature import load_trusted_keys, read_verified
keys = load_trusted_keys([{pub!r}])
data = read_verified({model!r}, keys)
print(time.perf_counter() - t0, len(data))
"""


def measure(mb: int, runs: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        key, pub, _ = keygen(Path(tmp) / "keys")
        model = Path(tmp) / "model.tflite"
        model.write_bytes(os.urandom(mb << 20))
        sign_model(model, private_key(str(key)))
        code = ONE_RUN.format(pub=str(pub), model=str(model))
        out = []
        for _ in range(runs):
            r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            seconds, size = r.stdout.split()
            assert int(size) == mb << 20
            out.append(float(seconds))
        return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mb", type=int, default=5)
    p.add_argument("--runs", type=int, default=20)
    a = p.parse_args()
    times = measure(a.mb, a.runs)
    ms = [t * 1000 for t in times]
    print(f"verify a {a.mb} MB model at start-up ({a.runs} fresh interpreters): first {ms[0]:.1f} ms, "
          f"median {statistics.median(ms):.1f} ms, worst {max(ms):.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
