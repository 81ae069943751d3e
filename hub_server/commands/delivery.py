"""``hub-server delivery create|list|cancel|return-code`` and ``hub-server locker describe|list``.

They work on the hub's database directly; the running hub (``hub-server serve``) sends the resulting
commands to the device within ``logistics.check_interval_s`` (commands are stored first, published after).
"""

from __future__ import annotations

import argparse
import re

from hub_protocol.cli import CliError, int_in
from hub_protocol.secrets import read_secret
from hub_protocol.validation import ConfigError, validate_data
from hub_server.commands._common import add_config_argument, cli_actor, open_store
from hub_server.config import HubConfig
from hub_server.logistics.service import DeliveryRequest, DeliveryStatus, LockerSpec, Logistics, LogisticsError
from hub_server.logistics.wiring import link_key
from hub_server.store.db import Database

NAME = "delivery"
HELP = "Create, list or cancel locker deliveries and shares; describe a locker bank's compartments"

_COMPARTMENT = re.compile(r"^(\d{1,3}):([SML])(:accessible)?$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = sub.add_parser("create", help="allocate a compartment; prints the drop-off code (once) and the link")
    create.add_argument("--size", required=True, choices=["S", "M", "L"], help="smallest size the item fits in")
    create.add_argument("--name", required=True, help="the resident's name (deleted after collection)")
    create.add_argument("--contact", help="e-mail or phone for the 'ready' message (deleted after collection)")
    create.add_argument("--device", help="locker bank to use (any when left out)")
    create.add_argument("--accessible", action="store_true", help="a compartment within easy reach")
    create.add_argument("--share", action="store_true", help="a neighbour lends an item (instead of a parcel)")
    create.add_argument("--no-extend", action="store_true", help="the resident may not extend the pickup time")
    listing = sub.add_parser("list", help="deliveries and shares, newest first")
    listing.add_argument("--status", choices=[s.value for s in DeliveryStatus])
    listing.add_argument("--limit", type=int_in(1, 100_000), default=50)
    cancel = sub.add_parser("cancel", help="cancel; the device frees the compartment")
    cancel.add_argument("delivery")
    ret = sub.add_parser("return-code", help="a new return code for an expired item (printed once)")
    ret.add_argument("delivery")
    describe = sub.add_parser("describe-locker", help="describe a locker bank: NUMBER:SIZE[:accessible] ...")
    describe.add_argument("device")
    describe.add_argument("compartments", nargs="+", metavar="N:SIZE[:accessible]", help="e.g. 1:S 2:M:accessible 3:L")
    sub.add_parser("lockers", help="locker banks with each compartment's size and last reported state")


def service(config: HubConfig, db: Database) -> Logistics:
    """The hub's logistics without a broker connection: commands are stored for the running hub to send."""
    try:
        secret = read_secret(config.http.session_key_file, "http.session_key_file")
    except ConfigError as exc:
        # Residents' links are derived from the session key, so the shell needs it as the server has it.
        raise CliError(
            f"{'; '.join(exc.problems)}. Residents' links need the hub's session key: run as root with "
            "CREDENTIALS_DIRECTORY=/etc/hub-server/credentials (where systemd's LoadCredential reads it), "
            "or use the dashboard or the API"
        ) from None
    return Logistics(db, config.logistics, None, config.http.public_url, link_key(secret))


def _spec(items: list[str]) -> LockerSpec:
    compartments = []
    for item in items:
        match = _COMPARTMENT.fullmatch(item)
        if match is None:
            raise CliError(f"compartment {item!r}: write NUMBER:SIZE or NUMBER:SIZE:accessible, e.g. 2:M:accessible")
        compartments.append({"number": int(match[1]), "size": match[2], "accessible": match[3] is not None})
    return validate_data(LockerSpec, {"compartments": compartments}, "compartments")


def run(args: argparse.Namespace) -> int:
    config, db = open_store(args)
    logistics = service(config, db)
    actor = cli_actor()
    try:
        match args.action:
            case "create":
                request = validate_data(
                    DeliveryRequest,
                    {
                        "kind": "share" if args.share else "delivery",
                        "size": args.size,
                        "accessible": args.accessible,
                        "device": args.device,
                        "resident_name": args.name,
                        "resident_contact": args.contact,
                        "extendable": not args.no_extend,
                    },
                    "delivery",
                )
                created = logistics.create(request, operator=actor)
                d = created.delivery
                print(f"{d.kind} {d.id}: locker {d.device}, compartment {d.compartment} ({d.size.value})")
                print(
                    f"drop-off code (shown once): {created.dropoff_code}, valid until {d.dropoff_expires_at:%Y-%m-%d %H:%M} UTC"
                )
                print(f"resident's page (status and pickup code): {created.resident_link}")
            case "list":
                for d in logistics.list_deliveries(
                    None if args.status is None else DeliveryStatus(args.status), limit=args.limit
                ):
                    problem = f"  device: {d.device_problem}" if d.device_problem else ""
                    print(
                        f"{d.id}  {d.kind:8}  {d.status.value:17}  {d.device}/{d.compartment}  {d.created_at:%Y-%m-%d %H:%M}{problem}"
                    )
            case "cancel":
                d = logistics.cancel(args.delivery, operator=actor)
                print(f"{d.id} cancelled; the device frees compartment {d.compartment}")
            case "return-code":
                issued = logistics.issue_return_code(args.delivery, operator=actor)
                print(f"return code (shown once): {issued.code}, valid until {issued.expires_at:%Y-%m-%d %H:%M} UTC")
            case "describe-locker":
                for c in logistics.set_compartments(args.device, _spec(args.compartments), operator=actor):
                    print(
                        f"{c.device}/{c.number}: {c.size.value if c.size else '?'}{' accessible' if c.accessible else ''}"
                    )
            case "lockers":
                for device, compartments in logistics.lockers().items():
                    print(device)
                    for c in compartments:
                        state = c.state.value if c.state else "not reported yet"
                        held = f"  {c.delivery}" if c.delivery else ""
                        size = c.size.value if c.size else "?"
                        print(f"  {c.number:3}  {size}{'*' if c.accessible else ' '}  {state}{held}")
    except LogisticsError as exc:
        raise CliError(str(exc)) from None
    return 0
