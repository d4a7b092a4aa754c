"""LPIPS (Zhang, Isola, Efros, Shechtman and Wang, "The Unreasonable Effectiveness of Deep Features as a
Perceptual Metric", CVPR 2018), version 0.1 (preset `lpips`). Lower is better.

    x in [0, 1] -> 2x - 1 -> (x - shift) / scale      shift (-.030, -.088, -.188), scale (.458, .448, .450)
    features at five layers of the backbone (AlexNet relu1..relu5, or VGG16 relu1_2 .. relu5_3)
    each unit-normalised over channels, squared difference, weighted by the learned non-negative
    1x1 "lin" layer, averaged over space; LPIPS = the sum over the five layers

Nothing is downloaded; both weight files are local:
- `backbone_path`: torchvision's ImageNet weights (alexnet-owt-7be5be79.pth or vgg16-397923af.pth),
  default: torch's hub cache, where torchvision keeps them;
- `lin_path`: LPIPS's v0.1 linear weights (`lin<k>.model.1.weight`, as the `lpips` package ships them
  in weights/v0.1/alex.pth or vgg.pth), default: the files of an installed `lpips` package (found
  without importing it).
Without a file the error says which one and where to put it.
"""
import functools
import importlib.util
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from hdm.files import open_input
from hdm.losses.vgg import VGGFeatures

SHIFT, SCALE = (-0.030, -0.088, -0.188), (0.458, 0.448, 0.450)
BACKBONE_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}
ALEX_LAYERS = (1, 4, 7, 9, 11)  # the ReLUs after torchvision alexnet's five convs
VGG_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}


def alexnet_features():
    """torchvision's alexnet `features` (its state-dict names `features.<i>.weight`)."""
    return nn.Sequential(nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
                         nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
                         nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(), nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(256, 256, 3, padding=1), nn.ReLU())


def _weights_file(path, default, what):
    path = path or default
    if not path or not os.path.isfile(path):
        raise FileNotFoundError(f"lpips needs {what}: {'no such file ' + repr(path) if path else 'no file given'} "
                                f"(set eval.options / --option)")
    return path


def _installed_lin(net):
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.join(list(spec.submodule_search_locations)[0], "weights", "v0.1", f"{net}.pth")


class LPIPS(nn.Module):
    def __init__(self, net="alex", backbone_path=None, lin_path=None):
        super().__init__()
        if net not in BACKBONE_FILES:
            raise ValueError(f"lpips net {net!r} is not one of alex, vgg")
        self.net = net
        backbone = _weights_file(backbone_path, os.path.join(torch.hub.get_dir(), "checkpoints", BACKBONE_FILES[net]),
                                 f"torchvision's ImageNet {net} weights {BACKBONE_FILES[net]} (backbone_path)")
        lin = _weights_file(lin_path, _installed_lin(net), f"LPIPS v0.1 linear weights {net}.pth (lin_path)")
        if net == "alex":
            self.features = alexnet_features()
            with open_input(backbone) as f:
                state = torch.load(f, map_location="cpu", weights_only=True)
            self.features.load_state_dict({k[len("features."):]: v for k, v in state.items() if k.startswith("features.")})
        else:
            self.features = VGGFeatures("vgg16", VGG_LAYERS, weights_path=backbone)
        with open_input(lin) as f:
            lin_state = torch.load(f, map_location="cpu", weights_only=True)
        self.lins = nn.ParameterList([nn.Parameter(lin_state[f"lin{k}.model.1.weight"].float(), requires_grad=False)
                                      for k in range(5)])
        for k, c in enumerate(CHANNELS[net]):
            if self.lins[k].shape != (1, c, 1, 1):
                raise ValueError(f"{lin}: lin{k} has shape {tuple(self.lins[k].shape)}, expected (1, {c}, 1, 1)")
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False).eval()

    def _taps(self, x):
        if self.net == "vgg":  # VGGFeatures normalises with ImageNet statistics itself; LPIPS does its own
            feats = self.features.features
            out, wanted = [], {self.features.index[name] for name in VGG_LAYERS}
            for i, layer in enumerate(feats):
                x = layer(x)
                if i in wanted:
                    out.append(x)
            return out
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in ALEX_LAYERS:
                out.append(x)
        return out

    @torch.no_grad()
    def forward(self, a, b):
        """(B,) LPIPS of two RGB batches in [0, 1]."""
        a, b = ((2 * t.float() - 1 - self.shift) / self.scale for t in (a, b))
        total = 0
        for fa, fb, lin in zip(self._taps(a), self._taps(b), self.lins):
            na = fa / (fa.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            nb = fb / (fb.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + F.conv2d((na - nb) ** 2, lin).mean(dim=(1, 2, 3))
        return total.double()


@functools.lru_cache(maxsize=4)
def _model(net, backbone_path, lin_path):
    return LPIPS(net, backbone_path, lin_path)


def prepare(net="alex", backbone_path=None, lin_path=None):
    """Load the weights when the preset is chosen, so a missing file is found before any work."""
    _model(net, backbone_path, lin_path)


def lpips(out, gt, net="alex", backbone_path=None, lin_path=None):
    """{'lpips': (B,)} of RGB (B, 3, H, W) in [0, 1] (see the module doc for the weight files)."""
    if out.shape != gt.shape:
        raise ValueError(f"output {tuple(out.shape)} and target {tuple(gt.shape)} differ in shape")
    model = _model(net, backbone_path, lin_path).to(out.device)
    return {"lpips": model(out.clamp(0, 1), gt.clamp(0, 1)).cpu()}


lpips.prepare = prepare
