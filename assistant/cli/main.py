"""The ``assistant`` command line: index, ask, draft (and the commands other modules add).

Environment variables and flags are read here only, then passed down as arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from typing import Iterator

from threadpoolctl import threadpool_limits

from assistant.cli import bench, calibrate, common, evaluate, learn, lint, serve
from assistant.core.stages import clean_question
from assistant.errors import AssistantError, QuestionError
from assistant.models import onnx as onnx_models
from assistant.settings import add_corpus_args, apply_query_threads, offline_env

# --- commands ------------------------------------------------------------------------------


def cmd_index(args: argparse.Namespace) -> int:
    assistant, stats, index_dir = common.open_assistant(args)
    m = assistant.index.manifest
    files = len({p.source for p in assistant.index.passages})
    verb = "built" if stats.rebuilt else "up to date"
    print(
        f"index {verb}: {stats.passages} passages ({stats.units} vectors, {stats.embedded} embedded) "
        f"from {files} file(s) in {stats.seconds:.1f}s -> {index_dir} [model {m['model']}, {m['dimension']}-d"
        + (f"; verifier {assistant.verifier_name}" if assistant.verifier is not None else "") + "]"
        + (f" ({stats.reason})" if stats.rebuilt else "")
    )
    for line in lint.index_report(assistant.index):  # entries that contradict each other
        print(line)
    if assistant.links:
        stale = assistant.stale_links()
        print(f"learned: {len(assistant.links) - len(stale)} confirmed question(s) in use from {assistant.learned_path}"
              + (f", {len(stale)} stale" if stale else ""))
        for s in stale:  # the passage was edited or removed since the link was made
            print(s.describe())
    if assistant.refusal.source.startswith("calibrated"):
        print(f"refusal: {assistant.refusal.source} (calibration.json)")
    elif assistant.self_calibration is not None:
        print(assistant.self_calibration.describe())
    elif assistant.refusal.source != "default":
        print(f"refusal: {assistant.refusal.source}")
    return 0


def _read_questions(args: argparse.Namespace) -> list[str]:
    if args.question == ["-"]:
        questions = [line.rstrip("\n") for line in sys.stdin if line.strip()]
        if not questions:
            raise AssistantError("no question given: standard input was empty")
        return questions
    if not args.question:
        raise AssistantError("no question given (pass it as an argument, or - to read one per line from stdin)")
    return [" ".join(args.question)]


def _conversation(line: str, history: list[str], batch: bool) -> tuple[str, list[str]]:
    """A question and its history: ``--history`` flags, or in batch mode a line that is a JSON
    object ``{"question": ..., "history": [...]}`` (any other line is a plain question)."""
    if not (batch and line.lstrip().startswith("{")):
        return line, history
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise QuestionError(f"the line is not a valid JSON object ({exc.msg} at column {exc.colno})") from None
    if not isinstance(row, dict) or not isinstance(row.get("question"), str):
        raise QuestionError('a JSON line needs a "question" string: {"question": "...", "history": ["..."]}')
    turns = row.get("history", [])
    if not isinstance(turns, list) or not all(isinstance(t, str) for t in turns):
        raise QuestionError('"history" must be a list of strings (the earlier messages, oldest first)')
    return row["question"], turns


def format_answer(answer) -> str:
    lines = [answer.answer, "", f"confidence: {answer.confidence:.2f}" + ("" if answer.answered else " (not answered)")]
    if answer.citations:
        lines += ["", "Sources:"]
        for i, c in enumerate(answer.citations, 1):
            lines.append(f"  [{i}] {c.title} ({c.id})")
            text = " ".join(c.text.split())
            lines.append(f"      \"{text[:300]}{'...' if len(text) > 300 else ''}\"")
    return "\n".join(lines)


@contextlib.contextmanager
def _one_question(questions: list[str], args: argparse.Namespace) -> Iterator[None]:
    """A single question fails fast when it is bad, before any model loads; and as the process
    answers only it, the question-time sessions made meanwhile skip packing their weights
    (onnx.PACK_QUESTION_WEIGHTS: ~0.4 s sooner to the answer). Batches keep packed sessions."""
    if len(questions) == 1:
        clean_question(questions[0])
    before = onnx_models.PACK_QUESTION_WEIGHTS
    onnx_models.PACK_QUESTION_WEIGHTS = before and not (len(questions) == 1 and args.question != ["-"])
    try:
        yield
    finally:
        onnx_models.PACK_QUESTION_WEIGHTS = before


def cmd_ask(args: argparse.Namespace) -> int:
    questions = _read_questions(args)
    with _one_question(questions, args):
        return _ask(args, questions)


def _ask(args: argparse.Namespace, questions: list[str]) -> int:
    assistant, _, _ = common.open_assistant(args)
    status = 0
    for n, line in enumerate(questions):
        q = line
        try:
            q, history = _conversation(line, args.history, len(questions) > 1 or args.question == ["-"])
            answer = assistant.ask(q, history=history)
        except QuestionError as exc:
            if len(questions) == 1:
                raise
            # In batch mode one bad line must not lose the others: report it in its slot.
            print(json.dumps({"question": q, "error": str(exc)}, ensure_ascii=False) if args.json else f"error: {exc}")
            status = 2
            continue
        if args.json:
            print(json.dumps(answer.to_dict(), ensure_ascii=False), flush=True)
        else:
            if n:
                print("\n" + "-" * 60)
            if len(questions) > 1:
                print(f"Q: {q}")
            if answer.resolved_question and answer.resolved_question != answer.question:
                print(f"(answering: {answer.resolved_question})")
            print(format_answer(answer))
    return status


def cmd_draft(args: argparse.Namespace) -> int:
    questions = _read_questions(args)
    with _one_question(questions, args):
        return _draft(args, questions)


def _draft(args: argparse.Namespace, questions: list[str]) -> int:
    assistant, _, _ = common.open_assistant(args)
    status = 0
    for n, q in enumerate(questions):
        try:
            draft = assistant.draft(q, customer_name=args.customer, agent_name=args.agent, history=args.history)
        except QuestionError as exc:
            if len(questions) == 1:
                raise
            # As `ask -`: one bad line is reported in its slot and the batch goes on (exit 2 at the end).
            if args.json:
                print(json.dumps({"question": q, "error": str(exc)}, ensure_ascii=False), flush=True)
            else:
                if n:
                    print("\n" + "-" * 60)
                print(f"error: {exc}")
            status = 2
            continue
        if args.json:
            print(json.dumps(draft.to_dict(), ensure_ascii=False), flush=True)
        else:
            if n:
                print("\n" + "-" * 60)
            print(draft.text)
    return status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="assistant",
        description="Answer customer questions from a store's own FAQ, offline, with citations.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("index", help="build or refresh the index")
    add_corpus_args(p)
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("ask", help="answer a question with cited sources")
    add_corpus_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object per question")
    p.add_argument(
        "--history", action="append", default=[], metavar="TEXT",
        help="an earlier customer message (repeatable, oldest first): the question is read as a follow-up; "
        'with - a line may be a JSON object {"question": ..., "history": [...]}',
    )
    p.add_argument("question", nargs="*", help="the question, or - to read one question per line from stdin")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("draft", help="draft a reply for a support agent")
    add_corpus_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object per message")
    p.add_argument("--customer", metavar="NAME", help="customer's name for the greeting")
    p.add_argument("--agent", metavar="NAME", help="agent's name for the sign-off")
    p.add_argument("--history", action="append", default=[], metavar="TEXT", help="an earlier customer message (repeatable, oldest first)")
    p.add_argument("question", nargs="*", help="the customer's message, or - for one per line from stdin")
    p.set_defaults(func=cmd_draft)

    for register in _extra_commands():
        register(sub, add_corpus_args)
    return parser


def _extra_commands():
    """Commands defined in their own modules of this package (eval, serve, calibrate, lint, bench)."""
    return [evaluate.register, serve.register, calibrate.register, lint.register, bench.register, learn.register]


def main(argv: list[str] | None = None) -> int:
    for key, value in offline_env().items():
        os.environ.setdefault(key, value)
    parser = build_parser()
    args = parser.parse_args(argv)
    # numpy's BLAS on one thread: answering multiplies small matrices (a question against a few
    # thousand vectors, 0.15 ms on one core), and a BLAS pool waking beside onnxruntime's threads
    # cost a median 27 ms a question on a busy machine (scripts/profile_ask.py, docs/performance.md).
    threadpool_limits(limits=1, user_api="blas")
    try:
        apply_query_threads()
        return args.func(args)
    except AssistantError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:  # a folder that is a file, a disk that is full: one line, not a traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
