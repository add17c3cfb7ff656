"""DSPEx kernel library: signatures, adapters, the LM client, program specs with their
variable space, ``execute`` and ``evaluate``. Pure: no NATS, no SQL, no environment."""

from .adapters import ChatAdapter, JSONAdapter, get_adapter
from .cache import InMemoryLRUCache, ResponseCache, cache_key
from .errors import (
    AdapterParseError,
    ConfigurationError,
    DSPExError,
    InputError,
    LMError,
    LMRateLimitError,
    LMTimeoutError,
    LMUnavailableError,
    MetricError,
    ProgramError,
    SignatureError,
    ToolError,
    UnknownModuleError,
)
from .evaluate import EvaluationReport, ExampleResult, evaluate, load_examples
from .execute import Result, execute
from .lm import LM, Endpoint, LMClient, LMRequest, LMResponse, Usage
from .metrics import BUILTIN_METRICS, Metric, get_metric
from .modules import MODULES, TraceEntry
from .program import Configuration, ProgramSpec, StageConfig, StageSpec
from .retrievers import BM25Retriever
from .runtime import Retriever, RewardFn, Runtime, Tool
from .signature import (
    FieldSpec,
    InputField,
    OutputField,
    Signature,
    as_signature,
    parse_signature,
    signature_from_class,
)
from .variables import (
    ChoiceVar,
    Condition,
    DemoSetVar,
    FloatVar,
    IntVar,
    TextVar,
    VariableSpace,
)

__all__ = [
    "BUILTIN_METRICS",
    "LM",
    "MODULES",
    "AdapterParseError",
    "BM25Retriever",
    "ChatAdapter",
    "ChoiceVar",
    "Condition",
    "Configuration",
    "ConfigurationError",
    "DSPExError",
    "DemoSetVar",
    "Endpoint",
    "EvaluationReport",
    "ExampleResult",
    "FieldSpec",
    "FloatVar",
    "InMemoryLRUCache",
    "InputError",
    "InputField",
    "IntVar",
    "JSONAdapter",
    "LMClient",
    "LMError",
    "LMRateLimitError",
    "LMRequest",
    "LMResponse",
    "LMTimeoutError",
    "LMUnavailableError",
    "Metric",
    "MetricError",
    "OutputField",
    "ProgramError",
    "ProgramSpec",
    "ResponseCache",
    "Result",
    "Retriever",
    "RewardFn",
    "Runtime",
    "Signature",
    "SignatureError",
    "StageConfig",
    "StageSpec",
    "TextVar",
    "Tool",
    "ToolError",
    "TraceEntry",
    "UnknownModuleError",
    "Usage",
    "VariableSpace",
    "as_signature",
    "cache_key",
    "evaluate",
    "execute",
    "get_adapter",
    "get_metric",
    "load_examples",
    "parse_signature",
    "signature_from_class",
]
