"""The web app in headless Chromium (Playwright, Debian's chromium): chat, agent drafter,
ratings landing in SQLite, insights, and HTML/script payloads that must never run.

Screenshots of each tab go to test-artifacts/browser/; with UPDATE_SCREENSHOTS=1 the chat and
agent ones are also copied to docs/screenshots/ for the README.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from assistant.server.api import create_app
from assistant.server.feedback import FeedbackStore

from .conftest import ROOT, SEED_CORPUS
from .live_server import live_server

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ARTIFACTS = ROOT / "test-artifacts" / "browser"
DOC_SHOTS = ROOT / "docs" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox", "--headless", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]
WAIT_MS = 60_000
STAFF = ("owner", "correct horse battery staple")
# A policy file whose heading and text carry payloads: each one, if it ran, would set window.__xss.
XSS_POLICY = """Gift wrapping <img src=x onerror="window.__xss='corpus-title'">

Gift wrapping is free for every order <img src=x onerror="window.__xss='corpus-img'"> and \
<script>window.__xss='corpus-script'</script> comes with a handwritten card \
[see the card](javascript:window.__xss='corpus-link').
"""
XSS_QUESTIONS = (
    "Is gift wrapping free? <img src=x onerror=\"window.__xss='question-img'\">",
    "<script>window.__xss='question-script'</script> who won the football world cup?",
    "[click me](javascript:window.__xss='question-link') <svg onload=\"window.__xss='question-svg'\"></svg> help",
)


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail("the browser tests need Debian's chromium (`make chromium`, or set CHROMIUM_PATH)")
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with FeedbackStore.open(tmp_path_factory.mktemp("browser-data")) as s:
        yield s


@pytest.fixture(scope="module")
def assistant(onnx_encoder, tmp_path_factory):
    """The real pipeline on the bundled FAQ plus the payload-laden policy file."""
    from assistant.core.pipeline import Assistant

    corpus = tmp_path_factory.mktemp("browser-corpus")
    shutil.copy(SEED_CORPUS, corpus / SEED_CORPUS.name)
    (corpus / "gift-wrapping.txt").write_text(XSS_POLICY, encoding="utf-8")
    return Assistant.open([corpus], tmp_path_factory.mktemp("browser-index"), encoder=onnx_encoder)[0]


@pytest.fixture(scope="module")
def url(assistant, store):
    """One open (loopback) server for the module's tests."""
    with live_server(create_app(assistant, store)) as base:
        yield base


@pytest.fixture(scope="module")
def locked_url(assistant, tmp_path_factory):
    """The same assistant served as when exposed: staff views behind a login."""
    with (
        FeedbackStore.open(tmp_path_factory.mktemp("locked-data")) as s,
        live_server(create_app(assistant, s, auth=STAFF)) as base,
    ):
        yield base


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, url):
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    context = browser.new_context(viewport={"width": 1200, "height": 1000})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url.rstrip("/"))
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(url)
    page.get_by_role("tab", name="Chat").wait_for()
    yield page
    assert dialogs == []  # an alert() from a payload would land here
    context.close()


def shot(page, name: str, *, for_readme: bool = False, full_page: bool = True) -> None:
    """Save a screenshot; full_page=False where a full-page capture would re-lay out the page
    (the chat then folds its opened sources back)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.wait_for_timeout(500)  # let opening/closing transitions settle
    page.screenshot(path=str(path), full_page=full_page, animations="disabled")
    if for_readme and os.environ.get("UPDATE_SCREENSHOTS") == "1":
        DOC_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, DOC_SHOTS / f"{name}.png")


def starts_with(prefix: str) -> re.Pattern:
    return re.compile("^" + re.escape(prefix))


def wait_until(page, predicate, what: str) -> None:
    """Poll a server-side condition (the browser's event may still be in flight)."""
    for _ in range(100):
        if predicate():
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"timed out waiting for {what}")


def ask(page, question: str) -> None:
    """Type and send ``question``, then wait until the assistant's reply is in the chat."""
    from playwright.sync_api import expect

    replies = page.locator('#chat [data-testid="bot"]')
    before = replies.count()
    page.locator("#question textarea").fill(question)
    page.locator("#send").click()
    expect(replies.nth(before)).to_be_attached()


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


# --- customer chat -------------------------------------------------------------------------


def test_chat_answers_with_its_source(page):
    from playwright.sync_api import expect

    chat = page.locator("#chat")
    page.get_by_text("Can I cancel my order?", exact=True).click()  # an example question
    expect(page.locator("#question textarea")).to_have_value("Can I cancel my order?")
    page.locator("#send").click()
    expect(chat.get_by_text("We accept order cancellations before the product is shipped").first).to_be_visible()
    expect(chat.get_by_text("Confidence:")).to_be_visible()
    source = chat.get_by_text("Source [1]: Order & Payment")
    expect(source).to_be_visible()
    source.click()  # sources are collapsed until opened
    expect(chat.locator("blockquote").get_by_text("If your order is cancelled, you will receive a full refund")).to_be_visible()
    shot(page, "chat", for_readme=True, full_page=False)
    ask(page, "How long does shipping take?")
    expect(chat.get_by_text("5 to 14 working days").first).to_be_visible()
    expect(chat.get_by_text("Source [1]: Shipping")).to_be_visible()


def test_chat_answers_a_follow_up_and_offers_topics_for_a_vague_message(page, store):
    from playwright.sync_api import expect

    chat = page.locator("#chat")
    ask(page, "How long does delivery to the UK take?")
    expect(chat.get_by_text("5 to 14 working days").first).to_be_visible()
    ask(page, "what about Asia?")  # read with the message before it
    expect(chat.get_by_text("Answering: How long does delivery to Asia take?")).to_be_visible()
    expect(chat.get_by_text("3 to 10 working days").last).to_be_visible()
    ask(page, "my order")  # a bare topic spanning two sections: a button for each
    topic = chat.get_by_role("button", name="Shipping", exact=True)
    expect(topic).to_be_visible()
    topic.click()  # sends the question the button stands for, answered rather than clarified again
    chosen = "What does the Shipping section say about my order?"
    expect(chat.get_by_text(chosen)).to_be_visible()
    wait_until(page, lambda: store.recent(1)[0].question == chosen, "the chosen topic's answer")
    assert store.recent(1)[0].refusal_reason != "clarify"


def test_refusal_shows_the_support_contact(page):
    from playwright.sync_api import expect

    ask(page, "What's the weather in London tomorrow?")
    chat = page.locator("#chat")
    expect(chat.get_by_text("I couldn't find this in the store's policies")).to_be_visible()
    expect(chat.get_by_text("Please contact the store's support team at support@coco-jewelry.com")).to_be_visible()
    expect(chat.get_by_text("Source [1]")).to_have_count(0)


def test_empty_and_very_long_questions_get_a_friendly_message(page):
    from playwright.sync_api import expect

    page.locator("#send").click()
    expect(page.get_by_text("Please type a question first.")).to_be_visible()
    ask(page, "why " * 1500)
    chat = page.locator("#chat")
    expect(chat.get_by_text("Sorry, I can't work with that question")).to_be_visible()
    expect(chat.get_by_text("too long", exact=False)).to_be_visible()
    expect(chat.get_by_text("(6,000 characters)", exact=False)).to_be_visible()
    expect(page.get_by_text("Traceback")).to_have_count(0)


def test_clear_chat_empties_the_conversation(page):
    from playwright.sync_api import expect

    ask(page, "Do you take PayPal?")
    chat = page.locator("#chat")
    expect(chat.get_by_text("PayPal").nth(1)).to_be_visible()
    page.locator("#clear").click()
    expect(chat.get_by_text("Ask a question, or pick one of the examples below.")).to_be_visible()
    expect(chat.get_by_text("PayPal")).to_have_count(0)


def test_rating_lands_in_sqlite(page, store):
    from playwright.sync_api import expect

    ask(page, "What payment methods do you accept?")
    chat = page.locator("#chat")
    expect(chat.get_by_text("Source [1]").first).to_be_visible()
    interaction = store.recent(1)[0]
    assert interaction.question == "What payment methods do you accept?" and interaction.helpful is None
    chat.get_by_role("button", name="Dislike", exact=True).last.click()
    expect(page.get_by_text("Thanks for your feedback!")).to_be_visible()
    wait_until(page, lambda: store.get(interaction.id).helpful is False, "the dislike in SQLite")
    chat.get_by_role("button", name="Like", exact=True).last.click()  # a change of mind replaces it
    wait_until(page, lambda: store.get(interaction.id).helpful is True, "the like in SQLite")
    assert store.totals().ratings == 1


# --- agent drafter -------------------------------------------------------------------------


def test_agent_drafts_an_editable_reply_with_sources(page):
    from playwright.sync_api import expect

    open_tab(page, "Agent")
    page.locator("#customer-message textarea").fill("Hi, my necklace arrived broken. What can I do?")
    page.locator("#customer-name textarea").fill("Dana")
    page.locator("#agent-name textarea").fill("Sam")
    page.locator("#draft-button").click()
    expect(page.locator("#draft-status").get_by_text("Covered by the policies")).to_be_visible()
    draft = page.locator("#draft textarea")
    expect(draft).to_have_value(starts_with("Hi Dana,"))
    text = draft.input_value()
    assert "support@coco-jewelry.com" in text and text.rstrip().count("Sam") >= 1
    expect(page.locator("#draft-sources").get_by_text("[1] Returns")).to_be_visible()
    expect(page.locator("#draft-sources").get_by_text("quality guarantee of up to 7 days").first).to_be_visible()
    shot(page, "agent", for_readme=True)

    page.locator("#draft").get_by_role("button", name="Copy").first.click()
    page.wait_for_timeout(300)
    assert page.evaluate("navigator.clipboard.readText()") == text
    draft.fill(text + "\nP.S. edited by the agent")  # the draft is editable
    expect(draft).to_have_value(starts_with("Hi Dana,"))
    assert draft.input_value().endswith("P.S. edited by the agent")


def test_agent_draft_escalates_what_the_policies_do_not_cover(page):
    from playwright.sync_api import expect

    open_tab(page, "Agent")
    page.locator("#customer-message textarea").fill("Can I pay with bitcoin and get a student discount?")
    page.locator("#draft-button").click()
    expect(page.locator("#draft-status").get_by_text("Not covered by the policies: escalate")).to_be_visible()
    assert "escalate" in page.locator("#draft textarea").input_value()


# --- insights ------------------------------------------------------------------------------


def test_insights_show_gaps_and_export_csv(page, store):
    from playwright.sync_api import expect

    ask(page, "Who won the football world cup?")
    expect(page.locator("#chat").get_by_text("I couldn't find this")).to_be_visible()
    open_tab(page, "Insights")
    expect(page.locator("#insights-summary").get_by_text("questions logged")).to_be_visible()
    expect(page.locator("#insights-refused").get_by_text("Who won the football world cup?").first).to_be_visible()
    with page.expect_download() as download:
        page.locator("#insights-export").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8"))))
    assert len(rows) == store.totals().interactions
    assert "Who won the football world cup?" in [r["question"] for r in rows]
    shot(page, "insights")


def test_staff_link_a_refused_question_and_the_chat_then_answers_it(browser, onnx_encoder, tmp_path):
    """Issue 16: a refused question, linked by staff in the Insights tab, is then answered from that passage."""
    from playwright.sync_api import expect

    from assistant.core.pipeline import Assistant

    from .conftest import TINY_FAQ

    question = "Can you hide the price when I send it to a friend?"
    corpus = tmp_path / "faq"
    corpus.mkdir()
    (corpus / "tiny.txt").write_text(
        TINY_FAQ + "\nPackaging\n\nEvery order leaves in a plain recycled carton with no invoice inside.\n", encoding="utf-8"
    )
    assistant = Assistant.open([corpus], tmp_path / "idx", encoder=onnx_encoder, learned=corpus / "learned.jsonl")[0]
    with (
        FeedbackStore.open(tmp_path / "data") as s,
        live_server(create_app(assistant, s, corpus=[corpus], index_dir=tmp_path / "idx")) as base,
    ):
        expect.set_options(timeout=WAIT_MS)
        context = browser.new_context(viewport={"width": 1200, "height": 1400})
        page = context.new_page()
        page.goto(base)
        chat = page.locator("#chat")
        ask(page, question)
        expect(chat.get_by_text("I couldn't find this in the store's policies")).to_be_visible()
        open_tab(page, "Insights")
        expect(page.locator("#insights-groups").get_by_role("gridcell", name=question)).to_be_visible()
        page.locator("#link-question input").click()
        page.get_by_role("option", name=question).click()
        page.locator("#link-passage input").click()
        page.get_by_role("option", name=re.compile(r"\(tiny:packaging-1\)$")).click()
        page.locator("#link-button").click()
        expect(page.locator("#link-status").get_by_text("the assistant now answers it from that passage")).to_be_visible()
        shot(page, "insights-link")
        open_tab(page, "Chat")
        ask(page, question)
        expect(chat.get_by_text("Every order leaves in a plain recycled carton with no invoice inside.").first).to_be_visible()
        context.close()
    assert [json.loads(x)["passage_id"] for x in (corpus / "learned.jsonl").read_text().splitlines()] == ["tiny:packaging-1"]


# --- login when exposed -------------------------------------------------------------------


def test_exposed_server_keeps_staff_views_behind_the_login(browser, locked_url):
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.goto(locked_url)
    expect(page.get_by_role("tab", name="Chat")).to_be_visible()
    assert page.get_by_role("tab").all_inner_texts() == ["Chat"]  # no drafter or insights in public

    page.goto(locked_url + "staff/")
    expect(page.get_by_text("Staff login for the reply drafter and insights.")).to_be_visible()
    page.get_by_label("username").fill(STAFF[0])
    page.get_by_label("password").fill("wrong")
    page.get_by_role("button", name="Login").click()
    expect(page.get_by_text("Incorrect Credentials")).to_be_visible()
    page.get_by_label("username").fill(STAFF[0])
    page.get_by_label("password").fill(STAFF[1])
    page.get_by_role("button", name="Login").click()
    expect(page.get_by_role("tab", name="Agent")).to_be_visible()
    assert page.get_by_role("tab").all_inner_texts() == ["Agent", "Insights"]
    page.locator("#customer-message textarea").fill("Can I cancel my order?")
    page.locator("#draft-button").click()
    expect(page.locator("#draft-status").get_by_text("Covered by the policies")).to_be_visible()
    shot(page, "staff-agent")
    context.close()


# --- payloads ------------------------------------------------------------------------------


def test_html_and_script_payloads_never_run(page):
    from playwright.sync_api import expect

    chat = page.locator("#chat")
    for q in XSS_QUESTIONS:
        ask(page, q)
    # the gift-wrapping answer quotes the payload-laden passage: it must show as text
    expect(chat.get_by_text("comes with a handwritten card").first).to_be_visible()
    source = chat.get_by_text("Source [1]: Gift wrapping <img src=x onerror=")
    expect(source).to_be_visible()
    source.click()
    expect(chat.locator("blockquote").get_by_text("<script>window.__xss='corpus-script'</script>", exact=False)).to_be_visible()
    expect(chat.get_by_text("<script>window.__xss='question-script'</script> who won", exact=False)).to_be_visible()
    shot(page, "chat-payloads", full_page=False)

    open_tab(page, "Agent")
    page.locator("#customer-message textarea").fill(XSS_QUESTIONS[0])
    page.locator("#draft-button").click()
    expect(page.locator("#draft-sources").get_by_text("<script>window.__xss='corpus-script'</script>", exact=False)).to_be_visible()

    open_tab(page, "Insights")
    expect(page.locator("#insights-refused").get_by_text("<script>window.__xss='question-script'</script> who won", exact=False)).to_be_visible()
    shot(page, "insights-payloads")

    page.wait_for_timeout(500)  # give any injected handler the chance to fire
    assert page.evaluate("window.__xss") is None
    for selector in ('img[src="x"]', "svg[onload]", 'a[href^="javascript"]', "#chat script", "[onerror]"):
        assert page.locator(selector).count() == 0, selector
