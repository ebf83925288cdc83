"""Dataset validation: formats per method, row checks, chat templates, padding, assistant masks, truncation."""

import json

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from autotrain_agent.data.chat_format import CHATML_TEMPLATE, preview_row
from autotrain_agent.data.collation import (
    IGNORE_INDEX,
    choose_pad_token,
    ensure_trainable_labels,
    pad_and_label_batch,
    tokenize_text_row,
)
from autotrain_agent.data.sources import load_dataset_rows
from autotrain_agent.data.token_checks import build_assistant_mask
from autotrain_agent.data.validation import validate_dataset
from autotrain_agent.errors import DatasetError

WORDS = "hello world hi there a b c blue green sky is what color the weather sunny call tool get".split()
SPECIALS = ["<|im_start|>", "<|im_end|>"]


def make_word_tokenizer(*, extra_words=(), pad=None, specials=SPECIALS):
    vocab_words = ["<unk>", "<eos>", *specials, "user", "assistant", "system", "tool", *WORDS, *extra_words]
    if pad:
        vocab_words.append(pad)
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(dict.fromkeys(vocab_words))}, "<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<eos>", unk_token="<unk>")
    fast.add_special_tokens({"additional_special_tokens": list(specials)})
    return fast


# Both templates render "<|im_start|> role content <|im_end|> " per turn; only the first marks assistant replies.
MARKED_TEMPLATE = (
    "{% for m in messages %}<|im_start|> {{ m['role'] }} "
    "{% if m['role'] == 'assistant' %}{% generation %}{{ m['content'] }} <|im_end|>{% endgeneration %}"
    "{% else %}{{ m['content'] }} <|im_end|>{% endif %} {% endfor %}"
    "{% if add_generation_prompt %}<|im_start|> assistant {% endif %}"
)
UNMARKED_TEMPLATE = (
    "{% for m in messages %}<|im_start|> {{ m['role'] }} {{ m['content'] }} <|im_end|> {% endfor %}"
    "{% if add_generation_prompt %}<|im_start|> assistant {% endif %}"
)
STRICT_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('unknown role ' + m['role']) }}{% endif %}"
    "<|im_start|> {{ m['role'] }} {{ m['content'] }} <|im_end|> {% endfor %}"
)
TOOL_TEMPLATE = (
    "{% if tools %}<|im_start|> system {% for t in tools %}{{ t['function']['name'] }} {% endfor %}<|im_end|> "
    "{% endif %}{% for m in messages %}<|im_start|> {{ m['role'] }} "
    "{% if m['content'] %}{{ m['content'] }} {% endif %}"
    "{% for call in m.get('tool_calls') or [] %}call {{ call['function']['name'] }} {% endfor %}<|im_end|> "
    "{% endfor %}"
)

CONVERSATION = [
    {"role": "user", "content": "hello"},
    {"role": "assistant", "content": "hi there"},
    {"role": "user", "content": "a"},
    {"role": "assistant", "content": "b c"},
]


def user_assistant(user, assistant):
    return [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]


# --- basics -------------------------------------------------------------------------------------------------------


def test_conversational_rows_ready_for_sft():
    rows = [{"messages": user_assistant("hello", "hi")}, {"messages": user_assistant("a", "b")}]

    result = validate_dataset(rows, "sft")

    assert result.verdict == "ready"
    assert result.detected_format == "conversational"
    assert result.num_rows == 2
    assert result.problems == []


@pytest.mark.parametrize(
    ("row", "method", "detected"),
    [
        ({"text": "hello"}, "sft", "language_modeling"),  # plain language modelling
        ({"prompt": "a", "completion": "b"}, "sft", "prompt_completion"),  # prompt/completion pair
        ({"prompt": "a", "chosen": "b", "rejected": "c"}, "dpo", "preference"),  # explicit-prompt preference
        ({"prompt": "a", "completion": "b", "label": True}, "kto", "unpaired_preference"),  # KTO row
        ({"prompt": "a", "answer": "b"}, "grpo", "prompt_only"),  # extra columns go to reward functions
    ],
)
def test_accepted_format_per_method(row, method, detected):
    result = validate_dataset([row], method)

    assert result.detected_format == detected
    assert result.verdict == "ready"


def test_wrong_format_for_method_incompatible():
    result = validate_dataset([{"text": "hello"}], "dpo")

    assert result.verdict == "incompatible"
    assert result.problems[0].code == "incompatible_format"
    assert "preference" in result.problems[0].message


def test_alias_columns_get_suggested_mapping():
    result = validate_dataset([{"question": "a", "answer": "b"}], "sft")

    assert result.verdict == "needs_mapping"
    assert result.suggested_mapping == {"question": "prompt", "answer": "completion"}


def test_column_mapping_applied_before_checks():
    result = validate_dataset([{"question": "a", "answer": "b"}], "sft", column_mapping={"question": "prompt",
                                                                                          "answer": "completion"})

    assert result.verdict == "ready"
    assert result.prepared_rows == [{"prompt": "a", "completion": "b"}]


@pytest.mark.parametrize(
    ("messages", "code"),
    [
        (user_assistant("hello", "   "), "empty_content"),  # whitespace-only reply
        (user_assistant("hello", None), "null_content"),  # null reply without tool calls
        ([{"role": "user", "content": "hello"}], "no_assistant_turn"),  # nothing to train on
        ([{"role": "narrator", "content": "x"}, {"role": "assistant", "content": "y"}], "unknown_role"),
        ([{"role": "user", "content": 3}, {"role": "assistant", "content": "y"}], "wrong_type"),
        (["not a message", {"role": "assistant", "content": "y"}], "broken_row"),
    ],
)
def test_bad_message_rows_rejected(messages, code):
    rows = [{"messages": user_assistant("hello", "hi")}, {"messages": messages}]

    result = validate_dataset(rows, "sft")

    assert [p.code for p in result.problems] == [code]
    assert result.problems[0].rows == [2]
    assert len(result.prepared_rows) == 1
    assert result.verdict == "ready"


def test_non_alternating_turns_warned():
    messages = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                {"role": "assistant", "content": "c"}]

    result = validate_dataset([{"messages": messages}], "sft")

    assert result.problems[0].code == "roles_not_alternating"
    assert result.problems[0].severity == "warning"
    assert len(result.prepared_rows) == 1


def test_all_rows_rejected_incompatible():
    result = validate_dataset([{"text": " "}, {"text": None}], "sft")

    assert result.verdict == "incompatible"
    assert result.problems[-1].code == "no_rows_left"
    with pytest.raises(DatasetError, match="No row"):
        result.raise_if_incompatible()


def test_sample_size_limits_checked_rows():
    rows = [{"text": "hello"}] * 5 + [{"text": ""}]

    result = validate_dataset(rows, "sft", sample_size=5)

    assert result.num_rows == 6
    assert result.num_checked == 5
    assert result.problems == []


def test_invalid_method_raises():
    with pytest.raises(DatasetError, match="method"):
        validate_dataset([{"text": "a"}], "ppo")


def test_token_lengths_reported_with_template():
    tokenizer = make_word_tokenizer()
    tokenizer.chat_template = UNMARKED_TEMPLATE
    rows = [{"messages": user_assistant("hello", "hi")}, {"messages": CONVERSATION}]

    result = validate_dataset(rows, "sft", tokenizer=tokenizer, max_length=12)

    assert result.token_lengths["min"] == 8
    assert result.token_lengths["max"] == 18
    assert result.token_lengths["over_max_length"] == 1


def test_rows_over_max_length_warned_with_count():
    tokenizer = make_word_tokenizer()
    tokenizer.chat_template = UNMARKED_TEMPLATE
    rows = [{"messages": user_assistant("hello", "hi")}, {"messages": CONVERSATION}]

    result = validate_dataset(rows, "sft", tokenizer=tokenizer, max_length=12)

    warning = next(problem for problem in result.problems if problem.code == "over_max_length")
    assert warning.severity == "warning"
    assert warning.rows == [2]
    assert "1 of 2 rows are longer than max_length=12" in warning.message
    assert result.verdict == "ready"


# --- examples end in one trainable EOS --------------------------------------------------------------------------


def test_eos_label_survives_pad_equal_eos():
    tokenizer = make_word_tokenizer(specials=())
    texts = ["hello world", "hi there a b c", "blue"]
    pad_token, reason = choose_pad_token(tokenizer)
    features = [tokenize_text_row(text, tokenizer, max_length=16) for text in texts]

    batch = pad_and_label_batch(features, pad_token_id=tokenizer.convert_tokens_to_ids(pad_token))

    eos_id = tokenizer.eos_token_id
    assert pad_token == "<eos>"
    assert "attention mask" in reason
    for row in range(len(texts)):
        trainable = batch["labels"][row][batch["labels"][row] != IGNORE_INDEX]
        kept_ids = batch["input_ids"][row][batch["attention_mask"][row] == 1]
        assert trainable[-1].item() == eos_id
        assert (kept_ids == eos_id).sum().item() == 1


def test_validation_names_chosen_pad_token():
    tokenizer = make_word_tokenizer(specials=())

    result = validate_dataset([{"text": "hello world"}], "sft", tokenizer=tokenizer)

    assert result.pad_token == "<eos>"
    assert any(p.code == "pad_token_chosen" and "'<eos>'" in p.message for p in result.problems)


def test_spare_reserved_token_preferred_over_eos():
    tokenizer = make_word_tokenizer(specials=("<|reserved_special_token_0|>",))

    result = validate_dataset([{"text": "hello world"}], "sft", tokenizer=tokenizer)

    assert result.pad_token == "<|reserved_special_token_0|>"


# --- assistant mask without generation markers ------------------------------------------------------------------


def expected_assistant_spans(tokenizer):
    ids = tokenizer.apply_chat_template(CONVERSATION, chat_template=MARKED_TEMPLATE, tokenize=True,
                                        return_dict=True)["input_ids"]
    reply_ids = [tokenizer.convert_tokens_to_ids(t) for t in ("hi", "there", "b", "c", "<|im_end|>")]
    mask = [0] * len(ids)
    for start, stop in ((6, 9), (15, 18)):
        mask[start:stop] = [1] * (stop - start)
    assert all(ids[i] in reply_ids for i in range(len(ids)) if mask[i])
    return mask


def test_marked_template_mask_covers_replies():
    tokenizer = make_word_tokenizer()

    _, mask = build_assistant_mask(tokenizer, CONVERSATION, chat_template=MARKED_TEMPLATE)

    assert mask == expected_assistant_spans(tokenizer)


def test_prefix_rendering_matches_marked_mask():
    tokenizer = make_word_tokenizer()

    _, mask = build_assistant_mask(tokenizer, CONVERSATION, chat_template=UNMARKED_TEMPLATE)

    assert mask == expected_assistant_spans(tokenizer)


def test_unmarked_template_validates_with_prefix_rendering():
    tokenizer = make_word_tokenizer()
    tokenizer.chat_template = UNMARKED_TEMPLATE

    result = validate_dataset([{"messages": CONVERSATION}], "sft", tokenizer=tokenizer, assistant_only_loss=True)

    assert result.verdict == "ready"


def test_empty_assistant_mask_fails_validation():
    tokenizer = make_word_tokenizer()
    tokenizer.chat_template = UNMARKED_TEMPLATE

    result = validate_dataset([{"messages": CONVERSATION}], "sft", tokenizer=tokenizer, assistant_only_loss=True,
                              prefix_rendering=False)

    assert result.verdict == "incompatible"
    assert result.problems[-1].code == "empty_assistant_mask"
    with pytest.raises(DatasetError, match="assistant mask is empty"):
        result.raise_if_incompatible()


# --- ShareGPT turns --------------------------------------------------------------------------------------------


def test_sharegpt_turns_normalised_and_bot_rejected(tmp_path):
    def turns(*pairs):
        return [{"from": role, "value": text} for role, text in pairs]

    rows = [
        {"conversations": turns(("human", "hello"), ("gpt", "hi"))},
        {"conversations": turns(("human", "a"), ("assistant", "b"))},
        {"conversations": turns(("system", "sky"), ("human", "what color"), ("gpt", "blue"))},
        {"conversations": turns(("human", "hello"), ("bot", "hi"))},
    ]
    path = tmp_path / "sharegpt.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    tokenizer = make_word_tokenizer()
    tokenizer.chat_template = STRICT_TEMPLATE

    result = validate_dataset(load_dataset_rows(str(path)), "sft", tokenizer=tokenizer)

    roles = [[m["role"] for m in row["messages"]] for row in result.prepared_rows]
    assert roles == [["user", "assistant"], ["user", "assistant"], ["system", "user", "assistant"]]
    errors = [p for p in result.problems if p.severity == "error"]
    assert len(errors) == 1
    assert errors[0].rows == [4]
    assert "Row 4" in errors[0].message
    assert "'bot'" in errors[0].message
    assert result.applied_mapping["roles"]["gpt"] == "assistant"
    for row in result.prepared_rows:
        tokenizer.apply_chat_template(row["messages"], tokenize=False)


def test_json_list_of_turn_lists_rejected(tmp_path):
    path = tmp_path / "turns.json"
    path.write_text(json.dumps([[{"from": "human", "value": "hello"}, {"from": "gpt", "value": "hi"}]]))

    with pytest.raises(DatasetError, match="Convert it explicitly"):
        load_dataset_rows(str(path))


# --- preference pairs with an implicit prompt -----------------------------------------------------------------


def test_implicit_prompts_made_explicit():
    from trl.data_utils import maybe_extract_prompt

    user = {"role": "user", "content": "what color is the sky"}
    rows = [
        {"chosen": [user, {"role": "assistant", "content": "blue"}],
         "rejected": [user, {"role": "assistant", "content": "green"}]},
        {"chosen": "It is blue.", "rejected": "It is blue."},
        {"chosen": "It is blue.", "rejected": "It is green."},
    ]

    result = validate_dataset(rows, "dpo")

    first, third = result.prepared_rows
    assert first == {"prompt": [user], "chosen": [{"role": "assistant", "content": "blue"}],
                     "rejected": [{"role": "assistant", "content": "green"}]}
    assert third["prompt"] == ""
    codes = {(p.code, p.severity): p.rows for p in result.problems}
    assert codes[("identical_completions", "error")] == [2]
    assert codes[("ambiguous_prompt", "warning")] == [3]
    for row in result.prepared_rows:
        assert maybe_extract_prompt(row) == row


@pytest.mark.parametrize(
    ("rejected_reply", "code"),
    [
        ({"role": "assistant", "content": "  "}, "empty_content"),  # whitespace-only rejected reply
        ({"role": "bot", "content": "green"}, "unknown_role"),  # role no template knows
    ],
)
def test_preference_messages_checked(rejected_reply, code):
    user = {"role": "user", "content": "what color is the sky"}
    good = {"chosen": [user, {"role": "assistant", "content": "blue"}],
            "rejected": [user, {"role": "assistant", "content": "green"}]}
    bad = {"chosen": [user, {"role": "assistant", "content": "blue"}], "rejected": [user, rejected_reply]}

    result = validate_dataset([good, bad], "dpo")

    assert [(p.code, p.rows) for p in result.problems] == [(code, [2])]
    assert len(result.prepared_rows) == 1


# --- chat rows for a tokenizer without a chat template ---------------------------------------------------------


def test_missing_chat_template_fails_then_chatml_passes(tmp_path):
    make_word_tokenizer().save_pretrained(tmp_path / "base")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "base")
    config = json.loads((tmp_path / "base" / "tokenizer_config.json").read_text())
    rows = [{"messages": user_assistant("hello", "hi")}, {"messages": user_assistant("a", "b")}]

    missing = validate_dataset(rows, "sft", tokenizer=tokenizer)
    chosen = validate_dataset(rows, "sft", tokenizer=tokenizer, chat_template="chatml")

    assert "chat_template" not in config
    assert missing.verdict == "incompatible"
    assert missing.problems[0].code == "missing_chat_template"
    assert "--chat-template chatml" in missing.problems[0].message
    assert chosen.verdict == "ready"
    assert chosen.chat_template == CHATML_TEMPLATE


# --- tool calls --------------------------------------------------------------------------------------------------


def test_tool_call_rows_checked_per_field():
    tools = [{"type": "function", "function": {"name": "get", "parameters": {"type": "object", "properties": {}}}}]
    call = {"type": "function", "function": {"name": "get", "arguments": {}}}
    user = {"role": "user", "content": "what weather"}
    rows = [
        {"messages": [user, {"role": "assistant", "content": None, "tool_calls": [call]}], "tools": tools},
        {"messages": [user, {"role": "assistant", "content": None}], "tools": tools},
        {"messages": [user, {"role": "assistant", "content": "sunny", "tool_calls": []}], "tools": tools},
        {"messages": [user, {"role": "assistant", "content": None, "tool_calls": [call]}]},
    ]
    tokenizer = make_word_tokenizer()
    tokenizer.chat_template = TOOL_TEMPLATE

    result = validate_dataset(rows, "sft", tokenizer=tokenizer)

    errors = {p.code: p for p in result.problems if p.severity == "error"}
    assert len(result.prepared_rows) == 2
    assert result.num_normalized == 1
    assert errors["null_content"].rows == [2]
    assert "content" in errors["null_content"].message
    assert errors["missing_tool_schema"].rows == [4]
    assert "`tools`" in errors["missing_tool_schema"].message
    assert "tool_calls" not in result.prepared_rows[1]["messages"][1]
    for row in result.prepared_rows:
        assert "call get" in tokenizer.apply_chat_template(row["messages"], tools=row["tools"], tokenize=False) \
            or "sunny" in tokenizer.apply_chat_template(row["messages"], tools=row["tools"], tokenize=False)
    for row in rows:
        assert preview_row(row)


# --- truncation that leaves no trainable token -----------------------------------------------------------------


def long_prompt_rows():
    prompt = " ".join(["hello world"] * 30)
    return [{"prompt": prompt, "completion": "a b c blue green"} for _ in range(8)]


def test_truncation_starved_rows_dropped():
    tokenizer = make_word_tokenizer()

    result = validate_dataset(long_prompt_rows(), "sft", tokenizer=tokenizer, max_length=32)

    problem = next(p for p in result.problems if p.code == "no_trainable_tokens")
    assert problem.message.startswith("8 of 8 rows would keep no trainable token")
    assert "dropped them" in problem.message
    assert result.prepared_rows == []
    assert result.verdict == "incompatible"


def test_truncation_cuts_prompt_left_when_chosen():
    tokenizer = make_word_tokenizer()

    result = validate_dataset(long_prompt_rows(), "sft", tokenizer=tokenizer, max_length=32,
                              truncation="cut_prompt_left")

    assert result.verdict == "ready"
    assert len(result.prepared_rows) == 8
    problem = next(p for p in result.problems if p.code == "no_trainable_tokens")
    assert "cut the prompts of 8" in problem.message
    assert len(tokenizer(result.prepared_rows[0]["prompt"])["input_ids"]) == 27


def test_batch_without_trainable_label_raises():
    labels = torch.full((2, 4), IGNORE_INDEX)

    with pytest.raises(DatasetError, match="no trainable label"):
        ensure_trainable_labels(labels)


def test_collator_raises_on_all_masked_batch():
    features = [{"input_ids": [5, 6, 7], "completion_mask": [0, 0, 0]}]

    with pytest.raises(DatasetError, match="no trainable label"):
        pad_and_label_batch(features, pad_token_id=0)
