# Parity of the Transformer layer kernels with PyTorch: test_xf_layers dump writes fixed inputs and
# reel's outputs and gradients of layer norm (rows at 1e4 and -3e4 among them), GELU (tanh form) and the
# position embeddings; PyTorch recomputes them in float64 from the same float32 inputs with its own
# functions (F.layer_norm with eps 1e-5, F.gelu(approximate='tanh'), an nn.Embedding lookup added to the
# tokens) and autograd. Every element must satisfy |reel - torch| <= 1e-5 (|torch| + 0.01 max|torch|),
# the max over its tensor: float32 results computed carefully sit well inside that, and the negative
# controls below (reel's GELU against PyTorch's erf GELU, a gradient off by one part in 1e4) must fail it.
# torch is a requirement (scripts/install-deps installs python3-torch for /usr/bin/python3): without it
# the test fails, it is not skipped.
source "$(dirname "$0")/lib.sh"
TORCH_PYTHON=/usr/bin/python3
if ! why=$("$TORCH_PYTHON" -c "import torch, numpy" 2>&1); then
  echo "FAIL: $TORCH_PYTHON cannot import torch and numpy (scripts/install-deps installs python3-torch):" \
    "${why##*$'\n'}" >&2
  exit 1
fi
: "${TEST_XF_LAYERS:?TEST_XF_LAYERS must point at test_xf_layers (tests/cmake/xf_layers.cmake exports it)}"
if ! "$TEST_XF_LAYERS" dump "$WORK" >"$WORK/dump.txt" 2>&1; then
  fail "test_xf_layers dump $WORK:"; sed 's/^/    /' "$WORK/dump.txt" >&2
  finish
fi

status=0
OMP_NUM_THREADS=1 "$TORCH_PYTHON" - "$WORK" >"$WORK/parity.txt" 2>&1 <<'PYTHON' || status=$?
import sys

import numpy as np
import torch
import torch.nn.functional as F

TOLERANCE, FLOOR = 1e-5, 1e-2
work = sys.argv[1]
shapes, pos0 = {}, None
with open(f"{work}/manifest") as manifest:
    for number, line in enumerate(manifest, 1):
        fields = line.split()
        if fields[0] == "pos0":
            pos0 = int(fields[1])
        elif len(fields) >= 2:
            shapes[fields[0]] = tuple(int(d) for d in fields[1:])
        else:
            sys.exit(f"{work}/manifest line {number}: expected 'NAME d0 [d1 [d2]]' or 'pos0 N', got {line!r}")
if pos0 is None:
    sys.exit(f"{work}/manifest: no 'pos0' line")


def load(name):
    data = np.fromfile(f"{work}/{name}.f32", dtype=np.float32)
    if data.size != int(np.prod(shapes[name])):
        sys.exit(f"{work}/{name}.f32: {data.size} floats, the manifest says {shapes[name]}")
    return torch.from_numpy(data.reshape(shapes[name]).astype(np.float64))


def leaf(name):
    return load(name).requires_grad_(True)


def difference(reel, torch_value):
    """max over elements of |reel - torch| / (|torch| + FLOOR max|torch|)"""
    torch_value = torch_value.detach()
    scale = torch_value.abs() + FLOOR * torch_value.abs().max()
    return float(((reel - torch_value).abs() / scale).max())


failures = 0
worst = 0.0


def check(what, reel, torch_value):
    global failures, worst
    d = difference(reel, torch_value)
    worst = max(worst, d)
    verdict = "ok" if d <= TOLERANCE else "MISMATCH"
    failures += d > TOLERANCE
    print(f"{verdict:8} {what:12} difference {d:.3g} (tolerance {TOLERANCE:g})")


def control(what, reel, torch_value):
    """A negative control: the comparison must report this pair as different."""
    global failures
    d = difference(reel, torch_value)
    flagged = d > TOLERANCE
    failures += not flagged
    print(f"{'ok' if flagged else 'MISSED':8} control {what}: difference {d:.3g} must exceed {TOLERANCE:g}")


# layer norm over the last dimension
x, gamma, beta = leaf("ln_inp"), leaf("ln_gamma"), leaf("ln_beta")
out = F.layer_norm(x, (x.shape[-1],), gamma, beta, eps=1e-5)
out.backward(load("ln_dout"))
for name, value in (("out", out), ("dinp", x.grad), ("dgamma", gamma.grad), ("dbeta", beta.grad)):
    check(f"ln_{name}", load(f"ln_{name}"), value)

# GELU, tanh form
g = leaf("gelu_inp")
out = F.gelu(g, approximate="tanh")
out.backward(load("gelu_dout"))
check("gelu_out", load("gelu_out"), out)
check("gelu_dinp", load("gelu_dinp"), g.grad)
control("reel's tanh GELU against the erf GELU", load("gelu_out"), F.gelu(g.detach()))

# learned position embeddings: the window pos0 .. pos0 + T - 1 of the table added to every sequence
tok, wpe = leaf("pos_tok"), leaf("pos_wpe")
T = tok.shape[1]
out = tok + F.embedding(torch.arange(pos0, pos0 + T), wpe).unsqueeze(0)
out.backward(load("pos_dout"))
for name, value in (("out", out), ("dtok", tok.grad), ("dwpe", wpe.grad)):
    check(f"pos_{name}", load(f"pos_{name}"), value)

# a gradient off by one part in 1e4 at its largest element
perturbed = load("ln_dinp")
perturbed.view(-1)[perturbed.abs().argmax()] *= 1 + 1e-4
control("ln_dinp with its largest element scaled by 1 + 1e-4", perturbed, x.grad)

print(f"max elementwise difference {worst:.3g} (tolerance {TOLERANCE:g})")
sys.exit(1 if failures else 0)
PYTHON
cat "$WORK/parity.txt"
if [ "$status" -eq 0 ]; then
  pass "layer norm, GELU and position embeddings match PyTorch;" \
    "$(grep -o 'max elementwise difference.*' "$WORK/parity.txt")"
else
  fail "the PyTorch comparison exited with status $status (see above)"
fi
finish
