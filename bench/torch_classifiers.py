#!/usr/bin/env python3
"""PyTorch reference for bench/classifiers.sh: the same classifier as reel's, trained for a fixed number of
steps on the same prepared data, timed the same way.

usage: torch_classifiers.py --data DIR [--cell lstm|gru|cnn] [--hidden 500] [--embed 300] [--vocab 8000]
                     [--window 100] [--batch 200] [--steps 30] [--warmup 5] [--lr 1e-3]
                     [--threads N | --ddp N] [--seed 42] [--packed]

Model: embedding -> one unidirectional LSTM/GRU layer -> max over each review's valid steps -> linear ->
one logit; BCE-with-logits loss (mean over the global batch); Adam. Batches follow reel's rules: each
review longer than the window is cut to a random run of `window` tokens, ids >= vocab map to <unk> (1).
The recurrent layer runs over the padded (T, B) batch; with one forward direction padding comes after
every valid step, so it cannot change a valid output, and the pooling masks it out: the function is
exactly reel's. --packed runs it on a PackedSequence instead (pack_padded_sequence, enforce_sorted=False),
PyTorch's own way to skip the padding of uneven batches (bench/short.sh).
--cell cnn: Kim's CNN as reel's [model] type = cnn: nn.Conv1d of widths 3, 4 and 5 with --hidden filters
each over the padded (B, E, T) embeddings, ReLU, max over each review's valid positions (windows inside
the review; a review shorter than a width is one window padded with zeros, as in reel), the widths'
maxima side by side -> linear -> one logit.

--threads N: one process with N intra-op threads (OpenMP and OpenBLAS). --ddp N: DistributedDataParallel
over N processes of one thread each (gloo, 127.0.0.1 only); each takes a contiguous share of the global
batch, and DDP averages the gradients, so the step is the same as with one process.

Prints one line:  RESULT s_per_step=... reviews_per_s=... tokens_per_s=... window_mean=... rss_kb=A[,B...]
s_per_step: mean wall time of the timed steps (warm-up steps excluded) on rank 0, each step counted from
building its batch to the end of the optimizer update (what reel's reviews/s covers). tokens_per_s: the
window tokens the timed steps actually processed (sum of min(length, window) over their reviews, counted
exactly) divided by the timed seconds. rss_kb: each process's peak resident memory (getrusage ru_maxrss),
which includes the PyTorch runtime itself.
"""
import argparse
import os
import sys


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="a directory written by `reel prep` (train.tok)")
    p.add_argument("--cell", choices=("lstm", "gru", "cnn"), default="lstm")
    p.add_argument("--hidden", type=int, default=500)
    p.add_argument("--embed", type=int, default=300)
    p.add_argument("--vocab", type=int, default=8000)
    p.add_argument("--window", type=int, default=100)
    p.add_argument("--batch", type=int, default=200)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--packed", action="store_true", help="run the recurrent layer on a PackedSequence")
    layout = p.add_mutually_exclusive_group()
    layout.add_argument("--threads", type=int, default=1)
    layout.add_argument("--ddp", type=int, default=0, metavar="N")
    args = p.parse_args()
    if args.steps < 1 or args.warmup < 0 or args.batch < 1:
        p.error("--steps must be >= 1, --warmup >= 0, --batch >= 1")
    if args.ddp and args.batch < args.ddp:
        p.error("--batch must be at least the number of --ddp processes")
    return args


ARGS = parse_args()
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_common  # noqa: E402

# OpenBLAS matters: Debian's torch does its matrix products through libblas.
torch_common.set_threads(1 if ARGS.ddp else ARGS.threads)

import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

UNK = 1  # reel's reserved id for out-of-vocabulary tokens


class Batches:
    """Global batch k = positions [kB, (k+1)B) of a seeded shuffle, as in reel (a second pass reshuffles)."""

    def __init__(self, path, args):
        self.starts, labels, self.ids = torch_common.read_tokfile(path, "torch_classifiers.py")
        self.labels = labels if labels is not None else np.zeros(len(self.starts) - 1, np.int32)
        self.args = args
        self.rng = np.random.default_rng(args.seed)
        self.order = np.empty(0, dtype=np.int64)
        lengths = np.diff(self.starts)
        self.window_mean = float(np.minimum(lengths, args.window).mean())

    def next_global(self):
        if len(self.order) < self.args.batch:
            self.order = np.concatenate([self.order, self.rng.permutation(len(self.labels))])
        docs, self.order = self.order[:self.args.batch], self.order[self.args.batch:]
        # Window starts are drawn for the whole global batch so every process sees the same batch.
        lengths = self.starts[docs + 1] - self.starts[docs]
        offsets = np.where(lengths > self.args.window,
                           self.rng.integers(0, np.maximum(lengths - self.args.window, 0) + 1), 0)
        return docs, offsets, np.minimum(lengths, self.args.window)

    def tensors(self, docs, offsets, lengths):
        """ids (T, B) int64 padded with 0, lengths (B), labels (B) float32."""
        T = max(int(lengths.max()), 1)
        ids = np.zeros((T, len(docs)), dtype=np.int64)
        for b, (doc, offset, length) in enumerate(zip(docs, offsets, lengths)):
            start = self.starts[doc] + offset
            ids[:length, b] = self.ids[start:start + length]
        ids[ids >= self.args.vocab] = UNK
        return (torch.from_numpy(ids), torch.from_numpy(lengths.astype(np.int64)),
                torch.from_numpy((self.labels[docs] > 0).astype(np.float32)))


class ConvClassifier(nn.Module):
    WIDTHS = (3, 4, 5)

    def __init__(self, args):
        super().__init__()
        self.embedding = nn.Embedding(args.vocab, args.embed)
        self.convs = nn.ModuleList(nn.Conv1d(args.embed, args.hidden, w) for w in self.WIDTHS)
        self.output = nn.Linear(len(self.WIDTHS) * args.hidden, 1)

    def forward(self, ids, lengths):
        x = self.embedding(ids.t()).transpose(1, 2)  # (B, E, T)
        short = max(self.WIDTHS) - x.shape[2]
        if short > 0:
            x = nn.functional.pad(x, (0, short))
        # zeros past each review's end: only a review shorter than a width reads them (reel's zero padding)
        beyond = torch.arange(x.shape[2])[None, :] >= lengths[:, None]
        x = x.masked_fill(beyond[:, None, :], 0.0)
        pooled = []
        for w, conv in zip(self.WIDTHS, self.convs):
            y = torch.relu(conv(x))  # (B, F, T - w + 1)
            # the windows inside the review; a review shorter than w keeps its first window
            valid = torch.arange(y.shape[2])[None, :] <= (lengths - w).clamp(min=0)[:, None]
            pooled.append(y.masked_fill(~valid[:, None, :], float("-inf")).max(dim=2).values)
        return self.output(torch.cat(pooled, dim=1)).squeeze(1)


class Classifier(nn.Module):
    def __init__(self, args):
        super().__init__()
        self.embedding = nn.Embedding(args.vocab, args.embed)
        self.rnn = (nn.LSTM if args.cell == "lstm" else nn.GRU)(args.embed, args.hidden)
        self.output = nn.Linear(args.hidden, 1)
        self.packed = args.packed

    def forward(self, ids, lengths):
        if self.packed:  # an empty review is packed as one step, which the mask below then hides
            packed = nn.utils.rnn.pack_padded_sequence(self.embedding(ids), lengths.clamp(min=1), enforce_sorted=False)
            out, _ = nn.utils.rnn.pad_packed_sequence(self.rnn(packed)[0], total_length=ids.shape[0])
        else:
            out, _ = self.rnn(self.embedding(ids))  # (T, B, H)
        valid = (torch.arange(ids.shape[0])[:, None] < lengths[None, :])[:, :, None]
        pooled = out.masked_fill(~valid, float("-inf")).max(dim=0).values
        # An empty review pools to zeros, as in reel, instead of -inf.
        pooled = pooled.masked_fill((lengths == 0)[:, None], 0.0)
        return self.output(pooled).squeeze(1)


def train(args, rank=0, world=1):
    """Runs warm-up + timed steps; returns (timed seconds per step list, timed tokens, window mean)."""
    torch.manual_seed(args.seed)  # same initial parameters on every process (DDP also broadcasts them)
    batches = Batches(os.path.join(args.data, "train.tok"), args)
    model = ConvClassifier(args) if args.cell == "cnn" else Classifier(args)
    if world > 1:
        model = nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = nn.BCEWithLogitsLoss(reduction="mean")
    seconds, tokens = [], 0
    for step in range(args.warmup + args.steps):
        start = time.perf_counter()
        docs, offsets, lengths = batches.next_global()
        share = slice(rank * len(docs) // world, (rank + 1) * len(docs) // world)
        ids, lens, labels = batches.tensors(docs[share], offsets[share], lengths[share])
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(ids, lens), labels)
        loss.backward()  # under DDP this also averages the gradients over the processes
        optimizer.step()
        if step >= args.warmup:
            seconds.append(time.perf_counter() - start)
            tokens += int(lengths.sum())  # the whole global batch's window tokens
    return seconds, tokens, batches.window_mean


def main():
    args = ARGS
    (seconds, tokens, window_mean), rss = torch_common.run(train, args, args.ddp, args.threads)
    total = sum(seconds)
    print(f"RESULT s_per_step={total / len(seconds):.6f} reviews_per_s={args.batch * len(seconds) / total:.3f} "
          f"tokens_per_s={tokens / total:.1f} window_mean={window_mean:.3f} rss_kb={','.join(map(str, rss))}")


if __name__ == "__main__":
    main()
