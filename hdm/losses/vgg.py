"""VGG16 / VGG19 feature extractors for the perceptual and contrastive losses.

The network is defined here with torchvision's state-dict names (`features.<i>.weight`), so the
standard ImageNet files load: vgg16-397923af.pth and vgg19-dcbb9e9d.pth. Where the weights come from:
1. the path given in the config (`weights_path`),
2. else torch's hub cache, `torch.hub.get_dir()/checkpoints/<file>` (where torchvision keeps them),
3. else, with `download: true`, torch.hub.load_state_dict_from_url (needs internet).
Nothing is downloaded unless asked; without the file the error says where to put it.
ImageNet mean/std normalisation of the [0, 1] RGB input happens inside.
"""
import os

import torch
import torch.nn as nn

from hdm.files import open_input

CONFIGS = {  # channels per conv, "M" = 2x2 max pool (torchvision's vgg16 / vgg19 "D" / "E")
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}
FILES = {"vgg16": "vgg16-397923af.pth", "vgg19": "vgg19-dcbb9e9d.pth"}
URL = "https://download.pytorch.org/models/{}"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def layer_names(arch):
    """Names of the `features` indices: conv1_1, relu1_1, conv1_2, relu1_2, pool1, conv2_1, ..."""
    names, block, conv = [], 1, 1
    for v in CONFIGS[arch]:
        if v == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 1
        else:
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
            conv += 1
    return names


def locate_weights(arch, weights_path=None, download=False):
    """Where the ImageNet VGG weights come from: a file path, or None for a download; FileNotFoundError
    (one line starting 'weights_path: ', saying where to put the file) when neither is possible."""
    if weights_path is not None:
        if not os.path.isfile(weights_path):
            raise FileNotFoundError(f"weights_path: {weights_path}: no such VGG weights file (expected torchvision's "
                                    f"{FILES[arch]})")
        return weights_path
    cached = os.path.join(torch.hub.get_dir(), "checkpoints", FILES[arch])
    if os.path.isfile(cached):
        return cached
    if download:
        return None
    raise FileNotFoundError(
        f"weights_path: null, and the {arch} loss needs torchvision's ImageNet weights {FILES[arch]}: put the file at "
        f"{cached} or set the loss's weights_path (or download: true when online); to train without this loss, "
        f"remove it from the config's `losses` list")


def resolve_weights(arch, weights_path=None, download=False):
    """The state dict of the ImageNet VGG weights, from a path, the hub cache, or a download."""
    path = locate_weights(arch, weights_path, download)
    if path is None:
        return torch.hub.load_state_dict_from_url(URL.format(FILES[arch]), map_location="cpu", weights_only=True)
    with open_input(path) as f:
        return torch.load(f, map_location="cpu", weights_only=True)


class VGGFeatures(nn.Module):
    """Frozen VGG `features` up to the deepest requested layer; forward returns {layer name: features}.

    Args:
        arch: 'vgg16' or 'vgg19'.
        layers: names from `layer_names(arch)`, e.g. ('relu1_1', 'relu2_1').
        weights_path, download: where the weights come from (see the module docstring).
    """

    def __init__(self, arch, layers, weights_path=None, download=False):
        super().__init__()
        if arch not in CONFIGS:
            raise ValueError(f"arch {arch!r} is not one of {', '.join(CONFIGS)}")
        names = layer_names(arch)
        unknown = [layer for layer in layers if layer not in names]
        if unknown or not layers:
            raise ValueError(f"layers: expected {arch} layer names, at least one; got {unknown or 'none'}; valid: "
                             f"{', '.join(names)}")
        self.layers = list(layers)
        self.index = {name: names.index(name) for name in layers}
        modules, in_ch = [], 3
        for v in CONFIGS[arch]:
            if v == "M":
                modules.append(nn.MaxPool2d(2, 2))
            else:
                modules += [nn.Conv2d(in_ch, v, 3, padding=1), nn.ReLU(inplace=False)]
                in_ch = v
        self.features = nn.Sequential(*modules[:max(self.index.values()) + 1])
        if self.features[0].weight.is_meta:  # a check before work (hdm.checks): find the file, load nothing
            locate_weights(arch, weights_path, download)
            return
        state = resolve_weights(arch, weights_path, download)
        wanted = {k: v for k, v in state.items() if k.startswith("features.")
                  and int(k.split(".")[1]) < len(self.features)}
        missing = sorted(set(self.state_dict()) - set(wanted))
        if missing:
            raise ValueError(f"VGG weights for {arch} lack {missing[:4]}: not torchvision's {FILES[arch]}?")
        self.load_state_dict(wanted)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode=True):
        return super().train(False)  # always in eval mode (no dropout or batch norm anyway)

    def forward(self, x):
        """x: RGB (B, 3, H, W) in [0, 1] -> {layer: (B, C, h, w)}."""
        x = (x - self.mean) / self.std
        out, wanted = {}, {i: name for name, i in self.index.items()}
        for i, module in enumerate(self.features):
            x = module(x)
            if i in wanted:
                out[wanted[i]] = x
        return out
