"""PyTorch definitions of advrun's built-in architectures, parameter for parameter.

Every model takes [N, C, H, W] images in [0, 1] and normalises them inside ((x - mean) / std as
non-persistent buffers, so they are not part of the state_dict), exactly like advrun's models; the
state_dict keys and shapes are advrun's parameter names (src/models/*.ts):

- small-cnn:       test/fixtures/torch/make_fixtures.py's SmallCNN (re-exported here);
- preact-resnet18: the "Bag of tricks" / Rice et al. / RobustBench PreActResNet-18
                   (conv1, layer1..4 of PreActBlocks with bn1/conv1/bn2/conv2/shortcut.0, bn, linear);
- wrn:             RobustBench's WideResNet (conv1, block1..3.layer.<i> with bn1/conv1/bn2/conv2/
                   convShortcut, bn1, fc); `width` is the widen factor, `depth` 6n+4;
- resnet50:        torchvision's ResNet-50 v1.5 (conv1/bn1/maxpool, layer1..4 Bottlenecks with
                   downsample.0/1, fc); `width` is the first stage's width (64).

The classifier head is global average pooling + flatten + linear in every model (for 32x32 CIFAR
inputs, PreActResNet's avg_pool2d(out, 4) is the same thing).

Used by bench/torch_eval.py and test/fixtures/interop/make_interop_fixtures.py (Debian python3-torch).
"""
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "torch"))
from make_fixtures import SmallCNN  # noqa: E402,F401  (the reference small-cnn definition)

ACTIVATIONS = {
    "relu": nn.ReLU,
    "softplus": nn.Softplus,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "elu": nn.ELU,
}


def make_act(name):
    if name not in ACTIVATIONS:
        raise SystemExit(f"torch_models.py: activation {name!r} is not defined here (have: {', '.join(ACTIVATIONS)})")
    return ACTIVATIONS[name]()


class Normalized(nn.Module):
    """Base: (x - mean) / std inside the model, skipped for mean 0 / std 1 (as advrun does)."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.identity_norm = all(m == 0 for m in mean) and all(s == 1 for s in std)

    def normalize(self, x):
        return x if self.identity_norm else (x - self.mean) / self.std


class PreActBlock(nn.Module):
    def __init__(self, cin, planes, stride, act):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        if stride != 1 or cin != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, planes, 1, stride=stride, bias=False))
        self.act1 = make_act(act)
        self.act2 = make_act(act)

    def forward(self, x):
        out = self.act1(self.bn1(x))
        shortcut = self.shortcut(out) if hasattr(self, "shortcut") else x
        out = self.conv1(out)
        out = self.conv2(self.act2(self.bn2(out)))
        return out + shortcut


class PreActResNet18(Normalized):
    def __init__(self, in_ch=3, num_classes=10, width=64, mean=(0.0,), std=(1.0,), act="relu"):
        super().__init__(list(mean), list(std))
        w = width
        self.conv1 = nn.Conv2d(in_ch, w, 3, stride=1, padding=1, bias=False)
        cin = w
        for li, planes in enumerate([w, 2 * w, 4 * w, 8 * w]):
            blocks = []
            for bi in range(2):
                blocks.append(PreActBlock(cin, planes, 2 if (bi == 0 and li > 0) else 1, act))
                cin = planes
            setattr(self, f"layer{li + 1}", nn.Sequential(*blocks))
        self.bn = nn.BatchNorm2d(cin)
        self.act = make_act(act)
        self.linear = nn.Linear(cin, num_classes)

    def forward(self, x):
        out = self.conv1(self.normalize(x))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = self.act(self.bn(out))
        out = F.adaptive_avg_pool2d(out, 1)
        out = out.view(out.size(0), -1)  # exports as Shape/Gather/Unsqueeze/Concat/Reshape, as in RobustBench
        return self.linear(out)


class WideBlock(nn.Module):
    def __init__(self, cin, cout, stride, act):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.relu1 = make_act(act)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = make_act(act)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
        self.equal = cin == cout
        if not self.equal:
            self.convShortcut = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)

    def forward(self, x):
        pre = self.relu1(self.bn1(x))
        out = self.conv2(self.relu2(self.bn2(self.conv1(pre))))
        return (x if self.equal else self.convShortcut(pre)) + out


class NetworkBlock(nn.Module):
    def __init__(self, n, cin, cout, stride, act):
        super().__init__()
        self.layer = nn.Sequential(*[WideBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1, act) for i in range(n)])

    def forward(self, x):
        return self.layer(x)


class WideResNet(Normalized):
    def __init__(self, in_ch=3, num_classes=10, depth=28, width=10, mean=(0.0,), std=(1.0,), act="relu"):
        super().__init__(list(mean), list(std))
        assert (depth - 4) % 6 == 0, "WideResNet depth must be 6n+4"
        n = (depth - 4) // 6
        ch = [16, 16 * width, 32 * width, 64 * width]
        self.conv1 = nn.Conv2d(in_ch, ch[0], 3, stride=1, padding=1, bias=False)
        self.block1 = NetworkBlock(n, ch[0], ch[1], 1, act)
        self.block2 = NetworkBlock(n, ch[1], ch[2], 2, act)
        self.block3 = NetworkBlock(n, ch[2], ch[3], 2, act)
        self.bn1 = nn.BatchNorm2d(ch[3])
        self.relu = make_act(act)
        self.fc = nn.Linear(ch[3], num_classes)

    def forward(self, x):
        out = self.block3(self.block2(self.block1(self.conv1(self.normalize(x)))))
        out = self.relu(self.bn1(out))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


class Bottleneck(nn.Module):
    def __init__(self, cin, planes, stride, act):
        super().__init__()
        cout = planes * 4
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.act1, self.act2, self.act3 = make_act(act), make_act(act), make_act(act)
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.act2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = self.downsample(x) if hasattr(self, "downsample") else x
        return self.act3(out + shortcut)


class ResNet50(Normalized):
    def __init__(self, in_ch=3, num_classes=1000, width=64, mean=(0.0,), std=(1.0,), act="relu"):
        super().__init__(list(mean), list(std))
        w = width
        self.conv1 = nn.Conv2d(in_ch, w, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.act1 = make_act(act)
        cin = w
        for li, blocks in enumerate([3, 4, 6, 3]):
            planes = w * 2 ** li
            layers = []
            for bi in range(blocks):
                layers.append(Bottleneck(cin, planes, 2 if (bi == 0 and li > 0) else 1, act))
                cin = planes * 4
            setattr(self, f"layer{li + 1}", nn.Sequential(*layers))
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        out = self.act1(self.bn1(self.conv1(self.normalize(x))))
        out = F.max_pool2d(out, 3, stride=2, padding=1)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


def build_model(arch, in_ch, num_classes, width=None, depth=None, mean=(0.0,), std=(1.0,), act="relu"):
    """advrun's `--arch` names -> PyTorch modules (advrun's default widths when width is None)."""
    mean = list(mean) * (in_ch if len(mean) == 1 else 1)
    std = list(std) * (in_ch if len(std) == 1 else 1)
    if arch == "small-cnn":
        if act != "relu":
            raise SystemExit("torch_models.py: small-cnn is defined with ReLU only")
        return SmallCNN(in_ch, num_classes, width or 16, mean, std)
    if arch == "preact-resnet18":
        return PreActResNet18(in_ch, num_classes, width or 64, mean, std, act)
    if arch == "wrn":
        return WideResNet(in_ch, num_classes, depth or 28, width or 10, mean, std, act)
    if arch == "wrn-28-10":
        return WideResNet(in_ch, num_classes, depth or 28, width or 10, mean, std, act)
    if arch == "resnet50":
        return ResNet50(in_ch, num_classes, width or 64, mean, std, act)
    raise SystemExit(f"torch_models.py has no PyTorch definition of {arch!r}")
