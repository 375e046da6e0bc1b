"""The auditor report: what is enforced, the evidence that it works, and where each municipality stands.

`build` produces one JSON-ready dict; `markdown` and `html` render it (the HTML is one self-contained
file with inline CSS). Three parts:

* per rule: id, title, rationale, enforcement, controls, and every fixture case run *now* with its result;
* per control (grouped by framework): the rules that serve it;
* per municipality: for each rule pass / waived / violation, with the findings and waiver reasons,
  judged at its environment's enforcement (``policy.enforcement``: an advisory environment blocks nothing).

With a framework (``build(..., framework="bio2")``) each part holds only what that framework needs: the
controls it selects in ``controls.yaml``, the rules that serve them, and the findings of those rules.

Municipalities come as `Tenant` values: from rendered manifests on disk (`tenants_from_manifest_dir`)
or from the programs themselves (`tenants_from_environment`, via ``cgkit.render.render_municipality``).
"""

from __future__ import annotations

import datetime as dt
import html as html_lib
import re
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from policies import cases, catalog, manifests, waivers
from policies.config import PolicySettings
from policies.evaluate import evaluate
from policies.model import Context, Status
from policies.registry import enforcement_levels


#: A rule's outcome for one municipality, from best to worst: no finding; only waived findings;
#: findings of an advisory rule; an unwaived mandatory violation.
OUTCOMES = ("pass", "waived", "advisory", "violation")


class RenderUnavailable(Exception):
    """The municipality programs cannot be rendered here (no ``cgkit.render``); use ``--manifests``."""


@dataclass(frozen=True)
class Tenant:
    """One municipality to report on: its manifests, the context and waivers to judge them with.

    ``error`` says why the evaluation is incomplete (an invalid config or waiver); the report shows it.
    ``policy`` is the environment's ``policy:`` section (default: mandatory, when the config did not load).
    """

    code: str
    objects: Sequence[Mapping[str, Any]]
    context: Context
    waivers: Sequence[waivers.Waiver] = ()
    error: str | None = None
    sources: Sequence[str | None] | None = field(default=None, repr=False)
    policy: PolicySettings = PolicySettings()


def _config_for(root: Path, env: str, code: str) -> tuple[Any, Tenant]:
    """The municipality's config and a `Tenant` (no objects yet) with its context, waivers and
    environment policy; on failure None and a Tenant with the code alone and the reason."""
    try:
        from cgkit import policy_context
        from cgkit.config import loader
        from cgkit.errors import CgkitError
    except ImportError as e:  # policies used without the cgkit package
        return None, Tenant(code, [], Context(gemeente_code=code), error=f"config not loaded: {e}")
    try:
        cfg = loader.load_municipality(root, env, code)
    except CgkitError as e:
        return None, Tenant(code, [], Context(gemeente_code=code), error=e.render())
    except ImportError as e:  # a part of cgkit the loader needs is missing from this checkout
        return None, Tenant(code, [], Context(gemeente_code=code), error=f"config not loaded: {e}")
    return cfg, Tenant(code, [], policy_context.context_of(cfg), cfg.waivers, policy=cfg.environment.policy)


def tenants_from_manifest_dir(directory: Path, env: str, root: Path = Path(".")) -> list[Tenant]:
    """Tenants from ``<directory>/<code>/*.yaml`` or ``<directory>/<code>.yaml`` (code in any case).

    Context and waivers come from ``environments/<env>/municipalities/<code>.yaml`` under ``root`` when it
    loads. Nothing is judged over nothing: a municipality of ``env`` without manifests there is a
    Tenant with that error (never left out), and one with no objects gets its error in `_tenant_entry`.

    Raises:
        ManifestError: ``directory`` is not a folder, holds an entry not named after a municipality
            (every one is named, with what is valid), two entries for one code, or unreadable manifests.
    """
    if not directory.is_dir():
        raise manifests.ManifestError(f"--manifests {directory}: not a folder; give the folder of rendered "
                                      "manifests per municipality (<code>/*.yaml or <code>.yaml)")
    entries: dict[str, Path] = {}
    strange = []
    for entry in sorted(directory.iterdir()):
        code = entry.name.split(".")[0].upper()
        named = re.fullmatch(r"GM\d{4}", code) and (entry.is_dir() or entry.name.lower() in
                                                     {f"{code.lower()}{suffix}" for suffix in manifests.SUFFIXES})
        if not named or code in entries:
            strange.append(entry.name)
            continue
        entries[code] = entry
    if strange:
        raise manifests.ManifestError(f"--manifests {directory}: {', '.join(strange[:10])}"
                                      f"{', ...' if len(strange) > 10 else ''}: not named after a municipality, or a "
                                      "second entry for one; each entry is <code>/ or <code>.yaml (.yml, .json), "
                                      "e.g. gm0344.yaml; move the others out")
    tenants = []
    for code in sorted(set(entries) | set(_codes_of(root, env))):
        _, tenant = _config_for(root, env, code)
        if code not in entries:
            tenants.append(replace(tenant, error=f"no manifests in {directory} (<code>/ or <code>.yaml); not judged"))
            continue
        docs = manifests.load([entries[code]])
        tenants.append(replace(tenant, objects=[d.obj for d in docs], sources=[d.source for d in docs]))
    return tenants


def _codes_of(root: Path, env: str) -> list[str]:
    """The municipalities onboarded in ``env`` (none when cgkit's loader is not importable here)."""
    try:
        from cgkit.config import loader
    except ImportError:
        return []
    return loader.municipality_codes(root, env)


def tenants_from_environment(env: str, root: Path = Path(".")) -> list[Tenant]:
    """Tenants rendered by the municipality program (under Pulumi mocks) for every municipality file
    of ``env``, via ``cgkit.render.render_many`` (one process per core). A municipality whose config does not
    load is reported with that error and no objects.

    Raises RenderUnavailable when ``cgkit.render`` is not importable.
    """
    try:
        from cgkit.config import loader
        from cgkit.render import render_many
    except ImportError as e:
        raise RenderUnavailable(f"cannot render municipalities ({e}); pass --manifests DIR with rendered "
                                "manifests per municipality instead") from e
    loader.load_environment(root, env)  # an unknown or invalid environment is an error, not an empty report
    loaded = [_config_for(root, env, code) for code in loader.municipality_codes(root, env)]
    rendered = iter(render_many([cfg for cfg, _ in loaded if cfg is not None]))
    return [replace(tenant, objects=next(rendered)) if cfg is not None else tenant for cfg, tenant in loaded]


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=catalog.POLICIES_DIR, timeout=5, check=True).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _rule_entry(rule, cat, results, control_ids) -> dict[str, Any]:
    return {"id": rule.id, "title": rule.title, "rationale": rule.rationale, "enforcement": rule.enforcement.value,
            "scope": rule.scope.value, "family": rule.family, "kinds": sorted(rule.kinds),
            "controls": [{"id": c, "framework": cat.controls[c].framework, "ref": cat.controls[c].ref,
                          "title": cat.controls[c].title} for c in rule.controls if c in control_ids],
            "cases": [{"name": r.case.path.stem, "file": str(r.case.path.relative_to(catalog.POLICIES_DIR.parent)),
                       "expect": "fail" if r.case.expect_fail else "pass", "ok": r.ok,
                       "description": r.case.description, "findings": len(r.findings),
                       "expected": sorted(r.case.expected_paths or ()), "paths": sorted(r.reported)}
                      for r in results if r.case.rule_id == rule.id]}


def _tenant_entry(tenant: Tenant, cat, rules) -> dict[str, Any]:
    error, waiver_list = tenant.error, list(tenant.waivers)
    if not tenant.objects and not error:  # nothing judged is no verdict, least of all "compliant"
        error = "no Kubernetes objects: nothing was judged"
    try:
        waivers.validate(waiver_list, enforcement_levels(), max_days=tenant.policy.max_waiver_days)
    except waivers.WaiverError as e:
        error, waiver_list = "; ".join(filter(None, (error, f"invalid waivers, not applied: {e}"))), []
    findings = evaluate(tenant.objects, tenant.context, rules=rules, sources=tenant.sources, waivers=waiver_list,
                        enforcement=tenant.policy.level)
    status = {r.id: "pass" for r in rules}
    for f in findings:  # the worst outcome per rule wins
        outcome = "waived" if f.status is Status.WAIVED else ("violation" if f.blocking else "advisory")
        if OUTCOMES.index(outcome) > OUTCOMES.index(status[f.rule_id]):
            status[f.rule_id] = outcome
    counts = {s: sum(v == s for v in status.values()) for s in OUTCOMES}
    blocking = sum(f.blocking for f in findings)
    return {"code": tenant.code, "objects": len(tenant.objects), "enforcement": tenant.policy.enforcement,
            "error": error, "rules": status, "counts": counts,
            "blocking": blocking, "findings": [f.as_dict() for f in findings],
            "waivers": [w.as_dict() for w in waiver_list],
            "verdict": "error" if error else ("violations" if blocking else "compliant")}


def build(env: str, tenants: Sequence[Tenant], now: dt.datetime | None = None,
          haven: Mapping[str, Any] | None = None, framework: str | None = None,
          backups: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The whole report as a JSON-ready dict (runs the fixture cases and tenant evaluations it reports).

    ``haven``: the Haven checks of the environment's cluster (``cgkit.haven.report.as_dict``), or
    None when the report was made without the cluster (the section then says so).
    ``backups``: per municipality ``code``, ``state`` (a sentence), ``last_backup`` (``id``,
    ``created``, ``bytes``) and ``last_drill`` (``at``, ``backup``), read from the backup store
    (BIO2 8.13, information backup); None when the report was made without the store.
    ``framework``: a framework of ``controls.yaml`` in any case (``bio2``): report only its controls,
    the rules that serve them (listing only its controls) and those rules' findings; None: everything.
    Raises `catalog.CatalogError` for an unknown framework, naming the frameworks there are."""
    cat = catalog.load()
    frameworks = [cat.framework(framework)] if framework else list(cat.frameworks.values())
    control_ids = list(dict.fromkeys(c for f in frameworks for c in f.controls))
    selected = cat.framework_rules(framework) if framework else cat.rules
    results = [cases.run_case(c) for c in cases.discover() if c.rule_id in {r.id for r in selected}]
    rules = [_rule_entry(r, cat, results, set(control_ids)) for r in selected]
    controls = [{"id": c.id, "framework": c.framework, "ref": c.ref, "title": c.title,
                 "rules": [r.id for r in cat.rules_for_control(c.id)]} for c in map(cat.controls.get, control_ids)]
    municipalities = [_tenant_entry(t, cat, selected) for t in tenants]
    summary = {"rules": len(rules), "mandatory": sum(r["enforcement"] == "mandatory" for r in rules),
               "advisory": sum(r["enforcement"] == "advisory" for r in rules), "controls": len(controls),
               "cases": len(results), "failing_cases": sum(not r.ok for r in results),
               "municipalities": len(municipalities),
               "compliant": sum(m["verdict"] == "compliant" for m in municipalities),
               "haven_failed": haven["summary"]["failed"] if haven else None}
    return {"env": env, "generated": (now or dt.datetime.now(dt.timezone.utc)).isoformat(timespec="seconds"),
            "commit": _git_commit(), "summary": summary, "framework": frameworks[0].name if framework else None,
            "frameworks": {f.name: f.as_dict() for f in frameworks},
            "rules": rules, "controls": controls, "municipalities": municipalities, "haven": haven,
            "backups": list(backups) if backups is not None else None}


# ------------------------------------------------------------------------------------------ markdown

HAVEN_ABSENT = ("Not part of this report: run `cgkit policy report --haven` (or `cgkit haven check`) "
                "where the environment's cluster can be reached.")
#: the report's CSS class for each Haven state
HAVEN_CSS = {"passed": "pass", "failed": "failed", "not verifiable": "advisory"}

def _subject(report: Mapping[str, Any]) -> str:
    """``environment sandbox`` or ``environment sandbox, framework BIO2``: what the report covers."""
    return f"environment {report['env']}" + (f", framework {report['framework']}" if report.get("framework") else "")


def _framework_controls(report: Mapping[str, Any], meta: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The report's control entries that the framework ``meta`` selects, in its order."""
    by_id = {c["id"]: c for c in report["controls"]}
    return [by_id[cid] for cid in meta["controls"]]


def _md_cell(text: Any) -> str:
    """Text for a table cell: one line, ``|`` escaped, HTML's ``& < >`` as entities (no raw HTML)."""
    return html_lib.escape(str(text), quote=False).replace("|", "\\|").replace("\n", " ")


#: Markdown's inline syntax: a municipality's text must not become a link, an image, emphasis or code.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|!#<>&])")


def _md_text(text: Any) -> str:
    """Text that comes from a municipality's files or manifests (a waiver's reason, a finding's object
    name, an error): one line, raw HTML as entities and Markdown's inline syntax escaped, so the
    auditor's report shows it as written and runs nothing."""
    one_line = " ".join(str(text).split())
    return _MD_SPECIAL.sub(lambda found: html_lib.escape(found.group(1)) if found.group(1) in "<>&"
                           else "\\" + found.group(1), one_line)


def markdown(report: Mapping[str, Any]) -> str:
    """Render the report as Markdown (tables for the overviews, one section per rule)."""
    s = report["summary"]
    out = [f"# Policy report — {_subject(report)}", "",
           f"Generated {report['generated']}" + (f" from commit `{report['commit']}`" if report["commit"] else "") + ".",
           "", f"{s['rules']} rules ({s['mandatory']} mandatory, {s['advisory']} advisory) serving {s['controls']} "
           f"controls; {s['cases']} fixture cases run, {s['failing_cases']} failing; {s['compliant']} of "
           f"{s['municipalities']} municipalities compliant.", "", "## Rules", "",
           "| id | title | enforcement | controls | cases |", "| --- | --- | --- | --- | --- |"]
    for r in report["rules"]:
        ok = sum(c["ok"] for c in r["cases"])
        out.append(f"| [{r['id']}](#{r['id'].lower()}) | {_md_cell(r['title'])} | {r['enforcement']} | "
                   f"{', '.join(c['id'] for c in r['controls'])} | {ok}/{len(r['cases'])} ok |")
    for r in report["rules"]:
        out += ["", f"### {r['id']}", "", f"**{r['title']}** — {r['enforcement']}, {r['scope']} rule "
                f"(`policies/rules/{r['family']}`), kinds: {', '.join(r['kinds']) or 'all'}.", "", r["rationale"], "",
                "Controls: " + "; ".join(f"{c['framework']} {c['ref']} ({c['title']})" for c in r["controls"]), "",
                "| case | expects | result | what it shows |", "| --- | --- | --- | --- |"]
        out += [f"| `{c['file']}` | {c['expect']} | {'ok' if c['ok'] else '**FAILED**'} | {_md_cell(c['description'])} |"
                for c in r["cases"]]
    out += ["", "## Controls", ""]
    for fw, meta in report["frameworks"].items():
        out += [f"### {fw} — {meta['title']}", "", "| control | title | rules |", "| --- | --- | --- |"]
        out += [f"| {c['ref']} | {_md_cell(c['title'])} | {', '.join(c['rules'])} |"
                for c in _framework_controls(report, meta)]
        out.append("")
    out += ["## Municipalities", "", "Rules per outcome: pass, waived, advisory findings, mandatory violation. "
            "Enforcement is the environment's (policy.enforcement): where it is advisory nothing blocks.", "",
            "| code | objects | enforcement | " + " | ".join(OUTCOMES) + " | verdict |", "| --- " * (len(OUTCOMES) + 4) + "|"]
    out += [f"| {m['code']} | {m['objects']} | {m['enforcement']} | " + " | ".join(str(m["counts"][o]) for o in OUTCOMES)
            + f" | {m['verdict']} |" for m in report["municipalities"]]
    for m in report["municipalities"]:
        if m["error"] or m["findings"]:
            out += ["", f"### {_md_text(m['code'])}", ""] + ([f"Error: {_md_text(m['error'])}", ""] if m["error"] else [])
            out += [f"- {f['rule']} \\[{f['status'] if f['status'] == 'waived' else f['enforcement']}\\] "
                    f"{_md_text(f['kind'])}/{_md_text(f['name'])} {_md_text(f['path'])}: {_md_text(f['message'])}"
                    + (f" — waived: {_md_text(f['waiver_reason'])}" if f["waiver_reason"] else "") for f in m["findings"]]
    return "\n".join(out + _md_haven(report["haven"]) + _md_backups(report["backups"])) + "\n"


def haven_counts(haven: Mapping[str, Any]) -> str:
    """The Haven section's counts as one phrase, ``"5 passed, 8 failed, 3 not verifiable"``, from the
    ``summary`` of `cgkit.haven.report.as_dict` (the same phrase ends ``cgkit haven check``'s text)."""
    return ", ".join(f"{n} {state}" for state, n in haven["summary"].items())


def _md_haven(haven: Mapping[str, Any] | None) -> list[str]:
    out = ["", "## Haven: the cluster", ""]
    if haven is None:
        return out + [HAVEN_ABSENT]
    out += [f"The Haven checks against `{haven['server']}`: {haven_counts(haven)}.", "", "| check | state | title | evidence |", "| --- | --- | --- | --- |"]
    return out + [f"| {c['id']} | {c['state']} | {_md_cell(c['title'])} | {_md_cell(c['evidence'])} |"
                  for c in haven["checks"]]


BACKUPS_TITLE = "Backups and restore drills (BIO2 8.13, information backup)"
BACKUPS_ABSENT = ("Not part of this report: run `cgkit policy report --backups` where the environment's "
                  "backup store can be reached.")


def _backup_cells(b: Mapping[str, Any]) -> list[str]:
    """The plain cells of one municipality's backup row: code, state, last backup, size, last drill."""
    last, drill = b.get("last_backup"), b.get("last_drill")
    return [b["code"], b["state"], f"{last['id']} ({last['created']})" if last else "none",
            f"{last['bytes']} bytes" if last else "", f"{drill['at']} of {drill['backup']}" if drill else "none"]


def _md_backups(backups: Sequence[Mapping[str, Any]] | None) -> list[str]:
    out = ["", f"## {BACKUPS_TITLE}", ""]
    if backups is None:
        return out + [BACKUPS_ABSENT]
    out += ["| code | state | last backup | size | last restore drill |", "| --- | --- | --- | --- | --- |"]
    return out + ["| " + " | ".join(_md_text(c) for c in _backup_cells(b)) + " |" for b in backups]


# ---------------------------------------------------------------------------------------------- html

CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1f24;margin:0;background:#f6f7f9}
main{max-width:1100px;margin:0 auto;padding:24px 32px 64px;background:#fff}
h1{font-size:26px;margin:8px 0 4px}h2{font-size:20px;margin:36px 0 8px;border-bottom:2px solid #154273;padding-bottom:4px}
h3{font-size:16px;margin:24px 0 6px}.meta{color:#555;margin:0 0 16px}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin:16px 0}.card{flex:1;min-width:150px;border:1px solid #d8dde3;
border-radius:6px;padding:10px 14px}.card b{display:block;font-size:24px;color:#154273}
table{border-collapse:collapse;width:100%;margin:8px 0;font-size:14px}th,td{text-align:left;padding:5px 8px;
border-bottom:1px solid #e3e6ea;vertical-align:top}th{background:#eef1f5}code{font-size:13px;background:#f1f3f5;
padding:0 3px;border-radius:3px}.badge{display:inline-block;padding:0 7px;border-radius:10px;font-size:12px;
font-weight:600;white-space:nowrap}.mandatory,.violation,.failed,.error,.violations{background:#fde2e1;color:#9b1c1c}
.advisory,.waived{background:#fff3cd;color:#7a5a00}.pass,.ok,.compliant{background:#dcf5e3;color:#17633a}
details{border:1px solid #e3e6ea;border-radius:6px;padding:6px 12px;margin:6px 0}summary{cursor:pointer}
.rationale{margin:6px 0}nav a{margin-right:14px}table.overview td:first-child,table.overview td:last-child,table.findings td:first-child{white-space:nowrap}
td code{overflow-wrap:anywhere}table{table-layout:auto}
"""


def _e(value: Any) -> str:
    return html_lib.escape(str(value))


def _badge(word: str, css: str | None = None) -> str:
    return f'<span class="badge {_e(css or word)}">{_e(word)}</span>'


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], css_class: str = "") -> str:
    """Rows are HTML already (escape cells with `_e` before passing them)."""
    return (f'<table class="{css_class}"><tr>' + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows) + "</table>")


def _html_rule(r: Mapping[str, Any]) -> str:
    cases_table = _table(["case", "expects", "result", "what it shows"],
                         [[f"<code>{_e(c['file'])}</code>", _e(c["expect"]), _badge("ok" if c["ok"] else "failed"),
                           _e(c["description"])] for c in r["cases"]])
    controls = "; ".join(f"{_e(c['framework'])} {_e(c['ref'])} <small>({_e(c['title'])})</small>" for c in r["controls"])
    return (f'<details id="{_e(r["id"].lower())}"><summary><b>{_e(r["id"])}</b> {_e(r["title"])} '
            f'{_badge(r["enforcement"])}</summary><p class="rationale">{_e(r["rationale"])}</p>'
            f'<p>{_e(r["scope"])} rule in <code>policies/rules/{_e(r["family"])}</code>; kinds: '
            f'{_e(", ".join(r["kinds"]) or "all")}</p><p>Controls: {controls}</p>{cases_table}</details>')


def _html_municipality(m: Mapping[str, Any]) -> str:
    rows = [[_e(f["rule"]), _badge(f["status"] if f["status"] == "waived" else f["enforcement"]),
             _e(f"{f['kind']}/{f['name']}"), f"<code>{_e(f['path'])}</code>",
             _e(f["message"]) + (f"<br><small>waived: {_e(f['waiver_reason'])}</small>" if f["waiver_reason"] else "")]
            for f in m["findings"]]
    error = f"<p>{_badge('error')} {_e(m['error'])}</p>" if m["error"] else ""
    body = _table(["rule", "level", "object", "field", "message"], rows, "findings") if rows else "<p>No findings.</p>"
    counts = ", ".join(f"{m['counts'][o]} {o}" for o in reversed(OUTCOMES))
    return (f"<details><summary><b>{_e(m['code'])}</b> {_badge(m['verdict'])} rules: {_e(counts)}; "
            f"enforcement {_badge(m['enforcement'])}</summary>"
            f"{error}{body}</details>")


def html(report: Mapping[str, Any]) -> str:
    """Render the report as one self-contained HTML page (inline CSS, no scripts, no external links)."""
    s = report["summary"]
    cards = "".join(f'<div class="card"><b>{_e(v)}</b>{_e(k)}</div>' for k, v in (
        ("rules", s["rules"]), ("mandatory / advisory", f"{s['mandatory']} / {s['advisory']}"),
        ("controls", s["controls"]), ("fixture cases ok", f"{s['cases'] - s['failing_cases']} / {s['cases']}"),
        ("municipalities compliant", f"{s['compliant']} / {s['municipalities']}")))
    overview = _table(["id", "title", "enforcement", "controls", "cases"], [
        [f'<a href="#{_e(r["id"].lower())}">{_e(r["id"])}</a>', _e(r["title"]), _badge(r["enforcement"]),
         _e(", ".join(c["id"] for c in r["controls"])),
         _badge("ok" if all(c["ok"] for c in r["cases"]) else "failed") + f" {sum(c['ok'] for c in r['cases'])}/{len(r['cases'])}"]
        for r in report["rules"]], "overview")
    controls = "".join(
        f"<h3>{_e(fw)} — {_e(meta['title'])}</h3>" + _table(["control", "title", "rules"], [
            [_e(c["ref"]), _e(c["title"]), ", ".join(f'<a href="#{_e(i.lower())}">{_e(i)}</a>' for i in c["rules"])]
            for c in _framework_controls(report, meta)])
        for fw, meta in report["frameworks"].items())
    municipalities = _table(["code", "objects", *OUTCOMES, "verdict"], [
        [_e(m["code"]), _e(m["objects"]), *(_e(m["counts"][o]) for o in OUTCOMES), _badge(m["verdict"])]
        for m in report["municipalities"]])
    commit = f" from commit <code>{_e(report['commit'])}</code>" if report["commit"] else ""
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>cgkit policy report — "
            f"{_e(_subject(report))}</title><style>{CSS}</style></head><body><main>"
            f"<h1>Policy report — {_e(_subject(report))}</h1>"
            f"<p class=\"meta\">Generated {_e(report['generated'])}{commit}.</p>"
            f"<nav><a href=\"#rules\">Rules</a><a href=\"#controls\">Controls</a>"
            f"<a href=\"#municipalities\">Municipalities</a><a href=\"#haven\">Haven</a><a href=\"#backups\">Backups</a></nav><div class=\"cards\">{cards}</div>"
            f"<h2 id=\"rules\">Rules</h2>{overview}<h3>Rule details and fixture evidence</h3>"
            + "".join(_html_rule(r) for r in report["rules"])
            + f"<h2 id=\"controls\">Controls</h2>{controls}"
            f"<h2 id=\"municipalities\">Municipalities</h2>{municipalities}"
            + "".join(_html_municipality(m) for m in report["municipalities"])
            + _html_haven(report["haven"]) + _html_backups(report["backups"]) + "</main></body></html>\n")


def _html_backups(backups: Sequence[Mapping[str, Any]] | None) -> str:
    head = f'<h2 id="backups">{_e(BACKUPS_TITLE)}</h2>'
    if backups is None:
        return f"{head}<p>{_e(BACKUPS_ABSENT)}</p>"
    return head + _table(["code", "state", "last backup", "size", "last restore drill"],
                         [[_e(c) for c in _backup_cells(b)] for b in backups], "overview")


def _html_haven(haven: Mapping[str, Any] | None) -> str:
    if haven is None:
        return f'<h2 id="haven">Haven: the cluster</h2><p>{_e(HAVEN_ABSENT)}</p>'
    return (f'<h2 id="haven">Haven: the cluster</h2><p>The Haven checks against <code>{_e(haven["server"])}</code>: '
            f'{_e(haven_counts(haven))}.</p>' + _table(["check", "state", "title", "evidence"], [
                [_e(c["id"]), _badge(c["state"], HAVEN_CSS[c["state"]]), _e(c["title"]), _e(c["evidence"])]
                for c in haven["checks"]], "overview"))
