"""`./run_app.sh signin setup` answered in a pseudo-terminal (pexpect) against the suite's real OpenID provider
(tests/oidc_provider.py), behind a corporate proxy that is down (HTTP_PROXY, with NO_PROXY naming loopback): a
bad issuer and one that does not answer are asked again, the secret is never echoed and lands in a 0600 file,
the config gains sign-in's keys (and a key of the user's own, auth being off), the redirect URI to register is
printed; then a proxy started from that config signs a person in."""

from __future__ import annotations

import io
import signal
import tempfile
from pathlib import Path

import pexpect
import requests

from tests.integration.test_run_app import SCRIPT, script_env, transcript
from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET, OidcProvider, sign_in
from tests.proxy_process import ProxyProcess, free_port, start_on_free_port


def test_signin_setup_asks_checks_the_issuer_and_writes_a_config_that_signs_in(tmp_path: Path) -> None:
    port = free_port()
    public = f"http://localhost:{port}"
    provider = OidcProvider(public).start()
    config = tmp_path / "config.yaml"
    config.write_text(f'backend: "openai"\ntarget_base_url: "http://127.0.0.1:9/v1"\nport: {port}\n')
    env = script_env(tmp_path, HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9",
                     NO_PROXY="127.0.0.1,localhost")
    child = pexpect.spawn(str(SCRIPT), ["signin", "setup"], env=env, cwd=str(tmp_path), encoding="utf-8",
                          timeout=30, dimensions=(50, 200))
    child.logfile_read = io.StringIO()
    proxy = None
    try:
        for answer, said in (("http://login.example.com", "must be https (http only on a loopback address)"),
                             (f"http://127.0.0.1:{free_port()}", "The sign-in provider (OIDC_ISSUER) cannot be "
                                                                 "reached"),
                             (provider.issuer, f"Found the provider: sign-in at {provider.issuer}/")):
            child.expect_exact("Issuer URL of your OpenID Connect provider (OIDC_ISSUER")
            child.sendline(answer)
            child.expect_exact(said)
        child.expect_exact("(OIDC_CLIENT_ID): ")
        child.sendline(CLIENT_ID)
        child.expect_exact("Client secret (not shown; empty for a public client): ")
        child.sendline(CLIENT_SECRET)
        secret_file = tmp_path / ".config" / "argoproxy" / "oidc_client_secret"
        child.expect_exact(f"Kept the client secret in {secret_file}")
        child.expect_exact(f"(PUBLIC_URL) [{public}]: ")
        child.sendline("")
        child.expect_exact("[none]: ")
        child.sendline("Dave@Example.com, not-an-email")
        child.expect_exact("Error: ADMIN_EMAILS takes comma-separated emails, got 'not-an-email'")
        child.sendline("Dave@Example.com")
        child.expect_exact("Sign-in needs ENABLE_AUTH")
        child.expect_exact(f"the redirect URI {public}/ui/auth/callback and the post-logout redirect URI {public}/ui")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0, transcript(child)
        assert CLIENT_SECRET not in transcript(child)
        assert secret_file.read_text() == CLIENT_SECRET + "\n" and secret_file.stat().st_mode & 0o777 == 0o600
        text = config.read_text()
        for line in (f'oidc_issuer: "{provider.issuer}"', f'oidc_client_id: "{CLIENT_ID}"', f'public_url: "{public}"',
                     f'oidc_client_secret_file: "{secret_file}"', 'admin_emails: "dave@example.com"',
                     "enable_auth: true"):
            assert "\n" + line + "\n" in text, text
        assert CLIENT_SECRET not in text

        home = tempfile.mkdtemp(prefix="cot_proxy_signin_setup_")
        proc, _ = start_on_free_port(home, {"CONFIG_PATH": str(config), "HOME": str(tmp_path)}, port=port)
        proxy = ProxyProcess(proc, port, home)
        browser = requests.Session()
        assert sign_in(browser, public, "dave").status_code == 303
        me = browser.get(public + "/ui/auth/me").json()
        assert me["email"] == "dave@example.com" and me["admin"] is True
    finally:
        if child.isalive():
            child.kill(signal.SIGKILL)
        if proxy is not None:
            proxy.stop()
        provider.stop()
