"""The Gradio UI: customer chat, the agent's reply drafter and the store owner's insights.

Imported only by the server (never at CLI start-up), so it imports gradio at the top.

User and corpus text is always escaped before it reaches a Markdown component, so a question
or passage holding HTML or Markdown is shown as the text it is, never run or rendered.
"""

from __future__ import annotations

import html
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from assistant.dialogue.clarify import option_question
from assistant.errors import AssistantError, FeedbackError, UnavailableError
from assistant.extras import import_gradio
from assistant.schema import Answer

if TYPE_CHECKING:
    from assistant.server.service import AssistantService

gr = import_gradio()  # `import gradio`, less its import-time type-stub rewriting

TABS = ("chat", "agent", "insights")
EXAMPLE_QUESTIONS = (
    "Can I cancel my order?",
    "How long does shipping take?",
    "What payment methods do you accept?",
    "My ring arrived damaged, what should I do?",
    "Can you resize a ring?",
)
SHOWN_QUESTION_CHARS = 500
HISTORY_TURNS = 20  # the customer's latest messages a follow-up is read with (as /api/ask accepts)
EXPORT_KEEP_S = 600  # a CSV export is handed to Gradio (which copies it) right away; older ones are removed
CACHE_CLEANUP = (3600, 86400)  # Gradio deletes the files it cached for this UI hourly, after a day
CSS = """
.assistant-header h1 { margin-bottom: 0; }
.draft-status p { margin: 0; }
"""

# Every ASCII character that means something to Markdown (CommonMark lets any of them be
# backslash-escaped), plus $ for the LaTeX renderer. <, > and & become HTML entities.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~$:])")


def md_escape(text: str) -> str:
    """``text`` made safe to put into Markdown: rendered, it shows exactly ``text``."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def md_code(text: str) -> str:
    """``text`` as a Markdown code span that shows exactly ``text``, whatever backticks it holds.

    CommonMark closes a code span only at a run of backticks as long as the one that opened it,
    so the fence is one longer than the longest run inside; the spaces keep a leading or trailing
    backtick off the fence (one space on each side is stripped when rendered). Nothing inside a
    code span is Markdown or HTML, so no other escaping is needed (or possible: it would show).
    """
    flat = " ".join(text.splitlines())  # a blank line would end the paragraph, and the span with it
    fence = "`" * (max((len(run) for run in re.findall(r"`+", flat)), default=0) + 1)
    return f"{fence} {flat} {fence}"


def md_quote(text: str) -> str:
    """``text`` escaped and shown as a Markdown block quote, line breaks kept."""
    return "\n".join("> " + md_escape(line) if line.strip() else ">" for line in text.split("\n"))


def answer_messages(answer: Answer) -> list[dict]:
    """The chat messages for one answer: the answer itself, then one collapsed message per source."""
    body = md_escape(answer.answer)
    if answer.resolved_question and answer.resolved_question != answer.question:
        # A follow-up read with the conversation: say which question was answered.
        body = f"*Answering: {md_escape(answer.resolved_question)}*\n\n{body}"
    if answer.answered:
        body += f"\n\n*Confidence: {answer.confidence:.0%}*"
    else:
        contact = answer.support_contact
        if contact is not None and contact.kind != "none" and contact.text not in answer.answer:
            body += f"\n\n**Contact our support team:** {md_escape(contact.text)}"
    messages = [{"role": "assistant", "content": body}]
    if answer.clarify:  # a vague message: one button per topic, each sending a question of its own
        messages[0]["options"] = [{"label": t, "value": option_question(answer.question, t)} for t in answer.clarify]
    for i, c in enumerate(answer.citations, 1):
        messages.append(
            {
                "role": "assistant",
                "content": md_quote(c.text),
                # The chatbot renders a message title as Markdown too, so it is escaped like the body.
                "metadata": {"title": f"Source \\[{i}\\]: {md_escape(c.title)}", "status": "done"},
            }
        )
    return messages


def thread_messages(text: str) -> list[str]:
    """A pasted thread of customer messages, split at blank lines (oldest first)."""
    return [m.strip() for m in re.split(r"\n\s*\n", text) if m.strip()]


def sources_markdown(answer: Answer) -> str:
    if not answer.citations:
        return "*No policy passage covers this message.*"
    parts = []
    for i, c in enumerate(answer.citations, 1):
        parts.append(f"**\\[{i}\\] {md_escape(c.title)}** {md_code(c.id)}\n\n{md_quote(c.text)}")
    return "\n\n".join(parts)


def draft_status_markdown(answer: Answer) -> str:
    if answer.answered:
        return f"**Covered by the policies** · confidence {answer.confidence:.0%}"
    contact = answer.support_contact
    where = f" ({md_escape(contact.text)})" if contact is not None and contact.kind != "none" else ""
    return f"**Not covered by the policies: escalate**{where} · confidence {answer.confidence:.0%}"


def _short(text: str) -> str:
    if len(text) <= SHOWN_QUESTION_CHARS:
        return text
    return f"{text[:SHOWN_QUESTION_CHARS]} … ({len(text):,} characters)"


def _clip(text: str, limit: int = 240) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def build_ui(service: AssistantService, *, tabs: tuple[str, ...] = TABS, title: str = "Support assistant") -> gr.Blocks:
    """The Gradio Blocks with the given ``tabs`` (any of chat, agent, insights).

    Also registers the named API endpoints ``ask`` (with the chat tab) and ``draft`` (with the
    agent tab), which return the same objects as ``POST /api/ask`` and ``POST /api/draft``.
    """
    unknown = [t for t in tabs if t not in TABS]
    if unknown or not tabs:
        raise ValueError(f"tabs must be a non-empty subset of {TABS}, got {tabs!r}")

    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=CACHE_CLEANUP) as demo:
        gr.Markdown(f"# {md_escape(title)}", elem_classes="assistant-header")
        with gr.Tabs():
            if "chat" in tabs:
                with gr.Tab("Chat", id="chat"):
                    _chat_tab(service)
            if "agent" in tabs:
                with gr.Tab("Agent", id="agent"):
                    _agent_tab(service)
            if "insights" in tabs:
                with gr.Tab("Insights", id="insights") as insights_tab:
                    _insights_tab(service, insights_tab)
        _api_endpoints(service, tabs)
    return demo


def _chat_tab(service: AssistantService) -> None:
    gr.Markdown("Ask about orders, shipping, returns, payment or our products. Every answer quotes the store's policies.")
    chatbot = gr.Chatbot(
        label="Chat",
        elem_id="chat",
        height=520,
        feedback_options=("Like", "Dislike"),
        latex_delimiters=[],
        sanitize_html=True,
        buttons=["copy"],
        placeholder="Ask a question, or pick one of the examples below.",
    )
    turns = gr.State({})  # chat message index -> interaction id, for ratings
    said = gr.State([])  # the customer's messages on screen, as typed: the history of the next one
    with gr.Row():
        box = gr.Textbox(
            label="Your question", placeholder="e.g. Can I return a ring?", elem_id="question",
            scale=5, lines=1, max_lines=6, submit_btn=False,
        )
        send = gr.Button("Send", variant="primary", scale=1, elem_id="send")
    with gr.Row():
        clear = gr.Button("Clear chat", elem_id="clear", size="sm")
    gr.Examples(examples=[[q] for q in EXAMPLE_QUESTIONS], inputs=[box], label="Example questions")

    def respond(message: str | None, history: list | None, turns_map: dict | None, earlier: list | None):
        history = list(history or [])
        turns_map = dict(turns_map or {})
        earlier = list(earlier or [])
        text = message or ""
        if not text.strip():
            gr.Warning("Please type a question first.")
            return gr.skip(), history, turns_map, earlier
        history.append({"role": "user", "content": md_escape(_short(text))})
        try:
            answer, interaction_id = service.ask(text, channel="web", history=earlier[-HISTORY_TURNS:])
        except UnavailableError as exc:
            history.append({"role": "assistant", "content": f"Sorry, {md_escape(str(exc))}."})
            return gr.skip(), history, turns_map, earlier  # the question stays in the box, to send again
        except AssistantError as exc:
            history.append(
                {"role": "assistant", "content": f"Sorry, I can't work with that question: {md_escape(str(exc))}. "
                 "Please rephrase it and try again."}
            )
            return "", history, turns_map, earlier
        start = len(history)
        history.extend(answer_messages(answer))
        for i in range(start, len(history)):
            turns_map[i] = interaction_id
        return "", history, turns_map, [*earlier, text][-HISTORY_TURNS:]

    for trigger in (send.click, box.submit):
        trigger(respond, [box, chatbot, turns, said], [box, chatbot, turns, said], api_visibility="private")

    def choose_topic(history: list | None, turns_map: dict | None, earlier: list | None, data: gr.SelectData):
        # A topic button under a clarifying reply: send the question it stands for.
        return respond(str(data.value or ""), history, turns_map, earlier)

    chatbot.option_select(choose_topic, [chatbot, turns, said], [box, chatbot, turns, said], api_visibility="private")

    def rate(turns_map: dict | None, data: gr.LikeData):
        interaction_id = (turns_map or {}).get(data.index)
        if interaction_id is None:
            return
        helpful = data.liked if isinstance(data.liked, bool) else None
        try:
            service.store.rate(interaction_id, helpful)
        except FeedbackError as exc:
            raise gr.Error(str(exc)) from None
        if helpful is not None:
            gr.Info("Thanks for your feedback!")

    chatbot.like(rate, [turns], None, api_visibility="private")

    def clear_chat():
        return "", [], {}, []

    clear.click(clear_chat, None, [box, chatbot, turns, said], api_visibility="private")
    chatbot.clear(lambda: ({}, []), None, [turns, said], api_visibility="private")


def _agent_tab(service: AssistantService) -> None:
    gr.Markdown(
        "Paste the customer's message to get a reply draft built only from the store's policies. "
        "Edit it, then copy it into your reply."
    )
    with gr.Row():
        with gr.Column(scale=1):
            thread = gr.Textbox(
                label="Earlier messages from this customer (optional, oldest first, a blank line between messages)",
                lines=3, elem_id="customer-thread",
            )
            message = gr.Textbox(label="Customer message", lines=6, elem_id="customer-message")
            with gr.Row():
                customer = gr.Textbox(label="Customer name (optional)", elem_id="customer-name", max_length=60)
                agent = gr.Textbox(label="Your name (optional)", elem_id="agent-name", max_length=60)
            go = gr.Button("Draft reply", variant="primary", elem_id="draft-button")
        with gr.Column(scale=1):
            status = gr.Markdown(elem_id="draft-status", elem_classes="draft-status")
            draft_box = gr.Textbox(
                label="Reply draft (editable)", lines=14, max_lines=30, interactive=True,
                buttons=["copy"], elem_id="draft",
            )
    with gr.Accordion("Sources", open=True):
        sources = gr.Markdown(elem_id="draft-sources")

    def make_draft(earlier: str | None, text: str | None, customer_name: str | None, agent_name: str | None):
        if not (text or "").strip():
            gr.Warning("Paste the customer's message first.")
            return gr.skip(), gr.skip(), gr.skip()
        history = thread_messages(earlier or "")[-HISTORY_TURNS:]
        try:
            draft, _ = service.draft(
                text, customer_name=customer_name, agent_name=agent_name, channel="web", history=history
            )
        except UnavailableError as exc:
            return f"**Try again shortly:** {md_escape(str(exc))}", gr.skip(), gr.skip()
        except AssistantError as exc:
            return f"**Cannot draft a reply:** {md_escape(str(exc))}", "", ""
        return draft_status_markdown(draft.answer), draft.text, sources_markdown(draft.answer)

    for trigger in (go.click, message.submit):
        trigger(make_draft, [thread, message, customer, agent], [status, draft_box, sources], api_visibility="private")


def _insights_tab(service: AssistantService, tab) -> None:
    import pandas as pd

    store = service.store
    summary = gr.Markdown(elem_id="insights-summary")
    with gr.Row():
        refresh = gr.Button("Refresh", size="sm", elem_id="insights-refresh")
        export = gr.DownloadButton("Export CSV", size="sm", elem_id="insights-export")
    gr.Markdown("### Questions the policies don't answer (most frequent first)")
    refused = gr.Dataframe(
        headers=["Question", "Times asked", "Last asked (UTC)", "Read as"], interactive=False, wrap=True,
        elem_id="insights-refused", column_widths=["35%", "10%", "20%", "35%"],
    )
    gr.Markdown("### The same gaps grouped by meaning")
    grouped = gr.Dataframe(
        headers=["Need (most central phrasing)", "Times asked", "Phrasings", "Other phrasings"], interactive=False,
        wrap=True, elem_id="insights-groups", column_widths=["40%", "10%", "10%", "40%"],
    )
    gr.Markdown("### Lowest-rated answers")
    rated = gr.Dataframe(
        headers=["Question", "Answer", "Helpful", "Not helpful"], interactive=False, wrap=True, elem_id="insights-rated",
        column_widths=["35%", "45%", "10%", "10%"],
    )
    link_outputs = _link_section(service)
    gr.Markdown("### Answer rate per day")
    plot = gr.BarPlot(x="day", y="answer rate (%)", y_lim=[0, 100], height=260, elem_id="insights-rate")
    daily = gr.Dataframe(headers=["Day", "Questions", "Answered", "Answer rate"], interactive=False)

    def load():
        t = store.totals()
        rate = f"{t.answered / t.interactions:.0%}" if t.interactions else "n/a"
        helpful = f"{t.helpful} of {t.ratings} rated helpful" if t.ratings else "no ratings yet"
        text = f"**{t.interactions}** questions logged · answer rate **{rate}** · {helpful}"
        refused_df = pd.DataFrame(
            # "Read as": a follow-up's standalone question ("what about Brazil?" -> delivery to Brazil).
            [(r.question, r.count, r.last_asked, r.resolved_question or "") for r in store.top_refused(20)],
            columns=["Question", "Times asked", "Last asked (UTC)", "Read as"],
        )
        rated_df = pd.DataFrame(
            [(r.question, _clip(r.answer), r.helpful, r.not_helpful) for r in store.lowest_rated(20)],
            columns=["Question", "Answer", "Helpful", "Not helpful"],
        )
        days = store.answer_rate()
        plot_df = pd.DataFrame({"day": [d.day for d in days], "answer rate (%)": [round(100 * d.rate, 1) for d in days]})
        daily_df = pd.DataFrame(
            [(d.day, d.total, d.answered, f"{d.rate:.0%}") for d in days],
            columns=["Day", "Questions", "Answered", "Answer rate"],
        )
        groups = service.refused_groups(20)
        grouped_df = pd.DataFrame(
            [(g.label, g.count, g.phrasings, " · ".join(q for q, _ in g.questions if q != g.label)) for g in groups],
            columns=["Need (most central phrasing)", "Times asked", "Phrasings", "Other phrasings"],
        )
        # The questions staff may link: refused ones (each with its group's phrasings), then low-rated ones.
        siblings = {q: [p for p, _ in g.questions] for g in groups for q, _ in g.questions}
        choices = list(dict.fromkeys([*siblings, *(r.question for r in store.lowest_rated(20))]))
        return (
            text, refused_df, rated_df, plot_df, daily_df, str(_write_export(store)), grouped_df,
            gr.update(choices=choices, value=None), siblings,
        )  # fmt: skip

    outputs = [summary, refused, rated, plot, daily, export, grouped, *link_outputs]
    refresh.click(load, None, outputs, api_visibility="private")
    tab.select(load, None, outputs, api_visibility="private")


def _link_section(service: AssistantService) -> list:
    """Staff link a refused or low-rated question (or its whole group) to the passage that answers it."""
    gr.Markdown(
        "### Teach the assistant\nPick a question customers asked and the passage that answers it: the same "
        "question, and ones like it, are then answered from that passage (quoting only its text)."
    )
    with gr.Row():
        question = gr.Dropdown(
            label="Customer question (refused or low-rated)", choices=[], allow_custom_value=True, elem_id="link-question"
        )
        passage = gr.Dropdown(label="Passage that answers it", choices=[], elem_id="link-passage")
    whole_group = gr.Checkbox(label="Link every phrasing of its group", value=False, elem_id="link-group")
    go = gr.Button("Link question to passage", variant="primary", elem_id="link-button")
    status = gr.Markdown(elem_id="link-status")
    siblings = gr.State({})

    def offer(q: str | None):
        if not q or not q.strip():
            return gr.update(choices=[], value=None)
        try:
            found = service.candidates(q)
        except AssistantError as exc:
            raise gr.Error(str(exc)) from None
        return gr.update(choices=[(f"{_short(c['title'])}: {_clip(c['text'], 90)} ({c['id']})", c["id"]) for c in found], value=None)

    def link(q: str | None, passage_id: str | None, group: bool, groups: dict | None):
        if not q or not q.strip() or not passage_id:
            return "Pick a question and the passage that answers it."
        questions = (groups or {}).get(q, [q]) if group else [q]
        try:
            for each in questions:
                service.add_link(each, passage_id, by="insights")
        except AssistantError as exc:
            return f"Not linked: {md_escape(str(exc))}"
        what = f"{len(questions)} questions" if len(questions) > 1 else md_code(q)
        return f"Linked {what} to {md_code(passage_id)}: the assistant now answers it from that passage."

    question.change(offer, [question], [passage], api_visibility="private")
    go.click(link, [question, passage, whole_group, siblings], [status], api_visibility="private")
    return [question, siblings]


def _write_export(store) -> Path:
    """Write the CSV export into Gradio's temp folder (``assistant serve`` puts it under the data
    folder), one sub-folder per export, removing exports older than ``EXPORT_KEEP_S``."""
    root = Path(gr.utils.get_upload_folder()) / "exports"
    root.mkdir(parents=True, exist_ok=True)
    for old in root.iterdir():
        try:
            if time.time() - old.stat().st_mtime > EXPORT_KEEP_S:
                shutil.rmtree(old, ignore_errors=True)
        except FileNotFoundError:  # another request removed it first
            pass
    out = Path(tempfile.mkdtemp(dir=root)) / "feedback.csv"
    with out.open("w", encoding="utf-8", newline="") as f:
        store.export_csv(f)
    return out


def _api_endpoints(service: AssistantService, tabs: tuple[str, ...]) -> None:
    if "chat" in tabs:

        def ask(question: str, history: list[str] | None = None) -> dict:
            """Answer a customer question from the store's policies, with citations (or refuse);
            ``history``: the customer's earlier messages, oldest first."""
            try:
                return service.ask_payload(question, channel="gradio_api", history=history or [])
            except AssistantError as exc:
                raise gr.Error(str(exc)) from None

        gr.api(ask, api_name="ask")

    if "agent" in tabs:

        def draft(
            question: str, customer_name: str | None = None, agent_name: str | None = None, history: list[str] | None = None
        ) -> dict:
            """Draft a reply to a customer message for a support agent, with its sources (``history``:
            the customer's earlier messages, oldest first)."""
            try:
                return service.draft_payload(
                    question, customer_name=customer_name, agent_name=agent_name, channel="gradio_api",
                    history=history or [],
                )
            except AssistantError as exc:
                raise gr.Error(str(exc)) from None

        gr.api(draft, api_name="draft")
