"""The device's noise as floating-point code draws it, not as the formula says: is it still private?

Textbook Laplace noise computed in floating point leaks through the gaps between representable numbers. The
device draws two-sided geometric noise as the difference of two one-sided draws, each the floor of
log(1 - u) / log(a) with u from ``random()``: 53-bit multiples of 2^-53 (the operating system's random
source behind ``random.SystemRandom``). So the noise is bounded (|z| <= 104 at the default 0.35 per crossing)
and its far tail is not exactly geometric. This test computes the exact distribution of what the device's own
sampler (``_one_sided``) draws, over every possible u, by bisection on the grid of u (the draw grows with u),
and from it the exact hockey-stick divergence between a cell's output with and without one crossing: the
delta for which the noise is (epsilon, delta)-differentially private. A sampler on 24-bit uniforms (as from
single-precision arithmetic) is the control.
"""

from __future__ import annotations

import math
import random
from decimal import Decimal, getcontext

import pytest

from edge_agent.privacy.protection import _one_sided

getcontext().prec = 60


class Grid(random.Random):
    """A "random source" that returns exactly j / 2^bits: one point of the grid ``random()`` draws from."""

    def __init__(self, bits: int) -> None:
        super().__init__(0)
        self.bits = bits
        self.j = 0

    def random(self) -> float:
        return self.j / 2**self.bits


def one_sided_counts(epsilon: float, bits: int) -> list[int]:
    """n[g]: how many of the 2^bits grid points make ``_one_sided`` draw g (exact, by bisection)."""
    grid, log_a, size = Grid(bits), -epsilon, 2**bits

    def draw(j: int) -> int:
        grid.j = j
        return _one_sided(grid, log_a)

    top = draw(size - 1)
    at_least = []  # at_least[g]: grid points drawing g or more
    for g in range(top + 2):
        low, high = 0, size  # the first j that draws g or more
        while low < high:
            mid = (low + high) // 2
            if draw(mid) >= g:
                high = mid
            else:
                low = mid + 1
        at_least.append(size - low)
    return [at_least[g] - at_least[g + 1] for g in range(top + 1)]


def delta(epsilon: float, bits: int) -> Decimal:
    """Exact hockey-stick divergence between Z and Z + 1 at ``epsilon`` (Z = G1 - G2 as the device draws
    it); by the symmetry of Z the other direction is the same."""
    n = one_sided_counts(epsilon, bits)
    top = len(n) - 1
    total = Decimal(2) ** (2 * bits)
    z_mass = {
        z: Decimal(sum(n[g] * n[g - z] for g in range(max(z, 0), min(top, top + z) + 1))) for z in range(-top, top + 1)
    }
    bound = Decimal(epsilon).exp()
    return (
        sum(
            (
                max(Decimal(0), z_mass.get(z, Decimal(0)) - bound * z_mass.get(z - 1, Decimal(0)))
                for z in range(-top, top + 2)
            ),
            Decimal(0),
        )
        / total
    )


@pytest.mark.parametrize("epsilon", [0.1, 0.35, 1.0, 10.0])
def test_the_devices_noise_is_private_up_to_a_negligible_delta(epsilon: float) -> None:
    found = delta(epsilon, 53)
    assert found < Decimal("1e-11"), (epsilon, found)  # measured: 7e-16 (0.1) .. 3.5e-12 (10)
    # Bounded, as floating point must be: the largest draw is where u is the smallest grid point.
    assert len(one_sided_counts(epsilon, 53)) - 1 == math.floor(53 * math.log(2) / epsilon)


def test_control_noise_from_24_bit_uniforms_leaks_measurably() -> None:
    assert delta(0.35, 24) > Decimal("1e-9")
