"""Record the django-setup-configuration step models of the PyPI packages as data (library/<app>.json).

Not imported by cgkit. Run it once per app, in a scratch virtualenv holding exactly the versions
that app's release pins (its requirements/base.txt), so the record says which package version each
field list comes from::

    git show 1.30.0:requirements/base.txt | grep -E '^(django|pydantic|django-setup-configuration|\\
        zgw-consumers|notifications-api-common|commonground-api-common|mozilla-django-oidc-db|\\
        django-solo|django-simple-certmanager)==' > pins.txt          # in open-zaak/open-zaak
    python3.12 -m venv /tmp/oz && /tmp/oz/bin/pip install -r pins.txt psycopg2-binary
    /tmp/oz/bin/python components/setup_steps/extract.py components/setup_steps/library/openzaak.json

Packages the app does not pin are skipped. Why a record and not a test dependency: the packages
need a configured Django (INSTALLED_APPS with their apps, psycopg2 for ``django.contrib.postgres``)
before a step model can be imported, the apps' pins need Python 3.12 (cgkit runs on 3.11) and a
pydantic other than cgkit's, and each app pins different versions. The record holds each step's
``namespace``, ``enable_setting`` and the JSON Schema of its config model (pydantic's
``model_json_schema()``, descriptions and examples dropped).
"""

from __future__ import annotations

import importlib
import json
import sys
from importlib.metadata import PackageNotFoundError, version

import django
from django.conf import settings

#: Step class path -> the PyPI package that ships it.
STEPS = {
    "django_setup_configuration.contrib.sites.steps.SitesConfigurationStep": "django-setup-configuration",
    "zgw_consumers.contrib.setup_configuration.steps.ServiceConfigurationStep": "zgw-consumers",
    "notifications_api_common.contrib.setup_configuration.steps.NotificationConfigurationStep":
        "notifications-api-common",
    "notifications_api_common.contrib.setup_configuration.steps.NotificationSubscriptionConfigurationStep":
        "notifications-api-common",
    "vng_api_common.contrib.setup_configuration.steps.JWTSecretsConfigurationStep": "commonground-api-common",
    "vng_api_common.contrib.setup_configuration.steps.ApplicatieConfigurationStep": "commonground-api-common",
    "mozilla_django_oidc_db.setup_configuration.steps.AdminOIDCConfigurationStep": "mozilla-django-oidc-db",
}
_DROP = {"description", "examples", "title"}


def _lean(node):
    """The schema without prose (descriptions, examples, titles), keys sorted by json.dump."""
    if isinstance(node, dict):
        return {k: _lean(v) for k, v in node.items()
                if k not in _DROP or not isinstance(v, (str, list))}
    if isinstance(node, list):
        return [_lean(v) for v in node]
    return node


#: Package -> the Django apps it needs installed.
APPS = {
    "django-setup-configuration": ["django_setup_configuration"],
    "zgw-consumers": ["solo", "simple_certmanager", "zgw_consumers"],
    "notifications-api-common": ["notifications_api_common"],
    "commonground-api-common": ["vng_api_common", "vng_api_common.authorizations"],
    "mozilla-django-oidc-db": ["mozilla_django_oidc_db"],
}


def _installed(package: str) -> bool:
    try:
        version(package)
    except PackageNotFoundError:
        return False
    return True


def main() -> None:
    packages = [p for p in APPS if _installed(p)]
    installed = ["django.contrib.contenttypes", "django.contrib.auth", "django.contrib.sites"]
    for package in packages:
        installed += [a for a in APPS[package] if a not in installed]
    files = {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": "/nonexistent"}}
    settings.configure(INSTALLED_APPS=installed, SECRET_KEY="record-only", SITE_ID=1,
                       DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
                       # django-privates >= 3 (simple-certmanager's key files) needs a "privates" storage
                       STORAGES={"default": files, "staticfiles": files, "privates": files},
                       PRIVATE_MEDIA_ROOT="/nonexistent", PRIVATE_MEDIA_URL="/private/")
    django.setup()
    record = {}
    for path, package in STEPS.items():
        if package not in packages:
            continue
        module, name = path.rsplit(".", 1)
        step = getattr(importlib.import_module(module), name)
        record[path] = {
            "source": {"package": package, "version": version(package), "module": module},
            "namespace": step.namespace,
            "enable_setting": step.enable_setting,
            "schema": _lean(json.loads(json.dumps(step.config_model.model_json_schema(), default=str))),
        }
    with open(sys.argv[1], "w", encoding="utf-8") as out:  # not stdout: the packages log to it
        json.dump(record, out, indent=1, sort_keys=True)
        out.write("\n")


if __name__ == "__main__":
    main()
