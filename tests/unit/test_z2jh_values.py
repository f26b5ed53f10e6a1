"""docs/classroom/z2jh-values.yaml is a values file the Zero to JupyterHub chart takes.

There is no Kubernetes cluster on the machine the kit is built on, so the
values file cannot be installed here.  What can be checked without one, with
the real parts the chart and the hub use:

* Helm's own check: the chart's defaults with the class's values merged over
  them (as ``helm install --values`` merges) validate against the chart's
  JSON schema (tests/data/z2jh, copied from the chart);
* every key of a profile's ``kubespawner_override`` is a KubeSpawner trait
  (a typo there is silently ignored by the hub at spawn time);
* the pod KubeSpawner builds for each profile is one Kubernetes' API models
  read back unchanged (a misspelt securityContext field would be dropped), and
  it carries what docs/classroom.md says each mode needs.
"""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")
jsonschema = pytest.importorskip("jsonschema")

ROOT = Path(__file__).resolve().parents[2]
VALUES = ROOT / "docs" / "classroom" / "z2jh-values.yaml"
CHART = ROOT / "tests" / "data" / "z2jh"


def _merge(base: Any, over: Any) -> Any:
    """Helm's merge of a values file over the chart's defaults: maps merge, the rest replaces."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = _merge(base.get(key), value) if key in base else copy.deepcopy(value)
        return out
    return copy.deepcopy(over)


def _values() -> dict[str, Any]:
    return yaml.safe_load(VALUES.read_text())


def _profiles() -> dict[str, dict[str, Any]]:
    return {p["slug"]: p for p in _values()["singleuser"]["profileList"]}


def test_values_validate_against_the_charts_schema() -> None:
    schema = yaml.safe_load((CHART / "values.schema.yaml").read_text())
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    merged = _merge(defaults, _values())
    validator = jsonschema.Draft7Validator(schema)
    errors = [f"{'.'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
              for e in validator.iter_errors(merged)]
    assert not errors, "\n".join(errors)


def test_a_typo_is_caught_by_the_schema() -> None:
    """The check above can fail: a misspelt key under singleuser is refused."""
    schema = yaml.safe_load((CHART / "values.schema.yaml").read_text())
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    wrong = _values()
    wrong["singleuser"]["allowPrivilegeEscalaton"] = False
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(_merge(defaults, wrong)))
    assert any("allowPrivilegeEscalaton" in e.message for e in errors)


# ---------------------------------------------------------------- KubeSpawner


@pytest.fixture(scope="module")
def kubespawner() -> Any:
    spawner_mod = pytest.importorskip(
        "kubespawner.spawner", reason="jupyterhub-kubespawner is not installed (pip install '.[classroom]')")
    return spawner_mod


def test_profile_overrides_are_kubespawner_traits(kubespawner: Any) -> None:
    traits = set(kubespawner.KubeSpawner.class_trait_names())
    for slug, profile in _profiles().items():
        unknown = set(profile.get("kubespawner_override", {})) - traits
        assert not unknown, f"profile {slug}: not KubeSpawner traits: {sorted(unknown)}"


def _pod(kubespawner: Any, override: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The pod manifest KubeSpawner makes for a student with ``override`` applied, as a dict."""
    from jupyterhub.objects import Hub, Server
    from kubernetes_asyncio.client import ApiClient

    # No cluster: KubeSpawner's kube-config lookup is the one part that needs one.
    monkeypatch.setattr(kubespawner, "load_config", lambda *a, **k: None)

    class Student:
        name = escaped_name = "student1"
        id = 1
        url = "/user/student1/"
        server = Server()
        orm_user = None

    async def build() -> dict[str, Any]:
        spawner = kubespawner.KubeSpawner(user=Student(), hub=Hub(), _mock=True)
        for key, value in override.items():
            setattr(spawner, key, value)
        pod = await spawner.get_pod_manifest()
        api = ApiClient()
        try:
            as_dict = api.sanitize_for_serialization(pod)
            # Read back through Kubernetes' own models: a field they do not know is dropped.
            again = api.sanitize_for_serialization(api._ApiClient__deserialize(as_dict, "V1Pod"))
            assert again == as_dict, "the pod has fields Kubernetes' V1Pod does not know"
            return as_dict
        finally:
            await api.close()

    return asyncio.run(build())


def test_no_namespaces_profile_pod(kubespawner: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    pod = _pod(kubespawner, _profiles()["no-namespaces"]["kubespawner_override"], monkeypatch)
    sc = pod["spec"]["containers"][0]["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert sc["runAsUser"] == 1000
    assert "hostUsers" not in pod["spec"]
    assert not sc.get("privileged")


def test_rootless_profile_pod(kubespawner: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    pod = _pod(kubespawner, _profiles()["rootless"]["kubespawner_override"], monkeypatch)
    spec = pod["spec"]
    sc = spec["containers"][0]["securityContext"]
    assert spec["hostUsers"] is False          # the pod's uids are an unprivileged range of the node
    assert sc["procMount"] == "Unmasked"       # the kit mounts a fresh /proc for each container
    assert sc["runAsUser"] == 1000
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert not sc.get("privileged")


def test_no_profile_is_privileged() -> None:
    for slug, profile in _profiles().items():
        override = profile.get("kubespawner_override", {})
        sc = override.get("container_security_context", {})
        assert not override.get("privileged") and not sc.get("privileged"), slug


def test_a_misspelt_pod_field_is_caught(kubespawner: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The read-back above can fail: a securityContext field Kubernetes does not know."""
    override = copy.deepcopy(_profiles()["rootless"]["kubespawner_override"])
    override["container_security_context"]["procMonut"] = "Unmasked"
    with pytest.raises(AssertionError, match="V1Pod does not know"):
        _pod(kubespawner, override, monkeypatch)
