"""The emulator's contract with botocore and Python: the same answers on every version.

The walker is checked here against a small hand-made model that has every shape type
(the AgentCore model has no maps, floats or blobs); a scan of the source proves that no
module reaches into botocore's private members, which change between releases; JSON
nesting has one limit, though json.loads gives up at different depths across Pythons.
"""

from __future__ import annotations

import ast
import base64
import http.client
import importlib.metadata
import json
import re
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from botocore.model import ServiceModel, Shape

from spendguard.emulator import DEFAULT_MANAGER_ARN, PaymentsEmulator
from spendguard.emulator._model import MIN_BOTOCORE
from spendguard.emulator._validation import MAX_JSON_DEPTH, collect, load_json

ROOT = Path(__file__).resolve().parents[1]
USER_HEADER = "X-Amzn-Bedrock-AgentCore-Payments-User-Id"

_SHAPES: dict[str, dict[str, object]] = {
    "Input": {
        "type": "structure",
        "required": ["id"],
        "members": {
            "id": {"shape": "Id"},
            "count": {"shape": "Count"},
            "big": {"shape": "Big"},
            "ratio": {"shape": "Ratio"},
            "flag": {"shape": "Flag"},
            "data": {"shape": "Data"},
            "at": {"shape": "At"},
            "tags": {"shape": "Tags"},
            "items": {"shape": "Items"},
            "choice": {"shape": "Choice"},
            "doc": {"shape": "Doc"},
            "kind": {"shape": "Kind"},
        },
    },
    "Id": {"type": "string", "min": 5, "max": 8, "pattern": "id-[0-9]+"},
    "Count": {"type": "integer", "min": 1, "max": 10},
    "Big": {"type": "long", "max": 2**40},
    "Ratio": {"type": "double", "min": 0, "max": 1},
    "Flag": {"type": "boolean"},
    "Data": {"type": "blob", "max": 4},
    "At": {"type": "timestamp"},
    "Tags": {"type": "map", "key": {"shape": "TagKey"}, "value": {"shape": "Id"}, "max": 2},
    "TagKey": {"type": "string", "pattern": "[a-z]+"},
    "Items": {"type": "list", "member": {"shape": "Item"}, "min": 1, "max": 2},
    "Item": {"type": "structure", "required": ["id"], "members": {"id": {"shape": "Id"}}},
    "Choice": {
        "type": "structure",
        "union": True,
        "members": {"a": {"shape": "Flag"}, "b": {"shape": "Count"}},
    },
    "Doc": {"type": "structure", "document": True, "members": {}},
    "Kind": {"type": "string", "enum": ["RED", "BLUE"]},
}


@pytest.fixture(scope="module")
def shape() -> Shape:
    model = ServiceModel({"metadata": {"protocol": "rest-json"}, "shapes": _SHAPES}, "toy")
    return model.shape_for("Input")


VALID: dict[str, object] = {
    "id": "id-123",
    "count": 10,
    "big": 2**40,
    "ratio": Decimal("0.5"),
    "flag": False,
    "data": b"abcd",
    "at": datetime(2026, 1, 1, tzinfo=timezone.utc),
    "tags": {"env": "id-12"},
    "items": [{"id": "id-99"}],
    "choice": {"b": 1},
    "doc": {"anything": [1, "two", None, {"three": 3.0}]},
    "kind": "BLUE",
}


def test_a_valid_value_has_no_problems(shape: Shape) -> None:
    assert collect(VALID, shape) == []
    assert collect({"id": "id-12", "at": "2026-01-01T00:00:00Z", "data": "YQ=="}, shape) == []


@pytest.mark.parametrize(
    ("change", "path", "detail"),
    [
        ({"id": None}, "id", "must be of type string, not NoneType"),
        ({"id": "id-1"}, "id", "length must be at least 5"),
        ({"id": "id-123456"}, "id", "length must be at most 8"),
        ({"id": "xx-12345"}, "id", "must match the pattern id-[0-9]+"),
        ({"count": 0}, "count", "value must be at least 1"),
        ({"count": 11}, "count", "value must be at most 10"),
        ({"count": True}, "count", "must be of type integer, not bool"),
        ({"count": 1.0}, "count", "must be of type integer, not float"),
        ({"big": 2**40 + 1}, "big", "value must be at most 1099511627776"),
        ({"ratio": 1.5}, "ratio", "value must be at most 1"),
        ({"ratio": "0.5"}, "ratio", "must be of type double, not str"),
        ({"flag": 0}, "flag", "must be of type boolean, not int"),
        ({"data": b"abcde"}, "data", "length must be at most 4"),
        ({"data": 5}, "data", "must be of type blob, not int"),
        ({"at": "not a time"}, "at", "must be of type timestamp, not str"),
        ({"at": True}, "at", "must be of type timestamp, not bool"),
        ({"tags": {"a": "id-11", "b": "id-22", "c": "id-33"}}, "tags", "length must be at most 2"),
        ({"tags": {"ENV": "id-12"}}, "tags (key 'ENV')", "must match the pattern [a-z]+"),
        ({"tags": {"env": "id-1"}}, "tags.env", "length must be at least 5"),
        ({"items": []}, "items", "length must be at least 1"),
        ({"items": [{}]}, "items[0].id", "is required"),
        ({"items": ({"id": "id-1"},)}, "items[0].id", "length must be at least 5"),
        ({"choice": {}}, "choice", "must set exactly one of a, b"),
        ({"choice": {"a": True, "b": 1}}, "choice", "must set exactly one of a, b"),
        ({"doc": {"x": {1, 2}}}, "doc", "must be a JSON document"),
        ({"kind": "GREEN"}, "kind", "must be one of RED, BLUE"),
        ({"extra": 1}, "extra", "is not a member of Input"),
    ],
)
def test_each_constraint_is_reported_at_its_member(
    shape: Shape, change: dict[str, object], path: str, detail: str
) -> None:
    problems = collect({**VALID, **change}, shape)
    assert [(p.name, p.message) for p in problems] == [(path, f"{path}: {detail}")]


def test_missing_members_are_named_and_a_non_object_is_the_input(shape: Shape) -> None:
    assert [p.name for p in collect({}, shape)] == ["id"]
    assert [p.message for p in collect([], shape)] == ["input: must be of type structure, not list"]


def test_every_problem_is_collected_not_just_the_first(shape: Shape) -> None:
    bad = {"id": "x", "count": 99, "items": [{"id": 1}, {}], "kind": "GREEN"}
    names = [p.name for p in collect(bad, shape)]
    assert names == ["id", "id", "count", "items[0].id", "items[1].id", "kind"]


def test_the_emulator_needs_the_botocore_the_package_requires() -> None:
    floors = {
        match.group(1): match.group(2)
        for req in importlib.metadata.requires("spendguard") or []
        if (match := re.fullmatch(r"(boto3|botocore)>=([\d.]+)", req.replace(" ", "")))
    }
    assert floors == {"boto3": MIN_BOTOCORE, "botocore": MIN_BOTOCORE}


def _botocore_misuse(tree: ast.Module) -> list[str]:
    """Private botocore names imported or reached, and botocore classes subclassed."""
    bound: set[str] = set()
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            bound |= {a.asname or a.name.split(".")[0] for a in node.names if _is_botocore(a.name)}
            found += [a.name for a in node.names if _is_botocore(a.name) and _private(a.name)]
        elif isinstance(node, ast.ImportFrom) and _is_botocore(node.module or ""):
            bound |= {a.asname or a.name for a in node.names}
            found += [f"{node.module}.{a.name}" for a in node.names if _private(a.name)]
            found += [str(node.module)] * _private(node.module or "")
    _add_aliases(tree, bound)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr) and _root(node) in bound:
            found.append(ast.unparse(node))
        elif isinstance(node, ast.ClassDef):
            bases = [ast.unparse(b) for b in node.bases if _root(b) in bound]
            found += [f"class {node.name}({base})" for base in bases]
    return found


def _add_aliases(tree: ast.Module, bound: set[str]) -> None:
    """Names assigned from botocore names (``Base = ParamValidator``) are botocore names too."""
    assigns = [n for n in ast.walk(tree) if isinstance(n, ast.Assign | ast.AnnAssign)]
    while True:
        new = {
            target.id
            for node in assigns
            if node.value is not None and _root(node.value) in bound
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
            if isinstance(target, ast.Name) and target.id not in bound
        }
        if not new:
            return
        bound |= new


def _is_botocore(module: str) -> bool:
    return module == "botocore" or module.startswith("botocore.")


def _private(dotted: str) -> bool:
    return any(p.startswith("_") and not p.endswith("__") for p in dotted.split("."))


def _root(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute | ast.Call | ast.Subscript):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def test_the_scan_catches_private_botocore_use() -> None:
    source = (
        "import botocore.validate as v\nfrom botocore.validate import ParamValidator\n"
        "class X(ParamValidator):\n    A = ParamValidator.VALIDATED_METADATA_ATTRS\n"
        "v.ParamValidator()._validate_string\nfrom botocore.utils import _x\n"
        "Base = ParamValidator\nclass Y(Base): pass\n"
    )
    assert sorted(_botocore_misuse(ast.parse(source))) == [
        "botocore.utils._x",
        "class X(ParamValidator)",
        "class Y(Base)",
        "v.ParamValidator()._validate_string",
    ]


@pytest.mark.parametrize(
    "path",
    sorted([*ROOT.glob("spendguard/**/*.py"), *ROOT.glob("integrations/**/*.py")]),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_no_module_uses_botocore_internals(path: Path) -> None:
    assert _botocore_misuse(ast.parse(path.read_text(encoding="utf-8"))) == []


@pytest.mark.parametrize("depth", [1, MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1, 5_000, 50_000])
def test_json_nesting_has_one_limit_on_every_python(depth: int) -> None:
    text = "[" * depth + "]" * depth
    if depth <= MAX_JSON_DEPTH:
        assert isinstance(load_json(text), list)
    else:
        with pytest.raises(RecursionError):
            load_json(text)


def _post(emulator: PaymentsEmulator, body: str, headers: dict[str, str]) -> tuple[int, str]:
    parts = urlsplit(emulator.endpoint_url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=5)
    try:
        sent = {"Content-Type": "application/json", **headers}
        conn.request("POST", "/payments/getPaymentSession", body=body, headers=sent)
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("X-Amzn-ErrorType") or ""
    finally:
        conn.close()


def test_a_deeply_nested_body_is_a_serialization_error(emulator: PaymentsEmulator) -> None:
    deep = "[" * 5_000 + "]" * 5_000  # parses on Python 3.13, not before: answered alike
    body = f'{{"paymentManagerArn": "{DEFAULT_MANAGER_ARN}", "x": {deep}}}'
    assert _post(emulator, body, {USER_HEADER: "u"}) == (400, "SerializationException")


def test_a_deeply_nested_bearer_token_is_no_identity(emulator: PaymentsEmulator) -> None:
    claims = base64.urlsafe_b64encode(b'{"sub": ' + b"[" * 5_000 + b"]" * 5_000 + b"}")
    token = f"e30.{claims.decode().rstrip('=')}.sig"
    session_id = emulator.create_session("1.00", user_id="").payment_session_id  # nobody's
    body = json.dumps({"paymentManagerArn": DEFAULT_MANAGER_ARN, "paymentSessionId": session_id})
    status, code = _post(emulator, body, {"Authorization": f"Bearer {token}"})
    assert (status, code) == (200, "")
