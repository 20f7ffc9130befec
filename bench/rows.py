#!/usr/bin/env python3
"""How many embedding rows a step of the course LM touches (bench/exchange.c needs it): over random global
batches of the window sampler (200 reviews of train, valid and unsup, a random window of 51 tokens of
<eod> review <eod> each, ids >= 8003 as <unk>), the distinct input ids of one rank's share (2 ranks: 100
reviews) and of the whole batch.
usage: rows.py DATA_DIR [--batches 20] [--vocab 8003] [--window 50] [--batch 200] [--ranks 2]"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_common  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("data")
p.add_argument("--batches", type=int, default=20)
p.add_argument("--vocab", type=int, default=8003)
p.add_argument("--window", type=int, default=50)
p.add_argument("--batch", type=int, default=200)
p.add_argument("--ranks", type=int, default=2)
a = p.parse_args()
import numpy as np  # noqa: E402

docs = []
for split in ("train", "valid", "unsup"):
    starts, _, ids = torch_common.read_tokfile(os.path.join(a.data, f"{split}.tok"), "rows.py")
    docs += [(ids, int(starts[i]), int(starts[i + 1])) for i in range(len(starts) - 1)]
rng = np.random.default_rng(1)
share, whole = [], []
for _ in range(a.batches):
    picked = rng.choice(len(docs), a.batch, replace=False)
    windows = []
    for d in picked:
        ids, s, e = docs[d]
        seq = np.concatenate(([2], ids[s:e].astype(np.int64), [2]))
        seq[seq >= a.vocab] = 1
        count = min(a.window, len(seq) - 1)
        first = int(rng.integers(0, len(seq) - count)) if len(seq) - 1 > count else 0
        windows.append(seq[first:first + count])
    per = a.batch // a.ranks
    share.append(np.mean([len(np.unique(np.concatenate(windows[r * per:(r + 1) * per]))) for r in range(a.ranks)]))
    whole.append(len(np.unique(np.concatenate(windows))))
print(f"distinct input rows per step: {np.mean(share):.0f} per rank's share of {a.batch // a.ranks} reviews, "
      f"{np.mean(whole):.0f} in the global batch of {a.batch}, of {a.vocab}")
