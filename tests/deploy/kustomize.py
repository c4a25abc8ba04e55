"""A small Kustomize renderer for the tests and `make k8s-check` (no kustomize binary on the machines).

It knows what deploy/k8s uses, and refuses anything else (so a new feature in a kustomization cannot be
silently ignored): `resources` (files and directories), `namespace`, `images`, `labels` (pairs, on metadata
only) and `patches` given by `path` (strategic merge, with the merge keys of the fields used here; `$patch: delete`
of a whole resource).
tests/deploy/test_k8s.py compares its output with `kubectl kustomize` where kubectl is installed.

    python tests/deploy/kustomize.py deploy/k8s/overlays/production > rendered.yaml
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml

KNOWN = {"apiVersion", "kind", "resources", "namespace", "images", "labels", "patches"}
# Strategic-merge keys of the lists our patches touch (from the Kubernetes API's patchMergeKey).
MERGE_KEYS = {"containers": "name", "initContainers": "name", "env": "name", "volumes": "name",
              "volumeMounts": "mountPath", "ports": "containerPort", "topologySpreadConstraints": "topologyKey"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass"}


def _merge(base: Any, patch: Any, field: str | None = None) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = _merge(base[key], value, key) if key in base else copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(patch, list) and field in MERGE_KEYS:
        key = MERGE_KEYS[field]
        out = [copy.deepcopy(item) for item in base]
        index = {item.get(key): i for i, item in enumerate(out)}
        added = []
        for item in patch:
            if item.get(key) in index:
                out[index[item[key]]] = _merge(out[index[item[key]]], item, None)
            else:
                added.append(copy.deepcopy(item))
        return added + out  # kustomize puts the patch's new items first
    return copy.deepcopy(patch)


def _pods(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec", {})
    if doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return [spec["template"]["spec"]]
    if doc["kind"] == "CronJob":
        return [spec["jobTemplate"]["spec"]["template"]["spec"]]
    return []


def render(directory: Path) -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - KNOWN
    if unknown:
        raise ValueError(f"{directory}: this renderer does not know {sorted(unknown)}")
    docs: list[dict[str, Any]] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            docs.extend(render(path))
        else:
            docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    for patch_entry in kustomization.get("patches", []):
        if set(patch_entry) != {"path"}:
            raise ValueError(f"{directory}: only patches by path are known here, not {patch_entry}")
        for patch in yaml.safe_load_all((directory / patch_entry["path"]).read_text()):
            if not patch:
                continue
            targets = [i for i, d in enumerate(docs)
                       if d["kind"] == patch["kind"] and d["metadata"]["name"] == patch["metadata"]["name"]]
            if len(targets) != 1:
                raise ValueError(f"patch {patch['kind']}/{patch['metadata']['name']} matches {len(targets)} resources")
            if patch.get("$patch") == "delete":
                del docs[targets[0]]
            else:
                docs[targets[0]] = _merge(docs[targets[0]], patch)
    for label in kustomization.get("labels", []):
        if set(label) != {"pairs"}:
            raise ValueError(f"{directory}: only plain label pairs are known here, not {label}")
        for doc in docs:
            doc["metadata"].setdefault("labels", {}).update(label["pairs"])
    for image in kustomization.get("images", []):
        for doc in docs:
            for pod in _pods(doc):
                for container in pod.get("containers", []) + pod.get("initContainers", []):
                    name, _, tag = container["image"].partition(":")
                    if name == image["name"]:
                        name = image.get("newName", name)
                        if "digest" in image:
                            container["image"] = f"{name}@{image['digest']}"
                        else:
                            container["image"] = f"{name}:{image.get('newTag', tag or 'latest')}"
    if "namespace" in kustomization:
        for doc in docs:
            if doc["kind"] not in CLUSTER_SCOPED:
                doc["metadata"]["namespace"] = kustomization["namespace"]
    return docs


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    sys.stdout.write(yaml.safe_dump_all(render(Path(argv[0])), sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
