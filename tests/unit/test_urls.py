"""Secrets in URLs (cgkit/urls.py): the one rule every URL-taking field and option applies, and the
one redactor every message and printed URL goes through."""

from __future__ import annotations

import pytest

from cgkit import urls
from cgkit.errors import CgkitError, ConfigIssue

SECRET = "wJalrXUtnFEMI"


@pytest.mark.parametrize(("url", "found"), [
    (f"s3://AKIA:{SECRET}@cgkit-state", "user:secret@"),
    (f"HTTPS://{SECRET}@api.pulumi.com", "user:secret@"),
    (f"s3://k:se/{SECRET}@bucket", "user:secret@"),                 # a / in the password
    (f"s3://k:se#{SECRET}@bucket", "user:secret@"),                 # a # in the password
    (f"s3://k:se?{SECRET}@bucket", "user:secret@"),                 # a ? in the password
    (f"s3://b?endpoint=https://k:{SECRET}:?@h", "user:secret@ in endpoint"),  # found by the fuzzer
    (f"s3://b?region=eu&endpoint=https://k:{SECRET}@s3.example.nl", "user:secret@ in endpoint"),
    (f"azblob://c?sv=2022&sig={SECRET}", "parameter(s) sig, sv"),
    (f"s3://b?X-Amz-Signature={SECRET}", "parameter(s) X-Amz-Signature"),
    (f"https://api.pulumi.com?token={SECRET}", "parameter(s) token"),
    (f"hashivault://k?t={SECRET}", "parameter(s) t"),            # no name pattern would catch "t"
    (f"awskms://alias/k?Region=eu", "parameter(s) Region"),     # the engine's names are exact
])
def test_credentials_are_found_by_allow_list(url: str, found: str) -> None:
    assert urls.credentials(url) == found


@pytest.mark.parametrize("url", [
    "s3://cgkit-state?region=eu-west-1&endpoint=https://s3.example.nl&use_path_style=true",
    "azblob://cgkit-state?storage_account=acc&domain=blob.core.windows.net",
    "gs://cgkit-state?access_id=state@p.iam.gserviceaccount.com",
    "awskms://alias/cgkit?region=eu-west-1&context_team=platform",
    "hashivault://cgkit?engine=transit", "file:///var/cgkit/state", "http://[::1]:9000",
    "http://otel-collector.observability.svc:4318",
])
def test_what_the_engine_reads_is_no_credential(url: str) -> None:
    assert urls.credentials(url) is None
    assert urls.redact(url) == url


@pytest.mark.parametrize("url", [
    f"s3://AKIA:{SECRET}@cgkit-state?region=eu", f"s3://k:se?{SECRET}@bucket", f"s3://k:se#{SECRET}@b",
    f"azblob://c?sig={SECRET}", f"https://h?{SECRET}", f"https://h#{SECRET}", f"http://[::1:{SECRET}",
    f"s3://b?endpoint=http://k:{SECRET}@10.0.0.1:99999", f"s3://b?{SECRET}%41=1", f"k:{SECRET}@host",
])
def test_the_redactor_never_shows_a_secret(url: str) -> None:
    assert SECRET not in urls.redact(url)


def test_the_redactor_keeps_what_helps_and_says_what_it_hid() -> None:
    assert urls.redact(f"s3://k:{SECRET}@b?region=eu-west-1&sig={SECRET}") == "s3://…@b?region=eu-west-1&sig=…"


def test_every_rendered_error_redacts_the_urls_in_it() -> None:
    text = f"cannot reach 'https://api.pulumi.com?token={SECRET}': refused; and s3://k:{SECRET}@b."
    assert SECRET not in CgkitError(text, hint=f"see s3://b?sig={SECRET}").render()
    rendered = ConfigIssue("e.yaml", 3, "state.backend", text).render()
    assert SECRET not in rendered and rendered.endswith("s3://…@b.")


def test_a_refusal_names_what_and_where_credentials_belong() -> None:
    with pytest.raises(ValueError) as refused:
        urls.refuse_credentials(f"azblob://c?sig={SECRET}")
    message = str(refused.value)
    assert SECRET not in message and "parameter(s) sig" in message and "AZURE_STORAGE_KEY" in message


def test_doctor_shows_the_backend_of_the_shell_without_its_password(scratch_root, monkeypatch) -> None:
    from cgkit import toolchain
    from cgkit.cli import doctor

    monkeypatch.setattr(toolchain, "REPO_ROOT", scratch_root)
    monkeypatch.setenv("PULUMI_BACKEND_URL", f"s3://cgkit-state?endpoint=https://k:{SECRET}@s3.example.nl&region=eu")
    lines = doctor._backends()
    assert lines == ["backend (sandbox): s3://cgkit-state?endpoint=https://…@s3.example.nl&region=eu "
                     "($PULUMI_BACKEND_URL); secrets: passphrase"]


def test_cgkit_env_does_not_print_the_shells_own_backend_back(scratch_root, monkeypatch, capsys) -> None:
    from cgkit.cli.app import main

    monkeypatch.chdir(scratch_root)
    monkeypatch.setenv("CGKIT_SANDBOX_DIR", str(scratch_root / "sb"))
    (scratch_root / "sb").mkdir()
    (scratch_root / "sb" / "kubeconfig").write_text("")
    monkeypatch.setenv("PULUMI_BACKEND_URL", f"s3://k:{SECRET}@cgkit-state")
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE_FILE", str(scratch_root / "passphrase"))
    assert main(["env", "--env", "sandbox"]) == 0
    assert SECRET not in capsys.readouterr().out
