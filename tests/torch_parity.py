#!/usr/bin/env python3
"""Checks reel's classifiers (bag of words, recurrent, CNN, Transformer) and language models (recurrent and GPT) against independent PyTorch models.

usage: torch_parity.py [--tolerance 1e-4] [--floor 1e-2] [--require-ragged] [--expect-mismatch CONFIG DUMP]...
                       CONFIG.ini DUMP.h5 [CONFIG.ini DUMP.h5]...

DUMP.h5 is written by tests/dump_batch from CONFIG.ini: one batch, reel's initial parameters, its logits,
mean loss (BCE on one logit, softmax cross-entropy on K) and every parameter gradient. This script
rebuilds the model CONFIG.ini describes with PyTorch's own layers (nn.Embedding, nn.LSTM / nn.GRU /
nn.RNN over a packed sequence, masked pooling, nn.Linear; for the bag of words nn.EmbeddingBag over each
document's words and hashed n-grams, nn.BatchNorm1d, with Naive-Bayes ratios counted from the training
split here; for a GPT nn.LayerNorm, nn.Linear, the tanh
GELU and attention written out with a causal and padding mask, and rotary positions written out from
their definition, GPT-NeoX's rotate-half pairing; for the Transformer classifier the same blocks over each
document's windows, pooled over the whole document), loads reel's parameters into it, runs the
same batch forward and backward in float32, and compares logits, loss and every gradient element by
element (and the bag of words' state after the step: its ratios, batch norm's running statistics): each
must satisfy |reel - torch| <= tolerance (|torch| + floor max|torch|), max over its tensor.
The floor (a fraction of the tensor's largest magnitude) is there for elements near zero, whose relative
difference is all rounding noise (sums that cancel); every other element is held to the tolerance
relative to itself, so an error confined to the small elements of a tensor is seen too. The difference
reported for a tensor is the largest of |reel - torch| / (|torch| + floor max|torch|) over its elements.

Each pair CONFIG DUMP must match within the tolerance. Each --expect-mismatch pair is a negative control
(e.g. a configuration that describes another model than the one dumped) and must be flagged. A self-test
also perturbs reel's gradients in memory and checks the comparison reports them. Exit status 0 when all
of that holds, 1 otherwise, 2 on bad input.
"""
import argparse
import configparser
import math
import os
import re
import sys

import h5py
import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

# reel's token files are read by the benchmarks' PyTorch side too: one reader for both
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))
import torch_common  # noqa: E402

# Defaults of the [model] keys this script reads, as `reel train --help-config` lists them.
MODEL_DEFAULTS = {"num_layers": "1", "bidirectional": "false", "pooling": "max", "head_hidden": "0",
                  "dropout": "0.5", "rnn_dropout": "0", "embed_dropout": "0", "rnn_batch_norm": "false"}
CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
# The GPT's own defaults (src/models/gpt.c's keys).
GPT_DEFAULTS = {"num_layers": "6", "num_heads": "8", "d_ff": "0", "max_context": "256", "tie_weights": "true",
                "dropout": "0", "attention_dropout": "0", "positions": "learned", "rotary_base": "10000"}
# The bag of words' (src/models/bow.c's keys).
BOW_DEFAULTS = {"hidden_dim": "256", "dropout": "0.5", "word_dropout": "0", "batch_norm": "true", "ngrams": "1",
                "ngram_buckets": "0", "nb_scaling": "false", "binary": "false"}
# reel's reserved token ids (include/reel/vocab.h)
PAD, UNK, EOD = 0, 1, 2
# The Transformer classifier's (src/models/transformer.c's keys).
TRANSFORMER_DEFAULTS = dict(GPT_DEFAULTS, causal="false", pooling="mean", head_dropout="0")
TRUE = ("true", "1", "yes", "on")


class Spec:
    """The architecture a reel configuration describes (only what the forward pass depends on)."""

    def __init__(self, path):
        parser = configparser.ConfigParser(inline_comment_prefixes=(";", "#"))
        with open(path) as handle:
            parser.read_file(handle)
        model = dict(MODEL_DEFAULTS)
        if parser.has_section("model"):
            model.update(parser["model"])
        self.type = model.get("type", "bow")
        # said in the report only: the twin is fp32 whatever reel multiplied in
        self.precision = parser.get("train", "precision", fallback="fp32")
        self.gpt = self.type == "gpt"
        self.cnn = self.type == "cnn"
        self.transformer = self.type == "transformer"
        self.lm = self.type in ("rnn_lm", "lm", "gpt")  # lm: the old name
        self.bow = self.type == "bow"
        if self.bow:  # its own keys and defaults (src/models/bow.c)
            model = dict(BOW_DEFAULTS)
            model.update(parser["model"])
            for key in ("dropout", "word_dropout"):
                if float(model[key]) != 0.0:
                    raise ValueError(f"{path}: [model] {key} must be 0 for the parity check")
            self.hidden_dim, self.ngrams = int(model["hidden_dim"]), int(model["ngrams"])
            self.buckets = int(model["ngram_buckets"])
            self.batch_norm = model["batch_norm"].lower() in TRUE
            self.nb = model["nb_scaling"].lower() in TRUE
            self.binary = model["binary"].lower() in TRUE
            self.data_dir = parser.get("data", "dir")
            self.cell, self.num_layers, self.bidirectional, self.pooling, self.head_hidden = "bow", 0, False, "-", 0
            return
        if self.cnn:  # its own keys and defaults (src/models/cnn.c)
            model = {"widths": "3,4,5", "filters": "100", "dropout": "0.5"}
            model.update(parser["model"])
            if float(model["dropout"]) != 0.0:
                raise ValueError(f"{path}: [model] dropout must be 0 for the parity check")
            self.widths = [int(w) for w in model["widths"].split(",")]
            self.filters = int(model["filters"])
            self.cell, self.num_layers, self.bidirectional, self.pooling, self.head_hidden = "cnn", 0, False, "-", 0
            return
        if self.transformer:
            model = dict(TRANSFORMER_DEFAULTS)
            model.update(parser["model"])
            for key in ("dropout", "attention_dropout", "head_dropout"):
                if float(model[key]) != 0.0:
                    raise ValueError(f"{path}: [model] {key} must be 0 for the parity check")
            if model["positions"] not in ("learned", "rotary"):
                raise ValueError(f"{path}: [model] positions = {model['positions']}: learned or rotary")
            self.rotary = model["positions"] == "rotary"
            self.rotary_base = float(model["rotary_base"])
            self.cell = "transformer"
            self.num_layers, self.num_heads = int(model["num_layers"]), int(model["num_heads"])
            self.d_ff, self.max_context = int(model["d_ff"]), int(model["max_context"])
            self.causal = model["causal"].lower() in TRUE
            self.pooling = model["pooling"]
            self.bidirectional, self.head_hidden = not self.causal, 0
            return
        if self.gpt:
            model = dict(GPT_DEFAULTS)
            model.update(parser["model"])
            for key in ("dropout", "attention_dropout"):
                if float(model[key]) != 0.0:
                    raise ValueError(f"{path}: [model] {key} must be 0 for the parity check")
            if model["positions"] not in ("learned", "rotary"):
                raise ValueError(f"{path}: [model] positions = {model['positions']}: learned or rotary")
            self.rotary = model["positions"] == "rotary"
            self.rotary_base = float(model["rotary_base"])
            self.cell = "gpt"
            self.num_layers, self.num_heads = int(model["num_layers"]), int(model["num_heads"])
            self.d_ff, self.max_context = int(model["d_ff"]), int(model["max_context"])
            self.tied = model["tie_weights"].lower() in TRUE
            self.bidirectional, self.pooling, self.head_hidden = False, "-", 0
            return
        if self.lm:  # the language model's own defaults, not the classifiers'
            model = dict(parser["model"])
            for key in ("rnn_dropout", "input_dropout", "word_dropout", "weight_dropout"):
                if float(model.get(key, "0.3" if key == "rnn_dropout" else "0")) != 0.0:
                    raise ValueError(f"{path}: [model] {key} must be 0 for the parity check")
            if model.get("rnn_batch_norm", "true").lower() in ("true", "1", "yes", "on"):
                raise ValueError(f"{path}: [model] rnn_batch_norm must be false for the parity check")
            self.cell = model.get("cell", "lstm")
            self.num_layers, self.bidirectional, self.pooling, self.head_hidden = 0, False, "-", 0
            return
        self.cell = self.type
        if self.cell not in CELLS:
            raise ValueError(f"{path}: [model] type = {self.cell}: only lstm, gru, rnn and lm have a PyTorch twin here")
        self.num_layers = int(model["num_layers"])
        self.bidirectional = model["bidirectional"].lower() in ("true", "1", "yes", "on")
        self.pooling = model["pooling"]
        self.head_hidden = int(model["head_hidden"])
        # Dropout masks and batch-norm statistics are reel's own; the twin has neither, so the
        # configuration must switch them off for the comparison to mean anything.
        for key in ("dropout", "rnn_dropout", "embed_dropout"):
            if float(model[key]) != 0.0:
                raise ValueError(f"{path}: [model] {key} must be 0 for the parity check")
        if model["rnn_batch_norm"].lower() in ("true", "1", "yes", "on"):
            raise ValueError(f"{path}: [model] rnn_batch_norm must be false for the parity check")

    def describe(self):
        if self.bow:
            grams = {1: "words", 2: "words and bigrams", 3: "words, bigrams and trigrams"}[self.ngrams]
            buckets = f" ({self.buckets} buckets)" if self.buckets else ""
            hidden = (f"hidden {self.hidden_dim}{' with batch norm' if self.batch_norm else ''}" if self.hidden_dim
                      else "linear")
            extras = "".join([", Naive-Bayes ratios" if self.nb else "", ", binary" if self.binary else ""])
            return f"bag of {grams}{buckets}, {hidden}{extras}"
        if self.cnn:
            return f"cnn, widths {','.join(map(str, self.widths))}, {self.filters} filters each"
        if self.transformer:
            ff = f", d_ff {self.d_ff}" if self.d_ff else ""
            positions = f", rotary positions (base {self.rotary_base:g})" if self.rotary else ""
            return (f"{self.num_layers}-layer {'causal' if self.causal else 'bidirectional'} transformer "
                    f"classifier, {self.num_heads} heads{ff}{positions}, windows of {self.max_context}, "
                    f"{self.pooling} pooling")
        if self.gpt:
            ff = f", d_ff {self.d_ff}" if self.d_ff else ""
            products = f", reel's products in {self.precision}" if self.precision != "fp32" else ""
            positions = f", rotary positions (base {self.rotary_base:g})" if self.rotary else ""
            return (f"{self.num_layers}-layer gpt, {self.num_heads} heads{ff}, "
                    f"{'tied' if self.tied else 'untied'}{positions}{products}")
        if self.lm:
            return f"{self.cell} language model"
        dirs = "bidirectional " if self.bidirectional else ""
        head = f", head {self.head_hidden}" if self.head_hidden else ""
        return f"{self.num_layers}-layer {dirs}{self.cell}, {self.pooling} pooling{head}"


class Twin(nn.Module):
    def __init__(self, spec, vocab, embed, hidden, outputs):
        super().__init__()
        self.spec = spec
        self.hidden = hidden
        extra = {"nonlinearity": "tanh"} if spec.cell == "rnn" else {}
        self.embedding = nn.Embedding(vocab, embed)
        self.rnn = CELLS[spec.cell](embed, hidden, num_layers=spec.num_layers, bidirectional=spec.bidirectional,
                                    **extra)
        width = hidden * (2 if spec.bidirectional else 1) * (3 if spec.pooling == "concat" else 1)
        self.head = nn.Linear(width, spec.head_hidden) if spec.head_hidden else None
        self.outputs = outputs
        self.output = nn.Linear(spec.head_hidden or width, outputs)

    def reel_names(self):
        """reel tensor name -> the parameter of this module that plays its part."""
        names = {"embedding/weight": self.embedding.weight, "output/weight": self.output.weight,
                 "output/bias": self.output.bias}
        if self.head is not None:
            names["head_hidden/weight"] = self.head.weight
            names["head_hidden/bias"] = self.head.bias
        reel_part = {"w_ih": "weight_ih", "w_hh": "weight_hh", "b_ih": "bias_ih", "b_hh": "bias_hh"}
        for layer in range(self.spec.num_layers):
            for direction in ("fwd", "bwd") if self.spec.bidirectional else ("fwd",):
                suffix = "_reverse" if direction == "bwd" else ""
                for ours, theirs in reel_part.items():
                    names[f"{self.spec.cell}_l{layer}_{direction}/{ours}"] = getattr(
                        self.rnn, f"{theirs}_l{layer}{suffix}")
        return names

    def forward(self, ids, lengths):
        B, T = ids.shape
        x = self.embedding(ids).transpose(0, 1)  # time-major (T, B, E), as reel
        # Packing makes the recurrent layers see only the valid steps of each sequence, in both directions;
        # that is the semantics reel's kernels promise for padding.
        packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
        out, _ = pad_packed_sequence(self.rnn(packed)[0], total_length=T)  # (T, B, D), zeros on padding
        valid = (torch.arange(T)[:, None] < lengths[None, :])[:, :, None]  # (T, B, 1)
        if self.spec.pooling == "max":
            pooled = out.masked_fill(~valid, float("-inf")).max(dim=0).values
        elif self.spec.pooling == "mean":
            pooled = (out * valid).sum(dim=0) / lengths[:, None].to(out.dtype)
        elif self.spec.pooling in ("last", "concat"):
            rows = torch.arange(B)
            # The forward direction ends at the last valid step, the reverse one at step 0.
            pooled = out[lengths - 1, rows, :self.hidden]
            if self.spec.bidirectional:
                pooled = torch.cat([pooled, out[0, :, self.hidden:]], dim=1)
            if self.spec.pooling == "concat":  # ULMFiT's order: last, max, mean
                pooled = torch.cat([pooled, out.masked_fill(~valid, float("-inf")).max(dim=0).values,
                                    (out * valid).sum(dim=0) / lengths[:, None].to(out.dtype)], dim=1)
        else:
            raise ValueError(f"unknown pooling {self.spec.pooling}")
        features = torch.relu(self.head(pooled)) if self.head is not None else pooled
        logits = self.output(features)
        return logits.squeeze(1) if self.outputs == 1 else logits


def ngram_row(ids, vocab, buckets):
    """The bucket row of a word n-gram, from its definition in src/models/bow.c: h = w0, then h = h *
    116049371 + w_k modulo 2^64, row vocab + h mod buckets."""
    h = ids[0]
    for w in ids[1:]:
        h = (h * 116049371 + w) % (1 << 64)
    return vocab + h % buckets


def bag_features(doc, spec, vocab):
    """A document's feature rows: its words (ids >= vocab as <unk>), then its bigrams and trigrams (none
    holding <pad> or <eod>); with binary, each row once."""
    words = [w if w < vocab else UNK for w in doc]
    rows = list(words)
    for n in range(2, spec.ngrams + 1):
        for t in range(len(words) - n + 1):
            gram = words[t:t + n]
            if PAD in gram or EOD in gram:
                continue
            rows.append(ngram_row(gram, vocab, spec.buckets))
    if spec.binary:
        rows = list(dict.fromkeys(rows))
    return rows


class BowTwin(nn.Module):
    """The bag of words as its definition reads (src/models/bow.c): each document's feature rows averaged
    (nn.EmbeddingBag, summing rows weighted by ratio / count), then nn.Linear, nn.BatchNorm1d in training
    mode and ReLU when there is a hidden layer, and the output nn.Linear. The Naive-Bayes ratios are
    counted here from the training split by Wang and Manning's formula, not read from reel."""

    def __init__(self, spec, rows, embed, outputs):
        super().__init__()
        self.spec, self.outputs = spec, outputs
        self.vocab = rows - spec.buckets
        self.embedding = nn.EmbeddingBag(rows, embed, mode="sum")
        H = spec.hidden_dim
        self.hidden = nn.Linear(embed, H, bias=not spec.batch_norm) if H else None
        self.norm = nn.BatchNorm1d(H, eps=1e-5, momentum=0.1) if H and spec.batch_norm else None
        self.output = nn.Linear(H or embed, outputs)
        self.ratio = self.count_ratios(rows) if spec.nb else None

    def count_ratios(self, rows):
        """log((p_f + 1) / sum_g (p_g + 1)) - log((q_f + 1) / sum_g (q_g + 1)), p and q the numbers of
        class-1 and class-0 training documents holding feature f."""
        starts, labels, ids = torch_common.read_tokfile(f"{self.spec.data_dir}/train.tok", "torch_parity.py")
        counts = np.zeros((2, rows))
        for d, label in enumerate(labels):
            doc = ids[starts[d]:starts[d + 1]].astype(np.int64).tolist()
            features = np.unique(bag_features(doc, self.spec, self.vocab))
            counts[label, features] += 1
        smoothed = counts + 1
        share = smoothed / smoothed.sum(axis=1, keepdims=True)
        return np.log(share[1]) - np.log(share[0])

    def reel_names(self):
        names = {"embedding/weight": self.embedding.weight, "output/weight": self.output.weight,
                 "output/bias": self.output.bias}
        if self.hidden is not None:
            names["hidden/weight"] = self.hidden.weight
            if self.norm is None:
                names["hidden/bias"] = self.hidden.bias
            else:
                names["batchnorm/weight"], names["batchnorm/bias"] = self.norm.weight, self.norm.bias
        return names

    def reel_state(self):
        """reel's state tensors after the step, as the twin has them."""
        state = {}
        if self.ratio is not None:
            state["nb/ratio"] = self.ratio
        if self.norm is not None:
            state["batchnorm/running_mean"] = self.norm.running_mean.numpy()
            state["batchnorm/running_var"] = self.norm.running_var.numpy()
        return state

    def forward(self, ids, lengths):
        flat, offsets, weights = [], [], []
        for b in range(ids.shape[0]):
            rows = bag_features(ids[b, :lengths[b]].tolist(), self.spec, self.vocab)
            offsets.append(len(flat))
            flat += rows
            ratio = self.ratio[rows] if self.ratio is not None else np.ones(len(rows))
            weights += (ratio / len(rows)).tolist()
        mean = self.embedding(torch.tensor(flat), torch.tensor(offsets),
                              per_sample_weights=torch.tensor(weights, dtype=torch.float32))
        features = mean
        if self.hidden is not None:
            features = self.hidden(features)
            if self.norm is not None:
                features = self.norm(features)
            features = torch.relu(features)
        logits = self.output(features)
        return logits.squeeze(1) if self.outputs == 1 else logits


class CnnTwin(nn.Module):
    """Kim's CNN as PyTorch 1.13 writes it: Conv1d per width over each document alone (padded with zeros to
    the width when shorter), ReLU, max over positions, the widths side by side, a linear layer. Each
    filter bank is held in reel's layout (w F, E), block k the weights of a window's k-th token, and
    turned into Conv1d's (F, E, w) in the forward, so gradients land in reel's shape."""

    def __init__(self, spec, vocab, embed, outputs):
        super().__init__()
        self.spec, self.outputs = spec, outputs
        self.embedding = nn.Embedding(vocab, embed)
        self.banks = nn.ParameterList([nn.Parameter(torch.empty(w * spec.filters, embed)) for w in spec.widths])
        self.biases = nn.ParameterList([nn.Parameter(torch.empty(spec.filters)) for _ in spec.widths])
        self.output = nn.Linear(len(spec.widths) * spec.filters, outputs)

    def reel_names(self):
        names = {"embedding/weight": self.embedding.weight, "output/weight": self.output.weight,
                 "output/bias": self.output.bias}
        for w, bank, bias in zip(self.spec.widths, self.banks, self.biases):
            names[f"conv{w}/weight"], names[f"conv{w}/bias"] = bank, bias
        return names

    def forward(self, ids, lengths):
        F = self.spec.filters
        rows = []
        for b in range(ids.shape[0]):
            x = self.embedding(ids[b, :lengths[b]]).t()[None]  # (1, E, L)
            pooled = []
            for w, bank, bias in zip(self.spec.widths, self.banks, self.biases):
                weight = bank.view(w, F, -1).permute(1, 2, 0)  # (F, E, w)
                padded = nn.functional.pad(x, (0, max(0, w - x.shape[2])))
                pooled.append(torch.relu(nn.functional.conv1d(padded, weight, bias)).max(dim=2).values[0])
            rows.append(torch.cat(pooled))
        logits = self.output(torch.stack(rows))
        return logits.squeeze(1) if self.outputs == 1 else logits


class LanguageTwin(nn.Module):
    """reel's language model from its tensors: per-layer widths, tied or untied decoder, projection."""

    def __init__(self, spec, params):
        super().__init__()
        self.spec = spec
        vocab, embed = params["embedding/weight"].shape
        gates = {"lstm": 4, "gru": 3, "rnn": 1}[spec.cell]
        extra = {"nonlinearity": "tanh"} if spec.cell == "rnn" else {}
        self.embedding = nn.Embedding(vocab, embed)
        self.rnns = nn.ModuleList()
        layer = 0
        while f"{spec.cell}_l{layer}_fwd/w_ih" in params:
            rows, inputs = params[f"{spec.cell}_l{layer}_fwd/w_ih"].shape
            self.rnns.append(CELLS[spec.cell](inputs, rows // gates, **extra))
            layer += 1
        self.tied = "decoder/weight" not in params
        width = self.rnns[-1].hidden_size
        self.projection = nn.Linear(width, embed, bias=False) if "decoder_proj/weight" in params else None
        if self.tied:
            self.decoder_bias = nn.Parameter(torch.zeros(vocab))
        else:
            self.decoder = nn.Linear(width, vocab)

    def reel_names(self):
        names = {"embedding/weight": self.embedding.weight}
        reel_part = {"w_ih": "weight_ih_l0", "w_hh": "weight_hh_l0", "b_ih": "bias_ih_l0", "b_hh": "bias_hh_l0"}
        for layer, rnn in enumerate(self.rnns):
            for ours, theirs in reel_part.items():
                names[f"{self.spec.cell}_l{layer}_fwd/{ours}"] = getattr(rnn, theirs)
        if self.projection is not None:
            names["decoder_proj/weight"] = self.projection.weight
        if self.tied:
            names["decoder/bias"] = self.decoder_bias
        else:
            names["decoder/weight"] = self.decoder.weight
            names["decoder/bias"] = self.decoder.bias
        return names

    def forward(self, ids, lengths):
        T = ids.shape[1]
        x = self.embedding(ids).transpose(0, 1)  # (T, B, E)
        for rnn in self.rnns:  # each layer sees only the valid steps of each sequence
            packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
            x, _ = pad_packed_sequence(rnn(packed)[0], total_length=T)
        if self.projection is not None:
            x = self.projection(x)
        if self.tied:
            logits = x @ self.embedding.weight.t() + self.decoder_bias
        else:
            logits = self.decoder(x)
        valid = (torch.arange(T)[:, None] < lengths[None, :])[:, :, None]
        return logits * valid  # (T, B, V), 0 at padding as reel's dump


class GptBlock(nn.Module):
    """One pre-LayerNorm block: x + proj(attention(ln1(x))), then + mlp_proj(gelu(mlp_fc(ln2(x))))."""

    def __init__(self, width, heads, ff):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(width, eps=1e-5)
        self.attn_qkv = nn.Linear(width, 3 * width)
        self.attn_proj = nn.Linear(width, width)
        self.ln2 = nn.LayerNorm(width, eps=1e-5)
        self.mlp_fc = nn.Linear(width, ff)
        self.mlp_proj = nn.Linear(ff, width)

    def forward(self, x, allowed, rotation=None):
        B, T, C = x.shape
        D = C // self.heads
        # q | k | v column blocks, head h in columns h D .. (h + 1) D - 1 of each
        q, k, v = self.attn_qkv(self.ln1(x)).split(C, dim=2)
        q, k, v = (a.view(B, T, self.heads, D).transpose(1, 2) for a in (q, k, v))  # (B, NH, T, D)
        if rotation is not None:
            q, k = rotate_half_pairs(q, *rotation), rotate_half_pairs(k, *rotation)
        scores = q @ k.transpose(-2, -1) * (1.0 / math.sqrt(D))
        weights = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
        attended = (weights @ v).transpose(1, 2).reshape(B, T, C)
        x = x + self.attn_proj(attended)
        return x + self.mlp_proj(nn.functional.gelu(self.mlp_fc(self.ln2(x)), approximate="tanh"))


def rotary_angles(T, D, base):
    """cos and sin (T, D/2) of the angles pos base^(-2i/D), computed in float64 and rounded once."""
    position = torch.arange(T, dtype=torch.float64)[:, None]
    pair = torch.arange(D // 2, dtype=torch.float64)[None, :]
    angle = position * base ** (-2.0 * pair / D)
    return torch.cos(angle).float(), torch.sin(angle).float()


def rotate_half_pairs(x, cos, sin):
    """RoPE on x (B, NH, T, D) in GPT-NeoX's pairing: dims i and i + D/2 form pair i, turned by its angle."""
    first, second = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((first * cos - second * sin, first * sin + second * cos), dim=-1)


class GptTwin(nn.Module):
    """reel's GPT (src/models/gpt.c) from the configuration: token and position embeddings, pre-LN blocks,
    a final LayerNorm, and the output layer without bias: the embedding (tied) or decoder/weight."""

    def __init__(self, spec, vocab, width):
        super().__init__()
        if width % spec.num_heads:
            raise ValueError(f"[model] num_heads = {spec.num_heads} does not divide embed_dim = {width}")
        self.embedding = nn.Embedding(vocab, width)
        self.position = None if spec.rotary else nn.Embedding(spec.max_context, width)
        self.rotary_base = spec.rotary_base if spec.rotary else None
        self.head_width = width // spec.num_heads
        self.blocks = nn.ModuleList(GptBlock(width, spec.num_heads, spec.d_ff or 4 * width)
                                    for _ in range(spec.num_layers))
        self.final_ln = nn.LayerNorm(width, eps=1e-5)
        self.decoder = None if spec.tied else nn.Linear(width, vocab, bias=False)

    def reel_names(self):
        names = {"embedding/weight": self.embedding.weight,
                 "final_ln/weight": self.final_ln.weight, "final_ln/bias": self.final_ln.bias}
        if self.position is not None:
            names["position/weight"] = self.position.weight
        for index, block in enumerate(self.blocks):
            for part in ("ln1", "attn_qkv", "attn_proj", "ln2", "mlp_fc", "mlp_proj"):
                module = getattr(block, part)
                names[f"block{index}/{part}/weight"] = module.weight
                names[f"block{index}/{part}/bias"] = module.bias
        if self.decoder is not None:
            names["decoder/weight"] = self.decoder.weight
        return names

    def forward(self, ids, lengths):
        B, T = ids.shape
        x = self.embedding(ids)  # (B, T, C)
        rotation = None
        if self.position is not None:
            x = x + self.position(torch.arange(T))[None]
        else:
            rotation = rotary_angles(T, self.head_width, self.rotary_base)
        # query i may see key j when j <= i (causal) and j is not padding (j < the sequence's length)
        causal = torch.ones(T, T, dtype=torch.bool).tril()
        real_key = torch.arange(T)[None, :] < lengths[:, None]  # (B, T)
        allowed = causal[None, None] & real_key[:, None, None, :]  # (B, 1, T, T)
        for block in self.blocks:
            x = block(x, allowed, rotation)
        x = self.final_ln(x)
        logits = x @ self.embedding.weight.t() if self.decoder is None else self.decoder(x)  # (B, T, V)
        valid = (torch.arange(T)[None, :] < lengths[:, None])[:, :, None]
        return (logits * valid).transpose(0, 1)  # (T, B, V), 0 at padding, as reel's dump


class TransformerTwin(nn.Module):
    """The Transformer classifier as its definition reads: each document cut into consecutive windows of
    max_context tokens, each window read alone from position 0 by the stack (GptBlock's pre-LN blocks,
    all of the window's tokens visible, or the earlier ones when causal), then a final LayerNorm; the
    features of all of a document's tokens, every window's side by side, are pooled over the whole
    document (the mean and the max over its tokens, the last token's), and a linear layer gives the
    logits."""

    def __init__(self, spec, vocab, width, outputs):
        super().__init__()
        if width % spec.num_heads:
            raise ValueError(f"[model] num_heads = {spec.num_heads} does not divide embed_dim = {width}")
        self.spec, self.outputs = spec, outputs
        self.embedding = nn.Embedding(vocab, width)
        self.position = None if spec.rotary else nn.Embedding(spec.max_context, width)
        self.head_width = width // spec.num_heads
        self.blocks = nn.ModuleList(GptBlock(width, spec.num_heads, spec.d_ff or 4 * width)
                                    for _ in range(spec.num_layers))
        self.final_ln = nn.LayerNorm(width, eps=1e-5)
        pooled = 3 * width if spec.pooling == "concat" else width
        self.output = nn.Linear(pooled, outputs)

    def reel_names(self):
        names = {"embedding/weight": self.embedding.weight, "final_ln/weight": self.final_ln.weight,
                 "final_ln/bias": self.final_ln.bias, "output/weight": self.output.weight,
                 "output/bias": self.output.bias}
        if self.position is not None:
            names["position/weight"] = self.position.weight
        for index, block in enumerate(self.blocks):
            for part in ("ln1", "attn_qkv", "attn_proj", "ln2", "mlp_fc", "mlp_proj"):
                module = getattr(block, part)
                names[f"block{index}/{part}/weight"] = module.weight
                names[f"block{index}/{part}/bias"] = module.bias
        return names

    def read(self, ids):
        """The features (n, C) of one window of n tokens."""
        n = ids.shape[0]
        x = self.embedding(ids)[None]  # (1, n, C)
        rotation = None
        if self.position is not None:
            x = x + self.position(torch.arange(n))[None]
        else:
            rotation = rotary_angles(n, self.head_width, self.spec.rotary_base)
        allowed = torch.ones(n, n, dtype=torch.bool)
        if self.spec.causal:
            allowed = allowed.tril()
        for block in self.blocks:
            x = block(x, allowed[None, None], rotation)
        return self.final_ln(x)[0]

    def forward(self, ids, lengths):
        W, rows = self.spec.max_context, []
        for b in range(ids.shape[0]):
            document = ids[b, :lengths[b]]
            features = torch.cat([self.read(document[start:start + W]) for start in range(0, len(document), W)])
            parts = {"last": features[-1], "max": features.max(dim=0).values, "mean": features.mean(dim=0)}
            pooling = self.spec.pooling
            rows.append(torch.cat([parts[p] for p in ("last", "max", "mean")]) if pooling == "concat" else parts[pooling])
        logits = self.output(torch.stack(rows))
        return logits.squeeze(1) if self.outputs == 1 else logits


def relative_difference(reel, torch_value, floor):
    """max over elements of |reel - torch| / (|torch| + floor max|torch|); infinite when anything is not
    finite, so NaN cannot pass, and where an element differs from a torch value of 0 in an all-zero tensor."""
    reel = np.asarray(reel, dtype=np.float64)
    ref = np.asarray(torch_value, dtype=np.float64)
    if reel.shape != ref.shape:
        return math.inf
    if not (np.all(np.isfinite(reel)) and np.all(np.isfinite(ref))):
        return math.inf
    if reel.size == 0:
        return 0.0
    diff = np.abs(reel - ref)
    allowed = np.abs(ref) + floor * float(np.max(np.abs(ref)))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(diff == 0.0, 0.0, diff / allowed)  # x / 0 = inf: a difference where none is allowed
    return float(np.max(ratio))


def compare(reel, ours, tolerance, floor):
    """reel, ours: name -> array. Returns rows (name, shape, scale, difference, ok) in reel's order."""
    rows = []
    for name in reel:
        ref = ours.get(name)
        if ref is None:
            rows.append((name, np.shape(reel[name]), math.nan, math.inf, False))
            continue
        difference = relative_difference(reel[name], ref, floor)
        scale = float(np.max(np.abs(ref))) if np.size(ref) else 0.0
        rows.append((name, np.shape(reel[name]), scale, difference, difference <= tolerance))
    for name in ours:
        if name not in reel:  # a tensor the twin has and reel did not report
            rows.append((name, np.shape(ours[name]), math.nan, math.inf, False))
    return rows


def run_case(config, dump, tolerance, floor, require_ragged, quiet=False):
    """Returns (rows, reel values, torch values) for one dump; raises ValueError on unusable input."""
    spec = Spec(config)
    with h5py.File(dump, "r") as f:
        ids = torch.from_numpy(f["batch/ids"][()].astype(np.int64))
        lengths = torch.from_numpy(f["batch/lengths"][()].astype(np.int64))
        labels = torch.from_numpy(f["batch/labels"][()].astype(np.float32)) if "batch/labels" in f else None
        targets = torch.from_numpy(f["batch/targets"][()].astype(np.int64)) if "batch/targets" in f else None
        params, grads = {}, {}
        f["params"].visititems(lambda name, obj: params.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
        f["grads"].visititems(lambda name, obj: grads.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
        state = {}
        if "state" in f:
            f["state"].visititems(lambda name, obj: state.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
        reel = {"logits": f["out/logits"][()], "loss": np.array(f["out/loss"][()])}
    if int(lengths.min()) < 1:
        raise ValueError(f"{dump}: an empty document; pack_padded_sequence cannot take it")
    ragged = int(lengths.min()) < int(lengths.max())
    if require_ragged and not ragged:
        raise ValueError(f"{dump}: every document has {int(lengths.max())} tokens; the batch must be ragged "
                         "to test padding (use a larger token cut)")
    vocab, embed = params["embedding/weight"].shape
    if spec.gpt or spec.transformer:
        if "block0/attn_qkv/weight" not in params:
            raise ValueError(f"{dump}: no block0/attn_qkv/weight: the dump is not of a {spec.type}")
    elif spec.bow:
        if "output/weight" not in params or any("/w_hh" in n or n.startswith(("conv", "block")) for n in params):
            raise ValueError(f"{dump}: not the tensors of a bag of words")
    elif spec.cnn:
        if f"conv{spec.widths[0]}/weight" not in params:
            raise ValueError(f"{dump}: no conv{spec.widths[0]}/weight: the dump is not of this cnn")
    elif f"{spec.cell}_l0_fwd/w_hh" not in params:
        raise ValueError(f"{dump}: no {spec.cell}_l0_fwd/w_hh: the dump is not of a {spec.cell} model")
    else:
        hidden = params[f"{spec.cell}_l0_fwd/w_hh"].shape[1]
    torch.manual_seed(0)  # the twin's own initialisation is overwritten below; seeded only for repeatability
    if spec.lm != (targets is not None):
        raise ValueError(f"{dump}: {'a language model' if spec.lm else 'a classifier'} config, but the dump is not")
    outputs = vocab if spec.lm else params["output/weight"].shape[0]  # 1: binary; K > 2: K classes
    if spec.gpt:
        twin = GptTwin(spec, vocab, embed)
    elif spec.transformer:
        twin = TransformerTwin(spec, vocab, embed, outputs)
    elif spec.cnn:
        twin = CnnTwin(spec, vocab, embed, outputs)
    elif spec.bow:
        twin = BowTwin(spec, vocab, embed, outputs)
    else:
        twin = LanguageTwin(spec, params) if spec.lm else Twin(spec, vocab, embed, hidden, outputs)
    mapping = twin.reel_names()
    if set(mapping) != set(params):
        raise ValueError(f"{dump}: reel's tensors do not match {spec.describe()}: only in reel "
                         f"{sorted(set(params) - set(mapping))}, only in the twin {sorted(set(mapping) - set(params))}")
    if len(mapping) != len(list(twin.parameters())):
        raise ValueError("internal: not every parameter of the PyTorch model has a reel name")
    with torch.no_grad():
        for name, parameter in mapping.items():
            if tuple(parameter.shape) != params[name].shape:
                raise ValueError(f"{dump}: {name} has shape {params[name].shape} in reel, "
                                 f"{tuple(parameter.shape)} in the twin")
            parameter.copy_(torch.from_numpy(params[name].astype(np.float32)))
    logits = twin(ids, lengths)
    if spec.lm:  # the mean over the valid predictions
        valid = (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).t()  # (T, B)
        loss = nn.functional.cross_entropy(logits[valid], targets.t()[valid], reduction="mean")
    elif outputs == 1:
        loss = nn.BCEWithLogitsLoss(reduction="mean")(logits, labels)
    else:
        loss = nn.CrossEntropyLoss(reduction="mean")(logits, labels.long())
    loss.backward()
    ours = {"logits": logits.detach().numpy(), "loss": np.array(loss.item())}
    reel_values = dict(reel)
    for name, parameter in mapping.items():
        ours["grad " + name] = parameter.grad.numpy().copy()
        reel_values["grad " + name] = grads[name]
    twin_state = twin.reel_state() if hasattr(twin, "reel_state") else {}
    if set(twin_state) != set(state):
        raise ValueError(f"{dump}: reel's state tensors {sorted(state)} are not the twin's {sorted(twin_state)}")
    for name, value in twin_state.items():  # statistics of the data and of the batch, after the step
        ours["state " + name] = np.asarray(value, dtype=np.float64)
        reel_values["state " + name] = state[name]
    rows = compare(reel_values, ours, tolerance, floor)
    if not quiet:
        lengths_text = ", ".join(str(int(n)) for n in lengths)
        classes = f", {outputs} classes" if outputs > 1 and not spec.lm else ""
        print(f"== {spec.describe()}{classes}: {dump}")
        print(f"   batch of {len(lengths)}, lengths {lengths_text} ({'ragged' if ragged else 'NOT ragged'})")
        print(f"   {'tensor':34} {'shape':>12} {'max|torch|':>11} {'max el. diff':>13}")
        for name, shape, scale, difference, ok in rows:
            shape_text = "x".join(str(n) for n in shape) or "scalar"
            print(f"   {name:34} {shape_text:>12} {scale:11.3e} {difference:13.3e}{'' if ok else '  <-- FAIL'}")
        name, _, _, difference, _ = max(rows, key=lambda row: row[3])
        print(f"   worst: {difference:.3e} ({difference / tolerance:.3g} of the tolerance {tolerance:g}), {name}")
    return rows, reel_values, ours


def self_test(reel_values, ours, tolerance, floor):
    """The comparison must flag a gradient element that is off by a little more than it allows (one of
    the largest, and one of the smallest above the floor: a difference far below the tensor's scale), a
    NaN, and a missing tensor; and must accept the values it was given. Returns the list of problems."""
    problems = []
    names = [n for n in reel_values if n.startswith("grad ") and np.size(reel_values[n]) > 1]
    target = next((n for n in names if re.search(r"/w_hh$", n)), names[0])
    if not all(ok for *_, ok in compare(reel_values, ours, tolerance, floor)):
        problems.append("the unperturbed values do not pass")
    ref = np.asarray(ours[target], dtype=np.float64).reshape(-1)
    scale = float(np.max(np.abs(ref)))
    above_floor = np.flatnonzero(np.abs(ref) > floor * scale)
    probes = [("its largest", int(np.argmax(np.abs(ref))))]
    if above_floor.size:  # none when the floor is the tensor's largest magnitude (a normwise comparison)
        probes.append(("its smallest above the floor", int(above_floor[np.argmin(np.abs(ref[above_floor]))])))
    for what, index in probes:
        bumped = {n: np.array(v, copy=True) for n, v in reel_values.items()}
        flat = bumped[target].reshape(-1)
        flat[index] += 2 * tolerance * (abs(ref[index]) + floor * scale)
        failed = [row[0] for row in compare(bumped, ours, tolerance, floor) if not row[4]]
        if failed != [target]:
            problems.append(f"{what} element of {target} off by twice the bound was reported as {failed or 'passing'}")
    bumped[target].reshape(-1)[0] = np.nan
    if all(row[4] for row in compare(bumped, ours, tolerance, floor)):
        problems.append(f"a NaN in {target} passed")
    missing = {n: v for n, v in reel_values.items() if n != target}
    if all(row[4] for row in compare(missing, ours, tolerance, floor)):
        problems.append(f"a missing {target} passed")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("cases", nargs="*", metavar="CONFIG DUMP")
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="the largest |reel - torch| allowed, relative to |torch| + floor max|torch|")
    parser.add_argument("--floor", type=float, default=1e-2,
                        help="the magnitude below which elements are judged on that scale, as a fraction of "
                             "their tensor's largest")
    parser.add_argument("--require-ragged", action="store_true",
                        help="fail unless each batch has documents of different lengths")
    parser.add_argument("--expect-mismatch", nargs=2, action="append", default=[], metavar=("CONFIG", "DUMP"))
    args = parser.parse_args()
    if len(args.cases) % 2 or not args.cases:
        parser.error("give CONFIG DUMP pairs")
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)

    worst, failures, first = 0.0, [], None
    try:
        for config, dump in zip(args.cases[::2], args.cases[1::2]):
            rows, reel_values, ours = run_case(config, dump, args.tolerance, args.floor, args.require_ragged)
            first = first or (reel_values, ours)
            worst = max([worst] + [row[3] for row in rows])
            failures += [f"{dump}: {row[0]} differs by {row[3]:.3e}" for row in rows if not row[4]]
        for config, dump in args.expect_mismatch:
            rows, _, _ = run_case(config, dump, args.tolerance, args.floor, False, quiet=True)
            flagged = [row[0] for row in rows if not row[4]]
            if flagged:
                print(f"== negative control {config} on {dump}: flagged as expected ({', '.join(flagged[:4])}"
                      f"{', ...' if len(flagged) > 4 else ''})")
            else:
                failures.append(f"negative control {config} on {dump} was not flagged")
    except (ValueError, KeyError, OSError) as error:
        print(f"torch_parity: {error}", file=sys.stderr)
        return 2

    problems = self_test(*first, args.tolerance, args.floor)
    if problems:
        failures += ["self-test: " + p for p in problems]
    else:
        print("== self-test: a gradient's largest and smallest elements perturbed, a NaN and a missing tensor "
              "are all flagged")
    print(f"max elementwise difference over all tensors: {worst:.3e} of |torch| + {args.floor:g} max|torch| "
          f"(tolerance {args.tolerance:g})")
    for failure in failures:
        print("FAIL: " + failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
