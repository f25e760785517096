"""The price table made from genai-prices (MIT, https://github.com/pydantic/genai-prices): `cot-proxy prices
refresh`.

genai-prices is not needed to run the proxy (importing its data costs seconds and tens of MB per process, and
pricing one call through it about a millisecond): only to make the table again. What is kept of it: each
provider's id, the pattern of its API's URL and the providers it falls back to for prices; each model's id, the
clauses its names match and its rates (historic ones with the day they start, off-peak hours, tiers by input
tokens) for the counts an answer's usage reports (units.UNITS). Rates are written as the decimal text genai-prices
gives, so nothing is rounded.

    cot-proxy prices refresh                  # the installed genai-prices -> ~/.local/share/argoproxy/prices.json,
                                              # which the proxy then reads instead of the package's table.json
    cot-proxy prices refresh --output FILE    # elsewhere (then `prices: {table: FILE}`)
    cot-proxy prices refresh --url URL        # genai-prices' newer data fetched from URL (the only network use)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import threading
from datetime import date, datetime, time, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

from argoproxy.config.price_settings import refreshed_path
from argoproxy.spend.table_rules import table_problem
from argoproxy.spend.units import UNITS
from argoproxy.redaction import redact_log_text

SHIPPED_TABLE = Path(__file__).with_name("table.json")  # the package's own: maintainers refresh it with --output
FETCH_SECONDS = 60  # the whole of `refresh --url`'s fetch (a server may answer one byte at a time)
FETCH_MOST = 64 * 1024 * 1024  # bytes of price data read from --url (genai-prices' data is a few MB); more: refused
DATA_URL = "https://raw.githubusercontent.com/pydantic/genai-prices/refs/heads/main/prices/new_data/v2/data.json"
CLAUSES = {"ClauseStartsWith": "starts_with", "ClauseEndsWith": "ends_with", "ClauseContains": "contains",
           "ClauseRegex": "regex", "ClauseEquals": "equals"}


def table_from(providers: list[Any], version: str, today: date | None = None) -> dict[str, Any]:
    """The table of genai-prices' providers (its `Provider` objects, version `version`)."""
    return {"about": {"source": "genai-prices", "version": version, "licence": "MIT",
                      "refreshed": (today or date.today()).isoformat()},
            "providers": [_provider(p) for p in providers]}


def _provider(p: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"id": p.id, "api_pattern": p.api_pattern}
    if p.fallback_model_providers:
        row["fallback"] = list(p.fallback_model_providers)
    row["models"] = [[m.id, _clause(m.match), _prices(m.prices)] for m in p.models]
    return row


def _clause(clause: Any) -> dict[str, Any]:
    kind = type(clause).__name__
    if kind == "ClauseOr":
        return {"or": [_clause(c) for c in clause.or_]}
    if kind == "ClauseAnd":
        return {"and": [_clause(c) for c in clause.and_]}
    name = CLAUSES[kind]  # a kind of clause this code does not know: the refresh stops (KeyError) rather than guess
    return {name: getattr(clause, name)}


def _prices(prices: Any) -> Any:
    if not isinstance(prices, list):
        return _rates(prices)
    found = []
    for conditional in prices:
        row: dict[str, Any] = {"prices": _rates(conditional.prices)}
        when = conditional.constraint
        if when is not None and hasattr(when, "start_date"):
            row["start_date"] = when.start_date.isoformat()
        elif when is not None:
            row["start_time"], row["end_time"] = _utc(when.start_time), _utc(when.end_time)
        found.append(row)
    return found


def _rates(prices: Any) -> dict[str, Any] | None:
    """The rates a usage can be charged by; None when the model is priced only by what no usage here reports
    (audio hours, pages, searches): unpriced, not free. An empty set of rates is a model offered free."""
    given = {key: value for key, value in vars(prices).items() if value is not None}
    kept = {key: _price(value) for key, value in given.items() if key in UNITS}
    return kept if kept or not given else None


def _price(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    return {"base": str(value.base), "tiers": [[tier.start, str(tier.price)] for tier in value.tiers]}


def _utc(moment: time) -> str:
    """A time of day in UTC (genai-prices reads a time without a zone as UTC)."""
    if moment.tzinfo is not None:
        moment = datetime.combine(date(2000, 1, 3), moment).astimezone(timezone.utc).time()
    return moment.replace(tzinfo=None).isoformat()


# The genai-prices the shipped table comes from (requirements-dev.txt pins the same: tests/unit/test_prices.py):
# installed into the proxy's own environment on first use, never a runtime requirement.
GENAI_PRICES = "genai-prices==0.2.3"


def installed_table(url: str | None = None) -> dict[str, Any]:
    """The table of the installed genai-prices; with `url`, of the data genai-prices fetches from there."""
    try:
        import genai_prices
    except ImportError:
        genai_prices = install_genai_prices()
    if url is None:
        from genai_prices.data import providers
        return table_from(providers, genai_prices.__version__)
    shown = redact_log_text(url)
    snapshot = _fetched(url, shown)
    if snapshot is None or not snapshot.providers:  # no providers written over the table: every model unpriced
        raise SystemExit(f"cot_proxy prices: no price data could be read from {shown}")
    return table_from(snapshot.providers, f"{genai_prices.__version__} with data from {shown}")


def install_genai_prices() -> Any:
    """genai-prices installed into the proxy's own virtual environment (./run_app.sh's .venv), said in one line;
    outside a virtual environment (the system's Python), the command to run instead."""
    import importlib
    import subprocess
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", GENAI_PRICES]
    if sys.prefix == sys.base_prefix:
        raise SystemExit(f"cot_proxy prices: genai-prices is not installed, and {sys.executable} is not a virtual "
                         f"environment's to install it into: pip install {GENAI_PRICES} (the version the shipped "
                         "table comes from)")
    print(f"cot_proxy prices: installing {GENAI_PRICES} into {sys.prefix} (used by `prices refresh` only, not "
          "by the proxy)", file=sys.stderr, flush=True)
    done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if done.returncode != 0:
        said = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit(f"cot_proxy prices: could not install {GENAI_PRICES} ({redact_log_text(said)}): run "
                         f"{' '.join(command[:4])} {GENAI_PRICES} yourself")
    importlib.invalidate_caches()
    return importlib.import_module("genai_prices")


def _fetched(url: str, shown: str) -> Any:
    """genai-prices' snapshot of the data at `url`, read up to FETCH_MOST bytes within FETCH_SECONDS; any failure is
    one line naming the URL as `shown` (errors' texts quote the URL whole, credentials too, over many lines)."""
    done: dict[str, Any] = {}

    def fetch() -> None:
        try:
            done["snapshot"] = _read_by_genai_prices(_download(url))
        except Exception as exc:  # the network's errors and the library's own on a payload it cannot read
            done["error"] = exc

    worker = threading.Thread(target=fetch, daemon=True)  # left behind on a timeout: the command exits
    worker.start()
    worker.join(FETCH_SECONDS)
    error = done.get("error")
    if worker.is_alive() or error is not None:
        why = f"no answer within {FETCH_SECONDS} s" if error is None else f"{type(error).__name__}: {_cause(error)}"
        raise SystemExit(f"cot_proxy prices: no price data could be read from {shown}: "
                         f"{redact_log_text(why.replace(url, shown))}")
    return done.get("snapshot")


def _cause(error: Exception) -> str:
    """An error in one line: its system error where it has one (requests wraps it in three layers of text)."""
    text = str(error).strip()
    found = re.search(r"\[Errno -?\d+\] [^\"')]+", text)
    return found[0].strip() if found else (text.splitlines() or [""])[0][:300]


class TooLong(ValueError):
    pass


def _download(url: str) -> bytes:
    """The answer at `url`, at most FETCH_MOST bytes (a server of anyone's choosing may answer without end:
    genai-prices' own fetch read it whole), through the environment's proxy as requests finds it."""
    import requests

    with requests.get(url, stream=True, timeout=(10, 10), allow_redirects=True) as response:
        if response.status_code >= 400:
            raise requests.HTTPError(f"{response.status_code} {response.reason}")
        body = bytearray()
        for chunk in response.iter_content(65536):
            body += chunk
            if len(body) > FETCH_MOST:
                raise TooLong(f"the answer is longer than {FETCH_MOST // (1 << 20)} MiB")
    return bytes(body)


def _read_by_genai_prices(data: bytes) -> Any:
    """genai-prices' reading of price data: its public reader fetches a URL, so the bytes read here are handed to
    it from a server of this process's own, on loopback, for that one request (never through a proxy)."""
    import http.server
    from genai_prices.update_prices import UpdatePrices

    class PricesHandler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), PricesHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    bypass = ",".join(filter(None, (os.environ.get("NO_PROXY"), "127.0.0.1")))
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = bypass  # this command's process only
    try:
        return UpdatePrices(url=f"http://127.0.0.1:{server.server_address[1]}/data.json").fetch()
    finally:
        server.shutdown()
        server.server_close()


def write_table(table: dict[str, Any], path: Path) -> None:
    """Written whole or not at all: a worker reading it meanwhile sees the old table or the new one."""
    text = json.dumps(table, separators=(",", ":"), ensure_ascii=False, sort_keys=False) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".prices-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def main(argv: list[str], prog: str = "cot-proxy", settings_of: Callable[[dict[str, Any]], Any] | None = None) -> int:
    """`prices ...`; `settings_of`: how the entry point reads the settings (flags -> Settings), for `show`, which
    answers with the `prices` setting's rates and table as the proxy would."""
    parser = argparse.ArgumentParser(prog=f"{prog} prices", description="The price table the proxy charges "
                                     "requests by (docs/spend.md).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{refresh,show}")
    refresh = commands.add_parser("refresh", help="make the table again from the installed genai-prices")
    refresh.add_argument("--output", help=f"where to write it (default: {refreshed_path()}, which the proxy "
                         "reads when the prices setting names no table)")
    refresh.add_argument("--url", nargs="?", const=DATA_URL,
                         help="fetch genai-prices' newest data (default URL: its repository's) instead of the "
                              "installed package's: the only command that uses the network")
    show = commands.add_parser("show", help="the rates a model is charged at")
    show.add_argument("model")
    show.add_argument("--url", dest="base_url", default="", help="the upstream's base URL (default: every provider "
                      "of the table)")
    show.add_argument("--provider", default="", help="a provider id of the table instead of a URL (openai, "
                      "anthropic, google...)")
    show.add_argument("--date", default="", help="YYYY-MM-DD: the rates of that day (default: today)")
    show.add_argument("--config", help="the config file whose `prices` setting applies (default: as the proxy "
                      "finds it)")
    args = parser.parse_args(argv)
    if args.command == "refresh":
        table = installed_table(args.url)
        problem = table_problem(table)
        if problem:  # a hostile or broken table is not written (argoproxy/spend/table_rules.py)
            raise SystemExit(f"cot_proxy prices: the price data is refused, nothing written: {problem}")
        path = Path(args.output).expanduser() if args.output else refreshed_path()
        try:
            write_table(table, path)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename and str(exc.filename) != str(path) else ""
            raise SystemExit(f"cot_proxy prices: cannot write {path} ({where}{exc.strerror or exc})") from None
        models = sum(len(p["models"]) for p in table["providers"])
        print(f"cot_proxy prices: {models} models of {len(table['providers'])} providers from genai-prices "
              f"{table['about']['version']} written to {path}", file=sys.stderr)
        return 0
    from argoproxy.spend.show import show_model
    settings = settings_of({"config_path": args.config} if args.config else {}) if settings_of else None
    return show_model(args.model, args.base_url, args.provider, args.date, settings.prices if settings else None)
