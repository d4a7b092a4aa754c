import numpy as np
import pytest
import torch

from hdm.data.demo import make_demo


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    """The demo's hazy pairs (one per photo), made once per test module."""
    return make_demo("haze", str(tmp_path_factory.mktemp("data") / "haze"), samples_per_photo=1)
