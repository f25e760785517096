"""`cot-proxy signin setup [CONFIG]` (`./run_app.sh signin setup`): sign-in's settings asked in a terminal and
written into the config the first run made (default ./config.yaml). The first run asks nothing about sign-in:
a proxy for one person needs none, and a team's sign-in is set up once, when its provider has a client for it.

Asked in order: the issuer (OIDC_ISSUER, its discovery document read before going on), the client id, the client
secret (not echoed; kept in a file of mode 0600, OIDC_CLIENT_SECRET_FILE), the address people reach (PUBLIC_URL)
and the admins' emails (ADMIN_EMAILS). Sign-in needs ENABLE_AUTH: when it is off, it is turned on with a key of
the user's own, as the first run does on a shared machine. Last, the redirect URI to register at the provider.
"""

from __future__ import annotations

import argparse
import getpass
import os
import socket
from pathlib import Path
from typing import Any

from argoproxy.config.first_run import Abort, ask, interactive, say, set_key
from argoproxy.config.listener import PRIVATE_DIR_MODE, create_user_key, is_loopback
from argoproxy.config.signin_settings import as_issuer, as_public_url
from argoproxy.errors import ProxyError
from argoproxy.signin.provider import OpenIdProvider
from argoproxy.teamkeys.records import parse_emails

SECRET_FILE = "~/.config/argoproxy/oidc_client_secret"
CALLBACK_PATH = "/ui/auth/callback"


def main(argv: list[str], prog: str) -> int:
    parser = argparse.ArgumentParser(prog=f"{prog} signin", description="Sign-in with an OpenID Connect provider.")
    parser.add_argument("action", choices=["setup"], help="ask sign-in's settings and write them into the config")
    parser.add_argument("config", nargs="?", default="config.yaml", help="the config file (default %(default)s)")
    args = parser.parse_args(argv)
    config = Path(args.config).expanduser().absolute()
    try:
        set_up(config, prog)
    except Abort as exc:
        say(str(exc))
        return exc.code
    except KeyboardInterrupt:
        say()
        return 130
    return 0


def set_up(config: Path, prog: str) -> None:
    if not config.is_file():
        raise Abort(f"Error: {config} not found: run {prog} once first (its first run writes it).", 2)
    if not interactive():
        raise Abort(f"Error: {prog} signin setup asks questions, and there is no terminal. Set OIDC_ISSUER, "
                    f"OIDC_CLIENT_ID, OIDC_CLIENT_SECRET_FILE, PUBLIC_URL and ADMIN_EMAILS yourself "
                    f"(docs/signin.md).", 2)
    settings = current_settings(config)
    values: dict[str, Any] = {"oidc_issuer": ask_issuer()}
    values["oidc_client_id"] = ask_text("Client id the provider gave this proxy (OIDC_CLIENT_ID): ")
    values["oidc_client_secret_file"] = ask_secret()
    values["public_url"] = ask_public_url(settings)
    values["admin_emails"] = ask_admins()
    values.update(auth_on(settings))
    if settings.oidc_client_secret:  # the config's own secret would stand beside the file: start-up refuses both
        values["oidc_client_secret"] = ""
    for key, value in values.items():
        set_key(config, key, value)
    current_settings(config)  # what start-up would refuse, said now (one line naming the key)
    public = values["public_url"]
    say(f"Saved sign-in's settings in {config}.")
    say(f"Register at your provider: the redirect URI {public}{CALLBACK_PATH} and the post-logout redirect URI "
        f"{public}/ui (a confidential web client, authorization code).")
    say(f"Then start the proxy ({prog}) and sign in at {public}/ui/auth/login")


def current_settings(config: Path) -> Any:
    from argoproxy.config.settings import SettingsError, load_settings
    try:
        return load_settings({"config_path": str(config)})
    except SettingsError as exc:
        raise Abort(f"cot_proxy: bad setting {exc}", 2) from None


def ask_issuer() -> str:
    """The issuer, asked until its discovery document answers and names it (through the proxies the environment
    sets, as the server reaches it)."""
    while True:
        try:
            issuer = as_issuer(ask("Issuer URL of your OpenID Connect provider (OIDC_ISSUER, e.g. "
                                   "https://login.example.com/realms/acme): "))
        except ValueError as exc:
            say(f"Error: {exc}")
            continue
        if not issuer:
            say("Error: the issuer cannot be empty")
            continue
        try:
            found = OpenIdProvider(issuer).document()
        except ProxyError as exc:
            say(f"Error: {exc.message}")
            continue
        say(f"Found the provider: sign-in at {found['authorization_endpoint']}")
        return issuer


def ask_text(prompt: str) -> str:
    while True:
        answer = ask(prompt)
        if answer and answer.isprintable() and not any(c.isspace() for c in answer):
            return answer
        say("Error: one word, without spaces")


def ask_secret() -> str:
    """The client secret, not echoed, written to SECRET_FILE (0600 in a 0700 directory); "" for a public client."""
    try:
        secret = getpass.getpass("Client secret (not shown; empty for a public client): ").strip()
    except EOFError:
        raise Abort("Aborting: no answer (end of input).", 2) from None
    if not secret:
        return ""
    path = Path(SECRET_FILE).expanduser()
    path.parent.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    os.fchmod(fd, 0o600)  # a file made before with another mode
    with os.fdopen(fd, "w") as out:
        out.write(secret + "\n")
    say(f"Kept the client secret in {path} (only you can read it): OIDC_CLIENT_SECRET_FILE.")
    return str(path)


def ask_public_url(settings: Any) -> str:
    host = "localhost" if is_loopback(settings.host) else socket.getfqdn()
    offered = f"http://{host}:{settings.port}"
    while True:
        try:
            url = as_public_url(ask(f"Address people reach the proxy at (PUBLIC_URL) [{offered}]: ") or offered)
        except ValueError as exc:
            say(f"Error: {exc}")
            continue
        return url


def ask_admins() -> str:
    while True:
        answer = ask("Admins' emails, comma-separated (ADMIN_EMAILS; only where the provider says the email is "
                     "verified) [none]: ")
        if not answer:
            return ""
        try:
            return ",".join(parse_emails(answer, "ADMIN_EMAILS"))
        except ValueError as exc:
            say(f"Error: {exc}")


def auth_on(settings: Any) -> dict[str, Any]:
    """Sign-in needs ENABLE_AUTH (people's keys live in the key store): turned on with a key of the user's own
    when no admin key is set."""
    if settings.enable_auth:
        return {}
    say("Sign-in needs ENABLE_AUTH: clients will need a key from now on.")
    if settings.api_key_secret or settings.api_key_file:
        return {"enable_auth": True}
    path, created = create_user_key()
    say(f"{'Created' if created else 'Using'} your key file {path} (only you can read it). Clients send that key: "
        f"export COT_PROXY_KEY=$(cat {path}) in the clients' shell")
    return {"enable_auth": True, "api_key_file": str(path)}
