"""botocore's own service model for the AgentCore data plane, the emulator's source of truth.

Paths, HTTP status codes, header bindings, and the shapes requests and responses are
checked against all come from ``botocore/data/bedrock-agentcore``, never from copies,
read through botocore's public session and model API only.
"""

from __future__ import annotations

import functools

import botocore
import botocore.session
from botocore.model import NoShapeFoundError, OperationModel, ServiceModel, StructureShape

SERVICE_NAME = "bedrock-agentcore"
#: The first botocore whose model has all the emulator serves (awsBillingX402 came last).
MIN_BOTOCORE = "1.44.7"

#: The operations the emulator serves: every payments operation of the data plane.
OPERATIONS: tuple[str, ...] = (
    "CreatePaymentSession",
    "GetPaymentSession",
    "ListPaymentSessions",
    "DeletePaymentSession",
    "ProcessPayment",
    "CreatePaymentInstrument",
    "GetPaymentInstrument",
    "ListPaymentInstruments",
    "GetPaymentInstrumentBalance",
    "DeletePaymentInstrument",
    "GetResourcePaymentToken",
)


@functools.cache
def service_model() -> ServiceModel:
    """The bedrock-agentcore service model shipped with the installed botocore.

    Raises:
        RuntimeError: The installed botocore predates the payment operations.
    """
    model = botocore.session.get_session().get_service_model(SERVICE_NAME)
    missing = sorted(set(OPERATIONS) - set(model.operation_names))
    if missing:
        raise RuntimeError(
            f"botocore {botocore.__version__} has no {', '.join(missing)} in {SERVICE_NAME}; "
            f"the payments emulator needs botocore>={MIN_BOTOCORE}"
        )
    return model


@functools.cache
def operation(name: str) -> OperationModel:
    """The operation model for ``name`` (e.g. ``"GetPaymentSession"``)."""
    return service_model().operation_model(name)


@functools.cache
def routes() -> dict[tuple[str, str], str]:
    """(HTTP method, request path) -> operation name, for every served operation."""
    table: dict[tuple[str, str], str] = {}
    for name in OPERATIONS:
        http = operation(name).http
        table[(str(http["method"]), str(http["requestUri"]))] = name
    return table


def success_status(name: str) -> int:
    """The HTTP status of a successful response (201 for the Create operations)."""
    return int(operation(name).http.get("responseCode", 200))


def input_shape(name: str) -> StructureShape:
    """The operation's input structure."""
    shape = operation(name).input_shape
    assert isinstance(shape, StructureShape)
    return shape


def output_shape(name: str) -> StructureShape:
    """The operation's output structure."""
    shape = operation(name).output_shape
    assert isinstance(shape, StructureShape)
    return shape


@functools.cache
def header_members(name: str) -> dict[str, str]:
    """Input member name -> lower-cased HTTP header name, for header-bound members."""
    out: dict[str, str] = {}
    for member, shape in input_shape(name).members.items():
        if shape.serialization.get("location") == "header":
            out[member] = str(shape.serialization["name"]).lower()
    return out


@functools.cache
def error_status(code: str) -> int:
    """HTTP status botocore's model gives the error shape ``code`` (500 if unmodeled)."""
    try:
        shape = service_model().shape_for(code)
    except NoShapeFoundError:
        return 500
    error = shape.metadata.get("error", {})
    return int(error.get("httpStatusCode", 500))
