#!/usr/bin/env python3
"""PyTorch reference for bench/classifiers.sh: the same classifier as reel's, trained for a fixed number of
steps on the same prepared data, timed the same way.

usage: torch_classifiers.py --data DIR [--cell lstm|gru|cnn|transformer] [--hidden 500] [--embed 300]
                     [--vocab 8000] [--window 100] [--batch 200] [--steps 30] [--warmup 5] [--lr 1e-3]
                     [--layers 4] [--heads 4] [--attention layer|matmul] [--bf16]
                     [--threads N | --ddp N] [--seed 42] [--packed]
       torch_classifiers.py --cell cnn|transformer [the model's options] --check CHECKPOINT.h5 TOKFILE
                     [--check-docs 100] [--check-tokens 64]

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
--cell transformer: reel's [model] type = transformer as an encoder (causal = false, pooling = mean,
learned positions, no dropout), width --hidden, context --window: token + position embeddings, --layers
pre-LayerNorm blocks  x = x + proj(attention(ln1(x)));  x = x + fc2(gelu_tanh(fc1(ln2(x))))  (fc1: width
-> 4 width; one fused q | k | v projection; scale 1/sqrt(width / heads); LayerNorm eps 1e-5), every real
token of the padded (B, T) batch attending to every real token of its review (a key padding mask), a
final LayerNorm, the mean over the review's tokens -> linear -> one logit. --attention layer (default):
each block is nn.TransformerEncoderLayer(norm_first=True) with the tanh GELU, its nn.MultiheadAttention
given the padding as key_padding_mask; --attention matmul: the attention written out (q k^T, masked_fill,
softmax, @ v). The same function both ways (1.13 has no fused attention on the CPU); layer was the faster
in a short trial. --embed is not used (the embeddings are the width).

--bf16: forward and loss under torch.autocast("cpu", dtype=torch.bfloat16): the matrix products and
convolutions in bf16, parameters and Adam in fp32 (1.13's CPU autocast also leaves the products' results in
bf16, so what follows them runs on bf16 tensors; reel rounds only the products' operands).

--threads N: one process with N intra-op threads (OpenMP and OpenBLAS). --ddp N: DistributedDataParallel
over N processes of one thread each (gloo, 127.0.0.1 only); each takes a contiguous share of the global
batch, and DDP averages the gradients, so the step is the same as with one process.

--check: no training. Loads the parameters of a reel checkpoint of this model (every tensor of its model/
group into exactly one parameter, the shapes equal; the CNN's filter banks rearranged to Conv1d's) and
prints the mean BCE loss, in float32, of the first --check-docs documents of TOKFILE (a reel token file
with labels), each cut to its first --check-tokens tokens:  CHECK loss=... documents=... parameters=...
bench/classifiers.sh compares it with `reel eval` of the same checkpoint on the same documents.

Prints one line:  RESULT s_per_step=... reviews_per_s=... tokens_per_s=... window_mean=... rss_kb=A[,B...]
parameters=N
s_per_step: mean wall time of the timed steps (warm-up steps excluded) on rank 0, each step counted from
building its batch to the end of the optimizer update (what reel's reviews/s covers). tokens_per_s: the
window tokens the timed steps actually processed (sum of min(length, window) over their reviews, counted
exactly) divided by the timed seconds. rss_kb: each process's peak resident memory (getrusage ru_maxrss),
which includes the PyTorch runtime itself. parameters: the model's numbers (bench/classifiers.sh checks them).
"""
import argparse
import math
import os
import sys


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="a directory written by `reel prep` (train.tok)")
    p.add_argument("--cell", choices=("lstm", "gru", "cnn", "transformer"), default="lstm")
    p.add_argument("--hidden", type=int, default=500, help="LSTM/GRU units, CNN filters per width, Transformer width")
    p.add_argument("--layers", type=int, default=4, help="Transformer blocks")
    p.add_argument("--heads", type=int, default=4, help="Transformer attention heads")
    p.add_argument("--attention", choices=("matmul", "layer"), default="layer",
                   help="Transformer blocks: attention written out, or nn.TransformerEncoderLayer")
    p.add_argument("--embed", type=int, default=300)
    p.add_argument("--vocab", type=int, default=8000)
    p.add_argument("--window", type=int, default=100)
    p.add_argument("--batch", type=int, default=200)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--packed", action="store_true", help="run the recurrent layer on a PackedSequence")
    p.add_argument("--bf16", action="store_true", help='forward and loss under torch.autocast("cpu", bfloat16)')
    p.add_argument("--check", nargs=2, metavar=("CHECKPOINT", "TOKFILE"),
                   help="no training: the mean loss of a reel checkpoint's parameters on TOKFILE's documents")
    p.add_argument("--check-docs", type=int, default=100, help="--check: the first N documents")
    p.add_argument("--check-tokens", type=int, default=64, help="--check: each document's first N tokens")
    layout = p.add_mutually_exclusive_group()
    layout.add_argument("--threads", type=int, default=1)
    layout.add_argument("--ddp", type=int, default=0, metavar="N")
    args = p.parse_args()
    if args.steps < 1 or args.warmup < 0 or args.batch < 1:
        p.error("--steps must be >= 1, --warmup >= 0, --batch >= 1")
    if args.ddp and args.batch < args.ddp:
        p.error("--batch must be at least the number of --ddp processes")
    if args.cell == "transformer" and args.hidden % args.heads:
        p.error(f"--heads {args.heads} does not divide the width --hidden {args.hidden}")
    if args.check and args.check_tokens > args.window:
        p.error("--check-tokens may not exceed --window (the Transformer's context)")
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

    def reel_names(self, attention):
        """reel's tensor name -> (parameter, reel's array to this parameter's layout)."""
        names = {"embedding/weight": (self.embedding.weight, None), "output/weight": (self.output.weight, None),
                 "output/bias": (self.output.bias, None)}
        for w, conv in zip(self.WIDTHS, self.convs):
            # reel's filter bank (w F, E): block k of F rows reads a window's k-th token; Conv1d's is (F, E, w)
            names[f"conv{w}/weight"] = (conv.weight, lambda a, w=w: a.reshape(w, -1, a.shape[1]).transpose(1, 2, 0))
            names[f"conv{w}/bias"] = (conv.bias, None)
        return names


def gelu_tanh(x):
    return nn.functional.gelu(x, approximate="tanh")


class MatmulBlock(nn.Module):
    """One pre-LayerNorm block with the attention written out (1.13 has no fused attention on the CPU):
    x + proj(attention(ln1(x))), then + mlp_proj(gelu_tanh(mlp_fc(ln2(x))))."""

    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(width, eps=1e-5)
        self.attn_qkv = nn.Linear(width, 3 * width)  # q | k | v column blocks, head h at h D in each, as reel's
        self.attn_proj = nn.Linear(width, width)
        self.ln2 = nn.LayerNorm(width, eps=1e-5)
        self.mlp_fc = nn.Linear(width, 4 * width)
        self.mlp_proj = nn.Linear(4 * width, width)

    def forward(self, x, padding):
        B, T, C = x.shape
        D = C // self.heads
        q, k, v = self.attn_qkv(self.ln1(x)).split(C, dim=2)
        q, k, v = (a.view(B, T, self.heads, D).transpose(1, 2) for a in (q, k, v))  # (B, H, T, D)
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(D))
        weights = torch.softmax(scores.masked_fill(padding[:, None, None, :], float("-inf")), dim=-1)
        x = x + self.attn_proj((weights @ v).transpose(1, 2).reshape(B, T, C))
        return x + self.mlp_proj(gelu_tanh(self.mlp_fc(self.ln2(x))))


class LayerBlock(nn.TransformerEncoderLayer):
    """The same block as PyTorch's own layer: nn.TransformerEncoderLayer(norm_first=True), its attention
    nn.MultiheadAttention with a key padding mask (in_proj_weight: q | k | v blocks, as reel's attn_qkv)."""

    def __init__(self, width, heads):
        super().__init__(width, heads, dim_feedforward=4 * width, dropout=0.0, activation=gelu_tanh,
                         layer_norm_eps=1e-5, batch_first=True, norm_first=True)

    def forward(self, x, padding):
        return super().forward(x, src_key_padding_mask=padding)


# reel's names in a block (src/models/xf_stack.c) -> each block kind's module names
BLOCK_NAMES = {
    "matmul": {"ln1": "ln1", "attn_qkv": "attn_qkv", "attn_proj": "attn_proj", "ln2": "ln2", "mlp_fc": "mlp_fc",
               "mlp_proj": "mlp_proj"},
    "layer": {"ln1": "norm1", "attn_qkv": "self_attn.in_proj_", "attn_proj": "self_attn.out_proj", "ln2": "norm2",
              "mlp_fc": "linear1", "mlp_proj": "linear2"},
}


class TransformerClassifier(nn.Module):
    """reel's [model] type = transformer with causal = false, pooling = mean, learned positions, one window
    (context = the training window): token + position embeddings, pre-LN blocks attending to every real
    token of the review (never to padding), a final LayerNorm, the mean over the review's tokens, a linear
    layer to one logit."""

    def __init__(self, args):
        super().__init__()
        self.embedding = nn.Embedding(args.vocab, args.hidden)
        self.position = nn.Embedding(args.window, args.hidden)
        block = MatmulBlock if args.attention == "matmul" else LayerBlock
        self.blocks = nn.ModuleList(block(args.hidden, args.heads) for _ in range(args.layers))
        self.final_ln = nn.LayerNorm(args.hidden, eps=1e-5)
        self.output = nn.Linear(args.hidden, 1)

    def forward(self, ids, lengths):
        ids = ids.t()  # (B, T)
        T = ids.shape[1]
        x = self.embedding(ids) + self.position(torch.arange(T))[None]
        valid = torch.arange(T)[None, :] < lengths[:, None]  # (B, T)
        # An empty review (none in IMDb) may attend to its first padding position, so that its softmax is
        # not 0/0; the pooling below leaves that position out, so its features are 0, as in reel.
        padding = ~valid
        padding[:, 0] = False
        for block in self.blocks:
            x = block(x, padding)
        x = self.final_ln(x)
        pooled = x.masked_fill(~valid[:, :, None], 0.0).sum(dim=1) / lengths.clamp(min=1)[:, None].to(x.dtype)
        return self.output(pooled).squeeze(1)

    def reel_names(self, attention):
        """reel's tensor name -> (parameter, reel's shape to this parameter's)."""
        names = {"embedding/weight": self.embedding.weight, "position/weight": self.position.weight,
                 "final_ln/weight": self.final_ln.weight, "final_ln/bias": self.final_ln.bias,
                 "output/weight": self.output.weight, "output/bias": self.output.bias}
        params = dict(self.named_parameters())
        for index in range(len(self.blocks)):
            for reel, mine in BLOCK_NAMES[attention].items():
                for kind in ("weight", "bias"):
                    joined = mine + kind if mine.endswith("_") else f"{mine}.{kind}"
                    names[f"block{index}/{reel}/{kind}"] = params[f"blocks.{index}.{joined}"]
        return {k: (v, None) for k, v in names.items()}


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
    model = make_model(args)
    parameters = sum(p.numel() for p in model.parameters())
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
        # bf16: the matrix products and convolutions in bfloat16, parameters and Adam in fp32
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            loss = loss_fn(model(ids, lens).float(), labels)
        loss.backward()  # under DDP this also averages the gradients over the processes
        optimizer.step()
        if step >= args.warmup:
            seconds.append(time.perf_counter() - start)
            tokens += int(lengths.sum())  # the whole global batch's window tokens
    if not math.isfinite(loss.item()):
        sys.exit(f"torch_classifiers.py: the loss is {loss.item()} after {args.warmup + args.steps} steps")
    return seconds, tokens, batches.window_mean, parameters


def make_model(args):
    if args.cell == "cnn":
        return ConvClassifier(args)
    if args.cell == "transformer":
        return TransformerClassifier(args)
    return Classifier(args)


def check(args):
    """Loads a reel checkpoint of this model (every tensor of its model/ group into exactly one parameter)
    and prints the mean BCE loss of the first --check-docs documents of TOKFILE, each cut to its first
    --check-tokens tokens, as `reel eval --docs N --lengths L` computes it; float32, one pass."""
    import h5py
    if args.cell not in ("cnn", "transformer"):
        sys.exit("torch_classifiers.py: --check is for --cell cnn and transformer")
    model = make_model(args)
    with h5py.File(args.check[0], "r") as f:
        stored = set()
        f["model"].visititems(lambda n, o: stored.add(n) if isinstance(o, h5py.Dataset) else None)
        with torch.no_grad():
            for key, (p, convert) in model.reel_names(args.attention).items():
                if key not in stored:
                    sys.exit(f"torch_classifiers.py: {args.check[0]} has no tensor model/{key}")
                value = np.asarray(f["model/" + key][()], dtype=np.float32)
                value = torch.from_numpy(np.ascontiguousarray(convert(value) if convert else value))
                if value.shape != p.shape:
                    sys.exit(f"torch_classifiers.py: {args.check[0]}: model/{key} is {tuple(value.shape)} here, "
                             f"the parameter {tuple(p.shape)}")
                p.copy_(value)
                stored.discard(key)
        if stored:
            sys.exit(f"torch_classifiers.py: {args.check[0]} has tensors this model lacks: {', '.join(sorted(stored))}")
        if len(model.reel_names(args.attention)) != len(list(model.parameters())):
            sys.exit("torch_classifiers.py: some parameters of this model have no reel tensor")
    starts, labels, ids = torch_common.read_tokfile(args.check[1], "torch_classifiers.py")
    n = min(args.check_docs, len(starts) - 1)
    lengths = np.minimum(starts[1:n + 1] - starts[:n], args.check_tokens)
    batch = np.zeros((max(int(lengths.max()), 1), n), dtype=np.int64)
    for d in range(n):
        batch[:lengths[d], d] = ids[starts[d]:starts[d] + lengths[d]]
    batch[batch >= args.vocab] = UNK
    target = torch.from_numpy((labels[:n] > 0).astype(np.float32))
    with torch.no_grad():
        logits = model(torch.from_numpy(batch), torch.from_numpy(lengths.astype(np.int64)))
        loss = nn.BCEWithLogitsLoss(reduction="mean")(logits, target).item()
    print(f"CHECK loss={loss:.6f} documents={n} parameters={sum(p.numel() for p in model.parameters())}")


def main():
    args = ARGS
    if args.check:
        check(args)
        return
    (seconds, tokens, window_mean, parameters), rss = torch_common.run(train, args, args.ddp, args.threads)
    total = sum(seconds)
    print(f"RESULT s_per_step={total / len(seconds):.6f} reviews_per_s={args.batch * len(seconds) / total:.3f} "
          f"tokens_per_s={tokens / total:.1f} window_mean={window_mean:.3f} rss_kb={','.join(map(str, rss))} "
          f"parameters={parameters}")


if __name__ == "__main__":
    main()
