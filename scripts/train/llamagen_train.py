#!/usr/bin/python3
"""Trains argen's default LlamaGen-architecture digit model: a small VQ-16 tokenizer (VQModel) on the 9,000-digit
train split at 128x128 (8x8 tokens), then a small class-conditional raster GPT on its tokens. Exports fp16
safetensors in the names argen's loaders read (llamagen_model.py) and checks them against the C binary.

Subcommands (all seeded, one CPU thread unless --threads; --device cuda works with a CUDA torch):
  vq      train the tokenizer, export assets/llamagen_digits_vq.safetensors   (log: <out>/llamagen_vq.log)
  tokens  encode the train split with the exported (fp16) tokenizer -> <out>/llamagen_tokens.npz
  gpt     train the GPT on those tokens, export assets/llamagen_digits.safetensors (log: <out>/llamagen_gpt.log)
  recon   reconstruct held-out digits with the exported tokenizer into a PNG dir (score with score_samples.py)
  meta    rewrite the GPT file's sampling defaults (--cfg --top-k --top-p --temperature)
  verify  random (or given) weights -> argen sample --top-k 1 vs a greedy PyTorch generate (tokens must be equal),
          then the PNGs vs the PyTorch decode of the same tokens (max 8-bit level difference)

Presets (--preset cpu is what ships): see PRESETS.
Usage: /usr/bin/python3 scripts/train/llamagen_train.py vq [--preset cpu] [--device cpu]
       /usr/bin/python3 scripts/train/llamagen_train.py tokens
       /usr/bin/python3 scripts/train/llamagen_train.py gpt [--preset cpu]
       /usr/bin/python3 scripts/train/llamagen_train.py verify [--argen build-ll/argen] [--groups 32]
                 [--vq-file assets/llamagen_digits_vq.safetensors --ckpt-file assets/llamagen_digits.safetensors]
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, '..', '..'))
sys.path.insert(0, HERE)

import digits  # noqa: E402
import st_io  # noqa: E402
from llamagen_model import GPT, VQModel, fp16_state, load_fp16_into  # noqa: E402

OUT = os.path.join(HERE, 'out')
VQ_ASSET = os.path.join(ROOT, 'assets', 'llamagen_digits_vq.safetensors')
GPT_ASSET = os.path.join(ROOT, 'assets', 'llamagen_digits.safetensors')

PRESETS = {
    # shipped: trains on 2 shared CPU cores in well under an hour
    'cpu': dict(vq=dict(ch=8, ch_mult=(1, 1, 2, 2, 4), num_res_blocks=1, z_channels=32, codebook_size=512,
                        codebook_embed_dim=8, norm_groups=8),
                vq_train=dict(steps=6000, batch=8, lr=1e-3),
                gpt=dict(n_layer=6, n_head=2, dim=128, class_dropout=0.1),
                gpt_train=dict(steps=900, batch=64, lr=1e-3)),
    # larger: for a GPU (official GroupNorm 32 groups)
    'gpu': dict(vq=dict(ch=32, ch_mult=(1, 1, 2, 2, 4), num_res_blocks=2, z_channels=64, codebook_size=1024,
                        codebook_embed_dim=8, norm_groups=32),
                vq_train=dict(steps=20000, batch=32, lr=5e-4),
                gpt=dict(n_layer=12, n_head=4, dim=256, class_dropout=0.1),
                gpt_train=dict(steps=20000, batch=128, lr=5e-4)),
}
IMAGE_SIZE = 128
GRID = 8


class Log:
    def __init__(self, path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.f = open(path, 'a')

    def __call__(self, *a):
        s = ' '.join(str(x) for x in a)
        print(s, flush=True)
        self.f.write(s + '\n')
        self.f.flush()


def lr_at(step, steps, base, warmup=100):
    if step < warmup:
        return base * (step + 1) / warmup
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup))))


def train_images():
    """(train images (9000, 128, 128, 3) uint8, labels) from digits.py's fixed split."""
    images, labels = digits.select('train')
    return digits.generator_images(images, IMAGE_SIZE), labels.astype(np.int64)


def to_input(u8, device):
    x = torch.from_numpy(u8).to(device).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


def to_u8(x):
    """[B, 3, H, W] float -> [B, H, W, 3] uint8: round_half_up(127.5 * (clamp(x, -1, 1) + 1)) (raster.md §8.6)."""
    return torch.floor(127.5 * (x.clamp(-1, 1) + 1) + 0.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def vq_meta(cfg):
    return {'argen_model': 'vq16', 'norm_groups': str(cfg['norm_groups'])}


def load_vq(path):
    sd, meta = st_io.load(path)
    E = sd['quantize.embedding.weight']
    ch = sd['encoder.conv_in.weight'].shape[0]
    nres = 0
    while f'encoder.conv_blocks.0.res.{nres}.conv1.weight' in sd:
        nres += 1
    L = 0
    while f'encoder.conv_blocks.{L}.res.0.conv1.weight' in sd:
        L += 1
    mult = [sd[f'encoder.conv_blocks.{i}.res.0.conv2.weight'].shape[0] // ch for i in range(L)]
    m = VQModel(ch=ch, ch_mult=mult, num_res_blocks=nres, z_channels=sd['encoder.conv_out.weight'].shape[0],
                codebook_size=E.shape[0], codebook_embed_dim=E.shape[1], norm_groups=int(meta.get('norm_groups', 32)))
    m.load_state_dict(sd)
    return m.eval(), meta


def load_gpt(path, heads=None):
    sd, meta = st_io.load(path)
    V, D = sd['tok_embeddings.weight'].shape
    L = 0
    while f'layers.{L}.attention.wqkv.weight' in sd:
        L += 1
    H = heads or int(meta.get('heads', D // 64))
    m = GPT(vocab_size=V, n_layer=L, n_head=H, dim=D, num_classes=sd['cls_embedding.embedding_table.weight'].shape[0] - 1,
            grid=GRID)
    m.load_state_dict(sd)
    return m.eval(), meta


# ------------------------------------------------------------------------------------------------- tokenizer
def cmd_vq(args):
    P = PRESETS[args.preset]
    tr = dict(P['vq_train'])
    if args.steps:
        tr['steps'] = args.steps
    log = Log(os.path.join(args.out, 'llamagen_vq.log'))
    torch.manual_seed(args.seed)
    dev = torch.device(args.device)
    imgs, _ = train_images()
    model = VQModel(**P['vq']).to(dev)
    log(f'vq: preset {args.preset} config {json.dumps(model.cfg)} train {json.dumps(tr)} '
        f'params {sum(p.numel() for p in model.parameters())} images {len(imgs)} device {dev}')
    opt = torch.optim.Adam(model.parameters(), lr=tr['lr'], betas=(0.9, 0.95))
    rng = np.random.RandomState(args.seed)
    order, pos = rng.permutation(len(imgs)), 0
    V = P['vq']['codebook_size']
    usage = torch.zeros(V, dtype=torch.long)
    t0, acc = time.time(), np.zeros(4)
    for step in range(tr['steps']):
        if pos + tr['batch'] > len(order):
            order, pos = rng.permutation(len(imgs)), 0
        idx = order[pos:pos + tr['batch']]
        pos += tr['batch']
        x = to_input(imgs[idx], dev)
        for g in opt.param_groups:
            g['lr'] = lr_at(step, tr['steps'], tr['lr'])
        rec, tok, qloss, zf = model(x)
        mse = F.mse_loss(rec, x)
        l1 = (rec - x).abs().mean()
        loss = mse + l1 + qloss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        usage += torch.bincount(tok.flatten().cpu(), minlength=V)
        acc += [loss.item(), mse.item(), l1.item(), qloss.item()]
        # dead-code restart: codes unused for the last 200 steps take random current latents (deterministic: torch RNG)
        if (step + 1) % 200 == 0 and step + 1 < tr['steps'] * 0.8:
            dead = (usage == 0).nonzero().flatten()
            if len(dead):
                with torch.no_grad():
                    pick = torch.randint(0, zf.shape[0], (len(dead),))
                    model.quantize.embedding.weight.data[dead.to(dev)] = zf.detach()[pick.to(dev)] + \
                        0.01 * torch.randn(len(dead), zf.shape[1]).to(dev)
            used = int((usage > 0).sum())
            usage.zero_()
            n = 200
            log(f'step {step + 1} loss {acc[0] / n:.4f} mse {acc[1] / n:.5f} l1 {acc[2] / n:.4f} vq {acc[3] / n:.5f} '
                f'codes used {used}/{V} restarted {len(dead)} lr {opt.param_groups[0]["lr"]:.2e} '
                f'{time.time() - t0:.0f}s')
            acc[:] = 0
        elif (step + 1) % 200 == 0:
            used = int((usage > 0).sum())
            usage.zero_()
            log(f'step {step + 1} loss {acc[0] / 200:.4f} mse {acc[1] / 200:.5f} l1 {acc[2] / 200:.4f} '
                f'vq {acc[3] / 200:.5f} codes used {used}/{V} lr {opt.param_groups[0]["lr"]:.2e} {time.time() - t0:.0f}s')
            acc[:] = 0
        if (step + 1) % 1000 == 0 or step + 1 == tr['steps']:
            torch.save(model.state_dict(), os.path.join(args.out, 'llamagen_vq_last.pt'))
    model.cpu()
    st_io.save(args.vq, fp16_state(model), vq_meta(model.cfg))
    log(f'vq: {tr["steps"]} steps in {time.time() - t0:.0f}s, exported {args.vq}')


def cmd_tokens(args):
    torch.set_grad_enabled(False)
    model, _ = load_vq(args.vq)
    imgs, labels = train_images()
    toks = []
    err = 0.0
    for i in range(0, len(imgs), 100):
        x = to_input(imgs[i:i + 100], 'cpu')
        _, tok, _, _ = model.encode(x)
        toks.append(tok.numpy().astype(np.int32))
        if i < 1000:
            err += F.mse_loss(model.decode_code(tok, GRID), x).item() * len(x)
    toks = np.concatenate(toks)
    V = model.cfg['codebook_size']
    cnt = np.bincount(toks.flatten(), minlength=V)
    p = cnt / cnt.sum()
    ent = -(p[p > 0] * np.log2(p[p > 0])).sum()
    path = os.path.join(args.out, 'llamagen_tokens.npz')
    np.savez(path, tokens=toks, labels=labels)
    print(f'tokens: {toks.shape} -> {path}; codes used {int((cnt > 0).sum())}/{V}, entropy {ent:.2f} bits; '
          f'recon mse (first 1000) {err / 1000:.5f}')


def cmd_recon(args):
    """Held-out digits through encode/decode (fp16 weights) -> PNGs <i>_c<class>.png."""
    from pngio import write_png
    torch.set_grad_enabled(False)
    model, _ = load_vq(args.vq)
    images, labels = digits.select('heldout')
    rgb = digits.generator_images(images, IMAGE_SIZE)
    os.makedirs(args.dir, exist_ok=True)
    err = 0.0
    for i in range(0, len(rgb), 100):
        x = to_input(rgb[i:i + 100], 'cpu')
        _, tok, _, _ = model.encode(x)
        rec = model.decode_code(tok, GRID)
        err += F.mse_loss(rec, x).item() * len(x)
        for j, im in enumerate(to_u8(rec)):
            write_png(os.path.join(args.dir, f'{i + j}_c{labels[i + j]}.png'), im)
    print(f'recon: {len(rgb)} held-out digits -> {args.dir}; mse {err / len(rgb):.5f} (images in [-1, 1])')


# ------------------------------------------------------------------------------------------------------- GPT
def gpt_meta(m, cfg, top_k, top_p, temperature):
    return {'argen_model': 'llamagen', 'image_size': str(IMAGE_SIZE), 'heads': str(m.cfg['n_head']),
            'cfg': str(cfg), 'top_k': str(top_k), 'top_p': str(top_p), 'temperature': str(temperature)}


def cmd_gpt(args):
    P = PRESETS[args.preset]
    tr = dict(P['gpt_train'])
    if args.steps:
        tr['steps'] = args.steps
    log = Log(os.path.join(args.out, 'llamagen_gpt.log'))
    torch.manual_seed(args.seed)
    dev = torch.device(args.device)
    z = np.load(os.path.join(args.out, 'llamagen_tokens.npz'))
    toks, labels = torch.from_numpy(z['tokens'].astype(np.int64)), torch.from_numpy(z['labels'].astype(np.int64))
    V = st_io.load(args.vq)[0]['quantize.embedding.weight'].shape[0]
    model = GPT(vocab_size=V, num_classes=10, grid=GRID, **P['gpt']).to(dev)
    log(f'gpt: preset {args.preset} config {json.dumps(model.cfg)} train {json.dumps(tr)} '
        f'params {sum(p.numel() for p in model.parameters())} sequences {len(toks)} device {dev}')
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    nodecay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{'params': decay, 'weight_decay': 0.05}, {'params': nodecay, 'weight_decay': 0.0}],
                            lr=tr['lr'], betas=(0.9, 0.95))
    rng = np.random.RandomState(args.seed)
    order, pos = rng.permutation(len(toks)), 0
    t0, acc, n = time.time(), 0.0, 0
    for step in range(tr['steps']):
        if pos + tr['batch'] > len(order):
            order, pos = rng.permutation(len(toks)), 0
        idx = torch.from_numpy(order[pos:pos + tr['batch']])
        pos += tr['batch']
        x, y = toks[idx].to(dev), labels[idx].to(dev)
        for g in opt.param_groups:
            g['lr'] = lr_at(step, tr['steps'], tr['lr'])
        logits = model(y, x)
        loss = F.cross_entropy(logits.reshape(-1, V), x.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        acc += loss.item()
        n += 1
        if (step + 1) % 50 == 0:
            log(f'step {step + 1} loss {acc / n:.4f} lr {opt.param_groups[0]["lr"]:.2e} {time.time() - t0:.0f}s')
            acc, n = 0.0, 0
        if (step + 1) % 500 == 0 or step + 1 == tr['steps']:
            torch.save(model.state_dict(), os.path.join(args.out, 'llamagen_gpt_last.pt'))
    model.cpu().eval()
    st_io.save(args.ckpt, fp16_state(model), gpt_meta(model, args.cfg, args.top_k, args.top_p, args.temperature))
    log(f'gpt: {tr["steps"]} steps in {time.time() - t0:.0f}s, exported {args.ckpt}')


def cmd_meta(args):
    """Rewrite the GPT file's sampling defaults (after a sweep) without touching the weights."""
    sd, meta = st_io.load(args.ckpt)
    meta.update({'cfg': str(args.cfg), 'top_k': str(args.top_k), 'top_p': str(args.top_p),
                 'temperature': str(args.temperature)})
    st_io.save(args.ckpt, {k: v.to(torch.float16) for k, v in sd.items()}, meta)
    print(f'{args.ckpt}: metadata {meta}')


# ---------------------------------------------------------------------------------------------------- verify
def cmd_verify(args):
    from pngio import read_png
    torch.manual_seed(args.seed)
    torch.set_grad_enabled(False)
    tmp = tempfile.mkdtemp(prefix='llamagen_verify_')
    if args.vq_file and args.ckpt_file:
        vq_path, gpt_path = args.vq_file, args.ckpt_file
    else:  # random weights, scaled so that logits are well separated and the decoder output spans [-1, 1]
        P = PRESETS[args.preset]
        vcfg = dict(P['vq'])
        if args.groups:
            vcfg['norm_groups'] = args.groups
            vcfg['ch'] = max(vcfg['ch'], args.groups)
        vq = VQModel(**vcfg)
        gpt = GPT(vocab_size=vcfg['codebook_size'], num_classes=10, grid=GRID, **P['gpt'])
        for n, p in gpt.named_parameters():
            if p.dim() >= 2:
                p.normal_(0, 0.5 if n == 'output.weight' else 0.1)
            else:
                p.uniform_(0.5, 1.5)
        for n, p in vq.named_parameters():
            if 'norm' in n:
                p.uniform_(0.5, 1.5) if n.endswith('weight') else p.normal_(0, 0.1)
        vq.quantize.embedding.weight.normal_()
        vq_path, gpt_path = os.path.join(tmp, 'vq.safetensors'), os.path.join(tmp, 'gpt.safetensors')
        st_io.save(vq_path, fp16_state(vq), vq_meta(vq.cfg))
        st_io.save(gpt_path, fp16_state(gpt), gpt_meta(gpt, 4.0, 0, 1.0, 1.0))
    vq, _ = load_vq(vq_path)       # fp16-rounded weights, computed in fp32
    gpt, gmeta = load_gpt(gpt_path)
    classes = [int(c) for c in args.classes.split(',')]
    ok = True
    for cfg in args.cfgs:
        d = os.path.join(tmp, f'cfg{cfg}')
        cmd = [args.argen, 'sample', '--arch', 'llamagen', '--vq', vq_path, '--ckpt', gpt_path, '--image-size',
               str(IMAGE_SIZE), '--heads', str(gpt.cfg['n_head']), '--class', args.classes, '--top-k', '1',
               '--cfg', str(cfg), '--tokens-out', os.path.join(d, 'tok.json'), '--out', d, '-q', '--device', 'cpu']
        for dec in args.decode:
            dd = d + '_' + dec
            c2 = [a if a != d else dd for a in cmd] + ['--decode', dec] + (['--zipar-window', '4'] if dec == 'zipar' else [])
            c2[c2.index('--tokens-out') + 1] = os.path.join(dd, 'tok.json')
            r = subprocess.run(c2, capture_output=True, text=True)
            if r.returncode:
                print(' '.join(c2))
                print(r.stdout, r.stderr)
                return 1
            got = np.array(json.load(open(os.path.join(dd, 'tok.json')))['tokens'])
            ref = gpt.generate_greedy(torch.tensor(classes), float(cfg)).numpy()
            same = (got == ref)
            print(f'verify gpt: cfg {cfg} decode {dec} classes {args.classes}: C tokens == PyTorch greedy tokens: '
                  f'{int(same.sum())}/{same.size}' + ('' if same.all() else f'  first diff at {np.argwhere(~same)[0]}'))
            if dec != 'zipar':  # ZipAR starts rows early (a different context): not the raster greedy sequence
                ok &= bool(same.all())
            pix = to_u8(vq.decode_code(torch.from_numpy(got), GRID))
            worst = 0
            for i, c in enumerate(classes):
                img = read_png(os.path.join(dd, f'{i:06d}_c{c}.png'))
                worst = max(worst, int(np.abs(img.astype(int) - pix[i].astype(int)).max()))
            fr = float((pix.astype(int) != 0).mean())
            print(f'verify vq:  decode of those tokens: max |C - PyTorch| = {worst} (8-bit levels; '
                  f'{fr:.2f} of PyTorch pixels nonzero, range {pix.min()}..{pix.max()})')
            ok &= worst <= 2
    print('verify:', 'PASS' if ok else 'FAIL', f'({tmp})')
    return 0 if ok else 1


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument('cmd', choices=('vq', 'tokens', 'gpt', 'recon', 'verify', 'meta'))
    p.add_argument('--preset', choices=tuple(PRESETS), default='cpu')
    p.add_argument('--device', default='cpu')
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--steps', type=int, default=0, help='override the preset step count')
    p.add_argument('--out', default=OUT, help='scratch directory (logs, tokens, checkpoints)')
    p.add_argument('--vq', default=VQ_ASSET)
    p.add_argument('--ckpt', default=GPT_ASSET)
    p.add_argument('--dir', default=os.path.join(OUT, 'llamagen_recon'), help='recon: PNG directory')
    p.add_argument('--cfg', type=float, default=3.0, help='gpt/meta: the cfg written to the metadata (the sampling '
                   'defaults: chosen by a sweep, assets/llamagen_digits.md)')
    p.add_argument('--top-k', type=int, default=0)
    p.add_argument('--top-p', type=float, default=1.0)
    p.add_argument('--temperature', type=float, default=0.8)
    p.add_argument('--argen', default=os.path.join(ROOT, 'build-ll', 'argen'))
    p.add_argument('--vq-file', help='verify: these weights instead of random ones (with --ckpt-file)')
    p.add_argument('--ckpt-file')
    p.add_argument('--groups', type=int, default=0, help='verify: GroupNorm groups of the random tokenizer '
                   '(ch raised to it; 32 = official)')
    p.add_argument('--classes', default='0,3,7,9')
    p.add_argument('--cfgs', type=float, nargs='+', default=[4.0, 1.0])
    p.add_argument('--decode', nargs='+', default=['sequential', 'sjd'], help='verify: strategies (sequential and '
                   'sjd must give the greedy tokens; zipar, window 4, is reported only)')
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(os.path.dirname(args.vq), exist_ok=True)
    return {'vq': cmd_vq, 'tokens': cmd_tokens, 'gpt': cmd_gpt, 'recon': cmd_recon, 'verify': cmd_verify,
            'meta': cmd_meta}[args.cmd](args) or 0


if __name__ == '__main__':
    sys.exit(main())
