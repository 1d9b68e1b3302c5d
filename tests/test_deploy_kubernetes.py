"""deploy/kubernetes/ checked without a cluster: every manifest's fields against the Kubernetes API
models of the official `kubernetes` Python client (unknown fields, wrong types, missing required
fields), KEDA's ScaledObject against a schema of the KEDA fields it uses, and the pieces against
each other and against batchscribe's own CLI and job store."""

from __future__ import annotations

import jsonschema
import kubernetes.client
import pytest
import yaml
from conftest import REPO

from batchscribe.cli import build_parser
from batchscribe.jobs.sql import UNFINISHED_COUNT

MANIFESTS = sorted((REPO / "deploy" / "kubernetes").glob("*.yaml"))
PRIMITIVES = {"str": str, "int": int, "bool": bool, "float": (int, float)}

# The subset of KEDA's ScaledObject (keda.sh/v1alpha1) this example uses, from KEDA's reference:
# https://keda.sh/docs/2.13/reference/scaledobject-spec/ (spec fields) and
# https://keda.sh/docs/2.13/scalers/postgresql/ (the postgresql trigger's metadata; values are strings).
# additionalProperties is false so a misspelt field fails here instead of being ignored by a cluster.
KEDA_SCALED_OBJECT = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {"name": {"type": "string"}, "apiVersion": {"type": "string"},
                                   "kind": {"type": "string"}, "envSourceContainerName": {"type": "string"}},
                },
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "idleReplicaCount": {"type": "integer", "minimum": 0},
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"const": "postgresql"},
                            "name": {"type": "string"},
                            "metadata": {
                                "type": "object",
                                "required": ["query", "targetQueryValue"],
                                "additionalProperties": False,
                                "properties": {
                                    **{name: {"type": "string"} for name in (
                                        "connectionFromEnv", "host", "port", "userName", "passwordFromEnv",
                                        "dbName", "sslmode", "query")},  # fmt: skip
                                    "targetQueryValue": {"type": "string", "pattern": r"^[0-9.]+$"},
                                    "activationTargetQueryValue": {"type": "string", "pattern": r"^[0-9.]+$"},
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


def documents() -> list[dict]:
    return [doc for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]


def check_fields(value, type_name: str, where: str) -> None:
    """Every field of `value` exists in the client's model `type_name`, with the right type."""
    if type_name.lower().startswith("list["):  # 'List[V1Container]' (older clients: 'list[...]')
        assert isinstance(value, list), f"{where}: a list expected"
        for n, item in enumerate(value):
            check_fields(item, type_name[5:-1], f"{where}[{n}]")
    elif type_name.lower().startswith(("dict(", "dict[")):  # 'Dict[str, str]' (older: 'dict(str, str)')
        assert isinstance(value, dict), f"{where}: a mapping expected"
        for key, item in value.items():
            check_fields(item, type_name[5:-1].split(", ", 1)[1], f"{where}.{key}")
    elif type_name in PRIMITIVES:
        assert isinstance(value, PRIMITIVES[type_name]) and not (type_name != "bool" and isinstance(value, bool)), \
            f"{where}: {type_name} expected, got {value!r}"  # fmt: skip
    elif type_name == "object":  # int-or-string (ports, quantities) and free-form fields
        assert isinstance(value, (str, int, dict, list)), where
    else:
        model = getattr(kubernetes.client, type_name)
        fields = {json_name: model.openapi_types[name] for name, json_name in model.attribute_map.items()}
        assert isinstance(value, dict), f"{where}: a {type_name} mapping expected"
        for key, item in value.items():
            assert key in fields, f"{where}.{key}: not a field of {type_name}"
            check_fields(item, fields[key], f"{where}.{key}")


def test_there_are_manifests():
    kinds = sorted(doc["kind"] for doc in documents())
    assert kinds == ["Deployment", "Deployment", "ScaledObject", "Secret", "Service"]


@pytest.mark.parametrize("doc", [d for d in documents() if d["apiVersion"] in ("v1", "apps/v1")],
                         ids=lambda d: f"{d['kind']}-{d['metadata']['name']}")  # fmt: skip
def test_core_objects_match_the_kubernetes_api(doc):
    model = f"V1{doc['kind']}"
    check_fields(doc, model, doc["kind"])
    # The client's own deserializer then checks required fields (a container without a name, ...).
    kubernetes.client.ApiClient()._ApiClient__deserialize(doc, model)


def test_keda_scaled_object_scales_workers_from_zero_on_unfinished_jobs():
    (scaled,) = [doc for doc in documents() if doc["kind"] == "ScaledObject"]
    jsonschema.validate(scaled, KEDA_SCALED_OBJECT)
    spec = scaled["spec"]
    assert spec["minReplicaCount"] == 0
    deployments = {doc["metadata"]["name"]: doc for doc in documents() if doc["kind"] == "Deployment"}
    target = deployments[spec["scaleTargetRef"]["name"]]
    assert target["spec"]["replicas"] == 0
    (container,) = [c for c in target["spec"]["template"]["spec"]["containers"]
                    if c["name"] == spec["scaleTargetRef"]["envSourceContainerName"]]  # fmt: skip
    (trigger,) = spec["triggers"]
    assert trigger["metadata"]["query"] == UNFINISHED_COUNT  # the store's own query, as it is
    assert trigger["metadata"]["connectionFromEnv"] in {env["name"] for env in container["env"]}


def test_containers_run_real_commands_with_the_shared_store():
    parser = build_parser()
    secrets = {doc["metadata"]["name"]: doc for doc in documents() if doc["kind"] == "Secret"}
    for deployment in (doc for doc in documents() if doc["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        for container in pod["spec"]["containers"]:
            assert container["command"][0] == "batchscribe"
            parser.parse_args(container["command"][1:])  # exits (fails the test) on an unknown option
            env = {e["name"]: e for e in container["env"]}
            reference = env["BATCHSCRIBE_STORE"]["valueFrom"]["secretKeyRef"]
            assert secrets[reference["name"]]["stringData"][reference["key"]].startswith("postgresql://")
            for item in env.values():
                if "valueFrom" in item:
                    ref = item["valueFrom"]["secretKeyRef"]
                    assert ref["key"] in secrets[ref["name"]]["stringData"], item
    services = [doc for doc in documents() if doc["kind"] == "Service"]
    pods = [d["spec"]["template"]["metadata"]["labels"] for d in documents() if d["kind"] == "Deployment"]
    for service in services:
        assert any(service["spec"]["selector"].items() <= labels.items() for labels in pods)


def test_the_check_catches_mistakes():
    deployment = next(doc for doc in documents() if doc["kind"] == "Deployment")
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 1}}
    with pytest.raises(AssertionError, match="replica: not a field of V1DeploymentSpec"):
        check_fields(broken, "V1Deployment", "Deployment")
    scaled = next(doc for doc in documents() if doc["kind"] == "ScaledObject")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**scaled, "spec": {**scaled["spec"], "minReplicas": 0}}, KEDA_SCALED_OBJECT)
    pod = deployment["spec"]["template"]["spec"]
    nameless = {**pod, "containers": [{k: v for k, v in c.items() if k != "name"} for c in pod["containers"]]}
    with pytest.raises(Exception, match="name"):
        kubernetes.client.ApiClient()._ApiClient__deserialize(nameless, "V1PodSpec")
