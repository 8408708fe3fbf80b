"""The ``assistant`` command line: index, ask, draft (and the commands other modules add).

Environment variables and flags are read here only, then passed down as arguments.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

from assistant.errors import AssistantError

BUNDLED_CORPUS = Path(__file__).resolve().parents[2] / "corpus"


def default_corpus() -> list[str]:
    env = os.environ.get("ASSISTANT_CORPUS")
    if env:
        return [p for p in env.split(os.pathsep) if p]
    if Path("corpus").is_dir():
        return ["corpus"]
    return [str(BUNDLED_CORPUS)]


def default_index_dir(corpus: list[str], model: str | None) -> Path:
    """One index folder per (corpus set, model), so switching corpora does not thrash one index."""
    env = os.environ.get("ASSISTANT_INDEX_DIR")
    if env:
        return Path(env)
    key = "|".join(sorted(str(Path(c).resolve()) for c in corpus)) + f"|{model or ''}"
    name = Path(corpus[0]).stem or "corpus"
    return Path(".index") / f"{name}-{hashlib.sha1(key.encode()).hexdigest()[:8]}"


def add_corpus_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--corpus", action="append", metavar="PATH",
        help="FAQ file or folder (.txt .md .html .jsonl .csv); repeatable. Default: ./corpus (env ASSISTANT_CORPUS)",
    )
    p.add_argument("--index-dir", metavar="DIR", help="index folder (env ASSISTANT_INDEX_DIR; default .index/<corpus>-<hash>)")
    p.add_argument(
        "--model", metavar="FOLDER",
        help="local sentence-transformers model folder (env ASSISTANT_MODEL; default: packaged all-MiniLM-L6-v2)",
    )
    p.add_argument(
        "--encoder", choices=("onnx", "onnx-int8", "torch"),
        help="query/index encoder (env ASSISTANT_ENCODER): onnx (default; the model exported to ONNX, no torch "
        "when answering), onnx-int8 (faster, slightly different vectors: its own index), torch (sentence-transformers)",
    )
    p.add_argument(
        "--verifier", choices=("mpnet", "mpnet-int8", "none"),
        help="model that re-reads the candidates to decide answer or refuse (env ASSISTANT_VERIFIER): mpnet "
        "(default; all-mpnet-base-v2, about 30 ms a question), mpnet-int8 (the same model quantised to int8: "
        "faster, its own index) or none (the retriever's cosines alone, fastest)",
    )
    p.add_argument("--rebuild", action="store_true", help="rebuild the index even if it is up to date")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress or log lines on stderr")


def resolve_corpus_args(args: argparse.Namespace) -> tuple[list[str], Path, str | None]:
    corpus = args.corpus or default_corpus()
    model = args.model or os.environ.get("ASSISTANT_MODEL") or None
    if args.index_dir:
        index_dir = Path(args.index_dir)
    else:
        index_dir = default_index_dir(corpus, model)
        if encoder_backend(args) == "onnx-int8":  # int8 vectors differ: never mix them into an fp32 index
            index_dir = index_dir.with_name(index_dir.name + "-int8")
    return corpus, index_dir, model


def encoder_backend(args: argparse.Namespace) -> str:
    from assistant.models.embeddings import BACKENDS
    from assistant.errors import ConfigError

    backend = getattr(args, "encoder", None) or os.environ.get("ASSISTANT_ENCODER") or "onnx"
    if backend not in BACKENDS:
        raise ConfigError(f"ASSISTANT_ENCODER must be one of {', '.join(BACKENDS)}, got {backend!r}")
    return backend


def verifier_choice(args: argparse.Namespace) -> tuple[str, str | None]:
    """The verifier to open and, when the default one is not installed, why it is off."""
    from assistant.errors import ConfigError
    from assistant.models.verifier import resolve_verifier

    flag = getattr(args, "verifier", None)
    value = flag or os.environ.get("ASSISTANT_VERIFIER") or None
    try:
        return resolve_verifier(value)
    except ConfigError as exc:
        raise ConfigError(f"ASSISTANT_VERIFIER: {exc}") from None


def _log(quiet: bool):
    return None if quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))


def _progress_factory(quiet: bool):
    if quiet:
        return None

    def factory(total: int):
        from tqdm import tqdm

        bar = tqdm(total=total, desc="embedding", unit="vec", file=sys.stderr, leave=False)

        def update(n: int) -> None:
            bar.update(n)
            if bar.n >= bar.total:
                bar.close()

        return update

    return factory


def open_assistant(args: argparse.Namespace):
    """Open the assistant for the corpus/index/model the command line names."""
    from assistant.core.pipeline import Assistant

    corpus, index_dir, model = resolve_corpus_args(args)
    verifier, verifier_missing = verifier_choice(args)
    if verifier_missing:  # said even with --quiet: answers are less careful than the user expects
        print(f"warning: verifier off ({verifier_missing}); answering as with --verifier none", file=sys.stderr, flush=True)
    assistant, stats = Assistant.open(
        corpus, index_dir, model=model, rebuild=getattr(args, "rebuild", False),
        progress_factory=_progress_factory(args.quiet), log=_log(args.quiet), backend=encoder_backend(args),
        verifier=verifier,
    )
    assistant.verifier_missing = verifier_missing
    gold = getattr(args, "gold", None)
    if args.command == "eval" and gold and Path(gold).is_file() and assistant.refusal.source != "default":
        from assistant.cli.calibrate import gold_digest
        from assistant.core.refusal import RefusalModel

        # Never score a gold set with a refusal model fitted on that same set.
        if gold_digest(gold) in assistant.refusal.source:
            if not args.quiet:
                print(f"note: the stored calibration was fitted on {gold}; scoring it with the default refusal model",
                      file=sys.stderr)
            assistant.refusal = (
                RefusalModel.default(assistant.answer_config.threshold) if assistant.verifier is None
                else RefusalModel.default_for(assistant.verifier_name)
            )  # fmt: skip
    return assistant, stats, index_dir


# --- commands ------------------------------------------------------------------------------


def cmd_index(args: argparse.Namespace) -> int:
    assistant, stats, index_dir = open_assistant(args)
    m = assistant.index.manifest
    files = len({p.source for p in assistant.index.passages})
    verb = "built" if stats.rebuilt else "up to date"
    print(
        f"index {verb}: {stats.passages} passages ({stats.units} vectors, {stats.embedded} embedded) "
        f"from {files} file(s) in {stats.seconds:.1f}s -> {index_dir} [model {m['model']}, {m['dimension']}-d"
        + (f"; verifier {assistant.verifier_name}" if assistant.verifier is not None else "") + "]"
        + (f" ({stats.reason})" if stats.rebuilt else "")
    )
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


def format_answer(answer) -> str:
    lines = [answer.answer, "", f"confidence: {answer.confidence:.2f}" + ("" if answer.answered else " (not answered)")]
    if answer.citations:
        lines += ["", "Sources:"]
        for i, c in enumerate(answer.citations, 1):
            lines.append(f"  [{i}] {c.title} ({c.id})")
            text = " ".join(c.text.split())
            lines.append(f"      \"{text[:300]}{'...' if len(text) > 300 else ''}\"")
    return "\n".join(lines)


def cmd_ask(args: argparse.Namespace) -> int:
    from assistant.errors import QuestionError

    from assistant.core.pipeline import clean_question

    questions = _read_questions(args)
    if len(questions) == 1:
        clean_question(questions[0])  # fail fast, before loading the model
    assistant, _, _ = open_assistant(args)
    status = 0
    for n, q in enumerate(questions):
        try:
            answer = assistant.ask(q)
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
            print(format_answer(answer))
    return status


def cmd_draft(args: argparse.Namespace) -> int:
    from assistant.core.pipeline import clean_question

    questions = _read_questions(args)
    if len(questions) == 1:
        clean_question(questions[0])
    assistant, _, _ = open_assistant(args)
    for n, q in enumerate(questions):
        draft = assistant.draft(q, customer_name=args.customer, agent_name=args.agent)
        if args.json:
            print(json.dumps(draft.to_dict(), ensure_ascii=False), flush=True)
        else:
            if n:
                print("\n" + "-" * 60)
            print(draft.text)
    return 0


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
    p.add_argument("question", nargs="*", help="the question, or - to read one question per line from stdin")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("draft", help="draft a reply for a support agent")
    add_corpus_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object per message")
    p.add_argument("--customer", metavar="NAME", help="customer's name for the greeting")
    p.add_argument("--agent", metavar="NAME", help="agent's name for the sign-off")
    p.add_argument("question", nargs="*", help="the customer's message, or - for one per line from stdin")
    p.set_defaults(func=cmd_draft)

    for register in _extra_commands():
        register(sub, add_corpus_args)
    return parser


def _extra_commands():
    """Commands defined in their own modules of this package (eval, serve, calibrate, bench)."""
    from assistant.cli import bench, calibrate, evaluate, serve

    return [evaluate.register, serve.register, calibrate.register, bench.register]


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
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
