#!/usr/bin/python3
"""Sample a bundled model with DDIM-50 in torch and score it with the classifier.

    /usr/bin/python3 scripts/train/eval_samples.py [--model share/models/mnist]
        [--per-digit 10] [--seed 0] [--png out.png] [--steps 50]

Sampler: diffusers' DDIMScheduler semantics: eta 0, leading spacing
(T//N = 20: 980, 960, ..., 0), prev = t - 20, set_alpha_to_one (alpha_prev = 1
at the last step), clip_sample to [-1, 1], epsilon prediction; float32
alphas_cumprod of linear betas 1e-4..0.02.  x_T ~ N(0, I) from
torch.manual_seed(seed).  Image = clamp(x/2 + 0.5, 0, 1).
Prints the per-digit and overall fraction of samples that the independent
classifier (share/models/mnist-classifier) labels as the requested digit, and
writes a PNG grid (one row per digit).
"""

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import classifier  # noqa: E402
import mnist_data  # noqa: E402
from unet2d import ddim_sample, load_model  # noqa: E402


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(root, "share", "models", "mnist"))
    ap.add_argument("--classifier", default=os.path.join(root, "share", "models", "mnist-classifier"))
    ap.add_argument("--per-digit", type=int, default=10)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--png")
    a = ap.parse_args()
    torch.set_num_threads(2)

    model = load_model(a.model)
    clf = classifier.load(a.classifier)
    k = a.per_digit
    labels = torch.arange(10).repeat_interleave(k)
    torch.manual_seed(a.seed)
    x = torch.randn(labels.numel(), 1, 28, 28)
    t0 = time.time()
    out = []
    for i in range(0, labels.numel(), 100):
        out.append(ddim_sample(model, x[i:i + 100], labels[i:i + 100], steps=a.steps))
    x0 = torch.cat(out)
    img = (x0 / 2 + 0.5).clamp(0, 1)
    with torch.no_grad():
        pred = clf(img).argmax(1)
    ok = (pred == labels).float()
    per = ok.reshape(10, k).mean(1)
    print("model %s, DDIM-%d, %d samples per digit, seed %d, %.1f s" %
          (a.model, a.steps, k, a.seed, time.time() - t0))
    print("per digit: " + " ".join("%d:%.2f" % (d, per[d].item()) for d in range(10)))
    print("accuracy %.4f" % ok.mean().item())
    if a.png:
        mnist_data.write_png_gray(a.png, mnist_data.grid(img, k))
        print("wrote %s" % a.png)


if __name__ == "__main__":
    main()
