"""torch.hub entries of hdm, e.g. from a clone of this repository:

    model = torch.hub.load("path/to/hdm", "hdm", source="local", weights="runs/hdm_its/checkpoints/best.pth")
    restored = model(image)   # RGB float32 (B, 3, H, W) in [0, 1] -> RGB in [0, 1]

Entries: hdm, aecrnet, hybrid (the low-light hybrid network's generator), dcp, pfdcp. Keyword arguments
override the model's config (e.g. dcn_backend="torch"). The model checks its input (a float tensor
(B, 3, H, W) with finite values in [0, 1]) and its output (finite): a ValueError of one line otherwise.
See hdm/hub.py.
"""
dependencies = ["torch", "numpy", "cv2", "yaml", "scipy", "skimage"]


def hdm(weights=None, **kwargs):
    """HDM (Liang et al., ACM MM 2022); weights: a checkpoint of train.py or converted release weights."""
    from hdm.hub import hub_model
    return hub_model("hdm", weights, **kwargs)


def aecrnet(weights=None, **kwargs):
    """AECR-Net (Wu et al., CVPR 2021)."""
    from hdm.hub import hub_model
    return hub_model("aecrnet", weights, **kwargs)


def hybrid(weights=None, **kwargs):
    """The generator of Ren et al.'s hybrid low-light network (TIP 2019)."""
    from hdm.hub import hub_model
    return hub_model("hybrid", weights, **kwargs)


def dcp(**kwargs):
    """Dark channel prior dehazing (He et al.), no weights."""
    from hdm.hub import hub_model
    return hub_model("dcp", **kwargs)


def pfdcp(**kwargs):
    """Pyramid fusion DCP, no weights."""
    from hdm.hub import hub_model
    return hub_model("pfdcp", **kwargs)
