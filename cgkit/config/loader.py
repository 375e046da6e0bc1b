"""Load, layer and check config files; every problem becomes a ConfigIssue with file and line.

Layout under the project root (DESIGN.md)::

    environments/<env>/environment.yaml
    environments/<env>/municipalities/<code-lowercase>.yaml

``load_municipality`` returns the merged ``MunicipalityConfig`` for one stack or raises
``ConfigError`` with every problem found; ``check_environment`` returns every problem of every file
of an environment (what ``cgkit validate`` prints). Nothing here touches a cluster or Pulumi state.
"""

from __future__ import annotations

import datetime
import difflib
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from cgkit.config import model
from cgkit.config.model import EnvironmentFile, MunicipalityConfig, MunicipalityFile
from cgkit.config.yamlsource import FieldPath, YamlSource, dotted, read_yaml
from cgkit import urls
from cgkit.errors import ConfigError, ConfigIssue, InvalidArgumentError
from cgkit.gemeenten import all_gemeenten
from policies import shape, waivers
from policies.config import PolicySettings
from policies.registry import enforcement_levels

ENVIRONMENTS = "environments"

#: What a valid value looks like, for fields whose pydantic message would only show a regex.
_PATTERN_HINTS = {
    "code": "a CBS municipality code: GM and four digits, e.g. GM0344",
    "domain": model.DOMAIN_HINT,
    "name": "lower-case letters, digits and hyphens, starting with a letter",
    "rule": "a policy rule id such as CGK-POD-001",
    "storage": "a size such as 10Gi",
    "class_name": "a Kubernetes object name: lower-case letters, digits, '-' and '.', e.g. cgkit-sandbox",
    "storage_class": "a Kubernetes object name: lower-case letters, digits, '-' and '.', e.g. cgkit-sandbox",
    "tls_issuer": "a Kubernetes object name: lower-case letters, digits, '-' and '.', e.g. letsencrypt-prod",
    "controller_namespace": "a namespace name: at most 63 lower-case letters, digits and '-', e.g. ingress-nginx",
    "controller": "a controller name such as k8s.io/ingress-nginx",
    "storage_provisioner": "a provisioner name such as kubernetes.io/no-provisioner or ebs.csi.aws.com",
    "issuer": "an https URL without query or fragment (the provider's public issuer), "
              "e.g. https://login.utrecht.nl/realms/gemeente",
}


#: Names of environment folders (the environment file's ``name`` has the same pattern).
ENV_NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")
#: The one spelling of a municipality file name: the CBS code in lower case, ``.yaml``.
MUNICIPALITY_FILE = re.compile(r"gm\d{4}\.yaml")


def environment_file(root: Path, env: str) -> Path:
    """Return the path of an environment's file: ``<root>/environments/<env>/environment.yaml``.

    Raises:
        InvalidArgumentError: ``env`` is not an environment name (``../x`` would leave environments/).
    """
    if not ENV_NAME.fullmatch(env):
        raise InvalidArgumentError(f"--env '{env}' is not an environment name",
                                   hint="lower-case letters, digits and '-', starting with a letter, at most 31 "
                                        "characters, e.g. sandbox")
    return root / ENVIRONMENTS / env / "environment.yaml"


def municipality_file(root: Path, env: str, code: str) -> Path:
    """Return the path of a municipality's file: ``<root>/environments/<env>/municipalities/<code>.yaml``.

    Raises:
        InvalidArgumentError: ``env`` is not an environment name, or ``code`` is not shaped like a CBS
            code (GM and four digits, any case).
    """
    if not re.fullmatch(r"gm\d{4}", code, re.IGNORECASE):
        raise InvalidArgumentError(f"'{code}' is not a CBS municipality code", hint="GM and four digits, e.g. GM0344")
    return environment_file(root, env).parent / "municipalities" / f"{code.lower()}.yaml"


def known_apps() -> set[str]:
    """Return the app keys of the app catalog (components/catalog.yaml)."""
    from components.catalog import load_catalog  # the catalog is data owned by components/

    return set(load_catalog())


def load_environment(root: Path, env: str) -> EnvironmentFile:
    """Load and check ``environments/<env>/environment.yaml``.

    Raises:
        ConfigError: the file is missing or invalid (every problem listed).
    """
    return load_environment_source(root, env)[0]


def load_environment_source(root: Path, env: str) -> tuple[EnvironmentFile, YamlSource]:
    """Load and check an environment file; return it with its source (for the line of each field).

    Raises:
        ConfigError: the file is missing or invalid (every problem listed).
    """
    path = environment_file(root, env)
    if not os.path.lexists(path):
        raise ConfigError([ConfigIssue(_display(root, path), None, "", f"no such file; environment "
                                       f"'{env}' needs one (known: {', '.join(environments(root)) or 'none'})")])
    source = read_yaml(path, _display(root, path), root)
    parsed = _validate(EnvironmentFile, source)
    issues = _check_environment_semantics(parsed, source, env)
    if issues:
        raise ConfigError(issues)
    return parsed, source


def load_municipality(root: Path, env: str, code: str, today: datetime.date | None = None) -> MunicipalityConfig:
    """Load one municipality's merged config for stack ``<env>.<code>``.

    Args:
        root: the project root (holds environments/).
        env: environment name, e.g. "sandbox".
        code: CBS code in any case, e.g. "GM0344" or "gm0344".
        today: the date waivers are checked against (default: today).

    Raises:
        ConfigError: either file is missing or invalid; every problem listed with file and line.
    """
    environment = load_environment(root, env)
    path = municipality_file(root, env, code)
    if not os.path.lexists(path):
        raise ConfigError([ConfigIssue(_display(root, path), None, "", f"no such file; create it with "
                                       f"`cgkit onboard {code.upper()} --env {env}`")])
    parsed = read_municipality_file(root, path, today=today, policy=environment.policy)
    config = merge(env, environment, parsed)
    problems = _weak_tls(config, _display(root, path))
    if parsed.backups is not None:  # read again for its line, only when there is an override to judge
        problems += _backups_override_unused(parsed, config, read_yaml(path, _display(root, path), root))
    if problems:
        raise ConfigError(problems)
    return config


#: libpq sslmodes that let the connection go without TLS (https://www.postgresql.org/docs/current/libpq-ssl.html).
WEAK_SSLMODES = frozenset({"disable", "allow", "prefer"})
#: The policy rule a waiver names to allow a weaker sslmode outside the sandbox.
SSLMODE_RULE = "CGK-SEC-004"


def _weak_tls(config: MunicipalityConfig, shown: Path) -> list[ConfigIssue]:
    """An external database reached without required TLS, outside the sandbox and not waived."""
    db = config.database
    if (not isinstance(db, model.DatabaseExternal) or db.sslmode not in WEAK_SSLMODES
            or config.environment.cluster.sandbox or any(w.rule == SSLMODE_RULE for w in config.waivers)):
        return []
    return [ConfigIssue(shown, None, "database.sslmode", f"sslmode '{db.sslmode}' lets the connection to "
                        f"{db.host} go without TLS in environment {config.env}; use require, verify-ca or "
                        f"verify-full, or add an approved waiver of {SSLMODE_RULE}")]


def _backups_override_unused(parsed: MunicipalityFile, config: MunicipalityConfig, source: YamlSource) -> list[ConfigIssue]:
    """A municipality's backup override that would apply to nothing (no store in the environment, or
    an external database, which its own service backs up) is an error, not dropped silently."""
    if parsed.backups is None or config.backups is not None:
        return []
    why = ("its database is external (database.mode), which that database's service backs up, not cgkit"
           if isinstance(config.database, model.DatabaseExternal) else
           f"environment {config.env} has no backups section; add backups (endpoint, bucket) to "
           f"environments/{config.env}/environment.yaml")
    return [ConfigIssue(source.file, source.line_of(("backups",)), "backups",
                        f"this schedule or retention would apply to nothing: {why}; or remove it here")]


def read_municipality_file(root: Path, path: Path, display: Path | None = None,
                           today: datetime.date | None = None, policy: PolicySettings | None = None) -> MunicipalityFile:
    """Read and check one municipality file on its own (no files around it).

    Args:
        root: the project root (a link out of it is refused).
        path: the file to read.
        display: the file's name in messages and the name its code must match (default: ``path``),
            so a file about to be written can be checked under its final name.
        today: the date waivers are checked against (default: today).
        policy: the environment's policy section, for the waiver limit (default: the default limit).

    Raises:
        ConfigError: every problem of the file, with lines; the waivers' as `policies.waivers.problems`
            finds them (unknown or repeated rule, expired, past the environment's limit).
    """
    shown = display or _display(root, path)
    source = read_yaml(path, shown, root)
    parsed = _validate(MunicipalityFile, source)
    issues = _check_municipality_semantics(parsed, source, Path(shown))
    issues += _waiver_issues(parsed, source, today, policy or PolicySettings())
    if issues:
        raise ConfigError(issues)
    return parsed


def merge(env: str, environment: EnvironmentFile, municipality: MunicipalityFile) -> MunicipalityConfig:
    """Layer a municipality file over its environment file (and the kit defaults in the models).

    Apps: the environment's default set, then the municipality's entries on top (an entry adds an
    app or changes its settings; ``enabled: false`` removes it). Disabled apps are left out.
    """
    defaults = environment.defaults
    apps = {key: model.AppSettings() for key in defaults.apps}
    apps.update(municipality.apps or {})
    return MunicipalityConfig(
        env=env,
        code=municipality.code,
        name=municipality.name or all_gemeenten()[municipality.code].name,
        domain=municipality.domain,
        size=municipality.size or defaults.size,
        apps={key: settings for key, settings in sorted(apps.items()) if settings.enabled},
        database=municipality.database or defaults.database,
        access=municipality.access,
        auth=municipality.auth,
        waivers=municipality.waivers,
        backups=_backups(environment, municipality),
        environment=environment,
    )


def _backups(environment: EnvironmentFile, municipality: MunicipalityFile) -> model.BackupSettings | None:
    """The environment's backup settings with the municipality's override; None without a store, or
    for an external database (cgkit backs up only the PostgreSQL it runs)."""
    database = municipality.database or environment.defaults.database
    if environment.backups is None or isinstance(database, model.DatabaseExternal):
        return None
    override = municipality.backups.model_dump(exclude_none=True) if municipality.backups else {}
    return environment.backups.model_copy(update=override)


def environments(root: Path) -> list[str]:
    """Return the names of the environments under ``<root>/environments`` (folders with an environment.yaml)."""
    base = root / ENVIRONMENTS
    return sorted(p.parent.name for p in base.glob("*/environment.yaml")) if base.is_dir() else []


def municipality_codes(root: Path, env: str) -> list[str]:
    """Return the CBS codes (upper case) of the municipality files of ``env``, sorted.

    Only files named ``gm<4 digits>.yaml`` count; `stray_files` lists the others.
    """
    folder = environment_file(root, env).parent / "municipalities"
    return sorted(p.stem.upper() for p in folder.iterdir() if MUNICIPALITY_FILE.fullmatch(p.name)) \
        if folder.is_dir() else []


def stray_files(root: Path, env: str) -> list[ConfigIssue]:
    """Return an issue for every entry of ``environments/<env>/municipalities/`` that is not a
    municipality file named ``gm<4 digits>.yaml`` (``GM0344.yaml``, ``gm0344.yml``, ``notes.txt``,
    a folder): cgkit would otherwise ignore it silently.
    """
    folder = environment_file(root, env).parent / "municipalities"
    issues = []
    for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
        if MUNICIPALITY_FILE.fullmatch(entry.name) or entry.name.startswith("."):
            continue
        code = re.match(r"(gm\d{4})(\.ya?ml)?$", entry.name, re.IGNORECASE)
        fix = (f"rename it to {code.group(1).lower()}.yaml" if code else
               "municipality files are named <code>.yaml, e.g. gm0344.yaml; move it elsewhere")
        issues.append(ConfigIssue(_display(root, entry), None, "", f"not read: not a municipality file name; {fix}"))
    return issues


def check_environment(root: Path, env: str, today: datetime.date | None = None,
                      extra: Callable[[MunicipalityConfig], list[ConfigIssue]] | None = None) -> list[ConfigIssue]:
    """Return every problem in every config file of ``env`` (empty when all is valid).

    Besides each file on its own (its waivers included, against the environment's limit), checks
    across files: no two municipalities share a domain; ``extra`` adds the issues of further checks
    of each valid municipality (the CLI passes the capacity check).
    """
    try:
        load_environment(root, env)
    except ConfigError as err:
        return err.issues
    issues: list[ConfigIssue] = stray_files(root, env) + wave_file_issues(root, env)
    domains: dict[str, Path] = {}
    for code in municipality_codes(root, env):
        try:
            config = load_municipality(root, env, code, today)
        except ConfigError as err:
            issues.extend(err.issues)
            continue
        path = _display(root, municipality_file(root, env, code))
        if config.domain in domains:
            issues.append(ConfigIssue(path, None, "domain", f"'{config.domain}' is also the domain of "
                                      f"{domains[config.domain]}; each municipality needs its own"))
        domains.setdefault(config.domain, path)
        if extra is not None:
            issues.extend(extra(config))
    return issues


# ---------------------------------------------------------------------------------------------


def _display(root: Path, path: Path) -> Path:
    """Return ``path`` relative to ``root`` when it is inside it (for messages); a symbolic link is
    named as itself, not as its target."""
    try:
        return path.parent.resolve().relative_to(root.resolve()) / path.name
    except (ValueError, OSError, RuntimeError):
        return path


def _validate(cls: type[BaseModel], source: YamlSource) -> Any:
    """Validate ``source.data`` as ``cls``; pydantic errors become ConfigIssues with lines."""
    try:
        return cls.model_validate(source.data)
    except ValidationError as err:
        issues = [_issue(source, error) for error in err.errors()]
        raise ConfigError(sorted(issues, key=lambda i: (i.line is None, i.line or 0))) from err


def _issue(source: YamlSource, error: dict[str, Any]) -> ConfigIssue:
    """Translate one pydantic error into a ConfigIssue naming the file, line and field."""
    path = _data_path(source.data, error["loc"])
    return ConfigIssue(source.file, source.line_of(path), dotted(path), _message(error, path))


def _data_path(data: Any, loc: tuple) -> FieldPath:
    """Map a pydantic ``loc`` onto the data, dropping the union tags pydantic inserts."""
    path: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        elif isinstance(node, (dict, list)) or node is None:
            if isinstance(part, str) and part[:1].islower() and "[" not in part and not _is_union_tag(part):
                path.append(part)  # a missing or unknown key: keep it, so the field is named
            continue
        else:
            continue
        path.append(part)
    return tuple(path)


def _is_union_tag(part: str) -> bool:
    return part in {"in-cluster", "external"} or part.startswith("function-")


#: The fields that hold a URL: their values are shown only redacted, even when they are no URL.
_URL_FIELDS = frozenset({"backend", "secrets_provider", "otlp_endpoint", "endpoint", "issuer"})


def _message(error: dict[str, Any], path: FieldPath) -> str:
    """Return a sentence for one pydantic error: what is wrong and what would be valid. A value with
    ``://`` in it, or in a URL field, is shown redacted (`cgkit.urls.redact`), whatever is wrong with it."""
    kind, value = error["type"], error.get("input")
    last = str(path[-1]) if path else ""
    if isinstance(value, str) and ("://" in value or last in _URL_FIELDS):
        value = urls.redact(value)
    if kind == model.CHECK_ERROR:
        return error["msg"]
    if kind == "extra_forbidden":
        if len(path) == 2 and path[0] == "backups" and last in model.BackupSettings.model_fields:
            return (f"the store's {last} is the environment's (backups.{last} in its environment.yaml); a "
                    f"municipality sets only {', '.join(model.BackupOverride.model_fields)}")
        return f"unknown field{_suggest(last, _all_field_names() - {last})}"
    if kind == "missing":
        return "required field is missing"
    if kind == "string_pattern_mismatch":
        return f"'{value}' is not valid; expected {_PATTERN_HINTS.get(last, 'text matching ' + error['ctx']['pattern'])}"
    if kind == "string_type" and isinstance(value, (int, float)):
        if last == "code":
            return f"expected a CBS code, got the number {value!r}; write GM and four digits, e.g. GM0344"
        return f"expected text, got the number {value!r}; quote it"
    if kind in ("model_type", "dict_type"):  # pydantic says "... or instance of ObservabilitySettings"
        return f"expected a mapping of fields (key: value), got {shape.describe(value)}"
    if kind == "list_type":
        return f"expected a list (- item, or [a, b]), got {shape.describe(value)}"
    if kind == "union_tag_invalid":
        return f"mode must be 'in-cluster' or 'external', not {error['ctx'].get('tag')!r}"
    if kind == "union_tag_not_found":
        return "mode is required: 'in-cluster' or 'external'"
    return f"{error['msg']} (got {value!r})" if not isinstance(value, (dict, list)) else error["msg"]


def _all_field_names() -> set[str]:
    """Return every field name of every config model (the vocabulary for 'did you mean')."""
    names: set[str] = set()
    for cls in (model.EnvironmentFile, model.ClusterSettings, model.IngressSettings, model.ImageSettings,
                model.ResourceSettings, model.ObservabilitySettings, model.StateSettings, model.BackupSettings,
                model.DatabaseInCluster, model.DatabaseExternal, model.EnvironmentDefaults, model.Wave,
                model.MunicipalityFile, model.AppSettings, model.Access, model.Auth, model.Oidc, model.Waiver,
                model.BackupOverride, PolicySettings):
        names.update(cls.model_fields)
    return names


def _suggest(word: str, candidates: Iterable[str]) -> str:
    """Return "; did you mean 'x'?" for the closest candidate, or a list of valid ones."""
    options = sorted(candidates)
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _check_environment_semantics(parsed: EnvironmentFile, source: YamlSource, env: str) -> list[ConfigIssue]:
    issues = []
    if parsed.name != env:
        issues.append(ConfigIssue(source.file, source.line_of(("name",)), "name",
                                  f"'{parsed.name}' must equal the folder name '{env}'"))
    issues += _unknown_apps(source, ((("defaults", "apps", i), key) for i, key in enumerate(parsed.defaults.apps)))
    issues += _check_waves(parsed, source)
    return issues


def _check_waves(parsed: EnvironmentFile, source: YamlSource) -> list[ConfigIssue]:
    """Waves must name each wave once, each CBS code once, and ``rest`` at most once and last (it takes
    everyone left, so a wave after it would be empty); no wave is empty; a listed wave may not be
    called ``rest`` (the name of that wave)."""
    issues = []
    codes = all_gemeenten()
    names: dict[str, int] = {}
    claimed: dict[str, str] = {}
    rest_wave: str | None = None

    def issue(path: FieldPath, message: str) -> None:
        issues.append(ConfigIssue(source.file, source.line_of(path), dotted(path), message))

    for i, wave in enumerate(parsed.waves):
        if wave.name in names:
            issue(("waves", i, "name"), f"wave name '{wave.name}' is also the name of waves[{names[wave.name]}]; "
                                        "each wave needs its own name (--wave selects by it)")
        names.setdefault(wave.name, i)
        if rest_wave is not None and wave.municipalities != "rest":
            issue(("waves", i), f"the wave '{rest_wave}' (municipalities: rest) already took every municipality "
                                f"left over; move wave '{wave.name}' before it")
        if wave.municipalities == []:
            issue(("waves", i, "municipalities"), "the wave lists no municipality; list CBS codes, or write "
                                                  "'rest', or remove the wave")
        if wave.municipalities == "rest":
            if rest_wave is not None:
                issue(("waves", i, "municipalities"), f"'rest' is already the wave '{rest_wave}'; only one wave "
                                                      "can take the municipalities left over")
            rest_wave = rest_wave or wave.name
            continue
        if wave.name == "rest":
            issue(("waves", i, "name"), "the name 'rest' is kept for the wave of the municipalities left over "
                                        "(municipalities: rest); give this wave another name")
        for j, code in enumerate(wave.municipalities):
            path = ("waves", i, "municipalities", j)
            if code not in codes:
                issue(path, f"{code} is not in the CBS list of municipalities")
            elif code in claimed:
                issue(path, f"{code} is already in wave '{claimed[code]}'; a municipality is in one wave only")
            claimed.setdefault(code, wave.name)
    return issues


def wave_file_issues(root: Path, env: str) -> list[ConfigIssue]:
    """Return an issue for each CBS code that a wave of ``env`` names but that has no municipality file
    (a canary wave would silently run without it). Empty when the environment file does not load.

    Source of the codes with files: `municipality_codes`.
    """
    try:
        parsed, source = load_environment_source(root, env)
    except ConfigError:
        return []
    onboarded = set(municipality_codes(root, env))
    issues = []
    for i, wave in enumerate(parsed.waves):
        for j, code in enumerate([] if wave.municipalities == "rest" else wave.municipalities):
            if code not in onboarded:
                where = ("waves", i, "municipalities", j)
                issues.append(ConfigIssue(source.file, source.line_of(where), dotted(where),
                                          f"{code} has no file {_display(root, municipality_file(root, env, code))}; "
                                          f"onboard it (cgkit onboard {code} --env {env}) or take it out of "
                                          f"wave '{wave.name}'"))
    return issues


def _unknown_apps(source: YamlSource, named: Iterable[tuple[FieldPath, str]]) -> list[ConfigIssue]:
    """Return an issue for each (path, app key) whose key is not in the catalog."""
    catalog = known_apps()
    issues = []
    for path, key in named:
        if key not in catalog:
            hint = _suggest(key, catalog) or f"; known apps: {', '.join(sorted(catalog))}"
            issues.append(ConfigIssue(source.file, source.line_of(path), dotted(path), f"unknown app '{key}'{hint}"))
    return issues


def _check_municipality_semantics(parsed: MunicipalityFile, source: YamlSource, path: Path) -> list[ConfigIssue]:
    issues = []
    code_line = source.line_of(("code",))
    if parsed.code not in all_gemeenten():
        issues.append(ConfigIssue(source.file, code_line, "code",
                                  f"{parsed.code} is not in the CBS list of 342 municipalities"))
    elif path.stem != parsed.code.lower():
        issues.append(ConfigIssue(source.file, code_line, "code", f"{parsed.code} does not match the "
                                  f"file name; rename the file to {parsed.code.lower()}.yaml"))
    issues += _unknown_apps(source, ((("apps", key), key) for key in parsed.apps or {}))
    return issues


def _waiver_issues(parsed: MunicipalityFile, source: YamlSource, today: datetime.date | None,
                   policy: PolicySettings) -> list[ConfigIssue]:
    """The problems `policies.waivers.problems` finds in the file's waivers, each at its line."""
    return [ConfigIssue(source.file, source.line_of(("waivers", p.index, p.field)), p.where, p.message)
            for p in waivers.problems(parsed.waivers, enforcement_levels(), today, policy.max_waiver_days)]
