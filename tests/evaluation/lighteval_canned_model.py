"""A lighteval model whose answers are known, so a score shows what the sandbox decided (needs lighteval).

`lighteval custom` loads this file by path and instantiates its only `LightevalModel` subclass.
"""

from lighteval.models.abstract_model import LightevalModel, ModelConfig
from lighteval.models.model_output import ModelResponse
from lighteval.tasks.requests import Doc
from lighteval.utils.cache_management import SampleCache

# Not the canonical text, so an exact-match metric would score it 0, but it passes the tests when run.
CORRECT_PREFIX = "    # Reworded, so it differs from the reference text.\n"
WRONG_ANSWER = "    return None\n"


class CannedModel(LightevalModel):
    """Model that returns a wrong body for the lowest-numbered problem of each batch and a reworded reference
    solution for every other problem."""

    def __init__(self, config: ModelConfig):
        self.config = config
        self._cache = SampleCache(config)

    @property
    def tokenizer(self):
        return None

    @property
    def add_special_tokens(self) -> bool:
        return False

    @property
    def max_length(self) -> int:
        return 4096

    def greedy_until(self, docs: list[Doc]) -> list[ModelResponse]:
        wrong = min(docs, key=lambda doc: int(doc.specific["task_id"].split("/")[1]))
        return [ModelResponse(text=[WRONG_ANSWER if doc is wrong else CORRECT_PREFIX + doc.specific["canonical_solution"]])
                for doc in docs]

    def loglikelihood(self, docs: list[Doc]) -> list[ModelResponse]:
        raise NotImplementedError("HumanEval is generative; the canned model only generates.")

    def loglikelihood_rolling(self, docs: list[Doc]) -> list[ModelResponse]:
        raise NotImplementedError("HumanEval is generative; the canned model only generates.")
