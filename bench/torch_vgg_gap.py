#!/usr/bin/env python3
"""PyTorch peer for `npm run bench`: the same VGG16-GAP as bench/keras_vgg_gap.py (torchvision VGG16 features up to
the ReLU after conv5_3, conv 3x3/1024 + ReLU, global average pool, linear 200), random weights, float32.

One phase per process (peak resident memory belongs to that phase):
  --phase infer   images/s of model(x) under torch.inference_mode()
  --phase train   images/s of a full step: forward, cross-entropy, backward, SGD momentum 0.9
Median of --runs timed calls after --warmup untimed ones. Prints one JSON line on stdout.
"""
import os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_common import measure_and_print, parse_args

a = parse_args(lambda p: p.add_argument('--channels-last', action='store_true', help='NHWC memory format (default: PyTorch default NCHW)'))

import torch
from torch import nn
import torchvision

torch.set_num_threads(a.threads)
try:
    torch.set_num_interop_threads(a.threads)
except RuntimeError:
    pass


torch.manual_seed(1)
vgg = torchvision.models.vgg16()  # random weights; nothing downloads
features = vgg.features[:30]      # ... conv5_3, ReLU (drops block5 max-pool), as Keras' block5_conv3 output
assert isinstance(features[-1], nn.ReLU) and isinstance(features[-2], nn.Conv2d)
model = nn.Sequential(features, nn.Conv2d(512, 1024, 3, padding=1), nn.ReLU(inplace=True),
                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1024, a.classes))
x = torch.empty(a.batch, 3, a.size, a.size).uniform_(-120, 150)
y = torch.randint(0, a.classes, (a.batch,))
if a.channels_last:
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
    engine=f'PyTorch {torch.__version__} ({"channels_last" if a.channels_last else "NCHW"}, eager)')
