"""Unit tests for assistant/cli/settings.py: flags, then environment variables, then defaults."""

from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path

import pytest

from assistant.errors import ConfigError
from assistant.settings import (
    BUNDLED_CORPUS,
    add_corpus_args,
    default_corpus,
    default_index_dir,
    encoder_backend,
    resolve_corpus_args,
    verifier_choice,
)

ENV = ("ASSISTANT_CORPUS", "ASSISTANT_INDEX_DIR", "ASSISTANT_MODEL", "ASSISTANT_ENCODER", "ASSISTANT_VERIFIER")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no ./corpus here unless a test makes one


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_corpus_args(parser)
    return parser.parse_args(list(argv))


def test_default_corpus_is_the_bundled_one(tmp_path):
    assert default_corpus() == [str(BUNDLED_CORPUS)]
    assert (BUNDLED_CORPUS / "coco-jewelry-faq.txt").is_file()


def test_default_corpus_prefers_a_corpus_folder_here(tmp_path):
    (tmp_path / "corpus").mkdir()
    assert default_corpus() == ["corpus"]


@pytest.mark.parametrize(
    ("value", "corpus"),
    [
        ("faq.txt", ["faq.txt"]),
        (f"a{os.pathsep}b", ["a", "b"]),
        (f"{os.pathsep}a{os.pathsep}{os.pathsep}b{os.pathsep}", ["a", "b"]),  # empty entries dropped
    ],
)
def test_default_corpus_from_the_environment(monkeypatch, tmp_path, value, corpus):
    (tmp_path / "corpus").mkdir()
    monkeypatch.setenv("ASSISTANT_CORPUS", value)
    assert default_corpus() == corpus


def test_an_empty_corpus_variable_is_unset(monkeypatch):
    monkeypatch.setenv("ASSISTANT_CORPUS", "")
    assert default_corpus() == [str(BUNDLED_CORPUS)]


def test_default_index_dir_is_one_folder_per_corpus_set_and_model(tmp_path):
    key = f"{tmp_path / 'a'}|{tmp_path / 'b.txt'}|"
    expected = Path(".index") / f"b-{hashlib.sha1(key.encode()).hexdigest()[:8]}"
    assert default_index_dir(["b.txt", "a"], None) == expected  # named after the first, keyed on the sorted set
    assert default_index_dir(["a", "b.txt"], None).name.startswith("a-")
    assert default_index_dir(["a", "b.txt"], None).name[2:] == expected.name[2:]
    assert default_index_dir(["b.txt", "a"], "my-model") != expected
    assert default_index_dir(["b.txt"], None) != expected


def test_default_index_dir_from_the_environment(monkeypatch):
    monkeypatch.setenv("ASSISTANT_INDEX_DIR", "/data/idx")
    assert default_index_dir(["a"], "m") == Path("/data/idx")


def test_resolve_corpus_args_flags_win(monkeypatch):
    monkeypatch.setenv("ASSISTANT_CORPUS", "env.txt")
    monkeypatch.setenv("ASSISTANT_MODEL", "env-model")
    monkeypatch.setenv("ASSISTANT_INDEX_DIR", "env-idx")
    args = parse("--corpus", "a.txt", "--corpus", "b", "--index-dir", "idx", "--model", "m")
    assert resolve_corpus_args(args) == (["a.txt", "b"], Path("idx"), "m")


def test_resolve_corpus_args_from_the_environment(monkeypatch):
    monkeypatch.setenv("ASSISTANT_CORPUS", "env.txt")
    monkeypatch.setenv("ASSISTANT_MODEL", "env-model")
    assert resolve_corpus_args(parse()) == (["env.txt"], default_index_dir(["env.txt"], "env-model"), "env-model")


def test_resolve_corpus_args_defaults():
    assert resolve_corpus_args(parse()) == ([str(BUNDLED_CORPUS)], default_index_dir([str(BUNDLED_CORPUS)], None), None)


def test_an_int8_encoder_gets_its_own_default_index(monkeypatch):
    base = default_index_dir(["a"], None)
    assert resolve_corpus_args(parse("--corpus", "a", "--encoder", "onnx-int8"))[1] == base.with_name(base.name + "-int8")
    monkeypatch.setenv("ASSISTANT_ENCODER", "onnx-int8")
    assert resolve_corpus_args(parse("--corpus", "a"))[1].name.endswith("-int8")
    assert resolve_corpus_args(parse("--corpus", "a", "--index-dir", "x"))[1] == Path("x")  # an explicit folder is kept


@pytest.mark.parametrize(
    ("flag", "env", "backend"),
    [(None, None, "onnx"), ("torch", None, "torch"), (None, "onnx-int8", "onnx-int8"), ("onnx", "torch", "onnx"),
     (None, "", "onnx")],
)  # fmt: skip
def test_encoder_backend(monkeypatch, flag, env, backend):
    if env is not None:
        monkeypatch.setenv("ASSISTANT_ENCODER", env)
    args = parse(*(["--encoder", flag] if flag else []))
    assert encoder_backend(args) == backend
    assert encoder_backend(argparse.Namespace()) == (env or "onnx")  # a command without the flag


@pytest.mark.parametrize("value", ["gpu", "ONNX", "tensorflow"])
def test_a_bad_encoder_variable_is_named(monkeypatch, value):
    monkeypatch.setenv("ASSISTANT_ENCODER", value)
    with pytest.raises(ConfigError, match=rf"ASSISTANT_ENCODER must be one of onnx, onnx-int8, torch, got '{value}'"):
        encoder_backend(parse())


@pytest.mark.parametrize(
    ("flag", "env", "choice"),
    [(None, None, "mpnet"), ("none", None, "none"), (None, "none", "none"), (None, " NONE ", "none"),
     ("mpnet", "none", "mpnet"), (None, "", "mpnet")],
)  # fmt: skip
def test_verifier_choice(monkeypatch, flag, env, choice):
    if env is not None:
        monkeypatch.setenv("ASSISTANT_VERIFIER", env)
    assert verifier_choice(parse(*(["--verifier", flag] if flag else []))) == (choice, None)


@pytest.mark.parametrize("value", ["bert", "yes"])
def test_a_bad_verifier_variable_is_named(monkeypatch, value):
    monkeypatch.setenv("ASSISTANT_VERIFIER", value)
    with pytest.raises(ConfigError, match=rf"^ASSISTANT_VERIFIER: verifier must be one of mpnet, mpnet-int8, none, got '{value}'$"):
        verifier_choice(parse())


def test_add_corpus_args_flags():
    args = parse("--corpus", "x", "--rebuild", "-q", "--verifier", "none", "--encoder", "torch")
    assert (args.corpus, args.rebuild, args.quiet, args.verifier, args.encoder) == (["x"], True, True, "none", "torch")
    defaults = parse()
    assert (defaults.corpus, defaults.index_dir, defaults.model, defaults.rebuild, defaults.quiet) == (None, None, None, False, False)


@pytest.mark.parametrize(("flag", "value"), [("--encoder", "gpu"), ("--verifier", "bert")])
def test_bad_flag_values_are_rejected_by_the_parser(flag, value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse(flag, value)
    assert exit_info.value.code == 2
    assert f"argument {flag}: invalid choice: '{value}'" in capsys.readouterr().err
