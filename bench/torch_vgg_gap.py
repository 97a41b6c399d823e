#!/usr/bin/env python3
"""PyTorch peer for `npm run bench`: the same VGG16-GAP as bench/keras_vgg_gap.py (VGG16 features up to the ReLU after
conv5_3, conv 3x3/1024 + ReLU, global average pool, linear 200), random weights, float32. VGG16 is built here from its
layer table (torchvision's layout), so no torchvision is needed: the wheel of PyTorch 2.x on this machine has no
matching torchvision. Default memory format channels_last (PyTorch's fast CPU path for convolutions); --nchw for NCHW.

One phase per process (peak resident memory belongs to that phase):
  --phase infer   images/s of model(x) under torch.inference_mode()
  --phase train   images/s of a full step: forward, cross-entropy, backward, SGD momentum 0.9
Median of --runs timed calls after --warmup untimed ones. Prints one JSON line on stdout.
"""
import os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_common import measure_and_print, parse_args

a = parse_args(lambda p: p.add_argument('--nchw', action='store_true', help='NCHW memory format (default: channels_last)'))

import torch
from torch import nn

torch.set_num_threads(a.threads)
try:
    torch.set_num_interop_threads(a.threads)
except RuntimeError:
    pass


VGG16_CFG = [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512]  # no block5 pool


def vgg_features(cfg):
    layers, c = [], 3
    for v in cfg:
        if v == 'M':
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=True)]
            c = v
    return nn.Sequential(*layers)


torch.manual_seed(1)
features = vgg_features(VGG16_CFG)  # random weights; nothing downloads
model = nn.Sequential(features, nn.Conv2d(512, 1024, 3, padding=1), nn.ReLU(inplace=True),
                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1024, a.classes))
x = torch.empty(a.batch, 3, a.size, a.size).uniform_(-120, 150)
y = torch.randint(0, a.classes, (a.batch,))
channels_last = not a.nchw
if channels_last:
    model = model.to(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)

if a.phase == 'infer':
    model.eval()

    def step():
        with torch.inference_mode():
            model(x)
else:
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

measure_and_print(
    a, step, 'torch', threads=torch.get_num_threads(), params=sum(p.numel() for p in model.parameters()),
    engine=f'PyTorch {torch.__version__} ({"channels_last" if channels_last else "NCHW"}, eager)')
