#!/usr/bin/env python3
"""results.py CSV MD JSON...: collect cdm-bench model --json outputs
(<dir>/<suite>.json, each next to <suite>.psnr from cdm-reveal --psnr) into
one CSV and one markdown table, rows in the order given. Ratios against spu
use the spu file of the same directory (model, sampler, steps) when given:
separate cdm-bench runs, medians of each."""
import csv, json, os, subprocess, sys, time

csv_path, md_path, files = sys.argv[1], sys.argv[2], sys.argv[3:]
loaded = {}
for f in files:
    with open(f) as fh:
        j = json.load(fh)
    loaded[f] = (j, j['suites'][0])
rows = []
for f in files:
    j, s = loaded[f]
    d = os.path.dirname(f)
    model = os.path.basename(os.path.dirname(d))
    spu = loaded.get(os.path.join(d, 'spu.json'), (None, None))[1]
    psnr = ''
    p = f[:-5] + '.psnr'
    if os.path.exists(p):
        with open(p) as fh:
            psnr = fh.read().split()[0].split('=')[1]
    ratio = lambda a, b: '%.2f' % (a / b) if spu and b else ''
    plain = j['plaintext_seconds']
    rows.append({
        'model': model, 'sampler': j['sampler'], 'steps': j['steps'], 'suite': s['suite'],
        'seconds': '%.2f' % s['seconds'], 'bytes_mb': '%.1f' % (s['bytes_sent'] / 1e6),
        'rounds': s['rounds'],
        'call_seconds': '%.3f' % s['per_unet_call']['seconds'],
        'call_mb': '%.2f' % (s['per_unet_call']['bytes_sent'] / 1e6),
        'call_rounds': s['per_unet_call']['rounds'],
        'peak_rss_mb': '%.0f' % (s['peak_rss_bytes'] / 1048576),
        'plain_seconds': '%.3f' % plain if plain else '',
        'secure_over_plain': '%.0f' % (s['seconds'] / plain) if plain else '',
        'spu_over_bytes': ratio(spu['bytes_sent'], s['bytes_sent']) if spu else '',
        'spu_over_rounds': ratio(spu['rounds'], s['rounds']) if spu else '',
        'spu_over_time': ratio(spu['seconds'], s['seconds']) if spu else '',
        'psnr_db': psnr,
    })
fields = list(rows[0].keys()) if rows else ['model']
with open(csv_path + '.tmp', 'w', newline='') as fh:
    w = csv.DictWriter(fh, fieldnames=fields)
    w.writeheader()
    w.writerows(rows)
os.rename(csv_path + '.tmp', csv_path)
head = ['model', 'sampler', 'steps', 'suite', 'time s', 'MB', 'rounds', 'UNet call s',
        'call MB', 'call rounds', 'RSS MB', 'plain s', 'x plain', 'spu/ bytes',
        'spu/ rounds', 'spu/ time', 'PSNR dB']
with open(md_path + '.tmp', 'w') as fh:
    fh.write('| ' + ' | '.join(head) + ' |\n|' + '---|' * len(head) + '\n')
    for r in rows:
        fh.write('| ' + ' | '.join(str(r[k]) for k in fields) + ' |\n')
    fh.write('\nTimes are medians of the runs (three party processes over TCP loopback on this '
             'machine); MB and rounds are exact (all parties; rounds of one party). '
             '"spu/" columns: the spu suite\'s figure divided by the row\'s (> 1: cheaper than '
             'spu). PSNR: 8-bit image against the plaintext float32 sampler from the same x_T; '
             'for DDPM the per-step noise differs (jointly generated in the secure run), so its '
             'PSNR is not a fidelity measure. Images: grid.png, one row per model and sampler '
             'in table order, columns: plaintext, then the suites in the order of the rows.\n')
    try:
        rev = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True,
                             text=True).stdout.strip()
    except OSError:
        rev = ''
    fh.write('\nTable written %s (git %s); load average at that time %.1f on %d CPUs '
             '(the runs share the machine).\n' % (time.strftime('%Y-%m-%d %H:%M'),
             rev or '?', os.getloadavg()[0], os.cpu_count() or 0))
os.rename(md_path + '.tmp', md_path)
