"""Speed-ups that must not change the numbers: each is checked against the formulation it replaced.

`ClassifierModule` used to run every dilated 3x3 conv in full (`sum(conv(x) for conv in ...)`); it
now drops the kernel taps that can only read zero padding. Checked in float64, outputs and all
gradients, on map sizes where no tap, some taps and all off-centre taps are dropped.
"""

import pytest
import torch
from torch import nn

from avs_lib.models.decoder import DILATIONS, ClassifierModule, reachable_taps_conv


def previous_head(head: ClassifierModule, x: torch.Tensor) -> torch.Tensor:
    """The head as it was: the four full 3x3 convs, summed."""
    return sum(conv(x) for conv in head.conv2d_list)


def outputs_and_grads(fn, module: nn.Module, x: torch.Tensor, upstream: torch.Tensor):
    module.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_(True)
    y = fn(x)
    (y * upstream).sum().backward()
    grads = {name: p.grad.clone() for name, p in module.named_parameters()}
    return y.detach(), x.grad, grads


@pytest.mark.parametrize(
    "height, width",
    [
        (20, 20),  # every dilation reaches the map: nothing dropped
        (7, 7),  # 224 px stage 4: dilations 12 and 18 become 1x1
        (14, 14),  # 224 px stage 3: dilation 18 becomes 1x1
        (2, 2),  # 64 px stage 4: all four become 1x1
        (4, 13),  # rows and columns dropped independently (1x3 kernels)
    ],
)
def test_head_equals_sum_of_full_dilated_convs(height, width):
    torch.manual_seed(0)
    head = ClassifierModule(6, 4).double()
    for conv in head.conv2d_list:  # non-trivial biases and weights of order 1
        nn.init.normal_(conv.weight)
        nn.init.normal_(conv.bias)
    x = torch.randn(3, 6, height, width, dtype=torch.float64)
    upstream = torch.randn(3, 4, height, width, dtype=torch.float64)

    y_new, dx_new, g_new = outputs_and_grads(head, head, x, upstream)
    y_old, dx_old, g_old = outputs_and_grads(lambda t: previous_head(head, t), head, x, upstream)

    torch.testing.assert_close(y_new, y_old, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(dx_new, dx_old, rtol=1e-12, atol=1e-12)
    assert g_new.keys() == g_old.keys()
    for name in g_old:
        torch.testing.assert_close(g_new[name], g_old[name], rtol=1e-12, atol=1e-12, msg=name)


def test_dropped_taps_get_exactly_zero_gradient_as_before():
    torch.manual_seed(1)
    conv = nn.Conv2d(3, 2, 3, padding=18, dilation=18).double()
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    reachable_taps_conv(conv, x).sum().backward()
    off_centre = conv.weight.grad.clone()
    off_centre[:, :, 1, 1] = 0
    assert torch.equal(off_centre, torch.zeros_like(off_centre))
    assert conv.weight.grad[:, :, 1, 1].abs().sum() > 0


def test_head_parameters_keep_official_names_and_shapes():
    head = ClassifierModule(8, 4)
    shapes = {name: tuple(p.shape) for name, p in head.state_dict().items()}
    expected = {}
    for i in range(len(DILATIONS)):
        expected[f"conv2d_list.{i}.weight"] = (4, 8, 3, 3)
        expected[f"conv2d_list.{i}.bias"] = (4,)
    assert shapes == expected
