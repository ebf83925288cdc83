"""Public helpers for testing code built on autotrain-agent without a Hub download or a GPU."""

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from smolagents.models import ChatMessage, ChatMessageToolCall, ChatMessageToolCallFunction, MessageRole, Model

logger = logging.getLogger(__name__)

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
PAD_TOKEN = "<|pad|>"

# A ChatML-like template. The `{% generation %}` markers let TRL build an assistant-only loss mask.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\\n' }}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{ '\\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Write a function that returns the sum of two numbers.",
    "Fine-tuning adapts a pretrained language model to a narrower task.",
    "A unit test checks one behaviour and explains its own failure.",
    "Return the largest element of a list, or None when the list is empty.",
    "def add(a, b):\n    return a + b\n",
    "def is_even(n: int) -> bool:\n    return n % 2 == 0\n",
    "for i in range(10):\n    print(i * i)\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):\n        self.items.append(item)\n",
    "import math\n\ndef area(radius):\n    return math.pi * radius ** 2\n",
    "if __name__ == '__main__':\n    main()\n",
    "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n",
    "with open(path) as f:\n    lines = [line.strip() for line in f]\n",
    "try:\n    value = int(text)\nexcept ValueError:\n    value = 0\n",
]


def build_tiny_chat_model(
    dest: Path,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    vocab_size: int = 512,
    seed: int = 0,
) -> Path:
    """Save a randomly initialised Qwen3 chat model and its tokenizer as a Hugging Face folder.

    The tokenizer is a byte-level BPE trained on a small built-in corpus of English and Python, so any text
    round-trips. It has a ChatML-like chat template with `{% generation %}` markers, `<|im_end|>` as eos and
    `<|pad|>` as pad token. The result loads with `AutoModelForCausalLM` and `AutoTokenizer`, trains with TRL and
    takes about a second to build on a laptop CPU.

    Args:
        dest: Folder to write; created if missing. Existing files with the same names are overwritten.
        hidden_size: Model width. Must be a positive multiple of 16 (4 attention heads of at least 4 dims).
        num_layers: Number of decoder layers.
        vocab_size: Target vocabulary size of the trained tokenizer, special tokens included.
        seed: Seed for the random weights.

    Returns:
        `dest`.

    Raises:
        ConfigError: If a size argument is out of range.
    """
    from autotrain_agent.errors import ConfigError

    if hidden_size <= 0 or hidden_size % 16:
        raise ConfigError(f"`hidden_size` must be a positive multiple of 16, got {hidden_size!r}.")
    if num_layers <= 0:
        raise ConfigError(f"`num_layers` must be a positive integer, got {num_layers!r}.")
    if vocab_size < 300:
        raise ConfigError(f"`vocab_size` must be at least 300 (256 bytes plus merges and special tokens), got {vocab_size!r}.")

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tokenizer = _train_tokenizer(vocab_size)
    tokenizer.save_pretrained(dest)
    model = _build_random_model(tokenizer, hidden_size=hidden_size, num_layers=num_layers, seed=seed)
    model.save_pretrained(dest)
    logger.debug("Saved a tiny chat model (hidden %d, %d layers) to %s", hidden_size, num_layers, dest)
    return dest


def _train_tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD_TOKEN, IM_START, IM_END],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_CORPUS * 4, trainer=trainer)

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=None,
        eos_token=IM_END,
        pad_token=PAD_TOKEN,
        additional_special_tokens=[IM_START],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _build_random_model(tokenizer, *, hidden_size: int, num_layers: int, seed: int):
    import torch
    from transformers import AutoModelForCausalLM, Qwen3Config

    num_heads = 4
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=2,
        head_dim=hidden_size // num_heads,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


class ScriptedModel(Model):
    """A smolagents model that replies from a fixed script, one reply per call, so a test can drive an agent.

    Each reply is either a string (prose, no tool call) or a `(tool_name, arguments)` pair, where `arguments` may
    be in any shape a provider sends (a dict, a JSON string, `None`). When the script runs out, the last reply
    repeats.

    Args:
        replies: The replies in order; at least one.
    """

    def __init__(self, replies: Sequence[str | tuple[str, Any]]):
        if not replies:
            raise ValueError("`replies` must hold at least one reply, got an empty sequence.")
        super().__init__(model_id="autotrain-agent/scripted")
        self.replies = list(replies)
        self.calls = 0
        """How many times the agent asked for a reply."""
        self.last_messages_text = ""
        """The text of the messages of the latest call, observations included."""

    def generate(self, messages, stop_sequences=None, response_format=None, tools_to_call_from=None, **kwargs) -> ChatMessage:
        """Return the next scripted reply as an assistant message."""
        self.last_messages_text = "\n".join(str(_message_content(message)) for message in messages)
        reply = self.replies[min(self.calls, len(self.replies) - 1)]
        self.calls += 1
        if isinstance(reply, str):
            return ChatMessage(role=MessageRole.ASSISTANT, content=reply)
        tool, arguments = reply
        call = ChatMessageToolCall(
            id=f"call_{self.calls}", type="function", function=ChatMessageToolCallFunction(name=tool, arguments=arguments)
        )
        return ChatMessage(role=MessageRole.ASSISTANT, content=None, tool_calls=[call])


def _message_content(message: Any) -> Any:
    return message.get("content") if isinstance(message, dict) else message.content


def write_code_rows(path: Path, *, count: int = 16) -> Path:
    """Write `count` chat rows (a request for a small Python function, then the function in a fenced block) as JSONL.

    The rows pass SFT validation, so a test can train and evaluate on them without a Hub download.
    """
    with open(path, "w", encoding="utf-8") as out:
        for index in range(count):
            messages = [
                {"role": "user", "content": f"Write a Python function `f()` that returns {index}."},
                {"role": "assistant", "content": f"```python\ndef f():\n    return {index}\n```"},
            ]
            out.write(json.dumps({"messages": messages}) + "\n")
    return path
