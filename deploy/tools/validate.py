#!/usr/bin/env python3
"""Validates rendered Kubernetes manifests strictly, offline.

Every document of every file is checked against one schema:
- built-in kinds against the Kubernetes OpenAPI schemas that kubernetes-validate ships, in strict
  mode (unknown fields are errors) for a fixed Kubernetes version;
- custom resources (CloudNativePG Cluster, cert-manager Certificate, ...) against the JSON schemas
  in deploy/schemas/ (<group>_<version>_<Kind>.json), with python-jsonschema;
- a document of a kind that has neither is an error: kubernetes-validate by itself only warns
  about those and passes them.

With ZVV_UPSTREAM_CRD_SCHEMAS set to a folder of the operators' own CRD schemas (the
openAPIV3Schema of each CRD as JSON, named like the files in deploy/schemas/, e.g. exported with
`kubectl get crd clusters.postgresql.cnpg.io -o jsonpath=...`), custom resources are checked
against those as well, as strictly as the API server's strict field validation: an object schema
with properties and neither additionalProperties nor x-kubernetes-preserve-unknown-fields takes
no other fields.

Usage: validate.py [--kubernetes-version 1.31] [--schemas DIR] FILE...
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml


def schema_file_name(doc: dict) -> str:
    api_version = doc.get("apiVersion", "")
    group, _, version = api_version.rpartition("/")
    return f"{group or 'core'}_{version}_{doc.get('kind', '')}.json"


def structural_strict(schema):
    """The API server's pruning as errors: objects with properties take no other fields unless
    the schema says so."""
    if isinstance(schema, list):
        return [structural_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: structural_strict(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


class CustomSchemas:
    def __init__(self, folder: Path, strict_transform: bool = False):
        self.folder = folder
        self.strict_transform = strict_transform
        self.cache: dict[str, dict | None] = {}

    def get(self, doc: dict):
        name = schema_file_name(doc)
        if name not in self.cache:
            path = self.folder / name
            if path.is_file():
                schema = json.loads(path.read_text())
                if self.strict_transform:
                    schema = structural_strict(schema)
                self.cache[name] = schema
            else:
                self.cache[name] = None
        return self.cache[name]


def errors_of(schema: dict, doc: dict) -> list[str]:
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    found = []
    for error in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
        path = ".".join(str(p) for p in error.absolute_path) or "(document)"
        found.append(f"{path}: {error.message}")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubernetes-version", default="1.31")
    parser.add_argument(
        "--schemas", default=str(Path(__file__).resolve().parent.parent / "schemas")
    )
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()

    ours = CustomSchemas(Path(args.schemas))
    upstream_dir = os.environ.get("ZVV_UPSTREAM_CRD_SCHEMAS", "").strip()
    upstream = CustomSchemas(Path(upstream_dir), strict_transform=True) if upstream_dir else None

    failures = 0
    checked = 0
    for file in args.files:
        with open(file) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        for doc in docs:
            checked += 1
            meta = doc.get("metadata") or {}
            what = f"{file}: {doc.get('kind')}/{meta.get('name') or meta.get('generateName', '')}"
            problems: list[str] = []
            how = ""
            try:
                version = kubernetes_validate.validate(doc, args.kubernetes_version, strict=True)
                how = f"Kubernetes {version} (strict)"
            except kubernetes_validate.ValidationError as e:
                path = ".".join(str(p) for p in e.path) or "(document)"
                problems.append(f"{path}: {e.message}")
                how = f"Kubernetes {e.version} (strict)"
            except kubernetes_validate.SchemaNotFoundError:
                schema = ours.get(doc)
                if schema is None:
                    problems.append(
                        f"no schema for {doc.get('apiVersion')} {doc.get('kind')}: neither a "
                        f"Kubernetes kind nor {schema_file_name(doc)} in {args.schemas}"
                    )
                else:
                    how = f"deploy/schemas/{schema_file_name(doc)}"
                    problems.extend(errors_of(schema, doc))
                if upstream is not None:
                    schema = upstream.get(doc)
                    if schema is None:
                        print(f"WARN {what}: no upstream schema {schema_file_name(doc)}")
                    else:
                        how += " + upstream CRD schema"
                        problems.extend(f"(upstream) {p}" for p in errors_of(schema, doc))
            if problems:
                failures += 1
                print(f"FAIL {what} [{how}]")
                for p in problems:
                    print(f"     {p}")
            else:
                print(f"ok   {what} [{how}]")
    print(f"{checked} resources checked, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
