#!/usr/bin/python3
"""Trains argen's default VAR digit model: a small multi-scale residual VQVAE (var_model.VQVAE), then a small VAR
transformer (var_model.VAR) on its tokens, on the 9,000-digit train split of digits.py (128x128 RGB, [-1, 1]).
Exports fp16 safetensors with the names argen's C loaders read, and checks the C implementation against PyTorch.

Subcommands (all seeded, one CPU thread by default, logs to stdout and to scripts/train/out/var_<cmd>.log):
  vae     train the VQVAE (L1 + MSE reconstruction + multi-scale VQ loss, dead-code restarts) and export it
  var     encode the train split with the exported (fp16-rounded) VQVAE, train the transformer (teacher forcing,
          class dropout 0.1 for CFG) and export it
  verify  export random-init (or given) weights, run build-var/argen recon / sample (greedy, --top-k 1) and compare
          with the PyTorch encode -> quantise -> decode and a greedy autoregressive_infer_cfg (spec section 3)
  sweep   sample in PyTorch for a list of cfg,top_k,top_p settings and score them with the digit classifier
  meta    rewrite the sampling defaults (cfg, top_k, top_p) in the transformer file's metadata
  recon   reconstruct held-out digits with the exported VQVAE (PyTorch) and score them with the digit classifier

Reproduce the shipped assets (CPU preset):
  /usr/bin/python3 scripts/train/digits.py fetch
  /usr/bin/python3 scripts/train/var_train.py vae
  /usr/bin/python3 scripts/train/var_train.py var
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
sys.path.insert(0, HERE)
import digits  # noqa: E402
import st_io  # noqa: E402
from var_model import VAR, VQVAE  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(HERE, "out")
ASSETS = os.path.join(ROOT, "assets")
PATCH_NUMS = (1, 2, 3, 4, 5, 6, 8)

# Size presets. "cpu" is what ships (fits in ~1 h on one shared CPU core); "gpu" is a larger optional variant.
PRESETS = {
    "cpu": dict(vae=dict(ch=8, ch_mult=(1, 1, 2, 2, 4), nrb=1, Cvae=8, V=512, norm_groups=8),
                vae_train=dict(steps=3000, bs=16, lr=2e-3, restart_every=100, restart_until=0.6),
                var=dict(depth=4, C=128, H=2, mlp_ratio=4.0),
                var_train=dict(steps=1600, bs=32, lr=1.5e-3, wd=0.05, warmup=100)),
    "gpu": dict(vae=dict(ch=32, ch_mult=(1, 1, 2, 2, 4), nrb=2, Cvae=16, V=512, norm_groups=32),
                vae_train=dict(steps=20000, bs=32, lr=1e-3, restart_every=200, restart_until=0.5),
                var=dict(depth=8, C=256, H=4, mlp_ratio=4.0),
                var_train=dict(steps=20000, bs=128, lr=1e-3, wd=0.05, warmup=500)),
}


class Log:
    def __init__(self, path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.f = open(path, "a")

    def __call__(self, *a):
        s = " ".join(str(x) for x in a)
        print(s, flush=True)
        self.f.write(s + "\n")
        self.f.flush()


def to_unit(u8):
    """(B, S, S) gray uint8 tensor -> (B, 3, S, S) float in [-1, 1] (x/255 * 2 - 1, as argen)."""
    x = u8.float().div(255).mul(2).sub(1)
    return x[:, None].expand(-1, 3, -1, -1).contiguous()


def train_images(size=128):
    images, labels = digits.select("train")
    rgb = digits.generator_images(images, size)  # N, S, S, 3 (gray repeated)
    return torch.from_numpy(np.ascontiguousarray(rgb[..., 0])), torch.from_numpy(labels.astype(np.int64))


def cosine_lr(step, steps, lr, warmup):
    if step < warmup:
        return lr * (step + 1) / warmup
    p = (step - warmup) / max(1, steps - warmup)
    return lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * p)))


# ----------------------------------------------------------------------------------------------------- export
def vae_metadata(vq):
    return {"argen_model": "var_vqvae", "patch_nums": ",".join(map(str, vq.cfg["patch_nums"])),
            "norm_groups": str(vq.cfg["norm_groups"]), "V": str(vq.cfg["V"]), "Cvae": str(vq.cfg["Cvae"]),
            "ch": str(vq.cfg["ch"]), "ch_mult": ",".join(map(str, vq.cfg["ch_mult"])),
            "num_res_blocks": str(vq.cfg["nrb"])}


def export(model, path, meta):
    sd = {k: v.detach().to(torch.float16) for k, v in model.state_dict().items()}
    st_io.save(path, sd, meta)
    return sd


def load_vae(path):
    sd, meta = st_io.load(path)
    groups = int(meta.get("norm_groups", 32))
    pn = tuple(int(x) for x in meta["patch_nums"].split(","))
    ch = sd["encoder.conv_in.weight"].shape[0]
    nl = len([k for k in sd if k.startswith("encoder.down.") and k.endswith(".block.0.conv1.weight")])
    nrb = len([k for k in sd if k.startswith("encoder.down.0.block.") and k.endswith("conv1.weight")])
    mult = tuple(sd[f"encoder.down.{i}.block.0.conv2.weight"].shape[0] // ch for i in range(nl))
    V, Cvae = sd["quantize.embedding.weight"].shape
    vq = VQVAE(ch=ch, ch_mult=mult, nrb=nrb, Cvae=Cvae, V=V, norm_groups=groups, patch_nums=pn)
    vq.load_state_dict(sd)
    return vq.eval(), meta


def load_var(path):
    sd, meta = st_io.load(path)
    pn = tuple(int(x) for x in meta["patch_nums"].split(","))
    C, Cvae = sd["word_embed.weight"].shape
    depth = len([k for k in sd if k.endswith("attn.mat_qkv.weight")])
    H = sd["blocks.0.attn.scale_mul_1H11"].shape[1]
    hidden = sd["blocks.0.ffn.fc1.weight"].shape[0]
    m = VAR(V=sd["head.weight"].shape[0], Cvae=Cvae, depth=depth, C=C, H=H,
            num_classes=sd["class_emb.weight"].shape[0] - 1, patch_nums=pn, mlp_ratio=hidden / C)
    m.load_state_dict(sd)
    return m.eval(), meta


# ------------------------------------------------------------------------------------------------------ VQVAE
def cmd_vae(args):
    P = PRESETS[args.preset]
    tr = dict(P["vae_train"])
    for k in ("steps", "bs", "lr"):
        if getattr(args, k) is not None:
            tr[k] = getattr(args, k)
    log = Log(os.path.join(OUT, "var_vae.log"))
    torch.manual_seed(args.seed)
    dev = torch.device(args.device)
    imgs, labels = train_images()
    N = len(imgs)
    vq = VQVAE(**P["vae"], patch_nums=PATCH_NUMS).to(dev)
    nparam = sum(p.numel() for p in vq.parameters())
    log(f"# var_train vae preset={args.preset} {json.dumps(P['vae'])} train={json.dumps(tr)} params={nparam} "
        f"N={N} seed={args.seed} device={args.device}")
    opt = torch.optim.Adam(vq.parameters(), lr=tr["lr"], betas=(0.5, 0.9))
    g = torch.Generator().manual_seed(args.seed)
    perm, pos = torch.randperm(N, generator=g), 0
    V = vq.cfg["V"]
    usage = torch.zeros(V)
    t0 = time.time()
    acc = {"l1": 0.0, "mse": 0.0, "vq": 0.0, "n": 0}
    for step in range(tr["steps"]):
        if pos + tr["bs"] > N:
            perm, pos = torch.randperm(N, generator=g), 0
        idx = perm[pos:pos + tr["bs"]]
        pos += tr["bs"]
        x = to_unit(imgs[idx]).to(dev)
        for pg in opt.param_groups:
            pg["lr"] = cosine_lr(step, tr["steps"], tr["lr"], 50)
        rec, vq_loss, idxs, f = vq(x)
        l1 = (rec - x).abs().mean()
        mse = F.mse_loss(rec, x)
        loss = l1 + mse + vq_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            for t in idxs:
                usage += torch.bincount(t.flatten().cpu(), minlength=V).float()
        acc["l1"] += l1.item(); acc["mse"] += mse.item(); acc["vq"] += vq_loss.item(); acc["n"] += 1
        # dead-code restart: codes unused over the last window take random residual vectors of this batch
        if (step + 1) % tr["restart_every"] == 0:
            dead = (usage == 0).nonzero().flatten()
            used = int((usage > 0).sum())
            if len(dead) and step < tr["restart_until"] * tr["steps"]:
                with torch.no_grad():
                    zs = residual_vectors(vq, f.detach())
                    pick = torch.randint(0, len(zs), (len(dead),), generator=g)
                    vq.quantize.embedding.weight.data[dead.to(dev)] = zs[pick.to(dev)]
            n = acc["n"]
            log(f"step {step + 1} l1 {acc['l1'] / n:.4f} mse {acc['mse'] / n:.5f} vq {acc['vq'] / n:.5f} "
                f"codes_used {used}/{V} restarted {len(dead) if step < tr['restart_until'] * tr['steps'] else 0} "
                f"lr {opt.param_groups[0]['lr']:.2e} t {time.time() - t0:.0f}s")
            acc = {"l1": 0.0, "mse": 0.0, "vq": 0.0, "n": 0}
            usage.zero_()
        if (step + 1) % 500 == 0 or step + 1 == tr["steps"]:
            torch.save(vq.state_dict(), os.path.join(OUT, "var_vae.pt"))
    vq.cpu().eval()
    path = args.export or os.path.join(ASSETS, "var_digits_vae.safetensors")
    export(vq, path, vae_metadata(vq))
    log(f"# exported {path} ({os.path.getsize(path)} bytes) after {tr['steps']} steps, {time.time() - t0:.0f}s")


@torch.no_grad()
def residual_vectors(vq, f):
    """Rows of the per-scale quantiser inputs (area-downsampled residuals) of a batch, [M, Cvae]."""
    q = vq.quantize
    SN, Hl = len(q.patch_nums), q.patch_nums[-1]
    f_rest = f.clone()
    rows = []
    for si, pn in enumerate(q.patch_nums):
        z = F.interpolate(f_rest, size=(pn, pn), mode="area") if si != SN - 1 else f_rest
        zf = z.permute(0, 2, 3, 1).reshape(-1, q.Cvae)
        rows.append(zf)
        idx = q.nearest(zf).reshape(f.shape[0], pn * pn)
        h = q.idx_to_map(idx, pn)
        if si != SN - 1:
            h = F.interpolate(h, size=(Hl, Hl), mode="bicubic", align_corners=False)
        f_rest = f_rest - q.phi(si)(h)
    return torch.cat(rows)


# ------------------------------------------------------------------------------------------------ transformer
@torch.no_grad()
def encode_all(vq, imgs, bs=100):
    toks = []
    for i in range(0, len(imgs), bs):
        toks.append(torch.cat(vq.img_to_idxs(to_unit(imgs[i:i + bs])), 1))
    return torch.cat(toks)


def split_scales(tok, patch_nums):
    out, b = [], 0
    for pn in patch_nums:
        out.append(tok[:, b:b + pn * pn])
        b += pn * pn
    return out


def cmd_var(args):
    P = PRESETS[args.preset]
    tr = dict(P["var_train"])
    for k in ("steps", "bs", "lr"):
        if getattr(args, k) is not None:
            tr[k] = getattr(args, k)
    log = Log(os.path.join(OUT, "var_var.log"))
    torch.manual_seed(args.seed)
    vae_path = args.vae or os.path.join(ASSETS, "var_digits_vae.safetensors")
    vq, _ = load_vae(vae_path)  # the fp16-rounded weights argen will use
    for p in vq.parameters():
        p.requires_grad_(False)
    tok_path = os.path.join(OUT, "var_tokens.pt")
    t0 = time.time()
    if os.path.exists(tok_path) and torch.load(tok_path)["vae_mtime"] == os.path.getmtime(vae_path):
        tok, labels = torch.load(tok_path)["tok"], torch.load(tok_path)["labels"]
    else:
        imgs, labels = train_images()
        tok = encode_all(vq, imgs)
        torch.save({"tok": tok, "labels": labels, "vae_mtime": os.path.getmtime(vae_path)}, tok_path)
    with torch.no_grad():
        xin = torch.cat([vq.quantize.idxs_to_var_input(split_scales(tok[i:i + 500], PATCH_NUMS))
                         for i in range(0, len(tok), 500)])
    N, L = tok.shape
    V = vq.cfg["V"]
    used = len(torch.unique(tok))
    log(f"# var_train var preset={args.preset} {json.dumps(P['var'])} train={json.dumps(tr)} N={N} L={L} "
        f"V={V} codes_in_data={used} tokens/input ready in {time.time() - t0:.0f}s seed={args.seed}")
    dev = torch.device(args.device)
    m = VAR(V=V, Cvae=vq.cfg["Cvae"], num_classes=10, patch_nums=PATCH_NUMS, cond_drop=0.1, **P["var"]).to(dev)
    log(f"# params {sum(p.numel() for p in m.parameters())}")
    decay = [p for n, p in m.named_parameters() if p.ndim >= 2 and "pos_" not in n and "emb" not in n]
    other = [p for n, p in m.named_parameters() if not (p.ndim >= 2 and "pos_" not in n and "emb" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": tr["wd"]}, {"params": other, "weight_decay": 0.0}],
                            lr=tr["lr"], betas=(0.9, 0.95))
    g = torch.Generator().manual_seed(args.seed)
    perm, pos = torch.randperm(N, generator=g), 0
    acc, n_acc, t0 = 0.0, 0, time.time()
    acc_last, acc_tok = 0.0, 0.0
    last_b = L - PATCH_NUMS[-1] ** 2
    for step in range(tr["steps"]):
        if pos + tr["bs"] > N:
            perm, pos = torch.randperm(N, generator=g), 0
        idx = perm[pos:pos + tr["bs"]]
        pos += tr["bs"]
        for pg in opt.param_groups:
            pg["lr"] = cosine_lr(step, tr["steps"], tr["lr"], tr["warmup"])
        m.train()
        logits = m(labels[idx].to(dev), xin[idx].to(dev))
        tgt = tok[idx].to(dev)
        loss = F.cross_entropy(logits.reshape(-1, V), tgt.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 2.0)
        opt.step()
        acc += loss.item(); n_acc += 1
        with torch.no_grad():
            acc_last += F.cross_entropy(logits[:, last_b:].reshape(-1, V), tgt[:, last_b:].reshape(-1)).item()
            acc_tok += (logits.argmax(-1) == tgt).float().mean().item()
        if (step + 1) % 50 == 0:
            log(f"step {step + 1} loss {acc / n_acc:.4f} loss_last_scale {acc_last / n_acc:.4f} "
                f"tok_acc {acc_tok / n_acc:.4f} lr {opt.param_groups[0]['lr']:.2e} t {time.time() - t0:.0f}s")
            acc, n_acc, acc_last, acc_tok = 0.0, 0, 0.0, 0.0
        if (step + 1) % 500 == 0 or step + 1 == tr["steps"]:
            torch.save(m.state_dict(), os.path.join(OUT, "var_var.pt"))
    m.cpu().eval()
    path = args.export or os.path.join(ASSETS, "var_digits.safetensors")
    export(m, path, var_metadata(m, args.cfg, args.top_k, args.top_p))
    log(f"# exported {path} ({os.path.getsize(path)} bytes) after {tr['steps']} steps, {time.time() - t0:.0f}s")


def var_metadata(m, cfg, top_k, top_p):
    return {"argen_model": "var", "patch_nums": ",".join(map(str, m.patch_nums)), "cfg": str(cfg),
            "top_k": str(top_k), "top_p": str(top_p), "num_classes": str(m.num_classes)}


def cmd_meta(args):
    """Rewrite the sampling defaults in the transformer file's metadata (weights unchanged)."""
    sd, meta = st_io.load(args.ckpt)
    meta.update({"cfg": str(args.cfg), "top_k": str(args.top_k), "top_p": str(args.top_p)})
    st_io.save(args.ckpt, {k: v.to(torch.float16) for k, v in sd.items()}, meta)
    print(f"{args.ckpt}: metadata {meta}")


# ------------------------------------------------------------------------------------------------ evaluation
def cmd_recon(args):
    """Held-out digits through the exported VQVAE (PyTorch), scored by the classifier; PSNR on [0,255]."""
    from classifier import DEFAULT_OUT, load_model, predict
    vq, _ = load_vae(args.vae or os.path.join(ASSETS, "var_digits_vae.safetensors"))
    images, labels = digits.select("heldout")
    x = torch.from_numpy(np.ascontiguousarray(digits.generator_images(images, 128)[..., 0]))
    recs = []
    with torch.no_grad():
        for i in range(0, len(x), 100):
            r = vq.idxs_to_img(vq.img_to_idxs(to_unit(x[i:i + 100])))
            recs.append(((r[:, 0] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8))
    rec = torch.cat(recs)
    mse = ((rec.float() - x.float()) ** 2).mean().item()
    model = load_model(DEFAULT_OUT)
    pred = predict(model, np.repeat(rec.numpy()[..., None], 3, axis=3))
    acc = float((pred == labels).mean())
    print(f"held-out reconstructions: PSNR {10 * math.log10(255 ** 2 / mse):.2f} dB, classifier accuracy {acc:.4f} "
          f"({int((pred == labels).sum())}/{len(labels)})")


def cmd_sweep(args):
    """PyTorch sampling sweep (batched; same math as argen sample, a different RNG stream): class accuracy of the
    digit classifier and a diversity number (mean per-pixel std over a class's samples, 0-255 scale) per setting."""
    from classifier import DEFAULT_OUT, load_model, predict
    vq, _ = load_vae(args.vae or os.path.join(ASSETS, "var_digits_vae.safetensors"))
    m, _ = load_var(args.ckpt or os.path.join(ASSETS, "var_digits.safetensors"))
    clf = load_model(DEFAULT_OUT)
    labels = torch.arange(10).repeat_interleave(args.n)
    for setting in args.settings:
        cfg, k, p = setting.split(",")
        cfg, k, p = float(cfg), int(k), float(p)
        g = torch.Generator().manual_seed(args.seed)
        imgs = []
        t0 = time.time()
        with torch.no_grad():
            for i in range(0, len(labels), 100):
                _, f_hat = m.infer(vq, labels[i:i + 100], cfg, k, p, g)
                y = vq.decode_fhat(f_hat).clamp(-1, 1)
                imgs.append(((y[:, 0] + 1) * 0.5 * 255).to(torch.uint8))
        u8 = torch.cat(imgs)
        pred = predict(clf, np.repeat(u8.numpy()[..., None], 3, axis=3))
        right = pred == labels.numpy()
        per = [float(right[labels.numpy() == c].mean()) for c in range(10)]
        div = float(np.mean([u8[labels == c].float().std(0).mean().item() for c in range(10)]))
        print(f"cfg {cfg} top_k {k} top_p {p}: accuracy {right.mean():.4f} ({int(right.sum())}/{len(right)}) "
              f"min class {min(per):.2f} (class {int(np.argmin(per))}) diversity {div:.1f} t {time.time() - t0:.0f}s",
              flush=True)


# ------------------------------------------------------------------------------------------------ verification
def randomize(model, seed):
    """Random weights with well-separated logits/codes so argmax comparisons are meaningful."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("scale_mul_1H11"):
                continue
            std = 1.0 / math.sqrt(p[0].numel()) if p.ndim >= 2 else 0.1
            if "norm" in n and n.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(std * torch.randn(p.shape, generator=g))


def cmd_verify(args):
    argen = args.argen
    work = args.work or tempfile.mkdtemp(prefix="var_verify_")
    os.makedirs(work, exist_ok=True)
    torch.manual_seed(args.seed)
    if args.vae:
        vae_path = args.vae
    else:
        vq = VQVAE(ch=args.ch, ch_mult=(1, 1, 2, 2, 4), nrb=args.nrb, Cvae=args.cvae, V=args.V,
                   norm_groups=args.norm_groups, patch_nums=PATCH_NUMS)
        randomize(vq, args.seed)
        vae_path = os.path.join(work, "vae.safetensors")
        export(vq, vae_path, vae_metadata(vq))
    if args.ckpt:
        var_path = args.ckpt
    else:
        vqm, _ = load_vae(vae_path)
        m = VAR(V=vqm.cfg["V"], Cvae=vqm.cfg["Cvae"], depth=2, C=128, H=2, num_classes=10, patch_nums=PATCH_NUMS)
        randomize(m, args.seed + 1)
        var_path = os.path.join(work, "var.safetensors")
        export(m, var_path, var_metadata(m, 1.5, 1, 0.0))
    vq, _ = load_vae(vae_path)
    m, _ = load_var(var_path)
    pn = ",".join(map(str, PATCH_NUMS))
    ok = True

    # (1) tokenizer round trip on held-out digits
    from pngio import read_png, write_png
    images, labels = digits.select("heldout")
    rgb = digits.generator_images(images[:args.n_images], 128)
    worst = 0
    for i in range(len(rgb)):
        src, dst = os.path.join(work, f"in{i}.png"), os.path.join(work, f"rec{i}.png")
        write_png(src, rgb[i])
        r = subprocess.run([argen, "recon", "--vae", vae_path, "--patch-nums", pn, "--device", "cpu", src, dst],
                           capture_output=True, text=True)
        if r.returncode:
            print(r.stderr)
            sys.exit("verify: argen recon failed")
        c_img = read_png(dst).astype(np.int64)
        with torch.no_grad():
            x = torch.from_numpy(rgb[i]).permute(2, 0, 1)[None].float().div(255).mul(2).sub(1)
            idxs = vq.img_to_idxs(x)
            y = vq.idxs_to_img(idxs)[0].permute(1, 2, 0)
        y01 = ((y + 1) * 0.5 * 255).numpy()
        t_trunc = np.clip(y01, 0, 255).astype(np.int64)
        d = np.abs(c_img - t_trunc)
        worst = max(worst, int(d.max()))
        print(f"recon {i} (class {labels[i]}): max |C - torch| {d.max()} levels, mean {d.mean():.4f}, "
              f"pixels differing {int((d > 0).sum())}/{d.size}; {r.stderr.strip()}")
    ok &= worst <= 2

    # (2) greedy sampling: tokens must be identical
    for cls, cfg in ((3, 1.5), (7, 4.0)):
        tok_json = os.path.join(work, f"tok_{cls}.json")
        r = subprocess.run([argen, "sample", "--vae", vae_path, "--ckpt", var_path, "--patch-nums", pn,
                            "--class", str(cls), "--top-k", "1", "--top-p", "0", "--cfg", str(cfg), "--device", "cpu",
                            "--tokens-out", tok_json, "--out", os.path.join(work, f"s{cls}"), "--overwrite", "-q"],
                           capture_output=True, text=True)
        if r.returncode:
            print(r.stderr)
            sys.exit("verify: argen sample failed")
        c_tok = np.array(json.load(open(tok_json))["tokens"][0])
        toks, f_hat = m.infer_greedy(vq, torch.tensor([cls]), cfg)
        t_tok = toks[0].numpy()
        mism = int((c_tok != t_tok).sum())
        files = sorted(f for f in os.listdir(os.path.join(work, f"s{cls}")) if f.endswith(".png"))
        c_img = read_png(os.path.join(work, f"s{cls}", files[0])).astype(np.int64)
        with torch.no_grad():
            y = vq.decode_fhat(f_hat).clamp(-1, 1)[0].permute(1, 2, 0)
        t_img = np.clip(((y + 1) * 0.5 * 255).numpy(), 0, 255).astype(np.int64)
        d = np.abs(c_img - t_img)
        print(f"greedy class {cls} cfg {cfg}: token mismatches {mism}/{len(t_tok)}; image max |C - torch| "
              f"{d.max()} levels, mean {d.mean():.4f}")
        ok &= mism == 0 and d.max() <= 2
    print("VERIFY OK" if ok else "VERIFY FAILED", f"(work dir {work})")
    return 0 if ok else 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("vae", "var"):
        s = sub.add_parser(name)
        s.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
        s.add_argument("--steps", type=int)
        s.add_argument("--bs", type=int)
        s.add_argument("--lr", type=float)
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--device", default="cpu")
        s.add_argument("--threads", type=int, default=1)
        s.add_argument("--export", help="output safetensors (default: the asset)")
        if name == "var":
            s.add_argument("--vae", help="VQVAE safetensors (default assets/var_digits_vae.safetensors)")
            # sampling defaults written to the metadata (chosen by the sweep in assets/var_digits.md)
            s.add_argument("--cfg", type=float, default=3.0)
            s.add_argument("--top-k", type=int, default=100)
            s.add_argument("--top-p", type=float, default=0.95)
    s = sub.add_parser("verify")
    s.add_argument("--argen", default=os.path.join(ROOT, "build-var", "argen"))
    s.add_argument("--vae", help="VQVAE safetensors to check (default: random init)")
    s.add_argument("--ckpt", help="VAR safetensors to check (default: random init)")
    s.add_argument("--ch", type=int, default=32)
    s.add_argument("--norm-groups", type=int, default=32)
    s.add_argument("--nrb", type=int, default=1)
    s.add_argument("--cvae", type=int, default=8)
    s.add_argument("--V", type=int, default=512)
    s.add_argument("--n-images", type=int, default=3)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--work")
    s.add_argument("--threads", type=int, default=1)
    s = sub.add_parser("sweep")
    s.add_argument("settings", nargs="+", help="cfg,top_k,top_p ...")
    s.add_argument("--vae")
    s.add_argument("--ckpt")
    s.add_argument("--n", type=int, default=20, help="samples per class")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--threads", type=int, default=1)
    s = sub.add_parser("recon")
    s.add_argument("--vae")
    s.add_argument("--threads", type=int, default=1)
    s = sub.add_parser("meta")
    s.add_argument("ckpt")
    s.add_argument("--cfg", type=float, required=True)
    s.add_argument("--top-k", type=int, required=True)
    s.add_argument("--top-p", type=float, required=True)
    s.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(OUT, exist_ok=True)
    return {"vae": cmd_vae, "var": cmd_var, "verify": cmd_verify, "recon": cmd_recon, "meta": cmd_meta, "sweep": cmd_sweep}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main() or 0)
