#!/usr/bin/env python3
"""PyTorch reference for bench/gpt.sh: the GPT-style decoder of reel's [model] type = gpt (src/models/gpt.c)
written the way a PyTorch 1.13 user writes it, trained for a fixed number of steps on random token ids.

usage: torch_gpt.py [--layers 6] [--heads 8] [--width 512] [--context 256] [--vocab 16384] [--batch 8]
                    [--steps 4] [--warmup 2] [--lr 3e-4] [--bf16] [--threads N | --ddp N] [--seed 42]
       torch_gpt.py --check CHECKPOINT.h5 TOKFILE [--layers ... --vocab ...: the checkpoint's shape]

Model: token embedding (vocab, width) + learned positions (context, width); `layers` pre-LayerNorm blocks
    x = x + proj(attention(ln1(x)));  x = x + fc2(gelu_tanh(fc1(ln2(x))))      fc1: width -> 4 width
with causal multi-head attention written out (q k^T / sqrt(width / heads), the upper triangle masked to
-inf, softmax, @ v: 1.13 has no fused attention); a final LayerNorm (eps 1e-5 everywhere); logits =
features . embedding^T (tied, no bias); cross-entropy on the next token; AdamW (betas 0.9, 0.95, weight
decay 0.1 on matrices and embeddings only), gradient norm clipped to 1. GPT-2's initialisation. No dropout.
The tensors and their shapes are reel's: `parameters` below counts the same numbers.

--batch: sequences per process. --bf16: forward and loss under torch.autocast("cpu", bfloat16) (the
matrix products in bf16, parameters and optimizer fp32), against reel's [train] precision = bf16. Not quite
the same arithmetic: reel rounds only the products' operands, while 1.13's CPU autocast leaves the results of
the products in bf16, so the softmax, LayerNorm and GELU after them run on bf16 tensors (the loss is fp32).
--threads N: one process with N intra-op threads. --ddp N: DistributedDataParallel over N processes of
one thread each (gloo, 127.0.0.1 only), each with its own batch of `batch` sequences.

--check: no training; loads the parameters of a reel checkpoint of this shape into the model (every tensor
of the checkpoint's model/ group to exactly one parameter, the shapes equal) and prints the perplexity of
the documents of TOKFILE as `reel eval` scores them: each read whole (<eod> d_1 ... d_n <eod>, every
document shorter than the context), the mean cross-entropy of all their predictions, in float32. Prints
CHECK perplexity=... predictions=...  bench/gpt.sh compares it with `reel eval` of the same checkpoint:
the proof that both sides time the same function.

Prints one line:  RESULT s_per_step=... tokens_per_s=... rss_kb=A[,B...] parameters=N positions=P
s_per_step: mean wall time of the timed steps on rank 0, from drawing the batch to the end of the optimizer
update. tokens_per_s: predictions of the timed global batches (batch x processes x context per step) /
their seconds. parameters: all the model's numbers; positions: those of the position table among them.
"""
import argparse
import math
import os
import sys


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--context", type=int, default=256)
    p.add_argument("--vocab", type=int, default=16384)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--check", nargs=2, metavar=("CHECKPOINT", "TOKFILE"))
    layout = p.add_mutually_exclusive_group()
    layout.add_argument("--threads", type=int, default=1)
    layout.add_argument("--ddp", type=int, default=0, metavar="N")
    args = p.parse_args()
    if args.steps < 1 or args.warmup < 0 or args.batch < 1:
        p.error("--steps must be >= 1, --warmup >= 0, --batch >= 1")
    if args.width % args.heads:
        p.error(f"--heads {args.heads} does not divide --width {args.width}")
    return args


ARGS = parse_args()
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_common  # noqa: E402

torch_common.set_threads(1 if ARGS.ddp else ARGS.threads)

import time  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402


class Attention(nn.Module):
    def __init__(self, width, heads, context):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)   # q | k | v column blocks, as reel's attn_qkv
        self.proj = nn.Linear(width, width)
        # True above the diagonal: the positions a query may not see. A plain attribute, not a buffer:
        # DDP would broadcast a buffer, and gloo cannot broadcast bool tensors
        self.future = torch.triu(torch.ones(context, context, dtype=torch.bool), diagonal=1)

    def forward(self, x):
        B, T, C = x.shape
        D = C // self.heads
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.heads, D).transpose(1, 2) for t in (q, k, v))  # (B, H, T, D)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(D))
        att = att.masked_fill(self.future[:T, :T], float("-inf"))
        att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        return self.proj(y)


class Block(nn.Module):
    def __init__(self, width, heads, context):
        super().__init__()
        self.ln1 = nn.LayerNorm(width, eps=1e-5)
        self.attn = Attention(width, heads, context)
        self.ln2 = nn.LayerNorm(width, eps=1e-5)
        self.fc = nn.Linear(width, 4 * width)
        self.fc_proj = nn.Linear(4 * width, width)
        self.gelu = nn.GELU(approximate="tanh")

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.fc_proj(self.gelu(self.fc(self.ln2(x))))


class GPT(nn.Module):
    def __init__(self, args):
        super().__init__()
        self.token = nn.Embedding(args.vocab, args.width)
        self.position = nn.Embedding(args.context, args.width)
        self.blocks = nn.ModuleList(Block(args.width, args.heads, args.context) for _ in range(args.layers))
        self.final_ln = nn.LayerNorm(args.width, eps=1e-5)
        # GPT-2's initialisation, as reel's gpt_init: N(0, 0.02), the two residual projections scaled down
        residual_std = 0.02 / math.sqrt(2 * args.layers)
        for name, p in self.named_parameters():
            if p.dim() == 1:
                continue  # LayerNorm gains 1, biases 0: PyTorch's defaults
            nn.init.normal_(p, 0.0, residual_std if name.endswith(("attn.proj.weight", "fc_proj.weight")) else 0.02)

    def forward(self, ids):
        T = ids.shape[1]
        x = self.token(ids) + self.position(torch.arange(T, device=ids.device))
        for block in self.blocks:
            x = block(x)
        return self.final_ln(x) @ self.token.weight.t()  # tied output layer, no bias


def train(args, rank=0, world=1):
    torch.manual_seed(args.seed)  # DDP copies rank 0's parameters anyway
    model = GPT(args)
    parameters = sum(p.numel() for p in model.parameters())
    positions = model.position.weight.numel()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    if world > 1:
        model = nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    generator = torch.Generator().manual_seed(args.seed * 1000 + rank)
    seconds, tokens = [], 0
    for step in range(args.warmup + args.steps):
        start = time.perf_counter()
        # context + 1 random ids per sequence: inputs and their next tokens
        ids = torch.randint(0, args.vocab, (args.batch, args.context + 1), generator=generator)
        inputs, targets = ids[:, :-1], ids[:, 1:]
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            logits = model(inputs)
            loss = F.cross_entropy(logits.reshape(-1, args.vocab), targets.reshape(-1))
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step >= args.warmup:
            seconds.append(time.perf_counter() - start)
            tokens += args.batch * args.context * world
    if not math.isfinite(loss.item()):
        sys.exit(f"torch_gpt.py: the loss is {loss.item()} after {args.warmup + args.steps} steps")
    return seconds, tokens, parameters, positions


# reel's tensor names (src/models/gpt.c) -> this model's parameter names
def reel_name(name):
    for mine, theirs in (("token.", "embedding/"), ("position.", "position/"), ("final_ln.", "final_ln/"),
                         ("attn.qkv.", "attn_qkv/"), ("attn.proj.", "attn_proj/"), ("fc_proj.", "mlp_proj/"),
                         ("fc.", "mlp_fc/"), ("ln1.", "ln1/"), ("ln2.", "ln2/")):
        name = name.replace(mine, theirs)
    return "model/" + name.replace("blocks.", "block").replace(".", "/")


def check(args):
    import h5py
    import numpy as np
    model = GPT(args)
    with h5py.File(args.check[0], "r") as f:
        stored = set()
        f["model"].visititems(lambda n, o: stored.add("model/" + n) if isinstance(o, h5py.Dataset) else None)
        with torch.no_grad():
            for name, p in model.named_parameters():
                key = reel_name(name)
                if key not in stored:
                    sys.exit(f"torch_gpt.py: {args.check[0]} has no tensor {key} for the parameter {name}")
                value = torch.from_numpy(np.asarray(f[key][()], dtype=np.float32))
                if value.shape != p.shape:
                    sys.exit(f"torch_gpt.py: {args.check[0]}: {key} is {tuple(value.shape)}, {name} {tuple(p.shape)}")
                p.copy_(value)
                stored.discard(key)
        if stored:
            sys.exit(f"torch_gpt.py: {args.check[0]} has tensors this model lacks: {', '.join(sorted(stored))}")
    starts, _, ids = torch_common.read_tokfile(args.check[1], "torch_gpt.py")
    total, count = 0.0, 0
    with torch.no_grad():
        for d in range(len(starts) - 1):
            doc = ids[starts[d]:starts[d + 1]].astype(np.int64)
            if len(doc) + 1 > args.context:
                sys.exit(f"torch_gpt.py: {args.check[1]}: document {d} has {len(doc)} tokens, the context {args.context}")
            seq = torch.from_numpy(np.concatenate(([2], doc, [2])))  # <eod> = 2
            logits = model(seq[None, :-1])
            total += F.cross_entropy(logits[0], seq[1:], reduction="sum").item()
            count += len(doc) + 1
    print(f"CHECK perplexity={math.exp(total / count):.6f} predictions={count}")


def main():
    args = ARGS
    if args.check:
        check(args)
        return
    (seconds, tokens, parameters, positions), rss = torch_common.run(train, args, args.ddp, args.threads)
    total = sum(seconds)
    print(f"RESULT s_per_step={total / len(seconds):.6f} tokens_per_s={tokens / total:.1f} "
          f"rss_kb={','.join(map(str, rss))} parameters={parameters} positions={positions}")


if __name__ == "__main__":
    main()
