"""``assistant learn add|list|remove``: the confirmed question -> passage links, from the command line.

The links file is read and written here; the passages are read from the corpus (no model runs),
so a link names a passage that exists and records a hash of its text.
"""

from __future__ import annotations

import argparse
import getpass
import json

from assistant.core.corpus import load_corpus, resolve_files
from assistant.learning.links import (
    append_link,
    check_links,
    find_passage,
    load_links,
    new_link,
    remove_links,
)
from assistant.settings import default_corpus, learned_path


def register(sub, add_corpus_args) -> None:
    p = sub.add_parser(
        "learn", help="confirmed questions: link a customer question to the passage that answers it",
        description="Each link makes its question a new way into its passage (an extra key in the index; "
        "the answer still quotes only the passage). Links live in a JSONL file beside the corpus.",
    )  # fmt: skip
    verbs = p.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True
    a = verbs.add_parser("add", help="link QUESTION to PASSAGE_ID (ids as in `assistant ask --json` citations)")
    add_corpus_args(a)
    a.add_argument("question", help="the customer's question, as asked")
    a.add_argument("passage_id", help="the passage that answers it")
    a.add_argument("--by", metavar="NAME", help="who confirmed it (default: the login name)")
    a.set_defaults(func=cmd_add)
    ls = verbs.add_parser("list", help="list the links, numbered by line, with stale ones marked")
    add_corpus_args(ls)
    ls.add_argument("--json", action="store_true", help="one JSON object per link")
    ls.set_defaults(func=cmd_list)
    r = verbs.add_parser("remove", help="remove the links at the given line numbers (from `learn list`)")
    add_corpus_args(r)
    r.add_argument("lines", nargs="+", type=int, metavar="LINE")
    r.set_defaults(func=cmd_remove)


def _passages(args: argparse.Namespace):
    corpus = args.corpus or default_corpus()
    return corpus, load_corpus(resolve_files(corpus))


def cmd_add(args: argparse.Namespace) -> int:
    corpus, passages = _passages(args)
    path, _ = learned_path(args, corpus)
    by = args.by if args.by is not None else getpass.getuser()
    link = append_link(path, new_link(args.question, find_passage(passages, args.passage_id), by=by))
    print(f"{path}:{link.line}: {link.question!r} -> {link.passage_id}")
    print("the index picks it up on its next refresh (`assistant index`, or the next question to a running server)")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    corpus, passages = _passages(args)
    path, named = learned_path(args, corpus)
    links = load_links(path, missing_ok=not named)
    _, stale = check_links(links, passages, source=str(path))
    why = {s.link.line: s.reason for s in stale}
    for k in links:
        if args.json:
            print(json.dumps({**k.to_json(), "line": k.line, "stale": why.get(k.line)}, ensure_ascii=False))
        else:
            mark = f"  [stale: {why[k.line]}]" if k.line in why else ""
            print(f"{k.line:>4}  {k.passage_id}  {k.question!r}  ({k.by or '?'}, {k.at or '?'}){mark}")
    if not args.json:
        print(f"{len(links)} link(s) in {path}" + (f", {len(stale)} stale (not used)" if stale else ""))
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    path, _ = learned_path(args, args.corpus or default_corpus())
    for k in remove_links(path, args.lines):
        print(f"removed {path}:{k.line}: {k.question!r} -> {k.passage_id}")
    return 0
