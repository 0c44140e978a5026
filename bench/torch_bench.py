"""PyTorch counterpart of `advrun bench`: the same train / attack / eval steps, timed the same way.

Run by advrun with Debian's /usr/bin/python3 (python3-torch). Prints one JSON line:
{"train": {"ms":..., "imgPerSec":...}, "attack": {...}, "eval": {...}, "peakRssMb": ...}.
"""
import argparse
import json
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_models import build_model  # noqa: E402  (advrun's architectures, parameter for parameter)


def build(args):
    # The same normalisation-inside-the-model layers advrun's models have (values do not change the cost).
    return build_model(args.arch, args.in_channels, args.num_classes, args.width or None, mean=(0.5,), std=(0.25,))


def time_it(fn, iters, warmup, batch):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    ms = times[len(times) // 2]
    return {"ms": ms, "imgPerSec": batch * 1000 / ms}


def main():
    p = argparse.ArgumentParser()
    for name, typ, default in [("arch", str, "small-cnn"), ("batch", int, 128), ("eval-batch", int, 500), ("iters", int, 10), ("warmup", int, 2),
                               ("threads", int, 2), ("in-channels", int, 1), ("image-size", int, 28), ("num-classes", int, 10), ("width", int, 0),
                               ("momentum", float, 0.9), ("weight-decay", float, 5e-4), ("label-smoothing", float, 0.0), ("nesterov", int, 0)]:
        p.add_argument("--" + name, type=typ, default=default)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build(args)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=args.momentum, weight_decay=args.weight_decay, nesterov=bool(args.nesterov))
    x = torch.rand(args.batch, args.in_channels, args.image_size, args.image_size)
    y = torch.randint(0, args.num_classes, (args.batch,))
    xe = torch.rand(args.eval_batch, args.in_channels, args.image_size, args.image_size)

    def train_step():
        model.train()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y, label_smoothing=args.label_smoothing).backward()
        opt.step()

    def attack_step():
        model.eval()
        xa = x.clone().requires_grad_(True)
        loss = F.cross_entropy(model(xa), y, reduction="sum")
        torch.autograd.grad(loss, xa)

    def eval_step():
        model.eval()
        with torch.no_grad():
            model(xe)

    for p_ in model.parameters():
        p_.requires_grad_(True)
    out = {"train": time_it(train_step, args.iters, args.warmup, args.batch)}
    for p_ in model.parameters():
        p_.requires_grad_(False)
    out["attack"] = time_it(attack_step, args.iters, args.warmup, args.batch)
    out["eval"] = time_it(eval_step, args.iters, args.warmup, args.eval_batch)
    # Peak resident set of this process (Linux reports KiB), the counterpart of advrun's own.
    out["peakRssMb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


if __name__ == "__main__":
    main()
