"""Stable Diffusion components in plain PyTorch with diffusers/transformers names.

Owns the torch references used for cipherdm's SD goldens (tests/golden_sd):
  * UNet2DConditionModel  (CrossAttnDownBlock2D, CrossAttnUpBlock2D,
    UNetMidBlock2DCrossAttn, DownBlock2D, UpBlock2D, Transformer2DModel with
    conv or linear projections, BasicTransformerBlock with GEGLU)
  * AutoencoderKL decoder  (post_quant_conv + decoder.*; legacy attention names
    query/key/value/proj_attn can be written); AutoencoderKL adds the
    encoder (encoder.*, quant_conv.*) for training
  * CLIPTextModel          (text_model.*; causal self-attention, quick_gelu)
  * the CLIP BPE tokenizer (vocab.json + merges.txt) and a tiny BPE trainer.

Semantics follow /work/shared/reference/diffusers.md sections 2.2, 2.4, 2.5
and 4; state_dict() keys are exactly the diffusers / transformers names, so
the files load in those libraries and in cipherdm's C loaders.  Written from
the spec: no diffusers or transformers import, nothing copied.

Every module works in whatever dtype it is cast to (float64 for golden
references).  No global state.
"""

import json
import re

import torch
import torch.nn as nn
import torch.nn.functional as F

from unet2d import Attention as SpatialAttention  # noqa: F401  (mid-block attention, §2.5)
from unet2d import Downsample2D, TimestepEmbedding, Upsample2D, timestep_sinusoid

# ---------------------------------------------------------------- UNet2DCondition
UNET_COND_DEFAULTS = {
    "sample_size": None,
    "in_channels": 4,
    "out_channels": 4,
    "center_input_sample": False,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "block_out_channels": [320, 640, 1280, 1280],
    "layers_per_block": 2,
    "downsample_padding": 1,
    "mid_block_scale_factor": 1,
    "act_fn": "silu",
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "cross_attention_dim": 1280,
    "transformer_layers_per_block": 1,
    "attention_head_dim": 8,
    "num_attention_heads": None,
    "use_linear_projection": False,
    "time_embedding_dim": None,
}


def full_cond_config(cfg):
    out = dict(UNET_COND_DEFAULTS)
    for k, v in cfg.items():
        if not k.startswith("_") and k in out:
            out[k] = v
    return out


def per_block(v, n):
    return list(v) if isinstance(v, (list, tuple)) else [v] * n


class CondResnet(nn.Module):
    """ResnetBlock2D with "default" time embedding and SiLU (temb may be None
    for the VAE: then there is no time_emb_proj)."""

    def __init__(self, cin, cout, temb, eps, groups, osf=1.0):
        super().__init__()
        self.osf = osf
        self.norm1 = nn.GroupNorm(groups, cin, eps=eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb, cout) if temb else None
        self.norm2 = nn.GroupNorm(groups, cout, eps=eps)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb=None):
        h = self.conv1(F.silu(self.norm1(x)))
        if self.time_emb_proj is not None:
            h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        return (x + h) / self.osf


class XAttention(nn.Module):
    """diffusers Attention as BasicTransformerBlock builds it: to_q/k/v without
    bias, to_out.0 with bias, no norm and no residual inside."""

    def __init__(self, dim, heads, dh, kv_dim):
        super().__init__()
        self.heads, self.dh = heads, dh
        inner = heads * dh
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(kv_dim, inner, bias=False)
        self.to_v = nn.Linear(kv_dim, inner, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(inner, dim), nn.Dropout(0.0)])

    def forward(self, x, ctx=None):
        ctx = x if ctx is None else ctx
        b, n, _ = x.shape
        m = ctx.shape[1]
        q = self.to_q(x).reshape(b, n, self.heads, self.dh).transpose(1, 2)
        k = self.to_k(ctx).reshape(b, m, self.heads, self.dh).transpose(1, 2)
        v = self.to_v(ctx).reshape(b, m, self.heads, self.dh).transpose(1, 2)
        a = torch.softmax(q @ k.transpose(-1, -2) * self.dh ** -0.5, dim=-1)
        o = (a @ v).transpose(1, 2).reshape(b, n, self.heads * self.dh)
        return self.to_out[0](o)


class GEGLU(nn.Module):
    def __init__(self, din, dout):
        super().__init__()
        self.proj = nn.Linear(din, 2 * dout)

    def forward(self, x):
        a, gate = self.proj(x).chunk(2, dim=-1)  # first half value, second half gate
        return a * F.gelu(gate)  # exact erf GELU


class FeedForward(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.net = nn.ModuleList([GEGLU(dim, 4 * dim), nn.Dropout(0.0), nn.Linear(4 * dim, dim)])

    def forward(self, x):
        return self.net[2](self.net[1](self.net[0](x)))


class BasicTransformerBlock(nn.Module):
    def __init__(self, dim, heads, dh, cross_dim):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.attn1 = XAttention(dim, heads, dh, dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.attn2 = XAttention(dim, heads, dh, cross_dim)
        self.norm3 = nn.LayerNorm(dim, eps=1e-5)
        self.ff = FeedForward(dim)

    def forward(self, h, ctx):
        h = h + self.attn1(self.norm1(h))
        h = h + self.attn2(self.norm2(h), ctx)
        return h + self.ff(self.norm3(h))


class Transformer2DModel(nn.Module):
    def __init__(self, heads, dh, cin, cross_dim, groups, linear):
        super().__init__()
        inner = heads * dh
        self.linear = linear
        self.norm = nn.GroupNorm(groups, cin, eps=1e-6)
        if linear:
            self.proj_in = nn.Linear(cin, inner)
            self.proj_out = nn.Linear(inner, cin)
        else:
            self.proj_in = nn.Conv2d(cin, inner, 1)
            self.proj_out = nn.Conv2d(inner, cin, 1)
        self.transformer_blocks = nn.ModuleList([BasicTransformerBlock(inner, heads, dh, cross_dim)])

    def forward(self, x, ctx):
        b, c, hh, ww = x.shape
        h = self.norm(x)
        if not self.linear:
            h = self.proj_in(h)
        h = h.permute(0, 2, 3, 1).reshape(b, hh * ww, h.shape[1])
        if self.linear:
            h = self.proj_in(h)
        for blk in self.transformer_blocks:
            h = blk(h, ctx)
        if self.linear:
            h = self.proj_out(h)
        h = h.reshape(b, hh, ww, h.shape[-1]).permute(0, 3, 1, 2)
        if not self.linear:
            h = self.proj_out(h)
        return h + x


class CondDown(nn.Module):
    def __init__(self, cin, cout, L, temb, c, cross, last, heads, xdim):
        super().__init__()
        eps, g = c["norm_eps"], c["norm_num_groups"]
        self.resnets = nn.ModuleList([CondResnet(cin if j == 0 else cout, cout, temb, eps, g) for j in range(L)])
        self.attentions = nn.ModuleList(
            [Transformer2DModel(heads, cout // heads, cout, xdim, g, c["use_linear_projection"]) for _ in range(L)]
        ) if cross else None
        self.downsamplers = None if last else nn.ModuleList([Downsample2D(cout, c["downsample_padding"])])

    def forward(self, h, temb, ctx):
        out = []
        for j, r in enumerate(self.resnets):
            h = r(h, temb)
            if self.attentions is not None:
                h = self.attentions[j](h, ctx)
            out.append(h)
        if self.downsamplers is not None:
            h = self.downsamplers[0](h)
            out.append(h)
        return h, out


class CondUp(nn.Module):
    def __init__(self, cin, cout, prev, n, temb, c, cross, last, heads, xdim):
        super().__init__()
        eps, g = c["norm_eps"], c["norm_num_groups"]
        self.resnets = nn.ModuleList([
            CondResnet((prev if j == 0 else cout) + (cin if j == n - 1 else cout), cout, temb, eps, g)
            for j in range(n)])
        self.attentions = nn.ModuleList(
            [Transformer2DModel(heads, cout // heads, cout, xdim, g, c["use_linear_projection"]) for _ in range(n)]
        ) if cross else None
        self.upsamplers = None if last else nn.ModuleList([Upsample2D(cout)])

    def forward(self, h, skips, temb, ctx):
        for j, r in enumerate(self.resnets):
            h = r(torch.cat([h, skips.pop()], dim=1), temb)
            if self.attentions is not None:
                h = self.attentions[j](h, ctx)
        if self.upsamplers is not None:
            h = self.upsamplers[0](h)
        return h


class CondMid(nn.Module):
    def __init__(self, ch, temb, c, heads, xdim):
        super().__init__()
        eps, g, osf = c["norm_eps"], c["norm_num_groups"], float(c["mid_block_scale_factor"])
        self.resnets = nn.ModuleList([CondResnet(ch, ch, temb, eps, g, osf) for _ in range(2)])
        self.attentions = nn.ModuleList([Transformer2DModel(heads, ch // heads, ch, xdim, g, c["use_linear_projection"])])

    def forward(self, h, temb, ctx):
        h = self.resnets[0](h, temb)
        h = self.attentions[0](h, ctx)
        return self.resnets[1](h, temb)


class UNet2DConditionModel(nn.Module):
    def __init__(self, config):
        super().__init__()
        c = full_cond_config(config)
        if c["num_attention_heads"] is not None:
            raise ValueError("num_attention_heads must be null (diffusers refuses it too)")
        if c["transformer_layers_per_block"] not in (1, [1] * len(c["block_out_channels"])):
            raise ValueError("transformer_layers_per_block must be 1")
        self.config = c
        boc = list(c["block_out_channels"])
        n, L = len(boc), c["layers_per_block"]
        heads = per_block(c["attention_head_dim"], n)  # the historic misnaming: heads
        xdim = per_block(c["cross_attention_dim"], n)
        temb = c["time_embedding_dim"] or 4 * boc[0]
        self.conv_in = nn.Conv2d(c["in_channels"], boc[0], 3, padding=1)
        self.time_embedding = TimestepEmbedding(boc[0], temb)
        self.down_blocks = nn.ModuleList()
        cout = boc[0]
        for i, typ in enumerate(c["down_block_types"]):
            cin, cout = cout, boc[i]
            self.down_blocks.append(CondDown(cin, cout, L, temb, c, typ == "CrossAttnDownBlock2D", i == n - 1,
                                             heads[i], xdim[i]))
        self.mid_block = CondMid(boc[-1], temb, c, heads[-1], xdim[-1]) if c["mid_block_type"] else None
        self.up_blocks = nn.ModuleList()
        rev, rh, rx = boc[::-1], heads[::-1], xdim[::-1]
        cout = rev[0]
        for i, typ in enumerate(c["up_block_types"]):
            prev, cout = cout, rev[i]
            cin = rev[min(i + 1, n - 1)]
            self.up_blocks.append(CondUp(cin, cout, prev, L + 1, temb, c, typ == "CrossAttnUpBlock2D", i == n - 1,
                                         rh[i], rx[i]))
        self.conv_norm_out = nn.GroupNorm(c["norm_num_groups"], boc[0], eps=c["norm_eps"])
        self.conv_out = nn.Conv2d(boc[0], c["out_channels"], 3, padding=1)

    def forward(self, x, t, ctx):
        c = self.config
        if c["center_input_sample"]:
            x = 2 * x - 1.0
        t = torch.as_tensor(t) * torch.ones(x.shape[0], dtype=torch.int64)
        e = timestep_sinusoid(t, c["block_out_channels"][0], c["flip_sin_to_cos"], c["freq_shift"], x.dtype)
        emb = self.time_embedding(e)
        h = self.conv_in(x)
        skips = [h]
        for blk in self.down_blocks:
            h, res = blk(h, emb, ctx)
            skips += res
        if self.mid_block is not None:
            h = self.mid_block(h, emb, ctx)
        for blk in self.up_blocks:
            h = blk(h, skips, emb, ctx)
        return self.conv_out(F.silu(self.conv_norm_out(h)))


# ---------------------------------------------------------------- VAE decoder
VAE_DEFAULTS = {"in_channels": 3, "out_channels": 3, "up_block_types": ["UpDecoderBlock2D"],
                "block_out_channels": [64], "layers_per_block": 1, "act_fn": "silu", "latent_channels": 4,
                "norm_num_groups": 32, "scaling_factor": 0.18215, "mid_block_add_attention": True}


class VaeMidAttention(nn.Module):
    """UNetMidBlock2D attention of the VAE: one head of dim C, group_norm eps
    1e-6, bias, residual (§2.5)."""

    def __init__(self, ch, groups):
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, ch, eps=1e-6)
        self.to_q = nn.Linear(ch, ch)
        self.to_k = nn.Linear(ch, ch)
        self.to_v = nn.Linear(ch, ch)
        self.to_out = nn.ModuleList([nn.Linear(ch, ch), nn.Dropout(0.0)])

    def forward(self, x):
        b, c, hh, ww = x.shape
        s = self.group_norm(x).reshape(b, c, hh * ww).transpose(1, 2)
        q, k, v = self.to_q(s), self.to_k(s), self.to_v(s)
        a = torch.softmax(q @ k.transpose(-1, -2) * c ** -0.5, dim=-1)
        o = self.to_out[0](a @ v).transpose(1, 2).reshape(b, c, hh, ww)
        return o + x


class VaeMid(nn.Module):
    def __init__(self, ch, groups, attn):
        super().__init__()
        self.resnets = nn.ModuleList([CondResnet(ch, ch, None, 1e-6, groups) for _ in range(2)])
        self.attentions = nn.ModuleList([VaeMidAttention(ch, groups)]) if attn else None

    def forward(self, h):
        h = self.resnets[0](h)
        if self.attentions is not None:
            h = self.attentions[0](h)
        return self.resnets[1](h)


class UpDecoderBlock2D(nn.Module):
    def __init__(self, cin, cout, n, groups, last):
        super().__init__()
        self.resnets = nn.ModuleList([CondResnet(cin if j == 0 else cout, cout, None, 1e-6, groups) for j in range(n)])
        self.upsamplers = None if last else nn.ModuleList([Upsample2D(cout)])

    def forward(self, h):
        for r in self.resnets:
            h = r(h)
        return h if self.upsamplers is None else self.upsamplers[0](h)


class Decoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        boc, g = list(c["block_out_channels"]), c["norm_num_groups"]
        self.conv_in = nn.Conv2d(c["latent_channels"], boc[-1], 3, padding=1)
        self.mid_block = VaeMid(boc[-1], g, c["mid_block_add_attention"])
        rev = boc[::-1]
        self.up_blocks = nn.ModuleList()
        cout = rev[0]
        for i in range(len(boc)):
            cin, cout = cout, rev[i]
            self.up_blocks.append(UpDecoderBlock2D(cin, cout, c["layers_per_block"] + 1, g, i == len(boc) - 1))
        self.conv_norm_out = nn.GroupNorm(g, boc[0], eps=1e-6)
        self.conv_out = nn.Conv2d(boc[0], c["out_channels"], 3, padding=1)

    def forward(self, z):
        h = self.mid_block(self.conv_in(z))
        for blk in self.up_blocks:
            h = blk(h)
        return self.conv_out(F.silu(self.conv_norm_out(h)))


class AutoencoderKLDecoder(nn.Module):
    """The decode half of AutoencoderKL: decode(z) = decoder(post_quant_conv(z))."""

    def __init__(self, config):
        super().__init__()
        c = dict(VAE_DEFAULTS)
        c.update({k: v for k, v in config.items() if k in VAE_DEFAULTS})
        self.config = c
        self.post_quant_conv = nn.Conv2d(c["latent_channels"], c["latent_channels"], 1)
        self.decoder = Decoder(c)

    def forward(self, z):
        return self.decoder(self.post_quant_conv(z))


class DownEncoderBlock2D(nn.Module):
    """VAE encoder block: L resnets without temb (eps 1e-6), then (except the
    last block) a stride-2 conv with diffusers' padding 0 (pad right/bottom)."""

    def __init__(self, cin, cout, n, groups, last):
        super().__init__()
        self.resnets = nn.ModuleList([CondResnet(cin if j == 0 else cout, cout, None, 1e-6, groups) for j in range(n)])
        self.downsamplers = None if last else nn.ModuleList([Downsample2D(cout, 0)])

    def forward(self, h):
        for r in self.resnets:
            h = r(h)
        return h if self.downsamplers is None else self.downsamplers[0](h)


class Encoder(nn.Module):
    """diffusers vae.Encoder with double_z: conv_in, DownEncoderBlock2D per
    level, mid block (resnet, attention, resnet), GN, SiLU, conv_out to
    2*latent_channels (mean and log-variance)."""

    def __init__(self, c):
        super().__init__()
        boc, g = list(c["block_out_channels"]), c["norm_num_groups"]
        self.conv_in = nn.Conv2d(c["in_channels"], boc[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        cout = boc[0]
        for i in range(len(boc)):
            cin, cout = cout, boc[i]
            self.down_blocks.append(DownEncoderBlock2D(cin, cout, c["layers_per_block"], g, i == len(boc) - 1))
        self.mid_block = VaeMid(boc[-1], g, c["mid_block_add_attention"])
        self.conv_norm_out = nn.GroupNorm(g, boc[-1], eps=1e-6)
        self.conv_out = nn.Conv2d(boc[-1], 2 * c["latent_channels"], 3, padding=1)

    def forward(self, x):
        h = self.conv_in(x)
        for blk in self.down_blocks:
            h = blk(h)
        return self.conv_out(F.silu(self.conv_norm_out(self.mid_block(h))))


class AutoencoderKL(AutoencoderKLDecoder):
    """The whole AutoencoderKL (for training): the decoder half above plus
    encoder.* and quant_conv.*.  encode(x) returns the posterior mean and
    log-variance (clamped to [-30, 20] as diffusers does)."""

    def __init__(self, config):
        super().__init__(config)
        lat = self.config["latent_channels"]
        self.encoder = Encoder(self.config)
        self.quant_conv = nn.Conv2d(2 * lat, 2 * lat, 1)

    def encode(self, x):
        mean, logvar = self.quant_conv(self.encoder(x)).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)


# ---------------------------------------------------------------- CLIP text
CLIP_DEFAULTS = {"vocab_size": 49408, "hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 12,
                 "num_attention_heads": 8, "max_position_embeddings": 77, "hidden_act": "quick_gelu",
                 "layer_norm_eps": 1e-5}


class ClipAttention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads, self.dh = heads, d // heads
        self.q_proj, self.k_proj = nn.Linear(d, d), nn.Linear(d, d)
        self.v_proj, self.out_proj = nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, x):
        b, n, d = x.shape

        def split(m):
            return m.reshape(b, n, self.heads, self.dh).transpose(1, 2)

        q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        s = q @ k.transpose(-1, -2) * self.dh ** -0.5
        mask = torch.ones(n, n, dtype=torch.bool).triu(1)  # key j > query i is masked
        s = s.masked_fill(mask, float("-inf"))
        o = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(b, n, d)
        return self.out_proj(o)


class ClipMLP(nn.Module):
    def __init__(self, d, inter, act):
        super().__init__()
        self.act = act
        self.fc1, self.fc2 = nn.Linear(d, inter), nn.Linear(inter, d)

    def forward(self, x):
        h = self.fc1(x)
        h = h * torch.sigmoid(1.702 * h) if self.act == "quick_gelu" else F.gelu(h)
        return self.fc2(h)


class ClipLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, eps = c["hidden_size"], c["layer_norm_eps"]
        self.layer_norm1 = nn.LayerNorm(d, eps=eps)
        self.self_attn = ClipAttention(d, c["num_attention_heads"])
        self.layer_norm2 = nn.LayerNorm(d, eps=eps)
        self.mlp = ClipMLP(d, c["intermediate_size"], c["hidden_act"])

    def forward(self, h):
        h = h + self.self_attn(self.layer_norm1(h))
        return h + self.mlp(self.layer_norm2(h))


class ClipEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.token_embedding = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.position_embedding = nn.Embedding(c["max_position_embeddings"], c["hidden_size"])


class ClipEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layers = nn.ModuleList([ClipLayer(c) for _ in range(c["num_hidden_layers"])])


class ClipTextTransformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings = ClipEmbeddings(c)
        self.encoder = ClipEncoder(c)
        self.final_layer_norm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])


class CLIPTextModel(nn.Module):
    def __init__(self, config):
        super().__init__()
        c = dict(CLIP_DEFAULTS)
        c.update({k: v for k, v in config.items() if k in CLIP_DEFAULTS})
        if c["hidden_act"] not in ("quick_gelu", "gelu"):
            raise ValueError("hidden_act %r is not supported" % (c["hidden_act"],))
        self.config = c
        self.text_model = ClipTextTransformer(c)

    def forward(self, ids):
        tm = self.text_model
        n = ids.shape[1]
        h = tm.embeddings.token_embedding(ids) + tm.embeddings.position_embedding.weight[:n][None]
        for layer in tm.encoder.layers:
            h = layer(h)
        return tm.final_layer_norm(h)  # last_hidden_state


# ---------------------------------------------------------------- CLIP BPE
def bytes_to_unicode():
    """Byte -> printable unicode character of GPT-2/CLIP byte-level BPE: the
    printable Latin-1 bytes map to themselves, the rest to 256, 257, ..."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
        list(range(ord("\xae"), ord("\xff") + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


# CLIP's pre-tokenizer with \p{L} -> ASCII letters or any non-ASCII character
# (the C tokenizer treats every byte >= 0x80 as part of a letter run).
PRETOK = re.compile(r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|"
                    r"[a-zA-Z\u0080-\U0010ffff]+|[0-9]|[^\sa-zA-Z0-9\u0080-\U0010ffff]+")


def clean_text(text):
    return " ".join(text.split()).lower()


class ClipTokenizer:
    def __init__(self, vocab, merges, max_length=77, pad=None):
        self.vocab = vocab
        self.ranks = {tuple(m.split()): i for i, m in enumerate(merges)}
        self.bos, self.eos = vocab["<|startoftext|>"], vocab["<|endoftext|>"]
        self.pad = vocab[pad] if pad else self.eos
        self.max_length = max_length
        self.byte_enc = bytes_to_unicode()

    @classmethod
    def load(cls, folder):
        import os
        with open(os.path.join(folder, "vocab.json"), encoding="utf-8") as f:
            vocab = json.load(f)
        with open(os.path.join(folder, "merges.txt"), encoding="utf-8") as f:
            merges = f.read().strip().split("\n")[1:49152 - 256 - 2 + 1]
        return cls(vocab, merges)

    def bpe(self, token):
        if token in ("<|startoftext|>", "<|endoftext|>"):
            return [token]
        word = list(token[:-1]) + [token[-1] + "</w>"]
        while len(word) > 1:
            pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            out, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            word = out
        return word

    def encode(self, text):
        ids = []
        for tok in PRETOK.findall(clean_text(text)):
            enc = "".join(self.byte_enc[b] for b in tok.encode("utf-8"))
            ids += [self.vocab.get(p, self.eos) for p in self.bpe(enc)]
        ids = [self.bos] + ids[:self.max_length - 2] + [self.eos]
        return ids + [self.pad] * (self.max_length - len(ids))


def train_bpe(corpus, n_merges):
    """A tiny CLIP-style BPE: vocab = 256 byte characters, the same with
    </w>, the learned merges, then <|startoftext|> and <|endoftext|>."""
    enc = bytes_to_unicode()
    freq = {}
    for line in corpus:
        for tok in PRETOK.findall(clean_text(line)):
            e = "".join(enc[b] for b in tok.encode("utf-8"))
            w = tuple(e[:-1]) + (e[-1] + "</w>",)
            freq[w] = freq.get(w, 0) + 1
    merges = []
    for _ in range(n_merges):
        counts = {}
        for w, f in freq.items():
            for i in range(len(w) - 1):
                counts[w[i:i + 2]] = counts.get(w[i:i + 2], 0) + f
        if not counts:
            break
        best = max(sorted(counts), key=lambda p: counts[p])
        merges.append(best)
        nf = {}
        for w, f in freq.items():
            out, i = [], 0
            while i < len(w):
                if i < len(w) - 1 and w[i:i + 2] == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            nf[tuple(out)] = nf.get(tuple(out), 0) + f
        freq = nf
    chars = [enc[b] for b in range(256)]
    vocab_list = chars + [c + "</w>" for c in chars] + ["".join(m) for m in merges] + \
        ["<|startoftext|>", "<|endoftext|>"]
    vocab = {}
    for v in vocab_list:
        vocab.setdefault(v, len(vocab))
    return vocab, [" ".join(m) for m in merges]
