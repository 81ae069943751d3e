"""``hub-server user ...``: operator accounts and API tokens. There is no default account: create the first
admin with ``hub-server user add NAME --role admin``."""

from __future__ import annotations

import argparse

from hub_protocol.cli import CliError, int_in
from hub_server.accounts import audit
from hub_server.accounts.auth import new_api_token
from hub_server.api.registry import utc_text
from hub_server.commands._common import add_config_argument, cli_actor, open_store, read_new_password
from hub_server.store import accounts
from hub_server.store.accounts import AccountError, Role

NAME = "user"
HELP = "Manage operator accounts and API tokens (add, list, set-role, disable, enable, passwd, token-*)"

_ROLES = [r.value for r in Role]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="create an account (password asked twice, or --password-file)")
    add.add_argument("name")
    add.add_argument("--role", choices=_ROLES, required=True)
    add.add_argument("--password-file", help="file (mode 600) holding the password")
    sub.add_parser("list", help="list accounts")
    role = sub.add_parser("set-role", help="change an account's role (ends its sessions)")
    role.add_argument("name")
    role.add_argument("role", choices=_ROLES)
    for verb in ("disable", "enable"):
        sub.add_parser(verb, help=f"{verb} an account").add_argument("name")
    passwd = sub.add_parser("passwd", help="set a new password (ends the account's sessions)")
    passwd.add_argument("name")
    passwd.add_argument("--password-file", help="file (mode 600) holding the password")
    token = sub.add_parser("token-add", help="create an API token for an integration; printed once")
    token.add_argument("name", help="what the integration is")
    token.add_argument("--role", choices=_ROLES, required=True)
    sub.add_parser("token-list", help="list API tokens")
    revoke = sub.add_parser("token-revoke", help="revoke an API token")
    revoke.add_argument("id", type=int_in(1, 2**53))


def run(args: argparse.Namespace) -> int:
    _, db = open_store(args)
    actor = cli_actor()
    try:
        with db.write() as conn:
            match args.action:
                case "add":
                    user = accounts.add_user(conn, args.name, Role(args.role), read_new_password(args.password_file))
                    audit.record(conn, actor, "user.add", f"user:{user.username}", {"role": user.role.value})
                    print(f"added {user.username} ({user.role.value})")
                case "list":
                    for user in accounts.list_users(conn):
                        state = "disabled" if user.disabled else "active"
                        print(f"{user.username:<24} {user.role.value:<9} {state:<9} since {utc_text(user.created_at)}")
                case "set-role":
                    user = accounts.update_user(conn, args.name, role=Role(args.role))
                    audit.record(conn, actor, "user.update", f"user:{user.username}", {"role": args.role})
                    print(f"{user.username} is now {user.role.value}")
                case "disable" | "enable":
                    user = accounts.update_user(conn, args.name, disabled=args.action == "disable")
                    audit.record(conn, actor, "user.update", f"user:{user.username}", {"disabled": user.disabled})
                    print(f"{user.username} {args.action}d")
                case "passwd":
                    accounts.set_password(conn, args.name, read_new_password(args.password_file))
                    audit.record(conn, actor, "user.update", f"user:{args.name}", {"password": "changed"})
                    print(f"password of {args.name} changed")
                case "token-add":
                    secret = new_api_token()
                    token = accounts.add_token(conn, args.name, Role(args.role), secret, actor)
                    audit.record(conn, actor, "token.add", f"token:{token.id}", {"name": token.name})
                    print(f"token {token.id} ({token.role.value}) for {token.name}; shown once, keep it safe:")
                    print(secret)
                case "token-list":
                    for t in accounts.list_tokens(conn):
                        if t.revoked_at is not None:
                            state = f"revoked {utc_text(t.revoked_at)}"
                        else:
                            state = f"last used {'never' if t.last_used_at is None else utc_text(t.last_used_at)}"
                        print(f"{t.id:>4} {t.name:<30} {t.role.value:<9} {state}")
                case "token-revoke":
                    token = accounts.revoke_token(conn, args.id)
                    audit.record(conn, actor, "token.revoke", f"token:{token.id}")
                    print(f"token {token.id} revoked")
    except AccountError as exc:
        raise CliError(str(exc)) from None
    return 0
