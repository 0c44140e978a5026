#!/usr/bin/python3
"""PyTorch side of `advrun compare`: clean and robust accuracy of a checkpoint, as a reference JSON.

Run with Debian's interpreter (python3-torch; not the `python3` on PATH):

    node dist/cli/main.js compare --dump-data slice.safetensors --dataset fashion-mnist-mini --limit 500
    /usr/bin/python3 bench/torch_eval.py --checkpoint model.pt --arch preact-resnet18 --width 8 \\
        --data slice.safetensors --attack pgd --eps 8/255 --steps 10 --out ref.json
    node dist/cli/main.js compare --model model.pt --arch preact-resnet18 --width 8 \\
        --data slice.safetensors --reference ref.json

The data file is what `advrun compare --dump-data` writes (safetensors: `images` float32 [n, C, H, W]
in [0, 1], `labels` int64 [n]), so Python never re-implements dataset loading.

The attacks are advrun's definitions (src/attacks), restricted to the deterministic ones so the two
implementations can be compared point by point:
- fgsm: one step x + stepSize * dir(g) (stepSize default eps);
- bim:  `steps` steps of eps/steps (default);
- pgd:  `steps` steps of 2.5 * eps / steps (default), WITHOUT random start;
where g = d(sum of per-example losses)/dx (loss ce or dlr), dir = sign(g) for linf and
g / (||g||_2 + 1e-12) for l2, each step computed in float64 and projected onto the eps-ball and
[0, 1] (linf: clip to [max(0, x - eps), min(1, x + eps)], rounded to float32 without leaving the
ball; l2: radial projection onto radius eps * (1 - 1e-7), then clip to [0, 1]). The returned point is
the LAST iterate. Clean accuracy uses argmax (first maximum); only clean-correct points are attacked,
and an attacked point stays robust if its true logit is strictly larger than every other one
(advrun's isCorrect). Accuracies are over all n points.

Output (one JSON object, format "advrun-torch-reference/1"): clean_acc, robust_acc, n, attack
settings (advrun's names), the per-example clean/robust outcomes as "0"/"1" strings, the first
logits, the data file's SHA-256 (float32 image bytes then int64 label bytes), model description,
torch version.
"""
import argparse
import hashlib
import json
import os
import struct
import sys
import time
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_models import build_model  # noqa: E402

FORMAT = "advrun-torch-reference/1"

# ------------------------------------------------------------------ data ---
_ST = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64, "I32": np.int32, "U8": np.uint8}


def read_safetensors(path):
    """Minimal safetensors reader (no safetensors package on Debian): name -> numpy array, metadata."""
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8: 8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    data = buf[8 + n:]
    out = OrderedDict()
    for name, info in header.items():
        b, e = info["data_offsets"]
        if info["dtype"] == "BF16":
            raw = np.frombuffer(data[b:e], dtype="<u2").astype(np.uint32) << 16
            arr = raw.view(np.float32)
        else:
            arr = np.frombuffer(data[b:e], dtype=np.dtype(_ST[info["dtype"]]).newbyteorder("<"))
        out[name] = arr.reshape(info["shape"]).copy()
    return out, meta


def load_data(path):
    t, meta = read_safetensors(path)
    if "images" not in t or "labels" not in t:
        raise SystemExit(f"{path}: expected tensors 'images' and 'labels' (written by `advrun compare --dump-data`)")
    x = torch.from_numpy(t["images"].astype(np.float32))
    y = torch.from_numpy(t["labels"].astype(np.int64))
    return x, y, meta


def data_sha256(x, y):
    return hashlib.sha256(x.numpy().astype("<f4").tobytes() + y.numpy().astype("<i8").tobytes()).hexdigest()


# ----------------------------------------------------------------- model ---
PREFIXES = ("module.", "model.", "_orig_mod.")


def load_state_dict(path):
    """A state_dict from torch.save (.pt) or .safetensors, unwrapped and with wrapper prefixes stripped."""
    if path.endswith(".safetensors"):
        arrays, _ = read_safetensors(path)
        sd = OrderedDict((k, torch.from_numpy(v)) for k, v in arrays.items())
    else:
        sd = torch.load(path, map_location="cpu")
        for key in ("state_dict", "model_state_dict", "model", "net", "state"):
            if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
                sd = sd[key]
                break
    while sd and any(all(k.startswith(p) for k in sd) for p in PREFIXES):
        p = next(p for p in PREFIXES if all(k.startswith(p) for k in sd))
        sd = OrderedDict((k[len(p):], v) for k, v in sd.items())
    return OrderedDict((k, v.float() if v.is_floating_point() else v) for k, v in sd.items())


def parse_list(text):
    return [float(v) for v in str(text).split(",")]


def parse_fraction(text):
    text = str(text)
    if "/" in text:
        a, b = text.split("/")
        return float(a) / float(b)
    return float(text)


# --------------------------------------------------------------- attacks ---
def margins(z, y):
    zy = z.gather(1, y[:, None])[:, 0]
    other = z.clone()
    other.scatter_(1, y[:, None], -float("inf"))
    return zy - other.max(1).values


def attack_loss(z, y, kind):
    """Per-example loss (advrun's src/train/attack-graphs.ts)."""
    if kind == "ce":
        return F.cross_entropy(z, y, reduction="none")
    if kind == "dlr":
        k = z.shape[1]
        onehot = F.one_hot(y, k).to(z.dtype)
        zy = (z * onehot).sum(1)
        other = (z - onehot * 1e9).max(1).values
        top = z.topk(min(3, k), dim=1).values
        return -(zy - other) / (top[:, 0] - top[:, min(2, k - 1)] + 1e-12)
    raise SystemExit(f"unknown loss {kind!r}")


def _clip_linf(x, eps, cand):
    x64 = x.double()
    lo = torch.clamp(x64 - eps, min=0.0)
    hi = torch.clamp(x64 + eps, max=1.0)
    v = torch.minimum(torch.maximum(cand, lo), hi).float()
    # float32 rounding may land half an ulp outside the ball: step one ulp back (advrun's clipLinf).
    d = v.double() - x64
    v = torch.where(d > eps, torch.nextafter(v, torch.full_like(v, -float("inf"))), v)
    v = torch.where(-d > eps, torch.nextafter(v, torch.full_like(v, float("inf"))), v)
    return v


def _project_l2(x, eps, cand):
    x64 = x.double().flatten(1)
    c = cand.flatten(1)
    nrm = (c - x64).pow(2).sum(1).sqrt()
    r = eps * (1 - 1e-7)
    f = torch.where(nrm > r, r / nrm, torch.ones_like(nrm))
    v = x64 + (c - x64) * f[:, None]
    return v.clamp(0.0, 1.0).float().view_as(x)


def iterative_attack(model, x, y, eps, norm, steps, step_size, loss):
    cur = x.clone()
    for _ in range(steps):
        cur.requires_grad_(True)
        l = attack_loss(model(cur), y, loss).sum()
        (g,) = torch.autograd.grad(l, cur)
        cur = cur.detach()
        if norm == "linf":
            cand = cur.double() + step_size * torch.sign(g).double()
            cur = _clip_linf(x, eps, cand)
        else:
            g64 = g.double().flatten(1)
            direction = g64 / (g64.pow(2).sum(1).sqrt() + 1e-12)[:, None]
            cand = cur.double() + step_size * direction.view_as(x)
            cur = _project_l2(x, eps, cand)
    return cur


def attack_settings(args):
    eps = parse_fraction(args.eps)
    steps = {"fgsm": 1}.get(args.attack, args.steps or 10)
    if args.step_size is not None:
        step = parse_fraction(args.step_size)
    else:
        step = {"fgsm": eps, "bim": eps / steps, "pgd": 2.5 * eps / steps}[args.attack]
    loss = args.loss if args.attack == "pgd" else "ce"
    return {"attack": args.attack, "norm": args.norm, "eps": eps, "steps": steps, "stepSize": step,
            "randomStart": False, "restarts": 1, "loss": loss}


def evaluate(model, x, y, settings, batch_size=256, first_logits=16):
    """advrun's evaluate(): clean logits, then the attack on the clean-correct points of each batch."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    n = x.shape[0]
    clean = torch.zeros(n, dtype=torch.bool)
    robust = torch.zeros(n, dtype=torch.bool)
    logits_all = []
    t0 = time.time()
    for s in range(0, n, batch_size):
        xb, yb = x[s: s + batch_size], y[s: s + batch_size]
        with torch.no_grad():
            z = model(xb)
        logits_all.append(z)
        ok = z.argmax(1) == yb  # advrun's accuracy(): first maximum
        clean[s: s + len(yb)] = ok
        if settings is None or not ok.any():
            continue
        idx = ok.nonzero()[:, 0]
        xa = iterative_attack(model, xb[idx], yb[idx], settings["eps"], settings["norm"], settings["steps"], settings["stepSize"], settings["loss"])
        with torch.no_grad():
            still = margins(model(xa), yb[idx]) > 0
        r = torch.zeros(len(yb), dtype=torch.bool)
        r[idx] = still
        robust[s: s + len(yb)] = r
    logits = torch.cat(logits_all)
    return {
        "clean_acc": clean.double().mean().item(),
        "robust_acc": robust.double().mean().item() if settings is not None else None,
        "n": n,
        "attack": settings,
        "per_example": {"clean": "".join("1" if v else "0" for v in clean.tolist()),
                        "robust": "".join("1" if v else "0" for v in robust.tolist()) if settings is not None else None},
        "logits_first": logits[:first_logits].tolist(),
        "seconds": time.time() - t0,
    }, logits


def reference(model, x, y, settings, model_info, data_info, batch_size=256, first_logits=16):
    """The full reference JSON object for `advrun compare`."""
    torch.set_num_threads(1)
    r, logits = evaluate(model, x, y, settings, batch_size, first_logits)
    out = {"format": FORMAT, "generator": "bench/torch_eval.py", "torch_version": torch.__version__,
           "model": model_info, "data": dict(data_info, n=int(x.shape[0]), shape=list(x.shape), sha256=data_sha256(x, y))}
    out.update(r)
    return out, logits


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True, help="state_dict: torch.save .pt or .safetensors")
    p.add_argument("--arch", required=True)
    p.add_argument("--width", type=int)
    p.add_argument("--depth", type=int)
    p.add_argument("--activation", default="relu")
    p.add_argument("--in-channels", type=int, help="default: the data's")
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--mean", default="0.2860")
    p.add_argument("--std", default="0.3530")
    p.add_argument("--data", required=True, help="safetensors from `advrun compare --dump-data`")
    p.add_argument("--attack", choices=["none", "fgsm", "bim", "pgd"], default="pgd")
    p.add_argument("--eps", default="0.1")
    p.add_argument("--norm", choices=["linf", "l2"], default="linf")
    p.add_argument("--steps", type=int)
    p.add_argument("--step-size")
    p.add_argument("--loss", choices=["ce", "dlr"], default="ce")
    p.add_argument("--random-start", action="store_true", help="refused: random starts cannot be compared point by point")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--first-logits", type=int, default=16)
    p.add_argument("--out", help="write the JSON here (default: stdout)")
    args = p.parse_args()
    if args.random_start:
        raise SystemExit("torch_eval.py: PyTorch and advrun draw random starts from different generators, so a random-start "
                         "attack cannot be compared point by point; use pgd without random start (advrun: --no-random-start)")
    torch.manual_seed(0)
    x, y, data_meta = load_data(args.data)
    in_ch = args.in_channels or x.shape[1]
    model = build_model(args.arch, in_ch, args.num_classes, args.width, args.depth, parse_list(args.mean), parse_list(args.std), args.activation)
    model.load_state_dict(load_state_dict(args.checkpoint), strict=True)
    settings = None if args.attack == "none" else attack_settings(args)
    info = {"checkpoint": args.checkpoint, "arch": args.arch, "width": args.width, "depth": args.depth, "activation": args.activation,
            "in_channels": in_ch, "num_classes": args.num_classes, "mean": parse_list(args.mean), "std": parse_list(args.std)}
    out, _ = reference(model, x, y, settings, info, {"file": args.data, "source": data_meta.get("source")}, args.batch_size, args.first_logits)
    text = json.dumps(out)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
