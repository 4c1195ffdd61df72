"""Environment variables from Secret Manager (``secretEnv``), and plain ``env`` values that look like secrets.

- ``secretEnv.NAME: {secret, version}`` maps a variable to a Secret Manager secret version. Cloud Run
  reads it itself at instance start (``env[].value_source.secret_key_ref {secret, version}``); the
  service's account needs ``roles/secretmanager.secretAccessor`` on the secret
  (https://cloud.google.com/run/docs/configuring/services/secrets). On GKE, GKE's secret
  synchronization copies the versions into a Kubernetes Secret the pods read
  (:func:`gke_secret_sync`). The value never passes through Pulumi, the stack file, a plan or a diff.
- A plain ``env`` value is written in the stack file and shown in every plan and diff. One that
  Yelp's detect-secrets (https://github.com/Yelp/detect-secrets) flags, scanning the value alone
  (never the variable's name, so ``OPENAI_API_KEY: https://...`` passes), is refused by
  :func:`plain_secret_faults`, and :func:`mask_flagged_env` hides it in plans written before.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Iterable, Mapping, Optional

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s
from pydantic import AfterValidator, Field, Strict

from .limits import EnvName
from .settings import Model
from .wire import MASKED

SECRET_ACCESSOR = "roles/secretmanager.secretAccessor"

_SECRET = r"[A-Za-z0-9_-]{1,255}"
_SECRET_ID = re.compile(rf"{_SECRET}|projects/[a-z0-9-]{{4,30}}/secrets/{_SECRET}")
_VERSION = re.compile(r"latest|[1-9][0-9]{0,18}")


def _check_secret(value: str) -> str:
    # https://cloud.google.com/secret-manager/docs/reference/rest/v1/projects.secrets/create (secretId)
    if not _SECRET_ID.fullmatch(value):
        raise ValueError(f"{value!r} is not a Secret Manager secret: write its id (letters, digits, '_' and '-', "
                         "at most 255) or projects/PROJECT/secrets/ID for a secret of another project")
    return value


def _check_version(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not _VERSION.fullmatch(value):
        raise ValueError(f"{value!r} is not a secret version: a version number (1, 2, ...) or latest")
    return value


SecretId = Annotated[str, Strict(), AfterValidator(_check_secret)]
SecretVersion = Annotated[Any, AfterValidator(_check_version)]


class SecretRef(Model):
    """One Secret Manager secret version, e.g. ``{secret: openai-key, version: 3}``."""

    secret: SecretId = Field(
        description="the secret's id in the service's project, or `projects/PROJECT/secrets/ID`.")
    version: SecretVersion = Field(
        default="latest",
        description="a version number, or `latest` (read when an instance or pod starts; pin a number to roll "
                    "changes out with a deploy).")

    def resource_name(self, project: str) -> str:
        """``projects/P/secrets/S/versions/V`` (``project`` when the secret names none)."""
        secret = self.secret if self.secret.startswith("projects/") else f"projects/{project}/secrets/{self.secret}"
        return f"{secret}/versions/{self.version}"


SecretEnv = dict[EnvName, SecretRef]
"""``secretEnv``: variable name -> the secret version it holds."""


def flagged(values: Iterable[str]) -> dict[str, list[str]]:
    """Each text of ``values`` -> the kinds of secret detect-secrets finds in it alone (e.g.
    ``["Base64 High Entropy String"]``), empty when none; only kinds, never the text found.

    The value is scanned as detect-secrets scans an ad-hoc string (every plugin, default filters);
    a high-entropy candidate counts only above its plugin's entropy limit, as the tool's own
    ``scan --string`` reports it (the ad-hoc scan leaves that limit to the caller).
    """
    from detect_secrets.core.scan import scan_line
    from detect_secrets.plugins.high_entropy_strings import HighEntropyStringsPlugin
    from detect_secrets.settings import default_settings, get_plugins

    texts = {v for v in values if isinstance(v, str)}
    # Loading the plugins costs ~80 ms; plans repeat the same values, so verdicts are kept.
    new = sorted(t for t in texts if t not in _VERDICTS and t.strip())
    if new:
        with default_settings():
            entropy = {p.secret_type: p for p in get_plugins() if isinstance(p, HighEntropyStringsPlugin)}
            for text in new:
                kinds = {s.type for s in scan_line(text)
                         if s.type not in entropy or entropy[s.type].calculate_shannon_entropy(s.secret_value or "") >
                         entropy[s.type].entropy_limit}
                if len(_VERDICTS) > 10_000:
                    _VERDICTS.clear()
                _VERDICTS[text] = sorted(kinds)
    return {t: _VERDICTS.get(t, []) for t in texts}


_VERDICTS: dict[str, list[str]] = {}


def plain_secret_faults(env: Mapping[str, str]) -> list[tuple[str, str]]:
    """``(variable, message)`` for each ``env`` value the scanner flags. Messages name the variable
    and the kind of secret, never the value."""
    found = flagged(env.values())
    faults = []
    for name, value in sorted(env.items()):
        kinds = found.get(value) if isinstance(value, str) else None
        if kinds:
            faults.append((name, f"looks like a secret ({', '.join(kinds)}, found by detect-secrets); a plain env value "
                                 "is written in the stack file, every plan and every diff. Keep it in Secret Manager "
                                 f"and write secretEnv: {{{name}: {{secret: SECRET_ID, version: N}}}} instead, or make "
                                 f"it a secure value (pulumi config set --secret --path ...env.{name})"))
    return faults


def mask_flagged_env(value: Any) -> Any:
    """``value`` (a resource's inputs) with every ``{name, value}`` entry (Cloud Run ``envs``, a
    container's ``env``) whose text value the scanner flags shown as ``[secret]``."""
    entries: list[dict] = []
    _env_entries(value, entries)
    found = flagged(e["value"] for e in entries)
    return _masked(value, {text for text, kinds in found.items() if kinds}) if any(found.values()) else value


def _is_env_entry(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("name"), str) and isinstance(value.get("value"), str)


def _env_entries(value: Any, into: list[dict]) -> None:
    if _is_env_entry(value):
        into.append(value)
    elif isinstance(value, dict):
        for item in value.values():
            _env_entries(item, into)
    elif isinstance(value, list):
        for item in value:
            _env_entries(item, into)


def _masked(value: Any, secrets: set[str]) -> Any:
    if _is_env_entry(value) and value["value"] in secrets:
        return {**value, "value": MASKED}
    if isinstance(value, dict):
        return {k: _masked(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v, secrets) for v in value]
    return value


def grant_access(parent: pulumi.Resource, name: str, secret_env: Mapping[str, SecretRef], member: pulumi.Input[str],
                 project: Optional[str]) -> list[gcp.secretmanager.SecretIamMember]:
    """``roles/secretmanager.secretAccessor`` for ``member`` on each secret ``secret_env`` names
    (once per secret), children of ``parent`` named ``{name}-secret-{secret}`` (``/`` as ``-``)."""
    grants = {}
    for ref in secret_env.values():
        if ref.secret in grants:
            continue
        project_of = ref.secret.split("/")[1] if ref.secret.startswith("projects/") else project
        secret_id = ref.secret.rsplit("/", 1)[-1]
        grants[ref.secret] = gcp.secretmanager.SecretIamMember(
            f"{name}-secret-{ref.secret.replace('/', '-')}", project=project_of, secret_id=secret_id, role=SECRET_ACCESSOR, member=member,
            opts=pulumi.ResourceOptions(parent=parent))
    return list(grants.values())


def cloud_run_env(secret_env: Mapping[str, SecretRef]) -> list[dict]:
    """Cloud Run ``envs`` entries reading each variable from its secret version."""
    return [{"name": name, "value_source": {"secret_key_ref": {"secret": ref.secret, "version": ref.version}}}
            for name, ref in sorted(secret_env.items())]


SYNC_API_VERSION = "secret-sync.gke.io/v1"
PROVIDER_CLASS_API_VERSION = "secrets-store.csi.x-k8s.io/v1"


def workload_principal(project: "gcp.organizations.AwaitableGetProjectResult", namespace: str,
                       account: str) -> pulumi.Output[str]:
    """The Workload Identity Federation principal of a Kubernetes service account in ``project``
    (a ``get_project_output`` result),
    ``principal://iam.googleapis.com/projects/NUMBER/locations/global/workloadIdentityPools/PROJECT.svc.id.goog/subject/ns/NS/sa/KSA``
    (https://cloud.google.com/kubernetes-engine/docs/concepts/workload-identity#principal-id-examples)."""
    return pulumi.Output.format(
        "principal://iam.googleapis.com/projects/{0}/locations/global/workloadIdentityPools/{1}.svc.id.goog/subject/ns/{2}/sa/{3}",
        project.number, project.project_id, namespace, account)


def gke_secret_sync(parent: pulumi.Resource, name: str, *, secret_env: Mapping[str, SecretRef], project: Optional[str],
                    namespace: str, account: str, google_account: pulumi.Input[str],
                    opts: pulumi.ResourceOptions) -> tuple[str, list]:
    """GKE's secret synchronization (GKE 1.33+, cluster ``secret_sync_config``,
    https://cloud.google.com/secret-manager/docs/sync-k8-secrets): a ``SecretProviderClass``
    (provider ``gke``) listing each secret version, and a ``SecretSync`` that the GKE controller
    reads as the Kubernetes service account ``account`` and writes to the Kubernetes Secret of the
    same name, one key per variable. The accessor role on every secret goes to that account's
    Workload Identity principal and to ``google_account`` (the Google service account it is bound
    to). Returns (the Secret's name ``{name}-env``, the resources the pods wait for)."""
    secret_name = f"{name}-env"
    found = gcp.organizations.get_project_output(project_id=project)
    grants = [*grant_access(parent, f"{name}-wi", secret_env, workload_principal(found, namespace, account), project),
              *grant_access(parent, name, secret_env, google_account, project)]
    meta = {"name": secret_name, "namespace": namespace, "labels": {"app": name}}
    listed = found.project_id.apply(lambda own: "\n".join(
        f"- resourceName: \"{ref.resource_name(own)}\"\n  path: \"{variable}\"" for variable, ref in sorted(secret_env.items())))
    provider = k8s.apiextensions.CustomResource(
        f"{name}-env-provider", api_version=PROVIDER_CLASS_API_VERSION, kind="SecretProviderClass", metadata=meta,
        spec={"provider": "gke", "parameters": {"secrets": listed}}, opts=opts)
    sync = k8s.apiextensions.CustomResource(
        f"{name}-env", api_version=SYNC_API_VERSION, kind="SecretSync", metadata=meta,
        spec={"serviceAccountName": account, "secretProviderClassName": secret_name, "secretObject": {
            "type": "Opaque", "data": [{"sourcePath": v, "targetKey": v} for v in sorted(secret_env)]}},
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[provider, *grants])))
    return secret_name, [sync]


def kubernetes_env(secret_env: Mapping[str, SecretRef], secret_name: str) -> list[dict]:
    """Container ``env`` entries reading each variable from the synced Kubernetes Secret."""
    return [{"name": v, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": v}}} for v in sorted(secret_env)]
