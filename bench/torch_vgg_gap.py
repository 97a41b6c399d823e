#!/usr/bin/env python3
"""PyTorch peer for `npm run bench`: the same VGG16-GAP as bench/keras_vgg_gap.py (torchvision VGG16 features up to
the ReLU after conv5_3, conv 3x3/1024 + ReLU, global average pool, linear 200), random weights, float32.

One phase per process (peak resident memory belongs to that phase):
  --phase infer   images/s of model(x) under torch.inference_mode()
  --phase train   images/s of a full step: forward, cross-entropy, backward, SGD momentum 0.9
Median of --runs timed calls after --warmup untimed ones. Prints one JSON line on stdout.
"""
import argparse, json, platform, statistics, time

p = argparse.ArgumentParser()
p.add_argument('--phase', choices=['infer', 'train'], required=True)
p.add_argument('--batch', type=int, default=8)
p.add_argument('--size', type=int, default=224)
p.add_argument('--classes', type=int, default=200)
p.add_argument('--threads', type=int, default=2)
p.add_argument('--warmup', type=int, default=2)
p.add_argument('--runs', type=int, default=7)
p.add_argument('--channels-last', action='store_true', help='NHWC memory format (default: PyTorch default NCHW)')
a = p.parse_args()

import torch
from torch import nn
import torchvision

torch.set_num_threads(a.threads)
try:
    torch.set_num_interop_threads(a.threads)
except RuntimeError:
    pass


def peak_rss_mib():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024.0
    return None


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

for _ in range(a.warmup):
    step()
times = []
cpu0 = time.process_time()
for _ in range(a.runs):
    t0 = time.perf_counter()
    step()
    times.append(time.perf_counter() - t0)
cpu_ms = (time.process_time() - cpu0) * 1000 / a.runs
med = statistics.median(times)
print(json.dumps({
    'peer': 'torch', 'model': 'vgg16-gap', 'phase': a.phase, 'batch': a.batch, 'size': a.size,
    'imagesPerSec': a.batch / med, 'medianMs': med * 1000, 'minMs': min(times) * 1000, 'cpuMsPerRun': cpu_ms, 'runsMs': [t * 1000 for t in times],
    'warmup': a.warmup, 'peakRssMiB': peak_rss_mib(), 'threads': torch.get_num_threads(),
    'engine': f'PyTorch {torch.__version__} ({"channels_last" if a.channels_last else "NCHW"}, eager)',
    'params': sum(p.numel() for p in model.parameters()), 'python': platform.python_version(),
}))
