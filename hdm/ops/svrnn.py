"""The spatially variant linear recurrence of Ren et al. (TIP 2019, eq. 3), scanned in parallel.

    h[k] = g[k] * x[k] + p[k] * h[k - 1],   h[-1] = 0

along rows (left-to-right, right-to-left) or columns (top-to-bottom, bottom-to-top) of (B, C, H, W)
maps, every row or column an independent sequence.

The recurrence is a composition of affine maps h -> p h + b (b = g x), which is associative:
(p1, b1) then (p2, b2) = (p2 p1, p2 b1 + b2). `spatial_rnn` runs an inclusive scan of these pairs in
ceil(log2 n) vectorised steps (Hillis-Steele), using only products and sums: no division by running
products and no logarithms, so values and gradients stay exact when p is 0 or 1 and do not overflow
over long sequences (|p| <= 1 keeps every partial product bounded). Autograd differentiates it.
"""
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


def spatial_rnn(x, g, p, direction):
    """h of the recurrence in one direction. x, g, p: (B, C, H, W) of one shape -> h (B, C, H, W)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction {direction!r} is not one of {', '.join(DIRECTIONS)}")
    if not (x.shape == g.shape == p.shape):
        raise ValueError(f"x, g, p must have one shape, got {tuple(x.shape)}, {tuple(g.shape)}, {tuple(p.shape)}")
    a, b = _to_last(p, direction), _to_last(g * x, direction)
    n, step = a.shape[-1], 1
    while step < n:
        # combine each element with the one `step` before it (the identity (1, 0) before the start)
        b = b + a * F.pad(b[..., :-step], (step, 0))
        a = a * F.pad(a[..., :-step], (step, 0), value=1.0)
        step *= 2
    return _from_last(b, direction)


def four_direction_max(x, g, p):
    """The edge stream's merge: the per-pixel maximum of the scans in the four directions.

    g and p hold one map per direction stacked on the channel axis: (B, 4C, H, W), direction-major."""
    gs, ps = g.chunk(4, dim=1), p.chunk(4, dim=1)
    hs = [spatial_rnn(x, gs[i], ps[i], d) for i, d in enumerate(DIRECTIONS)]
    out = hs[0]
    for h in hs[1:]:
        out = out.maximum(h)
    return out
