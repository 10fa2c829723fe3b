#!/usr/bin/python3
"""Greedy ZipAR tokens for the llamagen_tiny fixture, computed in float64 numpy by a line-by-line transcription of
the released LlamaGen-ZipAR bookkeeping (generate_zipar.py: generate, decode_n_tokens, decode_n_tokens_zipar with
row_token_num, ongoing_row_list, the auxiliary token, position_insert) on the GPT of
../shared/reference/raster_numpy.py (positional KV cache zeroed per call, causal by position). Independent of
samplers/zipar.c (which simulates the schedule); tests/test_llamagen.c checks argen's greedy ZipAR tokens against
the numbers this prints, and the forward count against the print of the reference (model_forward_times + g).

Usage: /usr/bin/python3 scripts/zipar_reference.py [path/to/llamagen_tiny dir] [path/to/raster_numpy.py]
"""
import importlib.util
import json
import os
import sys

import numpy as np


def load_ref(path):
    spec = importlib.util.spec_from_file_location('raster_numpy', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def zipar_greedy(gpt, labels, cfg, s):
    """generate() of generate_zipar.py with top_k=1 (argmax), batch = len(labels), CFG halves [cond; uncond]."""
    B, g, T = len(labels), gpt.g, gpt.T
    lab = np.concatenate([labels, np.full(B, gpt.num_classes)])
    cache = gpt.new_cache(2 * B)
    gaps = []

    def step(tokens, pos):  # tokens (B, k) fed at positions pos (k) -> CFG logits (B, k, V)
        x = gpt.embed(tokens=np.concatenate([tokens, tokens]))
        lg = gpt.forward(x, np.asarray(pos), cache)
        lg = lg[B:] + (lg[:B] - lg[B:]) * cfg
        srt = np.sort(lg, -1)
        gaps.append((srt[..., -1] - srt[..., -2]).min())
        return lg

    lg = gpt.forward(gpt.embed(lab), np.arange(T), cache)[:, -1]
    first = (lg[B:] + (lg[:B] - lg[B:]) * cfg).argmax(-1)
    input_ids = first[:, None]
    nfe = 1
    for i in range(g - 1):  # decode_n_tokens: the first row
        nxt = step(input_ids[:, -1:], [T + i])[:, 0].argmax(-1)
        input_ids = np.concatenate([input_ids, nxt[:, None]], 1)
        nfe += 1
    row_token_num = [0] * g
    row_token_num[0] = g
    ongoing = [1]
    last_token_in_row_idx = None
    forwards = 0
    while input_ids.shape[1] < g * g:
        new_ids, new_pos = [], []
        if last_token_in_row_idx is not None:
            new_ids.append(input_ids[:, last_token_in_row_idx])
            new_pos.append(T + (ongoing[0] - 1) * g + row_token_num[ongoing[0] - 1] - 1)
        for i in range(len(ongoing)):
            idx = sum(row_token_num[:ongoing[i] + 1]) - 1
            if row_token_num[ongoing[i]] == 1 and row_token_num[ongoing[i - 1]] == s:
                row_token_num[ongoing[i]] = 0
            new_ids.append(input_ids[:, idx])
            new_pos.append(T + ongoing[i] * g + row_token_num[ongoing[i]] - 1)
        lg = step(np.stack(new_ids, 1), new_pos)
        forwards += 1
        skip = 1 if last_token_in_row_idx is not None else 0
        last_token_in_row_idx = None
        remove = []
        for i in range(len(new_ids) - skip):
            nxt = lg[:, i + skip].argmax(-1)
            position = sum(row_token_num[:ongoing[i] + 1])
            input_ids = np.concatenate([input_ids[:, :position], nxt[:, None], input_ids[:, position:]], 1)
            row_token_num[ongoing[i]] += 1
            if ongoing[i] > 1 and row_token_num[ongoing[i]] == 1:
                input_ids = input_ids[:, :-1]  # drop the auxiliary token
            if row_token_num[ongoing[i]] == s and ongoing[i] < g - 1 and ongoing[i] + 1 not in ongoing:
                above = sum(row_token_num[:ongoing[i]]) - 1
                input_ids = np.concatenate([input_ids, input_ids[:, above:above + 1]], 1)
                ongoing.append(ongoing[i] + 1)
                row_token_num[ongoing[i] + 1] += 1
            if row_token_num[ongoing[i]] == g:
                last_token_in_row_idx = position
                remove.append(ongoing[i])
        for r in remove:
            ongoing.remove(r)
    return input_ids, forwards + g, float(min(gaps))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    d = sys.argv[1] if len(sys.argv) > 1 else None
    ref_py = sys.argv[2] if len(sys.argv) > 2 else os.path.join(here, '..', '..', 'shared', 'reference', 'raster_numpy.py')
    rn = load_ref(ref_py)
    d = rn.fixture_dir(d)
    meta = json.load(open(os.path.join(d, 'meta.json')))
    gpt = rn.GPT(rn.load_safetensors(os.path.join(d, 'gpt.safetensors')), n_head=meta['config']['n_head'],
                 grid=meta['config']['grid'])
    labels = np.array([2, 9])
    out = {}
    for s in (2, 3):
        toks, nfe, gap = zipar_greedy(gpt, labels, 2.0, s)
        out[f's{s}'] = {'tokens': toks.tolist(), 'nfe': nfe, 'min_top1_top2_gap': round(gap, 5)}
    print(json.dumps(out))


if __name__ == '__main__':
    main()
