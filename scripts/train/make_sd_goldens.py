#!/usr/bin/python3
"""Write the Stable Diffusion golden cases under tests/golden_sd/<case>/.

    /usr/bin/python3 scripts/train/make_sd_goldens.py [OUTDIR]   (default tests/golden_sd)

Case folders (random seeded weights; expected outputs computed in float64
from the same stored weights and inputs, then rounded to F32):
  u*/  UNet2DConditionModel: config.json, diffusion_pytorch_model.safetensors,
       io.safetensors with x [B,C,H,W] F32, t [B] I64, ctx [B,L,D] F32, eps F32
  v*/  AutoencoderKL (decoder + post_quant_conv, plus a dummy encoder tensor
       that must be ignored): io.safetensors with z [B,4,h,w] and x [B,3,H,W]
  c*/  CLIPTextModel: config.json, model.safetensors, io.safetensors with
       ids [B,L] I64 and ctx [B,L,D] F32 (last_hidden_state)
  tok/ a tiny CLIP BPE tokenizer (vocab.json, merges.txt, tokenizer_config.json)
       trained here, prompts.txt (one prompt a line) and io.safetensors with
       ids [P,77] I64 from the Python BPE in sd_torch.py.
Sizes follow diffusers' fast tests (reference/diffusers.md 5.4), shrunk where
needed to keep the folder small.  Prints the float32-vs-float64 error of the
torch forward for each case.
"""

import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sd_torch import (AutoencoderKLDecoder, CLIPTextModel, ClipTokenizer,  # noqa: E402
                      UNet2DConditionModel, train_bpe)
from unet2d import save_safetensors, to_legacy_names  # noqa: E402

torch.set_num_threads(2)

UNET_CASES = {
    # diffusers' SD fast-test UNet: boc (4,8), L1, cross 8, groups 2, 8 heads (dh 1);
    # batch 2 with one timestep per element, ctx of 77 tokens; F16 weights
    "u_fasttest": (dict(in_channels=4, out_channels=4, block_out_channels=[4, 8], layers_per_block=1,
                        down_block_types=["DownBlock2D", "CrossAttnDownBlock2D"],
                        up_block_types=["CrossAttnUpBlock2D", "UpBlock2D"],
                        cross_attention_dim=8, norm_num_groups=2, sample_size=16),
                   2, 8, [999, 10], 77, True, 1),
    # SD2-style linear projections, per-block heads [2,4]: C=6 with 4 heads gives
    # head_dim 1 and inner 4 != C; cross dim 6, ctx of 5 tokens; F16 weights
    "u_linear": (dict(in_channels=4, out_channels=4, block_out_channels=[4, 6], layers_per_block=1,
                      down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
                      up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
                      attention_head_dim=[2, 4], use_linear_projection=True,
                      cross_attention_dim=6, norm_num_groups=2, sample_size=8),
                 1, 8, [500], 5, True, 2),
    # SD1.5 shape in miniature: CrossAttn + Down / Up + CrossAttn, L 2, conv
    # projections, plus flip_sin_to_cos false / freq_shift 1 / downsample_padding 0;
    # F16 weights
    "u_sd15shape": (dict(in_channels=4, out_channels=4, block_out_channels=[4, 8], layers_per_block=2,
                         down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
                         up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"],
                         attention_head_dim=2, cross_attention_dim=8, norm_num_groups=2,
                         flip_sin_to_cos=False, freq_shift=1, downsample_padding=0, sample_size=8,
                         some_future_key=1, _name_or_path="golden_sd/u_sd15shape"),
                    1, 8, [261], 7, True, 3),
}

VAE_CASES = {
    # diffusers' fast-test VAE: boc [4,8], L1, groups 2
    "v_fasttest": (dict(in_channels=3, out_channels=3, block_out_channels=[4, 8], layers_per_block=1,
                        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                        latent_channels=4, norm_num_groups=2, sample_size=16),
                   1, 8, False, 11),
    # three levels, L2, legacy attention names, F16 weights, batch 2
    "v_legacy": (dict(in_channels=3, out_channels=3, block_out_channels=[4, 8, 8], layers_per_block=2,
                      down_block_types=["DownEncoderBlock2D"] * 3, up_block_types=["UpDecoderBlock2D"] * 3,
                      latent_channels=4, norm_num_groups=2, sample_size=16, scaling_factor=0.5),
                 2, 4, True, 12),
}

CLIP_CASES = {
    # diffusers' fast-test text encoder: hidden 8, intermediate 16, 2 layers, 2 heads,
    # vocab 1000, quick_gelu; batch 2 of 77 ids; F16 weights
    "c_fasttest": (dict(vocab_size=1000, hidden_size=8, intermediate_size=16, num_hidden_layers=2,
                        num_attention_heads=2, max_position_embeddings=77, hidden_act="quick_gelu",
                        layer_norm_eps=1e-5, bos_token_id=998, eos_token_id=999, pad_token_id=1),
                   2, 77, True, 21),
    # exact gelu, 3 heads, 10 of 16 positions, F32 weights
    "c_gelu": (dict(vocab_size=300, hidden_size=12, intermediate_size=20, num_hidden_layers=3,
                        num_attention_heads=3, max_position_embeddings=16, hidden_act="gelu",
                        layer_norm_eps=1e-5),
                   1, 10, False, 22),
}

CAPTIONS = ["a photo of a t-shirt/top", "a photo of a trouser", "a photo of a pullover",
            "a photo of a dress", "a photo of a coat", "a photo of a sandal", "a photo of a shirt",
            "a photo of a sneaker", "a photo of a bag", "a photo of an ankle boot",
            "a handwritten digit zero", "a handwritten digit one", "a handwritten digit two",
            "a handwritten digit three", "a handwritten digit four", "a handwritten digit five",
            "a handwritten digit six", "a handwritten digit seven", "a handwritten digit eight",
            "a handwritten digit nine", "a picture of a boot", "photos of sneakers and sandals"]

PROMPTS = ["a photo of an ankle boot",
           "  A Photo   OF a T-Shirt/Top!! ",
           "it's a sneaker, don't you think? they're 2 sneakers...",
           "handwritten 1984 digits: seven & nine",
           "zebra xylophone quux",
           "<|startoftext|>a bag<|endoftext|>",
           "caf\u00e9 d\u00e9j\u00e0 vu",
           " ".join(["a photo of a coat"] * 20),
           ""]


def randomize(model, gen):
    """As make_goldens.py: random norm affines and biases, fan-in scaled
    weights, unit-normal embedding tables."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith(".weight"):
                p.copy_(1.0 + 0.5 * torch.randn(p.shape, generator=gen))
            elif name.endswith(".bias"):
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))
            elif p.dim() >= 2 and "embedding" not in name:
                p.copy_(torch.randn(p.shape, generator=gen) * (1.5 / p[0].numel()) ** 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=gen))


def round_f16(model):
    """Make the weights exactly representable in F16 (stored so, converted to
    F32 by the C loader without loss)."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())


def rel_max(a, ref):
    return ((a - ref).abs().max() / ref.abs().max()).item()


def write_config(folder, cls, cfg, extra=None):
    os.makedirs(folder, exist_ok=True)
    c = {"_class_name": cls, "_diffusers_version": "0.27.0"}
    c.update(extra or {})
    c.update(cfg)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(c, f, indent=2)
        f.write("\n")


def state(model, dtype=torch.float32):
    return {k: v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()}


def size_of(folder):
    return sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))


def make_unet(outdir, name, spec):
    cfg, b, hw, ts, L, f16, seed = spec
    gen = torch.Generator().manual_seed(2000 + seed)
    m = UNet2DConditionModel(cfg).eval()
    randomize(m, gen)
    if f16:
        round_f16(m)
    folder = os.path.join(outdir, name)
    write_config(folder, "UNet2DConditionModel", cfg)
    save_safetensors(os.path.join(folder, "diffusion_pytorch_model.safetensors"),
                     state(m, torch.float16 if f16 else torch.float32))
    x = torch.randn((b, m.config["in_channels"], hw, hw), generator=gen)
    xd = m.config["cross_attention_dim"]
    xd = xd[-1] if isinstance(xd, list) else xd
    ctx = torch.randn((b, L, xd), generator=gen)
    t = torch.tensor(ts, dtype=torch.int64)
    with torch.no_grad():
        e32 = m(x, t, ctx)
        m64 = m.double()
        e64 = m64(x.double(), t, ctx.double())
        dctx = rel_max(m64(x.double(), t, ctx.double() * 0.5), e64)
    save_safetensors(os.path.join(folder, "io.safetensors"), {"x": x, "t": t, "ctx": ctx, "eps": e64.float()})
    print("%-12s params %6d  f32 rel %.2e  ctx*0.5 changes %.1e  %d bytes"
          % (name, sum(p.numel() for p in m.parameters()), rel_max(e32.double(), e64), dctx, size_of(folder)))


def make_vae(outdir, name, spec):
    cfg, b, hw, legacy, seed = spec
    gen = torch.Generator().manual_seed(2000 + seed)
    m = AutoencoderKLDecoder(cfg).eval()
    randomize(m, gen)
    if legacy:  # this case also stores F16 weights
        round_f16(m)
    folder = os.path.join(outdir, name)
    write_config(folder, "AutoencoderKL", cfg)
    sd = state(m, torch.float16 if legacy else torch.float32)
    if legacy:
        sd = to_legacy_names(sd)
    # a real AutoencoderKL file also holds the encoder: it must be ignored
    sd["encoder.conv_in.weight"] = torch.randn((4, 3, 3, 3), generator=gen)
    sd["quant_conv.weight"] = torch.randn((8, 8, 1, 1), generator=gen)
    save_safetensors(os.path.join(folder, "diffusion_pytorch_model.safetensors"), sd)
    z = torch.randn((b, m.config["latent_channels"], hw, hw), generator=gen)
    with torch.no_grad():
        x32 = m(z)
        x64 = m.double()(z.double())
    save_safetensors(os.path.join(folder, "io.safetensors"), {"z": z, "x": x64.float()})
    print("%-12s params %6d  f32 rel %.2e  %d bytes"
          % (name, sum(p.numel() for p in m.parameters()), rel_max(x32.double(), x64), size_of(folder)))


def make_clip(outdir, name, spec):
    cfg, b, n, f16, seed = spec
    gen = torch.Generator().manual_seed(2000 + seed)
    m = CLIPTextModel(cfg).eval()
    randomize(m, gen)
    if f16:
        round_f16(m)
    folder = os.path.join(outdir, name)
    os.makedirs(folder, exist_ok=True)
    c = {"architectures": ["CLIPTextModel"], "model_type": "clip_text_model", "torch_dtype": "float32"}
    c.update(cfg)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(c, f, indent=2)
        f.write("\n")
    save_safetensors(os.path.join(folder, "model.safetensors"),
                     state(m, torch.float16 if f16 else torch.float32))
    v = cfg["vocab_size"]
    ids = torch.randint(0, v, (b, n), generator=gen)
    ids[:, 0] = v - 2  # BOS-like first token, padding-like tail
    ids[:, n // 2:] = v - 1
    with torch.no_grad():
        h32 = m(ids)
        h64 = m.double()(ids)
        # causality: changing the last token must not change earlier positions
        ids2 = ids.clone()
        ids2[:, -1] = 3
        h64b = m(ids2)
    assert (h64b[:, :-1] - h64[:, :-1]).abs().max().item() < 1e-12
    save_safetensors(os.path.join(folder, "io.safetensors"), {"ids": ids, "ctx": h64.float()})
    print("%-12s params %6d  f32 rel %.2e  %d bytes"
          % (name, sum(p.numel() for p in m.parameters()), rel_max(h32.double(), h64), size_of(folder)))


def make_tokenizer(outdir):
    folder = os.path.join(outdir, "tok")
    os.makedirs(folder, exist_ok=True)
    vocab, merges = train_bpe(CAPTIONS, 120)
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump({"model_max_length": 77, "pad_token": "<|endoftext|>", "do_lower_case": True,
                   "tokenizer_class": "CLIPTokenizer"}, f, indent=2)
        f.write("\n")
    with open(os.path.join(folder, "prompts.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(PROMPTS) + "\n")
    tok = ClipTokenizer(vocab, merges)
    ids = torch.tensor([tok.encode(p) for p in PROMPTS], dtype=torch.int64)
    save_safetensors(os.path.join(folder, "io.safetensors"), {"ids": ids})
    inv = {v: k for k, v in vocab.items()}
    print("tok          vocab %d, %d merges; '%s' -> %s" % (len(vocab), len(merges), PROMPTS[0],
                                                        [inv[int(i)] for i in ids[0][:8]]))


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "tests", "golden_sd")
    os.makedirs(outdir, exist_ok=True)
    for n, s in UNET_CASES.items():
        make_unet(outdir, n, s)
    for n, s in VAE_CASES.items():
        make_vae(outdir, n, s)
    for n, s in CLIP_CASES.items():
        make_clip(outdir, n, s)
    make_tokenizer(outdir)


if __name__ == "__main__":
    main()
