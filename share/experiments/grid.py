#!/usr/bin/env python3
"""grid.py OUT.png COLS FILE...: tile F32 safetensors images (tensor `x`,
[1,C,H,W], model space [-1,1]) into a PNG, COLS per row, row-major, with a
2-pixel gap; a missing FILE ('-') leaves its cell mid-gray. Pixel mapping as
diffusers: round(clamp(x/2+0.5, 0, 1)*255). Standard library only."""
import json, os, struct, sys, zlib

def load(path):
    with open(path, 'rb') as fh:
        n = struct.unpack('<Q', fh.read(8))[0]
        head = json.loads(fh.read(n))
        t = head['x']
        assert t['dtype'] == 'F32', path
        a, b = t['data_offsets']
        fh.seek(8 + n + a)
        vals = struct.unpack('<%df' % ((b - a) // 4), fh.read(b - a))
    _, c, h, w = t['shape']
    pix = [round(min(max(v / 2 + 0.5, 0.0), 1.0) * 255) for v in vals]
    return c, h, w, pix

out, cols, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
imgs = [load(f) if f != '-' and os.path.exists(f) else None for f in files]
c, h, w, _ = next(i for i in imgs if i)
gap, rows = 2, (len(files) + cols - 1) // cols
W, H = cols * (w + gap) - gap, rows * (h + gap) - gap
canvas = bytearray([255] * (W * H * c))
for k, im in enumerate(imgs):
    y0, x0 = (k // cols) * (h + gap), (k % cols) * (w + gap)
    for y in range(h):
        for x in range(w):
            for ch in range(c):
                v = im[3][(ch * h + y) * w + x] if im else 128
                canvas[((y0 + y) * W + x0 + x) * c + ch] = v
raw = b''.join(b'\0' + bytes(canvas[y * W * c:(y + 1) * W * c]) for y in range(H))
def chunk(tag, data):
    return struct.pack('>I', len(data)) + tag + data + struct.pack('>I', zlib.crc32(tag + data))
png = (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', W, H, 8, 0 if c == 1 else 2,
       0, 0, 0)) + chunk(b'IDAT', zlib.compress(raw, 9)) + chunk(b'IEND', b''))
with open(out + '.tmp', 'wb') as fh:
    fh.write(png)
os.rename(out + '.tmp', out)
