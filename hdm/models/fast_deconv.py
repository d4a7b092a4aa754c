"""Network deconvolution (Ye et al., ICLR 2020) as AECR-Net uses it: `FastDeconv`, a conv whose input
patches are decorrelated by the inverse square root of their covariance.

In training the covariance of the k x k x C patches (sampled every `sampling_stride` pixels) is
estimated per batch and inverted by Newton-Schulz iterations (differentiable); running averages
(momentum 0.1) of the patch mean and of the whitening matrix are kept as buffers (`running_mean`,
`running_deconv`) and used in evaluation. The whitening is folded into the conv weight and bias.
Only the groups=1 form AECR-Net needs is implemented; C must not exceed `block` (64).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def isqrt_newton_schulz(a, iterations):
    """A^(-1/2) of a symmetric positive definite matrix by coupled Newton-Schulz iterations."""
    dim = a.shape[0]
    norm = a.norm()
    y = a / norm
    eye = torch.eye(dim, dtype=a.dtype, device=a.device)
    z = eye.clone()
    for _ in range(iterations):
        t = 0.5 * (3.0 * eye - z @ y)
        y, z = y @ t, t @ z
    return z / norm.sqrt()


class FastDeconv(nn.Conv2d):
    """Conv2d with input whitening (AECR-Net's preprocessing layer: FastDeconv(3, 3, 3, padding=1))."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, eps=1e-5, iterations=5,
                 momentum=0.1, block=64, sampling_stride=3):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=True)
        if in_channels > block:
            raise ValueError(f"FastDeconv here whitens all {in_channels} input channels together; keep them <= {block}")
        self.eps, self.iterations, self.momentum = eps, iterations, momentum
        self.sampling_stride = sampling_stride * stride
        self.num_features = self.kernel_size[0] * self.kernel_size[1] * in_channels
        self.register_buffer("running_mean", torch.zeros(self.num_features))
        self.register_buffer("running_deconv", torch.eye(self.num_features))

    def forward(self, x):
        if self.training:
            cols = F.unfold(x, self.kernel_size, self.dilation, self.padding, self.sampling_stride)
            cols = cols.transpose(1, 2).reshape(-1, self.num_features)  # (patches, k*k*C)
            mean = cols.mean(0)
            cols = cols - mean
            cov = cols.t() @ cols / cols.shape[0] + self.eps * torch.eye(self.num_features, dtype=x.dtype, device=x.device)
            deconv = isqrt_newton_schulz(cov, self.iterations)
            with torch.no_grad():
                self.running_mean.mul_(1 - self.momentum).add_(mean.detach() * self.momentum)
                self.running_deconv.mul_(1 - self.momentum).add_(deconv.detach() * self.momentum)
        else:
            mean, deconv = self.running_mean, self.running_deconv
        # conv(whiten(x)) = conv with weight W D and bias b - (W D) mean; unfold's column order is
        # (channel, ky, kx), the same as weight.view(out, -1)
        w = self.weight.reshape(self.out_channels, -1) @ deconv
        b = self.bias - w @ mean
        return F.conv2d(x, w.view_as(self.weight), b, self.stride, self.padding, self.dilation)
