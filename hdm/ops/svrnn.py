"""The spatially variant linear recurrence of Ren et al. (TIP 2019, eq. 3), scanned in parallel.

    h[k] = g[k] * x[k] + p[k] * h[k - 1],   h[-1] = 0

along rows (left-to-right, right-to-left) or columns (top-to-bottom, bottom-to-top) of (B, C, H, W)
maps, every row or column an independent sequence.

`spatial_rnn` is a chunked scan. A sequence of n is cut into chunks of L ~ sqrt(n):
1. within every chunk at once, the recurrence from h = 0 and the running product A of p
   (L vectorised steps);
2. across chunks, the carry H_c = h_c[L - 1] + A_c[L - 1] H_(c-1) (n / L small steps);
3. h = h_local + A * (the carry into the chunk).
That is about 2 sqrt(n) Python steps instead of n, and O(n) work. It uses only products and sums: no
division by running products and no logarithms, so values and gradients stay exact when p is 0 or 1,
and |p| <= 1 keeps every partial product bounded over long sequences. Autograd differentiates it.
"""
import math

import torch
import torch.nn.functional as F

DIRECTIONS = ("left_right", "right_left", "top_bottom", "bottom_top")


def _to_last(t, direction):
    """Move the scan axis last and orient it so the scan runs from index 0 upwards."""
    if direction in ("top_bottom", "bottom_top"):
        t = t.transpose(-1, -2)
    return t.flip(-1) if direction in ("right_left", "bottom_top") else t


def _from_last(t, direction):
    t = t.flip(-1) if direction in ("right_left", "bottom_top") else t
    return t.transpose(-1, -2) if direction in ("top_bottom", "bottom_top") else t


def _chunked_scan(a, b):
    """Inclusive scan of h[k] = b[k] + a[k] h[k-1] along the last axis (h[-1] = 0)."""
    n = a.shape[-1]
    length = math.isqrt(max(n - 1, 0)) + 1  # chunk length L ~ sqrt(n)
    chunks = -(-n // length)
    pad = chunks * length - n  # padding at the end never reaches earlier positions
    a = F.pad(a, (0, pad), value=1.0).unflatten(-1, (chunks, length)).transpose(-1, -2)  # (..., L, chunks)
    b = F.pad(b, (0, pad)).unflatten(-1, (chunks, length)).transpose(-1, -2)
    # 1. every chunk from a zero state, and the running product of a inside it (unbind, not indexing:
    #    its backward is one stack, where each indexed slice would zero-fill a full-size gradient)
    a_steps, b_steps = a.unbind(-2), b.unbind(-2)
    h_local, prod = [b_steps[0]], [a_steps[0]]
    for i in range(1, length):
        h_local.append(b_steps[i] + a_steps[i] * h_local[-1])
        prod.append(a_steps[i] * prod[-1])
    # 2. the state entering each chunk
    last_h, last_a = h_local[-1].unbind(-1), prod[-1].unbind(-1)
    carry = [torch.zeros_like(last_h[0])]
    for c in range(1, chunks):
        carry.append(last_h[c - 1] + last_a[c - 1] * carry[-1])
    carry = torch.stack(carry, dim=-1).unsqueeze(-2)  # (..., 1, chunks)
    h_local, prod = torch.stack(h_local, dim=-2), torch.stack(prod, dim=-2)
    # 3. add the carried state, decayed through each chunk
    h = h_local + prod * carry
    return h.transpose(-1, -2).flatten(-2)[..., :n]


def _step(h, ab):
    a, b = ab
    h = b + a * h
    return h, h.clone()  # the carry and the output slice may not be one tensor


def _exported_scan(a, b, dim, reverse):
    """The recurrence along `dim` (backwards when `reverse`) as an exported graph keeps it for every
    length: torch's scan operator, which hdm.export turns into ONNX's `Scan` (one small step per
    position, the loop in ONNX Runtime); equal to _chunked_scan up to float rounding."""
    from torch._higher_order_ops.scan import scan  # a prototype of torch's, needed only here

    return scan(_step, torch.zeros_like(b.select(dim, 0)), (a, b), dim=dim, reverse=reverse)[1]


def spatial_rnn(x, g, p, direction):
    """h of the recurrence in one direction. x, g, p: (B, C, H, W) of one shape -> h (B, C, H, W)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction {direction!r} is not one of {', '.join(DIRECTIONS)}")
    if not (x.shape == g.shape == p.shape):
        raise ValueError(f"x, g, p must have one shape, got {tuple(x.shape)}, {tuple(g.shape)}, {tuple(p.shape)}")
    if torch.compiler.is_exporting():
        return _exported_scan(p, g * x, 3 if direction in ("left_right", "right_left") else 2,
                              direction in ("right_left", "bottom_top"))
    return _from_last(_chunked_scan(_to_last(p, direction), _to_last(g * x, direction)), direction)


def four_direction_max(x, g, p):
    """The edge stream's merge: the per-pixel maximum of the scans in the four directions.

    g and p hold one map per direction stacked on the channel axis: (B, 4C, H, W), direction-major."""
    gs, ps = g.chunk(4, dim=1), p.chunk(4, dim=1)
    hs = [spatial_rnn(x, gs[i], ps[i], d) for i, d in enumerate(DIRECTIONS)]
    out = hs[0]
    for h in hs[1:]:
        out = out.maximum(h)
    return out


def spatial_rnn_loop(x, g, p, direction):
    """The recurrence as written in the paper: a Python loop over columns (or rows); the reference the
    tests and the benchmark hold spatial_rnn to."""
    horizontal = direction in ("left_right", "right_left")
    n = x.shape[-1] if horizontal else x.shape[-2]
    order = range(n) if direction in ("left_right", "top_bottom") else range(n - 1, -1, -1)
    take = (lambda t, k: t[..., k]) if horizontal else (lambda t, k: t[..., k, :])
    hs, h = {}, torch.zeros_like(take(x, 0))
    for k in order:
        h = take(g, k) * take(x, k) + take(p, k) * h
        hs[k] = h
    return torch.stack([hs[k] for k in range(n)], dim=-1 if horizontal else -2)
