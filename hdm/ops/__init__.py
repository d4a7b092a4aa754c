"""Operators: modulated deformable convolution backends and dark-channel-prior image operations."""
from .deform_conv import ModulatedDeformConv2d, available_backends, deform_conv2d_torch, modulated_deform_conv2d

__all__ = ["ModulatedDeformConv2d", "available_backends", "deform_conv2d_torch", "modulated_deform_conv2d"]
