"""An environment's state: section: which backend URLs and secrets providers are accepted, what the
engine then runs with, and that no credential or plain-http state transfer gets through."""

from __future__ import annotations

from pathlib import Path

import pytest

from cgkit import engine, state
from cgkit.errors import EngineError

ACCEPTED_BACKENDS = [
    "file:///var/lib/cgkit/state",
    "file://.cgkit/state",
    "s3://cgkit-state",
    "s3://cgkit-state?region=eu-west-1",
    "s3://cgkit-state?endpoint=https://s3.example.nl&use_path_style=true&region=nl-ams",
    "s3://cgkit-state?endpoint=http://127.0.0.1:9870&use_path_style=true",
    "s3://cgkit-state?endpoint=http://localhost:9870&s3ForcePathStyle=true",
    "s3://cgkit.state.acc?prefix=tenants/&kmskeyid=alias/state",
    "azblob://cgkit-state",
    "gs://cgkit-state",
]

REFUSED_BACKENDS = [
    ("", "empty"),
    (" s3://cgkit-state", "surrounding blanks"),
    ("cgkit-state", "is not one of file://, s3://"),
    ("https://s3.example.nl/cgkit-state", "is not one of"),
    ("S3://cgkit-state", "is not one of"),
    ("file://", "is not a file backend"),
    ("file://state?x=1", "has parameter(s) x that the engine does not read"),
    ("s3://", "names no valid bucket"),
    ("s3://Cgkit_State", "names no valid bucket"),
    ("s3://AKIAEXAMPLE:wJalrXUt@cgkit-state", "carries credentials (user:secret@)"),
    ("s3://cgkit-state?aws_secret_access_key=x", "has parameter(s) aws_secret_access_key that the engine does not read"),
    ("s3://cgkit-state?session_token=x", "may be a credential"),
    ("s3://cgkit-state?regoin=eu-west-1", "has parameter(s) regoin that the engine does not read"),
    ("s3://cgkit-state?region=a&region=b", "gives region more than once"),
    ("s3://cgkit-state?endpoint=http://10.0.0.5:9000", "plain http to another machine"),
    ("s3://cgkit-state?endpoint=https://s3.example.nl&disable_https=true", "plain http to another machine"),
    ("s3://cgkit-state?disable_https=true", "without an endpoint"),
    ("s3://cgkit-state?endpoint=s3.example.nl", "is not http(s)://host[:port]"),
    ("s3://cgkit-state?endpoint=https://s3.example.nl/path", "is not http(s)://host[:port]"),
    ("s3://cgkit-state?endpoint=http://[::1", "is not a URL"),
    ("azblob://cgkit-state?sv=2022-11-02&sig=c2ln", "has parameter(s) sig, sv"),
    ("s3://cgkit-state?endpoint=https://key:secret@s3.example.nl", "carries credentials (user:secret@ in endpoint)"),
    ("gs://cgkit-state?token=x", "has parameter(s) token"),
]


@pytest.mark.parametrize("url", ACCEPTED_BACKENDS)
def test_backends_the_engine_opens_are_accepted(url: str) -> None:
    assert state.check_backend(url) == url


@pytest.mark.parametrize(("url", "says"), REFUSED_BACKENDS)
def test_bad_backends_are_refused_with_what_is_wrong(url: str, says: str) -> None:
    with pytest.raises(ValueError) as refused:
        state.check_backend(url)
    assert says in str(refused.value)


@pytest.mark.parametrize("url", ["s3://AKIAEXAMPLE:wJalrXUt@cgkit-state",
                                 "s3://cgkit-state?aws_secret_access_key=wJalrXUt",
                                 "S3://cgkit-state?x=wJalrXUt", "s3://cgkit-state:wJalrXUt",
                                 "s3://cgkit-state?endpoint=http://k:wJalrXUt@10.0.0.5:99999",
                                 "s3://cgkit-state?endpoint=https://s3.example.nl:wJalrXUt"])
def test_a_refused_credential_is_not_echoed(url: str) -> None:
    with pytest.raises(ValueError) as refused:
        state.check_backend(url)
    assert "wJalrXUt" not in str(refused.value)


@pytest.mark.parametrize("provider", ["passphrase", "awskms://alias/cgkit?region=eu-west-1",
                                      "azurekeyvault://cgkit.vault.azure.net/keys/state",
                                      "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k",
                                      "hashivault://cgkit"])
def test_secrets_providers_pulumi_knows_are_accepted(provider: str) -> None:
    assert state.check_secrets_provider(provider) == provider


@pytest.mark.parametrize(("provider", "says"), [
    ("kms://x", "is not one of passphrase, awskms://"),
    ("Passphrase", "is not one of"),
    ("awskms://", "names no key"),
    ("hashivault://user:token@cgkit", "carries credentials"),
    ("hashivault://cgkit?token=s.abc", "has parameter(s) token"),
    ("gcpkms://projects/p/keys/k?credentials=x", "has parameter(s) credentials"),
    ("awskms://alias/cgkit?region=eu-west-1&secret=x", "has parameter(s) secret"),
])
def test_bad_secrets_providers_are_refused(provider: str, says: str) -> None:
    with pytest.raises(ValueError) as refused:
        state.check_secrets_provider(provider)
    assert says in str(refused.value)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE", "PULUMI_BACKEND_URL", "PULUMI_HOME"):
        monkeypatch.delenv(key, raising=False)


def test_a_relative_file_backend_is_taken_from_the_project_root(tmp_path: Path) -> None:
    env = engine.engine_env(engine.EngineSettings(root=tmp_path, backend_url="file://team-state"))
    assert env["PULUMI_BACKEND_URL"] == f"file://{tmp_path / 'team-state'}"
    assert (tmp_path / "team-state").is_dir()


def test_the_environments_backend_and_provider_reach_the_engine(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE_FILE", str(tmp_path / "team-passphrase"))
    settings = engine.EngineSettings(root=tmp_path, backend_url="s3://cgkit-state?region=eu-west-1",
                                     secrets_provider="awskms://alias/cgkit?region=eu-west-1")
    assert engine.engine_env(settings)["PULUMI_BACKEND_URL"] == "s3://cgkit-state?region=eu-west-1"
    assert engine.workspace(settings).secrets_provider == "awskms://alias/cgkit?region=eu-west-1"


def test_pulumi_backend_url_wins_as_for_plain_pulumi(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PULUMI_BACKEND_URL", f"file://{tmp_path / 'elsewhere'}")
    settings = engine.EngineSettings(root=tmp_path, backend_url="file://team-state")
    assert engine.engine_env(settings)["PULUMI_BACKEND_URL"] == f"file://{tmp_path / 'elsewhere'}"


def test_a_shared_backend_never_gets_a_passphrase_of_one_machine(tmp_path: Path) -> None:
    settings = engine.EngineSettings(root=tmp_path, backend_url="s3://cgkit-state?region=eu-west-1")
    with pytest.raises(EngineError, match="passphrase is not given"):
        engine.engine_env(settings)
    assert not (tmp_path / ".cgkit" / "passphrase").exists()


def test_a_shared_backend_with_a_kms_key_needs_no_passphrase(tmp_path: Path) -> None:
    settings = engine.EngineSettings(root=tmp_path, backend_url="gs://cgkit-state",
                                     secrets_provider="gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k")
    env = engine.engine_env(settings)
    assert env["PULUMI_BACKEND_URL"] == "gs://cgkit-state"
    assert "PULUMI_CONFIG_PASSPHRASE_FILE" not in env and not (tmp_path / ".cgkit" / "passphrase").exists()
