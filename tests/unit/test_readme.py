"""The README's settings table names every setting: its YAML key, environment variables and flags."""

from argoproxy.config.settings import SETTING_FIELDS
from tests.proxy_process import ROOT


def test_every_setting_is_in_the_readme_table():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| YAML key | Environment | Flag |"):]
    table = table[:table.index("\n\n")]
    rows = table.splitlines()
    for f in SETTING_FIELDS.values():
        names = [f"`{n}`" for n in f.metadata["env"] + f.metadata["flags"] + f.metadata["negative_flags"]]
        row = next((r for r in rows if all(n in r for n in names)), None)
        assert row is not None, f"{f.name} is missing from the README's settings table"
        if f.name != "config_path":
            assert row.startswith(f"| `{f.name}`"), row
