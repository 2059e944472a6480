"""MADE's masked layers, checked by autograd: output d depends only on inputs before it."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from dgm_lab.autoregressive import MADE, MaskedLinear, made_degrees, made_masks


def jacobian_support(net: MADE, x: torch.Tensor) -> torch.Tensor:
    """``[D, D]`` boolean: does any output of dimension d depend on input j (at point x)?"""
    jac = torch.autograd.functional.jacobian(lambda v: net(v[None])[0], x)  # [D, k, D]
    return jac.abs().sum(1) > 0


CONFIGS = list(itertools.product([2, 5, 9], [[], [16], [7, 11]], [1, 3], ["random", "even"],
                                 [False, True]))


@pytest.mark.parametrize("d, hidden, k, connectivity, shuffled", CONFIGS)
def test_outputs_depend_only_on_earlier_inputs_in_the_ordering(d, hidden, k, connectivity,
                                                               shuffled):
    g = torch.Generator().manual_seed(d * 100 + len(hidden))
    order = torch.randperm(d, generator=g) if shuffled else None
    net = MADE(d, hidden, outputs_per_dim=k, order=order, connectivity=connectivity, seed=1,
               activation=nn.Tanh).double()
    for layer in net.layers:  # random, non-zero weights everywhere, so paths do not cancel
        nn.init.normal_(layer.weight)
    support = jacobian_support(net, torch.randn(d, generator=g, dtype=torch.float64))
    position = torch.empty(d, dtype=torch.int64)
    position[net.order] = torch.arange(d)  # position of each dimension in the ordering
    allowed = position[None, :] < position[:, None]  # input j comes before output d
    assert not (support & ~allowed).any(), "an output sees an input that is not before it"
    if connectivity == "even" and all(h >= d - 1 for h in hidden):
        # evenly spread degrees with enough units connect every allowed pair
        assert torch.equal(support, allowed)
    sorted_support = support[net.order][:, net.order]
    assert torch.equal(sorted_support, sorted_support.tril(-1))


def test_masks_follow_the_degree_rules_on_a_hand_made_example():
    degrees = [torch.tensor([2, 3, 1]), torch.tensor([1, 2, 2, 1])]
    hidden, output = made_masks(degrees)
    # hidden unit k sees input j when m(k) >= m(j): degree-1 units see only input 2
    assert torch.equal(hidden, torch.tensor([[0., 0., 1.], [1., 0., 1.], [1., 0., 1.],
                                             [0., 0., 1.]]))
    # output d sees hidden k when m(d) > m(k): input 2 (degree 1) sees nothing
    assert torch.equal(output, torch.tensor([[1., 0., 0., 1.], [1., 1., 1., 1.],
                                             [0., 0., 0., 0.]]))


def test_degrees_put_each_dimension_at_its_position_in_the_order():
    inputs, hidden = made_degrees(4, [6], order=[2, 0, 3, 1], connectivity="even")
    assert inputs.tolist() == [2, 4, 1, 3]
    assert hidden.min() >= 1 and hidden.max() <= 3
    assert sorted(set(hidden.tolist())) == [1, 2, 3]


def test_random_hidden_degrees_never_make_dead_units():
    # a hidden unit of degree D could feed no output (an output needs m(d) > m(k)), and one of
    # degree below the previous layer's minimum would see nothing: both are excluded
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        degrees = made_degrees(5, [8, 8], generator=g)
        for earlier, layer in zip(degrees[:-1], degrees[1:], strict=True):
            assert layer.min() >= earlier.min() and layer.max() <= 4


def test_masked_linear_multiplies_the_mask_in_and_never_overwrites_the_weight():
    mask = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    layer = MaskedLinear(3, 2, mask)
    weight = layer.weight.detach().clone()
    x = torch.randn(4, 3)
    expected = x @ (weight * mask).T + layer.bias.detach()
    torch.testing.assert_close(layer(x), expected)
    assert torch.equal(layer.weight.detach(), weight)
    layer(x).sum().backward()
    assert (layer.weight.grad[mask == 0] == 0).all()


def test_resampled_masks_stay_autoregressive_and_state_dict_round_trips():
    net = MADE(6, [20, 20], outputs_per_dim=2, seed=3)
    net.resample_masks(order=[5, 4, 3, 2, 1, 0])
    x = torch.randn(3, 6)
    fresh = MADE(6, [20, 20], outputs_per_dim=2, seed=99)
    fresh.load_state_dict(net.state_dict())
    torch.testing.assert_close(fresh(x), net(x))
    assert fresh.order.tolist() == [5, 4, 3, 2, 1, 0]


@pytest.mark.parametrize("call, error", [
    (lambda: MaskedLinear(3, 2, torch.ones(3, 2)), ValueError),
    (lambda: MaskedLinear(3, 2, torch.full((2, 3), 0.5)), ValueError),
    (lambda: MaskedLinear(3, 2, [[1, 1, 1], [1, 1, 1]]), TypeError),
    (lambda: made_degrees(1, [4]), ValueError),
    (lambda: made_degrees(3, [4], order=[0, 0, 1]), ValueError),
    (lambda: made_degrees(3, [0]), ValueError),
    (lambda: made_degrees(3, [4], connectivity="dense"), ValueError),
    (lambda: MADE(3, [4])(torch.zeros(2, 4)), ValueError),
])
def test_bad_input_is_refused_with_a_clear_error(call, error):
    with pytest.raises(error):
        call()
