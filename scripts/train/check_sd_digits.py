#!/usr/bin/python3
"""Check cipherdm's C plaintext SD path against the torch reference on
share/models/sd-digits (or --model DIR).

    make -j2 && /usr/bin/python3 scripts/train/check_sd_digits.py [--model DIR]

Runs bin/cdm-unet-step and compares, for two prompts plus the empty prompt:
  1. --tokenize         ids equal to sd_torch.ClipTokenizer's (exact)
  2. --text-encode      last_hidden_state of the C ids vs CLIPTextModel
  3. --eps --context    one UNet call, batch 3 (uncond + 2 prompts, the CFG
                        layout), at the first DDIM-25 timestep (961)
  4. -t 961 --context   one DDIM-25 step (x_prev, no guidance) vs torch
  5. --vae-decode       AutoencoderKL.decode of a scaled latent
Relative error = max|c - ref| / max|ref|; all must be < 1e-4.  Exit 0 when
everything passes, 1 otherwise.  Temporary files go to a fresh temp dir.
"""

import argparse
import os
import subprocess
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_sd_digits import OUT, ROOT, alphas_cumprod, ddim_timesteps, load_pipeline  # noqa: E402
from unet2d import load_safetensors, save_safetensors  # noqa: E402

PROMPTS = ["a handwritten digit seven", "the number 3"]
TOL = 1e-4


def run(args):
    exe = os.path.join(ROOT, "bin", "cdm-unet-step")
    r = subprocess.run([exe] + args, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("cdm-unet-step %s failed (%d): %s" % (" ".join(args), r.returncode, r.stderr.strip()))


def rel(c, ref):
    return ((c.double() - ref.double()).abs().max() / ref.double().abs().max()).item()


def report(name, e, fails):
    ok = e < TOL
    print("%-34s rel err %.2e  %s" % (name, e, "ok" if ok else "FAIL"))
    if not ok:
        fails.append(name)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=OUT)
    a = ap.parse_args()
    torch.set_num_threads(1)
    tok, text, unet, vae, sf = load_pipeline(a.model)
    fails = []
    prompts = [""] + PROMPTS
    with tempfile.TemporaryDirectory(prefix="cdm-sd-check-") as d:
        p = lambda n: os.path.join(d, n)  # noqa: E731
        run(["--tokenize", "-m", a.model, "-o", p("ids.st")] + prompts)
        ids_c = load_safetensors(p("ids.st"))["ids"]
        ids_t = torch.tensor([tok.encode(s) for s in prompts])
        same = ids_c.shape == ids_t.shape and bool((ids_c == ids_t).all())
        print("%-34s %s %s" % ("tokenize (3 prompts)", list(ids_c.shape), "ok" if same else "FAIL"))
        if not same:
            fails.append("tokenize")
        run(["--text-encode", "-m", a.model, "-o", p("ctx.st"), p("ids.st")])
        ctx_c = load_safetensors(p("ctx.st"))["ctx"]
        with torch.no_grad():
            ctx_t = text(ids_t)
        report("text encoder [3,%d,%d]" % ctx_t.shape[1:], rel(ctx_c, ctx_t), fails)

        ts, r = ddim_timesteps(25)
        t = ts[0]
        g = torch.Generator().manual_seed(7)
        x = torch.randn((3, 4, 8, 8), generator=g)
        save_safetensors(p("x.st"), {"x": x})
        run(["--eps", "-m", a.model, "--context", p("ctx.st"), "-t", str(t), "-o", p("eps.st"), p("x.st")])
        eps_c = load_safetensors(p("eps.st"))["eps"]
        with torch.no_grad():
            eps_t = unet(x, t, ctx_c)
        report("unet eps t=%d [3,4,8,8]" % t, rel(eps_c, eps_t), fails)

        run(["-m", a.model, "--sampler", "ddim", "--steps", "25", "--context", p("ctx.st"), "-t", str(t),
             "-o", p("xp.st"), p("x.st")])
        xp_c = load_safetensors(p("xp.st"))["x"]
        ac = alphas_cumprod()
        x0 = (x - (1 - ac[t]).sqrt() * eps_t) / ac[t].sqrt()
        xp_t = ac[t - r].sqrt() * x0 + (1 - ac[t - r]).sqrt() * eps_t
        report("ddim-25 step %d -> %d" % (t, t - r), rel(xp_c, xp_t), fails)

        z = torch.randn((2, 4, 8, 8), generator=g) / sf
        save_safetensors(p("z.st"), {"z": z})
        run(["--vae-decode", "-m", a.model, "-o", p("img.st"), p("z.st")])
        img_c = load_safetensors(p("img.st"))["x"]
        with torch.no_grad():
            img_t = vae(z)
        report("vae decode [2,1,32,32]", rel(img_c, img_t), fails)
    print("all checks passed" if not fails else "FAILED: " + ", ".join(fails))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
