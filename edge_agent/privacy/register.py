"""The sensor-register entry, built from the config only, so it describes what the code really does."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from edge_agent.privacy.config import PrivacyConfig, RegisterConfig
from hub_protocol.flows import PolicyKind
from hub_protocol.register import RegisterEntry

NEVER_LEAVES = [
    "camera images or video (never stored either; only a technician's calibration picture, a background "
    "learned over many frames with passers-by removed, is written, locally)",
    "track ids, trajectories and positions of people, and the coarse colour signatures that keep two passing "
    "people apart (held in memory with their track only)",
    "times of individual crossings",
]


def describe_policy(privacy: PrivacyConfig) -> str:
    """The protection in plain words, from the config: what it guarantees per window and per day, and what not."""
    kind = privacy.policy
    if kind is PolicyKind.NONE:
        return "no small-count protection"
    if kind is PolicyKind.THRESHOLD:
        return (
            f"each count below {privacy.k} (zero included) withheld and no totals published, so a withheld count "
            f"cannot be worked out from the others, even by someone who knows this rule"
        )
    charge, m = privacy.window_charge, privacy.max_crossings
    day = (
        f", {privacy.day_epsilon / privacy.epsilon:.0%} of which pays for a noisy daily total per line"
        if privacy.day_epsilon
        else ""
    )
    dp = (
        f"differential privacy per person: one tracked person adds at most {m} crossings to a window (over all "
        f"lines; more are not counted) and noise makes each window {charge:g}-differentially private for that "
        f"person (epsilon {privacy.epsilon:g} per crossing{day}); someone seen in several windows is protected "
        f"with {charge:g} per window, at most {privacy.effective_budget:g} per UTC day (after that, counts are "
        f"withheld); not covered: a person whose track breaks into two counts as two people"
    )
    if kind is PolicyKind.DP_THRESHOLD:
        return f"{dp}; noisy counts below {privacy.k} withheld"
    return dp


def leaves_device(privacy: PrivacyConfig | None, extra: Sequence[str] = ()) -> list[str]:
    leaves = []
    if privacy is not None:
        minutes = privacy.window_seconds / 60
        leaves += [
            f"counts per counting line, direction (in/out) and class (pedestrian/cyclist) per {minutes:g}-minute "
            f"window, {describe_policy(privacy)}",
            "per window: share of time the camera was observing (in steps of 10 s), the camera's frame rate (whole frames per "
            "second), frames the counter dropped (in whole minutes of frames), whether the device's clock "
            "stepped, and the number of people who crossed more often than counted (protected like a count)",
        ]
        if privacy.policy in (PolicyKind.THRESHOLD, PolicyKind.DP_THRESHOLD):
            validation = "only the overall count error, to 5%, and no count"
        elif privacy.policy is PolicyKind.NONE:
            validation = "the device's and the technician's totals per line, direction and class, unprotected"
        else:
            validation = (
                "the device's and the technician's totals per line, direction and class, with noise; each "
                "costs the epsilon of every window the period touches"
            )
        leaves.append(
            "when a technician checks the count by hand (field validation): the period's start (to the minute) "
            f"and length, and {validation}"
        )
        if privacy.day_epsilon:
            leaves.append(
                "after each UTC day, per line: a correction that turns the sum of the day's windows into the best "
                "estimate of the day's total (from a noisy daily total paid for within each window's epsilon)"
            )
    leaves += [
        "device health: temperature, load, memory, free disk, camera state",
        "availability (online/offline) and this register entry",
        *extra,
    ]
    return leaves


def generalised_location(register: RegisterConfig) -> str:
    """Street and city only (the config refuses house numbers and postcodes)."""
    return f"{register.street}, {register.city}"


def build_register_entry(
    device: str,
    site: str,
    register: RegisterConfig,
    privacy: PrivacyConfig | None,
    extra_leaves: Sequence[str] = (),
) -> RegisterEntry:
    """``extra_leaves`` lets other domains on the same device (e.g. lockers) add what they send."""
    return RegisterEntry(
        device=device,
        site=site,
        sensor_type=register.sensor_type,
        measures=list(register.measures),
        purpose=register.purpose,
        legal_ground=register.legal_ground,
        organisation=register.organisation,
        contact=register.contact,
        website=register.website,
        leaves_device=leaves_device(privacy, extra_leaves),
        never_leaves=list(NEVER_LEAVES),
        privacy=privacy.policy_model() if privacy is not None else None,
        retention=None,  # the device cannot know: the hub states its own retention settings
        active_until=register.active_until,
        location=generalised_location(register),
    )


def is_active(register: RegisterConfig | None, today: date) -> bool:
    """Whether the device may count today; a device without a register entry has no end date."""
    return register is None or register.is_active(today)
