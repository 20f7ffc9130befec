#!/usr/bin/env python3
"""PyTorch reference for bench/lm.sh: the course's language model as reel's configs/imdb_lm.ini builds it,
trained for a fixed number of steps on the same prepared data, timed the same way.

usage: torch_lm.py --data DIR [--splits train,valid,unsup] [--layers 3] [--hidden 500] [--embed 500]
                   [--vocab 8003] [--window 50] [--batch 200] [--steps 20] [--warmup 3] [--lr 1e-3]
                   [--dropout 0.3] [--no-batch-norm] [--threads N | --ddp N] [--seed 42]

Model: embedding -> `layers` LSTM layers (one nn.LSTM each), each followed by batch norm over the
(T*B) steps and locked dropout (one mask per sequence) -> linear decoder over the vocabulary ->
cross-entropy on the next token (mean over the global batch's predictions; padding ignored); Adam.
Batches follow reel's window sampler: every document is read as <eod> d_1 ... d_n <eod> (id 2), ids >=
vocab map to <unk> (1), a random window of window + 1 tokens is cut from it (a shorter document is
taken whole), and the global batch is `batch` documents of a seeded shuffle.

--threads N: one process with N intra-op threads. --ddp N: DistributedDataParallel over N processes of
one thread each (gloo, 127.0.0.1 only), each taking a contiguous share of the global batch.

Prints one line:  RESULT s_per_step=... tokens_per_s=... rss_kb=A[,B...]
s_per_step: mean wall time of the timed steps on rank 0, from building the batch to the end of the
optimizer update. tokens_per_s: predictions of the timed global batches / their seconds.
"""
import argparse
import os
import sys


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="a directory written by `reel prep`")
    p.add_argument("--splits", default="train,valid,unsup")
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--hidden", type=int, default=500)
    p.add_argument("--embed", type=int, default=500)
    p.add_argument("--vocab", type=int, default=8003)
    p.add_argument("--window", type=int, default=50)
    p.add_argument("--batch", type=int, default=200)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--no-batch-norm", action="store_true")
    p.add_argument("--seed", type=int, default=42)
    layout = p.add_mutually_exclusive_group()
    layout.add_argument("--threads", type=int, default=1)
    layout.add_argument("--ddp", type=int, default=0, metavar="N")
    args = p.parse_args()
    if args.steps < 1 or args.warmup < 0 or args.batch < 1:
        p.error("--steps must be >= 1, --warmup >= 0, --batch >= 1")
    return args


ARGS = parse_args()
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_common  # noqa: E402

torch_common.set_threads(1 if ARGS.ddp else ARGS.threads)

import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

UNK, EOD = 1, 2  # reel's reserved ids


class Windows:
    def __init__(self, args):
        self.docs = []  # (ids of one split, start, end)
        for split in args.splits.split(","):
            starts, _, ids = torch_common.read_tokfile(os.path.join(args.data, f"{split}.tok"), "torch_lm.py")
            self.docs += [(ids, int(starts[i]), int(starts[i + 1])) for i in range(len(starts) - 1)]
        self.args = args
        self.rng = np.random.default_rng(args.seed)
        self.order = np.empty(0, dtype=np.int64)

    def next_global(self):
        """The global batch as (inputs, targets) int64 arrays per document."""
        if len(self.order) < self.args.batch:
            self.order = np.concatenate([self.order, self.rng.permutation(len(self.docs))])
        picked, self.order = self.order[:self.args.batch], self.order[self.args.batch:]
        batch = []
        for d in picked:
            ids, start, end = self.docs[d]
            seq = np.concatenate(([EOD], ids[start:end].astype(np.int64), [EOD]))
            seq[seq >= self.args.vocab] = UNK
            count = min(self.args.window, len(seq) - 1)
            first = int(self.rng.integers(0, len(seq) - count)) if len(seq) - 1 > count else 0
            batch.append((seq[first:first + count], seq[first + 1:first + count + 1]))
        return batch

    @staticmethod
    def tensors(share):
        """inputs, targets (T, B) int64, padded with 0 (targets 0 are ignored by the loss)."""
        T = max(max(len(x) for x, _ in share), 1)
        inputs = np.zeros((T, len(share)), dtype=np.int64)
        targets = np.zeros((T, len(share)), dtype=np.int64)
        for b, (x, y) in enumerate(share):
            inputs[:len(x), b] = x
            targets[:len(y), b] = y
        return torch.from_numpy(inputs), torch.from_numpy(targets)


class LanguageModel(nn.Module):
    def __init__(self, args):
        super().__init__()
        self.embedding = nn.Embedding(args.vocab, args.embed)
        widths = [args.embed] + [args.hidden] * args.layers
        self.rnns = nn.ModuleList(nn.LSTM(widths[i], widths[i + 1]) for i in range(args.layers))
        self.norms = nn.ModuleList(nn.BatchNorm1d(args.hidden) for _ in range(args.layers)) if not args.no_batch_norm else None
        self.dropout = args.dropout
        self.decoder = nn.Linear(args.hidden, args.vocab)

    def forward(self, ids):
        x = self.embedding(ids)  # (T, B, E)
        for i, rnn in enumerate(self.rnns):
            x, _ = rnn(x)
            T, B, H = x.shape
            if self.norms is not None:
                x = self.norms[i](x.reshape(T * B, H)).reshape(T, B, H)
            if self.training and self.dropout > 0:  # locked: one mask per sequence
                mask = x.new_empty(1, B, H).bernoulli_(1 - self.dropout) / (1 - self.dropout)
                x = x * mask
        return self.decoder(x)  # (T, B, V)


def train(args, rank=0, world=1):
    torch.manual_seed(args.seed)
    windows = Windows(args)
    model = LanguageModel(args)
    if world > 1:
        model = nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    seconds, tokens = [], 0
    for step in range(args.warmup + args.steps):
        start = time.perf_counter()
        batch = windows.next_global()
        total = sum(len(y) for _, y in batch)
        share = batch[rank * len(batch) // world:(rank + 1) * len(batch) // world]
        inputs, targets = Windows.tensors(share)
        optimizer.zero_grad(set_to_none=True)
        logits = model(inputs)
        # the mean over the global batch's predictions: this share's sum / the global count, times the
        # world size because DDP averages the gradients over the processes
        loss = nn.functional.cross_entropy(logits.reshape(-1, args.vocab), targets.reshape(-1), ignore_index=0,
                                           reduction="sum") * (world / total)
        loss.backward()
        optimizer.step()
        if step >= args.warmup:
            seconds.append(time.perf_counter() - start)
            tokens += total
    return seconds, tokens


def main():
    args = ARGS
    (seconds, tokens), rss = torch_common.run(train, args, args.ddp, args.threads)
    total = sum(seconds)
    print(f"RESULT s_per_step={total / len(seconds):.6f} tokens_per_s={tokens / total:.1f} "
          f"rss_kb={','.join(map(str, rss))}")


if __name__ == "__main__":
    main()
