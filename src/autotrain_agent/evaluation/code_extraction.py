"""Turn a model's answer to a HumanEval-style prompt into the program that the tests run against."""

import ast
import logging
import re

logger = logging.getLogger(__name__)

# End-of-turn markers that leak into decoded text when a generator does not skip special tokens.
SPECIAL_TOKENS = ("<|im_end|>", "<|endoftext|>", "</s>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<eos>")
# The stop sequences of the HumanEval paper (Chen et al., 2021): each starts a new top-level statement.
COMPLETION_STOPS = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#")
_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_PYTHON_LABELS = {"", "python", "python3", "py"}
_CODE_START = re.compile(r"^(?:import |from |def |class |@)", re.MULTILINE)


def extract_code(completion: str, *, entry_point: str, prompt: str, chat: bool) -> str:
    """Build the program to test from a model's answer.

    Completion-style answers (`chat=False`) continue the prompt: the program is the prompt plus the answer cut at
    the first of `COMPLETION_STOPS`. Chat answers use the fenced block that defines `entry_point`, else the first
    Python block, else the raw text. Prose, special-token residue, `if __name__ == "__main__":` blocks and
    top-level test code (prints, asserts, calls of the entry point) are removed. An answer that defines
    `entry_point` is used as a full function after the prompt's imports and helper functions; any other answer
    is treated as the function body and appended to the prompt.

    Args:
        completion: The generated text, new tokens only.
        entry_point: Name of the function under test.
        prompt: The problem's code prompt (imports, helpers and the signature with its docstring).
        chat: Whether the answer came from a chat prompt.

    Returns:
        Python source to run. It may not compile: a broken answer must fail its tests, not be repaired here.
    """
    text = _strip_special_tokens(completion)
    if not chat:
        return prompt + _cut_at_stops(text)

    code = _choose_code(text, entry_point)
    if re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(entry_point)}\s*\(", code, re.MULTILINE):
        return _prompt_header(prompt, entry_point) + _drop_test_code(code, entry_point)
    return prompt + _cut_at_stops(_indent_body(code))


def _strip_special_tokens(text: str) -> str:
    """Cut at the first end-of-turn marker, because whatever follows it is not part of the answer."""
    text = text.replace("<|im_start|>assistant\n", "")
    for token in SPECIAL_TOKENS:
        text = text.split(token, 1)[0]
    return text


def _cut_at_stops(text: str) -> str:
    cut = min((index for stop in COMPLETION_STOPS if (index := text.find(stop)) != -1), default=len(text))
    return text[:cut].rstrip() + "\n"


def _choose_code(text: str, entry_point: str) -> str:
    blocks = [(label.lower(), body) for label, body in _FENCE.findall(text)]
    defining = [body for _, body in blocks if re.search(rf"\bdef\s+{re.escape(entry_point)}\s*\(", body)]
    if defining:
        return defining[0]
    python_blocks = [body for label, body in blocks if label in _PYTHON_LABELS]
    if python_blocks:
        return python_blocks[0]
    return _strip_prose(text, entry_point)


def _strip_prose(text: str, entry_point: str) -> str:
    """Keep the code of an unfenced answer: from its first import or definition to the last line that parses."""
    if not re.search(rf"\bdef\s+{re.escape(entry_point)}\s*\(", text):
        return text
    start = _CODE_START.search(text)
    lines = text[start.start() if start else 0 :].splitlines()
    for end in range(len(lines), 0, -1):
        candidate = "\n".join(lines[:end])
        try:
            ast.parse(candidate)
        except SyntaxError:
            continue
        return candidate + "\n"
    return "\n".join(lines) + "\n"


def _prompt_header(prompt: str, entry_point: str) -> str:
    """Return the prompt's imports and helper functions: everything before the entry point's signature."""
    match = re.search(rf"^def\s+{re.escape(entry_point)}\s*\(", prompt, re.MULTILINE)
    header = prompt[: match.start()] if match else ""
    return header.rstrip() + "\n\n\n" if header.strip() else ""


def _drop_test_code(code: str, entry_point: str) -> str:
    """Keep imports, definitions and constant assignments; drop top-level calls, asserts, loops and main blocks."""
    try:
        module = ast.parse(code)
    except SyntaxError:
        logger.debug("Extracted code does not parse; cutting %s at the completion stops only.", entry_point)
        return code.split("\nif __name__", 1)[0].rstrip() + "\n"

    lines = code.splitlines()
    kept = []
    for node in module.body:
        if _is_definition(node, entry_point):
            first_line = min([node.lineno, *(decorator.lineno for decorator in getattr(node, "decorator_list", []))])
            kept.append("\n".join(lines[first_line - 1 : node.end_lineno]))
    return "\n\n\n".join(kept) + "\n"


def _is_definition(node: ast.stmt, entry_point: str) -> bool:
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return True
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        # `result = f(3)` is an example call, while `MOD = 10**9 + 7` is a constant the function may use.
        return not any(isinstance(child, ast.Call) for child in ast.walk(node))
    if isinstance(node, ast.Try):
        return all(_is_definition(child, entry_point) for child in node.body)
    return False


def _indent_body(code: str) -> str:
    """Indent an unindented body by four spaces so it continues the prompt's function."""
    lines = code.strip("\n").splitlines()
    first = next((line for line in lines if line.strip()), "")
    if first.startswith((" ", "\t")):
        return "\n".join(lines) + "\n"
    return "\n".join(f"    {line}" if line.strip() else line for line in lines) + "\n"
