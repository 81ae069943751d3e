"""When the device sends its unacknowledged window again."""

from __future__ import annotations

from edge_agent.transport.resend import STALLED_ACKS, ResendTimer


def test_a_silent_hub_gets_the_window_again_after_the_ack_timeout() -> None:
    timer = ResendTimer(ack_timeout_s=30, stall_s=10)
    timer.on_send(0.0)
    assert not timer.due(5, 29.0)
    assert timer.due(5, 30.5)
    assert not timer.due(5, 31.0)  # started over


def test_acks_that_never_move_the_watermark_bring_the_window_again_sooner() -> None:
    """One of two hub instances died with an event: the other stores and acknowledges newer ones, but its
    watermark waits below the lost one."""
    timer = ResendTimer(ack_timeout_s=30, stall_s=10)
    timer.on_send(0.0)
    for t in range(STALLED_ACKS):
        timer.on_ack(False, 1.0 + t)
    assert not timer.due(5, 9.0)  # within stall_s: maybe still on its way through the other instance
    assert timer.due(5, 10.5)


def test_acks_in_flight_out_of_order_are_not_a_stall() -> None:
    timer = ResendTimer(ack_timeout_s=30, stall_s=10)
    timer.on_send(0.0)
    timer.on_ack(False, 1.0)  # a newer event stored first by another instance
    timer.on_ack(True, 1.2)  # then the older one: the watermark moves
    for t in range(STALLED_ACKS - 1):
        timer.on_ack(False, 2.0 + t)
    assert not timer.due(5, 11.5)  # moved at 1.2, and fewer than STALLED_ACKS since
    assert timer.due(5, 31.5)


def test_nothing_outstanding_is_never_due() -> None:
    timer = ResendTimer(ack_timeout_s=30, stall_s=10)
    timer.on_send(0.0)
    assert not timer.due(0, 100.0)
    assert timer.since is None
